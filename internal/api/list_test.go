package api_test

import (
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// page is one answer to a list request: the ids in it and its links.
type page struct {
	ids   []string
	links map[string]string // rel → path and query, below the server's URL
}

func (h *harness) page(t *testing.T, collection, path string) page {
	t.Helper()
	r := h.do("GET", path, nil)
	if r.status != 200 {
		t.Fatalf("GET %s: %d %v", path, r.status, r.body)
	}
	var p page
	for _, it := range r.body[collection].([]any) {
		p.ids = append(p.ids, it.(map[string]any)["id"].(string))
	}
	links, _ := r.body[collection+"_links"].([]any)
	p.links = map[string]string{}
	for _, l := range links {
		link := l.(map[string]any)
		href := link["href"].(string)
		rest, ok := strings.CutPrefix(href, h.srv.URL)
		if !ok {
			t.Fatalf("GET %s: link %v is not on the server's URL %s", path, link, h.srv.URL)
		}
		p.links[link["rel"].(string)] = rest
	}
	return p
}

// TestPagesWalkBothWays pages through a sorted collection as Neutron's
// clients do: forward by "next" links to the empty page after the last,
// then back by "previous" links, and by page_reverse with and without a
// marker; every way must give the whole collection in one order.
func TestPagesWalkBothWays(t *testing.T) {
	h := newHarness(t)
	// Two networks share a name: the order among them must still be one.
	for _, name := range []string{"test1", "abc1", "test10", "123test", "test1"} {
		h.create("networks", "network", map[string]any{"name": name})
	}
	for _, dir := range []string{"asc", "desc"} {
		sorted := "/v2.0/networks?sort_key=name&sort_dir=" + dir
		all := h.page(t, "networks", sorted).ids
		if len(all) != 5 {
			t.Fatalf("%s: %d networks", sorted, len(all))
		}
		for limit := 1; limit <= 6; limit++ {
			first := fmt.Sprintf("%s&limit=%d", sorted, limit)
			var forward []string
			p := h.page(t, "networks", first)
			for i := 0; ; i++ {
				if i > 10 {
					t.Fatalf("%s: next links do not end", first)
				}
				forward = append(forward, p.ids...)
				if len(p.ids) == limit && p.links["next"] == "" {
					t.Errorf("%s: a full page (%d) has no next link", first, len(p.ids))
				}
				if p.links["next"] == "" {
					break
				}
				p = h.page(t, "networks", p.links["next"])
			}
			if !slices.Equal(forward, all) {
				t.Errorf("%s: forward by next links %v, want %v", first, forward, all)
			}
			// Back from the last page, which may be short or empty.
			backward := slices.Clone(p.ids)
			for i := 0; p.links["previous"] != ""; i++ {
				if i > 10 {
					t.Fatalf("%s: previous links do not end", first)
				}
				p = h.page(t, "networks", p.links["previous"])
				backward = append(slices.Clone(p.ids), backward...)
			}
			if !slices.Equal(backward, all) {
				t.Errorf("%s: back by previous links %v, want %v", first, backward, all)
			}
		}
		// page_reverse: the page before the marker, in the list's order;
		// without a marker, the last page.
		for _, tc := range []struct {
			query string
			want  []string
		}{
			{"&limit=2&page_reverse=True&marker=" + all[3], all[1:3]},
			{"&limit=2&page_reverse=true&marker=" + all[1], all[:1]},
			{"&limit=2&page_reverse=True", all[3:]},
			{"&limit=2&page_reverse=False&marker=" + all[1], all[2:4]},
		} {
			if got := h.page(t, "networks", sorted+tc.query).ids; !slices.Equal(got, tc.want) {
				t.Errorf("%s%s: %v, want %v", sorted, tc.query, got, tc.want)
			}
		}
	}
}

// TestListSortsValuesByType sorts numbers as numbers and breaks ties by id.
func TestListSortsValuesByType(t *testing.T) {
	h := newHarness(t)
	for _, n := range []struct {
		name string
		mtu  int
	}{{"full", 1500}, {"small", 68}, {"mid", 1000}, {"also-mid", 1000}} {
		h.create("networks", "network", map[string]any{"name": n.name, "mtu": n.mtu})
	}
	names := func(query string) string {
		r := h.do("GET", "/v2.0/networks"+query, nil)
		var out []string
		for _, n := range r.body["networks"].([]any) {
			out = append(out, n.(map[string]any)["name"].(string))
		}
		return strings.Join(out, " ")
	}
	byID := names("?name=mid&name=also-mid") // the default order is the ids'
	for _, tc := range []struct{ query, want string }{
		{"?sort_key=mtu&sort_dir=asc", "small " + byID + " full"},
		{"?sort_key=mtu&sort_dir=desc", "full " + byID + " small"},
		{"?sort_key=mtu&sort_dir=asc&sort_key=name&sort_dir=desc", "small mid also-mid full"},
		{"?sort_key=mtu&sort_key=name", "small also-mid mid full"},
	} {
		if got := names(tc.query); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.query, got, tc.want)
		}
	}
}

