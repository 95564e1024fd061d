package topology

// This file compares each kind of resource of the file with its current
// state, field by field, and renders values the way the API writes them.

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/nsnet/nsnet/internal/client"
	"github.com/nsnet/nsnet/internal/model"
)

func (p *planner) instance(in Instance) Step {
	s, _ := p.begin(client.Instances, in.Name, in.Line)
	return finish(s)
}

func (p *planner) network(n Network) Step {
	s, ok := p.begin(client.Networks, n.Name, n.Line)
	if !ok {
		return s
	}
	if s.Action == Create {
		putInt(s.Attrs, "mtu", n.MTU)
		putBool(s.Attrs, "shared", n.Shared)
		putBool(s.Attrs, "router:external", n.External)
		putBool(s.Attrs, "admin_state_up", n.AdminStateUp)
		putBool(s.Attrs, "port_security_enabled", n.PortSecurityEnabled)
		putBool(s.Attrs, "nsnet:host_gateway", n.HostGateway)
		putOptional(s.Attrs, "nsnet:uplink", n.Uplink)
		putOptional(s.Attrs, "nsnet:snat_address", n.SNATAddress)
		return s
	}
	cur := p.networkByID(s.ID)
	if n.MTU != nil && s.change("mtu", strconv.Itoa(cur.MTU), strconv.Itoa(*n.MTU)) {
		s.Attrs["mtu"] = *n.MTU
	}
	setBool(&s, "shared", cur.Shared, n.Shared)
	setBool(&s, "router:external", cur.RouterExternal, n.External)
	setBool(&s, "admin_state_up", cur.AdminStateUp, n.AdminStateUp)
	setBool(&s, "port_security_enabled", cur.PortSecurityEnabled, n.PortSecurityEnabled)
	setBool(&s, "nsnet:host_gateway", cur.HostGateway, n.HostGateway)
	setOptional(&s, "nsnet:uplink", cur.Uplink, n.Uplink)
	setOptional(&s, "nsnet:snat_address", cur.SNATAddress, n.SNATAddress)
	return finish(s)
}

// putOptional puts a string attribute that the file may give empty to
// mean "none" (null).
func putOptional(m map[string]any, key string, v *string) {
	switch {
	case v == nil:
	case *v == "":
		m[key] = nil
	default:
		m[key] = *v
	}
}

func setOptional(s *Step, field string, cur, want *string) {
	if want == nil {
		return
	}
	c := ""
	if cur != nil {
		c = *cur
	}
	if s.change(field, c, *want) {
		putOptional(s.Attrs, field, want)
	}
}

