package agent

import (
	"context"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nsnet/nsnet/internal/firewall"
	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/store"
)

// hostFirewall is the nsnet_fw tables of the host namespace, open across
// passes, and what was last applied to them.
type hostFirewall struct {
	mu      sync.Mutex
	fw      *firewall.Firewall
	ino     uint64 // the host namespace the firewall's sockets are in
	applied *firewall.Spec
	// gen is applied's generation in the incremental state
	// (fwAssembled.gen): the same generation is the same spec.
	gen   uint64
	ports map[string]string // tap → port id, of applied

	// counters caches the last read of the drop counters, by port id.
	counters     map[string]model.PortFirewallCounters
	countersRead time.Time
}

func (h *hostFirewall) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.fw != nil {
		h.fw.Close()
		h.fw, h.applied = nil, nil
	}
}

// firewallKind names the firewall's reconciler.
const firewallKind store.Kind = "firewall"

// The firewall's reconciler: the host's security group tables, whose
// applied spec the agent keeps (hostFirewall). Its tables name ports by
// their taps' names, so they need no tap to exist: the firewall is
// programmed while the kinds with ports (instances, trunks' subports,
// routers) create theirs (begin), and its outcome recorded after theirs,
// in its place in the registry (ensure), so that a port's filter and its
// tap come up in the same pass and a firewall failure marks the port in
// error whatever its tap's outcome. The nftables commit and the veths'
// creation take different kernel locks: side by side, a new port's pass
// costs the longer of the two, not their sum.
type firewallReconciler struct{ ownState }

func (firewallReconciler) kind() store.Kind { return firewallKind }

func (firewallReconciler) begin(p *pass) {
	done := make(chan error, 1)
	p.firewallDone = done
	go func() { done <- p.programFirewall() }()
}

func (firewallReconciler) ensure(_ context.Context, p *pass) {
	if p.firewallDone == nil {
		firewallReconciler{}.begin(p)
	}
	err := <-p.firewallDone
	p.firewallDone = nil
	p.recordFirewall(err)
}

// programFirewall programs the security groups of the ports plugged on
// this host. It reads only the desired state and the records, which no one
// changes during a pass.
func (p *pass) programFirewall() error {
	spec, ports := p.a.inc.firewallSpec(&p.a.records)
	gen := p.a.inc.fwSpec.gen
	h := &p.a.firewall
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := p.applyFirewall(h, spec, ports, gen); err != nil {
		return &firewallError{err: err, ports: ports}
	}
	return nil
}

// firewallError is a failed firewall and the ports it failed.
type firewallError struct {
	err   error
	ports map[string]string
}

func (e *firewallError) Error() string { return e.err.Error() }
func (e *firewallError) Unwrap() error { return e.err }

