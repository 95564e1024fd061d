package service

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/store"
)

// Hosts, and the schedulers that place instances, routers and networks'
// DHCP on them.
//
// Every daemon writes its host's record (store.Hosts, model.Host) when it
// starts, and beats every heartbeat interval (Neutron's report_interval);
// a host is alive while its newest beat is no older than the agent down
// time. Its agents' alive and heartbeat_timestamp come from that beat,
// whichever daemon answers the API.
//
// A beat is no record: a store that offers store.Presence keeps it apart
// (etcd: a key under a lease, outside the records' prefix; bbolt: in the
// process), so that N hosts beating wake none of the N agents that watch
// the records. The record's own Heartbeat is the time it was written;
// the service reads a host's heartbeat as the newer of it and the host's
// presence (listHosts), so a store without Presence, or a record written
// by hand, still says something.
//
// The schedulers are pure functions of the transaction's snapshot, as
// every transaction is (store.Update may run one twice): an instance goes
// to the alive compute host with the fewest instances, a router to the
// alive network node with the fewest routers, a network's DHCP to the
// alive network node with the fewest networks; ties go to the first name.
// A host whose agent of the role an admin set down (admin_state_up=false)
// gets nothing new: that is how a host is drained. A host is a candidate
// for a router or network with availability_zone_hints only in one of
// those zones.
//
// A router whose gateway, or a network whose DHCP, is on a flat network
// of physical network X goes only to a network node that maps X
// (--physical-interface-mappings): elsewhere the network's bridge has no
// uplink, and SNAT or DHCP would serve nobody beyond the host. This is
// ML2's filter_hosts_with_network_access for DHCP, and for routers what
// Neutron's L3 scheduler does with agents that can reach only some
// external networks. It applies once any host maps any physical network;
// a network cabled by nsnet:uplink names its interface itself, and one
// box, or hosts that map nothing, schedule as before. Setting a gateway
// on a router hosted where X is not mapped moves it (see
// placeForGateway).
//
// A service that knows no host at all (its own tests, an API server
// without a daemon) keeps the one-host behaviour: everything is on
// Config.Host.
//
// Failover (Neutron's allow_automatic_l3agent_failover and
// allow_automatic_dhcp_failover): the routers and DHCP of a dead network
// node move to an alive one (Failover). A drained host is not dead: what
// it hosts stays, as in Neutron, where only dead agents are rescheduled
// from.

// hostTime is how a Host's times are stored.
const hostTime = time.RFC3339

// DefaultHeartbeatInterval is Neutron's report_interval: how often a
// daemon refreshes its host's heartbeat.
const DefaultHeartbeatInterval = 30 * time.Second

// hostRoles are the roles of this service's host: Config.Roles, or both.
func (s *Service) hostRoles() []string {
	if len(s.roles) == 0 {
		return []string{model.RoleCompute, model.RoleNetwork}
	}
	return s.roles
}

// RegisterHost writes this host's record: its roles, VTEP address, zone,
// start time, and a heartbeat of now; and beats.
func (s *Service) RegisterHost(ctx context.Context, started time.Time) (int64, error) {
	if s.host == "" {
		return 0, errors.New("register host: the service has no host name")
	}
	h := s.hostRecord(started)
	rev, err := s.store.Update(ctx, func(tx store.Txn) error { return tx.Put(store.Hosts, h.Name, h) })
	if err != nil {
		return 0, err
	}
	return rev, s.beat(ctx)
}

// beat is this host's proof of life in the store's Presence: good for
// the agent down time.
func (s *Service) beat(ctx context.Context) error {
	if s.presence == nil {
		return nil
	}
	if err := s.presence.Beat(ctx, s.host, s.now(), s.agentDownTime); err != nil {
		return fmt.Errorf("heartbeat of host %s: %w", s.host, err)
	}
	return nil
}

