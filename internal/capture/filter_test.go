package capture

import (
	"encoding/binary"
	"net/netip"
	"strings"
	"testing"
)

// ipv4Frame builds an Ethernet frame carrying an IPv4 packet of proto with
// the given transport header and payload.
func ipv4Frame(src, dst string, proto uint8, l4 []byte) []byte {
	f := make([]byte, 14+20)
	copy(f[0:6], []byte{2, 0, 0, 0, 0, 2})
	copy(f[6:12], []byte{2, 0, 0, 0, 0, 1})
	binary.BigEndian.PutUint16(f[12:14], EtherTypeIPv4)
	ip := f[14:]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:4], uint16(20+len(l4)))
	ip[8] = 64
	ip[9] = proto
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(ip[12:16], s[:])
	copy(ip[16:20], d[:])
	return append(f, l4...)
}

func ports(sport, dport uint16, rest int) []byte {
	b := make([]byte, rest)
	binary.BigEndian.PutUint16(b[0:2], sport)
	binary.BigEndian.PutUint16(b[2:4], dport)
	return b
}

func tcpSyn(src, dst string, sport, dport uint16, seq uint32) []byte {
	h := ports(sport, dport, 20)
	binary.BigEndian.PutUint32(h[4:8], seq)
	h[12] = 5 << 4
	h[13] = TCPSyn
	return ipv4Frame(src, dst, ProtoTCP, h)
}

func icmpEcho(src, dst string, id, seq uint16, data string) []byte {
	h := make([]byte, 8)
	h[0] = ICMPEchoRequest
	binary.BigEndian.PutUint16(h[4:6], id)
	binary.BigEndian.PutUint16(h[6:8], seq)
	return ipv4Frame(src, dst, ProtoICMP, append(h, data...))
}

func arpRequest(sender, target string) []byte {
	f := make([]byte, 14+28)
	binary.BigEndian.PutUint16(f[12:14], EtherTypeARP)
	a := f[14:]
	binary.BigEndian.PutUint16(a[0:2], 1)
	binary.BigEndian.PutUint16(a[2:4], EtherTypeIPv4)
	a[4], a[5] = 6, 4
	binary.BigEndian.PutUint16(a[6:8], 1)
	s, t := netip.MustParseAddr(sender).As4(), netip.MustParseAddr(target).As4()
	copy(a[14:18], s[:])
	copy(a[24:28], t[:])
	return f
}

func TestFilter(t *testing.T) {
	syn := tcpSyn("10.0.0.5", "203.0.113.1", 40000, 80, 7)
	udp := ipv4Frame("10.0.0.5", "10.0.0.1", ProtoUDP, ports(5353, 53, 8))
	ping := icmpEcho("198.51.100.10", "203.0.113.1", 9, 1, "hi")
	arp := arpRequest("10.0.0.1", "10.0.0.5")
	tests := []struct {
		expr string
		want []bool // syn, udp, ping, arp
	}{
		{"", []bool{true, true, true, true}},
		{"tcp", []bool{true, false, false, false}},
		{"ip", []bool{true, true, true, false}},
		{"not arp", []bool{true, true, true, false}},
		{"!arp", []bool{true, true, true, false}},
		{"host 10.0.0.5", []bool{true, true, false, true}},
		{"src host 10.0.0.5", []bool{true, true, false, false}},
		{"dst host 10.0.0.5", []bool{false, false, false, true}},
		{"net 203.0.113.0/24", []bool{true, false, true, false}},
		{"src net 198.51.100.0/24", []bool{false, false, true, false}},
		{"port 53", []bool{false, true, false, false}},
		{"dst port 80", []bool{true, false, false, false}},
		{"src port 80", []bool{false, false, false, false}},
		{"tcp and port 80", []bool{true, false, false, false}},
		{"icmp or udp", []bool{false, true, true, false}},
		{"icmp || udp && port 53", []bool{false, true, true, false}},
		{"(icmp or udp) and host 10.0.0.5", []bool{false, true, false, false}},
		{"not (tcp or arp) and not icmp", []bool{false, true, false, false}},
	}
	frames := [][]byte{syn, udp, ping, arp}
	for _, tc := range tests {
		f, err := ParseFilter(tc.expr)
		if err != nil {
			t.Errorf("ParseFilter(%q): %v", tc.expr, err)
			continue
		}
		for i, fr := range frames {
			if got := f(Decode(fr)); got != tc.want[i] {
				t.Errorf("%q on %s = %v, want %v", tc.expr, Decode(fr).Summary(), got, tc.want[i])
			}
		}
	}
}

