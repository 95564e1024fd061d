// Command dualstack measures what IPv6 costs: N instances, each with a port,
// built through nsnet's API on an IPv4-only network and, in the same run,
// on a dual-stack one (a static IPv6 address per port) and on one whose
// IPv6 subnet is SLAAC behind a router. It prints each shape's median
// time until the agent has programmed everything, its ratio to IPv4-only
// (issue 15's target for dual-stack: ≤ 1.2×), and for SLAAC the time from
// the first write until every instance's own kernel has configured the
// EUI-64 address the API shows, from nsnet's router advertisements.
//
// Run as root from the repository root:
//
//	go run ./bench/dualstack [-n 50] [-rounds 3]
//
// Everything is built inside namespaces the benchmark creates (a host
// namespace and a prefix per daemon) and removed at the end, also when it
// fails or is interrupted (Ctrl-C).
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nsnet/nsnet/internal/client"
	"github.com/nsnet/nsnet/internal/lab"
	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/netns"
)

func main() { lab.Main(run) }

// A shape is the network the instances are built on.
type shape struct {
	name, what string
	v6mode     string // "": no IPv6 subnet; "static": no modes; else the ra/address mode
}

var shapes = []shape{
	{"ipv4", "IPv4 subnet only (the baseline)", ""},
	{"dual", "IPv4 + IPv6 subnet, static IPv6 address per port", "static"},
	{"slaac", "IPv4 + SLAAC IPv6 subnet behind a router: addresses from RAs", model.IPv6SLAAC},
}

