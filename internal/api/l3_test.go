package api_test

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"
)

// l3 is a small cloud: an external network 198.51.100.0/24, private
// networks 10.0.0.0/24 (with an instance port) and 10.1.0.0/24, a router
// with its gateway on the external network and an interface on 10.0.0.0/24.
type l3 struct {
	ext, extSubnet, priv, privSubnet, other, otherSubnet string
	port, portIP, router                                 string
}

func (h *harness) l3Fixture() l3 {
	h.t.Helper()
	var f l3
	f.ext = h.create("networks", "network", map[string]any{"name": "public", "router:external": true})["id"].(string)
	f.extSubnet = h.create("subnets", "subnet", map[string]any{"network_id": f.ext, "cidr": "198.51.100.0/24"})["id"].(string)
	f.priv = h.create("networks", "network", map[string]any{"name": "private"})["id"].(string)
	f.privSubnet = h.create("subnets", "subnet", map[string]any{"network_id": f.priv, "cidr": "10.0.0.0/24"})["id"].(string)
	f.other = h.create("networks", "network", map[string]any{"name": "other"})["id"].(string)
	f.otherSubnet = h.create("subnets", "subnet", map[string]any{"network_id": f.other, "cidr": "10.1.0.0/24"})["id"].(string)
	inst := h.create("instances", "instance", map[string]any{"name": "vm"})
	p := h.create("ports", "port", map[string]any{"network_id": f.priv, "device_id": inst["id"]})
	f.port = p["id"].(string)
	f.portIP = p["fixed_ips"].([]any)[0].(map[string]any)["ip_address"].(string)
	f.router = h.create("routers", "router", map[string]any{"name": "r1",
		"external_gateway_info": map[string]any{"network_id": f.ext}})["id"].(string)
	h.addInterface(f.router, map[string]any{"subnet_id": f.privSubnet})
	return f
}

func (h *harness) addInterface(router string, body map[string]any) map[string]any {
	h.t.Helper()
	r := h.do("PUT", "/v2.0/routers/"+router+"/add_router_interface", body)
	if r.status != 200 {
		h.t.Fatalf("add_router_interface: %d %v", r.status, r.body)
	}
	return r.body
}

func TestRouterShapesMatchNeutron(t *testing.T) {
	h := newHarness(t)
	f := h.l3Fixture()
	r := h.do("GET", "/v2.0/routers/"+f.router, nil).body["router"].(map[string]any)
	for k, v := range map[string]any{"name": "r1", "admin_state_up": true, "project_id": "admin", "tenant_id": "admin", "description": ""} {
		if r[k] != v {
			t.Errorf("router %s = %v, want %v", k, r[k], v)
		}
	}
	if routes, ok := r["routes"].([]any); !ok || len(routes) != 0 {
		t.Errorf("routes = %v, want []", r["routes"])
	}
	gw := r["external_gateway_info"].(map[string]any)
	ips := gw["external_fixed_ips"].([]any)
	if gw["network_id"] != f.ext || gw["enable_snat"] != true || len(ips) != 1 ||
		ips[0].(map[string]any)["subnet_id"] != f.extSubnet || ips[0].(map[string]any)["ip_address"] != "198.51.100.2" {
		t.Errorf("external_gateway_info = %v", gw)
	}

	// add by subnet: Neutron's answer, a port holding the gateway address.
	info := h.addInterface(f.router, map[string]any{"subnet_id": f.otherSubnet})
	for _, k := range []string{"id", "subnet_id", "subnet_ids", "port_id", "tenant_id", "project_id", "network_id"} {
		if _, ok := info[k]; !ok {
			t.Errorf("interface info has no %s: %v", k, info)
		}
	}
	if info["id"] != f.router || info["subnet_id"] != f.otherSubnet || info["network_id"] != f.other {
		t.Errorf("interface info = %v", info)
	}
	port := h.do("GET", "/v2.0/ports/"+info["port_id"].(string), nil).body["port"].(map[string]any)
	if port["device_owner"] != "network:router_interface" || port["device_id"] != f.router ||
		port["fixed_ips"].([]any)[0].(map[string]any)["ip_address"] != "10.1.0.1" {
		t.Errorf("interface port = %v", port)
	}
	gws := h.do("GET", "/v2.0/ports?device_owner=network:router_gateway&device_id="+f.router, nil).body["ports"].([]any)
	if len(gws) != 1 || gws[0].(map[string]any)["network_id"] != f.ext {
		t.Errorf("gateway ports = %v", gws)
	}

	// routes through an interface's subnet are accepted.
	up := h.do("PUT", "/v2.0/routers/"+f.router, map[string]any{"router": map[string]any{
		"routes": []any{map[string]any{"destination": "192.168.0.0/16", "nexthop": "10.1.0.9"}}}})
	if up.status != 200 || len(up.body["router"].(map[string]any)["routes"].([]any)) != 1 {
		t.Errorf("set routes: %d %v", up.status, up.body)
	}

	// remove by port, then clearing the gateway deletes its port.
	if r := h.do("PUT", "/v2.0/routers/"+f.router, map[string]any{"router": map[string]any{"routes": nil}}); r.status != 200 {
		t.Fatalf("clear routes: %d %v", r.status, r.body)
	}
	rm := h.do("PUT", "/v2.0/routers/"+f.router+"/remove_router_interface", map[string]any{"port_id": info["port_id"]})
	if rm.status != 200 || rm.body["port_id"] != info["port_id"] {
		t.Errorf("remove_router_interface: %d %v", rm.status, rm.body)
	}
	if g := h.do("GET", "/v2.0/ports/"+info["port_id"].(string), nil); g.status != 404 {
		t.Errorf("removed interface port still there: %d", g.status)
	}
	clr := h.do("PUT", "/v2.0/routers/"+f.router, map[string]any{"router": map[string]any{"external_gateway_info": nil}})
	if clr.status != 200 || clr.body["router"].(map[string]any)["external_gateway_info"] != nil {
		t.Errorf("clear gateway: %d %v", clr.status, clr.body)
	}
	if gws := h.do("GET", "/v2.0/ports?device_owner=network:router_gateway", nil).body["ports"].([]any); len(gws) != 0 {
		t.Errorf("gateway port left behind: %v", gws)
	}
}