// TestListQueryValidation: a filter or sort key that names no attribute of
// the resource is refused (filter-validation), as are malformed controls.
func TestListQueryValidation(t *testing.T) {
	h := newHarness(t)
	net := h.create("networks", "network", map[string]any{"name": "n"})["id"].(string)
	h.create("subnets", "subnet", map[string]any{"network_id": net, "cidr": "10.0.0.0/24"})
	for _, tc := range []struct {
		path   string
		status int
		msg    string // in the error's message
	}{
		{"/v2.0/networks?colour=purple", 400, "[colour] is invalid attribute for filtering"},
		{"/v2.0/networks?name=n&colour=purple&size=big", 400, "[colour, size] is invalid attribute for filtering"},
		{"/v2.0/networks?shared=false&router:external=false&name=n", 200, ""},
		{"/v2.0/networks?fields=id&fields=name&limit=1&marker=" + net + "&sort_key=name&sort_dir=asc&page_reverse=False", 200, ""},
		{"/v2.0/subnets?shared=false&cidr=10.0.0.0/24", 200, ""},
		{"/v2.0/subnets?colour=purple", 400, "[colour] is invalid attribute for filtering"},
		{"/v2.0/ports?fixed_ips=ip_address%3D10.0.0.5&device_owner=network:dhcp", 200, ""},
		{"/v2.0/security-groups?tenant_id=admin&project_id=admin&description=", 200, ""},
		{"/v2.0/networks?sort_key=colour&sort_dir=asc", 400, "[colour] is invalid attribute for sort_key"},
		{"/v2.0/networks?sort_key=subnets&sort_dir=asc", 400, "[subnets] is invalid attribute for sort_key"},
		{"/v2.0/networks?sort_key=name&sort_dir=up", 400, "sort_dir"},
		{"/v2.0/networks?limit=-1", 400, "Limit must be an integer 0 or greater and not '-1'"},
		{"/v2.0/networks?limit=x", 400, "Limit must be an integer 0 or greater and not 'x'"},
		{"/v2.0/networks?limit=1&page_reverse=maybe", 400, "page_reverse"},
		{"/v2.0/networks?limit=1&marker=nope", 404, "nope"},
	} {
		r := h.do("GET", tc.path, nil)
		_, msg := neutronError(r)
		if r.status != tc.status || !strings.Contains(msg, tc.msg) {
			t.Errorf("GET %s: %d %q, want %d with %q", tc.path, r.status, msg, tc.status, tc.msg)
		}
	}
}

