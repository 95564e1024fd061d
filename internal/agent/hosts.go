package agent

import (
	"encoding/json"
	"net"
	"net/netip"
	"slices"

	"github.com/nsnet/nsnet/internal/dataplane/dpspec"
	"github.com/nsnet/nsnet/internal/metadata"
	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/store"
)

// Many hosts (docs/OVERLAY.md). Each host runs an agent; the records say
// which host each object is on — an instance's Host, a router's L3Host, a
// network's DHCPHost — and a port's host follows from its device's (a
// plain port: its binding:host_id). An agent programs only its own host's
// objects and reports statuses only for them, and joins each network
// present on its host to the other hosts that have it by a VXLAN device
// with L2 population: a forwarding entry per remote port's MAC at its
// host's VTEP, a neighbour entry per remote address for the device's ARP
// and ND proxy, and a flood entry per other host that has the network.
//
// Everything here is pure, like computeDesired: it decides, and the pass
// (pass_overlay.go) programs.

// hostView is who this agent is among the hosts.
type hostView struct {
	// name is the host's name (Config.Host); "" for an agent that was
	// given none (tests, the service without a daemon).
	name string
	// vtep is the host's VTEP address; invalid: one-box mode, where
	// there are no other hosts to reach and no VXLAN device is made.
	vtep netip.Addr
	// mappings are the host's physical networks' interfaces
	// (Config.InterfaceMappings).
	mappings map[string]string
}

// multi reports whether this is multi-host mode (a VTEP address given).
func (v hostView) multi() bool { return v.vtep.IsValid() }

// owns reports whether an object whose host field is h is this host's: it
// names this host, or, on one box, it names none (records made before
// hosts, or by a service with no daemon), so that a one-box daemon keeps
// doing exactly what it did.
func (v hostView) owns(h string) bool { return h == v.name || !v.multi() && h == "" }

// reportsPort reports whether this agent gives the status of a port no
// router or DHCP server holds: an instance's port if it owns the
// instance; on one box any other (unplugged) port, as before hosts; with
// many hosts, one bound here by an admin (binding:host_id).
func (v hostView) reportsPort(p model.Port, instanceHost func(id string) (string, bool)) bool {
	if h, ok := instanceHost(p.DeviceID); ok && p.DeviceOwner == model.DeviceOwnerCompute {
		return v.owns(h)
	}
	return !v.multi() || deref(p.HostID) == v.name
}

// placement is where the records put things: what decides a port's host
// and a network's presence on a host.
type placement struct {
	instances map[string]model.Instance
	routers   map[string]model.Router
	networks  map[string]model.Network
	// parents are the parent ports of trunks' subports, by subport id:
	// a subport is wired where its parent is plugged.
	parents map[string]model.Port
}

// portHost is the host a port is on (its binding:host_id, derived): an
// instance's port is on the instance's host, a router's on the router's L3
// host (none while unscheduled), a DHCP port on its network's DHCP host, a
// trunk's subport on its parent's host, a plain port where an admin bound
// it. The second result says whether the
// host plugs it: only then is the network present there because of it.
func (pl placement) portHost(p model.Port) (host string, plugged bool) {
	if parent, ok := pl.parents[p.ID]; ok {
		// A trunk's subport is on its parent's host (Neutron binds it
		// there), and present there as its parent is.
		return pl.deviceHost(parent)
	}
	return pl.deviceHost(p)
}

// deviceHost is portHost by what the port belongs to.
func (pl placement) deviceHost(p model.Port) (host string, plugged bool) {
	switch p.DeviceOwner {
	case model.DeviceOwnerCompute:
		if inst, ok := pl.instances[p.DeviceID]; ok {
			return inst.Host, true
		}
	case model.DeviceOwnerRouterInterface, model.DeviceOwnerRouterGateway:
		if r, ok := pl.routers[p.DeviceID]; ok && !r.L3Unscheduled {
			return r.L3Host, true
		}
		return "", false
	case model.DeviceOwnerDHCP:
		if n, ok := pl.networks[p.NetworkID]; ok {
			return n.DHCPHost, true
		}
		return "", false
	}
	return deref(p.HostID), false
}

// networkHosts is where one network is present — a host that plugs one of
// its ports (an instance's, a router's, its DHCP port) or serves it as a
// host gateway — and the ports of it on other hosts than self.
type networkHosts struct {
	present map[string]bool
	remote  []remotePort
	// meta6 is the port serving the network's IPv6 metadata
	// (fe80::a9fe:a9fe), when on another host than self.
	meta6 remotePort
}