// hostRecord is this host's registry record, with a heartbeat of now.
func (s *Service) hostRecord(started time.Time) model.Host {
	return model.Host{Name: s.host, Roles: slices.Clone(s.hostRoles()), VTEPAddress: s.vtepAddress, NetnsPrefix: s.netnsPrefix,
		InterfaceMappings: maps.Clone(s.ifaceMappings),
		AvailabilityZone:  s.zone, StartedAt: started.UTC().Format(hostTime), Heartbeat: s.now().UTC().Format(hostTime)}
}

// Heartbeat refreshes this host's heartbeat: a beat in the store's
// Presence, which writes no record (without Presence, a write of the
// host's record that changes only Heartbeat). A record an admin or a
// lost store removed is written again whole.
func (s *Service) Heartbeat(ctx context.Context, started time.Time) (int64, error) {
	if s.host == "" {
		return 0, errors.New("heartbeat: the service has no host name")
	}
	present := s.presence != nil
	rev, err := s.store.Update(ctx, func(tx store.Txn) error {
		h, err := store.Get[model.Host](tx, store.Hosts, s.host)
		switch {
		case errors.Is(err, store.ErrNotFound):
			h = s.hostRecord(started)
		case err != nil:
			return fmt.Errorf("read host %s: %w", s.host, err)
		case present:
			return nil // the record is there; the beat is apart
		default:
			h.Heartbeat = s.now().UTC().Format(hostTime)
		}
		return tx.Put(store.Hosts, h.Name, h)
	})
	if err != nil {
		return 0, err
	}
	return rev, s.beat(ctx)
}

// netnsPrefixOf is the prefix of the namespaces host's agent makes, as
// its registry record says; this service's own for a host with no record
// or none in it (no registry, a record from before the field).
func (s *Service) netnsPrefixOf(r store.Reader, host string) (string, error) {
	if host == "" || host == s.host {
		return s.netnsPrefix, nil
	}
	h, err := store.Get[model.Host](r, store.Hosts, host)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return s.netnsPrefix, nil
	case err != nil:
		return "", fmt.Errorf("read host %s: %w", host, err)
	}
	return cmp.Or(h.NetnsPrefix, s.netnsPrefix), nil
}

// listHosts reads the registry, by name, each host's Heartbeat its
// newest (see withBeat).
func (s *Service) listHosts(r store.Reader) (map[string]model.Host, error) {
	all, err := store.List[model.Host](r, store.Hosts)
	if err != nil {
		return nil, fmt.Errorf("read hosts: %w", err)
	}
	beats, err := s.beats()
	if err != nil {
		return nil, err
	}
	out := make(map[string]model.Host, len(all))
	for _, h := range all {
		withBeat(&h, beats)
		out[h.Name] = h
	}
	return out, nil
}

// beats are the hosts' beats from the store's Presence; nil without one.
// Read outside the transaction (a beat is no record), like the clock that
// judges them: a function that runs again may see newer ones.
func (s *Service) beats() (map[string]time.Time, error) {
	if s.presence == nil {
		return nil, nil
	}
	// The store bounds the read with its own request timeout.
	beats, err := s.presence.Beats(context.Background())
	if err != nil {
		return nil, fmt.Errorf("read hosts' heartbeats: %w", err)
	}
	return beats, nil
}

// withBeat sets h's Heartbeat to its beat in beats when that is newer
// than the record's own.
func withBeat(h *model.Host, beats map[string]time.Time) {
	if b, ok := beats[h.Name]; ok && b.After(heartbeatOf(h)) {
		h.Heartbeat = b.UTC().Format(time.RFC3339Nano)
	}
}

// heartbeatOf is a host's last heartbeat; zero when it has none that
// parses.
func heartbeatOf(h *model.Host) time.Time {
	t, err := time.Parse(hostTime, h.Heartbeat)
	if err != nil {
		return time.Time{}
	}
	return t
}

// hostAlive reports whether h's heartbeat is no older than the agent down
// time.
func (s *Service) hostAlive(h *model.Host) bool {
	beat := heartbeatOf(h)
	return !beat.IsZero() && s.now().Sub(beat) <= s.agentDownTime
}

