package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/nsnet/nsnet/internal/api"
	"github.com/nsnet/nsnet/internal/auth"
	"github.com/nsnet/nsnet/internal/service"
)

// The callers of the policy tests: a member and a reader of project alpha,
// which owns the resources under test, a member of project beta, and an
// admin (of project admin).
const (
	owner  = "owner"
	other  = "other"
	reader = "reader"
	admin  = "admin"
)

const testTokens = `
- {token: tok-admin, project_id: admin, user_id: root, roles: [admin]}
- {token: tok-owner, project_id: alpha, project_name: Alpha, user_id: alice, roles: [member]}
- {token: tok-reader, project_id: alpha, user_id: rita, roles: [reader]}
- {token: tok-other, project_id: beta, project_name: Beta, user_id: bob, roles: [member]}
`

// tenants is the API behind a tokens file, over a real service and store.
type tenants struct {
	t   *testing.T
	srv *httptest.Server
}

func newTenants(t *testing.T, quotas map[string]int) *tenants {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "tokens.yaml")
	if err := os.WriteFile(path, []byte(testTokens), 0o600); err != nil {
		t.Fatal(err)
	}
	tokens, err := auth.LoadTokens(path)
	if err != nil {
		t.Fatal(err)
	}
	st := openStore(t, dir)
	svc := service.New(service.Config{Store: st, NetnsPrefix: "t-", Quotas: quotas})
	s := api.New(api.Config{Service: svc, Projects: tokens.Projects, Status: func() any { return map[string]any{} }})
	srv := httptest.NewServer(s.TokenHandler(tokens))
	t.Cleanup(srv.Close)
	return &tenants{t: t, srv: srv}
}

// as sends one request as who and decodes the answer.
func (h *tenants) as(who, method, path string, body any) response {
	h.t.Helper()
	var rd io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rd = bytes.NewReader(raw)
	}
	req, _ := http.NewRequest(method, h.srv.URL+path, rd)
	req.Header.Set("X-Auth-Token", "tok-"+who)
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

func (h *tenants) create(who, collection, singular string, attrs map[string]any) string {
	h.t.Helper()
	r := h.as(who, "POST", "/v2.0/"+collection, map[string]any{singular: attrs})
	if r.status != 201 {
		h.t.Fatalf("%s creates %s: %d %v", who, singular, r.status, r.body)
	}
	return r.body[singular].(map[string]any)["id"].(string)
}

// fixture is what project alpha owns when each policy case starts.
type fixture struct {
	netA, subnetA, instA, portA string // in use: a network with a subnet and a plugged port
	netSpare, subnetSpare       string // deletable
	instSpare, rbacA            string
	groupA, ruleA               string // a security group no port uses, and one of its rules
}

func (h *tenants) alphaFixture() fixture {
	var f fixture
	f.netA = h.create(owner, "networks", "network", map[string]any{"name": "net-a"})
	f.subnetA = h.create(owner, "subnets", "subnet", map[string]any{"network_id": f.netA, "cidr": "10.0.0.0/24"})
	f.instA = h.create(owner, "instances", "instance", map[string]any{"name": "red"})
	f.portA = h.create(owner, "ports", "port", map[string]any{"network_id": f.netA, "device_id": f.instA})
	f.subnetSpare = h.create(owner, "subnets", "subnet", map[string]any{"network_id": f.netA, "cidr": "10.1.0.0/24"})
	f.netSpare = h.create(owner, "networks", "network", map[string]any{"name": "spare"})
	f.instSpare = h.create(owner, "instances", "instance", map[string]any{"name": "spare"})
	f.rbacA = h.create(owner, "rbac-policies", "rbac_policy", map[string]any{
		"object_type": "network", "object_id": f.netA, "action": "access_as_shared", "target_tenant": "gamma"})
	f.groupA = h.create(owner, "security-groups", "security_group", map[string]any{"name": "web"})
	f.ruleA = h.create(owner, "security-group-rules", "security_group_rule", map[string]any{
		"security_group_id": f.groupA, "direction": "ingress", "protocol": "tcp", "port_range_min": 80, "port_range_max": 80})
	return f
}

