// Command secgroups measures what security groups cost on one host with
// 1,000 ports of 20 rules each, for nsnet's nftables firewall
// (internal/firewall: anti-spoofing and port tags in a bridge table, rules
// as elements of one set in an inet table) and, in the same run, for
// Neutron's iptables firewall layout (a jump per port and direction in
// FORWARD and sg-chain, per-port chains of rules, an ipset per remote
// group, the whole filter table applied with iptables-restore, as
// Neutron's IptablesManager does).
//
//	(a) time to program the 1,000 ports from empty;
//	(b) time to add one more rule to one port;
//	(c) new TCP connections per second through a port, with 20 rules in
//	    total on the host and with 20,000, measured in alternating slices
//	    of one run on two hosts side by side.
//
// It prints the figures and the ratios the issue sets targets for. Run as
// root from the repository root (iptables and ipset from Debian):
//
//	sudo go run ./bench/secgroups [-ports 1000] [-adds 15] [-conn 1s] [-rounds 5] [-legacy]
//
// Everything lives in namespaces the benchmark creates under one prefix
// and removes at the end, also when it fails or is interrupted (Ctrl-C):
// per host, a bridge with a client and a server instance plugged in; the
// other 998 ports exist only as rules (neither layout needs their links to
// exist).
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
	"strings"
	"time"

	"github.com/nsnet/nsnet/internal/dataplane"
	"github.com/nsnet/nsnet/internal/firewall"
	"github.com/nsnet/nsnet/internal/lab"
	"github.com/nsnet/nsnet/internal/netns"
)

const (
	rulesPerPort = 20
	serverAddr   = "10.1.0.2"
	clientAddr   = "10.1.200.1"
	serverTap    = "tap0"
	clientTap    = "tapclient"
	adminMembers = 10
)

var (
	serverMAC = net.HardwareAddr{0xfa, 0x16, 0x3e, 0, 0, 2}
	clientMAC = net.HardwareAddr{0xfa, 0x16, 0x3e, 0, 0xc8, 1}
)

func main() { lab.Main(run) }

