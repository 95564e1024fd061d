package api_test

import (
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"

	"github.com/nsnet/nsnet/internal/model"
)

func (h *harness) pool(attrs map[string]any) model.SubnetPool {
	h.t.Helper()
	return as[model.SubnetPool](h.t, h.create("subnetpools", "subnetpool", attrs))
}

func TestSubnetPoolShapeAndDefaults(t *testing.T) {
	h := newHarness(t)
	for _, tc := range []struct {
		name          string
		attrs         map[string]any
		prefixes      []string
		version       int
		min, max, def string
	}{
		{"ipv4 defaults", map[string]any{"prefixes": []string{"10.11.12.0/24"}}, []string{"10.11.12.0/24"}, 4, "8", "32", "8"},
		{"ipv6 defaults", map[string]any{"prefixes": []string{"2001:db8:3::/48"}}, []string{"2001:db8:3::/48"}, 6, "64", "128", "64"},
		{"default follows min", map[string]any{"prefixes": []string{"10.0.0.0/8"}, "min_prefixlen": "29"}, []string{"10.0.0.0/8"}, 4, "29", "32", "29"},
		{"explicit bounds", map[string]any{"prefixes": []string{"10.0.0.0/8"}, "min_prefixlen": 16, "max_prefixlen": 28, "default_prefixlen": 24},
			[]string{"10.0.0.0/8"}, 4, "16", "28", "24"},
		{"prefixes compacted and masked", map[string]any{"prefixes": []string{"10.10.10.0/24", "10.10.0.0/16", "192.168.0.128/25", "192.168.0.7/25"}},
			[]string{"10.10.0.0/16", "192.168.0.0/24"}, 4, "8", "32", "8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.attrs["name"] = "p"
			raw := h.create("subnetpools", "subnetpool", tc.attrs)
			// Neutron shows the prefix lengths as strings.
			if raw["min_prefixlen"] != tc.min || raw["max_prefixlen"] != tc.max || raw["default_prefixlen"] != tc.def {
				t.Errorf("prefix lengths min=%v max=%v default=%v, want %s %s %s",
					raw["min_prefixlen"], raw["max_prefixlen"], raw["default_prefixlen"], tc.min, tc.max, tc.def)
			}
			sp := as[model.SubnetPool](t, raw)
			if !slices.Equal(sp.Prefixes, tc.prefixes) || sp.IPVersion != tc.version {
				t.Errorf("prefixes %v ip_version %d, want %v %d", sp.Prefixes, sp.IPVersion, tc.prefixes, tc.version)
			}
			if sp.Shared || sp.IsDefault || sp.DefaultQuota != nil || sp.AddressScopeID != nil || sp.TenantID != sp.ProjectID {
				t.Errorf("defaults: %+v", sp)
			}
			for _, k := range []string{"description", "tags", "revision_number", "created_at", "updated_at", "address_scope_id", "default_quota"} {
				if _, ok := raw[k]; !ok {
					t.Errorf("missing %s", k)
				}
			}
		})
	}
}

