package agent

import (
	"net/netip"
	"reflect"
	"slices"
	"testing"

	"github.com/nsnet/nsnet/internal/dataplane"
	"github.com/nsnet/nsnet/internal/dhcp6"
	"github.com/nsnet/nsnet/internal/metadata"
	"github.com/nsnet/nsnet/internal/model"
)

// TestDesiredIPv6Modes: how each of Neutron's IPv6 mode combinations
// configures an instance's port. The address is nsnet's unless the
// instance's kernel makes it (SLAAC, DHCPv6-stateless) or a DHCP client
// asks for it; the default route is nsnet's unless the router advertises
// it.
func TestDesiredIPv6Modes(t *testing.T) {
	const addr4, addr6 = "10.8.0.5/24", "2001:db8::f816:3eff:fe00:1/64"
	def4 := dataplane.Route{Dst: netip.MustParsePrefix("0.0.0.0/0"), Gw: netip.MustParseAddr("10.8.0.1")}
	def6 := dataplane.Route{Dst: netip.MustParsePrefix("::/0"), Gw: netip.MustParseAddr("2001:db8::1")}
	hr6 := dataplane.Route{Dst: netip.MustParsePrefix("2001:db8:99::/64"), Gw: netip.MustParseAddr("2001:db8::fe")}
	for _, tc := range []struct {
		name       string
		ra, amode  string
		dhcpClient bool
		wantAddrs  []string
		wantRoutes []dataplane.Route
		acceptRA   bool
	}{
		{name: "no modes: static, as IPv4", wantAddrs: []string{addr4, addr6}, wantRoutes: []dataplane.Route{hr6, def4, def6}},
		{name: "slaac/slaac", ra: "slaac", amode: "slaac", wantAddrs: []string{addr4}, wantRoutes: []dataplane.Route{def4}, acceptRA: true},
		{name: "stateless/stateless", ra: "dhcpv6-stateless", amode: "dhcpv6-stateless", wantAddrs: []string{addr4}, wantRoutes: []dataplane.Route{def4}, acceptRA: true},
		{name: "stateful/stateful: address static, route advertised", ra: "dhcpv6-stateful", amode: "dhcpv6-stateful", wantAddrs: []string{addr4, addr6}, wantRoutes: []dataplane.Route{hr6, def4}, acceptRA: true},
		{name: "RA mode slaac alone: the API gave the EUI-64 address, the kernel makes it", ra: "slaac", wantAddrs: []string{addr4}, wantRoutes: []dataplane.Route{def4}, acceptRA: true},
		{name: "RA mode stateful alone: static address, route advertised", ra: "dhcpv6-stateful", wantAddrs: []string{addr4, addr6}, wantRoutes: []dataplane.Route{hr6, def4}, acceptRA: true},
		{name: "address mode slaac, RA from a router outside nsnet", amode: "slaac", wantAddrs: []string{addr4}, wantRoutes: []dataplane.Route{def4}, acceptRA: true},
		{name: "address mode stateful, no RA", amode: "dhcpv6-stateful", wantAddrs: []string{addr4, addr6}, wantRoutes: []dataplane.Route{hr6, def4, def6}},
		{name: "DHCP client on stateful", ra: "dhcpv6-stateful", amode: "dhcpv6-stateful", dhcpClient: true, acceptRA: true},
		{name: "DHCP client on slaac", ra: "slaac", amode: "slaac", dhcpClient: true, acceptRA: true},
		{name: "DHCP client, no modes", dhcpClient: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nw := model.Network{ID: "net-1", AdminStateUp: true}
			sn4 := model.Subnet{ID: "sub-4", NetworkID: nw.ID, IPVersion: 4, CIDR: "10.8.0.0/24", GatewayIP: ptr("10.8.0.1")}
			sn6 := model.Subnet{ID: "sub-6", NetworkID: nw.ID, IPVersion: 6, CIDR: "2001:db8::/64", GatewayIP: ptr("2001:db8::1"),
				HostRoutes: []model.HostRoute{{Destination: "2001:db8:99::/64", NextHop: "2001:db8::fe"}}}
			if tc.ra != "" {
				sn6.IPv6RAMode = ptr(tc.ra)
			}
			if tc.amode != "" {
				sn6.IPv6AddressMode = ptr(tc.amode)
			}
			p := model.Port{ID: "p1", NetworkID: nw.ID, AdminStateUp: true, MACAddress: "fa:16:3e:00:00:01",
				DeviceOwner: model.DeviceOwnerCompute, DeviceID: "inst-red", InterfaceName: "eth0", DHCPClient: tc.dhcpClient,
				FixedIPs: []model.FixedIP{{SubnetID: sn4.ID, IPAddress: "10.8.0.5"}, {SubnetID: sn6.ID, IPAddress: "2001:db8::f816:3eff:fe00:1"}}}
			d := computeDesired(&snapshot{
				networks:  []model.Network{nw},
				subnets:   []model.Subnet{sn4, sn6},
				instances: []model.Instance{{ID: "inst-red", Name: "red"}},
				ports:     []model.Port{p},
			}, "t-", "")
			veth := d.ports["p1"].Veth
			var addrs []string
			for _, a := range veth.Addrs {
				addrs = append(addrs, a.String())
			}
			if !slices.Equal(addrs, tc.wantAddrs) {
				t.Errorf("addresses = %v, want %v", addrs, tc.wantAddrs)
			}
			if !slices.Equal(veth.Routes, tc.wantRoutes) {
				t.Errorf("routes = %v, want %v", veth.Routes, tc.wantRoutes)
			}
			if veth.AcceptRA != tc.acceptRA {
				t.Errorf("AcceptRA = %v, want %v", veth.AcceptRA, tc.acceptRA)
			}
		})
	}
}

