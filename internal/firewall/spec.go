// Package firewall owns nsnet's security-group data plane: two nftables
// tables in the namespace that holds the network bridges (the daemon's host
// namespace), both named nsnet_fw.
//
//   - bridge nsnet_fw — stateless, per port: anti-spoofing (a frame from a
//     port carries its MAC and one of its addresses or allowed address
//     pairs, or for IPv6 the EUI-64 link-local address of one of its
//     MACs; ARP sender and IPv6 neighbour advertisement target checked;
//     DHCP and DHCPv6 server replies and IPv6 router advertisements from
//     instances dropped), and the tagging of every
//     bridged packet with the firewall tags of its input and output ports
//     in the packet mark (bridge-family chains have no conntrack, and
//     br_netfilter shows the inet family the bridge, not the port).
//   - inet nsnet_fw — stateful, through br_netfilter: established and
//     related traffic accepted, invalid dropped, a new connection checked
//     against the egress rules of its source port and the ingress rules of
//     its destination port, found by one lookup each in a set whose
//     elements are the rules (port tag . protocol . port/ICMP type .
//     remote address range) — the union of the port's rules cut into
//     disjoint pieces, since the kernel refuses overlapping elements.
//     A rule naming a remote group (Rule.Group: a security group or an
//     address group) looks the peer up in the group's own member sets,
//     shared by every port whose rules name it, so a member coming or
//     going is one element. A stateless port's frames are left
//     untracked and its rules judge every packet.
//     Before conntrack, it puts each bridge the host only bridges for in
//     a conntrack zone of its own (Spec.Zoned), so that networks with the
//     same addresses share no connection.
//
// Where the host's own stack is a party (a bridge carrying the host's
// address, as on host-gateway networks), the bridge table tags what goes
// up from a port to the host, the inet table finds the port that a packet
// routed or sent into a bridge is for from its destination address
// (Port.Routed), and the bridge table lets such a packet reach a secured
// port only once the inet table admitted it: the same rules hold for
// routed traffic as for bridged.
//
// Every lookup is a hash or set lookup: the cost of a packet does not grow
// with the number of ports or rules. Changes are sent as set elements in
// one atomic batch; removing rules also deletes the conntrack entries of
// the connections they allowed, and a zone going deletes its entries. It
// must not touch any other table, and never the machine's root namespace
// unless told to.
package firewall

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
)

// Direction is the side of a port a rule guards.
type Direction uint8

// Rule directions.
const (
	Ingress Direction = iota // into the port
	Egress                   // out of the port
)

// Rule allows new connections of one shape through one side of a port.
// ICMP rules match type and code in PortMin..PortMax as type<<8|code.
type Rule struct {
	Direction Direction
	IPv6      bool
	// ProtoMin..ProtoMax is the IP protocol range (0..255 for any).
	ProtoMin, ProtoMax uint8
	// PortMin..PortMax is the destination port range (0..65535 for any).
	PortMin, PortMax uint16
	// Remote is the peer's address range: the source of ingress traffic,
	// the destination of egress traffic. Unset when Group is set.
	Remote netip.Prefix
	// Group names a remote group of Spec.Groups: the peer is any address
	// of its members of the rule's family. Its members are in sets of
	// their own that every rule naming the group looks up, so a member
	// coming or going is one element whatever the number of rules.
	Group string
}

// Port is one secured port: its host-side interface on the bridge, what it
// may send from, and the rules of its security groups (a remote group's
// rule names the group: Rule.Group).
type Port struct {
	// Interface is the host-side name of the port's veth (tap…).
	Interface string
	MAC       net.HardwareAddr
	// Addresses the port may send from: fixed IPs, host address pairs.
	Addresses []netip.Addr
	// Networks the port may send from: allowed address pairs that are
	// prefixes.
	Networks []netip.Prefix
	// MACs other than MAC it may send from (allowed address pairs).
	MACs  []net.HardwareAddr
	Rules []Rule
	// Bridge is the bridge the port is plugged into: its connections
	// are tracked in that bridge's conntrack zone (Spec.Zoned), where
	// removing a rule looks for the ones to forget.
	Bridge string
	// Routed are the IPv4 destinations the host's own stack sends to
	// this port through Bridge when the host routes for the port's
	// network (its gateway address is on the bridge): a new connection
	// the host sends into Bridge towards one of them meets this port's
	// ingress rules. Single addresses are /32s. Ports of one bridge hold
	// distinct single addresses and disjoint ranges; a single address
	// wins over a range holding it.
	Routed []netip.Prefix
	// Stateless: the port's traffic, both ways, is not tracked by
	// conntrack, and its rules (and its peer port's, if secured) judge
	// every packet, as Neutron's stateless security groups
	// (stateful=false): replies need rules of their own. Frames with
	// the port's MAC are the ones left untracked (not those with an
	// address pair's MAC, which another port may share). Only on a
	// bridge of Spec.Zoned: the host's routing and NAT on a bridge it
	// routes for need connections tracked.
	Stateless bool
	// IPv4Only: the port's network has no IPv6 subnet. Its router
	// solicitations and duplicate address detection's neighbour
	// solicitations (from ::) are dropped as it sends them: nothing on
	// its network would answer, and its bridge would copy them to every
	// other port (Neutron's OVS would flood them as well), into every
	// instance's IPv6 input. The instance keeps its kernel's defaults,
	// as a VM does; the rest of its IPv6 (its link-local address,
	// neighbour discovery between link-local addresses, MLD) passes.
	IPv4Only bool
}

