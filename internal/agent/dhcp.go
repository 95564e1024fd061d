package agent

import (
	"cmp"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/nsnet/nsnet/internal/dataplane/dpspec"
	"github.com/nsnet/nsnet/internal/dhcp"
	"github.com/nsnet/nsnet/internal/dhcp6"
	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/nameserver"
	"github.com/nsnet/nsnet/internal/pmap"
	"github.com/nsnet/nsnet/internal/store"
)

// dhcpKind keys a network's DHCP namespace in the agent's bookkeeping (the
// network's own key is its bridge's).
const dhcpKind store.Kind = "dhcp"

// dhcpSpec is what the kernel must have to serve a network: its qdhcp
// namespace, holding the DHCP port (a portSpec with DHCP set).
type dhcpSpec struct {
	Netns  string
	Marker string
	PortID string
}

// networkService is what the daemon's servers answer for one network,
// computed with the kernel specs but not part of them: handing servers a
// new configuration costs nothing, so it is not diffed.
type networkService struct {
	DHCP *dhcp.Config
	// DHCP6 is the DHCPv6 server's configuration, nil when no subnet of
	// the network is served by DHCPv6.
	DHCP6 *dhcp6.Config
	DNS   *nameserver.Zone
	// Listen are the DHCP port's addresses, which DNS answers on, one
	// per DHCP subnet.
	Listen []dnsAddr
}

// dnsAddr is an address DNS answers on, and the subnet it serves, as a
// status reason names it.
type dnsAddr struct {
	Addr   netip.Addr
	Subnet string
}

// addDHCP adds the qdhcp namespace and DHCP port of every network that has
// one, and the static leases of its ports.
func addDHCP(d *desired, s *snapshot, prefix, host string, networks map[string]model.Network, subnets map[string]model.Subnet) {
	var dhcpPorts []model.Port
	served := map[string]bool{}
	for _, p := range s.ports {
		if p.DeviceOwner == model.DeviceOwnerDHCP {
			dhcpPorts = append(dhcpPorts, p)
			served[p.NetworkID] = true
		}
	}
	if len(dhcpPorts) == 0 {
		return
	}
	// The ports of the networks that have a DHCP port only: not every
	// port of the store copied.
	byNetwork := map[string][]model.Port{}
	for _, p := range s.ports {
		if served[p.NetworkID] {
			byNetwork[p.NetworkID] = append(byNetwork[p.NetworkID], p)
		}
	}
	instances := map[string]model.Instance{}
	for _, inst := range s.instances {
		instances[inst.ID] = inst
	}
	routed := routedSubnets(s.ports)
	for _, p := range sortedBy(dhcpPorts, func(p model.Port) string { return p.ID }) {
		k := key{store.Ports, p.ID}
		n, ok := networks[p.NetworkID]
		if !ok {
			if s.self.owns("") {
				d.fixed[k] = status{model.StatusDown, ""}
			}
			continue
		}
		if !s.self.owns(n.DHCPHost) {
			continue // another host's DHCP agent serves it
		}
		if _, dup := d.dhcp[n.ID]; dup {
			d.fixed[k] = status{model.StatusError, fmt.Sprintf("network %s already has DHCP port %s", n.ID, d.dhcp[n.ID].PortID)}
			continue
		}
		p.InterfaceName = model.DHCPInterfaceName(p.ID)
		veth, _, err := portVeth(p, networks, subnets)
		if err != nil {
			d.fixed[k] = status{model.StatusError, err.Error()}
			continue
		}
		svc := dhcpService(n, p, byNetwork[n.ID], subnets, instances, routed)
		// The metadata service's address, for the subnets no router
		// serves.
		veth.Addrs = append(veth.Addrs, dhcpMetadataAddr)
		spec := dhcpSpec{Netns: model.DHCPNetns(prefix, n.ID), Marker: dpspec.DHCPMarker(n.ID, host), PortID: p.ID}
		d.dhcp[n.ID] = spec
		d.ports[p.ID] = portSpec{NetworkID: n.ID, Netns: spec.Netns, Veth: veth, DHCP: true}
		d.services[n.ID] = svc
	}
}

// dhcpService is the servers' configuration of network n, whose DHCP port
// is p (with its interface name) and ports all its ports, in id order.
// portVeth checked p's addresses and their subnets.
func dhcpService(n model.Network, p model.Port, ports []model.Port, subnets map[string]model.Subnet, instances map[string]model.Instance, routed map[string]bool) networkService {
	return networkService{
		DHCP:   dhcpConfig(n, p, ports, subnets, instances, routed),
		DHCP6:  dhcp6Config(n, p, ports, subnets),
		DNS:    dnsZone(n, ports, subnets, instances),
		Listen: dnsListen(p, subnets),
	}
}

