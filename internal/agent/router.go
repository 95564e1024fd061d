package agent

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/nsnet/nsnet/internal/dataplane/dpspec"
	"github.com/nsnet/nsnet/internal/meter"
	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/nat"
	"github.com/nsnet/nsnet/internal/store"
)

// routerSpec is what the kernel must have for a router, apart from its
// ports (which are portSpecs with RouterID set): its namespace and the NAT
// of its nsnet table.
type routerSpec struct {
	Netns  string
	Marker string
	Up     bool
	NAT    nat.Router
	// Problem is a fault of the records that the kernel cannot fix (a
	// static route no interface reaches): the router is programmed
	// without it and reported in ERROR, but not retried.
	Problem string
	// FloatingIPs are the ids of the floating IPs this router translates,
	// whose status follows the router's.
	FloatingIPs []string
	// Meter is the router's metering labels (see pass_meter.go).
	Meter meter.Spec
}

func sameRouter(a, b routerSpec) bool {
	return a.Netns == b.Netns && a.Marker == b.Marker && a.Up == b.Up && a.Problem == b.Problem &&
		slices.Equal(a.FloatingIPs, b.FloatingIPs) && sameNAT(a.NAT, b.NAT) && a.Meter.Equal(b.Meter)
}

func sameNAT(a, b nat.Router) bool {
	return a.Gateway == b.Gateway && a.GatewayAddr == b.GatewayAddr && a.EnableSNAT == b.EnableSNAT &&
		slices.Equal(a.Internal, b.Internal) && slices.Equal(a.FloatingIPs, b.FloatingIPs) &&
		slices.Equal(a.PortForwards, b.PortForwards) && slices.Equal(a.Routed, b.Routed) && slices.Equal(a.Helpers, b.Helpers)
}

// routerInputs indexes the records routers are computed from.
type routerInputs struct {
	networks map[string]model.Network
	subnets  map[string]model.Subnet
	// interfaces and gateways are the router ports, by router id, in id
	// order.
	interfaces map[string][]model.Port
	gateways   map[string][]model.Port
	// scopes are the address scopes of the IPv4 subnets that have one
	// (through their subnet pool), by subnet id.
	scopes map[string]string
}

// routerPlan is one router's ports, as computed before its NAT.
type routerPlan struct {
	id      string
	router  model.Router
	spec    routerSpec
	gateway string // port id of the qg- port, "" if none
	// internal are the subnets behind the qr- ports (IPv4, the only
	// family nat translates).
	internal []nat.Subnet
	// scoped are the address scopes of the subnets of the qr- ports that
	// have one, by prefix; gatewayScope is the qg- port's.
	scoped       map[netip.Prefix]string
	gatewayScope string
}

