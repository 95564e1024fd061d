package api_test

import (
	"testing"

	"github.com/nsnet/nsnet/internal/model"
)

// TestSharedSecurityGroup is rbac-security-groups as Neutron has it (and
// neutron-tempest-plugin's RbacSharedSecurityGroupTest checks): an admin's
// group shared with alpha is alpha's to see and to put on its ports, not to
// change; beta sees nothing; a policy alpha's ports depend on stays.
func TestSharedSecurityGroup(t *testing.T) {
	h := newTenants(t, nil)
	sg := h.create(admin, "security-groups", "security_group", map[string]any{"name": "shared-web"})
	h.create(admin, "security-group-rules", "security_group_rule", map[string]any{
		"security_group_id": sg, "direction": "ingress", "protocol": "tcp", "port_range_min": 80, "port_range_max": 80})
	net := h.create(owner, "networks", "network", map[string]any{"name": "a"})
	h.create(owner, "subnets", "subnet", map[string]any{"network_id": net, "cidr": "10.0.0.0/24"})
	portWith := func(who string) response {
		return h.as(who, "POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": net, "security_groups": []string{sg}}})
	}
	policy := func(who, target string) response {
		return h.as(who, "POST", "/v2.0/rbac-policies", map[string]any{"rbac_policy": map[string]any{
			"object_type": "security_group", "object_id": sg, "action": "access_as_shared", "target_tenant": target}})
	}
	status := func(what string, r response, want int, wantType string) {
		t.Helper()
		if typ, msg := neutronError(r); r.status != want || wantType != "" && typ != wantType {
			t.Errorf("%s: %d %s %q, want %d %s", what, r.status, typ, msg, want, wantType)
		}
	}

	status("alpha sees the group before it is shared", h.as(owner, "GET", "/v2.0/security-groups/"+sg, nil), 404, "SecurityGroupNotFound")
	status("alpha's port with the group before it is shared", portWith(owner), 404, "SecurityGroupNotFound")

	created := policy(admin, "alpha")
	status("share with alpha", created, 201, "")
	var p struct {
		Policy model.RBACPolicy `json:"rbac_policy"`
	}
	decodeInto(t, created, &p)
	if want := (model.RBACPolicy{ID: p.Policy.ID, ObjectType: "security_group", ObjectID: sg, Action: "access_as_shared",
		TargetTenant: "alpha", ProjectID: "admin", TenantID: "admin"}); p.Policy != want {
		t.Errorf("policy = %+v, want %+v", p.Policy, want)
	}
	status("the same policy again", policy(admin, "alpha"), 409, "DuplicateRbacPolicy")

	var shown struct {
		Group model.SecurityGroup `json:"security_group"`
	}
	got := h.as(owner, "GET", "/v2.0/security-groups/"+sg, nil)
	status("alpha sees the shared group", got, 200, "")
	decodeInto(t, got, &shown)
	ingress := 0
	for _, r := range shown.Group.Rules {
		if r.Direction == "ingress" {
			ingress++
		}
	}
	if shown.Group.ProjectID != "admin" || !shown.Group.Shared || ingress != 1 {
		t.Errorf("shared group as alpha sees it: %+v", shown.Group)
	}
	decodeInto(t, h.as(admin, "GET", "/v2.0/security-groups/"+sg, nil), &shown)
	if shown.Group.Shared {
		t.Errorf("shared is true for its owner, which no policy targets")
	}
	var list struct {
		Groups []model.SecurityGroup `json:"security_groups"`
	}
	decodeInto(t, h.as(owner, "GET", "/v2.0/security-groups?name=shared-web", nil), &list)
	if len(list.Groups) != 1 || list.Groups[0].ID != sg {
		t.Errorf("alpha's list of shared-web: %+v", list.Groups)
	}
	status("beta sees it", h.as(other, "GET", "/v2.0/security-groups/"+sg, nil), 404, "SecurityGroupNotFound")
	status("beta's port with it", h.as(other, "POST", "/v2.0/ports", map[string]any{"port": map[string]any{
		"network_id": h.create(other, "networks", "network", map[string]any{"name": "b"}), "security_groups": []string{sg}}}), 404, "SecurityGroupNotFound")
	status("alpha renames it", h.as(owner, "PUT", "/v2.0/security-groups/"+sg, map[string]any{"security_group": map[string]any{"name": "x"}}), 403, "PolicyNotAuthorized")
	status("alpha deletes it", h.as(owner, "DELETE", "/v2.0/security-groups/"+sg, nil), 403, "PolicyNotAuthorized")
	status("alpha shares it on", policy(owner, "beta"), 400, "InvalidInput")
	if r := h.as(owner, "GET", "/v2.0/rbac-policies", nil); len(r.body["rbac_policies"].([]any)) != 0 {
		t.Errorf("alpha sees the policy that targets it: %v", r.body)
	}

	port := portWith(owner)
	status("alpha's port with the shared group", port, 201, "")
	portID := port.body["port"].(map[string]any)["id"].(string)

	status("delete the policy alpha's port needs", h.as(admin, "DELETE", "/v2.0/rbac-policies/"+p.Policy.ID, nil), 409, "RbacPolicyInUse")
	status("retarget it to beta", h.as(admin, "PUT", "/v2.0/rbac-policies/"+p.Policy.ID,
		map[string]any{"rbac_policy": map[string]any{"target_tenant": "beta"}}), 409, "RbacPolicyInUse")
	wild := policy(admin, "*")
	status("share with everyone", wild, 201, "")
	status("delete alpha's policy while * shares it", h.as(admin, "DELETE", "/v2.0/rbac-policies/"+p.Policy.ID, nil), 204, "")
	wildID := wild.body["rbac_policy"].(map[string]any)["id"].(string)
	status("delete * while alpha's port needs it", h.as(admin, "DELETE", "/v2.0/rbac-policies/"+wildID, nil), 409, "RbacPolicyInUse")
	status("delete alpha's port", h.as(owner, "DELETE", "/v2.0/ports/"+portID, nil), 204, "")
	status("retarget * to beta", h.as(admin, "PUT", "/v2.0/rbac-policies/"+wildID,
		map[string]any{"rbac_policy": map[string]any{"target_tenant": "beta"}}), 200, "")
	status("delete the group", h.as(admin, "DELETE", "/v2.0/security-groups/"+sg, nil), 204, "")
	status("its policy went with it", h.as(admin, "GET", "/v2.0/rbac-policies/"+wildID, nil), 404, "RbacPolicyNotFound")
}