func run(ctx context.Context) (err error) {
	nPorts := flag.Int("ports", 1000, "ports on the large host")
	adds := flag.Int("adds", 15, "rule additions timed per layout; the median is reported")
	connFor := flag.Duration("conn", time.Second, "duration of one connection-rate run")
	rounds := flag.Int("rounds", 5, "connection-rate pairs per layout; medians are reported")
	legacy := flag.Bool("legacy", false, "also measure iptables-legacy-restore")
	flag.Parse()
	if os.Geteuid() != 0 {
		return errors.New("secgroups needs root: it creates network namespaces")
	}
	if *nPorts < 2 || *nPorts > 60000 {
		return errors.New("-ports: 2..60000")
	}
	layouts := []layout{&nsnetLayout{}, &iptablesLayout{restore: "iptables-nft-restore"}}
	if *legacy {
		layouts = append(layouts, &iptablesLayout{restore: "iptables-legacy-restore"})
	}
	for _, tool := range []string{"iptables-nft-restore", "ipset"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found: install Debian's iptables and ipset packages (scripts/deps.sh)", tool)
		}
	}
	prefix := fmt.Sprintf("nsbs%d-", os.Getpid())
	defer func() {
		if left := lab.RemoveNamespaces(prefix); len(left) > 0 {
			err = errors.Join(err, fmt.Errorf("left behind (removed): namespaces %v", left))
		}
	}()
	small, err := newHost(prefix + "a")
	if err != nil {
		return err
	}
	defer small.teardown()
	large, err := newHost(prefix + "b")
	if err != nil {
		return err
	}
	defer large.teardown()

	type result struct {
		program, addOne      time.Duration
		rateSmall, rateLarge float64
		ratio                float64
	}
	results := map[string]result{}
	for _, l := range layouts {
		if err := ctx.Err(); err != nil {
			return err
		}
		var r result
		smallPorts, largePorts := ports(2), ports(*nPorts)
		var err error
		if r.program, err = l.program(large, largePorts); err != nil {
			return fmt.Errorf("%s: program %d ports: %w", l.name(), *nPorts, err)
		}
		var took []time.Duration
		for k := range 3 + *adds {
			extra := slices.Clone(largePorts)
			extra[len(extra)/2] = withExtraRules(extra[len(extra)/2], k+1)
			d, err := l.update(large, extra)
			if err != nil {
				return fmt.Errorf("%s: add a rule: %w", l.name(), err)
			}
			if k >= 3 {
				took = append(took, d)
			}
		}
		r.addOne = lab.Median(took)
		if _, err := l.update(large, largePorts); err != nil {
			return err
		}
		if _, err := l.program(small, smallPorts); err != nil {
			return fmt.Errorf("%s: program 2 ports: %w", l.name(), err)
		}
		rates, err := alternate(ctx, small, large, *connFor, *rounds)
		if err != nil {
			return fmt.Errorf("%s: %w", l.name(), err)
		}
		var ratios []float64
		for i := range rates[0] {
			ratios = append(ratios, rates[1][i]/rates[0][i])
		}
		r.rateSmall, r.rateLarge, r.ratio = lab.Median(rates[0]), lab.Median(rates[1]), lab.Median(ratios)
		log.Printf("%s: program %v, add one rule %v, conn/s %.0f (20 rules) vs %.0f (%d rules), per round %.3f",
			l.name(), r.program, r.addOne, r.rateSmall, r.rateLarge, *nPorts*rulesPerPort, ratios)
		results[l.name()] = r
		if err := errors.Join(l.clear(small), l.clear(large)); err != nil {
			return err
		}
	}

	fmt.Printf("\nsecurity groups: %d ports × %d rules (%d rules; %d-member remote group), conn runs %v × %d rounds\n\n",
		*nPorts, rulesPerPort, *nPorts*rulesPerPort, adminMembers, *connFor, *rounds)
	fmt.Printf("%-24s %14s %14s %16s %16s %10s\n", "layout", "program all", "add one rule", "conn/s 20 rules", fmt.Sprintf("conn/s %d", *nPorts*rulesPerPort), "ratio")
	for _, l := range layouts {
		r := results[l.name()]
		fmt.Printf("%-24s %14s %14s %16.0f %16.0f %10.3f\n", l.name(), ms(r.program), ms(r.addOne), r.rateSmall, r.rateLarge, r.ratio)
	}
	nft := results[layouts[0].name()]
	fmt.Println()
	for _, l := range layouts[1:] {
		r := results[l.name()]
		fmt.Printf("add one rule: %s / nsnet = %.1f× (target ≥ 20×)\n", l.name(), float64(r.addOne)/float64(nft.addOne))
		fmt.Printf("program all:  %s / nsnet = %.1f×\n", l.name(), float64(r.program)/float64(nft.program))
	}
	fmt.Printf("nsnet conn/s with %d rules / with 20: %.3f (target ≥ 0.95)\n", *nPorts*rulesPerPort, nft.ratio)
	for _, l := range layouts[1:] {
		fmt.Printf("%s conn/s with %d rules / with 20: %.3f\n", l.name(), *nPorts*rulesPerPort, results[l.name()].ratio)
	}
	return nil
}

// benchPort is one port of the benchmark and its rules, in terms both
// layouts can render.
type benchPort struct {
	index int
	tap   string
	mac   net.HardwareAddr
	addr  netip.Addr
	rules []firewall.Rule
	// remoteGroup: the port also allows TCP 22 from the admins group.
	remoteGroup bool
}