func TestFloatingIPLifecycle(t *testing.T) {
	h := newHarness(t)
	f := h.l3Fixture()
	fip := h.create("floatingips", "floatingip", map[string]any{"floating_network_id": f.ext})
	if fip["floating_ip_address"] != "198.51.100.3" || fip["port_id"] != nil || fip["router_id"] != nil ||
		fip["fixed_ip_address"] != nil || fip["status"] != "DOWN" {
		t.Errorf("new floating IP = %v", fip)
	}
	id := fip["id"].(string)
	up := h.do("PUT", "/v2.0/floatingips/"+id, map[string]any{"floatingip": map[string]any{"port_id": f.port}})
	got := up.body["floatingip"].(map[string]any)
	if up.status != 200 || got["router_id"] != f.router || got["fixed_ip_address"] != f.portIP || got["port_id"] != f.port {
		t.Errorf("associate: %d %v", up.status, up.body)
	}
	// Deleting the instance port disassociates the floating IP.
	if r := h.do("DELETE", "/v2.0/ports/"+f.port, nil); r.status != 204 {
		t.Fatalf("delete port: %d %v", r.status, r.body)
	}
	got = h.do("GET", "/v2.0/floatingips/"+id, nil).body["floatingip"].(map[string]any)
	if got["port_id"] != nil || got["router_id"] != nil || got["fixed_ip_address"] != nil {
		t.Errorf("after port delete: %v", got)
	}
	if r := h.do("DELETE", "/v2.0/floatingips/"+id, nil); r.status != 204 {
		t.Fatalf("delete floating IP: %d", r.status)
	}
	if ports := h.do("GET", "/v2.0/ports?device_owner=network:floatingip", nil).body["ports"].([]any); len(ports) != 0 {
		t.Errorf("floating IP port left behind: %v", ports)
	}
}

