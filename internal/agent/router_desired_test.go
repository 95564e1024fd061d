package agent

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/nsnet/nsnet/internal/dataplane"
	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/nat"
	"github.com/nsnet/nsnet/internal/store"
)

// TestComputeDesiredRouters checks the router specs computeDesired makes
// from records: ports, routes, NAT, and which router a floating IP and a
// port forward belong to.
func TestComputeDesiredRouters(t *testing.T) {
	topo := newL3Topo()
	qr1, qr2, qg := model.RouterInterfaceName(topo.qr1.ID), model.RouterInterfaceName(topo.qr2.ID), model.RouterGatewayName(topo.qg.ID)
	addr := netip.MustParseAddr
	sub := func(ifname, prefix string) nat.Subnet {
		return nat.Subnet{Interface: ifname, Prefix: netip.MustParsePrefix(prefix)}
	}
	fwd := func(ext, in string, from, to uint16) nat.PortForward {
		return nat.PortForward{Protocol: nat.TCP, External: addr(ext), ExternalPorts: nat.Port(from), Internal: addr(in), InternalPorts: nat.Port(to)}
	}
	other := router(400, &topo.ext, true) // a router without ports
	noGw := router(410, nil, false)
	noGwPort := topo.int1.port(411, "10.0.0.254", model.DeviceOwnerRouterInterface, noGw.ID)

	for _, tc := range []struct {
		name    string
		edit    func(r *model.Router)
		extra   []any
		wantNAT nat.Router
		// wantRoutes are the routes of each router port, by interface.
		wantRoutes map[string][]string
		wantFloat  []string // addresses on qg-
		wantStatus map[string]string
		wantErr    string // in the router's Problem
	}{
		{
			name: "gateway, SNAT, two subnets",
			wantNAT: nat.Router{Gateway: qg, GatewayAddr: addr("198.51.100.10"), EnableSNAT: true,
				Internal: []nat.Subnet{sub(qr1, "10.0.0.0/24"), sub(qr2, "10.1.0.0/24")}},
			wantRoutes: map[string][]string{qr1: nil, qr2: nil, qg: {"0.0.0.0/0 via 198.51.100.1"}},
		},
		{
			name: "enable_snat false",
			edit: func(r *model.Router) { r.ExternalGatewayInfo.EnableSNAT = false },
			wantNAT: nat.Router{Gateway: qg, GatewayAddr: addr("198.51.100.10"),
				Internal: []nat.Subnet{sub(qr1, "10.0.0.0/24"), sub(qr2, "10.1.0.0/24")}},
		},
		{
			name: "static routes: on the port of the next hop, internal ones translated, default wins over the gateway's",
			edit: func(r *model.Router) {
				r.Routes = []model.HostRoute{{Destination: "172.16.0.0/16", NextHop: "10.0.0.254"}, {Destination: "0.0.0.0/0", NextHop: "198.51.100.2"}}
			},
			wantNAT: nat.Router{Gateway: qg, GatewayAddr: addr("198.51.100.10"), EnableSNAT: true,
				Internal: []nat.Subnet{sub(qr1, "10.0.0.0/24"), sub(qr2, "10.1.0.0/24"), sub(qr1, "172.16.0.0/16")}},
			wantRoutes: map[string][]string{qr1: {"172.16.0.0/16 via 10.0.0.254"}, qr2: nil, qg: {"0.0.0.0/0 via 198.51.100.2"}},
		},
		{
			// Neutron accepts it; the kernel's connected route for the
			// subnet holds that destination and stays.
			name: "a route to an attached subnet is left out, no error",
			edit: func(r *model.Router) {
				r.Routes = []model.HostRoute{{Destination: "10.1.0.0/24", NextHop: "10.0.0.254"}, {Destination: "172.16.0.0/16", NextHop: "10.0.0.254"}}
			},
			wantNAT: nat.Router{Gateway: qg, GatewayAddr: addr("198.51.100.10"), EnableSNAT: true,
				Internal: []nat.Subnet{sub(qr1, "10.0.0.0/24"), sub(qr2, "10.1.0.0/24"), sub(qr1, "172.16.0.0/16")}},
			wantRoutes: map[string][]string{qr1: {"172.16.0.0/16 via 10.0.0.254"}, qr2: nil, qg: {"0.0.0.0/0 via 198.51.100.1"}},
		},
		{
			name: "unreachable next hop: programmed without it, ERROR",
			edit: func(r *model.Router) {
				r.Routes = []model.HostRoute{{Destination: "172.16.0.0/16", NextHop: "192.0.2.9"}}
			},
			wantErr: "no interface reaches the next hop",
		},
		{
			name: "floating IPs: associated ones on their router, others DOWN or ERROR",
			extra: []any{
				floatingIP(300, topo.ext, "198.51.100.50", &topo.r, "10.0.0.11"),
				floatingIP(301, topo.ext, "198.51.100.51", nil, ""),
				floatingIP(302, topo.ext, "198.51.100.52", &other, "10.0.0.12"),
				other,
			},
			wantNAT: nat.Router{Gateway: qg, GatewayAddr: addr("198.51.100.10"), EnableSNAT: true,
				Internal:    []nat.Subnet{sub(qr1, "10.0.0.0/24"), sub(qr2, "10.1.0.0/24")},
				FloatingIPs: []nat.FloatingIP{{Out: qg, Floating: addr("198.51.100.50"), Fixed: addr("10.0.0.11")}}},
			wantFloat:  []string{"198.51.100.50"},
			wantStatus: map[string]string{rid(301): model.StatusDown, rid(302): model.StatusError},
		},
		{
			name: "forward of an unassociated floating IP: the router joining its network and the internal address",
			extra: []any{
				floatingIP(301, topo.ext, "198.51.100.51", nil, ""),
				model.PortForwarding{ID: rid(305), FloatingIPID: rid(301), Protocol: "tcp", ExternalPort: ptr(8080), InternalPort: ptr(80), InternalIPAddress: "10.1.0.13"},
				model.PortForwarding{ID: rid(306), FloatingIPID: rid(301), Protocol: "tcp", ExternalPortRange: "2000:2001", InternalPortRange: "3000:3001", InternalIPAddress: "10.0.0.11"},
				noGw, noGwPort,
			},
			wantNAT: nat.Router{Gateway: qg, GatewayAddr: addr("198.51.100.10"), EnableSNAT: true,
				Internal: []nat.Subnet{sub(qr1, "10.0.0.0/24"), sub(qr2, "10.1.0.0/24")},
				PortForwards: []nat.PortForward{
					{Protocol: nat.TCP, External: addr("198.51.100.51"), ExternalPorts: nat.PortRange{First: 2000, Last: 2001}, Internal: addr("10.0.0.11"), InternalPorts: nat.PortRange{First: 3000, Last: 3001}},
					fwd("198.51.100.51", "10.1.0.13", 8080, 80),
				}},
			wantFloat: []string{"198.51.100.51"},
		},
		{
			name: "forward of a floating IP whose router_id is set without association (as Neutron does)",
			extra: []any{
				withRouter(floatingIP(301, topo.ext, "198.51.100.51", nil, ""), topo.r.ID),
				model.PortForwarding{ID: rid(305), FloatingIPID: rid(301), Protocol: "udp", ExternalPort: ptr(53), InternalPort: ptr(5353), InternalIPAddress: "10.1.0.13"},
			},
			wantNAT: nat.Router{Gateway: qg, GatewayAddr: addr("198.51.100.10"), EnableSNAT: true,
				Internal: []nat.Subnet{sub(qr1, "10.0.0.0/24"), sub(qr2, "10.1.0.0/24")},
				PortForwards: []nat.PortForward{{Protocol: nat.UDP, External: addr("198.51.100.51"), ExternalPorts: nat.Port(53),
					Internal: addr("10.1.0.13"), InternalPorts: nat.Port(5353)}}},
			wantFloat: []string{"198.51.100.51"},
		},
		{
			name:  "floating IP on a router without gateway",
			extra: []any{noGw, noGwPort, floatingIP(300, topo.ext, "198.51.100.50", &noGw, "10.0.0.11")},
			wantNAT: nat.Router{Gateway: qg, GatewayAddr: addr("198.51.100.10"), EnableSNAT: true,
				Internal: []nat.Subnet{sub(qr1, "10.0.0.0/24"), sub(qr2, "10.1.0.0/24")}},
			wantStatus: map[string]string{rid(300): model.StatusError},
		},
		{
			name:  "address scopes: a subnet in the external network's scope is routed, one in another scope translated",
			extra: scopedTopo(topo, "scope-a", "scope-a", "scope-b"),
			wantNAT: nat.Router{Gateway: qg, GatewayAddr: addr("198.51.100.10"), EnableSNAT: true,
				Internal: []nat.Subnet{sub(qr1, "10.0.0.0/24"), sub(qr2, "10.1.0.0/24")},
				Routed:   []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24")}},
		},
		{
			name:  "address scopes: an unscoped external network routes nothing untranslated",
			extra: scopedTopo(topo, "", "scope-a", "scope-a"),
			wantNAT: nat.Router{Gateway: qg, GatewayAddr: addr("198.51.100.10"), EnableSNAT: true,
				Internal: []nat.Subnet{sub(qr1, "10.0.0.0/24"), sub(qr2, "10.1.0.0/24")}},
		},
		{
			name: "router admin down: ports down",
			edit: func(r *model.Router) { r.AdminStateUp = false },
			wantNAT: nat.Router{Gateway: qg, GatewayAddr: addr("198.51.100.10"), EnableSNAT: true,
				Internal: []nat.Subnet{sub(qr1, "10.0.0.0/24"), sub(qr2, "10.1.0.0/24")}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := topo.r
			r.ExternalGatewayInfo = &model.ExternalGatewayInfo{NetworkID: topo.ext.net.ID, EnableSNAT: true}
			if tc.edit != nil {
				tc.edit(&r)
			}
			s := snapshotOf(append(append(topo.all(), r), tc.extra...))
			d := computeDesired(s, "p-", "h")
			spec, ok := d.routers[r.ID]
			if !ok {
				t.Fatalf("no router spec; fixed %v", d.fixed)
			}
			if spec.Netns != "p-qrouter-"+r.ID || spec.Marker != dataplane.RouterMarker(r.ID, "h") || spec.Up != r.AdminStateUp {
				t.Fatalf("router spec %+v", spec)
			}
			if tc.wantErr != "" {
				if !strings.Contains(spec.Problem, tc.wantErr) {
					t.Fatalf("problem = %q, want %q", spec.Problem, tc.wantErr)
				}
				return
			}
			if spec.Problem != "" {
				t.Fatalf("problem: %s", spec.Problem)
			}
			if !sameNAT(spec.NAT, tc.wantNAT) {
				t.Fatalf("NAT\n got %+v\nwant %+v", spec.NAT, tc.wantNAT)
			}
			for _, p := range []model.Port{topo.qr1, topo.qr2, topo.qg} {
				ps := d.ports[p.ID]
				if ps.RouterID != r.ID || ps.Veth.Up != r.AdminStateUp || ps.Gateway != (p.ID == topo.qg.ID) {
					t.Fatalf("port %s: %+v", p.ID, ps)
				}
				if want, ok := tc.wantRoutes[ps.Veth.IfName]; ok {
					var got []string
					for _, r := range ps.Veth.Routes {
						got = append(got, r.String())
					}
					if !slices.Equal(got, want) {
						t.Fatalf("routes of %s = %v, want %v", ps.Veth.IfName, got, want)
					}
				}
			}
			var float []string
			for _, a := range d.ports[topo.qg.ID].Floating {
				float = append(float, a.String())
			}
			if !slices.Equal(float, tc.wantFloat) {
				t.Fatalf("floating addresses on qg- = %v, want %v", float, tc.wantFloat)
			}
			for id, want := range tc.wantStatus {
				if got := d.fixed[key{store.FloatingIPs, id}]; got.Status != want {
					t.Fatalf("floating IP %s: %+v, want %s", id, got, want)
				}
			}
			if err := spec.NAT.Spec().Validate(); err != nil {
				t.Fatalf("NAT spec invalid: %v", err)
			}
		})
	}
}

// scopedTopo puts topo's external, first and second internal subnets in
// pools of the address scopes given ("" for no pool).
func scopedTopo(topo l3topo, ext, int1, int2 string) []any {
	var out []any
	for i, sc := range []struct {
		subnet model.Subnet
		scope  string
	}{{topo.ext.subnet, ext}, {topo.int1.subnet, int1}, {topo.int2.subnet, int2}} {
		if sc.scope == "" {
			continue
		}
		pool := model.SubnetPool{ID: rid(500 + i), AddressScopeID: ptr(sc.scope)}
		sc.subnet.SubnetPoolID = ptr(pool.ID)
		out = append(out, pool, sc.subnet)
	}
	return out
}

func withRouter(f model.FloatingIP, routerID string) model.FloatingIP {
	f.RouterID = ptr(routerID)
	return f
}

// snapshotOf sorts records into a snapshot, as the store would return them.
func snapshotOf(records []any) *snapshot {
	s := &snapshot{}
	for _, r := range records {
		switch v := r.(type) {
		case model.Network:
			s.networks = append(s.networks, v)
		case model.Subnet:
			s.subnets = slices.DeleteFunc(s.subnets, func(o model.Subnet) bool { return o.ID == v.ID })
			s.subnets = append(s.subnets, v)
		case model.SubnetPool:
			s.pools = append(s.pools, v)
		case model.Port:
			s.ports = append(s.ports, v)
		case model.Instance:
			s.instances = append(s.instances, v)
		case model.Router:
			// The last one of an id wins, as a later Put would.
			s.routers = slices.DeleteFunc(s.routers, func(o model.Router) bool { return o.ID == v.ID })
			s.routers = append(s.routers, v)
		case model.FloatingIP:
			s.fips = append(s.fips, v)
		case model.PortForwarding:
			s.forwards = append(s.forwards, v)
		}
	}
	return s
}

func TestPortRange(t *testing.T) {
	for _, tc := range []struct {
		single *int
		ranged string
		want   nat.PortRange
		err    bool
	}{
		{single: ptr(80), want: nat.Port(80)},
		{ranged: "2000:2010", want: nat.PortRange{First: 2000, Last: 2010}},
		{ranged: "22", want: nat.Port(22)},
		{ranged: "10:9", err: true},
		{ranged: "0:9", err: true},
		{single: ptr(70000), err: true},
		{ranged: "", err: true},
	} {
		got, err := portRange(tc.single, tc.ranged)
		if (err != nil) != tc.err || !tc.err && got != tc.want {
			t.Errorf("portRange(%v, %q) = %v, %v", tc.single, tc.ranged, got, err)
		}
	}
}

func TestNATChange(t *testing.T) {
	f := func(fl, fx string) nat.FloatingIP {
		return nat.FloatingIP{Out: "qg-x", Floating: netip.MustParseAddr(fl), Fixed: netip.MustParseAddr(fx)}
	}
	base := nat.Router{Gateway: "qg-x", GatewayAddr: netip.MustParseAddr("198.51.100.10"), EnableSNAT: true,
		Internal:    []nat.Subnet{{Interface: "qr-a", Prefix: netip.MustParsePrefix("10.0.0.0/24")}},
		FloatingIPs: []nat.FloatingIP{f("198.51.100.50", "10.0.0.11"), f("198.51.100.51", "10.0.0.12")}}
	applied := &routerNAT{applied: base.Spec(), ok: true}

	moved := base
	moved.FloatingIPs = []nat.FloatingIP{f("198.51.100.50", "10.0.0.13"), f("198.51.100.52", "10.0.0.14")}
	c, ok := natChange(applied, moved.Spec())
	if !ok {
		t.Fatal("floating IPs only: not incremental")
	}
	if !slices.Equal(c.Remove.FloatingIPs, []nat.FloatingIP{f("198.51.100.50", "10.0.0.11"), f("198.51.100.51", "10.0.0.12")}) ||
		!slices.Equal(c.Add.FloatingIPs, []nat.FloatingIP{f("198.51.100.50", "10.0.0.13"), f("198.51.100.52", "10.0.0.14")}) {
		t.Fatalf("change = %+v", c)
	}

	snatOff := base
	snatOff.EnableSNAT = false
	if _, ok := natChange(applied, snatOff.Spec()); ok {
		t.Fatal("SNAT change taken as incremental")
	}
	if _, ok := natChange(&routerNAT{applied: base.Spec()}, base.Spec()); ok {
		t.Fatal("a table whose last change failed taken as incremental")
	}
}
