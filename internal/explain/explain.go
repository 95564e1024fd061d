package explain

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"

	"github.com/nsnet/nsnet/internal/client"
	"github.com/nsnet/nsnet/internal/dataplane"
	"github.com/nsnet/nsnet/internal/firewall"
	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/netns"
)

// Explainer explains the objects of one nsnet daemon on this host.
type Explainer struct {
	c *client.Client
	// hostNetns and prefix are the daemon's: where its bridges are, and
	// how its namespaces are named.
	hostNetns, prefix string
}

// New asks the daemon behind c where it builds things.
func New(ctx context.Context, c *client.Client) (*Explainer, error) {
	raw, err := c.Status(ctx)
	if err != nil {
		return nil, err
	}
	var st struct {
		Daemon struct {
			HostNetns   string `json:"host_netns"`
			NetnsPrefix string `json:"netns_prefix"`
		} `json:"daemon"`
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		return nil, fmt.Errorf("decode daemon status: %w", err)
	}
	return &Explainer{c: c, hostNetns: st.Daemon.HostNetns, prefix: st.Daemon.NetnsPrefix}, nil
}

// names is what the store says, to name what the kernel holds.
type names struct {
	networks  map[string]model.Network
	subnets   map[string]model.Subnet
	ports     map[string]model.Port
	routers   map[string]model.Router
	instances map[string]model.Instance
	floating  map[string]model.FloatingIP // by address
	groups    map[string]model.SecurityGroup
}

func (x *Explainer) names(ctx context.Context) (*names, error) {
	n := &names{floating: map[string]model.FloatingIP{}}
	var err error
	if n.networks, err = byID(ctx, x.c, client.Networks, func(v model.Network) string { return v.ID }); err != nil {
		return nil, err
	}
	if n.subnets, err = byID(ctx, x.c, client.Subnets, func(v model.Subnet) string { return v.ID }); err != nil {
		return nil, err
	}
	if n.ports, err = byID(ctx, x.c, client.Ports, func(v model.Port) string { return v.ID }); err != nil {
		return nil, err
	}
	if n.routers, err = byID(ctx, x.c, client.Routers, func(v model.Router) string { return v.ID }); err != nil {
		return nil, err
	}
	if n.instances, err = byID(ctx, x.c, client.Instances, func(v model.Instance) string { return v.ID }); err != nil {
		return nil, err
	}
	if n.floating, err = byID(ctx, x.c, client.FloatingIPs, func(v model.FloatingIP) string { return v.FloatingIPAddress }); err != nil {
		return nil, err
	}
	if n.groups, err = byID(ctx, x.c, client.SecurityGroups, func(v model.SecurityGroup) string { return v.ID }); err != nil {
		return nil, err
	}
	return n, nil
}

func byID[T any](ctx context.Context, c *client.Client, col client.Collection, key func(T) string) (map[string]T, error) {
	list, err := client.List[T](ctx, c, col, url.Values{})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", col, err)
	}
	m := make(map[string]T, len(list))
	for _, v := range list {
		m[key(v)] = v
	}
	return m, nil
}

func (n *names) network(id string) string {
	if nw, ok := n.networks[id]; ok && nw.Name != "" {
		return nw.Name
	}
	return id
}

func (n *names) subnetsOf(p model.Port) string {
	var s []string
	for _, ip := range p.FixedIPs {
		sn := n.subnets[ip.SubnetID]
		s = append(s, fmt.Sprintf("%s in %s (%s)", ip.IPAddress, cmp.Or(sn.Name, ip.SubnetID), sn.CIDR))
	}
	return strings.Join(s, ", ")
}

// build collects the steps of one explanation.
type build struct {
	names   *names
	host    *namespace
	steps   []Step
	bridges map[string]bool // networks whose bridge has its step
	spaces  map[string]bool // namespaces that have theirs
}

