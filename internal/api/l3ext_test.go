package api_test

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/nsnet/nsnet/internal/model"
)

type route struct {
	Destination string `json:"destination"`
	NextHop     string `json:"nexthop"`
}

type routerRoutes struct {
	Router struct {
		ID     string  `json:"id"`
		Routes []route `json:"routes"`
	} `json:"router"`
}

// TestExtraRoutesAtomic follows neutron-tempest-plugin's
// test_extra_routes_atomic: routes added and removed by set, duplicates
// merged, removing what is not there no error, each answer the router.
func TestExtraRoutesAtomic(t *testing.T) {
	h := newHarness(t)
	f := h.l3Fixture()
	steps := []struct {
		action string
		routes []route
		want   []route
	}{
		{"add", []route{{"10.9.2.0/24", "10.0.0.2"}}, []route{{"10.9.2.0/24", "10.0.0.2"}}},
		{"add", []route{{"10.9.2.0/24", "10.0.0.2"}, {"10.9.3.0/24", "10.0.0.3"}},
			[]route{{"10.9.2.0/24", "10.0.0.2"}, {"10.9.3.0/24", "10.0.0.3"}}},
		{"remove", []route{{"10.9.3.0/24", "10.0.0.3"}, {"10.9.4.0/24", "10.0.0.4"}}, []route{{"10.9.2.0/24", "10.0.0.2"}}},
		{"add", []route{{"10.9.2.0/24", "10.0.0.5"}}, []route{{"10.9.2.0/24", "10.0.0.2"}, {"10.9.2.0/24", "10.0.0.5"}}},
		{"remove", []route{{"10.9.2.0/24", "10.0.0.5"}}, []route{{"10.9.2.0/24", "10.0.0.2"}}},
		{"remove", []route{{"10.9.2.0/24", "10.0.0.2"}, {"10.9.3.0/24", "10.0.0.3"}, {"10.9.2.0/24", "10.0.0.5"}}, []route{}},
		// a route listed twice is added once (Neutron checks the result).
		{"add", []route{{"10.9.6.0/24", "10.0.0.6"}, {"10.9.6.0/24", "10.0.0.6"}}, []route{{"10.9.6.0/24", "10.0.0.6"}}},
	}
	for i, st := range steps {
		r := h.do("PUT", "/v2.0/routers/"+f.router+"/"+st.action+"_extraroutes",
			map[string]any{"router": map[string]any{"routes": st.routes}})
		if r.status != 200 {
			t.Fatalf("step %d %s: %d %v", i, st.action, r.status, r.body)
		}
		var got routerRoutes
		decodeInto(t, r, &got)
		if got.Router.ID != f.router || !slices.Equal(got.Router.Routes, st.want) {
			t.Errorf("step %d %s: router %s routes %v, want %v", i, st.action, got.Router.ID, got.Router.Routes, st.want)
		}
		var shown routerRoutes
		decodeInto(t, h.do("GET", "/v2.0/routers/"+f.router, nil), &shown)
		if !slices.Equal(shown.Router.Routes, st.want) {
			t.Errorf("step %d %s: GET shows %v, want %v", i, st.action, shown.Router.Routes, st.want)
		}
	}
}

// TestExtraRoutesAtomicRefusals: bad input changes nothing.
func TestExtraRoutesAtomicRefusals(t *testing.T) {
	h := newHarness(t)
	f := h.l3Fixture()
	if r := h.do("PUT", "/v2.0/routers/"+f.router+"/add_extraroutes", map[string]any{"router": map[string]any{
		"routes": []route{{"10.9.2.0/24", "10.0.0.2"}}}}); r.status != 200 {
		t.Fatalf("add: %d %v", r.status, r.body)
	}
	for _, tc := range []struct {
		name, action string
		body         any
		status       int
		typ          string
	}{
		{"next hop not connected", "add", map[string]any{"router": map[string]any{"routes": []route{{"10.9.3.0/24", "192.0.2.1"}}}}, 400, "InvalidRoutes"},
		{"not a route", "add", map[string]any{"router": map[string]any{"routes": []any{map[string]any{"destination": "x", "nexthop": "10.0.0.3"}}}}, 400, "HTTPBadRequest"},
		{"no envelope", "add", map[string]any{"routes": []route{{"10.9.3.0/24", "10.0.0.3"}}}, 400, "HTTPBadRequest"},
		{"other attribute", "remove", map[string]any{"router": map[string]any{"name": "x", "routes": []route{}}}, 400, "HTTPBadRequest"},
		{"no routes", "remove", map[string]any{"router": map[string]any{}}, 400, "HTTPBadRequest"},
		{"no router", "add", map[string]any{"router": map[string]any{"routes": []route{}}}, 404, "RouterNotFound"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := f.router
			if tc.status == 404 {
				id = "6b5c2b52-9ed0-4f5e-8a24-2f1a0e0c6f11"
			}
			r := h.do("PUT", "/v2.0/routers/"+id+"/"+tc.action+"_extraroutes", tc.body)
			if typ, msg := neutronError(r); r.status != tc.status || typ != tc.typ {
				t.Errorf("%d %s %q, want %d %s", r.status, typ, msg, tc.status, tc.typ)
			}
			var shown routerRoutes
			decodeInto(t, h.do("GET", "/v2.0/routers/"+f.router, nil), &shown)
			if want := []route{{"10.9.2.0/24", "10.0.0.2"}}; !slices.Equal(shown.Router.Routes, want) {
				t.Errorf("routes now %v, want %v", shown.Router.Routes, want)
			}
		})
	}
}