func TestSubnetPoolRefusals(t *testing.T) {
	h := newHarness(t)
	scope6 := h.create("address-scopes", "address_scope", map[string]any{"name": "s6", "ip_version": 6})
	scope4 := h.create("address-scopes", "address_scope", map[string]any{"name": "s4", "ip_version": 4})
	inScope := h.pool(map[string]any{"name": "in", "prefixes": []string{"20.0.0.0/18", "30.0.0.0/18"}, "address_scope_id": scope4["id"]})
	cases := []refusal{
		{"no prefixes", "POST", "/v2.0/subnetpools", map[string]any{"subnetpool": map[string]any{"name": "x", "prefixes": []string{}}},
			400, "EmptySubnetPoolPrefixList", "Empty subnet pool prefix list."},
		{"mixed versions", "POST", "/v2.0/subnetpools", map[string]any{"subnetpool": map[string]any{"name": "x", "prefixes": []string{"10.0.0.0/8", "2001:db8::/32"}}},
			400, "PrefixVersionMismatch", "Cannot mix IPv4 and IPv6 prefixes in a subnet pool."},
		{"min above max", "POST", "/v2.0/subnetpools", map[string]any{"subnetpool": map[string]any{"name": "x", "prefixes": []string{"10.0.0.0/8"}, "min_prefixlen": 30, "max_prefixlen": 24}},
			400, "IllegalSubnetPoolPrefixBounds", "Illegal prefix bounds: min_prefixlen=30, max_prefixlen=24."},
		{"max beyond the family", "POST", "/v2.0/subnetpools", map[string]any{"subnetpool": map[string]any{"name": "x", "prefixes": []string{"10.0.0.0/8"}, "max_prefixlen": 33}},
			400, "IllegalSubnetPoolPrefixBounds", "Illegal prefix bounds: max_prefixlen=33, ip_version_max=32."},
		{"default below min", "POST", "/v2.0/subnetpools", map[string]any{"subnetpool": map[string]any{"name": "x", "prefixes": []string{"10.0.0.0/8"}, "min_prefixlen": 24, "default_prefixlen": 16}},
			400, "IllegalSubnetPoolPrefixBounds", "Illegal prefix bounds: default_prefixlen=16, min_prefixlen=24."},
		{"negative length", "POST", "/v2.0/subnetpools", map[string]any{"subnetpool": map[string]any{"name": "x", "prefixes": []string{"10.0.0.0/8"}, "min_prefixlen": -1}},
			400, "HTTPBadRequest", "Invalid input for min_prefixlen. Reason: '-1' should be non-negative."},
		{"no name", "POST", "/v2.0/subnetpools", map[string]any{"subnetpool": map[string]any{"prefixes": []string{"10.0.0.0/8"}}},
			400, "HTTPBadRequest", "Failed to parse request. Required attribute 'name' not specified"},
		{"not a subnet", "POST", "/v2.0/subnetpools", map[string]any{"subnetpool": map[string]any{"name": "x", "prefixes": []string{"10.0.0.0"}}},
			400, "HTTPBadRequest", "Invalid input for prefixes. Reason: '10.0.0.0' isn't a recognized IP subnet cidr, '10.0.0.0/32' is recommended."},
		{"ip_version is derived", "POST", "/v2.0/subnetpools", map[string]any{"subnetpool": map[string]any{"name": "x", "prefixes": []string{"10.0.0.0/8"}, "ip_version": 4}},
			400, "HTTPBadRequest", "Attribute 'ip_version' not allowed in POST"},
		{"malformed scope id", "POST", "/v2.0/subnetpools", map[string]any{"subnetpool": map[string]any{"name": "x", "prefixes": []string{"10.0.0.0/8"}, "address_scope_id": "foo-addr-scope"}},
			400, "HTTPBadRequest", "Invalid input for address_scope_id. Reason: 'foo-addr-scope' is not a valid UUID."},
		{"unknown scope", "POST", "/v2.0/subnetpools", map[string]any{"subnetpool": map[string]any{"name": "x", "prefixes": []string{"10.0.0.0/8"}, "address_scope_id": "6e1781ec-b45b-4042-aebe-f485c022996e"}},
			404, "AddressScopeNotFound", "Address scope 6e1781ec-b45b-4042-aebe-f485c022996e could not be found."},
		{"scope of the other version", "POST", "/v2.0/subnetpools", map[string]any{"subnetpool": map[string]any{"name": "x", "prefixes": []string{"10.0.0.0/8"}, "address_scope_id": scope6["id"]}},
			400, "IllegalSubnetPoolIpVersionAssociationToAddressScope", ""},
		{"prefix taken in the scope", "POST", "/v2.0/subnetpools", map[string]any{"subnetpool": map[string]any{"name": "x", "prefixes": []string{"40.0.0.0/18", "30.0.0.0/12"}, "address_scope_id": scope4["id"]}},
			409, "AddressScopePrefixConflict", "Failed to associate address scope: subnetpools within an address scope must have unique prefixes."},
		{"shrinking prefixes", "PUT", "/v2.0/subnetpools/" + inScope.ID, map[string]any{"subnetpool": map[string]any{"prefixes": []string{"20.0.0.0/18"}}},
			400, "IllegalSubnetPoolPrefixUpdate", "Illegal update to prefixes: Existing prefixes must be a subset of the new prefixes."},
		{"shared is create-only", "PUT", "/v2.0/subnetpools/" + inScope.ID, map[string]any{"subnetpool": map[string]any{"shared": true}},
			400, "HTTPBadRequest", "Cannot update read-only attribute shared"},
		{"project is create-only", "PUT", "/v2.0/subnetpools/" + inScope.ID, map[string]any{"subnetpool": map[string]any{"tenant_id": "admin"}},
			400, "HTTPBadRequest", "Cannot update read-only attribute tenant_id"},
		{"unknown pool", "GET", "/v2.0/subnetpools/nope", nil, 404, "SubnetPoolNotFound", "Subnet pool nope could not be found."},
		{"scope in use", "DELETE", "/v2.0/address-scopes/" + scope4["id"].(string), nil, 409, "AddressScopeInUse", ""},
	}
	h.checkRefusals(t, cases)
}

