// Package trace follows one real packet through an nsnet topology: it works
// out from the model which interfaces the packet should cross (Plan),
// captures on all of them (package capture), sends one recognisable probe
// from the source namespace, and reports every hop it was seen at, what
// changed between hops (SNAT, DNAT), the reply's way back, and, when the
// probe stopped, where and why as far as the kernel can tell (a route
// lookup, the neighbour table, an ICMP error or RST, nftables trace
// events).
//
// It reads the model, never the store, and changes nothing in the kernel
// but what it removes again before returning: its capture sockets, the
// temporary namespace of an external source, and the nftables table that
// marks the probe for tracing (see nftrace.go). It reads the firewall's
// tables, through package firewall, to name the port whose security
// groups dropped a probe.
package trace

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/nsnet/nsnet/internal/model"
)

// Model is the part of nsnet's model a trace needs, as the API shows it,
// and where the daemon puts things on this host.
type Model struct {
	HostNetns string // the namespace holding the bridges; "" is the root one
	Prefix    string // the daemon's namespace prefix

	Networks        []model.Network
	Subnets         []model.Subnet
	Ports           []model.Port
	Instances       []model.Instance
	Routers         []model.Router
	FloatingIPs     []model.FloatingIP
	PortForwardings map[string][]model.PortForwarding // by floating IP id
	PublishedPorts  []model.PublishedPort             // the host's (host-gateway networks)
	SecurityGroups  []model.SecurityGroup             // to name the groups that drop a probe
}

// Hop is one interface a probe crosses, in the order of the way out.
type Hop struct {
	Netns     string `json:"netns"` // "" is the root namespace
	Interface string `json:"interface"`
	// Kind is what the namespace is to the path: KindSource, KindBridge,
	// KindRouter or KindInstance.
	Kind string `json:"kind"`
	// Node says what the interface belongs to: "instance red", "router
	// edge", "bridge public" (a port of the network's bridge, on the
	// host).
	Node string `json:"node"`
	// Ingress is true when the probe enters the namespace through the
	// interface on its way out (and so leaves through it on the way back).
	Ingress bool `json:"ingress"`
	// Network is the network the interface is plugged into.
	Network string `json:"network,omitempty"`
}

// Kinds of hops.
const (
	KindSource   = "source"   // where the probe starts (an instance or a temporary source)
	KindBridge   = "bridge"   // a port of a network's bridge, on the host
	KindRouter   = "router"   // an interface of a router
	KindInstance = "instance" // the destination instance's interface
	// KindHost is an interface of the host's own stack, routing for a
	// host-gateway network: the network's bridge device, the uplink.
	KindHost = "host"
)

func (h Hop) String() string { return nsLabel(h.Netns) + "/" + h.Interface }

func nsLabel(ns string) string {
	if ns == "" {
		return "(root)"
	}
	return ns
}

// Plan is what the model says a probe will do.
type Plan struct {
	Src, Dst netip.Addr
	Hops     []Hop
	// End says how the model expects the way out to end: EndInstance,
	// EndExternal or EndNoRoute; EndDetail says it for people.
	End       string
	EndDetail string
	// DNAT is the destination the probe is translated to on its way, when
	// a floating IP or port forward applies.
	DNAT netip.Addr
	// NextHop is, for a path that leaves nsnet or finds nobody, the
	// address its last hop hands the probe to.
	NextHop netip.Addr
	// SourceNextHop is where the source sends the probe: DST or its
	// subnet's gateway.
	SourceNextHop netip.Addr
}

// How a planned path ends.
const (
	EndInstance = "instance" // at an instance's interface
	EndExternal = "external" // it leaves nsnet on an external network
	EndNoRoute  = "no-route" // a router of nsnet has no route for it
	EndRouter   = "router"   // at an address of a router
	EndNobody   = "nobody"   // no port of an internal network holds the address
	EndHost     = "host"     // at an address of the host (a host-gateway network's gateway)
)

// Source is where a probe starts: an interface of a namespace with an
// address on a network.
type Source struct {
	Netns, Interface string
	Node             string
	Addr             netip.Addr
	Network          string // id
	// HostEnd is the interface on the network's bridge that the source's
	// frames arrive on.
	HostEnd string
	// Via, when valid, is where the source sends the probe instead of
	// its subnet's gateway: an external source's route to an IPv6 tenant
	// prefix through the router that holds it (see ExternalVia).
	Via netip.Addr
}

