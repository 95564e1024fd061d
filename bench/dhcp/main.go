// Command dhcp measures nsnet's network services against dnsmasq, the
// server Neutron runs in its qdhcp namespaces, in the same run:
//
//	(a) N instances on one network start udhcpc (busybox) at once: the
//	    time until every one is bound, for nsnet's DHCP server and for
//	    dnsmasq (Debian's dnsmasq-base) serving the same network with
//	    the same static host entries (--dhcp-host) from a namespace of
//	    the same layout (one veth on the network's bridge), while busy
//	    loops keep the machine's CPUs busy; how many bound, how many
//	    DISCOVERs and REQUESTs were sent again, the server socket's
//	    receive-buffer drops and the machine's softnet backlog drops;
//	(b) DNS queries per second for one instance name, answered by nsnet
//	    and by dnsmasq, from a load generator (miekg/dns, W workers) in a
//	    client namespace on the same network, and from dnsperf (Debian's
//	    dnsperf, 16 clients, 64 queries in flight) when it is installed.
//
// Rounds alternate which server goes first; medians and ratios
// (dnsmasq time / nsnet time, nsnet qps / dnsmasq qps: above 1 means
// nsnet is faster) are printed. Run as root from the repository root:
//
//	sudo go run ./bench/dhcp [-n 200] [-rounds 3] [-busy 4] [-qps-for 2s] [-workers 16] [-bin nsnet]
//
// The bind time is the clients' more than the servers'. With -perfdhcp,
// the servers' capacity instead (perfdhcp.go): ISC's perfdhcp runs DHCP
// exchanges against each server with the static hosts' MACs, all of them
// at once (avalanche) and at a ladder of rates, until exchanges are lost:
//
//	sudo go run ./bench/dhcp -perfdhcp [-perfdhcp-clients 4] [-n 200] [-busy 0] [-perfdhcp-for 2s] [-bin nsnet]
//
// Everything lives in namespaces the benchmark creates under one prefix
// (the daemon's host namespace, its instances and qdhcp namespace,
// dnsmasq's namespace, the client) and is removed at the end, also when it
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
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"

	"github.com/nsnet/nsnet/internal/client"
	"github.com/nsnet/nsnet/internal/lab"
	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/netns"
)

// The network: instances from the start of a /16, the servers and the
// client at its end.
const (
	cidr        = "10.60.0.0/16"
	dnsmasqAddr = "10.60.255.254"
	clientAddr  = "10.60.255.253"
	domain      = "nsnet.internal"
)

func main() { lab.Main(run) }