func (x *Explainer) start(ctx context.Context) (*build, error) {
	n, err := x.names(ctx)
	if err != nil {
		return nil, err
	}
	host, err := readNamespace(x.hostNetns)
	if err != nil {
		return nil, err
	}
	b := &build{names: n, host: host, bridges: map[string]bool{}, spaces: map[string]bool{}}
	if x.hostNetns != "" {
		b.add(Step{Object: "namespace " + x.hostNetns,
			Comment:  "the host nsnet works in: bridges and the host ends of veth pairs live here",
			Commands: b.namespaceCommands(host)})
	}
	return b, nil
}

func (b *build) add(s Step) { b.steps = append(b.steps, s) }

func (b *build) explanation(kind, name, id string) Explanation {
	return Explanation{Kind: kind, Name: name, ID: id, Steps: b.steps}
}

// namespaceCommands create ns and give its lo what nsnet gave it.
func (b *build) namespaceCommands(ns *namespace) []string {
	cmds := []string{shellJoin([]string{"ip", "netns", "add", ns.name})}
	if lo, ok := ns.byName["lo"]; ok && (isUp(lo) || lo.Attrs().Alias != "") {
		cmds = append(cmds, ip(ns.name, linkSettings(ns, lo, false)...))
	}
	return cmds
}

// open reads the namespace of an object, which must exist.
func (b *build) open(name, what string) (*namespace, error) {
	if !netns.Exists(name) {
		return nil, fmt.Errorf("%s: namespace %s: %w", what, name, errNoNamespace)
	}
	return readNamespace(name)
}

// bridge adds the step of network id's bridge, once.
func (b *build) bridge(networkID string) error {
	if b.bridges[networkID] {
		return nil
	}
	b.bridges[networkID] = true
	br := b.host.byAlias(dataplane.NetworkAlias(networkID))
	if br == nil {
		return fmt.Errorf("network %s has no bridge in %s", b.names.network(networkID), nsLabel(b.host.name))
	}
	var cidrs []string
	for _, sn := range b.names.subnets {
		if sn.NetworkID == networkID {
			cidrs = append(cidrs, sn.CIDR)
		}
	}
	slices.Sort(cidrs)
	name := br.Attrs().Name
	cmds := []string{ip(b.host.name, "link", "add", name, "type", br.Type())}
	// nsnet turns IPv6 off on its bridges (the host must not take
	// addresses from tenants' router advertisements).
	off, err := noIPv6(b.host.name, name)
	if err != nil {
		return err
	}
	cmds = append(cmds, off...)
	cmds = append(cmds, ip(b.host.name, linkSettings(b.host, br, true)...))
	cmds = append(cmds, addrCommands(b.host, br, nil)...)
	b.add(Step{Object: "network " + b.names.network(networkID),
		Comment:  fmt.Sprintf("bridge %s is its L2 segment (%s); ports plug into it", name, strings.Join(cidrs, ", ")),
		Commands: cmds})
	vx, err := vxlanCommands(b.host, networkID)
	if err != nil || len(vx) == 0 {
		return err
	}
	b.add(Step{Object: "network " + b.names.network(networkID),
		Comment:  "its VXLAN device joins the bridge to the other hosts that have the network: learning off, remote ports' MACs and flooding by static entries, ARP/ND answered by the device's proxy (see docs/OVERLAY.md)",
		Commands: vx})
	return nil
}

// noIPv6 is the command that turns IPv6 off on the link called name in
// namespace ns if it is off (disable_ipv6), none if it is on. It goes
// before the command that brings the link up, where nsnet writes it: a
// link that never had IPv6 on never got a link-local address or routes.
func noIPv6(ns, name string) ([]string, error) {
	key := "net.ipv6.conf." + name + ".disable_ipv6"
	values, err := readSysctls(ns, []string{key})
	if err != nil || values[key] != "1" {
		return nil, err
	}
	return []string{inNamespace(ns, "sysctl", "-qw", key+"=1")}, nil
}