func TestSubnetPoolUpdates(t *testing.T) {
	h := newHarness(t)
	sp := h.pool(map[string]any{"name": "p", "prefixes": []string{"10.11.12.0/24"}, "min_prefixlen": "29"})
	r := h.do("PUT", "/v2.0/subnetpools/"+sp.ID, map[string]any{"subnetpool": map[string]any{
		"name": "q", "min_prefixlen": "28", "max_prefixlen": "30", "prefixes": []string{"10.11.12.0/24", "10.11.15.0/24"}}})
	if r.status != 200 {
		t.Fatalf("update: %d %v", r.status, r.body)
	}
	got := r.body["subnetpool"].(map[string]any)
	if got["name"] != "q" || got["min_prefixlen"] != "28" || got["max_prefixlen"] != "30" || got["revision_number"] != 1.0 {
		t.Errorf("after update: %v", got)
	}
	// A larger prefix takes the old one in.
	r = h.do("PUT", "/v2.0/subnetpools/"+sp.ID, map[string]any{"subnetpool": map[string]any{"prefixes": []string{"10.11.0.0/16"}}})
	if p := as[model.SubnetPool](t, r.body["subnetpool"]); r.status != 200 || !slices.Equal(p.Prefixes, []string{"10.11.0.0/16"}) {
		t.Errorf("extend: %d %v", r.status, r.body)
	}
}

