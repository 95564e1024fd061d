package api_test

import (
	"fmt"
	"testing"
)

// TestBulkCreate: {"<collection>": [...]} creates every item in one
// transaction and answers them in order, or creates none and answers the
// failing item's error, as Neutron's bulk create does.
func TestBulkCreate(t *testing.T) {
	h := newHarness(t)
	net := h.create("networks", "network", map[string]any{"name": "n"})["id"]
	h.create("subnets", "subnet", map[string]any{"network_id": net, "cidr": "10.9.0.0/24", "ip_version": 4})
	ext := h.create("networks", "network", map[string]any{"router:external": true})["id"]
	h.create("subnets", "subnet", map[string]any{"network_id": ext, "cidr": "192.0.2.0/24", "ip_version": 4})
	group := h.create("security-groups", "security_group", map[string]any{"name": "g"})["id"]

	cases := []struct {
		path, collection string
		good             []map[string]any
		bad              []map[string]any // one item fails
		status           int
		errType          string
	}{
		{"networks", "networks",
			[]map[string]any{{"name": "a"}, {"name": "b", "mtu": 1400}},
			[]map[string]any{{"name": "c"}, {"mtu": 10}}, 400, "HTTPBadRequest"},
		{"subnets", "subnets",
			[]map[string]any{{"network_id": net, "cidr": "10.1.0.0/24", "ip_version": 4}, {"network_id": net, "cidr": "10.2.0.0/24", "ip_version": 4}},
			// The second overlaps the first of the same batch.
			[]map[string]any{{"network_id": net, "cidr": "10.3.0.0/24", "ip_version": 4}, {"network_id": net, "cidr": "10.3.0.0/25", "ip_version": 4}},
			400, "InvalidInput"},
		{"ports", "ports",
			[]map[string]any{{"network_id": net}, {"network_id": net, "name": "p"}},
			// Both ask for the same address.
			[]map[string]any{{"network_id": net, "fixed_ips": []any{map[string]any{"ip_address": "10.9.0.50"}}},
				{"network_id": net, "fixed_ips": []any{map[string]any{"ip_address": "10.9.0.50"}}}},
			409, "IpAddressAlreadyAllocated"},
		{"routers", "routers",
			[]map[string]any{{"name": "r1"}, {"name": "r2"}},
			[]map[string]any{{"name": "r3"}, {"external_gateway_info": map[string]any{"network_id": "nope"}}}, 404, "NetworkNotFound"},
		{"floatingips", "floatingips",
			[]map[string]any{{"floating_network_id": ext}, {"floating_network_id": ext}},
			[]map[string]any{{"floating_network_id": ext}, {"floating_network_id": net}}, 400, "BadRequest"},
		{"security-groups", "security_groups",
			[]map[string]any{{"name": "x"}, {"name": "y"}},
			[]map[string]any{{"name": "z"}, {"name": "default"}}, 409, "SecurityGroupDefaultAlreadyExists"},
		{"security-group-rules", "security_group_rules",
			[]map[string]any{{"security_group_id": group, "direction": "ingress", "protocol": "tcp", "port_range_min": 22, "port_range_max": 22},
				{"security_group_id": group, "direction": "ingress", "protocol": "udp"}},
			// The second repeats the first.
			[]map[string]any{{"security_group_id": group, "direction": "ingress", "protocol": "icmp"},
				{"security_group_id": group, "direction": "ingress", "protocol": "icmp"}},
			409, "SecurityGroupRuleExists"},
	}
	for _, c := range cases {
		t.Run(c.collection, func(t *testing.T) {
			r := h.do("POST", "/v2.0/"+c.path, map[string]any{c.collection: c.good})
			items, _ := r.body[c.collection].([]any)
			if r.status != 201 || len(items) != len(c.good) {
				t.Fatalf("bulk create: %d %v", r.status, r.body)
			}
			for i, item := range items {
				id, _ := item.(map[string]any)["id"].(string)
				if got := h.do("GET", "/v2.0/"+c.path+"/"+id, nil); got.status != 200 {
					t.Errorf("item %d (%s) not stored: %d", i, id, got.status)
				}
				for k, v := range c.good[i] {
					if want := fmt.Sprint(v); k != "fixed_ips" && fmt.Sprint(item.(map[string]any)[k]) != want {
						t.Errorf("item %d: %s = %v, want %s", i, k, item.(map[string]any)[k], want)
					}
				}
			}

			before := h.revision()
			r = h.do("POST", "/v2.0/"+c.path, map[string]any{c.collection: c.bad})
			if typ, msg := neutronError(r); r.status != c.status || typ != c.errType {
				t.Errorf("bad batch: %d %s %q, want %d %s", r.status, typ, msg, c.status, c.errType)
			}
			if after := h.revision(); after != before {
				t.Errorf("a refused batch changed the store (revision %d → %d)", before, after)
			}
		})
	}
}

