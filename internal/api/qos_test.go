package api_test

import (
	"testing"

	"github.com/nsnet/nsnet/internal/model"
)

func TestQosPolicyAndRules(t *testing.T) {
	h := newTenants(t, nil)
	pol := h.as(admin, "POST", "/v2.0/qos/policies", map[string]any{"policy": map[string]any{
		"name": "gold", "description": "d", "project_id": "alpha"}})
	if pol.status != 201 {
		t.Fatalf("create policy: %d %v", pol.status, pol.body)
	}
	p := as[model.QosPolicy](t, pol.body["policy"].(map[string]any))
	if p.Shared || p.IsDefault || len(p.Rules) != 0 || p.ProjectID != "alpha" || p.TenantID != "alpha" {
		t.Fatalf("policy defaults: %+v", p)
	}
	base := "/v2.0/qos/policies/" + p.ID
	bw := h.as(admin, "POST", base+"/bandwidth_limit_rules", map[string]any{"bandwidth_limit_rule": map[string]any{"max_kbps": 1000}})
	if bw.status != 201 {
		t.Fatalf("create rule: %d %v", bw.status, bw.body)
	}
	raw := bw.body["bandwidth_limit_rule"].(map[string]any)
	rule := as[model.BandwidthLimitRule](t, raw)
	if rule.MaxKbps != 1000 || rule.MaxBurstKbps != 0 || rule.Direction != "egress" || len(raw) != 4 {
		t.Errorf("rule, with its defaults and only Neutron's four attributes: %v", raw)
	}
	cases := []struct {
		name, who, method, path string
		body                    any
		status                  int
		typ                     string
	}{
		{"second egress limit", admin, "POST", base + "/bandwidth_limit_rules",
			map[string]any{"bandwidth_limit_rule": map[string]any{"max_kbps": 5}}, 409, "QoSRulesConflict"},
		{"bad direction", admin, "POST", base + "/bandwidth_limit_rules",
			map[string]any{"bandwidth_limit_rule": map[string]any{"max_kbps": 5, "direction": "up"}}, 400, "HTTPBadRequest"},
		{"bad dscp", admin, "POST", base + "/dscp_marking_rules",
			map[string]any{"dscp_marking_rule": map[string]any{"dscp_mark": 58}}, 400, "HTTPBadRequest"},
		{"member creates a policy", owner, "POST", "/v2.0/qos/policies",
			map[string]any{"policy": map[string]any{"name": "x"}}, 403, "PolicyNotAuthorized"},
		{"member updates its own policy", owner, "PUT", base, map[string]any{"policy": map[string]any{"name": "x"}}, 403, "PolicyNotAuthorized"},
		{"other project sees nothing", other, "GET", base, nil, 404, "QosPolicyNotFound"},
		{"member shows a rule type", owner, "GET", "/v2.0/qos/rule-types/bandwidth_limit", nil, 403, "PolicyNotAuthorized"},
		{"network names a policy it cannot see", other, "POST", "/v2.0/networks",
			map[string]any{"network": map[string]any{"name": "n", "qos_policy_id": p.ID}}, 404, "QosPolicyNotFound"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := h.as(tc.who, tc.method, tc.path, tc.body)
			if typ, _ := neutronError(r); r.status != tc.status || typ != tc.typ {
				t.Errorf("%d %v, want %d %s", r.status, r.body, tc.status, tc.typ)
			}
		})
	}
	h.as(admin, "POST", base+"/bandwidth_limit_rules", map[string]any{"bandwidth_limit_rule": map[string]any{"max_kbps": 2000, "direction": "ingress"}})
	h.as(admin, "POST", base+"/dscp_marking_rules", map[string]any{"dscp_marking_rule": map[string]any{"dscp_mark": 26}})
	got := as[model.QosPolicy](t, h.as(owner, "GET", base, nil).body["policy"].(map[string]any))
	if len(got.Rules) != 3 || got.Rules[0].Type != model.QosRuleBandwidthLimit || got.Rules[0].QosPolicyID != p.ID {
		t.Errorf("rules %+v, want 3 with their type and policy", got.Rules)
	}

	// A network in use keeps its policy; the port inherits nothing in the
	// API but the delete is refused for both.
	net := h.create(owner, "networks", "network", map[string]any{"name": "n", "qos_policy_id": p.ID})
	if r := h.as(admin, "DELETE", base, nil); r.status != 409 {
		t.Errorf("delete in use: %d %v", r.status, r.body)
	}
	h.as(owner, "PUT", "/v2.0/networks/"+net, map[string]any{"network": map[string]any{"qos_policy_id": nil}})
	if r := h.as(admin, "DELETE", base, nil); r.status != 204 {
		t.Errorf("delete unused: %d %v", r.status, r.body)
	}
}