func TestSubnetFromPool(t *testing.T) {
	h := newHarness(t)
	net := h.create("networks", "network", map[string]any{"name": "n"})["id"]
	sp := h.pool(map[string]any{"name": "p", "prefixes": []string{"10.11.12.0/24"}, "min_prefixlen": 28, "max_prefixlen": 30, "default_quota": 40})
	subnet := func(attrs map[string]any) response {
		attrs["network_id"] = net
		if _, ok := attrs["ip_version"]; !ok {
			attrs["ip_version"] = 4
		}
		return h.do("POST", "/v2.0/subnets", map[string]any{"subnet": attrs})
	}
	for _, tc := range []struct {
		name   string
		attrs  map[string]any
		status int
		cidr   string // or the error type
	}{
		{"default prefixlen", map[string]any{"subnetpool_id": sp.ID}, 201, "10.11.12.0/28"},
		{"given prefixlen", map[string]any{"subnetpool_id": sp.ID, "prefixlen": 30}, 201, "10.11.12.16/30"},
		{"given cidr", map[string]any{"subnetpool_id": sp.ID, "cidr": "10.11.12.32/29"}, 201, "10.11.12.32/29"},
		{"taken cidr", map[string]any{"subnetpool_id": sp.ID, "cidr": "10.11.12.0/29"}, 500, "SubnetAllocationError"},
		{"cidr outside", map[string]any{"subnetpool_id": sp.ID, "cidr": "10.11.13.0/29"}, 500, "SubnetAllocationError"},
		{"longer than max", map[string]any{"subnetpool_id": sp.ID, "prefixlen": 31}, 400, "MaxPrefixSubnetAllocationError"},
		{"shorter than min", map[string]any{"subnetpool_id": sp.ID, "prefixlen": 27}, 400, "MinPrefixSubnetAllocationError"},
		{"cidr with prefixlen", map[string]any{"subnetpool_id": sp.ID, "cidr": "10.11.12.64/29", "prefixlen": 29}, 400, "BadRequest"},
		{"no cidr no pool", map[string]any{}, 400, "BadRequest"},
		{"pools without cidr", map[string]any{"subnetpool_id": sp.ID, "allocation_pools": []map[string]string{{"start": "10.11.12.66", "end": "10.11.12.70"}}}, 400, "BadRequest"},
		{"wrong version", map[string]any{"subnetpool_id": sp.ID, "ip_version": 6}, 400, "BadRequest"},
		{"unknown pool", map[string]any{"subnetpool_id": "6e1781ec-b45b-4042-aebe-f485c022996e"}, 404, "SubnetPoolNotFound"},
		// The creates above took 16+4+8 addresses of the quota of 40: a
		// /28 more would pass it.
		{"over the pool quota", map[string]any{"subnetpool_id": sp.ID, "prefixlen": 28}, 409, "SubnetPoolQuotaExceeded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := subnet(tc.attrs)
			if r.status != tc.status {
				t.Fatalf("status %d %v, want %d", r.status, r.body, tc.status)
			}
			if tc.status != 201 {
				if typ, _ := neutronError(r); typ != tc.cidr {
					t.Errorf("error %s, want %s", typ, tc.cidr)
				}
				return
			}
			sn := as[model.Subnet](t, r.body["subnet"])
			if sn.CIDR != tc.cidr || sn.SubnetPoolID == nil || *sn.SubnetPoolID != sp.ID {
				t.Errorf("cidr %s pool %v, want %s from %s", sn.CIDR, sn.SubnetPoolID, tc.cidr, sp.ID)
			}
		})
	}
	// The pool is in use: it cannot go, nor can the prefix its subnets hold.
	r := h.do("DELETE", "/v2.0/subnetpools/"+sp.ID, nil)
	if typ, _ := neutronError(r); r.status != 400 || typ != "SubnetPoolDeleteError" {
		t.Errorf("delete pool in use: %d %v", r.status, r.body)
	}
	r = h.do("PUT", "/v2.0/subnetpools/"+sp.ID+"/remove_prefixes", map[string]any{"prefixes": []string{"10.11.12.0/24"}})
	if typ, _ := neutronError(r); r.status != 400 || typ != "IllegalSubnetPoolPrefixUpdate" {
		t.Errorf("remove a prefix in use: %d %v", r.status, r.body)
	}
	// A subnet without a pool cannot join a network whose subnets of its
	// version come from one.
	r = subnet(map[string]any{"cidr": "172.16.0.0/24"})
	if typ, _ := neutronError(r); r.status != 400 || typ != "NetworkSubnetPoolAffinityError" {
		t.Errorf("pool affinity: %d %v", r.status, r.body)
	}
}

func TestSubnetPoolPrefixOps(t *testing.T) {
	h := newHarness(t)
	sp := h.pool(map[string]any{"name": "p", "prefixes": []string{"192.168.1.0/24", "10.10.10.0/24"}, "min_prefixlen": 16})
	for _, tc := range []struct {
		op   string
		in   []string
		want []string
	}{
		{"add_prefixes", []string{"192.168.2.0/24"}, []string{"10.10.10.0/24", "192.168.1.0/24", "192.168.2.0/24"}},
		{"remove_prefixes", []string{"192.168.2.0/24"}, []string{"10.10.10.0/24", "192.168.1.0/24"}},
		{"add_prefixes", []string{"10.10.0.0/16"}, []string{"10.10.0.0/16", "192.168.1.0/24"}},
		{"remove_prefixes", []string{"10.10.10.0/24"}, []string{"10.10.0.0/21", "10.10.8.0/23", "10.10.11.0/24", "10.10.12.0/22", "10.10.16.0/20", "10.10.32.0/19", "10.10.64.0/18", "10.10.128.0/17", "192.168.1.0/24"}},
		{"remove_prefixes", []string{"172.16.0.0/12"}, []string{"10.10.0.0/21", "10.10.8.0/23", "10.10.11.0/24", "10.10.12.0/22", "10.10.16.0/20", "10.10.32.0/19", "10.10.64.0/18", "10.10.128.0/17", "192.168.1.0/24"}},
	} {
		r := h.do("PUT", "/v2.0/subnetpools/"+sp.ID+"/"+tc.op, map[string]any{"prefixes": tc.in})
		var got struct {
			Prefixes []string `json:"prefixes"`
		}
		decodeInto(t, r, &got)
		if r.status != 200 || !slices.Equal(got.Prefixes, tc.want) {
			t.Errorf("%s %v: %d %v, want %v", tc.op, tc.in, r.status, got.Prefixes, tc.want)
		}
	}
}

