package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/nsnet/nsnet/internal/hoststatus"
	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/store"
)

// Neutron's agent resource, for nsnet's one agent per host.
//
// The agent in `nsnet daemon` does what several Neutron agents of one host
// do: it builds routers (L3 agent), serves DHCP and DNS (DHCP agent) and
// metadata (metadata agent), and plugs and filters ports on Linux bridges
// (the L2 agent: Neutron's Linux bridge agent is the one that works like
// nsnet). The daemon registers one agent record per role when it starts
// (RegisterAgents) and again whenever one is missing, as a Neutron agent
// does at its next state report after an admin deleted it. The records hold
// what an admin may change (admin_state_up, description); whether an agent
// is alive is not stored: it is the running agent's last full pass (its
// heartbeat), which must be more recent than the agent down time.

// HeartbeatSource is the running agent's proof of life: the time of its
// last complete full pass over the host, zero before the first.
type HeartbeatSource interface {
	Heartbeat() time.Time
}

// HeartbeatFunc adapts a function to HeartbeatSource.
type HeartbeatFunc func() time.Time

// Heartbeat implements HeartbeatSource.
func (f HeartbeatFunc) Heartbeat() time.Time { return f() }

// DefaultAgentDownTime is Neutron's agent_down_time: an agent whose last
// heartbeat is older is not alive. The agent's full passes come every
// ResyncInterval (30 s by default), so two may be missed.
const DefaultAgentDownTime = 75 * time.Second

// agentRole is one role of the host's agent, as Neutron would register it.
type agentRole struct {
	typ, topic string
	// zoned roles schedule resources, and so have an availability zone.
	zoned bool
}

var agentRoles = []agentRole{
	{model.AgentTypeDHCP, "dhcp_agent", true},
	{model.AgentTypeL3, "l3_agent", true},
	{model.AgentTypeMetadata, "N/A", false},
	{model.AgentTypeLinuxBridge, "N/A", false},
}

// agentNamespace derives agents' ids: the same host and type always make the
// same id, so that a re-registered agent keeps its scheduling.
var agentNamespace = uuid.MustParse("5d3c3b8e-7a57-4c1e-9a4e-2f1b6f0b1a14")

// AgentID is the id of the agent of type typ on host.
func AgentID(host, typ string) string {
	return uuid.NewSHA1(agentNamespace, []byte(host+"\x00"+typ)).String()
}

func agentTime(t time.Time) string { return t.UTC().Format(model.AgentTimeFormat) }

// roleAgents are the agent types each host role runs: a compute host plugs
// and filters ports (L2) and serves its instances' metadata; a network node
// also builds routers (L3) and serves DHCP.
var roleAgents = map[string][]string{
	model.RoleCompute: {model.AgentTypeLinuxBridge, model.AgentTypeMetadata},
	model.RoleNetwork: {model.AgentTypeDHCP, model.AgentTypeL3, model.AgentTypeLinuxBridge, model.AgentTypeMetadata},
}

// RegisterAgents writes the agent records of this host's roles: missing
// ones are created (enabled, in the host's zone), present ones get their
// host's facts (binary, topic, zone, started_at) and keep what an admin
// set. A call that changes nothing writes nothing, so the daemon may call
// it on every resync to bring back a deleted agent.
func (s *Service) RegisterAgents(ctx context.Context, started time.Time) (int64, error) {
	if s.host == "" {
		return 0, errors.New("register agents: the service has no host name")
	}
	types := map[string]bool{}
	for _, role := range s.hostRoles() {
		for _, typ := range roleAgents[role] {
			types[typ] = true
		}
	}
	return s.store.Update(ctx, func(tx store.Txn) error {
		for _, role := range agentRoles {
			if !types[role.typ] {
				continue
			}
			id := AgentID(s.host, role.typ)
			a, err := store.Get[model.Agent](tx, store.Agents, id)
			switch {
			case errors.Is(err, store.ErrNotFound):
				a = model.Agent{ID: id, AdminStateUp: true, CreatedAt: agentTime(s.now())}
			case err != nil:
				return fmt.Errorf("read agent %s: %w", id, err)
			}
			want := a
			want.AgentType, want.Binary, want.Host, want.Topic = role.typ, model.AgentBinary, s.host, role.topic
			want.StartedAt = agentTime(started)
			want.AvailabilityZone = nil
			if role.zoned {
				want.AvailabilityZone = new(string)
				*want.AvailabilityZone = s.zone
			}
			if err == nil && sameAgent(a, want) {
				continue
			}
			if err := tx.Put(store.Agents, id, want); err != nil {
				return err
			}
		}
		return nil
	})
}

