package e2e

import (
	"strings"
	"testing"
)

// TestRoutesNeutronAccepts: two routes Neutron accepts and the kernel
// cannot hold as asked: a router's extra route to a subnet the router is
// attached to (the kernel's connected route holds it) and a subnet's host
// route via a next hop on none of the network's subnets (ENETUNREACH).
// Both are left out of the kernel; the router and the DHCP service stay
// ACTIVE with the routes that can be had.
func TestRoutesNeutronAccepts(t *testing.T) {
	e := Start(t)
	must := e.MustAPI
	net := must("POST", "/v2.0/networks", map[string]any{"network": map[string]any{"name": "lab"}})["network"].(map[string]any)["id"].(string)
	subnet := must("POST", "/v2.0/subnets", map[string]any{"subnet": map[string]any{"network_id": net, "cidr": "10.42.1.0/24",
		"host_routes": []any{
			map[string]any{"destination": "192.168.9.0/24", "nexthop": "10.42.1.9"},
			map[string]any{"destination": "172.16.0.0/12", "nexthop": "192.0.2.1"},
		}}})["subnet"].(map[string]any)["id"].(string)
	router := must("POST", "/v2.0/routers", map[string]any{"router": map[string]any{"name": "r"}})["router"].(map[string]any)["id"].(string)
	must("PUT", "/v2.0/routers/"+router+"/add_router_interface", map[string]any{"subnet_id": subnet})
	must("PUT", "/v2.0/routers/"+router, map[string]any{"router": map[string]any{"routes": []any{
		map[string]any{"destination": "10.42.1.0/24", "nexthop": "10.42.1.9"},
		map[string]any{"destination": "172.20.0.0/16", "nexthop": "10.42.1.9"},
	}}})

	got := must("GET", "/v2.0/routers/"+router, nil)["router"].(map[string]any)
	if got["status"] != "ACTIVE" {
		t.Errorf("router %v %v, want ACTIVE", got["status"], got["nsnet:status_reason"])
	}
	dhcpPorts := must("GET", "/v2.0/ports?device_owner=network:dhcp&network_id="+net, nil)["ports"].([]any)
	if len(dhcpPorts) != 1 || dhcpPorts[0].(map[string]any)["status"] != "ACTIVE" {
		t.Errorf("DHCP port %v, want one ACTIVE", dhcpPorts)
	}
	if n := must("GET", "/v2.0/networks/"+net, nil)["network"].(map[string]any); n["status"] != "ACTIVE" {
		t.Errorf("network %v %v, want ACTIVE", n["status"], n["nsnet:status_reason"])
	}

	routes, _ := runOut("ip", "-n", e.Prefix+"qrouter-"+router, "-4", "route")
	if !strings.Contains(routes, "172.20.0.0/16 via 10.42.1.9") || !strings.Contains(routes, "10.42.1.0/24 dev") ||
		strings.Contains(routes, "10.42.1.0/24 via") {
		t.Errorf("router routes:\n%s\nwant 172.20.0.0/16 via 10.42.1.9 and the connected 10.42.1.0/24", routes)
	}
	routes, _ = runOut("ip", "-n", e.Prefix+"qdhcp-"+net, "-4", "route")
	if !strings.Contains(routes, "192.168.9.0/24 via 10.42.1.9") || strings.Contains(routes, "192.0.2.1") {
		t.Errorf("qdhcp routes:\n%s\nwant 192.168.9.0/24 via 10.42.1.9 and nothing via 192.0.2.1", routes)
	}
}
