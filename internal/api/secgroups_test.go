package api_test

import (
	"testing"
)

func (h *harness) rule(group string, attrs map[string]any) map[string]any {
	h.t.Helper()
	attrs["security_group_id"] = group
	return h.create("security-group-rules", "security_group_rule", attrs)
}

// TestSecurityGroupShapes: Neutron's shapes and defaults — a default group
// per project on first use with its four rules, two egress rules on a new
// group, and the default group on new ports.
func TestSecurityGroupShapes(t *testing.T) {
	h := newHarness(t)
	groups := h.do("GET", "/v2.0/security-groups", nil).body["security_groups"].([]any)
	if len(groups) != 1 {
		t.Fatalf("first list: %d groups, want the default one: %v", len(groups), groups)
	}
	def := groups[0].(map[string]any)
	if def["name"] != "default" || def["stateful"] != true || def["project_id"] != "admin" || def["description"] != "Default security group" {
		t.Errorf("default group = %v", def)
	}
	var ingressFromSelf, egress int
	for _, r := range def["security_group_rules"].([]any) {
		rule := r.(map[string]any)
		switch {
		case rule["direction"] == "ingress" && rule["remote_group_id"] == def["id"] && rule["remote_ip_prefix"] == nil:
			ingressFromSelf++
		case rule["direction"] == "egress" && rule["remote_group_id"] == nil && rule["protocol"] == nil:
			egress++
		}
		if rule["belongs_to_default_sg"] != true {
			t.Errorf("default group rule has belongs_to_default_sg %v", rule["belongs_to_default_sg"])
		}
	}
	if ingressFromSelf != 2 || egress != 2 {
		t.Errorf("default rules: %d ingress-from-self, %d egress; want 2 and 2", ingressFromSelf, egress)
	}

	web := h.create("security-groups", "security_group", map[string]any{"name": "web", "description": "front"})
	if rules := web["security_group_rules"].([]any); len(rules) != 2 {
		t.Errorf("new group has %d rules, want Neutron's 2 egress rules", len(rules))
	}
	r := h.rule(web["id"].(string), map[string]any{"direction": "ingress", "protocol": "tcp",
		"port_range_min": 22, "port_range_max": 22, "remote_ip_prefix": "10.9.8.7/24"})
	for k, v := range map[string]any{"ethertype": "IPv4", "protocol": "tcp", "port_range_min": 22.0, "port_range_max": 22.0,
		"remote_ip_prefix": "10.9.8.7/24", "normalized_cidr": "10.9.8.0/24", "remote_group_id": nil,
		"remote_address_group_id": nil, "project_id": "admin", "tenant_id": "admin", "description": ""} {
		if r[k] != v {
			t.Errorf("rule %s = %v, want %v", k, r[k], v)
		}
	}
	byNumber := h.rule(web["id"].(string), map[string]any{"direction": "ingress", "protocol": "132", "ethertype": "IPv6"})
	if byNumber["protocol"] != "132" || byNumber["ethertype"] != "IPv6" {
		t.Errorf("rule by protocol number = %v", byNumber)
	}
	// "icmp" on an IPv6 rule is Neutron's legacy name for ICMPv6.
	legacy := h.rule(web["id"].(string), map[string]any{"direction": "ingress", "protocol": "icmp", "ethertype": "IPv6"})
	if legacy["protocol"] != "ipv6-icmp" {
		t.Errorf("icmp on an IPv6 rule = %v, want ipv6-icmp", legacy["protocol"])
	}

	n := h.create("networks", "network", map[string]any{"name": "net"})
	h.create("subnets", "subnet", map[string]any{"network_id": n["id"], "cidr": "10.0.0.0/24"})
	p := h.create("ports", "port", map[string]any{"network_id": n["id"]})
	if sgs := p["security_groups"].([]any); len(sgs) != 1 || sgs[0] != def["id"] || p["port_security_enabled"] != true {
		t.Errorf("new port: security_groups %v, port_security_enabled %v; want the default group", sgs, p["port_security_enabled"])
	}
	p2 := h.create("ports", "port", map[string]any{"network_id": n["id"], "security_groups": []string{web["id"].(string)},
		"allowed_address_pairs": []map[string]any{{"ip_address": "10.0.0.100"}}})
	pairs := p2["allowed_address_pairs"].([]any)
	if len(pairs) != 1 || pairs[0].(map[string]any)["mac_address"] != p2["mac_address"] {
		t.Errorf("allowed_address_pairs = %v, want the port's MAC filled in", pairs)
	}
	off := h.do("PUT", "/v2.0/ports/"+p["id"].(string), map[string]any{"port": map[string]any{
		"security_groups": []string{}, "port_security_enabled": false}})
	if off.status != 200 || len(off.body["port"].(map[string]any)["security_groups"].([]any)) != 0 {
		t.Errorf("disabling port security with the groups removed: %d %v", off.status, off.body)
	}
	noSec := h.create("networks", "network", map[string]any{"name": "open", "port_security_enabled": false})
	h.create("subnets", "subnet", map[string]any{"network_id": noSec["id"], "cidr": "10.1.0.0/24"})
	if p := h.create("ports", "port", map[string]any{"network_id": noSec["id"]}); p["port_security_enabled"] != false || len(p["security_groups"].([]any)) != 0 {
		t.Errorf("port on a network without port security = %v", p)
	}
	if h.do("DELETE", "/v2.0/security-group-rules/"+r["id"].(string), nil).status != 204 {
		t.Error("deleting a rule did not answer 204")
	}
}