func run(ctx context.Context) (err error) {
	n := flag.Int("n", 200, "instances, each running udhcpc")
	rounds := flag.Int("rounds", 3, "rounds (each times both servers); medians are reported")
	qpsFor := flag.Duration("qps-for", 2*time.Second, "duration of one DNS load run")
	workers := flag.Int("workers", 16, "DNS load generator workers, each with one query in flight")
	busy := flag.Int("busy", 4, "busy loops (processes) running while the clients start, or perfdhcp runs: the busy machine they start on")
	binFlag := flag.String("bin", "", "nsnet binary to measure (default: build ./cmd/nsnet)")
	perfMode := flag.Bool("perfdhcp", false, "measure the servers with perfdhcp (kea-admin) instead of starting udhcpc: avalanche, rate ladder, unlimited")
	perfFor := flag.Duration("perfdhcp-for", 2*time.Second, "duration of one perfdhcp rate step")
	perfGens := flag.Int("perfdhcp-clients", 4, "perfdhcp processes run at once, sharing the clients and the rate")
	flag.Parse()
	if os.Geteuid() != 0 {
		return errors.New("dhcp needs root: it creates network namespaces")
	}
	if *n < 1 || *n > 1000 {
		return errors.New("-n must be 1..1000")
	}
	tools := []string{"udhcpc", "dnsmasq", "nsenter", "ip"}
	if *perfMode {
		tools = append(tools, "perfdhcp")
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found: run scripts/deps.sh's ensure_packages (udhcpc, dnsmasq-base, kea-admin for perfdhcp; dnsperf optional)", tool)
		}
	}
	dir, err := os.MkdirTemp("", "nsnet-bench-dhcp-")
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

	w := &world{dir: dir, prefix: "bd" + lab.RandomHex(3) + "-"}
	defer func() { err = errors.Join(err, w.teardown()) }()
	if err := w.start(ctx, bin, *n); err != nil {
		return err
	}
	if *perfMode {
		if *perfGens < 1 || *perfGens > 50 {
			return errors.New("-perfdhcp-clients must be 1..50")
		}
		if err := w.perfdhcpMode(ctx, *perfGens, *perfFor, *busy); err != nil {
			return err
		}
		fmt.Printf("\nreproduce: sudo go run ./bench/dhcp -perfdhcp -perfdhcp-clients %d -n %d -busy %d -perfdhcp-for %s\n", *perfGens, *n, *busy, *perfFor)
		return nil
	}

	took := map[string][]time.Duration{}
	bound, resent, sockDrops, softDrops := map[string][]int{}, map[string][]int{}, map[string][]int64{}, map[string][]int64{}
	qps, perf := map[string][]float64{}, map[string][]float64{}
	cpuPerQuery, cpu := map[string][]time.Duration{}, map[string][]time.Duration{}
	exMedian, exP90 := map[string][]time.Duration{}, map[string][]time.Duration{}
	_, noDnsperf := exec.LookPath("dnsperf")
	var floor []time.Duration
	for r := range *rounds {
		f, err := w.timeStarts(*busy)
		if err != nil {
			return err
		}
		floor = append(floor, f)
		order := []string{"nsnet", "dnsmasq"}
		if r%2 == 1 {
			slices.Reverse(order)
		}
		for _, server := range order {
			if err := ctx.Err(); err != nil {
				return err
			}
			c, rate, perfRate, err := w.round(server, *qpsFor, *workers, *busy, noDnsperf == nil)
			if err != nil {
				return fmt.Errorf("%s: %w", server, err)
			}
			took[server] = append(took[server], c.took)
			bound[server] = append(bound[server], c.bound)
			resent[server] = append(resent[server], c.resent)
			sockDrops[server] = append(sockDrops[server], c.sockDrops)
			softDrops[server] = append(softDrops[server], c.softnetDrops)
			qps[server] = append(qps[server], rate)
			perf[server] = append(perf[server], perfRate)
			cpuPerQuery[server] = append(cpuPerQuery[server], c.cpuPerQuery)
			cpu[server] = append(cpu[server], c.cpu)
			exMedian[server] = append(exMedian[server], percentile(c.exchanges, 50))
			exP90[server] = append(exP90[server], percentile(c.exchanges, 90))
			log.Printf("round %d: %-7s %d/%d bound in %v (%d resent, %d socket drops, %d softnet drops; %d exchanges, server time median %v, p90 %v), DNS %.0f queries/s, dnsperf %.0f",
				r+1, server, c.bound, *n, c.took.Round(time.Millisecond), c.resent, c.sockDrops, c.softnetDrops,
				len(c.exchanges), percentile(c.exchanges, 50).Round(time.Microsecond), percentile(c.exchanges, 90).Round(time.Microsecond), rate, perfRate)
		}
	}

	tn, td := lab.Median(took["nsnet"]), lab.Median(took["dnsmasq"])
	qn, qd := lab.Median(qps["nsnet"]), lab.Median(qps["dnsmasq"])
	fmt.Printf("\n%d instances start udhcpc at once on one network, %d busy loops running; median of %d rounds\n\n", *n, *busy, *rounds)
	fmt.Printf("%-34s %12s %12s %10s\n", "", "nsnet", "dnsmasq", "ratio")
	fmt.Printf("%-34s %12s %12s\n", "bound, fewest of any round", fmt.Sprintf("%d/%d", slices.Min(bound["nsnet"]), *n),
		fmt.Sprintf("%d/%d", slices.Min(bound["dnsmasq"]), *n))
	fmt.Printf("%-34s %12s %12s %9.2fx  (dnsmasq time / nsnet time)\n", "time until all bound (or gave up)", ms(tn), ms(td), float64(td)/float64(tn))
	fmt.Printf("%-34s %12s  (nsenter /bin/true in every instance, the same for both: the floor)\n", "  of which starting processes", ms(lab.Median(floor)))
	fmt.Printf("%-34s %12s %12s  (the daemon, all of it, or dnsmasq)\n", "server CPU time meanwhile", ms(lab.Median(cpu["nsnet"])), ms(lab.Median(cpu["dnsmasq"])))
	en, ed := lab.Median(exMedian["nsnet"]), lab.Median(exMedian["dnsmasq"])
	fmt.Printf("%-34s %12s %12s %9.2fx  (request in to reply out, at the server's interfaces)\n", "server time per exchange, median", short(en), short(ed), float64(ed)/float64(en))
	fmt.Printf("%-34s %12s %12s\n", "  p90", short(lab.Median(exP90["nsnet"])), short(lab.Median(exP90["dnsmasq"])))
	fmt.Printf("%-34s %12d %12d\n", "DISCOVER/REQUEST resent", lab.Median(resent["nsnet"]), lab.Median(resent["dnsmasq"]))
	fmt.Printf("%-34s %12d %12d\n", "server socket drops (RcvbufErrors)", lab.Median(sockDrops["nsnet"]), lab.Median(sockDrops["dnsmasq"]))
	fmt.Printf("%-34s %12d %12d  (the machine's backlog)\n", "softnet drops", lab.Median(softDrops["nsnet"]), lab.Median(softDrops["dnsmasq"]))
	fmt.Printf("%-34s %12.0f %12.0f %9.2fx  (nsnet / dnsmasq)\n", "DNS queries/s, one name", qn, qd, qn/qd)
	if noDnsperf == nil {
		pn, pd := lab.Median(perf["nsnet"]), lab.Median(perf["dnsmasq"])
		fmt.Printf("%-34s %12.0f %12.0f %9.2fx  (nsnet / dnsmasq)\n", "DNS queries/s, dnsperf", pn, pd, pn/pd)
		cn, cd := lab.Median(cpuPerQuery["nsnet"]), lab.Median(cpuPerQuery["dnsmasq"])
		fmt.Printf("%-34s %12s %12s %9.2fx  (dnsmasq / nsnet)\n", "server CPU per query, dnsperf", us(cn), us(cd), float64(cd)/float64(cn))
	} else {
		fmt.Println("(dnsperf not installed: apt-get install dnsperf for the second DNS figure)")
	}
	fmt.Printf("\nreproduce: sudo go run ./bench/dhcp -n %d -rounds %d -busy %d -qps-for %s -workers %d\n", *n, *rounds, *busy, *qpsFor, *workers)
	// dnsmasq is the yardstick: its clients without a lease are reported
	// above, nsnet's fail the benchmark.
	if slices.Min(bound["nsnet"]) < *n {
		return errors.New("some of nsnet's clients got no lease")
	}
	return nil
}