func TestPortForwardingLifecycle(t *testing.T) {
	h := newHarness(t)
	f := h.l3Fixture()
	fip := h.create("floatingips", "floatingip", map[string]any{"floating_network_id": f.ext})["id"].(string)
	base := "/v2.0/floatingips/" + fip + "/port_forwardings"
	r := h.do("POST", base, map[string]any{"port_forwarding": map[string]any{"protocol": "tcp", "external_port": 8080,
		"internal_port": 80, "internal_ip_address": f.portIP, "internal_port_id": f.port}})
	if r.status != 201 {
		t.Fatalf("create: %d %v", r.status, r.body)
	}
	pf := r.body["port_forwarding"].(map[string]any)
	if pf["external_port"] != 8080.0 || pf["internal_port"] != 80.0 || pf["protocol"] != "tcp" || pf["description"] != "" {
		t.Errorf("port forwarding = %v", pf)
	}
	rng := h.do("POST", base, map[string]any{"port_forwarding": map[string]any{"protocol": "udp", "external_port_range": "5000:5009",
		"internal_port_range": "6000:6009", "internal_ip_address": f.portIP, "internal_port_id": f.port}})
	if rng.status != 201 || rng.body["port_forwarding"].(map[string]any)["external_port_range"] != "5000:5009" {
		t.Errorf("range: %d %v", rng.status, rng.body)
	}
	if got := h.do("GET", "/v2.0/floatingips/"+fip, nil).body["floatingip"].(map[string]any); got["router_id"] != f.router || got["port_id"] != nil {
		t.Errorf("floating IP with forwardings: %v", got)
	}
	list := h.do("GET", base, nil).body["port_forwardings"].([]any)
	if len(list) != 2 {
		t.Errorf("list = %v", list)
	}
	// The floating IP is in the path, not in the bodies (as in Neutron).
	for _, got := range append(list, h.do("GET", base+"/"+pf["id"].(string), nil).body["port_forwarding"], pf) {
		if _, ok := got.(map[string]any)["floatingip_id"]; ok {
			t.Errorf("a port forwarding body shows floatingip_id: %v", got)
		}
	}
	// The floating IP's body shows them in Neutron's short form.
	var shown struct {
		FloatingIP struct {
			PortForwardings []map[string]any `json:"port_forwardings"`
		} `json:"floatingip"`
	}
	raw, _ := json.Marshal(h.do("GET", "/v2.0/floatingips/"+fip, nil).body)
	json.Unmarshal(raw, &shown)
	want := []map[string]any{
		{"protocol": "tcp", "internal_ip_address": f.portIP, "internal_port": 80.0, "external_port": 8080.0},
		{"protocol": "udp", "internal_ip_address": f.portIP, "internal_port_range": "6000:6009", "external_port_range": "5000:5009"},
	}
	if got := shown.FloatingIP.PortForwardings; len(got) != 2 || !slices.ContainsFunc(got, func(m map[string]any) bool { return maps.Equal(m, want[0]) }) ||
		!slices.ContainsFunc(got, func(m map[string]any) bool { return maps.Equal(m, want[1]) }) {
		t.Errorf("port_forwardings = %v, want %v", got, want)
	}
	// A floating IP that forwardings use cannot be deleted: they go first.
	del := h.do("DELETE", "/v2.0/floatingips/"+fip, nil)
	if typ, _ := neutronError(del); del.status != 409 || typ != "FipInUseByPortForwarding" {
		t.Errorf("delete floating IP with forwardings: %d %v", del.status, del.body)
	}
	for _, id := range []string{pf["id"].(string), rng.body["port_forwarding"].(map[string]any)["id"].(string)} {
		if r := h.do("DELETE", base+"/"+id, nil); r.status != 204 {
			t.Fatalf("delete forwarding: %d %v", r.status, r.body)
		}
	}
	if got := h.do("GET", "/v2.0/floatingips/"+fip, nil).body["floatingip"].(map[string]any)["port_forwardings"]; got == nil || len(got.([]any)) != 0 {
		t.Errorf("port_forwardings after deleting them = %v, want []", got)
	}
	if r := h.do("DELETE", "/v2.0/floatingips/"+fip, nil); r.status != 204 {
		t.Fatalf("delete floating IP: %d %v", r.status, r.body)
	}
}

// TestFloatingIPUpdates: a floating IP moved to another port takes that
// port's address; an update of other attributes keeps the association;
// an empty body disassociates, as Neutron has always done.
func TestFloatingIPUpdates(t *testing.T) {
	h := newHarness(t)
	f := h.l3Fixture()
	fip := h.create("floatingips", "floatingip", map[string]any{"floating_network_id": f.ext, "port_id": f.port})["id"].(string)
	p2 := h.create("ports", "port", map[string]any{"network_id": f.priv})
	p2IP := p2["fixed_ips"].([]any)[0].(map[string]any)["ip_address"].(string)
	steps := []struct {
		name        string
		body        map[string]any
		port, fixed any
	}{
		{"move to another port", map[string]any{"port_id": p2["id"]}, p2["id"], p2IP},
		{"description only", map[string]any{"description": "d2"}, p2["id"], p2IP},
		{"empty body", map[string]any{}, nil, nil},
		{"back on the first port", map[string]any{"port_id": f.port, "fixed_ip_address": f.portIP}, f.port, f.portIP},
		{"port_id null", map[string]any{"port_id": nil}, nil, nil},
	}
	for _, st := range steps {
		r := h.do("PUT", "/v2.0/floatingips/"+fip, map[string]any{"floatingip": st.body})
		if r.status != 200 {
			t.Fatalf("%s: %d %v", st.name, r.status, r.body)
		}
		got := r.body["floatingip"].(map[string]any)
		if got["port_id"] != st.port || got["fixed_ip_address"] != st.fixed {
			t.Errorf("%s: port_id %v fixed_ip_address %v, want %v %v", st.name, got["port_id"], got["fixed_ip_address"], st.port, st.fixed)
		}
	}
}

