package agent

import (
	"net/netip"
	"slices"
	"strings"

	vnetns "github.com/vishvananda/netns"

	"github.com/nsnet/nsnet/internal/dataplane"
	"github.com/nsnet/nsnet/internal/metadata"
	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/nat"
	"github.com/nsnet/nsnet/internal/netns"
)

// The metadata service answers in two places: in each router namespace on
// port nat.MetadataPort, where the router's nft table redirects
// 169.254.169.254:80 arriving on its qr- interfaces, and in each qdhcp
// namespace on port 80 of 169.254.169.254, an address of the DHCP port,
// for subnets no router serves (DHCP pushes the host route there).

// metadataRoute is the host route to the metadata service through a DHCP
// port on subnets without a router, as Neutron's isolated metadata.
func metadataRoute(dhcpAddr netip.Addr) dataplane.Route {
	return dataplane.Route{Dst: netip.PrefixFrom(metadata.Addr, 32), Gw: dhcpAddr}
}

// metadataDirectory maps every address of an instance port to the
// instance's metadata: each IPv4 and IPv6 fixed address and, for a port
// with IPv6, the EUI-64 link-local address its instance's kernel takes
// (metadata.Keys), the source of its requests to fe80::a9fe:a9fe.
func metadataDirectory(s *snapshot, networks map[string]model.Network, subnets map[string]model.Subnet) metadata.Directory {
	instances := map[string]model.Instance{}
	for _, inst := range s.instances {
		instances[inst.ID] = inst
	}
	floating := floatingOf(s.fips)
	dhcpAddrs := dhcpAddrsOf(s.ports)
	byInstance := map[string][]model.Port{}
	for _, p := range s.ports {
		if _, ok := instances[p.DeviceID]; ok && p.DeviceOwner == model.DeviceOwnerCompute {
			byInstance[p.DeviceID] = append(byInstance[p.DeviceID], p)
		}
	}
	dir := metadata.Directory{}
	for id, ports := range byInstance {
		addMetadata(dir, instances[id], ports, instances, networks, subnets, floating, dhcpAddrs)
	}
	return dir
}

// floatingOf maps each port id and fixed address a floating IP translates
// to the floating address.
func floatingOf(fips []model.FloatingIP) map[string]netip.Addr {
	floating := map[string]netip.Addr{} // port id + fixed address → floating address
	for _, f := range fips {
		if f.PortID != nil && f.FixedIPAddress != nil {
			if a, err := netip.ParseAddr(f.FloatingIPAddress); err == nil {
				floating[*f.PortID+"/"+*f.FixedIPAddress] = a
			}
		}
	}
	return floating
}

