package agent

import (
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/nsnet/nsnet/internal/dataplane/dpspec"
	"github.com/nsnet/nsnet/internal/firewall"
	"github.com/nsnet/nsnet/internal/metadata"
	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/store"
)

// incremental keeps the desired state between passes and updates it per
// changed record, so that a pass after a change costs what the change
// touches, not what the store holds.
//
// The records most changes are about — instances, their ports and
// floating IPs — are followed one by one: a changed port recomputes its
// instance (old and new), that instance's metadata, the DHCP service of its
// network (old and new) and its firewall memberships; a changed instance
// the same; a changed floating IP the routers' NAT (every router: the
// section is small) and the metadata of the instance behind it. Every
// other change (a network, a subnet, a router, a group, a router's or a
// DHCP port, a trunk's port, an instance whose namespace is contested)
// recomputes everything with computeDesired, as does every full pass:
// computeDesired stays the definition, and the incremental state must
// always equal what it computes from the same records (the randomized test
// in incremental_test.go checks this).
//
// Pure: like computeDesired, nothing here touches the kernel.
type incremental struct {
	prefix, host string
	// self is who the agent is among the hosts (hosts.go).
	self hostView
	d    *desired

	// What the last full computation derived from records other than
	// instances, plain ports and floating IPs: valid until one of those
	// changes, which makes the next update a full one.
	networks   map[string]model.Network
	subnets    map[string]model.Subnet
	policies   map[string]model.QosPolicy
	metaRoutes map[string]dpspec.Route
	dhcpAddrs  map[string]string
	routed     map[string]bool
	rin        routerInputs
	trunkPorts map[string]bool // parents and subports of trunks
	// parents are the trunks' subports' parent ports (placement.parents):
	// a change to a trunk or any of its ports is a full update.
	parents map[string]model.Port
	// bridges are every network's bridge as bridgeOf computes it, routers
	// the routers by id and vteps the hosts' VTEP addresses: what
	// placing a network on hosts reads besides ports and instances.
	bridges map[string]networkSpec
	routers map[string]model.Router
	vteps   map[string]netip.Addr
	has6    map[string]bool // networks with an IPv6 subnet
	// placed are the networks' placements on hosts, edited port by port
	// (incremental_hosts.go), and portNet the network of each port
	// counted in one.
	placed  map[string]*netPlacement
	portNet map[string]string
	// svc are the networks' DHCP and DNS configurations, kept port by
	// port (incremental_dhcp.go); a full computation starts them over.
	svc map[string]*svcCache

	// Indexes over the records followed one by one.
	instances map[string]model.Instance
	byDevice  map[string]map[string]bool // plain ports by device id
	byNetwork map[string]map[string]bool // every port by network id
	netns     map[string]int             // this host's instances per namespace name
	floating  map[string]netip.Addr      // see floatingOf
	metaKeys  map[string][]metadata.Key  // by instance
	fipFixed  map[string]bool            // floating IPs in d.fixed

	fw memberSets
	// fwPorts are the plugged ports compiled for the firewall (see
	// firewallSpec), by port id; an update drops those of the ports it
	// touches, a recomputation all. fwCompiled counts compilations.
	fwPorts    map[string]*fwPort
	fwCompiled int
	// fwSpec is the spec of the last firewallSpec, and fwDirty the ports
	// whose part in it the updates since may have changed (fwMark).
	fwSpec  fwAssembled
	fwDirty map[string]bool

	// touched are the keys whose status the updates since the last
	// finished pass may have changed (see Agent.updateStatusesLocked);
	// all: there was a recomputation, which may have changed any.
	touched map[key]bool
	all     bool

	// recomputed and updated count the updates of each kind.
	recomputed, updated int
}

// infraPort reports whether p is a router's or a DHCP port, which the
// routers and DHCP sections program.
func infraPort(p model.Port) bool {
	switch p.DeviceOwner {
	case model.DeviceOwnerRouterInterface, model.DeviceOwnerRouterGateway, model.DeviceOwnerDHCP:
		return true
	}
	return false
}

