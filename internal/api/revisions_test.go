package api_test

import (
	"fmt"
	"net/http"
	"testing"
)

func (h *harness) revisionOf(path string) float64 {
	h.t.Helper()
	r := h.do("GET", path, nil)
	for _, v := range r.body {
		if n, ok := v.(map[string]any)["revision_number"].(float64); ok {
			return n
		}
	}
	h.t.Fatalf("GET %s: no revision_number in %d %v", path, r.status, r.body)
	return 0
}

// TestChildChangesBumpParentRevision: a change that shows in a parent's
// body (its subnets, rules, interfaces, sharing) advances the parent's
// revision_number, as in neutron-tempest-plugin's test_revisions.
func TestChildChangesBumpParentRevision(t *testing.T) {
	h := newHarness(t)
	net := "/v2.0/networks/" + h.create("networks", "network", map[string]any{})["id"].(string)
	group := h.create("security-groups", "security_group", map[string]any{"name": "g"})["id"].(string)
	router := "/v2.0/routers/" + h.create("routers", "router", map[string]any{})["id"].(string)
	var subnet, rule, policy string
	netID := net[len("/v2.0/networks/"):]
	steps := []struct {
		name   string
		parent string
		change func()
	}{
		{"subnet created", net, func() {
			subnet = h.create("subnets", "subnet", map[string]any{"network_id": netID, "cidr": "10.0.0.0/24", "ip_version": 4})["id"].(string)
		}},
		{"subnet updated", net, func() { h.do("PUT", "/v2.0/subnets/"+subnet, map[string]any{"subnet": map[string]any{"name": "x"}}) }},
		{"rule added", "/v2.0/security-groups/" + group, func() {
			rule = h.rule(group, map[string]any{"direction": "ingress", "protocol": "tcp", "port_range_min": 60, "port_range_max": 70})["id"].(string)
		}},
		{"rule removed", "/v2.0/security-groups/" + group, func() { h.do("DELETE", "/v2.0/security-group-rules/"+rule, nil) }},
		{"interface added", router, func() { h.addInterface(router[len("/v2.0/routers/"):], map[string]any{"subnet_id": subnet}) }},
		{"interface removed", router, func() {
			h.do("PUT", router+"/remove_router_interface", map[string]any{"subnet_id": subnet})
		}},
		{"RBAC policy created", net, func() {
			policy = h.create("rbac-policies", "rbac_policy", map[string]any{"object_type": "network", "object_id": netID,
				"action": "access_as_shared", "target_tenant": "beta"})["id"].(string)
		}},
		{"RBAC policy updated", net, func() {
			h.do("PUT", "/v2.0/rbac-policies/"+policy, map[string]any{"rbac_policy": map[string]any{"target_tenant": "gamma"}})
		}},
		{"RBAC policy deleted", net, func() { h.do("DELETE", "/v2.0/rbac-policies/"+policy, nil) }},
		{"subnet deleted", net, func() { h.do("DELETE", "/v2.0/subnets/"+subnet, nil) }},
	}
	for _, s := range steps {
		before := h.revisionOf(s.parent)
		s.change()
		if after := h.revisionOf(s.parent); after <= before {
			t.Errorf("%s: parent's revision_number %v → %v, want it bumped", s.name, before, after)
		}
	}
}

func ifMatch(revision any) http.Header {
	return http.Header{"If-Match": {fmt.Sprintf("revision_number=%v", revision)}}
}

// TestIfMatchRevision: revision-if-match. A PUT or DELETE with a stale
// "If-Match: revision_number=N" answers 412 and changes nothing; with the
// current one it goes ahead.
func TestIfMatchRevision(t *testing.T) {
	h := newHarness(t)
	if r := h.do("GET", "/v2.0/extensions/revision-if-match", nil); r.status != 200 {
		t.Errorf("extension revision-if-match: %d", r.status)
	}
	net := h.create("networks", "network", map[string]any{})["id"].(string)
	subnet := h.create("subnets", "subnet", map[string]any{"network_id": net, "cidr": "10.0.0.0/24", "ip_version": 4})["id"].(string)
	items := map[string]string{
		"networks":        "/v2.0/networks/" + net,
		"subnets":         "/v2.0/subnets/" + subnet,
		"ports":           "/v2.0/ports/" + h.create("ports", "port", map[string]any{"network_id": net})["id"].(string),
		"routers":         "/v2.0/routers/" + h.create("routers", "router", map[string]any{})["id"].(string),
		"security_groups": "/v2.0/security-groups/" + h.create("security-groups", "security_group", map[string]any{"name": "g"})["id"].(string),
		"qos_policies":    "/v2.0/qos/policies/" + h.create("qos/policies", "policy", map[string]any{"name": "q"})["id"].(string),
		"subnetpools":     "/v2.0/subnetpools/" + h.create("subnetpools", "subnetpool", map[string]any{"name": "p", "prefixes": []string{"10.99.0.0/16"}})["id"].(string),
	}
	singular := map[string]string{"networks": "network", "subnets": "subnet", "ports": "port", "routers": "router", "security_groups": "security_group",
		"qos_policies": "policy", "subnetpools": "subnetpool"}
	for collection, path := range items {
		t.Run(collection, func(t *testing.T) {
			do := func(method string, revision any, body any) response {
				return h.doWith(method, path, body, ifMatch(revision))
			}
			body := map[string]any{singular[collection]: map[string]any{"description": "d"}}
			cur := h.revisionOf(path)
			if r := do("PUT", cur-1, body); r.status != 412 {
				t.Errorf("PUT with a stale revision: %d %v, want 412", r.status, r.body)
			}
			if now := h.revisionOf(path); now != cur {
				t.Errorf("a refused PUT changed the revision %v → %v", cur, now)
			}
			if r := do("PUT", "x", body); r.status != 400 {
				t.Errorf("PUT with a malformed revision: %d, want 400", r.status)
			}
			if r := do("PUT", cur, body); r.status != 200 {
				t.Errorf("PUT with the current revision: %d %v, want 200", r.status, r.body)
			}
			if r := do("DELETE", cur, nil); r.status != 412 {
				t.Errorf("DELETE with a stale revision: %d %v, want 412", r.status, r.body)
			}
		})
	}
	// Delete with the current revision, leaves first.
	for _, c := range []string{"ports", "subnets", "networks", "routers", "security_groups", "qos_policies", "subnetpools"} {
		path := items[c]
		if r := h.doWith("DELETE", path, nil, ifMatch(h.revisionOf(path))); r.status != 204 {
			t.Errorf("DELETE %s with the current revision: %d %v", c, r.status, r.body)
		}
	}
}