// TestPolicy runs every operation on every resource as each kind of caller,
// on a resource of project alpha, and checks the status Neutron's default
// policies give: the owner does everything, a reader of the project reads,
// another project's member cannot even see it (404, not 403), and an admin
// does everything everywhere.
func TestPolicy(t *testing.T) {
	type resource struct {
		collection, singular string
		target               func(fixture) string         // the resource shown, updated, deleted
		createBody           func(fixture) map[string]any // created in the caller's own project
		updateBody           map[string]any
	}
	resources := []resource{
		{"networks", "network", func(f fixture) string { return f.netSpare },
			func(fixture) map[string]any { return map[string]any{"name": "n"} }, map[string]any{"name": "x"}},
		{"subnets", "subnet", func(f fixture) string { return f.subnetSpare },
			func(f fixture) map[string]any { return map[string]any{"network_id": f.netA, "cidr": "10.2.0.0/24"} },
			map[string]any{"name": "x"}},
		{"ports", "port", func(f fixture) string { return f.portA },
			func(f fixture) map[string]any { return map[string]any{"network_id": f.netA} }, map[string]any{"name": "x"}},
		{"instances", "instance", func(f fixture) string { return f.instSpare },
			func(fixture) map[string]any { return map[string]any{"name": "new"} }, map[string]any{"description": "x"}},
		{"rbac-policies", "rbac_policy", func(f fixture) string { return f.rbacA },
			func(f fixture) map[string]any {
				return map[string]any{"object_type": "network", "object_id": f.netSpare, "action": "access_as_shared", "target_tenant": "delta"}
			},
			map[string]any{"target_tenant": "epsilon"}},
		{"security-groups", "security_group", func(f fixture) string { return f.groupA },
			func(fixture) map[string]any { return map[string]any{"name": "db"} }, map[string]any{"description": "x"}},
		{"security-group-rules", "security_group_rule", func(f fixture) string { return f.ruleA },
			func(f fixture) map[string]any {
				return map[string]any{"security_group_id": f.groupA, "direction": "egress", "protocol": "udp"}
			},
			map[string]any{"description": "x"}},
	}
	// want[op][caller] is the status; for list, 200 means "listed" and
	// 404 "left out of the list". Creating on alpha's network fails for
	// beta with 404: the network is not visible to it.
	want := map[string]map[string]int{
		"list":   {owner: 200, other: 404, reader: 200, admin: 200},
		"show":   {owner: 200, other: 404, reader: 200, admin: 200},
		"create": {owner: 201, other: 201, reader: 403, admin: 201},
		"update": {owner: 200, other: 404, reader: 403, admin: 200},
		"delete": {owner: 204, other: 404, reader: 403, admin: 204},
	}
	createOnAlpha := map[string]bool{"subnets": true, "ports": true, "rbac-policies": true, "security-group-rules": true}

	for _, res := range resources {
		for _, op := range []string{"list", "show", "create", "update", "delete"} {
			for _, who := range []string{owner, other, reader, admin} {
				expect := want[op][who]
				if op == "create" && who == other && createOnAlpha[res.collection] {
					expect = 404
				}
				t.Run(fmt.Sprintf("%s/%s/%s", res.collection, op, who), func(t *testing.T) {
					h := newTenants(t, nil)
					f := h.alphaFixture()
					id := res.target(f)
					var r response
					switch op {
					case "list":
						r = h.as(who, "GET", "/v2.0/"+res.collection, nil)
						if r.status != 200 {
							t.Fatalf("list: %d %v", r.status, r.body)
						}
						r.status = 404
						key := res.singular + "s"
						if res.collection == "rbac-policies" {
							key = "rbac_policies"
						}
						for _, it := range r.body[key].([]any) {
							if it.(map[string]any)["id"] == id {
								r.status = 200
							}
						}
					case "show":
						r = h.as(who, "GET", "/v2.0/"+res.collection+"/"+id, nil)
					case "create":
						r = h.as(who, "POST", "/v2.0/"+res.collection, map[string]any{res.singular: res.createBody(f)})
					case "update":
						r = h.as(who, "PUT", "/v2.0/"+res.collection+"/"+id, map[string]any{res.singular: res.updateBody})
					case "delete":
						r = h.as(who, "DELETE", "/v2.0/"+res.collection+"/"+id, nil)
					}
					if r.status != expect {
						t.Fatalf("status %d, want %d: %v", r.status, expect, r.body)
					}
					typ, _ := neutronError(r)
					if r.status == 403 && typ != "PolicyNotAuthorized" {
						t.Errorf("403 of type %q, want PolicyNotAuthorized", typ)
					}
					if op == "create" && r.status == 201 {
						got := r.body[res.singular].(map[string]any)
						project := map[string]string{owner: "alpha", other: "beta", admin: "admin"}[who]
						if res.collection == "security-group-rules" {
							project = "alpha" // a rule is its group's, whoever adds it
						}
						if got["project_id"] != project || got["tenant_id"] != project {
							t.Errorf("created in project %v/%v, want %s", got["project_id"], got["tenant_id"], project)
						}
					}
				})
			}
		}
	}
}

