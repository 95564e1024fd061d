package trace

import (
	"net/netip"
	"strings"
	"testing"

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
	return m
}

func TestPlan(t *testing.T) {
	m := chainModel()
	external := Source{Netns: "nse-trace", Interface: "eth0", Node: "external source", Addr: netip.MustParseAddr("169.254.0.99"),
		Network: "transit", HostEnd: "nst-1"}
	tests := []struct {
		name     string
		from     string // instance; "" for the external source
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
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dst := netip.MustParseAddr(tc.dst)
			src := external
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
}