type remotePort struct {
	host string
	port *model.Port
}

// hostsOf computes where network n is, from its ports (in id order);
// has6: it has an IPv6 subnet.
func (pl placement) hostsOf(n model.Network, ports []*model.Port, self hostView, has6 bool) networkHosts {
	nh := networkHosts{present: map[string]bool{}}
	if n.HostGateway {
		nh.present[n.DHCPHost] = true
	}
	for _, p := range ports {
		h, plugged := pl.portHost(*p)
		if plugged {
			nh.present[h] = true
		}
		if !self.owns(h) && h != "" {
			nh.remote = append(nh.remote, remotePort{h, p})
		}
	}
	if p := pl.metadata6Port(ports, has6); p != nil {
		if h, _ := pl.portHost(*p); !self.owns(h) && h != "" {
			nh.meta6 = remotePort{h, p}
		}
	}
	return nh
}

// metadata6Port is the port that serves a network's IPv6 metadata, as
// addMetadata6 picks it on its own host, from the records: a router
// interface with an IPv6 address (those up first, then by id), else the
// network's DHCP port. Another host's instances reach it across the
// overlay, so their VXLAN device's proxy must answer for its address.
func (pl placement) metadata6Port(ports []*model.Port, has6 bool) *model.Port {
	if !has6 {
		return nil
	}
	var best, dhcp *model.Port
	bestUp := false
	for _, p := range ports {
		switch p.DeviceOwner {
		case model.DeviceOwnerRouterInterface:
			r, ok := pl.routers[p.DeviceID]
			if !ok || r.L3Unscheduled || !slices.ContainsFunc(p.FixedIPs, func(ip model.FixedIP) bool {
				a, err := netip.ParseAddr(ip.IPAddress)
				return err == nil && a.Is6() && !a.IsLinkLocalUnicast()
			}) {
				continue
			}
			if up := p.AdminStateUp && r.AdminStateUp; best == nil || up && !bestUp {
				best, bestUp = p, up
			}
		case model.DeviceOwnerDHCP:
			if dhcp == nil {
				dhcp = p
			}
		}
	}
	if best != nil {
		return best
	}
	return dhcp
}

// presentHere reports whether nh has the network on self's host.
func (nh networkHosts) presentHere(self hostView) bool {
	for h := range nh.present {
		if self.owns(h) {
			return true
		}
	}
	return false
}

// overlaySpec is what the kernel must have to join a network's bridge to
// the other hosts that have it: its VXLAN device, the device's
// forwarding entries (sorted, see dpspec.SortFDB) and its neighbour
// entries (by address).
type overlaySpec struct {
	VXLAN dpspec.VXLANSpec
	FDB   []dpspec.FDBEntry
	Neigh []dpspec.NeighEntry
}

func sameOverlay(a, b overlaySpec) bool {
	return a.VXLAN == b.VXLAN &&
		slices.EqualFunc(a.FDB, b.FDB, func(x, y dpspec.FDBEntry) bool { return x.Dst == y.Dst && slices.Equal(x.MAC, y.MAC) }) &&
		slices.EqualFunc(a.Neigh, b.Neigh, func(x, y dpspec.NeighEntry) bool { return x.IP == y.IP && slices.Equal(x.MAC, y.MAC) })
}

// vteps are the hosts' VTEP addresses, by host name, for the hosts that
// have one.
func vtepsOf(hosts []model.Host) map[string]netip.Addr {
	out := map[string]netip.Addr{}
	for _, h := range hosts {
		if a, err := netip.ParseAddr(h.VTEPAddress); err == nil {
			out[h.Name] = a.Unmap()
		}
	}
	return out
}

// vxlanOf is network n's VXLAN device on self's host; ok is false when
// it has none (one-box mode, a network that is not vxlan).
func vxlanOf(n model.Network, self hostView) (dev dpspec.VXLANSpec, ok bool) {
	seg := n.Segment()
	if !self.multi() || seg.NetworkType != model.NetworkTypeVXLAN || seg.SegmentationID <= 0 {
		return dpspec.VXLANSpec{}, false
	}
	return dpspec.VXLANSpec{
		Name:        model.VXLANName(n.ID),
		Alias:       dpspec.VXLANAlias(n.ID),
		VNI:         seg.SegmentationID,
		Local:       self.vtep,
		Bridge:      model.BridgeName(n.ID),
		BridgeAlias: dpspec.NetworkAlias(n.ID),
		MTU:         networkMTU(n),
		Up:          true,
	}, true
}