// dnsListen are the addresses of DHCP port p that DNS answers on.
func dnsListen(p model.Port, subnets map[string]model.Subnet) []dnsAddr {
	var listen []dnsAddr
	for _, ip := range p.FixedIPs {
		// DNS answers on every address of the port, IPv6 ones too:
		// DHCPv6 names them as the DNS server, and an instance's
		// resolv.conf may.
		a := netip.MustParseAddr(ip.IPAddress)
		listen = append(listen, dnsAddr{a, subnetLabel(subnets[ip.SubnetID])})
	}
	return listen
}

// subnetLabel names a subnet in status reasons: "name (cidr)", or its id
// when it has no name.
func subnetLabel(sn model.Subnet) string {
	return cmp.Or(sn.Name, sn.ID) + " (" + sn.CIDR + ")"
}

// dhcpConfig is the DHCP server's view of network n, served from port
// dhcpPort: one subnet per address of the port, and a static lease for
// every other port with an address on one of them. Subnets that no router
// serves (routed lacks them) get a host route to the metadata service
// through the DHCP port.
func dhcpConfig(n model.Network, dhcpPort model.Port, ports []model.Port, subnets map[string]model.Subnet, instances map[string]model.Instance, routed map[string]bool) *dhcp.Config {
	cfg, index := dhcpBase(n, dhcpPort, subnets, routed)
	hosts := map[string]dhcp.Host{}
	for _, p := range ports {
		if mac, h, ok := dhcpHost(n, dhcpPort, p, index, instances); ok {
			hosts[mac] = h
		}
	}
	cfg.Hosts = pmap.From(hosts)
	return cfg
}

// dhcpBase is dhcpConfig without hosts, and the index of each served
// subnet (by id) in its Subnets.
func dhcpBase(n model.Network, dhcpPort model.Port, subnets map[string]model.Subnet, routed map[string]bool) (*dhcp.Config, map[string]int) {
	cfg := &dhcp.Config{}
	index := map[string]int{} // subnet id → index in cfg.Subnets
	for _, ip := range dhcpPort.FixedIPs {
		sn, ok := subnets[ip.SubnetID]
		server, err1 := netip.ParseAddr(ip.IPAddress)
		prefix, err2 := netip.ParsePrefix(sn.CIDR)
		if !ok || !sn.EnableDHCP || err1 != nil || err2 != nil || !server.Is4() {
			continue
		}
		sub := dhcp.Subnet{Prefix: prefix.Masked(), ServerIP: server, Domain: model.DNSDomain(n), MTU: networkMTU(n)}
		if sn.GatewayIP != nil {
			sub.Router, _ = netip.ParseAddr(*sn.GatewayIP)
		}
		for _, a := range sn.DNSNameservers {
			if addr, err := netip.ParseAddr(a); err == nil && addr.Is4() {
				sub.DNS = append(sub.DNS, addr)
			}
		}
		if len(sub.DNS) == 0 {
			sub.DNS = []netip.Addr{server} // nsnet's own DNS server
		}
		for _, hr := range sn.HostRoutes {
			if r, err := parseRoute(hr.Destination, hr.NextHop); err == nil {
				sub.Routes = append(sub.Routes, dhcp.Route{Dst: r.Dst, Gw: r.Gw})
			}
		}
		if !routed[sn.ID] {
			r := metadataRoute(server)
			sub.Routes = append(sub.Routes, dhcp.Route{Dst: r.Dst, Gw: r.Gw})
		}
		index[sn.ID] = len(cfg.Subnets)
		cfg.Subnets = append(cfg.Subnets, sub)
	}
	return cfg, index
}

// dhcpHost is port p's static lease, by MAC, in dhcpConfig: none (ok
// false) for the DHCP port and a port with no address on a served subnet.
func dhcpHost(n model.Network, dhcpPort, p model.Port, index map[string]int, instances map[string]model.Instance) (mac string, h dhcp.Host, ok bool) {
	if p.ID == dhcpPort.ID || p.MACAddress == "" {
		return "", dhcp.Host{}, false
	}
	for _, ip := range p.FixedIPs {
		i, ok := index[ip.SubnetID]
		addr, err := netip.ParseAddr(ip.IPAddress)
		if !ok || err != nil {
			continue
		}
		return strings.ToLower(p.MACAddress), dhcp.Host{IP: addr, Hostname: hostnameOf(n, p, addr, instances), Subnet: i,
			Options: extraDHCPOptions(p)}, true
	}
	return "", dhcp.Host{}, false
}