// candidates are the hosts that may take something new of role, through
// their agent of type typ (whose admin_state_up drains the role: the
// compute role's is the Linux bridge agent, a network node's routers the
// L3 agent's and its DHCP the DHCP agent's): alive, with the role, that agent not set down
// by an admin (a missing record does not count: the daemon registers it
// again), in one of zones when there are any. Sorted by name.
//
// physnet, when not "", is a physical network the host must map.
func (s *Service) candidates(r store.Reader, hosts map[string]model.Host, role, typ string, zones []string, physnet string) ([]string, error) {
	var out []string
	for name, h := range hosts {
		if !slices.Contains(h.Roles, role) || !s.hostAlive(&h) {
			continue
		}
		if len(zones) > 0 && !slices.Contains(zones, h.AvailabilityZone) {
			continue
		}
		if physnet != "" && !mapsPhysnet(&h, physnet) {
			continue
		}
		a, err := store.Get[model.Agent](r, store.Agents, AgentID(name, typ))
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return nil, fmt.Errorf("read %s of %s: %w", typ, name, err)
		case !a.AdminStateUp:
			continue
		}
		out = append(out, name)
	}
	slices.Sort(out)
	return out, nil
}

// leastLoaded picks among sorted candidates the one load counts least
// for; the first name on a tie. load is read only when there is a choice.
func leastLoaded(cands []string, load func() (map[string]int, error)) (string, error) {
	switch len(cands) {
	case 0:
		return "", nil
	case 1:
		return cands[0], nil
	}
	counts, err := load()
	if err != nil {
		return "", err
	}
	best := cands[0]
	for _, c := range cands[1:] {
		if counts[c] < counts[best] {
			best = c
		}
	}
	return best, nil
}

// scheduleInstance chooses the host of a new instance: requested, which
// must be a registered, alive compute host that an admin has not drained,
// or else the least loaded such host. Without a registry: this host.
func (s *Service) scheduleInstance(r store.Reader, requested string) (string, error) {
	hosts, err := s.listHosts(r)
	if err != nil {
		return "", err
	}
	if len(hosts) == 0 {
		if requested != "" && requested != s.host {
			return "", invalidInput("host %s is not a registered host", requested)
		}
		return s.host, nil
	}
	if requested != "" {
		h, ok := hosts[requested]
		switch {
		case !ok:
			return "", invalidInput("host %s is not a registered host", requested)
		case !slices.Contains(h.Roles, model.RoleCompute):
			return "", invalidInput("host %s has no compute role (roles: %v), it cannot take instances", requested, h.Roles)
		case !s.hostAlive(&h):
			return "", conflict("HostNotAlive", "Host %s is not alive (last heartbeat %s): it cannot take instances.", requested, h.Heartbeat)
		}
		a, err := store.Get[model.Agent](r, store.Agents, AgentID(requested, model.AgentTypeLinuxBridge))
		if err == nil && !a.AdminStateUp {
			return "", conflict("HostDisabled", "Host %s is disabled (its %s is administratively down): it takes no new instances.", requested, model.AgentTypeLinuxBridge)
		}
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return "", err
		}
		return requested, nil
	}
	cands, err := s.candidates(r, hosts, model.RoleCompute, model.AgentTypeLinuxBridge, nil, "")
	if err != nil {
		return "", err
	}
	if len(cands) == 0 {
		return "", conflict("NoValidHost", "No valid host was found: no compute host is alive and enabled.")
	}
	return leastLoaded(cands, func() (map[string]int, error) {
		// The count of each candidate's instances (index.go), not a
		// walk of every instance.
		counts := map[string]int{}
		for _, h := range cands {
			n, err := countOf(r, idxInstHost, h)
			if err != nil {
				return nil, err
			}
			counts[h] = n
		}
		return counts, nil
	})
}

// mapsPhysnet reports whether host h maps physical network physnet to an
// interface.
func mapsPhysnet(h *model.Host, physnet string) bool {
	_, ok := h.InterfaceMappings[physnet]
	return ok
}