// TestSubnetsFilterByShared: a subnet is shared as its network is to the
// caller (Neutron's subnets have a hidden shared attribute, for filtering).
func TestSubnetsFilterByShared(t *testing.T) {
	h := newTenants(t, nil)
	mine := h.create("owner", "networks", "network", map[string]any{"name": "mine"})
	h.create("owner", "subnets", "subnet", map[string]any{"name": "mine-v4", "network_id": mine, "cidr": "10.0.0.0/24"})
	everyone := h.create("admin", "networks", "network", map[string]any{"name": "everyone", "shared": true})
	h.create("admin", "subnets", "subnet", map[string]any{"name": "everyone-v4", "network_id": everyone, "cidr": "10.1.0.0/24"})
	// Shared by RBAC with beta only: shared to beta, not to alpha.
	theirs := h.create("owner", "networks", "network", map[string]any{"name": "with-beta"})
	h.create("owner", "subnets", "subnet", map[string]any{"name": "with-beta-v4", "network_id": theirs, "cidr": "10.2.0.0/24"})
	h.create("owner", "rbac-policies", "rbac_policy", map[string]any{"object_type": "network", "object_id": theirs,
		"action": "access_as_shared", "target_tenant": "beta"})
	for _, tc := range []struct{ who, query, want string }{
		{"owner", "?shared=true", "everyone-v4"},
		{"owner", "?shared=false", "mine-v4 with-beta-v4"},
		{"owner", "?shared=False&name=mine-v4&name=everyone-v4", "mine-v4"},
		{"other", "?shared=true", "everyone-v4 with-beta-v4"},
		{"other", "?shared=false", ""},
		{"owner", "", "everyone-v4 mine-v4 with-beta-v4"},
	} {
		r := h.as(tc.who, "GET", "/v2.0/subnets"+tc.query+sep(tc.query)+"sort_key=name&sort_dir=asc", nil)
		var names []string
		for _, sn := range r.body["subnets"].([]any) {
			names = append(names, sn.(map[string]any)["name"].(string))
			if _, shown := sn.(map[string]any)["shared"]; shown {
				t.Errorf("%s: subnet shows the filter-only attribute shared: %v", tc.query, sn)
			}
		}
		if got := strings.Join(names, " "); r.status != 200 || got != tc.want {
			t.Errorf("%s lists subnets%s: %d %q, want %q", tc.who, tc.query, r.status, got, tc.want)
		}
	}
}

func sep(query string) string {
	if query == "" {
		return "?"
	}
	return "&"
}

// TestListExtensionsPromiseListing: pagination, sorting and filter
// validation (which the tests above prove) are listed, so that clients
// such as tempest use them.
func TestListExtensionsPromiseListing(t *testing.T) {
	h := newHarness(t)
	for _, alias := range []string{"pagination", "sorting", "filter-validation"} {
		if r := h.do("GET", "/v2.0/extensions/"+url.PathEscape(alias), nil); r.status != 200 {
			t.Errorf("extension %s: %d", alias, r.status)
		}
	}
}

// TestPortsFilterByFixedIPs: fixed_ips=ip_address=…, subnet_id=… and
// ip_address_substr=… (ip-substring-filtering) match one address of a
// port that meets every condition given.
func TestPortsFilterByFixedIPs(t *testing.T) {
	h := newHarness(t)
	if r := h.do("GET", "/v2.0/extensions/ip-substring-filtering", nil); r.status != 200 {
		t.Errorf("extension ip-substring-filtering: %d", r.status)
	}
	net := h.create("networks", "network", map[string]any{"name": "n"})["id"].(string)
	a := h.create("subnets", "subnet", map[string]any{"network_id": net, "cidr": "10.0.0.0/24", "enable_dhcp": false})["id"].(string)
	b := h.create("subnets", "subnet", map[string]any{"network_id": net, "cidr": "10.0.1.0/24", "enable_dhcp": false})["id"].(string)
	for name, ips := range map[string][]string{"p5": {"10.0.0.5"}, "p50": {"10.0.0.50"}, "p15": {"10.0.0.15", "10.0.1.7"}} {
		var fixed []any
		for _, ip := range ips {
			fixed = append(fixed, map[string]any{"ip_address": ip})
		}
		h.create("ports", "port", map[string]any{"name": name, "network_id": net, "fixed_ips": fixed})
	}
	for _, tc := range []struct{ query, want string }{
		{"fixed_ips=ip_address%3D10.0.0.5", "p5"},
		{"fixed_ips=ip_address_substr%3D10.0.0.5", "p5 p50"},
		{"fixed_ips=ip_address_substr%3D5", "p15 p5 p50"},
		{"fixed_ips=ip_address_substr%3D5&fixed_ips=subnet_id%3D" + b, ""},
		{"fixed_ips=ip_address_substr%3D7&fixed_ips=subnet_id%3D" + b, "p15"},
		{"fixed_ips=subnet_id%3D" + a, "p15 p5 p50"},
		{"fixed_ips=ip_address%3D10.0.0.5&fixed_ips=ip_address%3D10.0.1.7", "p15 p5"},
	} {
		r := h.do("GET", "/v2.0/ports?"+tc.query+"&sort_key=name&sort_dir=asc", nil)
		var names []string
		for _, p := range r.body["ports"].([]any) {
			names = append(names, p.(map[string]any)["name"].(string))
		}
		if got := strings.Join(names, " "); got != tc.want {
			t.Errorf("ports?%s: %q, want %q", tc.query, got, tc.want)
		}
	}
}

