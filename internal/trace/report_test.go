package trace

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

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
	if proto == capture.ProtoICMP {
		pk.ICMPType = capture.ICMPEchoRequest
	}
	return HopSeen{Hop: Hop{Netns: ns, Interface: ifname, Node: node}, Seen: true, packet: pk, Summary: pk.Summary()}
}

// reply makes a sighting of an ICMP echo request one of an echo reply.
func reply(h HopSeen) HopSeen {
	h.packet.ICMPType = capture.ICMPEchoReply
	return h
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
		{"ICMP: the answer through masquerade is un-SNATed: the id goes with the destination", []HopSeen{
			reply(sighting("r", "qg-1", "router r1", "203.0.113.1", "198.51.100.2", 0, 0, 9)),
			reply(sighting("r", "qr-1", "router r1", "203.0.113.1", "10.0.0.5", 0, 0, 7)),
		}, []string{"DNAT 198.51.100.2 → 10.0.0.5, ICMP id 9 → 7 in router r1 (between qg-1 and qr-1)"}},
		{"ICMP: only the echo id of an answer changes", []HopSeen{
			reply(sighting("r", "qg-1", "router r1", "203.0.113.1", "10.0.0.5", 0, 0, 9)),
			reply(sighting("r", "qr-1", "router r1", "203.0.113.1", "10.0.0.5", 0, 0, 7)),
		}, []string{"DNAT 10.0.0.5 (kept), ICMP id 9 → 7 in router r1 (between qg-1 and qr-1)"}},
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
	if err := r.Print(&b, false); err != nil {
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

func TestErrorAnswer(t *testing.T) {
	a := netip.MustParseAddr
	quoted6 := &capture.Packet{EtherType: capture.EtherTypeIPv6, Src: a("2001:db8:1::5"), Dst: a("2001:db8:2::9"), Proto: capture.ProtoICMPv6,
		ICMPType: capture.ICMPv6EchoRequest}
	quoted4 := &capture.Packet{EtherType: capture.EtherTypeIPv4, Src: a("10.0.0.5"), Dst: a("10.9.0.9"), Proto: capture.ProtoICMP,
		ICMPType: capture.ICMPEchoRequest}
	icmpErr := func(from string, typ, code uint8) *capture.Packet {
		p := &capture.Packet{EtherType: capture.EtherTypeIPv6, Src: a(from), Dst: a("2001:db8:1::5"), Proto: capture.ProtoICMPv6,
			ICMPType: typ, ICMPCode: code, Quoted: quoted6, MTU: 1280}
		if a(from).Is4() {
			p.EtherType, p.Dst, p.Proto, p.Quoted = capture.EtherTypeIPv4, a("10.0.0.5"), capture.ProtoICMP, quoted4
		}
		return p
	}
	rst6 := &capture.Packet{EtherType: capture.EtherTypeIPv6, Src: a("2001:db8:2::9"), Dst: a("2001:db8:1::5"), Proto: capture.ProtoTCP,
		SrcPort: 8080, TCPFlags: capture.TCPRst | capture.TCPAck}
	for _, tc := range []struct {
		name   string
		answer *capture.Packet
		want   string
	}{
		{"ICMPv6 no route", icmpErr("2001:db8:1::1", capture.ICMPv6Unreachable, 0),
			"no route: 2001:db8:1::1 (first seen at router r, qr/qr-1) answered ICMPv6 no route"},
		{"ICMPv6 administratively prohibited", icmpErr("2001:db8:1::1", capture.ICMPv6Unreachable, 1),
			"refused: 2001:db8:1::1 (first seen at router r, qr/qr-1) answered ICMPv6 administratively prohibited"},
		{"ICMPv6 address unreachable is failed neighbour discovery", icmpErr("2001:db8:1::1", capture.ICMPv6Unreachable, 3),
			"neighbour discovery failed: 2001:db8:1::1 (first seen at router r, qr/qr-1) answered ICMPv6 address unreachable: nothing on its link answered neighbour discovery (ND) for 2001:db8:2::9"},
		{"ICMPv6 port unreachable", icmpErr("2001:db8:2::9", capture.ICMPv6Unreachable, 4),
			"no listener: 2001:db8:2::9 (first seen at router r, qr/qr-1) answered ICMPv6 port unreachable"},
		{"ICMPv6 reject route", icmpErr("2001:db8:1::1", capture.ICMPv6Unreachable, 6),
			"refused: 2001:db8:1::1 (first seen at router r, qr/qr-1) answered ICMPv6 reject route"},
		{"ICMPv6 packet too big", icmpErr("2001:db8:1::1", capture.ICMPv6PacketTooBig, 0),
			"too big: 2001:db8:1::1 (first seen at router r, qr/qr-1) answered ICMPv6 packet too big, mtu 1280 (IPv6 routers do not fragment)"},
		{"ICMPv6 time exceeded", icmpErr("2001:db8:1::1", capture.ICMPv6TimeExceeded, 0),
			"hop limit exceeded: 2001:db8:1::1 (first seen at router r, qr/qr-1) answered ICMPv6 time exceeded (a routing loop?)"},
		{"IPv6 reset", rst6, "no listener: 2001:db8:2::9 (first seen at router r, qr/qr-1) answered the SYN to port 8080 with a reset (RST)"},
		{"ICMP host unreachable, as before", icmpErr("10.0.0.1", capture.ICMPUnreachable, 1),
			"no route: 10.0.0.1 (first seen at router r, qr/qr-1) answered ICMP host unreachable"},
		{"ICMP port unreachable, as before", icmpErr("10.9.0.9", capture.ICMPUnreachable, 3),
			"no listener: 10.9.0.9 (first seen at router r, qr/qr-1) answered ICMP port unreachable"},
		{"ICMP prohibited, as before", icmpErr("10.0.0.1", capture.ICMPUnreachable, 13),
			"refused: 10.0.0.1 (first seen at router r, qr/qr-1) answered ICMP administratively prohibited"},
	} {
		r := &Result{WayBack: []HopSeen{
			{Hop: Hop{Netns: "host", Interface: "tap-x"}},
			{Hop: Hop{Netns: "qr", Interface: "qr-1", Node: "router r"}, Seen: true, packet: tc.answer},
			{Hop: Hop{Netns: "vm", Interface: "eth0", Node: "instance vm"}, Seen: true, packet: tc.answer},
		}}
		if got := errorAnswer(r); got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, got, tc.want)
		}
	}
}

