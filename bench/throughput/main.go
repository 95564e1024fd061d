// Command throughput measures TCP throughput through an nsnet router's NAT
// path against a plain veth pair, in the same run, with iperf3 (Debian's
// iperf3 package):
//
//   - baseline: two namespaces joined by one veth pair, iperf3 -c → -s;
//   - snat: an instance behind an nsnet router (its port on a bridge, qr-,
//     forwarding, qg- on the external network's bridge, default SNAT to the
//     gateway address) to an iperf3 server on a namespace plugged into the
//     external network;
//   - fip: the same from an instance with a floating IP (1:1 SNAT to it);
//   - snat-nosg, fip-nosg: the same two paths from instances on the same
//     network whose ports have port security off (no security groups, no
//     anti-spoofing), so that one run says what the firewall costs.
//
// The instances of snat and fip have port security and the default
// security group, as a user's ports get: its egress rules admit what the
// instance (the iperf3 client) opens, and conntrack admits the answers.
//
// The router, networks, instances and floating IP are built by a real nsnet
// daemon through its API, as a user would; the external network's far end
// and the baseline pair are built with ip, as the walkthroughs do. The paths
// are measured in alternation, round after round, so that whatever else the
// machine does falls on all of them alike; the table gives each path's
// median and the median over rounds of its ratio to the baseline of the
// same round.
//
// -diagnose adds paths that say where the cost is: l2 (instance to
// instance on one bridge: no router), snat-brnf0 (bridge netfilter off in
// the host namespace: no conntrack nor inet hooks for bridged packets),
// snat-ext-notrack and snat-notrack (conntrack skipped in the host
// namespace for the external bridge, or for both bridges, by a raw chain of
// the benchmark's own). They change the host namespace's kernel state for
// their measurement only and undo it.
//
// The router's own forwarding cannot take nftables' fast path (a flowtable)
// on a kernel built without CONFIG_NF_FLOW_TABLE: adding one fails with
// ENOENT; see docs/NAT.md.
//
// Run as root from the repository root:
//
//	sudo go run ./bench/throughput [-rounds 5] [-time 3s]
//
// Everything lives in namespaces under two prefixes of its own (one for the
// daemon's, one for the rest) and is removed at the end, also when it
// fails or is interrupted (Ctrl-C).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/nsnet/nsnet/internal/client"
	"github.com/nsnet/nsnet/internal/lab"
	"github.com/nsnet/nsnet/internal/model"
)

const (
	serverAddr = "198.51.100.1" // the iperf3 server on the external network
	port       = "5201"
)

func main() { lab.Main(run) }