// update brings the desired state to the records after ch; full forces a
// computation from scratch. The names of the desired state are what the
// agent publishes for Health: they change under mu.
func (inc *incremental) update(recs *records, ch *changes, full bool, mu sync.Locker) *desired {
	if full || inc.d == nil || !inc.local(recs, ch) {
		inc.recompute(recs, ch.rev)
		inc.recomputed++
		inc.all = true
		return inc.d
	}
	inc.updated++
	if inc.touched == nil {
		inc.touched = map[key]bool{}
	}
	d := inc.d
	d.rev = ch.rev
	mu.Lock()
	defer mu.Unlock()
	setName := func(k key, name *string) {
		if name == nil {
			delete(d.names, k)
		} else {
			d.names[k] = *name
		}
	}

	// What the changes reach.
	touched := map[string]bool{} // instances to recompute
	// networks whose DHCP service to update, with the ports that changed
	// there
	networks := map[string]map[string]bool{}
	changedIn := func(network, port string) {
		if networks[network] == nil {
			networks[network] = map[string]bool{}
		}
		networks[network][port] = true
	}
	meta := map[string]bool{} // instances whose metadata to recompute
	for id, pr := range ch.instances {
		touched[id], meta[id] = true, true
		inst, ok := recs.instances.get(id)
		for _, i := range []struct {
			v  model.Instance
			ok bool
		}{{pr.old, pr.had}, {inst, ok}} {
			if !i.ok {
				continue
			}
			for pid := range inc.byDevice[i.v.ID] {
				p, _ := recs.ports.get(pid)
				changedIn(p.NetworkID, pid)
			}
		}
		if pr.had && inc.self.owns(pr.old.Host) {
			inc.netns[instanceNetns(inc.prefix, &pr.old)]--
		}
		if ok {
			inc.instances[id] = inst
			if inc.self.owns(inst.Host) {
				inc.netns[instanceNetns(inc.prefix, &inst)]++
			}
			setName(key{store.Instances, id}, &inst.Name)
		} else {
			delete(inc.instances, id)
			setName(key{store.Instances, id}, nil)
		}
	}
	for id, pr := range ch.ports {
		p, ok := recs.ports.get(id)
		for _, v := range []struct {
			p  model.Port
			ok bool
		}{{pr.old, pr.had}, {p, ok}} {
			if !v.ok {
				continue
			}
			changedIn(v.p.NetworkID, id)
			if _, isInst := inc.instances[v.p.DeviceID]; isInst {
				touched[v.p.DeviceID], meta[v.p.DeviceID] = true, true
			}
		}
		// The ports of instances recomputed below are cleared there;
		// the others' kernel objects are unplugged ones.
		inc.touched[key{store.Ports, id}] = true
		delete(d.ports, id)
		delete(d.fixed, key{store.Ports, id})
		if pr.had {
			unindex(inc.byDevice, pr.old.DeviceID, id)
			unindex(inc.byNetwork, pr.old.NetworkID, id)
		}
		if ok {
			index(inc.byDevice, p.DeviceID, id)
			index(inc.byNetwork, p.NetworkID, id)
			setName(key{store.Ports, id}, &p.Name)
		} else {
			setName(key{store.Ports, id}, nil)
		}
		inc.fw.update(pr, p, ok)
		inc.fwTouched(id)
	}
	if len(ch.fips) > 0 {
		for id, pr := range ch.fips {
			f, ok := recs.fips.get(id)
			for _, v := range []struct {
				f  model.FloatingIP
				ok bool
			}{{pr.old, pr.had}, {f, ok}} {
				if !v.ok || v.f.PortID == nil {
					continue
				}
				if p, ok := recs.ports.get(*v.f.PortID); ok {
					if _, isInst := inc.instances[p.DeviceID]; isInst {
						meta[p.DeviceID] = true
					}
				}
			}
			if ok {
				setName(key{store.FloatingIPs, id}, &f.FloatingIPAddress)
			} else {
				setName(key{store.FloatingIPs, id}, nil)
			}
		}
		inc.updateRouters(recs)
	}

	for id := range touched {
		inc.updateInstance(recs, id)
	}
	// Changed ports no instance took are unplugged.
	for id := range ch.ports {
		if p, ok := recs.ports.get(id); ok {
			if _, plugged := d.ports[id]; !plugged && d.fixed[key{store.Ports, id}] == (status{}) && inc.self.reportsPort(p, hostOfInstance(inc.instances)) {
				d.fixed[key{store.Ports, id}] = status{model.StatusDown, ""}
			}
		}
	}
	for id, ports := range networks {
		inc.updateDHCP(recs, id, ports)
	}
	// Where the networks are, and their overlays: the changed ports and
	// the ports of changed instances (whose host is theirs) move.
	moved := map[string]bool{}
	for id := range ch.ports {
		moved[id] = true
	}
	for id := range ch.instances {
		for pid := range inc.byDevice[id] {
			moved[pid] = true
		}
	}
	nets := make(map[string]bool, len(networks))
	for id := range networks {
		nets[id] = true
	}
	inc.placePorts(recs, moved, nets)
	if len(meta) > 0 {
		inc.updateMetadata(recs, meta)
	}
	return d
}