// round serves the network with server, times its clients and its DNS,
// and stops it.
func (w *world) round(server string, qpsFor time.Duration, workers, busy int, dnsperf bool) (c clients, rate, perfRate float64, err error) {
	addr, stop, err := w.serve(server)
	if err != nil {
		return c, 0, 0, err
	}
	defer func() { err = errors.Join(err, stop()) }()
	ns := w.prefix + "dnsmasq"
	if server == "nsnet" {
		ns = model.DHCPNetns(w.prefix, w.networkID)
	}
	if c, err = w.timeClients(ns, busy); err != nil {
		return c, 0, 0, err
	}
	if rate, err = w.dnsRate(addr, qpsFor, workers); err != nil || !dnsperf {
		return c, rate, 0, err
	}
	cpu0 := processCPU(w.serverPid)
	perfRate, err = w.dnsperfRate(addr, qpsFor)
	c.cpuPerQuery = (processCPU(w.serverPid) - cpu0) / time.Duration(max(1, perfRate*qpsFor.Seconds()))
	return c, rate, perfRate, err
}

// processCPU is the CPU time pid has used, user and system.
func processCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// After the command's closing parenthesis: state is field 3, utime
	// and stime fields 14 and 15, in clock ticks (USER_HZ, 100).
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+st) * 10 * time.Millisecond
}