// portLinks are the links of ns that are nsnet ports, in index order.
func portLinks(ns *namespace) (ports []netlink.Link, foreign []netlink.Link) {
	for _, l := range ns.links {
		if l.Attrs().Name == "lo" {
			continue
		}
		if kind, _, ok := dataplane.ParseAlias(l.Attrs().Alias); ok && kind == "port" && l.Type() == "veth" {
			ports = append(ports, l)
		} else {
			foreign = append(foreign, l)
		}
	}
	return ports, foreign
}

func portID(l netlink.Link) string {
	_, id, _ := dataplane.ParseAlias(l.Attrs().Alias)
	return id
}

// bridgesOf adds the bridge steps of the networks ns's ports are on.
func (b *build) bridgesOf(ns *namespace) error {
	ports, _ := portLinks(ns)
	for _, l := range ports {
		p, ok := b.names.ports[portID(l)]
		if !ok {
			return fmt.Errorf("link %s in %s belongs to port %s, which the store does not have", l.Attrs().Name, ns.name, portID(l))
		}
		if err := b.bridge(p.NetworkID); err != nil {
			return err
		}
	}
	return nil
}

// space adds the step creating ns, once, and reports whether it did.
func (b *build) space(ns *namespace, object, comment string) bool {
	if b.spaces[ns.name] {
		return false
	}
	b.spaces[ns.name] = true
	b.add(Step{Object: object, Comment: comment, Commands: b.namespaceCommands(ns)})
	return true
}

// quietDefaults adds the step giving instance namespace ns the IPv6
// defaults the previous nsnet gave it at its creation
// (dataplane.LegacyInstanceSysctls), if it has them (one made before or
// since has the kernel's): before any link is made in it, as they are the
// links' defaults.
func (b *build) quietDefaults(ns *namespace) error {
	keys := make([]string, len(dataplane.LegacyInstanceSysctls))
	for i, s := range dataplane.LegacyInstanceSysctls {
		keys[i] = s.Key
	}
	values, err := readSysctls(ns.name, keys)
	if err != nil {
		return err
	}
	var cmds []string
	for _, s := range dataplane.LegacyInstanceSysctls {
		if values[s.Key] != s.Value {
			return nil
		}
		cmds = append(cmds, inNamespace(ns.name, "sysctl", "-qw", s.Key+"="+s.Value))
	}
	b.add(Step{Object: "sysctls of " + ns.name,
		Comment:  "the IPv6 defaults of the links made in it, as an older nsnet made it: no router solicitations, no duplicate address detection (a port on a network with IPv6 gets the kernel's back)",
		Commands: cmds})
	return nil
}

// linkIPv6Defaults are the commands giving link l of ns the IPv6 sysctls
// of dataplane.IPv6PortSysctls where they differ from ns's defaults: an
// instance's port on a network with IPv6 in a namespace an older nsnet
// made quiet (quietDefaults), which solicits router advertisements and
// checks its addresses as on any host.
func linkIPv6Defaults(ns *namespace, l netlink.Link) ([]string, error) {
	var keys []string
	for _, s := range dataplane.IPv6PortSysctls {
		keys = append(keys, "net.ipv6.conf.default."+s.Key, "net.ipv6.conf."+l.Attrs().Name+"."+s.Key)
	}
	values, err := readSysctls(ns.name, keys)
	if err != nil {
		return nil, err
	}
	var cmds []string
	for i := 0; i < len(keys); i += 2 {
		if v := values[keys[i+1]]; v != values[keys[i]] {
			cmds = append(cmds, inNamespace(ns.name, "sysctl", "-qw", keys[i+1]+"="+v))
		}
	}
	return cmds, nil
}