// TestExternalNetworkDeleteTakesItsFreeFloatingIPs: floating IPs that
// nothing uses go with their external network (Neutron's
// delete_disassociated_floatingips); an associated one keeps it in use.
func TestExternalNetworkDeleteTakesItsFreeFloatingIPs(t *testing.T) {
	h := newHarness(t)
	f := h.l3Fixture()
	free := h.create("floatingips", "floatingip", map[string]any{"floating_network_id": f.ext})["id"].(string)
	used := h.create("floatingips", "floatingip", map[string]any{"floating_network_id": f.ext, "port_id": f.port})["id"].(string)
	del := h.do("DELETE", "/v2.0/networks/"+f.ext, nil)
	if typ, _ := neutronError(del); del.status != 409 || typ != "NetworkInUse" {
		t.Errorf("delete with a router and an associated floating IP on it: %d %v", del.status, del.body)
	}
	if r := h.do("GET", "/v2.0/floatingips/"+free, nil); r.status != 200 {
		t.Errorf("a refused delete took a floating IP: %d", r.status)
	}
	for _, up := range []struct{ path, body string }{
		{"/v2.0/floatingips/" + used, `{"floatingip": {"port_id": null}}`},
		{"/v2.0/routers/" + f.router + "/remove_router_interface", `{"subnet_id": "` + f.privSubnet + `"}`},
		{"/v2.0/routers/" + f.router, `{"router": {"external_gateway_info": null}}`},
	} {
		if r := h.do("PUT", up.path, up.body); r.status != 200 {
			t.Fatalf("PUT %s: %d %v", up.path, r.status, r.body)
		}
	}
	if r := h.do("DELETE", "/v2.0/networks/"+f.ext, nil); r.status != 204 {
		t.Fatalf("delete with free floating IPs: %d %v", r.status, r.body)
	}
	for _, id := range []string{free, used} {
		if r := h.do("GET", "/v2.0/floatingips/"+id, nil); r.status != 404 {
			t.Errorf("floating IP %s outlived its network: %d", id, r.status)
		}
	}
	if ports := h.do("GET", "/v2.0/ports?device_owner=network:floatingip", nil).body["ports"].([]any); len(ports) != 0 {
		t.Errorf("floating IP ports left behind: %v", ports)
	}
}

