package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/nsnet/nsnet/internal/api"
	"github.com/nsnet/nsnet/internal/service"
	"github.com/nsnet/nsnet/internal/store"
	"github.com/nsnet/nsnet/internal/store/storetest"
)

// harness is the API over the real service and a real store in a temp dir;
// there is no agent, so nothing reaches the kernel.
type harness struct {
	t     *testing.T
	srv   *httptest.Server
	store store.Store
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	st := openStore(t, t.TempDir())
	svc := service.New(service.Config{Store: st, NetnsPrefix: "t-"})
	s := api.New(api.Config{Service: svc, Status: func() any { return map[string]any{"ok": true} }})
	srv := httptest.NewServer(s.TrustedHandler())
	t.Cleanup(srv.Close)
	return &harness{t: t, srv: srv, store: st}
}

type response struct {
	status int
	body   map[string]any
	header http.Header
}

func (h *harness) do(method, path string, body any) response {
	h.t.Helper()
	return h.doWith(method, path, body, nil)
}

// doWith sends a request with extra headers.
func (h *harness) doWith(method, path string, body any, header http.Header) response {
	h.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, _ := json.Marshal(b)
		rd = bytes.NewReader(raw)
	}
	req, _ := http.NewRequest(method, h.srv.URL+path, rd)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &m); err != nil {
			h.t.Fatalf("%s %s: non-JSON body %q", method, path, raw)
		}
	}
	return response{resp.StatusCode, m, resp.Header}
}

// create POSTs and returns the created object, failing the test otherwise.
func (h *harness) create(collection, singular string, attrs map[string]any) map[string]any {
	h.t.Helper()
	r := h.do("POST", "/v2.0/"+collection, map[string]any{singular: attrs})
	if r.status != 201 {
		h.t.Fatalf("create %s: %d %v", singular, r.status, r.body)
	}
	return r.body[singular].(map[string]any)
}

func (h *harness) revision() int64 {
	var rev int64
	h.store.View(context.Background(), func(r store.Reader) error { rev = r.Revision(); return nil })
	return rev
}

func neutronError(r response) (typ, msg string) {
	e, _ := r.body["NeutronError"].(map[string]any)
	typ, _ = e["type"].(string)
	msg, _ = e["message"].(string)
	return
}

func TestNetworkDefaultsMatchNeutron(t *testing.T) {
	h := newHarness(t)
	n := h.create("networks", "network", map[string]any{"name": "red"})
	want := map[string]any{
		"name": "red", "admin_state_up": true, "shared": false, "mtu": 1500.0,
		"router:external": false, "port_security_enabled": true, "project_id": "admin",
		"tenant_id": "admin", "revision_number": 0.0, "description": "",
	}
	for k, v := range want {
		if n[k] != v {
			t.Errorf("%s = %v, want %v", k, n[k], v)
		}
	}
	for _, k := range []string{"id", "status", "subnets", "created_at", "updated_at", "tags", "availability_zones"} {
		if _, ok := n[k]; !ok {
			t.Errorf("missing attribute %s", k)
		}
	}
}

func TestSubnetDefaultsMatchNeutron(t *testing.T) {
	h := newHarness(t)
	n := h.create("networks", "network", map[string]any{"name": "red"})
	sn := h.create("subnets", "subnet", map[string]any{"network_id": n["id"], "cidr": "192.168.24.0/24", "ip_version": 4})
	if sn["gateway_ip"] != "192.168.24.1" || sn["enable_dhcp"] != true {
		t.Errorf("gateway_ip=%v enable_dhcp=%v", sn["gateway_ip"], sn["enable_dhcp"])
	}
	pools, _ := json.Marshal(sn["allocation_pools"])
	if string(pools) != `[{"end":"192.168.24.254","start":"192.168.24.2"}]` {
		t.Errorf("allocation_pools = %s", pools)
	}
	got := h.do("GET", "/v2.0/networks/"+n["id"].(string), nil)
	if subs := got.body["network"].(map[string]any)["subnets"].([]any); len(subs) != 1 || subs[0] != sn["id"] {
		t.Errorf("network subnets = %v", subs)
	}
	noGW := h.create("subnets", "subnet", map[string]any{"network_id": n["id"], "cidr": "10.1.0.0/29", "gateway_ip": nil})
	pools, _ = json.Marshal(noGW["allocation_pools"])
	if noGW["gateway_ip"] != nil || string(pools) != `[{"end":"10.1.0.6","start":"10.1.0.1"}]` {
		t.Errorf("no-gateway subnet: gateway=%v pools=%s", noGW["gateway_ip"], pools)
	}
}