// addMetadata adds to dir the entries of instance inst, whose compute
// ports are ports (which it sorts).
func addMetadata(dir metadata.Directory, inst model.Instance, ports []model.Port, instances map[string]model.Instance, networks map[string]model.Network, subnets map[string]model.Subnet, floating map[string]netip.Addr, dhcpAddrs map[string]string) {
	slices.SortFunc(ports, func(a, b model.Port) int { return compareIfNames(a.InterfaceName, b.InterfaceName) })
	var links []metadata.Port
	// The DNS servers of the first subnet that has some, IPv4
	// subnets first (as before IPv6), IPv6 ones for an instance
	// that has no IPv4.
	var dns, dns6 []netip.Addr
	for _, p := range ports {
		link := metadata.Port{ID: p.ID, MAC: p.MACAddress, MTU: networkMTU(networks[p.NetworkID]), NetworkID: p.NetworkID}
		for _, ip := range p.FixedIPs {
			sn := subnets[ip.SubnetID]
			a, err1 := netip.ParseAddr(ip.IPAddress)
			cidr, err2 := netip.ParsePrefix(sn.CIDR)
			if err1 != nil || err2 != nil {
				continue
			}
			link.Addrs = append(link.Addrs, netip.PrefixFrom(a, cidr.Bits()))
			var gw netip.Addr
			if sn.GatewayIP != nil {
				gw, _ = netip.ParseAddr(*sn.GatewayIP)
			}
			servers := &dns
			if a.Is4() {
				if !link.Gateway.IsValid() {
					link.Gateway = gw
				}
			} else {
				servers = &dns6
				if !link.Gateway6.IsValid() {
					link.Gateway6 = gw
				}
				if mode := deref(sn.IPv6AddressMode); mode != "" {
					if link.Modes == nil {
						link.Modes = map[netip.Addr]string{}
					}
					link.Modes[a] = mode
				}
			}
			if len(*servers) == 0 {
				for _, d := range sn.DNSNameservers {
					if da, err := netip.ParseAddr(d); err == nil {
						*servers = append(*servers, da)
					}
				}
				if da, err := netip.ParseAddr(dhcpAddrs[sn.ID]); len(*servers) == 0 && err == nil {
					*servers = append(*servers, da)
				}
			}
		}
		links = append(links, link)
	}
	if len(dns) == 0 {
		dns = dns6
	}
	for _, p := range ports {
		n := networks[p.NetworkID]
		var addrs []netip.Addr
		var local4 netip.Addr
		for _, ip := range p.FixedIPs {
			if a, err := netip.ParseAddr(ip.IPAddress); err == nil {
				addrs = append(addrs, a)
				if a.Is4() && !local4.IsValid() {
					local4 = a
				}
			}
		}
		keys, err := metadata.Keys(p.NetworkID, p.MACAddress, addrs)
		if err != nil {
			continue // the service validated the MAC
		}
		for _, k := range keys {
			// A request over IPv6 gets the port's first IPv4
			// address as local-ipv4, as Nova's metadata does.
			local := local4
			if k.Addr.Is4() {
				local = k.Addr
			}
			var public netip.Addr
			if local.IsValid() {
				public = floating[p.ID+"/"+local.String()]
			}
			dir[k] = &metadata.Instance{
				ID: inst.ID, Name: inst.Name, ProjectID: inst.ProjectID,
				Hostname:   hostnameOf(n, p, cmpAddr(local, addrs[0]), instances),
				Domain:     strings.TrimSuffix(model.DNSDomain(n), "."),
				UserData:   inst.UserData,
				Meta:       inst.Meta,
				SSHKeys:    inst.SSHKeys,
				LocalIPv4:  local,
				PublicIPv4: public,
				Ports:      links,
				DNS:        dns,
			}
		}
	}
}

// cmpAddr is a if valid, else b.
func cmpAddr(a, b netip.Addr) netip.Addr {
	if a.IsValid() {
		return a
	}
	return b
}

// routerMetadataNetworks maps each IPv4 address of a router's qr- ports to
// the network of the port: where a redirected request came from.
func routerMetadataNetworks(d *desired, routerID string) map[netip.Addr]string {
	out := map[netip.Addr]string{}
	for _, ps := range d.ports {
		if ps.RouterID != routerID || ps.Gateway {
			continue
		}
		for _, a := range ps.Veth.Addrs {
			out[a.Addr()] = ps.NetworkID
		}
	}
	return out
}

// routerListener is the metadata listener in a router's namespace.
type routerListener struct {
	ino uint64 // the namespace it is in
	l   *metadata.Listener
}

func (r *routerListener) close() { r.l.Close() }

// ensureMetadataListener makes router id's metadata listener run in ns,
// and tells it its networks.
func (p *pass) ensureMetadataListener(id string, ns *dataplane.Namespace) error {
	ino, err := netns.Inode(ns.Name)
	if err != nil {
		return err
	}
	cur, ok := p.a.metaListeners.get(id)
	if !ok || cur.ino != ino {
		p.a.metaListeners.close(id)
		l, err := p.a.metadata.Listen(vnetns.NsHandle(ns.Fd()), netip.AddrPortFrom(netip.IPv4Unspecified(), nat.MetadataPort))
		if err != nil {
			return err
		}
		cur = &routerListener{ino: ino, l: l}
		p.a.metaListeners.set(id, cur)
	}
	cur.l.SetNetworks(routerMetadataNetworks(p.d, id))
	return nil
}

// dhcpMetadataAddr is the metadata address on a DHCP port.
var dhcpMetadataAddr = netip.PrefixFrom(metadata.Addr, 32)