// foreign reports whether ch changed nothing this host programs, serves
// or places: only instances, each another host's before and after, with
// no port yet (its ports, when they come, are changes of their own).
// update takes them in all the same, so that the indexes stay whole; no
// pass need follow.
func (inc *incremental) foreign(recs *records, ch *changes) bool {
	if inc.d == nil || !ch.only(store.Instances) {
		return false
	}
	for id, pr := range ch.instances {
		inst, ok := recs.instances.get(id)
		if pr.had && inc.self.owns(pr.old.Host) || ok && inc.self.owns(inst.Host) || len(inc.byDevice[id]) > 0 {
			return false
		}
	}
	return true
}

// local reports whether ch can be applied record by record: only
// instances, plain ports and floating IPs changed, and no instance's
// namespace is contested (computeDesired decides who gets it, oldest
// first, over all instances).
func (inc *incremental) local(recs *records, ch *changes) bool {
	if !ch.only(store.Ports, store.Instances, store.FloatingIPs) {
		return false
	}
	// An instance computeDesired refused (its namespace is another's)
	// stays refused only as long as nothing about it changes.
	refused := func(id string) bool {
		inst, ok := inc.instances[id]
		_, in := inc.d.instances[id]
		return ok && !in && inc.self.owns(inst.Host)
	}
	for id, pr := range ch.ports {
		p, ok := recs.ports.get(id)
		if pr.had && (infraPort(pr.old) || inc.trunkPorts[id] || refused(pr.old.DeviceID)) ||
			ok && (infraPort(p) || inc.trunkPorts[id] || refused(p.DeviceID)) {
			return false
		}
	}
	for id, pr := range ch.instances {
		// Trunks follow whether their ports are plugged.
		for pid := range inc.byDevice[id] {
			if inc.trunkPorts[pid] {
				return false
			}
		}
		if pr.had && inc.self.owns(pr.old.Host) {
			ns := instanceNetns(inc.prefix, &pr.old)
			if inc.netns[ns] > 1 || !strings.HasPrefix(ns, inc.prefix) {
				return false
			}
		}
		if inst, ok := recs.instances.get(id); ok && inc.self.owns(inst.Host) {
			ns := instanceNetns(inc.prefix, &inst)
			n := inc.netns[ns]
			if pr.had && inc.self.owns(pr.old.Host) && instanceNetns(inc.prefix, &pr.old) == ns {
				n--
			}
			if n > 0 || !strings.HasPrefix(ns, inc.prefix) {
				return false
			}
		}
	}
	return true
}

