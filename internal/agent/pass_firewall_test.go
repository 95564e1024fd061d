package agent

import (
	"net/netip"
	"reflect"
	"testing"

	"github.com/nsnet/nsnet/internal/dataplane"
	"github.com/nsnet/nsnet/internal/firewall"
	"github.com/nsnet/nsnet/internal/model"
)

func TestCompileRule(t *testing.T) {
	str := func(s string) *string { return &s }
	num := func(n int) *int { return &n }
	any4 := netip.MustParsePrefix("0.0.0.0/0")
	any6 := netip.MustParsePrefix("::/0")
	tests := []struct {
		name string
		rule model.SecurityGroupRule
		want []firewall.Rule // one
	}{
		{"egress anything", model.SecurityGroupRule{Direction: "egress", EtherType: "IPv4"},
			[]firewall.Rule{{Direction: firewall.Egress, ProtoMax: 255, PortMax: 65535, Remote: any4}}},
		{"egress anything over IPv6", model.SecurityGroupRule{Direction: "egress", EtherType: "IPv6"},
			[]firewall.Rule{{Direction: firewall.Egress, IPv6: true, ProtoMax: 255, PortMax: 65535, Remote: netip.MustParsePrefix("::/0")}}},
		{"tcp 22 from a prefix", model.SecurityGroupRule{Direction: "ingress", EtherType: "IPv4", Protocol: str("tcp"),
			PortRangeMin: num(22), PortRangeMax: num(22), NormalizedCIDR: str("10.0.0.0/24")},
			[]firewall.Rule{{Direction: firewall.Ingress, ProtoMin: 6, ProtoMax: 6, PortMin: 22, PortMax: 22, Remote: netip.MustParsePrefix("10.0.0.0/24")}}},
		{"udp by number, a range", model.SecurityGroupRule{Direction: "ingress", EtherType: "IPv4", Protocol: str("17"),
			PortRangeMin: num(5000), PortRangeMax: num(5010)},
			[]firewall.Rule{{Direction: firewall.Ingress, ProtoMin: 17, ProtoMax: 17, PortMin: 5000, PortMax: 5010, Remote: any4}}},
		{"icmp, any type", model.SecurityGroupRule{Direction: "ingress", EtherType: "IPv4", Protocol: str("icmp")},
			[]firewall.Rule{{Direction: firewall.Ingress, ProtoMin: 1, ProtoMax: 1, PortMax: 65535, Remote: any4}}},
		{"icmp echo request, any code", model.SecurityGroupRule{Direction: "ingress", EtherType: "IPv4", Protocol: str("icmp"), PortRangeMin: num(8)},
			[]firewall.Rule{{Direction: firewall.Ingress, ProtoMin: 1, ProtoMax: 1, PortMin: 8 << 8, PortMax: 8<<8 | 0xff, Remote: any4}}},
		{"icmp type 3 code 4", model.SecurityGroupRule{Direction: "ingress", EtherType: "IPv4", Protocol: str("icmp"), PortRangeMin: num(3), PortRangeMax: num(4)},
			[]firewall.Rule{{Direction: firewall.Ingress, ProtoMin: 1, ProtoMax: 1, PortMin: 3<<8 | 4, PortMax: 3<<8 | 4, Remote: any4}}},
		{"remote group: named, its members in the spec's groups", model.SecurityGroupRule{Direction: "ingress", EtherType: "IPv4",
			Protocol: str("tcp"), PortRangeMin: num(22), PortRangeMax: num(22), RemoteGroupID: str("5e0c-44ab")},
			[]firewall.Rule{{Direction: firewall.Ingress, ProtoMin: 6, ProtoMax: 6, PortMin: 22, PortMax: 22, Group: "sg5e0c44ab"}}},
		{"icmp on an IPv6 rule is ICMPv6 (stored before the service renamed it ipv6-icmp), by type", model.SecurityGroupRule{Direction: "ingress", EtherType: "IPv6",
			Protocol: str("icmp"), PortRangeMin: num(128)},
			[]firewall.Rule{{Direction: firewall.Ingress, IPv6: true, ProtoMin: 58, ProtoMax: 58, PortMin: 128 << 8, PortMax: 128<<8 | 0xff, Remote: any6}}},
		{"protocol 1 on an IPv6 rule is ICMPv6", model.SecurityGroupRule{Direction: "egress", EtherType: "IPv6", Protocol: str("1")},
			[]firewall.Rule{{Direction: firewall.Egress, IPv6: true, ProtoMin: 58, ProtoMax: 58, PortMax: 65535, Remote: any6}}},
		{"ipv6-icmp type 1 code 4", model.SecurityGroupRule{Direction: "ingress", EtherType: "IPv6", Protocol: str("ipv6-icmp"), PortRangeMin: num(1), PortRangeMax: num(4)},
			[]firewall.Rule{{Direction: firewall.Ingress, IPv6: true, ProtoMin: 58, ProtoMax: 58, PortMin: 1<<8 | 4, PortMax: 1<<8 | 4, Remote: any6}}},
		{"icmpv6 by number, from a prefix", model.SecurityGroupRule{Direction: "ingress", EtherType: "IPv6", Protocol: str("58"), NormalizedCIDR: str("2001:db8::/64")},
			[]firewall.Rule{{Direction: firewall.Ingress, IPv6: true, ProtoMin: 58, ProtoMax: 58, PortMax: 65535, Remote: netip.MustParsePrefix("2001:db8::/64")}}},
		{"tcp over IPv6 by number, a port", model.SecurityGroupRule{Direction: "ingress", EtherType: "IPv6", Protocol: str("6"), PortRangeMin: num(22), PortRangeMax: num(22)},
			[]firewall.Rule{{Direction: firewall.Ingress, IPv6: true, ProtoMin: 6, ProtoMax: 6, PortMin: 22, PortMax: 22, Remote: any6}}},
		{"ICMP on an IPv4 rule stays ICMP", model.SecurityGroupRule{Direction: "ingress", EtherType: "IPv4", Protocol: str("1")},
			[]firewall.Rule{{Direction: firewall.Ingress, ProtoMin: 1, ProtoMax: 1, PortMax: 65535, Remote: any4}}},
		{"address group: named, its CIDRs in the spec's groups", model.SecurityGroupRule{Direction: "egress", EtherType: "IPv4",
			Protocol: str("udp"), PortRangeMin: num(53), PortRangeMax: num(53), RemoteAddressGroupID: str("a1-b2")},
			[]firewall.Rule{{Direction: firewall.Egress, ProtoMin: 17, ProtoMax: 17, PortMin: 53, PortMax: 53, Group: "aga1b2"}}},
		{"IPv6 remote group", model.SecurityGroupRule{Direction: "ingress", EtherType: "IPv6",
			Protocol: str("udp"), PortRangeMin: num(53), PortRangeMax: num(53), RemoteGroupID: str("admins")},
			[]firewall.Rule{{Direction: firewall.Ingress, IPv6: true, ProtoMin: 17, ProtoMax: 17, PortMin: 53, PortMax: 53, Group: "sgadmins"}}},
	}
	for _, tt := range tests {
		if got := []firewall.Rule{compileRule(&tt.rule)}; !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", tt.name, got, tt.want)
		}
	}
}

