package capture

import (
	"encoding/binary"
	"net"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

// ext6 is an extension header to put before the transport: its type and
// its body after the next-header and length bytes (padded to 8 octets).
type ext6 struct {
	typ  uint8
	body []byte
}

// ipv6Frame builds an Ethernet frame carrying an IPv6 packet: the given
// extension headers, then proto's header and payload in l4.
func ipv6Frame(src, dst string, exts []ext6, proto uint8, l4 []byte) []byte {
	var chain []byte
	next := proto
	for i := len(exts) - 1; i >= 0; i-- {
		e := exts[i]
		var h []byte
		if e.typ == ext6Fragment {
			h = append([]byte{next, 0}, e.body...)
		} else {
			n := (2 + len(e.body) + 7) / 8 * 8
			h = make([]byte, n)
			h[0], h[1] = next, byte(n/8-1)
			copy(h[2:], e.body)
		}
		chain = append(h, chain...)
		next = e.typ
	}
	f := make([]byte, 14+40)
	copy(f[0:6], []byte{0x33, 0x33, 0, 0, 0, 1})
	copy(f[6:12], []byte{0xfa, 0x16, 0x3e, 0, 0, 1})
	binary.BigEndian.PutUint16(f[12:14], EtherTypeIPv6)
	ip := f[14:]
	binary.BigEndian.PutUint32(ip[0:4], 6<<28|0x12345)
	binary.BigEndian.PutUint16(ip[4:6], uint16(len(chain)+len(l4)))
	ip[6], ip[7] = next, 64
	s, d := netip.MustParseAddr(src).As16(), netip.MustParseAddr(dst).As16()
	copy(ip[8:24], s[:])
	copy(ip[24:40], d[:])
	f = append(f, chain...)
	return append(f, l4...)
}

func icmp6(typ, code uint8, body []byte) []byte {
	return append([]byte{typ, code, 0, 0}, body...)
}

func u32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

func addr16(s string) []byte {
	a := netip.MustParseAddr(s).As16()
	return a[:]
}

// ndOpt is an ND option of type typ with body (padded to 8 octets).
func ndOpt(typ uint8, body []byte) []byte {
	n := (2 + len(body) + 7) / 8 * 8
	o := make([]byte, n)
	o[0], o[1] = typ, byte(n/8)
	copy(o[2:], body)
	return o
}

var mac1 = []byte{0xfa, 0x16, 0x3e, 0xaa, 0xbb, 0xcc}

// ra is a router advertisement: hop limit 64, managed and other flags,
// lifetime 1800s, a SLAAC prefix, MTU 1450, an RDNSS, the router's MAC.
func ra() []byte {
	body := []byte{64, 0xc0, 0x07, 0x08}
	body = append(body, u32(0)...)
	body = append(body, u32(0)...)
	prefix := append([]byte{64, 0xc0}, u32(86400)...)
	prefix = append(prefix, u32(14400)...)
	prefix = append(prefix, 0, 0, 0, 0)
	prefix = append(prefix, addr16("2001:db8:1::")...)
	body = append(body, ndOpt(3, prefix)...)
	body = append(body, ndOpt(5, append([]byte{0, 0}, u32(1450)...))...)
	body = append(body, ndOpt(25, append(append([]byte{0, 0}, u32(600)...), addr16("2001:db8:1::2")...))...)
	body = append(body, ndOpt(1, mac1)...)
	return ipv6Frame("fe80::1", "ff02::1", nil, ProtoICMPv6, icmp6(ICMPv6RouterAdvert, 0, body))
}

func TestDecodeIPv6(t *testing.T) {
	syn := ports(40000, 80, 20)
	binary.BigEndian.PutUint32(syn[4:8], 7)
	syn[12], syn[13] = 5<<4, TCPSyn
	echo := append([]byte{0, 9, 0, 1}, "hello"...)
	quoted := ipv6Frame("2001:db8:1::5", "2001:db8:9::1", nil, ProtoUDP, ports(40000, 9, 8))[14:]
	ns := append(append(u32(0), addr16("2001:db8:1::1")...), ndOpt(1, mac1)...)
	na := append(append([]byte{0xe0, 0, 0, 0}, addr16("2001:db8:1::5")...), ndOpt(2, mac1)...)
	dhcp := append(ports(546, 547, 8), 1, 0xab, 0xcd, 0xef)
	tests := []struct {
		name  string
		frame []byte
		want  string
		check func(*Packet) string // "" when the fields are right
	}{
		{"echo request", ipv6Frame("2001:db8:1::5", "2001:db8:9::1", nil, ProtoICMPv6, icmp6(ICMPv6EchoRequest, 0, echo)),
			"2001:db8:1::5 > 2001:db8:9::1: ICMP6, echo request, id 9, seq 1, length 13",
			func(p *Packet) string {
				if !p.IsEchoRequest() || p.IsEchoReply() || p.ICMPID != 9 || string(p.Payload) != "hello" || p.TTL != 64 || p.FlowLabel != 0x12345 {
					return "echo fields"
				}
				return ""
			}},
		{"TCP behind hop-by-hop and destination options",
			ipv6Frame("2001:db8:1::5", "2001:db8:9::1", []ext6{{ext6HopByHop, make([]byte, 6)}, {ext6DestOpts, make([]byte, 14)}}, ProtoTCP, syn),
			"[2001:db8:1::5]:40000 > [2001:db8:9::1]:80: TCP [S] seq 7, ack 0, length 0",
			func(p *Packet) string {
				if !reflect.DeepEqual(p.ExtHeaders, []uint8{ext6HopByHop, ext6DestOpts}) || p.Proto != ProtoTCP || p.Seq != 7 {
					return "extension headers or TCP"
				}
				return ""
			}},
		{"first fragment of UDP", ipv6Frame("2001:db8:1::5", "2001:db8:9::1", []ext6{{ext6Fragment, []byte{0, 1, 0, 0, 0x12, 0x34}}}, ProtoUDP, ports(40000, 53, 8)),
			"[2001:db8:1::5]:40000 > [2001:db8:9::1]:53: UDP, length 0",
			func(p *Packet) string {
				if p.IPID != 0x1234 || p.FragOffset != 0 {
					return "fragment id"
				}
				return ""
			}},
		{"later fragment", ipv6Frame("2001:db8:1::5", "2001:db8:9::1", []ext6{{ext6Fragment, []byte{0x05, 0xa8, 0, 0, 0x12, 0x34}}}, ProtoUDP, ports(1, 2, 8)),
			"2001:db8:1::5 > 2001:db8:9::1: frag (offset 1448) of id 4660, udp", nil},
		{"DHCPv6 by port", ipv6Frame("fe80::f816:3eff:feaa:bbcc", "ff02::1:2", nil, ProtoUDP, dhcp),
			"[fe80::f816:3eff:feaa:bbcc]:546 > [ff02::1:2]:547: DHCPv6 solicit, length 4", nil},
		{"neighbour solicitation", ipv6Frame("2001:db8:1::5", "ff02::1:ff00:1", nil, ProtoICMPv6, icmp6(ICMPv6NeighborSolic, 0, ns)),
			"2001:db8:1::5 > ff02::1:ff00:1: ICMP6, neighbor solicitation, who has 2001:db8:1::1, source link-address fa:16:3e:aa:bb:cc",
			func(p *Packet) string {
				if p.ND == nil || p.ND.Target != netip.MustParseAddr("2001:db8:1::1") || p.ND.SourceLLA.String() != "fa:16:3e:aa:bb:cc" {
					return "ND target or source link-address"
				}
				return ""
			}},
		{"neighbour advertisement", ipv6Frame("2001:db8:1::5", "2001:db8:1::1", nil, ProtoICMPv6, icmp6(ICMPv6NeighborAdvert, 0, na)),
			"2001:db8:1::5 > 2001:db8:1::1: ICMP6, neighbor advertisement, tgt is 2001:db8:1::5, flags [R, S, O], target link-address fa:16:3e:aa:bb:cc", nil},
		{"router solicitation", ipv6Frame("fe80::5", "ff02::2", nil, ProtoICMPv6, icmp6(ICMPv6RouterSolicit, 0, append(u32(0), ndOpt(1, mac1)...))),
			"fe80::5 > ff02::2: ICMP6, router solicitation, source link-address fa:16:3e:aa:bb:cc", nil},
		{"router advertisement", ra(),
			"fe80::1 > ff02::1: ICMP6, router advertisement, hop limit 64, flags [managed, other], router lifetime 1800s, reachable 0ms, retrans 0ms, " +
				"prefix 2001:db8:1::/64 (on-link, autonomous, valid 86400s, preferred 14400s), mtu 1450, rdnss 2001:db8:1::2 (lifetime 600s), source link-address fa:16:3e:aa:bb:cc",
			func(p *Packet) string {
				want := &ND{HopLimit: 64, Flags: []string{"managed", "other"}, RouterLifetime: 1800, SourceLLA: net.HardwareAddr(mac1),
					Prefixes: []NDPrefix{{Prefix: netip.MustParsePrefix("2001:db8:1::/64"), OnLink: true, Autonomous: true, Valid: 86400, Preferred: 14400}},
					MTU:      1450, RDNSS: []netip.Addr{netip.MustParseAddr("2001:db8:1::2")}, RDNSSLifetime: 600}
				if !reflect.DeepEqual(p.ND, want) {
					return "ND fields"
				}
				return ""
			}},
		{"port unreachable quoting UDP", ipv6Frame("2001:db8:9::1", "2001:db8:1::5", nil, ProtoICMPv6, icmp6(ICMPv6Unreachable, 4, append(u32(0), quoted...))),
			"2001:db8:9::1 > 2001:db8:1::5: ICMP6, destination unreachable, port unreachable (for udp [2001:db8:1::5]:40000 > [2001:db8:9::1]:9)",
			func(p *Packet) string {
				if p.UnreachableKind() != "no listener" || p.Quoted == nil || p.Quoted.DstPort != 9 {
					return "quoted packet"
				}
				return ""
			}},
		{"no route", ipv6Frame("2001:db8:1::1", "2001:db8:1::5", nil, ProtoICMPv6, icmp6(ICMPv6Unreachable, 0, append(u32(0), quoted[:48]...))),
			"2001:db8:1::1 > 2001:db8:1::5: ICMP6, destination unreachable, no route (for udp [2001:db8:1::5]:40000 > [2001:db8:9::1]:9)",
			func(p *Packet) string {
				if p.UnreachableKind() != "no route" {
					return "kind"
				}
				return ""
			}},
		{"packet too big", ipv6Frame("2001:db8:1::1", "2001:db8:1::5", nil, ProtoICMPv6, icmp6(ICMPv6PacketTooBig, 0, append(u32(1280), quoted...))),
			"2001:db8:1::1 > 2001:db8:1::5: ICMP6, packet too big, mtu 1280 (for udp [2001:db8:1::5]:40000 > [2001:db8:9::1]:9)", nil},
		{"truncated header", ipv6Frame("::1", "::1", nil, ProtoTCP, nil)[:30], "IP6, truncated", nil},
		{"truncated option stops", ipv6Frame("2001:db8:1::5", "ff02::1:ff00:1", nil, ProtoICMPv6, icmp6(ICMPv6NeighborSolic, 0, append(append(u32(0), addr16("2001:db8:1::1")...), 1, 9, 0))),
			"2001:db8:1::5 > ff02::1:ff00:1: ICMP6, neighbor solicitation, who has 2001:db8:1::1", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := Decode(tc.frame)
			if got := p.Summary(); got != tc.want {
				t.Errorf("Summary\n got %q\nwant %q", got, tc.want)
			}
			if tc.check != nil {
				if what := tc.check(p); what != "" {
					t.Errorf("%s wrong: %+v (ND %+v)", what, p, p.ND)
				}
			}
		})
	}
}

func TestDescribeIPv6(t *testing.T) {
	ns := ipv6Frame("2001:db8:1::5", "ff02::1:ff00:1", nil, ProtoICMPv6, icmp6(ICMPv6NeighborSolic, 0, append(u32(0), addr16("2001:db8:1::1")...)))
	r := Describe("vm1", "eth0", Frame{Time: time.Unix(1, 0), Data: ns}, Decode(ns))
	if r.Src != "2001:db8:1::5" || r.Protocol != "icmp6" || r.ICMPType == nil || *r.ICMPType != ICMPv6NeighborSolic || r.NDTarget != "2001:db8:1::1" {
		t.Errorf("Describe = %+v", r)
	}
	if !strings.Contains(r.Summary, "who has 2001:db8:1::1") {
		t.Errorf("summary %q", r.Summary)
	}
}