// overlayOf is network n's overlay on self's host, present there: nil
// when it has none (one-box mode, a network that is not vxlan). Remote
// ports of hosts without a VTEP address cannot be reached and get no
// entry.
func overlayOf(n model.Network, nh networkHosts, vteps map[string]netip.Addr, self hostView) *overlaySpec {
	dev, ok := vxlanOf(n, self)
	if !ok {
		return nil
	}
	spec := &overlaySpec{VXLAN: dev}
	fdb := map[string]dpspec.FDBEntry{}
	addFDB := func(mac net.HardwareAddr, dst netip.Addr) {
		e := dpspec.FDBEntry{MAC: mac, Dst: dst}
		fdb[e.MAC.String()+" "+dst.String()] = e
	}
	neigh := map[netip.Addr]net.HardwareAddr{}
	addNeigh := func(ip netip.Addr, mac net.HardwareAddr) {
		if _, taken := neigh[ip]; !taken { // the first port, in id order
			neigh[ip] = mac
		}
	}
	for h := range nh.present {
		if vtep, ok := vteps[h]; ok && !self.owns(h) && vtep != self.vtep {
			addFDB(dpspec.FloodMAC, vtep)
		}
	}
	if rp := nh.meta6; rp.port != nil {
		if mac, err := net.ParseMAC(rp.port.MACAddress); err == nil && vteps[rp.host].IsValid() {
			addNeigh(metadata.Addr6, mac)
		}
	}
	for _, rp := range nh.remote {
		vtep, ok := vteps[rp.host]
		if !ok || vtep == self.vtep {
			continue
		}
		fdbs, neighs := remoteEntries(rp.port, vtep)
		for _, e := range fdbs {
			addFDB(e.MAC, e.Dst)
		}
		for _, e := range neighs {
			addNeigh(e.IP, e.MAC)
		}
	}
	for _, e := range fdb {
		spec.FDB = append(spec.FDB, e)
	}
	dpspec.SortFDB(spec.FDB)
	for ip, mac := range neigh {
		spec.Neigh = append(spec.Neigh, dpspec.NeighEntry{IP: ip, MAC: mac})
	}
	slices.SortFunc(spec.Neigh, dpspec.CompareNeigh)
	return spec
}

// remoteEntries are what another host's port p, at that host's VTEP,
// adds to an overlay: a forwarding entry for its MAC (and for each MAC of
// its allowed address pairs), and neighbour entries for its addresses in
// the order they claim them (an address already claimed, by this port or
// one before it in id order, keeps its first MAC).
func remoteEntries(p *model.Port, vtep netip.Addr) (fdb []dpspec.FDBEntry, neigh []dpspec.NeighEntry) {
	mac, err := net.ParseMAC(p.MACAddress)
	if err != nil {
		return nil, nil
	}
	fdb = append(fdb, dpspec.FDBEntry{MAC: mac, Dst: vtep})
	v6 := false
	for _, ip := range p.FixedIPs {
		if a, err := netip.ParseAddr(ip.IPAddress); err == nil {
			neigh = append(neigh, dpspec.NeighEntry{IP: a.Unmap(), MAC: mac})
			v6 = v6 || a.Is6()
		}
	}
	if v6 {
		// The port's link-local address, which its kernel makes
		// from its MAC: routers advertise from theirs, DHCPv6
		// answers to the client's, and the proxy answers
		// solicitations only from entries.
		neigh = append(neigh, dpspec.NeighEntry{IP: linkLocal(mac), MAC: mac})
	}
	for _, pair := range p.AllowedAddressPairs {
		pfx, ok := pairPrefix(pair)
		if !ok || !pfx.IsSingleIP() {
			continue // a range has no neighbour entry
		}
		pmac := mac
		if m, err := net.ParseMAC(pair.MACAddress); err == nil && pair.MACAddress != "" {
			pmac = m
			fdb = append(fdb, dpspec.FDBEntry{MAC: pmac, Dst: vtep})
		}
		neigh = append(neigh, dpspec.NeighEntry{IP: pfx.Addr(), MAC: pmac})
	}
	return fdb, neigh
}