// extraDHCPOptions are port p's extra DHCP options for DHCPv4 (Neutron's
// extra_dhcp_opts with ip_version 4), in the port's order.
func extraDHCPOptions(p model.Port) []dhcp.Option {
	var out []dhcp.Option
	for _, o := range p.ExtraDHCPOpts {
		if o.IPVersion == 4 {
			out = append(out, dhcp.Option{Name: o.OptName, Value: o.OptValue})
		}
	}
	return out
}

// dhcpv6Mode is how Neutron's dnsmasq serves IPv6 subnet sn:
// dhcpv6-stateful (addresses and options), dhcpv6-stateless (options
// only), or "" (not at all: SLAAC, or addresses left to a router outside
// nsnet). A subnet without either IPv6 mode is served statefully, as
// Neutron does to keep the behaviour that predates the modes.
func dhcpv6Mode(sn model.Subnet) string {
	addr, ra := deref(sn.IPv6AddressMode), deref(sn.IPv6RAMode)
	switch {
	case sn.IPVersion != 6:
		return ""
	case addr == model.IPv6DHCPv6Stateful, addr == "" && ra == "":
		return model.IPv6DHCPv6Stateful
	case addr == model.IPv6DHCPv6Stateless:
		return model.IPv6DHCPv6Stateless
	}
	return ""
}

// dhcp6Config is the DHCPv6 server's view of network n, served from
// dhcpPort: one subnet per IPv6 address of the port on a subnet with DHCP
// that DHCPv6 serves (dhcpv6Mode), its DNS servers those of the subnet or
// else the port's own address (nsnet's DNS server, as Neutron's dnsmasq
// names itself); and a binding by MAC for every other port on those
// subnets, with its addresses on the stateful ones. nil when no subnet is
// served.
func dhcp6Config(n model.Network, dhcpPort model.Port, ports []model.Port, subnets map[string]model.Subnet) *dhcp6.Config {
	cfg, stateful := dhcp6Base(n, dhcpPort, subnets)
	if cfg == nil {
		return nil
	}
	hosts := map[string]dhcp6.Host{}
	for _, p := range ports {
		if mac, h, ok := dhcp6Host(dhcpPort, p, stateful); ok {
			hosts[mac] = h
		}
	}
	cfg.Hosts = pmap.From(hosts)
	return cfg
}

// dhcp6Base is dhcp6Config without hosts (nil when no subnet is served),
// and whether each served subnet (by id) hands out addresses.
func dhcp6Base(n model.Network, dhcpPort model.Port, subnets map[string]model.Subnet) (*dhcp6.Config, map[string]bool) {
	cfg := &dhcp6.Config{Domain: strings.TrimSuffix(model.DNSDomain(n), ".")}
	stateful := map[string]bool{} // served subnets → whether they hand out addresses
	for _, ip := range dhcpPort.FixedIPs {
		sn, ok := subnets[ip.SubnetID]
		server, err1 := netip.ParseAddr(ip.IPAddress)
		prefix, err2 := netip.ParsePrefix(sn.CIDR)
		mode := dhcpv6Mode(sn)
		if _, dup := stateful[sn.ID]; !ok || !sn.EnableDHCP || mode == "" || dup || err1 != nil || err2 != nil || !server.Is6() {
			continue
		}
		sub := dhcp6.Subnet{Prefix: prefix.Masked()}
		for _, a := range sn.DNSNameservers {
			if addr, err := netip.ParseAddr(a); err == nil && addr.Is6() {
				sub.DNS = append(sub.DNS, addr)
			}
		}
		if len(sub.DNS) == 0 {
			sub.DNS = []netip.Addr{server}
		}
		stateful[sn.ID] = mode == model.IPv6DHCPv6Stateful
		cfg.Subnets = append(cfg.Subnets, sub)
	}
	if len(cfg.Subnets) == 0 {
		return nil, nil
	}
	return cfg, stateful
}

// dhcp6Host is port p's binding, by MAC, in dhcp6Config: none (ok false)
// for the DHCP port and a port on no served subnet.
func dhcp6Host(dhcpPort, p model.Port, stateful map[string]bool) (mac string, h dhcp6.Host, ok bool) {
	hw, err := net.ParseMAC(p.MACAddress)
	if p.ID == dhcpPort.ID || err != nil {
		return "", dhcp6.Host{}, false
	}
	served := false
	for _, ip := range p.FixedIPs {
		full, ok := stateful[ip.SubnetID]
		served = served || ok
		if addr, err := netip.ParseAddr(ip.IPAddress); full && err == nil {
			h.Addrs = append(h.Addrs, addr)
		}
	}
	return hw.String(), h, served
}