func run(ctx context.Context) (err error) {
	rounds := flag.Int("rounds", 5, "rounds; each measures every path once")
	dur := flag.Duration("time", 3*time.Second, "duration of one iperf3 run")
	sideBySide := flag.Bool("side-by-side", true, "also run each path at the same time as the baseline (robust to a busy machine)")
	withoutSG := flag.Bool("without-sg", true, "also measure the paths from instances whose ports have port security off (no security groups)")
	diagnose := flag.Bool("diagnose", false, "also measure where the cost is: instance to instance on one bridge, and the snat path with bridge netfilter off or with conntrack skipped in the host namespace")
	only := flag.String("paths", "", "comma-separated names of the paths to measure (the baseline always is); empty: all")
	flag.Parse()
	if os.Geteuid() != 0 {
		return errors.New("throughput needs root: it creates network namespaces")
	}
	if _, err := exec.LookPath("iperf3"); err != nil {
		return errors.New("iperf3 not found: install Debian's iperf3 package (scripts/deps.sh does)")
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

	b := &bench{daemonPrefix: "btd" + lab.RandomHex(3) + "-", ownPrefix: "btx" + lab.RandomHex(3) + "-", dir: dir}
	defer func() { err = errors.Join(err, b.teardown()) }()
	if err := b.build(ctx, bin); err != nil {
		return err
	}
	paths := []path{
		{"baseline", "plain veth pair, namespace to namespace", b.ownPrefix + "a", "10.99.0.2", nil},
		{"snat", "instance → qr- → router SNAT to the gateway → qg- → external network", b.daemonPrefix + "vm-snat", serverAddr, nil},
		{"fip", "instance with a floating IP → router 1:1 SNAT → external network", b.daemonPrefix + "vm-fip", serverAddr, nil},
	}
	if *withoutSG {
		paths = append(paths,
			path{"snat-nosg", "snat from an instance whose port has port security off", b.daemonPrefix + "vm-snat-nosg", serverAddr, nil},
			path{"fip-nosg", "fip from an instance whose port has port security off", b.daemonPrefix + "vm-fip-nosg", serverAddr, nil})
	}
	if *diagnose {
		paths = append(paths, path{"l2", "instance → bridge → instance on the same network: no router, no NAT",
			b.daemonPrefix + "vm-snat", b.neighbour, nil})
		paths = append(paths, path{"snat-brnf0", "snat, with net.bridge.bridge-nf-call-iptables=0 in the host namespace",
			b.daemonPrefix + "vm-snat", serverAddr, b.bridgeNetfilterOff})
		paths = append(paths, path{"snat-ext-notrack", "snat, with the external network's bridged traffic untracked in the host namespace",
			b.daemonPrefix + "vm-snat", serverAddr, b.untracked(b.publicBridge)})
		paths = append(paths, path{"snat-notrack", "snat, with both bridges' traffic untracked in the host namespace (security groups then admit by their stateless rules only)",
			b.daemonPrefix + "vm-snat", serverAddr, b.untracked(b.publicBridge, b.privateBridge)})
	}
	if *only != "" {
		keep := strings.Split(*only, ",")
		paths = slices.DeleteFunc(paths, func(p path) bool { return p.name != "baseline" && !slices.Contains(keep, p.name) })
		if len(paths) != len(keep)+1 {
			return fmt.Errorf("-paths %s: a name matches no path (see -diagnose and -without-sg)", *only)
		}
	}
	gbps := map[string][]float64{}
	ratios := map[string][]float64{}   // alternating: path/baseline of the same round
	together := map[string][]float64{} // side by side: path/baseline run at the same time
	for r := range *rounds {
		if err := ctx.Err(); err != nil {
			return err
		}
		var line []string
		for _, p := range paths {
			g, err := measure(p, *dur)
			if err != nil {
				return fmt.Errorf("%s: %w", p.name, err)
			}
			gbps[p.name] = append(gbps[p.name], g)
			line = append(line, fmt.Sprintf("%s %.2f", p.name, g))
		}
		for _, p := range paths[1:] {
			ratios[p.name] = append(ratios[p.name], gbps[p.name][r]/gbps["baseline"][r])
			if *sideBySide {
				g, base, err := measurePair(p, paths[0], *dur)
				if err != nil {
					return fmt.Errorf("%s beside baseline: %w", p.name, err)
				}
				together[p.name] = append(together[p.name], g/base)
				line = append(line, fmt.Sprintf("%s|baseline %.2f|%.2f", p.name, g, base))
			}
		}
		log.Printf("round %d/%d: %s Gbit/s", r+1, *rounds, strings.Join(line, ", "))
	}

	fmt.Printf("\nTCP throughput, one iperf3 stream of %v per path, %d rounds.\n", *dur, *rounds)
	fmt.Printf("alternating: the paths one after another in each round; ratio = median over rounds of path/baseline.\n")
	if *sideBySide {
		fmt.Printf("side by side: each path and the baseline at the same time, sharing the CPUs; ratio = median of path/baseline.\n")
	}
	fmt.Printf("(p25–p75 of the per-round ratios in brackets: the machine's noise)\n\n")
	fmt.Printf("%-16s %13s %24s %24s  %s\n", "path", "median Gbit/s", "alternating", "side by side", "what")
	for _, p := range paths {
		alt, side := "1.000", "-"
		if p.name != "baseline" {
			alt = spread(ratios[p.name])
			if *sideBySide {
				side = spread(together[p.name])
			}
		}
		fmt.Printf("%-16s %13.2f %24s %24s  %s\n", p.name, lab.Median(gbps[p.name]), alt, side, p.what)
	}
	fmt.Printf("\ntarget: NAT path ≥ 0.9 of the plain veth pair\n")
	fmt.Printf("reproduce: sudo go run ./bench/throughput -rounds %d -time %v -side-by-side=%v -diagnose=%v -without-sg=%v -paths=%q\n", *rounds, *dur, *sideBySide, *diagnose, *withoutSG, *only)
	return nil
}

// spread is "median [p25–p75]" of fs.
func spread(fs []float64) string {
	s := slices.Clone(fs)
	slices.Sort(s)
	return fmt.Sprintf("%.3f [%.2f–%.2f]", s[len(s)/2], s[len(s)/4], s[len(s)*3/4])
}

// measurePair runs p and base at the same time and returns both
// throughputs: whatever else the machine does then falls on both alike.
func measurePair(p, base path, d time.Duration) (float64, float64, error) {
	if p.setup != nil {
		undo, err := p.setup()
		if err != nil {
			return 0, 0, err
		}
		defer undo()
	}
	var baseG float64
	var baseErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		baseG, baseErr = iperf(base.client, base.server, d)
	}()
	g, err := iperf(p.client, p.server, d)
	<-done
	return g, baseG, errors.Join(err, baseErr)
}