// TestSharedAndExternalNetworks: a shared network is visible to every
// project and takes their ports, but only its owner (or an admin) changes
// it; an external one is visible but takes no other project's ports.
func TestSharedAndExternalNetworks(t *testing.T) {
	h := newTenants(t, nil)
	shared := h.create(admin, "networks", "network", map[string]any{"name": "public", "shared": true, "project_id": "alpha"})
	external := h.create(admin, "networks", "network", map[string]any{"name": "ext", "router:external": true})
	sharedSubnet := h.create(owner, "subnets", "subnet", map[string]any{"network_id": shared, "cidr": "10.9.0.0/24"})
	extSubnet := h.create(admin, "subnets", "subnet", map[string]any{"network_id": external, "cidr": "198.51.100.0/24"})
	inst := h.create(other, "instances", "instance", map[string]any{"name": "red"})
	ownPort := h.create(owner, "ports", "port", map[string]any{"network_id": shared, "mac_address": "fa:16:3e:00:00:aa"})

	tests := []struct {
		name, who, method, path string
		body                    any
		status                  int
		errType                 string
	}{
		{"beta sees the shared network", other, "GET", "/v2.0/networks/" + shared, nil, 200, ""},
		{"beta sees the external network", other, "GET", "/v2.0/networks/" + external, nil, 200, ""},
		{"beta sees the shared network's subnet", other, "GET", "/v2.0/subnets/" + sharedSubnet, nil, 200, ""},
		{"but not the external network's", other, "GET", "/v2.0/subnets/" + extSubnet, nil, 404, "SubnetNotFound"},
		{"beta plugs a port into the shared network", other, "POST", "/v2.0/ports",
			map[string]any{"port": map[string]any{"network_id": shared, "device_id": inst}}, 201, ""},
		{"beta may not turn port security off on it", other, "POST", "/v2.0/ports",
			map[string]any{"port": map[string]any{"network_id": shared, "port_security_enabled": false}}, 403, "PolicyNotAuthorized"},
		{"nor give a port address pairs there", other, "POST", "/v2.0/ports",
			map[string]any{"port": map[string]any{"network_id": shared, "allowed_address_pairs": []any{map[string]any{"ip_address": "10.9.0.200"}}}}, 403, "PolicyNotAuthorized"},
		{"nor choose a MAC there", other, "POST", "/v2.0/ports",
			map[string]any{"port": map[string]any{"network_id": shared, "mac_address": "fa:16:3e:00:00:bb"}}, 403, "PolicyNotAuthorized"},
		{"the network's owner may not change a port's MAC", owner, "PUT", "/v2.0/ports/" + ownPort,
			map[string]any{"port": map[string]any{"mac_address": "fa:16:3e:00:00:cc"}}, 403, "PolicyNotAuthorized"},
		{"nor have it regenerated", owner, "PUT", "/v2.0/ports/" + ownPort,
			map[string]any{"port": map[string]any{"mac_address": nil}}, 403, "PolicyNotAuthorized"},
		{"the admin may", admin, "PUT", "/v2.0/ports/" + ownPort,
			map[string]any{"port": map[string]any{"mac_address": nil}}, 200, ""},
		{"beta may not rename it", other, "PUT", "/v2.0/networks/" + shared,
			map[string]any{"network": map[string]any{"name": "mine"}}, 403, "PolicyNotAuthorized"},
		{"beta may not delete it", other, "DELETE", "/v2.0/networks/" + shared, nil, 403, "PolicyNotAuthorized"},
		{"beta may not add subnets to it", other, "POST", "/v2.0/subnets",
			map[string]any{"subnet": map[string]any{"network_id": shared, "cidr": "10.8.0.0/24"}}, 403, "PolicyNotAuthorized"},
		{"beta may not put ports on an external network", other, "POST", "/v2.0/ports",
			map[string]any{"port": map[string]any{"network_id": external}}, 403, "ExternalNetworkAttachForbidden"},
		{"the owner may not unshare it while beta uses it", admin, "PUT", "/v2.0/networks/" + shared,
			map[string]any{"network": map[string]any{"shared": false}}, 409, "InvalidSharedSetting"},
		{"a member may not share", owner, "POST", "/v2.0/networks",
			map[string]any{"network": map[string]any{"shared": true}}, 403, "PolicyNotAuthorized"},
		{"a member may not make a network external", owner, "POST", "/v2.0/networks",
			map[string]any{"network": map[string]any{"router:external": true}}, 403, "PolicyNotAuthorized"},
		{"the owner may not set shared either", owner, "PUT", "/v2.0/networks/" + shared,
			map[string]any{"network": map[string]any{"shared": true}}, 403, "PolicyNotAuthorized"},
		{"a member may not create in another project", owner, "POST", "/v2.0/networks",
			map[string]any{"network": map[string]any{"project_id": "beta"}}, 400, "HTTPBadRequest"},
		{"nor put a port of another project on its network", owner, "POST", "/v2.0/ports",
			map[string]any{"port": map[string]any{"network_id": shared, "project_id": "gamma"}}, 400, "HTTPBadRequest"},
		{"a member may not share with every project", owner, "POST", "/v2.0/rbac-policies",
			map[string]any{"rbac_policy": map[string]any{"object_type": "network", "object_id": shared,
				"action": "access_as_shared", "target_tenant": "*"}}, 403, "PolicyNotAuthorized"},
		{"beta may not share alpha's network on", other, "POST", "/v2.0/rbac-policies",
			map[string]any{"rbac_policy": map[string]any{"object_type": "network", "object_id": shared,
				"action": "access_as_shared", "target_tenant": "beta"}}, 400, "InvalidInput"},
		{"an unknown action", owner, "POST", "/v2.0/rbac-policies",
			map[string]any{"rbac_policy": map[string]any{"object_type": "network", "object_id": shared,
				"action": "access_as_owner", "target_tenant": "beta"}}, 400, "HTTPBadRequest"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.as(tt.who, tt.method, tt.path, tt.body)
			if typ, msg := neutronError(r); r.status != tt.status || typ != tt.errType {
				t.Fatalf("got %d %s (%s), want %d %s", r.status, typ, msg, tt.status, tt.errType)
			}
		})
	}

	// The network's owner sees beta's port on it and may delete it, not
	// change it (Neutron's get_port and delete_port:
	// admin_owner_or_network_owner).
	betaPorts := h.as(admin, "GET", "/v2.0/ports?network_id="+shared+"&project_id=beta", nil).body["ports"].([]any)
	if len(betaPorts) != 1 {
		t.Fatalf("beta's ports on the shared network: %v", betaPorts)
	}
	betaPort := betaPorts[0].(map[string]any)["id"].(string)
	for _, attrs := range []map[string]any{{"port_security_enabled": true}, {"allowed_address_pairs": []any{}}} {
		r := h.as(other, "PUT", "/v2.0/ports/"+betaPort, map[string]any{"port": attrs})
		if typ, _ := neutronError(r); r.status != 403 || typ != "PolicyNotAuthorized" {
			t.Errorf("beta updates %v on the shared network: %d %v, want 403", attrs, r.status, r.body)
		}
	}
	if r := h.as(owner, "POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": shared, "port_security_enabled": false}}); r.status != 201 {
		t.Errorf("the network's owner turns port security off: %d %v", r.status, r.body)
	}
	if r := h.as(owner, "GET", "/v2.0/ports?network_id="+shared+"&project_id=beta", nil); len(r.body["ports"].([]any)) != 1 {
		t.Errorf("the network's owner lists %v, want beta's port", r.body)
	}
	for _, c := range []struct {
		method string
		body   any
		status int
	}{
		{"GET", nil, 200},
		{"PUT", map[string]any{"port": map[string]any{"name": "x"}}, 403},
		{"DELETE", nil, 204},
	} {
		if r := h.as(owner, c.method, "/v2.0/ports/"+betaPort, c.body); r.status != c.status {
			t.Errorf("the network's owner: %s beta's port: %d %v, want %d", c.method, r.status, r.body, c.status)
		}
	}
	if r := h.as(reader, "GET", "/v2.0/ports/"+betaPort, nil); r.status != 404 {
		t.Errorf("deleted port: %d", r.status)
	}

	// `shared` is as the caller sees it: a network shared with one
	// project is shared for that project only.
	private := h.create(owner, "networks", "network", map[string]any{"name": "private"})
	h.create(owner, "rbac-policies", "rbac_policy", map[string]any{
		"object_type": "network", "object_id": private, "action": "access_as_shared", "target_tenant": "beta"})
	for who, want := range map[string]bool{owner: false, other: true} {
		r := h.as(who, "GET", "/v2.0/networks/"+private, nil)
		if got := r.body["network"].(map[string]any)["shared"]; got != want {
			t.Errorf("%s sees shared=%v, want %v", who, got, want)
		}
	}
	if r := h.as(other, "GET", "/v2.0/networks?shared=true", nil); len(r.body["networks"].([]any)) != 2 {
		t.Errorf("beta lists %d shared networks, want 2 (public and private): %v", len(r.body["networks"].([]any)), r.body)
	}
	if r := h.as(other, "GET", "/v2.0/subnets?network_id="+external, nil); len(r.body["subnets"].([]any)) != 0 {
		t.Errorf("beta lists the external network's subnets: %v", r.body)
	}
	// The project a policy targets does not see the policy.
	if r := h.as(other, "GET", "/v2.0/rbac-policies", nil); len(r.body["rbac_policies"].([]any)) != 0 {
		t.Errorf("beta sees RBAC policies: %v", r.body)
	}
}