// physnetNeed is the physical network a host must map to serve network
// id (a router's gateway on it, its DHCP): its flat physical network,
// once any of hosts maps one; "" when any host will do (no network, not
// flat, cabled by nsnet:uplink, nothing mapped anywhere).
func physnetNeed(r store.Reader, hosts map[string]model.Host, id string) (string, error) {
	mapped := false
	for _, h := range hosts {
		mapped = mapped || len(h.InterfaceMappings) > 0
	}
	if id == "" || !mapped {
		return "", nil
	}
	n, err := store.Get[model.Network](r, store.Networks, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return "", nil
	case err != nil:
		return "", fmt.Errorf("read network %s: %w", id, err)
	case n.Uplink != nil || n.NetworkType.Get() != model.NetworkTypeFlat:
		return "", nil
	}
	return n.PhysicalNetwork.Get(), nil
}

// gatewayNetwork is the network of rt's gateway; "" without one.
func gatewayNetwork(rt *model.Router) string {
	if rt.ExternalGatewayInfo == nil {
		return ""
	}
	return rt.ExternalGatewayInfo.NetworkID
}

// scheduleRouter chooses the L3 host of router rt: the alive network node
// with the fewest routers among those in its zones that map its gateway's
// physical network; ok is false when none may take it (the router stays
// unscheduled, as in Neutron). Without a registry: this host, unless an
// admin set its L3 agent down.
func (s *Service) scheduleRouter(r store.Reader, rt *model.Router) (host string, ok bool, err error) {
	return s.scheduleOnNetworkNode(r, model.AgentTypeL3, rt.AvailabilityZoneHints, gatewayNetwork(rt),
		func() (map[string]int, error) { return routerLoad(r) })
}

// servesGateway reports whether host can serve router rt's gateway: it
// maps the gateway's physical network, or none is needed (physnetNeed).
func (s *Service) servesGateway(r store.Reader, host string, rt *model.Router) (bool, error) {
	hosts, err := s.listHosts(r)
	if err != nil {
		return false, err
	}
	need, err := physnetNeed(r, hosts, gatewayNetwork(rt))
	if err != nil || need == "" {
		return err == nil, err
	}
	h, ok := hosts[host]
	return ok && mapsPhysnet(&h, need), nil
}

// placeForGateway keeps router rt, whose gateway an update just set, on a
// host that can serve it, as Neutron's _check_router_needs_rescheduling
// does when a gateway is set: a router hosted on a network node that does
// not map the gateway's physical network moves to the least loaded one
// that does, and when none can take it the update is refused with
// Neutron's 400 ("No eligible l3 agent associated with external network
// …"), rather than leave SNAT dead. A router waiting for a network node
// is placed if one can now take it, and otherwise waits as a new router
// would; one an admin removed from its L3 agent stays on none.
func (s *Service) placeForGateway(r store.Reader, rt *model.Router) error {
	if rt.ExternalGatewayInfo == nil || rt.L3Unscheduled && !rt.L3Waiting {
		return nil
	}
	hosts, err := s.listHosts(r)
	if err != nil || len(hosts) == 0 {
		return err
	}
	if !rt.L3Unscheduled {
		if ok, err := s.servesGateway(r, rt.L3Host, rt); err != nil || ok {
			return err
		}
	} else if need, err := physnetNeed(r, hosts, gatewayNetwork(rt)); err != nil || need == "" {
		return err
	}
	host, ok, err := s.scheduleRouter(r, rt)
	switch {
	case err != nil:
		return err
	case ok:
		rt.L3Unscheduled, rt.L3Waiting, rt.L3Host = false, false, host
	case !rt.L3Unscheduled:
		return badResource("router", "No eligible l3 agent associated with external network %s found", rt.ExternalGatewayInfo.NetworkID)
	}
	return nil
}

// routerLoad counts the routers each host's L3 agent hosts.
func routerLoad(r store.Reader) (map[string]int, error) {
	all, err := store.List[model.Router](r, store.Routers)
	counts := map[string]int{}
	for _, rt := range all {
		if !rt.L3Unscheduled {
			counts[rt.L3Host]++
		}
	}
	return counts, err
}

