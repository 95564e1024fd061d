// Command sgmembers measures what a remote group's size costs: the time
// from POST /v2.0/ports to the port programmed in the kernel (the API's
// wait), for a port in the default security group — whose ingress rules
// name the group itself as remote (members admit members) — when the
// group has 10 members and when it has 1,000, all plugged on the host,
// in one run of one daemon; and the daemon's RSS per port.
//
//	(a) 10 ports, all in the default group;
//	(b) 1,000 ports, 10 of them in the default group (the others in a
//	    group that names no remote group): as many ports as (c), as
//	    few members as (a);
//	(c) the same 1,000 ports, all in the default group.
//
// (c)/(b) is what the group's size costs: with the group's members in
// sets of their own (internal/firewall), a new member is one element
// whatever the number of ports; before, it was an element in every
// member port's rule set. (b)/(a) is what the number of ports costs the
// rest of the way, not the firewall: the agent's pass over the store, the
// kernel's over the host's links and over the bridge's ports (see
// -networks).
//
// Run as root from the repository root:
//
//	sudo go run ./bench/sgmembers [-ports 1000] [-small 10] [-samples 15] [-bin path/to/nsnet]
//
// -bin measures another build (an older nsnet) in the same way.
//
// -networks K spreads the large shapes' ports round-robin over K networks
// (K bridges on the host) instead of one; (a)'s ports and every timed
// port stay on the first. A project's default group spans all its
// networks, and one network's bridge holding all 1,000 ports is the
// extreme: a Linux bridge walks its ports when one joins (features,
// headroom, promiscuity, bridge id), so with K = 1 (b)/(a) holds that
// walk, which with K = 10 is over 100 ports.
//
// -settle pauses before each shape's samples. Every port added comes with
// an instance whose kernel sends IPv6 multicast (MLD reports, duplicate
// address detection, router solicitations repeated with backoff), which
// the bridge floods to every one of its ports, each copy through the
// firewall; right after the 990 ports of (b) are added, that takes most
// of a 2-core machine for seconds, and (b)'s samples measure it as much
// as the port's own cost. With -settle 15s they measure the latter. Everything
// lives in namespaces the benchmark creates under one prefix and deletes
// through the API at the end, also when it fails or is interrupted.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/nsnet/nsnet/internal/client"
	"github.com/nsnet/nsnet/internal/lab"
	"github.com/nsnet/nsnet/internal/model"
)

func main() { lab.Main(run) }

