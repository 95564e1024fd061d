package api_test

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/nsnet/nsnet/internal/model"
)

// TestSubnetServiceTypes follows Neutron's subnet-service-types: a port
// takes its address from the subnets whose service types name its
// device_owner, before those without service types, never from subnets
// typed for others (a DHCP port from any subnet with DHCP); service types
// are validated as Neutron does, its one-character prefixes included.
func TestSubnetServiceTypes(t *testing.T) {
	h := newHarness(t)
	net := h.create("networks", "network", map[string]any{"name": "typed"})["id"].(string)
	subnet := func(cidr string, types []any, dhcp bool) string {
		return h.create("subnets", "subnet", map[string]any{"network_id": net, "cidr": cidr, "enable_dhcp": dhcp, "service_types": types})["id"].(string)
	}
	one := subnet("192.168.1.0/24", []any{"test:type_1", "network:distributed"}, false)
	two := subnet("192.168.2.0/24", []any{"test:type_2", "network:distributed"}, false)

	h.checkRefusals(t, []refusal{
		{"a type of no device owner", "POST", "/v2.0/subnets", map[string]any{"subnet": map[string]any{"network_id": net, "cidr": "10.1.0.0/24",
			"service_types": []any{"foo:bar"}}}, 400, "InvalidSubnetServiceType", "Subnet service type foo:bar does not correspond to a valid device owner."},
		{"a type not a string", "POST", "/v2.0/subnets", map[string]any{"subnet": map[string]any{"network_id": net, "cidr": "10.1.0.0/24",
			"service_types": []any{1}}}, 400, "InvalidInputSubnetServiceType", "Subnet service type 1 is not a string."},
		{"types not a list", "PUT", "/v2.0/subnets/" + one, map[string]any{"subnet": map[string]any{"service_types": "network:dhcp"}},
			400, "HTTPBadRequest", "Subnet service types must be a list."},
		{"no subnet for the owner", "POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": net}},
			409, "IpAddressGenerationFailureNoMatchingSubnet", "No valid service subnet for the given device owner, network " + net + ", service type ."},
		{"a subnet typed for another owner", "POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": net, "device_owner": "test:type_1",
			"fixed_ips": []any{map[string]any{"subnet_id": two}}}}, 400, "InvalidInput", "because fixed_ips included invalid subnet " + two},
	})

	addressOf := func(owner string) netip.Addr {
		t.Helper()
		port := h.create("ports", "port", map[string]any{"network_id": net, "device_owner": owner})
		ips := port["fixed_ips"].([]any)
		if len(ips) != 1 {
			t.Fatalf("port of %q: fixed_ips %v, want one", owner, ips)
		}
		return netip.MustParseAddr(ips[0].(map[string]any)["ip_address"].(string))
	}
	for _, tc := range []struct {
		owner, cidr string
		untyped     bool // after an untyped subnet joined
	}{
		{"test:type_1", "192.168.1.0/24", false},
		{"test:type_2", "192.168.2.0/24", false},
		{"", "192.168.3.0/24", true},
		{"compute:nova", "192.168.3.0/24", true},
		{"test:type_1", "192.168.1.0/24", true}, // typed subnets first
	} {
		if tc.untyped && len(h.do("GET", "/v2.0/subnets?cidr=192.168.3.0/24", nil).body["subnets"].([]any)) == 0 {
			subnet("192.168.3.0/24", nil, false)
		}
		if a := addressOf(tc.owner); !netip.MustParsePrefix(tc.cidr).Contains(a) {
			t.Errorf("port of %q got %s, want one in %s", tc.owner, a, tc.cidr)
		}
	}

	r := h.do("PUT", "/v2.0/subnets/"+one, map[string]any{"subnet": map[string]any{"service_types": []any{"network:floatingip", "compute:x"}}})
	if got := r.body["subnet"].(map[string]any)["service_types"].([]any); r.status != 200 || len(got) != 2 || got[0] != "network:floatingip" || got[1] != "compute:x" {
		t.Errorf("update service_types: %d %v", r.status, r.body)
	}

	// A network's DHCP port takes an address on a subnet with DHCP
	// whatever its service types.
	dhcpNet := h.create("networks", "network", map[string]any{"name": "dhcp"})["id"].(string)
	h.create("subnets", "subnet", map[string]any{"network_id": dhcpNet, "cidr": "10.9.0.0/24", "service_types": []any{"compute:nova"}})
	ports := h.do("GET", "/v2.0/ports?device_owner=network:dhcp&network_id="+dhcpNet, nil).body["ports"].([]any)
	if len(ports) != 1 || len(ports[0].(map[string]any)["fixed_ips"].([]any)) != 1 {
		t.Errorf("DHCP port on a subnet typed for compute:nova: %v", ports)
	}
}

// TestServiceProviders is Neutron's service-type: /v2.0/service-providers
// lists the one L3_ROUTER_NAT provider nsnet's routers are (single_node,
// the default) to any project, with fields and filters as on any list.
func TestServiceProviders(t *testing.T) {
	h := newTenants(t, nil)
	for _, tc := range []struct {
		name, query string
		want        []model.ServiceProvider
	}{
		{"all", "", []model.ServiceProvider{{ServiceType: "L3_ROUTER_NAT", Name: "single_node", Default: true}}},
		{"by service type", "?service_type=L3_ROUTER_NAT", []model.ServiceProvider{{ServiceType: "L3_ROUTER_NAT", Name: "single_node", Default: true}}},
		{"of a type nsnet has not", "?service_type=VPN", []model.ServiceProvider{}},
		{"one field", "?fields=name", []model.ServiceProvider{{Name: "single_node"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := h.as(owner, "GET", "/v2.0/service-providers"+tc.query, nil)
			var got struct {
				Providers []model.ServiceProvider `json:"service_providers"`
			}
			decodeInto(t, r, &got)
			if r.status != 200 || !slices.Equal(got.Providers, tc.want) {
				t.Errorf("%d %+v, want %+v", r.status, got.Providers, tc.want)
			}
		})
	}
	if r := h.as(owner, "GET", "/v2.0/service-providers?driver=x", nil); r.status != 400 {
		t.Errorf("an unknown filter: %d %v, want 400", r.status, r.body)
	}
}