func TestQuotas(t *testing.T) {
	h := newTenants(t, map[string]int{"network": 3})

	r := h.as(owner, "GET", "/v2.0/quotas/alpha", nil)
	q := r.body["quota"].(map[string]any)
	if r.status != 200 || q["network"] != 3.0 || q["port"] != 500.0 || q["security_group_rule"] != 100.0 {
		t.Fatalf("alpha's quota: %d %v", r.status, r.body)
	}
	for i := 0; i < 3; i++ {
		h.create(owner, "networks", "network", map[string]any{"name": fmt.Sprint(i)})
	}
	r = h.as(owner, "POST", "/v2.0/networks", map[string]any{"network": map[string]any{}})
	if typ, msg := neutronError(r); r.status != 409 || typ != "OverQuota" || msg != "Quota exceeded for resources: ['network']." {
		t.Fatalf("over quota: %d %s %q", r.status, typ, msg)
	}
	if r := h.as(admin, "GET", "/v2.0/networks", nil); len(r.body["networks"].([]any)) != 3 {
		t.Fatalf("a refused create left %d networks, want 3", len(r.body["networks"].([]any)))
	}
	// Another project has its own count.
	h.create(other, "networks", "network", map[string]any{})

	details := h.as(owner, "GET", "/v2.0/quotas/alpha/details", nil).body["quota"].(map[string]any)
	if n := details["network"].(map[string]any); n["limit"] != 3.0 || n["used"] != 3.0 || n["reserved"] != 0.0 {
		t.Errorf("details: %v", details)
	}
	if r := h.as(owner, "GET", "/v2.0/quotas/alpha/default", nil); r.body["quota"].(map[string]any)["network"] != 3.0 {
		t.Errorf("default: %v", r.body)
	}

	tests := []struct {
		name, who, method, path string
		body                    any
		status                  int
		errType                 string
	}{
		{"a member may not read another project's quota", owner, "GET", "/v2.0/quotas/beta", nil, 403, "AdminRequired"},
		{"a member may not set quotas", owner, "PUT", "/v2.0/quotas/alpha",
			map[string]any{"quota": map[string]any{"network": 10}}, 403, "PolicyNotAuthorized"},
		{"a member may not reset quotas", owner, "DELETE", "/v2.0/quotas/alpha", nil, 403, "PolicyNotAuthorized"},
		{"negative", admin, "PUT", "/v2.0/quotas/alpha", map[string]any{"quota": map[string]any{"network": -2}}, 400, "HTTPBadRequest"},
		{"not an integer", admin, "PUT", "/v2.0/quotas/alpha", map[string]any{"quota": map[string]any{"port": "lots"}}, 400, "HTTPBadRequest"},
		{"a fraction", admin, "PUT", "/v2.0/quotas/alpha", map[string]any{"quota": map[string]any{"port": 2.5}}, 400, "HTTPBadRequest"},
		{"unknown resource", admin, "PUT", "/v2.0/quotas/alpha", map[string]any{"quota": map[string]any{"volumes": 2}}, 400, "HTTPBadRequest"},
		{"below usage with check_limit", admin, "PUT", "/v2.0/quotas/alpha",
			map[string]any{"quota": map[string]any{"network": 1, "check_limit": true}}, 400, "HTTPBadRequest"},
		{"no POST", admin, "POST", "/v2.0/quotas", map[string]any{"quota": map[string]any{}}, 501, "HTTPNotImplemented"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.as(tt.who, tt.method, tt.path, tt.body)
			if typ, msg := neutronError(r); r.status != tt.status || typ != tt.errType {
				t.Fatalf("got %d %s (%s), want %d %s", r.status, typ, msg, tt.status, tt.errType)
			}
		})
	}
	if r := h.as(admin, "GET", "/v2.0/quotas/alpha", nil); r.body["quota"].(map[string]any)["network"] != 3.0 {
		t.Fatalf("a refused update changed the quota: %v", r.body)
	}

	r = h.as(admin, "PUT", "/v2.0/quotas/alpha", map[string]any{"quota": map[string]any{"network": "5", "port": -1}})
	if q := r.body["quota"].(map[string]any); r.status != 200 || q["network"] != 5.0 || q["port"] != -1.0 {
		t.Fatalf("update: %d %v", r.status, r.body)
	}
	list := h.as(admin, "GET", "/v2.0/quotas", nil).body["quotas"].([]any)
	if len(list) != 1 || list[0].(map[string]any)["project_id"] != "alpha" || list[0].(map[string]any)["network"] != 5.0 {
		t.Errorf("list of non-default quotas: %v", list)
	}
	if r := h.as(admin, "DELETE", "/v2.0/quotas/alpha", nil); r.status != 204 {
		t.Fatalf("reset: %d %v", r.status, r.body)
	}
	if r := h.as(admin, "GET", "/v2.0/quotas/alpha", nil); r.body["quota"].(map[string]any)["network"] != 3.0 {
		t.Errorf("after reset: %v", r.body)
	}
	if r := h.as(reader, "GET", "/v2.0/quotas/tenant", nil); r.body["tenant"].(map[string]any)["tenant_id"] != "alpha" {
		t.Errorf("quotas/tenant: %v", r.body)
	}
}