// port adds the step of the veth pair whose inside end is l, in ns,
// with the addresses keep accepts (all with a nil keep).
func (b *build) port(ns *namespace, l netlink.Link, comment string, keep func(netlink.Addr) bool) error {
	id := portID(l)
	tap := b.host.byAlias(l.Attrs().Alias)
	if tap == nil || tap.Type() != "veth" {
		return fmt.Errorf("port %s: %s has no host end in %s", id, l.Attrs().Name, nsLabel(b.host.name))
	}
	// With the ends' queue counts: nsnet asks for one each way (an older
	// nsnet's pairs have the kernel's one per possible CPU).
	add := append([]string{"link", "add", "name", tap.Attrs().Name}, queues(tap)...)
	add = append(add, "type", "veth", "peer", "name", l.Attrs().Name)
	add = append(add, queues(l)...)
	add = append(add, "netns", ns.name)
	cmds := []string{ip(b.host.name, add...)}
	// nsnet turns IPv6 off on the host end, a bridge port never addressed
	// (one made by an older nsnet has it on until the next full pass).
	off, err := noIPv6(b.host.name, tap.Attrs().Name)
	if err != nil {
		return err
	}
	cmds = append(cmds, off...)
	cmds = append(cmds, ip(b.host.name, linkSettings(b.host, tap, true)...))
	// Before the link comes up, as nsnet sets them.
	v6, err := linkIPv6Defaults(ns, l)
	if err != nil {
		return err
	}
	cmds = append(cmds, v6...)
	cmds = append(cmds, ip(ns.name, linkSettings(ns, l, true)...))
	if b.host.hairpin[tap.Attrs().Index] {
		// A host-gateway network's port: its instance reaches its own
		// published port through the host.
		cmds = append(cmds, ip(b.host.name, "link", "set", tap.Attrs().Name, "type", "bridge_slave", "hairpin", "on"))
	}
	cmds = append(cmds, addrCommands(ns, l, keep)...)
	if dyn := dynamicAddrs(ns, l); len(dyn) > 0 || hasIPv6(b.names.ports[id]) && !isRouterPort(b.names.ports[id]) {
		// What makes the kernel configure IPv6 by itself: router
		// advertisements (SLAAC, and the default route via the
		// router's link-local address).
		keys := []string{"net.ipv6.conf." + l.Attrs().Name + ".accept_ra", "net.ipv6.conf." + l.Attrs().Name + ".autoconf"}
		values, err := readSysctls(ns.name, keys)
		if err != nil {
			return err
		}
		for _, k := range keys {
			cmds = append(cmds, inNamespace(ns.name, "sysctl", "-qw", k+"="+values[k]))
		}
		if len(dyn) > 0 {
			comment += fmt.Sprintf("; %s from router advertisements or DHCPv6, not a command: the kernel configures it as these sysctls allow", strings.Join(dyn, ", "))
		}
	}
	b.add(Step{Object: "port " + cmp.Or(b.names.ports[id].Name, id), Comment: comment, Commands: cmds})
	return nil
}

// queues is the ip link arguments of l's transmit and receive queue
// counts, as the kernel has them (none when it did not say).
func queues(l netlink.Link) []string {
	var args []string
	if n := l.Attrs().NumTxQueues; n > 0 {
		args = append(args, "numtxqueues", strconv.Itoa(n))
	}
	if n := l.Attrs().NumRxQueues; n > 0 {
		args = append(args, "numrxqueues", strconv.Itoa(n))
	}
	return args
}

// hasIPv6 reports whether p has an IPv6 fixed address.
func hasIPv6(p model.Port) bool {
	for _, ip := range p.FixedIPs {
		if a, err := netip.ParseAddr(ip.IPAddress); err == nil && a.Is6() {
			return true
		}
	}
	return false
}

func isRouterPort(p model.Port) bool { return model.IsRouterOwner(p.DeviceOwner) }

// foreign notes links nsnet did not make, which the explanation leaves out.
func (b *build) foreign(ns *namespace, links []netlink.Link) {
	for _, l := range links {
		b.add(Step{Object: "link " + l.Attrs().Name, Comment: fmt.Sprintf("a %s in %s that is not nsnet's: left out", l.Type(), ns.name), Commands: []string{}})
	}
}