func run(ctx context.Context) error {
	n := flag.Int("n", 50, "instances (each with one port)")
	rounds := flag.Int("rounds", 3, "rounds per shape; the median is reported")
	only := flag.String("only", "", "run this shape alone (ipv4, dual or slaac), to profile it")
	flag.Parse()
	if *only != "" {
		shapes = slices.DeleteFunc(shapes, func(s shape) bool { return s.name != *only })
		if len(shapes) == 0 {
			return fmt.Errorf("-only %q: no such shape", *only)
		}
	}
	if os.Geteuid() != 0 {
		return errors.New("dualstack needs root: it creates network namespaces")
	}
	if *n < 1 || *n > 250 {
		return errors.New("-n must be 1..250")
	}
	dir, err := os.MkdirTemp("", "nsnet-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin, err := lab.BuildNsnet(dir)
	if err != nil {
		return err
	}

	built := map[string][]time.Duration{}
	// cpu is the daemon's CPU time (user and system) over the timed
	// part: what the work costs, which a busy machine's scheduling does
	// not blur as it blurs wall time.
	cpu := map[string][]time.Duration{}
	var ready []time.Duration
	for r := range *rounds {
		for _, s := range shapes {
			took, addrs, work, err := timeShape(ctx, bin, dir, *n, s)
			if err != nil {
				return fmt.Errorf("%s: %w", s.name, err)
			}
			built[s.name] = append(built[s.name], took)
			cpu[s.name] = append(cpu[s.name], work)
			if s.v6mode == model.IPv6SLAAC {
				ready = append(ready, addrs)
			}
		}
		log.Printf("round %d/%d done", r+1, *rounds)
	}

	base, baseCPU := lab.Median(built[shapes[0].name]), lab.Median(cpu[shapes[0].name])
	fmt.Printf("\n%d instances, each with a port on one network; median of %d rounds\n\n", *n, *rounds)
	fmt.Printf("%-6s %10s %9s %12s %9s  %s\n", "shape", "built", "vs ipv4", "daemon CPU", "vs ipv4", "what")
	for _, s := range shapes {
		t, c := lab.Median(built[s.name]), lab.Median(cpu[s.name])
		fmt.Printf("%-6s %10s %8.2fx %12s %8.2fx  %s\n", s.name, ms(t), float64(t)/float64(base), ms(c), float64(c)/float64(baseCPU), s.what)
	}
	fmt.Printf("\nslaac: every instance had its EUI-64 address %s after the first write (median)\n", ms(lab.Median(ready)))
	fmt.Printf("reproduce: go run ./bench/dualstack -n %d -rounds %d\n", *n, *rounds)
	return nil
}

// timeShape starts a daemon, builds the network of shape s and n instances
// with a port each, writes back to back and one waited write at the end,
// and returns the time until the agent had programmed all of it and, for
// SLAAC, until every instance's kernel had its address. The daemon and its
// namespaces are gone when it returns.
func timeShape(ctx context.Context, bin, dir string, n int, s shape) (built, ready, work time.Duration, err error) {
	prefix := "bd" + lab.RandomHex(3) + "-"
	defer lab.RemoveNamespaces(prefix)
	daemon, err := lab.StartDaemon(bin, dir, prefix)
	if err != nil {
		return 0, 0, 0, err
	}
	defer daemon.Stop()
	c, err := client.New(client.Config{Socket: daemon.Socket})
	if err != nil {
		return 0, 0, 0, err
	}
	waiting, err := client.New(client.Config{Socket: daemon.Socket, Wait: time.Minute})
	if err != nil {
		return 0, 0, 0, err
	}

	// The network (and router) are set up first, waited for, and not
	// timed: the shapes differ in what each port costs.
	net4, _, err := client.Create[model.Network](ctx, waiting, client.Networks, map[string]any{"name": "bench"})
	if err != nil {
		return 0, 0, 0, err
	}
	subnets := []map[string]any{{"network_id": net4.ID, "cidr": "10.77.0.0/24", "ip_version": 4}}
	if s.v6mode != "" {
		v6 := map[string]any{"network_id": net4.ID, "cidr": "2001:db8:77::/64", "ip_version": 6}
		if s.v6mode != "static" {
			v6["ipv6_ra_mode"], v6["ipv6_address_mode"] = s.v6mode, s.v6mode
		}
		subnets = append(subnets, v6)
	}
	for _, attrs := range subnets {
		sn, _, err := client.Create[model.Subnet](ctx, waiting, client.Subnets, attrs)
		if err != nil {
			return 0, 0, 0, err
		}
		if s.v6mode == model.IPv6SLAAC && sn.IPVersion == 6 {
			r, _, err := client.Create[model.Router](ctx, waiting, client.Routers, map[string]any{"name": "bench"})
			if err != nil {
				return 0, 0, 0, err
			}
			if _, _, err := waiting.AddRouterInterface(ctx, r.ID, client.InterfaceRef{SubnetID: sn.ID}); err != nil {
				return 0, 0, 0, err
			}
		}
	}

	want := map[string]netip.Addr{} // instance namespace → its SLAAC address
	cpu0, err := cpuTime(daemon.Pid())
	if err != nil {
		return 0, 0, 0, err
	}
	start := time.Now()
	for i := range n {
		name := fmt.Sprintf("vm%d", i)
		inst, _, err := client.Create[model.Instance](ctx, c, client.Instances, map[string]any{"name": name})
		if err != nil {
			return 0, 0, 0, err
		}
		p, _, err := client.Create[model.Port](ctx, c, client.Ports, map[string]any{"network_id": net4.ID, "device_id": inst.ID})
		if err != nil {
			return 0, 0, 0, err
		}
		if s.v6mode == model.IPv6SLAAC {
			for _, ip := range p.FixedIPs {
				if a, err := netip.ParseAddr(ip.IPAddress); err == nil && a.Is6() {
					want[prefix+name] = a
				}
			}
		}
	}
	// One waited write: answered once the agent has programmed its
	// revision, which covers every write before it.
	_, meta, err := client.Update[model.Network](ctx, waiting, client.Networks, net4.ID, map[string]any{"description": "built"})
	if err != nil {
		return 0, 0, 0, err
	}
	if meta.Converged == nil || !*meta.Converged {
		return 0, 0, 0, errors.New("the agent did not converge within a minute")
	}
	built = time.Since(start)
	cpu1, err := cpuTime(daemon.Pid())
	if err != nil {
		return 0, 0, 0, err
	}
	work = cpu1 - cpu0
	if s.v6mode == model.IPv6SLAAC && len(want) != n {
		return 0, 0, 0, fmt.Errorf("%d of %d ports show a SLAAC address", len(want), n)
	}
	for len(want) > 0 {
		for ns, a := range want {
			if hasAddr(ns, "eth0", a) {
				delete(want, ns)
			}
		}
		if len(want) == 0 {
			break
		}
		if time.Since(start) > 2*time.Minute {
			return 0, 0, 0, fmt.Errorf("%d instances without their SLAAC address after two minutes", len(want))
		}
		select {
		case <-ctx.Done():
			return 0, 0, 0, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return built, time.Since(start), work, nil
}

// hasAddr reports whether link in namespace ns has address a.
func hasAddr(ns, link string, a netip.Addr) bool {
	found := false
	netns.DoNamed(ns, func() error {
		ifi, err := net.InterfaceByName(link)
		if err != nil {
			return err
		}
		addrs, err := ifi.Addrs()
		for _, x := range addrs {
			if p, ok := x.(*net.IPNet); ok {
				if got, ok := netip.AddrFromSlice(p.IP); ok && got.Unmap() == a {
					found = true
				}
			}
		}
		return err
	})
	return found
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond)) }

// cpuTime is the CPU time (user and system) process pid has used, from
// /proc/<pid>/stat (fields 14 and 15, in clock ticks of 1/100 s).
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: %q", pid, b)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %q", pid, b)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond, nil
}
