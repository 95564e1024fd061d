package firewall_test

import (
	"fmt"
	"net/netip"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/nsnet/nsnet/internal/firewall"
)

// zonedLab is the lab with a second bridge, br1, whose instances c and d
// have a's and b's addresses (10.9.0.1, 10.9.0.2): two networks with the
// same CIDR. b and d answer UDP on port 5353 with their names.
type zonedLab struct {
	*lab
	c, d, tapC, tapD string
}

func newZonedLab(t *testing.T) *zonedLab {
	l := newLab(t)
	z := &zonedLab{lab: l, c: l.host[:len(l.host)-1] + "c", d: l.host[:len(l.host)-1] + "d"}
	z.tapC, z.tapD = l.tapA[:len(l.tapA)-1]+"c", l.tapA[:len(l.tapA)-1]+"d"
	t.Cleanup(func() {
		for _, n := range []string{z.c, z.d} {
			exec.Command("ip", "netns", "del", n).Run()
		}
	})
	run(t, "ip", "-n", l.host, "link", "add", "br1", "type", "bridge")
	run(t, "ip", "-n", l.host, "link", "set", "br1", "up")
	for i, inst := range []string{z.c, z.d} {
		tap := []string{z.tapC, z.tapD}[i]
		run(t, "ip", "netns", "add", inst)
		run(t, "ip", "-n", inst, "link", "set", "lo", "up")
		run(t, "ip", "-n", l.host, "link", "add", tap, "type", "veth", "peer", "name", "eth0", "netns", inst)
		run(t, "ip", "-n", l.host, "link", "set", tap, "master", "br1", "up")
		run(t, "ip", "-n", inst, "link", "set", "eth0", "address", fmt.Sprintf("fa:16:3e:00:00:0%d", i+1), "up")
		run(t, "ip", "-n", inst, "addr", "add", fmt.Sprintf("10.9.0.%d/24", i+1), "dev", "eth0")
	}
	for _, inst := range []string{l.b, z.d} {
		z.udpServer(inst)
	}
	return z
}

// udpServer answers every UDP datagram to port 5353 with the name of its
// namespace.
func (z *zonedLab) udpServer(inst string) {
	z.t.Helper()
	cmd := exec.Command("ip", "netns", "exec", inst, "python3", "-c", fmt.Sprintf(`
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("10.9.0.2", 5353))
while True:
    _, peer = s.recvfrom(64)
    s.sendto(b%q, peer)
`, inst))
	if err := cmd.Start(); err != nil {
		z.t.Fatal(err)
	}
	z.t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
}

// udp sends from inst's source port 40000 to 10.9.0.2:5353 and returns
// who answered ("" for nobody), trying a few times while the servers
// start.
func (z *zonedLab) udp(inst string) string {
	z.t.Helper()
	out, err := exec.Command("ip", "netns", "exec", inst, "python3", "-c", `
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("", 40000))
s.settimeout(0.3)
for _ in range(5):
    s.sendto(b"who", ("10.9.0.2", 5353))
    try:
        print(s.recv(64).decode())
        break
    except socket.timeout:
        pass
`).CombinedOutput()
	if err != nil {
		z.t.Fatalf("udp probe from %s: %v\n%s", inst, err, out)
	}
	return strings.TrimSpace(string(out))
}

// flows returns the zones of the host's conntrack entries of UDP to port
// 5353, as `conntrack -L` lists them (0 for the default zone).
func (z *zonedLab) flows() []int {
	z.t.Helper()
	out, err := exec.Command("ip", "netns", "exec", z.host, "conntrack", "-L", "-p", "udp", "--dport", "5353").CombinedOutput()
	if err != nil {
		z.t.Fatalf("conntrack -L: %v\n%s", err, out)
	}
	var zones []int
	for _, line := range strings.Split(string(out), "\n") {
		if !strings.HasPrefix(line, "udp ") {
			continue
		}
		zone := 0
		fmt.Sscanf(regexp.MustCompile(`zone=\d+`).FindString(line), "zone=%d", &zone)
		zones = append(zones, zone)
	}
	return zones
}

// zoneOf reads bridge's zone from the firewall's zones map.
func (z *zonedLab) zoneOf(bridge string) int {
	z.t.Helper()
	out := run(z.t, "ip", "netns", "exec", z.host, "nft", "list", "map", "inet", firewall.TableName, "zones")
	m := regexp.MustCompile(`"` + bridge + `" : jump zone_(\d+)`).FindStringSubmatch(out)
	if m == nil {
		z.t.Fatalf("bridge %s has no zone:\n%s", bridge, out)
	}
	zone := 0
	fmt.Sscan(m[1], &zone)
	return zone
}

