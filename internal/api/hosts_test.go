package api_test

import (
	"context"
	"testing"
	"time"

	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/service"
)

// joinHost starts another host's daemon on the world's store: its
// record and its agents, its heartbeat age old at the world's clock.
func (w *agentWorld) joinHost(name string, roles []string, vtep string, age time.Duration) {
	w.t.Helper()
	svc := service.New(service.Config{Store: w.st, NetnsPrefix: "t-" + name + "-", Host: name, Roles: roles, VTEPAddress: vtep,
		Now: func() time.Time { return w.now.Add(-age) }})
	if _, err := svc.RegisterHost(context.Background(), w.started); err != nil {
		w.t.Fatal(err)
	}
	if _, err := svc.RegisterAgents(context.Background(), w.started); err != nil {
		w.t.Fatal(err)
	}
}

// TestInstanceHost: an instance shows its host; an admin may name it,
// and a host the scheduler would not take is refused naming it.
func TestInstanceHost(t *testing.T) {
	w := newAgentWorld(t)
	w.joinHost(testHost, []string{model.RoleCompute, model.RoleNetwork}, "", 0)
	w.joinHost("host-b", []string{model.RoleCompute}, "192.0.2.12", 0)
	w.joinHost("host-c", []string{model.RoleCompute}, "192.0.2.13", service.DefaultAgentDownTime+time.Second)
	w.joinHost("net-1", []string{model.RoleNetwork}, "192.0.2.21", 0)
	for _, tc := range []struct {
		name, who string
		body      map[string]any
		status    int
		errType   string
		msg       string
		host      string
	}{
		{"scheduled", owner, map[string]any{"name": "vm1"}, 201, "", "", testHost},
		{"scheduled to the least loaded", owner, map[string]any{"name": "vm2"}, 201, "", "", "host-b"},
		{"named by the admin", admin, map[string]any{"name": "vm3", "host": "host-b"}, 201, "", "", "host-b"},
		{"named by a member", owner, map[string]any{"name": "vm4", "host": "host-b"}, 403, "PolicyNotAuthorized",
			"(rule:create_instance and rule:create_instance:host) is disallowed by policy", ""},
		{"unknown host", admin, map[string]any{"name": "vm5", "host": "nowhere"}, 400, "InvalidInput",
			"Invalid input for operation: host nowhere is not a registered host.", ""},
		{"network node", admin, map[string]any{"name": "vm6", "host": "net-1"}, 400, "InvalidInput",
			"Invalid input for operation: host net-1 has no compute role (roles: [network]), it cannot take instances.", ""},
		{"dead host", admin, map[string]any{"name": "vm7", "host": "host-c"}, 409, "HostNotAlive",
			"Host host-c is not alive (last heartbeat 2026-12-06T11:58:44Z): it cannot take instances.", ""},
		{"not a string", admin, map[string]any{"name": "vm8", "host": 7}, 400, "HTTPBadRequest", "Invalid input for host", ""},
	} {
		r := w.as(tc.who, "POST", "/v2.0/instances", map[string]any{"instance": tc.body})
		if r.status != tc.status {
			t.Errorf("%s: %d %v, want %d", tc.name, r.status, r.body, tc.status)
			continue
		}
		if typ, msg := errorOf(r); typ != tc.errType || msg != tc.msg && tc.errType != "HTTPBadRequest" {
			t.Errorf("%s: error %s %q, want %s %q", tc.name, typ, msg, tc.errType, tc.msg)
		}
		if r.status == 201 {
			in := r.body["instance"].(map[string]any)
			if in["host"] != tc.host {
				t.Errorf("%s: host %v, want %s", tc.name, in["host"], tc.host)
			}
			// The list and the instance's ports show it too.
			id := in["id"].(string)
			got := w.as(tc.who, "GET", "/v2.0/instances/"+id, nil).body["instance"].(map[string]any)["host"]
			if got != tc.host {
				t.Errorf("%s: shown host %v", tc.name, got)
			}
		}
	}
	// Lists filter by host, as by any attribute.
	if got := ids(w.as(admin, "GET", "/v2.0/instances?host=host-b", nil), "instances"); len(got) != 2 {
		t.Errorf("instances on host-b: %v, want vm2 and vm3", got)
	}
	// The host is the instance's for life.
	vm := ids(w.as(admin, "GET", "/v2.0/instances?name=vm1", nil), "instances")
	if len(vm) != 1 {
		t.Fatalf("vm1: %v", vm)
	}
	if r := w.as(admin, "PUT", "/v2.0/instances/"+vm[0], map[string]any{"instance": map[string]any{"host": "host-b"}}); r.status != 400 {
		t.Errorf("move an instance: %d %v", r.status, r.body)
	}
	net := w.create(owner, "networks", "network", map[string]any{"name": "n"})
	w.create(owner, "subnets", "subnet", map[string]any{"network_id": net, "cidr": "10.0.0.0/24", "enable_dhcp": false})
	vm3 := ids(w.as(admin, "GET", "/v2.0/instances?name=vm3", nil), "instances")[0]
	port := w.create(admin, "ports", "port", map[string]any{"network_id": net, "device_id": vm3})
	p := w.as(admin, "GET", "/v2.0/ports/"+port, nil).body["port"].(map[string]any)
	if p["binding:host_id"] != "host-b" || p["binding:vif_type"] != "bridge" {
		t.Errorf("port of an instance on host-b: binding %v, %v", p["binding:host_id"], p["binding:vif_type"])
	}
	if r := w.as(admin, "PUT", "/v2.0/ports/"+port, map[string]any{"port": map[string]any{"binding:host_id": testHost}}); r.status != 400 {
		t.Errorf("bind an instance's port elsewhere: %d %v", r.status, r.body)
	}
}

// TestAgentsOfSeveralHosts: /v2.0/agents lists every host's agents, each
// alive by its own host's heartbeat.
func TestAgentsOfSeveralHosts(t *testing.T) {
	w := newAgentWorld(t)
	w.joinHost(testHost, nil, "", 10*time.Second)
	w.joinHost("host-b", []string{model.RoleCompute}, "192.0.2.12", service.DefaultAgentDownTime+time.Second)
	r := w.as(admin, "GET", "/v2.0/agents", nil)
	var body struct{ Agents []model.Agent }
	decodeInto(t, r, &body)
	got := map[string]map[string]bool{} // host → type → alive
	for _, a := range body.Agents {
		if got[a.Host] == nil {
			got[a.Host] = map[string]bool{}
		}
		got[a.Host][a.AgentType] = a.Alive
		if a.Host == "host-b" && a.AgentType == model.AgentTypeLinuxBridge && a.Configurations["tunneling_ip"] != "192.0.2.12" {
			t.Errorf("host-b's L2 agent configurations %v", a.Configurations)
		}
	}
	want := map[string]map[string]bool{
		testHost: {model.AgentTypeDHCP: true, model.AgentTypeL3: true, model.AgentTypeLinuxBridge: true, model.AgentTypeMetadata: true},
		"host-b": {model.AgentTypeLinuxBridge: false, model.AgentTypeMetadata: false},
	}
	if len(got) != len(want) {
		t.Fatalf("agents %v, want %v", got, want)
	}
	for host, types := range want {
		for typ, alive := range types {
			if a, ok := got[host][typ]; !ok || a != alive {
				t.Errorf("%s's %s: listed %v alive %v, want alive %v", host, typ, ok, a, alive)
			}
		}
		if len(got[host]) != len(types) {
			t.Errorf("%s's agents %v", host, got[host])
		}
	}
}
