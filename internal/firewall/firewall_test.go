package firewall_test

// A lab of three namespaces made with iproute2 (tests may use the tools):
// a host holding a bridge, and two instances a (10.9.0.1) and b
// (10.9.0.2) plugged into it. The firewall is programmed in the host and
// proven with real traffic.

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nsnet/nsnet/internal/firewall"
)

type lab struct {
	t             *testing.T
	host, a, b    string
	tapA, tapB    string
	macA, macB    net.HardwareAddr
	fw            *firewall.Firewall
	serverStopped chan struct{}
}

func run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func newLab(t *testing.T) *lab {
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces)")
	}
	p := fmt.Sprintf("fwt%d-", os.Getpid()%100000)
	l := &lab{t: t, host: p + "h", a: p + "a", b: p + "b", tapA: "tap" + p + "a", tapB: "tap" + p + "b"}
	t.Cleanup(func() {
		if l.fw != nil {
			l.fw.Close()
		}
		// A namespace left behind fails the test: it would hold the
		// machine's resources, and the next run's names.
		for _, n := range []string{l.host, l.a, l.b} {
			if out, err := exec.Command("ip", "netns", "del", n).CombinedOutput(); err != nil && !strings.Contains(string(out), "No such file") {
				t.Errorf("remove namespace %s: %v\n%s", n, err, out)
			}
		}
	})
	for _, n := range []string{l.host, l.a, l.b} {
		run(t, "ip", "netns", "add", n)
		run(t, "ip", "-n", n, "link", "set", "lo", "up")
	}
	run(t, "ip", "-n", l.host, "link", "add", "br0", "type", "bridge")
	run(t, "ip", "-n", l.host, "link", "set", "br0", "up")
	for i, inst := range []string{l.a, l.b} {
		tap := []string{l.tapA, l.tapB}[i]
		mac := fmt.Sprintf("fa:16:3e:00:00:0%d", i+1)
		run(t, "ip", "-n", l.host, "link", "add", tap, "type", "veth", "peer", "name", "eth0", "netns", inst)
		run(t, "ip", "-n", l.host, "link", "set", tap, "master", "br0", "up")
		run(t, "ip", "-n", inst, "link", "set", "eth0", "address", mac, "up")
		run(t, "ip", "-n", inst, "addr", "add", fmt.Sprintf("10.9.0.%d/24", i+1), "dev", "eth0")
	}
	l.macA, _ = net.ParseMAC("fa:16:3e:00:00:01")
	l.macB, _ = net.ParseMAC("fa:16:3e:00:00:02")
	fw, err := firewall.Open(l.host, nil)
	if err != nil {
		t.Fatal(err)
	}
	l.fw = fw
	return l
}

// reopen closes the Firewall and opens another, as a restarted daemon
// would.
func (l *lab) reopen() {
	l.t.Helper()
	l.fw.Close()
	fw, err := firewall.Open(l.host, nil)
	if err != nil {
		l.t.Fatal(err)
	}
	l.fw = fw
}

// tcpOpen reports whether a TCP connection from a to b's port opens.
func (l *lab) tcpOpen(port int) bool {
	l.t.Helper()
	cmd := exec.Command("ip", "netns", "exec", l.a, "timeout", "1",
		"bash", "-c", fmt.Sprintf("echo > /dev/tcp/10.9.0.2/%d", port))
	return cmd.Run() == nil
}

func (l *lab) serve(port int) {
	l.t.Helper()
	cmd := exec.Command("ip", "netns", "exec", l.b, "python3", "-m", "http.server", "--bind", "10.9.0.2", fmt.Sprint(port))
	if err := cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if exec.Command("ip", "netns", "exec", l.b, "bash", "-c", fmt.Sprintf("echo > /dev/tcp/10.9.0.2/%d", port)).Run() == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	l.t.Fatal("server did not start")
}

func (l *lab) ping(from, to string) bool {
	return exec.Command("ip", "netns", "exec", from, "ping", "-c1", "-W1", to).Run() == nil
}

func (l *lab) spec(rulesB ...firewall.Rule) firewall.Spec {
	egressAll := firewall.Rule{Direction: firewall.Egress, ProtoMax: 255, PortMax: 65535, Remote: netip.MustParsePrefix("0.0.0.0/0")}
	// b has a rule that egressAll covers, which changes nothing a packet
	// meets but makes b's rules a signature of their own: a rule added to
	// b changes that signature in place, as a rule added to a security
	// group changes its ports' (a's rules, shared with b, would be split).
	egressTCP := firewall.Rule{Direction: firewall.Egress, ProtoMin: 6, ProtoMax: 6, PortMax: 65535, Remote: netip.MustParsePrefix("0.0.0.0/0")}
	return firewall.Spec{Ports: []firewall.Port{
		{Interface: l.tapA, MAC: l.macA, Addresses: []netip.Addr{netip.MustParseAddr("10.9.0.1")}, Rules: []firewall.Rule{egressAll}},
		{Interface: l.tapB, MAC: l.macB, Addresses: []netip.Addr{netip.MustParseAddr("10.9.0.2")}, Rules: append([]firewall.Rule{egressAll, egressTCP}, rulesB...)},
	}}
}

