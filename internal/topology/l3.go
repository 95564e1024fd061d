package topology

// This file holds the L3 part of a topology: routers, floating IPs and
// port forwardings — their file form, validation and planning.

import (
	"fmt"
	"slices"
	"strconv"

	"github.com/nsnet/nsnet/internal/client"
	"github.com/nsnet/nsnet/internal/model"
)

// Router is a router the file wants. Nil fields are left to the server.
type Router struct {
	Name         string           `yaml:"name"`
	AdminStateUp *bool            `yaml:"admin_state_up"`
	Gateway      *ExternalGateway `yaml:"external_gateway"`
	// Interfaces are the subnets attached to the router (each a qr- port
	// holding the subnet's gateway address). Given, the list is managed:
	// subnets attached but not listed are detached.
	Interfaces []string    `yaml:"interfaces"`
	Routes     []HostRoute `yaml:"routes"`
	Line       int         `yaml:"-"`
}

// ExternalGateway connects a router to an external network.
type ExternalGateway struct {
	Network    string    `yaml:"network"`
	EnableSNAT *bool     `yaml:"enable_snat"`
	FixedIPs   []FixedIP `yaml:"fixed_ips"`
}

// FloatingIP is a floating IP the file wants. Floating IPs have no name:
// the file names each by its address, which makes apply repeatable (and,
// as in Neutron, choosing the address is the admin's).
type FloatingIP struct {
	Address string `yaml:"address"`
	Network string `yaml:"network"`
	// Port associates the floating IP with the named port.
	Port           string `yaml:"port"`
	FixedIPAddress string `yaml:"fixed_ip_address"`
	Line           int    `yaml:"-"`
}

// PortForwarding forwards one port of a floating IP (named by its address)
// to a port of a fixed address of a port. A forwarding is known by its
// floating IP, protocol and external port.
type PortForwarding struct {
	FloatingIP        string `yaml:"floating_ip"`
	Protocol          string `yaml:"protocol"`
	ExternalPort      int    `yaml:"external_port"`
	InternalPort      int    `yaml:"internal_port"`
	Port              string `yaml:"port"`
	InternalIPAddress string `yaml:"internal_ip_address"`
	Line              int    `yaml:"-"`
}

// key names a port forwarding in plans: "198.51.100.7 tcp/8080".
func (pf PortForwarding) key() string {
	return forwardingKey(canonAddr(pf.FloatingIP), pf.Protocol, pf.ExternalPort)
}

func forwardingKey(addr, protocol string, port int) string {
	return fmt.Sprintf("%s %s/%d", addr, protocol, port)
}

// forwardings is the collection key of port forwardings in a plan; each
// step names its floating IP in Parent, which gives the real collection.
const forwardings client.Collection = "port_forwardings"

// Interface actions of router steps (Step.Call).
const (
	callAddInterface    = "add_router_interface"
	callRemoveInterface = "remove_router_interface"
)

func (f *File) validateL3(subnets map[string]subnetInfo, errs *posErrors) {
	seen := map[string]int{}
	for _, r := range f.Routers {
		if !unique(seen, "router", r.Name, r.Line, errs) {
			continue
		}
		at := func(format string, args ...any) {
			errs.add(r.Line, "router %s: %s", r.Name, fmt.Sprintf(format, args...))
		}
		if r.Gateway != nil && r.Gateway.Network == "" {
			at("external_gateway needs a network")
		}
		for i, sn := range r.Interfaces {
			if slices.Contains(r.Interfaces[:i], sn) {
				at("interfaces: subnet %s is listed twice", sn)
			}
		}
		for i, rt := range r.Routes {
			if _, err := parseCIDR(rt.Destination); err != nil {
				at("routes[%d].destination: %s", i, err)
			}
			if _, err := parseAddr(rt.NextHop); err != nil {
				at("routes[%d].nexthop: %s", i, err)
			}
		}
	}
	addrs := map[string]int{}
	for _, fip := range f.FloatingIPs {
		at := func(format string, args ...any) {
			errs.add(fip.Line, "floating IP %s: %s", fip.Address, fmt.Sprintf(format, args...))
		}
		if _, err := parseAddr(fip.Address); err != nil {
			errs.add(fip.Line, "floating IP: address: %s (floating IPs are named by their address)", err)
			continue
		}
		if !unique(addrs, "floating IP", canonAddr(fip.Address), fip.Line, errs) {
			continue
		}
		if fip.Network == "" {
			at("needs a network (an external one)")
		}
		if fip.FixedIPAddress != "" {
			if fip.Port == "" {
				at("fixed_ip_address needs a port")
			} else if _, err := parseAddr(fip.FixedIPAddress); err != nil {
				at("fixed_ip_address: %s", err)
			}
		}
	}
	keys := map[string]int{}
	for _, pf := range f.PortForwardings {
		at := func(format string, args ...any) {
			errs.add(pf.Line, "port forwarding %s: %s", pf.key(), fmt.Sprintf(format, args...))
		}
		if _, err := parseAddr(pf.FloatingIP); err != nil {
			errs.add(pf.Line, "port forwarding: floating_ip: %s", err)
			continue
		}
		if pf.Protocol != "tcp" && pf.Protocol != "udp" {
			at("protocol %q: want tcp or udp", pf.Protocol)
		}
		for _, p := range []struct {
			name string
			n    int
		}{{"external_port", pf.ExternalPort}, {"internal_port", pf.InternalPort}} {
			if p.n < 1 || p.n > 65535 {
				at("%s %d: want 1 through 65535", p.name, p.n)
			}
		}
		if pf.Port == "" {
			at("needs a port (the one holding internal_ip_address)")
		}
		if _, err := parseAddr(pf.InternalIPAddress); err != nil {
			at("internal_ip_address: %s", err)
		}
		unique(keys, "port forwarding", pf.key(), pf.Line, errs)
	}
}

