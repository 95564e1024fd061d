package agent

import (
	"context"
	"net"
	"net/netip"
	"reflect"
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
	ports   map[string]string // tap → port id, of applied

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
	h := &p.a.firewall
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := p.applyFirewall(h, spec, ports); err != nil {
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

func (p *pass) applyFirewall(h *hostFirewall, spec firewall.Spec, ports map[string]string) error {
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
	if !p.full && h.applied != nil && sameFirewall(*h.applied, spec) {
		return nil
	}
	res, err := h.fw.Apply(spec)
	if err != nil {
		h.applied = nil
		return err
	}
	h.applied, h.ports = &spec, ports
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
// hands the firewall versions of one set.
func sameFirewall(a, b firewall.Spec) bool {
	if !slices.Equal(a.Zoned, b.Zoned) || len(a.Groups) != len(b.Groups) || !reflect.DeepEqual(a.Ports, b.Ports) {
		return false
	}
	for g, x := range a.Groups {
		y, ok := b.Groups[g]
		if !ok || !x.Equal(y) {
			return false
		}
	}
	return true
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
// interface, bridge and network (hostInterface), and that network's
// gateway and bridge.
type fwEnv struct {
	iface, bridge, network string
	plugged                bool
	netOK, hostGateway     bool
	netBridge              string
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
	fp := firewall.Port{Interface: e.iface, MAC: mac, Bridge: e.bridge}
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
	// Every bridge the host does not route for gets a conntrack zone, not
	// only those with secured ports: a network without any still must
	// not share connections with one that has some and the same CIDR.
	for _, n := range d.networks {
		if !n.HostGateway {
			spec.Zoned = append(spec.Zoned, n.Bridge.Name)
		}
	}
	slices.Sort(spec.Zoned)
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
					SpoofedND: c.SpoofedND, DHCPServer: c.DHCPServer, RouterAdvert: c.RouterAdvert,
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