func sameAgent(a, b model.Agent) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

// agentNotFound hides agents from non-admins, as Neutron's admin-only
// get_agent policy does.
func loadAgent(ctx context.Context, r store.Reader, id string) (model.Agent, error) {
	a, err := store.Get[model.Agent](r, store.Agents, id)
	if errors.Is(err, store.ErrNotFound) || err == nil && !caller(ctx).IsAdmin() {
		return a, notFound("Agent", id)
	}
	if err != nil {
		return a, fmt.Errorf("read agent %s: %w", id, err)
	}
	return a, nil
}

// ListAgents lists the agents: every one for an admin, none for anyone
// else (Neutron's policy filters them out of the list, it does not refuse).
func (s *Service) ListAgents(ctx context.Context) ([]model.Agent, error) {
	out := []model.Agent{}
	if !caller(ctx).IsAdmin() {
		return out, nil
	}
	err := s.store.View(ctx, func(r store.Reader) error {
		all, err := store.List[model.Agent](r, store.Agents)
		if err != nil {
			return err
		}
		for _, a := range all {
			if err := s.renderAgent(r, &a); err != nil {
				return err
			}
			out = append(out, a)
		}
		return nil
	})
	return out, err
}

// GetAgent returns one agent (admin only: 404 for others).
func (s *Service) GetAgent(ctx context.Context, id string) (model.Agent, error) {
	var a model.Agent
	err := s.store.View(ctx, func(r store.Reader) error {
		var err error
		if a, err = loadAgent(ctx, r, id); err != nil {
			return err
		}
		return s.renderAgent(r, &a)
	})
	return a, err
}

// agentAttrs are the attributes of an agent update; the others are
// read-only, and named so that a request gets Neutron's answer for them.
var agentAttrs = append([]attr[model.Agent]{
	boolAttr("admin_state_up", false, true, func(a *model.Agent) *bool { return &a.AdminStateUp }),
	{name: "description", put: true, set: func(a *model.Agent, raw json.RawMessage) error {
		if isNull(raw) {
			a.Description = nil
			return nil
		}
		d, err := parseString(raw, maxDescriptionLen)
		a.Description = &d
		return err
	}},
}, readOnly[model.Agent]("id", "agent_type", "binary", "host", "topic", "alive", "heartbeat_timestamp",
	"created_at", "started_at", "configurations", "availability_zone", "resources_synced")...)

// readOnly are attributes a request may name but never set.
func readOnly[T any](names ...string) []attr[T] {
	out := make([]attr[T], len(names))
	for i, n := range names {
		out[i] = attr[T]{name: n}
	}
	return out
}

// maxDescriptionLen is Neutron's DESCRIPTION_FIELD_SIZE.
const maxDescriptionLen = 255

// UpdateAgent changes an agent's admin_state_up or description. An agent
// that is administratively down is given no new networks or routers; those
// it hosts stay, as in Neutron.
func (s *Service) UpdateAgent(ctx context.Context, id string, in Attrs) (Result[model.Agent], error) {
	rev, err := s.store.Update(ctx, func(tx store.Txn) error {
		a, err := loadAgent(ctx, tx, id)
		if err != nil {
			return err
		}
		if err := decode(&a, agentAttrs, in, opUpdate); err != nil {
			return err
		}
		return tx.Put(store.Agents, id, a)
	})
	if err != nil {
		return Result[model.Agent]{}, err
	}
	a, err := s.GetAgent(ctx, id)
	return Result[model.Agent]{a, rev}, err
}

