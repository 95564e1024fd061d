// Command fip measures what floating IPs cost on one router namespace with
// 10, 1,000 and 10,000 of them, for nsnet's nftables layout (internal/nat:
// two hash maps) and, in the same run, for Neutron's iptables layout (a
// DNAT rule per floating IP in PREROUTING and OUTPUT, an SNAT rule per
// floating IP in float-snat) applied with iptables-restore, the way the L3
// agent applies it: the whole nat table at once.
//
//	(a) time to add one more floating IP with internal/nat;
//	(b) time to add one more with iptables-restore (nft and legacy
//	    backends), the rule text prepared beforehand;
//	(c) TCP connections per second from a far host to the newest floating
//	    IP, at the smallest and the largest size, for every layout.
//
// It prints the figures and the ratios the issue sets targets for. Run as
// root from the repository root (iptables from Debian's iptables package):
//
//	sudo go run ./bench/fip [-sizes 10,1000,10000] [-adds 25] [-conn 2s] [-rounds 3]
//
// Everything lives in namespaces the benchmark creates under one prefix
// and removes at the end, also when it fails or is interrupted (Ctrl-C):
// a host namespace with the bridges, an upstream router that routes
// 100.64.0.0/10 (the floating range) to the router under test, a far host
// running the client, an instance running the server.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nsnet/nsnet/internal/dataplane"
	"github.com/nsnet/nsnet/internal/lab"
	"github.com/nsnet/nsnet/internal/nat"
	"github.com/nsnet/nsnet/internal/netns"
)

func main() { lab.Main(run) }

func run(ctx context.Context) (err error) {
	sizesFlag := flag.String("sizes", "10,1000,10000", "numbers of floating IPs (the first and last also get connection rates)")
	adds := flag.Int("adds", 25, "additions timed per size and layout; the median is reported")
	connFor := flag.Duration("conn", time.Second, "duration of one connection-rate run")
	rounds := flag.Int("rounds", 10, "connection-rate pairs per layout (smallest size, then largest); medians are reported")
	legacy := flag.Bool("legacy", true, "also measure iptables-legacy-restore")
	flag.Parse()
	if os.Geteuid() != 0 {
		return errors.New("fip needs root: it creates network namespaces")
	}
	var sizes []int
	for _, s := range strings.Split(*sizesFlag, ",") {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 60000 {
			return fmt.Errorf("bad size %q (1..60000: one /16 of floating IPs)", s)
		}
		sizes = append(sizes, n)
	}
	layouts := []func() layout{
		func() layout { return &nsnetLayout{} },
		func() layout { return &iptablesLayout{restore: "iptables-nft-restore"} },
	}
	if *legacy {
		layouts = append(layouts, func() layout { return &iptablesLayout{restore: "iptables-legacy-restore"} })
	}
	for _, newLayout := range layouts {
		if ipt, ok := newLayout().(*iptablesLayout); ok {
			if _, err := exec.LookPath(ipt.restore); err != nil {
				return fmt.Errorf("%s not found: install Debian's iptables package", ipt.restore)
			}
		}
	}

	w, err := newWorld(fmt.Sprintf("nsbf%d-", os.Getpid()))
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, w.teardown()) }()
	res, err := measure(ctx, w, layouts, sizes, *adds, *connFor, *rounds)
	if err != nil {
		return err
	}
	report(res, layouts, sizes, *adds, *connFor, *rounds, *legacy)
	return nil
}

// results are the medians, by layout name and size.
type results struct {
	add   map[string]map[int]time.Duration
	rate  map[string]map[int]float64
	ratio map[string]float64 // median over pairs of rate(largest)/rate(smallest)
}