func TestBadInputIsRefusedWithoutChange(t *testing.T) {
	h := newHarness(t)
	n := h.create("networks", "network", map[string]any{"name": "net"})
	other := h.create("networks", "network", map[string]any{"name": "other"})
	nid := n["id"].(string)
	sn := h.create("subnets", "subnet", map[string]any{"network_id": nid, "cidr": "10.0.0.0/24"})
	sid := sn["id"].(string)
	inst := h.create("instances", "instance", map[string]any{"name": "red"})
	taken := h.create("ports", "port", map[string]any{"network_id": nid,
		"fixed_ips": []any{map[string]any{"ip_address": "10.0.0.50"}}, "mac_address": "fa:16:3e:00:00:01"})
	h.create("ports", "port", map[string]any{"network_id": nid, "device_id": inst["id"]})
	// Link-local without DHCP is a subnet like any other (Neutron's
	// link-local networks); DHCP would put it where nsnet serves metadata.
	linkLocal := h.create("subnets", "subnet", map[string]any{"network_id": other["id"], "cidr": "169.254.10.0/24", "enable_dhcp": false})

	subnet := func(attrs map[string]any) map[string]any {
		body := map[string]any{"network_id": nid}
		for k, v := range attrs {
			body[k] = v
		}
		return map[string]any{"subnet": body}
	}
	cases := []refusal{
		{"malformed json", "POST", "/v2.0/networks", `{"network": `, 400, "HTTPBadRequest", "Malformed request body"},
		{"wrong envelope", "POST", "/v2.0/networks", map[string]any{"net": map[string]any{}}, 400, "HTTPBadRequest", "'network'"},
		{"project_id and tenant_id differ", "POST", "/v2.0/networks", map[string]any{"network": map[string]any{"project_id": "alpha", "tenant_id": "beta"}}, 400, "HTTPBadRequest", "'project_id' and 'tenant_id' do not match"},
		{"unknown attribute", "POST", "/v2.0/networks", map[string]any{"network": map[string]any{"colour": "red"}}, 400, "HTTPBadRequest", "Unrecognized attribute(s) 'colour'"},
		{"read-only on create", "POST", "/v2.0/networks", map[string]any{"network": map[string]any{"status": "ACTIVE"}}, 400, "HTTPBadRequest", "Unrecognized attribute(s) 'status'"},
		{"mtu not integer", "POST", "/v2.0/networks", map[string]any{"network": map[string]any{"mtu": "big"}}, 400, "HTTPBadRequest", "Invalid input for mtu"},
		{"mtu too small", "POST", "/v2.0/networks", map[string]any{"network": map[string]any{"mtu": 10}}, 400, "HTTPBadRequest", "'10' is not in range 68 through 65535"},
		{"mtu above the physical network's", "POST", "/v2.0/networks", map[string]any{"network": map[string]any{"mtu": 1501}}, 400, "InvalidInput", "Invalid input for operation: Requested MTU is too big, maximum is 1500."},
		{"mtu updated above the physical network's", "PUT", "/v2.0/networks/" + nid, map[string]any{"network": map[string]any{"mtu": 9000}}, 400, "InvalidInput", "Invalid input for operation: Requested MTU is too big, maximum is 1500."},
		{"bool not bool", "POST", "/v2.0/networks", map[string]any{"network": map[string]any{"shared": "maybe"}}, 400, "HTTPBadRequest", "cannot be converted to boolean"},
		{"name too long", "POST", "/v2.0/networks", map[string]any{"network": map[string]any{"name": strings.Repeat("x", 256)}}, 400, "HTTPBadRequest", "exceeds maximum length of 255"},
		{"invalid cidr", "POST", "/v2.0/subnets", subnet(map[string]any{"cidr": "10.0.300.0/24"}), 400, "HTTPBadRequest", "Invalid input for cidr"},
		{"cidr with host bits", "POST", "/v2.0/subnets", subnet(map[string]any{"cidr": "10.5.0.1/24"}), 400, "HTTPBadRequest", "'10.5.0.0/24' should be specified instead"},
		{"cidr /32", "POST", "/v2.0/subnets", subnet(map[string]any{"cidr": "10.5.0.1/32"}), 400, "HTTPBadRequest", "no usable host addresses"},
		// Neutron's words: without a cidr, a subnet needs a pool.
		{"missing cidr", "POST", "/v2.0/subnets", subnet(nil), 400, "BadRequest", "Bad subnets request: a subnetpool must be specified in the absence of a cidr."},
		{"ip_version mismatch", "POST", "/v2.0/subnets", subnet(map[string]any{"cidr": "2001:db8::/64", "ip_version": 4}), 400, "InvalidInput", "does not match the ip_version '4'"},
		{"gateway outside", "POST", "/v2.0/subnets", subnet(map[string]any{"cidr": "10.6.0.0/24", "gateway_ip": "10.7.0.1"}), 400, "InvalidInput", "Gateway is not valid on subnet"},
		{"gateway is broadcast", "POST", "/v2.0/subnets", subnet(map[string]any{"cidr": "10.6.0.0/24", "gateway_ip": "10.6.0.255"}), 400, "InvalidInput", "Gateway is not valid on subnet"},
		{"pool outside", "POST", "/v2.0/subnets", subnet(map[string]any{"cidr": "10.6.0.0/24", "allocation_pools": []any{map[string]any{"start": "10.6.0.10", "end": "10.6.1.20"}}}), 400, "OutOfBoundsAllocationPool", "spans beyond"},
		{"pool reversed", "POST", "/v2.0/subnets", subnet(map[string]any{"cidr": "10.6.0.0/24", "allocation_pools": []any{map[string]any{"start": "10.6.0.20", "end": "10.6.0.10"}}}), 400, "InvalidAllocationPool", "is not valid"},
		{"pools overlap", "POST", "/v2.0/subnets", subnet(map[string]any{"cidr": "10.6.0.0/24", "allocation_pools": []any{map[string]any{"start": "10.6.0.10", "end": "10.6.0.20"}, map[string]any{"start": "10.6.0.15", "end": "10.6.0.30"}}}), 400, "OverlappingAllocationPools", "overlapping"},
		{"pool covers gateway", "POST", "/v2.0/subnets", subnet(map[string]any{"cidr": "10.6.0.0/24", "allocation_pools": []any{map[string]any{"start": "10.6.0.1", "end": "10.6.0.20"}}}), 409, "GatewayConflictWithAllocationPools", "10.6.0.1"},
		{"overlapping subnet", "POST", "/v2.0/subnets", subnet(map[string]any{"cidr": "10.0.0.128/25"}), 400, "InvalidInput", "overlaps with another subnet"},
		{"multicast cidr", "POST", "/v2.0/subnets", subnet(map[string]any{"cidr": "224.0.0.0/24"}), 400, "InvalidInput", "cidr 224.0.0.0/24 overlaps the multicast range 224.0.0.0/4"},
		{"multicast cidr without DHCP", "POST", "/v2.0/subnets", subnet(map[string]any{"cidr": "239.1.0.0/16", "enable_dhcp": false}), 400, "InvalidInput", "cidr 239.1.0.0/16 overlaps the multicast range"},
		{"loopback cidr", "POST", "/v2.0/subnets", subnet(map[string]any{"cidr": "127.0.0.0/24"}), 400, "InvalidInput", "cidr 127.0.0.0/24 overlaps the loopback range 127.0.0.0/8"},
		{"this-network cidr", "POST", "/v2.0/subnets", subnet(map[string]any{"cidr": "0.0.0.0/24", "enable_dhcp": false}), 400, "InvalidInput", "cidr 0.0.0.0/24 overlaps the \"this network\" range 0.0.0.0/8"},
		{"cidr covering loopback", "POST", "/v2.0/subnets", subnet(map[string]any{"cidr": "96.0.0.0/3"}), 400, "InvalidInput", "cidr 96.0.0.0/3 overlaps the loopback range"},
		{"reserved cidr", "POST", "/v2.0/subnets", subnet(map[string]any{"cidr": "240.0.0.0/24"}), 400, "InvalidInput", "cidr 240.0.0.0/24 overlaps the reserved range 240.0.0.0/4"},
		{"broadcast cidr", "POST", "/v2.0/subnets", subnet(map[string]any{"cidr": "255.255.255.0/24", "enable_dhcp": false}), 400, "InvalidInput", "overlaps the reserved range"},
		{"link-local cidr with DHCP", "POST", "/v2.0/subnets", subnet(map[string]any{"cidr": "169.254.20.0/24"}), 400, "InvalidInput", "cidr 169.254.20.0/24 overlaps the link-local range 169.254.0.0/16"},
		{"DHCP on a link-local subnet", "PUT", "/v2.0/subnets/" + linkLocal["id"].(string), map[string]any{"subnet": map[string]any{"enable_dhcp": true}}, 400, "InvalidInput", "link-local"},
		{"bad dns server", "POST", "/v2.0/subnets", subnet(map[string]any{"cidr": "10.6.0.0/24", "dns_nameservers": []any{"dns.example"}}), 400, "HTTPBadRequest", "not a valid IP address"},
		{"bad host route", "POST", "/v2.0/subnets", subnet(map[string]any{"cidr": "10.6.0.0/24", "host_routes": []any{map[string]any{"destination": "10.9.0.0/33", "nexthop": "10.6.0.9"}}}), 400, "HTTPBadRequest", "Invalid input for host_routes"},
		{"subnet on unknown network", "POST", "/v2.0/subnets", map[string]any{"subnet": map[string]any{"network_id": "nope", "cidr": "10.8.0.0/24"}}, 404, "NetworkNotFound", "Network nope could not be found."},
		{"fixed ip outside subnet", "POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": nid, "fixed_ips": []any{map[string]any{"subnet_id": sid, "ip_address": "10.9.9.9"}}}}, 400, "InvalidIpForSubnet", "10.9.9.9"},
		{"fixed ip in use", "POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": nid, "fixed_ips": []any{map[string]any{"ip_address": "10.0.0.50"}}}}, 409, "IpAddressAlreadyAllocated", "10.0.0.50"},
		{"fixed ip is gateway", "POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": nid, "fixed_ips": []any{map[string]any{"ip_address": "10.0.0.1"}}}}, 409, "IpAddressAlreadyAllocated", "10.0.0.1"},
		{"fixed ip subnet of other network", "POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": other["id"], "fixed_ips": []any{map[string]any{"subnet_id": sid}}}}, 400, "InvalidInput", "invalid subnet"},
		{"malformed mac", "POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": nid, "mac_address": "fa:16:3e:zz:00:01"}}, 400, "HTTPBadRequest", "not a valid MAC address"},
		{"multicast mac", "POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": nid, "mac_address": "01:00:5e:00:00:01"}}, 400, "HTTPBadRequest", "not a valid MAC address"},
		{"duplicate mac", "POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": nid, "mac_address": "FA:16:3E:00:00:01"}}, 409, "MacAddressInUse", "fa:16:3e:00:00:01"},
		{"bad interface name", "POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": nid, "device_id": inst["id"], "nsnet:interface_name": "this-name-is-too-long"}}, 400, "HTTPBadRequest", "longer than 15 bytes"},
		{"interface name taken", "POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": nid, "device_id": inst["id"], "nsnet:interface_name": "eth0"}}, 409, "InterfaceNameInUse", "eth0"},
		{"port on unknown network", "POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": "nope"}}, 404, "NetworkNotFound", "nope"},
		{"instance name not a netns name", "POST", "/v2.0/instances", map[string]any{"instance": map[string]any{"name": "red; rm -rf /"}}, 400, "HTTPBadRequest", "Invalid input for name"},
		{"instance name taken", "POST", "/v2.0/instances", map[string]any{"instance": map[string]any{"name": "red"}}, 409, "InstanceNameInUse", "red"},
		{"instance rename", "PUT", "/v2.0/instances/" + inst["id"].(string), map[string]any{"instance": map[string]any{"name": "blue"}}, 400, "HTTPBadRequest", "read-only attribute name"},
		{"unknown network", "GET", "/v2.0/networks/nope", nil, 404, "NetworkNotFound", "Network nope could not be found."},
		{"unknown port delete", "DELETE", "/v2.0/ports/nope", nil, 404, "PortNotFound", "Port nope could not be found."},
		{"network in use", "DELETE", "/v2.0/networks/" + nid, nil, 409, "NetworkInUse", "still in use"},
		{"subnet in use", "DELETE", "/v2.0/subnets/" + sid, nil, 409, "SubnetInUse", "IP allocation"},
		{"instance in use", "DELETE", "/v2.0/instances/" + inst["id"].(string), nil, 409, "InstanceInUse", "still has ports"},
		{"read-only on update", "PUT", "/v2.0/ports/" + taken["id"].(string), map[string]any{"port": map[string]any{"network_id": other["id"]}}, 400, "HTTPBadRequest", "read-only attribute network_id"},
		{"body too large", "POST", "/v2.0/networks", `{"network": {"name": "` + strings.Repeat("x", api.MaxBodyBytes) + `"}}`, 413, "HTTPRequestEntityTooLarge", "larger than"},
		{"unknown path", "GET", "/v2.0/widgets", nil, 404, "HTTPNotFound", "could not be found"},
	}
	h.checkRefusals(t, cases)
}

