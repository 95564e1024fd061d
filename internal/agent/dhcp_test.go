package agent

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/nsnet/nsnet/internal/dataplane"
	"github.com/nsnet/nsnet/internal/dhcp"
	"github.com/nsnet/nsnet/internal/metadata"
	"github.com/nsnet/nsnet/internal/model"
)

// TestDesiredNetworkServices: what one snapshot with a DHCP port asks of
// the kernel and of the servers.
func TestDesiredNetworkServices(t *testing.T) {
	n := model.Network{ID: "net-1", AdminStateUp: true, MTU: 1400, DNSDomain: "lab.example"}
	routedSub := model.Subnet{ID: "sub-r", NetworkID: "net-1", CIDR: "10.1.0.0/24", GatewayIP: ptr("10.1.0.1"), EnableDHCP: true}
	isolated := model.Subnet{ID: "sub-i", NetworkID: "net-1", CIDR: "10.2.0.0/24", GatewayIP: ptr("10.2.0.1"), EnableDHCP: true,
		HostRoutes: []model.HostRoute{{Destination: "192.168.9.0/24", NextHop: "10.2.0.9"}}}
	ip := func(subnet, addr string) []model.FixedIP { return []model.FixedIP{{SubnetID: subnet, IPAddress: addr}} }
	dhcpPort := model.Port{ID: "dhcp-port", NetworkID: "net-1", AdminStateUp: true, MACAddress: "fa:16:3e:00:00:fe",
		DeviceOwner: model.DeviceOwnerDHCP, DeviceID: "dhcphost-net-1",
		FixedIPs: []model.FixedIP{{SubnetID: "sub-r", IPAddress: "10.1.0.254"}, {SubnetID: "sub-i", IPAddress: "10.2.0.254"}}}
	static := model.Port{ID: "p-static", NetworkID: "net-1", AdminStateUp: true, MACAddress: "fa:16:3e:00:00:01",
		DeviceOwner: model.DeviceOwnerCompute, DeviceID: "inst-a", InterfaceName: "eth0", FixedIPs: ip("sub-i", "10.2.0.5")}
	client := model.Port{ID: "p-dhcp", NetworkID: "net-1", AdminStateUp: true, MACAddress: "FA:16:3E:00:00:02",
		DeviceOwner: model.DeviceOwnerCompute, DeviceID: "inst-b", InterfaceName: "eth0", DHCPClient: true, FixedIPs: ip("sub-r", "10.1.0.6"),
		ExtraDHCPOpts: []model.ExtraDHCPOpt{{OptName: "bootfile-name", OptValue: "pxelinux.0", IPVersion: 4},
			{OptName: "tftp-server", OptValue: "2001:db8::5", IPVersion: 6}, {OptName: "150", OptValue: "10.1.0.9", IPVersion: 4}}}
	routerPort := model.Port{ID: "p-router", NetworkID: "net-1", AdminStateUp: true, MACAddress: "fa:16:3e:00:00:03",
		DeviceOwner: model.DeviceOwnerRouterInterface, DeviceID: "r1", FixedIPs: ip("sub-r", "10.1.0.1")}
	fip := model.FloatingIP{ID: "f1", FloatingIPAddress: "198.51.100.7", PortID: ptr("p-static"), FixedIPAddress: ptr("10.2.0.5")}
	snap := &snapshot{
		networks:  []model.Network{n},
		subnets:   []model.Subnet{routedSub, isolated},
		ports:     []model.Port{dhcpPort, static, client, routerPort},
		instances: []model.Instance{{ID: "inst-a", Name: "web", UserData: "#!"}, {ID: "inst-b", Name: "db"}},
		fips:      []model.FloatingIP{fip},
	}
	d := computeDesired(snap, "t-", "h")

	spec, ok := d.dhcp["net-1"]
	if !ok || spec.Netns != "t-qdhcp-net-1" || spec.PortID != "dhcp-port" {
		t.Fatalf("dhcp spec %+v", d.dhcp)
	}
	port := d.ports["dhcp-port"]
	if !port.DHCP || port.Veth.IfName != "ns-dhcp-port" || port.Veth.MTU != 1400 ||
		!slices.Contains(port.Veth.Addrs, netip.MustParsePrefix("169.254.169.254/32")) ||
		!slices.Contains(port.Veth.Addrs, netip.MustParsePrefix("10.2.0.254/24")) {
		t.Errorf("DHCP port spec %+v", port)
	}
	svc := d.services["net-1"]
	if want := []dnsAddr{{netip.MustParseAddr("10.1.0.254"), "sub-r (10.1.0.0/24)"}, {netip.MustParseAddr("10.2.0.254"), "sub-i (10.2.0.0/24)"}}; !slices.Equal(svc.Listen, want) {
		t.Errorf("DNS listens on %v, want %v (not the metadata address)", svc.Listen, want)
	}

	// DHCP: a lease per port (MACs in canonical form), the metadata
	// route only where no router is.
	hosts := svc.DHCP.Hosts.Collect()
	if h := hosts["fa:16:3e:00:00:02"]; h.IP != netip.MustParseAddr("10.1.0.6") || h.Hostname != "db" {
		t.Errorf("lease of the DHCP client: %+v (hosts %v)", h, hosts)
	}
	// its extra DHCP options for DHCPv4, in order; the IPv6 one is not.
	if h, want := hosts["fa:16:3e:00:00:02"], []dhcp.Option{{Name: "bootfile-name", Value: "pxelinux.0"}, {Name: "150", Value: "10.1.0.9"}}; !slices.Equal(h.Options, want) {
		t.Errorf("extra options of the DHCP client: %v, want %v", h.Options, want)
	}
	if _, ok := hosts["fa:16:3e:00:00:fe"]; ok {
		t.Error("the DHCP port leases itself an address")
	}
	byPrefix := map[string]dhcp.Subnet{}
	for _, s := range svc.DHCP.Subnets {
		byPrefix[s.Prefix.String()] = s
	}
	meta := dhcp.Route{Dst: netip.MustParsePrefix("169.254.169.254/32"), Gw: netip.MustParseAddr("10.2.0.254")}
	if r := byPrefix["10.2.0.0/24"].Routes; !slices.Contains(r, meta) || len(r) != 2 {
		t.Errorf("isolated subnet routes %v, want its host route and %v", r, meta)
	}
	if r := byPrefix["10.1.0.0/24"].Routes; len(r) != 0 {
		t.Errorf("routed subnet routes %v, want none (the router redirects)", r)
	}
	if s := byPrefix["10.1.0.0/24"]; s.Domain != "lab.example." || s.MTU != 1400 || !slices.Equal(s.DNS, []netip.Addr{netip.MustParseAddr("10.1.0.254")}) {
		t.Errorf("routed subnet options %+v", s)
	}

	// DNS: names of every port.
	if a, _ := svc.DNS.A.Get("web.lab.example."); !slices.Equal(a, []netip.Addr{netip.MustParseAddr("10.2.0.5")}) {
		t.Errorf("web's A %v (zone %v)", a, svc.DNS.A.Collect())
	}
	if a, _ := svc.DNS.A.Get("host-10-1-0-1.lab.example."); len(a) != 1 {
		t.Errorf("router port's name missing: %v", svc.DNS.A.Collect())
	}

	// Instance ports: the DHCP client gets its link only, the static
	// one a route to the metadata service through the DHCP port.
	if v := d.ports["p-dhcp"].Veth; !v.DHCPClient || len(v.Addrs) != 0 || len(v.Routes) != 0 {
		t.Errorf("DHCP client port %+v", v)
	}
	if r := d.ports["p-static"].Veth.Routes; !slices.Contains(r, dataplane.Route{Dst: meta.Dst, Gw: meta.Gw}) {
		t.Errorf("static port routes %v, want the metadata route", r)
	}
	for id, inst := range d.instances {
		if !strings.Contains(inst.ResolvConf, "search lab.example\n") {
			t.Errorf("%s resolv.conf:\n%s", id, inst.ResolvConf)
		}
	}
	if !strings.Contains(d.instances["inst-a"].ResolvConf, "nameserver 10.2.0.254\n") || d.instances["inst-a"].DHCPClient ||
		!d.instances["inst-b"].DHCPClient {
		t.Errorf("instances %+v", d.instances)
	}

	// Metadata: who is who, with the floating IP.
	web := d.metadata[metadata.Key{NetworkID: "net-1", Addr: netip.MustParseAddr("10.2.0.5")}]
	if web == nil || web.Name != "web" || web.UserData != "#!" || web.PublicIPv4 != netip.MustParseAddr("198.51.100.7") {
		t.Errorf("metadata of 10.2.0.5: %+v", web)
	}
	if _, ok := d.metadata[metadata.Key{NetworkID: "net-1", Addr: netip.MustParseAddr("10.1.0.1")}]; ok {
		t.Error("the router port has metadata")
	}
}

