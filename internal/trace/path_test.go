package trace

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/nsnet/nsnet/internal/capture"
	"github.com/nsnet/nsnet/internal/model"
)

// chainModel is seed 003's two-tier NAT (a tenant router whose gateway is
// on a transit network, an edge router from transit to public), plus a
// floating IP of the tenant router on transit, and an island subnet whose
// router has no gateway.
func chainModel() *Model {
	m := &Model{HostNetns: "nse-host", Prefix: "nse-"}
	str := func(s string) *string { return &s }
	net := func(id string, ext bool) {
		m.Networks = append(m.Networks, model.Network{ID: id, Name: id, RouterExternal: ext})
	}
	sub := func(id, network, cidr, gw string) {
		s := model.Subnet{ID: id, NetworkID: network, CIDR: cidr}
		if gw != "" {
			s.GatewayIP = str(gw)
		}
		m.Subnets = append(m.Subnets, s)
	}
	port := func(id, network, subnet, ip, owner, device string) {
		m.Ports = append(m.Ports, model.Port{ID: id, NetworkID: network, DeviceOwner: owner, DeviceID: device,
			InterfaceName: "eth0", FixedIPs: []model.FixedIP{{SubnetID: subnet, IPAddress: ip}}})
	}
	net("public", true)
	net("transit", true)
	net("tenant", false)
	net("island", false)
	sub("public-v4", "public", "198.51.100.0/24", "198.51.100.1")
	sub("transit-v4", "transit", "169.254.0.0/18", "169.254.0.1")
	sub("tenant-v4", "tenant", "10.0.0.0/24", "10.0.0.1")
	sub("island-v4", "island", "10.9.0.0/24", "10.9.0.1")
	m.Routers = []model.Router{{ID: "edge", Name: "edge"}, {ID: "tr", Name: "tenant-router"}, {ID: "lonely", Name: "lonely"}}
	port("edge-gw", "public", "public-v4", "198.51.100.10", model.DeviceOwnerRouterGateway, "edge")
	port("edge-if", "transit", "transit-v4", "169.254.0.1", model.DeviceOwnerRouterInterface, "edge")
	port("tr-gw", "transit", "transit-v4", "169.254.0.2", model.DeviceOwnerRouterGateway, "tr")
	port("tr-if", "tenant", "tenant-v4", "10.0.0.1", model.DeviceOwnerRouterInterface, "tr")
	port("lonely-if", "island", "island-v4", "10.9.0.1", model.DeviceOwnerRouterInterface, "lonely")
	m.Instances = []model.Instance{{ID: "vm1", Name: "vm1", Netns: "nse-vm1"}, {ID: "vm2", Name: "vm2", Netns: "nse-vm2"}, {ID: "iso", Name: "iso", Netns: "nse-iso"}}
	port("vm1-p", "tenant", "tenant-v4", "10.0.0.5", "compute:nsnet", "vm1")
	port("vm2-p", "tenant", "tenant-v4", "10.0.0.6", "compute:nsnet", "vm2")
	port("iso-p", "island", "island-v4", "10.9.0.5", "compute:nsnet", "iso")
	port("fip-p", "transit", "transit-v4", "169.254.0.20", model.DeviceOwnerFloatingIP, "fip")
	m.FloatingIPs = []model.FloatingIP{{ID: "fip", FloatingNetworkID: "transit", FloatingIPAddress: "169.254.0.20",
		RouterID: str("tr"), FixedIPAddress: str("10.0.0.6")}}

	// Dual stack: IPv6 on public, transit, tenant and island; routed,
	// never NATed. Only the tenant and edge routers have IPv6 default
	// routes (their gateways are on subnets with IPv6 gateways); the
	// lonely one has none.
	sub("public-v6", "public", "2001:db8:ff::/64", "2001:db8:ff::1")
	sub("transit-v6", "transit", "2001:db8:100::/64", "2001:db8:100::1")
	sub("tenant-v6", "tenant", "2001:db8:1::/64", "2001:db8:1::1")
	sub("island-v6", "island", "2001:db8:9::/64", "2001:db8:9::1")
	v6 := func(portID, subnet, ip string) {
		for i := range m.Ports {
			if m.Ports[i].ID == portID {
				m.Ports[i].FixedIPs = append(m.Ports[i].FixedIPs, model.FixedIP{SubnetID: subnet, IPAddress: ip})
			}
		}
	}
	v6("edge-gw", "public-v6", "2001:db8:ff::10")
	v6("edge-if", "transit-v6", "2001:db8:100::1")
	v6("tr-gw", "transit-v6", "2001:db8:100::2")
	v6("tr-if", "tenant-v6", "2001:db8:1::1")
	v6("lonely-if", "island-v6", "2001:db8:9::1")
	v6("vm1-p", "tenant-v6", "2001:db8:1::5")
	v6("vm2-p", "tenant-v6", "2001:db8:1::6")
	v6("iso-p", "island-v6", "2001:db8:9::5")
	// The edge routes the tenant's IPv6 prefix to the tenant router.
	m.Routers[0].Routes = []model.HostRoute{{Destination: "2001:db8:1::/64", NextHop: "2001:db8:100::2"}}
	return m
}