// addRouters adds the specs of every router this host's L3 agent hosts
// (L3Host, see hostView.owns), its ports and its floating IPs.
func addRouters(d *desired, s *snapshot, prefix, host string, in routerInputs) {
	plans := map[string]*routerPlan{}
	others := map[string]bool{}      // routers of other hosts' L3 agents
	unscheduled := map[string]bool{} // this host's, removed from its L3 agent
	for _, r := range sortedBy(s.routers, func(r model.Router) string { return r.ID }) {
		if !s.self.owns(r.L3Host) {
			others[r.ID] = true
			continue
		}
		if r.L3Unscheduled {
			// An admin removed it from this host's L3 agent: no
			// qrouter here, and its ports get no kernel object.
			unscheduled[r.ID] = true
			d.fixed[key{store.Routers, r.ID}] = status{model.StatusDown, "not hosted by any L3 agent"}
			continue
		}
		pl := &routerPlan{id: r.ID, router: r, spec: routerSpec{
			Netns:  model.RouterNetns(prefix, r.ID),
			Marker: dpspec.RouterMarker(r.ID, host),
			Up:     r.AdminStateUp,
		}}
		addRouterPorts(d, pl, in)
		plans[r.ID] = pl
	}
	fips, forwards := floatingByRouter(d, s, plans, in)
	// The floating IPs of other hosts' routers are theirs to report, and
	// with many hosts, those of no router are no host's.
	here := map[string]bool{}
	for _, fl := range fips {
		for _, f := range fl {
			here[f.id] = true
		}
	}
	for _, f := range s.fips {
		if rid := deref(f.RouterID); !here[f.ID] && (others[rid] || rid == "" && !s.self.owns("")) {
			delete(d.fixed, key{store.FloatingIPs, f.ID})
		}
	}
	for id, pl := range plans {
		pl.spec.NAT = natFor(pl, d, fips[id], forwards[id])
		if pl.gateway != "" {
			gw := d.ports[pl.gateway]
			gw.Floating = floatingAddrs(fips[id])
			d.ports[pl.gateway] = gw
		}
		for _, f := range fips[id] {
			pl.spec.FloatingIPs = append(pl.spec.FloatingIPs, f.id)
		}
		slices.Sort(pl.spec.FloatingIPs)
		pl.spec.FloatingIPs = slices.Compact(pl.spec.FloatingIPs)
		pl.spec.Meter = meterFor(pl, pl.spec.NAT.Gateway, s)
		d.routers[id] = pl.spec
	}
	// The ports of routers that do not exist get no kernel object.
	for _, byRouter := range []map[string][]model.Port{in.interfaces, in.gateways} {
		for rid, ports := range byRouter {
			if _, ok := plans[rid]; ok || others[rid] {
				continue
			}
			if !s.self.owns("") && !unscheduled[rid] {
				continue // a port of no router is no host's
			}
			for _, p := range ports {
				d.fixed[key{store.Ports, p.ID}] = status{model.StatusDown, ""}
			}
		}
	}
}

// addRouterPorts computes the veths of a router's qr- and qg- ports, their
// routes (the router's static routes, each on the port that reaches its
// next hop, then the default route via the external subnet's gateway on
// qg-) and the internal subnets.
//
// A router that is administratively down keeps its namespace and table,
// with its ports down: it forwards nothing, and comes back without
// rebuilding anything.
func addRouterPorts(d *desired, pl *routerPlan, in routerInputs) {
	var specs []dpspec.PortSpec
	var ids, networks []string
	var defaults []dpspec.Route
	for _, p := range in.interfaces[pl.id] {
		veth, _, err := routerVeth(p, model.RouterInterfaceName(p.ID), pl.router.AdminStateUp, in)
		if err != nil {
			d.fixed[key{store.Ports, p.ID}] = status{model.StatusError, err.Error()}
			continue
		}
		specs, ids, networks = append(specs, veth), append(ids, p.ID), append(networks, p.NetworkID)
		if a := advertFor(p, veth, in.networks[p.NetworkID], in.subnets); a != nil {
			if d.adverts[pl.id] == nil {
				d.adverts[pl.id] = map[string]advertSpec{}
			}
			d.adverts[pl.id][a.IfName] = *a
		}
		for _, a := range veth.Addrs {
			if a.Addr().Is4() {
				pl.internal = append(pl.internal, nat.Subnet{Interface: veth.IfName, Prefix: a.Masked()})
			}
		}
		for _, ip := range p.FixedIPs {
			if scope := in.scopes[ip.SubnetID]; scope != "" {
				if pl.scoped == nil {
					pl.scoped = map[netip.Prefix]string{}
				}
				pl.scoped[netip.MustParsePrefix(in.subnets[ip.SubnetID].CIDR)] = scope
			}
		}
	}
	for i, p := range in.gateways[pl.id] {
		if i > 0 {
			d.fixed[key{store.Ports, p.ID}] = status{model.StatusError, fmt.Sprintf("router %s already has gateway port %s", pl.id, pl.gateway)}
			continue
		}
		veth, dflt, err := routerVeth(p, model.RouterGatewayName(p.ID), pl.router.AdminStateUp, in)
		if err != nil {
			d.fixed[key{store.Ports, p.ID}] = status{model.StatusError, err.Error()}
			continue
		}
		specs, ids, networks = append(specs, veth), append(ids, p.ID), append(networks, p.NetworkID)
		pl.gateway, defaults = p.ID, dflt
		for _, ip := range p.FixedIPs {
			if scope := in.scopes[ip.SubnetID]; scope != "" {
				pl.gatewayScope = scope
			}
		}
	}

	var routes []dpspec.Route
	var problems []string
	for _, hr := range pl.router.Routes {
		r, err := parseRoute(hr.Destination, hr.NextHop)
		if err != nil {
			problems = append(problems, fmt.Sprintf("route %s via %s: %v", hr.Destination, hr.NextHop, err))
			continue
		}
		// A route to a subnet the router is attached to (Neutron accepts
		// one) is left out: the kernel's connected route holds that
		// destination, and replacing it would cut the subnet off.
		if connected(specs, r.Dst) {
			continue
		}
		routes = append(routes, r)
	}
	assigned, err := dpspec.AssignRoutes(specs, routes)
	if err != nil {
		problems = append(problems, err.Error())
	}
	taken := map[netip.Prefix]bool{}
	for i := range assigned {
		for _, r := range assigned[i].Routes {
			taken[r.Dst] = true
		}
	}
	for i, id := range ids {
		veth := assigned[i]
		if id == pl.gateway {
			// A static default route wins over the external gateway's.
			for _, r := range defaults {
				if !taken[r.Dst] {
					veth.Routes = append(veth.Routes, r)
				}
			}
		} else {
			pl.internal = appendRouted(pl.internal, veth)
		}
		d.ports[id] = portSpec{RouterID: pl.id, NetworkID: networks[i], Netns: pl.spec.Netns, Veth: veth, Gateway: id == pl.gateway}
	}
	pl.spec.Problem = strings.Join(problems, "; ")
}