// TestMarkerOfRBACObjects: Neutron reads QoS policies, subnet pools,
// address scopes and address groups with an elevated context, marker
// included, and drops what the caller may not see afterwards. A marker the
// caller does not see is still a position (neutron-tempest-plugin's
// QosSearchCriteriaTest lists as admin and fetches the last, empty page as
// a member: it was 404 "Marker … could not be found"), and a marker that
// names no record pages from the start. Other collections answer 404 for
// a marker the caller does not see.
func TestMarkerOfRBACObjects(t *testing.T) {
	h := newTenants(t, nil)
	type ids map[string]string // name → id
	made := map[string]ids{}
	for i, c := range []struct{ collection, singular, object string }{
		{"qos/policies", "policy", "qos_policy"},
		{"subnetpools", "subnetpool", "subnetpool"},
		{"address-scopes", "address_scope", "address_scope"},
		{"address-groups", "address_group", "address_group"},
	} {
		made[c.collection] = ids{}
		// The admin's a and c are private, b and d shared with all; gone
		// is deleted.
		for j, name := range []string{"a", "b", "c", "d", "gone"} {
			attrs := map[string]any{"name": name}
			switch c.collection {
			case "subnetpools":
				attrs["prefixes"] = []string{fmt.Sprintf("10.%d.%d.0/24", i, j)}
			case "address-scopes":
				attrs["ip_version"] = 4
			}
			id := h.create(admin, c.collection, c.singular, attrs)
			made[c.collection][name] = id
			switch name {
			case "b", "d":
				h.create(admin, "rbac-policies", "rbac_policy", map[string]any{
					"object_type": c.object, "object_id": id, "action": "access_as_shared", "target_tenant": "*"})
			case "gone":
				if r := h.as(admin, "DELETE", "/v2.0/"+c.collection+"/"+id, nil); r.status != 204 {
					t.Fatalf("delete %s: %d %v", id, r.status, r.body)
				}
			}
		}
	}
	list := func(collection, who, query string) (names []string, links map[string]string, status int) {
		plural := map[string]string{"qos/policies": "policies", "subnetpools": "subnetpools",
			"address-scopes": "address_scopes", "address-groups": "address_groups", "networks": "networks"}[collection]
		r := h.as(who, "GET", "/v2.0/"+collection+"?sort_key=name&sort_dir=asc&"+query, nil)
		if r.status != 200 {
			return nil, nil, r.status
		}
		for _, it := range r.body[plural].([]any) {
			names = append(names, it.(map[string]any)["name"].(string))
		}
		links = map[string]string{}
		ls, _ := r.body[plural+"_links"].([]any)
		for _, l := range ls {
			u, _ := url.Parse(l.(map[string]any)["href"].(string))
			links[l.(map[string]any)["rel"].(string)] = u.Query().Get("marker")
		}
		return names, links, r.status
	}
	for collection, id := range made {
		for _, tc := range []struct {
			name, query string
			want        []string
			links       map[string]string // rel → its marker
		}{
			{"after a private one", "limit=1&marker=" + id["a"], []string{"b"}, map[string]string{"next": id["b"], "previous": id["b"]}},
			{"after another", "limit=5&marker=" + id["c"], []string{"d"}, map[string]string{"previous": id["d"]}},
			{"before one, reversed", "limit=5&page_reverse=True&marker=" + id["c"], []string{"b"}, map[string]string{"next": id["b"]}},
			{"after the last: empty, previous to the last page", "limit=1&marker=" + id["c"] + "&name=c", nil, map[string]string{"previous": ""}},
			{"a marker that names nothing", "limit=1&marker=" + id["gone"], []string{"b"}, map[string]string{"next": id["b"], "previous": id["b"]}},
		} {
			t.Run(collection+"/"+tc.name, func(t *testing.T) {
				got, links, status := list(collection, owner, tc.query)
				if status != 200 || !slices.Equal(got, tc.want) || !maps.Equal(links, tc.links) {
					t.Errorf("%d %v links %v, want %v links %v", status, got, links, tc.want, tc.links)
				}
			})
		}
	}
	private := h.create(admin, "networks", "network", map[string]any{"name": "n"})
	if _, _, status := list("networks", owner, "limit=1&marker="+private); status != 404 {
		t.Errorf("a network the caller does not see as marker: %d, want 404", status)
	}
}
