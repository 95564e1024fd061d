package api_test

import (
	"slices"
	"strings"
	"testing"
)

func (h *harness) tags(path string) []string {
	h.t.Helper()
	r := h.do("GET", path+"/tags", nil)
	if r.status != 200 {
		h.t.Fatalf("GET %s/tags: %d %v", path, r.status, r.body)
	}
	var out []string
	for _, t := range r.body["tags"].([]any) {
		out = append(out, t.(string))
	}
	slices.Sort(out)
	return out
}

// TestTagOperations walks neutron-tempest-plugin's tag operations on every
// taggable collection: replace, add, add again, get, delete, delete all,
// each change bumping the resource's revision_number.
func TestTagOperations(t *testing.T) {
	h := newHarness(t)
	for _, alias := range []string{"standard-attr-tag", "tag"} {
		if r := h.do("GET", "/v2.0/extensions/"+alias, nil); r.status != 200 {
			t.Errorf("extension %s: %d", alias, r.status)
		}
	}
	net := h.create("networks", "network", map[string]any{})["id"].(string)
	subnet := h.create("subnets", "subnet", map[string]any{"network_id": net, "cidr": "10.0.0.0/24", "ip_version": 4})["id"].(string)
	ext := h.create("networks", "network", map[string]any{"router:external": true})["id"].(string)
	h.create("subnets", "subnet", map[string]any{"network_id": ext, "cidr": "192.0.2.0/24", "ip_version": 4})
	items := map[string]string{
		"networks":        "/v2.0/networks/" + net,
		"subnets":         "/v2.0/subnets/" + subnet,
		"ports":           "/v2.0/ports/" + h.create("ports", "port", map[string]any{"network_id": net})["id"].(string),
		"routers":         "/v2.0/routers/" + h.create("routers", "router", map[string]any{})["id"].(string),
		"floatingips":     "/v2.0/floatingips/" + h.create("floatingips", "floatingip", map[string]any{"floating_network_id": ext})["id"].(string),
		"security-groups": "/v2.0/security-groups/" + h.create("security-groups", "security_group", map[string]any{"name": "g"})["id"].(string),
	}
	for collection, path := range items {
		t.Run(collection, func(t *testing.T) {
			revision := func() float64 {
				r := h.do("GET", path, nil)
				for _, v := range r.body {
					return v.(map[string]any)["revision_number"].(float64)
				}
				return -1
			}
			steps := []struct {
				method, sub string
				body        any
				status      int
				want        []string // the tags after
				bumps       bool
			}{
				{"PUT", "/tags", map[string]any{"tags": []string{"red", "blue"}}, 200, []string{"blue", "red"}, true},
				{"PUT", "/tags/green", nil, 201, []string{"blue", "green", "red"}, true},
				{"PUT", "/tags/red", nil, 201, []string{"blue", "green", "red"}, false},
				{"PUT", "/tags/black.or.white", nil, 201, []string{"black.or.white", "blue", "green", "red"}, true},
				{"PUT", "/tags", map[string]any{"tags": []string{"red", "yellow", "purple"}}, 200, []string{"purple", "red", "yellow"}, true},
				{"GET", "/tags/red", nil, 204, []string{"purple", "red", "yellow"}, false},
				{"GET", "/tags/green", nil, 404, []string{"purple", "red", "yellow"}, false},
				{"DELETE", "/tags/red", nil, 204, []string{"purple", "yellow"}, true},
				{"DELETE", "/tags/green", nil, 404, []string{"purple", "yellow"}, false},
				{"DELETE", "/tags", nil, 204, nil, true},
			}
			for _, s := range steps {
				before := revision()
				r := h.do(s.method, path+s.sub, s.body)
				if r.status != s.status {
					t.Fatalf("%s %s: %d %v, want %d", s.method, s.sub, r.status, r.body, s.status)
				}
				if got := h.tags(path); !slices.Equal(got, s.want) {
					t.Fatalf("after %s %s: tags %v, want %v", s.method, s.sub, got, s.want)
				}
				if bumped := revision() > before; bumped != s.bumps {
					t.Errorf("%s %s: revision_number bumped %v, want %v", s.method, s.sub, bumped, s.bumps)
				}
			}
			h.do("PUT", path+"/tags", map[string]any{"tags": []string{"shown"}})
			r := h.do("GET", path, nil)
			for _, v := range r.body {
				if tags := v.(map[string]any)["tags"].([]any); len(tags) != 1 || tags[0] != "shown" {
					t.Errorf("the resource's body has tags %v", tags)
				}
			}
		})
	}
}