// ports are the server, the client and n-2 more ports. The server and
// the others have 20 rules: TCP 80 from 10.1.0.0/16, TCP 1001-1016 each
// from its own /24, ICMP, egress anywhere, and TCP 22 from the members of
// a remote group; the client allows egress anywhere.
func ports(n int) []benchPort {
	out := []benchPort{}
	for i := range n - 1 {
		p := benchPort{index: i, tap: fmt.Sprintf("tap%d", i), addr: portAddr(i), remoteGroup: true}
		p.mac = net.HardwareAddr{0xfa, 0x16, 0x3e, 0, byte((i + 2) >> 8), byte(i + 2)}
		p.rules = append(p.rules,
			firewall.Rule{Direction: firewall.Ingress, ProtoMin: 6, ProtoMax: 6, PortMin: 80, PortMax: 80, Remote: netip.MustParsePrefix("10.1.0.0/16")},
			firewall.Rule{Direction: firewall.Ingress, ProtoMin: 1, ProtoMax: 1, PortMax: 65535, Remote: netip.MustParsePrefix("0.0.0.0/0")},
			firewall.Rule{Direction: firewall.Egress, ProtoMax: 255, PortMax: 65535, Remote: netip.MustParsePrefix("0.0.0.0/0")},
		)
		for j := range rulesPerPort - 4 {
			p.rules = append(p.rules, firewall.Rule{Direction: firewall.Ingress, ProtoMin: 6, ProtoMax: 6,
				PortMin: uint16(1001 + j), PortMax: uint16(1001 + j), Remote: netip.PrefixFrom(netip.AddrFrom4([4]byte{172, 16, byte(j), 0}), 24)})
		}
		out = append(out, p)
	}
	out[0].mac = serverMAC
	out = append(out, benchPort{index: n - 1, tap: clientTap, mac: clientMAC, addr: netip.MustParseAddr(clientAddr),
		rules: []firewall.Rule{{Direction: firewall.Egress, ProtoMax: 255, PortMax: 65535, Remote: netip.MustParsePrefix("0.0.0.0/0")}}})
	return out
}

// withExtraRules gives p k more ingress rules (TCP 2001.. from 192.0.2.0/24).
func withExtraRules(p benchPort, k int) benchPort {
	p.rules = slices.Clone(p.rules)
	for j := range k {
		p.rules = append(p.rules, firewall.Rule{Direction: firewall.Ingress, ProtoMin: 6, ProtoMax: 6,
			PortMin: uint16(2001 + j), PortMax: uint16(2001 + j), Remote: netip.MustParsePrefix("192.0.2.0/24")})
	}
	return p
}

func portAddr(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, 1, byte((i + 2) >> 8), byte(i + 2)})
}

// admins are the members of the remote group.
func admins() []netip.Addr {
	var out []netip.Addr
	for i := range adminMembers {
		out = append(out, netip.AddrFrom4([4]byte{10, 2, 0, byte(i + 1)}))
	}
	return out
}

// layout is one way of programming the ports' security groups on a host.
type layout interface {
	name() string
	program(h *host, ps []benchPort) (time.Duration, error) // from empty
	update(h *host, ps []benchPort) (time.Duration, error)  // after program
	clear(h *host) error
}

type nsnetLayout struct {
	fws map[string]*firewall.Firewall
}

func (*nsnetLayout) name() string { return "nsnet (nftables)" }

func (*nsnetLayout) spec(ps []benchPort) firewall.Spec {
	var spec firewall.Spec
	for _, p := range ps {
		fp := firewall.Port{Interface: p.tap, MAC: p.mac, Addresses: []netip.Addr{p.addr}, Rules: slices.Clone(p.rules)}
		if p.remoteGroup {
			for _, a := range admins() {
				fp.Rules = append(fp.Rules, firewall.Rule{Direction: firewall.Ingress, ProtoMin: 6, ProtoMax: 6,
					PortMin: 22, PortMax: 22, Remote: netip.PrefixFrom(a, 32)})
			}
		}
		spec.Ports = append(spec.Ports, fp)
	}
	return spec
}

func (l *nsnetLayout) program(h *host, ps []benchPort) (time.Duration, error) {
	if l.fws == nil {
		l.fws = map[string]*firewall.Firewall{}
	}
	spec := l.spec(ps) // built before the clock starts, as the agent's desired state is
	start := time.Now()
	fw, err := firewall.Open(h.name, nil)
	if err != nil {
		return 0, err
	}
	l.fws[h.name] = fw
	_, err = fw.Apply(spec)
	return time.Since(start), err
}