// Spec is every secured port of the namespace. Ports not in it (routers'
// ports, ports with port security off) pass unchecked.
type Spec struct {
	Ports []Port
	// Zoned are the bridges whose traffic the host only bridges: each
	// gets a conntrack zone of its own, so that networks with the same
	// addresses never share a connection (conntrack's tuples name no
	// interface: without zones, a flow on one network admits the same
	// 5-tuple on another as established). A bridge keeps its zone while
	// it is listed. Bridges the host routes for (its address on them)
	// must not be listed: a routed connection crosses the bridge one way
	// and another interface the other, and conntrack must find both
	// directions in one zone, the default one.
	Zoned []string
	// Groups are the remote groups that rules name (Rule.Group): the
	// addresses and prefixes their members may send from, both families
	// mixed. A group no rule names is left out of the tables. Names are 1
	// to maxGroupName letters, digits and underscores. Members made from
	// those of the last Apply by changes (With, Without) are compared with
	// them at the cost of the changes.
	Groups map[string]Members

	// Version, Base and Changed let Apply validate and compile a spec at
	// the cost of its change from the last one: Version names this spec
	// (0: none). When Base is the Version of the spec the last Apply
	// applied, this spec is that one but for the ports whose interfaces
	// Changed lists (added, removed or altered; any other port the same
	// Port, its slices unchanged) and for Groups; Zoned is the same, and
	// Ports are sorted by Interface. Apply then looks at those ports
	// only. A spec changed otherwise (another Base, other zones, a port
	// whose rules changed) is compiled whole, as one without a Base.
	Version, Base uint64
	Changed       []string
}

// maxGroupName bounds a group's name: it is part of set names.
const maxGroupName = 64

func validGroupName(name string) bool {
	if name == "" || len(name) > maxGroupName {
		return false
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_') {
			return false
		}
	}
	return true
}

// Validate checks what the kernel would otherwise refuse halfway through
// a batch.
func (s Spec) Validate() error {
	if len(s.Ports) > maxTag {
		return fmt.Errorf("%d ports: at most %d can be secured", len(s.Ports), maxTag)
	}
	if len(s.Zoned) > maxZone {
		return fmt.Errorf("%d zoned bridges: at most %d", len(s.Zoned), maxZone)
	}
	zoned := map[string]bool{}
	for _, b := range s.Zoned {
		if b == "" || len(b) > 15 {
			return fmt.Errorf("zoned bridge %q: want 1 to 15 bytes", b)
		}
		if zoned[b] {
			return fmt.Errorf("zoned bridge %s appears twice", b)
		}
		zoned[b] = true
	}
	for name, members := range s.Groups {
		if !validGroupName(name) {
			return fmt.Errorf("group name %q: want 1 to %d letters, digits or underscores", name, maxGroupName)
		}
		if members.invalid > 0 {
			return fmt.Errorf("group %s: member %v is not a prefix", name, netip.Prefix{})
		}
	}
	seen := map[string]bool{}
	routed := map[string][]netip.Prefix{} // bridge → what its ports hold
	for _, p := range s.Ports {
		if p.Interface == "" || len(p.Interface) > 15 {
			return fmt.Errorf("port interface %q: want 1 to 15 bytes", p.Interface)
		}
		if seen[p.Interface] {
			return fmt.Errorf("port interface %s appears twice", p.Interface)
		}
		seen[p.Interface] = true
		if len(p.MAC) != 6 {
			return fmt.Errorf("port %s: MAC %v is not an Ethernet address", p.Interface, p.MAC)
		}
		for _, r := range p.Rules {
			if r.ProtoMin > r.ProtoMax || r.PortMin > r.PortMax {
				return fmt.Errorf("port %s: rule %+v has an empty range", p.Interface, r)
			}
			if r.Group != "" {
				if _, ok := s.Groups[r.Group]; !ok || r.Remote.IsValid() {
					return fmt.Errorf("port %s: rule %+v: want a remote group of the spec and no remote prefix", p.Interface, r)
				}
				continue
			}
			if !r.Remote.IsValid() || r.Remote.Addr().Is6() != r.IPv6 {
				return fmt.Errorf("port %s: rule %+v: remote %v is not of its family", p.Interface, r, r.Remote)
			}
		}
		if len(p.Bridge) > 15 || len(p.Routed) > 0 && p.Bridge == "" {
			return fmt.Errorf("port %s: bridge %q: want 1 to 15 bytes", p.Interface, p.Bridge)
		}
		if p.Stateless && !zoned[p.Bridge] {
			return fmt.Errorf("port %s: stateless, on bridge %q, which is not zoned", p.Interface, p.Bridge)
		}
		if len(p.Routed) > 0 && zoned[p.Bridge] {
			return fmt.Errorf("port %s: the host routes to it through bridge %s, which is zoned", p.Interface, p.Bridge)
		}
		for _, d := range p.Routed {
			if !d.IsValid() || !d.Addr().Is4() || d != d.Masked() {
				return fmt.Errorf("port %s: routed destination %v is not an IPv4 prefix", p.Interface, d)
			}
			for _, other := range routed[p.Bridge] {
				if d.IsSingleIP() == other.IsSingleIP() && d.Overlaps(other) {
					return fmt.Errorf("port %s: routed destination %v overlaps %v of another port on bridge %s", p.Interface, d, other, p.Bridge)
				}
			}
		}
		routed[p.Bridge] = append(routed[p.Bridge], p.Routed...)
	}
	return nil
}