// connected reports whether dst is the prefix of an address of one of
// ports: a destination the kernel routes out of that port by itself.
func connected(ports []dpspec.PortSpec, dst netip.Prefix) bool {
	return slices.ContainsFunc(ports, func(p dpspec.PortSpec) bool {
		return slices.ContainsFunc(p.Addrs, func(a netip.Prefix) bool { return a.Masked() == dst })
	})
}

// appendRouted adds to internal the destinations of the routes out of qr-
// port veth: sources that reach the router through it, so they are
// translated like its subnets. A destination that overlaps one already
// there is left out (nat cannot hold both in one interval set, and the
// wider one already covers it); so is a default route, which would make
// every source internal.
func appendRouted(internal []nat.Subnet, veth dpspec.PortSpec) []nat.Subnet {
	for _, r := range veth.Routes {
		if !r.Dst.Addr().Is4() || r.Dst.Bits() == 0 {
			continue
		}
		if slices.ContainsFunc(internal, func(s nat.Subnet) bool { return s.Prefix.Overlaps(r.Dst) }) {
			continue
		}
		internal = append(internal, nat.Subnet{Interface: veth.IfName, Prefix: r.Dst})
	}
	return internal
}

// routerVeth is the veth of a router port: like an instance port's, with
// the router end named ifname, no host routes (they are for instances),
// and up only while both the port and the router are.
func routerVeth(p model.Port, ifname string, routerUp bool, in routerInputs) (dpspec.PortSpec, []dpspec.Route, error) {
	p.InterfaceName = ifname
	veth, defaults, err := portVeth(p, in.networks, in.subnets)
	if err != nil {
		return veth, nil, err
	}
	veth.Routes = nil
	veth.Up = p.AdminStateUp && routerUp
	return veth, defaults, nil
}

// floating is one floating IP as a router translates it.
type floating struct {
	id       string
	network  string
	addr     netip.Addr
	fixed    netip.Addr // invalid: no 1:1 association, forwards only
	routerID string
}