// recompute computes everything from the records, and the indexes.
func (inc *incremental) recompute(recs *records, rev int64) {
	s := recs.snapshot(rev)
	s.self = inc.self
	inc.d = computeDesired(s, inc.prefix, inc.host)
	inc.svc = nil
	inc.networks, inc.subnets = map[string]model.Network{}, map[string]model.Subnet{}
	for _, n := range s.networks {
		inc.networks[n.ID] = n
	}
	for _, sn := range s.subnets {
		inc.subnets[sn.ID] = sn
	}
	inc.policies = map[string]model.QosPolicy{}
	for _, p := range s.qos {
		inc.policies[p.ID] = p
	}
	inc.dhcpAddrs = dhcpAddrsOf(s.ports)
	inc.routed = routedSubnets(s.ports)
	inc.metaRoutes = isolatedMetadataRoutes(inc.dhcpAddrs, inc.routed)
	interfaces, gateways := routerPortsOf(s.ports)
	inc.rin = routerInputs{networks: inc.networks, subnets: inc.subnets, interfaces: interfaces, gateways: gateways, scopes: subnetScopes(s)}
	inc.trunkPorts = map[string]bool{}
	for _, t := range s.trunks {
		inc.trunkPorts[t.PortID] = true
		for _, sp := range t.SubPorts {
			inc.trunkPorts[sp.PortID] = true
		}
	}
	inc.parents = trunkParents(s.trunks, s.ports)
	inc.instances, inc.netns = map[string]model.Instance{}, map[string]int{}
	for _, inst := range s.instances {
		inc.instances[inst.ID] = inst
		if inc.self.owns(inst.Host) {
			inc.netns[instanceNetns(inc.prefix, &inst)]++
		}
	}
	subnetsOf := map[string][]model.Subnet{}
	for _, sn := range s.subnets {
		subnetsOf[sn.NetworkID] = append(subnetsOf[sn.NetworkID], sn)
	}
	inc.bridges = map[string]networkSpec{}
	for _, n := range s.networks {
		inc.bridges[n.ID], _ = bridgeOf(n, subnetsOf[n.ID], inc.self)
	}
	inc.routers = map[string]model.Router{}
	for _, r := range s.routers {
		inc.routers[r.ID] = r
	}
	inc.vteps = vtepsOf(s.hosts)
	inc.has6 = ipv6Networks(s.subnets)
	inc.byDevice, inc.byNetwork = map[string]map[string]bool{}, map[string]map[string]bool{}
	for _, p := range s.ports {
		index(inc.byNetwork, p.NetworkID, p.ID)
		if !infraPort(p) {
			index(inc.byDevice, p.DeviceID, p.ID)
		}
	}
	inc.floating = floatingOf(s.fips)
	inc.metaKeys = map[string][]metadata.Key{}
	for k, m := range inc.d.metadata {
		inc.metaKeys[m.ID] = append(inc.metaKeys[m.ID], k)
	}
	inc.fipFixed = map[string]bool{}
	for k := range inc.d.fixed {
		if k.kind == store.FloatingIPs {
			inc.fipFixed[k.id] = true
		}
	}
	inc.fw.reset(s)
	inc.fwPorts = nil // the groups' rules, or the networks, may have changed
	inc.fwSpec.taps, inc.fwDirty = nil, nil
	inc.placeAll(s)
}

func index(m map[string]map[string]bool, by, id string) {
	if m[by] == nil {
		m[by] = map[string]bool{}
	}
	m[by][id] = true
}

func unindex(m map[string]map[string]bool, by, id string) {
	delete(m[by], id)
	if len(m[by]) == 0 {
		delete(m, by)
	}
}

// updateInstance recomputes instance id and its ports, as computeDesired's
// instance and port loops, addInstancePorts, addPortQos and the
// resolv.conf loop do.
func (inc *incremental) updateInstance(recs *records, id string) {
	d := inc.d
	ids := sortedKeys(inc.byDevice[id])
	inc.touched[key{store.Instances, id}] = true
	for _, pid := range ids {
		inc.touched[key{store.Ports, pid}] = true
		inc.fwMark(pid) // plugged or not, and where
		delete(d.ports, pid)
		delete(d.fixed, key{store.Ports, pid})
	}
	delete(d.instances, id)
	delete(d.dscp, id)
	delete(d.fixed, key{store.Instances, id})
	inst, exists := inc.instances[id]
	if exists && !inc.self.owns(inst.Host) {
		return // another host's, and its ports with it
	}
	if !exists {
		for _, pid := range ids {
			if p, _ := recs.ports.get(pid); inc.self.reportsPort(p, hostOfInstance(inc.instances)) {
				d.fixed[key{store.Ports, pid}] = status{model.StatusDown, ""}
			}
		}
		return
	}
	spec := instanceSpec{Name: inst.Name, Netns: instanceNetns(inc.prefix, &inst), Marker: dpspec.InstanceMarker(inst.ID, inc.host)}
	var plugged []model.Port
	for _, pid := range ids {
		p, _ := recs.ports.get(pid)
		if p.DeviceOwner != model.DeviceOwnerCompute {
			d.fixed[key{store.Ports, pid}] = status{model.StatusDown, ""}
			continue
		}
		plugged = append(plugged, p)
	}
	addInstancePorts(d, spec, id, slices.Clone(plugged), inc.networks, inc.subnets, inc.has6, inc.metaRoutes)
	for _, p := range plugged {
		portQos(d, p, inc.policies, inc.networks)
	}
	slices.SortFunc(plugged, func(a, b model.Port) int { return compareIfNames(a.InterfaceName, b.InterfaceName) })
	spec.ResolvConf = resolvConf(plugged, inc.networks, inc.subnets, inc.dhcpAddrs)
	spec.DHCPClient = slices.ContainsFunc(plugged, func(p model.Port) bool { return p.DHCPClient })
	d.instances[id] = spec
}