// dnsperfRate runs dnsperf (DNS-OARC's load generator, a process of its
// own) from the client namespace against addr for d, asking for the first
// instance's name, and returns the queries per second it reports; lost
// queries or other answers than NOERROR are an error.
func (w *world) dnsperfRate(addr netip.Addr, d time.Duration) (float64, error) {
	data := filepath.Join(w.dir, "dnsperf-queries")
	if err := os.WriteFile(data, []byte(w.instances[0].name+"."+domain+" A\n"), 0o644); err != nil {
		return 0, err
	}
	out, err := exec.Command("ip", "netns", "exec", w.prefix+"client", "dnsperf", "-s", addr.String(), "-d", data,
		"-l", strconv.Itoa(max(1, int(d.Seconds()))), "-c", "16", "-q", "64").CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("dnsperf: %v\n%s", err, out)
	}
	var qps float64
	var lost int
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		switch {
		case strings.HasPrefix(strings.TrimSpace(line), "Queries per second:") && len(f) >= 4:
			qps, err = strconv.ParseFloat(f[3], 64)
		case strings.HasPrefix(strings.TrimSpace(line), "Queries lost:") && len(f) >= 3:
			lost, err = strconv.Atoi(f[2])
		case strings.HasPrefix(strings.TrimSpace(line), "Response codes:"):
			// Every answer NOERROR: "Response codes: NOERROR 123 (100.00%)".
			if len(f) != 5 || f[2] != "NOERROR" {
				err = fmt.Errorf("dnsperf: unexpected answers: %s", line)
			}
		}
		if err != nil {
			return 0, err
		}
	}
	if qps == 0 || lost > int(qps*d.Seconds())/100 {
		return 0, fmt.Errorf("dnsperf: %.0f queries/s, %d lost:\n%s", qps, lost, out)
	}
	return qps, nil
}

// world is the daemon, its network and instances, and the benchmark's own
// namespaces.
type world struct {
	dir, prefix string
	daemon      *lab.Daemon
	c           *client.Client
	networkID   string
	subnetID    string
	instances   []instance
	// serverPid is the process serving the round: the daemon or dnsmasq.
	serverPid int
}

type instance struct {
	netns, name, mac, ip string
}

func (w *world) start(ctx context.Context, bin string, n int) error {
	var err error
	if w.daemon, err = lab.StartDaemon(bin, w.dir, w.prefix); err != nil {
		return err
	}
	if w.c, err = client.New(client.Config{Socket: w.daemon.Socket, Wait: 2 * time.Minute}); err != nil {
		return err
	}
	network, _, err := client.Create[model.Network](ctx, w.c, client.Networks, map[string]any{"name": "bench"})
	if err != nil {
		return err
	}
	w.networkID = network.ID
	subnet, _, err := client.Create[model.Subnet](ctx, w.c, client.Subnets, map[string]any{
		"network_id": network.ID, "cidr": cidr, "enable_dhcp": false,
		"allocation_pools": []any{map[string]any{"start": "10.60.0.10", "end": "10.60.15.254"}}})
	if err != nil {
		return err
	}
	w.subnetID = subnet.ID
	log.Printf("creating %d instances with DHCP client ports", n)
	jobs := make(chan int)
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for i := range jobs {
				name := fmt.Sprintf("vm%d", i)
				inst, _, err := client.Create[model.Instance](ctx, w.c, client.Instances, map[string]any{"name": name})
				var port model.Port
				if err == nil {
					port, _, err = client.Create[model.Port](ctx, w.c, client.Ports, map[string]any{
						"network_id": network.ID, "device_id": inst.ID, "nsnet:dhcp_client": true})
				}
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					w.instances = append(w.instances, instance{inst.Netns, name, port.MACAddress, port.FixedIPs[0].IPAddress})
				}
				mu.Unlock()
			}
		})
	}
	for i := range n {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	// The client: a namespace of the benchmark's own on the bridge.
	return w.plug("client", clientAddr)
}

// plug makes namespace prefix+name with a veth on the network's bridge
// holding addr.
func (w *world) plug(name, addr string) error {
	ns := w.prefix + name
	host, peer := vethName(name), "bv0"
	return command("ip", "netns", "add", ns).
		then("ip", "-n", w.prefix+"host", "link", "add", host, "type", "veth", "peer", "name", peer, "netns", ns).
		then("ip", "-n", w.prefix+"host", "link", "set", host, "master", model.BridgeName(w.networkID), "up").
		then("ip", "-n", ns, "addr", "add", addr+"/16", "dev", peer).
		then("ip", "-n", ns, "link", "set", peer, "up").
		then("ip", "-n", ns, "link", "set", "lo", "up").err
}

// vethName is the host end of namespace name's veth.
func vethName(name string) string { return "bv" + name[:min(len(name), 6)] + "h" }