// TestDesiredNetworkIPv6: an instance's port says whether its network has
// an IPv6 subnet, also when the port has no address there; router and
// DHCP namespaces are not born quiet, so their ports do not say it.
func TestDesiredNetworkIPv6(t *testing.T) {
	sn4 := model.Subnet{ID: "sub-4", NetworkID: "net-1", IPVersion: 4, CIDR: "10.8.0.0/24", GatewayIP: ptr("10.8.0.1")}
	sn6 := model.Subnet{ID: "sub-6", NetworkID: "net-1", IPVersion: 6, CIDR: "2001:db8::/64", GatewayIP: ptr("2001:db8::1")}
	other4 := model.Subnet{ID: "sub-o4", NetworkID: "net-2", IPVersion: 4, CIDR: "10.9.0.0/24"}
	for _, tc := range []struct {
		name    string
		subnets []model.Subnet
		ips     []model.FixedIP
		want    bool
	}{
		{name: "IPv4-only network", subnets: []model.Subnet{sn4, other4}, ips: []model.FixedIP{{SubnetID: sn4.ID, IPAddress: "10.8.0.5"}}},
		{name: "dual-stack port", subnets: []model.Subnet{sn4, sn6}, want: true,
			ips: []model.FixedIP{{SubnetID: sn4.ID, IPAddress: "10.8.0.5"}, {SubnetID: sn6.ID, IPAddress: "2001:db8::5"}}},
		{name: "IPv4 port on a dual-stack network", subnets: []model.Subnet{sn4, sn6}, want: true, ips: []model.FixedIP{{SubnetID: sn4.ID, IPAddress: "10.8.0.5"}}},
		{name: "another network's IPv6", subnets: []model.Subnet{sn4, {ID: "sub-o6", NetworkID: "net-2", IPVersion: 6, CIDR: "2001:db8:9::/64"}},
			ips: []model.FixedIP{{SubnetID: sn4.ID, IPAddress: "10.8.0.5"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := computeDesired(&snapshot{
				networks:  []model.Network{{ID: "net-1", AdminStateUp: true}, {ID: "net-2", AdminStateUp: true}},
				subnets:   tc.subnets,
				instances: []model.Instance{{ID: "inst-red", Name: "red"}},
				ports: []model.Port{{ID: "p1", NetworkID: "net-1", AdminStateUp: true, MACAddress: "fa:16:3e:00:00:01",
					DeviceOwner: model.DeviceOwnerCompute, DeviceID: "inst-red", InterfaceName: "eth0", FixedIPs: tc.ips}},
			}, "t-", "")
			if got := d.ports["p1"].Veth.NetworkIPv6; got != tc.want {
				t.Errorf("NetworkIPv6 = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestDesiredDHCPv6: which subnets the network's DHCPv6 server serves and
// how, as Neutron's dnsmasq: stateful and mode-less subnets with
// addresses, stateless ones with options only, SLAAC ones not at all;
// bindings by MAC; DNS the subnet's servers, else the DHCP port's own
// address; nsnet's DNS server answers on every address of the port.
func TestDesiredDHCPv6(t *testing.T) {
	nw := model.Network{ID: "net-1", AdminStateUp: true}
	sub := func(id, cidr, mode string, dns ...string) model.Subnet {
		s := model.Subnet{ID: id, NetworkID: nw.ID, IPVersion: 6, CIDR: cidr, EnableDHCP: true, DNSNameservers: dns}
		if mode != "" {
			s.IPv6RAMode, s.IPv6AddressMode = ptr(mode), ptr(mode)
		}
		return s
	}
	stateful := sub("s-full", "2001:db8:1::/64", "dhcpv6-stateful", "2001:db8:53::1")
	stateless := sub("s-info", "2001:db8:2::/64", "dhcpv6-stateless")
	slaac := sub("s-slaac", "2001:db8:3::/64", "slaac")
	plain := sub("s-plain", "2001:db8:4::/64", "")
	off := sub("s-off", "2001:db8:5::/64", "dhcpv6-stateful")
	off.EnableDHCP = false
	v4 := model.Subnet{ID: "s-4", NetworkID: nw.ID, IPVersion: 4, CIDR: "10.0.0.0/24", EnableDHCP: true}
	ips := func(last string) []model.FixedIP {
		return []model.FixedIP{
			{SubnetID: v4.ID, IPAddress: "10.0.0." + last},
			{SubnetID: stateful.ID, IPAddress: "2001:db8:1::" + last},
			{SubnetID: stateless.ID, IPAddress: "2001:db8:2::" + last},
			{SubnetID: slaac.ID, IPAddress: "2001:db8:3::" + last},
			{SubnetID: plain.ID, IPAddress: "2001:db8:4::" + last},
			{SubnetID: off.ID, IPAddress: "2001:db8:5::" + last},
		}
	}
	dhcpPort := model.Port{ID: "p-dhcp", NetworkID: nw.ID, AdminStateUp: true, MACAddress: "fa:16:3e:00:00:02",
		DeviceOwner: model.DeviceOwnerDHCP, DeviceID: "dhcp", FixedIPs: ips("2")}
	vm := model.Port{ID: "p-vm", NetworkID: nw.ID, AdminStateUp: true, MACAddress: "FA:16:3E:00:00:11",
		DeviceOwner: model.DeviceOwnerCompute, DeviceID: "inst-red", InterfaceName: "eth0", FixedIPs: ips("11")}
	other := model.Port{ID: "p-slaac-only", NetworkID: nw.ID, AdminStateUp: true, MACAddress: "fa:16:3e:00:00:12",
		FixedIPs: []model.FixedIP{{SubnetID: slaac.ID, IPAddress: "2001:db8:3::12"}}}
	d := computeDesired(&snapshot{
		networks:  []model.Network{nw},
		subnets:   []model.Subnet{v4, stateful, stateless, slaac, plain, off},
		instances: []model.Instance{{ID: "inst-red", Name: "red"}},
		ports:     []model.Port{dhcpPort, vm, other},
	}, "t-", "")
	svc := d.services[nw.ID]
	cfg := svc.DHCP6
	if cfg == nil {
		t.Fatal("no DHCPv6 configuration")
	}
	a := netip.MustParseAddr
	wantSubnets := []dhcp6.Subnet{
		{Prefix: netip.MustParsePrefix("2001:db8:1::/64"), DNS: []netip.Addr{a("2001:db8:53::1")}},
		{Prefix: netip.MustParsePrefix("2001:db8:2::/64"), DNS: []netip.Addr{a("2001:db8:2::2")}},
		{Prefix: netip.MustParsePrefix("2001:db8:4::/64"), DNS: []netip.Addr{a("2001:db8:4::2")}},
	}
	if !reflect.DeepEqual(cfg.Subnets, wantSubnets) {
		t.Errorf("subnets = %+v, want %+v", cfg.Subnets, wantSubnets)
	}
	wantHosts := map[string]dhcp6.Host{"fa:16:3e:00:00:11": {Addrs: []netip.Addr{a("2001:db8:1::11"), a("2001:db8:4::11")}}}
	if got := cfg.Hosts.Collect(); !reflect.DeepEqual(got, wantHosts) {
		t.Errorf("hosts = %+v, want %+v", got, wantHosts)
	}
	if cfg.Domain != "nsnet.internal" {
		t.Errorf("domain = %q", cfg.Domain)
	}
	var listen []string
	for _, l := range svc.Listen {
		listen = append(listen, l.Addr.String())
	}
	if want := []string{"10.0.0.2", "2001:db8:1::2", "2001:db8:2::2", "2001:db8:3::2", "2001:db8:4::2", "2001:db8:5::2"}; !slices.Equal(listen, want) {
		t.Errorf("DNS listens on %v, want %v", listen, want)
	}

	// A network with SLAAC only has no DHCPv6 server.
	d = computeDesired(&snapshot{
		networks: []model.Network{nw},
		subnets:  []model.Subnet{slaac},
		ports: []model.Port{{ID: "p-dhcp", NetworkID: nw.ID, AdminStateUp: true, MACAddress: "fa:16:3e:00:00:02",
			DeviceOwner: model.DeviceOwnerDHCP, FixedIPs: []model.FixedIP{{SubnetID: slaac.ID, IPAddress: "2001:db8:3::2"}}}},
	}, "t-", "")
	if cfg := d.services[nw.ID].DHCP6; cfg != nil {
		t.Errorf("SLAAC-only network: DHCPv6 %+v", cfg)
	}
}

// TestDesiredIPv6DefaultFromAdvertisement: an instance whose first port
// is on an advertised subnet takes its IPv6 default route from the
// router's advertisements; nsnet adds none on its other ports beside it,
// as it adds one IPv4 default route only.
func TestDesiredIPv6DefaultFromAdvertisement(t *testing.T) {
	nw := model.Network{ID: "net-1", AdminStateUp: true}
	ra := model.Subnet{ID: "s-ra", NetworkID: nw.ID, IPVersion: 6, CIDR: "2001:db8:1::/64", GatewayIP: ptr("2001:db8:1::1"),
		IPv6RAMode: ptr("slaac"), IPv6AddressMode: ptr("slaac")}
	static := model.Subnet{ID: "s-static", NetworkID: nw.ID, IPVersion: 6, CIDR: "2001:db8:2::/64", GatewayIP: ptr("2001:db8:2::1")}
	port := func(id, ifname string, ip model.FixedIP) model.Port {
		return model.Port{ID: id, NetworkID: nw.ID, AdminStateUp: true, MACAddress: "fa:16:3e:00:00:01",
			DeviceOwner: model.DeviceOwnerCompute, DeviceID: "inst-red", InterfaceName: ifname, FixedIPs: []model.FixedIP{ip}}
	}
	d := computeDesired(&snapshot{
		networks:  []model.Network{nw},
		subnets:   []model.Subnet{ra, static},
		instances: []model.Instance{{ID: "inst-red", Name: "red"}},
		ports: []model.Port{
			port("p0", "eth0", model.FixedIP{SubnetID: ra.ID, IPAddress: "2001:db8:1::f816:3eff:fe00:1"}),
			port("p1", "eth1", model.FixedIP{SubnetID: static.ID, IPAddress: "2001:db8:2::5"}),
		},
	}, "t-", "")
	for _, id := range []string{"p0", "p1"} {
		if r := d.ports[id].Veth.Routes; len(r) != 0 {
			t.Errorf("port %s routes = %v, want none: the advertisement brings the default route", id, r)
		}
	}
}

// TestDesiredMetadata6: the metadata service's fe80::a9fe:a9fe/64 goes on
// exactly one port of each network with IPv6 — the qr- port of a router
// on an IPv6 subnet of it, else its DHCP port — and on none of a network
// without IPv6; the directory knows an instance by its EUI-64 link-local
// and global IPv6 addresses, with its IPv4 address as local-ipv4.
func TestDesiredMetadata6(t *testing.T) {
	nw := model.Network{ID: "net-1", AdminStateUp: true}
	sn4 := model.Subnet{ID: "sub-4", NetworkID: nw.ID, IPVersion: 4, CIDR: "10.8.0.0/24", GatewayIP: ptr("10.8.0.1"), EnableDHCP: true}
	sn6 := model.Subnet{ID: "sub-6", NetworkID: nw.ID, IPVersion: 6, CIDR: "2001:db8::/64", GatewayIP: ptr("2001:db8::1"), EnableDHCP: true,
		IPv6RAMode: ptr("slaac"), IPv6AddressMode: ptr("slaac")}
	inst := model.Port{ID: "p-vm", NetworkID: nw.ID, AdminStateUp: true, MACAddress: "fa:16:3e:00:00:01",
		DeviceOwner: model.DeviceOwnerCompute, DeviceID: "inst-red", InterfaceName: "eth0",
		FixedIPs: []model.FixedIP{{SubnetID: sn4.ID, IPAddress: "10.8.0.5"}, {SubnetID: sn6.ID, IPAddress: "2001:db8::f816:3eff:fe00:1"}}}
	dhcpPort := model.Port{ID: "p-dhcp", NetworkID: nw.ID, AdminStateUp: true, MACAddress: "fa:16:3e:00:00:02", DeviceOwner: model.DeviceOwnerDHCP,
		FixedIPs: []model.FixedIP{{SubnetID: sn4.ID, IPAddress: "10.8.0.2"}, {SubnetID: sn6.ID, IPAddress: "2001:db8::f816:3eff:fe00:2"}}}
	qr := func(id, router, mac string, ips ...model.FixedIP) model.Port {
		return model.Port{ID: id, NetworkID: nw.ID, AdminStateUp: true, MACAddress: mac, DeviceOwner: model.DeviceOwnerRouterInterface, DeviceID: router, FixedIPs: ips}
	}
	qr6 := qr("p-qr6", "r-1", "fa:16:3e:00:00:03", model.FixedIP{SubnetID: sn6.ID, IPAddress: "2001:db8::1"})
	qr6b := qr("p-qr6b", "r-2", "fa:16:3e:00:00:05", model.FixedIP{SubnetID: sn6.ID, IPAddress: "2001:db8::fe"})
	qr4 := qr("p-qr4", "r-1", "fa:16:3e:00:00:04", model.FixedIP{SubnetID: sn4.ID, IPAddress: "10.8.0.1"})
	routers := []model.Router{{ID: "r-1", AdminStateUp: true}, {ID: "r-2", AdminStateUp: true}}
	for _, tc := range []struct {
		name    string
		subnets []model.Subnet
		ports   []model.Port
		want    string // the port that carries the address, "" none
	}{
		{"IPv4 only: none", []model.Subnet{sn4}, []model.Port{inst, dhcpPort, qr4}, ""},
		{"router on the IPv6 subnet: its qr-", []model.Subnet{sn4, sn6}, []model.Port{inst, dhcpPort, qr6, qr4}, "p-qr6"},
		{"router on IPv4 only: the DHCP port", []model.Subnet{sn4, sn6}, []model.Port{inst, dhcpPort, qr4}, "p-dhcp"},
		{"two routers on the IPv6 subnet: one of them", []model.Subnet{sn4, sn6}, []model.Port{inst, dhcpPort, qr6b, qr6}, "p-qr6"},
		{"no router, no DHCP: none", []model.Subnet{sn4, sn6}, []model.Port{inst}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := computeDesired(&snapshot{
				networks: []model.Network{nw}, subnets: tc.subnets, routers: routers,
				instances: []model.Instance{{ID: "inst-red", Name: "red"}}, ports: tc.ports,
			}, "t-", "")
			var carriers []string
			for id, ps := range d.ports {
				if slices.Contains(ps.Veth.Addrs, metadata.Prefix6) {
					carriers = append(carriers, id)
				}
			}
			want := []string{}
			if tc.want != "" {
				want = []string{tc.want}
			}
			if len(carriers) == 0 {
				carriers = []string{}
			}
			if !slices.Equal(carriers, want) {
				t.Fatalf("ports with %s = %v, want %v", metadata.Prefix6, carriers, want)
			}
			spec, ok := d.metadata6[nw.ID]
			if tc.want == "" {
				if ok {
					t.Errorf("metadata6 = %+v, want none", spec)
				}
				return
			}
			ps := d.ports[tc.want]
			if wantSpec := (metadata6Spec{PortID: tc.want, Netns: ps.Netns, IfName: ps.Veth.IfName, Alias: ps.Veth.Alias}); spec != wantSpec {
				t.Errorf("metadata6 = %+v, want %+v", spec, wantSpec)
			}
			for _, a := range []string{"fe80::f816:3eff:fe00:1", "2001:db8::f816:3eff:fe00:1", "10.8.0.5"} {
				got := d.metadata[metadata.Key{NetworkID: nw.ID, Addr: netip.MustParseAddr(a)}]
				if got == nil || got.ID != "inst-red" || got.LocalIPv4 != netip.MustParseAddr("10.8.0.5") {
					t.Errorf("directory[%s] = %+v, want inst-red with local-ipv4 10.8.0.5", a, got)
				}
			}
		})
	}
}

// TestDesiredFirewallIPv4Only: the firewall drops the router and
// duplicate address detection solicitations of a secured port, and of a
// trunk's subport, whose network has no IPv6 subnet (firewall.Port's
// IPv4Only), and only those: a network gaining an IPv6 subnet clears it
// for its ports, whatever addresses they have.
func TestDesiredFirewallIPv4Only(t *testing.T) {
	net4 := model.Subnet{ID: "sub-4", NetworkID: "net-1", IPVersion: 4, CIDR: "10.8.0.0/24", GatewayIP: ptr("10.8.0.1")}
	net6 := model.Subnet{ID: "sub-6", NetworkID: "net-1", IPVersion: 6, CIDR: "2001:db8::/64", GatewayIP: ptr("2001:db8::1")}
	trunk4 := model.Subnet{ID: "sub-t4", NetworkID: "net-2", IPVersion: 4, CIDR: "10.9.0.0/24"}
	trunk6 := model.Subnet{ID: "sub-t6", NetworkID: "net-2", IPVersion: 6, CIDR: "2001:db8:9::/64"}
	parent := model.Port{ID: "p1", NetworkID: "net-1", AdminStateUp: true, MACAddress: "fa:16:3e:00:00:01", PortSecurityEnabled: true,
		DeviceOwner: model.DeviceOwnerCompute, DeviceID: "inst-red", InterfaceName: "eth0", FixedIPs: []model.FixedIP{{SubnetID: net4.ID, IPAddress: "10.8.0.5"}}}
	sub := model.Port{ID: "p2", NetworkID: "net-2", AdminStateUp: true, MACAddress: "fa:16:3e:00:00:02", PortSecurityEnabled: true,
		DeviceOwner: model.DeviceOwnerTrunkSubport, FixedIPs: []model.FixedIP{{SubnetID: trunk4.ID, IPAddress: "10.9.0.5"}}}
	trunk := model.Trunk{ID: "trunk-1", PortID: parent.ID, SubPorts: []model.SubPort{{PortID: sub.ID, SegmentationType: "vlan", SegmentationID: 10}}}
	for _, tc := range []struct {
		name                string
		subnets             []model.Subnet
		wantParent, wantSub bool // IPv4Only
	}{
		{"IPv4-only networks", []model.Subnet{net4, trunk4}, true, true},
		{"the parent's network dual-stack, its port IPv4 only", []model.Subnet{net4, net6, trunk4}, false, true},
		{"the subport's network dual-stack", []model.Subnet{net4, trunk4, trunk6}, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			snap := &snapshot{
				networks:  []model.Network{{ID: "net-1", AdminStateUp: true}, {ID: "net-2", AdminStateUp: true}},
				subnets:   tc.subnets,
				instances: []model.Instance{{ID: "inst-red", Name: "red"}},
				ports:     []model.Port{parent, sub},
				trunks:    []model.Trunk{trunk},
			}
			spec, _ := firewallSpec(snap, computeDesired(snap, "t-", ""))
			got := map[string]bool{}
			for _, p := range spec.Ports {
				got[p.Interface] = p.IPv4Only
			}
			want := map[string]bool{model.TapName(parent.ID): tc.wantParent, model.SubportName(sub.ID): tc.wantSub}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("IPv4Only by interface = %v, want %v", got, want)
			}
		})
	}
}
