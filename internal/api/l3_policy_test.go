package api_test

import "testing"

// TestL3Policy: routers and floating IPs follow the rules of networks: a
// project's own are invisible to others (404), a member may use an
// external network of the admin's for its gateway and floating IPs, and
// what Neutron keeps for the admin (SNAT mode, chosen addresses) is 403.
func TestL3Policy(t *testing.T) {
	h := newTenants(t, map[string]int{"router": 1, "floatingip": 1})
	ext := h.create(admin, "networks", "network", map[string]any{"name": "public", "router:external": true})
	h.create(admin, "subnets", "subnet", map[string]any{"network_id": ext, "cidr": "198.51.100.0/24"})
	net := h.create(owner, "networks", "network", map[string]any{"name": "net"})
	subnet := h.create(owner, "subnets", "subnet", map[string]any{"network_id": net, "cidr": "10.0.0.0/24"})
	port := h.create(owner, "ports", "port", map[string]any{"network_id": net})
	shared := h.create(admin, "networks", "network", map[string]any{"name": "shared", "shared": true})
	sharedSubnet := h.create(admin, "subnets", "subnet", map[string]any{"network_id": shared, "cidr": "10.7.0.0/24"})
	router := h.create(owner, "routers", "router", map[string]any{"name": "r", "external_gateway_info": map[string]any{"network_id": ext}})
	if r := h.as(owner, "PUT", "/v2.0/routers/"+router+"/add_router_interface", map[string]any{"subnet_id": subnet}); r.status != 200 {
		t.Fatalf("add interface: %d %v", r.status, r.body)
	}
	fip := h.create(owner, "floatingips", "floatingip", map[string]any{"floating_network_id": ext, "port_id": port})
	// The admin's port for project beta on alpha's network: alpha cannot see it.
	betaPort := h.create(admin, "ports", "port", map[string]any{"network_id": net, "project_id": "beta"})

	cases := []struct {
		name, who, method, path string
		body                    any
		status                  int
		errType                 string
	}{
		{"another project's router is invisible", other, "GET", "/v2.0/routers/" + router, nil, 404, "RouterNotFound"},
		{"another project cannot add to it", other, "PUT", "/v2.0/routers/" + router + "/add_router_interface", map[string]any{"subnet_id": subnet}, 404, "RouterNotFound"},
		{"another project's port is refused, not hidden", owner, "PUT", "/v2.0/floatingips/" + fip, map[string]any{"floatingip": map[string]any{"port_id": betaPort}}, 400, "BadRequest"},
		{"another project's floating IP is invisible", other, "PUT", "/v2.0/floatingips/" + fip, map[string]any{"floatingip": map[string]any{"port_id": nil}}, 404, "FloatingIPNotFound"},
		{"a reader cannot create routers", reader, "POST", "/v2.0/routers", map[string]any{"router": map[string]any{}}, 403, "PolicyNotAuthorized"},
		{"a reader sees the router", reader, "GET", "/v2.0/routers/" + router, nil, 200, ""},
		{"a reader cannot change it", reader, "PUT", "/v2.0/routers/" + router, map[string]any{"router": map[string]any{"name": "x"}}, 403, "PolicyNotAuthorized"},
		{"SNAT mode is the admin's", owner, "PUT", "/v2.0/routers/" + router, map[string]any{"router": map[string]any{
			"external_gateway_info": map[string]any{"network_id": ext, "enable_snat": false}}}, 403, "PolicyNotAuthorized"},
		{"gateway addresses are the admin's", owner, "PUT", "/v2.0/routers/" + router, map[string]any{"router": map[string]any{
			"external_gateway_info": map[string]any{"network_id": ext, "external_fixed_ips": []any{map[string]any{"ip_address": "198.51.100.50"}}}}}, 403, "PolicyNotAuthorized"},
		{"floating addresses are the admin's", other, "POST", "/v2.0/floatingips", map[string]any{"floatingip": map[string]any{
			"floating_network_id": ext, "floating_ip_address": "198.51.100.60"}}, 403, "PolicyNotAuthorized"},
		{"another project's subnet on a shared network", owner, "PUT", "/v2.0/routers/" + router + "/add_router_interface", map[string]any{"subnet_id": sharedSubnet}, 400, "BadRequest"},
		{"router quota", owner, "POST", "/v2.0/routers", map[string]any{"router": map[string]any{}}, 409, "OverQuota"},
		{"floating IP quota", owner, "POST", "/v2.0/floatingips", map[string]any{"floatingip": map[string]any{"floating_network_id": ext}}, 409, "OverQuota"},
		{"the gateway port is nobody's to see", owner, "GET", "/v2.0/ports?device_owner=network:router_gateway", nil, 200, ""},
		{"an admin sets SNAT mode", admin, "PUT", "/v2.0/routers/" + router, map[string]any{"router": map[string]any{
			"external_gateway_info": map[string]any{"network_id": ext, "enable_snat": false}}}, 200, ""},
		{"another project floats on the external network", other, "POST", "/v2.0/floatingips", map[string]any{"floatingip": map[string]any{"floating_network_id": ext}}, 201, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := h.as(tc.who, tc.method, tc.path, tc.body)
			if typ, msg := neutronError(r); r.status != tc.status || typ != tc.errType {
				t.Errorf("got %d %s %q, want %d %s", r.status, typ, msg, tc.status, tc.errType)
			}
		})
	}
	if ports := h.as(owner, "GET", "/v2.0/ports?device_owner=network:router_gateway", nil).body["ports"].([]any); len(ports) != 0 {
		t.Errorf("a member sees the gateway port: %v", ports)
	}
	gw := h.as(admin, "GET", "/v2.0/routers/"+router, nil).body["router"].(map[string]any)["external_gateway_info"].(map[string]any)
	if gw["enable_snat"] != false {
		t.Errorf("enable_snat after the admin's change: %v", gw)
	}
	details := h.as(owner, "GET", "/v2.0/quotas/alpha/details", nil).body["quota"].(map[string]any)
	if details["router"].(map[string]any)["used"] != 1.0 || details["floatingip"].(map[string]any)["used"] != 1.0 {
		t.Errorf("quota usage: router %v floatingip %v", details["router"], details["floatingip"])
	}
}
