package service_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/service"
	"github.com/nsnet/nsnet/internal/store"
	"github.com/nsnet/nsnet/internal/store/storetest"
)

// cluster is a store that several hosts' daemons share: a service per
// host, as each daemon has, on one clock the test moves.
type cluster struct {
	t     *testing.T
	st    store.Store
	now   time.Time
	hosts map[string]*service.Service
	// api is a service of no host: an API server's view.
	api   *service.Service
	specs []hostSpec
}

// hostSpec is one host of a cluster.
type hostSpec struct {
	name  string
	roles []string
	zone  string
	vtep  string
	// mappings are its --physical-interface-mappings.
	mappings map[string]string
	dead     bool // its heartbeat is older than the agent down time
	drained  bool // an admin set its agents down
}

// newCluster starts every host's daemon, alive; settle then kills and
// drains those the specs say.
func newCluster(t *testing.T, st store.Store, specs ...hostSpec) *cluster {
	t.Helper()
	c := &cluster{t: t, st: st, now: clock, hosts: map[string]*service.Service{}, specs: specs}
	c.api = service.New(service.Config{Store: st, NetnsPrefix: "t-", Now: func() time.Time { return c.now }})
	for _, h := range specs {
		c.add(h)
	}
	return c
}

// settle moves the clock past the agent down time, with a heartbeat from
// every host but the dead, and sets the drained hosts' agents down.
func (c *cluster) settle() {
	c.t.Helper()
	ctx := context.Background()
	c.now = c.now.Add(service.DefaultAgentDownTime + time.Second)
	for _, h := range c.specs {
		if !h.dead {
			if _, err := c.hosts[h.name].Heartbeat(ctx, clock); err != nil {
				c.t.Fatal(err)
			}
		}
		if h.drained {
			for _, a := range c.agentsOf(h.name) {
				if _, err := c.api.UpdateAgent(ctx, a.ID, attrs(c.t, map[string]any{"admin_state_up": false})); err != nil {
					c.t.Fatal(err)
				}
			}
		}
	}
}

// add starts a host's daemon: its record and its agents.
func (c *cluster) add(h hostSpec) *service.Service {
	c.t.Helper()
	svc := service.New(service.Config{Store: c.st, NetnsPrefix: "t-" + h.name + "-", Host: h.name, Roles: h.roles,
		AvailabilityZone: h.zone, VTEPAddress: h.vtep, InterfaceMappings: h.mappings, Now: func() time.Time { return c.now }})
	ctx := context.Background()
	if _, err := svc.RegisterHost(ctx, c.now); err != nil {
		c.t.Fatal(err)
	}
	if _, err := svc.RegisterAgents(ctx, c.now); err != nil {
		c.t.Fatal(err)
	}
	c.hosts[h.name] = svc
	return svc
}

// agentsOf lists a host's agents, by type.
func (c *cluster) agentsOf(host string) map[string]model.Agent {
	c.t.Helper()
	all, err := c.api.ListAgents(context.Background())
	if err != nil {
		c.t.Fatal(err)
	}
	out := map[string]model.Agent{}
	for _, a := range all {
		if a.Host == host {
			out[a.AgentType] = a
		}
	}
	return out
}

// instance creates an instance, on host if one is named.
func (c *cluster) instance(name, host string) (model.Instance, error) {
	in := map[string]any{"name": name}
	if host != "" {
		in["host"] = host
	}
	r, err := c.api.CreateInstance(context.Background(), attrs(c.t, in))
	return r.Object, err
}

// errorIs checks err is the service error of status whose message is msg.
func errorIs(t *testing.T, err error, status int, msg string) {
	t.Helper()
	var e *service.Error
	if !errors.As(err, &e) || e.Status != status || e.Message != msg {
		t.Fatalf("error %v, want %d %q", err, status, msg)
	}
}

var (
	compute = []string{model.RoleCompute}
	network = []string{model.RoleNetwork}
)