func TestPlan(t *testing.T) {
	m := chainModel()
	external := Source{Netns: "nse-trace", Interface: "eth0", Node: "external source", Addr: netip.MustParseAddr("169.254.0.99"),
		Network: "transit", HostEnd: "nst-1"}
	tests := []struct {
		name     string
		from     string // instance; "" for the external source
		from6    string // the network of an external source with an IPv6 address
		dst      string
		wantHops string // netns/interface, > for ingress
		wantEnd  string
		wantDNAT string
	}{
		{name: "same network", from: "vm1", dst: "10.0.0.6",
			wantHops: "nse-vm1/eth0 >nse-host/tapvm1-p nse-host/tapvm2-p >nse-vm2/eth0", wantEnd: EndInstance},
		{name: "two-tier NAT out to the internet", from: "vm1", dst: "203.0.113.1",
			wantHops: "nse-vm1/eth0 >nse-host/tapvm1-p nse-host/taptr-if >nse-qrouter-tr/qr-tr-if nse-qrouter-tr/qg-tr-gw " +
				">nse-host/taptr-gw nse-host/tapedge-if >nse-qrouter-edge/qr-edge-if nse-qrouter-edge/qg-edge-gw >nse-host/tapedge-gw",
			wantEnd: EndExternal},
		{name: "a router's own address", from: "vm1", dst: "169.254.0.1",
			wantHops: "nse-vm1/eth0 >nse-host/tapvm1-p nse-host/taptr-if >nse-qrouter-tr/qr-tr-if nse-qrouter-tr/qg-tr-gw " +
				">nse-host/taptr-gw nse-host/tapedge-if >nse-qrouter-edge/qr-edge-if",
			wantEnd: EndRouter},
		{name: "router without a gateway", from: "iso", dst: "203.0.113.1",
			wantHops: "nse-iso/eth0 >nse-host/tapiso-p nse-host/taplonely-if >nse-qrouter-lonely/qr-lonely-if", wantEnd: EndNoRoute},
		{name: "inbound to a floating IP", dst: "169.254.0.20",
			wantHops: "nse-trace/eth0 >nse-host/nst-1 nse-host/taptr-gw >nse-qrouter-tr/qg-tr-gw nse-qrouter-tr/qr-tr-if " +
				">nse-host/taptr-if nse-host/tapvm2-p >nse-vm2/eth0",
			wantEnd: EndInstance, wantDNAT: "10.0.0.6"},
		{name: "inbound to an address nobody holds", dst: "169.254.0.77",
			wantHops: "nse-trace/eth0 >nse-host/nst-1", wantEnd: EndExternal},
		{name: "an internal address no port holds", from: "vm1", dst: "10.0.0.77",
			wantHops: "nse-vm1/eth0 >nse-host/tapvm1-p", wantEnd: EndNobody},
		{name: "IPv6 on the same network", from: "vm1", dst: "2001:db8:1::6",
			wantHops: "nse-vm1/eth0 >nse-host/tapvm1-p nse-host/tapvm2-p >nse-vm2/eth0", wantEnd: EndInstance},
		{name: "IPv6 routed out through both routers", from: "vm1", dst: "2001:db8:ffff::1",
			wantHops: "nse-vm1/eth0 >nse-host/tapvm1-p nse-host/taptr-if >nse-qrouter-tr/qr-tr-if nse-qrouter-tr/qg-tr-gw " +
				">nse-host/taptr-gw nse-host/tapedge-if >nse-qrouter-edge/qr-edge-if nse-qrouter-edge/qg-edge-gw >nse-host/tapedge-gw",
			wantEnd: EndExternal},
		{name: "IPv6 to a router's own address", from: "vm1", dst: "2001:db8:100::1",
			wantHops: "nse-vm1/eth0 >nse-host/tapvm1-p nse-host/taptr-if >nse-qrouter-tr/qr-tr-if nse-qrouter-tr/qg-tr-gw " +
				">nse-host/taptr-gw nse-host/tapedge-if >nse-qrouter-edge/qr-edge-if",
			wantEnd: EndRouter},
		{name: "IPv6 through a router without a gateway", from: "iso", dst: "2001:db8:ffff::1",
			wantHops: "nse-iso/eth0 >nse-host/tapiso-p nse-host/taplonely-if >nse-qrouter-lonely/qr-lonely-if", wantEnd: EndNoRoute},
		{name: "IPv6 inbound to an instance: routed through the tenant router, no DNAT", from6: "transit", dst: "2001:db8:1::6",
			wantHops: "nse-trace/eth0 >nse-host/nst-1 nse-host/taptr-gw >nse-qrouter-tr/qg-tr-gw nse-qrouter-tr/qr-tr-if " +
				">nse-host/taptr-if nse-host/tapvm2-p >nse-vm2/eth0",
			wantEnd: EndInstance},
		{name: "IPv6 inbound from public: the edge's static route, then the tenant router", from6: "public", dst: "2001:db8:1::6",
			wantHops: "nse-trace/eth0 >nse-host/nst-1 nse-host/tapedge-gw >nse-qrouter-edge/qg-edge-gw nse-qrouter-edge/qr-edge-if " +
				">nse-host/tapedge-if nse-host/taptr-gw >nse-qrouter-tr/qg-tr-gw nse-qrouter-tr/qr-tr-if " +
				">nse-host/taptr-if nse-host/tapvm2-p >nse-vm2/eth0",
			wantEnd: EndInstance},
		{name: "IPv6 inbound to a prefix no router holds", from6: "public", dst: "2001:db8:77::1",
			wantHops: "nse-trace/eth0 >nse-host/nst-1", wantEnd: EndExternal},
		{name: "IPv6 to an address nobody holds", from: "vm1", dst: "2001:db8:1::77",
			wantHops: "nse-vm1/eth0 >nse-host/tapvm1-p", wantEnd: EndNobody},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dst := netip.MustParseAddr(tc.dst)
			src := external
			if tc.from6 != "" {
				_, src.Addr, _ = m.freeAddress(tc.from6, true)
				src.Network = tc.from6
				src.Via, _ = m.ExternalVia(tc.from6, dst)
			}
			if tc.from != "" {
				var err error
				if src, err = m.InstanceSource(*m.instance(tc.from), dst); err != nil {
					t.Fatal(err)
				}
			}
			p, err := m.Plan(src, dst, 1, 0)
			if err != nil {
				t.Fatal(err)
			}
			var hops []string
			for _, h := range p.Hops {
				s := h.String()
				if h.Ingress {
					s = ">" + s
				}
				hops = append(hops, s)
			}
			if got := strings.Join(hops, " "); got != tc.wantHops {
				t.Errorf("hops\n got %s\nwant %s", got, tc.wantHops)
			}
			if p.End != tc.wantEnd {
				t.Errorf("end %s (%s), want %s", p.End, p.EndDetail, tc.wantEnd)
			}
			if got := p.DNAT; tc.wantDNAT != "" && got.String() != tc.wantDNAT || tc.wantDNAT == "" && got.IsValid() {
				t.Errorf("DNAT %v, want %q", got, tc.wantDNAT)
			}
		})
	}
}