// TestSecurityGroupRefusals: bad rules and forbidden changes are refused
// with Neutron's errors and leave the store as it was.
func TestSecurityGroupRefusals(t *testing.T) {
	h := newHarness(t)
	web := h.create("security-groups", "security_group", map[string]any{"name": "web"})
	gid := web["id"].(string)
	ssh := h.rule(gid, map[string]any{"direction": "ingress", "protocol": "tcp", "port_range_min": 22, "port_range_max": 22})
	n := h.create("networks", "network", map[string]any{"name": "net"})
	h.create("subnets", "subnet", map[string]any{"network_id": n["id"], "cidr": "10.0.0.0/24"})
	p := h.create("ports", "port", map[string]any{"network_id": n["id"], "security_groups": []string{gid}})
	pid := p["id"].(string)
	var def string
	for _, g := range h.do("GET", "/v2.0/security-groups?name=default", nil).body["security_groups"].([]any) {
		def = g.(map[string]any)["id"].(string)
	}

	rule := func(attrs map[string]any) map[string]any {
		attrs["security_group_id"] = gid
		if _, ok := attrs["direction"]; !ok {
			attrs["direction"] = "ingress"
		}
		return map[string]any{"security_group_rule": attrs}
	}
	const rules = "/v2.0/security-group-rules"
	h.checkRefusals(t, []refusal{
		{"unknown protocol name", "POST", rules, rule(map[string]any{"protocol": "tcpx"}), 400, "SecurityGroupRuleInvalidProtocol", "tcpx not supported"},
		{"protocol number out of range", "POST", rules, rule(map[string]any{"protocol": "256"}), 400, "SecurityGroupRuleInvalidProtocol", "256"},
		{"bad direction", "POST", rules, rule(map[string]any{"direction": "sideways"}), 400, "HTTPBadRequest", "direction"},
		{"bad ethertype", "POST", rules, rule(map[string]any{"ethertype": "IPX"}), 400, "SecurityGroupRuleInvalidEtherType", "IPX"},
		{"min above max", "POST", rules, rule(map[string]any{"protocol": "tcp", "port_range_min": 90, "port_range_max": 80}), 400, "SecurityGroupInvalidPortRange", "port_range_min must be <= port_range_max"},
		{"ICMP by number on an IPv6 rule", "POST", rules, rule(map[string]any{"protocol": "1", "ethertype": "IPv6"}), 400, "SecurityGroupEthertypeConflictWithProtocol", "IPv6"},
		{"IPv6 extension header by name on an IPv4 rule", "POST", rules, rule(map[string]any{"protocol": "ipv6-frag"}), 400, "SecurityGroupEthertypeConflictWithProtocol", "Invalid ethertype IPv4 for protocol ipv6-frag"},
		{"IPv6 extension header by number on an IPv4 rule", "POST", rules, rule(map[string]any{"protocol": 43}), 400, "SecurityGroupEthertypeConflictWithProtocol", "IPv4"},
		{"ICMPv6 by number on an IPv4 rule", "POST", rules, rule(map[string]any{"protocol": "58"}), 400, "SecurityGroupEthertypeConflictWithProtocol", "IPv4"},
		{"max without min", "POST", rules, rule(map[string]any{"protocol": "tcp", "port_range_max": 6}), 400, "SecurityGroupInvalidPortRange", "port_range_min must be <= port_range_max"},
		{"min without max", "POST", rules, rule(map[string]any{"protocol": "tcp", "port_range_min": 6}), 400, "SecurityGroupInvalidPortRange", "port_range_min must be <= port_range_max"},
		{"bad min and no max", "POST", rules, rule(map[string]any{"protocol": "tcp", "port_range_min": -16}), 400, "SecurityGroupInvalidPortValue", "Invalid value for port -16"},
		{"port zero", "POST", rules, rule(map[string]any{"protocol": "udp", "port_range_min": 0, "port_range_max": 80}), 400, "SecurityGroupInvalidPortValue", "port 0"},
		{"port above 65535", "POST", rules, rule(map[string]any{"protocol": "tcp", "port_range_min": 1, "port_range_max": 65536}), 400, "SecurityGroupInvalidPortValue", "65536"},
		{"ports without a protocol", "POST", rules, rule(map[string]any{"port_range_min": 22, "port_range_max": 22}), 400, "SecurityGroupProtocolRequiredWithPorts", "protocol"},
		{"ports on GRE", "POST", rules, rule(map[string]any{"protocol": "gre", "port_range_min": 22, "port_range_max": 22}), 400, "SecurityGroupInvalidProtocolForPort", "TCP, UDP"},
		{"ICMP type out of range", "POST", rules, rule(map[string]any{"protocol": "icmp", "port_range_min": 300}), 400, "SecurityGroupInvalidIcmpValue", "300"},
		{"IPv6 prefix on an IPv4 rule", "POST", rules, rule(map[string]any{"remote_ip_prefix": "2001:db8::/64"}), 400, "SecurityGroupRuleParameterConflict", "Conflicting value ethertype IPv4"},
		{"IPv4 prefix on an IPv6 rule", "POST", rules, rule(map[string]any{"ethertype": "IPv6", "remote_ip_prefix": "10.0.0.0/8"}), 400, "SecurityGroupRuleParameterConflict", "IPv6"},
		{"bad prefix", "POST", rules, rule(map[string]any{"remote_ip_prefix": "10.0.0/33"}), 400, "HTTPBadRequest", "remote_ip_prefix"},
		{"remote group and prefix", "POST", rules, rule(map[string]any{"remote_group_id": gid, "remote_ip_prefix": "10.0.0.0/8"}), 400, "SecurityGroupRemoteGroupAndRemoteIpPrefix", "Only remote_ip_prefix or remote_group_id"},
		{"unknown remote group", "POST", rules, rule(map[string]any{"remote_group_id": "nope"}), 404, "SecurityGroupNotFound", "nope"},
		{"unknown address group", "POST", rules, rule(map[string]any{"remote_address_group_id": "x"}), 404, "AddressGroupNotFound", "Address group x could not be found."},
		{"duplicate rule", "POST", rules, rule(map[string]any{"protocol": "6", "port_range_min": 22, "port_range_max": 22}), 409, "SecurityGroupRuleExists", ssh["id"].(string)},
		{"unknown group", "POST", rules, map[string]any{"security_group_rule": map[string]any{"security_group_id": "nope", "direction": "ingress"}}, 404, "SecurityGroupNotFound", "nope"},
		{"rule update of protocol", "PUT", rules + "/" + ssh["id"].(string), map[string]any{"security_group_rule": map[string]any{"protocol": "udp"}}, 400, "HTTPBadRequest", "read-only attribute protocol"},
		{"group in use", "DELETE", "/v2.0/security-groups/" + gid, nil, 409, "SecurityGroupInUse", gid},
		{"second default group", "POST", "/v2.0/security-groups", map[string]any{"security_group": map[string]any{"name": "default"}}, 409, "SecurityGroupDefaultAlreadyExists", "already exists"},
		{"rename default group", "PUT", "/v2.0/security-groups/" + def, map[string]any{"security_group": map[string]any{"name": "x"}}, 409, "SecurityGroupCannotUpdateDefault", "not allowed"},
		{"stateful not a boolean", "POST", "/v2.0/security-groups", map[string]any{"security_group": map[string]any{"name": "x", "stateful": "maybe"}}, 400, "HTTPBadRequest", "stateful"},
		{"stateless, group in use", "PUT", "/v2.0/security-groups/" + gid, map[string]any{"security_group": map[string]any{"stateful": false}}, 409, "SecurityGroupInUse", gid},
		{"port security off with groups", "PUT", "/v2.0/ports/" + pid, map[string]any{"port": map[string]any{"port_security_enabled": false}}, 409, "PortSecurityPortHasSecurityGroup", "Cannot disable port security"},
		{"groups without port security", "POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": n["id"], "port_security_enabled": false, "security_groups": []string{gid}}}, 400, "PortSecurityAndIPRequiredForSecurityGroups", "Port security must be enabled"},
		{"address pairs without port security", "POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": n["id"], "port_security_enabled": false, "security_groups": []string{}, "allowed_address_pairs": []map[string]any{{"ip_address": "10.0.0.9"}}}}, 409, "AddressPairAndPortSecurityRequired", "allowed address pairs"},
		{"unknown group on a port", "PUT", "/v2.0/ports/" + pid, map[string]any{"port": map[string]any{"security_groups": []string{"nope"}}}, 404, "SecurityGroupNotFound", "nope"},
	})
}

