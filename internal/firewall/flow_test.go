package firewall

import (
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/google/nftables"
	vnl "github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/nsnet/nsnet/internal/nfsock"
)

func inZone(f *vnl.ConntrackFlow, zone uint16) *vnl.ConntrackFlow {
	f.Zone = zone
	return f
}

// TestFlowMatcherTranslated: removing a rule forgets the connections it
// admitted as the forward hook judged them, after the destination was
// translated — a published port's connections too — and before the
// source was; in the zone of the port's bridge only.
func TestFlowMatcherTranslated(t *testing.T) {
	mac, _ := net.ParseMAC("fa:16:3e:00:00:02")
	web := netip.MustParseAddr("10.9.0.2")
	http := Rule{Direction: Ingress, ProtoMin: unix.IPPROTO_TCP, ProtoMax: unix.IPPROTO_TCP, PortMin: 80, PortMax: 80, Remote: netip.MustParsePrefix("192.0.2.0/24")}
	zoned := []string{"nsb-other", "nsb-web"}
	c := compile(Spec{Zoned: zoned, Ports: []Port{{Interface: "tapweb", MAC: mac, Bridge: "nsb-web", Addresses: []netip.Addr{web}, Rules: []Rule{http}}}}, compiled{})
	// The rule is removed: the port's rules allow nothing now.
	sig := c.ports[c.tags["tapweb"]].sig
	if removed := sig.elems[setKey{family: nftables.TableFamilyINet, name: rulesSet(sig.num, Ingress, false)}]; len(removed) != 1 {
		t.Fatalf("want the rule's one element, got %d", len(removed))
	}
	next := compile(Spec{Zoned: zoned, Ports: []Port{{Interface: "tapweb", MAC: mac, Bridge: "nsb-web", Addresses: []netip.Addr{web}}}}, c)
	m := nfsock.FlowMatch(newFlowMatcher(c, next).match)
	zone := c.zones["nsb-web"]
	flow := func(src, dst, replySrc string, dport, replySport uint16) *vnl.ConntrackFlow {
		return &vnl.ConntrackFlow{Zone: zone,
			Forward: vnl.IPTuple{Protocol: unix.IPPROTO_TCP, SrcIP: net.ParseIP(src), DstIP: net.ParseIP(dst), SrcPort: 40000, DstPort: dport},
			Reverse: vnl.IPTuple{Protocol: unix.IPPROTO_TCP, SrcIP: net.ParseIP(replySrc), DstIP: net.ParseIP(src), SrcPort: replySport, DstPort: 40000},
		}
	}
	for _, tt := range []struct {
		name string
		flow *vnl.ConntrackFlow
		want bool
	}{
		{"to web:80", flow("192.0.2.1", "10.9.0.2", "10.9.0.2", 80, 80), true},
		{"to the host's 8080, published as web:80", flow("192.0.2.1", "198.51.100.32", "10.9.0.2", 8080, 80), true},
		{"to web:8080", flow("192.0.2.1", "10.9.0.2", "10.9.0.2", 8080, 8080), false},
		{"from outside the rule's range", flow("198.51.100.7", "10.9.0.2", "10.9.0.2", 80, 80), false},
		{"to web:80 on another network with the same addresses", inZone(flow("192.0.2.1", "10.9.0.2", "10.9.0.2", 80, 80), c.zones["nsb-other"]), false},
		{"to web:80 through the host (zone 0)", inZone(flow("192.0.2.1", "10.9.0.2", "10.9.0.2", 80, 80), 0), false},
	} {
		if got := m.MatchConntrackFlow(tt.flow); got != tt.want {
			t.Errorf("%s: matched %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestFlowMatcherIPv6: removing an IPv6 rule forgets the IPv6 connections
// it admitted — to the port's addresses and to its EUI-64 link-local
// address, which instances on one link may connect to — and no others.
func TestFlowMatcherIPv6(t *testing.T) {
	mac, _ := net.ParseMAC("fa:16:3e:00:00:02")
	web := netip.MustParseAddr("2001:db8:9::2")
	ssh := Rule{Direction: Ingress, IPv6: true, ProtoMin: unix.IPPROTO_TCP, ProtoMax: unix.IPPROTO_TCP, PortMin: 22, PortMax: 22, Remote: netip.MustParsePrefix("::/0")}
	echo := Rule{Direction: Ingress, IPv6: true, ProtoMin: unix.IPPROTO_ICMPV6, ProtoMax: unix.IPPROTO_ICMPV6, PortMin: 128 << 8, PortMax: 128<<8 | 0xff, Remote: netip.MustParsePrefix("fe80::/64")}
	port := func(rules ...Rule) Spec {
		return Spec{Zoned: []string{"nsb-web"}, Ports: []Port{{Interface: "tapweb", MAC: mac, Bridge: "nsb-web", Addresses: []netip.Addr{web}, Rules: rules}}}
	}
	c := compile(port(ssh, echo), compiled{})
	next := compile(port(), c)
	m := nfsock.FlowMatch(newFlowMatcher(c, next).match)
	zone := c.zones["nsb-web"]
	flow := func(proto uint8, src, dst string, dport uint16) *vnl.ConntrackFlow {
		return &vnl.ConntrackFlow{Zone: zone,
			Forward: vnl.IPTuple{Protocol: proto, SrcIP: net.ParseIP(src), DstIP: net.ParseIP(dst), SrcPort: 40000, DstPort: dport},
			Reverse: vnl.IPTuple{Protocol: proto, SrcIP: net.ParseIP(dst), DstIP: net.ParseIP(src), SrcPort: dport, DstPort: 40000},
		}
	}
	lla := "fe80::f816:3eff:fe00:2"
	for _, tt := range []struct {
		name string
		flow *vnl.ConntrackFlow
		want bool
	}{
		{"ssh to its address", flow(unix.IPPROTO_TCP, "2001:db8:9::1", "2001:db8:9::2", 22), true},
		{"ssh to its link-local address", flow(unix.IPPROTO_TCP, "fe80::1", lla, 22), true},
		{"echo to its link-local address", flow(unix.IPPROTO_ICMPV6, "fe80::1", lla, 0), true},
		{"ssh to another's address", flow(unix.IPPROTO_TCP, "2001:db8:9::1", "2001:db8:9::3", 22), false},
		{"https to its address", flow(unix.IPPROTO_TCP, "2001:db8:9::1", "2001:db8:9::2", 443), false},
		{"echo from outside the rule's prefix", flow(unix.IPPROTO_ICMPV6, "2001:db8:9::1", "2001:db8:9::2", 0), false},
		{"ssh to its address in another zone", inZone(flow(unix.IPPROTO_TCP, "2001:db8:9::1", "2001:db8:9::2", 22), 0), false},
	} {
		if got := m.MatchConntrackFlow(tt.flow); got != tt.want {
			t.Errorf("%s: matched %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestFlowMatcherGroupMembers: a member leaving a remote group forgets
// the connections the rules naming the group admitted from (ingress) or
// to (egress) its addresses only, of every port whose rules name it, and
// not those another member with the same address still admits.
func TestFlowMatcherGroupMembers(t *testing.T) {
	mac, _ := net.ParseMAC("fa:16:3e:00:00:02")
	web := netip.MustParseAddr("10.9.0.2")
	http := Rule{Direction: Ingress, ProtoMin: unix.IPPROTO_TCP, ProtoMax: unix.IPPROTO_TCP, PortMin: 80, PortMax: 80, Group: "web"}
	egress := Rule{Direction: Egress, ProtoMax: 255, PortMax: 65535, Group: "web"}
	spec := func(members ...string) Spec {
		var ms []netip.Prefix
		for _, a := range members {
			ms = append(ms, netip.MustParsePrefix(a))
		}
		return Spec{Zoned: []string{"nsb-web"}, Groups: map[string]Members{"web": MembersOf(ms...)},
			Ports: []Port{{Interface: "tapweb", MAC: mac, Bridge: "nsb-web", Addresses: []netip.Addr{web}, Rules: []Rule{http, egress}}}}
	}
	c := compile(spec("10.9.0.5/32", "10.9.0.6/32", "10.9.0.8/29", "10.9.0.2/32"), compiled{})
	// 10.9.0.5 and the range go; 10.9.0.6 stays; 10.9.0.12 is still in
	// the range 10.9.0.12/30 that another member holds.
	next := compile(spec("10.9.0.6/32", "10.9.0.12/30", "10.9.0.2/32"), c)
	m := nfsock.FlowMatch(newFlowMatcher(c, next).match)
	zone := c.zones["nsb-web"]
	flow := func(src, dst string, dport uint16) *vnl.ConntrackFlow {
		return &vnl.ConntrackFlow{Zone: zone,
			Forward: vnl.IPTuple{Protocol: unix.IPPROTO_TCP, SrcIP: net.ParseIP(src), DstIP: net.ParseIP(dst), SrcPort: 40000, DstPort: dport},
			Reverse: vnl.IPTuple{Protocol: unix.IPPROTO_TCP, SrcIP: net.ParseIP(dst), DstIP: net.ParseIP(src), SrcPort: dport, DstPort: 40000},
		}
	}
	for _, tt := range []struct {
		name string
		flow *vnl.ConntrackFlow
		want bool
	}{
		{"from a member gone", flow("10.9.0.5", "10.9.0.2", 80), true},
		{"to a member gone", flow("10.9.0.2", "10.9.0.5", 443), true},
		{"from a member's range gone", flow("10.9.0.9", "10.9.0.2", 80), true},
		{"from the range another member still holds", flow("10.9.0.12", "10.9.0.2", 80), false},
		{"from a member that stays", flow("10.9.0.6", "10.9.0.2", 80), false},
		{"from a member gone, to a port no rule allowed", flow("10.9.0.5", "10.9.0.2", 22), false},
		{"from a member gone, in another zone", inZone(flow("10.9.0.5", "10.9.0.2", 80), 0), false},
	} {
		if got := m.MatchConntrackFlow(tt.flow); got != tt.want {
			t.Errorf("%s: matched %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestMemberChanges: the members a group lost and gained, in order, from
// members built apart and from members made from others by changes.
func TestMemberChanges(t *testing.T) {
	l := func(ss ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, s := range ss {
			out = append(out, netip.MustParsePrefix(s))
		}
		return out
	}
	p := func(ss ...string) Members { return MembersOf(l(ss...)...) }
	big := MembersOf()
	for i := range 5000 {
		big = big.With(netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), 32))
	}
	for _, tt := range []struct {
		name               string
		old, next          Members
		wantLost, wantGain []netip.Prefix
	}{
		{"none before", Members{}, p("10.0.0.1/32"), nil, l("10.0.0.1/32")},
		{"none after", p("10.0.0.1/32", "::1/128"), Members{}, l("10.0.0.1/32", "::1/128"), nil},
		{"same", p("10.0.0.1/32", "10.0.0.0/24"), p("10.0.0.0/24", "10.0.0.1/32", "10.0.0.1/32"), nil, nil},
		{"one joins", p("10.0.0.1/32", "10.0.0.3/32"), p("10.0.0.1/32", "10.0.0.2/32", "10.0.0.3/32"), nil, l("10.0.0.2/32")},
		{"one leaves", p("10.0.0.1/32", "10.0.0.3/32"), p("10.0.0.1/32"), l("10.0.0.3/32"), nil},
		{"a range for its address", p("10.0.0.0/32"), p("10.0.0.0/30"), l("10.0.0.0/32"), l("10.0.0.0/30")},
		{"families mixed", p("10.0.0.1/32", "2001:db8::1/128"), p("2001:db8::2/128", "10.0.0.1/32"), l("2001:db8::1/128"), l("2001:db8::2/128")},
		{"unmasked", p("10.0.0.0/24"), p("10.0.0.9/24"), nil, nil},
		{"made by changes", big, big.With(netip.MustParsePrefix("10.2.0.0/16")).Without(netip.MustParsePrefix("10.1.0.7/32")).
			With(netip.MustParsePrefix("10.1.0.7/32")).Without(netip.MustParsePrefix("10.1.1.2/32")),
			l("10.1.1.2/32"), l("10.2.0.0/16")},
	} {
		lost, gained := memberChanges(tt.old, tt.next)
		if !slices.Equal(lost, tt.wantLost) || !slices.Equal(gained, tt.wantGain) {
			t.Errorf("%s: lost %v gained %v, want %v and %v", tt.name, lost, gained, tt.wantLost, tt.wantGain)
		}
		if same := tt.old.Equal(tt.next); same != (len(tt.wantLost)+len(tt.wantGain) == 0) {
			t.Errorf("%s: Equal is %v", tt.name, same)
		}
	}
}

// BenchmarkGroupChange: a remote group of 10,000 members gains one or
// loses one, compiled as a change and its lost members found, as Apply
// does. The flow matcher compared every old member with every new one
// (10,000² steps, ~60 ms a change on the benchmark machine: most of a
// waited port create at 10,000 ports in bench/agentscale), and every
// change compiled all 10,000 members into elements again; then the
// agent's sorted list was copied and walked whole per change (about a
// millisecond). Versions of one Members are compared along the paths
// they do not share.
func BenchmarkGroupChange(b *testing.B) {
	mac, _ := net.ParseMAC("fa:16:3e:00:00:02")
	// The members as the agent hands them over: versions of one set.
	addr := func(i int) netip.Prefix {
		return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 80, byte(i >> 8), byte(i)}), 32)
	}
	var members []Members
	var m Members
	for i := range 10001 {
		m = m.With(addr(i))
		if i >= 9999 {
			members = append(members, m)
		}
	}
	spec := func(m Members) Spec {
		rule := Rule{Direction: Ingress, ProtoMax: 255, PortMax: 65535, Group: "web"}
		return Spec{Zoned: []string{"nsb-web"}, Groups: map[string]Members{"web": m},
			Ports: []Port{{Interface: "tapweb", MAC: mac, Bridge: "nsb-web", Rules: []Rule{rule}}}}
	}
	for _, tt := range []struct {
		name     string
		from, to Members
	}{{"joins", members[0], members[1]}, {"leaves", members[1], members[0]}} {
		b.Run(tt.name, func(b *testing.B) {
			old, next := compile(spec(tt.from), compiled{}), spec(tt.to)
			for b.Loop() {
				newFlowMatcher(old, compile(next, old))
			}
		})
	}
}