// serve starts server ("nsnet" or "dnsmasq") on the network and returns
// the address it answers DNS on and how to stop it.
func (w *world) serve(server string) (netip.Addr, func() error, error) {
	ctx := context.Background()
	if server == "nsnet" {
		if _, _, err := client.Update[model.Subnet](ctx, w.c, client.Subnets, w.subnetID, map[string]any{"enable_dhcp": true}); err != nil {
			return netip.Addr{}, nil, err
		}
		ports, err := client.List[model.Port](ctx, w.c, client.Ports, map[string][]string{"device_owner": {model.DeviceOwnerDHCP}})
		if err != nil || len(ports) != 1 {
			return netip.Addr{}, nil, fmt.Errorf("DHCP port: %v %v", ports, err)
		}
		stop := func() error {
			_, _, err := client.Update[model.Subnet](ctx, w.c, client.Subnets, w.subnetID, map[string]any{"enable_dhcp": false})
			return err
		}
		addr := netip.MustParseAddr(ports[0].FixedIPs[0].IPAddress)
		w.serverPid = w.daemon.Pid()
		return addr, stop, w.awaitDNS(addr)
	}
	if err := w.plug("dnsmasq", dnsmasqAddr); err != nil {
		return netip.Addr{}, nil, err
	}
	var hosts bytes.Buffer
	for _, in := range w.instances {
		fmt.Fprintf(&hosts, "%s,%s,%s\n", in.mac, in.ip, in.name)
	}
	hostsFile := filepath.Join(w.dir, "dhcp-hosts")
	if err := os.WriteFile(hostsFile, hosts.Bytes(), 0o644); err != nil {
		return netip.Addr{}, nil, err
	}
	// Neutron's dnsmasq options, as far as they matter here: static
	// leases only, authoritative, the domain, names of the hosts.
	cmd := exec.Command("ip", "netns", "exec", w.prefix+"dnsmasq", "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null",
		"--no-hosts", "--no-resolv", "--bind-interfaces", "--interface=bv0", "--except-interface=lo",
		"--dhcp-range=set:bench,10.60.0.0,static,255.255.0.0,24h", "--dhcp-hostsfile="+hostsFile, "--dhcp-authoritative",
		"--dhcp-lease-max=16777216", "--dhcp-leasefile="+filepath.Join(w.dir, "dnsmasq.leases"), "--domain="+domain,
		"--host-record="+w.instances[0].name+"."+domain+","+w.instances[0].ip,
		"--user=root", "--group=root", "--pid-file", "--log-facility=/dev/null")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return netip.Addr{}, nil, err
	}
	w.serverPid = cmd.Process.Pid // ip netns exec execs dnsmasq
	stop := func() error {
		cmd.Process.Kill()
		cmd.Wait()
		os.Remove(filepath.Join(w.dir, "dnsmasq.leases"))
		// The kernel destroys a deleted namespace's veths later: delete
		// the pair now, so that the next round can make it again.
		return command("ip", "-n", w.prefix+"host", "link", "del", vethName("dnsmasq")).
			then("ip", "netns", "delete", w.prefix+"dnsmasq").err
	}
	addr := netip.MustParseAddr(dnsmasqAddr)
	if err := w.awaitDNS(addr); err != nil {
		return netip.Addr{}, nil, errors.Join(fmt.Errorf("%w\n%s", err, out.String()), stop())
	}
	return addr, stop, nil
}

// awaitDNS waits until addr answers the benchmark's name from the client.
func (w *world) awaitDNS(addr netip.Addr) error {
	// The server's address may have had another MAC in the previous
	// round (a new DHCP port, a new veth): forget it.
	if err := command("ip", "-n", w.prefix+"client", "neigh", "flush", "all").err; err != nil {
		return err
	}
	var last error
	for start := time.Now(); time.Since(start) < 10*time.Second; time.Sleep(50 * time.Millisecond) {
		rate, err := w.dnsRate(addr, 100*time.Millisecond, 1)
		if err == nil && rate > 0 {
			return nil
		}
		last = err
	}
	return fmt.Errorf("DNS at %s does not answer: %v", addr, last)
}

// clients is what one start of every instance's udhcpc gave.
type clients struct {
	bound int
	// took is the time until the last client was bound (or gave up).
	took time.Duration
	// resent counts DISCOVERs and REQUESTs sent again: each is a message
	// or its answer lost (or late beyond udhcpc's one-second timeout).
	resent int
	// drops are the server namespace's UDP receive errors (a full socket
	// buffer) and the machine's softnet backlog drops during the start.
	sockDrops, softnetDrops int64
	// cpu is the server process's CPU time while the clients start.
	cpu time.Duration
	// exchanges are the server's times from a request's arrival to its
	// reply's departure, sorted.
	exchanges []time.Duration
	// cpuPerQuery is the server process's CPU time per query answered
	// under dnsperf's load.
	cpuPerQuery time.Duration
}