func (p *planner) subnet(sn Subnet) Step {
	s, ok := p.begin(client.Subnets, sn.Name, sn.Line)
	netRef, refOK := p.ref(client.Networks, sn.Network, sn.Line, "subnet "+sn.Name)
	if !ok || !refOK {
		return s
	}
	prefix := netip.MustParsePrefix(sn.CIDR) // Validate checked it
	if s.Action == Create {
		s.Attrs["network_id"] = netRef
		s.Attrs["cidr"] = prefix.String()
		putInt(s.Attrs, "ip_version", sn.IPVersion)
		if sn.IPVersion == nil && prefix.Addr().Is6() {
			s.Attrs["ip_version"] = 6 // the API's default is 4
		}
		if sn.IPv6RAMode != nil {
			s.Attrs["ipv6_ra_mode"] = *sn.IPv6RAMode
		}
		if sn.IPv6AddressMode != nil {
			s.Attrs["ipv6_address_mode"] = *sn.IPv6AddressMode
		}
		if sn.GatewayIP != nil {
			s.Attrs["gateway_ip"] = gatewayValue(*sn.GatewayIP)
		}
		if sn.AllocationPools != nil {
			s.Attrs["allocation_pools"] = poolsValue(sn.AllocationPools)
		}
		if sn.DNSNameservers != nil {
			s.Attrs["dns_nameservers"] = dnsValue(sn.DNSNameservers)
		}
		if sn.HostRoutes != nil {
			s.Attrs["host_routes"] = routesValue(sn.HostRoutes)
		}
		putBool(s.Attrs, "enable_dhcp", sn.EnableDHCP)
		return s
	}

	cur := p.subnetByID(s.ID)
	if cur.NetworkID != netRef.ID {
		p.fixed(s, sn.Line, "network", p.display(client.Networks, cur.NetworkID), sn.Network)
	}
	if curPrefix, err := netip.ParsePrefix(cur.CIDR); err != nil || curPrefix.Masked() != prefix {
		p.fixed(s, sn.Line, "cidr", cur.CIDR, prefix.String())
	}
	if sn.IPVersion != nil && *sn.IPVersion != cur.IPVersion {
		p.fixed(s, sn.Line, "ip_version", strconv.Itoa(cur.IPVersion), strconv.Itoa(*sn.IPVersion))
	}
	for _, m := range []struct {
		key       string
		cur, want *string
	}{{"ipv6_ra_mode", cur.IPv6RAMode, sn.IPv6RAMode}, {"ipv6_address_mode", cur.IPv6AddressMode, sn.IPv6AddressMode}} {
		if m.want != nil && (m.cur == nil || *m.cur != *m.want) {
			p.fixed(s, sn.Line, m.key, showMode(m.cur), *m.want)
		}
	}
	if sn.GatewayIP != nil {
		want := gatewayValue(*sn.GatewayIP)
		if s.change("gateway_ip", showGateway(cur.GatewayIP), showGateway(want)) {
			s.Attrs["gateway_ip"] = want
		}
	}
	if sn.AllocationPools != nil {
		var curPools []string
		for _, pool := range cur.AllocationPools {
			curPools = append(curPools, canonAddr(pool.Start)+"-"+canonAddr(pool.End))
		}
		var wantPools []string
		for _, pool := range sn.AllocationPools {
			wantPools = append(wantPools, canonAddr(pool.Start)+"-"+canonAddr(pool.End))
		}
		if s.change("allocation_pools", showSet(curPools), showSet(wantPools)) {
			s.Attrs["allocation_pools"] = poolsValue(sn.AllocationPools)
		}
	}
	if sn.DNSNameservers != nil {
		// Order matters: it is the order of resolv.conf.
		if s.change("dns_nameservers", showList(canonAddrs(cur.DNSNameservers)), showList(canonAddrs(sn.DNSNameservers))) {
			s.Attrs["dns_nameservers"] = dnsValue(sn.DNSNameservers)
		}
	}
	if sn.HostRoutes != nil {
		var curRoutes []string
		for _, r := range cur.HostRoutes {
			curRoutes = append(curRoutes, canonPrefix(r.Destination)+" via "+canonAddr(r.NextHop))
		}
		var wantRoutes []string
		for _, r := range sn.HostRoutes {
			wantRoutes = append(wantRoutes, canonPrefix(r.Destination)+" via "+canonAddr(r.NextHop))
		}
		if s.change("host_routes", showSet(curRoutes), showSet(wantRoutes)) {
			s.Attrs["host_routes"] = routesValue(sn.HostRoutes)
		}
	}
	setBool(&s, "enable_dhcp", cur.EnableDHCP, sn.EnableDHCP)
	return finish(s)
}

// showMode shows an IPv6 mode, or its absence.
func showMode(m *string) string {
	if m == nil {
		return "unset"
	}
	return *m
}