func TestScheduleInstances(t *testing.T) {
	for _, tc := range []struct {
		name      string
		hosts     []hostSpec
		existing  map[string]int // instances already on each host
		requested string
		want      string
		status    int
		msg       string
	}{
		{name: "ties go to the first name", hosts: []hostSpec{{name: "b", roles: compute}, {name: "a", roles: compute}}, want: "a"},
		{name: "least loaded", hosts: []hostSpec{{name: "a", roles: compute}, {name: "b", roles: compute}},
			existing: map[string]int{"a": 2, "b": 1}, want: "b"},
		{name: "network nodes take none", hosts: []hostSpec{{name: "a", roles: network}, {name: "b", roles: compute}}, want: "b"},
		{name: "both roles", hosts: []hostSpec{{name: "a"}, {name: "b", roles: compute}}, existing: map[string]int{"b": 1}, want: "a"},
		{name: "dead hosts take none", hosts: []hostSpec{{name: "a", roles: compute, dead: true}, {name: "b", roles: compute}},
			existing: map[string]int{"b": 3}, want: "b"},
		{name: "drained hosts take none", hosts: []hostSpec{{name: "a", roles: compute, drained: true}, {name: "b", roles: compute}},
			existing: map[string]int{"b": 3}, want: "b"},
		{name: "no compute host", hosts: []hostSpec{{name: "n", roles: network}, {name: "a", roles: compute, dead: true}},
			status: 409, msg: "No valid host was found: no compute host is alive and enabled."},
		{name: "requested", hosts: []hostSpec{{name: "a", roles: compute}, {name: "b", roles: compute}},
			existing: map[string]int{"b": 3}, requested: "b", want: "b"},
		{name: "requested unknown", hosts: []hostSpec{{name: "a", roles: compute}}, requested: "x",
			status: 400, msg: "Invalid input for operation: host x is not a registered host."},
		{name: "requested network node", hosts: []hostSpec{{name: "a", roles: compute}, {name: "n", roles: network}}, requested: "n",
			status: 400, msg: "Invalid input for operation: host n has no compute role (roles: [network]), it cannot take instances."},
		{name: "requested dead", hosts: []hostSpec{{name: "a", roles: compute, dead: true}, {name: "b", roles: compute}}, requested: "a",
			status: 409, msg: "Host a is not alive (last heartbeat 2026-12-06T12:00:00Z): it cannot take instances."},
		// A service with no registry (no daemon) keeps everything on its
		// own host: here, none.
		{name: "no registry", want: ""},
		{name: "no registry, requested", requested: "x", status: 400, msg: "Invalid input for operation: host x is not a registered host."},
		{name: "requested drained", hosts: []hostSpec{{name: "a", roles: compute, drained: true}}, requested: "a",
			status: 409, msg: "Host a is disabled (its Linux bridge agent is administratively down): it takes no new instances."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, storetest.Open(t, t.TempDir()), tc.hosts...)
			for host, n := range tc.existing {
				for i := range n {
					if _, err := c.instance(fmt.Sprintf("%s%d", host, i), host); err != nil {
						t.Fatal(err)
					}
				}
			}
			c.settle()
			in, err := c.instance("vm", tc.requested)
			if tc.status != 0 {
				errorIs(t, err, tc.status, tc.msg)
				return
			}
			if err != nil || in.Host != tc.want {
				t.Fatalf("instance on %q, %v; want %q", in.Host, err, tc.want)
			}
			// Named by the host it runs on, whose agent makes it: on one
			// machine each host's daemon has its own prefix (the API
			// server's is "t-"), and an agent refuses a namespace outside
			// its own.
			wantNetns := "t-vm"
			if tc.want != "" {
				wantNetns = "t-" + tc.want + "-vm"
			}
			if in.Netns != wantNetns {
				t.Errorf("instance on %q in namespace %q, want %q", in.Host, in.Netns, wantNetns)
			}
		})
	}
}

// l3Host is the host of the L3 agent hosting a router; "" for none.
func (c *cluster) l3Host(router string) string {
	c.t.Helper()
	agents, err := c.api.ListRouterL3Agents(context.Background(), router)
	if err != nil || len(agents) > 1 {
		c.t.Fatalf("L3 agents of %s: %v, %v", router, agents, err)
	}
	if len(agents) == 0 {
		return ""
	}
	return agents[0].Host
}