func measure(p path, d time.Duration) (float64, error) {
	if p.setup != nil {
		undo, err := p.setup()
		if err != nil {
			return 0, err
		}
		defer undo()
	}
	return iperf(p.client, p.server, d)
}

// bridgeNetfilterOff stops the host namespace's bridges from handing
// bridged IPv4 packets to netfilter (br_netfilter, when loaded, does by
// default in every namespace), until undone.
func (b *bench) bridgeNetfilterOff() (func() error, error) {
	const key = "net.bridge.bridge-nf-call-iptables"
	host := b.daemonPrefix + "host"
	set := func(v string) error {
		out, err := exec.Command("ip", "netns", "exec", host, "sysctl", "-qw", key+"="+v).CombinedOutput()
		if err != nil {
			return fmt.Errorf("sysctl %s=%s in %s: %v\n%s", key, v, host, err, out)
		}
		return nil
	}
	out, err := exec.Command("ip", "netns", "exec", host, "sysctl", "-n", key).Output()
	if err != nil {
		return nil, fmt.Errorf("%s in %s (is br_netfilter loaded?): %v", key, host, err)
	}
	was := strings.TrimSpace(string(out))
	return func() error { return set(was) }, set("0")
}

// untracked makes the host namespace's conntrack skip what enters the
// bridges (a raw prerouting chain of the benchmark's own that runs before
// nsnet's zone chain), until undone: what conntrack costs on that path.
func (b *bench) untracked(bridges ...string) func() (func() error, error) {
	return func() (func() error, error) {
		host := b.daemonPrefix + "host"
		nft := func(script string) error {
			cmd := exec.Command("ip", "netns", "exec", host, "nft", "-f", "-")
			cmd.Stdin = strings.NewReader(script)
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("nft in %s: %v\n%s\n%s", host, err, script, out)
			}
			return nil
		}
		script := "table inet nsnet_bench {\n chain raw {\n  type filter hook prerouting priority raw - 10;\n"
		for _, br := range bridges {
			script += fmt.Sprintf("  iifname %q notrack\n", br)
		}
		script += " }\n}\n"
		if err := nft(script); err != nil {
			return nil, err
		}
		return func() error { return nft("delete table inet nsnet_bench\n") }, nil
	}
}

type path struct {
	name, what     string
	client, server string // the client's namespace, the server's address
	// setup, when set, runs before the path's measurement and returns
	// what undoes it.
	setup func() (undo func() error, err error)
}

// bench is the topology: the daemon, what it built, and the namespaces
// the benchmark made itself.
type bench struct {
	daemonPrefix, ownPrefix, dir string
	daemon                       *lab.Daemon
	c                            *client.Client
	servers                      []*exec.Cmd
	// neighbour is vm-fip's fixed address, on the same network as vm-snat.
	neighbour string
	// publicBridge, privateBridge: the external and the instances' network.
	publicBridge, privateBridge string
}

