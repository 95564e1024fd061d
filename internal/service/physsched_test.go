package service_test

import (
	"context"
	"net/http"
	"slices"
	"testing"

	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/service"
	"github.com/nsnet/nsnet/internal/store"
	"github.com/nsnet/nsnet/internal/store/storetest"
)

// physnetHosts are network nodes mapping different physical networks:
// n1, first by name and so every tie's winner, maps none that the tests'
// public network is on. A new slice each time: tests kill hosts in theirs.
func physnetHosts() []hostSpec {
	return []hostSpec{
		{name: "n1", roles: network, mappings: map[string]string{"lab": "eth5"}},
		{name: "n2", roles: network, mappings: map[string]string{"public": "ext-b"}},
		{name: "n3", roles: network, mappings: map[string]string{"public": "ext-c"}},
		// A compute host mapping public takes no router or DHCP.
		{name: "a", roles: compute, mappings: map[string]string{"public": "eth1"}},
	}
}

// providerNetwork creates a network of in with a DHCP subnet of cidr.
func (c *cluster) providerNetwork(in map[string]any, cidr string) string {
	c.t.Helper()
	ctx := context.Background()
	n, err := c.api.CreateNetwork(ctx, attrs(c.t, in))
	if err != nil {
		c.t.Fatalf("create network %v: %v", in, err)
	}
	if _, err := c.api.CreateSubnet(ctx, attrs(c.t, map[string]any{"network_id": n.Object.ID, "cidr": cidr})); err != nil {
		c.t.Fatal(err)
	}
	return n.Object.ID
}

// gatewayRouter creates a router whose gateway is on network.
func (c *cluster) gatewayRouter(network string) string {
	c.t.Helper()
	r, err := c.api.CreateRouter(context.Background(), attrs(c.t, map[string]any{"external_gateway_info": map[string]any{"network_id": network}}))
	if err != nil {
		c.t.Fatal(err)
	}
	return r.Object.ID
}

// setGateway sets a router's gateway on network.
func (c *cluster) setGateway(router, network string) (model.Router, error) {
	r, err := c.api.UpdateRouter(context.Background(), router, attrs(c.t, map[string]any{"external_gateway_info": map[string]any{"network_id": network}}))
	return r.Object, err
}

var publicFlat = map[string]any{"router:external": true, "provider:network_type": "flat", "provider:physical_network": "public"}

// TestSchedulePhysicalNetworks: a router whose gateway, or a network
// whose DHCP, is on a flat network goes to a network node that maps its
// physical network, where the bridge has its uplink; other networks, and
// those cabled by nsnet:uplink, schedule as before.
func TestSchedulePhysicalNetworks(t *testing.T) {
	for _, tc := range []struct {
		name    string
		network map[string]any
		want    string
	}{
		{"flat on public", publicFlat, "n2"},
		{"flat on lab", map[string]any{"router:external": true, "provider:network_type": "flat", "provider:physical_network": "lab"}, "n1"},
		{"nsnet:uplink", map[string]any{"router:external": true, "nsnet:uplink": "eth7"}, "n1"},
		{"vxlan", map[string]any{"router:external": true}, "n1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, storetest.Open(t, t.TempDir()), physnetHosts()...)
			c.settle()
			n := c.providerNetwork(tc.network, "203.0.113.0/24")
			r := c.gatewayRouter(n)
			if got := c.l3Host(r); got != tc.want {
				t.Errorf("router on %q, want %q", got, tc.want)
			}
			if got := c.dhcpHost(n); got != tc.want {
				t.Errorf("network's DHCP on %q, want %q", got, tc.want)
			}
		})
	}
}