func (l *nsnetLayout) update(h *host, ps []benchPort) (time.Duration, error) {
	spec := l.spec(ps)
	start := time.Now()
	_, err := l.fws[h.name].Apply(spec)
	return time.Since(start), err
}

func (l *nsnetLayout) clear(h *host) error {
	fw := l.fws[h.name]
	if fw == nil {
		return nil
	}
	delete(l.fws, h.name)
	return errors.Join(fw.Delete(), fw.Close())
}

// iptablesLayout is Neutron's iptables firewall driver (the hybrid and
// Linux bridge one): chain names neutron-linuxbri-*, ten characters of
// the port's name in each per-port chain, as in seed 004's listing.
type iptablesLayout struct {
	restore string
}

func (l *iptablesLayout) name() string { return l.restore }

const chainPrefix = "neutron-linuxbri-"

func rule(r firewall.Rule) string {
	var b strings.Builder
	if r.Remote.Bits() > 0 {
		fmt.Fprintf(&b, " -s %s", r.Remote)
	}
	switch {
	case r.ProtoMin == 6:
		fmt.Fprintf(&b, " -p tcp -m tcp --dport %d", r.PortMin)
		if r.PortMax != r.PortMin {
			fmt.Fprintf(&b, ":%d", r.PortMax)
		}
	case r.ProtoMin == 1:
		b.WriteString(" -p icmp")
	}
	return b.String()
}

// text is the filter table Neutron's agent writes for ps (plus the
// ipset of the remote group, restored first).
func (l *iptablesLayout) text(ps []benchPort) []byte {
	var b bytes.Buffer
	b.WriteString("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n")
	chains := []string{"FORWARD", "sg-chain", "sg-fallback"}
	for _, p := range ps {
		id := p.tap[:min(len(p.tap), 10)]
		chains = append(chains, "i"+id, "o"+id, "s"+id)
	}
	for _, c := range chains {
		fmt.Fprintf(&b, ":%s%s - [0:0]\n", chainPrefix, c)
	}
	fmt.Fprintf(&b, "-A FORWARD -j %sFORWARD\n", chainPrefix)
	for _, p := range ps {
		fmt.Fprintf(&b, "-A %sFORWARD -m physdev --physdev-out %s --physdev-is-bridged -j %ssg-chain\n", chainPrefix, p.tap, chainPrefix)
		fmt.Fprintf(&b, "-A %sFORWARD -m physdev --physdev-in %s --physdev-is-bridged -j %ssg-chain\n", chainPrefix, p.tap, chainPrefix)
	}
	for _, p := range ps {
		id := p.tap[:min(len(p.tap), 10)]
		fmt.Fprintf(&b, "-A %ssg-chain -m physdev --physdev-out %s --physdev-is-bridged -j %si%s\n", chainPrefix, p.tap, chainPrefix, id)
		fmt.Fprintf(&b, "-A %ssg-chain -m physdev --physdev-in %s --physdev-is-bridged -j %so%s\n", chainPrefix, p.tap, chainPrefix, id)
	}
	fmt.Fprintf(&b, "-A %ssg-chain -j ACCEPT\n", chainPrefix)
	fmt.Fprintf(&b, "-A %ssg-fallback -j DROP\n", chainPrefix)
	for _, p := range ps {
		id := p.tap[:min(len(p.tap), 10)]
		in, out, src := chainPrefix+"i"+id, chainPrefix+"o"+id, chainPrefix+"s"+id
		fmt.Fprintf(&b, "-A %s -m state --state RELATED,ESTABLISHED -j RETURN\n", in)
		fmt.Fprintf(&b, "-A %s -d %s/32 -p udp -m udp --sport 67 --dport 68 -j RETURN\n", in, p.addr)
		for _, r := range p.rules {
			if r.Direction == firewall.Ingress {
				fmt.Fprintf(&b, "-A %s%s -j RETURN\n", in, rule(r))
			}
		}
		if p.remoteGroup {
			fmt.Fprintf(&b, "-A %s -p tcp -m tcp --dport 22 -m set --match-set NIPv4admins src -j RETURN\n", in)
		}
		fmt.Fprintf(&b, "-A %s -m state --state INVALID -j DROP\n", in)
		fmt.Fprintf(&b, "-A %s -j %ssg-fallback\n", in, chainPrefix)
		fmt.Fprintf(&b, "-A %s -s 0.0.0.0/32 -d 255.255.255.255/32 -p udp -m udp --sport 68 --dport 67 -j RETURN\n", out)
		fmt.Fprintf(&b, "-A %s -j %s\n", out, src)
		fmt.Fprintf(&b, "-A %s -p udp -m udp --sport 68 --dport 67 -j RETURN\n", out)
		fmt.Fprintf(&b, "-A %s -p udp -m udp --sport 67 --dport 68 -j DROP\n", out)
		fmt.Fprintf(&b, "-A %s -m state --state RELATED,ESTABLISHED -j RETURN\n", out)
		for _, r := range p.rules {
			if r.Direction == firewall.Egress {
				fmt.Fprintf(&b, "-A %s%s -j RETURN\n", out, strings.Replace(rule(r), " -s ", " -d ", 1))
			}
		}
		fmt.Fprintf(&b, "-A %s -m state --state INVALID -j DROP\n", out)
		fmt.Fprintf(&b, "-A %s -j %ssg-fallback\n", out, chainPrefix)
		fmt.Fprintf(&b, "-A %s -s %s/32 -m mac --mac-source %s -j RETURN\n", src, p.addr, p.mac)
		fmt.Fprintf(&b, "-A %s -j DROP\n", src)
	}
	b.WriteString("COMMIT\n")
	return b.Bytes()
}