// timeClients starts udhcpc in every instance at once, with busy
// goroutines spinning meanwhile, and returns when every one is bound or
// has given up. udhcpc runs with a script that does nothing, so no
// address is configured and every round starts alike.
func (w *world) timeClients(serverNS string, busy int) (clients, error) {
	var c clients
	sock0, err := udpRcvbufErrors(serverNS)
	if err != nil {
		return c, err
	}
	soft0 := softnetDrops()
	watch, err := watchTurnaround(serverNS)
	if err != nil {
		return c, fmt.Errorf("watch the server: %w", err)
	}
	cpu0 := processCPU(w.serverPid)
	stopBusy := spin(busy)
	var mu sync.Mutex
	var wg sync.WaitGroup
	var failed []string
	start := time.Now()
	for _, in := range w.instances {
		wg.Go(func() {
			out, err := exec.Command("nsenter", "--net="+netns.Path(in.netns), "udhcpc", "-i", "eth0", "-f", "-q", "-n",
				"-t", "30", "-T", "1", "-A", "1", "-s", "/bin/true").CombinedOutput()
			took := time.Since(start)
			text := string(out)
			mu.Lock()
			defer mu.Unlock()
			c.took = max(c.took, took)
			c.resent += max(0, strings.Count(text, "broadcasting discover")-1) + max(0, strings.Count(text, "broadcasting select")-1)
			if err == nil && strings.Contains(text, "lease of "+in.ip+" obtained") {
				c.bound++
			} else if len(failed) < 3 {
				failed = append(failed, fmt.Sprintf("udhcpc in %s: %v\n%s", in.name, err, out))
			}
		})
	}
	wg.Wait()
	stopBusy()
	c.cpu = processCPU(w.serverPid) - cpu0
	if c.exchanges = watch.stop(); len(c.exchanges) == 0 && c.bound > 0 {
		return c, errors.New("no exchange seen at the server's interfaces")
	}
	sock1, err := udpRcvbufErrors(serverNS)
	if err != nil {
		return c, err
	}
	c.sockDrops, c.softnetDrops = sock1-sock0, softnetDrops()-soft0
	for _, f := range failed {
		log.Print(f)
	}
	return c, nil
}

// timeStarts is the time to run nsenter /bin/true in every instance at
// once, with the busy loops: what starting the clients costs, whatever
// the server.
func (w *world) timeStarts(busy int) (time.Duration, error) {
	stopBusy := spin(busy)
	defer stopBusy()
	var wg sync.WaitGroup
	errs := make([]error, len(w.instances))
	start := time.Now()
	for i, in := range w.instances {
		wg.Go(func() {
			if out, err := exec.Command("nsenter", "--net="+netns.Path(in.netns), "/bin/true").CombinedOutput(); err != nil {
				errs[i] = fmt.Errorf("nsenter in %s: %v\n%s", in.name, err, out)
			}
		})
	}
	wg.Wait()
	return time.Since(start), errors.Join(errs...)
}