// ExternalVia is the address a host on external network sends IPv6
// traffic for dst to, when dst is not on the network itself: the gateway
// address of the router whose gateway port is on network and that routes
// dst to one of its internal subnets. IPv6 is routed, not NATed, so the
// outside reaches tenant prefixes only through such a route, which the
// admin configures upstream (see docs/ROUTERS.md); a trace source plays
// that upstream. The router with the smallest id wins a tie.
func (m *Model) ExternalVia(network string, dst netip.Addr) (netip.Addr, bool) {
	if !dst.Is6() {
		return netip.Addr{}, false
	}
	for i := range m.Subnets {
		if s := &m.Subnets[i]; s.NetworkID == network && prefixOf(s).Contains(dst) {
			return netip.Addr{}, false // on the link: no router needed
		}
	}
	var best *model.Router
	var via netip.Addr
	for i := range m.Routers {
		r := &m.Routers[i]
		gw := m.gatewayPort(r.ID)
		if gw == nil || gw.NetworkID != network {
			continue
		}
		egress, _, ok := m.route(r, dst)
		if !ok || egress.DeviceOwner != model.DeviceOwnerRouterInterface {
			continue
		}
		for _, ip := range gw.FixedIPs {
			if a, err := netip.ParseAddr(ip.IPAddress); err == nil && a.Is6() && (best == nil || r.ID < best.ID) {
				best, via = r, a
				break
			}
		}
	}
	return via, best != nil
}

// InstanceSource picks the port address of instance inst that a packet
// to dst leaves from, of dst's IP version: one on a subnet holding dst, or
// else the first with a gateway.
func (m *Model) InstanceSource(inst model.Instance, dst netip.Addr) (Source, error) {
	var fallback *Source
	for _, p := range m.Ports {
		if p.DeviceID != inst.ID || model.IsRouterOwner(p.DeviceOwner) {
			continue
		}
		for _, ip := range p.FixedIPs {
			addr, err := netip.ParseAddr(ip.IPAddress)
			sub := m.subnet(ip.SubnetID)
			if err != nil || addr.Is4() != dst.Is4() || sub == nil {
				continue
			}
			src := Source{Netns: inst.Netns, Interface: p.InterfaceName, Node: "instance " + inst.Name,
				Addr: addr, Network: p.NetworkID, HostEnd: model.TapName(p.ID)}
			if prefixOf(sub).Contains(dst) {
				return src, nil
			}
			if fallback == nil && sub.GatewayIP != nil && *sub.GatewayIP != "" {
				fallback = &src
			}
		}
	}
	if fallback == nil {
		return Source{}, fmt.Errorf("instance %s has no %s port on a subnet that holds %s or has a gateway", inst.Name, ipVersion(dst), dst)
	}
	return *fallback, nil
}

// maxRouters bounds the routers a path may cross, so that a routing loop
// in the model ends the walk.
const maxRouters = 8