// routes adds the step of ns's routes that keep accepts.
func (b *build) routes(ns *namespace, comment string, keep func(netlink.Route) bool) {
	var cmds []string
	for _, r := range ns.routes {
		if keep == nil || keep(r) {
			cmds = append(cmds, routeCommand(ns, r))
		}
	}
	if len(cmds) > 0 {
		b.add(Step{Object: "routes of " + ns.name, Comment: comment, Commands: cmds})
	}
}

// sysctls adds the step setting keys in ns to their live values.
func (b *build) sysctls(ns *namespace, keys []string, comment string) error {
	values, err := readSysctls(ns.name, keys)
	if err != nil {
		return err
	}
	var cmds []string
	for _, k := range keys {
		cmds = append(cmds, inNamespace(ns.name, "sysctl", "-qw", k+"="+values[k]))
	}
	b.add(Step{Object: "sysctls of " + ns.name, Comment: comment, Commands: cmds})
	return nil
}

// table adds the step loading ns's nft table, if it has one.
func (b *build) table(ns *namespace, comment string) error {
	script, err := readTable(ns.name)
	if err != nil || script == "" {
		return err
	}
	b.add(Step{Object: "nft table inet nsnet of " + ns.name, Comment: comment, Commands: []string{nftCommand(ns.name, script)}})
	return nil
}

// Router explains router ref (name or id): its namespace, sysctls, qr-
// and qg- ports with the bridges they plug into, floating IP addresses,
// routes and NAT table.
func (x *Explainer) Router(ctx context.Context, ref string) (Explanation, error) {
	r, err := client.Find[model.Router](ctx, x.c, client.Routers, ref)
	if err != nil {
		return Explanation{}, err
	}
	b, err := x.start(ctx)
	if err != nil {
		return Explanation{}, err
	}
	ns, err := b.open(model.RouterNetns(x.prefix, r.ID), "router "+r.Name)
	if err != nil {
		return Explanation{}, err
	}
	if err := b.bridgesOf(ns); err != nil {
		return Explanation{}, err
	}
	b.space(ns, "router "+r.Name, "its namespace, qrouter-<id>: a network stack of its own that routes between its ports")
	keys := make([]string, len(dataplane.RouterSysctls))
	for i, s := range dataplane.RouterSysctls {
		keys[i] = s.Key
	}
	ports, foreign := portLinks(ns)
	comment := "it forwards; strict reverse-path filtering; no ICMP redirects (hairpin)"
	if v6 := "net.ipv6.conf.all.forwarding"; routesIPv6(b.names, ports) && !slices.Contains(keys, v6) {
		keys = append(keys, v6)
		comment += "; it forwards IPv6 (routed, never NATed)"
	}
	if err := b.sysctls(ns, keys, comment); err != nil {
		return Explanation{}, err
	}
	var floating []netlink.Addr
	var gateway netlink.Link
	for _, l := range ports {
		p := b.names.ports[portID(l)]
		fixed := map[string]bool{}
		for _, ip := range p.FixedIPs {
			fixed[ip.IPAddress] = true
		}
		comment := fmt.Sprintf("%s, router %s's interface: %s, the subnet's gateway", l.Attrs().Name, r.Name, b.names.subnetsOf(p))
		keep := func(netlink.Addr) bool { return true }
		if p.DeviceOwner == model.DeviceOwnerRouterGateway {
			gateway = l
			comment = fmt.Sprintf("%s, router %s's gateway on external network %s: %s", l.Attrs().Name, r.Name, b.names.network(p.NetworkID), b.names.subnetsOf(p))
			keep = func(a netlink.Addr) bool {
				if !fixed[a.IP.String()] {
					floating = append(floating, a)
					return false
				}
				return true
			}
		}
		if err := b.port(ns, l, comment, keep); err != nil {
			return Explanation{}, err
		}
	}
	for _, a := range floating {
		comment := "an address on the gateway that no floating IP of the store holds"
		if f, ok := b.names.floating[a.IP.String()]; ok {
			comment = "not associated: answered on the gateway for its port forwards, in the nft maps below"
			if f.FixedIPAddress != nil {
				comment = fmt.Sprintf("translated to %s (port %s) by the nft maps below; answered on the gateway", *f.FixedIPAddress, b.portName(f.PortID))
			}
		}
		b.add(Step{Object: "floating IP " + a.IP.String(), Comment: comment,
			Commands: []string{addrCommand(ns.name, gateway.Attrs().Name, a)}})
	}
	b.foreign(ns, foreign)
	b.routes(ns, "the default route through the external subnet's gateway, and the router's static routes", nil)
	if err := b.table(ns, "default SNAT, floating IPs, port forwards and hairpin: fixed rules, and one map element per address"); err != nil {
		return Explanation{}, err
	}
	return b.explanation("router", r.Name, r.ID), nil
}

