package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// TestHostileInput sends invalid and abusive requests across every
// resource to the real daemon, each with Neutron's status, error type and
// a message naming the field and the reason; after each one the store (as
// the API lists it) and the kernel (namespaces, links, addresses, nft
// objects) are exactly as before.
func TestHostileInput(t *testing.T) {
	e := Start(t)
	must := e.MustAPI
	id := func(resp map[string]any, singular string) string {
		return resp[singular].(map[string]any)["id"].(string)
	}
	net := id(must("POST", "/v2.0/networks", map[string]any{"network": map[string]any{"name": "net"}}), "network")
	subnet := id(must("POST", "/v2.0/subnets", map[string]any{"subnet": map[string]any{"network_id": net, "cidr": "10.0.0.0/24", "name": "sub"}}), "subnet")
	pub := id(must("POST", "/v2.0/networks", map[string]any{"network": map[string]any{"name": "pub", "router:external": true}}), "network")
	must("POST", "/v2.0/subnets", map[string]any{"subnet": map[string]any{"network_id": pub, "cidr": "198.51.100.0/24", "enable_dhcp": false}})
	router := id(must("POST", "/v2.0/routers", map[string]any{"router": map[string]any{"name": "r1",
		"external_gateway_info": map[string]any{"network_id": pub}}}), "router")
	must("PUT", "/v2.0/routers/"+router+"/add_router_interface", map[string]any{"subnet_id": subnet})
	vm := id(must("POST", "/v2.0/instances", map[string]any{"instance": map[string]any{"name": "vm1"}}), "instance")
	port := id(must("POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": net, "device_id": vm, "name": "p1",
		"fixed_ips": []any{map[string]any{"ip_address": "10.0.0.10"}}}}), "port")
	port2 := id(must("POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": net, "name": "p2",
		"fixed_ips": []any{map[string]any{"ip_address": "10.0.0.11"}}}}), "port")
	fip := id(must("POST", "/v2.0/floatingips", map[string]any{"floatingip": map[string]any{"floating_network_id": pub, "port_id": port}}), "floatingip")
	fwdFIP := id(must("POST", "/v2.0/floatingips", map[string]any{"floatingip": map[string]any{"floating_network_id": pub}}), "floatingip")
	must("POST", "/v2.0/floatingips/"+fwdFIP+"/port_forwardings", map[string]any{"port_forwarding": map[string]any{
		"protocol": "tcp", "external_port": 8080, "internal_port": 80, "internal_port_id": port2, "internal_ip_address": "10.0.0.11"}})

	must("PUT", "/v2.0/quotas/admin", map[string]any{"quota": map[string]any{"router": -1}})
	obj := func(singular string, attrs map[string]any) map[string]any { return map[string]any{singular: attrs} }
	subnetWith := func(attrs map[string]any) map[string]any {
		attrs["network_id"] = net
		return obj("subnet", attrs)
	}
	long := strings.Repeat("n", 300)
	cases := []struct {
		name, method, path string
		body               any
		status             int
		typ, inMessage     string
	}{
		// Malformed bodies.
		{"truncated JSON", "POST", "/v2.0/networks", rawBody(`{"network": {"name": `), 400, "HTTPBadRequest", "Malformed request body"},
		{"not JSON", "POST", "/v2.0/networks", rawBody(`name=x`), 400, "HTTPBadRequest", "Malformed request body"},
		{"array body", "PUT", "/v2.0/networks/" + net, rawBody(`[1, 2]`), 400, "HTTPBadRequest", "want a JSON object"},
		{"null body", "POST", "/v2.0/networks", rawBody(`null`), 400, "HTTPBadRequest", "want a JSON object"},
		{"empty body", "POST", "/v2.0/networks", rawBody(``), 400, "HTTPBadRequest", "Malformed request body"},
		{"trailing data", "POST", "/v2.0/networks", rawBody(`{"network": {}} {"network": {}}`), 400, "HTTPBadRequest", "data after the JSON object"},
		{"null resource", "PUT", "/v2.0/networks/" + net, rawBody(`{"network": null}`), 400, "HTTPBadRequest", "'network' must be a JSON object"},
		{"wrong envelope", "POST", "/v2.0/subnets", obj("network", map[string]any{}), 400, "HTTPBadRequest", "'subnet'"},
		{"two envelopes", "POST", "/v2.0/networks", map[string]any{"network": map[string]any{}, "port": map[string]any{}}, 400, "HTTPBadRequest", "'network'"},
		{"body over the limit", "POST", "/v2.0/networks", rawBody(`{"network": {"description": "` + strings.Repeat("x", 2<<20) + `"}}`), 413, "HTTPRequestEntityTooLarge", "larger than"},

		// Wrong types and unknown fields.
		{"unknown field", "POST", "/v2.0/networks", obj("network", map[string]any{"colour": "red"}), 400, "HTTPBadRequest", "Unrecognized attribute(s) 'colour'"},
		{"name a number", "PUT", "/v2.0/networks/" + net, obj("network", map[string]any{"name": 123}), 400, "HTTPBadRequest", "Invalid input for name"},
		{"admin_state_up a string", "PUT", "/v2.0/networks/" + net, obj("network", map[string]any{"admin_state_up": "yes please"}), 400, "HTTPBadRequest", "cannot be converted to boolean"},
		{"mtu a float", "POST", "/v2.0/networks", obj("network", map[string]any{"mtu": 1400.5}), 400, "HTTPBadRequest", "Invalid input for mtu"},
		{"mtu huge", "POST", "/v2.0/networks", obj("network", map[string]any{"mtu": 1 << 40}), 400, "HTTPBadRequest", "Invalid input for mtu"},
		{"fixed_ips an object", "POST", "/v2.0/ports", obj("port", map[string]any{"network_id": net, "fixed_ips": map[string]any{"ip_address": "10.0.0.5"}}), 400, "HTTPBadRequest", "fixed IPs"},
		{"fixed_ips unknown key", "POST", "/v2.0/ports", obj("port", map[string]any{"network_id": net, "fixed_ips": []any{map[string]any{"ip": "10.0.0.5"}}}), 400, "HTTPBadRequest", "fixed IPs"},
		{"host_routes a string", "POST", "/v2.0/subnets", subnetWith(map[string]any{"cidr": "10.1.0.0/24", "host_routes": "10.2.0.0/16 via 10.1.0.9"}), 400, "HTTPBadRequest", "host_routes"},
		{"status is read-only", "PUT", "/v2.0/ports/" + port, obj("port", map[string]any{"status": "ACTIVE"}), 400, "HTTPBadRequest", "status"},
		{"id is read-only", "POST", "/v2.0/networks", obj("network", map[string]any{"id": "e8d3a3a2-0000-0000-0000-000000000000"}), 400, "HTTPBadRequest", "id"},
		{"router routes not a list", "PUT", "/v2.0/routers/" + router, obj("router", map[string]any{"routes": "default"}), 400, "HTTPBadRequest", "routes"},
		{"quota unknown resource", "PUT", "/v2.0/quotas/admin", obj("quota", map[string]any{"widgets": 5}), 400, "HTTPBadRequest", "Unrecognized attribute(s) 'widgets'"},
		{"quota below -1", "PUT", "/v2.0/quotas/admin", obj("quota", map[string]any{"network": -2}), 400, "HTTPBadRequest", "not in range -1"},

		// CIDR edge cases.
		{"cidr /0", "POST", "/v2.0/subnets", subnetWith(map[string]any{"cidr": "0.0.0.0/0"}), 400, "HTTPBadRequest", "every address"},
		{"cidr /31", "POST", "/v2.0/subnets", subnetWith(map[string]any{"cidr": "10.9.0.0/31"}), 400, "HTTPBadRequest", "no usable host addresses"},
		{"cidr /32", "POST", "/v2.0/subnets", subnetWith(map[string]any{"cidr": "10.9.0.1/32"}), 400, "HTTPBadRequest", "no usable host addresses"},
		{"cidr /33", "POST", "/v2.0/subnets", subnetWith(map[string]any{"cidr": "10.9.0.0/33"}), 400, "HTTPBadRequest", "Invalid input for cidr"},
		{"cidr without length", "POST", "/v2.0/subnets", subnetWith(map[string]any{"cidr": "10.9.0.0"}), 400, "HTTPBadRequest", "Invalid input for cidr"},
		{"cidr host bits", "POST", "/v2.0/subnets", subnetWith(map[string]any{"cidr": "10.9.0.7/24"}), 400, "HTTPBadRequest", "'10.9.0.0/24' should be specified instead"},
		{"cidr overlapping", "POST", "/v2.0/subnets", subnetWith(map[string]any{"cidr": "10.0.0.0/16"}), 400, "InvalidInput", "overlaps with another subnet"},
		{"cidr with leading zeros", "POST", "/v2.0/subnets", subnetWith(map[string]any{"cidr": "010.9.0.0/24"}), 400, "HTTPBadRequest", "Invalid input for cidr"},

		// IPv6 values in IPv4 fields.
		{"IPv6 gateway on IPv4 subnet", "POST", "/v2.0/subnets", subnetWith(map[string]any{"cidr": "10.8.0.0/24", "gateway_ip": "2001:db8::1"}), 400, "InvalidInput", "does not match the ip_version '4'"},
		{"IPv6 pool on IPv4 subnet", "POST", "/v2.0/subnets", subnetWith(map[string]any{"cidr": "10.8.0.0/24", "allocation_pools": []any{map[string]any{"start": "2001:db8::1", "end": "2001:db8::9"}}}), 400, "", "2001:db8::1"},
		{"IPv6 fixed IP on IPv4 network", "POST", "/v2.0/ports", obj("port", map[string]any{"network_id": net, "fixed_ips": []any{map[string]any{"ip_address": "2001:db8::5"}}}), 400, "InvalidIpForNetwork", "2001:db8::5"},
		{"IPv6 next hop", "PUT", "/v2.0/routers/" + router, obj("router", map[string]any{"routes": []any{map[string]any{"destination": "10.5.0.0/16", "nexthop": "2001:db8::1"}}}), 400, "HTTPBadRequest", "routes"},
		{"IPv6 floating address", "POST", "/v2.0/floatingips", obj("floatingip", map[string]any{"floating_network_id": pub, "floating_ip_address": "2001:db8::10"}), 400, "", "2001:db8::10"},
		{"IPv6 forward target", "POST", "/v2.0/floatingips/" + fwdFIP + "/port_forwardings", obj("port_forwarding", map[string]any{"protocol": "tcp", "external_port": 8081, "internal_port": 80, "internal_port_id": port2, "internal_ip_address": "2001:db8::5"}), 400, "", "internal_ip_address"},
		{"ip_version 6 with IPv4 cidr", "POST", "/v2.0/subnets", subnetWith(map[string]any{"cidr": "10.8.0.0/24", "ip_version": 6}), 400, "InvalidInput", "does not match the ip_version '6'"},

		// Names: shell metacharacters, newlines, 300 characters.
		{"instance name with shell metacharacters", "POST", "/v2.0/instances", obj("instance", map[string]any{"name": "vm2; rm -rf /"}), 400, "HTTPBadRequest", "Invalid input for name"},
		{"instance name with command substitution", "POST", "/v2.0/instances", obj("instance", map[string]any{"name": "$(reboot)"}), 400, "HTTPBadRequest", "Invalid input for name"},
		{"instance name with a newline", "POST", "/v2.0/instances", obj("instance", map[string]any{"name": "vm\n2"}), 400, "HTTPBadRequest", `contains '\n'`},
		{"instance name with a slash", "POST", "/v2.0/instances", obj("instance", map[string]any{"name": "../../etc"}), 400, "HTTPBadRequest", "Invalid input for name"},
		{"instance name 300 characters", "POST", "/v2.0/instances", obj("instance", map[string]any{"name": long}), 400, "HTTPBadRequest", "Invalid input for name"},
		{"network name 300 characters", "POST", "/v2.0/networks", obj("network", map[string]any{"name": long}), 400, "HTTPBadRequest", "exceeds maximum length of 255"},
		{"port name 300 characters", "PUT", "/v2.0/ports/" + port, obj("port", map[string]any{"name": long}), 400, "HTTPBadRequest", "exceeds maximum length of 255"},
		{"router name 300 characters", "PUT", "/v2.0/routers/" + router, obj("router", map[string]any{"name": long}), 400, "HTTPBadRequest", "exceeds maximum length of 255"},
		{"interface name with a slash", "POST", "/v2.0/ports", obj("port", map[string]any{"network_id": net, "device_id": vm, "nsnet:interface_name": "eth/1"}), 400, "HTTPBadRequest", "nsnet:interface_name"},
		{"interface name with a space", "POST", "/v2.0/ports", obj("port", map[string]any{"network_id": net, "device_id": vm, "nsnet:interface_name": "eth 1"}), 400, "HTTPBadRequest", "nsnet:interface_name"},

		// Ids with path tricks.
		{"id with encoded dot-dot", "GET", "/v2.0/networks/..%2F..%2Fetc%2Fpasswd", nil, 404, "NetworkNotFound", "could not be found"},
		{"id with NUL", "DELETE", "/v2.0/networks/%00", nil, 404, "NetworkNotFound", "could not be found"},
		{"id with a newline", "DELETE", "/v2.0/ports/abc%0Adef", nil, 404, "PortNotFound", "could not be found"},
		{"id of another kind", "DELETE", "/v2.0/ports/" + net, nil, 404, "PortNotFound", net},
		{"id 300 characters", "PUT", "/v2.0/routers/" + long, obj("router", map[string]any{"name": "x"}), 404, "RouterNotFound", "could not be found"},
		{"router action on a missing router", "PUT", "/v2.0/routers/nope/add_router_interface", map[string]any{"subnet_id": subnet}, 404, "RouterNotFound", "nope"},
		{"unknown router action", "PUT", "/v2.0/routers/" + router + "/reboot", map[string]any{}, 404, "HTTPNotFound", "could not be found"},
		{"unknown collection", "GET", "/v2.0/../v2.0/widgets", nil, 404, "HTTPNotFound", "could not be found"},
		{"method not allowed on a collection", "DELETE", "/v2.0/networks", nil, 405, "HTTPMethodNotAllowed", "DELETE is not allowed"},
		{"method not allowed on an item", "POST", "/v2.0/networks/" + net, obj("network", map[string]any{}), 405, "HTTPMethodNotAllowed", "POST is not allowed"},

		// References and state.
		{"port on a missing network", "POST", "/v2.0/ports", obj("port", map[string]any{"network_id": "nope"}), 404, "NetworkNotFound", "nope"},
		{"address taken", "POST", "/v2.0/ports", obj("port", map[string]any{"network_id": net, "fixed_ips": []any{map[string]any{"ip_address": "10.0.0.10"}}}), 409, "IpAddressAlreadyAllocated", "10.0.0.10"},
		{"address outside the subnet", "POST", "/v2.0/ports", obj("port", map[string]any{"network_id": net, "fixed_ips": []any{map[string]any{"subnet_id": subnet, "ip_address": "10.7.0.5"}}}), 400, "InvalidIpForSubnet", "10.7.0.5"},
		{"network in use", "DELETE", "/v2.0/networks/" + net, nil, 409, "NetworkInUse", "still in use"},
		{"router in use", "DELETE", "/v2.0/routers/" + router, nil, 409, "RouterInUse", "still has ports"},
		{"interface floating IPs need", "PUT", "/v2.0/routers/" + router + "/remove_router_interface", map[string]any{"subnet_id": subnet}, 409, "RouterInterfaceInUseByFloatingIP", "required by one or more floating IPs"},
		{"interface by subnet and port", "PUT", "/v2.0/routers/" + router + "/add_router_interface", map[string]any{"subnet_id": subnet, "port_id": port}, 400, "BadRequest", "Cannot specify both"},
		{"floating IP on an internal network", "POST", "/v2.0/floatingips", obj("floatingip", map[string]any{"floating_network_id": net}), 400, "BadRequest", "not a valid external network"},
		{"floating IP already associated elsewhere", "PUT", "/v2.0/floatingips/" + fwdFIP, obj("floatingip", map[string]any{"port_id": port}), 409, "", port},
		{"floating IP of a missing port", "PUT", "/v2.0/floatingips/" + fip, obj("floatingip", map[string]any{"port_id": "nope"}), 404, "PortNotFound", "nope"},
		// Neutron refuses a colliding forward in its plugin's range check,
		// with 400, before its database would say 409.
		{"forward colliding", "POST", "/v2.0/floatingips/" + fwdFIP + "/port_forwardings", obj("port_forwarding", map[string]any{"protocol": "tcp", "external_port": 8080, "internal_port": 81, "internal_port_id": port2, "internal_ip_address": "10.0.0.11"}), 400, "BadRequest", "port collision"},
		{"forward port zero", "POST", "/v2.0/floatingips/" + fwdFIP + "/port_forwardings", obj("port_forwarding", map[string]any{"protocol": "tcp", "external_port": 0, "internal_port": 80, "internal_port_id": port2, "internal_ip_address": "10.0.0.11"}), 400, "", "external_port"},
		{"forward unknown protocol", "POST", "/v2.0/floatingips/" + fwdFIP + "/port_forwardings", obj("port_forwarding", map[string]any{"protocol": "sctp-ish", "external_port": 9000, "internal_port": 80, "internal_port_id": port2, "internal_ip_address": "10.0.0.11"}), 400, "", "protocol"},
		{"gateway on an internal network", "PUT", "/v2.0/routers/" + router, obj("router", map[string]any{"external_gateway_info": map[string]any{"network_id": net}}), 400, "BadRequest", "is not an external network"},
		{"rbac on a missing network", "POST", "/v2.0/rbac-policies", obj("rbac_policy", map[string]any{"object_type": "network", "object_id": "nope", "action": "access_as_shared", "target_tenant": "*"}), 404, "NetworkNotFound", "nope"},
	}

	storeBefore, kernelBefore := storeSnapshot(e), snapshotKernel(t, e.Prefix)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, resp := e.API(tc.method, tc.path, tc.body)
			nerr, _ := resp["NeutronError"].(map[string]any)
			typ, _ := nerr["type"].(string)
			msg, _ := nerr["message"].(string)
			if status != tc.status || (tc.typ != "" && typ != tc.typ) || !strings.Contains(msg, tc.inMessage) {
				t.Errorf("got %d %s %q; want %d %s containing %q", status, typ, msg, tc.status, tc.typ, tc.inMessage)
			}
			if tc.typ == "" && (typ == "" || msg == "") {
				t.Errorf("no Neutron error type and message: %v", resp)
			}
			if after := storeSnapshot(e); after != storeBefore {
				t.Errorf("the store changed")
			}
			if diff := kernelBefore.diff(snapshotKernel(t, e.Prefix)); diff != "" {
				t.Errorf("the kernel changed:\n%s", diff)
			}
		})
	}
	if len(cases) < 60 {
		t.Errorf("only %d cases", len(cases))
	}

	// Conflicting concurrent updates: ten callers attach the same subnet
	// to ten new routers at once; exactly one wins, the others get
	// Neutron's 400 "already has a port" and nothing half-made remains.
	other := id(must("POST", "/v2.0/subnets", map[string]any{"subnet": map[string]any{"network_id": net, "cidr": "10.1.0.0/24"}}), "subnet")
	var routers []string
	for i := range 10 {
		routers = append(routers, id(must("POST", "/v2.0/routers", obj("router", map[string]any{"name": fmt.Sprint("race-", i)})), "router"))
	}
	var wg sync.WaitGroup
	statuses := make([]int, len(routers))
	for i, r := range routers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i], _ = e.API("PUT", "/v2.0/routers/"+r+"/add_router_interface", map[string]any{"subnet_id": other})
		}()
	}
	wg.Wait()
	won := 0
	for _, s := range statuses {
		if s == 200 {
			won++
		}
	}
	_, body := e.API("GET", "/v2.0/ports?device_owner=network:router_interface&fixed_ips=subnet_id="+other, nil)
	if won != 1 || len(body["ports"].([]any)) != 1 {
		t.Errorf("concurrent attachments of one subnet: statuses %v, %d interface ports on it; want one 200 and one port", statuses, len(body["ports"].([]any)))
	}
}

// storeSnapshot is every collection as the admin lists it, as one string.
// Ports' firewall drop counters are left out: they are what the host saw
// (published by its agent every few seconds, the first time when the port
// is plugged), not state a request could have changed.
func storeSnapshot(e *Env) string {
	var b strings.Builder
	for _, c := range []string{"networks", "subnets", "ports", "instances", "routers", "floatingips", "rbac-policies", "quotas"} {
		_, body := e.API("GET", "/v2.0/"+c, nil)
		if ports, ok := body["ports"].([]any); ok {
			for _, p := range ports {
				if p, ok := p.(map[string]any); ok {
					delete(p, "nsnet:firewall_drops")
				}
			}
		}
		raw, _ := json.Marshal(body)
		b.Write(raw)
	}
	return b.String()
}