func run(ctx context.Context) (err error) {
	nPorts := flag.Int("ports", 1000, "ports of the large shapes")
	small := flag.Int("small", 10, "ports of the small shape, and members of the default group in (b)")
	samples := flag.Int("samples", 15, "port creations timed per shape; median and max reported")
	binFlag := flag.String("bin", "", "nsnet binary to measure (default: build ./cmd/nsnet)")
	settle := flag.Duration("settle", 0, "pause before each shape's samples, for the kernel's work after the ports added before it (their IPv6 multicast, flooded to every bridge port) to end")
	nNets := flag.Int("networks", 1, "networks the large shapes' ports are spread over, round-robin (the timed ports are on the first)")
	flag.Parse()
	if os.Geteuid() != 0 {
		return errors.New("sgmembers needs root: it creates network namespaces")
	}
	if *nNets < 1 || *nNets > 50 {
		return errors.New("-networks must be 1..50")
	}
	// A network is one bridge on the host, and a Linux bridge takes at
	// most 1,023 ports (the 1,024th enslaving fails with EXFULL); the
	// first network holds (a)'s ports, its share of the rest, and each
	// sample adds one more.
	firstNet := *small + (*nPorts-*small+*nNets-1)/(*nNets)
	if *small < 1 || *nPorts <= *small || firstNet > 1022 {
		return errors.New("-small 1.. and -ports above it, at most 1022 on one network (a bridge takes 1023 ports, the samples one): raise -networks")
	}
	dir, err := os.MkdirTemp("", "nsnet-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := *binFlag
	if bin == "" {
		if bin, err = lab.BuildNsnet(dir); err != nil {
			return err
		}
	}
	prefix := "bg" + lab.RandomHex(3) + "-"
	defer lab.RemoveNamespaces(prefix)
	daemon, err := lab.StartDaemon(bin, dir, prefix)
	if err != nil {
		return err
	}
	defer daemon.Stop()
	w := &world{}
	if w.wait, err = client.New(client.Config{Socket: daemon.Socket, Wait: 5 * time.Minute}); err != nil {
		return err
	}
	if w.eager, err = client.New(client.Config{Socket: daemon.Socket}); err != nil {
		return err
	}
	defer func() { err = errors.Join(err, w.teardown(prefix)) }()
	if err := w.setup(ctx, *nNets); err != nil {
		return err
	}

	type row struct {
		name         string
		ports, membs int
		times        []time.Duration
		rssKiB       int
	}
	var rows []row
	measure := func(name string, ports, members int) error {
		r := row{name: name, ports: ports, membs: members}
		select {
		case <-time.After(*settle):
		case <-ctx.Done():
			return ctx.Err()
		}
		for i := range *samples {
			took, err := w.timedPort(ctx, fmt.Sprintf("%s-probe%d", strings.Trim(name, "()"), i))
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			r.times = append(r.times, took)
		}
		r.rssKiB, err = rssKiB(daemon.Pid())
		rows = append(rows, r)
		log.Printf("%s: median %s", name, ms(lab.Median(r.times)))
		return err
	}

	if err := w.grow(ctx, *small, 1, ""); err != nil {
		return err
	}
	if err := measure("(a)", *small, *small); err != nil {
		return err
	}
	if err := w.grow(ctx, *nPorts-*small, *nNets, w.other); err != nil {
		return err
	}
	if err := measure("(b)", *nPorts, *small); err != nil {
		return err
	}
	// Untimed in the table: the ports' group change, one request each,
	// then programmed (how long a group change of many ports takes).
	joinStart := time.Now()
	if err := w.joinDefault(ctx); err != nil {
		return err
	}
	log.Printf("%d ports joined the default group, programmed, in %s", len(w.grown), time.Since(joinStart).Round(time.Millisecond))
	if err := measure("(c)", *nPorts, *nPorts); err != nil {
		return err
	}

	fmt.Printf("\nport create → kernel (POST /v2.0/ports, answered once programmed), a port in the default group; %d samples per shape; the large shapes' ports over %d network(s)\n\n", *samples, *nNets)
	fmt.Printf("%-4s %7s %18s %10s %10s %12s\n", "", "ports", "default members", "median", "max", "daemon RSS")
	for _, r := range rows {
		fmt.Printf("%-4s %7d %18d %10s %10s %9d KiB\n", r.name, r.ports, r.membs, ms(lab.Median(r.times)), ms(slices.Max(r.times)), r.rssKiB)
	}
	a, b, c := lab.Median(rows[0].times), lab.Median(rows[1].times), lab.Median(rows[2].times)
	fmt.Printf("\n%d vs %d members at %d ports, (c)/(b): %.2fx (target ≤ 1.5x)\n", *nPorts, *small, *nPorts, float64(c)/float64(b))
	fmt.Printf("%d ports vs %d, same members, (b)/(a): %.2fx (the rest of the way: the agent's pass, the host's and the bridge's ports; not the firewall)\n", *nPorts, *small, float64(b)/float64(a))
	fmt.Printf("%d ports and members vs %d, (c)/(a): %.2fx\n", *nPorts, *small, float64(c)/float64(a))
	fmt.Printf("daemon RSS per port, (c) over (a): %.1f KiB\n", float64(rows[2].rssKiB-rows[0].rssKiB)/float64(*nPorts-*small))
	fmt.Printf("reproduce: sudo go run ./bench/sgmembers -ports %d -small %d -samples %d -settle %s -networks %d\n", *nPorts, *small, *samples, *settle, *nNets)
	return nil
}

type world struct {
	wait, eager   *client.Client
	nets          []network // the first holds (a)'s ports and the timed ones
	other         string    // a group whose rules name no remote group
	grown         []string  // ports of the population, in other
	instances     []string
	defaultGroups []string
}

// network is one of the benchmark's networks, with its one subnet.
type network struct {
	id, sub string
	cidr    int // 10.<cidr>.0.0/20
	next    int // next address
}

func (w *world) setup(ctx context.Context, nNets int) error {
	// The project the daemon's local caller acts as: room for every port.
	if _, err := w.wait.SetQuota(ctx, "admin", map[string]int{"port": -1, "network": -1, "subnet": -1,
		"security_group": -1, "security_group_rule": -1}, false); err != nil {
		return err
	}
	for i := range nNets {
		n, _, err := client.Create[model.Network](ctx, w.wait, client.Networks, map[string]any{"name": fmt.Sprintf("sgbench%d", i)})
		if err != nil {
			return err
		}
		nw := network{id: n.ID, cidr: 80 + i}
		w.nets = append(w.nets, nw)
		sn, _, err := client.Create[model.Subnet](ctx, w.wait, client.Subnets, map[string]any{
			"network_id": n.ID, "cidr": fmt.Sprintf("10.%d.0.0/20", nw.cidr), "ip_version": 4, "enable_dhcp": false})
		if err != nil {
			return err
		}
		w.nets[i].sub = sn.ID
	}
	g, _, err := client.Create[model.SecurityGroup](ctx, w.wait, client.SecurityGroups, map[string]any{"name": "no-remote"})
	if err != nil {
		return err
	}
	w.other = g.ID
	return nil
}

// addr is the next free address of network i.
func (w *world) addr(i int) string {
	nw := &w.nets[i]
	nw.next++
	return fmt.Sprintf("10.%d.%d.%d", nw.cidr, (nw.next+1)/256, (nw.next+1)%256)
}

// port creates an instance and a port on network net plugged into it,
// with c, in group (the default group when ""), and returns the port's id.
func (w *world) port(ctx context.Context, c *client.Client, net int, name, group string) (string, time.Duration, error) {
	inst, _, err := client.Create[model.Instance](ctx, w.eager, client.Instances, map[string]any{"name": name})
	if err != nil {
		return "", 0, err
	}
	w.instances = append(w.instances, inst.ID)
	body := map[string]any{"network_id": w.nets[net].id, "device_id": inst.ID,
		"fixed_ips": []any{map[string]any{"subnet_id": w.nets[net].sub, "ip_address": w.addr(net)}}}
	if group != "" {
		body["security_groups"] = []string{group}
	}
	start := time.Now()
	p, meta, err := client.Create[model.Port](ctx, c, client.Ports, body)
	took := time.Since(start)
	if err != nil {
		return "", 0, err
	}
	if c == w.wait && (meta.Converged == nil || !*meta.Converged) {
		return "", 0, fmt.Errorf("port %s not programmed in time", name)
	}
	return p.ID, took, nil
}

// grow adds n ports in group, back to back, round-robin over the first
// nets networks, and waits for the agent.
func (w *world) grow(ctx context.Context, n, nets int, group string) error {
	for i := range n {
		id, _, err := w.port(ctx, w.eager, i%nets, fmt.Sprintf("m%d", len(w.grown)+len(w.defaultGroups)), group)
		if err != nil {
			return err
		}
		if group != "" {
			w.grown = append(w.grown, id)
		} else {
			w.defaultGroups = append(w.defaultGroups, id)
		}
	}
	return w.converge(ctx)
}

// joinDefault puts the ports of other in the default group instead.
func (w *world) joinDefault(ctx context.Context) error {
	var def string
	groups, err := client.List[model.SecurityGroup](ctx, w.eager, client.SecurityGroups, nil)
	if err != nil {
		return err
	}
	for _, g := range groups {
		if g.Name == "default" {
			def = g.ID
		}
	}
	if def == "" {
		return errors.New("no default group")
	}
	for _, id := range w.grown {
		if _, _, err := client.Update[model.Port](ctx, w.eager, client.Ports, id, map[string]any{"security_groups": []string{def}}); err != nil {
			return err
		}
	}
	return w.converge(ctx)
}

// converge makes one waited write: the server answers once the agent has
// programmed its revision, which covers every write before it.
func (w *world) converge(ctx context.Context) error {
	_, meta, err := client.Update[model.Network](ctx, w.wait, client.Networks, w.nets[0].id, map[string]any{"description": lab.RandomHex(4)})
	if err != nil {
		return err
	}
	if meta.Converged == nil || !*meta.Converged {
		return errors.New("the agent did not converge in time")
	}
	return nil
}

// timedPort times the creation of one port in the default group until it
// is programmed, then deletes it and its instance (untimed, waited).
func (w *world) timedPort(ctx context.Context, name string) (time.Duration, error) {
	id, took, err := w.port(ctx, w.wait, 0, name, "")
	if err != nil {
		return 0, err
	}
	if _, err := w.wait.Delete(ctx, client.Ports, id); err != nil {
		return 0, err
	}
	inst := w.instances[len(w.instances)-1]
	w.instances = w.instances[:len(w.instances)-1]
	if _, err := w.wait.Delete(ctx, client.Instances, inst); err != nil {
		return 0, err
	}
	return took, nil
}

// teardown deletes everything through the API, as a user would, and
// fails if the daemon left a namespace behind.
func (w *world) teardown(prefix string) error {
	ctx := context.Background()
	var errs []error
	ports, err := client.List[model.Port](ctx, w.eager, client.Ports, nil)
	errs = append(errs, err)
	for _, p := range ports {
		if p.DeviceOwner != model.DeviceOwnerDHCP {
			_, err := w.eager.Delete(ctx, client.Ports, p.ID)
			errs = append(errs, err)
		}
	}
	for _, id := range w.instances {
		_, err := w.eager.Delete(ctx, client.Instances, id)
		errs = append(errs, err)
	}
	for _, nw := range w.nets {
		_, err := w.wait.Delete(ctx, client.Networks, nw.id)
		errs = append(errs, err)
	}
	for _, ns := range lab.Namespaces(prefix) {
		if ns != prefix+"host" {
			errs = append(errs, fmt.Errorf("nsnet left namespace %s behind", ns))
		}
	}
	return errors.Join(errs...)
}

// rssKiB is the resident set size of process pid.
func rssKiB(pid int) (int, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kib int
			fmt.Sscanf(strings.TrimSpace(rest), "%d", &kib)
			return kib, nil
		}
	}
	return 0, errors.New("no VmRSS")
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }
