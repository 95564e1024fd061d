// Package topoview turns nsnet's records (networks, subnets, routers,
// ports, instances, floating IPs, as one caller sees them through the API)
// into the graph of the topology and draws it: a tiered layout as Horizon's
// network topology has (external networks, routers, networks, instances),
// rendered as SVG for the web view, and as Graphviz DOT or a text tree for
// `nsnet graph`. One graph model serves all of them, so that the page and
// the terminal never disagree.
//
// It owns the graph (nodes, edges, tiers, what each node shows), its
// layout, its renderings, and placing a trace's hops on it. It is pure: it
// takes records and returns values, and must not read the store, call the
// API or touch the kernel. Scoping is not its business either: it draws
// exactly the records it is given (the API already left out what the
// caller may not see) and drops edges to objects it was not given.
package topoview

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/nsnet/nsnet/internal/model"
)

// Records are the objects a graph is built from.
type Records struct {
	Networks    []model.Network
	Subnets     []model.Subnet
	Ports       []model.Port
	Routers     []model.Router
	Instances   []model.Instance
	FloatingIPs []model.FloatingIP
	// Traffic is the per-port interface counters, by port id (optional).
	Traffic map[string]Traffic
}

// Traffic is one port's interface counters, as the port sees them.
type Traffic struct {
	RxBytes, RxPackets, TxBytes, TxPackets uint64
}

// Tiers, top to bottom.
const (
	TierExternal = 0 // external networks
	TierRouter   = 1 // routers and floating IPs
	TierNetwork  = 2 // tenant networks
	TierInstance = 3 // instances and DHCP servers
)

// TierNames names the tiers, for renderings.
var TierNames = []string{"external networks", "routers", "networks", "instances"}

// Kinds of nodes.
const (
	KindExternal   = "external_network"
	KindNetwork    = "network"
	KindRouter     = "router"
	KindFloatingIP = "floatingip"
	KindInstance   = "instance"
	KindDHCP       = "dhcp"
	KindPort       = "port"
)

// Kinds of edges.
const (
	// EdgePlug joins a port to the network it is plugged into.
	EdgePlug = "plug"
	// EdgeFloating joins a floating IP to its external network and to the
	// port it translates to.
	EdgeFloating = "floating"
)

// Attr is one attribute of a node, in the order a panel shows them.
type Attr struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// Node is one object of the graph. A port is a node of its own, whose
// Parent is the instance, router or DHCP server that holds it.
type Node struct {
	ID     string `json:"id"` // kind-prefixed: "router:<uuid>"
	Kind   string `json:"kind"`
	Name   string `json:"name"`
	Status string `json:"status"`
	// Reason is why the status is what it is (ERROR's reason).
	Reason string `json:"reason,omitempty"`
	Tier   int    `json:"tier"`
	Parent string `json:"parent,omitempty"`
	// Lines are drawn under the name: subnets' CIDRs, a port's addresses.
	Lines []string `json:"lines,omitempty"`
	Attrs []Attr   `json:"attrs"`
	// Counters are a port's traffic and security-group drops.
	Counters *Counters `json:"counters,omitempty"`
	// Interfaces are the kernel interface names that stand for the node
	// (a port's tap, qr-/qg- or in-instance name; a network's bridge),
	// and Netns its namespace, to place a trace's hops.
	Interfaces []string `json:"interfaces,omitempty"`
	Netns      string   `json:"netns,omitempty"`
}

// Counters are a port's live counters.
type Counters struct {
	Traffic
	// Drops are the security-group and anti-spoofing drops by reason
	// (only the reasons that dropped something).
	Drops map[string]uint64 `json:"drops,omitempty"`
}

// DropTotal sums Drops.
func (c *Counters) DropTotal() uint64 {
	var n uint64
	for _, v := range c.Drops {
		n += v
	}
	return n
}

// Edge joins two nodes.
type Edge struct {
	From string `json:"from"`
	To   string `json:"to"`
	Kind string `json:"kind"`
	// Label is drawn beside the edge: the address the port has there.
	Label string `json:"label,omitempty"`
}

// Graph is the topology as nodes and edges, in a stable order.
type Graph struct {
	Nodes []Node `json:"nodes"`
	Edges []Edge `json:"edges"`
}

// Node returns the node with id, or nil.
func (g *Graph) Node(id string) *Node {
	for i := range g.Nodes {
		if g.Nodes[i].ID == id {
			return &g.Nodes[i]
		}
	}
	return nil
}

// Children are the nodes whose parent is id, in graph order.
func (g *Graph) Children(id string) []*Node {
	var out []*Node
	for i := range g.Nodes {
		if g.Nodes[i].Parent == id {
			out = append(out, &g.Nodes[i])
		}
	}
	return out
}

// NodeID is the graph id of an object of kind with id.
func NodeID(kind, id string) string { return kind + ":" + id }

// dhcpNodeID is one network's DHCP server: all its DHCP ports together
// (one per network in nsnet, but a stale one may linger).
func dhcpNodeID(networkID string) string { return NodeID(KindDHCP, networkID) }

// Build makes the graph of r. Objects that refer to something r does not
// hold (another project's router on a shared external network, a floating
// IP's port in a project the caller cannot see) keep their node, and lose
// the edge.
func Build(r Records) Graph {
	b := builder{r: r, nets: map[string]model.Network{}, subnets: map[string]model.Subnet{},
		routers: map[string]bool{}, instances: map[string]model.Instance{}}
	for _, n := range r.Networks {
		b.nets[n.ID] = n
	}
	for _, s := range r.Subnets {
		b.subnets[s.ID] = s
	}
	for _, rt := range r.Routers {
		b.routers[rt.ID] = true
	}
	for _, in := range r.Instances {
		b.instances[in.ID] = in
	}
	b.networks()
	b.routerNodes()
	b.floatingIPs()
	b.instanceNodes()
	b.dhcpNodes()
	b.ports()
	b.dropDangling()
	return b.g
}

type builder struct {
	r         Records
	g         Graph
	nets      map[string]model.Network
	subnets   map[string]model.Subnet
	routers   map[string]bool
	instances map[string]model.Instance
}

func byName[T any](xs []T, name, id func(T) string) []T {
	out := slices.Clone(xs)
	slices.SortStableFunc(out, func(a, b T) int {
		return cmp.Or(strings.Compare(name(a), name(b)), strings.Compare(id(a), id(b)))
	})
	return out
}

// label is an object's name, or its id's start when it has none.
func label(name, id string) string {
	if name != "" {
		return name
	}
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

func (b *builder) networks() {
	nets := byName(b.r.Networks, func(n model.Network) string { return n.Name }, func(n model.Network) string { return n.ID })
	// External networks first: the graph lists nodes tier by tier.
	slices.SortStableFunc(nets, func(x, y model.Network) int {
		if x.RouterExternal == y.RouterExternal {
			return 0
		}
		if x.RouterExternal {
			return -1
		}
		return 1
	})
	for _, n := range nets {
		kind, tier := KindNetwork, TierNetwork
		if n.RouterExternal {
			kind, tier = KindExternal, TierExternal
		}
		node := Node{ID: NodeID(kind, n.ID), Kind: kind, Name: label(n.Name, n.ID), Status: n.Status,
			Reason: n.StatusReason, Tier: tier, Interfaces: []string{model.BridgeName(n.ID)}}
		node.Attrs = []Attr{{"id", n.ID}, {"project", n.ProjectID}, {"status", n.Status},
			{"admin_state_up", fmt.Sprint(n.AdminStateUp)}, {"shared", fmt.Sprint(n.Shared)},
			{"router:external", fmt.Sprint(n.RouterExternal)}, {"mtu", fmt.Sprint(n.MTU)},
			{"bridge", model.BridgeName(n.ID)}}
		if n.HostGateway {
			node.Attrs = append(node.Attrs, Attr{"nsnet:host_gateway", "true"})
		}
		if n.Uplink != nil {
			node.Attrs = append(node.Attrs, Attr{"nsnet:uplink", *n.Uplink})
		}
		if n.SNATAddress != nil {
			node.Attrs = append(node.Attrs, Attr{"nsnet:snat_address", *n.SNATAddress})
		}
		for _, s := range b.subnetsOf(n.ID) {
			line := s.CIDR
			if s.Name != "" {
				line = s.Name + " " + s.CIDR
			}
			node.Lines = append(node.Lines, line)
			gw := "none"
			if s.GatewayIP != nil {
				gw = *s.GatewayIP
			}
			node.Attrs = append(node.Attrs, Attr{"subnet " + label(s.Name, s.ID),
				fmt.Sprintf("%s gateway %s dhcp %v", s.CIDR, gw, s.EnableDHCP)})
		}
		if n.StatusReason != "" {
			node.Attrs = append(node.Attrs, Attr{"nsnet:status_reason", n.StatusReason})
		}
		b.g.Nodes = append(b.g.Nodes, node)
	}
}

// subnetsOf lists a network's subnets, IPv4 first, then by CIDR.
func (b *builder) subnetsOf(networkID string) []model.Subnet {
	var out []model.Subnet
	for _, s := range b.r.Subnets {
		if s.NetworkID == networkID {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(x, y model.Subnet) int {
		return cmp.Or(cmp.Compare(x.IPVersion, y.IPVersion), strings.Compare(x.CIDR, y.CIDR), strings.Compare(x.ID, y.ID))
	})
	return out
}

func (b *builder) routerNodes() {
	routers := byName(b.r.Routers, func(r model.Router) string { return r.Name }, func(r model.Router) string { return r.ID })
	for _, r := range routers {
		node := Node{ID: NodeID(KindRouter, r.ID), Kind: KindRouter, Name: label(r.Name, r.ID), Status: r.Status,
			Reason: r.StatusReason, Tier: TierRouter}
		node.Attrs = []Attr{{"id", r.ID}, {"project", r.ProjectID}, {"status", r.Status},
			{"admin_state_up", fmt.Sprint(r.AdminStateUp)}}
		if gw := r.ExternalGatewayInfo; gw != nil {
			var ips []string
			for _, ip := range gw.ExternalFixedIPs {
				ips = append(ips, ip.IPAddress)
			}
			node.Attrs = append(node.Attrs, Attr{"external gateway", fmt.Sprintf("%s %s snat %v",
				b.netName(gw.NetworkID), strings.Join(ips, " "), gw.EnableSNAT)})
			if gw.EnableSNAT {
				node.Lines = append(node.Lines, "SNAT")
			}
		}
		for _, rt := range r.Routes {
			node.Attrs = append(node.Attrs, Attr{"route", rt.Destination + " via " + rt.NextHop})
		}
		if r.StatusReason != "" {
			node.Attrs = append(node.Attrs, Attr{"nsnet:status_reason", r.StatusReason})
		}
		b.g.Nodes = append(b.g.Nodes, node)
	}
}

func (b *builder) netName(id string) string {
	if n, ok := b.nets[id]; ok {
		return label(n.Name, n.ID)
	}
	return label("", id)
}

func (b *builder) floatingIPs() {
	fips := slices.Clone(b.r.FloatingIPs)
	slices.SortFunc(fips, func(x, y model.FloatingIP) int {
		return cmp.Or(strings.Compare(x.FloatingIPAddress, y.FloatingIPAddress), strings.Compare(x.ID, y.ID))
	})
	for _, f := range fips {
		id := NodeID(KindFloatingIP, f.ID)
		node := Node{ID: id, Kind: KindFloatingIP, Name: f.FloatingIPAddress, Status: f.Status, Tier: TierRouter}
		node.Attrs = []Attr{{"id", f.ID}, {"project", f.ProjectID}, {"status", f.Status},
			{"floating_ip_address", f.FloatingIPAddress}, {"floating network", b.netName(f.FloatingNetworkID)}}
		if f.FixedIPAddress != nil {
			node.Attrs = append(node.Attrs, Attr{"fixed_ip_address", *f.FixedIPAddress})
			node.Lines = append(node.Lines, "→ "+*f.FixedIPAddress)
		}
		for _, pf := range f.PortForwardings {
			ext, in := pf.ExternalPortRange, pf.InternalPortRange
			if pf.ExternalPort != nil {
				ext = fmt.Sprint(*pf.ExternalPort)
			}
			if pf.InternalPort != nil {
				in = fmt.Sprint(*pf.InternalPort)
			}
			line := fmt.Sprintf("%s %s → %s:%s", pf.Protocol, ext, pf.InternalIPAddress, in)
			node.Lines = append(node.Lines, line)
			node.Attrs = append(node.Attrs, Attr{"port forwarding", line})
		}
		b.g.Nodes = append(b.g.Nodes, node)
		b.g.Edges = append(b.g.Edges, Edge{From: id, To: b.networkNodeID(f.FloatingNetworkID), Kind: EdgeFloating})
		if f.PortID != nil {
			b.g.Edges = append(b.g.Edges, Edge{From: id, To: NodeID(KindPort, *f.PortID), Kind: EdgeFloating})
		}
	}
}

// networkNodeID is the node of a network, external or not.
func (b *builder) networkNodeID(id string) string {
	if n, ok := b.nets[id]; ok && n.RouterExternal {
		return NodeID(KindExternal, id)
	}
	return NodeID(KindNetwork, id)
}

func (b *builder) instanceNodes() {
	insts := byName(b.r.Instances, func(i model.Instance) string { return i.Name }, func(i model.Instance) string { return i.ID })
	for _, in := range insts {
		node := Node{ID: NodeID(KindInstance, in.ID), Kind: KindInstance, Name: label(in.Name, in.ID),
			Status: in.Status, Reason: in.StatusReason, Tier: TierInstance, Netns: in.Netns}
		node.Attrs = []Attr{{"id", in.ID}, {"project", in.ProjectID}, {"status", in.Status}, {"netns", in.Netns}}
		if in.StatusReason != "" {
			node.Attrs = append(node.Attrs, Attr{"status_reason", in.StatusReason})
		}
		b.g.Nodes = append(b.g.Nodes, node)
	}
}

// dhcpNodes draws one DHCP server per network that has a DHCP port.
func (b *builder) dhcpNodes() {
	seen := map[string]bool{}
	for _, n := range b.g.Nodes {
		if n.Kind != KindNetwork && n.Kind != KindExternal {
			continue
		}
		netID := strings.TrimPrefix(strings.TrimPrefix(n.ID, KindNetwork+":"), KindExternal+":")
		for _, p := range b.r.Ports {
			if p.DeviceOwner != model.DeviceOwnerDHCP || p.NetworkID != netID || seen[netID] {
				continue
			}
			seen[netID] = true
			node := Node{ID: dhcpNodeID(netID), Kind: KindDHCP, Name: "dhcp " + n.Name, Status: p.Status,
				Reason: p.StatusReason, Tier: TierInstance}
			node.Attrs = []Attr{{"network", n.Name}, {"status", p.Status}, {"device_id", p.DeviceID}}
			b.g.Nodes = append(b.g.Nodes, node)
		}
	}
}

// owner is the node a port hangs on, or "" when the graph has none.
func (b *builder) owner(p model.Port) string {
	switch {
	case p.DeviceOwner == model.DeviceOwnerDHCP:
		return dhcpNodeID(p.NetworkID)
	case model.IsRouterOwner(p.DeviceOwner):
		if b.routers[p.DeviceID] {
			return NodeID(KindRouter, p.DeviceID)
		}
	case p.DeviceID != "":
		if _, ok := b.instances[p.DeviceID]; ok {
			return NodeID(KindInstance, p.DeviceID)
		}
	}
	return ""
}

func (b *builder) ports() {
	ports := byName(b.r.Ports, func(p model.Port) string { return p.Name }, func(p model.Port) string { return p.ID })
	for _, p := range ports {
		// A floating IP's own port is the floating IP node.
		if p.DeviceOwner == model.DeviceOwnerFloatingIP {
			continue
		}
		parent := b.owner(p)
		var addrs []string
		for _, ip := range p.FixedIPs {
			addrs = append(addrs, ip.IPAddress)
		}
		id := NodeID(KindPort, p.ID)
		tier := TierInstance
		if model.IsRouterOwner(p.DeviceOwner) {
			tier = TierRouter
		}
		node := Node{ID: id, Kind: KindPort, Name: label(p.Name, p.ID), Status: p.Status, Reason: p.StatusReason,
			Tier: tier, Parent: parent, Lines: addrs}
		node.Attrs = []Attr{{"id", p.ID}, {"project", p.ProjectID}, {"status", p.Status},
			{"network", b.netName(p.NetworkID)}, {"mac_address", p.MACAddress},
			{"fixed_ips", strings.Join(addrs, " ")}, {"device_owner", p.DeviceOwner},
			{"port_security_enabled", fmt.Sprint(p.PortSecurityEnabled)},
			{"security_groups", strings.Join(p.SecurityGroups, " ")}}
		switch {
		case p.DeviceOwner == model.DeviceOwnerRouterGateway:
			node.Interfaces = []string{model.TapName(p.ID), model.RouterGatewayName(p.ID)}
		case model.IsRouterOwner(p.DeviceOwner):
			node.Interfaces = []string{model.TapName(p.ID), model.RouterInterfaceName(p.ID)}
		default:
			node.Interfaces = []string{model.TapName(p.ID)}
			if p.InterfaceName != "" {
				node.Interfaces = append(node.Interfaces, p.InterfaceName)
			}
		}
		if in, ok := b.instances[p.DeviceID]; ok {
			node.Netns = in.Netns
		}
		if p.StatusReason != "" {
			node.Attrs = append(node.Attrs, Attr{"nsnet:status_reason", p.StatusReason})
		}
		c := &Counters{}
		if t, ok := b.r.Traffic[p.ID]; ok {
			c.Traffic = t
		}
		if d := p.FirewallDrops; d != nil {
			c.Drops = map[string]uint64{}
			for reason, v := range map[string]uint64{"spoofed_mac": d.SpoofedMAC, "spoofed_ip": d.SpoofedIP,
				"spoofed_arp": d.SpoofedARP, "spoofed_nd": d.SpoofedND, "dhcp_server": d.DHCPServer,
				"router_advertisement": d.RouterAdvert, "ipv6_off": d.IPv6Off, "ingress_denied": d.Ingress, "egress_denied": d.Egress,
				"invalid": d.Invalid} {
				if v > 0 {
					c.Drops[reason] = v
				}
			}
		}
		node.Counters = c
		b.g.Nodes = append(b.g.Nodes, node)
		b.g.Edges = append(b.g.Edges, Edge{From: id, To: b.networkNodeID(p.NetworkID), Kind: EdgePlug,
			Label: strings.Join(addrs, " ")})
	}
}

// dropDangling removes edges to nodes the graph does not have: what the
// records refer to but do not hold (another project's objects).
func (b *builder) dropDangling() {
	have := map[string]bool{}
	for _, n := range b.g.Nodes {
		have[n.ID] = true
	}
	b.g.Edges = slices.DeleteFunc(b.g.Edges, func(e Edge) bool { return !have[e.From] || !have[e.To] })
	for i := range b.g.Nodes {
		if p := b.g.Nodes[i].Parent; p != "" && !have[p] {
			b.g.Nodes[i].Parent = ""
		}
	}
}