// DeleteAgent removes an agent's record. The daemon registers a role of
// its own host again at its next resync, as a Neutron agent that is still
// running comes back at its next state report.
//
// A host none of whose agents remain registered has its reports (status,
// counters, programmed revision: see internal/hoststatus) removed with
// them, so that no API server reads or waits on a host that left; should
// the host still run, its agent writes them again at its next full pass.
func (s *Service) DeleteAgent(ctx context.Context, id string) (int64, error) {
	var host string
	var last bool
	rev, err := s.store.Update(ctx, func(tx store.Txn) error {
		a, err := loadAgent(ctx, tx, id)
		if err != nil {
			return err
		}
		host, last = a.Host, true
		if err := tx.List(store.Agents, func(other string, raw []byte) error {
			var o model.Agent
			if err := json.Unmarshal(raw, &o); err != nil {
				return fmt.Errorf("decode agent %s: %w", other, err)
			}
			if other != id && o.Host == host {
				last = false
			}
			return nil
		}); err != nil {
			return err
		}
		return tx.Delete(store.Agents, id)
	})
	if err != nil || !last {
		return rev, err
	}
	if err := hoststatus.RemoveHost(ctx, s.store, host); err != nil {
		return rev, fmt.Errorf("remove the reports of host %s: %w", host, err)
	}
	return rev, nil
}

// renderAgent fills what is not stored: alive and the heartbeat, from its
// host's record in the registry (or, for a host without one, this host's
// running agent), and the configurations, counted from the store as the
// agent would report them.
func (s *Service) renderAgent(r store.Reader, a *model.Agent) error {
	a.HeartbeatTimestamp, a.Alive = a.StartedAt, false
	h, err := store.Get[model.Host](r, store.Hosts, a.Host)
	if err == nil {
		beats, berr := s.beats()
		if berr != nil {
			return berr
		}
		withBeat(&h, beats)
	}
	switch {
	case err == nil:
		if beat := heartbeatOf(&h); !beat.IsZero() {
			a.HeartbeatTimestamp = agentTime(beat)
			a.Alive = s.hostAlive(&h)
		}
	case !errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("read host %s: %w", a.Host, err)
	case a.Host == s.host && s.heartbeat != nil:
		if beat := s.heartbeat.Heartbeat(); !beat.IsZero() {
			a.HeartbeatTimestamp = agentTime(beat)
			a.Alive = s.now().Sub(beat) <= s.agentDownTime
		}
	}
	conf, err := s.agentConfigurations(r, a, &h)
	if err != nil {
		return err
	}
	a.Configurations = conf
	return nil
}

