package agent

import (
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/nsnet/nsnet/internal/dataplane/dpspec"
	"github.com/nsnet/nsnet/internal/metadata"
	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/store"
)

// The incremental state's side of placeNetworks: where each network is
// and its overlay here, kept per port so that a port's change costs its
// own entries, not the network's. placeNetwork and overlayOf recompute a
// network from all its ports, the definition; a network of a thousand
// ports made every change of one of them cost a thousand parses, a map
// and a sort, on every host of the network (a third of an agent's CPU per
// port create at 50 hosts). Here each network keeps what each of its
// ports adds (its host, and its entries when that host is another's) and
// the overlay spec it makes, which a port's change edits entry by entry.
//
// Only ports and instances change a network's placement between
// recomputations: what else placeNetworks reads — the network, its
// subnets, the routers, the trunks, the hosts' VTEP addresses, the
// routers' and DHCP ports — makes the update a full one (incremental.local).

// netPlacement is one network's presence on hosts and, for a VXLAN
// network, its overlay here, whether or not the network is present here
// (it becomes so when a port here comes).
type netPlacement struct {
	// present counts, per host, the ports it plugs (and one more for the
	// DHCP host of a host-gateway network): the network is there while
	// the count is not zero.
	present map[string]int
	// ports are what each port of the network adds, by port id.
	ports map[string]portShare
	// spec is the overlay; nil for a network without one. Its slices are
	// copied before an edit (own): the previous spec may be the one the
	// pass compares with, in the agent's tried.
	spec *overlaySpec
	own  bool
	// fdb counts the reasons for each forwarding entry: a flood entry per
	// remote host present, a unicast entry per port (two ports may share
	// a MAC, by their allowed address pairs).
	fdb map[fdbKey]int
	// claims are, per address, the ports that give it a neighbour entry
	// in port id order: the first one's MAC is the entry's (as overlayOf
	// takes the first port). The IPv6 metadata port's claim, made by the
	// recomputation, is under the id "", first of all.
	claims map[netip.Addr][]claim
}

// portShare is what one port adds to its network's placement.
type portShare struct {
	host    string
	plugged bool
	fdb     []dpspec.FDBEntry
	neigh   []dpspec.NeighEntry // one per address, the port's first
}

type fdbKey struct {
	mac string // the MAC's bytes
	dst netip.Addr
}

func keyOf(e dpspec.FDBEntry) fdbKey { return fdbKey{string(e.MAC), e.Dst} }

type claim struct {
	port string
	mac  net.HardwareAddr
}

// newPlacement is network n's placement with no port yet, with an
// overlay when it is a VXLAN network here (vxlanOf).
func newPlacement(n model.Network, self hostView) *netPlacement {
	np := &netPlacement{present: map[string]int{}, ports: map[string]portShare{}}
	if dev, ok := vxlanOf(n, self); ok {
		np.spec = &overlaySpec{VXLAN: dev}
		np.own = true
		np.fdb, np.claims = map[fdbKey]int{}, map[netip.Addr][]claim{}
	}
	return np
}

// shareOf is what port p adds to its network's placement.
func (inc *incremental) shareOf(p *model.Port, pl placement, overlay bool) portShare {
	h, plugged := pl.portHost(*p)
	s := portShare{host: h, plugged: plugged}
	if !overlay || inc.self.owns(h) || h == "" {
		return s
	}
	vtep, ok := inc.vteps[h]
	if !ok || vtep == inc.self.vtep {
		return s
	}
	var neigh []dpspec.NeighEntry
	s.fdb, neigh = remoteEntries(p, vtep)
	seen := map[netip.Addr]bool{}
	for _, e := range neigh {
		if !seen[e.IP] {
			seen[e.IP] = true
			s.neigh = append(s.neigh, e)
		}
	}
	return s
}

// edit makes the spec's slices the placement's own, to edit in place.
func (np *netPlacement) edit() {
	if !np.own {
		np.spec.FDB, np.spec.Neigh = slices.Clone(np.spec.FDB), slices.Clone(np.spec.Neigh)
		np.own = true
	}
}