func TestSendReason(t *testing.T) {
	src := Source{Node: "instance vm1", Addr: netip.MustParseAddr("2001:db8:1::5")}
	dst := netip.MustParseAddr("2001:db8:ff::1")
	for _, tc := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("bind: %w", unix.EADDRNOTAVAIL), "instance vm1 does not hold 2001:db8:1::5 (yet): an IPv6 address from router advertisements or DHCPv6 is not configured, or still tentative"},
		{fmt.Errorf("send: %w", unix.ENETUNREACH), "instance vm1 has no route to 2001:db8:ff::1: the probe could not be sent"},
		{fmt.Errorf("send: %w", unix.EPERM), "the probe could not be sent: send: operation not permitted"},
	} {
		if got := sendReason(src, dst, tc.err); !strings.HasPrefix(got, tc.want) {
			t.Errorf("sendReason(%v) = %q, want it to start %q", tc.err, got, tc.want)
		}
	}
}

// TestPrintPolicyAccepts: the accepts of chain policies, one per hook of
// every table on the path, are listed only when asked for (-v); a rule's
// verdict always is.
func TestPrintPolicyAccepts(t *testing.T) {
	r := &Result{Protocol: "icmp", Src: "10.0.0.5", Dst: "203.0.113.1", From: "instance vm1",
		Probe: &Probe{Proto: capture.ProtoICMP},
		NFTrace: []NFTEvent{
			{Node: "the host", Family: "inet", Table: "nsnet_fw", Chain: "forward", Verdict: "accept", Policy: true},
			{Node: "the host", Family: "bridge", Table: "nsnet_fw", Chain: "prerouting", Verdict: "accept", Policy: true},
			{Node: "router r1", Family: "inet", Table: "nsnet", Chain: "postrouting", Handle: 21, Comment: "SNAT", Verdict: "accept"},
		}}
	policy := "accept by the policy of chain forward in table inet nsnet_fw"
	rule := `accept by rule handle 21 of chain postrouting in table inet nsnet, router r1 (comment "SNAT")`
	for _, tc := range []struct {
		verbose       bool
		want, wantNot []string
	}{
		{false, []string{rule, "(2 accepts by the policy of a chain left out; -v lists them)"}, []string{policy}},
		{true, []string{rule, policy}, []string{"left out"}},
	} {
		var b strings.Builder
		if err := r.Print(&b, tc.verbose); err != nil {
			t.Fatal(err)
		}
		for _, w := range tc.want {
			if !strings.Contains(b.String(), w) {
				t.Errorf("verbose=%v: no %q in\n%s", tc.verbose, w, b.String())
			}
		}
		for _, w := range tc.wantNot {
			if strings.Contains(b.String(), w) {
				t.Errorf("verbose=%v: %q in\n%s", tc.verbose, w, b.String())
			}
		}
	}
}