// updateMetadata recomputes the metadata entries of instances, as
// metadataDirectory does, in a copy of the directory: the metadata
// service reads the one it has.
func (inc *incremental) updateMetadata(recs *records, instances map[string]bool) {
	dir := maps.Clone(inc.d.metadata)
	if dir == nil {
		dir = metadata.Directory{}
	}
	for id := range instances {
		for _, k := range inc.metaKeys[id] {
			if m, ok := dir[k]; ok && m.ID == id {
				delete(dir, k)
			}
		}
		delete(inc.metaKeys, id)
		inst, ok := inc.instances[id]
		if !ok {
			continue
		}
		var ports []model.Port
		for _, pid := range sortedKeys(inc.byDevice[id]) {
			if p, _ := recs.ports.get(pid); p.DeviceOwner == model.DeviceOwnerCompute {
				ports = append(ports, p)
			}
		}
		if len(ports) == 0 {
			continue
		}
		mine := metadata.Directory{}
		addMetadata(mine, inst, ports, inc.instances, inc.networks, inc.subnets, inc.floating, inc.dhcpAddrs)
		for k, m := range mine {
			dir[k] = m
			inc.metaKeys[id] = append(inc.metaKeys[id], k)
		}
	}
	inc.d.metadata = dir
}

// updateRouters recomputes the routers, their ports and their floating
// IPs after floating IPs changed, as addRouters does, and takes from it
// what floating IPs decide: the routers' specs, the floating addresses of
// their gateway ports and the floating IPs' statuses. The routers' ports
// are otherwise as they were (no router, router port, network or subnet
// changed), with what addMetadata6 added to them.
func (inc *incremental) updateRouters(recs *records) {
	d := inc.d
	s := &snapshot{routers: recs.routers.sorted(), fips: recs.fips.sorted(), forwards: recs.forwards.sorted(),
		labels: recs.labels.sorted(), labelRules: recs.labelRules.sorted(), self: inc.self}
	inc.floating = floatingOf(s.fips)
	rd := &desired{ports: map[string]portSpec{}, routers: map[string]routerSpec{}, adverts: map[string]map[string]advertSpec{},
		fixed: map[key]status{}}
	addRouters(rd, s, inc.prefix, inc.host, inc.rin)
	for _, routers := range []map[string]routerSpec{d.routers, rd.routers} {
		for id, r := range routers {
			inc.touched[key{store.Routers, id}] = true
			for _, f := range r.FloatingIPs {
				inc.touched[key{store.FloatingIPs, f}] = true
			}
		}
	}
	for id := range inc.fipFixed {
		inc.touched[key{store.FloatingIPs, id}] = true
	}
	d.routers = rd.routers
	for id, ps := range rd.ports {
		if ps.Gateway {
			cur := d.ports[id]
			cur.Floating = ps.Floating
			d.ports[id] = cur
		}
	}
	for id := range inc.fipFixed {
		delete(d.fixed, key{store.FloatingIPs, id})
	}
	inc.fipFixed = map[string]bool{}
	for k, st := range rd.fixed {
		if k.kind == store.FloatingIPs {
			d.fixed[k] = st
			inc.fipFixed[k.id] = true
			inc.touched[k] = true
		}
	}
}

