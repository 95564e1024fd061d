package firewall

import (
	"bytes"
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
	removed := c.ports[c.tags["tapweb"]].elems[setKey{family: nftables.TableFamilyINet, name: rulesSet4(c.tags["tapweb"])}]
	if len(removed) != 1 {
		t.Fatalf("want the rule's one element, got %d", len(removed))
	}
	next := compile(Spec{Zoned: zoned, Ports: []Port{{Interface: "tapweb", MAC: mac, Bridge: "nsb-web", Addresses: []netip.Addr{web}}}}, c)
	m := nfsock.FlowMatch(newFlowMatcher(removed, c, next).match)
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
	tag := c.tags["tapweb"]
	removed := c.ports[tag].elems[setKey{family: nftables.TableFamilyINet, name: rulesSet6(tag)}]
	next := compile(port(), c)
	m := nfsock.FlowMatch(newFlowMatcher(removed, c, next).match)
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

// TestFlowMatcherLooksOnlyAtWhatIsNoLongerAllowed: a member joining a
// remote group usually re-cuts the port's rule elements (10.9.0.10 and
// the new 10.9.0.11 become one element 10.9.0.10–11), removing an element
// whose keys the new ones still hold: no connection can have lost its
// rule, so the matcher keeps nothing to look for and Apply dumps no
// conntrack table (which costs a walk of the kernel's whole table on
// every such change). An element whose keys are no longer all allowed
// stays, for both families.
func TestFlowMatcherLooksOnlyAtWhatIsNoLongerAllowed(t *testing.T) {
	mac, _ := net.ParseMAC("fa:16:3e:00:00:02")
	tcpFrom := func(remotes ...string) []Rule {
		var rules []Rule
		for _, r := range remotes {
			p := netip.MustParsePrefix(r)
			rules = append(rules, Rule{Direction: Ingress, IPv6: p.Addr().Is6(), ProtoMin: unix.IPPROTO_TCP, ProtoMax: unix.IPPROTO_TCP, PortMin: 0, PortMax: 0xffff, Remote: p})
		}
		return rules
	}
	spec := func(rules []Rule) Spec {
		return Spec{Zoned: []string{"nsb-web"}, Ports: []Port{{Interface: "tapweb", MAC: mac, Bridge: "nsb-web",
			Addresses: []netip.Addr{netip.MustParseAddr("10.9.0.2"), netip.MustParseAddr("2001:db8:9::2")}, Rules: rules}}}
	}
	for _, tc := range []struct {
		name        string
		before, now []string
		wantLooked  int
	}{
		{"IPv4 member joins next to one", []string{"10.9.0.10/32"}, []string{"10.9.0.10/32", "10.9.0.11/32"}, 0},
		{"IPv6 member joins next to one", []string{"2001:db8:9::10/128"}, []string{"2001:db8:9::10/128", "2001:db8:9::11/128"}, 0},
		{"a wider rule replaces a narrower one", []string{"10.9.0.10/32"}, []string{"10.9.0.0/24"}, 0},
		{"IPv4 member replaced", []string{"10.9.0.10/32"}, []string{"10.9.0.12/32"}, 1},
		{"IPv6 member leaves", []string{"2001:db8:9::10/128", "2001:db8:9::12/128"}, []string{"2001:db8:9::12/128"}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := compile(spec(tcpFrom(tc.before...)), compiled{})
			next := compile(spec(tcpFrom(tc.now...)), c)
			tag := c.tags["tapweb"]
			var removed []nfsock.Element
			for _, set := range []string{rulesSet4(tag), rulesSet6(tag)} {
				k := setKey{family: nftables.TableFamilyINet, name: set}
				for _, e := range c.ports[tag].elems[k] {
					if !slices.ContainsFunc(next.ports[tag].elems[k], func(n nfsock.Element) bool {
						return bytes.Equal(n.Key, e.Key) && bytes.Equal(n.KeyEnd, e.KeyEnd)
					}) {
						removed = append(removed, e)
					}
				}
			}
			if len(removed) == 0 {
				t.Fatal("the change removed no element: the case tests nothing")
			}
			if m := newFlowMatcher(removed, c, next); len(m.removed) != tc.wantLooked {
				t.Errorf("the matcher looks for the connections of %d removed elements, want %d", len(m.removed), tc.wantLooked)
			}
		})
	}
}