// TestStatelessSecurityGroups: stateful-security-group as Neutron has it:
// stateful true by default, false on create or on update of a group no
// port uses, and back; a port may not mix stateful and stateless groups.
func TestStatelessSecurityGroups(t *testing.T) {
	h := newHarness(t)
	n := h.create("networks", "network", map[string]any{"name": "net"})
	h.create("subnets", "subnet", map[string]any{"network_id": n["id"], "cidr": "10.0.0.0/24"})
	web := h.create("security-groups", "security_group", map[string]any{"name": "web"})
	if web["stateful"] != true {
		t.Errorf("new group: stateful %v, want true", web["stateful"])
	}
	free := h.create("security-groups", "security_group", map[string]any{"name": "free", "stateful": false})
	if free["stateful"] != false {
		t.Errorf("group created stateless: stateful %v", free["stateful"])
	}
	wid, fid := web["id"].(string), free["id"].(string)
	for _, want := range []bool{false, true} {
		res := h.do("PUT", "/v2.0/security-groups/"+wid, map[string]any{"security_group": map[string]any{"stateful": want}})
		if res.status != 200 || res.body["security_group"].(map[string]any)["stateful"] != want {
			t.Fatalf("update of a group no port uses to stateful %v: %d %v", want, res.status, res.body)
		}
		if got := h.do("GET", "/v2.0/security-groups/"+wid, nil).body["security_group"].(map[string]any)["stateful"]; got != want {
			t.Errorf("shown after the update to %v: stateful %v", want, got)
		}
	}
	p := h.create("ports", "port", map[string]any{"network_id": n["id"], "security_groups": []string{fid}})
	pid := p["id"].(string)
	const mixed = "Cannot apply both stateful and stateless security groups on the same port at the same time"
	h.checkRefusals(t, []refusal{
		{"a port with both kinds", "POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": n["id"], "security_groups": []string{wid, fid}}}, 409, "SecurityGroupConflict", mixed},
		{"a stateful group added to a stateless port", "PUT", "/v2.0/ports/" + pid, map[string]any{"port": map[string]any{"security_groups": []string{fid, wid}}}, 409, "SecurityGroupConflict", mixed},
		{"stateful again, in use", "PUT", "/v2.0/security-groups/" + fid, map[string]any{"security_group": map[string]any{"stateful": true}}, 409, "SecurityGroupInUse", fid},
	})
	// The same value again is no change, in use or not.
	if res := h.do("PUT", "/v2.0/security-groups/"+fid, map[string]any{"security_group": map[string]any{"stateful": false, "description": "d"}}); res.status != 200 {
		t.Errorf("repeating stateful false on a group in use: %d %v", res.status, res.body)
	}
	if res := h.do("PUT", "/v2.0/ports/"+pid, map[string]any{"port": map[string]any{"security_groups": []string{wid}}}); res.status != 200 {
		t.Errorf("moving the port to a stateful group: %d %v", res.status, res.body)
	}
}