// indexL3 indexes the L3 resources of st and of the file.
func (p *planner) indexL3() {
	fipAddr := map[string]string{}
	for _, r := range p.st.Routers {
		p.index(client.Routers, existing{r.ID, r.Name, r.Description})
	}
	for _, f := range p.st.FloatingIPs {
		p.index(client.FloatingIPs, existing{f.ID, canonAddr(f.FloatingIPAddress), f.Description})
		fipAddr[f.ID] = canonAddr(f.FloatingIPAddress)
	}
	p.forwardingParent = map[string]Ref{}
	for _, pf := range p.st.PortForwardings {
		ext, _ := forwardingPorts(pf)
		p.index(forwardings, existing{pf.ID, forwardingKey(fipAddr[pf.FloatingIPID], pf.Protocol, ext), pf.Description})
		p.forwardingParent[pf.ID] = Ref{Collection: client.FloatingIPs, Name: fipAddr[pf.FloatingIPID], ID: pf.FloatingIPID}
	}
	for _, r := range p.file.Routers {
		p.named(client.Routers, r.Name)
	}
	for _, f := range p.file.FloatingIPs {
		p.named(client.FloatingIPs, canonAddr(f.Address))
	}
	for _, pf := range p.file.PortForwardings {
		p.named(forwardings, pf.key())
	}
}

// forwardingPorts reads the first external and internal port of pf.
func forwardingPorts(pf model.PortForwarding) (ext, in int) {
	first := func(port *int, rng string) int {
		if port != nil {
			return *port
		}
		var a, b int
		fmt.Sscanf(rng, "%d:%d", &a, &b)
		return a
	}
	return first(pf.ExternalPort, pf.ExternalPortRange), first(pf.InternalPort, pf.InternalPortRange)
}

// router plans one router: the router itself (with its gateway), then the
// subnets to attach, its routes (which need those subnets), then the
// subnets to detach.
func (p *planner) router(r Router) []Step {
	s, ok := p.begin(client.Routers, r.Name, r.Line)
	who := "router " + r.Name
	gw, gwOK := p.gatewayValue(r, who)
	var want []Ref
	for _, sn := range r.Interfaces {
		ref, refOK := p.ref(client.Subnets, sn, r.Line, who+": interfaces")
		ok = ok && refOK
		want = append(want, ref)
	}
	if !ok || !gwOK {
		return []Step{s}
	}
	var cur model.Router
	if s.Action == Create {
		putBool(s.Attrs, "admin_state_up", r.AdminStateUp)
		if gw != nil {
			s.Attrs["external_gateway_info"] = gw
		}
	} else {
		cur = p.routerByID(s.ID)
		setBool(&s, "admin_state_up", cur.AdminStateUp, r.AdminStateUp)
		p.diffGateway(&s, r, cur.ExternalGatewayInfo, gw)
	}
	steps := []Step{finish(s)}
	attached := p.interfacesOf(s.ID)
	for _, ref := range want {
		if ref.ID == "" || !slices.Contains(attached, ref.ID) {
			steps = append(steps, interfaceStep(s, callAddInterface, ref, "attach subnet "+ref.Name))
		}
	}
	if r.Routes != nil {
		curRoutes := showRoutes(cur.Routes)
		wantRoutes := make([]string, len(r.Routes))
		for i, rt := range r.Routes {
			wantRoutes[i] = canonPrefix(rt.Destination) + " via " + canonAddr(rt.NextHop)
		}
		rs := Step{Action: Unchanged, Collection: client.Routers, Name: r.Name, ID: s.ID, Attrs: map[string]any{}}
		if rs.change("routes", showSet(curRoutes), showSet(wantRoutes)) {
			rs.Attrs["routes"] = routesValue(r.Routes)
			steps = append(steps, rs)
		}
	}
	if r.Interfaces != nil {
		for _, id := range attached {
			if !slices.ContainsFunc(want, func(ref Ref) bool { return ref.ID == id }) {
				ref := Ref{Collection: client.Subnets, Name: p.display(client.Subnets, id), ID: id}
				steps = append(steps, interfaceStep(s, callRemoveInterface, ref, "detach subnet "+ref.Name))
			}
		}
	}
	return steps
}