func TestL3BadInputIsRefusedWithoutChange(t *testing.T) {
	h := newHarness(t)
	f := h.l3Fixture()
	overlap := h.create("networks", "network", map[string]any{"name": "overlap"})["id"].(string)
	overlapSubnet := h.create("subnets", "subnet", map[string]any{"network_id": overlap, "cidr": "10.0.0.0/25"})["id"].(string)
	noGW := h.create("subnets", "subnet", map[string]any{"network_id": overlap, "cidr": "10.9.0.0/24", "gateway_ip": nil})["id"].(string)
	island := h.create("networks", "network", map[string]any{"name": "island"})["id"].(string)
	h.create("subnets", "subnet", map[string]any{"network_id": island, "cidr": "10.5.0.0/24"})
	unrouted := h.create("ports", "port", map[string]any{"network_id": island})
	unroutedIP := unrouted["fixed_ips"].([]any)[0].(map[string]any)["ip_address"]
	bound := h.create("ports", "port", map[string]any{"network_id": f.other, "device_id": "elsewhere", "device_owner": "compute:nova"})
	associated := h.create("floatingips", "floatingip", map[string]any{"floating_network_id": f.ext, "port_id": f.port})["id"].(string)
	free := h.create("floatingips", "floatingip", map[string]any{"floating_network_id": f.ext})["id"].(string)
	pfBase := "/v2.0/floatingips/" + free + "/port_forwardings"
	h.addInterface(f.router, map[string]any{"subnet_id": f.otherSubnet})
	second := h.create("ports", "port", map[string]any{"network_id": f.other})
	secondIP := second["fixed_ips"].([]any)[0].(map[string]any)["ip_address"]
	h.do("POST", pfBase, map[string]any{"port_forwarding": map[string]any{"protocol": "tcp", "external_port": 2222,
		"internal_port": 22, "internal_ip_address": secondIP, "internal_port_id": second["id"]}})
	gwPort := h.do("GET", "/v2.0/ports?device_owner=network:router_gateway", nil).body["ports"].([]any)[0].(map[string]any)["id"].(string)
	router := "/v2.0/routers/" + f.router
	pf := func(attrs map[string]any) map[string]any {
		body := map[string]any{"protocol": "tcp", "internal_ip_address": secondIP, "internal_port_id": second["id"]}
		for k, v := range attrs {
			body[k] = v
		}
		return map[string]any{"port_forwarding": body}
	}
	gateway := func(gw map[string]any) map[string]any {
		return map[string]any{"router": map[string]any{"external_gateway_info": gw}}
	}
	cases := []refusal{
		// routers
		{"routes on create", "POST", "/v2.0/routers", map[string]any{"router": map[string]any{"routes": []any{}}}, 400, "HTTPBadRequest", "Attribute 'routes' not allowed in POST"},
		{"gateway on internal network", "PUT", router, gateway(map[string]any{"network_id": f.priv}), 400, "BadRequest", "Bad router request: Network " + f.priv + " is not an external network."},
		{"gateway on unknown network", "PUT", router, gateway(map[string]any{"network_id": "nope"}), 404, "NetworkNotFound", "Network nope could not be found."},
		{"gateway without network", "PUT", router, gateway(map[string]any{"enable_snat": false}), 400, "HTTPBadRequest", "Invalid input for external_gateway_info"},
		{"gateway unknown key", "PUT", router, gateway(map[string]any{"network_id": f.ext, "colour": "red"}), 400, "HTTPBadRequest", "Invalid input for external_gateway_info"},
		{"external fixed ip outside the subnet", "PUT", router, gateway(map[string]any{"network_id": f.ext,
			"external_fixed_ips": []any{map[string]any{"subnet_id": f.extSubnet, "ip_address": "203.0.113.5"}}}), 400, "InvalidIpForSubnet", "203.0.113.5"},
		{"external fixed ip on no subnet", "PUT", router, gateway(map[string]any{"network_id": f.ext,
			"external_fixed_ips": []any{map[string]any{"ip_address": "203.0.113.5"}}}), 400, "InvalidIpForNetwork", "203.0.113.5"},
		{"external fixed ip taken", "PUT", router, gateway(map[string]any{"network_id": f.ext,
			"external_fixed_ips": []any{map[string]any{"ip_address": "198.51.100.3"}}}), 409, "IpAddressAlreadyAllocated", "198.51.100.3"},
		{"clear gateway used by floating IPs", "PUT", router, gateway(nil), 409, "RouterExternalGatewayInUseByFloatingIp", "required by one or more floating IPs"},
		{"route nexthop unreachable", "PUT", router, map[string]any{"router": map[string]any{"routes": []any{map[string]any{"destination": "192.168.0.0/16", "nexthop": "172.16.0.1"}}}},
			400, "InvalidRoutes", "the nexthop is not connected with router"},
		{"route nexthop is the router", "PUT", router, map[string]any{"router": map[string]any{"routes": []any{map[string]any{"destination": "192.168.0.0/16", "nexthop": "10.0.0.1"}}}},
			400, "InvalidRoutes", "the nexthop is used by router"},
		{"route bad destination", "PUT", router, map[string]any{"router": map[string]any{"routes": []any{map[string]any{"destination": "192.168.0.1/16", "nexthop": "10.0.0.9"}}}},
			400, "HTTPBadRequest", "Invalid input for routes"},
		{"interface neither subnet nor port", "PUT", router + "/add_router_interface", map[string]any{}, 400, "BadRequest", "Either subnet_id or port_id must be specified"},
		{"interface both subnet and port", "PUT", router + "/add_router_interface", map[string]any{"subnet_id": f.privSubnet, "port_id": f.port}, 400, "BadRequest", "Cannot specify both subnet-id and port-id"},
		{"interface unknown attribute", "PUT", router + "/add_router_interface", map[string]any{"network_id": f.priv}, 400, "HTTPBadRequest", "Unrecognized attribute(s) 'network_id'"},
		{"interface on the same subnet", "PUT", router + "/add_router_interface", map[string]any{"subnet_id": f.privSubnet}, 400, "BadRequest", "Router already has a port on subnet " + f.privSubnet},
		{"overlapping interface", "PUT", router + "/add_router_interface", map[string]any{"subnet_id": overlapSubnet}, 400, "BadRequest",
			"Bad router request: Cidr 10.0.0.0/25 of subnet " + overlapSubnet + " overlaps with cidr 10.0.0.0/24 of subnet " + f.privSubnet + "."},
		{"interface on subnet without gateway", "PUT", router + "/add_router_interface", map[string]any{"subnet_id": noGW}, 400, "BadRequest", "Subnet for router interface must have a gateway IP"},
		{"interface on unknown subnet", "PUT", router + "/add_router_interface", map[string]any{"subnet_id": "5a0e5f6c-0000-4000-8000-000000000000"}, 404, "SubnetNotFound", "5a0e5f6c"},
		{"interface on a malformed subnet id", "PUT", router + "/add_router_interface", map[string]any{"subnet_id": "nope"}, 400, "BadRequest", "'nope' is not a valid UUID"},
		{"interface on a malformed port id", "PUT", router + "/add_router_interface", map[string]any{"port_id": "port-1"}, 400, "BadRequest", "'port-1' is not a valid UUID"},
		{"interface port already bound", "PUT", router + "/add_router_interface", map[string]any{"port_id": bound["id"]}, 409, "PortInUse", "Port already has an attached device elsewhere"},
		{"interface on unknown router", "PUT", "/v2.0/routers/nope/add_router_interface", map[string]any{"subnet_id": f.privSubnet}, 404, "RouterNotFound", "Router nope could not be found"},
		{"remove interface floating IPs need", "PUT", router + "/remove_router_interface", map[string]any{"subnet_id": f.privSubnet}, 409, "RouterInterfaceInUseByFloatingIP",
			"Router interface for subnet " + f.privSubnet + " on router " + f.router + " cannot be deleted, as it is required by one or more floating IPs."},
		{"remove interface port forwardings need", "PUT", router + "/remove_router_interface", map[string]any{"subnet_id": f.otherSubnet}, 409, "RouterInterfaceInUseByFloatingIP", "required by one or more floating IPs"},
		{"remove missing interface", "PUT", router + "/remove_router_interface", map[string]any{"subnet_id": overlapSubnet}, 404, "RouterInterfaceNotFoundForSubnet", "has no interface on subnet"},
		{"remove unknown interface port", "PUT", router + "/remove_router_interface", map[string]any{"port_id": f.port}, 404, "RouterInterfaceNotFound", "does not have an interface with id"},
		{"delete router with interfaces", "DELETE", router, nil, 409, "RouterInUse", "Router " + f.router + " still has ports"},
		{"delete gateway port", "DELETE", "/v2.0/ports/" + gwPort, nil, 409, "ServicePortInUse", "cannot be deleted directly via the port API: has device owner network:router_gateway"},
		{"make the external network internal", "PUT", "/v2.0/networks/" + f.ext, map[string]any{"network": map[string]any{"router:external": false}}, 409, "ExternalNetworkInUse",
			"cannot be updated to be made non-external, since it has existing gateway ports"},
		// floating IPs
		{"floating IP on internal network", "POST", "/v2.0/floatingips", map[string]any{"floatingip": map[string]any{"floating_network_id": f.priv}}, 400, "BadRequest",
			"Bad floatingip request: Network " + f.priv + " is not a valid external network."},
		{"floating IP without network", "POST", "/v2.0/floatingips", map[string]any{"floatingip": map[string]any{}}, 400, "HTTPBadRequest", "'floating_network_id' not specified"},
		{"floating IP address in use", "POST", "/v2.0/floatingips", map[string]any{"floatingip": map[string]any{"floating_network_id": f.ext, "floating_ip_address": "198.51.100.2"}}, 409, "IpAddressAlreadyAllocated", "198.51.100.2"},
		{"floating IP address off the network", "POST", "/v2.0/floatingips", map[string]any{"floatingip": map[string]any{"floating_network_id": f.ext, "floating_ip_address": "10.0.0.77"}}, 400, "InvalidIpForNetwork", "10.0.0.77"},
		{"associate floating IP used by forwardings", "PUT", "/v2.0/floatingips/" + free, map[string]any{"floatingip": map[string]any{"port_id": unrouted["id"]}}, 409, "FipInUseByPortForwarding", free},
		{"fixed ip without port", "POST", "/v2.0/floatingips", map[string]any{"floatingip": map[string]any{"floating_network_id": f.ext, "fixed_ip_address": "10.0.0.5"}}, 400, "BadRequest", "fixed_ip_address cannot be specified without a port_id"},
		{"fixed ip not on port", "POST", "/v2.0/floatingips", map[string]any{"floatingip": map[string]any{"floating_network_id": f.ext, "port_id": f.port, "fixed_ip_address": "10.0.0.250"}}, 400, "BadRequest", "does not have fixed ip 10.0.0.250"},
		{"floating IP on unknown port", "POST", "/v2.0/floatingips", map[string]any{"floatingip": map[string]any{"floating_network_id": f.ext, "port_id": unknownPort}}, 404, "PortNotFound", unknownPort},
		{"port already has a floating IP", "POST", "/v2.0/floatingips", map[string]any{"floatingip": map[string]any{"floating_network_id": f.ext, "port_id": f.port}}, 409, "FloatingIPPortAlreadyAssociated",
			"as that fixed IP already has a floating IP on external network " + f.ext},
		{"floating IP read-only network", "PUT", "/v2.0/floatingips/" + associated, map[string]any{"floatingip": map[string]any{"floating_network_id": f.ext}}, 400, "HTTPBadRequest", "read-only attribute floating_network_id"},
		{"unknown floating IP", "GET", "/v2.0/floatingips/nope", nil, 404, "FloatingIPNotFound", "Floating IP nope could not be found"},
		{"delete floating IP port", "DELETE", "/v2.0/ports/" + fipPort(h, associated), nil, 409, "ServicePortInUse", "has device owner network:floatingip"},
		// port forwardings
		{"forwarding colliding external port", "POST", pfBase, pf(map[string]any{"external_port": 2222, "internal_port": 23}), 400, "BadRequest",
			"Bad port_forwarding request: There is a port collision with the external_port_range. The following ranges collides: 2222:2222 and 2222:2222."},
		{"forwarding colliding external range", "POST", pfBase, pf(map[string]any{"external_port_range": "2200:2300", "internal_port_range": "3200:3300"}), 400, "BadRequest", "collision with the external_port_range"},
		{"forwarding colliding internal port", "POST", pfBase, pf(map[string]any{"external_port": 2223, "internal_port": 22}), 400, "BadRequest", "collision with the internal_port_range"},
		{"forwarding bad protocol", "POST", pfBase, pf(map[string]any{"protocol": "icmp", "external_port": 1, "internal_port": 1}), 400, "HTTPBadRequest", "Invalid input for protocol"},
		{"forwarding port out of range", "POST", pfBase, pf(map[string]any{"external_port": 70000, "internal_port": 1}), 400, "HTTPBadRequest", "'70000' is not in range 1 through 65535"},
		{"forwarding ranges of different sizes", "POST", pfBase, pf(map[string]any{"external_port_range": "100:110", "internal_port_range": "200:205"}), 400, "BadRequest", "must be N-N or 1-N"},
		{"forwarding without external port", "POST", pfBase, pf(map[string]any{"internal_port": 1}), 400, "BadRequest", "either external_port or external_port_range"},
		{"forwarding bad range", "POST", pfBase, pf(map[string]any{"external_port_range": "20:10", "internal_port": 1}), 400, "HTTPBadRequest", "not a valid port range"},
		{"forwarding ip not on port", "POST", pfBase, pf(map[string]any{"internal_ip_address": "10.1.0.250", "external_port": 1, "internal_port": 1}), 400, "BadRequest", "is not suitable for internal neutron port"},
		{"forwarding to unreachable port", "POST", pfBase, map[string]any{"port_forwarding": map[string]any{"protocol": "tcp", "external_port": 3, "internal_port": 3,
			"internal_ip_address": unroutedIP, "internal_port_id": unrouted["id"]}}, 400, "BadRequest", "Cannot set Port forwarding"},
		{"forwarding to port with floating IP", "POST", pfBase, map[string]any{"port_forwarding": map[string]any{"protocol": "tcp", "external_port": 4, "internal_port": 4,
			"internal_ip_address": f.portIP, "internal_port_id": f.port}}, 409, "PortHasBindingFloatingIP", "already has a binding floating IP"},
		{"forwarding on associated floating IP", "POST", "/v2.0/floatingips/" + associated + "/port_forwardings", pf(map[string]any{"external_port": 5, "internal_port": 5}), 409, "FloatingIPPortAlreadyAssociated", associated},
		{"forwarding of unknown floating IP", "GET", "/v2.0/floatingips/nope/port_forwardings", nil, 404, "FloatingIPNotFound", "nope"},
		{"unknown forwarding", "GET", pfBase + "/nope", nil, 404, "PortForwardingNotFound", "Port Forwarding nope could not be found."},
	}
	h.checkRefusals(t, cases)
}