// TestPrintHairpinRewrites: a hairpin crosses the host's bridge port
// twice; a rewrite shows under the hop where it was seen, not under every
// crossing of that interface.
func TestPrintHairpinRewrites(t *testing.T) {
	way := []HopSeen{
		sighting("nse-red", "eth0", "instance red", "192.168.24.10", "192.168.24.1", 40000, 8080, 0),
		sighting("nse-host", "tapred", "bridge lan", "192.168.24.10", "192.168.24.1", 40000, 8080, 0),
		sighting("nse-host", "nsb-lan", "host gateway", "192.168.24.10", "192.168.24.10", 40000, 80, 0),
		sighting("nse-host", "tapred", "bridge lan", "192.168.24.1", "192.168.24.10", 40000, 80, 0),
	}
	r := &Result{Protocol: "tcp", Src: "192.168.24.10", Dst: "192.168.24.1", DstPort: 8080, From: "instance red",
		Probe: &Probe{Proto: capture.ProtoTCP, DstPort: 8080}, Way: way, Rewrites: rewrites("out", way)}
	var b strings.Builder
	if err := r.Print(&b, false); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"DNAT 192.168.24.1:8080 → 192.168.24.10:80", "SNAT 192.168.24.10:40000 → 192.168.24.1:40000"} {
		if n := strings.Count(out, want); n != 1 {
			t.Errorf("%q printed %d times, want once:\n%s", want, n, out)
		}
	}
	if i, j := strings.Index(out, "  4  "), strings.Index(out, "SNAT 192.168.24.10:40000"); i < 0 || j < i {
		t.Errorf("the SNAT is not under hop 4:\n%s", out)
	}
}

// TestPrintWideNames: node names in CJK take two terminal columns a
// character; the hop table's columns still line up on a terminal: each
// hop's interface starts at the same display column.
func TestPrintWideNames(t *testing.T) {
	r := &Result{Protocol: "icmp", Src: "10.0.0.5", Dst: "10.0.1.5", From: "instance 虚拟机",
		Probe: &Probe{Proto: capture.ProtoICMP},
		Way: []HopSeen{
			sighting("nse-虚拟机", "eth0", "instance 虚拟机", "10.0.0.5", "10.0.1.5", 0, 0, 7),
			sighting("nse-host", "tap1", "bridge 网络", "10.0.0.5", "10.0.1.5", 0, 0, 7),
			sighting("nse-host", "tap2", "bridge blue", "10.0.0.5", "10.0.1.5", 0, 0, 7),
			{Hop: Hop{Netns: "nse-qrouter-1", Interface: "qr-1", Node: "router ルーター"}},
		}}
	var b strings.Builder
	if err := r.Print(&b, false); err != nil {
		t.Fatal(err)
	}
	cols := map[int]bool{}
	for _, l := range strings.Split(b.String(), "\n") {
		for _, ifname := range []string{" eth0 ", " tap1 ", " tap2 ", " qr-1 "} {
			if i := strings.Index(l, ifname); i >= 0 {
				cols[displayWidth(l[:i])] = true
			}
		}
	}
	if len(cols) != 1 {
		t.Errorf("interfaces start at display columns %v, want one:\n%s", cols, b.String())
	}
}