// TestQuotaUnderConcurrentCreates: the count and the create are one
// serializable transaction, so 50 concurrent creates against a quota of 10
// make exactly 10.
func TestQuotaUnderConcurrentCreates(t *testing.T) {
	h := newTenants(t, nil)
	netID := h.create(owner, "networks", "network", map[string]any{})
	h.create(owner, "subnets", "subnet", map[string]any{"network_id": netID, "cidr": "10.0.0.0/24"})
	if r := h.as(admin, "PUT", "/v2.0/quotas/alpha", map[string]any{"quota": map[string]any{"port": 10}}); r.status != 200 {
		t.Fatalf("set quota: %d %v", r.status, r.body)
	}
	statuses := make(chan int, 50)
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses <- h.as(owner, "POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": netID}}).status
		}()
	}
	wg.Wait()
	close(statuses)
	count := map[int]int{}
	for s := range statuses {
		count[s]++
	}
	if count[201] != 10 || count[409] != 40 {
		t.Fatalf("statuses %v, want 10×201 and 40×409", count)
	}
	// The network's DHCP port is not the project's to count.
	if r := h.as(owner, "GET", "/v2.0/ports?device_owner=network:dhcp", nil); len(r.body["ports"].([]any)) != 1 {
		t.Fatalf("%d DHCP ports exist, want 1", len(r.body["ports"].([]any)))
	}
	if r := h.as(owner, "GET", "/v2.0/ports", nil); len(r.body["ports"].([]any)) != 11 {
		t.Fatalf("%d ports exist, want 10 and the DHCP port", len(r.body["ports"].([]any)))
	}
}