func measure(ctx context.Context, w *world, layouts []func() layout, sizes []int, adds int, connFor time.Duration, rounds int) (*results, error) {
	res := &results{add: map[string]map[int]time.Duration{}, rate: map[string]map[int]float64{}, ratio: map[string]float64{}}
	small, large := sizes[0], sizes[len(sizes)-1]
	for _, newLayout := range layouts {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		// Two routers of this layout side by side, each with its own
		// instance: a holds the smallest size, b the largest, so that
		// their connection rates are measured in alternating slices of
		// one run rather than in runs seconds apart.
		a, b := newLayout(), newLayout()
		name := a.name()
		ra, err := w.router(name, 0)
		if err != nil {
			return nil, err
		}
		rb, err := w.router(name, 1)
		if err != nil {
			return nil, err
		}
		if err := errors.Join(a.open(ra), b.open(rb)); err != nil {
			return nil, err
		}
		res.add[name] = map[int]time.Duration{}
		if nl, ok := a.(*nsnetLayout); ok {
			res.add[nl.applyName()] = map[int]time.Duration{}
		}
		for _, n := range sizes {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			if err := a.program(n); err != nil {
				return nil, fmt.Errorf("%s with %d floating IPs: %w", name, n, err)
			}
			var took []time.Duration
			for k := range warmup + adds {
				d, err := a.addOne(n, k)
				if err != nil {
					return nil, fmt.Errorf("%s: add to %d: %w", name, n, err)
				}
				if k >= warmup {
					took = append(took, d)
				}
			}
			res.add[name][n] = lab.Median(took)
			if nl, ok := a.(*nsnetLayout); ok {
				d, err := nl.applyOne(n, adds)
				if err != nil {
					return nil, err
				}
				res.add[nl.applyName()][n] = d
			}
			log.Printf("%s: %d floating IPs, add one: %v", name, n, res.add[name][n])
		}
		if err := errors.Join(a.program(small), b.program(large)); err != nil {
			return nil, err
		}
		rates, err := w.alternate(ctx, fip(0, small-1), fip(1, large-1), connFor, rounds)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		var ratios []float64
		for i := range rates[0] {
			ratios = append(ratios, rates[1][i]/rates[0][i])
		}
		res.rate[name] = map[int]float64{small: lab.Median(rates[0]), large: lab.Median(rates[1])}
		res.ratio[name] = lab.Median(ratios)
		log.Printf("%s: connections/s at %d %.0f, at %d %.0f; ratio per round %.3f", name, small, rates[0], large, rates[1], ratios)
		a.close()
		b.close()
		if err := errors.Join(w.removeRouter(ra), w.removeRouter(rb)); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// warmup additions precede the timed ones, so that the first size
// measured does not pay for cold caches.
const warmup = 3

func report(res *results, newLayouts []func() layout, sizes []int, adds int, connFor time.Duration, rounds int, legacy bool) {
	small, large := sizes[0], sizes[len(sizes)-1]
	var layouts []layout
	names := []string{}
	for _, newLayout := range newLayouts {
		l := newLayout()
		layouts = append(layouts, l)
		names = append(names, l.name())
		if nl, ok := l.(*nsnetLayout); ok {
			names = append(names, nl.applyName())
		}
	}
	fmt.Printf("\nAdd one floating IP to a router that has N (median of %d):\n\n", adds)
	fmt.Printf("%-28s", "N")
	for _, n := range sizes {
		fmt.Printf(" %11d", n)
	}
	fmt.Printf(" %11s\n", fmt.Sprintf("%d/%d", large, small))
	for _, name := range names {
		fmt.Printf("%-28s", name)
		for _, n := range sizes {
			fmt.Printf(" %11s", ms(res.add[name][n]))
		}
		fmt.Printf(" %10.2fx\n", float64(res.add[name][large])/float64(res.add[name][small]))
	}
	ns := res.add["nsnet Update"]
	fmt.Printf("\nnsnet add at %d vs at %d: %.2fx (target ≤ 1.5x)\n", large, small, float64(ns[large])/float64(ns[small]))
	for _, l := range layouts {
		if ipt, ok := l.(*iptablesLayout); ok {
			fmt.Printf("%s vs nsnet at %d: %.0fx faster (target ≥ 20x)\n", ipt.restore, large,
				float64(res.add[ipt.name()][large])/float64(ns[large]))
		}
	}
	fmt.Printf("\nTCP connections per second, far host → newest floating IP: two routers of each layout,\n"+
		"one with %d and one with %d, measured in alternating %v slices; median of %d rounds of %v each,\n"+
		"and the median of the rounds' ratios:\n\n", small, large, slice, rounds, connFor)
	fmt.Printf("%-28s %11d %11d %11s\n", "N", small, large, fmt.Sprintf("%d/%d", large, small))
	for _, l := range layouts {
		r := res.rate[l.name()]
		fmt.Printf("%-28s %11.0f %11.0f %10.3f\n", l.name(), r[small], r[large], res.ratio[l.name()])
	}
	fmt.Printf("\nnsnet connection rate at %d vs %d: %.3f (target ≥ 0.95)\n", large, small, res.ratio["nsnet Update"])
	fmt.Println("(each layout's two routers run side by side; different layouts run one after the other, so\n" +
		"compare rates within a row — across rows they include whatever else the machine did meanwhile)")
	fmt.Printf("\nreproduce: sudo go run ./bench/fip -sizes %s -adds %d -conn %v -rounds %d -legacy=%v\n",
		strings.Trim(strings.Join(strings.Fields(fmt.Sprint(sizes)), ","), "[]"), adds, connFor, rounds, legacy)
}

// fip is the i-th floating IP of router side (0 or 1): 100.64.0.0/16 or
// 100.65.0.0/16 onwards. The newest of a router with n maps to its
// instance; the others to addresses nobody has.
func fip(side, i int) netip.Addr {
	return netip.AddrFrom4([4]byte{100, byte(64 + side), byte(i >> 8), byte(i)})
}

func fixed(i, n int) netip.Addr {
	if i == n-1 {
		return netip.MustParseAddr(vmAddr)
	}
	return netip.AddrFrom4([4]byte{172, 16, byte(i >> 8), byte(i)})
}

// layout is one way of programming a router's floating IPs.
type layout interface {
	name() string
	open(r *routerUT) error
	// program makes the router hold exactly n floating IPs, 0..n-1.
	program(n int) error
	// addOne adds floating IP n+k to a router holding n+k, timed.
	addOne(n, k int) (time.Duration, error)
	close()
}

const (
	gateway = "qg-bench"
	vmAddr  = "10.0.0.5"
)

// nsnetLayout is internal/nat.
type nsnetLayout struct {
	r   *routerUT
	tbl *nat.Table
}

func (*nsnetLayout) name() string      { return "nsnet Update" }
func (*nsnetLayout) applyName() string { return "nsnet Apply (whole spec)" }

func (l *nsnetLayout) open(r *routerUT) (err error) {
	l.r = r
	l.tbl, err = nat.Open(r.ns.Name, nil)
	return err
}

func (l *nsnetLayout) close() { l.tbl.Close() }

func (l *nsnetLayout) spec(n int) nat.Spec {
	r := nat.Router{
		Gateway: gateway, GatewayAddr: l.r.gw, EnableSNAT: true,
		Internal: []nat.Subnet{{Interface: "qr-bench", Prefix: netip.MustParsePrefix("10.0.0.0/24")}},
	}
	r.FloatingIPs = make([]nat.FloatingIP, n)
	for i := range n {
		r.FloatingIPs[i] = nat.FloatingIP{Floating: fip(l.r.side, i), Fixed: fixed(i, n)}
	}
	return r.Spec()
}

func (l *nsnetLayout) program(n int) error {
	_, err := l.tbl.Apply(l.spec(n))
	return err
}

func (l *nsnetLayout) addOne(n, k int) (time.Duration, error) {
	add := nat.Change{Add: nat.Spec{FloatingIPs: []nat.FloatingIP{{Out: gateway, Floating: fip(l.r.side, n+k), Fixed: fixed(n+k, 0)}}}}
	start := time.Now()
	res, err := l.tbl.Update(add)
	took := time.Since(start)
	if err == nil && (res.Added != 2 || res.Read) {
		err = fmt.Errorf("adding one floating IP did %+v", res)
	}
	return took, err
}

// applyOne times Apply of the whole spec with one more floating IP than
// it has, the declarative path, from the spec built beforehand.
func (l *nsnetLayout) applyOne(n, adds int) (time.Duration, error) {
	if err := l.program(n); err != nil {
		return 0, err
	}
	var took []time.Duration
	for k := range adds {
		spec := l.spec(n + k + 1)
		// The new one is the last: keep the instance's mapping where
		// program put it, so that only one floating IP is new.
		spec.FloatingIPs[n-1].Fixed = netip.MustParseAddr(vmAddr)
		spec.FloatingIPs[n+k].Fixed = fixed(n+k, 0)
		start := time.Now()
		res, err := l.tbl.Apply(spec)
		took = append(took, time.Since(start))
		if err != nil {
			return 0, err
		}
		if res.Added != 2 || res.Deleted != 0 {
			return 0, fmt.Errorf("applying one more floating IP did %+v", res)
		}
	}
	return lab.Median(took), nil
}

// iptablesLayout is Neutron's L3 agent's nat table, restored whole.
type iptablesLayout struct {
	restore string
	r       *routerUT
}

func (l *iptablesLayout) name() string { return l.restore }

func (l *iptablesLayout) open(r *routerUT) error { l.r = r; return nil }
func (l *iptablesLayout) close()                 {}

// rules is the nat table the L3 agent writes for a router with n
// floating IPs (chain names as in seed 004's iptables -t nat -S). The
// agent's hairpin rule, which matches a mark set in the mangle table, is
// left out with the mangle table; the agent's iptables-save before each
// restore is not timed. Both only favour the baseline.
func (l *iptablesLayout) rules(n int) []byte {
	var b bytes.Buffer
	b.WriteString("*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n")
	for _, c := range []string{"PREROUTING", "OUTPUT", "POSTROUTING", "float-snat", "snat"} {
		fmt.Fprintf(&b, ":neutron-l3-agent-%s - [0:0]\n", c)
	}
	b.WriteString(":neutron-postrouting-bottom - [0:0]\n")
	b.WriteString("-A PREROUTING -j neutron-l3-agent-PREROUTING\n-A OUTPUT -j neutron-l3-agent-OUTPUT\n")
	b.WriteString("-A POSTROUTING -j neutron-l3-agent-POSTROUTING\n-A POSTROUTING -j neutron-postrouting-bottom\n")
	b.WriteString("-A neutron-postrouting-bottom -j neutron-l3-agent-snat\n")
	b.WriteString("-A neutron-l3-agent-PREROUTING -d 169.254.169.254/32 -i qr-+ -p tcp -m tcp --dport 80 -j REDIRECT --to-ports 9697\n")
	fmt.Fprintf(&b, "-A neutron-l3-agent-POSTROUTING ! -o %s -m conntrack ! --ctstate DNAT -j ACCEPT\n", gateway)
	for i := range n {
		f := fip(l.r.side, i)
		fmt.Fprintf(&b, "-A neutron-l3-agent-PREROUTING -d %s/32 -j DNAT --to-destination %s\n", f, fixed(i, n))
		fmt.Fprintf(&b, "-A neutron-l3-agent-OUTPUT -d %s/32 -j DNAT --to-destination %s\n", f, fixed(i, n))
		fmt.Fprintf(&b, "-A neutron-l3-agent-float-snat -s %s/32 -j SNAT --to-source %s\n", fixed(i, n), f)
	}
	b.WriteString("-A neutron-l3-agent-snat -j neutron-l3-agent-float-snat\n")
	fmt.Fprintf(&b, "-A neutron-l3-agent-snat -o %s -j SNAT --to-source %s\n", gateway, l.r.gw)
	b.WriteString("COMMIT\n")
	return b.Bytes()
}

func (l *iptablesLayout) program(n int) error {
	_, err := l.run(l.rules(n))
	return err
}

func (l *iptablesLayout) addOne(n, k int) (time.Duration, error) {
	// Prepared before the clock starts: the agent's Python would build
	// it too, but only the restore is timed.
	text := l.rules(n + k + 1)
	return l.run(text)
}

// run restores text into the router's namespace and times the command. It
// is started from a thread inside the namespace (a child process starts
// in its parent thread's namespace), so no `ip netns exec` is timed.
func (l *iptablesLayout) run(text []byte) (time.Duration, error) {
	var took time.Duration
	err := netns.DoNamed(l.r.ns.Name, func() error {
		cmd := exec.Command(l.restore)
		cmd.Stdin = bytes.NewReader(text)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		start := time.Now()
		err := cmd.Run()
		took = time.Since(start)
		if err != nil {
			return fmt.Errorf("%s: %v\n%s", l.restore, err, out.String())
		}
		return nil
	})
	return took, err
}

// world is the benchmark's topology: two sides, 0 and 1, each an
// internal network with an instance serving on :80 and room for one
// router, whose gateway (198.51.100.10 or .11) the upstream routes that
// side's floating range to.
type world struct {
	prefix, host string
	hostNS       *dataplane.Namespace
	links        *dataplane.Links
	far          *dataplane.Namespace
	servers      []net.Listener
	open         []*dataplane.Namespace
}

// routerUT is a router under test.
type routerUT struct {
	ns   *dataplane.Namespace
	side int
	gw   netip.Addr
}

func newWorld(prefix string) (w *world, err error) {
	w = &world{prefix: prefix, host: prefix + "host"}
	defer func() {
		if err != nil {
			err = errors.Join(err, w.teardown())
		}
	}()
	if err := netns.Create(w.host); err != nil {
		return nil, err
	}
	if w.hostNS, err = dataplane.OpenNamespace(w.host); err != nil {
		return nil, err
	}
	w.links = dataplane.NewLinks(w.hostNS.Handle)
	w.links.SetNamespace(w.host)
	for _, br := range []string{"ext", "far", "int0", "int1"} {
		if _, err := dataplane.EnsureBridge(w.links, dataplane.BridgeSpec{Name: "nsb-" + br, Alias: dataplane.NetworkAlias(br), MTU: 1500, Up: true}); err != nil {
			return nil, err
		}
	}
	up, err := w.instance("up")
	if err != nil {
		return nil, err
	}
	if err := w.plug(up, "up-ext", "nsb-ext", "eth0", "198.51.100.1/24", nil,
		dataplane.Route{Dst: netip.MustParsePrefix("100.64.0.0/16"), Gw: gatewayOf(0)},
		dataplane.Route{Dst: netip.MustParsePrefix("100.65.0.0/16"), Gw: gatewayOf(1)}); err != nil {
		return nil, err
	}
	if err := w.plug(up, "up-far", "nsb-far", "eth1", "203.0.113.254/24", nil); err != nil {
		return nil, err
	}
	if _, err := dataplane.EnsureSysctls(up, dataplane.HostNATSysctls); err != nil {
		return nil, err
	}
	if w.far, err = w.instance("far"); err != nil {
		return nil, err
	}
	if err := w.plug(w.far, "far", "nsb-far", "eth0", "203.0.113.1/24", nil, defaultVia("203.0.113.254")); err != nil {
		return nil, err
	}
	for side := range 2 {
		vm, err := w.instance(fmt.Sprintf("vm%d", side))
		if err != nil {
			return nil, err
		}
		if err := w.plug(vm, fmt.Sprintf("vm%d", side), fmt.Sprintf("nsb-int%d", side), "eth0", vmAddr+"/24", nil, defaultVia("10.0.0.1")); err != nil {
			return nil, err
		}
		if err := w.serve(vm); err != nil {
			return nil, err
		}
	}
	return w, nil
}

// serve runs the instance's server: it accepts and hangs up at once, so
// that one connection is one SYN through the NAT chains and a handful of
// packets.
func (w *world) serve(vm *dataplane.Namespace) error {
	var ln net.Listener
	err := netns.DoNamed(vm.Name, func() (err error) {
		ln, err = net.Listen("tcp4", ":80")
		return err
	})
	if err != nil {
		return err
	}
	w.servers = append(w.servers, ln)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return nil
}

func gatewayOf(side int) netip.Addr { return netip.AddrFrom4([4]byte{198, 51, 100, byte(10 + side)}) }

func defaultVia(gw string) dataplane.Route {
	return dataplane.Route{Dst: netip.MustParsePrefix("0.0.0.0/0"), Gw: netip.MustParseAddr(gw)}
}

func (w *world) instance(name string) (*dataplane.Namespace, error) {
	ns, _, err := dataplane.EnsureInstanceNetns(w.prefix+name, dataplane.InstanceMarker("i-"+name, w.host))
	if err == nil {
		w.open = append(w.open, ns)
	}
	return ns, err
}

func (w *world) plug(ns *dataplane.Namespace, id, bridge, ifname, addr string, mac net.HardwareAddr, routes ...dataplane.Route) error {
	_, err := dataplane.EnsureVethPort(w.links, ns, dataplane.PortSpec{
		TapName: "tap" + id, Bridge: bridge, Alias: dataplane.PortAlias(id), MTU: 1500, Up: true,
		IfName: ifname, MAC: mac, Addrs: []netip.Prefix{netip.MustParsePrefix(addr)}, Routes: routes,
	})
	return err
}

// router makes the router under test of a side: qr-bench on the side's
// internal network, qg-bench on the external one. A side's routers all
// get the same MACs, so the upstream's and the instance's neighbour
// entries stay right from one layout to the next.
func (w *world) router(layout string, side int) (*routerUT, error) {
	id := fmt.Sprintf("%s-%d", strings.NewReplacer(" ", "-", "(", "", ")", "").Replace(layout), side)
	r, _, err := dataplane.EnsureRouterNetns(w.prefix+"qrouter-"+id, dataplane.RouterMarker(id, w.host))
	if err != nil {
		return nil, err
	}
	w.open = append(w.open, r)
	qrMAC := net.HardwareAddr{0xfa, 0x16, 0x3e, 0, byte(side), 1}
	qgMAC := net.HardwareAddr{0xfa, 0x16, 0x3e, 0, byte(side), 2}
	if err := w.plug(r, fmt.Sprintf("qr%d", side), fmt.Sprintf("nsb-int%d", side), "qr-bench", "10.0.0.1/24", qrMAC); err != nil {
		return nil, err
	}
	if err := w.plug(r, fmt.Sprintf("qg%d", side), "nsb-ext", gateway, gatewayOf(side).String()+"/24", qgMAC, defaultVia("198.51.100.1")); err != nil {
		return nil, err
	}
	return &routerUT{ns: r, side: side, gw: gatewayOf(side)}, nil
}

func (w *world) removeRouter(r *routerUT) error {
	marker, err := dataplane.ReadMarker(r.ns.Name)
	if err != nil {
		return err
	}
	w.open = slices.DeleteFunc(w.open, func(ns *dataplane.Namespace) bool { return ns == r.ns })
	r.ns.Close()
	return dataplane.DeleteRouterNetns(r.ns.Name, marker, w.links)
}

// slice is how long the client stays on one target before switching.
const slice = 50 * time.Millisecond

// alternate opens TCP connections from the far host, one after another,
// to a:80 for a slice, then to b:80 for a slice, and so on, and returns
// per round (connFor on each target) the connections per second that
// completed to each. Every socket is made on a thread inside the far
// host's namespace. The client resets its end, so the routers' conntrack
// does not fill with TIME_WAIT entries.
func (w *world) alternate(ctx context.Context, a, b netip.Addr, connFor time.Duration, rounds int) ([2][]float64, error) {
	var rates [2][]float64
	targets := [2]string{netip.AddrPortFrom(a, 80).String(), netip.AddrPortFrom(b, 80).String()}
	one := func(target string) error {
		c, err := net.DialTimeout("tcp4", target, time.Second)
		if err != nil {
			return err
		}
		c.(*net.TCPConn).SetLinger(0)
		io.Copy(io.Discard, c)
		return c.Close()
	}
	err := netns.DoNamed(w.far.Name, func() error {
		for _, t := range targets {
			for warm := time.Now().Add(200 * time.Millisecond); time.Now().Before(warm); {
				if err := one(t); err != nil {
					return fmt.Errorf("connect to %s: %w", t, err)
				}
			}
		}
		for range rounds {
			if err := ctx.Err(); err != nil {
				return err
			}
			var n [2]int
			var took [2]time.Duration
			for took[0] < connFor || took[1] < connFor {
				for i, t := range targets {
					start := time.Now()
					for time.Since(start) < slice {
						if err := one(t); err != nil {
							return fmt.Errorf("connect to %s: %w", t, err)
						}
						n[i]++
					}
					took[i] += time.Since(start)
				}
			}
			for i := range targets {
				rates[i] = append(rates[i], float64(n[i])/took[i].Seconds())
			}
		}
		return nil
	})
	return rates, err
}

// teardown removes everything under the prefix, through the same delete
// functions nsnet uses; anything that survived them is removed and is an
// error.
func (w *world) teardown() error {
	var errs []error
	for _, ln := range w.servers {
		ln.Close()
	}
	w.servers = nil
	for _, ns := range w.open {
		ns.Close()
	}
	w.open = nil
	if w.links != nil {
		for _, list := range []func(string) (map[string]string, error){dataplane.ListRouterNamespaces, dataplane.ListInstanceNamespaces} {
			found, _ := list(w.prefix)
			for name, m := range found {
				errs = append(errs, dataplane.DeleteInstanceNetns(name, m, w.links))
			}
		}
		w.hostNS.Close()
		w.links = nil
	}
	errs = append(errs, netns.Delete(w.host))
	if left := lab.RemoveNamespaces(w.prefix); len(left) > 0 {
		errs = append(errs, fmt.Errorf("left behind (removed): namespaces %v", left))
	}
	return errors.Join(errs...)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.3fms", float64(d.Microseconds())/1000) }