// dnsZone is the DNS server's view of network n: a name for every
// address of its ports, IPv4 (A, in-addr.arpa) and IPv6 (AAAA, ip6.arpa).
func dnsZone(n model.Network, ports []model.Port, subnets map[string]model.Subnet, instances map[string]model.Instance) *nameserver.Zone {
	z := nameserver.NewDraft(model.DNSDomain(n))
	for _, p := range sortedBy(ports, func(p model.Port) string { return p.ID }) {
		zoneAdd(z, n, p, instances)
	}
	return z.Zone(zoneSubnets(n, subnets))
}

// zoneSubnets are the subnets of network n, as a zone has them.
func zoneSubnets(n model.Network, subnets map[string]model.Subnet) []netip.Prefix {
	var out []netip.Prefix
	for _, sn := range subnets {
		if p, err := netip.ParsePrefix(sn.CIDR); err == nil && sn.NetworkID == n.ID {
			out = append(out, p.Masked())
		}
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	return out
}

// zoneAdd adds port p's names to z, as dnsZone does.
func zoneAdd(z *nameserver.Draft, n model.Network, p model.Port, instances map[string]model.Instance) {
	for _, ip := range p.FixedIPs {
		if addr, err := netip.ParseAddr(ip.IPAddress); err == nil {
			host := hostnameOf(n, p, addr, instances)
			z.Add(host, addr)
			if p.DNSName != "" && p.DNSDomain != "" {
				z.AddName(host+"."+p.DNSDomain, addr)
			}
		}
	}
}

// hostnameOf is the name a port's DHCP lease and DNS records carry on
// network n: model.PortHostname, with its instance's name.
func hostnameOf(n model.Network, p model.Port, addr netip.Addr, instances map[string]model.Instance) string {
	return model.PortHostname(p, addr, instances[p.DeviceID].Name, model.DNSDomain(n))
}

// resolvConf is the resolv.conf of an instance whose ports are ports (in
// interface order): the search domain and DNS servers of the first port on
// a subnet that has DNS servers or DHCP (whose port is nsnet's DNS
// server), as a DHCP client there would write it.
func resolvConf(ports []model.Port, networks map[string]model.Network, subnets map[string]model.Subnet, dhcpAddrs map[string]string) string {
	for _, p := range ports {
		for _, ip := range p.FixedIPs {
			sn, ok := subnets[ip.SubnetID]
			if !ok {
				continue
			}
			servers := slices.Clone(sn.DNSNameservers)
			if len(servers) == 0 && dhcpAddrs[sn.ID] != "" {
				servers = []string{dhcpAddrs[sn.ID]}
			}
			if len(servers) == 0 {
				continue
			}
			var b strings.Builder
			b.WriteString(resolvConfMark + " for this instance\n")
			fmt.Fprintf(&b, "search %s\n", strings.TrimSuffix(model.DNSDomain(networks[p.NetworkID]), "."))
			for _, s := range servers {
				fmt.Fprintf(&b, "nameserver %s\n", s)
			}
			return b.String()
		}
	}
	return resolvConfMark + ": no DNS server on this instance's subnets\n"
}

// resolvConfMark starts every resolv.conf nsnet writes.
const resolvConfMark = "# written by nsnet"

// routedSubnets are the subnets a router interface serves.
func routedSubnets(ports []model.Port) map[string]bool {
	routed := map[string]bool{}
	for _, p := range ports {
		if p.DeviceOwner == model.DeviceOwnerRouterInterface {
			for _, ip := range p.FixedIPs {
				routed[ip.SubnetID] = true
			}
		}
	}
	return routed
}

// isolatedMetadataRoutes are, by subnet, the routes to the metadata
// service through the DHCP port of each DHCP subnet no router serves.
func isolatedMetadataRoutes(dhcpAddrs map[string]string, routed map[string]bool) map[string]dpspec.Route {
	out := map[string]dpspec.Route{}
	for sn, a := range dhcpAddrs {
		if addr, err := netip.ParseAddr(a); err == nil && addr.Is4() && !routed[sn] {
			out[sn] = metadataRoute(addr)
		}
	}
	return out
}

// dhcpAddrsOf maps each subnet to its DHCP port's address there.
func dhcpAddrsOf(ports []model.Port) map[string]string {
	out := map[string]string{}
	for _, p := range ports {
		if p.DeviceOwner != model.DeviceOwnerDHCP {
			continue
		}
		for _, ip := range p.FixedIPs {
			out[ip.SubnetID] = ip.IPAddress
		}
	}
	return out
}