// floatingByRouter decides which router translates each floating IP and
// each port forwarding, and gives every floating IP that no router takes
// its status (DOWN when not associated, ERROR when it cannot be).
//
// An associated floating IP (router_id and fixed_ip_address set) belongs
// to its router_id. A port forwarding belongs to its floating IP's
// router_id when it has one (Neutron sets it for a floating IP used by
// forwards only too); otherwise to the router that joins the two ends:
// its gateway port is on the floating IP's network and one of its
// interfaces is on a subnet holding the forward's internal address. When
// several do, the lowest router id wins, so the choice is stable.
func floatingByRouter(d *desired, s *snapshot, plans map[string]*routerPlan, in routerInputs) (map[string][]floating, map[string][]nat.PortForward) {
	fips := map[string][]floating{}
	byID := make(map[string]floating, len(s.fips))
	placed := make(map[string]bool, len(s.fips)) // floating IPs in fips
	for _, f := range s.fips {
		k := key{store.FloatingIPs, f.ID}
		addr, err := netip.ParseAddr(f.FloatingIPAddress)
		if err != nil || !addr.Is4() {
			d.fixed[k] = status{model.StatusError, fmt.Sprintf("floating IP address %q is not an IPv4 address", f.FloatingIPAddress)}
			continue
		}
		fl := floating{id: f.ID, network: f.FloatingNetworkID, addr: addr}
		if f.RouterID != nil {
			fl.routerID = *f.RouterID
		}
		if fl.routerID == "" || f.FixedIPAddress == nil || *f.FixedIPAddress == "" {
			d.fixed[k] = status{model.StatusDown, ""} // unless forwards place it
			byID[f.ID] = fl
			continue
		}
		fixed, err := netip.ParseAddr(*f.FixedIPAddress)
		if err != nil || !fixed.Is4() {
			d.fixed[k] = status{model.StatusError, fmt.Sprintf("fixed IP address %q is not an IPv4 address", *f.FixedIPAddress)}
			continue
		}
		fl.fixed = fixed
		if err := canTranslate(plans[fl.routerID], fl.routerID); err != nil {
			d.fixed[k] = status{model.StatusError, err.Error()}
			continue
		}
		fips[fl.routerID] = append(fips[fl.routerID], fl)
		placed[f.ID] = true
		byID[f.ID] = fl
	}

	forwards := map[string][]nat.PortForward{}
	for _, pf := range sortedBy(s.forwards, func(pf model.PortForwarding) string { return pf.FloatingIPID + "/" + pf.ID }) {
		fl, ok := byID[pf.FloatingIPID]
		if !ok {
			continue // its floating IP is missing or broken, and says so
		}
		fwd, err := portForward(pf, fl.addr)
		if err != nil {
			markFloating(d, fl.id, fmt.Errorf("port forwarding %s: %w", pf.ID, err))
			continue
		}
		rid := fl.routerID
		if rid == "" {
			rid = forwardRouter(plans, fl.network, fwd.Internal, in)
		}
		if rid == "" {
			markFloating(d, fl.id, fmt.Errorf("port forwarding %s: no router joins the floating network and %s", pf.ID, fwd.Internal))
			continue
		}
		if err := canTranslate(plans[rid], rid); err != nil {
			markFloating(d, fl.id, err)
			continue
		}
		forwards[rid] = append(forwards[rid], fwd)
		if !placed[fl.id] {
			// Forwards only: the router answers for the address too.
			placed[fl.id] = true
			fips[rid] = append(fips[rid], fl)
			delete(d.fixed, key{store.FloatingIPs, fl.id})
		}
	}
	return fips, forwards
}

// markFloating puts a floating IP in error, unless it already is.
func markFloating(d *desired, id string, err error) {
	k := key{store.FloatingIPs, id}
	if d.fixed[k].Status != model.StatusError {
		d.fixed[k] = status{model.StatusError, err.Error()}
	}
}