func TestFirewallSpec(t *testing.T) {
	snap := &snapshot{
		ports: []model.Port{
			{ID: "p-web", MACAddress: "fa:16:3e:00:00:01", PortSecurityEnabled: true, SecurityGroups: []string{"g-web"},
				FixedIPs:            []model.FixedIP{{IPAddress: "10.0.0.10"}},
				AllowedAddressPairs: []model.AddressPair{{IPAddress: "10.0.0.100", MACAddress: "fa:16:3e:00:00:01"}, {IPAddress: "10.1.0.0/24", MACAddress: "fa:16:3e:00:00:99"}}},
			{ID: "p-admin", MACAddress: "fa:16:3e:00:00:02", PortSecurityEnabled: true, SecurityGroups: []string{"g-admins"},
				FixedIPs:            []model.FixedIP{{IPAddress: "10.0.0.20"}},
				AllowedAddressPairs: []model.AddressPair{{IPAddress: "10.0.0.21"}, {IPAddress: "10.0.0.64/29"}}},
			{ID: "p-open", MACAddress: "fa:16:3e:00:00:03", FixedIPs: []model.FixedIP{{IPAddress: "10.0.0.30"}}},
			{ID: "p-router", MACAddress: "fa:16:3e:00:00:04", PortSecurityEnabled: true, DeviceOwner: model.DeviceOwnerRouterInterface,
				FixedIPs: []model.FixedIP{{IPAddress: "10.0.0.1"}}},
			{ID: "p-elsewhere", MACAddress: "fa:16:3e:00:00:05", PortSecurityEnabled: true, SecurityGroups: []string{"g-admins"},
				FixedIPs: []model.FixedIP{{IPAddress: "10.0.0.40"}}},
		},
		rules: []model.SecurityGroupRule{{SecurityGroupID: "g-web", Direction: "ingress", EtherType: "IPv4", RemoteGroupID: ptr("g-admins")}},
	}
	d := &desired{ports: map[string]portSpec{"p-web": {}, "p-admin": {}, "p-open": {}, "p-router": {}}}
	spec, ports := firewallSpec(snap, d)
	if len(spec.Ports) != 2 || ports[model.TapName("p-web")] != "p-web" || ports[model.TapName("p-admin")] != "p-admin" {
		t.Fatalf("secured ports: %+v (%v); want web and admin only: not the one without port security, the router's, or one on another host", spec.Ports, ports)
	}
	var web firewall.Port
	for _, p := range spec.Ports {
		if p.Interface == model.TapName("p-web") {
			web = p
		}
	}
	if want := []netip.Addr{netip.MustParseAddr("10.0.0.10"), netip.MustParseAddr("10.0.0.100")}; !reflect.DeepEqual(web.Addresses, want) {
		t.Errorf("web addresses %v, want %v", web.Addresses, want)
	}
	if len(web.Networks) != 1 || web.Networks[0].String() != "10.1.0.0/24" || len(web.MACs) != 1 || web.MACs[0].String() != "fa:16:3e:00:00:99" {
		t.Errorf("web pairs: networks %v, MACs %v", web.Networks, web.MACs)
	}
	if len(web.Rules) != 1 || web.Rules[0].Group != "sggadmins" {
		t.Fatalf("web's rules %+v, want one naming g-admins", web.Rules)
	}
	var remotes []string
	for _, r := range spec.Groups[web.Rules[0].Group].Sorted() {
		remotes = append(remotes, r.String())
	}
	// Members of g-admins on any host, admin here (its fixed IP and
	// address pairs, the CIDR too) and the one elsewhere, by address.
	if want := []string{"10.0.0.20/32", "10.0.0.21/32", "10.0.0.40/32", "10.0.0.64/29"}; !reflect.DeepEqual(remotes, want) {
		t.Errorf("web's remote group holds %v, want %v", remotes, want)
	}
}