// TestBulkCreateRefusals: the bulk envelope's own errors.
func TestBulkCreateRefusals(t *testing.T) {
	h := newHarness(t)
	before := h.revision()
	for _, c := range []struct {
		path string
		body any
		msg  string
	}{
		{"networks", map[string]any{"networks": []any{}}, "Resources required"},
		{"networks", map[string]any{"networks": map[string]any{"name": "x"}}, "Malformed request body: 'networks' must be a list of objects"},
		{"networks", map[string]any{"networks": []any{"x"}}, "Malformed request body: 'network' must be a JSON object"},
		{"instances", map[string]any{"instances": []any{map[string]any{}}}, "Bulk operation not supported"},
		{"networks", map[string]any{"networks": []any{map[string]any{"network": "x"}}}, "Malformed request body: 'network' must be a JSON object"},
	} {
		r := h.do("POST", "/v2.0/"+c.path, c.body)
		if typ, msg := neutronError(r); r.status != 400 || typ != "HTTPBadRequest" || msg != c.msg {
			t.Errorf("%v: %d %s %q, want 400 %q", c.body, r.status, typ, msg, c.msg)
		}
	}
	if after := h.revision(); after != before {
		t.Errorf("refusals changed the store (revision %d → %d)", before, after)
	}
}

// TestBulkCreateItemsInEnvelopes: Neutron also takes each item in its own
// envelope, as tempest's clients send them.
func TestBulkCreateItemsInEnvelopes(t *testing.T) {
	h := newHarness(t)
	r := h.do("POST", "/v2.0/security-groups", map[string]any{"security_groups": []any{
		map[string]any{"security_group": map[string]any{"name": "a"}}, map[string]any{"name": "b"}}})
	items, _ := r.body["security_groups"].([]any)
	if r.status != 201 || len(items) != 2 {
		t.Fatalf("bulk create: %d %v", r.status, r.body)
	}
	for i, want := range []string{"a", "b"} {
		if got := items[i].(map[string]any)["name"]; got != want {
			t.Errorf("item %d: name %v, want %s", i, got, want)
		}
	}
}

// TestBulkCreateCountsTheBatchAgainstQuotas: a batch that would pass the
// quota is refused whole.
func TestBulkCreateCountsTheBatchAgainstQuotas(t *testing.T) {
	h := newTenants(t, map[string]int{"network": 2})
	h.create(owner, "networks", "network", map[string]any{})
	r := h.as(owner, "POST", "/v2.0/networks", map[string]any{"networks": []any{map[string]any{}, map[string]any{}}})
	if typ, _ := neutronError(r); r.status != 409 || typ != "OverQuota" {
		t.Fatalf("batch over quota: %d %v", r.status, r.body)
	}
	if n := len(h.as(owner, "GET", "/v2.0/networks", nil).body["networks"].([]any)); n != 1 {
		t.Errorf("a refused batch left %d networks, want 1", n)
	}
}