const unknownPort = "no-such-port"

func fipPort(h *harness, fip string) string {
	h.t.Helper()
	ports := h.do("GET", "/v2.0/ports?device_owner=network:floatingip&device_id="+fip, nil).body["ports"].([]any)
	if len(ports) != 1 {
		h.t.Fatalf("floating IP %s has ports %v", fip, ports)
	}
	return ports[0].(map[string]any)["id"].(string)
}

func TestFloatingIPNeedsARouter(t *testing.T) {
	h := newHarness(t)
	f := h.l3Fixture()
	p := h.create("ports", "port", map[string]any{"network_id": f.other})
	before := h.revision()
	r := h.do("POST", "/v2.0/floatingips", map[string]any{"floatingip": map[string]any{"floating_network_id": f.ext, "port_id": p["id"]}})
	typ, msg := neutronError(r)
	want := "External network " + f.ext + " is not reachable from subnet " + f.otherSubnet + ".  Therefore, cannot associate Port " + p["id"].(string) + " with a Floating IP."
	if r.status != 404 || typ != "ExternalGatewayForFloatingIPNotFound" || msg != want {
		t.Errorf("got %d %s %q", r.status, typ, msg)
	}
	if h.revision() != before {
		t.Error("a refused floating IP changed the store")
	}
	raw, _ := json.Marshal(h.do("GET", "/v2.0/floatingips", nil).body)
	if strings.Contains(string(raw), p["id"].(string)) {
		t.Errorf("refused floating IP exists: %s", raw)
	}
}