func TestSecurityGroupPolicyRefusals(t *testing.T) {
	h := newTenants(t, nil)
	sg := h.create(owner, "security-groups", "security_group", map[string]any{"name": "web"})
	for _, tc := range []struct {
		name, who string
		body      map[string]any
		status    int
		typ       string
	}{
		{"access_as_external", owner, map[string]any{"object_type": "security_group", "object_id": sg, "action": "access_as_external", "target_tenant": "beta"}, 400, "InvalidActionForType"},
		{"an unknown object type", owner, map[string]any{"object_type": "bgpvpn", "object_id": sg, "action": "access_as_shared", "target_tenant": "beta"}, 400, "HTTPBadRequest"},
		{"no such group", owner, map[string]any{"object_type": "security_group", "object_id": "0b8c3b9e-9f4e-4c55-8d0e-6c1a1d2e3f40", "action": "access_as_shared", "target_tenant": "beta"}, 404, "SecurityGroupNotFound"},
		{"another project's group", other, map[string]any{"object_type": "security_group", "object_id": sg, "action": "access_as_shared", "target_tenant": "beta"}, 400, "InvalidInput"},
		{"a member sharing with everyone", owner, map[string]any{"object_type": "security_group", "object_id": sg, "action": "access_as_shared", "target_tenant": "*"}, 403, "PolicyNotAuthorized"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := h.as(tc.who, "POST", "/v2.0/rbac-policies", map[string]any{"rbac_policy": tc.body})
			if typ, msg := neutronError(r); r.status != tc.status || typ != tc.typ {
				t.Errorf("%d %s %q, want %d %s", r.status, typ, msg, tc.status, tc.typ)
			}
		})
	}
	if r := h.as(admin, "GET", "/v2.0/rbac-policies", nil); len(r.body["rbac_policies"].([]any)) != 0 {
		t.Errorf("refused policies left behind: %v", r.body)
	}
	// the owner shares its own group with beta.
	if r := h.as(owner, "POST", "/v2.0/rbac-policies", map[string]any{"rbac_policy": map[string]any{
		"object_type": "security_group", "object_id": sg, "action": "access_as_shared", "target_tenant": "beta"}}); r.status != 201 {
		t.Fatalf("owner shares: %d %v", r.status, r.body)
	}
	if r := h.as(other, "GET", "/v2.0/security-groups/"+sg, nil); r.status != 200 {
		t.Errorf("beta sees the group shared with it: %d", r.status)
	}
}

