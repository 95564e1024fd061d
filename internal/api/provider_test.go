package api_test

import (
	"encoding/json"
	"testing"
)

// providerNet is a network's provider attributes as the API shows them;
// pointers tell null (and, with the raw map, absent) from a value.
type providerNet struct {
	ID              string  `json:"id"`
	MTU             int     `json:"mtu"`
	NetworkType     *string `json:"provider:network_type"`
	PhysicalNetwork *string `json:"provider:physical_network"`
	SegmentationID  *int    `json:"provider:segmentation_id"`
}

func decodeNet(t *testing.T, v any) providerNet {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var n providerNet
	if err := json.Unmarshal(raw, &n); err != nil {
		t.Fatal(err)
	}
	return n
}

func (n providerNet) String() string {
	s := func(p *string) string {
		if p == nil {
			return "null"
		}
		return *p
	}
	id := "null"
	if n.SegmentationID != nil {
		raw, _ := json.Marshal(*n.SegmentationID)
		id = string(raw)
	}
	return s(n.NetworkType) + "/" + s(n.PhysicalNetwork) + "/" + id
}

// TestProviderAttributes: what ML2 with the vxlan, flat and local type
// drivers gives a network, by default and as an admin asks.
func TestProviderAttributes(t *testing.T) {
	h := newHarness(t)
	for _, tc := range []struct {
		name  string
		attrs map[string]any
		want  string
	}{
		{"tenant default", map[string]any{"name": "a"}, "vxlan/null/1"},
		{"next tenant", map[string]any{"name": "b"}, "vxlan/null/2"},
		{"explicit vni", map[string]any{"provider:network_type": "vxlan", "provider:segmentation_id": 4242}, "vxlan/null/4242"},
		{"vxlan picks a free vni", map[string]any{"provider:network_type": "vxlan"}, "vxlan/null/3"},
		{"flat", map[string]any{"provider:network_type": "flat", "provider:physical_network": "physnet1"}, "flat/physnet1/null"},
		{"local", map[string]any{"provider:network_type": "local"}, "local/null/null"},
		{"null is not given", map[string]any{"provider:network_type": nil, "provider:segmentation_id": nil}, "vxlan/null/4"},
		{"uplink is flat", map[string]any{"router:external": true, "nsnet:uplink": "ethup0"}, "flat/ethup0/null"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			created := decodeNet(t, h.create("networks", "network", tc.attrs))
			if got := created.String(); got != tc.want {
				t.Errorf("created: %s, want %s", got, tc.want)
			}
			r := h.do("GET", "/v2.0/networks/"+created.ID, nil)
			if got := decodeNet(t, r.body["network"]).String(); r.status != 200 || got != tc.want {
				t.Errorf("shown: %d %s, want %s", r.status, got, tc.want)
			}
		})
	}
	r := h.do("GET", "/v2.0/networks?provider:network_type=flat", nil)
	if nets, _ := r.body["networks"].([]any); r.status != 200 || len(nets) != 2 {
		t.Errorf("filter on provider:network_type=flat: %d, %d networks; want the 2 flat ones", r.status, len(nets))
	}
}