// scheduleDHCP chooses the DHCP host of network n: the alive network
// node with the fewest networks among those in its zones that map its
// physical network; ok is false when none may take it. Without a
// registry: this host, unless an admin set its DHCP agent down.
func (s *Service) scheduleDHCP(r store.Reader, n *model.Network) (host string, ok bool, err error) {
	return s.scheduleOnNetworkNode(r, model.AgentTypeDHCP, n.AvailabilityZoneHints, n.ID, func() (map[string]int, error) {
		hosted, err := dhcpHostedNetworks(r)
		if err != nil {
			return nil, err
		}
		nets, err := store.List[model.Network](r, store.Networks)
		counts := map[string]int{}
		for _, n := range nets {
			if hosted[n.ID] {
				counts[n.DHCPHost]++
			}
		}
		return counts, err
	})
}

// scheduleOnNetworkNode chooses the network node whose agent of type typ
// takes a router or a network's DHCP: the least loaded (by load) alive
// one in zones that can serve network (the router's gateway's, the
// DHCP's; see physnetNeed); ok is false when none may. Without a
// registry: this host, unless an admin set its agent of type typ down.
func (s *Service) scheduleOnNetworkNode(r store.Reader, typ string, zones []string, network string, load func() (map[string]int, error)) (host string, ok bool, err error) {
	hosts, err := s.listHosts(r)
	if err != nil {
		return "", false, err
	}
	if len(hosts) == 0 {
		ok, err := s.schedulable(r, typ)
		return s.host, ok, err
	}
	need, err := physnetNeed(r, hosts, network)
	if err != nil {
		return "", false, err
	}
	cands, err := s.candidates(r, hosts, model.RoleNetwork, typ, zones, need)
	if err != nil || len(cands) == 0 {
		return "", false, err
	}
	host, err = leastLoaded(cands, load)
	return host, err == nil, err
}

// HostUUID names a host in DHCP ports' device_ids, as Neutron's DHCP agent
// does ("dhcp<host uuid>-<network>"): a UUID derived from the host name.
func HostUUID(host string) string {
	return uuid.NewSHA1(uuid.NameSpaceDNS, []byte(host)).String()
}

// dhcpDeviceID is the device_id of the DHCP port of a network served by
// host: named after the host's UUID, or Config.HostID for this host's.
func (s *Service) dhcpDeviceID(host, networkID string) string {
	id := HostUUID(host)
	if host == s.host && s.hostID != "" {
		id = s.hostID
	}
	return model.DHCPDeviceID(id, networkID)
}

// Move is one router or network that Failover moved off a dead host.
type Move struct {
	Kind     store.Kind // store.Routers or store.Networks (its DHCP)
	ID       string
	From, To string
}