// TestSecurityGroupQuotas: groups and rules count against the project's
// security_group and security_group_rule quotas.
func TestSecurityGroupQuotas(t *testing.T) {
	h := newHarness(t)
	h.do("PUT", "/v2.0/quotas/admin", map[string]any{"quota": map[string]any{"security_group": 1, "security_group_rule": 7}})
	// The automatic default group does not count against a quota of 1, as
	// in Neutron; its four rules do.
	web := h.create("security-groups", "security_group", map[string]any{"name": "web"}) // 1 group (+ default), 6 rules
	h.rule(web["id"].(string), map[string]any{"direction": "ingress", "protocol": "icmp"})
	h.checkRefusals(t, []refusal{
		{"second group", "POST", "/v2.0/security-groups", map[string]any{"security_group": map[string]any{"name": "db"}}, 409, "OverQuota", "['security_group']"},
		{"eighth rule", "POST", "/v2.0/security-group-rules", map[string]any{"security_group_rule": map[string]any{
			"security_group_id": web["id"], "direction": "ingress", "protocol": "udp"}}, 409, "OverQuota", "security_group_rule"},
	})
	// A group whose two egress rules do not fit is refused whole.
	h.do("PUT", "/v2.0/quotas/admin", map[string]any{"quota": map[string]any{"security_group": 5, "security_group_rule": 8}})
	h.checkRefusals(t, []refusal{
		{"group without room for its rules", "POST", "/v2.0/security-groups", map[string]any{"security_group": map[string]any{"name": "db"}}, 409, "OverQuota", "security_group_rule"},
	})
}

