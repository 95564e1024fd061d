package api_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nsnet/nsnet/internal/api"
	"github.com/nsnet/nsnet/internal/auth"
	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/service"
	"github.com/nsnet/nsnet/internal/store"
)

const testHost = "host-a"

// agentWorld is the API of a registered host: its agents written as the
// daemon writes them, the heartbeat a variable the test sets.
type agentWorld struct {
	*tenants
	svc     *service.Service
	st      store.Store
	now     time.Time
	beat    time.Time
	started time.Time
}

func newAgentWorld(t *testing.T) *agentWorld {
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
	w := &agentWorld{now: time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC), st: st}
	w.started = w.now.Add(-time.Hour)
	w.svc = service.New(service.Config{Store: st, NetnsPrefix: "t-", Host: testHost,
		Heartbeat: service.HeartbeatFunc(func() time.Time { return w.beat }),
		Now:       func() time.Time { return w.now }})
	if _, err := w.svc.RegisterAgents(context.Background(), w.started); err != nil {
		t.Fatal(err)
	}
	s := api.New(api.Config{Service: w.svc, Projects: tokens.Projects, Status: func() any { return map[string]any{} }})
	srv := httptest.NewServer(s.TokenHandler(tokens))
	t.Cleanup(srv.Close)
	w.tenants = &tenants{t: t, srv: srv}
	return w
}

// agents lists the agents as admin, by type.
func (w *agentWorld) agents() map[string]model.Agent {
	w.t.Helper()
	r := w.as(admin, "GET", "/v2.0/agents", nil)
	var body struct{ Agents []model.Agent }
	decodeInto(w.t, r, &body)
	out := map[string]model.Agent{}
	for _, a := range body.Agents {
		out[a.AgentType] = a
	}
	return out
}

func decodeInto(t *testing.T, r response, v any) {
	t.Helper()
	raw, _ := json.Marshal(r.body)
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
}

func TestAgentsShape(t *testing.T) {
	w := newAgentWorld(t)
	w.beat = w.now.Add(-10 * time.Second)
	agents := w.agents()
	want := map[string]struct {
		topic string
		zone  *string
	}{
		model.AgentTypeDHCP:        {"dhcp_agent", ptr("nova")},
		model.AgentTypeL3:          {"l3_agent", ptr("nova")},
		model.AgentTypeMetadata:    {"N/A", nil},
		model.AgentTypeLinuxBridge: {"N/A", nil},
	}
	if len(agents) != len(want) {
		t.Fatalf("agents %v, want the four roles", agents)
	}
	for typ, wa := range want {
		a := agents[typ]
		if a.ID != service.AgentID(testHost, typ) || a.Host != testHost || a.Binary != "nsnet-agent" || a.Topic != wa.topic ||
			!a.AdminStateUp || !a.Alive || a.Description != nil || a.Configurations == nil ||
			a.StartedAt != "2026-12-06 11:00:00" || a.CreatedAt != "2026-12-06 12:00:00" || a.HeartbeatTimestamp != "2026-12-06 11:59:50" {
			t.Errorf("%s: %+v", typ, a)
		}
		if (a.AvailabilityZone == nil) != (wa.zone == nil) || a.AvailabilityZone != nil && *a.AvailabilityZone != *wa.zone {
			t.Errorf("%s: availability_zone %v, want %v", typ, a.AvailabilityZone, wa.zone)
		}
	}
	// Every attribute of Neutron's agent is there, nulls included.
	r := w.as(admin, "GET", "/v2.0/agents/"+agents[model.AgentTypeMetadata].ID, nil)
	shown := r.body["agent"].(map[string]any)
	for _, k := range []string{"id", "agent_type", "binary", "host", "topic", "alive", "admin_state_up", "heartbeat_timestamp",
		"created_at", "started_at", "configurations", "availability_zone", "description", "resources_synced"} {
		if _, ok := shown[k]; !ok {
			t.Errorf("agent lacks %s: %v", k, shown)
		}
	}
	if c := agents[model.AgentTypeL3].Configurations; c["agent_mode"] != "legacy" {
		t.Errorf("L3 agent configurations %v, want agent_mode legacy", c)
	}
}