// memberSets are the remote groups' members, what each group's ports may
// send from (firewallSpec's members), kept port by port.
type memberSets struct {
	groups map[string]*memberSet
	in     firewallInputs
	// built counts the groups' sets reset built, for tests.
	built int
}

// memberSet is one group's members: the firewall's persistent set of
// them, which a member joining or leaving changes along one path (the
// spec handed to the firewall holds the set as it was), and the
// addresses more than one member holds, counted beyond the first, so
// that an address stays a member until its last holder goes.
type memberSet struct {
	members firewall.Members
	extra   map[netip.Prefix]int
}

func (m *memberSets) reset(s *snapshot) {
	old := m.groups
	m.groups = map[string]*memberSet{}
	m.in = firewallInputsOf(s)
	m.in.members = m.of
	// Counted first, then each group built at once rather than a path
	// copy per address.
	counts := map[string]map[netip.Prefix]int{}
	for i := range s.ports {
		p := &s.ports[i]
		if !p.PortSecurityEnabled {
			continue
		}
		for _, g := range p.SecurityGroups {
			if counts[g] == nil {
				counts[g] = map[netip.Prefix]int{}
			}
			for _, a := range portAddresses(p) {
				counts[g][a.Masked()]++
			}
		}
	}
	for g, c := range counts {
		set := &memberSet{}
		for a, n := range c {
			if n > 1 {
				if set.extra == nil {
					set.extra = map[netip.Prefix]int{}
				}
				set.extra[a] = n - 1
			}
		}
		set.members = m.build(old[g], c)
		m.groups[g] = set
	}
}

// build is the members counted in c: was, the set kept before, when it
// holds them all (what a full pass with no change finds, or the agent
// kept port by port), so that the firewall, given the set it applied,
// finds no difference without a walk; else a set built at once.
func (m *memberSets) build(was *memberSet, c map[netip.Prefix]int) firewall.Members {
	if was != nil && was.members.Len() == len(c) {
		same := true
		for a := range c {
			if !was.members.Has(a) {
				same = false
				break
			}
		}
		if same {
			return was.members
		}
	}
	m.built++
	addrs := make([]netip.Prefix, 0, len(c))
	for a := range c {
		addrs = append(addrs, a)
	}
	return firewall.MembersOf(addrs...)
}

// add adds p's addresses to its groups.
func (m *memberSets) add(p *model.Port) {
	if !p.PortSecurityEnabled {
		return
	}
	for _, g := range p.SecurityGroups {
		set := m.groups[g]
		if set == nil {
			set = &memberSet{}
			m.groups[g] = set
		}
		for _, a := range portAddresses(p) {
			a = a.Masked()
			if !set.members.Has(a) {
				set.members = set.members.With(a)
				continue
			}
			if set.extra == nil {
				set.extra = map[netip.Prefix]int{}
			}
			set.extra[a]++
		}
	}
}

// remove takes p's addresses out of its groups: each one add added.
func (m *memberSets) remove(p *model.Port) {
	if !p.PortSecurityEnabled {
		return
	}
	for _, g := range p.SecurityGroups {
		set := m.groups[g]
		if set == nil {
			continue
		}
		for _, a := range portAddresses(p) {
			a = a.Masked()
			if n := set.extra[a]; n > 0 {
				if n == 1 {
					delete(set.extra, a)
				} else {
					set.extra[a] = n - 1
				}
				continue
			}
			set.members = set.members.Without(a)
		}
		if set.members.Len() == 0 {
			delete(m.groups, g)
		}
	}
}

func (m *memberSets) update(pr prev[model.Port], p model.Port, ok bool) {
	if pr.had {
		m.remove(&pr.old)
	}
	if ok {
		m.add(&p)
	}
}

// of is group g's members: the set itself, which no change alters.
func (m *memberSets) of(g string) firewall.Members {
	if set := m.groups[g]; set != nil {
		return set.members
	}
	return firewall.Members{}
}