// dhcpHost is the host of the DHCP agent hosting a network; "" for none.
func (c *cluster) dhcpHost(network string) string {
	c.t.Helper()
	agents, err := c.api.ListNetworkDHCPAgents(context.Background(), network)
	if err != nil || len(agents) > 1 {
		c.t.Fatalf("DHCP agents of %s: %v, %v", network, agents, err)
	}
	if len(agents) == 0 {
		return ""
	}
	return agents[0].Host
}

// router creates a router with zone hints.
func (c *cluster) router(hints ...string) string {
	c.t.Helper()
	r, err := c.api.CreateRouter(context.Background(), attrs(c.t, map[string]any{"availability_zone_hints": append([]string{}, hints...)}))
	if err != nil {
		c.t.Fatal(err)
	}
	return r.Object.ID
}

// network creates a network with a DHCP subnet and zone hints.
func (c *cluster) network(cidr string, hints ...string) string {
	c.t.Helper()
	ctx := context.Background()
	n, err := c.api.CreateNetwork(ctx, attrs(c.t, map[string]any{"availability_zone_hints": append([]string{}, hints...)}))
	if err != nil {
		c.t.Fatal(err)
	}
	if _, err := c.api.CreateSubnet(ctx, attrs(c.t, map[string]any{"network_id": n.Object.ID, "cidr": cidr})); err != nil {
		c.t.Fatal(err)
	}
	return n.Object.ID
}

// dhcpPort is a network's DHCP port, as an admin sees it.
func (c *cluster) dhcpPort(network string) *model.Port {
	c.t.Helper()
	ports, err := c.api.ListPorts(context.Background())
	if err != nil {
		c.t.Fatal(err)
	}
	for _, p := range ports {
		if p.NetworkID == network && p.DeviceOwner == model.DeviceOwnerDHCP {
			return &p
		}
	}
	return nil
}

func TestScheduleRoutersAndDHCP(t *testing.T) {
	for _, tc := range []struct {
		name     string
		hosts    []hostSpec
		existing []string // hosts already holding a router and a network
		hints    []string
		want     string // "": unscheduled
	}{
		{name: "ties go to the first name", hosts: []hostSpec{{name: "n2", roles: network}, {name: "n1", roles: network}}, want: "n1"},
		{name: "least loaded", hosts: []hostSpec{{name: "n1", roles: network}, {name: "n2", roles: network}},
			existing: []string{"n1"}, want: "n2"},
		{name: "compute hosts take none", hosts: []hostSpec{{name: "a", roles: compute}, {name: "n", roles: network}}, want: "n"},
		{name: "dead hosts take none", hosts: []hostSpec{{name: "n1", roles: network, dead: true}, {name: "n2", roles: network}},
			existing: []string{"n2", "n2"}, want: "n2"},
		{name: "drained hosts take none", hosts: []hostSpec{{name: "n1", roles: network, drained: true}, {name: "n2", roles: network}},
			existing: []string{"n2"}, want: "n2"},
		{name: "zone hints", hosts: []hostSpec{{name: "n1", roles: network, zone: "az1"}, {name: "n2", roles: network, zone: "az2"}},
			existing: []string{"n2"}, hints: []string{"az2"}, want: "n2"},
		{name: "no alive network node in the zones", hosts: []hostSpec{{name: "n1", roles: network, zone: "az1"},
			{name: "n2", roles: network, zone: "az2", dead: true}}, hints: []string{"az2"}, want: ""},
		{name: "no network node", hosts: []hostSpec{{name: "a", roles: compute}}, want: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, storetest.Open(t, t.TempDir()), tc.hosts...)
			for i, host := range tc.existing {
				// Placed by an admin, as l3_agent_scheduler does.
				r, n := c.router(), c.network(fmt.Sprintf("10.9.%d.0/24", i))
				for kind, id := range map[string]string{model.AgentTypeL3: r, model.AgentTypeDHCP: n} {
					if err := c.move(kind, id, host); err != nil {
						t.Fatal(err)
					}
				}
			}
			c.settle()
			r, n := c.router(tc.hints...), c.network("10.0.0.0/24", tc.hints...)
			if got := c.l3Host(r); got != tc.want {
				t.Errorf("router on %q, want %q", got, tc.want)
			}
			if got := c.dhcpHost(n); got != tc.want {
				t.Errorf("network's DHCP on %q, want %q", got, tc.want)
			}
			p := c.dhcpPort(n)
			switch {
			case tc.want == "" && p != nil:
				t.Errorf("unscheduled network has DHCP port %+v", p)
			case tc.want == "":
			case p == nil:
				t.Errorf("no DHCP port")
			case p.DeviceID != model.DHCPDeviceID(service.HostUUID(tc.want), n) || p.HostID == nil || *p.HostID != tc.want || p.VIFType != "bridge":
				t.Errorf("DHCP port device %s, bound to %v (%s); want the device and binding of %s", p.DeviceID, p.HostID, p.VIFType, tc.want)
			}
		})
	}
}

