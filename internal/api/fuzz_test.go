package api_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/nsnet/nsnet/internal/api"
	"github.com/nsnet/nsnet/internal/service"
)

// FuzzWrites sends arbitrary bodies to every create and update: the API
// never fails with a 500 or a panic, always answers JSON, and every refusal
// is a Neutron error with a type and a message.
func FuzzWrites(f *testing.F) {
	st := openStore(f, f.TempDir())
	svc := service.New(service.Config{Store: st, NetnsPrefix: "f-"})
	srv := httptest.NewServer(api.New(api.Config{Service: svc, Status: func() any { return nil }}).TrustedHandler())
	f.Cleanup(srv.Close)

	post := func(path, body string) map[string]any {
		resp, err := http.Post(srv.URL+path, "application/json", bytes.NewReader([]byte(body)))
		if err != nil {
			f.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		json.NewDecoder(resp.Body).Decode(&m)
		return m
	}
	net := post("/v2.0/networks", `{"network": {"name": "n", "router:external": true}}`)["network"].(map[string]any)["id"].(string)
	post("/v2.0/subnets", `{"subnet": {"network_id": "`+net+`", "cidr": "10.0.0.0/24"}}`)
	router := post("/v2.0/routers", `{"router": {"name": "r"}}`)["router"].(map[string]any)["id"].(string)

	targets := []struct{ method, path string }{
		{"POST", "/v2.0/networks"}, {"POST", "/v2.0/subnets"}, {"POST", "/v2.0/ports"},
		{"POST", "/v2.0/instances"}, {"POST", "/v2.0/routers"}, {"POST", "/v2.0/floatingips"},
		{"POST", "/v2.0/rbac-policies"}, {"PUT", "/v2.0/networks/" + net}, {"PUT", "/v2.0/routers/" + router},
		{"PUT", "/v2.0/routers/" + router + "/add_router_interface"}, {"PUT", "/v2.0/quotas/admin"},
	}
	for i, seed := range []string{
		`{"network": {"name": "x", "mtu": 1400}}`,
		`{"subnet": {"network_id": "` + net + `", "cidr": "10.1.0.0/24", "allocation_pools": [{"start": "10.1.0.5", "end": "10.1.0.9"}], "host_routes": [{"destination": "10.9.0.0/16", "nexthop": "10.1.0.9"}]}}`,
		`{"port": {"network_id": "` + net + `", "fixed_ips": [{"ip_address": "10.0.0.7"}], "mac_address": "fa:16:3e:00:00:07"}}`,
		`{"instance": {"name": "vm1"}}`,
		`{"router": {"name": "r2", "external_gateway_info": {"network_id": "` + net + `", "enable_snat": false}}}`,
		`{"floatingip": {"floating_network_id": "` + net + `", "floating_ip_address": "10.0.0.50"}}`,
		`{"rbac_policy": {"object_type": "network", "object_id": "` + net + `", "action": "access_as_shared", "target_tenant": "*"}}`,
		`{"network": {"name": "renamed", "admin_state_up": false}}`,
		`{"router": {"routes": [{"destination": "10.8.0.0/16", "nexthop": "10.0.0.9"}]}}`,
		`{"subnet_id": "nope"}`,
		`{"quota": {"network": 100}}`,
	} {
		f.Add(uint8(i), []byte(seed))
	}
	f.Fuzz(func(t *testing.T, target uint8, body []byte) {
		to := targets[int(target)%len(targets)]
		req, _ := http.NewRequest(to.method, srv.URL+to.path, bytes.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode >= 500 {
			t.Fatalf("%s %s %q: %d %s", to.method, to.path, body, resp.StatusCode, raw)
		}
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("%s %s %q: answer is not JSON: %q", to.method, to.path, body, raw)
		}
		if resp.StatusCode >= 400 {
			e, _ := m["NeutronError"].(map[string]any)
			if e["type"] == "" || e["message"] == "" || e["type"] == nil || e["message"] == nil {
				t.Fatalf("%s %s %q: refusal without a Neutron error: %s", to.method, to.path, body, raw)
			}
		}
	})
}