// spin keeps n shell loops busy until the returned function is called:
// the busy machine the clients start on. Processes of their own, so that
// they compete with the servers as other jobs of the machine would.
func spin(n int) (stop func()) {
	var cmds []*exec.Cmd
	for range n {
		cmd := exec.Command("sh", "-c", "while :; do :; done")
		if err := cmd.Start(); err != nil {
			log.Printf("busy loop: %v", err)
			continue
		}
		cmds = append(cmds, cmd)
	}
	return func() {
		for _, cmd := range cmds {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}
}

// udpRcvbufErrors is UDP's RcvbufErrors counter in namespace ns: datagrams
// dropped because a socket's receive buffer was full.
func udpRcvbufErrors(ns string) (int64, error) {
	var v int64
	err := netns.DoNamed(ns, func() error {
		// thread-self: the namespace of this thread, which DoNamed
		// switched; /proc/self/net is the process's.
		b, err := os.ReadFile("/proc/thread-self/net/snmp")
		if err != nil {
			return err
		}
		v, err = snmpField(string(b), "Udp:", "RcvbufErrors")
		return err
	})
	return v, err
}

// snmpField reads field of the table prefix in /proc/net/snmp: a line of
// names followed by a line of values.
func snmpField(snmp, prefix, field string) (int64, error) {
	var names []string
	for line := range strings.Lines(snmp) {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != prefix {
			continue
		}
		if names == nil {
			names = f
			continue
		}
		if i := slices.Index(names, field); i > 0 && i < len(f) {
			return strconv.ParseInt(f[i], 10, 64)
		}
	}
	return 0, fmt.Errorf("no %s %s in /proc/net/snmp", prefix, field)
}

// softnetDrops is the machine's packets dropped at a full input backlog
// (second column of /proc/net/softnet_stat, summed over CPUs): the
// machine's netdev_max_backlog, not the benchmark's to change.
func softnetDrops() int64 {
	b, err := os.ReadFile("/proc/net/softnet_stat")
	if err != nil {
		return 0
	}
	var sum int64
	for line := range strings.Lines(string(b)) {
		if f := strings.Fields(line); len(f) > 1 {
			v, _ := strconv.ParseInt(f[1], 16, 64)
			sum += v
		}
	}
	return sum
}

// dnsRate sends A queries for the first instance's name to addr from the
// client namespace, workers at a time, for d, and returns correct answers
// per second.
func (w *world) dnsRate(addr netip.Addr, d time.Duration, workers int) (float64, error) {
	conns := make([]*dns.Conn, workers)
	err := netns.DoNamed(w.prefix+"client", func() error {
		for i := range conns {
			c, err := net.Dial("udp", netip.AddrPortFrom(addr, 53).String())
			if err != nil {
				return err
			}
			conns[i] = &dns.Conn{Conn: c}
		}
		return nil
	})
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	if err != nil {
		return 0, err
	}
	name, want := dns.Fqdn(w.instances[0].name+"."+domain), net.ParseIP(w.instances[0].ip)
	var answered atomic.Int64
	var firstErr atomic.Value
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Go(func() {
			q := new(dns.Msg).SetQuestion(name, dns.TypeA)
			for n := uint16(0); time.Now().Before(deadline); n++ {
				q.Id = uint16(i)<<10 | n&0x3ff
				c.SetDeadline(time.Now().Add(time.Second))
				if err := c.WriteMsg(q); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				r, err := c.ReadMsg()
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				if r.Id == q.Id && len(r.Answer) == 1 {
					if a, ok := r.Answer[0].(*dns.A); ok && a.A.Equal(want) {
						answered.Add(1)
					}
				}
			}
		})
	}
	wg.Wait()
	if answered.Load() == 0 {
		if err, _ := firstErr.Load().(error); err != nil {
			return 0, err
		}
		return 0, fmt.Errorf("no correct answer from %s", addr)
	}
	return float64(answered.Load()) / d.Seconds(), nil
}

// teardown deletes what the daemon built through its API, stops it, and
// removes every namespace under the prefix; what nsnet left behind is an
// error.
func (w *world) teardown() error {
	if w.daemon != nil {
		ctx := context.Background()
		if ports, err := client.List[model.Port](ctx, w.c, client.Ports, nil); err == nil {
			for _, p := range ports {
				if p.DeviceOwner != model.DeviceOwnerDHCP {
					w.c.Delete(ctx, client.Ports, p.ID)
				}
			}
		}
		if insts, err := client.List[model.Instance](ctx, w.c, client.Instances, nil); err == nil {
			for _, in := range insts {
				w.c.Delete(ctx, client.Instances, in.ID)
			}
		}
		if w.networkID != "" {
			w.c.Delete(ctx, client.Networks, w.networkID)
		}
		w.daemon.Stop()
		w.daemon = nil
	}
	var left []string
	for _, ns := range lab.RemoveNamespaces(w.prefix) {
		if !slices.Contains([]string{"host", "client", "dnsmasq"}, strings.TrimPrefix(ns, w.prefix)) {
			left = append(left, ns)
		}
	}
	if len(left) > 0 {
		return fmt.Errorf("left behind (removed): namespaces %v", left)
	}
	return nil
}

// step chains commands, stopping at the first failure.
type step struct{ err error }

func command(name string, args ...string) step { return step{}.then(name, args...) }

func (s step) then(name string, args ...string) step {
	if s.err != nil {
		return s
	}
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		return step{fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)}
	}
	return s
}

func us(d time.Duration) string { return fmt.Sprintf("%.1f µs", float64(d)/float64(time.Microsecond)) }

// short is d in µs below a millisecond, else in ms.
func short(d time.Duration) string {
	if d < time.Millisecond {
		return us(d)
	}
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond)) }