func TestStatefulRules(t *testing.T) {
	l := newLab(t)
	l.serve(8080)
	if _, err := l.fw.Apply(l.spec()); err != nil {
		t.Fatal(err)
	}
	if l.tcpOpen(8080) {
		t.Error("TCP to b:8080 opened without an ingress rule")
	}
	if l.ping(l.b, "10.9.0.1") {
		t.Error("ping b→a passed: a has no ingress rule")
	}
	http := firewall.Rule{Direction: firewall.Ingress, ProtoMin: 6, ProtoMax: 6, PortMin: 8080, PortMax: 8080, Remote: netip.MustParsePrefix("10.9.0.0/24")}
	res, err := l.fw.Apply(l.spec(http))
	if err != nil {
		t.Fatal(err)
	}
	if res.Added != 1 || res.Deleted != 0 {
		t.Errorf("adding one rule: %+v, want one element added", res)
	}
	if !l.tcpOpen(8080) {
		t.Error("TCP to b:8080 blocked with an ingress rule allowing it")
	}
	if l.ping(l.a, "10.9.0.2") {
		t.Error("ping a→b passed without an ICMP rule")
	}
	counters, err := l.fw.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if c := counters[l.tapB]; c.Ingress == 0 {
		t.Errorf("b's ingress drops not counted: %+v", c)
	}
}

func TestAntiSpoofing(t *testing.T) {
	l := newLab(t)
	icmp := firewall.Rule{Direction: firewall.Ingress, ProtoMin: 1, ProtoMax: 1, PortMax: 65535, Remote: netip.MustParsePrefix("0.0.0.0/0")}
	if _, err := l.fw.Apply(l.spec(icmp)); err != nil {
		t.Fatal(err)
	}
	if !l.ping(l.a, "10.9.0.2") {
		t.Fatal("ping a→b blocked with an ICMP rule")
	}
	run(t, "ip", "-n", l.a, "addr", "add", "10.9.0.99/24", "dev", "eth0")
	if exec.Command("ip", "netns", "exec", l.a, "ping", "-c1", "-W1", "-I", "10.9.0.99", "10.9.0.2").Run() == nil {
		t.Error("ping from a spoofed source passed")
	}
	counters, err := l.fw.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if c := counters[l.tapA]; c.SpoofedIP == 0 && c.SpoofedARP == 0 {
		t.Errorf("spoofing not counted: %+v", c)
	}
}

// TestPortsComeAndGo: removing a port deletes its chains, sets and
// counters in the same batch as its elements; a port added later gets a
// fresh tag and works.
func TestPortsComeAndGo(t *testing.T) {
	l := newLab(t)
	icmp := firewall.Rule{Direction: firewall.Ingress, ProtoMin: 1, ProtoMax: 1, PortMax: 65535, Remote: netip.MustParsePrefix("0.0.0.0/0")}
	full := l.spec(icmp)
	if _, err := l.fw.Apply(full); err != nil {
		t.Fatal(err)
	}
	if !l.ping(l.a, "10.9.0.2") {
		t.Fatal("ping a→b blocked with an ICMP rule")
	}
	onlyA := firewall.Spec{Ports: full.Ports[:1]}
	if _, err := l.fw.Apply(onlyA); err != nil {
		t.Fatalf("removing port b: %v", err)
	}
	if !l.ping(l.a, "10.9.0.2") {
		t.Error("ping a→b blocked once b is no longer filtered")
	}
	if out := run(t, "ip", "netns", "exec", l.host, "nft", "list", "table", "inet", "nsnet_fw"); strings.Count(out, "chain ingress_") != 1 {
		t.Errorf("want one port's chains left:\n%s", out)
	}
	noICMP := l.spec()
	if _, err := l.fw.Apply(noICMP); err != nil {
		t.Fatalf("adding port b back: %v", err)
	}
	if l.ping(l.a, "10.9.0.2") {
		t.Error("ping a→b passed: b is back without an ICMP rule")
	}
	if err := l.fw.Delete(); err != nil {
		t.Fatal(err)
	}
}

// TestInvalidCounted: a TCP segment with SYN and FIN set is invalid to
// conntrack; it is dropped and counted against its destination port.
func TestInvalidCounted(t *testing.T) {
	l := newLab(t)
	if _, err := l.fw.Apply(l.spec()); err != nil {
		t.Fatal(err)
	}
	script := `
import socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
tcp = struct.pack("!HHIIBBHHH", 40000, 8080, 1, 0, 5 << 4, 0x03, 1024, 0, 0)
for _ in range(3):
    s.sendto(tcp, ("10.9.0.2", 0))
`
	run(t, "ip", "netns", "exec", l.a, "python3", "-c", script)
	counters, err := l.fw.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if c := counters[l.tapB]; c.Invalid == 0 {
		t.Errorf("SYN+FIN to b not counted as invalid: %+v", c)
	}
}