// agentConfigurations are what the agent of a host would report: what it
// holds of that host's share (its networks, routers, devices) and, for
// the L2 agent of a host with a VTEP address, its tunnels, as Neutron's
// Linux bridge agent reports them with VXLAN and L2 population.
func (s *Service) agentConfigurations(r store.Reader, a *model.Agent, h *model.Host) (map[string]any, error) {
	switch a.AgentType {
	case model.AgentTypeDHCP:
		hosted, err := dhcpHostedNetworks(r)
		if err != nil {
			return nil, err
		}
		all, err := store.List[model.Network](r, store.Networks)
		if err != nil {
			return nil, err
		}
		nets := map[string]bool{}
		for _, n := range all {
			if hosted[n.ID] && n.DHCPHost == a.Host {
				nets[n.ID] = true
			}
		}
		subnets, err := store.List[model.Subnet](r, store.Subnets)
		if err != nil {
			return nil, err
		}
		ports, err := store.List[model.Port](r, store.Ports)
		if err != nil {
			return nil, err
		}
		nSubnets, nPorts := 0, 0
		for _, sn := range subnets {
			if nets[sn.NetworkID] && sn.EnableDHCP {
				nSubnets++
			}
		}
		for _, p := range ports {
			if nets[p.NetworkID] {
				nPorts++
			}
		}
		return map[string]any{"networks": len(nets), "subnets": nSubnets, "ports": nPorts, "dhcp_driver": "nsnet"}, nil
	case model.AgentTypeL3:
		routers, err := store.List[model.Router](r, store.Routers)
		if err != nil {
			return nil, err
		}
		hosted := map[string]bool{}
		for _, rt := range routers {
			if !rt.L3Unscheduled && rt.L3Host == a.Host {
				hosted[rt.ID] = true
			}
		}
		ports, err := store.List[model.Port](r, store.Ports)
		if err != nil {
			return nil, err
		}
		interfaces, gateways := 0, 0
		for _, p := range ports {
			switch {
			case !hosted[p.DeviceID]:
			case p.DeviceOwner == model.DeviceOwnerRouterInterface:
				interfaces++
			case p.DeviceOwner == model.DeviceOwnerRouterGateway:
				gateways++
			}
		}
		fips, err := store.List[model.FloatingIP](r, store.FloatingIPs)
		if err != nil {
			return nil, err
		}
		nFIPs := 0
		for _, f := range fips {
			if f.RouterID != nil && hosted[*f.RouterID] {
				nFIPs++
			}
		}
		return map[string]any{"agent_mode": "legacy", "routers": len(hosted), "interfaces": interfaces,
			"ex_gw_ports": gateways, "floating_ips": nFIPs}, nil
	case model.AgentTypeLinuxBridge:
		ports, err := store.List[model.Port](r, store.Ports)
		if err != nil {
			return nil, err
		}
		devices, memo := 0, hostMemo{}
		for _, p := range ports {
			if !pluggedHere(&p) {
				continue
			}
			host, err := portHost(r, &p, memo)
			if err != nil {
				return nil, err
			}
			if host == a.Host {
				devices++
			}
		}
		conf := map[string]any{"devices": devices, "interface_driver": "veth", "firewall_driver": "nftables"}
		if h != nil && h.VTEPAddress != "" {
			conf["tunneling_ip"] = h.VTEPAddress
			conf["tunnel_types"] = []string{"vxlan"}
			conf["l2_population"] = true
			conf["bridge_mappings"] = map[string]string{}
			conf["interface_mappings"] = map[string]string{}
		}
		if h != nil && len(h.InterfaceMappings) > 0 {
			// The Linux bridge agent's physical_interface_mappings, as
			// it reports them.
			conf["interface_mappings"] = maps.Clone(h.InterfaceMappings)
		}
		return conf, nil
	}
	return map[string]any{}, nil
}

// hostAgent reads this host's agent of type typ; ok is false when it is
// not registered.
func (s *Service) hostAgent(r store.Reader, typ string) (a model.Agent, ok bool, err error) {
	return agentOf(r, s.host, typ)
}

// agentOf reads host's agent of type typ; ok is false when it is not
// registered.
func agentOf(r store.Reader, host, typ string) (a model.Agent, ok bool, err error) {
	a, err = store.Get[model.Agent](r, store.Agents, AgentID(host, typ))
	if errors.Is(err, store.ErrNotFound) {
		return a, false, nil
	}
	if err != nil {
		return a, false, fmt.Errorf("read %s: %w", typ, err)
	}
	return a, true, nil
}

// schedulable reports whether new resources go to this host's agent of
// type typ: it is not registered (a service without a daemon: nsnet's own
// tests) or an admin has not set it down.
func (s *Service) schedulable(r store.Reader, typ string) (bool, error) {
	a, ok, err := s.hostAgent(r, typ)
	return !ok || a.AdminStateUp, err
}

// dhcpHostedNetworks are the networks the host's DHCP agent serves: those
// an admin added, and, unless an admin removed them, those with a DHCP
// port (a DHCP-enabled subnet).
func dhcpHostedNetworks(r store.Reader) (map[string]bool, error) {
	nets, err := store.List[model.Network](r, store.Networks)
	if err != nil {
		return nil, err
	}
	ports, err := store.List[model.Port](r, store.Ports)
	if err != nil {
		return nil, err
	}
	withPort := map[string]bool{}
	for _, p := range ports {
		if p.DeviceOwner == model.DeviceOwnerDHCP {
			withPort[p.NetworkID] = true
		}
	}
	out := map[string]bool{}
	for _, n := range nets {
		if n.DHCPHosted != nil && *n.DHCPHosted || n.DHCPHosted == nil && withPort[n.ID] {
			out[n.ID] = true
		}
	}
	return out, nil
}