// A router interface holds its subnet's gateway address: updating anything
// else of the subnet is no gateway change and must not trip GatewayIpInUse,
// while moving the gateway onto another port's address still does.
func TestSubnetUpdateWithGatewayOnARouter(t *testing.T) {
	h := newHarness(t)
	f := h.l3Fixture()
	up := h.do("PUT", "/v2.0/subnets/"+f.privSubnet, map[string]any{"subnet": map[string]any{"description": "x"}})
	if up.status != 200 || up.body["subnet"].(map[string]any)["description"] != "x" {
		t.Errorf("description update: %d %v", up.status, up.body)
	}
	same := h.do("PUT", "/v2.0/subnets/"+f.privSubnet, map[string]any{"subnet": map[string]any{"gateway_ip": "10.0.0.1"}})
	if same.status != 200 {
		t.Errorf("gateway update to the same address: %d %v", same.status, same.body)
	}
	moved := h.do("PUT", "/v2.0/subnets/"+f.privSubnet, map[string]any{"subnet": map[string]any{"gateway_ip": f.portIP,
		"allocation_pools": []any{map[string]any{"start": "10.0.0.3", "end": "10.0.0.254"}}}})
	if typ, _ := neutronError(moved); moved.status != 409 || typ != "GatewayIpInUse" {
		t.Errorf("gateway onto a port's address: %d %v", moved.status, moved.body)
	}
}