// TestSecurityGroupsOnAPortWithoutAddresses: a port with port security and
// no fixed IP (a network without subnets) takes the groups it names, as in
// Neutron; without any named it gets none, not the default group.
func TestSecurityGroupsOnAPortWithoutAddresses(t *testing.T) {
	h := newHarness(t)
	n := h.create("networks", "network", map[string]any{"name": "bare"})
	g := h.create("security-groups", "security_group", map[string]any{"name": "web"})["id"].(string)
	named := h.create("ports", "port", map[string]any{"network_id": n["id"], "security_groups": []string{g}})
	if groups := named["security_groups"].([]any); len(groups) != 1 || groups[0] != g {
		t.Errorf("named groups: %v, want [%s]", groups, g)
	}
	plain := h.create("ports", "port", map[string]any{"network_id": n["id"]})
	if groups := plain["security_groups"].([]any); len(groups) != 0 {
		t.Errorf("unnamed groups: %v, want []", groups)
	}
	up := h.do("PUT", "/v2.0/ports/"+plain["id"].(string), map[string]any{"port": map[string]any{"security_groups": []string{g}}})
	if up.status != 200 {
		t.Errorf("update with groups: %d %v", up.status, up.body)
	}
	if r := h.do("DELETE", "/v2.0/security-groups/"+g, nil); r.status != 409 {
		t.Errorf("delete a group ports use: %d %v", r.status, r.body)
	}
}