// TestHostRouteWithAnUnreachableNextHop: Neutron accepts a host route
// whose next hop is on no subnet of the network. The DHCP server still
// serves it (a client ignores what it cannot use), but no port gets it as
// a kernel route, which the kernel would refuse (ENETUNREACH) and leave
// qdhcp in ERROR.
func TestHostRouteWithAnUnreachableNextHop(t *testing.T) {
	n := model.Network{ID: "net-1", AdminStateUp: true, MTU: 1500}
	sn := model.Subnet{ID: "sub-1", NetworkID: "net-1", CIDR: "10.2.0.0/24", GatewayIP: ptr("10.2.0.1"), EnableDHCP: true,
		HostRoutes: []model.HostRoute{{Destination: "192.168.9.0/24", NextHop: "10.2.0.9"}, {Destination: "172.16.0.0/12", NextHop: "192.0.2.1"}}}
	dhcpPort := model.Port{ID: "dhcp-port", NetworkID: "net-1", AdminStateUp: true, MACAddress: "fa:16:3e:00:00:fe",
		DeviceOwner: model.DeviceOwnerDHCP, DeviceID: "dhcphost-net-1", FixedIPs: []model.FixedIP{{SubnetID: "sub-1", IPAddress: "10.2.0.254"}}}
	static := model.Port{ID: "p-static", NetworkID: "net-1", AdminStateUp: true, MACAddress: "fa:16:3e:00:00:01",
		DeviceOwner: model.DeviceOwnerCompute, DeviceID: "inst-a", InterfaceName: "eth0", FixedIPs: []model.FixedIP{{SubnetID: "sub-1", IPAddress: "10.2.0.5"}}}
	d := computeDesired(&snapshot{
		networks: []model.Network{n}, subnets: []model.Subnet{sn}, ports: []model.Port{dhcpPort, static},
		instances: []model.Instance{{ID: "inst-a", Name: "web"}},
	}, "t-", "h")

	reachable := dataplane.Route{Dst: netip.MustParsePrefix("192.168.9.0/24"), Gw: netip.MustParseAddr("10.2.0.9")}
	for _, id := range []string{"dhcp-port", "p-static"} {
		if st, ok := d.fixed[key{"ports", id}]; ok {
			t.Errorf("port %s: %+v, want it programmed", id, st)
		}
		routes := d.ports[id].Veth.Routes
		if !slices.Contains(routes, reachable) || slices.ContainsFunc(routes, func(r dataplane.Route) bool { return r.Gw == netip.MustParseAddr("192.0.2.1") }) {
			t.Errorf("port %s routes %v, want %v and not the one via 192.0.2.1", id, routes, reachable)
		}
	}
	if r := d.services["net-1"].DHCP.Subnets[0].Routes; len(r) != 3 {
		t.Errorf("DHCP serves routes %v, want both host routes and the metadata route", r)
	}
}