// routesIPv6 reports whether any of a router's ports has an IPv6 address.
func routesIPv6(n *names, ports []netlink.Link) bool {
	for _, l := range ports {
		if hasIPv6(n.ports[portID(l)]) {
			return true
		}
	}
	return false
}

func (b *build) portName(id *string) string {
	if id == nil {
		return ""
	}
	return cmp.Or(b.names.ports[*id].Name, *id)
}

// Instance explains instance ref: its namespace, its ports with the
// bridges they plug into, its routes, and the host's firewall tables
// that hold its ports' security groups.
func (x *Explainer) Instance(ctx context.Context, ref string) (Explanation, error) {
	inst, err := client.Find[model.Instance](ctx, x.c, client.Instances, ref)
	if err != nil {
		return Explanation{}, err
	}
	b, err := x.start(ctx)
	if err != nil {
		return Explanation{}, err
	}
	ns, err := b.open(inst.Netns, "instance "+inst.Name)
	if err != nil {
		return Explanation{}, err
	}
	if err := b.bridgesOf(ns); err != nil {
		return Explanation{}, err
	}
	if err := b.instance(ns, inst, nil); err != nil {
		return Explanation{}, err
	}
	var groups []string
	for _, p := range b.names.ports {
		if p.DeviceID == inst.ID && p.PortSecurityEnabled {
			for _, g := range p.SecurityGroups {
				if !slices.Contains(groups, g) {
					groups = append(groups, g)
				}
			}
		}
	}
	if err := b.securityGroups(groups); err != nil {
		return Explanation{}, err
	}
	return b.explanation("instance", inst.Name, inst.ID), nil
}

// instance adds the steps of inst, in ns: its namespace, its ports (those
// only keepPort accepts, all with nil) and their routes, and its nft
// table if it has one.
func (b *build) instance(ns *namespace, inst model.Instance, keepPort func(netlink.Link) bool) error {
	if b.space(ns, "instance "+inst.Name, "its namespace: the stand-in for a VM") {
		if err := b.quietDefaults(ns); err != nil {
			return err
		}
	}
	ports, foreign := portLinks(ns)
	devs := map[int]bool{}
	for _, l := range ports {
		if keepPort != nil && !keepPort(l) {
			continue
		}
		devs[l.Attrs().Index] = true
		p := b.names.ports[portID(l)]
		comment := fmt.Sprintf("%s of instance %s on network %s: %s", l.Attrs().Name, inst.Name, b.names.network(p.NetworkID), b.names.subnetsOf(p))
		if err := b.port(ns, l, comment, nil); err != nil {
			return err
		}
	}
	if keepPort == nil {
		b.foreign(ns, foreign)
	}
	b.routes(ns, "routes of its subnets' gateways and host routes", func(r netlink.Route) bool { return devs[r.LinkIndex] })
	if keepPort == nil {
		return b.table(ns, "its NAT table")
	}
	return nil
}