func TestTokensAuthenticate(t *testing.T) {
	h := newTenants(t, nil)
	for _, tt := range []struct {
		name, token string
		status      int
	}{
		{"known", "tok-owner", 200},
		{"unknown", "tok-nobody", 401},
		{"missing", "", 401},
		{"high bytes", "tok-owner\x80\xff", 401},
		{"inner space", "tok owner", 401},
		{"very long", string(bytes.Repeat([]byte("a"), 9<<10)), 401},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", h.srv.URL+"/v2.0/networks", nil)
			if tt.token != "" {
				req.Header["X-Auth-Token"] = []string{tt.token}
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
		})
	}
}

// The identity look-ups of the OpenStack CLI, answered from the tokens
// file with Keystone's default policy.
func TestProjectLookups(t *testing.T) {
	h := newTenants(t, nil)
	tests := []struct {
		who, path string
		status    int
		wantID    string
	}{
		{admin, "/projects/alpha", 200, "alpha"},
		{admin, "/v3/projects/beta", 200, "beta"},
		{admin, "/projects/nope", 404, ""},
		{owner, "/projects/alpha", 200, "alpha"},
		{owner, "/projects/beta", 403, ""},
		{owner, "/projects/nope", 403, ""},
		{owner, "/projects?name=Beta", 403, ""},
		{admin, "/projects?name=Beta", 200, "beta"},
	}
	for _, tt := range tests {
		r := h.as(tt.who, "GET", tt.path, nil)
		if r.status != tt.status {
			t.Errorf("%s GET %s: %d, want %d: %v", tt.who, tt.path, r.status, tt.status, r.body)
			continue
		}
		var id any
		if p, ok := r.body["project"].(map[string]any); ok {
			id = p["id"]
		}
		if ps, ok := r.body["projects"].([]any); ok && len(ps) == 1 {
			id = ps[0].(map[string]any)["id"]
		}
		if tt.wantID != "" && id != tt.wantID {
			t.Errorf("%s GET %s: id %v, want %s", tt.who, tt.path, id, tt.wantID)
		}
	}
}