// interfaceStep attaches or detaches a subnet of the router of step s.
func interfaceStep(s Step, call string, subnet Ref, note string) Step {
	return Step{Action: Update, Collection: client.Routers, Name: s.Name, ID: s.ID, Call: call,
		Attrs: map[string]any{"subnet_id": subnet}, Note: note}
}

// gatewayValue is the external_gateway_info the file asks for (nil when it
// leaves the gateway alone).
func (p *planner) gatewayValue(r Router, who string) (map[string]any, bool) {
	if r.Gateway == nil {
		return nil, true
	}
	net, ok := p.ref(client.Networks, r.Gateway.Network, r.Line, who+": external_gateway")
	gw := map[string]any{"network_id": net}
	putBool(gw, "enable_snat", r.Gateway.EnableSNAT)
	if r.Gateway.FixedIPs != nil {
		want, wantOK := p.wantIPs(r.Gateway.FixedIPs, r.Line, who+": external_gateway.fixed_ips")
		ok = ok && wantOK
		gw["external_fixed_ips"] = fixedIPsValue(want)
	}
	return gw, ok
}

func (p *planner) wantIPs(ips []FixedIP, line int, who string) ([]wantIP, bool) {
	ok := true
	want := make([]wantIP, len(ips))
	for i, ip := range ips {
		want[i] = wantIP{addr: canonAddr(ip.IPAddress)}
		if ip.Subnet != "" {
			var refOK bool
			want[i].subnet, refOK = p.ref(client.Subnets, ip.Subnet, line, fmt.Sprintf("%s[%d]", who, i))
			ok = ok && refOK
		}
	}
	return want, ok
}

// diffGateway records the gateway changes of an existing router.
func (p *planner) diffGateway(s *Step, r Router, cur *model.ExternalGatewayInfo, gw map[string]any) {
	if gw == nil {
		return
	}
	net := gw["network_id"].(Ref)
	curNet, curSNAT, curIPs := "", true, []model.FixedIP(nil)
	if cur != nil {
		curNet, curSNAT, curIPs = cur.NetworkID, cur.EnableSNAT, cur.ExternalFixedIPs
	}
	changed := s.change("external_gateway", p.display(client.Networks, curNet), r.Gateway.Network) && net.ID != curNet
	if r.Gateway.EnableSNAT != nil && s.change("enable_snat", strconv.FormatBool(curSNAT), strconv.FormatBool(*r.Gateway.EnableSNAT)) {
		changed = true
	}
	if r.Gateway.FixedIPs != nil {
		want, _ := p.wantIPs(r.Gateway.FixedIPs, r.Line, "")
		if body, same := matchFixedIPs(curIPs, want); !same {
			s.change("external_fixed_ips", p.showFixedIPs(curIPs), showWantIPs(want))
			gw["external_fixed_ips"] = body
			changed = true
		}
	}
	if changed {
		s.Attrs["external_gateway_info"] = gw
	}
}

func showRoutes(routes []model.HostRoute) []string {
	out := make([]string, len(routes))
	for i, rt := range routes {
		out[i] = canonPrefix(rt.Destination) + " via " + canonAddr(rt.NextHop)
	}
	return out
}