// TestProviderRefusals: what ML2 refuses, with its status, type and
// message, and nothing stored.
func TestProviderRefusals(t *testing.T) {
	h := newHarness(t)
	vx := h.create("networks", "network", map[string]any{"provider:network_type": "vxlan", "provider:segmentation_id": 77})
	h.create("networks", "network", map[string]any{"provider:network_type": "flat", "provider:physical_network": "physnet1"})
	post := func(a map[string]any) map[string]any { return map[string]any{"network": a} }
	h.checkRefusals(t, []refusal{
		{"vlan", "POST", "/v2.0/networks", post(map[string]any{"provider:network_type": "vlan", "provider:physical_network": "physnet1", "provider:segmentation_id": 100}),
			400, "InvalidInput", "Invalid input for operation: network_type value 'vlan' not supported."},
		{"geneve", "POST", "/v2.0/networks", post(map[string]any{"provider:network_type": "geneve"}),
			400, "InvalidInput", "network_type value 'geneve' not supported"},
		{"type missing", "POST", "/v2.0/networks", post(map[string]any{"provider:segmentation_id": 9}),
			400, "InvalidInput", "Invalid input for operation: network_type required."},
		{"flat without physnet", "POST", "/v2.0/networks", post(map[string]any{"provider:network_type": "flat"}),
			400, "InvalidInput", "physical_network required for flat provider network"},
		{"flat with vni", "POST", "/v2.0/networks", post(map[string]any{"provider:network_type": "flat", "provider:physical_network": "p2", "provider:segmentation_id": 3}),
			400, "InvalidInput", "segmentation_id prohibited for flat provider network"},
		{"vxlan with physnet", "POST", "/v2.0/networks", post(map[string]any{"provider:network_type": "vxlan", "provider:physical_network": "p2"}),
			400, "InvalidInput", "provider:physical_network specified for vxlan network"},
		{"vni zero", "POST", "/v2.0/networks", post(map[string]any{"provider:network_type": "vxlan", "provider:segmentation_id": 0}),
			400, "InvalidInput", "segmentation_id out of range (1 through 16777215)"},
		{"vni too big", "POST", "/v2.0/networks", post(map[string]any{"provider:network_type": "vxlan", "provider:segmentation_id": 1 << 24}),
			400, "InvalidInput", "segmentation_id out of range (1 through 16777215)"},
		{"vni not a number", "POST", "/v2.0/networks", post(map[string]any{"provider:network_type": "vxlan", "provider:segmentation_id": "x"}),
			400, "HTTPBadRequest", "Invalid input for provider:segmentation_id. Reason: 'x' is not an integer."},
		{"type not a string", "POST", "/v2.0/networks", post(map[string]any{"provider:network_type": 5}),
			400, "HTTPBadRequest", "Invalid input for provider:network_type. Reason: '5' is not a valid string."},
		{"local with physnet", "POST", "/v2.0/networks", post(map[string]any{"provider:network_type": "local", "provider:physical_network": "p"}),
			400, "InvalidInput", "physical_network prohibited for local provider network"},
		{"vni in use", "POST", "/v2.0/networks", post(map[string]any{"provider:network_type": "vxlan", "provider:segmentation_id": 77}),
			409, "TunnelIdInUse", "Unable to create the network. The tunnel ID 77 is in use."},
		{"physnet in use", "POST", "/v2.0/networks", post(map[string]any{"provider:network_type": "flat", "provider:physical_network": "physnet1"}),
			409, "FlatNetworkInUse", "Unable to create the flat network. Physical network physnet1 is in use."},
		{"update the vni", "PUT", "/v2.0/networks/" + vx["id"].(string), post(map[string]any{"provider:segmentation_id": 78}),
			400, "InvalidInput", "Plugin does not support updating provider attributes"},
		{"update the type", "PUT", "/v2.0/networks/" + vx["id"].(string), post(map[string]any{"provider:network_type": "local"}),
			400, "InvalidInput", "Plugin does not support updating provider attributes"},
	})
	// The same values are no change.
	r := h.do("PUT", "/v2.0/networks/"+vx["id"].(string), post(map[string]any{"provider:network_type": "vxlan", "provider:segmentation_id": 77, "name": "same"}))
	if r.status != 200 {
		t.Errorf("update with the same provider attributes: %d %v", r.status, r.body)
	}
}

// TestProviderPolicy: the provider attributes are admin-only to set and
// to see (Neutron's create_network:provider:* and get_network:provider:*).
func TestProviderPolicy(t *testing.T) {
	h := newTenants(t, nil)
	r := h.as(owner, "POST", "/v2.0/networks", map[string]any{"network": map[string]any{"provider:network_type": "local"}})
	if typ, msg := neutronError(r); r.status != 403 || typ != "PolicyNotAuthorized" ||
		msg != "(rule:create_network and rule:create_network:provider:network_type) is disallowed by policy" {
		t.Errorf("member sets provider:network_type: %d %s %q", r.status, typ, msg)
	}
	id := h.create(owner, "networks", "network", map[string]any{"name": "mine"})
	r = h.as(owner, "PUT", "/v2.0/networks/"+id, map[string]any{"network": map[string]any{"provider:segmentation_id": 1}})
	if typ, _ := neutronError(r); r.status != 403 || typ != "PolicyNotAuthorized" {
		t.Errorf("member updates provider:segmentation_id: %d %s", r.status, typ)
	}
	for _, path := range []string{"/v2.0/networks/" + id, "/v2.0/networks?id=" + id} {
		r = h.as(owner, "GET", path, nil)
		n, _ := r.body["network"].(map[string]any)
		if nets, ok := r.body["networks"].([]any); ok && len(nets) == 1 {
			n, _ = nets[0].(map[string]any)
		}
		for _, k := range []string{"provider:network_type", "provider:physical_network", "provider:segmentation_id"} {
			if _, shown := n[k]; r.status != 200 || shown {
				t.Errorf("member GET %s: %d, %s shown", path, r.status, k)
			}
		}
	}
	r = h.as(admin, "GET", "/v2.0/networks/"+id, nil)
	if got := decodeNet(t, r.body["network"]).String(); got != "vxlan/null/1" {
		t.Errorf("admin sees %s, want vxlan/null/1", got)
	}
}

// TestBulkNetworksTakeDistinctVNIs: networks created in one bulk request
// (one transaction) each take their own VNI.
func TestBulkNetworksTakeDistinctVNIs(t *testing.T) {
	h := newHarness(t)
	r := h.do("POST", "/v2.0/networks", map[string]any{"networks": []map[string]any{{"name": "a"}, {"name": "b"}, {"name": "c"}}})
	nets, _ := r.body["networks"].([]any)
	if r.status != 201 || len(nets) != 3 {
		t.Fatalf("bulk create: %d %v", r.status, r.body)
	}
	seen := map[string]bool{}
	for _, n := range nets {
		got := decodeNet(t, n).String()
		if seen[got] {
			t.Errorf("two networks got %s", got)
		}
		seen[got] = true
	}
	for _, want := range []string{"vxlan/null/1", "vxlan/null/2", "vxlan/null/3"} {
		if !seen[want] {
			t.Errorf("no network got %s: %v", want, seen)
		}
	}
}