// validateChanged is Validate for a spec that changes the one applied
// last, valid, by its Changed ports (see Spec.Base): the checks of those
// ports, of the groups and zones (as many as there are groups and
// bridges), and a whole Validate when a changed port has routed
// destinations (which the other ports' on its bridge must not overlap).
func (s Spec) validateChanged() error {
	if len(s.Ports) > maxTag {
		return fmt.Errorf("%d ports: at most %d can be secured", len(s.Ports), maxTag)
	}
	cmp := func(p Port, name string) int { return strings.Compare(p.Interface, name) }
	var ports []Port
	seen := make(map[string]bool, len(s.Changed))
	for _, name := range s.Changed {
		i, found := slices.BinarySearchFunc(s.Ports, name, cmp)
		if !found || seen[name] {
			continue
		}
		seen[name] = true
		if len(s.Ports[i].Routed) > 0 {
			return s.Validate()
		}
		// A second port of that interface is next to it.
		if i > 0 && s.Ports[i-1].Interface == name || i+1 < len(s.Ports) && s.Ports[i+1].Interface == name {
			return fmt.Errorf("port interface %s appears twice", name)
		}
		ports = append(ports, s.Ports[i])
	}
	return Spec{Ports: ports, Zoned: s.Zoned, Groups: s.Groups}.Validate()
}

// Counters are the packets dropped for one port, by reason.
type Counters struct {
	SpoofedMAC, SpoofedIP, SpoofedARP, DHCPServer, RouterAdvert uint64
	// SpoofedND are neighbour advertisements for an address the port
	// does not own: IPv6's forged ARP.
	SpoofedND uint64
	// IPv6Off are router solicitations and duplicate address detection's
	// probes from a port of a network without IPv6 (Port.IPv4Only).
	IPv6Off         uint64
	Ingress, Egress uint64
	// Invalid are packets conntrack found invalid, counted against the
	// destination port (or the source port when only it is secured).
	Invalid uint64
}

// Drop reasons, the second field of the drops sets' keys.
const (
	reasonMAC uint32 = iota + 1
	reasonIP
	reasonARP
	reasonDHCP
	reasonRA
	reasonIngress
	reasonEgress
	reasonInvalid
	reasonND
	reasonIPv6Off
)

func (c *Counters) add(reason uint32, packets uint64) {
	switch reason {
	case reasonMAC:
		c.SpoofedMAC += packets
	case reasonIP:
		c.SpoofedIP += packets
	case reasonARP:
		c.SpoofedARP += packets
	case reasonDHCP:
		c.DHCPServer += packets
	case reasonRA:
		c.RouterAdvert += packets
	case reasonIngress:
		c.Ingress += packets
	case reasonEgress:
		c.Egress += packets
	case reasonInvalid:
		c.Invalid += packets
	case reasonND:
		c.SpoofedND += packets
	case reasonIPv6Off:
		c.IPv6Off += packets
	}
}

// linkLocal is the EUI-64 IPv6 link-local address the kernel gives an
// interface with mac: instances send neighbour discovery from it.
func linkLocal(mac net.HardwareAddr) netip.Addr {
	var a [16]byte
	a[0], a[1] = 0xfe, 0x80
	a[8], a[9], a[10] = mac[0]^0x02, mac[1], mac[2]
	a[11], a[12] = 0xff, 0xfe
	a[13], a[14], a[15] = mac[3], mac[4], mac[5]
	return netip.AddrFrom16(a)
}
