package api_test

import (
	"encoding/json"
	"net/http"
	"testing"
)

// ipAvailability is one network's IP availability with its counts as the
// JSON has them, so that a large one is compared exactly.
type ipAvailability struct {
	NetworkID   string      `json:"network_id"`
	NetworkName string      `json:"network_name"`
	ProjectID   string      `json:"project_id"`
	TenantID    string      `json:"tenant_id"`
	UsedIPs     json.Number `json:"used_ips"`
	TotalIPs    json.Number `json:"total_ips"`
	Subnets     []struct {
		SubnetID  string      `json:"subnet_id"`
		CIDR      string      `json:"cidr"`
		IPVersion int         `json:"ip_version"`
		UsedIPs   json.Number `json:"used_ips"`
		TotalIPs  json.Number `json:"total_ips"`
	} `json:"subnet_ip_availability"`
}

// getRaw GETs path as who and decodes the answer into out.
func (h *tenants) getRaw(who, path string, out any) int {
	h.t.Helper()
	req, _ := http.NewRequest("GET", h.srv.URL+path, nil)
	req.Header.Set("X-Auth-Token", "tok-"+who)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	dec.UseNumber()
	if err := dec.Decode(out); err != nil {
		h.t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode
}

// TestNetworkIPAvailability counts as Neutron does: a subnet's total is
// the size of its allocation pools (an IPv6 /64's 2^64-2, exact), its
// used the fixed IPs on it (one outside the pools too); a network sums its
// subnets'. Filters narrow networks, ip_version narrows subnets; only an
// admin sees any of it.
func TestNetworkIPAvailability(t *testing.T) {
	h := newTenants(t, nil)
	v4 := h.create(owner, "networks", "network", map[string]any{"name": "v4"})
	small := h.create(owner, "subnets", "subnet", map[string]any{"network_id": v4, "cidr": "10.0.0.0/28", "enable_dhcp": false})
	pooled := h.create(owner, "subnets", "subnet", map[string]any{"network_id": v4, "cidr": "10.1.0.0/24", "enable_dhcp": false,
		"allocation_pools": []any{map[string]any{"start": "10.1.0.10", "end": "10.1.0.19"}, map[string]any{"start": "10.1.0.30", "end": "10.1.0.39"}}})
	v6 := h.create(owner, "networks", "network", map[string]any{"name": "v6"})
	h.create(owner, "subnets", "subnet", map[string]any{"network_id": v6, "cidr": "2001:db8::/64", "ip_version": 6, "enable_dhcp": false})
	bare := h.create(other, "networks", "network", map[string]any{"name": "bare"})
	h.create(owner, "ports", "port", map[string]any{"network_id": v4, "fixed_ips": []any{map[string]any{"subnet_id": small}}})
	h.create(owner, "ports", "port", map[string]any{"network_id": v4, "fixed_ips": []any{map[string]any{"subnet_id": pooled, "ip_address": "10.1.0.5"}}})
	h.create(owner, "ports", "port", map[string]any{"network_id": v6})
	h.create(owner, "ports", "port", map[string]any{"network_id": v6})

	type counts struct{ used, total string }
	want := map[string]counts{v4: {"2", "33"}, v6: {"2", "18446744073709551614"}, bare: {"0", "0"}}
	wantSubnets := map[string]counts{small: {"1", "13"}, pooled: {"1", "20"}}
	var list struct {
		Items []ipAvailability `json:"network_ip_availabilities"`
	}
	if status := h.getRaw(admin, "/v2.0/network-ip-availabilities", &list); status != http.StatusOK || len(list.Items) != 3 {
		t.Fatalf("admin's list: %d %+v", status, list)
	}
	for _, a := range list.Items {
		if w := want[a.NetworkID]; a.UsedIPs.String() != w.used || a.TotalIPs.String() != w.total {
			t.Errorf("network %s: used %s total %s, want %s %s", a.NetworkName, a.UsedIPs, a.TotalIPs, w.used, w.total)
		}
		if a.ProjectID == "" || a.TenantID != a.ProjectID {
			t.Errorf("network %s: project_id %q tenant_id %q", a.NetworkName, a.ProjectID, a.TenantID)
		}
		for _, s := range a.Subnets {
			if w, ok := wantSubnets[s.SubnetID]; ok && (s.UsedIPs.String() != w.used || s.TotalIPs.String() != w.total || s.IPVersion != 4) {
				t.Errorf("subnet %s: used %s total %s version %d, want %s %s 4", s.CIDR, s.UsedIPs, s.TotalIPs, s.IPVersion, w.used, w.total)
			}
		}
	}

	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"?ip_version=6", []string{v6}},
		{"?ip_version=4&ip_version=6", []string{v4, v6}},
		{"?network_name=bare", []string{bare}},
		{"?project_id=beta", []string{bare}},
		{"?tenant_id=alpha&network_id=" + v6, []string{v6}},
	} {
		var got struct {
			Items []ipAvailability `json:"network_ip_availabilities"`
		}
		h.getRaw(admin, "/v2.0/network-ip-availabilities"+tc.query, &got)
		ids := map[string]bool{}
		for _, a := range got.Items {
			ids[a.NetworkID] = true
		}
		if len(ids) != len(tc.want) {
			t.Errorf("%s: %d networks, want %d", tc.query, len(ids), len(tc.want))
		}
		for _, id := range tc.want {
			if !ids[id] {
				t.Errorf("%s: network %s missing", tc.query, id)
			}
		}
	}

	var one struct {
		Item ipAvailability `json:"network_ip_availability"`
	}
	if status := h.getRaw(admin, "/v2.0/network-ip-availabilities/"+v6, &one); status != http.StatusOK || one.Item.TotalIPs.String() != "18446744073709551614" || len(one.Item.Subnets) != 1 {
		t.Errorf("show v6: %d %+v", status, one)
	}
	var fields map[string]map[string]json.Number
	if h.getRaw(admin, "/v2.0/network-ip-availabilities/"+v6+"?fields=total_ips", &fields); len(fields["network_ip_availability"]) != 1 ||
		fields["network_ip_availability"]["total_ips"].String() != "18446744073709551614" {
		t.Errorf("show v6 ?fields=total_ips: %v", fields)
	}

	var memberList struct {
		Items []ipAvailability `json:"network_ip_availabilities"`
	}
	if status := h.getRaw(owner, "/v2.0/network-ip-availabilities", &memberList); status != http.StatusOK || len(memberList.Items) != 0 {
		t.Errorf("member's list: %d %+v, want an empty list", status, memberList)
	}
	for _, tc := range []struct {
		who, path    string
		status       int
		typ, message string
	}{
		{owner, "/v2.0/network-ip-availabilities/" + v4, 404, "HTTPNotFound", "The resource could not be found."},
		{admin, "/v2.0/network-ip-availabilities/nope", 404, "NetworkNotFound", "Network nope could not be found."},
		{admin, "/v2.0/network-ip-availabilities?colour=red", 400, "HTTPBadRequest", "[colour] is invalid attribute for filtering"},
	} {
		var e struct {
			NeutronError struct{ Type, Message string }
		}
		if status := h.getRaw(tc.who, tc.path, &e); status != tc.status || e.NeutronError.Type != tc.typ || e.NeutronError.Message != tc.message {
			t.Errorf("%s GET %s: %d %+v, want %d %s %q", tc.who, tc.path, status, e.NeutronError, tc.status, tc.typ, tc.message)
		}
	}
}