// canTranslate reports why the router of a floating IP cannot translate
// it.
func canTranslate(pl *routerPlan, id string) error {
	switch {
	case pl == nil:
		return fmt.Errorf("router %s does not exist", id)
	case pl.gateway == "":
		return fmt.Errorf("router %s has no external gateway", id)
	}
	return nil
}

// forwardRouter finds the router of a forward whose floating IP has no
// router: see floatingByRouter.
func forwardRouter(plans map[string]*routerPlan, network string, internal netip.Addr, in routerInputs) string {
	for _, id := range sortedKeys(plans) {
		pl := plans[id]
		if pl.gateway == "" || pl.gatewayNetwork(in) != network {
			continue
		}
		if slices.ContainsFunc(pl.internal, func(sn nat.Subnet) bool { return sn.Prefix.Contains(internal) }) {
			return id
		}
	}
	return ""
}

func (pl *routerPlan) gatewayNetwork(in routerInputs) string {
	for _, p := range in.gateways[pl.id] {
		if p.ID == pl.gateway {
			return p.NetworkID
		}
	}
	return ""
}

// portForward turns a port forwarding record into nat's.
func portForward(pf model.PortForwarding, external netip.Addr) (nat.PortForward, error) {
	proto, err := nat.ParseProtocol(pf.Protocol)
	if err != nil {
		return nat.PortForward{}, err
	}
	internal, err := netip.ParseAddr(pf.InternalIPAddress)
	if err != nil {
		return nat.PortForward{}, fmt.Errorf("internal IP address: %w", err)
	}
	ext, err := portRange(pf.ExternalPort, pf.ExternalPortRange)
	if err != nil {
		return nat.PortForward{}, fmt.Errorf("external port: %w", err)
	}
	inr, err := portRange(pf.InternalPort, pf.InternalPortRange)
	if err != nil {
		return nat.PortForward{}, fmt.Errorf("internal port: %w", err)
	}
	return nat.PortForward{Protocol: proto, External: external, ExternalPorts: ext, Internal: internal, InternalPorts: inr}, nil
}

// portRange reads a single port or Neutron's "first:last".
func portRange(single *int, ranged string) (nat.PortRange, error) {
	parse := func(s string) (uint16, error) {
		n, err := strconv.ParseUint(s, 10, 16)
		if err != nil || n == 0 {
			return 0, fmt.Errorf("%q is not a port", s)
		}
		return uint16(n), nil
	}
	if single != nil {
		if *single < 1 || *single > 65535 {
			return nat.PortRange{}, fmt.Errorf("%d is not a port", *single)
		}
		return nat.Port(uint16(*single)), nil
	}
	first, last, ok := strings.Cut(ranged, ":")
	if !ok {
		last = first
	}
	a, err := parse(first)
	if err != nil {
		return nat.PortRange{}, err
	}
	b, err := parse(last)
	if err != nil {
		return nat.PortRange{}, err
	}
	if b < a {
		return nat.PortRange{}, fmt.Errorf("range %s ends before it starts", ranged)
	}
	return nat.PortRange{First: a, Last: b}, nil
}

// floatingAddrs are the addresses a router answers for on qg-: those of
// its floating IPs, sorted.
func floatingAddrs(fips []floating) []netip.Addr {
	var addrs []netip.Addr
	for _, f := range fips {
		addrs = append(addrs, f.addr)
	}
	slices.SortFunc(addrs, func(a, b netip.Addr) int { return a.Compare(b) })
	return slices.Compact(addrs)
}