func (p *planner) port(pt Port) Step {
	who := "port " + pt.Name
	s, ok := p.begin(client.Ports, pt.Name, pt.Line)
	netRef, refOK := p.ref(client.Networks, pt.Network, pt.Line, who)
	ok = ok && refOK
	var inst Ref
	if pt.Instance != "" {
		inst, refOK = p.ref(client.Instances, pt.Instance, pt.Line, who)
		ok = ok && refOK
	}
	want := make([]wantIP, len(pt.FixedIPs))
	for i, ip := range pt.FixedIPs {
		want[i] = wantIP{addr: canonAddr(ip.IPAddress)}
		if ip.Subnet == "" {
			continue
		}
		want[i].subnet, refOK = p.ref(client.Subnets, ip.Subnet, pt.Line, fmt.Sprintf("%s: fixed_ips[%d]", who, i))
		ok = ok && refOK && p.subnetOnNetwork(pt, i, want[i].subnet, netRef)
	}
	if !ok {
		return s
	}
	mac := ""
	if pt.MACAddress != "" {
		mac, _ = parseMAC(pt.MACAddress) // Validate checked it
	}

	if s.Action == Create {
		s.Attrs["network_id"] = netRef
		if pt.FixedIPs != nil {
			s.Attrs["fixed_ips"] = fixedIPsValue(want)
		}
		if mac != "" {
			s.Attrs["mac_address"] = mac
		}
		putBool(s.Attrs, "admin_state_up", pt.AdminStateUp)
		putBool(s.Attrs, "port_security_enabled", pt.PortSecurityEnabled)
		putBool(s.Attrs, "nsnet:dhcp_client", pt.DHCPClient)
		if pt.Instance != "" {
			s.Attrs["device_id"] = inst
			s.Attrs["device_owner"] = model.DeviceOwnerCompute
		}
		if pt.InterfaceName != "" {
			s.Attrs["nsnet:interface_name"] = pt.InterfaceName
		}
		p.portSecurity(&s, pt, nil)
		return s
	}

	cur := p.portByID(s.ID)
	if cur.NetworkID != netRef.ID {
		p.fixed(s, pt.Line, "network", p.display(client.Networks, cur.NetworkID), pt.Network)
		return s
	}
	if mac != "" && s.change("mac_address", cur.MACAddress, mac) {
		s.Attrs["mac_address"] = mac
	}
	setBool(&s, "admin_state_up", cur.AdminStateUp, pt.AdminStateUp)
	setBool(&s, "port_security_enabled", cur.PortSecurityEnabled, pt.PortSecurityEnabled)
	setBool(&s, "nsnet:dhcp_client", cur.DHCPClient, pt.DHCPClient)
	if pt.FixedIPs != nil {
		if body, same := matchFixedIPs(cur.FixedIPs, want); !same {
			s.change("fixed_ips", p.showFixedIPs(cur.FixedIPs), showWantIPs(want))
			s.Attrs["fixed_ips"] = body
		}
	}
	moved := false
	if pt.Instance != "" {
		plugged := cur.DeviceOwner == model.DeviceOwnerCompute && inst.ID != "" && cur.DeviceID == inst.ID
		if !plugged {
			moved = true
			s.change("instance", p.display(client.Instances, cur.DeviceID), pt.Instance)
			s.Attrs["device_id"] = inst
			s.Attrs["device_owner"] = model.DeviceOwnerCompute
		}
	}
	// The server names the interface afresh when a port moves to another
	// instance, unless the request names it: so name it whenever it moves.
	if pt.InterfaceName != "" && (s.change("interface_name", orNone(cur.InterfaceName), pt.InterfaceName) || moved) {
		s.Attrs["nsnet:interface_name"] = pt.InterfaceName
	}
	p.portSecurity(&s, pt, &cur)
	return finish(s)
}

// subnetOnNetwork checks, for a subnet that exists already, that it is on
// the port's network (Validate checked subnets of the file).
func (p *planner) subnetOnNetwork(pt Port, i int, sn, network Ref) bool {
	if sn.ID == "" || network.ID == "" || p.inFile[client.Subnets][sn.Name] {
		return true
	}
	if cur := p.subnetByID(sn.ID); cur.NetworkID != network.ID {
		p.errs.add(pt.Line, "port %s: fixed_ips[%d]: subnet %s is on network %s, not on the port's network %s",
			pt.Name, i, sn.Name, p.display(client.Networks, cur.NetworkID), pt.Network)
		return false
	}
	return true
}

// wantIP is one fixed IP the file asks for; either part may be empty.
type wantIP struct {
	subnet Ref
	addr   string
}

// matchFixedIPs pairs each wanted fixed IP with a current one it accepts
// (an empty part accepts anything). It reports whether the two sets match
// one to one and, if not, the fixed_ips to send: wanted entries, with those
// that matched a current one pinned to its address so that an update does
// not renumber them.
func matchFixedIPs(cur []model.FixedIP, want []wantIP) ([]any, bool) {
	used := make([]bool, len(cur))
	pinned := make([]*model.FixedIP, len(want))
	accepts := func(w wantIP, c model.FixedIP, exact bool) bool {
		subnetOK := w.subnet.Name == "" && !exact || w.subnet.ID != "" && w.subnet.ID == c.SubnetID
		addrOK := w.addr == "" && !exact || w.addr != "" && w.addr == canonAddr(c.IPAddress)
		return subnetOK && addrOK
	}
	// Fully specified entries claim their match first, so that a loose
	// entry cannot take an address an exact one needs.
	for _, exact := range []bool{true, false} {
		for i, w := range want {
			if pinned[i] != nil {
				continue
			}
			for j, c := range cur {
				if !used[j] && accepts(w, c, exact) {
					used[j], pinned[i] = true, &cur[j]
					break
				}
			}
		}
	}
	same := len(cur) == len(want) && !slices.Contains(pinned, nil)
	body := make([]any, len(want))
	for i, w := range want {
		if pinned[i] != nil {
			body[i] = map[string]any{"subnet_id": pinned[i].SubnetID, "ip_address": pinned[i].IPAddress}
			continue
		}
		body[i] = fixedIPValue(w)
	}
	return body, same
}