func TestQosDefaultPolicyAndSharing(t *testing.T) {
	h := newTenants(t, nil)
	def := h.create(admin, "qos/policies", "policy", map[string]any{"name": "d", "project_id": "alpha", "is_default": true})
	if r := h.as(admin, "POST", "/v2.0/qos/policies", map[string]any{"policy": map[string]any{
		"name": "d2", "project_id": "alpha", "is_default": true}}); r.status != 409 {
		t.Errorf("second default: %d %v", r.status, r.body)
	}
	net := h.as(owner, "GET", "/v2.0/networks/"+h.create(owner, "networks", "network", map[string]any{"name": "n"}), nil)
	if got := net.body["network"].(map[string]any)["qos_policy_id"]; got != def {
		t.Errorf("network qos_policy_id %v, want the default %s", got, def)
	}

	// Shared by RBAC with beta, which uses it; the share cannot go.
	shared := h.create(admin, "qos/policies", "policy", map[string]any{"name": "s"})
	rbac := h.create(admin, "rbac-policies", "rbac_policy", map[string]any{
		"object_type": "qos_policy", "object_id": shared, "action": "access_as_shared", "target_tenant": "beta"})
	h.create(other, "networks", "network", map[string]any{"name": "b", "qos_policy_id": shared})
	if r := h.as(admin, "DELETE", "/v2.0/rbac-policies/"+rbac, nil); r.status != 409 {
		t.Errorf("delete used share: %d %v", r.status, r.body)
	}
}

// TestQosShareInUse: Neutron's rules for taking a QoS policy's share away
// while networks use it — the owner's own network counts, and changing a
// share's target is checked as deleting it.
func TestQosShareInUse(t *testing.T) {
	h := newTenants(t, nil)
	pol := h.create(admin, "qos/policies", "policy", map[string]any{"name": "p", "shared": true})
	net := h.create(admin, "networks", "network", map[string]any{"name": "n", "qos_policy_id": pol})
	if r := h.as(admin, "PUT", "/v2.0/qos/policies/"+pol, map[string]any{"policy": map[string]any{"shared": false}}); r.status != 409 {
		t.Errorf("unshare with the owner's network on it: %d %v", r.status, r.body)
	}
	h.as(admin, "DELETE", "/v2.0/networks/"+net, nil)
	if r := h.as(admin, "PUT", "/v2.0/qos/policies/"+pol, map[string]any{"policy": map[string]any{"shared": false}}); r.status != 200 {
		t.Errorf("unshare unused: %d %v", r.status, r.body)
	}

	wild := h.create(admin, "rbac-policies", "rbac_policy", map[string]any{
		"object_type": "qos_policy", "object_id": pol, "action": "access_as_shared", "target_tenant": "*"})
	h.create(other, "networks", "network", map[string]any{"name": "b", "qos_policy_id": pol})
	if r := h.as(admin, "PUT", "/v2.0/rbac-policies/"+wild, map[string]any{"rbac_policy": map[string]any{"target_tenant": "beta"}}); r.status != 409 {
		t.Errorf("retarget a share in use: %d %v", r.status, r.body)
	}
}

// TestQosPolicyTags: Neutron serves a QoS policy's tags at
// /v2.0/policies/{id}/tags, and its lists filter by them.
func TestQosPolicyTags(t *testing.T) {
	h := newTenants(t, nil)
	pol := h.create(admin, "qos/policies", "policy", map[string]any{"name": "p"})
	h.create(admin, "qos/policies", "policy", map[string]any{"name": "q"})
	if r := h.as(admin, "PUT", "/v2.0/policies/"+pol+"/tags", map[string]any{"tags": []string{"red", "blue"}}); r.status != 200 {
		t.Fatalf("put tags: %d %v", r.status, r.body)
	}
	r := h.as(admin, "GET", "/v2.0/qos/policies?tags=red", nil)
	list, _ := r.body["policies"].([]any)
	if r.status != 200 || len(list) != 1 || list[0].(map[string]any)["id"] != pol {
		t.Errorf("filter by tag: %d %v", r.status, r.body)
	}
}