// move puts a router (L3 agent) or a network (DHCP agent) on host, as an
// admin does: off its agent, onto host's.
func (c *cluster) move(typ, id, host string) error {
	ctx := context.Background()
	var from string
	if typ == model.AgentTypeL3 {
		from = c.l3Host(id)
	} else {
		from = c.dhcpHost(id)
	}
	if from == host {
		return nil
	}
	to := service.AgentID(host, typ)
	if typ == model.AgentTypeL3 {
		if from != "" {
			if _, err := c.api.RemoveRouterFromL3Agent(ctx, service.AgentID(from, typ), id); err != nil {
				return err
			}
		}
		_, err := c.api.AddRouterToL3Agent(ctx, to, id)
		return err
	}
	if from != "" {
		if _, err := c.api.RemoveNetworkFromDHCPAgent(ctx, service.AgentID(from, typ), id); err != nil {
			return err
		}
	}
	_, err := c.api.AddNetworkToDHCPAgent(ctx, to, id)
	return err
}

// TestFailover: the routers and DHCP of a network node whose heartbeat
// is older than the agent down time move to an alive network node; the
// DHCP port stays (its MAC and address) under its new host's name. A
// second run finds nothing to move, and a drained host is not dead.
func TestFailover(t *testing.T) {
	onStores(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		c := newCluster(t, st, hostSpec{name: "n1", roles: network}, hostSpec{name: "n2", roles: network, drained: true},
			hostSpec{name: "n3", roles: network}, hostSpec{name: "a", roles: compute})
		// Both on n1 (the first name) while n2 is not drained yet.
		r1, r2 := c.router(), c.router()
		if err := c.move(model.AgentTypeL3, r2, "n1"); err != nil {
			t.Fatal(err)
		}
		n1 := c.network("10.0.0.0/24")
		n2 := c.network("10.0.1.0/24")
		if err := c.move(model.AgentTypeDHCP, n2, "n2"); err != nil {
			t.Fatal(err)
		}
		before := *c.dhcpPort(n1)
		c.specs[0].dead = true // n1
		c.settle()
		moves, err := c.hosts["n3"].Failover(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := []service.Move{{Kind: store.Routers, ID: r1, From: "n1", To: "n3"}, {Kind: store.Routers, ID: r2, From: "n1", To: "n3"},
			{Kind: store.Networks, ID: n1, From: "n1", To: "n3"}}
		sortMoves(moves)
		sortMoves(want)
		if !slices.Equal(moves, want) {
			t.Errorf("moves %v, want %v", moves, want)
		}
		check := func() {
			t.Helper()
			if c.l3Host(r1) != "n3" || c.l3Host(r2) != "n3" || c.dhcpHost(n1) != "n3" || c.dhcpHost(n2) != "n2" {
				t.Errorf("routers on %s, %s; networks' DHCP on %s, %s", c.l3Host(r1), c.l3Host(r2), c.dhcpHost(n1), c.dhcpHost(n2))
			}
			after := c.dhcpPort(n1)
			if after == nil || after.ID != before.ID || after.MACAddress != before.MACAddress ||
				!slices.Equal(after.FixedIPs, before.FixedIPs) || after.DeviceID != model.DHCPDeviceID(service.HostUUID("n3"), n1) ||
				*after.HostID != "n3" {
				t.Errorf("DHCP port before %+v, after %+v", before, after)
			}
		}
		check()
		// Another daemon, or this one's next tick: nothing to move.
		if moves, err := c.hosts["a"].Failover(ctx); err != nil || len(moves) != 0 {
			t.Errorf("second failover: %v, %v", moves, err)
		}
		check()
	})
}