// Plan walks the model from src to dst: across the source's network to
// the port that holds the next hop, through each router it meets (its
// floating IPs and port forwards, then its routes), until an instance, the
// edge of nsnet, or a router without a route. proto and port (the
// destination port of TCP or UDP; 0 for ICMP) select port forwards.
func (m *Model) Plan(src Source, dst netip.Addr, proto uint8, port uint16) (*Plan, error) {
	if src.Addr.Is4() != dst.Is4() {
		return nil, fmt.Errorf("destination %s: the source %s is %s", dst, src.Addr, ipVersion(src.Addr))
	}
	p := &Plan{Src: src.Addr, Dst: dst}
	p.Hops = append(p.Hops,
		Hop{Netns: src.Netns, Interface: src.Interface, Kind: KindSource, Node: src.Node, Network: src.Network},
		Hop{Netns: m.HostNetns, Interface: src.HostEnd, Kind: KindBridge, Node: m.bridgeNode(src.Network), Ingress: true, Network: src.Network})
	network := src.Network
	target := dst // the destination after any DNAT
	nextHop, ok := m.nextHopOnNetwork(network, src.Addr, target)
	if src.Via.IsValid() {
		nextHop, ok = src.Via, true
	}
	if !ok {
		p.End, p.EndDetail = EndNoRoute, fmt.Sprintf("%s has no route to %s: its subnet has no gateway", src.Node, dst)
		return p, nil
	}
	p.SourceNextHop = nextHop
	seen := map[string]bool{}
	for {
		owner := m.portHolding(network, nextHop)
		if owner == nil && m.isHostGateway(network, nextHop) {
			m.viaHost(p, network, target, proto, port)
			return p, nil
		}
		if owner == nil {
			net := m.networkName(network)
			p.NextHop = nextHop
			switch {
			case nextHop == target && !m.isExternal(network):
				p.End, p.EndDetail = EndNobody, fmt.Sprintf("no port on network %s holds %s", net, target)
			case nextHop == target:
				p.End, p.EndDetail = EndExternal, fmt.Sprintf("%s is on network %s, outside nsnet", target, net)
			default:
				p.End, p.EndDetail = EndExternal, fmt.Sprintf("leaves nsnet on network %s through its gateway %s", net, nextHop)
			}
			return p, nil
		}
		p.Hops = append(p.Hops, Hop{Netns: m.HostNetns, Interface: model.TapName(owner.ID), Kind: KindBridge, Node: m.bridgeNode(network), Network: network})
		if !model.IsRouterOwner(owner.DeviceOwner) {
			inst := m.instance(owner.DeviceID)
			if inst == nil {
				return nil, fmt.Errorf("port %s holds %s but is plugged into no instance", owner.ID, nextHop)
			}
			p.Hops = append(p.Hops, Hop{Netns: inst.Netns, Interface: owner.InterfaceName, Kind: KindInstance, Node: "instance " + inst.Name, Ingress: true, Network: network})
			p.End, p.EndDetail = EndInstance, fmt.Sprintf("%s is instance %s", nextHop, inst.Name)
			if nextHop != target {
				p.EndDetail = fmt.Sprintf("instance %s holds the next hop %s but does not route", inst.Name, nextHop)
			}
			return p, nil
		}
		r := m.router(owner.DeviceID)
		if r == nil {
			return nil, fmt.Errorf("port %s belongs to router %s, which does not exist", owner.ID, owner.DeviceID)
		}
		if seen[r.ID] || len(seen) == maxRouters {
			return nil, fmt.Errorf("routing loop: router %s is crossed twice", routerLabel(r))
		}
		seen[r.ID] = true
		ns := model.RouterNetns(m.Prefix, r.ID)
		node := "router " + routerLabel(r)
		p.Hops = append(p.Hops, Hop{Netns: ns, Interface: routerIfName(owner), Kind: KindRouter, Node: node, Ingress: true, Network: network})
		if m.routerHolds(r.ID, target) {
			p.End, p.EndDetail = EndRouter, fmt.Sprintf("%s is an address of router %s", target, routerLabel(r))
			return p, nil
		}
		if fixed, ok := m.dnat(r, target, proto, port); ok {
			target = fixed
			p.DNAT = fixed
		}
		egress, hop, ok := m.route(r, target)
		if !ok {
			p.End, p.EndDetail = EndNoRoute, fmt.Sprintf("router %s has no route to %s", routerLabel(r), target)
			return p, nil
		}
		p.Hops = append(p.Hops,
			Hop{Netns: ns, Interface: routerIfName(egress), Kind: KindRouter, Node: node, Network: egress.NetworkID},
			Hop{Netns: m.HostNetns, Interface: model.TapName(egress.ID), Kind: KindBridge, Node: m.bridgeNode(egress.NetworkID), Ingress: true, Network: egress.NetworkID})
		network, nextHop = egress.NetworkID, hop
	}
}

// nextHopOnNetwork is where a host with address src on network sends a
// packet for dst: dst itself when a subnet of the network holds it (and
// src), else that subnet's gateway.
func (m *Model) nextHopOnNetwork(network string, src, dst netip.Addr) (netip.Addr, bool) {
	var gateway netip.Addr
	for i := range m.Subnets {
		s := &m.Subnets[i]
		if s.NetworkID != network || !prefixOf(s).Contains(src) {
			continue
		}
		if prefixOf(s).Contains(dst) {
			return dst, true
		}
		if s.GatewayIP != nil {
			gateway, _ = netip.ParseAddr(*s.GatewayIP)
		}
	}
	return gateway, gateway.IsValid()
}