// firewallSpec is firewallSpec's result for the current records, from the
// plugged ports only. After a recomputation it compiles and assembles every
// plugged port; after an update, only the ports the update marked (see
// fwTouched): the rest of the spec is the last one's (fwAssembled).
func (inc *incremental) firewallSpec(recs *records) (firewall.Spec, map[string]string) {
	if inc.fwPorts == nil || inc.fwSpec.taps == nil {
		return inc.firewallSpecAll(recs)
	}
	if len(inc.fwDirty) == 0 && !inc.fwSpec.zonesStale {
		return inc.fwSpec.spec, inc.fwSpec.taps
	}
	dirty := inc.fwDirty
	inc.fwDirty = nil
	var now []*fwPort
	var records []*model.Port
	for id := range dirty {
		c, p := inc.fwCompile(recs, id)
		if c != nil && c == inc.fwSpec.entries[id] {
			// The same compilation, of the same record: in the spec
			// as it is (a port of a changed instance, still where it
			// was).
			delete(dirty, id)
			continue
		}
		if c != nil && c.secured {
			now, records = append(now, c), append(records, p)
		}
	}
	inc.fwSpec.update(inc.fw.in, dirty, now, records, recs, inc.d)
	return inc.fwSpec.spec, inc.fwSpec.taps
}

// firewallSpecAll assembles the spec of every plugged port, compiling
// those whose compilation the updates dropped.
func (inc *incremental) firewallSpecAll(recs *records) (firewall.Spec, map[string]string) {
	var candidates []*model.Port
	add := func(id string) {
		if p, ok := recs.ports.m[id]; ok {
			candidates = append(candidates, &p.val)
		}
	}
	for id := range inc.d.ports {
		add(id)
	}
	for id := range inc.d.subports {
		if _, dup := inc.d.ports[id]; !dup {
			add(id)
		}
	}
	if inc.fwPorts == nil {
		inc.fwPorts = map[string]*fwPort{}
	}
	compiled := make([]*fwPort, len(candidates))
	for i, p := range candidates {
		compiled[i], _ = inc.fwCompile(recs, p.ID)
	}
	inc.fwDirty = nil
	spec, taps := inc.fw.in.assemble(candidates, compiled, inc.d)
	inc.fwSpec.reset(spec, taps, candidates, compiled)
	return inc.fwSpec.spec, taps
}

// fwCompile is port id's compilation, nil when it is not a candidate (no
// record, or neither plugged here nor a subport here), and its record.
func (inc *incremental) fwCompile(recs *records, id string) (*fwPort, *model.Port) {
	r, ok := recs.ports.m[id]
	if !ok {
		delete(inc.fwPorts, id)
		return nil, nil
	}
	p := &r.val
	_, plugged := inc.d.ports[id]
	_, sub := inc.d.subports[id]
	if !plugged && !sub {
		delete(inc.fwPorts, id)
		return nil, nil
	}
	// A port's compilation holds while its record is the same (an
	// update drops it when not, see fwTouched) and so is what it read
	// from the desired state, which instances and the placement of
	// networks change.
	c := inc.fwPorts[id]
	if c == nil || c.env != envOf(inc.d, id) {
		fp := inc.fw.in.port(p, inc.d)
		c = &fp
		inc.fwPorts[id] = c
		inc.fwCompiled++
	}
	return c, p
}

// fwTouched drops the firewall compilation of port id, whose record
// changed, and marks it for the next spec.
func (inc *incremental) fwTouched(id string) {
	delete(inc.fwPorts, id)
	inc.fwMark(id)
}

// fwMark marks port id for the next spec: what it contributes may have
// changed (its record, whether and where it is plugged, its network's
// placement, the members of its groups).
func (inc *incremental) fwMark(id string) {
	if inc.fwDirty == nil {
		inc.fwDirty = map[string]bool{}
	}
	inc.fwDirty[id] = true
}

// fwNetwork is told that network id's place on this host may have changed
// from was (ok: it was placed here): its ports are marked for the next
// spec when what their compilation reads of it, or the zones, changed.
func (inc *incremental) fwNetwork(id string, was networkSpec, ok bool) {
	now, placed := inc.d.networks[id]
	if ok == placed && was.HostGateway == now.HostGateway && was.Bridge.Name == now.Bridge.Name {
		return
	}
	inc.fwSpec.zonesStale = true
	for pid := range inc.byNetwork[id] {
		inc.fwMark(pid)
	}
}