// refusal is a request the API must refuse with Neutron's status, type and
// (part of its) message.
type refusal struct {
	name, method, path string
	body               any
	status             int
	typ, inMessage     string
}

// checkRefusals sends each request and checks its refusal, and that the
// store did not change: a refused request leaves no partial state.
func (h *harness) checkRefusals(t *testing.T, cases []refusal) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := h.revision()
			r := h.do(tc.method, tc.path, tc.body)
			typ, msg := neutronError(r)
			if r.status != tc.status || typ != tc.typ || !strings.Contains(msg, tc.inMessage) {
				t.Errorf("got %d %s %q; want %d %s containing %q", r.status, typ, msg, tc.status, tc.typ, tc.inMessage)
			}
			if after := h.revision(); after != before {
				t.Errorf("store revision moved from %d to %d on a refused request", before, after)
			}
		})
	}
}

func TestPortAllocation(t *testing.T) {
	h := newHarness(t)
	n := h.create("networks", "network", map[string]any{"name": "net"})
	nid := n["id"].(string)
	// Without DHCP, so that no DHCP port takes an address.
	sn := h.create("subnets", "subnet", map[string]any{"network_id": nid, "cidr": "10.0.0.0/29", "enable_dhcp": false})
	inst := h.create("instances", "instance", map[string]any{"name": "vm"})

	p := h.create("ports", "port", map[string]any{"network_id": nid, "device_id": inst["id"]})
	ips := p["fixed_ips"].([]any)
	if len(ips) != 1 || ips[0].(map[string]any)["ip_address"] != "10.0.0.2" || ips[0].(map[string]any)["subnet_id"] != sn["id"] {
		t.Errorf("first port fixed_ips = %v, want 10.0.0.2 on the subnet", ips)
	}
	if p["device_owner"] != "compute:nsnet" || p["nsnet:interface_name"] != "eth0" || !strings.HasPrefix(p["mac_address"].(string), "fa:16:3e:") {
		t.Errorf("port = %v", p)
	}
	p2 := h.create("ports", "port", map[string]any{"network_id": nid, "device_id": inst["id"]})
	if p2["nsnet:interface_name"] != "eth1" {
		t.Errorf("second port of the instance is %v, want eth1", p2["nsnet:interface_name"])
	}
	// /29: .2-.6 usable minus the two above leaves three.
	for range 3 {
		h.create("ports", "port", map[string]any{"network_id": nid})
	}
	r := h.do("POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": nid}})
	if typ, _ := neutronError(r); r.status != 409 || typ != "IpAddressGenerationFailure" {
		t.Errorf("exhausted subnet: %d %s", r.status, typ)
	}
	// Deleting a port returns its address to the pool.
	if r := h.do("DELETE", "/v2.0/ports/"+p["id"].(string), nil); r.status != 204 {
		t.Fatalf("delete: %d", r.status)
	}
	again := h.create("ports", "port", map[string]any{"network_id": nid})
	if got := again["fixed_ips"].([]any)[0].(map[string]any)["ip_address"]; got != "10.0.0.2" {
		t.Errorf("reallocated %v, want the freed 10.0.0.2", got)
	}
}

