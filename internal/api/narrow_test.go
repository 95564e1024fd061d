package api_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	"github.com/nsnet/nsnet/internal/model"
)

// TestNarrowedPortListsMatchTheWholeList: lists of ports that an index or
// a seek answers (by device_id, by network_id, a page in id order) show
// exactly what filtering and paging the whole collection shows.
func TestNarrowedPortListsMatchTheWholeList(t *testing.T) {
	h := newHarness(t)
	var nets []string
	for _, name := range []string{"a", "b"} {
		n := h.create("networks", "network", map[string]any{"name": name})
		h.create("subnets", "subnet", map[string]any{"network_id": n["id"], "cidr": fmt.Sprintf("10.%d.0.0/24", len(nets)),
			"ip_version": 4, "enable_dhcp": false})
		nets = append(nets, n["id"].(string))
	}
	devices := []string{"d1", "d2", "d/3", "", "d1"}
	for i := range 12 {
		h.create("ports", "port", map[string]any{"network_id": nets[i%2], "device_id": devices[i%len(devices)], "name": fmt.Sprint("p", i%3)})
	}
	all := typedPorts(t, h, "/v2.0/ports")
	if len(all) != 12 {
		t.Fatalf("%d ports, want 12", len(all))
	}
	ids := func(ps []model.Port) []string {
		var out []string
		for _, p := range ps {
			out = append(out, p.ID)
		}
		return out
	}
	where := func(keep func(p model.Port) bool) []string {
		return ids(slices.DeleteFunc(slices.Clone(all), func(p model.Port) bool { return !keep(p) }))
	}
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"device_id=d1", where(func(p model.Port) bool { return p.DeviceID == "d1" })},
		{"device_id=d1&device_id=d%2F3", where(func(p model.Port) bool { return p.DeviceID == "d1" || p.DeviceID == "d/3" })},
		{"device_id=d", nil},
		{"device_id=", where(func(p model.Port) bool { return p.DeviceID == "" })},
		{"device_id=d1&name=p1", where(func(p model.Port) bool { return p.DeviceID == "d1" && p.Name == "p1" })},
		{"network_id=" + nets[1], where(func(p model.Port) bool { return p.NetworkID == nets[1] })},
		{"network_id=" + nets[0] + "&device_id=d2", where(func(p model.Port) bool { return p.NetworkID == nets[0] && p.DeviceID == "d2" })},
		{"limit=5", ids(all[:5])},
		{"limit=5&marker=" + all[3].ID, ids(all[4:9])},
		{"limit=5&marker=" + all[9].ID, ids(all[10:])},
		{"limit=5&marker=" + all[11].ID, nil},
		{"limit=3&device_id=d1&marker=" + all[0].ID, where(func(p model.Port) bool { return p.DeviceID == "d1" && p.ID > all[0].ID })[:3]},
	} {
		got := ids(typedPorts(t, h, "/v2.0/ports?"+tc.query))
		if !slices.Equal(got, tc.want) {
			t.Errorf("?%s: %v, want %v", tc.query, got, tc.want)
		}
	}
	// A marker that is no port is refused, as from the whole list.
	if r := h.do("GET", "/v2.0/ports?limit=2&marker=nope", nil); r.status != 404 {
		t.Errorf("unknown marker: %d %v, want 404", r.status, r.body)
	}
	// Pages walked by next links give the whole list, in order.
	var walked []string
	for path, i := "/v2.0/ports?limit=5", 0; path != ""; i++ {
		if i > 5 {
			t.Fatal("next links do not end")
		}
		p := h.page(t, "ports", path)
		walked = append(walked, p.ids...)
		path = p.links["next"]
	}
	if !slices.Equal(walked, ids(all)) {
		t.Errorf("walked %v, want %v", walked, ids(all))
	}
}

func typedPorts(t *testing.T, h *harness, path string) []model.Port {
	t.Helper()
	r := h.do("GET", path, nil)
	if r.status != 200 {
		t.Fatalf("GET %s: %d %v", path, r.status, r.body)
	}
	raw, err := json.Marshal(r.body["ports"])
	if err != nil {
		t.Fatal(err)
	}
	var out []model.Port
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return out
}

// TestNarrowedFloatingIPListsMatchTheWholeList: lists of floating IPs by
// port_id or router_id, which the indexes answer, show what filtering the
// whole collection shows.
func TestNarrowedFloatingIPListsMatchTheWholeList(t *testing.T) {
	h := newHarness(t)
	ext := h.create("networks", "network", map[string]any{"name": "ext", "router:external": true})
	h.create("subnets", "subnet", map[string]any{"network_id": ext["id"], "cidr": "172.16.0.0/24", "ip_version": 4, "enable_dhcp": false})
	lan := h.create("networks", "network", map[string]any{"name": "lan"})
	sn := h.create("subnets", "subnet", map[string]any{"network_id": lan["id"], "cidr": "10.0.0.0/24", "ip_version": 4, "enable_dhcp": false})
	router := h.create("routers", "router", map[string]any{"name": "r", "external_gateway_info": map[string]any{"network_id": ext["id"]}})
	if r := h.do("PUT", fmt.Sprintf("/v2.0/routers/%s/add_router_interface", router["id"]), map[string]any{"subnet_id": sn["id"]}); r.status != 200 {
		t.Fatalf("add interface: %d %v", r.status, r.body)
	}
	var ports []string
	for range 3 {
		ports = append(ports, h.create("ports", "port", map[string]any{"network_id": lan["id"]})["id"].(string))
	}
	for i := range 5 {
		body := map[string]any{"floating_network_id": ext["id"]}
		if i < 3 {
			body["port_id"] = ports[i]
		}
		h.create("floatingips", "floatingip", body)
	}
	all := typedFIPs(t, h, "/v2.0/floatingips")
	where := func(keep func(f model.FloatingIP) bool) []string {
		var out []string
		for _, f := range all {
			if keep(f) {
				out = append(out, f.ID)
			}
		}
		return out
	}
	is := func(p *string, v string) bool { return p != nil && *p == v }
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"port_id=" + ports[1], where(func(f model.FloatingIP) bool { return is(f.PortID, ports[1]) })},
		{"port_id=" + ports[0] + "&port_id=" + ports[2], where(func(f model.FloatingIP) bool { return is(f.PortID, ports[0]) || is(f.PortID, ports[2]) })},
		{"port_id=nope", nil},
		{"router_id=" + router["id"].(string), where(func(f model.FloatingIP) bool { return is(f.RouterID, router["id"].(string)) })},
		{"router_id=" + router["id"].(string) + "&port_id=" + ports[1], where(func(f model.FloatingIP) bool { return is(f.PortID, ports[1]) })},
	} {
		var got []string
		for _, f := range typedFIPs(t, h, "/v2.0/floatingips?"+tc.query) {
			got = append(got, f.ID)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("?%s: %v, want %v", tc.query, got, tc.want)
		}
	}
	if n := len(where(func(f model.FloatingIP) bool { return is(f.RouterID, router["id"].(string)) })); n != 3 {
		t.Errorf("%d floating IPs on the router, want 3: the cases test too little", n)
	}
}

func typedFIPs(t *testing.T, h *harness, path string) []model.FloatingIP {
	t.Helper()
	r := h.do("GET", path, nil)
	if r.status != 200 {
		t.Fatalf("GET %s: %d %v", path, r.status, r.body)
	}
	raw, err := json.Marshal(r.body["floatingips"])
	if err != nil {
		t.Fatal(err)
	}
	var out []model.FloatingIP
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return out
}