// settle ends the edits of an update: the spec, given to the desired
// state, is shared from now on. Empty slices are nil, as overlayOf makes
// them.
func (np *netPlacement) settle() {
	if np.spec == nil {
		return
	}
	if len(np.spec.FDB) == 0 {
		np.spec.FDB = nil
	}
	if len(np.spec.Neigh) == 0 {
		np.spec.Neigh = nil
	}
	np.own = false
}

// hostRef counts a reason for the network to be on host h (delta +1 or
// -1); a remote host with a VTEP address gets a flood entry while it has
// the network.
func (np *netPlacement) hostRef(h string, delta int, vteps map[string]netip.Addr, self hostView) {
	before := np.present[h]
	np.present[h] = before + delta
	if np.present[h] == 0 {
		delete(np.present, h)
	}
	if np.spec == nil || (before == 0) == (np.present[h] == 0) {
		return
	}
	if vtep, ok := vteps[h]; ok && !self.owns(h) && vtep != self.vtep {
		np.fdbRef(dpspec.FDBEntry{MAC: dpspec.FloodMAC, Dst: vtep}, delta)
	}
}

// fdbRef counts a reason for forwarding entry e (delta +1 or -1), and
// adds it to the spec or removes it when the count leaves or reaches zero.
func (np *netPlacement) fdbRef(e dpspec.FDBEntry, delta int) {
	k := keyOf(e)
	before := np.fdb[k]
	np.fdb[k] = before + delta
	if np.fdb[k] != 0 && before != 0 {
		return
	}
	np.edit()
	i, found := slices.BinarySearchFunc(np.spec.FDB, e, dpspec.CompareFDB)
	switch {
	case np.fdb[k] == 0:
		delete(np.fdb, k)
		if found {
			np.spec.FDB = slices.Delete(np.spec.FDB, i, i+1)
		}
	case !found:
		np.spec.FDB = slices.Insert(np.spec.FDB, i, e)
	}
}

// claim adds (mac non-nil) or withdraws port's claim on ip, and makes the
// spec's entry for ip the first claim's.
func (np *netPlacement) claim(ip netip.Addr, port string, mac net.HardwareAddr) {
	cs := np.claims[ip]
	i, found := slices.BinarySearchFunc(cs, port, func(c claim, id string) int { return strings.Compare(c.port, id) })
	switch {
	case mac != nil && found:
		cs[i].mac = mac
	case mac != nil:
		cs = slices.Insert(cs, i, claim{port, mac})
	case found:
		cs = slices.Delete(cs, i, i+1)
	default:
		return
	}
	if len(cs) == 0 {
		delete(np.claims, ip)
	} else {
		np.claims[ip] = cs
	}
	if i != 0 {
		return // the first claim, the entry's, is unchanged
	}
	np.edit()
	j, held := slices.BinarySearchFunc(np.spec.Neigh, ip, func(e dpspec.NeighEntry, ip netip.Addr) int { return e.IP.Compare(ip) })
	switch {
	case len(cs) == 0:
		if held {
			np.spec.Neigh = slices.Delete(np.spec.Neigh, j, j+1)
		}
	case held:
		np.spec.Neigh[j] = dpspec.NeighEntry{IP: ip, MAC: cs[0].mac}
	default:
		np.spec.Neigh = slices.Insert(np.spec.Neigh, j, dpspec.NeighEntry{IP: ip, MAC: cs[0].mac})
	}
}

// add counts port id's share in; remove counts it out.
func (np *netPlacement) add(id string, s portShare, vteps map[string]netip.Addr, self hostView) {
	np.ports[id] = s
	if s.plugged {
		np.hostRef(s.host, 1, vteps, self)
	}
	if np.spec == nil {
		return
	}
	for _, e := range s.fdb {
		np.fdbRef(e, 1)
	}
	for _, e := range s.neigh {
		np.claim(e.IP, id, e.MAC)
	}
}