func TestConcurrentPortCreatesNeverShareAnAddress(t *testing.T) {
	h := newHarness(t)
	n := h.create("networks", "network", map[string]any{"name": "net"})
	h.create("subnets", "subnet", map[string]any{"network_id": n["id"], "cidr": "10.0.0.0/26", "enable_dhcp": false})
	const workers = 80 // more than the 61 free addresses
	var wg sync.WaitGroup
	results := make([]response, workers)
	for i := range workers {
		wg.Go(func() {
			results[i] = h.do("POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": n["id"]}})
		})
	}
	wg.Wait()
	ips, macs := map[string]bool{}, map[string]bool{}
	created := 0
	for _, r := range results {
		switch r.status {
		case 201:
			created++
			p := r.body["port"].(map[string]any)
			ip := p["fixed_ips"].([]any)[0].(map[string]any)["ip_address"].(string)
			if ips[ip] || macs[p["mac_address"].(string)] {
				t.Errorf("duplicate allocation: %s %s", ip, p["mac_address"])
			}
			ips[ip], macs[p["mac_address"].(string)] = true, true
		case 409:
			if typ, _ := neutronError(r); typ != "IpAddressGenerationFailure" {
				t.Errorf("unexpected conflict %s", typ)
			}
		default:
			t.Errorf("unexpected status %d %v", r.status, r.body)
		}
	}
	if created != 61 {
		t.Errorf("created %d ports, want exactly the 61 free addresses", created)
	}
}