func (z *zonedLab) spec(zoned []string, dRules ...firewall.Rule) firewall.Spec {
	s := z.lab.spec(firewall.Rule{Direction: firewall.Ingress, ProtoMin: 17, ProtoMax: 17, PortMin: 5353, PortMax: 5353, Remote: netip.MustParsePrefix("10.9.0.0/24")})
	s.Ports[0].Bridge, s.Ports[1].Bridge = "br0", "br0"
	if slices.Contains(zoned, "br1") {
		c, d := s.Ports[0], s.Ports[1]
		c.Interface, c.Bridge = z.tapC, "br1"
		d.Interface, d.Bridge, d.Rules = z.tapD, "br1", append(d.Rules[:1:1], dRules...)
		s.Ports = append(s.Ports, c, d)
	}
	s.Zoned = zoned
	return s
}

// TestZonesKeepBridgesApart: each zoned bridge's connections are tracked
// in a conntrack zone of its own, so that a connection on one does not
// admit the same 5-tuple on another network with the same addresses; a
// bridge keeps its zone across changes and a restart; removing a rule
// forgets its connections in the port's zone only; a zone going (its
// bridge, or the tables) takes its connections along.
func TestZonesKeepBridgesApart(t *testing.T) {
	z := newZonedLab(t)
	both := []string{"br0", "br1"}
	apply := func(spec firewall.Spec) firewall.Result {
		t.Helper()
		res, err := z.fw.Apply(spec)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	apply(z.spec(both))
	if got := z.udp(z.c); got != "" {
		t.Fatalf("c → d udp/5353: answered by %q; d admits nothing", got)
	}
	if got := z.udp(z.a); got != z.b {
		t.Fatalf("a → b udp/5353: answered by %q, want %s", got, z.b)
	}
	if got := z.udp(z.c); got != "" {
		t.Errorf("c → d udp/5353 after a → b with the same 5-tuple: answered by %q; d admits nothing", got)
	}
	zone0, zone1 := z.zoneOf("br0"), z.zoneOf("br1")
	if zone0 == 0 || zone1 == 0 || zone0 == zone1 {
		t.Fatalf("zones of br0 and br1: %d and %d, want two distinct non-zero ones", zone0, zone1)
	}
	if got := z.flows(); fmt.Sprint(got) != fmt.Sprint([]int{zone0}) {
		t.Errorf("conntrack entries of udp/5353 in zones %v, want a → b's in br0's zone %d", got, zone0)
	}

	// d opens: the same tuple has an entry in each zone.
	dns := firewall.Rule{Direction: firewall.Ingress, ProtoMin: 17, ProtoMax: 17, PortMin: 5353, PortMax: 5353, Remote: netip.MustParsePrefix("10.9.0.1/32")}
	apply(z.spec(both, dns))
	if got := z.udp(z.c); got != z.d {
		t.Fatalf("c → d udp/5353 with d's rule: answered by %q, want %s", got, z.d)
	}
	if got := len(z.flows()); got != 2 {
		t.Errorf("%d conntrack entries of udp/5353, want a → b's and c → d's", got)
	}

	// A restart adopts the tables, zones included; a bridge added
	// before the others in the list does not renumber them.
	z.reopen()
	if res := apply(z.spec(both, dns)); !res.Adopted {
		t.Errorf("restart: %+v, want the tables adopted", res)
	}
	apply(z.spec([]string{"br", "br0", "br1"}, dns))
	if a, b := z.zoneOf("br0"), z.zoneOf("br1"); a != zone0 || b != zone1 {
		t.Errorf("after a restart and a new bridge: zones %d and %d, want %d and %d kept", a, b, zone0, zone1)
	}
	apply(z.spec(both, dns))

	// Removing d's rule forgets c → d's connection, in br1's zone, and
	// not a → b's, which has the same addresses in br0's.
	if res := apply(z.spec(both)); res.Forgotten != 1 {
		t.Errorf("removing d's rule forgot %d connections, want c → d's", res.Forgotten)
	}
	if got := z.flows(); fmt.Sprint(got) != fmt.Sprint([]int{zone0}) {
		t.Errorf("after d's rule went: conntrack entries in zones %v, want a → b's in %d only", got, zone0)
	}
	if got := z.udp(z.c); got != "" {
		t.Errorf("c → d after d's rule went: answered by %q", got)
	}

	// br1 and its ports go: its zone's connections with it.
	apply(z.spec(both, dns))
	if got := z.udp(z.c); got != z.d {
		t.Fatalf("c → d udp/5353 with d's rule again: answered by %q, want %s", got, z.d)
	}
	// (The zone may hold more: br1's instances' IGMP reports.)
	if res := apply(z.spec([]string{"br0"})); res.Forgotten == 0 {
		t.Errorf("br1 unzoned: forgot no connection, want c → d's")
	}
	if got := z.flows(); fmt.Sprint(got) != fmt.Sprint([]int{zone0}) {
		t.Errorf("after br1 lost its zone: conntrack entries in zones %v, want a → b's in %d only", got, zone0)
	}

	// The tables go: every zone's connections with them.
	if err := z.fw.Delete(); err != nil {
		t.Fatal(err)
	}
	if got := z.flows(); len(got) != 0 {
		t.Errorf("after the tables went: conntrack entries in zones %v, want none", got)
	}
}