func (np *netPlacement) remove(id string, vteps map[string]netip.Addr, self hostView) {
	s, ok := np.ports[id]
	if !ok {
		return
	}
	delete(np.ports, id)
	if s.plugged {
		np.hostRef(s.host, -1, vteps, self)
	}
	if np.spec == nil {
		return
	}
	for _, e := range s.fdb {
		np.fdbRef(e, -1)
	}
	for _, e := range s.neigh {
		np.claim(e.IP, id, nil)
	}
}

// placeAll builds every network's placement from the snapshot, as
// placeNetworks computes them, for the updates to edit.
func (inc *incremental) placeAll(s *snapshot) {
	inc.placed, inc.portNet = map[string]*netPlacement{}, map[string]string{}
	if !inc.self.multi() {
		return
	}
	pl := inc.placement()
	byNetwork := map[string][]*model.Port{}
	for i := range s.ports {
		p := &s.ports[i]
		byNetwork[p.NetworkID] = append(byNetwork[p.NetworkID], p)
	}
	for _, n := range s.networks {
		np := newPlacement(n, inc.self)
		inc.placed[n.ID] = np
		if n.HostGateway {
			np.hostRef(n.DHCPHost, 1, inc.vteps, inc.self)
		}
		if np.spec != nil {
			// The IPv6 metadata port's address, claimed before any
			// port's (overlayOf adds it first).
			nh := pl.hostsOf(n, byNetwork[n.ID], inc.self, inc.has6[n.ID])
			if rp := nh.meta6; rp.port != nil {
				if mac, err := net.ParseMAC(rp.port.MACAddress); err == nil && inc.vteps[rp.host].IsValid() {
					np.claim(metadata.Addr6, "", mac)
				}
			}
		}
		for _, p := range byNetwork[n.ID] {
			np.add(p.ID, inc.shareOf(p, pl, np.spec != nil), inc.vteps, inc.self)
			inc.portNet[p.ID] = n.ID
		}
		np.settle()
	}
}

func (inc *incremental) placement() placement {
	return placement{instances: inc.instances, routers: inc.routers, networks: inc.networks, parents: inc.parents}
}

// placePorts counts the ports ids out of their networks' placements and
// back in as the records now have them (a port deleted: out only), and
// places the networks touched and those of networks, with many hosts.
func (inc *incremental) placePorts(recs *records, ids map[string]bool, networks map[string]bool) {
	if !inc.self.multi() {
		return
	}
	pl := inc.placement()
	touched := map[string]bool{}
	for id := range networks {
		touched[id] = true
	}
	for id := range ids {
		if nid, ok := inc.portNet[id]; ok {
			inc.placed[nid].remove(id, inc.vteps, inc.self)
			delete(inc.portNet, id)
			touched[nid] = true
		}
		p, ok := recs.ports.get(id)
		if !ok {
			continue
		}
		np, ok := inc.placed[p.NetworkID]
		if !ok {
			continue // no such network: placeNetworks has none either
		}
		np.add(id, inc.shareOf(&p, pl, np.spec != nil), inc.vteps, inc.self)
		inc.portNet[id] = p.NetworkID
		touched[p.NetworkID] = true
	}
	for id := range touched {
		inc.placeNetwork(id)
	}
}

// placeNetwork sets network id's bridge and overlay in the desired state
// from its placement, as placeNetwork does from its ports.
func (inc *incremental) placeNetwork(id string) {
	np, ok := inc.placed[id]
	if !ok {
		return
	}
	np.settle()
	d := inc.d
	was, wasPlaced := d.networks[id]
	defer inc.fwNetwork(id, was, wasPlaced)
	inc.touched[key{store.Networks, id}] = true
	inc.touched[key{overlayKind, id}] = true
	delete(d.overlay, id)
	if np.present[inc.self.name] == 0 && !d.pinned[id] {
		delete(d.networks, id)
		return
	}
	d.networks[id] = inc.bridges[id]
	if np.spec != nil {
		d.overlay[id] = *np.spec
	}
}