func TestSubnetPoolPolicyAndSharing(t *testing.T) {
	h := newTenants(t, nil)
	for _, tc := range []struct {
		name   string
		attrs  map[string]any
		status int
	}{
		{"member may not share", map[string]any{"shared": true}, 403},
		{"member may not make a default", map[string]any{"is_default": true}, 403},
	} {
		tc.attrs["name"], tc.attrs["prefixes"] = "x", []string{"10.0.0.0/8"}
		if r := h.as(owner, "POST", "/v2.0/subnetpools", map[string]any{"subnetpool": tc.attrs}); r.status != tc.status {
			t.Errorf("%s: %d %v", tc.name, r.status, r.body)
		}
	}
	private := h.create(admin, "subnetpools", "subnetpool", map[string]any{"name": "private", "prefixes": []string{"10.0.0.0/8"}, "default_prefixlen": 24})
	if r := h.as(owner, "GET", "/v2.0/subnetpools/"+private, nil); r.status != 404 {
		t.Errorf("another project's pool is visible: %d", r.status)
	}
	// As in Neutron, the body is checked before the pool is looked up.
	if r := h.as(owner, "PUT", "/v2.0/subnetpools/"+private, map[string]any{"subnetpool": map[string]any{"shared": true}}); r.status != 400 {
		t.Errorf("read-only attribute on an invisible pool: %d %v", r.status, r.body)
	}
	policy := h.create(admin, "rbac-policies", "rbac_policy", map[string]any{"object_type": "subnetpool", "object_id": private,
		"action": "access_as_shared", "target_tenant": "alpha"})
	r := h.as(owner, "GET", "/v2.0/subnetpools/"+private, nil)
	if r.status != 200 || r.body["subnetpool"].(map[string]any)["shared"] != true {
		t.Errorf("shared pool as its target sees it: %d %v", r.status, r.body)
	}
	if r := h.as(other, "GET", "/v2.0/subnetpools/"+private, nil); r.status != 404 {
		t.Errorf("a project the pool is not shared with sees it: %d", r.status)
	}
	if r := h.as(owner, "POST", "/v2.0/rbac-policies", map[string]any{"rbac_policy": map[string]any{"object_type": "subnetpool",
		"object_id": private, "action": "access_as_shared", "target_tenant": "beta"}}); r.status != 400 {
		t.Errorf("member shares a pool it does not own: %d %v", r.status, r.body)
	}
	net := h.create(owner, "networks", "network", map[string]any{"name": "n"})
	sn := h.create(owner, "subnets", "subnet", map[string]any{"network_id": net, "ip_version": 4, "subnetpool_id": private})
	r = h.as(admin, "DELETE", "/v2.0/rbac-policies/"+policy, nil)
	if typ, _ := neutronError(r); r.status != 409 || typ != "RbacPolicyInUse" {
		t.Errorf("unsharing a pool a subnet uses: %d %v", r.status, r.body)
	}
	h.as(owner, "DELETE", "/v2.0/subnets/"+sn, nil)
	if r := h.as(admin, "DELETE", "/v2.0/rbac-policies/"+policy, nil); r.status != 204 {
		t.Errorf("unsharing an unused pool: %d %v", r.status, r.body)
	}

	// Address scopes: shared only by an admin, never unshared; a pool in
	// a scope shared with a project is not that project's to grow.
	if r := h.as(owner, "POST", "/v2.0/address-scopes", map[string]any{"address_scope": map[string]any{"name": "s", "ip_version": 4, "shared": true}}); r.status != 403 {
		t.Errorf("member creates a shared scope: %d", r.status)
	}
	scope := h.create(admin, "address-scopes", "address_scope", map[string]any{"name": "s", "ip_version": 4, "shared": true})
	if r := h.as(admin, "PUT", "/v2.0/address-scopes/"+scope, map[string]any{"address_scope": map[string]any{"shared": false}}); r.status != 400 {
		t.Errorf("unsharing a shared scope: %d %v", r.status, r.body)
	}
	mine := h.create(owner, "subnetpools", "subnetpool", map[string]any{"name": "mine", "prefixes": []string{"20.0.0.0/18"}, "address_scope_id": scope})
	// Neutron's policy checks is_default whenever an update names it.
	if r := h.as(owner, "PUT", "/v2.0/subnetpools/"+mine, map[string]any{"subnetpool": map[string]any{"is_default": false}}); r.status != 403 {
		t.Errorf("member names is_default in an update: %d %v", r.status, r.body)
	}
	r = h.as(owner, "PUT", "/v2.0/subnetpools/"+mine, map[string]any{"subnetpool": map[string]any{"prefixes": []string{"20.0.0.0/18", "40.0.0.0/18"}}})
	if typ, _ := neutronError(r); r.status != 400 || typ != "IllegalSubnetPoolUpdate" {
		t.Errorf("member grows a pool in a shared scope: %d %v", r.status, r.body)
	}
	if r := h.as(admin, "PUT", "/v2.0/subnetpools/"+mine, map[string]any{"subnetpool": map[string]any{"prefixes": []string{"20.0.0.0/18", "40.0.0.0/18"}}}); r.status != 200 {
		t.Errorf("admin grows it: %d %v", r.status, r.body)
	}
}