// TestAddressGroups: Neutron's address-group extension — CIDRs normalized,
// add_addresses and remove_addresses refusing the whole request for one
// bad, present or missing address, a group a rule names undeletable — and
// rules naming one (remote_address_group_id), alone.
func TestAddressGroups(t *testing.T) {
	h := newHarness(t)
	ag := h.create("address-groups", "address_group", map[string]any{"name": "office", "description": "d",
		"addresses": []string{"10.10.10.3/32", "192.168.0.10/24", "2001:db8::f00/64"}})
	id := ag["id"].(string)
	addrs := func() []any {
		return h.do("GET", "/v2.0/address-groups/"+id, nil).body["address_group"].(map[string]any)["addresses"].([]any)
	}
	want := []any{"10.10.10.3/32", "192.168.0.0/24", "2001:db8::/64"}
	if got := ag["addresses"].([]any); !equalAny(got, want) || ag["project_id"] != "admin" || ag["tenant_id"] != "admin" || ag["name"] != "office" {
		t.Errorf("created: %v", ag)
	}
	up := h.do("PUT", "/v2.0/address-groups/"+id, map[string]any{"address_group": map[string]any{"description": "new"}})
	if up.status != 200 || up.body["address_group"].(map[string]any)["description"] != "new" || !equalAny(addrs(), want) {
		t.Errorf("update: %d %v", up.status, up.body)
	}
	add := h.do("PUT", "/v2.0/address-groups/"+id+"/add_addresses", map[string]any{"addresses": []string{"10.20.30.40/32"}})
	want = append(want, "10.20.30.40/32")
	if add.status != 200 || !equalAny(add.body["address_group"].(map[string]any)["addresses"].([]any), want) {
		t.Errorf("add_addresses: %d %v", add.status, add.body)
	}
	rm := h.do("PUT", "/v2.0/address-groups/"+id+"/remove_addresses", map[string]any{"addresses": []string{"10.10.10.3"}})
	want = want[1:]
	if rm.status != 200 || !equalAny(addrs(), want) {
		t.Errorf("remove_addresses of a bare address: %d %v, addresses %v", rm.status, rm.body, addrs())
	}
	const groups = "/v2.0/address-groups"
	h.checkRefusals(t, []refusal{
		{"an address without its prefix length", "POST", groups, map[string]any{"address_group": map[string]any{"name": "x", "addresses": []string{"10.20.30.40"}}}, 400, "HTTPBadRequest", "10.20.30.40"},
		{"not an address", "POST", groups, map[string]any{"address_group": map[string]any{"name": "x", "addresses": []string{"this is bad"}}}, 400, "HTTPBadRequest", "this is bad"},
		{"addresses on update", "PUT", groups + "/" + id, map[string]any{"address_group": map[string]any{"addresses": []string{"10.0.0.0/8"}}}, 400, "HTTPBadRequest", "addresses"},
		{"add a bad address", "PUT", groups + "/" + id + "/add_addresses", map[string]any{"addresses": []string{"10.9.9.9/32", "bad"}}, 400, "HTTPBadRequest", "bad"},
		{"add one already there", "PUT", groups + "/" + id + "/add_addresses", map[string]any{"addresses": []string{"10.9.9.9/32", "192.168.0.1/24"}}, 400, "AddressesAlreadyExist", "Addresses ['192.168.0.0/24'] already exist in the address group " + id},
		{"remove one not there", "PUT", groups + "/" + id + "/remove_addresses", map[string]any{"addresses": []string{"10.200.200.200"}}, 404, "AddressesNotFound", "Addresses ['10.200.200.200/32'] not found in the address group " + id},
		{"remove a bad address", "PUT", groups + "/" + id + "/remove_addresses", map[string]any{"addresses": []string{"bad"}}, 400, "HTTPBadRequest", "bad"},
		{"unknown group", "PUT", groups + "/nope/add_addresses", map[string]any{"addresses": []string{"10.0.0.0/8"}}, 404, "AddressGroupNotFound", "nope"},
	})
	if !equalAny(addrs(), want) {
		t.Errorf("after the refusals: %v, want %v", addrs(), want)
	}

	web := h.create("security-groups", "security_group", map[string]any{"name": "web"})
	gid := web["id"].(string)
	r := h.rule(gid, map[string]any{"direction": "ingress", "protocol": "tcp", "port_range_min": 80, "port_range_max": 80, "remote_address_group_id": id})
	if r["remote_address_group_id"] != id || r["remote_group_id"] != nil || r["remote_ip_prefix"] != nil {
		t.Errorf("rule naming the address group: %v", r)
	}
	rule := func(attrs map[string]any) map[string]any {
		attrs["security_group_id"], attrs["direction"] = gid, "ingress"
		return map[string]any{"security_group_rule": attrs}
	}
	h.checkRefusals(t, []refusal{
		{"the same rule again", "POST", "/v2.0/security-group-rules", rule(map[string]any{"protocol": "tcp", "port_range_min": 80, "port_range_max": 80, "remote_address_group_id": id}), 409, "SecurityGroupRuleExists", r["id"].(string)},
		{"address group and prefix", "POST", "/v2.0/security-group-rules", rule(map[string]any{"remote_address_group_id": id, "remote_ip_prefix": "10.0.0.0/8"}), 400, "SecurityGroupMultipleRemoteEntites", "remote_address_group_id"},
		{"address group and remote group", "POST", "/v2.0/security-group-rules", rule(map[string]any{"remote_address_group_id": id, "remote_group_id": gid}), 400, "SecurityGroupMultipleRemoteEntites", "remote_address_group_id"},
		{"a group a rule names", "DELETE", groups + "/" + id, nil, 409, "AddressGroupInUse", "Address group " + id + " is in use on one or more security group rules."},
	})
	if res := h.do("DELETE", "/v2.0/security-group-rules/"+r["id"].(string), nil); res.status != 204 {
		t.Fatalf("deleting the rule: %d", res.status)
	}
	if res := h.do("DELETE", groups+"/"+id, nil); res.status != 204 {
		t.Errorf("deleting the group no rule names: %d %v", res.status, res.body)
	}
	if res := h.do("GET", groups+"/"+id, nil); res.status != 404 {
		t.Errorf("deleted group shown: %d", res.status)
	}
}

func equalAny(a, b []any) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