func fixedIPsValue(want []wantIP) []any {
	out := make([]any, len(want))
	for i, w := range want {
		out[i] = fixedIPValue(w)
	}
	return out
}

func fixedIPValue(w wantIP) map[string]any {
	m := map[string]any{}
	if w.subnet.Name != "" {
		m["subnet_id"] = w.subnet
	}
	if w.addr != "" {
		m["ip_address"] = w.addr
	}
	return m
}

func (p *planner) showFixedIPs(ips []model.FixedIP) string {
	parts := make([]string, len(ips))
	for i, ip := range ips {
		parts[i] = canonAddr(ip.IPAddress) + " (" + p.display(client.Subnets, ip.SubnetID) + ")"
	}
	return showSet(parts)
}

func showWantIPs(want []wantIP) string {
	parts := make([]string, len(want))
	for i, w := range want {
		addr, subnet := w.addr, w.subnet.Name
		switch {
		case addr == "":
			parts[i] = "any (" + subnet + ")"
		case subnet == "":
			parts[i] = addr
		default:
			parts[i] = addr + " (" + subnet + ")"
		}
	}
	return showSet(parts)
}

func putInt(m map[string]any, key string, v *int) {
	if v != nil {
		m[key] = *v
	}
}

func putBool(m map[string]any, key string, v *bool) {
	if v != nil {
		m[key] = *v
	}
}

func setBool(s *Step, field string, cur bool, want *bool) {
	if want != nil && s.change(field, strconv.FormatBool(cur), strconv.FormatBool(*want)) {
		s.Attrs[field] = *want
	}
}

// gatewayValue is the JSON value of gateway_ip: an address or null.
func gatewayValue(gw string) any {
	if gw == NoGateway {
		return nil
	}
	return canonAddr(gw)
}

func showGateway(v any) string {
	switch g := v.(type) {
	case *string:
		if g == nil {
			return NoGateway
		}
		return canonAddr(*g)
	case string:
		return g
	}
	return NoGateway
}

func poolsValue(pools []AllocationPool) []any {
	out := make([]any, len(pools))
	for i, p := range pools {
		out[i] = map[string]any{"start": canonAddr(p.Start), "end": canonAddr(p.End)}
	}
	return out
}

func dnsValue(servers []string) []any {
	out := make([]any, len(servers))
	for i, s := range servers {
		out[i] = canonAddr(s)
	}
	return out
}

func routesValue(routes []HostRoute) []any {
	out := make([]any, len(routes))
	for i, r := range routes {
		out[i] = map[string]any{"destination": canonPrefix(r.Destination), "nexthop": canonAddr(r.NextHop)}
	}
	return out
}

// canonAddr writes an address the one way the API does, so that
// "192.168.024.1"-style differences never show up as changes.
func canonAddr(s string) string {
	if a, err := parseAddr(s); err == nil {
		return a.String()
	}
	return s
}

func canonAddrs(list []string) []string {
	out := make([]string, len(list))
	for i, s := range list {
		out[i] = canonAddr(s)
	}
	return out
}

func canonPrefix(s string) string {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked().String()
	}
	return s
}

// showSet renders an unordered list in a stable order.
func showSet(items []string) string {
	sorted := slices.Clone(items)
	sort.Strings(sorted)
	return showList(sorted)
}

func showList(items []string) string {
	if len(items) == 0 {
		return "[]"
	}
	return "[" + strings.Join(items, ", ") + "]"
}

func quote(s string) string { return strconv.Quote(s) }

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