func sortMoves(m []service.Move) {
	slices.SortFunc(m, func(a, b service.Move) int {
		if a.Kind != b.Kind {
			return strings.Compare(string(a.Kind), string(b.Kind))
		}
		return strings.Compare(a.ID, b.ID)
	})
}

// TestAgentsOverHosts: each host registers the agents of its roles; each
// is alive by its own host's heartbeat; the configurations count what
// each host holds; an admin deletes or drains any host's agent.
func TestAgentsOverHosts(t *testing.T) {
	ctx := context.Background()
	c := newCluster(t, storetest.Open(t, t.TempDir()), hostSpec{name: "a", roles: compute, vtep: "192.0.2.11", zone: "az1"},
		hostSpec{name: "n", roles: network, vtep: "192.0.2.21"})
	net := c.network("10.0.0.0/24")
	in, err := c.instance("vm", "a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.api.CreatePort(ctx, attrs(t, map[string]any{"network_id": net, "device_id": in.ID, "device_owner": model.DeviceOwnerCompute})); err != nil {
		t.Fatal(err)
	}
	router := c.router()
	c.specs[1].dead = true
	c.settle()

	types := func(m map[string]model.Agent) []string {
		var out []string
		for typ := range m {
			out = append(out, typ)
		}
		slices.Sort(out)
		return out
	}
	a, n := c.agentsOf("a"), c.agentsOf("n")
	if got, want := types(a), []string{model.AgentTypeLinuxBridge, model.AgentTypeMetadata}; !slices.Equal(got, want) {
		t.Errorf("compute host's agents %v, want %v", got, want)
	}
	if got, want := types(n), []string{model.AgentTypeDHCP, model.AgentTypeL3, model.AgentTypeLinuxBridge, model.AgentTypeMetadata}; !slices.Equal(got, want) {
		t.Errorf("network node's agents %v, want %v", got, want)
	}
	for typ, ag := range a {
		if !ag.Alive || ag.HeartbeatTimestamp != "2026-12-06 12:01:16" {
			t.Errorf("a's %s: alive %v, heartbeat %s", typ, ag.Alive, ag.HeartbeatTimestamp)
		}
	}
	for typ, ag := range n {
		if ag.Alive || ag.HeartbeatTimestamp != "2026-12-06 12:00:00" {
			t.Errorf("n's %s: alive %v, heartbeat %s", typ, ag.Alive, ag.HeartbeatTimestamp)
		}
	}
	lb := a[model.AgentTypeLinuxBridge].Configurations
	if lb["devices"] != 1 || lb["tunneling_ip"] != "192.0.2.11" || !slices.Equal(lb["tunnel_types"].([]string), []string{"vxlan"}) || lb["l2_population"] != true {
		t.Errorf("a's L2 agent configurations %v", lb)
	}
	// n's L2 agent plugs the DHCP port and the router's (none yet).
	if got := n[model.AgentTypeLinuxBridge].Configurations["devices"]; got != 1 {
		t.Errorf("n's L2 agent devices %v, want its DHCP port", got)
	}
	if got := n[model.AgentTypeL3].Configurations["routers"]; got != 1 {
		t.Errorf("n's L3 agent routers %v", got)
	}
	if got := n[model.AgentTypeDHCP].Configurations["networks"]; got != 1 {
		t.Errorf("n's DHCP agent networks %v", got)
	}
	zones, err := c.api.ListAvailabilityZones(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// a has no DHCP or L3 agent: its zone hosts nothing.
	if want := []model.AvailabilityZone{{Name: "nova", Resource: "network", State: "available"}, {Name: "nova", Resource: "router", State: "available"}}; !slices.Equal(zones, want) {
		t.Errorf("zones %v, want %v", zones, want)
	}
	if r, err := c.api.GetRouter(ctx, router); err != nil || !slices.Equal(r.AvailabilityZones, []string{"nova"}) {
		t.Errorf("router zones %v, %v", r.AvailabilityZones, err)
	}

	// Another host's agent: drained, then deleted.
	l3 := n[model.AgentTypeL3].ID
	if r, err := c.api.UpdateAgent(ctx, l3, attrs(t, map[string]any{"admin_state_up": false})); err != nil || r.Object.AdminStateUp {
		t.Fatalf("drain: %+v, %v", r.Object, err)
	}
	if _, err := c.api.DeleteAgent(ctx, l3); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.agentsOf("n")[model.AgentTypeL3]; ok {
		t.Error("deleted agent still listed")
	}
}

// TestHostRegistry: a daemon writes its record on start; a heartbeat
// writes no record (it is a beat in the store's presence, which the
// agents show), and no revision; a record that went is written again
// whole.
func TestHostRegistry(t *testing.T) {
	ctx := context.Background()
	st := storetest.Open(t, t.TempDir())
	c := newCluster(t, st, hostSpec{name: "h", roles: compute, vtep: "192.0.2.1", zone: "az9"})
	read := func() (model.Host, error) {
		var h model.Host
		err := st.View(ctx, func(r store.Reader) error {
			var err error
			h, err = store.Get[model.Host](r, store.Hosts, "h")
			return err
		})
		return h, err
	}
	want := model.Host{Name: "h", Roles: []string{"compute"}, VTEPAddress: "192.0.2.1", AvailabilityZone: "az9",
		StartedAt: "2026-12-06T12:00:00Z", Heartbeat: "2026-12-06T12:00:00Z"}
	if got, err := read(); err != nil || !equalHost(got, want) {
		t.Fatalf("registered %+v, %v; want %+v", got, err, want)
	}
	c.now = c.now.Add(30 * time.Second)
	before := revision(t, st)
	if _, err := c.hosts["h"].Heartbeat(ctx, clock.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got, err := read(); err != nil || !equalHost(got, want) {
		t.Fatalf("after a heartbeat %+v, %v; want the record unchanged, %+v", got, err, want)
	}
	// No record written (etcd's own revision moves with the beat's key,
	// which lies outside the records).
	if after := revision(t, st); after != before {
		if changes, ok := st.(store.ChangeFeed).ChangesBetween(before, after); !ok || len(changes) > 0 {
			t.Errorf("a heartbeat changed records between revisions %d and %d: %v (known: %v); want none", before, after, changes, ok)
		}
	}
	for typ, a := range c.agentsOf("h") {
		if !a.Alive || a.HeartbeatTimestamp != "2026-12-06 12:00:30" {
			t.Errorf("h's %s after a heartbeat: alive %v, heartbeat %s; want alive at 12:00:30", typ, a.Alive, a.HeartbeatTimestamp)
		}
	}
	if _, err := st.Update(ctx, func(tx store.Txn) error { return tx.Delete(store.Hosts, "h") }); err != nil {
		t.Fatal(err)
	}
	if _, err := c.hosts["h"].Heartbeat(ctx, clock); err != nil {
		t.Fatal(err)
	}
	want.Heartbeat = "2026-12-06T12:00:30Z" // written again, now
	if got, err := read(); err != nil || !equalHost(got, want) {
		t.Fatalf("heartbeat of a lost record %+v, %v; want %+v", got, err, want)
	}
}

func equalHost(a, b model.Host) bool {
	return a.Name == b.Name && slices.Equal(a.Roles, b.Roles) && a.VTEPAddress == b.VTEPAddress &&
		a.AvailabilityZone == b.AvailabilityZone && a.StartedAt == b.StartedAt && a.Heartbeat == b.Heartbeat
}

// TestAdoptUnhosted: a one-box store written before hosts gives its
// instances, routers and DHCP to the daemon that starts on it, when that
// is the only registered host, and to nobody when there are others.
func TestAdoptUnhosted(t *testing.T) {
	for _, tc := range []struct {
		name  string
		hosts []string
		want  string // the host the records get
	}{
		{"the only host", []string{"h"}, "h"},
		{"one of two", []string{"h", "g"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			st := storetest.Open(t, t.TempDir())
			// The old one-box daemon: a service without a host name.
			old := service.New(service.Config{Store: st, NetnsPrefix: "t-", Now: func() time.Time { return clock }})
			in := must[model.Instance](t)(old.CreateInstance(ctx, attrs(t, map[string]any{"name": "vm"})))
			router := must[model.Router](t)(old.CreateRouter(ctx, attrs(t, map[string]any{})))
			net := must[model.Network](t)(old.CreateNetwork(ctx, attrs(t, map[string]any{})))
			must[model.Subnet](t)(old.CreateSubnet(ctx, attrs(t, map[string]any{"network_id": net.ID, "cidr": "10.0.0.0/24"})))
			var specs []hostSpec
			for _, h := range tc.hosts {
				specs = append(specs, hostSpec{name: h})
			}
			c := newCluster(t, st, specs...)
			n, err := c.hosts["h"].AdoptUnhosted(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if want := map[bool]int{true: 3, false: 0}[tc.want != ""]; n != want {
				t.Errorf("adopted %d records, want %d", n, want)
			}
			got, err := c.api.GetInstance(ctx, in.ID)
			if err != nil || got.Host != tc.want {
				t.Errorf("instance on %q, %v", got.Host, err)
			}
			if got := c.l3Host(router.ID); got != tc.want {
				t.Errorf("router on %q", got)
			}
			if got := c.dhcpHost(net.ID); got != tc.want {
				t.Errorf("DHCP on %q", got)
			}
			if p := c.dhcpPort(net.ID); tc.want != "" && p.DeviceID != model.DHCPDeviceID(service.HostUUID("h"), net.ID) {
				t.Errorf("DHCP port device %s", p.DeviceID)
			}
			// Again: nothing left to adopt.
			if n, err := c.hosts["h"].AdoptUnhosted(ctx); err != nil || n != 0 {
				t.Errorf("second adoption: %d, %v", n, err)
			}
		})
	}
}

// TestRetriedInstanceScheduleRechecks: between a create's discarded
// attempt and its real one another instance lands on the host the
// discarded attempt chose; the real attempt chooses again, from what it
// sees.
func TestRetriedInstanceScheduleRechecks(t *testing.T) {
	ctx := context.Background()
	b := storetest.Open(t, t.TempDir())
	retry := store.NewRetrying(b)
	c := newCluster(t, b, hostSpec{name: "a", roles: compute}, hostSpec{name: "b", roles: compute})
	svc := service.New(service.Config{Store: retry, NetnsPrefix: "t-", Now: func() time.Time { return c.now }})
	retry.Between(func(ctx context.Context) {
		retry.Between(nil)
		if _, err := c.instance("other", "a"); err != nil {
			t.Error(err)
		}
	})
	in := must[model.Instance](t)(svc.CreateInstance(ctx, attrs(t, map[string]any{"name": "vm"})))
	if in.Host != "b" {
		t.Errorf("instance on %q, want b: a took one between the attempts", in.Host)
	}
}

// TestConcurrentFailoverMovesOnce: every daemon runs failover; when two
// race on etcd, each router and network moves once, to one host: the
// store's conflict check makes one commit, and the other, run again on
// the new snapshot, finds nothing left to move.
func TestConcurrentFailoverMovesOnce(t *testing.T) {
	ctx := context.Background()
	e := storetest.OpenEtcd(t)
	c := newCluster(t, e, hostSpec{name: "n1", roles: network}, hostSpec{name: "n2", roles: network}, hostSpec{name: "n3", roles: network})
	var routers []string
	for range 4 {
		r := c.router()
		if err := c.move(model.AgentTypeL3, r, "n1"); err != nil {
			t.Fatal(err)
		}
		routers = append(routers, r)
	}
	c.specs[0].dead = true
	c.settle()
	// n2 and n3 run failover at once, each through its own etcd client.
	peer := func(host string) *service.Service {
		return service.New(service.Config{Store: storetest.OpenPeer(t, e), NetnsPrefix: "t-", Host: host, Now: func() time.Time { return c.now }})
	}
	svcs := []*service.Service{peer("n2"), peer("n3")}
	results := make([][]service.Move, len(svcs))
	errs := make([]error, len(svcs))
	var wg sync.WaitGroup
	for i, svc := range svcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = svc.Failover(ctx)
		}()
	}
	wg.Wait()
	moved := map[string]int{}
	for i := range svcs {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		for _, m := range results[i] {
			moved[m.ID]++
		}
	}
	for _, r := range routers {
		if moved[r] != 1 {
			t.Errorf("router %s reported moved %d times", r, moved[r])
		}
		if h := c.l3Host(r); h != "n2" && h != "n3" {
			t.Errorf("router %s on %q", r, h)
		}
	}
}

// TestScheduleWaiting: a router or a network's DHCP that no network node
// could take when it was made waits for one: when a network node comes
// back (its heartbeat again) or registers, the next run places it as for
// a new one. What an admin removed from its agent stays on none.
func TestScheduleWaiting(t *testing.T) {
	onStores(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		c := newCluster(t, st, hostSpec{name: "n1", roles: network, dead: true}, hostSpec{name: "a", roles: compute})
		c.settle()
		// Made while n1 is dead: no candidate.
		r1, n1 := c.router(), c.network("10.0.0.0/24")
		removed := c.router()
		if c.l3Host(r1) != "" || c.dhcpHost(n1) != "" || c.dhcpPort(n1) != nil {
			t.Fatalf("with no network node alive: r1 on %q, n1's DHCP on %q", c.l3Host(r1), c.dhcpHost(n1))
		}
		if moves, err := c.hosts["a"].ScheduleWaiting(ctx); err != nil || len(moves) != 0 {
			t.Fatalf("with still no candidate: %v, %v", moves, err)
		}

		// n1 comes back; an admin had put "removed" on it and off again.
		if _, err := c.hosts["n1"].Heartbeat(ctx, clock); err != nil {
			t.Fatal(err)
		}
		if err := c.move(model.AgentTypeL3, removed, "n1"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.api.RemoveRouterFromL3Agent(ctx, service.AgentID("n1", model.AgentTypeL3), removed); err != nil {
			t.Fatal(err)
		}
		moves, err := c.hosts["a"].ScheduleWaiting(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := []service.Move{{Kind: store.Routers, ID: r1, To: "n1"}, {Kind: store.Networks, ID: n1, To: "n1"}}
		sortMoves(moves)
		sortMoves(want)
		if !slices.Equal(moves, want) {
			t.Errorf("moves %v, want %v", moves, want)
		}
		if c.l3Host(r1) != "n1" || c.dhcpHost(n1) != "n1" || c.l3Host(removed) != "" {
			t.Errorf("r1 on %q, n1's DHCP on %q, the removed router on %q", c.l3Host(r1), c.dhcpHost(n1), c.l3Host(removed))
		}
		if p := c.dhcpPort(n1); p == nil || p.DeviceID != model.DHCPDeviceID(service.HostUUID("n1"), n1) {
			t.Errorf("n1's DHCP port %+v", p)
		}
		if moves, err := c.hosts["n1"].ScheduleWaiting(ctx); err != nil || len(moves) != 0 {
			t.Errorf("second run: %v, %v", moves, err)
		}

		// A network node that registers takes what waits.
		c.specs[0].dead = true
		c.settle()
		r2 := c.router()
		c.add(hostSpec{name: "n2", roles: network})
		moves, err = c.hosts["n2"].ScheduleWaiting(ctx)
		if want := []service.Move{{Kind: store.Routers, ID: r2, To: "n2"}}; err != nil || !slices.Equal(moves, want) {
			t.Errorf("after n2 registered: %v, %v; want %v", moves, err, want)
		}
	})
}

// onStores runs test on a store and, as "retried=true", on one that runs
// every write twice (store.NewRetrying): scheduling's transactions must
// be pure functions of their snapshot.
func onStores(t *testing.T, test func(t *testing.T, st store.Store)) {
	for _, retry := range []bool{false, true} {
		t.Run(fmt.Sprintf("retried=%v", retry), func(t *testing.T) {
			var st store.Store = storetest.Open(t, t.TempDir())
			if retry {
				st = store.NewRetrying(st)
			}
			test(t, st)
		})
	}
}