func TestPlanLoop(t *testing.T) {
	m := chainModel()
	// The edge sends everything back to the tenant router, which sends it
	// to the edge.
	m.Routers[0].Routes = []model.HostRoute{{Destination: "0.0.0.0/0", NextHop: "169.254.0.2"}}
	src, _ := m.InstanceSource(*m.instance("vm1"), netip.MustParseAddr("203.0.113.1"))
	if _, err := m.Plan(src, netip.MustParseAddr("203.0.113.1"), 1, 0); err == nil || !strings.Contains(err.Error(), "routing loop") {
		t.Errorf("Plan with a loop: %v", err)
	}
	// The IPv4 default route is no IPv6 one: IPv6 still leaves by the
	// edge's gateway.
	dst6 := netip.MustParseAddr("2001:db8:ffff::1")
	src6, err := m.InstanceSource(*m.instance("vm1"), dst6)
	if err != nil {
		t.Fatal(err)
	}
	if p, err := m.Plan(src6, dst6, capture.ProtoICMPv6, 0); err != nil || p.End != EndExternal {
		t.Errorf("IPv6 beside an IPv4 loop: %v, %v", p, err)
	}
}

func TestInstanceSourceVersion(t *testing.T) {
	m := chainModel()
	for _, tc := range []struct{ inst, dst, want, err string }{
		{"vm1", "203.0.113.1", "10.0.0.5", ""},
		{"vm1", "2001:db8:ffff::1", "2001:db8:1::5", ""},
		{"vm1", "2001:db8:1::6", "2001:db8:1::5", ""},
		{"vm1", "10.0.0.6", "10.0.0.5", ""},
	} {
		src, err := m.InstanceSource(*m.instance(tc.inst), netip.MustParseAddr(tc.dst))
		if err != nil || src.Addr.String() != tc.want {
			t.Errorf("InstanceSource(%s, %s) = %v, %v; want %s", tc.inst, tc.dst, src.Addr, err, tc.want)
		}
	}
	// An IPv4-only instance has no IPv6 source.
	m.Instances = append(m.Instances, model.Instance{ID: "v4", Name: "v4only", Netns: "nse-v4"})
	m.Ports = append(m.Ports, model.Port{ID: "v4-p", NetworkID: "tenant", DeviceOwner: "compute:nsnet", DeviceID: "v4",
		InterfaceName: "eth0", FixedIPs: []model.FixedIP{{SubnetID: "tenant-v4", IPAddress: "10.0.0.9"}}})
	if _, err := m.InstanceSource(*m.instance("v4"), netip.MustParseAddr("2001:db8:1::6")); err == nil || !strings.Contains(err.Error(), "no IPv6 port") {
		t.Errorf("IPv6 source of an IPv4-only instance: %v", err)
	}
}