func TestDefaultSubnetPool(t *testing.T) {
	h := newHarness(t)
	net := h.create("networks", "network", map[string]any{"name": "n"})["id"]
	r := h.do("POST", "/v2.0/subnets", map[string]any{"subnet": map[string]any{"network_id": net, "ip_version": 4, "use_default_subnetpool": true}})
	if _, msg := neutronError(r); r.status != 400 || msg != "Bad subnets request: No default subnetpool found for IPv4." {
		t.Errorf("no default pool: %d %v", r.status, r.body)
	}
	sp := h.pool(map[string]any{"name": "d", "prefixes": []string{"10.0.0.0/16"}, "default_prefixlen": 24, "is_default": true})
	r = h.do("POST", "/v2.0/subnetpools", map[string]any{"subnetpool": map[string]any{"name": "d2", "prefixes": []string{"10.1.0.0/16"}, "is_default": true}})
	if typ, _ := neutronError(r); r.status != 400 || typ != "InvalidInput" {
		t.Errorf("second default: %d %v", r.status, r.body)
	}
	r = h.do("POST", "/v2.0/subnets", map[string]any{"subnet": map[string]any{"network_id": net, "ip_version": 4, "use_default_subnetpool": true}})
	if sn := as[model.Subnet](t, r.body["subnet"]); r.status != 201 || sn.CIDR != "10.0.0.0/24" || *sn.SubnetPoolID != sp.ID {
		t.Errorf("from the default pool: %d %v", r.status, r.body)
	}
}

func TestNetworkAddressScopes(t *testing.T) {
	h := newHarness(t)
	scope := h.create("address-scopes", "address_scope", map[string]any{"name": "s", "ip_version": 4})["id"].(string)
	sp := h.pool(map[string]any{"name": "p", "prefixes": []string{"10.0.0.0/16"}, "default_prefixlen": 24, "address_scope_id": scope})
	net := h.create("networks", "network", map[string]any{"name": "n"})["id"].(string)
	show := func() model.Network {
		r := h.do("GET", "/v2.0/networks/"+net, nil)
		return as[model.Network](t, r.body["network"])
	}
	if n := show(); n.IPv4AddressScope != nil || n.IPv6AddressScope != nil {
		t.Errorf("a network without subnets has scopes %v %v", n.IPv4AddressScope, n.IPv6AddressScope)
	}
	h.create("subnets", "subnet", map[string]any{"network_id": net, "ip_version": 4, "subnetpool_id": sp.ID})
	if n := show(); n.IPv4AddressScope == nil || *n.IPv4AddressScope != scope || n.IPv6AddressScope != nil {
		t.Errorf("scopes %v %v, want ipv4 %s", n.IPv4AddressScope, n.IPv6AddressScope, scope)
	}
	r := h.do("GET", "/v2.0/networks?name=n", nil)
	var list struct{ Networks []model.Network }
	decodeInto(t, r, &list)
	if len(list.Networks) != 1 || list.Networks[0].IPv4AddressScope == nil || *list.Networks[0].IPv4AddressScope != scope {
		t.Errorf("list: %v", r.body)
	}
}