// TestFirewallSpecRouted: the ports of a host-gateway network tell the
// firewall which destinations the host routes to them, one port per
// destination: fixed IPs first, then allowed address pairs in interface
// order, a range overlapping an earlier port's range left out; IPv6
// (the host routes IPv4 only) and ports of other networks have none.
// Every port names its bridge; the bridges the host does not route for,
// whether they have secured ports or not, get conntrack zones.
func TestFirewallSpecRouted(t *testing.T) {
	pairs := func(addrs ...string) []model.AddressPair {
		var out []model.AddressPair
		for _, a := range addrs {
			out = append(out, model.AddressPair{IPAddress: a})
		}
		return out
	}
	fixed := func(addrs ...string) []model.FixedIP {
		var out []model.FixedIP
		for _, a := range addrs {
			out = append(out, model.FixedIP{IPAddress: a})
		}
		return out
	}
	snap := &snapshot{ports: []model.Port{
		{ID: "p-a", MACAddress: "fa:16:3e:00:00:01", PortSecurityEnabled: true, FixedIPs: fixed("10.0.0.10", "2001:db8::10"),
			AllowedAddressPairs: pairs("10.0.0.100", "10.0.0.0/28")},
		{ID: "p-b", MACAddress: "fa:16:3e:00:00:02", PortSecurityEnabled: true, FixedIPs: fixed("10.0.0.11"),
			AllowedAddressPairs: pairs("10.0.0.100", "10.0.0.10", "10.0.0.0/24", "10.1.0.0/24", "10.2.0.1/32")},
		{ID: "p-c", MACAddress: "fa:16:3e:00:00:03", PortSecurityEnabled: true, FixedIPs: fixed("10.5.0.10")},
	}}
	d := &desired{
		networks: map[string]networkSpec{
			"n-hg":    {HostGateway: true, Bridge: dataplane.BridgeSpec{Name: "nsb-hg"}},
			"n-plain": {Bridge: dataplane.BridgeSpec{Name: "nsb-plain"}},
			"n-empty": {Bridge: dataplane.BridgeSpec{Name: "nsb-empty"}},
		},
		ports: map[string]portSpec{
			"p-a": {NetworkID: "n-hg", Veth: dataplane.PortSpec{Bridge: "nsb-hg"}},
			"p-b": {NetworkID: "n-hg", Veth: dataplane.PortSpec{Bridge: "nsb-hg"}},
			"p-c": {NetworkID: "n-plain", Veth: dataplane.PortSpec{Bridge: "nsb-plain"}},
		},
	}
	spec, _ := firewallSpec(snap, d)
	if err := spec.Validate(); err != nil {
		t.Fatalf("spec does not validate: %v", err)
	}
	want := map[string]struct {
		bridge string
		routed []string
	}{
		"p-a": {"nsb-hg", []string{"10.0.0.10/32", "10.0.0.100/32", "10.0.0.0/28"}},
		"p-b": {"nsb-hg", []string{"10.0.0.11/32", "10.1.0.0/24", "10.2.0.1/32"}},
		"p-c": {"nsb-plain", nil},
	}
	for _, p := range spec.Ports {
		for id, w := range want {
			if p.Interface != model.TapName(id) {
				continue
			}
			var routed []string
			for _, r := range p.Routed {
				routed = append(routed, r.String())
			}
			if p.Bridge != w.bridge || !reflect.DeepEqual(routed, w.routed) {
				t.Errorf("%s: bridge %q routed %v, want %q %v", id, p.Bridge, routed, w.bridge, w.routed)
			}
		}
	}
	if want := []string{"nsb-empty", "nsb-plain"}; !reflect.DeepEqual(spec.Zoned, want) {
		t.Errorf("zoned bridges %v, want %v", spec.Zoned, want)
	}
}