// Network explains network ref: its bridge, and every instance port on
// it with the instance's namespace and the port's routes; its DHCP
// namespace; for a host-gateway network the host's forwarding, uplink and
// NAT table (masquerade or SNAT, published ports); and the security
// groups of its ports. Router ports on it are named, with the command
// that explains them.
func (x *Explainer) Network(ctx context.Context, ref string) (Explanation, error) {
	nw, err := client.Find[model.Network](ctx, x.c, client.Networks, ref)
	if err != nil {
		return Explanation{}, err
	}
	b, err := x.start(ctx)
	if err != nil {
		return Explanation{}, err
	}
	if err := b.bridge(nw.ID); err != nil {
		return Explanation{}, err
	}
	if err := b.hostGateway(nw); err != nil {
		return Explanation{}, err
	}
	br := b.host.byAlias(dataplane.NetworkAlias(nw.ID))
	var groups []string
	for _, tap := range b.host.links {
		if tap.Attrs().MasterIndex != br.Attrs().Index {
			continue
		}
		p, ok := b.names.ports[portID(tap)]
		if !ok {
			comment := "plugged into the bridge, and no port of nsnet's: left out"
			if nw.Uplink != nil && tap.Attrs().Name == *nw.Uplink {
				comment = fmt.Sprintf("the network's uplink: the host's own interface, which nsnet plugs into the bridge and never creates or addresses (%s)",
					ip(b.host.name, "link", "set", tap.Attrs().Name, "master", br.Attrs().Name))
			}
			b.add(Step{Object: "link " + tap.Attrs().Name, Comment: comment, Commands: []string{}})
			continue
		}
		if p.PortSecurityEnabled {
			for _, g := range p.SecurityGroups {
				if !slices.Contains(groups, g) {
					groups = append(groups, g)
				}
			}
		}
		switch {
		case p.DeviceOwner == model.DeviceOwnerDHCP:
			if err := b.dhcp(model.DHCPNetns(x.prefix, nw.ID), nw, tap); err != nil {
				return Explanation{}, err
			}
		case p.DeviceOwner == model.DeviceOwnerRouterInterface || p.DeviceOwner == model.DeviceOwnerRouterGateway:
			r := b.names.routers[p.DeviceID]
			b.add(Step{Object: "port " + cmp.Or(p.Name, p.ID),
				Comment:  fmt.Sprintf("%s plugs router %s in here: see nsnet explain router %s", tap.Attrs().Name, cmp.Or(r.Name, p.DeviceID), cmp.Or(r.Name, p.DeviceID)),
				Commands: []string{}})
		default:
			inst, ok := b.names.instances[p.DeviceID]
			if !ok {
				b.add(Step{Object: "port " + cmp.Or(p.Name, p.ID),
					Comment: fmt.Sprintf("%s is plugged in for device %q (%s), which nsnet does not explain", tap.Attrs().Name, p.DeviceID, p.DeviceOwner), Commands: []string{}})
				continue
			}
			ns, err := b.open(inst.Netns, "instance "+inst.Name)
			if err != nil {
				return Explanation{}, err
			}
			alias := tap.Attrs().Alias
			if err := b.instance(ns, inst, func(l netlink.Link) bool { return l.Attrs().Alias == alias }); err != nil {
				return Explanation{}, err
			}
		}
	}
	if err := b.securityGroups(groups); err != nil {
		return Explanation{}, err
	}
	return b.explanation("network", nw.Name, nw.ID), nil
}