func (b *bench) build(ctx context.Context, bin string) error {
	var err error
	if b.daemon, err = lab.StartDaemon(bin, b.dir, b.daemonPrefix); err != nil {
		return err
	}
	if b.c, err = client.New(client.Config{Socket: b.daemon.Socket, Wait: time.Minute}); err != nil {
		return err
	}
	public, err := create[model.Network](ctx, b.c, client.Networks, map[string]any{"name": "public", "router:external": true})
	if err != nil {
		return err
	}
	if _, err := create[model.Subnet](ctx, b.c, client.Subnets, map[string]any{"network_id": public.ID, "cidr": "198.51.100.0/24",
		"ip_version": 4, "gateway_ip": serverAddr, "enable_dhcp": false}); err != nil {
		return err
	}
	private, err := create[model.Network](ctx, b.c, client.Networks, map[string]any{"name": "private"})
	if err != nil {
		return err
	}
	sn, err := create[model.Subnet](ctx, b.c, client.Subnets, map[string]any{"network_id": private.ID, "cidr": "10.0.0.0/24", "ip_version": 4})
	if err != nil {
		return err
	}
	r, err := create[model.Router](ctx, b.c, client.Routers, map[string]any{"name": "r1",
		"external_gateway_info": map[string]any{"network_id": public.ID}})
	if err != nil {
		return err
	}
	if _, _, err := b.c.AddRouterInterface(ctx, r.ID, client.InterfaceRef{SubnetID: sn.ID}); err != nil {
		return err
	}
	ports := map[string]model.Port{}
	b.publicBridge, b.privateBridge = model.BridgeName(public.ID), model.BridgeName(private.ID)
	for _, vm := range []string{"vm-snat", "vm-fip", "vm-snat-nosg", "vm-fip-nosg"} {
		inst, err := create[model.Instance](ctx, b.c, client.Instances, map[string]any{"name": vm})
		if err != nil {
			return err
		}
		port := map[string]any{"network_id": private.ID, "device_id": inst.ID}
		if strings.HasSuffix(vm, "-nosg") {
			port["port_security_enabled"], port["security_groups"] = false, []string{}
		}
		if ports[vm], err = create[model.Port](ctx, b.c, client.Ports, port); err != nil {
			return err
		}
	}
	for _, vm := range []string{"vm-fip", "vm-fip-nosg"} {
		if _, err := create[model.FloatingIP](ctx, b.c, client.FloatingIPs, map[string]any{
			"floating_network_id": public.ID, "port_id": ports[vm].ID}); err != nil {
			return err
		}
	}

	// The external network's far end: a namespace on its bridge, holding
	// the subnet's gateway address, where the iperf3 server runs.
	host, ext, a, z := b.daemonPrefix+"host", b.ownPrefix+"ext", b.ownPrefix+"a", b.ownPrefix+"z"
	script := []string{
		"ip netns add " + ext,
		fmt.Sprintf("ip -n %s link add %sext type veth peer name eth0 netns %s", host, b.ownPrefix, ext),
		fmt.Sprintf("ip -n %s link set %sext master %s up", host, b.ownPrefix, model.BridgeName(public.ID)),
		fmt.Sprintf("ip -n %s addr add %s/24 dev eth0", ext, serverAddr),
		fmt.Sprintf("ip -n %s link set eth0 up", ext),
		fmt.Sprintf("ip -n %s link set lo up", ext),
		// The baseline: two namespaces, one veth pair.
		"ip netns add " + a,
		"ip netns add " + z,
		fmt.Sprintf("ip -n %s link add eth0 type veth peer name eth0 netns %s", a, z),
		fmt.Sprintf("ip -n %s addr add 10.99.0.1/24 dev eth0", a),
		fmt.Sprintf("ip -n %s addr add 10.99.0.2/24 dev eth0", z),
		fmt.Sprintf("ip -n %s link set eth0 up", a),
		fmt.Sprintf("ip -n %s link set eth0 up", z),
		fmt.Sprintf("ip -n %s link set lo up", a),
		fmt.Sprintf("ip -n %s link set lo up", z),
	}
	for _, line := range script {
		if out, err := exec.Command("sh", "-c", line).CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %v\n%s", line, err, out)
		}
	}
	b.neighbour = ports["vm-fip"].FixedIPs[0].IPAddress
	for _, s := range []struct{ ns, addr string }{{ext, serverAddr}, {z, "10.99.0.2"}, {b.daemonPrefix + "vm-fip", b.neighbour}} {
		srv := exec.Command("ip", "netns", "exec", s.ns, "iperf3", "-s", "-B", s.addr, "-p", port)
		if err := srv.Start(); err != nil {
			return err
		}
		b.servers = append(b.servers, srv)
	}
	time.Sleep(300 * time.Millisecond) // the servers' listen
	return nil
}