// floatingIP plans one floating IP.
func (p *planner) floatingIP(f FloatingIP) Step {
	addr := canonAddr(f.Address)
	who := "floating IP " + addr
	s, ok := p.begin(client.FloatingIPs, addr, f.Line)
	net, refOK := p.ref(client.Networks, f.Network, f.Line, who)
	ok = ok && refOK
	var port Ref
	if f.Port != "" {
		port, refOK = p.ref(client.Ports, f.Port, f.Line, who)
		ok = ok && refOK
	}
	if !ok {
		return s
	}
	if s.Action == Create {
		delete(s.Attrs, "name") // floating IPs have none
		s.Attrs["floating_network_id"] = net
		s.Attrs["floating_ip_address"] = addr
		if f.Port != "" {
			s.Attrs["port_id"] = port
		}
		if f.FixedIPAddress != "" {
			s.Attrs["fixed_ip_address"] = canonAddr(f.FixedIPAddress)
		}
		return s
	}
	cur := p.floatingIPByID(s.ID)
	if cur.FloatingNetworkID != net.ID {
		p.fixed(s, f.Line, "network", p.display(client.Networks, cur.FloatingNetworkID), f.Network)
		return s
	}
	curPort := ""
	if cur.PortID != nil {
		curPort = *cur.PortID
	}
	if f.Port != "" && (port.ID == "" || port.ID != curPort) {
		s.change("port", p.display(client.Ports, curPort), f.Port)
		s.Attrs["port_id"] = port
	}
	if f.FixedIPAddress != "" && (cur.FixedIPAddress == nil || *cur.FixedIPAddress != canonAddr(f.FixedIPAddress)) {
		s.change("fixed_ip_address", orNone(deref(cur.FixedIPAddress)), canonAddr(f.FixedIPAddress))
		s.Attrs["port_id"] = port
		s.Attrs["fixed_ip_address"] = canonAddr(f.FixedIPAddress)
	}
	return finish(s)
}

// forwarding plans one port forwarding.
func (p *planner) forwarding(pf PortForwarding) Step {
	key := pf.key()
	who := "port forwarding " + key
	s, ok := p.begin(forwardings, key, pf.Line)
	fip, refOK := p.ref(client.FloatingIPs, canonAddr(pf.FloatingIP), pf.Line, who)
	ok = ok && refOK
	port, refOK := p.ref(client.Ports, pf.Port, pf.Line, who)
	ok = ok && refOK
	s.Parent = fip
	if !ok {
		return s
	}
	ip := canonAddr(pf.InternalIPAddress)
	if s.Action == Create {
		delete(s.Attrs, "name") // port forwardings have none
		s.Attrs["protocol"] = pf.Protocol
		s.Attrs["external_port"] = pf.ExternalPort
		s.Attrs["internal_port"] = pf.InternalPort
		s.Attrs["internal_port_id"] = port
		s.Attrs["internal_ip_address"] = ip
		return s
	}
	cur := p.forwardingByID(s.ID)
	_, curIn := forwardingPorts(cur)
	if s.change("internal_port", strconv.Itoa(curIn), strconv.Itoa(pf.InternalPort)) {
		s.Attrs["internal_port"] = pf.InternalPort
	}
	if port.ID == "" || port.ID != cur.InternalPortID || cur.InternalIPAddress != ip {
		s.change("internal", p.display(client.Ports, cur.InternalPortID)+" "+cur.InternalIPAddress, pf.Port+" "+ip)
		s.Attrs["internal_port_id"] = port
		s.Attrs["internal_ip_address"] = ip
	}
	return finish(s)
}

// detachAll detaches every subnet of router id, so that it can be deleted.
func (p *planner) detachAll(name, id string) []Step {
	var steps []Step
	for _, sn := range p.interfacesOf(id) {
		ref := Ref{Collection: client.Subnets, Name: p.display(client.Subnets, sn), ID: sn}
		steps = append(steps, interfaceStep(Step{Name: name, ID: id}, callRemoveInterface, ref, "detach subnet "+ref.Name))
	}
	return steps
}

// interfacesOf lists the subnets router id is attached to.
func (p *planner) interfacesOf(id string) []string {
	var out []string
	if id == "" {
		return nil
	}
	for _, pt := range p.st.Ports {
		if pt.DeviceOwner == model.DeviceOwnerRouterInterface && pt.DeviceID == id && len(pt.FixedIPs) > 0 {
			out = append(out, pt.FixedIPs[0].SubnetID)
		}
	}
	return out
}

func (p *planner) routerByID(id string) model.Router {
	return byID(p.st.Routers, id, func(r *model.Router) string { return r.ID })
}

func (p *planner) floatingIPByID(id string) model.FloatingIP {
	return byID(p.st.FloatingIPs, id, func(f *model.FloatingIP) string { return f.ID })
}

func (p *planner) forwardingByID(id string) model.PortForwarding {
	return byID(p.st.PortForwardings, id, func(pf *model.PortForwarding) string { return pf.ID })
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