// portHolding is the plugged port of network that answers for addr: the
// port with that fixed IP, or the gateway port of the router that holds
// addr as a floating IP.
func (m *Model) portHolding(network string, addr netip.Addr) *model.Port {
	for i := range m.Ports {
		p := &m.Ports[i]
		if p.NetworkID != network || p.DeviceOwner == model.DeviceOwnerFloatingIP || p.DeviceID == "" {
			continue
		}
		for _, ip := range p.FixedIPs {
			if a, err := netip.ParseAddr(ip.IPAddress); err == nil && a == addr {
				return p
			}
		}
	}
	for _, f := range m.FloatingIPs {
		if f.FloatingNetworkID != network || f.FloatingIPAddress != addr.String() {
			continue
		}
		if r := m.fipRouter(f); r != "" {
			return m.gatewayPort(r)
		}
	}
	return nil
}

// fipRouter is the router that answers for floating IP f: its router_id,
// or for one with port forwards and no association, the router whose
// gateway is on its network and that reaches a forward's internal address.
func (m *Model) fipRouter(f model.FloatingIP) string {
	if f.RouterID != nil && *f.RouterID != "" {
		return *f.RouterID
	}
	for _, pf := range m.PortForwardings[f.ID] {
		internal, err := netip.ParseAddr(pf.InternalIPAddress)
		if err != nil {
			continue
		}
		var ids []string
		for i := range m.Routers {
			r := &m.Routers[i]
			if gw := m.gatewayPort(r.ID); gw == nil || gw.NetworkID != f.FloatingNetworkID {
				continue
			}
			if egress, _, ok := m.route(r, internal); ok && egress.DeviceOwner == model.DeviceOwnerRouterInterface {
				ids = append(ids, r.ID)
			}
		}
		if len(ids) > 0 {
			return slices.Min(ids)
		}
	}
	return ""
}

// dnat is the address router r translates dst to: a port forward of one
// of its floating IPs for proto/port, or an associated floating IP. Both
// are IPv4 only, as in Neutron: an IPv6 destination is routed as it is.
func (m *Model) dnat(r *model.Router, dst netip.Addr, proto uint8, port uint16) (netip.Addr, bool) {
	for _, f := range m.FloatingIPs {
		if f.FloatingIPAddress != dst.String() || m.fipRouter(f) != r.ID {
			continue
		}
		for _, pf := range m.PortForwardings[f.ID] {
			if pf.Protocol == protoName(proto) && pf.ExternalPort != nil && uint16(*pf.ExternalPort) == port {
				if a, err := netip.ParseAddr(pf.InternalIPAddress); err == nil {
					return a, true
				}
			}
		}
		if f.FixedIPAddress != nil {
			if a, err := netip.ParseAddr(*f.FixedIPAddress); err == nil {
				return a, true
			}
		}
	}
	return netip.Addr{}, false
}

// route is router r's choice for dst: the port it leaves by and the next
// hop, by longest prefix over its connected subnets, its static routes,
// and the default route via its gateway's subnet of dst's IP version
// (IPv6 is routed, never NATed, through the same gateway port).
func (m *Model) route(r *model.Router, dst netip.Addr) (egress *model.Port, nextHop netip.Addr, ok bool) {
	best := -1
	consider := func(port *model.Port, prefix netip.Prefix, hop netip.Addr) {
		if port != nil && prefix.Contains(dst) && prefix.Bits() > best {
			egress, nextHop, best = port, hop, prefix.Bits()
		}
	}
	var gw *model.Port
	for i := range m.Ports {
		p := &m.Ports[i]
		if p.DeviceID != r.ID || !model.IsRouterOwner(p.DeviceOwner) {
			continue
		}
		if p.DeviceOwner == model.DeviceOwnerRouterGateway {
			gw = p
		}
		for _, ip := range p.FixedIPs {
			if s := m.subnet(ip.SubnetID); s != nil {
				consider(p, prefixOf(s), dst)
			}
		}
	}
	hasDefault := false
	for _, rt := range r.Routes {
		prefix, err1 := netip.ParsePrefix(rt.Destination)
		hop, err2 := netip.ParseAddr(rt.NextHop)
		if err1 != nil || err2 != nil {
			continue
		}
		hasDefault = hasDefault || prefix.Bits() == 0 && prefix.Addr().Is4() == dst.Is4()
		consider(m.routerPortOnLink(r.ID, hop), prefix, hop)
	}
	if gw != nil && !hasDefault {
		for _, ip := range gw.FixedIPs {
			if s := m.subnet(ip.SubnetID); s != nil && s.GatewayIP != nil {
				if hop, err := netip.ParseAddr(*s.GatewayIP); err == nil && hop.Is4() == dst.Is4() {
					consider(gw, netip.PrefixFrom(unspecified(dst), 0), hop)
				}
			}
		}
	}
	return egress, nextHop, best >= 0
}