// TestSharedAddressGroup is rbac-address-group as Neutron has it (and
// neutron-tempest-plugin's RbacSharedAddressGroupTest checks): an admin's
// group shared with alpha is alpha's to see and to name in its rules, not
// to change (to alpha it does not exist for that, 404); beta sees nothing;
// a policy alpha's rules depend on stays; the group's policies go with it.
func TestSharedAddressGroup(t *testing.T) {
	h := newTenants(t, nil)
	ag := h.create(admin, "address-groups", "address_group", map[string]any{"name": "shared-ag", "addresses": []string{"10.9.0.0/24"}})
	sg := h.create(owner, "security-groups", "security_group", map[string]any{"name": "alpha-sg"})
	rule := func(who, group string) response {
		return h.as(who, "POST", "/v2.0/security-group-rules", map[string]any{"security_group_rule": map[string]any{
			"security_group_id": group, "direction": "ingress", "protocol": "tcp", "remote_address_group_id": ag}})
	}
	policy := func(who, target string) response {
		return h.as(who, "POST", "/v2.0/rbac-policies", map[string]any{"rbac_policy": map[string]any{
			"object_type": "address_group", "object_id": ag, "action": "access_as_shared", "target_tenant": target}})
	}
	status := func(what string, r response, want int, wantType string) {
		t.Helper()
		if typ, msg := neutronError(r); r.status != want || wantType != "" && typ != wantType {
			t.Errorf("%s: %d %s %q, want %d %s", what, r.status, typ, msg, want, wantType)
		}
	}

	status("alpha sees the group before it is shared", h.as(owner, "GET", "/v2.0/address-groups/"+ag, nil), 404, "AddressGroupNotFound")
	status("alpha's rule with the group before it is shared", rule(owner, sg), 404, "AddressGroupNotFound")

	created := policy(admin, "alpha")
	status("share with alpha", created, 201, "")
	var p struct {
		Policy model.RBACPolicy `json:"rbac_policy"`
	}
	decodeInto(t, created, &p)
	if want := (model.RBACPolicy{ID: p.Policy.ID, ObjectType: "address_group", ObjectID: ag, Action: "access_as_shared",
		TargetTenant: "alpha", ProjectID: "admin", TenantID: "admin"}); p.Policy != want {
		t.Errorf("policy = %+v, want %+v", p.Policy, want)
	}
	status("the same policy again", policy(admin, "alpha"), 409, "DuplicateRbacPolicy")
	status("an action address groups do not have", h.as(admin, "POST", "/v2.0/rbac-policies", map[string]any{"rbac_policy": map[string]any{
		"object_type": "address_group", "object_id": ag, "action": "access_as_external", "target_tenant": "beta"}}), 400, "InvalidActionForType")

	var shown struct {
		Group model.AddressGroup `json:"address_group"`
	}
	got := h.as(owner, "GET", "/v2.0/address-groups/"+ag, nil)
	status("alpha sees the shared group", got, 200, "")
	decodeInto(t, got, &shown)
	if shown.Group.ProjectID != "admin" || len(shown.Group.Addresses) != 1 || shown.Group.Addresses[0] != "10.9.0.0/24" {
		t.Errorf("shared group as alpha sees it: %+v", shown.Group)
	}
	var list struct {
		Groups []model.AddressGroup `json:"address_groups"`
	}
	decodeInto(t, h.as(owner, "GET", "/v2.0/address-groups?name=shared-ag", nil), &list)
	if len(list.Groups) != 1 || list.Groups[0].ID != ag {
		t.Errorf("alpha's list of shared-ag: %+v", list.Groups)
	}
	decodeInto(t, h.as(other, "GET", "/v2.0/address-groups", nil), &list)
	if len(list.Groups) != 0 {
		t.Errorf("beta's list of address groups: %+v", list.Groups)
	}
	status("beta sees it", h.as(other, "GET", "/v2.0/address-groups/"+ag, nil), 404, "AddressGroupNotFound")
	status("beta's rule with it", rule(other, h.create(other, "security-groups", "security_group", map[string]any{"name": "beta-sg"})), 404, "AddressGroupNotFound")
	status("alpha renames it", h.as(owner, "PUT", "/v2.0/address-groups/"+ag, map[string]any{"address_group": map[string]any{"name": "x"}}), 404, "AddressGroupNotFound")
	status("alpha adds addresses", h.as(owner, "PUT", "/v2.0/address-groups/"+ag+"/add_addresses", map[string]any{"addresses": []string{"10.8.0.0/24"}}), 404, "AddressGroupNotFound")
	status("alpha deletes it", h.as(owner, "DELETE", "/v2.0/address-groups/"+ag, nil), 404, "AddressGroupNotFound")
	status("alpha shares it on", policy(owner, "beta"), 400, "InvalidInput")

	r := rule(owner, sg)
	status("alpha's rule with the shared group", r, 201, "")
	var created2 struct {
		Rule model.SecurityGroupRule `json:"security_group_rule"`
	}
	decodeInto(t, r, &created2)
	status("unsharing while alpha's rule names it", h.as(admin, "DELETE", "/v2.0/rbac-policies/"+p.Policy.ID, nil), 409, "RbacPolicyInUse")
	status("retargeting while alpha's rule names it", h.as(admin, "PUT", "/v2.0/rbac-policies/"+p.Policy.ID,
		map[string]any{"rbac_policy": map[string]any{"target_tenant": "beta"}}), 409, "RbacPolicyInUse")
	status("alpha deletes its rule", h.as(owner, "DELETE", "/v2.0/security-group-rules/"+created2.Rule.ID, nil), 204, "")
	status("retarget to beta", h.as(admin, "PUT", "/v2.0/rbac-policies/"+p.Policy.ID,
		map[string]any{"rbac_policy": map[string]any{"target_tenant": "beta"}}), 200, "")
	status("alpha sees it after the retarget", h.as(owner, "GET", "/v2.0/address-groups/"+ag, nil), 404, "AddressGroupNotFound")
	status("beta sees it after the retarget", h.as(other, "GET", "/v2.0/address-groups/"+ag, nil), 200, "")

	status("the admin deletes the group", h.as(admin, "DELETE", "/v2.0/address-groups/"+ag, nil), 204, "")
	status("its policy after it", h.as(admin, "GET", "/v2.0/rbac-policies/"+p.Policy.ID, nil), 404, "RbacPolicyNotFound")
}