// TestPhysicalNetworkReschedule: setting a gateway on a flat network
// moves a router hosted where its physical network is not mapped, or
// refuses, as Neutron does, when no network node can take it, leaving
// the router as it was; failover and the placing of waiting routers and
// DHCP choose among the network nodes that map it. Every write runs twice
// in the retried variant.
func TestPhysicalNetworkReschedule(t *testing.T) {
	onStores(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		c := newCluster(t, st, physnetHosts()...)
		c.specs[2].dead = true // n3
		c.settle()

		public := c.providerNetwork(publicFlat, "203.0.113.0/24")
		r1 := c.router()
		if got := c.l3Host(r1); got != "n1" {
			t.Fatalf("router without a gateway on %q, want n1", got)
		}
		rt, err := c.setGateway(r1, public)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.l3Host(r1); got != "n2" || rt.ExternalGatewayInfo == nil {
			t.Errorf("after its gateway was set on public: router on %q (gateway %+v), want n2", got, rt.ExternalGatewayInfo)
		}

		// n2 dies, n3 comes back: failover moves to n3, never n1.
		c.specs[1].dead, c.specs[2].dead = true, false
		c.settle()
		moves, err := c.hosts["n1"].Failover(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := []service.Move{{Kind: store.Routers, ID: r1, From: "n2", To: "n3"}, {Kind: store.Networks, ID: public, From: "n2", To: "n3"}}
		sortMoves(moves)
		sortMoves(want)
		if !slices.Equal(moves, want) {
			t.Errorf("failover moves %v, want %v", moves, want)
		}

		// With no network node mapping public alive: a new router
		// with a gateway there waits, and a gateway set on a hosted
		// router is refused, the router unchanged.
		c.specs[2].dead = true
		c.settle()
		waiting := c.gatewayRouter(public)
		if got := c.l3Host(waiting); got != "" {
			t.Errorf("router created with no eligible host on %q, want none", got)
		}
		r2 := c.router()
		_, err = c.setGateway(r2, public)
		errorIs(t, err, http.StatusBadRequest, "Bad router request: No eligible l3 agent associated with external network "+public+" found.")
		got, err := c.api.GetRouter(ctx, r2)
		if err != nil {
			t.Fatal(err)
		}
		if got.ExternalGatewayInfo != nil || c.l3Host(r2) != "n1" {
			t.Errorf("refused router's gateway %+v, on %q; want none, on n1", got.ExternalGatewayInfo, c.l3Host(r2))
		}
		ports, err := c.api.ListPorts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ports {
			if p.DeviceID == r2 {
				t.Errorf("refused router has port %+v", p)
			}
		}

		// n2 comes back: the waiting router goes there.
		c.specs[1].dead = false
		c.settle()
		moves, err = c.hosts["n1"].ScheduleWaiting(ctx)
		if want := []service.Move{{Kind: store.Routers, ID: waiting, To: "n2"}}; err != nil || !slices.Equal(moves, want) {
			t.Errorf("schedule waiting: %v, %v; want %v", moves, err, want)
		}
		// And a gateway set now moves r2 off n1.
		if _, err := c.setGateway(r2, public); err != nil {
			t.Fatal(err)
		}
		if got := c.l3Host(r2); got != "n2" {
			t.Errorf("r2 on %q after its gateway was set, want n2", got)
		}
	})
}

// TestPhysicalNetworkDHCPWaits: a flat network's DHCP waits while no
// alive network node maps its physical network, and is placed on one
// that does when it comes.
func TestPhysicalNetworkDHCPWaits(t *testing.T) {
	ctx := context.Background()
	c := newCluster(t, storetest.Open(t, t.TempDir()), physnetHosts()...)
	c.specs[1].dead, c.specs[2].dead = true, true
	c.settle()
	public := c.providerNetwork(publicFlat, "203.0.113.0/24")
	if got := c.dhcpHost(public); got != "" || c.dhcpPort(public) != nil {
		t.Fatalf("DHCP on %q with no alive host mapping public, want none", got)
	}
	c.specs[2].dead = false
	c.settle()
	moves, err := c.hosts["n1"].ScheduleWaiting(ctx)
	if want := []service.Move{{Kind: store.Networks, ID: public, To: "n3"}}; err != nil || !slices.Equal(moves, want) {
		t.Errorf("schedule waiting: %v, %v; want %v", moves, err, want)
	}
}

// TestAddRouterToAgentMappingPhysnet: an admin adding a router whose
// gateway is on a flat network to an L3 agent whose host does not map its
// physical network is refused as Neutron refuses an agent that is no
// candidate for the router (validate_agent_router_combination: 404
// InvalidL3Agent); one that maps it takes it.
func TestAddRouterToAgentMappingPhysnet(t *testing.T) {
	ctx := context.Background()
	c := newCluster(t, storetest.Open(t, t.TempDir()), physnetHosts()...)
	c.settle()
	r := c.gatewayRouter(c.providerNetwork(publicFlat, "203.0.113.0/24"))
	if _, err := c.api.RemoveRouterFromL3Agent(ctx, service.AgentID("n2", model.AgentTypeL3), r); err != nil {
		t.Fatal(err)
	}
	n1 := service.AgentID("n1", model.AgentTypeL3)
	_, err := c.api.AddRouterToL3Agent(ctx, n1, r)
	errorIs(t, err, http.StatusNotFound, "Agent "+n1+" is not a L3 Agent or has been disabled")
	if got := c.l3Host(r); got != "" {
		t.Errorf("refused router on %q, want none", got)
	}
	if _, err := c.api.AddRouterToL3Agent(ctx, service.AgentID("n3", model.AgentTypeL3), r); err != nil {
		t.Fatal(err)
	}
	if got := c.l3Host(r); got != "n3" {
		t.Errorf("router on %q, want n3", got)
	}
}