// hostGateway adds what makes the host the gateway of a host-gateway
// network (seeds 000–002): forwarding, the uplink the subnets leave by,
// and the host's NAT table (masquerade or SNAT, published ports). The
// gateway address itself is on the bridge, in the bridge's step.
func (b *build) hostGateway(nw model.Network) error {
	if !nw.HostGateway {
		return nil
	}
	keys := make([]string, len(dataplane.HostNATSysctls))
	for i, s := range dataplane.HostNATSysctls {
		keys[i] = s.Key
	}
	if err := b.sysctls(b.host, keys, "the host is the gateway of network "+cmp.Or(nw.Name, nw.ID)+": it forwards"); err != nil {
		return err
	}
	if nw.Uplink != nil && *nw.Uplink != "" {
		how := "masqueraded to its address"
		if nw.SNATAddress != nil && *nw.SNATAddress != "" {
			how = "translated to " + *nw.SNATAddress
		}
		b.add(Step{Object: "uplink " + *nw.Uplink,
			Comment:  fmt.Sprintf("the host's own interface, not nsnet's: the subnets' traffic leaves by it, %s (the table below); its address and the host's default route stay the admin's", how),
			Commands: []string{}})
	}
	return b.table(b.host, "the host's NAT: masquerade or SNAT of host-gateway subnets out of their uplinks, published ports (DNAT of the host's ports), hairpin; shared by every host-gateway network of this host")
}

// dhcp adds the network's qdhcp namespace and its port: the DHCP and DNS
// servers that listen there are nsnet's own, not commands.
func (b *build) dhcp(name string, nw model.Network, tap netlink.Link) error {
	ns, err := b.open(name, "DHCP of network "+cmp.Or(nw.Name, nw.ID))
	if err != nil {
		return err
	}
	b.space(ns, "DHCP of network "+cmp.Or(nw.Name, nw.ID),
		"its namespace, qdhcp-<network id>: the daemon itself serves DHCP (static leases) and DNS here, and metadata at 169.254.169.254; those servers are nsnet's process, not commands")
	alias := tap.Attrs().Alias
	ports, _ := portLinks(ns)
	devs := map[int]bool{}
	for _, l := range ports {
		if l.Attrs().Alias != alias {
			continue
		}
		devs[l.Attrs().Index] = true
		p := b.names.ports[portID(l)]
		if err := b.port(ns, l, fmt.Sprintf("%s, the DHCP port: %s", l.Attrs().Name, b.names.subnetsOf(p)), nil); err != nil {
			return err
		}
	}
	b.routes(ns, "routes of the DHCP namespace", func(r netlink.Route) bool { return devs[r.LinkIndex] })
	return b.table(ns, "its NAT table")
}

// securityGroups adds the host's firewall tables, which implement the
// security groups of the network's ports: anti-spoofing per port in
// bridge nsnet_fw, the groups' stateful rules as set elements in inet
// nsnet_fw. The tables are the host's, shared by the ports of every
// network there, so the step rebuilds them whole, naming this network's
// groups; their elements are keyed by tap interface and port tag.
func (b *build) securityGroups(ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	var names []string
	for _, id := range ids {
		names = append(names, cmp.Or(b.names.groups[id].Name, id))
	}
	slices.Sort(names)
	// The caller's view: the taps of the ports and the bridges of the
	// networks the API shows it (the web view explains as its caller;
	// the tables hold every project's ports).
	taps, bridges := map[string]bool{}, map[string]bool{}
	for id := range b.names.ports {
		taps[model.TapName(id)] = true
	}
	for id := range b.names.networks {
		if br := b.host.byAlias(dataplane.NetworkAlias(id)); br != nil {
			bridges[br.Attrs().Name] = true
		}
	}
	script, err := readFirewall(b.host.name, firewall.Visible{
		Port:   func(ifname string) bool { return taps[ifname] },
		Bridge: func(name string) bool { return bridges[name] },
	})
	if err != nil || script == "" {
		return err
	}
	b.add(Step{Object: "security groups " + strings.Join(names, ", "),
		Comment:  "filter this network's ports: anti-spoofing per port in table bridge nsnet_fw, the groups' stateful rules as set elements in table inet nsnet_fw (see nsnet security-group show, docs/SECURITY_GROUPS.md); the host's tables, shared by the ports of every network here, so rebuilt whole",
		Commands: []string{nftCommand(b.host.name, script)}})
	return nil
}