// TestTagRefusals: Neutron's validate_tags and validate_tag.
func TestTagRefusals(t *testing.T) {
	h := newHarness(t)
	path := "/v2.0/networks/" + h.create("networks", "network", map[string]any{})["id"].(string)
	before := h.revision()
	for _, c := range []struct {
		method, sub string
		body        any
		status      int
		msg         string
	}{
		{"PUT", "/tags", map[string]any{"tag": []string{"x"}}, 400, "Invalid input for operation: Invalid tags body."},
		{"PUT", "/tags", map[string]any{"tags": "x"}, 400, `Invalid input for operation: '"x"' is not a list.`},
		{"PUT", "/tags", map[string]any{"tags": []any{1}}, 400, "Invalid input for operation: '1' is not a valid string."},
		{"PUT", "/tags", map[string]any{"tags": []string{"a", "a"}}, 400, "Invalid input for operation: Duplicate items in the list: 'a'."},
		{"PUT", "/tags", map[string]any{"tags": []string{strings.Repeat("x", 256)}}, 400,
			"Invalid input for operation: '" + strings.Repeat("x", 256) + "' exceeds maximum length of 255."},
		{"PUT", "/tags/" + strings.Repeat("x", 256), nil, 400,
			"Invalid input for operation: '" + strings.Repeat("x", 256) + "' exceeds maximum length of 255."},
		{"DELETE", "/tags/absent", nil, 404, "Tag absent could not be found."},
		{"PUT", "/tags/x", nil, 404, ""}, // below a missing network
	} {
		p := path
		if c.msg == "" {
			p = "/v2.0/networks/00000000-0000-0000-0000-000000000000"
		}
		r := h.do(c.method, p+c.sub, c.body)
		if _, msg := neutronError(r); r.status != c.status || c.msg != "" && msg != c.msg {
			t.Errorf("%s %s %v: %d %q, want %d %q", c.method, c.sub, c.body, r.status, msg, c.status, c.msg)
		}
	}
	if after := h.revision(); after != before {
		t.Errorf("refusals changed the store (revision %d → %d)", before, after)
	}
}

// TestTagFilters: neutron-tempest-plugin's TagFilterTestJSON.
func TestTagFilters(t *testing.T) {
	h := newHarness(t)
	var ids []string
	for _, tags := range [][]string{{"red"}, {"red", "blue"}, {"red", "blue", "green"}, {"green"}, {}} {
		id := h.create("networks", "network", map[string]any{})["id"].(string)
		h.do("PUT", "/v2.0/networks/"+id+"/tags", map[string]any{"tags": tags})
		ids = append(ids, id)
	}
	for _, c := range []struct {
		query string
		want  []int
	}{
		{"tags=red", []int{0, 1, 2}},
		{"tags=red,blue", []int{1, 2}},
		{"tags=red&tags=blue", []int{1, 2}},
		{"tags-any=blue", []int{1, 2}},
		{"tags-any=red,blue", []int{0, 1, 2}},
		{"not-tags=red", []int{3, 4}},
		{"not-tags=red,blue", []int{0, 3, 4}},
		{"not-tags-any=blue", []int{0, 3, 4}},
		{"not-tags-any=red,blue", []int{3, 4}},
		{"tags=green&not-tags=red", []int{3}},
	} {
		r := h.do("GET", "/v2.0/networks?"+c.query, nil)
		if r.status != 200 {
			t.Errorf("%s: %d %v", c.query, r.status, r.body)
			continue
		}
		var got, want []string
		for _, n := range r.body["networks"].([]any) {
			got = append(got, n.(map[string]any)["id"].(string))
		}
		for _, i := range c.want {
			want = append(want, ids[i])
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s: %v, want networks %v", c.query, got, c.want)
		}
	}
	if r := h.do("GET", "/v2.0/instances?tags-any=x", nil); r.status != 400 {
		t.Errorf("a tag filter on a collection without tags: %d, want 400", r.status)
	}
}