func TestListFiltersFieldsAndPages(t *testing.T) {
	h := newHarness(t)
	for _, name := range []string{"red", "green", "blue"} {
		h.create("networks", "network", map[string]any{"name": name, "shared": name == "blue"})
	}
	names := func(r response) []string {
		var out []string
		for _, n := range r.body["networks"].([]any) {
			out = append(out, fmt.Sprint(n.(map[string]any)["name"]))
		}
		return out
	}
	cases := []struct {
		query string
		want  string
	}{
		{"?name=red", "[red]"},
		{"?name=red&name=blue&sort_key=name", "[blue red]"},
		{"?shared=true", "[blue]"},
		{"?shared=False&sort_key=name&sort_dir=desc", "[red green]"},
		{"?sort_key=name&limit=2", "[blue green]"},
	}
	for _, tc := range cases {
		if got := fmt.Sprint(names(h.do("GET", "/v2.0/networks"+tc.query, nil))); got != tc.want {
			t.Errorf("%s: got %s, want %s", tc.query, got, tc.want)
		}
	}
	r := h.do("GET", "/v2.0/networks?fields=id&fields=name", nil)
	for _, n := range r.body["networks"].([]any) {
		if len(n.(map[string]any)) != 2 {
			t.Errorf("fields=id,name gave %v", n)
		}
	}
	page := h.do("GET", "/v2.0/networks?sort_key=name&limit=2", nil)
	links, _ := page.body["networks_links"].([]any)
	if !slices.ContainsFunc(links, func(l any) bool { return l.(map[string]any)["rel"] == "next" }) {
		t.Fatalf("no next link: %v", page.body)
	}
}