func ptr[T any](v T) *T { return &v }

func TestAgentAlive(t *testing.T) {
	for _, tc := range []struct {
		name      string
		age       time.Duration // of the heartbeat; 0: no pass yet
		alive     bool
		heartbeat string
	}{
		{"no full pass yet", 0, false, "2026-12-06 11:00:00"},
		{"fresh", 30 * time.Second, true, "2026-12-06 11:59:30"},
		{"at the down time", service.DefaultAgentDownTime, true, "2026-12-06 11:58:45"},
		{"past the down time", service.DefaultAgentDownTime + time.Second, false, "2026-12-06 11:58:44"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newAgentWorld(t)
			if tc.age > 0 {
				w.beat = w.now.Add(-tc.age)
			}
			for typ, a := range w.agents() {
				if a.Alive != tc.alive || a.HeartbeatTimestamp != tc.heartbeat {
					t.Errorf("%s: alive %v heartbeat %q, want %v %q", typ, a.Alive, a.HeartbeatTimestamp, tc.alive, tc.heartbeat)
				}
			}
		})
	}
}

func TestAgentsPolicyAndUpdates(t *testing.T) {
	w := newAgentWorld(t)
	l3 := service.AgentID(testHost, model.AgentTypeL3)
	for _, tc := range []struct {
		who, method, path string
		body              any
		status            int
		errType, msg      string
	}{
		{owner, "GET", "/v2.0/agents", nil, 200, "", ""},
		{owner, "GET", "/v2.0/agents/" + l3, nil, 404, "AgentNotFound", "Agent " + l3 + " could not be found."},
		{owner, "PUT", "/v2.0/agents/" + l3, map[string]any{"agent": map[string]any{"description": "x"}}, 404, "AgentNotFound", ""},
		{owner, "DELETE", "/v2.0/agents/" + l3, nil, 404, "AgentNotFound", ""},
		{admin, "POST", "/v2.0/agents", map[string]any{"agent": map[string]any{}}, 405, "", ""},
		{admin, "PUT", "/v2.0/agents/" + l3, map[string]any{"agent": map[string]any{"host": "elsewhere"}}, 400, "HTTPBadRequest", "Cannot update read-only attribute host"},
		{admin, "PUT", "/v2.0/agents/" + l3, map[string]any{"agent": map[string]any{"admin_state_up": "maybe"}}, 400, "HTTPBadRequest", "Invalid input for admin_state_up"},
		{admin, "PUT", "/v2.0/agents/" + l3, map[string]any{"agent": map[string]any{"description": strings.Repeat("d", 256)}}, 400, "HTTPBadRequest", "Invalid input for description"},
		{admin, "DELETE", "/v2.0/agents/00000000-0000-0000-0000-000000000000", nil, 404, "AgentNotFound", ""},
		{admin, "PUT", "/v2.0/agents/" + l3, map[string]any{"agent": map[string]any{"description": "rack 4", "admin_state_up": false}}, 200, "", ""},
	} {
		r := w.as(tc.who, tc.method, tc.path, tc.body)
		if r.status != tc.status {
			t.Errorf("%s %s %s: %d %v, want %d", tc.who, tc.method, tc.path, r.status, r.body, tc.status)
			continue
		}
		if tc.errType != "" {
			e, _ := r.body["NeutronError"].(map[string]any)
			if e["type"] != tc.errType || !strings.Contains(e["message"].(string), tc.msg) {
				t.Errorf("%s %s %s: error %v, want %s %q", tc.who, tc.method, tc.path, e, tc.errType, tc.msg)
			}
		}
	}
	// A member's list is empty, not refused.
	if r := w.as(owner, "GET", "/v2.0/agents", nil); len(r.body["agents"].([]any)) != 0 {
		t.Errorf("member sees agents: %v", r.body)
	}
	a := w.agents()[model.AgentTypeL3]
	if a.AdminStateUp || a.Description == nil || *a.Description != "rack 4" {
		t.Errorf("updated L3 agent: %+v", a)
	}
	// Registration keeps what the admin set.
	rev, err := w.svc.RegisterAgents(context.Background(), w.started.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	// Registering again what is registered writes nothing: the daemon's
	// periodic registration does not wake the agent.
	if again, err := w.svc.RegisterAgents(context.Background(), w.started.Add(time.Minute)); err != nil || again != rev {
		t.Errorf("second registration: revision %d (was %d), %v", again, rev, err)
	}
	if a := w.agents()[model.AgentTypeL3]; a.AdminStateUp || *a.Description != "rack 4" || a.StartedAt != "2026-12-06 11:01:00" {
		t.Errorf("re-registered L3 agent: %+v", a)
	}
	// A deleted agent is gone until the daemon registers it again, with
	// the same id.
	if r := w.as(admin, "DELETE", "/v2.0/agents/"+l3, nil); r.status != 204 {
		t.Fatalf("delete: %d %v", r.status, r.body)
	}
	if _, ok := w.agents()[model.AgentTypeL3]; ok {
		t.Fatal("deleted agent still listed")
	}
	if _, err := w.svc.RegisterAgents(context.Background(), w.started); err != nil {
		t.Fatal(err)
	}
	if a := w.agents()[model.AgentTypeL3]; a.ID != l3 || !a.AdminStateUp {
		t.Errorf("registered again: %+v", a)
	}
}

// ids are the "id"s of the items of a list answer.
func ids(r response, collection string) []string {
	var out []string
	items, _ := r.body[collection].([]any)
	for _, it := range items {
		out = append(out, it.(map[string]any)["id"].(string))
	}
	return out
}

func (w *agentWorld) dhcpPorts(network string) int {
	w.t.Helper()
	r := w.as(admin, "GET", "/v2.0/ports?device_owner=network:dhcp&network_id="+network, nil)
	return len(r.body["ports"].([]any))
}

func errorOf(r response) (typ, msg string) {
	e, _ := r.body["NeutronError"].(map[string]any)
	typ, _ = e["type"].(string)
	msg, _ = e["message"].(string)
	return typ, msg
}

func TestDHCPAgentScheduler(t *testing.T) {
	w := newAgentWorld(t)
	dhcp := service.AgentID(testHost, model.AgentTypeDHCP)
	l3 := service.AgentID(testHost, model.AgentTypeL3)
	served := w.create(owner, "networks", "network", map[string]any{"name": "served"})
	w.create(owner, "subnets", "subnet", map[string]any{"network_id": served, "cidr": "10.0.0.0/24"})
	bare := w.create(owner, "networks", "network", map[string]any{"name": "bare"})

	hosted := func() []string {
		return ids(w.as(admin, "GET", "/v2.0/agents/"+dhcp+"/dhcp-networks", nil), "networks")
	}
	hosting := func(n string) []string {
		return ids(w.as(admin, "GET", "/v2.0/networks/"+n+"/dhcp-agents", nil), "agents")
	}
	zones := func(n string) []any {
		return w.as(admin, "GET", "/v2.0/networks/"+n, nil).body["network"].(map[string]any)["availability_zones"].([]any)
	}
	if !slices.Equal(hosted(), []string{served}) || !slices.Equal(hosting(served), []string{dhcp}) || len(hosting(bare)) != 0 {
		t.Fatalf("hosted %v, hosting %v / %v", hosted(), hosting(served), hosting(bare))
	}
	if len(zones(served)) != 1 || len(zones(bare)) != 0 {
		t.Errorf("zones %v / %v", zones(served), zones(bare))
	}

	steps := []struct {
		name, who, method, path string
		body                    any
		status                  int
		errType, msg            string
		dhcpPorts               int // on served, after the step
	}{
		{"member may not look", owner, "GET", "/v2.0/agents/" + dhcp + "/dhcp-networks", nil, 403, "PolicyNotAuthorized", "rule:get_dhcp-networks", 1},
		{"member may not add", owner, "POST", "/v2.0/agents/" + dhcp + "/dhcp-networks", map[string]any{"network_id": bare}, 403, "PolicyNotAuthorized", "", 1},
		{"no network id", admin, "POST", "/v2.0/agents/" + dhcp + "/dhcp-networks", map[string]any{}, 400, "HTTPBadRequest", "network_id", 1},
		{"not a DHCP agent", admin, "POST", "/v2.0/agents/" + l3 + "/dhcp-networks", map[string]any{"network_id": bare}, 404, "InvalidDHCPAgent",
			"Agent " + l3 + " is not a valid DHCP Agent or has been disabled.", 1},
		{"already hosted", admin, "POST", "/v2.0/agents/" + dhcp + "/dhcp-networks", map[string]any{"network_id": served}, 409, "NetworkHostedByDHCPAgent",
			"The network " + served + " has been already hosted by the DHCP Agent " + dhcp + ".", 1},
		{"remove", admin, "DELETE", "/v2.0/agents/" + dhcp + "/dhcp-networks/" + served, nil, 204, "", "", 0},
		{"remove again", admin, "DELETE", "/v2.0/agents/" + dhcp + "/dhcp-networks/" + served, nil, 409, "NetworkNotHostedByDhcpAgent",
			"The network " + served + " is not hosted by the DHCP Agent " + dhcp + ".", 0},
		{"a new subnet leaves it off", owner, "POST", "/v2.0/subnets", map[string]any{"subnet": map[string]any{"network_id": served, "cidr": "10.1.0.0/24"}}, 201, "", "", 0},
		{"add back", admin, "POST", "/v2.0/agents/" + dhcp + "/dhcp-networks", map[string]any{"network_id": served}, 201, "", "", 1},
		{"add one without subnets", admin, "POST", "/v2.0/agents/" + dhcp + "/dhcp-networks", map[string]any{"network_id": bare}, 201, "", "", 1},
		{"unknown network", admin, "POST", "/v2.0/agents/" + dhcp + "/dhcp-networks", map[string]any{"network_id": "nope"}, 404, "NetworkNotFound", "", 1},
	}
	for _, st := range steps {
		r := w.as(st.who, st.method, st.path, st.body)
		if r.status != st.status {
			t.Fatalf("%s: %d %v, want %d", st.name, r.status, r.body, st.status)
		}
		if typ, msg := errorOf(r); typ != st.errType || !strings.Contains(msg, st.msg) {
			t.Errorf("%s: error %s %q, want %s %q", st.name, typ, msg, st.errType, st.msg)
		}
		if n := w.dhcpPorts(served); n != st.dhcpPorts {
			t.Errorf("%s: %d DHCP ports, want %d", st.name, n, st.dhcpPorts)
		}
	}
	got := hosted()
	slices.Sort(got)
	want := []string{served, bare}
	slices.Sort(want)
	if !slices.Equal(got, want) || len(zones(bare)) != 1 {
		t.Errorf("hosted %v, want %v; bare's zones %v", got, want, zones(bare))
	}
	if c := w.agents()[model.AgentTypeDHCP].Configurations; c["networks"] != float64(2) || c["subnets"] != float64(2) {
		t.Errorf("DHCP agent configurations %v", c)
	}

	// A DHCP agent an admin set down gets no new networks.
	if r := w.as(admin, "PUT", "/v2.0/agents/"+dhcp, map[string]any{"agent": map[string]any{"admin_state_up": false}}); r.status != 200 {
		t.Fatalf("disable: %d %v", r.status, r.body)
	}
	late := w.create(owner, "networks", "network", map[string]any{"name": "late"})
	w.create(owner, "subnets", "subnet", map[string]any{"network_id": late, "cidr": "10.2.0.0/24"})
	if n := w.dhcpPorts(late); n != 0 || len(hosting(late)) != 0 {
		t.Errorf("network of a disabled DHCP agent: %d DHCP ports, hosted by %v", n, hosting(late))
	}
	if r := w.as(admin, "POST", "/v2.0/agents/"+dhcp+"/dhcp-networks", map[string]any{"network_id": late}); r.status != 404 {
		t.Errorf("add to a disabled agent: %d %v", r.status, r.body)
	}
}

func TestL3AgentScheduler(t *testing.T) {
	w := newAgentWorld(t)
	l3 := service.AgentID(testHost, model.AgentTypeL3)
	dhcp := service.AgentID(testHost, model.AgentTypeDHCP)
	router := w.create(owner, "routers", "router", map[string]any{"name": "r"})
	hosting := func() []string { return ids(w.as(admin, "GET", "/v2.0/routers/"+router+"/l3-agents", nil), "agents") }
	hosted := func() []string { return ids(w.as(admin, "GET", "/v2.0/agents/"+l3+"/l3-routers", nil), "routers") }
	zones := func() []any {
		return w.as(admin, "GET", "/v2.0/routers/"+router, nil).body["router"].(map[string]any)["availability_zones"].([]any)
	}
	if !slices.Equal(hosting(), []string{l3}) || !slices.Equal(hosted(), []string{router}) || len(zones()) != 1 {
		t.Fatalf("new router: hosting %v, hosted %v, zones %v", hosting(), hosted(), zones())
	}
	for _, st := range []struct {
		name, who, method, path string
		body                    any
		status                  int
		errType, msg            string
		hosted                  bool
	}{
		{"member may not remove", owner, "DELETE", "/v2.0/agents/" + l3 + "/l3-routers/" + router, nil, 403, "PolicyNotAuthorized", "rule:delete_l3-router", true},
		{"already hosted", admin, "POST", "/v2.0/agents/" + l3 + "/l3-routers", map[string]any{"router_id": router}, 409, "RouterHostedByL3Agent",
			"The router " + router + " has been already hosted by the L3 Agent " + l3 + ".", true},
		{"remove", admin, "DELETE", "/v2.0/agents/" + l3 + "/l3-routers/" + router, nil, 204, "", "", false},
		{"remove again", admin, "DELETE", "/v2.0/agents/" + l3 + "/l3-routers/" + router, nil, 409, "RouterNotHostedByL3Agent",
			"The router " + router + " is not hosted by L3 agent " + l3 + ".", false},
		{"not an L3 agent", admin, "POST", "/v2.0/agents/" + dhcp + "/l3-routers", map[string]any{"router_id": router}, 404, "InvalidL3Agent",
			"Agent " + dhcp + " is not a L3 Agent or has been disabled", false},
		{"add", admin, "POST", "/v2.0/agents/" + l3 + "/l3-routers", map[string]any{"router_id": router}, 201, "", "", true},
	} {
		r := w.as(st.who, st.method, st.path, st.body)
		if r.status != st.status {
			t.Fatalf("%s: %d %v, want %d", st.name, r.status, r.body, st.status)
		}
		if typ, msg := errorOf(r); typ != st.errType || !strings.Contains(msg, st.msg) {
			t.Errorf("%s: error %s %q, want %s %q", st.name, typ, msg, st.errType, st.msg)
		}
		if got := len(hosting()) == 1 && len(hosted()) == 1 && len(zones()) == 1; got != st.hosted {
			t.Errorf("%s: hosting %v, hosted %v, zones %v; want hosted %v", st.name, hosting(), hosted(), zones(), st.hosted)
		}
	}
	// The stored scheduling flag is never shown.
	if r := w.as(admin, "GET", "/v2.0/routers/"+router, nil); r.body["router"].(map[string]any)["nsnet:l3_unscheduled"] != nil {
		t.Errorf("router shows the scheduling flag: %v", r.body)
	}
}

func TestAvailabilityZones(t *testing.T) {
	w := newAgentWorld(t)
	r := w.as(owner, "GET", "/v2.0/availability_zones", nil)
	var body struct {
		AvailabilityZones []model.AvailabilityZone `json:"availability_zones"`
	}
	decodeInto(t, r, &body)
	want := []model.AvailabilityZone{{Name: "nova", Resource: "network", State: "available"}, {Name: "nova", Resource: "router", State: "available"}}
	if !slices.Equal(body.AvailabilityZones, want) {
		t.Errorf("zones %+v, want %+v", body.AvailabilityZones, want)
	}
	if r := w.as(owner, "GET", "/v2.0/availability_zones?resource=router", nil); len(r.body["availability_zones"].([]any)) != 1 {
		t.Errorf("filtered zones: %v", r.body)
	}
	for _, tc := range []struct {
		collection, singular string
		hints                any
		status               int
		errType, msg         string
	}{
		{"networks", "network", []string{"nova"}, 201, "", ""},
		{"routers", "router", []string{"nova"}, 201, "", ""},
		{"networks", "network", []string{}, 201, "", ""},
		{"networks", "network", []string{"zone-9"}, 404, "AvailabilityZoneNotFound", "AvailabilityZone zone-9 could not be found."},
		{"routers", "router", []string{"nova", "zone-9"}, 404, "AvailabilityZoneNotFound", "AvailabilityZone zone-9 could not be found."},
		{"networks", "network", "nova", 400, "HTTPBadRequest", "Invalid input for availability_zone_hints"},
		{"routers", "router", []string{"nova", "nova"}, 400, "HTTPBadRequest", "duplicate entry 'nova'"},
		{"networks", "network", []string{strings.Repeat("z", 300)}, 400, "InvalidInput", "Too many availability_zone_hints specified"},
	} {
		r := w.as(owner, "POST", "/v2.0/"+tc.collection, map[string]any{tc.singular: map[string]any{"availability_zone_hints": tc.hints}})
		if r.status != tc.status {
			t.Errorf("%s with hints %v: %d %v, want %d", tc.singular, tc.hints, r.status, r.body, tc.status)
			continue
		}
		if typ, msg := errorOf(r); typ != tc.errType || !strings.Contains(msg, tc.msg) {
			t.Errorf("%s with hints %v: error %s %q, want %s %q", tc.singular, tc.hints, typ, msg, tc.errType, tc.msg)
		}
		if r.status == 201 {
			got := r.body[tc.singular].(map[string]any)["availability_zone_hints"]
			if raw, _ := json.Marshal(got); string(raw) != mustJSON(tc.hints) {
				t.Errorf("%s hints %s, want %s", tc.singular, raw, mustJSON(tc.hints))
			}
		}
	}
	// A member cannot change hints: they are set at creation, as in Neutron.
	n := w.create(owner, "networks", "network", map[string]any{})
	if r := w.as(owner, "PUT", "/v2.0/networks/"+n, map[string]any{"network": map[string]any{"availability_zone_hints": []string{"nova"}}}); r.status != 400 {
		t.Errorf("hints update: %d %v", r.status, r.body)
	}
}

func mustJSON(v any) string { b, _ := json.Marshal(v); return string(b) }

func TestPortBinding(t *testing.T) {
	w := newAgentWorld(t)
	net := w.create(owner, "networks", "network", map[string]any{"name": "n"})
	w.create(owner, "subnets", "subnet", map[string]any{"network_id": net, "cidr": "10.0.0.0/24", "enable_dhcp": false})
	inst := w.create(owner, "instances", "instance", map[string]any{"name": "vm"})
	plugged := w.create(owner, "ports", "port", map[string]any{"network_id": net, "device_id": inst})
	plain := w.create(owner, "ports", "port", map[string]any{"network_id": net})
	bridge := model.BridgeName(net)

	show := func(who, id string) map[string]any {
		return w.as(who, "GET", "/v2.0/ports/"+id, nil).body["port"].(map[string]any)
	}
	// What each caller sees of each port.
	for _, tc := range []struct {
		who, port string
		want      map[string]any // attribute: value; nil value: absent
	}{
		{admin, plugged, map[string]any{"binding:host_id": testHost, "binding:vif_type": "bridge", "binding:vnic_type": "normal",
			"binding:profile": map[string]any{}, "binding:vif_details": map[string]any{"connectivity": "l2", "bridge_name": bridge, "port_filter": true}}},
		{admin, plain, map[string]any{"binding:host_id": "", "binding:vif_type": "unbound", "binding:vnic_type": "normal",
			"binding:profile": map[string]any{}, "binding:vif_details": map[string]any{}}},
		{owner, plugged, map[string]any{"binding:host_id": nil, "binding:vif_type": nil, "binding:vnic_type": "normal",
			"binding:profile": nil, "binding:vif_details": nil}},
	} {
		got := show(tc.who, tc.port)
		for k, v := range tc.want {
			if mustJSON(got[k]) != mustJSON(v) {
				t.Errorf("%s sees %s of port %s = %s, want %s", tc.who, k, tc.port, mustJSON(got[k]), mustJSON(v))
			}
		}
	}

	for _, tc := range []struct {
		name, who, port string
		attrs           map[string]any
		status          int
		errType, msg    string
		want            map[string]any // as the admin sees it afterwards
	}{
		{"admin binds a plain port to another host", admin, plain, map[string]any{"binding:host_id": "badhost1", "binding:profile": map[string]any{"foo": "bar"}}, 200, "", "",
			map[string]any{"binding:host_id": "badhost1", "binding:vif_type": "binding_failed", "binding:profile": map[string]any{"foo": "bar"}}},
		{"admin binds it here", admin, plain, map[string]any{"binding:host_id": testHost, "binding:profile": map[string]any{}}, 200, "", "",
			map[string]any{"binding:host_id": testHost, "binding:vif_type": "bridge", "binding:profile": map[string]any{}}},
		{"vnic type nsnet cannot plug", owner, plain, map[string]any{"binding:vnic_type": "direct"}, 200, "", "",
			map[string]any{"binding:vnic_type": "direct", "binding:vif_type": "binding_failed"}},
		{"unbind", admin, plain, map[string]any{"binding:host_id": "", "binding:vnic_type": "normal"}, 200, "", "",
			map[string]any{"binding:host_id": "", "binding:vif_type": "unbound"}},
		{"member may not set the host", owner, plain, map[string]any{"binding:host_id": testHost}, 403, "PolicyNotAuthorized",
			"(rule:update_port and rule:update_port:binding:host_id) is disallowed by policy", nil},
		{"member may not set the profile", owner, plain, map[string]any{"binding:profile": map[string]any{}}, 403, "PolicyNotAuthorized", "binding:profile", nil},
		{"unknown vnic type", owner, plain, map[string]any{"binding:vnic_type": "fast"}, 400, "HTTPBadRequest",
			"Invalid input for binding:vnic_type. Reason: fast is not in valid_values.", nil},
		{"profile not a dict", admin, plain, map[string]any{"binding:profile": []string{"a"}}, 400, "HTTPBadRequest",
			"Invalid input for binding:profile. Reason: '[\"a\"]' is not a dictionary.", nil},
		{"plugged port elsewhere", admin, plugged, map[string]any{"binding:host_id": "badhost"}, 400, "InvalidInput", "is plugged by the agent of host " + testHost, nil},
		{"plugged port not normal", owner, plugged, map[string]any{"binding:vnic_type": "direct"}, 400, "InvalidInput", "binding:vnic_type must be normal", nil},
		{"plugged port here", admin, plugged, map[string]any{"binding:host_id": testHost}, 200, "", "", map[string]any{"binding:host_id": testHost, "binding:vif_type": "bridge"}},
	} {
		r := w.as(tc.who, "PUT", "/v2.0/ports/"+tc.port, map[string]any{"port": tc.attrs})
		if r.status != tc.status {
			t.Errorf("%s: %d %v, want %d", tc.name, r.status, r.body, tc.status)
			continue
		}
		if typ, msg := errorOf(r); typ != tc.errType || !strings.Contains(msg, tc.msg) {
			t.Errorf("%s: error %s %q, want %s %q", tc.name, typ, msg, tc.errType, tc.msg)
		}
		got := show(admin, tc.port)
		for k, v := range tc.want {
			if mustJSON(got[k]) != mustJSON(v) {
				t.Errorf("%s: %s = %s, want %s", tc.name, k, mustJSON(got[k]), mustJSON(v))
			}
		}
	}
	// The admin creates a port bound where it asks, as gophercloud does.
	r := w.as(admin, "POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": net, "binding:host_id": "localhost",
		"binding:profile": map[string]any{"foo": "bar"}}})
	if r.status != 201 {
		t.Fatalf("create bound port: %d %v", r.status, r.body)
	}
	p := r.body["port"].(map[string]any)
	if p["binding:host_id"] != "localhost" || p["binding:vnic_type"] != "normal" || mustJSON(p["binding:profile"]) != `{"foo":"bar"}` {
		t.Errorf("created bound port: %v", p)
	}
	// A list filters by host, for the admin.
	if r := w.as(admin, "GET", "/v2.0/ports?binding:host_id=localhost", nil); !slices.Equal(ids(r, "ports"), []string{p["id"].(string)}) {
		t.Errorf("ports on localhost: %v", ids(r, "ports"))
	}
}