func ipsetText() []byte {
	var b bytes.Buffer
	b.WriteString("create NIPv4admins hash:net family inet -exist\nflush NIPv4admins\n")
	for _, a := range admins() {
		fmt.Fprintf(&b, "add NIPv4admins %s\n", a)
	}
	return b.Bytes()
}

func (l *iptablesLayout) program(h *host, ps []benchPort) (time.Duration, error) {
	text := l.text(ps)
	d1, err := h.run(ipsetText(), "ipset", "restore")
	if err != nil {
		return 0, err
	}
	d2, err := h.run(text, l.restore)
	return d1 + d2, err
}

func (l *iptablesLayout) update(h *host, ps []benchPort) (time.Duration, error) {
	// Prepared before the clock starts: the agent's Python would build it
	// too, but only the restore is timed.
	return h.run(l.text(ps), l.restore)
}

func (l *iptablesLayout) clear(h *host) error {
	_, err := h.run([]byte("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"), l.restore)
	if err != nil {
		return err
	}
	_, err = h.run(nil, "ipset", "destroy")
	return err
}

// host is one host namespace with a bridge, a client and a server.
type host struct {
	name           string
	ns             *dataplane.Namespace
	client, server *dataplane.Namespace
	ln             net.Listener
}

func newHost(name string) (h *host, err error) {
	h = &host{name: name}
	defer func() {
		if err != nil {
			h.teardown()
		}
	}()
	if err := netns.Create(name); err != nil {
		return nil, err
	}
	if h.ns, err = dataplane.OpenNamespace(name); err != nil {
		return nil, err
	}
	links := dataplane.NewLinks(h.ns.Handle)
	links.SetNamespace(name)
	if _, err := dataplane.EnsureBridge(links, dataplane.BridgeSpec{Name: "nsb-bench", Alias: dataplane.NetworkAlias("bench"), MTU: 1500, Up: true}); err != nil {
		return nil, err
	}
	for _, vm := range []struct {
		ns   **dataplane.Namespace
		tap  string
		addr string
		mac  net.HardwareAddr
	}{{&h.server, serverTap, serverAddr, serverMAC}, {&h.client, clientTap, clientAddr, clientMAC}} {
		ns, _, err := dataplane.EnsureInstanceNetns(name+"-"+vm.tap, dataplane.InstanceMarker("i-"+vm.tap, name))
		if err != nil {
			return nil, err
		}
		*vm.ns = ns
		if _, err := dataplane.EnsureVethPort(links, ns, dataplane.PortSpec{
			TapName: vm.tap, Bridge: "nsb-bench", Alias: dataplane.PortAlias(vm.tap), MTU: 1500, Up: true,
			IfName: "eth0", MAC: vm.mac, Addrs: []netip.Prefix{netip.PrefixFrom(netip.MustParseAddr(vm.addr), 16)},
		}); err != nil {
			return nil, err
		}
	}
	err = netns.DoNamed(h.server.Name, func() (err error) {
		h.ln, err = net.Listen("tcp4", serverAddr+":80")
		return err
	})
	if err != nil {
		return nil, err
	}
	go func() {
		for {
			c, err := h.ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return h, nil
}

// run runs a command with stdin inside the host namespace and times it.
func (h *host) run(stdin []byte, argv ...string) (time.Duration, error) {
	var took time.Duration
	err := netns.DoNamed(h.name, func() error {
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Stdin = bytes.NewReader(stdin)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		start := time.Now()
		err := cmd.Run()
		took = time.Since(start)
		if err != nil {
			return fmt.Errorf("%s: %v\n%s", strings.Join(argv, " "), err, out.String())
		}
		return nil
	})
	return took, err
}

func (h *host) teardown() {
	if h.ln != nil {
		h.ln.Close()
	}
	for _, ns := range []*dataplane.Namespace{h.client, h.server, h.ns} {
		if ns != nil {
			ns.Close()
		}
	}
	for _, n := range []string{h.name + "-" + serverTap, h.name + "-" + clientTap, h.name} {
		netns.Delete(n)
	}
}

// slice is how long one host is measured before switching to the other.
const slice = 100 * time.Millisecond

// alternate measures new TCP connections per second from each host's
// client to its server, in alternating slices, for rounds rounds.
func alternate(ctx context.Context, a, b *host, connFor time.Duration, rounds int) ([2][]float64, error) {
	var rates [2][]float64
	target := serverAddr + ":80"
	one := func() error {
		c, err := net.DialTimeout("tcp4", target, time.Second)
		if err != nil {
			return err
		}
		c.(*net.TCPConn).SetLinger(0)
		io.Copy(io.Discard, c)
		return c.Close()
	}
	hosts := [2]*host{a, b}
	// A thread stays in one namespace while it dials: each slice runs on
	// a thread moved into the client's namespace for the slice.
	runSlice := func(h *host, d time.Duration) (int, time.Duration, error) {
		n := 0
		var took time.Duration
		err := netns.DoNamed(h.client.Name, func() error {
			start := time.Now()
			for time.Since(start) < d {
				if err := one(); err != nil {
					return fmt.Errorf("connect from %s to %s: %w", h.client.Name, target, err)
				}
				n++
			}
			took = time.Since(start)
			return nil
		})
		return n, took, err
	}
	for _, h := range hosts {
		if _, _, err := runSlice(h, 200*time.Millisecond); err != nil {
			return rates, err
		}
	}
	for range rounds {
		if err := ctx.Err(); err != nil {
			return rates, err
		}
		var n [2]int
		var took [2]time.Duration
		for took[0] < connFor || took[1] < connFor {
			for i, h := range hosts {
				k, d, err := runSlice(h, slice)
				if err != nil {
					return rates, err
				}
				n[i] += k
				took[i] += d
			}
		}
		for i := range hosts {
			rates[i] = append(rates[i], float64(n[i])/took[i].Seconds())
		}
	}
	return rates, nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.3fms", float64(d.Microseconds())/1000) }