func create[T any](ctx context.Context, c *client.Client, col client.Collection, attrs map[string]any) (T, error) {
	obj, _, err := client.Create[T](ctx, c, col, attrs)
	if err != nil {
		return obj, fmt.Errorf("create %s: %w", col.Singular(), err)
	}
	return obj, nil
}

// iperf runs one iperf3 client in namespace ns against server and returns
// what the receiver got, in Gbit/s.
func iperf(ns, server string, d time.Duration) (float64, error) {
	out, err := exec.Command("ip", "netns", "exec", ns, "iperf3", "-c", server, "-p", port, "-J",
		"-t", fmt.Sprint(int(d.Seconds()))).Output()
	if err != nil {
		return 0, fmt.Errorf("iperf3 -c %s in %s: %v\n%s", server, ns, err, out)
	}
	var res struct {
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		return 0, fmt.Errorf("iperf3 output: %w", err)
	}
	return res.End.SumReceived.BitsPerSecond / 1e9, nil
}

// teardown stops the servers, deletes what the daemon built through its
// API, stops it, and removes every namespace under both prefixes; what
// nsnet left behind is an error.
func (b *bench) teardown() error {
	for _, s := range b.servers {
		s.Process.Kill()
		s.Wait()
	}
	b.servers = nil
	lab.RemoveNamespaces(b.ownPrefix)
	if b.c != nil {
		deleteAll(b.c)
		b.c = nil
	}
	if b.daemon != nil {
		b.daemon.Stop()
		b.daemon = nil
	}
	var left []string
	for _, ns := range lab.RemoveNamespaces(b.daemonPrefix) {
		if ns != b.daemonPrefix+"host" {
			left = append(left, ns)
		}
	}
	if len(left) > 0 {
		return fmt.Errorf("nsnet left namespaces behind (removed): %v", left)
	}
	return nil
}

// deleteAll deletes, in dependency order, everything the benchmark made
// through the API.
func deleteAll(c *client.Client) {
	ctx := context.Background()
	fips, _ := client.List[model.FloatingIP](ctx, c, client.FloatingIPs, nil)
	for _, f := range fips {
		logErr(c.Delete(ctx, client.FloatingIPs, f.ID))
	}
	routers, _ := client.List[model.Router](ctx, c, client.Routers, nil)
	ports, _ := client.List[model.Port](ctx, c, client.Ports, nil)
	for _, p := range ports {
		if p.DeviceOwner == model.DeviceOwnerRouterInterface {
			_, _, err := c.RemoveRouterInterface(ctx, p.DeviceID, client.InterfaceRef{PortID: p.ID})
			logErr(client.Meta{}, err)
		}
	}
	for _, r := range routers {
		logErr(c.Delete(ctx, client.Routers, r.ID))
	}
	for _, p := range ports {
		// Instance ports; the router's and the floating IP's went with
		// them.
		if !strings.HasPrefix(p.DeviceOwner, "network:") {
			logErr(c.Delete(ctx, client.Ports, p.ID))
		}
	}
	insts, _ := client.List[model.Instance](ctx, c, client.Instances, nil)
	for _, in := range insts {
		logErr(c.Delete(ctx, client.Instances, in.ID))
	}
	// The networks take their DHCP ports and namespaces with them.
	subnets, _ := client.List[model.Subnet](ctx, c, client.Subnets, nil)
	for _, sn := range subnets {
		logErr(c.Delete(ctx, client.Subnets, sn.ID))
	}
	networks, _ := client.List[model.Network](ctx, c, client.Networks, nil)
	for _, n := range networks {
		logErr(c.Delete(ctx, client.Networks, n.ID))
	}
}

func logErr(_ client.Meta, err error) {
	if err != nil {
		log.Print(err)
	}
}