// ListDHCPNetworks lists the networks DHCP agent agentID hosts.
func (s *Service) ListDHCPNetworks(ctx context.Context, agentID string) ([]model.Network, error) {
	if !caller(ctx).IsAdmin() {
		return nil, denied("get_dhcp-networks")
	}
	var hosted map[string]bool
	err := s.store.View(ctx, func(r store.Reader) error {
		a, err := loadAgent(ctx, r, agentID)
		if err != nil {
			return err
		}
		hosted = map[string]bool{}
		if a.AgentType != model.AgentTypeDHCP {
			return nil
		}
		all, err := dhcpHostedNetworks(r)
		if err != nil {
			return err
		}
		nets, err := store.List[model.Network](r, store.Networks)
		for _, n := range nets {
			if all[n.ID] && n.DHCPHost == a.Host {
				hosted[n.ID] = true
			}
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	all, err := s.ListNetworks(ctx)
	return slices.DeleteFunc(all, func(n model.Network) bool { return !hosted[n.ID] }), err
}

// ListNetworkDHCPAgents lists the DHCP agents hosting a network.
func (s *Service) ListNetworkDHCPAgents(ctx context.Context, networkID string) ([]model.Agent, error) {
	if !caller(ctx).IsAdmin() {
		return nil, denied("get_dhcp-agents")
	}
	out := []model.Agent{}
	err := s.store.View(ctx, func(r store.Reader) error {
		n, _, err := loadNetwork(ctx, r, networkID)
		if err != nil {
			return err
		}
		hosted, err := dhcpHostedNetworks(r)
		if err != nil || !hosted[networkID] {
			return err
		}
		a, ok, err := agentOf(r, n.DHCPHost, model.AgentTypeDHCP)
		if err != nil || !ok {
			return err
		}
		if err := s.renderAgent(r, &a); err != nil {
			return err
		}
		out = append(out, a)
		return nil
	})
	return out, err
}

// AddNetworkToDHCPAgent makes DHCP agent agentID host a network: its DHCP
// port is created now if a subnet enables DHCP, or when one does.
func (s *Service) AddNetworkToDHCPAgent(ctx context.Context, agentID, networkID string) (int64, error) {
	if !caller(ctx).IsAdmin() {
		return 0, denied("create_dhcp-network")
	}
	return s.store.Update(ctx, func(tx store.Txn) error {
		a, err := loadAgent(ctx, tx, agentID)
		if err != nil {
			return err
		}
		if a.AgentType != model.AgentTypeDHCP || !a.AdminStateUp {
			return typed(http.StatusNotFound, "InvalidDHCPAgent", "Agent %s is not a valid DHCP Agent or has been disabled.", agentID)
		}
		n, _, err := loadNetwork(ctx, tx, networkID)
		if err != nil {
			return err
		}
		hosted, err := dhcpHostedNetworks(tx)
		if err != nil {
			return err
		}
		if hosted[n.ID] {
			return conflict("NetworkHostedByDHCPAgent", "The network %s has been already hosted by the DHCP Agent %s.", n.ID, agentID)
		}
		n.DHCPHosted = new(bool)
		*n.DHCPHosted = true
		n.DHCPHost = a.Host
		if err := tx.Put(store.Networks, n.ID, n); err != nil {
			return err
		}
		return s.syncDHCPPort(tx, n.ID)
	})
}

// RemoveNetworkFromDHCPAgent stops DHCP agent agentID hosting a network:
// its DHCP port goes (and with it the qdhcp namespace and its servers);
// it stays off until an admin adds it again.
func (s *Service) RemoveNetworkFromDHCPAgent(ctx context.Context, agentID, networkID string) (int64, error) {
	if !caller(ctx).IsAdmin() {
		return 0, denied("delete_dhcp-network")
	}
	return s.store.Update(ctx, func(tx store.Txn) error {
		a, err := loadAgent(ctx, tx, agentID)
		if err != nil {
			return err
		}
		n, _, err := loadNetwork(ctx, tx, networkID)
		if err != nil {
			return err
		}
		hosted, err := dhcpHostedNetworks(tx)
		if err != nil {
			return err
		}
		if a.AgentType != model.AgentTypeDHCP || a.Host != n.DHCPHost || !hosted[n.ID] {
			return conflict("NetworkNotHostedByDhcpAgent", "The network %s is not hosted by the DHCP Agent %s.", n.ID, agentID)
		}
		n.DHCPHosted = new(bool)
		if err := tx.Put(store.Networks, n.ID, n); err != nil {
			return err
		}
		return s.syncDHCPPort(tx, n.ID)
	})
}

// ListL3Routers lists the routers L3 agent agentID hosts.
func (s *Service) ListL3Routers(ctx context.Context, agentID string) ([]model.Router, error) {
	if !caller(ctx).IsAdmin() {
		return nil, denied("get_l3-routers")
	}
	hosted := map[string]bool{}
	err := s.store.View(ctx, func(r store.Reader) error {
		a, err := loadAgent(ctx, r, agentID)
		if err != nil || a.AgentType != model.AgentTypeL3 {
			return err
		}
		routers, err := store.List[model.Router](r, store.Routers)
		for _, rt := range routers {
			if !rt.L3Unscheduled && rt.L3Host == a.Host {
				hosted[rt.ID] = true
			}
		}
		return err
	})
	if err != nil || len(hosted) == 0 {
		return []model.Router{}, err
	}
	all, err := s.ListRouters(ctx)
	return slices.DeleteFunc(all, func(rt model.Router) bool { return !hosted[rt.ID] }), err
}

// ListRouterL3Agents lists the L3 agents hosting a router.
func (s *Service) ListRouterL3Agents(ctx context.Context, routerID string) ([]model.Agent, error) {
	if !caller(ctx).IsAdmin() {
		return nil, denied("get_l3-agents")
	}
	out := []model.Agent{}
	err := s.store.View(ctx, func(r store.Reader) error {
		rt, err := loadRouter(ctx, r, routerID)
		if err != nil || rt.L3Unscheduled {
			return err
		}
		a, ok, err := agentOf(r, rt.L3Host, model.AgentTypeL3)
		if err != nil || !ok {
			return err
		}
		if err := s.renderAgent(r, &a); err != nil {
			return err
		}
		out = append(out, a)
		return nil
	})
	return out, err
}

// AddRouterToL3Agent makes L3 agent agentID host a router: the agent
// builds its qrouter namespace again.
func (s *Service) AddRouterToL3Agent(ctx context.Context, agentID, routerID string) (int64, error) {
	if !caller(ctx).IsAdmin() {
		return 0, denied("create_l3-router")
	}
	return s.store.Update(ctx, func(tx store.Txn) error {
		a, err := loadAgent(ctx, tx, agentID)
		if err != nil {
			return err
		}
		if a.AgentType != model.AgentTypeL3 || !a.AdminStateUp {
			return typed(http.StatusNotFound, "InvalidL3Agent", "Agent %s is not a L3 Agent or has been disabled", agentID)
		}
		rt, err := loadRouter(ctx, tx, routerID)
		if err != nil {
			return err
		}
		// Neutron's validate_agent_router_combination: an agent that is
		// no candidate for the router (here, whose host does not map its
		// gateway's physical network, see hosts.go) is refused as one
		// that is disabled.
		if ok, err := s.servesGateway(tx, a.Host, &rt); err != nil {
			return err
		} else if !ok {
			return typed(http.StatusNotFound, "InvalidL3Agent", "Agent %s is not a L3 Agent or has been disabled", agentID)
		}
		if !rt.L3Unscheduled {
			return conflict("RouterHostedByL3Agent", "The router %s has been already hosted by the L3 Agent %s.", rt.ID, agentID)
		}
		rt.L3Unscheduled, rt.L3Waiting, rt.L3Host = false, false, a.Host
		return tx.Put(store.Routers, rt.ID, rt)
	})
}

// RemoveRouterFromL3Agent stops L3 agent agentID hosting a router: the
// agent removes its qrouter namespace, and the router forwards nothing
// until an admin adds it to an L3 agent again.
func (s *Service) RemoveRouterFromL3Agent(ctx context.Context, agentID, routerID string) (int64, error) {
	if !caller(ctx).IsAdmin() {
		return 0, denied("delete_l3-router")
	}
	return s.store.Update(ctx, func(tx store.Txn) error {
		a, err := loadAgent(ctx, tx, agentID)
		if err != nil {
			return err
		}
		rt, err := loadRouter(ctx, tx, routerID)
		if err != nil {
			return err
		}
		if a.AgentType != model.AgentTypeL3 || a.Host != rt.L3Host || rt.L3Unscheduled {
			return conflict("RouterNotHostedByL3Agent", "The router %s is not hosted by L3 agent %s.", rt.ID, agentID)
		}
		// Removed by an admin: on no host until one adds it again.
		rt.L3Unscheduled, rt.L3Waiting, rt.L3Host = true, false, ""
		return tx.Put(store.Routers, rt.ID, rt)
	})
}

// Availability zones are hosts' zones (`nsnet daemon --availability-zone`,
// model.DefaultAvailabilityZone by default): an agent is in its host's. A
// zone exists for a resource when an agent of the matching type is in it.

// zoneResources maps a zone's resource to the agent type that hosts it.
var zoneResources = map[string]string{"network": model.AgentTypeDHCP, "router": model.AgentTypeL3}

// ListAvailabilityZones lists the zones of the registered agents, per
// resource: available while one of its agents there is up.
func (s *Service) ListAvailabilityZones(ctx context.Context) ([]model.AvailabilityZone, error) {
	out := []model.AvailabilityZone{}
	err := s.store.View(ctx, func(r store.Reader) error {
		agents, err := store.List[model.Agent](r, store.Agents)
		if err != nil {
			return err
		}
		zones := map[model.AvailabilityZone]bool{}
		for _, a := range agents {
			for resource, typ := range zoneResources {
				if a.AgentType != typ || a.AvailabilityZone == nil {
					continue
				}
				k := model.AvailabilityZone{Name: *a.AvailabilityZone, Resource: resource, State: "available"}
				zones[k] = zones[k] || a.AdminStateUp
			}
		}
		for _, k := range slices.SortedFunc(maps.Keys(zones), func(a, b model.AvailabilityZone) int {
			if a.Name != b.Name {
				return cmpString(a.Name, b.Name)
			}
			return cmpString(a.Resource, b.Resource)
		}) {
			if !zones[k] {
				k.State = "unavailable"
			}
			out = append(out, k)
		}
		return nil
	})
	return out, err
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// parseZoneHints checks availability_zone_hints as Neutron's attribute
// validator does: a list of unique strings, short enough to store.
func parseZoneHints(raw json.RawMessage) ([]string, error) {
	hints, err := parseStringList(raw, func(string) error { return nil })
	if err != nil {
		return nil, err
	}
	if b, _ := json.Marshal(hints); len(b) > maxZoneHintsLen {
		return nil, invalidInput("Too many availability_zone_hints specified")
	}
	return hints, nil
}

// maxZoneHintsLen is Neutron's AZ_HINTS_DB_LEN: the hints' JSON must fit.
const maxZoneHintsLen = 255

// checkZones answers 404 AvailabilityZoneNotFound for a hint naming a zone
// where no agent of the resource's type is.
func checkZones(r store.Reader, resource string, hints []string) error {
	if len(hints) == 0 {
		return nil
	}
	agents, err := store.List[model.Agent](r, store.Agents)
	if err != nil {
		return err
	}
	known := map[string]bool{}
	for _, a := range agents {
		if a.AgentType == zoneResources[resource] && a.AvailabilityZone != nil {
			known[*a.AvailabilityZone] = true
		}
	}
	for _, z := range hints {
		if !known[z] {
			return typed(http.StatusNotFound, "AvailabilityZoneNotFound", "AvailabilityZone %s could not be found.", z)
		}
	}
	return nil
}