// TestFirewallSpecGroups: a rule naming a remote group names it in the
// spec, whose Groups hold what the group's members with port security
// may send from, on any host — fixed IPs of both families and address
// pairs, CIDRs and 0.0.0.0/0 included, as Neutron — and a rule naming an
// address group its CIDRs; only the groups some rule names.
func TestFirewallSpecGroups(t *testing.T) {
	str := func(s string) *string { return &s }
	snap := &snapshot{
		ports: []model.Port{
			{ID: "p-web", MACAddress: "fa:16:3e:00:00:01", PortSecurityEnabled: true, SecurityGroups: []string{"web"},
				FixedIPs: []model.FixedIP{{IPAddress: "10.0.0.10"}, {IPAddress: "2001:db8::10"}}},
			{ID: "p-admin", MACAddress: "fa:16:3e:00:00:02", PortSecurityEnabled: true, SecurityGroups: []string{"admins"},
				FixedIPs:            []model.FixedIP{{IPAddress: "10.0.0.11"}},
				AllowedAddressPairs: []model.AddressPair{{IPAddress: "10.0.8.0/29"}, {IPAddress: "0.0.0.0/0"}}},
			// elsewhere: not plugged here, still a member
			{ID: "p-far", MACAddress: "fa:16:3e:00:00:03", PortSecurityEnabled: true, SecurityGroups: []string{"admins"},
				FixedIPs: []model.FixedIP{{IPAddress: "10.9.0.12"}}},
			{ID: "p-open", MACAddress: "fa:16:3e:00:00:04", PortSecurityEnabled: false, SecurityGroups: []string{"admins"},
				FixedIPs: []model.FixedIP{{IPAddress: "10.0.0.13"}}},
		},
		rules: []model.SecurityGroupRule{
			{SecurityGroupID: "web", Direction: "ingress", EtherType: "IPv4", Protocol: str("tcp"), RemoteGroupID: str("admins")},
			{SecurityGroupID: "admins", Direction: "egress", EtherType: "IPv4"},
			{SecurityGroupID: "web", Direction: "ingress", EtherType: "IPv6", RemoteAddressGroupID: str("office")},
		},
		addrGroups: []model.AddressGroup{
			{ID: "office", Addresses: []string{"192.0.2.0/24", "2001:db8::/64"}},
			{ID: "unnamed", Addresses: []string{"198.51.100.0/24"}},
		},
	}
	d := &desired{
		networks: map[string]networkSpec{"n": {Bridge: dataplane.BridgeSpec{Name: "nsb-n"}}},
		ports: map[string]portSpec{
			"p-web":   {NetworkID: "n", Veth: dataplane.PortSpec{Bridge: "nsb-n"}},
			"p-admin": {NetworkID: "n", Veth: dataplane.PortSpec{Bridge: "nsb-n"}},
		},
	}
	spec, _ := firewallSpec(snap, d)
	if err := spec.Validate(); err != nil {
		t.Fatalf("spec does not validate: %v", err)
	}
	// The members in the order the firewall keeps them: by address.
	want := map[string][]netip.Prefix{"sgadmins": {
		netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("10.0.0.11/32"), netip.MustParsePrefix("10.0.8.0/29"),
		netip.MustParsePrefix("10.9.0.12/32"),
	}, "agoffice": {netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8::/64")}}
	got := map[string][]netip.Prefix{}
	for g, m := range spec.Groups {
		got[g] = m.Sorted()
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("groups %v, want %v", got, want)
	}
}

// TestSameFirewall: sameFirewall tells the specs reflect.DeepEqual tells
// apart, member sets shared, derived or built apart.
func TestSameFirewall(t *testing.T) {
	one, two, three := netip.MustParsePrefix("10.0.0.1/32"), netip.MustParsePrefix("10.0.0.2/32"), netip.MustParsePrefix("10.0.0.3/32")
	members := firewall.MembersOf(one, two)
	base := func() firewall.Spec {
		return firewall.Spec{
			Ports:  []firewall.Port{{Interface: "tap1", Bridge: "br1"}},
			Zoned:  []string{"br1"},
			Groups: map[string]firewall.Members{"sga": members, "sgb": {}},
		}
	}
	for _, tc := range []struct {
		name   string
		change func(*firewall.Spec)
	}{
		{"same", func(*firewall.Spec) {}},
		{"members built apart", func(s *firewall.Spec) { s.Groups["sga"] = firewall.MembersOf(two, one) }},
		{"member changed", func(s *firewall.Spec) { s.Groups["sga"] = members.Without(two).With(three) }},
		{"member added and removed", func(s *firewall.Spec) { s.Groups["sga"] = members.With(three).Without(three) }},
		{"member added twice", func(s *firewall.Spec) { s.Groups["sga"] = members.With(one) }},
		{"member added", func(s *firewall.Spec) { s.Groups["sga"] = members.With(three) }},
		{"member removed", func(s *firewall.Spec) { s.Groups["sga"] = members.Without(one) }},
		{"empty group gains one", func(s *firewall.Spec) { s.Groups["sgb"] = s.Groups["sgb"].With(one) }},
		{"group renamed", func(s *firewall.Spec) { s.Groups["sgc"] = s.Groups["sgb"]; delete(s.Groups, "sgb") }},
		{"port changed", func(s *firewall.Spec) { s.Ports[0].Stateless = true }},
		{"zone added", func(s *firewall.Spec) { s.Zoned = append(s.Zoned, "br2") }},
	} {
		a, b := base(), base()
		tc.change(&b)
		if got, want := sameFirewall(a, b), reflect.DeepEqual(a, b); got != want {
			t.Errorf("%s: sameFirewall = %v, reflect.DeepEqual = %v", tc.name, got, want)
		}
	}
}
