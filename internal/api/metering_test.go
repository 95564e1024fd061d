package api_test

import (
	"net/http"
	"strings"
	"testing"
)

// TestMeteringLabelsAndRules follows Neutron's metering API: labels and
// rules with their defaults, filters by id (a malformed one matches
// nothing), prefixes normalized, the rule deleted with its label.
func TestMeteringLabelsAndRules(t *testing.T) {
	h := newHarness(t)
	label := h.create("metering/metering-labels", "metering_label", map[string]any{"name": strings.Repeat("x", 255), "description": "d"})
	if label["shared"] != false || label["tenant_id"] != label["project_id"] || label["description"] != "d" {
		t.Fatalf("label: %v", label)
	}
	id := label["id"].(string)
	rule := h.create("metering/metering-label-rules", "metering_label_rule", map[string]any{
		"metering_label_id": id, "direction": "ingress", "remote_ip_prefix": "10.0.0.7/24"})
	if rule["remote_ip_prefix"] != "10.0.0.0/24" || rule["excluded"] != false || rule["source_ip_prefix"] != nil || rule["metering_label_id"] != id {
		t.Fatalf("rule: %v", rule)
	}
	v6 := h.create("metering/metering-label-rules", "metering_label_rule", map[string]any{
		"metering_label_id": id, "direction": "egress", "source_ip_prefix": "fd02::/64", "destination_ip_prefix": "fd03::1/64", "excluded": true})
	if v6["destination_ip_prefix"] != "fd03::/64" || v6["excluded"] != true || v6["remote_ip_prefix"] != nil {
		t.Fatalf("v6 rule: %v", v6)
	}
	for path, want := range map[string]int{
		"/v2.0/metering/metering-labels?id=33":                        0,
		"/v2.0/metering/metering-labels?id=" + id:                     1,
		"/v2.0/metering/metering-label-rules?id=33":                   0,
		"/v2.0/metering/metering-label-rules?metering_label_id=" + id: 2,
		"/v2.0/metering/metering-label-rules?direction=egress":        1,
	} {
		r := h.do("GET", path, nil)
		coll := "metering_labels"
		if strings.Contains(path, "rules") {
			coll = "metering_label_rules"
		}
		if items, _ := r.body[coll].([]any); r.status != 200 || len(items) != want {
			t.Errorf("GET %s: %d %v, want %d items", path, r.status, r.body, want)
		}
	}

	h.checkRefusals(t, []refusal{
		{"name too long", "POST", "/v2.0/metering/metering-labels", map[string]any{"metering_label": map[string]any{"name": strings.Repeat("x", 256)}},
			400, "HTTPBadRequest", "exceeds maximum length of 255"},
		{"label not updatable", "PUT", "/v2.0/metering/metering-labels/" + id, map[string]any{"metering_label": map[string]any{"name": "n"}},
			400, "HTTPBadRequest", "Cannot update read-only attribute name"},
		{"no direction", "POST", "/v2.0/metering/metering-label-rules", map[string]any{"metering_label_rule": map[string]any{
			"metering_label_id": id, "remote_ip_prefix": "10.9.0.0/24"}}, 400, "HTTPBadRequest", "Required attribute 'direction'"},
		{"bad direction", "POST", "/v2.0/metering/metering-label-rules", map[string]any{"metering_label_rule": map[string]any{
			"metering_label_id": id, "direction": "up", "remote_ip_prefix": "10.9.0.0/24"}}, 400, "HTTPBadRequest", "direction"},
		{"no prefix", "POST", "/v2.0/metering/metering-label-rules", map[string]any{"metering_label_rule": map[string]any{
			"metering_label_id": id, "direction": "ingress"}}, 400, "Invalid", "You must define at least one"},
		{"remote with source", "POST", "/v2.0/metering/metering-label-rules", map[string]any{"metering_label_rule": map[string]any{
			"metering_label_id": id, "direction": "ingress", "remote_ip_prefix": "10.9.0.0/24", "source_ip_prefix": "10.8.0.0/24"}},
			400, "Invalid", "Cannot use 'remote-ip-prefix' in conjunction"},
		{"bad prefix", "POST", "/v2.0/metering/metering-label-rules", map[string]any{"metering_label_rule": map[string]any{
			"metering_label_id": id, "direction": "ingress", "remote_ip_prefix": "10.9.0.0/33"}}, 400, "HTTPBadRequest", "remote_ip_prefix"},
		{"overlap", "POST", "/v2.0/metering/metering-label-rules", map[string]any{"metering_label_rule": map[string]any{
			"metering_label_id": id, "direction": "ingress", "remote_ip_prefix": "10.0.0.128/25"}},
			409, "MeteringLabelRuleOverlaps", "Metering label rule with remote_ip_prefix '10.0.0.128/25' overlaps another."},
		{"no label", "POST", "/v2.0/metering/metering-label-rules", map[string]any{"metering_label_rule": map[string]any{
			"metering_label_id": "3b4b1c3e-0000-4000-8000-000000000000", "direction": "ingress", "remote_ip_prefix": "10.9.0.0/24"}},
			404, "MeteringLabelNotFound", "Metering label '3b4b1c3e-0000-4000-8000-000000000000' does not exist."},
		{"rule direction not updatable", "PUT", "/v2.0/metering/metering-label-rules/" + rule["id"].(string), map[string]any{"metering_label_rule": map[string]any{
			"direction": "egress"}}, 400, "HTTPBadRequest", "Cannot update read-only attribute direction"},
		{"source on a remote rule", "PUT", "/v2.0/metering/metering-label-rules/" + rule["id"].(string), map[string]any{"metering_label_rule": map[string]any{
			"source_ip_prefix": "10.7.0.0/16"}}, 400, "Invalid", "Cannot use 'remote-ip-prefix' in conjunction"},
		{"no rule", "GET", "/v2.0/metering/metering-label-rules/nope", nil, 404, "MeteringLabelRuleNotFound", "Metering label rule 'nope' does not exist."},
	})
	if r := h.do("PUT", "/v2.0/metering/metering-labels/"+id, map[string]any{"metering_label": map[string]any{}}); r.status != 200 ||
		r.body["metering_label"].(map[string]any)["id"] != id {
		t.Errorf("empty update: %d %v", r.status, r.body)
	}
	if r := h.do("PUT", "/v2.0/metering/metering-label-rules/"+v6["id"].(string), map[string]any{"metering_label_rule": map[string]any{"source_ip_prefix": "fd04::/48"}}); r.status != 200 ||
		r.body["metering_label_rule"].(map[string]any)["source_ip_prefix"] != "fd04::/48" {
		t.Errorf("update of a rule's source: %d %v", r.status, r.body)
	}
	// The same prefix excluded, or in the other direction, is no overlap.
	h.create("metering/metering-label-rules", "metering_label_rule", map[string]any{
		"metering_label_id": id, "direction": "ingress", "remote_ip_prefix": "10.0.0.128/25", "excluded": true})

	if r := h.do("DELETE", "/v2.0/metering/metering-labels/"+id, nil); r.status != http.StatusNoContent {
		t.Fatalf("delete label: %d %v", r.status, r.body)
	}
	if r := h.do("GET", "/v2.0/metering/metering-label-rules", nil); len(r.body["metering_label_rules"].([]any)) != 0 {
		t.Errorf("rules outlive their label: %v", r.body)
	}
}

// TestMeteringIsAdminOnly: Neutron's policy keeps labels and rules to
// admins; a member cannot create one (403), see one (404) or list any.
func TestMeteringIsAdminOnly(t *testing.T) {
	h := newTenants(t, nil)
	id := h.create(admin, "metering/metering-labels", "metering_label", map[string]any{"name": "l"})
	if r := h.as(owner, "POST", "/v2.0/metering/metering-labels", map[string]any{"metering_label": map[string]any{"name": "m"}}); r.status != 403 {
		t.Errorf("member creates a label: %d %v", r.status, r.body)
	}
	if r := h.as(owner, "GET", "/v2.0/metering/metering-labels/"+id, nil); r.status != 404 {
		t.Errorf("member shows a label: %d %v", r.status, r.body)
	}
	if r := h.as(owner, "GET", "/v2.0/metering/metering-labels", nil); r.status != 200 || len(r.body["metering_labels"].([]any)) != 0 {
		t.Errorf("member lists labels: %d %v", r.status, r.body)
	}
	if r := h.as(owner, "DELETE", "/v2.0/metering/metering-labels/"+id, nil); r.status != 404 {
		t.Errorf("member deletes a label: %d %v", r.status, r.body)
	}
}