// TestPortTagsOnCreate: tag-ports-during-bulk-creation, ports take tags in
// their create body, one by one or in bulk.
func TestPortTagsOnCreate(t *testing.T) {
	h := newHarness(t)
	if r := h.do("GET", "/v2.0/extensions/tag-ports-during-bulk-creation", nil); r.status != 200 {
		t.Errorf("extension tag-ports-during-bulk-creation: %d", r.status)
	}
	net := h.create("networks", "network", map[string]any{})["id"]
	p := h.create("ports", "port", map[string]any{"network_id": net, "tags": []string{"a", "b"}})
	if got := h.tags("/v2.0/ports/" + p["id"].(string)); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("tags of a port created with them: %v", got)
	}
	r := h.do("POST", "/v2.0/ports", map[string]any{"ports": []any{
		map[string]any{"network_id": net, "tags": []string{"x"}}, map[string]any{"network_id": net}}})
	if r.status != 201 {
		t.Fatalf("bulk: %d %v", r.status, r.body)
	}
	for i, want := range [][]any{{"x"}, {}} {
		if got := r.body["ports"].([]any)[i].(map[string]any)["tags"].([]any); !slices.Equal(got, want) {
			t.Errorf("bulk port %d: tags %v, want %v", i, got, want)
		}
	}
	before := h.revision()
	r = h.do("POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": net, "tags": []string{"a", "a"}}})
	if _, msg := neutronError(r); r.status != 400 || !strings.Contains(msg, "tags") {
		t.Errorf("duplicate tags: %d %q", r.status, msg)
	}
	if h.revision() != before {
		t.Errorf("a refused port changed the store")
	}
}

// TestTagWhoMay: Neutron (Zed) enforces no policy on tags; whoever sees a
// resource may tag it — a member an admin's shared QoS policy
// (neutron-tempest-plugin's TagQosPolicyTestJSON) or another project's
// shared network. One it cannot see answers TagResourceNotFound, and a
// reader (nsnet's read-only role) reads tags but does not change them.
func TestTagWhoMay(t *testing.T) {
	h := newTenants(t, nil)
	shared := "/v2.0/policies/" + h.create(admin, "qos/policies", "policy", map[string]any{"name": "s", "shared": true})
	private := h.create(admin, "qos/policies", "policy", map[string]any{"name": "p"})
	net := "/v2.0/networks/" + h.create(admin, "networks", "network", map[string]any{"name": "n", "shared": true})
	own := "/v2.0/networks/" + h.create(owner, "networks", "network", map[string]any{"name": "o"})
	for _, c := range []struct {
		name, who, method, path string
		body                    any
		status                  int
		typ, msg                string
	}{
		{"member replaces a shared policy's tags", other, "PUT", shared + "/tags", map[string]any{"tags": []string{"red", "blue"}}, 200, "", ""},
		{"member adds one", owner, "PUT", shared + "/tags/green", nil, 201, "", ""},
		{"member reads one", other, "GET", shared + "/tags/green", nil, 204, "", ""},
		{"member removes one", other, "DELETE", shared + "/tags/red", nil, 204, "", ""},
		{"member tags a shared network", owner, "PUT", net + "/tags/mine", nil, 201, "", ""},
		{"reader reads", reader, "GET", shared + "/tags", nil, 200, "", ""},
		{"reader may not tag", reader, "PUT", shared + "/tags/x", nil, 403, "PolicyNotAuthorized", ""},
		{"reader may not tag its own project's network", reader, "PUT", own + "/tags/x", nil, 403, "PolicyNotAuthorized", ""},
		{"another project's network", other, "PUT", own + "/tags/x", nil, 404, "TagResourceNotFound",
			"Resource networks " + own[len("/v2.0/networks/"):] + " could not be found."},
		{"a policy the member cannot see", owner, "GET", "/v2.0/policies/" + private + "/tags", nil, 404, "TagResourceNotFound",
			"Resource policies " + private + " could not be found."},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := h.as(c.who, c.method, c.path, c.body)
			if typ, msg := neutronError(r); r.status != c.status || typ != c.typ || c.msg != "" && msg != c.msg {
				t.Errorf("%d %s %q, want %d %s %q", r.status, typ, msg, c.status, c.typ, c.msg)
			}
		})
	}
	r := h.as(admin, "GET", "/v2.0/qos/policies?tags=blue,green", nil)
	list, _ := r.body["policies"].([]any)
	if len(list) != 1 || "/v2.0/policies/"+list[0].(map[string]any)["id"].(string) != shared {
		t.Errorf("the admin's view of the members' tags: %d %v", r.status, r.body)
	}
	if got := h.as(admin, "GET", own+"/tags", nil).body["tags"].([]any); len(got) != 0 {
		t.Errorf("refused tags were written: %v", got)
	}
}