// routerHolds reports whether addr is a fixed address of a port of router
// id.
func (m *Model) routerHolds(id string, addr netip.Addr) bool {
	for _, p := range m.Ports {
		if p.DeviceID != id || !model.IsRouterOwner(p.DeviceOwner) {
			continue
		}
		for _, ip := range p.FixedIPs {
			if a, err := netip.ParseAddr(ip.IPAddress); err == nil && a == addr {
				return true
			}
		}
	}
	return false
}

// routerPortOnLink is the port of router id whose subnet holds addr.
func (m *Model) routerPortOnLink(id string, addr netip.Addr) *model.Port {
	for i := range m.Ports {
		p := &m.Ports[i]
		if p.DeviceID != id || !model.IsRouterOwner(p.DeviceOwner) {
			continue
		}
		for _, ip := range p.FixedIPs {
			if s := m.subnet(ip.SubnetID); s != nil && prefixOf(s).Contains(addr) {
				return p
			}
		}
	}
	return nil
}

func (m *Model) gatewayPort(routerID string) *model.Port {
	for i := range m.Ports {
		if p := &m.Ports[i]; p.DeviceID == routerID && p.DeviceOwner == model.DeviceOwnerRouterGateway {
			return p
		}
	}
	return nil
}

func (m *Model) subnet(id string) *model.Subnet {
	for i := range m.Subnets {
		if m.Subnets[i].ID == id {
			return &m.Subnets[i]
		}
	}
	return nil
}

func (m *Model) instance(id string) *model.Instance {
	for i := range m.Instances {
		if m.Instances[i].ID == id {
			return &m.Instances[i]
		}
	}
	return nil
}

func (m *Model) router(id string) *model.Router {
	for i := range m.Routers {
		if m.Routers[i].ID == id {
			return &m.Routers[i]
		}
	}
	return nil
}

func (m *Model) networkName(id string) string {
	for _, n := range m.Networks {
		if n.ID == id {
			if n.Name != "" {
				return n.Name
			}
			break
		}
	}
	return id
}

func (m *Model) isExternal(network string) bool {
	for _, n := range m.Networks {
		if n.ID == network {
			return n.RouterExternal
		}
	}
	return false
}

// bridgeNode names the host side of a port: the bridge of its network.
func (m *Model) bridgeNode(network string) string { return "bridge " + m.networkName(network) }

func routerLabel(r *model.Router) string {
	if r.Name != "" {
		return r.Name
	}
	return r.ID
}

func routerIfName(p *model.Port) string {
	if p.DeviceOwner == model.DeviceOwnerRouterGateway {
		return model.RouterGatewayName(p.ID)
	}
	return model.RouterInterfaceName(p.ID)
}

func prefixOf(s *model.Subnet) netip.Prefix {
	p, err := netip.ParsePrefix(s.CIDR)
	if err != nil {
		return netip.Prefix{}
	}
	return p.Masked()
}

func ipVersion(a netip.Addr) string {
	if a.Is4() {
		return "IPv4"
	}
	return "IPv6"
}

// unspecified is 0.0.0.0 or :: as a is IPv4 or IPv6.
func unspecified(a netip.Addr) netip.Addr {
	if a.Is4() {
		return netip.IPv4Unspecified()
	}
	return netip.IPv6Unspecified()
}

func protoName(proto uint8) string {
	switch proto {
	case 6:
		return "tcp"
	case 17:
		return "udp"
	}
	return "icmp"
}

// isHostGateway reports whether addr is the gateway of a subnet of
// host-gateway network: an address of the host, on the network's bridge.
func (m *Model) isHostGateway(network string, addr netip.Addr) bool {
	n := m.networkByID(network)
	return n != nil && n.HostGateway && slices.Contains(m.hostAddrs(network), addr)
}

// hostAddrs are the gateway addresses the host holds on host-gateway
// networks: network's, or every one for "".
func (m *Model) hostAddrs(network string) []netip.Addr {
	var out []netip.Addr
	for i := range m.Subnets {
		s := &m.Subnets[i]
		if n := m.networkByID(s.NetworkID); n == nil || !n.HostGateway || network != "" && s.NetworkID != network || s.GatewayIP == nil {
			continue
		}
		if a, err := netip.ParseAddr(*s.GatewayIP); err == nil {
			out = append(out, a)
		}
	}
	return out
}