// TestFloatingIPPools: every IPv4 subnet of the external networks a
// project can see is a pool, also to a member who cannot see the subnet
// itself; private networks' and IPv6 subnets are not. A floating IP taken from a pool's subnet is
// in its CIDR.
func TestFloatingIPPools(t *testing.T) {
	h := newTenants(t, nil)
	ext := h.create(admin, "networks", "network", map[string]any{"name": "public", "router:external": true})
	s1 := h.create(admin, "subnets", "subnet", map[string]any{"network_id": ext, "cidr": "198.51.100.0/24", "name": "one"})
	s2 := h.create(admin, "subnets", "subnet", map[string]any{"network_id": ext, "cidr": "203.0.113.0/24", "name": "two"})
	h.create(admin, "subnets", "subnet", map[string]any{"network_id": ext, "cidr": "2001:db8::/64", "ip_version": 6})
	priv := h.create(owner, "networks", "network", map[string]any{"name": "private"})
	h.create(owner, "subnets", "subnet", map[string]any{"network_id": priv, "cidr": "10.0.0.0/24"})

	var list struct {
		Pools []model.FloatingIPPool `json:"floatingip_pools"`
	}
	r := h.as(owner, "GET", "/v2.0/floatingip-pools", nil)
	if r.status != 200 {
		t.Fatalf("list: %d %v", r.status, r.body)
	}
	decodeInto(t, r, &list)
	slices.SortFunc(list.Pools, func(a, b model.FloatingIPPool) int {
		if a.CIDR < b.CIDR {
			return -1
		}
		return 1
	})
	want := []model.FloatingIPPool{
		{SubnetID: s1, SubnetName: "one", NetworkID: ext, CIDR: "198.51.100.0/24", ProjectID: "alpha", TenantID: "alpha"},
		{SubnetID: s2, SubnetName: "two", NetworkID: ext, CIDR: "203.0.113.0/24", ProjectID: "alpha", TenantID: "alpha"},
	}
	if !slices.Equal(list.Pools, want) {
		t.Errorf("pools = %+v, want %+v", list.Pools, want)
	}
	if r := h.as(owner, "GET", "/v2.0/floatingip-pools?subnet_id="+s2+"&fields=cidr", nil); r.status != 200 ||
		len(r.body["floatingip_pools"].([]any)) != 1 {
		t.Errorf("filtered: %d %v", r.status, r.body)
	}
	if r := h.as(owner, "POST", "/v2.0/floatingip-pools", map[string]any{"floatingip_pool": map[string]any{}}); r.status != 405 {
		t.Errorf("POST: %d, want 405", r.status)
	}
	fip := h.as(owner, "POST", "/v2.0/floatingips", map[string]any{"floatingip": map[string]any{
		"floating_network_id": ext, "subnet_id": s2}})
	if fip.status != 201 {
		t.Fatalf("floating IP from pool: %d %v", fip.status, fip.body)
	}
	if a := fip.body["floatingip"].(map[string]any)["floating_ip_address"].(string); !addrInCIDR(a, "203.0.113.0/24") {
		t.Errorf("floating IP %s not in its pool 203.0.113.0/24", a)
	}
}

// TestFloatingIPPortDetails: a floating IP's body describes its port
// (fip-port-details) in every answer, and has port_details null once
// disassociated.
func TestFloatingIPPortDetails(t *testing.T) {
	h := newHarness(t)
	f := h.l3Fixture()
	h.do("PUT", "/v2.0/ports/"+f.port, map[string]any{"port": map[string]any{"name": "web"}})
	var port struct {
		Port model.Port `json:"port"`
	}
	decodeInto(t, h.do("GET", "/v2.0/ports/"+f.port, nil), &port)
	want := model.FIPPortDetails{
		Name: "web", NetworkID: f.priv, MACAddress: port.Port.MACAddress, AdminStateUp: true,
		Status: port.Port.Status, DeviceID: port.Port.DeviceID, DeviceOwner: port.Port.DeviceOwner,
	}
	type fipBody struct {
		FloatingIP model.FloatingIP `json:"floatingip"`
	}
	check := func(what string, r response, want *model.FIPPortDetails) {
		t.Helper()
		if _, ok := r.body["floatingip"].(map[string]any)["port_details"]; !ok {
			t.Errorf("%s: no port_details in %v", what, r.body)
		}
		var b fipBody
		decodeInto(t, r, &b)
		got := b.FloatingIP.PortDetails
		if (got == nil) != (want == nil) || got != nil && *got != *want {
			t.Errorf("%s: port_details = %+v, want %+v", what, got, want)
		}
	}
	created := h.do("POST", "/v2.0/floatingips", map[string]any{"floatingip": map[string]any{
		"floating_network_id": f.ext, "port_id": f.port, "description": "d1"}})
	check("create", created, &want)
	id := created.body["floatingip"].(map[string]any)["id"].(string)
	check("show", h.do("GET", "/v2.0/floatingips/"+id, nil), &want)
	check("update", h.do("PUT", "/v2.0/floatingips/"+id, map[string]any{"floatingip": map[string]any{"description": "d2"}}), &want)
	list := h.do("GET", "/v2.0/floatingips?fields=port_details", nil)
	if l := list.body["floatingips"].([]any); len(l) != 1 || l[0].(map[string]any)["port_details"] == nil {
		t.Errorf("list: %v", list.body)
	}
	check("disassociate", h.do("PUT", "/v2.0/floatingips/"+id, map[string]any{"floatingip": map[string]any{"port_id": nil}}), nil)
}

func addrInCIDR(addr, cidr string) bool {
	a, err1 := netip.ParseAddr(addr)
	p, err2 := netip.ParsePrefix(cidr)
	return err1 == nil && err2 == nil && p.Contains(a)
}