func TestTokenAuthentication(t *testing.T) {
	st := openStore(t, t.TempDir())
	s := api.New(api.Config{Service: service.New(service.Config{Store: st})})
	srv := httptest.NewServer(s.TokenHandler(api.StaticToken("s3cret")))
	defer srv.Close()
	for _, tc := range []struct {
		token string
		want  int
	}{{"", 401}, {"wrong", 401}, {"s3cret\xff\xfe", 401}, {"s3cret", 200}} {
		req, _ := http.NewRequest("GET", srv.URL+"/v2.0/networks", nil)
		if tc.token != "" {
			req.Header["X-Auth-Token"] = []string{tc.token}
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("token %q: %d, want %d", tc.token, resp.StatusCode, tc.want)
		}
	}
	resp, _ := http.Get(srv.URL + "/")
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("version document needs no token, got %d", resp.StatusCode)
	}
}

// TestDHCPPort: a network gets one DHCP port while a subnet of it serves
// DHCP, with an address from the end of each DHCP subnet's pools; the port
// goes with DHCP, cannot be deleted on its own, and a subnet that has no
// address left for it cannot enable DHCP.
func TestDHCPPort(t *testing.T) {
	h := newHarness(t)
	nid := h.create("networks", "network", map[string]any{"name": "net"})["id"].(string)
	sn := h.create("subnets", "subnet", map[string]any{"network_id": nid, "cidr": "10.0.0.0/24"})
	dhcpPorts := func() []any {
		r := h.do("GET", "/v2.0/ports?device_owner=network:dhcp&network_id="+nid, nil)
		return r.body["ports"].([]any)
	}
	ports := dhcpPorts()
	if len(ports) != 1 {
		t.Fatalf("DHCP ports %v, want one", ports)
	}
	p := ports[0].(map[string]any)
	ips := p["fixed_ips"].([]any)
	if len(ips) != 1 || ips[0].(map[string]any)["ip_address"] != "10.0.0.254" {
		t.Errorf("DHCP port fixed_ips %v, want 10.0.0.254", ips)
	}
	if id := p["device_id"].(string); !strings.HasPrefix(id, "dhcp") || !strings.HasSuffix(id, "-"+nid) {
		t.Errorf("device_id %q, want dhcp<host>-%s", id, nid)
	}
	// Instances still get addresses from the start.
	inst := h.create("ports", "port", map[string]any{"network_id": nid})
	if got := inst["fixed_ips"].([]any)[0].(map[string]any)["ip_address"]; got != "10.0.0.2" {
		t.Errorf("first instance port got %v, want 10.0.0.2", got)
	}
	if r := h.do("DELETE", "/v2.0/ports/"+p["id"].(string), nil); r.status != 409 {
		t.Errorf("delete DHCP port: %d, want 409", r.status)
	}
	// A second DHCP subnet gives the same port a second address.
	h.create("subnets", "subnet", map[string]any{"network_id": nid, "cidr": "10.0.1.0/24"})
	if ips := dhcpPorts()[0].(map[string]any)["fixed_ips"].([]any); len(ips) != 2 {
		t.Errorf("DHCP port on two subnets has %v", ips)
	}
	// Full pool: DHCP cannot be enabled, and nothing changes.
	full := h.create("subnets", "subnet", map[string]any{"network_id": nid, "cidr": "10.0.2.0/24", "enable_dhcp": false,
		"allocation_pools": []any{map[string]any{"start": "10.0.2.10", "end": "10.0.2.10"}}})
	h.create("ports", "port", map[string]any{"network_id": nid, "fixed_ips": []any{map[string]any{"subnet_id": full["id"]}}})
	r := h.do("PUT", "/v2.0/subnets/"+full["id"].(string), map[string]any{"subnet": map[string]any{"enable_dhcp": true}})
	if typ, msg := neutronError(r); r.status != 409 || typ != "IpAddressGenerationFailure" || !strings.Contains(msg, "DHCP port") {
		t.Errorf("enable_dhcp on a full subnet: %d %s %s", r.status, typ, msg)
	}
	if got := h.do("GET", "/v2.0/subnets/"+full["id"].(string), nil).body["subnet"].(map[string]any)["enable_dhcp"]; got != false {
		t.Errorf("refused enable_dhcp left enable_dhcp=%v", got)
	}
	// DHCP off everywhere: the port goes.
	for _, id := range []string{sn["id"].(string)} {
		h.do("PUT", "/v2.0/subnets/"+id, map[string]any{"subnet": map[string]any{"enable_dhcp": false}})
	}
	if ips := dhcpPorts()[0].(map[string]any)["fixed_ips"].([]any); len(ips) != 1 || ips[0].(map[string]any)["ip_address"] != "10.0.1.254" {
		t.Errorf("after disabling DHCP on the first subnet: %v", ips)
	}
	r = h.do("GET", "/v2.0/subnets?cidr=10.0.1.0/24", nil)
	second := r.body["subnets"].([]any)[0].(map[string]any)["id"].(string)
	h.do("PUT", "/v2.0/subnets/"+second, map[string]any{"subnet": map[string]any{"enable_dhcp": false}})
	if ports := dhcpPorts(); len(ports) != 0 {
		t.Errorf("DHCP ports with DHCP off everywhere: %v", ports)
	}
}

// TestJSONFormatSuffix: Neutron accepts ".json" after any path, and
// tempest's quota client uses it.
func TestJSONFormatSuffix(t *testing.T) {
	h := newHarness(t)
	n := h.create("networks", "network", map[string]any{"name": "n"})
	for path, key := range map[string]string{
		"/v2.0/quotas/admin/details.json":              "quota",
		"/v2.0/networks.json":                          "networks",
		"/v2.0/networks/" + n["id"].(string) + ".json": "network",
	} {
		r := h.do("GET", path, nil)
		if _, ok := r.body[key]; r.status != 200 || !ok {
			t.Errorf("GET %s: %d %v, want 200 with %q", path, r.status, r.body, key)
		}
	}
}

// openStore opens a store in dir for tb, closed when tb ends: a bbolt file,
// or with NSNET_TEST_STORE=etcd a prefix of its own in a real etcd (see
// storetest.Open). Every Update on it runs its function twice, the first
// run rolled back, as etcd does on a conflict: the whole suite checks that
// the service's transactions are retry-safe.
func openStore(tb testing.TB, dir string) store.Store {
	tb.Helper()
	return store.NewRetrying(storetest.Open(tb, dir))
}