// TestAdoptsWhatItFinds: a new Firewall (a restarted daemon) whose spec
// the tables already implement takes them over without writing anything,
// so their handles stay; one that finds an element removed by hand, or
// rules of another layout, rebuilds them. Verify notices an element
// removed by hand.
func TestAdoptsWhatItFinds(t *testing.T) {
	l := newLab(t)
	icmp := firewall.Rule{Direction: firewall.Ingress, ProtoMin: 1, ProtoMax: 1, PortMax: 65535, Remote: netip.MustParsePrefix("10.9.0.0/24")}
	spec := l.spec(icmp)
	if res, err := l.fw.Apply(spec); err != nil || !res.Rebuilt {
		t.Fatalf("first Apply: %+v, %v; want the tables built", res, err)
	}
	handles := func() string {
		return run(t, "ip", "netns", "exec", l.host, "nft", "-a", "list", "ruleset")
	}
	before := handles()
	if ok, err := l.fw.Verify(); err != nil || !ok {
		t.Fatalf("Verify of untouched tables: %v, %v", ok, err)
	}

	l.reopen()
	if res, err := l.fw.Apply(spec); err != nil || !res.Adopted || res.Added != 0 {
		t.Fatalf("Apply of the same spec by a new Firewall: %+v, %v; want the tables adopted", res, err)
	}
	if after := handles(); after != before {
		t.Errorf("adopting changed the tables:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if !l.ping(l.a, "10.9.0.2") {
		t.Error("ping a→b blocked after adopting")
	}
	// An update after adopting sends only the difference.
	if res, err := l.fw.Apply(l.spec()); err != nil || res.Rebuilt || res.Deleted != 1 {
		t.Errorf("removing the ICMP rule after adopting: %+v, %v; want one element deleted", res, err)
	}

	run(t, "ip", "netns", "exec", l.host, "nft", "flush", "set", "bridge", "nsnet_fw", "mac_ok")
	if ok, err := l.fw.Verify(); err != nil || ok {
		t.Errorf("Verify after an element was removed by hand: %v, %v; want false", ok, err)
	}
	l.reopen()
	if res, err := l.fw.Apply(l.spec()); err != nil || !res.Rebuilt {
		t.Errorf("Apply by a new Firewall over damaged tables: %+v, %v; want them rebuilt", res, err)
	}

	// Tables whose rules are not this layout's (another nsnet version, a
	// rule inserted by hand) are not adopted either.
	run(t, "ip", "netns", "exec", l.host, "nft", "insert", "rule", "bridge", "nsnet_fw", "prerouting", "counter")
	l.reopen()
	if res, err := l.fw.Apply(l.spec()); err != nil || !res.Rebuilt {
		t.Errorf("Apply by a new Firewall over tables of another layout: %+v, %v; want them rebuilt", res, err)
	}
	if err := l.fw.Delete(); err != nil {
		t.Fatal(err)
	}
}

// TestOverlapsAndDuplicates: whatever the spec says — the same rule twice
// (a port in two groups with the same rules), a rule inside another (an
// any-source rule and the same rule for a remote group's members),
// overlapping port ranges, address pairs inside one another or equal to a
// fixed IP, the same MAC twice — the tables take it, whether built at
// once, updated from another spec (deleting elements the new ones overlap,
// in the same batch), or adopted by a new Firewall; and Verify finds the
// untouched tables intact, so a full pass never rebuilds them.
func TestOverlapsAndDuplicates(t *testing.T) {
	l := newLab(t)
	l.serve(8022)
	rule := func(dir firewall.Direction, proto uint8, ports [2]uint16, remote string) firewall.Rule {
		r := firewall.Rule{Direction: dir, ProtoMin: proto, ProtoMax: proto, PortMin: ports[0], PortMax: ports[1], Remote: netip.MustParsePrefix(remote)}
		if proto == 0 {
			r.ProtoMax = 255
		}
		return r
	}
	rule6 := func(dir firewall.Direction, proto uint8, ports [2]uint16, remote string) firewall.Rule {
		r := rule(dir, proto, ports, remote)
		r.IPv6 = true
		return r
	}
	anyPort := [2]uint16{0, 65535}
	ssh := [2]uint16{8022, 8022}
	egressAll := rule(firewall.Egress, 0, anyPort, "0.0.0.0/0")
	mac := func(s string) net.HardwareAddr { m, _ := net.ParseMAC(s); return m }
	a := netip.MustParseAddr("10.9.0.1")
	type step struct {
		rulesB []firewall.Rule
		// pairs of port a
		addrs []netip.Addr
		nets  []netip.Prefix
		macs  []net.HardwareAddr
	}
	tests := []struct {
		name          string
		before, after step
		open          bool // a reaches b:8022 after
	}{
		{name: "same rules twice (a port in two groups)",
			before: step{rulesB: []firewall.Rule{egressAll}},
			after:  step{rulesB: []firewall.Rule{egressAll, egressAll, rule(firewall.Ingress, 6, ssh, "10.9.0.0/24"), rule(firewall.Ingress, 6, ssh, "10.9.0.0/24")}},
			open:   true},
		{name: "rule inside another (any source and a remote group)",
			before: step{rulesB: []firewall.Rule{egressAll, rule(firewall.Ingress, 6, ssh, "0.0.0.0/0")}},
			after: step{rulesB: []firewall.Rule{egressAll, rule(firewall.Ingress, 6, ssh, "0.0.0.0/0"),
				rule(firewall.Ingress, 6, ssh, "10.9.0.1/32"), rule(firewall.Ingress, 6, ssh, "10.9.0.2/32")}},
			open: true},
		{name: "overlapping port ranges and prefixes",
			before: step{rulesB: []firewall.Rule{egressAll, rule(firewall.Ingress, 6, [2]uint16{8000, 8030}, "10.9.0.0/24")}},
			after: step{rulesB: []firewall.Rule{egressAll, rule(firewall.Ingress, 6, [2]uint16{8020, 8040}, "10.9.0.0/16"),
				rule(firewall.Ingress, 6, [2]uint16{8010, 8025}, "10.9.0.0/25"), rule(firewall.Ingress, 0, anyPort, "10.9.0.1/32")}},
			open: true},
		{name: "new rules overlap the removed ones",
			before: step{rulesB: []firewall.Rule{egressAll, rule(firewall.Ingress, 6, [2]uint16{8000, 8030}, "10.9.0.0/24")}},
			after:  step{rulesB: []firewall.Rule{egressAll, rule(firewall.Ingress, 6, [2]uint16{8020, 8040}, "10.9.0.0/16")}},
			open:   true},
		{name: "rule narrowed",
			before: step{rulesB: []firewall.Rule{egressAll, rule(firewall.Ingress, 0, anyPort, "0.0.0.0/0")}},
			after:  step{rulesB: []firewall.Rule{egressAll, rule(firewall.Ingress, 6, [2]uint16{8023, 8023}, "10.9.0.1/32")}},
			open:   false},
		{name: "remote group members in a row, IPv6 rules inside others",
			before: step{rulesB: []firewall.Rule{egressAll}},
			after: step{rulesB: []firewall.Rule{egressAll, rule(firewall.Ingress, 6, ssh, "10.9.0.3/32"),
				rule(firewall.Ingress, 6, ssh, "10.9.0.1/32"), rule(firewall.Ingress, 6, ssh, "10.9.0.2/32"),
				rule6(firewall.Egress, 0, anyPort, "::/0"), rule6(firewall.Egress, 17, [2]uint16{53, 53}, "2001:db8::/64"),
				rule6(firewall.Ingress, 6, ssh, "2001:db8::/64"), rule6(firewall.Ingress, 6, ssh, "2001:db8::1/128")}},
			open: true},
		{name: "address pair inside another",
			before: step{rulesB: []firewall.Rule{egressAll}, nets: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}},
			after: step{rulesB: []firewall.Rule{egressAll, rule(firewall.Ingress, 6, ssh, "10.9.0.0/24")},
				nets: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("10.9.0.0/16")}},
			open: true},
		{name: "address pair equal to the fixed IP, MAC pair twice",
			before: step{rulesB: []firewall.Rule{egressAll}},
			after: step{rulesB: []firewall.Rule{egressAll, rule(firewall.Ingress, 6, ssh, "10.9.0.0/24")},
				addrs: []netip.Addr{a, a}, macs: []net.HardwareAddr{mac("fa:16:3e:00:00:99"), mac("fa:16:3e:00:00:99")}},
			open: true},
	}
	specOf := func(s step) firewall.Spec {
		spec := l.spec(s.rulesB...)
		spec.Ports[1].Rules = s.rulesB
		pa := &spec.Ports[0]
		pa.Addresses = append(pa.Addresses, s.addrs...)
		pa.Networks, pa.MACs = s.nets, s.macs
		return spec
	}
	for _, tt := range tests {
		before, after := specOf(tt.before), specOf(tt.after)
		// Built from nothing, then updated.
		if err := l.fw.Delete(); err != nil {
			t.Fatal(err)
		}
		if res, err := l.fw.Apply(before); err != nil || !res.Rebuilt {
			t.Errorf("%s: building the tables before: %+v, %v", tt.name, res, err)
			continue
		}
		if _, err := l.fw.Apply(after); err != nil {
			t.Errorf("%s: updating the tables: %v", tt.name, err)
			continue
		}
		if ok, err := l.fw.Verify(); err != nil || !ok {
			t.Errorf("%s: Verify of untouched tables after an update: %v, %v; want true", tt.name, ok, err)
		}
		if got := l.tcpOpen(8022); got != tt.open {
			t.Errorf("%s: a→b:8022 open %v, want %v", tt.name, got, tt.open)
		}
		// Built at once by a new Firewall, then adopted by another.
		l.reopen()
		if err := l.fw.Delete(); err != nil {
			t.Fatal(err)
		}
		if res, err := l.fw.Apply(after); err != nil || !res.Rebuilt {
			t.Errorf("%s: building the tables at once: %+v, %v", tt.name, res, err)
			continue
		}
		if ok, err := l.fw.Verify(); err != nil || !ok {
			t.Errorf("%s: Verify of untouched tables after building them: %v, %v; want true", tt.name, ok, err)
		}
		l.reopen()
		if res, err := l.fw.Apply(after); err != nil || !res.Adopted {
			t.Errorf("%s: Apply by a new Firewall of the spec the tables hold: %+v, %v; want them adopted", tt.name, res, err)
		}
		// And back.
		if _, err := l.fw.Apply(before); err != nil {
			t.Errorf("%s: updating the tables back: %v", tt.name, err)
		}
		if ok, err := l.fw.Verify(); err != nil || !ok {
			t.Errorf("%s: Verify after updating back: %v, %v; want true", tt.name, ok, err)
		}
	}
	if err := l.fw.Delete(); err != nil {
		t.Fatal(err)
	}
}