// Failover moves the routers and networks' DHCP of dead network nodes
// (heartbeat older than the agent down time) to alive ones, chosen as
// for a new one. Every daemon runs it periodically; the transaction
// re-reads who is dead, so that when several race, the store's conflict
// check makes one win and the others find nothing left to move. What a
// drained host hosts stays there: drained is not dead. A router or
// network with no alive candidate stays where it is until one comes.
func (s *Service) Failover(ctx context.Context) ([]Move, error) {
	var moves []Move
	_, err := s.store.Update(ctx, func(tx store.Txn) error {
		moves = nil
		hosts, err := s.listHosts(tx)
		if err != nil || len(hosts) == 0 {
			return err
		}
		dead := map[string]bool{}
		for name, h := range hosts {
			if !s.hostAlive(&h) {
				dead[name] = true
			}
		}
		if len(dead) == 0 {
			return nil
		}
		routers, err := store.List[model.Router](tx, store.Routers)
		if err != nil {
			return err
		}
		for _, rt := range routers {
			if rt.L3Unscheduled || !dead[rt.L3Host] {
				continue
			}
			to, ok, err := s.scheduleRouter(tx, &rt)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			moves = append(moves, Move{store.Routers, rt.ID, rt.L3Host, to})
			rt.L3Host = to
			if err := tx.Put(store.Routers, rt.ID, rt); err != nil {
				return err
			}
		}
		hosted, err := dhcpHostedNetworks(tx)
		if err != nil {
			return err
		}
		nets, err := store.List[model.Network](tx, store.Networks)
		if err != nil {
			return err
		}
		for _, n := range nets {
			if !hosted[n.ID] || !dead[n.DHCPHost] {
				continue
			}
			to, ok, err := s.scheduleDHCP(tx, &n)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			moves = append(moves, Move{store.Networks, n.ID, n.DHCPHost, to})
			if err := s.moveDHCP(tx, n, to); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("failover: %w", err)
	}
	return moves, nil
}

// ScheduleWaiting places what waits for a network node: the routers that
// none could take when they were made (model.Router.L3Waiting) and the
// networks whose DHCP none could serve when their first DHCP subnet came
// (no DHCP port, no DHCP host, no admin choice), each as a new one would be
// placed. Every daemon runs it at start and at each heartbeat, so that a
// network node that comes back or registers takes them, as Neutron's
// agents' auto-scheduling does; a router or network an admin removed from
// its agent stays on none. Moves have an empty From.
//
// It looks first in a read of its own, and writes only when something
// waits: every daemon runs it every heartbeat interval.
func (s *Service) ScheduleWaiting(ctx context.Context) ([]Move, error) {
	var waiting bool
	err := s.store.View(ctx, func(r store.Reader) error {
		var err error
		waiting, err = s.findWaiting(r, func(store.Kind, string) error { return errFound })
		if errors.Is(err, errFound) {
			waiting, err = true, nil
		}
		return err
	})
	if err != nil || !waiting {
		return nil, err
	}
	var moves []Move
	_, err = s.store.Update(ctx, func(tx store.Txn) error {
		moves = nil
		_, err := s.findWaiting(tx, func(kind store.Kind, id string) error {
			if kind == store.Routers {
				rt, err := store.Get[model.Router](tx, store.Routers, id)
				if err != nil {
					return err
				}
				to, ok, err := s.scheduleRouter(tx, &rt)
				if err != nil || !ok {
					return err
				}
				rt.L3Unscheduled, rt.L3Waiting, rt.L3Host = false, false, to
				moves = append(moves, Move{Kind: store.Routers, ID: id, To: to})
				return tx.Put(store.Routers, id, rt)
			}
			// syncDHCPPort schedules it as for a first DHCP subnet.
			if err := s.syncDHCPPort(tx, id); err != nil {
				return err
			}
			n, err := store.Get[model.Network](tx, store.Networks, id)
			if err != nil {
				return err
			}
			if n.DHCPHost != "" {
				moves = append(moves, Move{Kind: store.Networks, ID: id, To: n.DHCPHost})
			}
			return nil
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("schedule waiting routers and networks: %w", err)
	}
	return moves, nil
}

// errFound stops findWaiting at the first find.
var errFound = errors.New("found")

// findWaiting calls found for each router and network waiting for a
// network node (see ScheduleWaiting), routers first, each in id order; it
// reports whether there was any. Without a registry nothing waits: the
// host is the only one.
func (s *Service) findWaiting(r store.Reader, found func(kind store.Kind, id string) error) (bool, error) {
	hosts, err := store.List[model.Host](r, store.Hosts)
	if err != nil || len(hosts) == 0 {
		return false, err
	}
	any := false
	routers, err := store.List[model.Router](r, store.Routers)
	if err != nil {
		return false, err
	}
	for _, rt := range routers {
		if rt.L3Unscheduled && rt.L3Waiting {
			any = true
			if err := found(store.Routers, rt.ID); err != nil {
				return any, err
			}
		}
	}
	nets, err := store.List[model.Network](r, store.Networks)
	if err != nil {
		return any, err
	}
	maybe := map[string]bool{}
	for _, n := range nets {
		// A network given a DHCP host keeps it (failover moves it); an
		// admin's choice stands.
		if n.DHCPHosted == nil && n.DHCPHost == "" {
			maybe[n.ID] = true
		}
	}
	if len(maybe) == 0 {
		return any, nil
	}
	subnets, err := store.List[model.Subnet](r, store.Subnets)
	if err != nil {
		return any, err
	}
	dhcp := map[string]bool{}
	for _, sn := range subnets {
		if sn.EnableDHCP && maybe[sn.NetworkID] {
			dhcp[sn.NetworkID] = true
		}
	}
	for _, id := range slices.Sorted(maps.Keys(dhcp)) {
		port, err := dhcpPortOf(r, id)
		if err != nil {
			return any, err
		}
		if port != nil {
			continue // a store from before hosts: AdoptUnhosted's
		}
		any = true
		if err := found(store.Networks, id); err != nil {
			return any, err
		}
	}
	return any, nil
}

// moveDHCP gives network n's DHCP to host: the one DHCP port stays (its
// MAC and addresses, which clients know), named after its new host.
func (s *Service) moveDHCP(tx store.Txn, n model.Network, host string) error {
	n.DHCPHost = host
	if err := tx.Put(store.Networks, n.ID, n); err != nil {
		return err
	}
	port, err := dhcpPortOf(tx, n.ID)
	if err != nil || port == nil {
		return err
	}
	port.DeviceID = s.dhcpDeviceID(host, n.ID)
	return tx.Put(store.Ports, port.ID, *port)
}

// AdoptUnhosted gives the instances, routers and DHCP-hosted networks of a
// store written before hosts (their host field empty) to this host, when
// it is the only registered host: the upgrade of a one-box store. It
// returns how many records it changed; with other hosts registered it
// changes nothing, and the schedulers' failover and the admin place them.
func (s *Service) AdoptUnhosted(ctx context.Context) (int, error) {
	n := 0
	_, err := s.store.Update(ctx, func(tx store.Txn) error {
		n = 0
		hosts, err := s.listHosts(tx)
		if err != nil {
			return err
		}
		if _, ok := hosts[s.host]; !ok || len(hosts) != 1 {
			return nil
		}
		insts, err := store.List[model.Instance](tx, store.Instances)
		if err != nil {
			return err
		}
		for _, in := range insts {
			if in.Host == "" {
				in.Host = s.host
				if err := tx.Put(store.Instances, in.ID, in); err != nil {
					return err
				}
				n++
			}
		}
		routers, err := store.List[model.Router](tx, store.Routers)
		if err != nil {
			return err
		}
		for _, rt := range routers {
			// One an admin removed from its L3 agent stays on none.
			if rt.L3Host == "" && !rt.L3Unscheduled {
				rt.L3Host = s.host
				if err := tx.Put(store.Routers, rt.ID, rt); err != nil {
					return err
				}
				n++
			}
		}
		hosted, err := dhcpHostedNetworks(tx)
		if err != nil {
			return err
		}
		nets, err := store.List[model.Network](tx, store.Networks)
		if err != nil {
			return err
		}
		for _, nw := range nets {
			if hosted[nw.ID] && nw.DHCPHost == "" {
				if err := s.moveDHCP(tx, nw, s.host); err != nil {
					return err
				}
				n++
			}
		}
		return nil
	})
	return n, err
}

// hostMemo remembers, within one read, the hosts of the records ports
// belong to and which hosts are known, so that a list of many ports of
// few instances, routers and networks reads each of them once. nil
// remembers nothing.
type hostMemo map[string]string

func (m hostMemo) get(key string, read func() (string, error)) (string, error) {
	if v, ok := m[key]; ok {
		return v, nil
	}
	v, err := read()
	if err == nil && m != nil {
		m[key] = v
	}
	return v, err
}

// portHost is the host a port is bound to, derived and never stored
// twice: an instance's port is on the instance's host, a router's on its
// L3 host, a DHCP port on its network's DHCP host, a trunk's subport on
// its parent's host (Neutron's trunk plugin binds subports where the
// parent binds, and the agent wires them there); any other port where
// an admin bound it (binding:host_id).
func portHost(r store.Reader, p *model.Port, memo hostMemo) (string, error) {
	var kind store.Kind
	id := p.DeviceID
	switch {
	case p.DeviceOwner == model.DeviceOwnerTrunkSubport:
		parent, ok, err := subportParent(r, p.ID, memo)
		switch {
		case err != nil:
			return "", err
		case !ok && p.HostID != nil:
			// An owner left with no trunk: bound as any port.
			return *p.HostID, nil
		case !ok:
			return "", nil
		}
		pp, err := store.Get[model.Port](r, store.Ports, parent)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return "", nil
		case err != nil:
			return "", fmt.Errorf("subport %s: its parent %s: %w", p.ID, parent, err)
		case pp.DeviceOwner == model.DeviceOwnerTrunkSubport:
			// A parent is never a subport (addSubPorts); no loop.
			return "", nil
		}
		return portHost(r, &pp, memo)
	case p.DeviceOwner == model.DeviceOwnerCompute:
		kind = store.Instances
	case p.DeviceOwner == model.DeviceOwnerDHCP:
		kind, id = store.Networks, p.NetworkID
	case isRouterPort(p):
		kind = store.Routers
	default:
		if p.HostID != nil {
			return *p.HostID, nil
		}
		return "", nil
	}
	return memo.get(string(kind)+"/"+id, func() (string, error) {
		var host string
		var err error
		switch kind {
		case store.Instances:
			var in model.Instance
			in, err = store.Get[model.Instance](r, kind, id)
			host = in.Host
		case store.Networks:
			var n model.Network
			n, err = store.Get[model.Network](r, kind, id)
			host = n.DHCPHost
		default:
			var rt model.Router
			rt, err = store.Get[model.Router](r, kind, id)
			host = rt.L3Host
		}
		if errors.Is(err, store.ErrNotFound) {
			return "", nil
		}
		if err != nil {
			return "", fmt.Errorf("port %s: its host: %w", p.ID, err)
		}
		return host, nil
	})
}

// subportParent is the parent port of the trunk port id is a subport of;
// ok false when it is none's. With a memo, the trunks are read once for
// all the ports of a list.
func subportParent(r store.Reader, id string, memo hostMemo) (parent string, ok bool, err error) {
	if memo == nil {
		t, isParent, found, err := trunkOfPort(r, id)
		if err != nil || !found || isParent {
			return "", false, err
		}
		return t.PortID, true, nil
	}
	if _, read := memo["trunks/"]; !read {
		all, err := store.List[model.Trunk](r, store.Trunks)
		if err != nil {
			return "", false, fmt.Errorf("read trunks: %w", err)
		}
		for _, t := range all {
			for _, sp := range t.SubPorts {
				memo["subport-parent/"+sp.PortID] = t.PortID
			}
		}
		memo["trunks/"] = "read"
	}
	parent, ok = memo["subport-parent/"+id]
	return parent, ok, nil
}

// knownHost reports whether host has an agent of nsnet: this host, or a
// registered one.
func (s *Service) knownHost(r store.Reader, host string, memo hostMemo) (bool, error) {
	if host == s.host {
		return true, nil
	}
	v, err := memo.get("hosts/"+host, func() (string, error) {
		_, err := store.Get[model.Host](r, store.Hosts, host)
		if errors.Is(err, store.ErrNotFound) {
			return "", nil
		}
		return "known", err
	})
	return v != "", err
}

// zoneOf is the availability zone of host: its registered zone, or the
// default for an unregistered one (this host of a service without a
// registry).
func zoneOf(r store.Reader, host string) (string, error) {
	h, err := store.Get[model.Host](r, store.Hosts, host)
	if errors.Is(err, store.ErrNotFound) || err == nil && h.AvailabilityZone == "" {
		return model.DefaultAvailabilityZone, nil
	}
	return h.AvailabilityZone, err
}

// hostZones are the registered hosts' zones, by name.
func hostZones(r store.Reader) (map[string]string, error) {
	hosts, err := store.List[model.Host](r, store.Hosts)
	zones := make(map[string]string, len(hosts))
	for _, h := range hosts {
		zones[h.Name] = h.AvailabilityZone
	}
	return zones, err
}