// linkLocal is the EUI-64 link-local address of mac, the one Linux gives
// an interface with that MAC.
func linkLocal(mac net.HardwareAddr) netip.Addr {
	var b [16]byte
	b[0], b[1] = 0xfe, 0x80
	if len(mac) == 6 {
		b[8], b[9], b[10], b[11] = mac[0]^0x02, mac[1], mac[2], 0xff
		b[12], b[13], b[14], b[15] = 0xfe, mac[3], mac[4], mac[5]
	}
	return netip.AddrFrom16(b)
}

// placeNetworks decides, with many hosts, which networks the host has:
// those present here keep their bridge, and those of type vxlan get
// their overlay; the others leave d. On one box every network stays, as
// before hosts.
func placeNetworks(d *desired, s *snapshot, pl placement) {
	if !s.self.multi() {
		return
	}
	vteps := vtepsOf(s.hosts)
	// A trunk's subports are wired to their networks' bridges where its
	// parent is plugged.
	d.pinned = map[string]bool{}
	for _, sp := range d.subports {
		d.pinned[sp.NetworkID] = true
	}
	has6 := ipv6Networks(s.subnets)
	byNetwork := map[string][]*model.Port{}
	for i := range s.ports {
		p := &s.ports[i]
		byNetwork[p.NetworkID] = append(byNetwork[p.NetworkID], p)
	}
	for _, n := range s.networks {
		placeNetwork(d, n, pl.hostsOf(n, byNetwork[n.ID], s.self, has6[n.ID]), vteps, s.self, d.networks[n.ID])
	}
}

// placeNetwork sets network n's bridge (spec, as computed for every
// network) and overlay in d as where it is present says.
func placeNetwork(d *desired, n model.Network, nh networkHosts, vteps map[string]netip.Addr, self hostView, spec networkSpec) {
	delete(d.overlay, n.ID)
	if !nh.presentHere(self) && !d.pinned[n.ID] {
		delete(d.networks, n.ID)
		return
	}
	d.networks[n.ID] = spec
	if o := overlayOf(n, nh, vteps, self); o != nil {
		d.overlay[n.ID] = *o
	}
}

// ipv6Networks are the networks that have an IPv6 subnet.
func ipv6Networks(subnets []model.Subnet) map[string]bool {
	out := map[string]bool{}
	for _, sn := range subnets {
		if sn.IPVersion == 6 {
			out[sn.NetworkID] = true
		}
	}
	return out
}

// canonical is the bytes of a record of kind as the agent compares them
// between reads: a host's record without its heartbeat, which every host
// rewrites every few seconds and which changes nothing the agent
// programs.
func canonical(kind store.Kind, b []byte) []byte {
	if kind != store.Hosts {
		return b
	}
	var h model.Host
	if err := json.Unmarshal(b, &h); err != nil {
		return b // the decode that follows reports it
	}
	h.Heartbeat = ""
	slices.Sort(h.Roles)
	out, err := json.Marshal(h)
	if err != nil {
		return b
	}
	return out
}

// hostOfInstance returns a lookup of instances' hosts.
func hostOfInstance(instances map[string]model.Instance) func(string) (string, bool) {
	return func(id string) (string, bool) {
		inst, ok := instances[id]
		return inst.Host, ok
	}
}

// placementOf indexes a snapshot's instances, routers and networks.
func placementOf(s *snapshot) placement {
	pl := placement{instances: map[string]model.Instance{}, routers: map[string]model.Router{}, networks: map[string]model.Network{}}
	for _, inst := range s.instances {
		pl.instances[inst.ID] = inst
	}
	for _, r := range s.routers {
		pl.routers[r.ID] = r
	}
	for _, n := range s.networks {
		pl.networks[n.ID] = n
	}
	pl.parents = trunkParents(s.trunks, s.ports)
	return pl
}

// trunkParents maps each trunk's subports to its parent port.
func trunkParents(trunks []model.Trunk, ports []model.Port) map[string]model.Port {
	if len(trunks) == 0 {
		return nil
	}
	byID := make(map[string]*model.Port, len(ports))
	for i := range ports {
		byID[ports[i].ID] = &ports[i]
	}
	out := map[string]model.Port{}
	for _, t := range trunks {
		parent := byID[t.PortID]
		if parent == nil {
			continue
		}
		for _, sp := range t.SubPorts {
			out[sp.PortID] = *parent
		}
	}
	return out
}
