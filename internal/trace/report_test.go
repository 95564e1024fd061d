package trace

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/nsnet/nsnet/internal/capture"
)

// sighting is the probe as seen at a hop: addresses, ports, ICMP id.
func sighting(ns, ifname, node, src, dst string, sport, dport, icmpID uint16) HopSeen {
	proto := uint8(capture.ProtoTCP)
	if icmpID != 0 {
		proto = capture.ProtoICMP
	}
	pk := &capture.Packet{EtherType: capture.EtherTypeIPv4, Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr(dst),
		Proto: proto, SrcPort: sport, DstPort: dport, ICMPID: icmpID}
	return HopSeen{Hop: Hop{Netns: ns, Interface: ifname, Node: node}, Seen: true, packet: pk, Summary: pk.Summary()}
}

func TestRewrites(t *testing.T) {
	unseen := HopSeen{Hop: Hop{Netns: "host", Interface: "tap2"}}
	tests := []struct {
		name string
		hops []HopSeen
		want []string
	}{
		{"nothing changes", []HopSeen{
			sighting("vm1", "eth0", "instance vm1", "10.0.0.5", "10.0.0.6", 40000, 80, 0),
			sighting("vm2", "eth0", "instance vm2", "10.0.0.5", "10.0.0.6", 40000, 80, 0),
		}, nil},
		{"SNAT with a new port", []HopSeen{
			sighting("r", "qr-1", "router r1", "10.0.0.5", "203.0.113.1", 40000, 80, 0),
			sighting("r", "qg-1", "router r1", "198.51.100.2", "203.0.113.1", 3491, 80, 0),
		}, []string{"SNAT 10.0.0.5:40000 → 198.51.100.2:3491 in router r1 (between qr-1 and qg-1)"}},
		{"DNAT of a port forward, across a hop not seen", []HopSeen{
			sighting("r", "qg-1", "router r1", "198.51.100.254", "198.51.100.3", 50000, 8080, 0),
			unseen,
			sighting("r", "qr-1", "router r1", "198.51.100.254", "10.0.0.6", 50000, 80, 0),
		}, []string{"DNAT 198.51.100.3:8080 → 10.0.0.6:80 in router r1 (between qg-1 and qr-1)"}},
		{"ICMP: SNAT with a new echo id", []HopSeen{
			sighting("r", "qr-1", "router r1", "10.0.0.5", "203.0.113.1", 0, 0, 7),
			sighting("r", "qg-1", "router r1", "198.51.100.2", "203.0.113.1", 0, 0, 9),
		}, []string{"SNAT 10.0.0.5 → 198.51.100.2, ICMP id 7 → 9 in router r1 (between qr-1 and qg-1)"}},
	}
	for _, tc := range tests {
		var got []string
		for _, rw := range rewrites("out", tc.hops) {
			got = append(got, rw.String())
		}
		if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, got, tc.want)
		}
	}
}

func TestPrintStopped(t *testing.T) {
	last := Hop{Netns: "nse-vm2", Interface: "eth0", Node: "instance vm2", Kind: KindInstance, Ingress: true}
	r := &Result{
		Protocol: "tcp", Src: "10.0.0.5", Dst: "10.0.0.6", DstPort: 8080, From: "instance vm1",
		Probe:    &Probe{Proto: capture.ProtoTCP, DstPort: 8080, Seq: 42},
		Expected: Expected{End: EndInstance, EndDetail: "10.0.0.6 is instance vm2"},
		Way: []HopSeen{
			sighting("nse-vm1", "eth0", "instance vm1", "10.0.0.5", "10.0.0.6", 40000, 8080, 0),
			{Hop: last},
		},
		WayBack: []HopSeen{{Hop: last}, {Hop: Hop{Netns: "nse-vm1", Interface: "eth0"}}},
		Stopped: &Stop{Way: "out", LastSeen: &last, Reasons: []string{"dropped by nftables: drop by rule handle 2 …"}},
	}
	var b strings.Builder
	if err := r.Print(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"trace tcp from instance vm1 (10.0.0.5) to 10.0.0.6 port 8080\n",
		"probe: TCP SYN to port 8080, seq 42\n",
		"expected: 2 interfaces; 10.0.0.6 is instance vm2\n",
		"10.0.0.5:40000 > 10.0.0.6:8080: TCP",
		"Stopped on its way out; last seen at instance vm2 (nse-vm2/eth0):\n  - dropped by nftables: drop by rule handle 2 …\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	notSeen := false
	for _, line := range strings.Split(out, "\n") {
		notSeen = notSeen || strings.Contains(line, "2  instance vm2") && strings.HasSuffix(line, "not seen")
	}
	if !notSeen {
		t.Errorf("hop 2 is not shown as not seen:\n%s", out)
	}
	if strings.Contains(out, "on its way back") {
		t.Errorf("an answer nobody saw is printed:\n%s", out)
	}
}