// TestReshapedRulesKeepConnections: a rule added next to another can
// replace the element that allowed a connection by a bigger one; the
// connection, still allowed, keeps its conntrack entry. Removing the rules
// that allow it forgets it.
func TestReshapedRulesKeepConnections(t *testing.T) {
	l := newLab(t)
	l.serve(8022)
	from := func(remote string) firewall.Rule {
		return firewall.Rule{Direction: firewall.Ingress, ProtoMin: 6, ProtoMax: 6, PortMin: 8022, PortMax: 8022, Remote: netip.MustParsePrefix(remote)}
	}
	if _, err := l.fw.Apply(l.spec(from("10.9.0.1/32"))); err != nil {
		t.Fatal(err)
	}
	if !l.tcpOpen(8022) {
		t.Fatal("a→b:8022 blocked by a rule allowing it")
	}
	// 10.9.0.0/32 and 10.9.0.1/32 make one element 10.9.0.0-10.9.0.1.
	res, err := l.fw.Apply(l.spec(from("10.9.0.1/32"), from("10.9.0.0/32")))
	if err != nil {
		t.Fatal(err)
	}
	if res.Deleted != 1 || res.Added != 1 || res.Forgotten != 0 {
		t.Errorf("adding a rule beside the connection's: %+v, want one element replaced and no connection forgotten", res)
	}
	res, err = l.fw.Apply(l.spec(from("10.9.0.0/32")))
	if err != nil {
		t.Fatal(err)
	}
	if res.Forgotten == 0 {
		t.Errorf("removing the rule that allowed the connection: %+v, want it forgotten", res)
	}
}