// recordFirewall marks every secured port in error if the firewall
// failed. It runs after the ports' own outcomes are recorded, which it
// overrides.
func (p *pass) recordFirewall(err error) {
	fe, ok := err.(*firewallError)
	if !ok {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.errors++
	p.a.log.Error("firewall", "err", fe.err)
	for _, id := range fe.ports {
		p.results[key{store.Ports, id}] = status{model.StatusError, "firewall: " + fe.err.Error()}
		p.good[key{store.Ports, id}] = false
	}
}

// applyFirewall applies spec, generation gen of the incremental state's
// (0: of no generation), unless it is the one applied.
func (p *pass) applyFirewall(h *hostFirewall, spec firewall.Spec, ports map[string]string, gen uint64) error {
	if h.fw != nil && h.ino != p.a.hostIno {
		h.fw.Close()
		h.fw, h.applied = nil, nil
	}
	if len(spec.Ports) == 0 && h.fw == nil && !p.full {
		return nil
	}
	if h.fw == nil {
		fw, err := firewall.Open(p.a.cfg.HostNetns, p.a.log)
		if err != nil {
			return err
		}
		h.fw, h.ino = fw, p.a.hostIno
	}
	if len(spec.Ports) == 0 {
		// Nothing to filter: no tables at all, as before the first port.
		// A full pass also removes tables this agent did not program (a
		// previous daemon's, whose last secured port went meanwhile).
		present, err := h.fw.Present()
		if err != nil {
			return err
		}
		if err := h.fw.Delete(); err != nil {
			return err
		}
		h.fw.Close()
		h.fw, h.applied, h.ports, h.counters = nil, nil, nil, nil
		if present {
			p.mu.Lock()
			p.changes++
			p.mu.Unlock()
			p.a.log.Info("firewall removed: no port to filter")
		}
		return nil
	}
	// A full pass applies even an unchanged spec: Apply reads the tables
	// back when the ruleset generation moved (someone committed), and
	// repairs them.
	if !p.full && h.applied != nil && (gen != 0 && gen == h.gen || sameFirewall(*h.applied, spec)) {
		h.gen = gen
		return nil
	}
	res, err := h.fw.Apply(spec)
	if err != nil {
		h.applied = nil
		return err
	}
	h.applied, h.ports, h.gen = &spec, ports, gen
	h.counters = nil
	if res.Adopted {
		p.a.log.Info("firewall adopted as found", "ports", len(spec.Ports))
		return nil
	}
	if !res.Rebuilt && res.Added == 0 && res.Deleted == 0 {
		return nil // another spec with the same elements (rules repeated or reordered)
	}
	p.mu.Lock()
	p.changes++
	p.mu.Unlock()
	p.a.log.Info("firewall programmed", "ports", len(spec.Ports), "rebuilt", res.Rebuilt,
		"added", res.Added, "deleted", res.Deleted, "connections_forgotten", res.Forgotten, "conntrack_walks", res.ConntrackWalks)
	return nil
}

// firewallSpec computes the firewall of the ports plugged here that have
// port security: anti-spoofing from their MAC, fixed IPs and allowed
// address pairs, and the rules of their groups, with the members of the
// remote groups they name (what the members, on any host, may send from)
// in Spec.Groups: each such group is a set of its own in the kernel,
// shared by every rule naming it, so a new member is one element. It
// returns the spec and the port id of each tap.
func firewallSpec(snap *snapshot, d *desired) (firewall.Spec, map[string]string) {
	// The members as the incremental state keeps them (see memberSets),
	// computed from every port at once.
	var members memberSets
	members.reset(snap)
	in := members.in
	ports := make([]*model.Port, len(snap.ports))
	for i := range snap.ports {
		ports[i] = &snap.ports[i]
	}
	return in.spec(ports, d)
}

// sameFirewall reports whether two specs are equal. The groups' members
// are compared at the cost of what differs between them: memberSets
// hands the firewall versions of one set. Ports are compared field by
// field, a slice that is the same slice (a port's compilation kept from
// one spec to the next) without a walk of its elements.
func sameFirewall(a, b firewall.Spec) bool {
	if !slices.Equal(a.Zoned, b.Zoned) || len(a.Groups) != len(b.Groups) || len(a.Ports) != len(b.Ports) ||
		(a.Ports == nil) != (b.Ports == nil) {
		return false
	}
	for i := range a.Ports {
		if !sameFirewallPort(&a.Ports[i], &b.Ports[i]) {
			return false
		}
	}
	return sameGroups(a.Groups, b.Groups)
}

// sameFirewallPort reports whether two ports are equal, as reflect.DeepEqual
// tells.
func sameFirewallPort(a, b *firewall.Port) bool {
	return a.Interface == b.Interface && a.Bridge == b.Bridge && a.Stateless == b.Stateless &&
		sameSlice(a.MAC, b.MAC, slices.Equal) &&
		sameSlice(a.Addresses, b.Addresses, slices.Equal) && sameSlice(a.Networks, b.Networks, slices.Equal) &&
		sameSlice(a.MACs, b.MACs, func(x, y []net.HardwareAddr) bool {
			return slices.EqualFunc(x, y, func(m, n net.HardwareAddr) bool { return sameSlice(m, n, slices.Equal) })
		}) &&
		sameSlice(a.Rules, b.Rules, slices.Equal) && sameSlice(a.Routed, b.Routed, slices.Equal)
}

// sameSlice reports whether a and b are equal as reflect.DeepEqual tells
// (nil differs from empty), by their elements (equal) unless they are
// the same slice.
func sameSlice[S ~[]E, E any](a, b S, equal func(S, S) bool) bool {
	switch {
	case (a == nil) != (b == nil) || len(a) != len(b):
		return false
	case len(a) == 0 || &a[0] == &b[0]:
		return true
	}
	return equal(a, b)
}

// firewallInputs are what the firewall's spec is made of besides the
// ports: the groups' rules, the remote groups' members (what each group's
// ports may send from), the address groups' CIDRs and the groups'
// statefulness.
type firewallInputs struct {
	rulesOf   map[string][]*model.SecurityGroupRule
	members   func(group string) firewall.Members
	addresses map[string]firewall.Members
	stateless map[string]bool
}

// firewallInputsOf reads the inputs but the members from snap.
func firewallInputsOf(snap *snapshot) firewallInputs {
	rulesOf := map[string][]*model.SecurityGroupRule{}
	for i := range snap.rules {
		r := &snap.rules[i]
		rulesOf[r.SecurityGroupID] = append(rulesOf[r.SecurityGroupID], r)
	}
	addresses := map[string]firewall.Members{} // address group → its CIDRs
	for _, g := range snap.addrGroups {
		var cidrs []netip.Prefix
		for _, a := range g.Addresses {
			if p, err := netip.ParsePrefix(a); err == nil {
				cidrs = append(cidrs, p.Masked())
			}
		}
		addresses[g.ID] = firewall.MembersOf(cidrs...)
	}
	stateless := map[string]bool{}
	for _, g := range snap.groups {
		stateless[g.ID] = !g.Stateful
	}
	return firewallInputs{rulesOf: rulesOf, addresses: addresses, stateless: stateless}
}

// spec is the firewall's spec for candidates, the ports that may be
// plugged here (every port, or fewer that include the plugged ones),
// each compiled afresh.
func (in firewallInputs) spec(candidates []*model.Port, d *desired) (firewall.Spec, map[string]string) {
	compiled := make([]*fwPort, len(candidates))
	for i, port := range candidates {
		fp := in.port(port, d)
		compiled[i] = &fp
	}
	return in.assemble(candidates, compiled, d)
}

// fwPort is one candidate port compiled: its firewall.Port but the
// routed destinations (which depend on the other ports of its bridge),
// the remote groups its rules name, and what it was compiled from besides
// the port's record and the inputs (fwEnv), so that the incremental
// state can tell whether it still holds.
type fwPort struct {
	env     fwEnv
	secured bool // plugged, with port security, not trusted
	fp      firewall.Port
	refs    []groupRef
}

// fwEnv is what a port's compilation reads from the desired state: its
// interface, bridge and network (hostInterface), that network's gateway
// and bridge, and whether it has an IPv6 subnet.
type fwEnv struct {
	iface, bridge, network string
	plugged                bool
	netOK, hostGateway     bool
	netBridge              string
	ipv6                   bool
}

// groupRef is a rule's remote group: the firewall's key for it and the
// security group (or, address, the address group) whose members it
// stands for.
type groupRef struct {
	key, group string
	address    bool
}

// envOf is port id's fwEnv in d.
func envOf(d *desired, id string) fwEnv {
	var e fwEnv
	e.iface, e.bridge, e.network, e.plugged = hostInterface(d, id)
	if n, ok := d.networks[e.network]; ok {
		e.netOK, e.hostGateway, e.netBridge = true, n.HostGateway, n.Bridge.Name
	}
	if ps, ok := d.ports[id]; ok {
		e.ipv6 = ps.Veth.NetworkIPv6
	} else if sp, ok := d.subports[id]; ok {
		e.ipv6 = sp.NetworkIPv6
	}
	return e
}

// port compiles one candidate port.
func (in firewallInputs) port(port *model.Port, d *desired) fwPort {
	out := fwPort{env: envOf(d, port.ID)}
	e := out.env
	if !e.plugged || !port.PortSecurityEnabled || port.IsTrusted() {
		return out
	}
	mac, err := net.ParseMAC(port.MACAddress)
	if err != nil {
		return out // validated by the service
	}
	out.secured = true
	// On a network without IPv6, the instance's router and duplicate
	// address detection solicitations stop at its port.
	fp := firewall.Port{Interface: e.iface, MAC: mac, Bridge: e.bridge, IPv4Only: !e.ipv6}
	for _, ip := range port.FixedIPs {
		if a, err := netip.ParseAddr(ip.IPAddress); err == nil {
			fp.Addresses = append(fp.Addresses, a)
		}
	}
	for _, pair := range port.AllowedAddressPairs {
		if a, err := netip.ParseAddr(pair.IPAddress); err == nil {
			fp.Addresses = append(fp.Addresses, a)
		} else if pr, err := netip.ParsePrefix(pair.IPAddress); err == nil {
			fp.Networks = append(fp.Networks, pr.Masked())
		}
		if m, err := net.ParseMAC(pair.MACAddress); err == nil && m.String() != mac.String() {
			fp.MACs = append(fp.MACs, m)
		}
	}
	for _, g := range port.SecurityGroups {
		for _, r := range in.rulesOf[g] {
			fr := compileRule(r)
			fp.Rules = append(fp.Rules, fr)
			switch {
			case r.RemoteGroupID != nil:
				out.refs = append(out.refs, groupRef{key: fr.Group, group: *r.RemoteGroupID})
			case r.RemoteAddressGroupID != nil:
				out.refs = append(out.refs, groupRef{key: fr.Group, group: *r.RemoteAddressGroupID, address: true})
			}
		}
	}
	// Stateless when its groups are (the service refuses a port mixing
	// kinds), on a network the host only bridges: on a host-gateway
	// network the host's routing and NAT need its connections tracked,
	// so they stay stateful there.
	fp.Stateless = len(port.SecurityGroups) > 0 && e.netOK && !e.hostGateway && e.netBridge == fp.Bridge
	for _, g := range port.SecurityGroups {
		fp.Stateless = fp.Stateless && in.stateless[g]
	}
	out.fp = fp
	return out
}

// assemble makes the spec of the candidates, compiled[i] being
// candidates[i] compiled: the secured ones sorted by interface (as
// compile expects), their routed destinations, the members of the
// remote groups they name, and the bridges' zones. compiled's
// firewall.Ports are copied, not changed.
func (in firewallInputs) assemble(candidates []*model.Port, compiled []*fwPort, d *desired) (firewall.Spec, map[string]string) {
	spec := firewall.Spec{Groups: map[string]firewall.Members{}}
	ports := map[string]string{}
	secured := map[string]*model.Port{} // by tap
	// Sorted as indexes: a firewall.Port is large, and moving them costs
	// more than comparing their names.
	order := make([]int, 0, len(compiled))
	for i, c := range compiled {
		if c.secured {
			order = append(order, i)
		}
	}
	slices.SortFunc(order, func(a, b int) int { return strings.Compare(compiled[a].fp.Interface, compiled[b].fp.Interface) })
	if len(order) > 0 {
		spec.Ports = make([]firewall.Port, 0, len(order))
	}
	for _, i := range order {
		c := compiled[i]
		for _, ref := range c.refs {
			if _, ok := spec.Groups[ref.key]; ok {
				continue
			}
			if ref.address {
				spec.Groups[ref.key] = in.addresses[ref.group]
			} else {
				spec.Groups[ref.key] = in.members(ref.group)
			}
		}
		spec.Ports = append(spec.Ports, c.fp)
		ports[c.fp.Interface] = candidates[i].ID
		secured[c.fp.Interface] = candidates[i]
	}
	addRouted(spec.Ports, secured, d)
	spec.Zoned = zonedOf(d)
	return spec, ports
}

// addRouted tells the firewall, for each secured port of a network whose
// gateway is the host, which IPv4 destinations the host routes to it
// through the network's bridge (firewall.Port.Routed): its fixed IPs and
// allowed address pairs. The firewall takes one port per destination, so
// an address several ports may hold goes to the one whose fixed IP it is,
// else to the first by interface name, and a range overlapping a range
// of an earlier port is left out: the ingress rules of that port judge
// what the host routes there, and a port left out gets only what belongs
// to connections admitted.
func addRouted(fps []firewall.Port, byTap map[string]*model.Port, d *desired) {
	type bridgeAddr struct {
		bridge string
		addr   netip.Addr
	}
	taken := map[bridgeAddr]bool{}
	ranges := map[string][]netip.Prefix{} // by bridge
	hostRouted := func(fp *firewall.Port) bool {
		_, _, network, _ := hostInterface(d, byTap[fp.Interface].ID)
		return d.networks[network].HostGateway
	}
	claim := func(fp *firewall.Port, p netip.Prefix) {
		switch {
		case !p.Addr().Is4():
		case p.IsSingleIP() && !taken[bridgeAddr{fp.Bridge, p.Addr()}]:
			taken[bridgeAddr{fp.Bridge, p.Addr()}] = true
			fp.Routed = append(fp.Routed, p)
		case !p.IsSingleIP() && !slices.ContainsFunc(ranges[fp.Bridge], p.Overlaps):
			ranges[fp.Bridge] = append(ranges[fp.Bridge], p)
			fp.Routed = append(fp.Routed, p)
		}
	}
	for i := range fps {
		fp := &fps[i]
		if !hostRouted(fp) {
			continue
		}
		for _, ip := range byTap[fp.Interface].FixedIPs {
			if a, err := netip.ParseAddr(ip.IPAddress); err == nil {
				claim(fp, netip.PrefixFrom(a, a.BitLen()))
			}
		}
	}
	for i := range fps {
		fp := &fps[i]
		if !hostRouted(fp) {
			continue
		}
		for _, pair := range byTap[fp.Interface].AllowedAddressPairs {
			if p, ok := pairPrefix(pair); ok {
				claim(fp, p)
			}
		}
	}
}

// portAddresses are the addresses a port may send from — its fixed IPs
// and its allowed address pairs, CIDRs included — which is what it stands
// for as a member of the groups that rules name as remote groups. So does
// Neutron (_select_ips_for_remote_group, whose ipsets are hash:net): a
// member's pair 0.0.0.0/0 opens every rule naming its group to everyone
// (Launchpad bug 1867119, kept as designed).
func portAddresses(p *model.Port) []netip.Prefix {
	var out []netip.Prefix
	for _, ip := range p.FixedIPs {
		if a, err := netip.ParseAddr(ip.IPAddress); err == nil {
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
		}
	}
	for _, pair := range p.AllowedAddressPairs {
		if pr, ok := pairPrefix(pair); ok {
			out = append(out, pr)
		}
	}
	return out
}

// pairPrefix is an allowed address pair's ip_address, an address or a
// CIDR, as a prefix (an address as a host prefix).
func pairPrefix(pair model.AddressPair) (netip.Prefix, bool) {
	if a, err := netip.ParseAddr(pair.IPAddress); err == nil {
		return netip.PrefixFrom(a, a.BitLen()), true
	}
	if p, err := netip.ParsePrefix(pair.IPAddress); err == nil {
		return p.Masked(), true
	}
	return netip.Prefix{}, false
}

// compileRule turns one security group rule into a firewall rule. A rule
// naming a remote group or an address group names it by remoteGroupKey or
// addressGroupKey: its members' addresses, or its CIDRs, are the spec's
// Groups (a group without any of the rule's ethertype allows nothing).
func compileRule(r *model.SecurityGroupRule) firewall.Rule {
	v6 := r.EtherType == model.EtherTypeIPv6
	fr := firewall.Rule{Direction: firewall.Ingress, IPv6: v6, ProtoMax: 255, PortMax: 65535}
	if r.Direction == model.DirectionEgress {
		fr.Direction = firewall.Egress
	}
	if n := r.ProtocolNumber(); n >= 0 {
		if v6 && n == unix.IPPROTO_ICMP {
			// ICMP on an IPv6 rule is ICMPv6, as in Neutron's agents:
			// the service stores the legacy name icmp as ipv6-icmp,
			// but rules stored before it did still say icmp.
			n = unix.IPPROTO_ICMPV6
		}
		fr.ProtoMin, fr.ProtoMax = uint8(n), uint8(n)
		if n == 1 || n == 58 {
			// ICMP: the "port" is type<<8 | code.
			if r.PortRangeMin != nil {
				t := uint16(*r.PortRangeMin) << 8
				fr.PortMin, fr.PortMax = t, t|0xff
				if r.PortRangeMax != nil {
					fr.PortMin, fr.PortMax = t|uint16(*r.PortRangeMax), t|uint16(*r.PortRangeMax)
				}
			}
		} else if r.PortRangeMin != nil && r.PortRangeMax != nil {
			fr.PortMin, fr.PortMax = uint16(*r.PortRangeMin), uint16(*r.PortRangeMax)
		}
	}
	switch {
	case r.RemoteGroupID != nil:
		fr.Group = remoteGroupKey(*r.RemoteGroupID)
	case r.RemoteAddressGroupID != nil:
		fr.Group = addressGroupKey(*r.RemoteAddressGroupID)
	case r.NormalizedCIDR != nil:
		if pr, err := netip.ParsePrefix(*r.NormalizedCIDR); err == nil {
			fr.Remote = pr
		}
	case v6:
		fr.Remote = netip.MustParsePrefix("::/0")
	default:
		fr.Remote = netip.MustParsePrefix("0.0.0.0/0")
	}
	return fr
}

// addressGroupKey is the firewall's name of an address group named as a
// rule's remote: its CIDRs are a remote group's members to the firewall.
func addressGroupKey(id string) string { return "ag" + strings.ReplaceAll(id, "-", "") }

// remoteGroupKey is the firewall's name of a security group named as a
// remote group: its id without the dashes (part of set names).
func remoteGroupKey(id string) string { return "sg" + strings.ReplaceAll(id, "-", "") }

// countersTTL bounds how often the drop counters are read from the kernel:
// a port list asks for every port's.
const countersTTL = time.Second

// FirewallCounters returns the drops of port id, or nil when the port is
// not filtered on this host.
func (a *Agent) FirewallCounters(portID string) *model.PortFirewallCounters {
	h := &a.firewall
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.fw == nil {
		return nil
	}
	if h.counters == nil || time.Since(h.countersRead) > countersTTL {
		byTap, err := h.fw.Counters()
		if err != nil {
			a.log.Warn("read firewall counters", "err", err)
			return nil
		}
		h.counters = map[string]model.PortFirewallCounters{}
		for tap, c := range byTap {
			if id, ok := h.ports[tap]; ok {
				h.counters[id] = model.PortFirewallCounters{
					SpoofedMAC: c.SpoofedMAC, SpoofedIP: c.SpoofedIP, SpoofedARP: c.SpoofedARP,
					SpoofedND: c.SpoofedND, DHCPServer: c.DHCPServer, RouterAdvert: c.RouterAdvert, IPv6Off: c.IPv6Off,
					Ingress: c.Ingress, Egress: c.Egress, Invalid: c.Invalid,
				}
			}
		}
		h.countersRead = time.Now()
	}
	c, ok := h.counters[portID]
	if !ok {
		return nil
	}
	return &c
}

// hostInterface is port id's interface on this host, the bridge it is a
// port of and its network: a plugged port's tap, or a trunk subport's
// interface (see dataplane.VLANSpec). ok is false for a port with neither.
func hostInterface(d *desired, id string) (iface, bridge, network string, ok bool) {
	if ps, ok := d.ports[id]; ok {
		return model.TapName(id), ps.Veth.Bridge, ps.NetworkID, true
	}
	if sp, ok := d.subports[id]; ok {
		return sp.VLAN.Name, sp.VLAN.Bridge, sp.NetworkID, true
	}
	return "", "", "", false
}

// fwAssembled is the firewall's spec as the incremental state keeps it
// from one pass to the next, with what updating it port by port needs:
// a change of k ports costs k compilations, k binary searches and one copy
// of the sorted ports (the spec handed to the firewall is never changed
// after), not a walk, a sort and maps of every plugged port.
type fwAssembled struct {
	spec firewall.Spec
	// taps is the port id of each tap of spec, handed out with it: a
	// change makes a new map.
	taps map[string]string
	// entries are the compilations of spec's ports, by port id, and
	// onBridge the taps of spec's ports by bridge (for their routed
	// destinations, which depend on the bridge's other ports).
	entries  map[string]*fwPort
	onBridge map[string]map[string]bool
	// refs count the secured ports' references to each remote group
	// (one per rule naming it): spec.Groups has the groups counted.
	refs   map[string]int
	refOf  map[string]groupRef
	routed map[string]bool // bridges whose ports have routed destinations
	// zonesStale: a network's placement changed, spec.Zoned with it.
	zonesStale bool
	// gen counts the specs: a spec handed out again is the same one.
	gen uint64
	// placed counts the ports assembled into a spec: every secured one
	// by reset, those that came or whose routed destinations were
	// redone by update.
	placed int
}

// reset makes a the spec assembled from every candidate.
func (a *fwAssembled) reset(spec firewall.Spec, taps map[string]string, candidates []*model.Port, compiled []*fwPort) {
	spec.Version = a.gen + 1
	*a = fwAssembled{spec: spec, taps: taps, entries: map[string]*fwPort{}, onBridge: map[string]map[string]bool{},
		refs: map[string]int{}, refOf: map[string]groupRef{}, routed: map[string]bool{}, gen: a.gen + 1,
		placed: a.placed + len(spec.Ports)}
	for i, c := range compiled {
		if c.secured {
			a.add(candidates[i].ID, c)
		}
	}
	for i := range spec.Ports {
		if fp := &spec.Ports[i]; len(fp.Routed) > 0 {
			a.routed[fp.Bridge] = true
		}
	}
}

// add counts c, port id's compilation, in a's indexes.
func (a *fwAssembled) add(id string, c *fwPort) {
	a.entries[id] = c
	index(a.onBridge, c.fp.Bridge, c.fp.Interface)
	for _, ref := range c.refs {
		a.refs[ref.key]++
		a.refOf[ref.key] = ref
	}
}

// remove takes what add counted out.
func (a *fwAssembled) remove(id string) *fwPort {
	c := a.entries[id]
	if c == nil {
		return nil
	}
	delete(a.entries, id)
	unindex(a.onBridge, c.fp.Bridge, c.fp.Interface)
	for _, ref := range c.refs {
		if a.refs[ref.key]--; a.refs[ref.key] == 0 {
			delete(a.refs, ref.key)
			delete(a.refOf, ref.key)
		}
	}
	return c
}

// update makes the next spec: the ports dirty are taken out of it, and
// the secured ones among them (now, compiled from records) put in again.
// The bridges of the ports that came or went get their routed
// destinations anew; the groups and zones are made again (as many as
// there are groups and networks, not ports).
func (a *fwAssembled) update(in firewallInputs, dirty map[string]bool, now []*fwPort, records []*model.Port, recs *records, d *desired) {
	bridges := map[string]bool{}
	var gone []string // taps
	for id := range dirty {
		if c := a.remove(id); c != nil {
			gone = append(gone, c.fp.Interface)
			bridges[c.fp.Bridge] = true
		}
	}
	taps := maps.Clone(a.taps)
	for _, tap := range gone {
		delete(taps, tap)
	}
	order := make([]int, len(now))
	a.placed += len(now)
	for i, c := range now {
		order[i] = i
		a.add(records[i].ID, c)
		taps[c.fp.Interface] = records[i].ID
		bridges[c.fp.Bridge] = true
	}
	slices.SortFunc(order, func(x, y int) int { return strings.Compare(now[x].fp.Interface, now[y].fp.Interface) })
	slices.Sort(gone)

	// The next ports: the last ones but those gone, merged with those
	// that came, in one pass of copies between the places found by
	// binary search.
	old := a.spec.Ports
	ports := old
	if len(gone) > 0 || len(now) > 0 {
		ports = nil
	}
	if n := len(old) - len(gone) + len(now); n > 0 && ports == nil {
		ports = make([]firewall.Port, 0, n)
	}
	cmp := func(p firewall.Port, tap string) int { return strings.Compare(p.Interface, tap) }
	from, gi, ni := 0, 0, 0
	for gi < len(gone) || ni < len(order) {
		// The next event in interface order: a port gone (skipped) or
		// one that came (inserted).
		takeGone := ni == len(order) || gi < len(gone) && gone[gi] <= now[order[ni]].fp.Interface
		var tap string
		if takeGone {
			tap = gone[gi]
		} else {
			tap = now[order[ni]].fp.Interface
		}
		at, _ := slices.BinarySearchFunc(old[from:], tap, cmp)
		ports = append(ports, old[from:from+at]...)
		from += at
		if takeGone {
			from++ // the port itself
			gi++
		} else {
			ports = append(ports, now[order[ni]].fp)
			ni++
		}
	}
	if len(gone) > 0 || len(now) > 0 {
		ports = append(ports, old[from:]...)
	}

	// Routed destinations, bridge by bridge: the ports of a bridge the
	// host routes for claim them in interface order (addRouted).
	var rerouted []int
	for b := range bridges {
		if !a.routed[b] && !a.hostRouted(d, taps, b) {
			continue
		}
		var on []int
		byTap := map[string]*model.Port{}
		for tap := range a.onBridge[b] {
			i, ok := slices.BinarySearchFunc(ports, tap, cmp)
			if !ok {
				continue
			}
			if r, ok := recs.ports.m[taps[tap]]; ok {
				byTap[tap] = &r.val
			}
			on = append(on, i)
		}
		slices.Sort(on)
		a.placed += len(on)
		rerouted = append(rerouted, on...)
		sub := make([]firewall.Port, len(on))
		for j, i := range on {
			sub[j] = ports[i]
			sub[j].Routed = nil
		}
		addRouted(sub, byTap, d)
		routed := false
		for j, i := range on {
			ports[i] = sub[j]
			routed = routed || len(sub[j].Routed) > 0
		}
		if routed {
			a.routed[b] = true
		} else {
			delete(a.routed, b)
		}
	}

	groups := make(map[string]firewall.Members, len(a.refOf))
	for k, ref := range a.refOf {
		if ref.address {
			groups[k] = in.addresses[ref.group]
		} else {
			groups[k] = in.members(ref.group)
		}
	}
	zoned := a.spec.Zoned
	if a.zonesStale {
		zoned = zonedOf(d)
		a.zonesStale = false
	}
	if len(bridges) == 0 && slices.Equal(zoned, a.spec.Zoned) && sameGroups(groups, a.spec.Groups) {
		return // the same spec: no port came or went, no member
	}
	// The firewall compiles the ports that came, went or were re-routed
	// (firewall.Spec.Base).
	var changed []string
	changed = append(changed, gone...)
	for _, c := range now {
		changed = append(changed, c.fp.Interface)
	}
	for _, i := range rerouted {
		changed = append(changed, ports[i].Interface)
	}
	a.spec = firewall.Spec{Ports: ports, Zoned: zoned, Groups: groups, Version: a.gen + 1, Base: a.gen, Changed: changed}
	a.taps = taps
	a.gen++
}

// sameGroups reports whether a and b have the same members for the same
// groups, at the cost of the members that differ (see firewall.Members).
func sameGroups(a, b map[string]firewall.Members) bool {
	if len(a) != len(b) {
		return false
	}
	for g, x := range a {
		y, ok := b[g]
		if !ok || !x.Equal(y) {
			return false
		}
	}
	return true
}

// hostRouted reports whether the host routes for the network of the
// ports of bridge b (they get routed destinations), as addRouted tells
// it from one of them.
func (a *fwAssembled) hostRouted(d *desired, taps map[string]string, b string) bool {
	for tap := range a.onBridge[b] {
		_, _, network, _ := hostInterface(d, taps[tap])
		return d.networks[network].HostGateway
	}
	return false
}

// zonedOf are the bridges of d's networks the host does not route for:
// every one gets a conntrack zone, not only those with secured ports: a
// network without any still must not share connections with one that has
// some and the same CIDR.
func zonedOf(d *desired) []string {
	var zoned []string
	for _, n := range d.networks {
		if !n.HostGateway {
			zoned = append(zoned, n.Bridge.Name)
		}
	}
	slices.Sort(zoned)
	return zoned
}