func TestFilterErrors(t *testing.T) {
	for expr, want := range map[string]string{
		"tcp and":           "ends too early",
		"host":              `"host" needs a value`,
		"host 10.0.0":       "want an IPv4 or IPv6 address",
		"host fe80::1%eth0": "want an IPv4 or IPv6 address",
		"port http":         "want a number",
		"net 10.0.0.0":      "want an IPv4 or IPv6 prefix",
		"net 2001:db8::":    "want an IPv4 or IPv6 prefix",
		"(tcp or udp":       "missing )",
		"tcp udp":           `unexpected "udp"`,
		"vlan 5":            `unknown word "vlan"`,
		"icmpv6":            `unknown word "icmpv6"`,
		"src hots 1.2.3.4":  `unknown word "hots"`,
	} {
		_, err := ParseFilter(expr)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseFilter(%q) = %v, want an error containing %q", expr, err, want)
		}
	}
}

func TestDecodeSummary(t *testing.T) {
	// An ICMP port unreachable quoting a UDP packet.
	quoted := ipv4Frame("10.0.0.5", "203.0.113.1", ProtoUDP, ports(40000, 9, 8))[14:]
	unreach := append([]byte{ICMPUnreachable, 3, 0, 0, 0, 0, 0, 0}, quoted...)
	tests := []struct {
		frame []byte
		want  string
	}{
		{tcpSyn("10.0.0.5", "203.0.113.1", 40000, 80, 7), "10.0.0.5:40000 > 203.0.113.1:80: TCP [S] seq 7, ack 0, length 0"},
		{icmpEcho("10.0.0.5", "203.0.113.1", 9, 1, "hello"), "10.0.0.5 > 203.0.113.1: ICMP echo request, id 9, seq 1, length 13"},
		{arpRequest("10.0.0.1", "10.0.0.5"), "ARP, Request who-has 10.0.0.5 tell 10.0.0.1"},
		{ipv4Frame("203.0.113.1", "10.0.0.5", ProtoICMP, unreach),
			"203.0.113.1 > 10.0.0.5: ICMP port unreachable (for udp 10.0.0.5:40000 > 203.0.113.1:9)"},
		{[]byte{1, 2, 3}, "ethertype 0x0000"},
	}
	for _, tc := range tests {
		if got := Decode(tc.frame).Summary(); got != tc.want {
			t.Errorf("Summary = %q, want %q", got, tc.want)
		}
	}
}

func TestFilterIPv6(t *testing.T) {
	syn := ports(40000, 80, 20)
	syn[12], syn[13] = 5<<4, TCPSyn
	syn6 := ipv6Frame("2001:db8:1::5", "2001:db8:9::1", nil, ProtoTCP, syn)
	dhcp6 := ipv6Frame("fe80::5", "ff02::1:2", nil, ProtoUDP, ports(546, 547, 8))
	ns := ipv6Frame("2001:db8:1::5", "ff02::1:ff00:1", nil, ProtoICMPv6, icmp6(ICMPv6NeighborSolic, 0, append(u32(0), addr16("2001:db8:1::1")...)))
	syn4 := tcpSyn("10.0.0.5", "203.0.113.1", 40000, 80, 7)
	ping4 := icmpEcho("10.0.0.5", "203.0.113.1", 9, 1, "hi")
	tests := []struct {
		expr string
		want []bool // syn6, dhcp6, ns, syn4, ping4
	}{
		{"ip6", []bool{true, true, true, false, false}},
		{"ip", []bool{false, false, false, true, true}},
		{"icmp6", []bool{false, false, true, false, false}},
		{"icmp", []bool{false, false, false, false, true}},
		{"tcp", []bool{true, false, false, true, false}},
		{"tcp and port 80", []bool{true, false, false, true, false}},
		{"udp and dst port 547", []bool{false, true, false, false, false}},
		{"host 2001:db8:1::5", []bool{true, false, true, false, false}},
		{"dst host 2001:db8:9::1", []bool{true, false, false, false, false}},
		{"net 2001:db8::/32", []bool{true, false, true, false, false}},
		{"src net fe80::/10", []bool{false, true, false, false, false}},
		{"dst net ff02::/16", []bool{false, true, true, false, false}},
		{"net 2001:db8:1::5/64", []bool{true, false, true, false, false}},
		{"ip6 and not icmp6", []bool{true, true, false, false, false}},
		{"host 10.0.0.5 or host 2001:db8:9::1", []bool{true, false, false, true, true}},
	}
	frames := [][]byte{syn6, dhcp6, ns, syn4, ping4}
	for _, tc := range tests {
		f, err := ParseFilter(tc.expr)
		if err != nil {
			t.Errorf("ParseFilter(%q): %v", tc.expr, err)
			continue
		}
		for i, fr := range frames {
			if got := f(Decode(fr)); got != tc.want[i] {
				t.Errorf("%q on %s = %v, want %v", tc.expr, Decode(fr).Summary(), got, tc.want[i])
			}
		}
	}
}