// routedLab is the lab with the host as the instances' gateway, as on a
// host-gateway network: 10.9.0.254 on br0, forwarding on, and an upstream
// namespace up (192.0.2.1) behind the host's up0 (192.0.2.254). b also
// answers for 10.9.2.5, on its loopback, which the host routes via b.
func routedLab(t *testing.T) (*lab, string) {
	l := newLab(t)
	up := l.host[:len(l.host)-1] + "u"
	t.Cleanup(func() { exec.Command("ip", "netns", "del", up).Run() })
	for _, c := range [][]string{
		{"netns", "add", up},
		{"-n", up, "link", "set", "lo", "up"},
		{"-n", l.host, "link", "add", "up0", "type", "veth", "peer", "name", "eth0", "netns", up},
		{"-n", l.host, "addr", "add", "192.0.2.254/24", "dev", "up0"},
		{"-n", l.host, "link", "set", "up0", "up"},
		{"-n", up, "addr", "add", "192.0.2.1/24", "dev", "eth0"},
		{"-n", up, "link", "set", "eth0", "up"},
		{"-n", up, "route", "add", "default", "via", "192.0.2.254"},
		{"-n", l.host, "addr", "add", "10.9.0.254/24", "dev", "br0"},
		{"-n", l.host, "route", "add", "10.9.2.0/24", "via", "10.9.0.2"},
		{"-n", l.a, "route", "add", "default", "via", "10.9.0.254"},
		{"-n", l.b, "route", "add", "default", "via", "10.9.0.254"},
		{"-n", l.b, "addr", "add", "10.9.2.5/32", "dev", "lo"},
	} {
		run(t, append([]string{"ip"}, c...)...)
	}
	run(t, "ip", "netns", "exec", l.host, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	cmd := exec.Command("ip", "netns", "exec", l.b, "python3", "-m", "http.server", "8080")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	deadline := time.Now().Add(5 * time.Second)
	for !tcpOpen(l.b, "127.0.0.1", 8080) {
		if time.Now().After(deadline) {
			t.Fatal("server did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return l, up
}

func tcpOpen(from, addr string, port int) bool {
	return exec.Command("ip", "netns", "exec", from, "timeout", "1",
		"bash", "-c", fmt.Sprintf("echo > /dev/tcp/%s/%d", addr, port)).Run() == nil
}

// TestRoutedThroughHost: traffic the host routes between its uplink and
// the ports of a bridge that carries its gateway address, or sends from
// its own stack, meets the ports' rules as bridged traffic does. The host
// finds the destination port from the ports' Routed destinations; a
// packet that no port's rules admitted reaches no secured port.
func TestRoutedThroughHost(t *testing.T) {
	l, up := routedLab(t)
	fromUp := firewall.Rule{Direction: firewall.Ingress, ProtoMin: 6, ProtoMax: 6, PortMin: 8080, PortMax: 8080, Remote: netip.MustParsePrefix("192.0.2.0/24")}
	spec := func(egressA bool, rulesB []firewall.Rule, routedB ...string) firewall.Spec {
		s := l.spec(rulesB...)
		if !egressA {
			s.Ports[0].Rules = nil
		}
		s.Ports[0].Bridge, s.Ports[0].Routed = "br0", []netip.Prefix{netip.MustParsePrefix("10.9.0.1/32")}
		s.Ports[1].Bridge = "br0"
		s.Ports[1].Networks = []netip.Prefix{netip.MustParsePrefix("10.9.2.0/24")}
		for _, r := range routedB {
			s.Ports[1].Routed = append(s.Ports[1].Routed, netip.MustParsePrefix(r))
		}
		return s
	}
	steps := []struct {
		name string
		spec firewall.Spec
		// whether each probe gets through
		upToB, upToBehindB, hostToB, aToUp, aToHost bool
	}{
		{"b admits nothing, a sends nowhere", spec(false, nil, "10.9.0.2/32", "10.9.2.0/24"),
			false, false, false, false, false},
		{"b admits TCP 8080 from up, a egress anywhere", spec(true, []firewall.Rule{fromUp}, "10.9.0.2/32", "10.9.2.0/24"),
			true, true, false, true, true},
		{"b not known to hold 10.9.2.0/24", spec(true, []firewall.Rule{fromUp}, "10.9.0.2/32"),
			true, false, false, true, true},
	}
	for _, st := range steps {
		if _, err := l.fw.Apply(st.spec); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		for _, p := range []struct {
			what string
			got  bool
			want bool
		}{
			{"up → b:8080", tcpOpen(up, "10.9.0.2", 8080), st.upToB},
			{"up → 10.9.2.5:8080 via b", tcpOpen(up, "10.9.2.5", 8080), st.upToBehindB},
			{"host → b:8080", tcpOpen(l.host, "10.9.0.2", 8080), st.hostToB},
			{"a → up (ping)", l.ping(l.a, "192.0.2.1"), st.aToUp},
			{"a → host (ping)", l.ping(l.a, "10.9.0.254"), st.aToHost},
		} {
			if p.got != p.want {
				t.Errorf("%s: %s passes: %v, want %v", st.name, p.what, p.got, p.want)
			}
		}
	}
	counters, err := l.fw.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if c := counters[l.tapB]; c.Ingress == 0 {
		t.Errorf("b's ingress drops not counted: %+v", c)
	}
	if c := counters[l.tapA]; c.Egress == 0 {
		t.Errorf("a's egress drops not counted: %+v", c)
	}
}

// TestHairpinReflection: a port in hairpin mode (so that its instance
// reaches its own published port through the host) gets its own
// broadcasts back from the bridge; the firewall drops them before they
// meet the port's rules, so they are not counted as denied.
func TestHairpinReflection(t *testing.T) {
	l := newLab(t)
	if _, err := l.fw.Apply(l.spec()); err != nil {
		t.Fatal(err)
	}
	run(t, "ip", "-n", l.host, "link", "set", l.tapA, "type", "bridge_slave", "hairpin", "on")
	run(t, "ip", "netns", "exec", l.a, "python3", "-c", `
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
for _ in range(3):
    s.sendto(b"hello", ("10.9.0.255", 9999))
`)
	counters, err := l.fw.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if c := counters[l.tapB]; c.Ingress == 0 {
		t.Errorf("b's ingress drops of a's broadcasts not counted: %+v", c)
	}
	if c := counters[l.tapA]; c != (firewall.Counters{}) {
		t.Errorf("a's own broadcasts came back to it: %+v", c)
	}
}

// TestGenerationProof: an Apply after the Firewall's own last commit reads
// nothing back, the ruleset generation proving the tables unchanged; after
// anyone else's commit, in another table too, it reads them back and,
// finding them intact, changes nothing; after a change to its tables, it
// repairs them — no Verify needed.
func TestGenerationProof(t *testing.T) {
	l := newLab(t)
	icmp := firewall.Rule{Direction: firewall.Ingress, ProtoMin: 1, ProtoMax: 1, PortMax: 65535, Remote: netip.MustParsePrefix("10.9.0.0/24")}
	steps := []struct {
		name  string
		spec  firewall.Spec
		nft   []string // run before the Apply
		check func(firewall.Result) bool
	}{
		{"first", l.spec(), nil, func(r firewall.Result) bool { return r.Rebuilt }},
		{"a rule added", l.spec(icmp), nil, func(r firewall.Result) bool { return !r.Read && r.Added == 1 && !r.Rebuilt }},
		{"the same again", l.spec(icmp), nil, func(r firewall.Result) bool { return r == firewall.Result{} }},
		{"after another table's commit", l.spec(icmp), []string{"add", "table", "inet", "someone_else"},
			func(r firewall.Result) bool { return r == firewall.Result{Read: true} }},
		{"proven by that read", l.spec(icmp), nil, func(r firewall.Result) bool { return r == firewall.Result{} }},
		{"after an element was removed by hand", l.spec(icmp), []string{"flush", "set", "bridge", "nsnet_fw", "mac_ok"},
			func(r firewall.Result) bool { return r.Read && r.Rebuilt }},
		{"after a rule was added by hand", l.spec(icmp), []string{"add", "rule", "inet", "nsnet_fw", "forward", "accept"},
			func(r firewall.Result) bool { return r.Read && r.Rebuilt }},
	}
	for _, s := range steps {
		if s.nft != nil {
			run(t, append([]string{"ip", "netns", "exec", l.host, "nft"}, s.nft...)...)
		}
		res, err := l.fw.Apply(s.spec)
		if err != nil || !s.check(res) {
			t.Errorf("%s: Apply = %+v, %v", s.name, res, err)
		}
	}
	if !l.ping(l.a, "10.9.0.2") {
		t.Error("ping a→b blocked after the repairs")
	}
}

// TestRemoteGroupSharedSets: a rule naming a remote group admits what its
// members send, through the group's own sets: a member coming or going is
// one element of them (whatever the rules naming the group), a member
// gone loses its live connections, the same members listed otherwise
// change nothing, a restarted Firewall adopts the tables as they are, and
// the group's sets go with the last rule naming it.
func TestRemoteGroupSharedSets(t *testing.T) {
	l := newLab(t)
	l.serve(8080)
	http := firewall.Rule{Direction: firewall.Ingress, ProtoMin: 6, ProtoMax: 6, PortMin: 8080, PortMax: 8080, Group: "web"}
	icmp := firewall.Rule{Direction: firewall.Ingress, ProtoMin: 1, ProtoMax: 1, PortMax: 65535, Group: "web"}
	icmp6 := firewall.Rule{Direction: firewall.Ingress, IPv6: true, ProtoMin: 58, ProtoMax: 58, PortMax: 65535, Group: "web"}
	spec := func(members ...string) firewall.Spec {
		s := l.spec(http, icmp, icmp6)
		var web firewall.Members
		for _, m := range members {
			web = web.With(netip.MustParsePrefix(m))
		}
		s.Groups = map[string]firewall.Members{"web": web}
		return s
	}
	if _, err := l.fw.Apply(spec("10.9.0.77/32", "2001:db8::1/128")); err != nil {
		t.Fatal(err)
	}
	if l.tcpOpen(8080) || l.ping(l.a, "10.9.0.2") {
		t.Fatal("a reached b without being a member of the rules' remote group")
	}
	for _, tt := range []struct {
		name    string
		members []string
		added   int
		deleted int
		open    bool
	}{
		{"a joins", []string{"10.9.0.77/32", "2001:db8::1/128", "10.9.0.1/32"}, 1, 0, true},
		{"the same members in another order, one twice", []string{"10.9.0.1/32", "2001:db8::1/128", "10.9.0.77/32", "10.9.0.1/32"}, 0, 0, true},
		{"a range holding a joins", []string{"10.9.0.77/32", "2001:db8::1/128", "10.9.0.1/32", "10.9.0.0/30"}, 1, 0, true},
		{"a leaves, the range stays", []string{"10.9.0.77/32", "2001:db8::1/128", "10.9.0.0/30"}, 0, 1, true},
		{"the range leaves", []string{"10.9.0.77/32", "2001:db8::1/128"}, 0, 1, false},
	} {
		res, err := l.fw.Apply(spec(tt.members...))
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if res.Rebuilt || res.Added != tt.added || res.Deleted != tt.deleted {
			t.Errorf("%s: %+v, want %d added and %d deleted", tt.name, res, tt.added, tt.deleted)
		}
		if got := l.tcpOpen(8080); got != tt.open {
			t.Errorf("%s: TCP a→b:8080 open %v, want %v", tt.name, got, tt.open)
		}
		if got := l.ping(l.a, "10.9.0.2"); got != tt.open {
			t.Errorf("%s: ping a→b %v, want %v", tt.name, got, tt.open)
		}
	}

	// A live connection from a member is cut when it leaves.
	joined := spec("10.9.0.1/32")
	if _, err := l.fw.Apply(joined); err != nil {
		t.Fatal(err)
	}
	conn := exec.Command("ip", "netns", "exec", l.a, "python3", "-c", `
import socket, sys, time
s = socket.create_connection(("10.9.0.2", 8080), timeout=2)
print("up", flush=True)
sys.stdin.readline()
try:
    s.sendall(b"GET / HTTP/1.0\r\n\r\n")
    print("reply" if s.recv(100) else "closed", flush=True)
except Exception as e:
    print("cut", e, flush=True)
`)
	stdin, _ := conn.StdinPipe()
	var out strings.Builder
	conn.Stdout = &out
	if err := conn.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(out.String(), "up") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	res, err := l.fw.Apply(spec())
	if err != nil {
		t.Fatal(err)
	}
	if res.Forgotten == 0 {
		t.Errorf("a left the group: %+v, want its connection forgotten", res)
	}
	stdin.Write([]byte("\n"))
	conn.Wait()
	if strings.Contains(out.String(), "reply") {
		t.Errorf("a's connection went on after a left the group: %q", out.String())
	}

	// A restarted daemon adopts the tables as they are.
	if _, err := l.fw.Apply(joined); err != nil {
		t.Fatal(err)
	}
	before := run(t, "ip", "netns", "exec", l.host, "nft", "-a", "list", "ruleset")
	if !strings.Contains(before, "set m4_web") || !strings.Contains(before, "@m4_web") {
		t.Errorf("no shared member set looked up:\n%s", before)
	}
	l.reopen()
	if res, err := l.fw.Apply(joined); err != nil || !res.Adopted {
		t.Fatalf("Apply of the same spec by a new Firewall: %+v, %v; want the tables adopted", res, err)
	}
	if after := run(t, "ip", "netns", "exec", l.host, "nft", "-a", "list", "ruleset"); after != before {
		t.Errorf("adopting changed the tables:\nbefore:\n%s\nafter:\n%s", before, after)
	}

	// The last rule naming the group goes: its sets and lookups go too,
	// and a rule naming it again brings them back.
	if _, err := l.fw.Apply(l.spec()); err != nil {
		t.Fatal(err)
	}
	if out := run(t, "ip", "netns", "exec", l.host, "nft", "list", "table", "inet", "nsnet_fw"); strings.Contains(out, "web") {
		t.Errorf("the group's sets outlived the rules naming it:\n%s", out)
	}
	if l.tcpOpen(8080) {
		t.Error("TCP a→b:8080 open without a rule")
	}
	if _, err := l.fw.Apply(joined); err != nil {
		t.Fatal(err)
	}
	if !l.tcpOpen(8080) {
		t.Error("TCP a→b:8080 blocked once the rule naming a's group is back")
	}
	if ok, err := l.fw.Verify(); err != nil || !ok {
		t.Errorf("Verify: %v, %v", ok, err)
	}
	if err := l.fw.Delete(); err != nil {
		t.Fatal(err)
	}
}

// TestStatelessPorts: the traffic of a stateless port is not tracked, and
// the rules judge every packet both ways: a connection a's and b's rules
// allow one way opens only once a rule lets its replies back, and leaves
// no conntrack entry; stateful again, the replies of allowed connections
// pass by themselves. A restarted Firewall adopts the tables.
func TestStatelessPorts(t *testing.T) {
	l := newLab(t)
	l.serve(8080)
	http := firewall.Rule{Direction: firewall.Ingress, ProtoMin: 6, ProtoMax: 6, PortMin: 8080, PortMax: 8080, Remote: netip.MustParsePrefix("10.9.0.0/24")}
	replies := firewall.Rule{Direction: firewall.Ingress, ProtoMin: 6, ProtoMax: 6, PortMax: 65535, Remote: netip.MustParsePrefix("10.9.0.2/32")}
	spec := func(stateless bool, rulesA ...firewall.Rule) firewall.Spec {
		s := l.spec(http)
		s.Zoned = []string{"br0"}
		for i := range s.Ports {
			s.Ports[i].Bridge, s.Ports[i].Stateless = "br0", stateless
		}
		s.Ports[0].Rules = append(s.Ports[0].Rules, rulesA...)
		return s
	}
	conntrack := func() string {
		out, _ := exec.Command("ip", "netns", "exec", l.host, "conntrack", "-L", "-p", "tcp", "--dport", "8080").CombinedOutput()
		return string(out)
	}
	for _, tt := range []struct {
		name      string
		spec      firewall.Spec
		open      bool
		untracked bool
	}{
		{"stateless, no rule for the replies", spec(true), false, true},
		{"stateless, a rule for the replies", spec(true, replies), true, true},
		{"stateful, no rule for the replies", spec(false), true, false},
		{"stateless again", spec(true), false, true},
	} {
		if _, err := l.fw.Apply(tt.spec); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		run(t, "ip", "netns", "exec", l.host, "conntrack", "-F")
		if got := l.tcpOpen(8080); got != tt.open {
			t.Errorf("%s: TCP a→b:8080 open %v, want %v", tt.name, got, tt.open)
		}
		if ct := conntrack(); tt.untracked == strings.Contains(ct, "dport=8080") {
			t.Errorf("%s: conntrack entries:\n%s", tt.name, ct)
		}
		// ICMP has no rule either way: dropped, stateless or not.
		if l.ping(l.a, "10.9.0.2") {
			t.Errorf("%s: ping a→b passed without a rule", tt.name)
		}
	}
	last := spec(true, replies)
	if _, err := l.fw.Apply(last); err != nil {
		t.Fatal(err)
	}
	l.reopen()
	if res, err := l.fw.Apply(last); err != nil || !res.Adopted {
		t.Fatalf("Apply of the same spec by a new Firewall: %+v, %v; want the tables adopted", res, err)
	}
	if !l.tcpOpen(8080) {
		t.Error("TCP a→b:8080 blocked after adopting")
	}
	if err := l.fw.Delete(); err != nil {
		t.Fatal(err)
	}
}