// TestExternalAccessPolicies: an access_as_external policy that a
// project's router or floating IP depends on cannot go (409
// RbacPolicyInUse) unless another policy still grants that project
// access, and deleting the last one makes the network non-external, as in
// Neutron.
func TestExternalAccessPolicies(t *testing.T) {
	h := newTenants(t, nil)
	net := h.create(admin, "networks", "network", map[string]any{"name": "soon-external"})
	h.create(admin, "subnets", "subnet", map[string]any{"network_id": net, "cidr": "203.0.113.0/24"})
	policy := func(target string) string {
		return h.create(admin, "rbac-policies", "rbac_policy", map[string]any{
			"object_type": "network", "object_id": net, "action": "access_as_external", "target_tenant": target})
	}
	external := func() any {
		return h.as(admin, "GET", "/v2.0/networks/"+net, nil).body["network"].(map[string]any)["router:external"]
	}
	del := func(id string, status int) {
		t.Helper()
		r := h.as(admin, "DELETE", "/v2.0/rbac-policies/"+id, nil)
		if typ, _ := neutronError(r); r.status != status || status == 409 && typ != "RbacPolicyInUse" {
			t.Errorf("delete policy: %d %v, want %d", r.status, r.body, status)
		}
	}

	wildcard := policy("*")
	if external() != true {
		t.Fatalf("an access_as_external policy did not make the network external")
	}
	router := h.create(other, "routers", "router", map[string]any{"external_gateway_info": map[string]any{"network_id": net}})
	del(wildcard, 409) // beta's router needs it
	beta := policy("beta")
	del(wildcard, 204) // beta keeps access by its own policy
	del(beta, 409)
	if r := h.as(other, "DELETE", "/v2.0/routers/"+router, nil); r.status != 204 {
		t.Fatalf("delete router: %d %v", r.status, r.body)
	}
	fip := h.create(other, "floatingips", "floatingip", map[string]any{"floating_network_id": net})
	del(beta, 409) // and now its floating IP
	if r := h.as(other, "DELETE", "/v2.0/floatingips/"+fip, nil); r.status != 204 {
		t.Fatalf("delete floating IP: %d %v", r.status, r.body)
	}
	if external() != true {
		t.Errorf("the network stopped being external while a policy remains")
	}
	del(beta, 204)
	if external() != false {
		t.Errorf("router:external = %v after its last access_as_external policy went, want false", external())
	}
}