// TestQosMinimumBandwidthRules: Neutron serves minimum_bandwidth rules
// below every policy whatever its drivers (QosMinimumBandwidthRuleNegativeTestJSON,
// gophercloud's TestMinimumBandwidthRulesCRUD), egress only without
// qos-bw-minimum-ingress. nsnet enforces none, so — as Neutron refuses a
// rule no driver of the port supports — the rule type is not listed and
// no network or port may have such a rule in effect.
func TestQosMinimumBandwidthRules(t *testing.T) {
	h := newTenants(t, nil)
	pol := h.create(admin, "qos/policies", "policy", map[string]any{"name": "min", "shared": true})
	base := "/v2.0/qos/policies/" + pol
	r := h.as(admin, "POST", base+"/minimum_bandwidth_rules", map[string]any{"minimum_bandwidth_rule": map[string]any{"min_kbps": 1000}})
	if r.status != 201 {
		t.Fatalf("create: %d %v", r.status, r.body)
	}
	raw := r.body["minimum_bandwidth_rule"].(map[string]any)
	rule := as[model.MinimumBandwidthRule](t, raw)
	if rule.MinKbps != 1000 || rule.Direction != "egress" || len(raw) != 3 {
		t.Errorf("rule, with its default direction and only Neutron's three attributes: %v", raw)
	}
	ruleURL := base + "/minimum_bandwidth_rules/" + rule.ID

	net := h.create(admin, "networks", "network", map[string]any{"name": "n"})
	limited := h.create(admin, "qos/policies", "policy", map[string]any{"name": "limited"})
	h.create(admin, "qos/policies/"+limited+"/bandwidth_limit_rules", "bandwidth_limit_rule", map[string]any{"max_kbps": 500})
	used := h.create(admin, "networks", "network", map[string]any{"name": "used", "qos_policy_id": limited})
	port := h.create(admin, "ports", "port", map[string]any{"network_id": used})
	bare := h.create(admin, "ports", "port", map[string]any{"network_id": net})

	for _, c := range []struct {
		name, who, method, path string
		body                    any
		status                  int
		typ, msg                string
	}{
		{"a second egress minimum", admin, "POST", base + "/minimum_bandwidth_rules",
			map[string]any{"minimum_bandwidth_rule": map[string]any{"min_kbps": 5}}, 409, "QoSRulesConflict", ""},
		{"ingress without qos-bw-minimum-ingress", admin, "POST", base + "/minimum_bandwidth_rules",
			map[string]any{"minimum_bandwidth_rule": map[string]any{"min_kbps": 5, "direction": "ingress"}}, 400, "HTTPBadRequest", ""},
		{"no min_kbps", admin, "POST", base + "/minimum_bandwidth_rules",
			map[string]any{"minimum_bandwidth_rule": map[string]any{"direction": "egress"}}, 400, "HTTPBadRequest", ""},
		{"member", owner, "POST", base + "/minimum_bandwidth_rules",
			map[string]any{"minimum_bandwidth_rule": map[string]any{"min_kbps": 5}}, 403, "PolicyNotAuthorized", ""},
		{"update below a policy that does not exist", admin, "PUT", "/v2.0/qos/policies/00000000-0000-0000-0000-000000000000/minimum_bandwidth_rules/" + rule.ID,
			map[string]any{"minimum_bandwidth_rule": map[string]any{"min_kbps": 200}}, 404, "QosPolicyNotFound", ""},
		{"a limit below the minimum", admin, "POST", base + "/bandwidth_limit_rules",
			map[string]any{"bandwidth_limit_rule": map[string]any{"max_kbps": 999}}, 409, "QoSRuleParameterConflict",
			"Unable to add the rule with value 999 to the policy " + pol + " as the existing rule of type minimum_bandwidth has value 1000."},
		{"a minimum above the limit", admin, "POST", "/v2.0/qos/policies/" + limited + "/minimum_bandwidth_rules",
			map[string]any{"minimum_bandwidth_rule": map[string]any{"min_kbps": 501}}, 409, "QoSRuleParameterConflict", ""},
		{"a minimum on a policy a port has through its network", admin, "POST", "/v2.0/qos/policies/" + limited + "/minimum_bandwidth_rules",
			map[string]any{"minimum_bandwidth_rule": map[string]any{"min_kbps": 100}}, 409, "QosRuleNotSupported",
			"Rule minimum_bandwidth is not supported by port " + port},
		{"a network created with it", admin, "POST", "/v2.0/networks",
			map[string]any{"network": map[string]any{"name": "x", "qos_policy_id": pol}}, 409, "QosRuleNotSupportedByNetwork", ""},
		{"a network updated to it", owner, "PUT", "/v2.0/networks/" + net,
			map[string]any{"network": map[string]any{"qos_policy_id": pol}}, 404, "NetworkNotFound", ""},
		{"a network updated to it by its owner", admin, "PUT", "/v2.0/networks/" + net,
			map[string]any{"network": map[string]any{"qos_policy_id": pol}}, 409, "QosRuleNotSupportedByNetwork",
			"Rule minimum_bandwidth is not supported by network " + net},
		{"a port created with it", admin, "POST", "/v2.0/ports",
			map[string]any{"port": map[string]any{"network_id": net, "qos_policy_id": pol}}, 409, "QosRuleNotSupported", ""},
		{"a port updated to it", admin, "PUT", "/v2.0/ports/" + bare,
			map[string]any{"port": map[string]any{"qos_policy_id": pol}}, 409, "QosRuleNotSupported",
			"Rule minimum_bandwidth is not supported by port " + bare},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := h.as(c.who, c.method, c.path, c.body)
			if typ, msg := neutronError(r); r.status != c.status || typ != c.typ || c.msg != "" && msg != c.msg {
				t.Errorf("%d %s %q, want %d %s %q", r.status, typ, msg, c.status, c.typ, c.msg)
			}
		})
	}
	if rules := h.as(admin, "GET", "/v2.0/qos/policies/"+limited, nil).body["policy"].(map[string]any)["rules"].([]any); len(rules) != 1 {
		t.Errorf("refused rules were written: %v", rules)
	}
	for _, path := range []string{"/v2.0/networks/" + net, "/v2.0/ports/" + bare} {
		for _, v := range h.as(admin, "GET", path, nil).body {
			if q := v.(map[string]any)["qos_policy_id"]; q != nil {
				t.Errorf("%s: refused qos_policy_id %v was written", path, q)
			}
		}
	}

	// rule-types lists what nsnet enforces: not minimum_bandwidth.
	for _, rt := range h.as(admin, "GET", "/v2.0/qos/rule-types", nil).body["rule_types"].([]any) {
		if typ := rt.(map[string]any)["type"]; typ == model.QosRuleMinimumBandwidth {
			t.Errorf("rule-types lists %s", typ)
		}
	}
	if r := h.as(admin, "PUT", ruleURL, map[string]any{"minimum_bandwidth_rule": map[string]any{"min_kbps": 500}}); r.status != 200 ||
		r.body["minimum_bandwidth_rule"].(map[string]any)["min_kbps"] != 500.0 {
		t.Errorf("update: %d %v", r.status, r.body)
	}
	if got := h.as(admin, "GET", base+"/minimum_bandwidth_rules", nil).body["minimum_bandwidth_rules"].([]any); len(got) != 1 {
		t.Errorf("list: %v", got)
	}
	if r := h.as(admin, "DELETE", ruleURL, nil); r.status != 204 {
		t.Errorf("delete: %d %v", r.status, r.body)
	}
	// Without it the policy goes on a network.
	if r := h.as(admin, "PUT", "/v2.0/networks/"+net, map[string]any{"network": map[string]any{"qos_policy_id": pol}}); r.status != 200 {
		t.Errorf("network takes the policy without its minimum: %d %v", r.status, r.body)
	}
}