// TestGatewayFixedIPsChangeOnlyWhenTheyDiffer is Neutron's rule
// (_check_for_external_ip_change): an update of external_fixed_ips on the
// same network changes the gateway port only when the set of subnets or the
// set of requested addresses differs from the port's. Repeating the current
// address plus an entry naming only its subnet is no change (gophercloud's
// TestLayer3ExternalRouterCreateDelete relies on it).
func TestGatewayFixedIPsChangeOnlyWhenTheyDiffer(t *testing.T) {
	type fixedIP struct {
		SubnetID  string `json:"subnet_id"`
		IPAddress string `json:"ip_address"`
	}
	type routerBody struct {
		Router struct {
			ExternalGatewayInfo struct {
				ExternalFixedIPs []fixedIP `json:"external_fixed_ips"`
			} `json:"external_gateway_info"`
		} `json:"router"`
	}
	for _, tc := range []struct {
		name string
		ips  func(subnet string) []any
		want []string
	}{
		{"same address and its subnet again", func(s string) []any {
			return []any{map[string]any{"subnet_id": s, "ip_address": "198.51.100.2"}, map[string]any{"subnet_id": s}}
		}, []string{"198.51.100.2"}},
		{"empty list", func(string) []any { return []any{} }, []string{"198.51.100.2"}},
		{"same subnet only", func(s string) []any { return []any{map[string]any{"subnet_id": s}} }, []string{"198.51.100.2"}},
		{"another address", func(s string) []any {
			return []any{map[string]any{"subnet_id": s, "ip_address": "198.51.100.9"}}
		}, []string{"198.51.100.9"}},
		{"an added address", func(s string) []any {
			return []any{map[string]any{"ip_address": "198.51.100.2"}, map[string]any{"ip_address": "198.51.100.9"}}
		}, []string{"198.51.100.2", "198.51.100.9"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			f := h.l3Fixture()
			up := h.do("PUT", "/v2.0/routers/"+f.router, map[string]any{"router": map[string]any{
				"external_gateway_info": map[string]any{"network_id": f.ext, "external_fixed_ips": tc.ips(f.extSubnet)}}})
			if up.status != 200 {
				t.Fatalf("update: %d %v", up.status, up.body)
			}
			get := h.do("GET", "/v2.0/routers/"+f.router, nil)
			var r routerBody
			decodeInto(t, get, &r)
			var got []string
			for _, ip := range r.Router.ExternalGatewayInfo.ExternalFixedIPs {
				if ip.SubnetID != f.extSubnet {
					t.Errorf("fixed IP %v not on the external subnet", ip)
				}
				got = append(got, ip.IPAddress)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("gateway addresses = %v, want %v", got, tc.want)
			}
		})
	}
}

// A router may take its gateway on an external network that has no subnet
// yet: Neutron makes the gateway port without addresses (nothing to SNAT
// to, no default route) rather than refusing, and the plugin's external
// network RBAC tests create routers so. A subnet added later does not
// readdress the port by itself, as in Neutron.
func TestGatewayOnAnExternalNetworkWithoutSubnets(t *testing.T) {
	type gatewayInfo struct {
		NetworkID        string            `json:"network_id"`
		ExternalFixedIPs []json.RawMessage `json:"external_fixed_ips"`
	}
	type routerBody struct {
		Router struct {
			ID                  string       `json:"id"`
			ExternalGatewayInfo *gatewayInfo `json:"external_gateway_info"`
		} `json:"router"`
	}
	h := newHarness(t)
	ext := h.create("networks", "network", map[string]any{"name": "bare", "router:external": true})["id"].(string)
	r := h.do("POST", "/v2.0/routers", map[string]any{"router": map[string]any{"name": "r",
		"external_gateway_info": map[string]any{"network_id": ext}}})
	if r.status != 201 {
		t.Fatalf("router with a gateway on a subnet-less external network: %d %v", r.status, r.body)
	}
	var got routerBody
	raw, _ := json.Marshal(r.body)
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	gw := got.Router.ExternalGatewayInfo
	if gw == nil || gw.NetworkID != ext || gw.ExternalFixedIPs == nil || len(gw.ExternalFixedIPs) != 0 {
		t.Errorf("external_gateway_info = %s, want the network with external_fixed_ips []", raw)
	}
	ports := h.do("GET", "/v2.0/ports?device_owner=network:router_gateway&device_id="+got.Router.ID, nil).body["ports"].([]any)
	if len(ports) != 1 || len(ports[0].(map[string]any)["fixed_ips"].([]any)) != 0 {
		t.Errorf("gateway ports = %v, want one without fixed IPs", ports)
	}
}