func (m *Model) networkByID(id string) *model.Network {
	for i := range m.Networks {
		if m.Networks[i].ID == id {
			return &m.Networks[i]
		}
	}
	return nil
}

// viaHost plans the rest of a path that the host routes, as the gateway
// of host-gateway network from (seeds 000–002): the probe enters the
// host's stack by the network's bridge; a published port of the host
// translates it to an instance's address (the source's own, through the
// bridge again: hairpin); an address on a host-gateway network leaves by
// that network's bridge; anything else leaves by from's uplink, where
// the host masquerades (or SNATs) it.
func (m *Model) viaHost(p *Plan, from string, target netip.Addr, proto uint8, port uint16) {
	const node = "host gateway"
	p.Hops = append(p.Hops, Hop{Netns: m.HostNetns, Interface: model.BridgeName(from), Kind: KindHost, Node: node, Ingress: true, Network: from})
	if slices.Contains(m.hostAddrs(""), target) {
		fixed, ok := m.published(proto, port)
		if !ok {
			p.End, p.EndDetail = EndHost, fmt.Sprintf("%s is an address of the host, the gateway of network %s", target, m.networkName(from))
			return
		}
		target, p.DNAT = fixed, fixed
	}
	for i := range m.Subnets {
		s := &m.Subnets[i]
		if n := m.networkByID(s.NetworkID); n == nil || !n.HostGateway || !prefixOf(s).Contains(target) {
			continue
		}
		out := s.NetworkID
		p.Hops = append(p.Hops, Hop{Netns: m.HostNetns, Interface: model.BridgeName(out), Kind: KindHost, Node: node, Network: out})
		owner := m.portHolding(out, target)
		if owner == nil || model.IsRouterOwner(owner.DeviceOwner) || m.instance(owner.DeviceID) == nil {
			p.NextHop = target
			p.End, p.EndDetail = EndNobody, fmt.Sprintf("no instance port on network %s holds %s", m.networkName(out), target)
			return
		}
		inst := m.instance(owner.DeviceID)
		p.Hops = append(p.Hops,
			Hop{Netns: m.HostNetns, Interface: model.TapName(owner.ID), Kind: KindBridge, Node: m.bridgeNode(out), Network: out},
			Hop{Netns: inst.Netns, Interface: owner.InterfaceName, Kind: KindInstance, Node: "instance " + inst.Name, Ingress: true, Network: out})
		p.End, p.EndDetail = EndInstance, fmt.Sprintf("%s is instance %s", target, inst.Name)
		return
	}
	p.NextHop = target
	n := m.networkByID(from)
	if n.Uplink == nil || *n.Uplink == "" {
		p.End, p.EndDetail = EndExternal, fmt.Sprintf("the host routes it on by its own routes (network %s names no uplink)", m.networkName(from))
		return
	}
	p.Hops = append(p.Hops, Hop{Netns: m.HostNetns, Interface: *n.Uplink, Kind: KindHost, Node: "host uplink", Network: from})
	how := "masqueraded to its address"
	if n.SNATAddress != nil && *n.SNATAddress != "" {
		how = "translated to " + *n.SNATAddress
	}
	p.End, p.EndDetail = EndExternal, fmt.Sprintf("leaves nsnet by the host's uplink %s, %s", *n.Uplink, how)
}

// published is the instance address a published port of the host sends
// proto/port to.
func (m *Model) published(proto uint8, port uint16) (netip.Addr, bool) {
	for _, pp := range m.PublishedPorts {
		if pp.Protocol != protoName(proto) || port == 0 {
			continue
		}
		lo, hi := 0, -1
		if pp.HostPort != nil {
			lo, hi = *pp.HostPort, *pp.HostPort
		} else if a, b, ok := strings.Cut(pp.HostPortRange, ":"); ok {
			lo, _ = strconv.Atoi(a)
			hi, _ = strconv.Atoi(b)
		}
		if int(port) < lo || int(port) > hi {
			continue
		}
		if a, err := netip.ParseAddr(pp.InternalIPAddress); err == nil {
			return a, true
		}
	}
	return netip.Addr{}, false
}