// natFor is the NAT of a router: default SNAT of its internal subnets
// to its gateway address (enable_snat), its 1:1 floating IPs and its port
// forwards, sorted so that equal records give equal specs.
func natFor(pl *routerPlan, d *desired, fips []floating, forwards []nat.PortForward) nat.Router {
	r := nat.Router{Internal: pl.internal, Helpers: helpersOf(pl.router)}
	if pl.gateway == "" {
		return r
	}
	gw := d.ports[pl.gateway].Veth
	r.Gateway = gw.IfName
	for _, a := range gw.Addrs {
		if a.Addr().Is4() {
			r.GatewayAddr = a.Addr()
			break
		}
	}
	info := pl.router.ExternalGatewayInfo
	r.EnableSNAT = info != nil && info.EnableSNAT && r.GatewayAddr.IsValid()
	// Neutron's address scopes: a subnet in the external network's scope
	// is routed out untranslated.
	for _, in := range pl.internal {
		if scope, ok := pl.scoped[in.Prefix]; ok && pl.gatewayScope != "" && scope == pl.gatewayScope && !slices.Contains(r.Routed, in.Prefix) {
			r.Routed = append(r.Routed, in.Prefix)
		}
	}
	for _, f := range fips {
		if f.fixed.IsValid() {
			r.FloatingIPs = append(r.FloatingIPs, nat.FloatingIP{Out: r.Gateway, Floating: f.addr, Fixed: f.fixed})
		}
	}
	slices.SortFunc(r.FloatingIPs, func(a, b nat.FloatingIP) int { return a.Floating.Compare(b.Floating) })
	r.PortForwards = forwards
	slices.SortFunc(r.PortForwards, func(a, b nat.PortForward) int {
		return cmp.Or(a.External.Compare(b.External), cmp.Compare(a.Protocol, b.Protocol), cmp.Compare(a.ExternalPorts.First, b.ExternalPorts.First))
	})
	return r
}

// helpersOf is the conntrack helpers of a router, in spec order. The
// service admits only helpers the nat layout offers, one per protocol and
// port; a record that says otherwise fails the spec's validation, which
// puts the router in ERROR with the reason.
func helpersOf(r model.Router) []nat.Helper {
	var hs []nat.Helper
	for _, h := range r.Helpers {
		p, _ := nat.ParseProtocol(h.Protocol)
		hs = append(hs, nat.Helper{Name: h.Helper, Protocol: p, Port: uint16(h.Port)})
	}
	slices.SortFunc(hs, func(a, b nat.Helper) int {
		return cmp.Or(cmp.Compare(a.Protocol, b.Protocol), cmp.Compare(a.Port, b.Port), cmp.Compare(a.Name, b.Name))
	})
	return hs
}

// routerPortsOf splits ports by router: interface and gateway ports whose
// device is a router (existing or not), in id order.
func routerPortsOf(ports []model.Port) (interfaces, gateways map[string][]model.Port) {
	interfaces, gateways = map[string][]model.Port{}, map[string][]model.Port{}
	// The router ports only are sorted (copied): not every port of the
	// store.
	var routers []model.Port
	for _, p := range ports {
		if p.DeviceOwner == model.DeviceOwnerRouterInterface || p.DeviceOwner == model.DeviceOwnerRouterGateway {
			routers = append(routers, p)
		}
	}
	for _, p := range sortedBy(routers, func(p model.Port) string { return p.ID }) {
		switch p.DeviceOwner {
		case model.DeviceOwnerRouterInterface:
			interfaces[p.DeviceID] = append(interfaces[p.DeviceID], p)
		case model.DeviceOwnerRouterGateway:
			gateways[p.DeviceID] = append(gateways[p.DeviceID], p)
		}
	}
	return interfaces, gateways
}

// subnetScopes maps each IPv4 subnet from a pool in an address scope to
// that scope.
func subnetScopes(s *snapshot) map[string]string {
	pools := map[string]string{}
	for _, sp := range s.pools {
		if sp.AddressScopeID != nil {
			pools[sp.ID] = *sp.AddressScopeID
		}
	}
	out := map[string]string{}
	for _, sn := range s.subnets {
		if sn.IPVersion == 4 && sn.SubnetPoolID != nil && pools[*sn.SubnetPoolID] != "" {
			out[sn.ID] = pools[*sn.SubnetPoolID]
		}
	}
	return out
}