func TestFreeAddress(t *testing.T) {
	m := chainModel()
	for _, tc := range []struct {
		network string
		v6      bool
		want    string
	}{
		{"transit", false, "169.254.63.254"},
		{"transit", true, "2001:db8:100:0:ffff:ffff:ffff:ffff"},
		{"tenant", true, "2001:db8:1:0:ffff:ffff:ffff:ffff"},
	} {
		_, a, err := m.freeAddress(tc.network, tc.v6)
		if err != nil || a.String() != tc.want {
			t.Errorf("freeAddress(%s, v6 %v) = %v, %v; want %s", tc.network, tc.v6, a, err, tc.want)
		}
	}
	// The last address taken: the one below.
	m.Ports = append(m.Ports, model.Port{ID: "x", NetworkID: "transit", FixedIPs: []model.FixedIP{{SubnetID: "transit-v6", IPAddress: "2001:db8:100:0:ffff:ffff:ffff:ffff"}}})
	if _, a, _ := m.freeAddress("transit", true); a.String() != "2001:db8:100:0:ffff:ffff:ffff:fffe" {
		t.Errorf("freeAddress past a used address = %v", a)
	}
}

// TestPlanHostGateway: on a host-gateway network (seeds 000–002) the host
// is the router: the probe enters its stack by the network's bridge and
// leaves by the uplink, where the masquerade happens; a published port of
// the host (any of its addresses) is translated to an instance's, which
// may be the source itself (hairpin through the bridge).
func TestPlanHostGateway(t *testing.T) {
	str := func(s string) *string { return &s }
	n := func(i int) *int { return &i }
	m := &Model{HostNetns: "nse-host", Prefix: "nse-"}
	m.Networks = []model.Network{
		{ID: "lan", Name: "linux-bridge", HostGateway: true, Uplink: str("eth0")},
		{ID: "lab", Name: "lab", HostGateway: true},
	}
	m.Subnets = []model.Subnet{
		{ID: "lan-v4", NetworkID: "lan", CIDR: "192.168.24.0/24", GatewayIP: str("192.168.24.1")},
		{ID: "lab-v4", NetworkID: "lab", CIDR: "192.168.25.0/24", GatewayIP: str("192.168.25.1")},
	}
	m.Instances = []model.Instance{{ID: "red", Name: "red", Netns: "nse-red"}, {ID: "green", Name: "green", Netns: "nse-green"}, {ID: "lb", Name: "lb", Netns: "nse-lb"}}
	for _, p := range []struct{ id, net, sub, ip, dev string }{
		{"red-p", "lan", "lan-v4", "192.168.24.10", "red"}, {"green-p", "lan", "lan-v4", "192.168.24.11", "green"},
		{"lb-p", "lab", "lab-v4", "192.168.25.10", "lb"},
	} {
		m.Ports = append(m.Ports, model.Port{ID: p.id, NetworkID: p.net, DeviceOwner: "compute:nsnet", DeviceID: p.dev,
			InterfaceName: "eth0", FixedIPs: []model.FixedIP{{SubnetID: p.sub, IPAddress: p.ip}}})
	}
	m.PublishedPorts = []model.PublishedPort{{ID: "pp", Protocol: "tcp", HostPort: n(8080), InternalPortID: "red-p",
		InternalIPAddress: "192.168.24.10", InternalPort: n(80)}}
	br := model.BridgeName("lan")
	tests := []struct {
		name, from, dst string
		proto           uint8
		port            uint16
		wantHops        string
		wantEnd         string
		wantDNAT        string
	}{
		{name: "out through the uplink", from: "red", dst: "203.0.113.1", proto: capture.ProtoICMP,
			wantHops: "nse-red/eth0 >nse-host/tapred-p >nse-host/" + br + " nse-host/eth0", wantEnd: EndExternal},
		{name: "the host's gateway address", from: "green", dst: "192.168.24.1", proto: capture.ProtoICMP,
			wantHops: "nse-green/eth0 >nse-host/tapgreen-p >nse-host/" + br, wantEnd: EndHost},
		{name: "its own published port, through the gateway (hairpin)", from: "red", dst: "192.168.24.1", proto: capture.ProtoTCP, port: 8080,
			wantHops: "nse-red/eth0 >nse-host/tapred-p >nse-host/" + br + " nse-host/" + br + " nse-host/tapred-p >nse-red/eth0",
			wantEnd:  EndInstance, wantDNAT: "192.168.24.10"},
		{name: "another's published port, by the host's other gateway address", from: "lb", dst: "192.168.25.1", proto: capture.ProtoTCP, port: 8080,
			wantHops: "nse-lb/eth0 >nse-host/taplb-p >nse-host/" + model.BridgeName("lab") + " nse-host/" + br + " nse-host/tapred-p >nse-red/eth0",
			wantEnd:  EndInstance, wantDNAT: "192.168.24.10"},
		{name: "routed by the host to another host-gateway network", from: "lb", dst: "192.168.24.11", proto: capture.ProtoICMP,
			wantHops: "nse-lb/eth0 >nse-host/taplb-p >nse-host/" + model.BridgeName("lab") + " nse-host/" + br + " nse-host/tapgreen-p >nse-green/eth0",
			wantEnd:  EndInstance},
		{name: "no uplink: the host's own routes", from: "lb", dst: "203.0.113.1", proto: capture.ProtoICMP,
			wantHops: "nse-lb/eth0 >nse-host/taplb-p >nse-host/" + model.BridgeName("lab"), wantEnd: EndExternal},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dst := netip.MustParseAddr(tc.dst)
			src, err := m.InstanceSource(*m.instance(tc.from), dst)
			if err != nil {
				t.Fatal(err)
			}
			p, err := m.Plan(src, dst, tc.proto, tc.port)
			if err != nil {
				t.Fatal(err)
			}
			var hops []string
			for _, h := range p.Hops {
				s := h.String()
				if h.Ingress {
					s = ">" + s
				}
				hops = append(hops, s)
			}
			if got := strings.Join(hops, " "); got != tc.wantHops {
				t.Errorf("hops\n got %s\nwant %s", got, tc.wantHops)
			}
			if p.End != tc.wantEnd {
				t.Errorf("end %s (%s), want %s", p.End, p.EndDetail, tc.wantEnd)
			}
			if got := p.DNAT; tc.wantDNAT != "" && got.String() != tc.wantDNAT || tc.wantDNAT == "" && got.IsValid() {
				t.Errorf("DNAT %v, want %q", got, tc.wantDNAT)
			}
		})
	}
}