// TestConcurrentSubnetsFromOnePoolNeverOverlap: every subnet a pool hands
// out is its own, however many creates race, and the pool runs out at
// exactly its size; a bulk create's subnets see each other's allocations.
func TestConcurrentSubnetsFromOnePoolNeverOverlap(t *testing.T) {
	h := newHarness(t)
	sp := h.pool(map[string]any{"name": "p", "prefixes": []string{"10.20.0.0/24"}, "default_prefixlen": 28})
	const workers = 24 // more than the 16 /28s of the pool
	nets := make([]any, workers)
	for i := range nets {
		nets[i] = h.create("networks", "network", map[string]any{"name": "n"})["id"]
	}
	var wg sync.WaitGroup
	results := make([]response, workers)
	for i := range workers {
		wg.Go(func() {
			results[i] = h.do("POST", "/v2.0/subnets", map[string]any{"subnet": map[string]any{
				"network_id": nets[i], "ip_version": 4, "subnetpool_id": sp.ID, "enable_dhcp": false}})
		})
	}
	wg.Wait()
	var got []netip.Prefix
	for _, r := range results {
		switch r.status {
		case 201:
			p := netip.MustParsePrefix(as[model.Subnet](t, r.body["subnet"]).CIDR)
			for _, o := range got {
				if o.Overlaps(p) {
					t.Errorf("%s and %s both handed out", o, p)
				}
			}
			got = append(got, p)
		case 500:
			if typ, _ := neutronError(r); typ != "SubnetAllocationError" {
				t.Errorf("unexpected error %s", typ)
			}
		default:
			t.Errorf("unexpected status %d %v", r.status, r.body)
		}
	}
	if len(got) != 16 {
		t.Errorf("%d subnets from a pool of 16 /28s", len(got))
	}

	bulkPool := h.pool(map[string]any{"name": "b", "prefixes": []string{"10.30.0.0/24"}, "default_prefixlen": 26})
	var items []map[string]any
	for i := range 2 {
		net := h.create("networks", "network", map[string]any{"name": fmt.Sprint("bulk", i)})["id"]
		items = append(items, map[string]any{"network_id": net, "ip_version": 4, "subnetpool_id": bulkPool.ID, "enable_dhcp": false})
	}
	r := h.do("POST", "/v2.0/subnets", map[string]any{"subnets": items})
	var bulk struct{ Subnets []model.Subnet }
	decodeInto(t, r, &bulk)
	if r.status != 201 || len(bulk.Subnets) != 2 || bulk.Subnets[0].CIDR != "10.30.0.0/26" || bulk.Subnets[1].CIDR != "10.30.0.64/26" {
		t.Errorf("bulk from a pool: %d %v", r.status, r.body)
	}
}

func TestSubnetPoolQuota(t *testing.T) {
	h := newTenants(t, map[string]int{"subnetpool": 1})
	h.create(owner, "subnetpools", "subnetpool", map[string]any{"name": "a", "prefixes": []string{"10.0.0.0/8"}})
	for _, tc := range []struct {
		name  string
		attrs map[string]any
	}{
		{"a valid pool", map[string]any{"name": "b", "prefixes": []string{"11.0.0.0/8"}}},
		// The quota comes before the pool is read, as in Neutron.
		{"an invalid pool", map[string]any{"name": "b", "prefixes": []string{}}},
	} {
		r := h.as(owner, "POST", "/v2.0/subnetpools", map[string]any{"subnetpool": tc.attrs})
		if typ, _ := neutronError(r); r.status != 409 || typ != "OverQuota" {
			t.Errorf("%s over the quota: %d %v", tc.name, r.status, r.body)
		}
	}
	r := h.as(owner, "GET", "/v2.0/quotas/alpha/details", nil)
	var d struct {
		Quota map[string]struct{ Limit, Used int } `json:"quota"`
	}
	decodeInto(t, r, &d)
	if q := d.Quota["subnetpool"]; q.Limit != 1 || q.Used != 1 {
		t.Errorf("subnetpool quota details: %v", r.body)
	}
}
