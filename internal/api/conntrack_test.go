package api_test

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/nsnet/nsnet/internal/model"
)

// TestConntrackHelpers: Neutron's l3-conntrack-helper shapes and checks,
// and the router body's conntrack_helpers (expose-l3-conntrack-helper).
func TestConntrackHelpers(t *testing.T) {
	h := newHarness(t)
	router := h.create("routers", "router", map[string]any{"name": "r"})["id"].(string)
	base := "/v2.0/routers/" + router + "/conntrack_helpers"
	decode := func(v any, into any) {
		t.Helper()
		raw, _ := json.Marshal(v)
		if err := json.Unmarshal(raw, into); err != nil {
			t.Fatal(err)
		}
	}
	routerHelpers := func() []model.RouterConntrackHelper {
		var got struct {
			Router struct {
				Helpers *[]model.RouterConntrackHelper `json:"conntrack_helpers"`
			} `json:"router"`
		}
		decode(h.do("GET", "/v2.0/routers/"+router, nil).body, &got)
		if got.Router.Helpers == nil {
			t.Fatal("router body has no conntrack_helpers")
		}
		return *got.Router.Helpers
	}
	if got := routerHelpers(); len(got) != 0 {
		t.Fatalf("new router's conntrack_helpers = %v", got)
	}

	r := h.do("POST", base, map[string]any{"conntrack_helper": map[string]any{"helper": "tftp", "protocol": "udp", "port": 69}})
	if r.status != 201 {
		t.Fatalf("create: %d %v", r.status, r.body)
	}
	var keys map[string]any
	decode(r.body["conntrack_helper"], &keys)
	if len(keys) != 4 || keys["id"] == nil {
		t.Errorf("body %v: want exactly id, helper, protocol, port (no router_id, no project_id)", keys)
	}
	var created model.ConntrackHelper
	decode(r.body["conntrack_helper"], &created)
	if created.Helper != "tftp" || created.Protocol != "udp" || created.Port != 69 {
		t.Errorf("created = %+v", created)
	}
	item := base + "/" + created.ID

	up := h.do("PUT", item, map[string]any{"conntrack_helper": map[string]any{"port": 6969}})
	var updated model.ConntrackHelper
	decode(up.body["conntrack_helper"], &updated)
	if up.status != 200 || updated.Port != 6969 || updated.Helper != "tftp" {
		t.Errorf("update: %d %+v", up.status, updated)
	}
	if got := routerHelpers(); !slices.Equal(got, []model.RouterConntrackHelper{{Protocol: "udp", Port: 6969, Helper: "tftp"}}) {
		t.Errorf("router body conntrack_helpers = %v", got)
	}
	// A router update keeps its helpers.
	if r := h.do("PUT", "/v2.0/routers/"+router, map[string]any{"router": map[string]any{"name": "renamed"}}); r.status != 200 {
		t.Fatalf("router update: %d %v", r.status, r.body)
	}
	if got := routerHelpers(); len(got) != 1 {
		t.Errorf("router body after a router update = %v", got)
	}
	var list struct {
		Helpers []model.ConntrackHelper `json:"conntrack_helpers"`
	}
	decode(h.do("GET", base+"?helper=tftp", nil).body, &list)
	if len(list.Helpers) != 1 || list.Helpers[0].ID != created.ID {
		t.Errorf("list = %+v", list.Helpers)
	}

	h.checkRefusals(t, []refusal{
		{"helper not allowed", "POST", base, map[string]any{"conntrack_helper": map[string]any{"helper": "quake", "protocol": "udp", "port": 1}},
			400, "ConntrackHelperNotAllowed", "Conntrack Helper quake is not allowed."},
		{"protocol the helper does not serve", "POST", base, map[string]any{"conntrack_helper": map[string]any{"helper": "ftp", "protocol": "udp", "port": 21}},
			400, "InvalidProtocolForHelper", "Conntrack Helper ftp does not support: udp. Supported protocols are: tcp"},
		{"unknown protocol", "POST", base, map[string]any{"conntrack_helper": map[string]any{"helper": "ftp", "protocol": "xyz", "port": 21}},
			400, "HTTPBadRequest", "'xyz' is not in"},
		{"port out of range", "POST", base, map[string]any{"conntrack_helper": map[string]any{"helper": "ftp", "protocol": "tcp", "port": 70000}},
			400, "HTTPBadRequest", "70000 is not in range 1 through 65535"},
		{"missing port", "POST", base, map[string]any{"conntrack_helper": map[string]any{"helper": "ftp", "protocol": "tcp"}},
			400, "HTTPBadRequest", "Required attribute 'port' not specified"},
		{"duplicate", "POST", base, map[string]any{"conntrack_helper": map[string]any{"helper": "tftp", "protocol": "udp", "port": 6969}},
			400, "BadRequest", "A duplicate conntrack helper entry with same attributes already exists"},
		{"another helper on the same port", "POST", base, map[string]any{"conntrack_helper": map[string]any{"helper": "snmp", "protocol": "udp", "port": 6969}},
			400, "BadRequest", "a connection has one helper"},
		{"id is not the client's", "POST", base, map[string]any{"conntrack_helper": map[string]any{"id": "x", "helper": "ftp", "protocol": "tcp", "port": 21}},
			400, "HTTPBadRequest", "Attribute 'id' not allowed in POST"},
		{"a router's conntrack_helpers are read-only", "PUT", "/v2.0/routers/" + router,
			map[string]any{"router": map[string]any{"conntrack_helpers": []any{}}}, 400, "HTTPBadRequest", "Cannot update read-only attribute conntrack_helpers"},
		{"no such router", "POST", "/v2.0/routers/00000000-0000-0000-0000-000000000000/conntrack_helpers",
			map[string]any{"conntrack_helper": map[string]any{"helper": "ftp", "protocol": "tcp", "port": 21}}, 404, "RouterNotFound", "could not be found"},
		{"no such helper", "GET", base + "/00000000-0000-0000-0000-000000000000", nil, 404, "ConntrackHelperNotFound", "could not be found"},
	})

	if r := h.do("DELETE", item, nil); r.status != 204 {
		t.Fatalf("delete: %d %v", r.status, r.body)
	}
	if r := h.do("GET", item, nil); r.status != 404 {
		t.Errorf("after delete: %d", r.status)
	}
	if got := routerHelpers(); len(got) != 0 {
		t.Errorf("router body after delete = %v", got)
	}
}