// TestAdminRuleInAMembersGroup: an admin may add a rule of its own project
// to a member's group (Neutron allows it); the group's owner sees it, in
// lists and in the group, and may delete it; other projects do not see it.
func TestAdminRuleInAMembersGroup(t *testing.T) {
	h := newTenants(t, nil)
	group := h.create(owner, "security-groups", "security_group", map[string]any{"name": "web"})
	rule := h.create(admin, "security-group-rules", "security_group_rule", map[string]any{
		"security_group_id": group, "direction": "ingress", "protocol": "tcp", "project_id": "admin"})
	if r := h.as(admin, "GET", "/v2.0/security-group-rules/"+rule, nil); r.body["security_group_rule"].(map[string]any)["project_id"] != "admin" {
		t.Errorf("the rule's project: %v, want admin", r.body)
	}
	var listed []string
	for _, r := range h.as(owner, "GET", "/v2.0/security-group-rules", nil).body["security_group_rules"].([]any) {
		listed = append(listed, r.(map[string]any)["id"].(string))
	}
	if !slices.Contains(listed, rule) {
		t.Errorf("the group's owner does not list the admin's rule in its group")
	}
	for _, c := range []struct {
		who, method string
		status      int
	}{
		{other, "GET", 404},
		{other, "DELETE", 404},
		{owner, "GET", 200},
		{owner, "DELETE", 204},
	} {
		if r := h.as(c.who, c.method, "/v2.0/security-group-rules/"+rule, nil); r.status != c.status {
			t.Errorf("%s %s the rule: %d %v, want %d", c.who, c.method, r.status, r.body, c.status)
		}
	}
}

// TestDefaultExternalNetwork: is_default is the admin's to set, on one
// external network at a time, and that network's wildcard
// access_as_external policy cannot go while it is the default.
func TestDefaultExternalNetwork(t *testing.T) {
	h := newTenants(t, nil)
	ext := h.create(admin, "networks", "network", map[string]any{"name": "public", "router:external": true})
	ext2 := h.create(admin, "networks", "network", map[string]any{"name": "public2", "router:external": true})
	internal := h.create(admin, "networks", "network", map[string]any{"name": "internal", "is_default": true})
	setDefault := func(who, id string, v bool) response {
		return h.as(who, "PUT", "/v2.0/networks/"+id, map[string]any{"network": map[string]any{"is_default": v}})
	}
	isDefault := func(id string) any {
		return h.as(admin, "GET", "/v2.0/networks/"+id, nil).body["network"].(map[string]any)["is_default"]
	}
	if isDefault(internal) != false {
		t.Errorf("a network that is not external is default")
	}
	if r := setDefault(owner, ext, true); r.status != 403 {
		t.Errorf("a member sets is_default: %d %v", r.status, r.body)
	}
	if r := setDefault(admin, ext, true); r.status != 200 || isDefault(ext) != true {
		t.Fatalf("the admin sets is_default: %d %v", r.status, r.body)
	}
	if r := setDefault(admin, ext2, true); r.status != 409 {
		t.Errorf("a second default: %d %v", r.status, r.body)
	} else if typ, _ := neutronError(r); typ != "DefaultExternalNetworkExists" {
		t.Errorf("a second default: %s", typ)
	}
	policies := h.as(admin, "GET", "/v2.0/rbac-policies?object_id="+ext+"&action=access_as_external&target_tenant=*", nil).body["rbac_policies"].([]any)
	if len(policies) != 1 {
		t.Fatalf("wildcard policies of the external network: %v", policies)
	}
	wildcard := policies[0].(map[string]any)["id"].(string)
	if r := h.as(admin, "DELETE", "/v2.0/rbac-policies/"+wildcard, nil); r.status != 409 {
		t.Errorf("delete the default's wildcard policy: %d %v", r.status, r.body)
	}
	if r := setDefault(admin, ext, false); r.status != 200 {
		t.Fatalf("unset is_default: %d %v", r.status, r.body)
	}
	if r := h.as(admin, "DELETE", "/v2.0/rbac-policies/"+wildcard, nil); r.status != 204 {
		t.Errorf("delete the wildcard policy of a network no longer default: %d %v", r.status, r.body)
	}
}
