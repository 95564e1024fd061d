// Package dhcp is nsnet's DHCPv4 server: static leases only, as Neutron's
// dnsmasq serves them. A port's MAC gets the port's fixed IP and its
// subnet's options; any other MAC gets no answer, and a client asking for
// an address the network does not hold for it is refused (DHCPNAK), as an
// authoritative server does.
//
// It owns the DHCP protocol: deciding the reply to a request (Config.Reply,
// a pure function, fuzzed) and one UDP socket per network, opened inside
// the network's qdhcp namespace (Server). It must not read the store or
// program the kernel: the agent hands it a Config, and replaces it whenever
// the network's ports or subnets change.
package dhcp

import (
	"encoding/binary"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/nsnet/nsnet/internal/pmap"
)

// DefaultLeaseTime is Neutron's dhcp_lease_duration.
const DefaultLeaseTime = 24 * time.Hour

// Route is a classless static route pushed to clients (option 121).
type Route struct {
	Dst netip.Prefix
	Gw  netip.Addr
}

// Subnet is what clients on one subnet are told besides their address.
type Subnet struct {
	Prefix netip.Prefix
	// ServerIP is the DHCP port's address on the subnet: the server
	// identifier of replies.
	ServerIP netip.Addr
	// Router is the subnet's gateway; invalid when it has none.
	Router netip.Addr
	DNS    []netip.Addr
	// Domain is the network's DNS domain, without the trailing dot.
	Domain string
	// Routes are the subnet's host routes. When any are sent (option
	// 121), the default route via Router is sent with them, since a
	// client that understands option 121 ignores option 3 (RFC 3442).
	Routes []Route
	MTU    int
}

// Host is one static lease.
type Host struct {
	IP       netip.Addr
	Hostname string
	Subnet   int // index in Config.Subnets
	// Options are the port's extra DHCP options, sent after (and over)
	// the subnet's.
	Options []Option
}

// Config is everything one network's server answers from.
type Config struct {
	LeaseTime time.Duration
	Subnets   []Subnet
	// Hosts are the static leases by MAC, in net.HardwareAddr.String form:
	// immutable, so that the agent makes the next configuration, sharing
	// all but what changed, while the server reads this one.
	Hosts pmap.Map[string, Host]
}

// Reply returns the answer to req, or nil when the server must stay silent:
// an unknown client's DISCOVER, a REQUEST addressed to another server, a
// message nsnet does not answer (RELEASE, DECLINE) or a malformed one.
func (c *Config) Reply(req *dhcpv4.DHCPv4) *dhcpv4.DHCPv4 {
	if req == nil || req.OpCode != dhcpv4.OpcodeBootRequest || len(req.ClientHWAddr) != 6 {
		return nil
	}
	host, known := c.Hosts.Get(req.ClientHWAddr.String())
	if known && (host.Subnet < 0 || host.Subnet >= len(c.Subnets)) {
		return nil
	}
	switch req.MessageType() {
	case dhcpv4.MessageTypeDiscover:
		if !known {
			return nil
		}
		return c.lease(req, host, dhcpv4.MessageTypeOffer)
	case dhcpv4.MessageTypeRequest:
		return c.request(req, host, known)
	case dhcpv4.MessageTypeInform:
		if !known {
			return nil
		}
		return c.inform(req, host)
	}
	return nil
}

// request answers a REQUEST: SELECTING (server identifier set), INIT-REBOOT
// (requested address, no ciaddr), RENEWING and REBINDING (ciaddr).
func (c *Config) request(req *dhcpv4.DHCPv4, host Host, known bool) *dhcpv4.DHCPv4 {
	if sid := addrOf(req.ServerIdentifier()); sid.IsValid() && !c.isServer(sid) {
		return nil // the client chose another server's offer
	}
	asked := addrOf(req.RequestedIPAddress())
	if !asked.IsValid() {
		asked = addrOf(req.ClientIPAddr)
	}
	if known && asked == host.IP {
		return c.lease(req, host, dhcpv4.MessageTypeAck)
	}
	// Authoritative for the network's subnets: an address this client
	// may not have (its port's address changed, or its port is gone) is
	// refused, so that it starts over at once rather than at expiry.
	if known || c.subnetOf(asked) >= 0 {
		return c.nak(req, host, known)
	}
	return nil
}

func (c *Config) isServer(a netip.Addr) bool {
	for _, sn := range c.Subnets {
		if sn.ServerIP == a {
			return true
		}
	}
	return false
}

func (c *Config) subnetOf(a netip.Addr) int {
	for i, sn := range c.Subnets {
		if a.IsValid() && sn.Prefix.Contains(a) {
			return i
		}
	}
	return -1
}

// lease is an OFFER or ACK of host's address.
func (c *Config) lease(req *dhcpv4.DHCPv4, host Host, typ dhcpv4.MessageType) *dhcpv4.DHCPv4 {
	mods := []dhcpv4.Modifier{dhcpv4.WithMessageType(typ), dhcpv4.WithYourIP(host.IP.AsSlice())}
	if typ == dhcpv4.MessageTypeAck {
		mods = append(mods, dhcpv4.WithClientIP(req.ClientIPAddr))
	}
	reply := newReply(req, mods...)
	sn := c.Subnets[host.Subnet]
	lease := c.LeaseTime
	if lease <= 0 {
		lease = DefaultLeaseTime
	}
	reply.UpdateOption(dhcpv4.OptIPAddressLeaseTime(lease))
	reply.UpdateOption(dhcpv4.OptRenewTimeValue(lease / 2))
	reply.UpdateOption(dhcpv4.OptRebindingTimeValue(lease * 7 / 8))
	c.options(reply, sn, host)
	return reply
}

// inform answers DHCPINFORM: the options, no address or lease.
func (c *Config) inform(req *dhcpv4.DHCPv4, host Host) *dhcpv4.DHCPv4 {
	reply := newReply(req, dhcpv4.WithMessageType(dhcpv4.MessageTypeAck))
	c.options(reply, c.Subnets[host.Subnet], host)
	return reply
}

func (c *Config) nak(req *dhcpv4.DHCPv4, host Host, known bool) *dhcpv4.DHCPv4 {
	reply := newReply(req, dhcpv4.WithMessageType(dhcpv4.MessageTypeNak))
	i := c.subnetOf(addrOf(req.ClientIPAddr))
	if i < 0 {
		i = c.subnetOf(addrOf(req.RequestedIPAddress()))
	}
	if i < 0 && known {
		i = host.Subnet
	}
	if i >= 0 {
		reply.UpdateOption(dhcpv4.OptServerIdentifier(c.Subnets[i].ServerIP.AsSlice()))
	}
	reply.UpdateOption(dhcpv4.OptMessage("address not assigned to this client"))
	// RFC 2131 4.3.2: a NAK goes to the broadcast address.
	reply.SetBroadcast()
	return reply
}

// newReply is dhcpv4.NewReplyFromRequest without its transaction ID:
// that draws a random number (crypto/rand) for every reply, only for the
// request's ID to replace it. The same fields and options, in the same
// order.
func newReply(req *dhcpv4.DHCPv4, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	d := &dhcpv4.DHCPv4{
		OpCode:        dhcpv4.OpcodeBootRequest,
		HWType:        iana.HWTypeEthernet,
		ClientHWAddr:  make(net.HardwareAddr, 6),
		ClientIPAddr:  net.IPv4zero,
		YourIPAddr:    net.IPv4zero,
		ServerIPAddr:  net.IPv4zero,
		GatewayIPAddr: net.IPv4zero,
		Options:       make(dhcpv4.Options),
	}
	for _, mod := range [...]dhcpv4.Modifier{
		dhcpv4.WithReply(req),
		dhcpv4.WithGatewayIP(req.GatewayIPAddr),
		dhcpv4.WithOptionCopied(req, dhcpv4.OptionRelayAgentInformation),
		// RFC 6842: the client identifier is copied to the reply.
		dhcpv4.WithOptionCopied(req, dhcpv4.OptionClientIdentifier),
	} {
		mod(d)
	}
	for _, mod := range mods {
		mod(d)
	}
	return d
}

// options adds the subnet's configuration to a reply.
func (c *Config) options(reply *dhcpv4.DHCPv4, sn Subnet, host Host) {
	reply.UpdateOption(dhcpv4.OptServerIdentifier(sn.ServerIP.AsSlice()))
	reply.UpdateOption(dhcpv4.OptSubnetMask(net.CIDRMask(sn.Prefix.Bits(), 32)))
	reply.UpdateOption(dhcpv4.OptBroadcastAddress(broadcastOf(sn.Prefix).AsSlice()))
	if sn.Router.IsValid() {
		reply.UpdateOption(dhcpv4.OptRouter(sn.Router.AsSlice()))
	}
	if len(sn.DNS) > 0 {
		dns := make([]net.IP, 0, len(sn.DNS))
		for _, a := range sn.DNS {
			dns = append(dns, a.AsSlice())
		}
		reply.UpdateOption(dhcpv4.OptDNS(dns...))
	}
	if d := strings.TrimSuffix(sn.Domain, "."); d != "" {
		reply.UpdateOption(dhcpv4.OptDomainName(d))
	}
	if host.Hostname != "" {
		reply.UpdateOption(dhcpv4.OptHostName(host.Hostname))
	}
	if sn.MTU >= 68 && sn.MTU <= 0xffff {
		mtu := make([]byte, 2)
		binary.BigEndian.PutUint16(mtu, uint16(sn.MTU))
		reply.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionInterfaceMTU, mtu))
	}
	if routes := classless(sn); len(routes) > 0 {
		reply.UpdateOption(dhcpv4.OptClasslessStaticRoute(routes...))
	}
	extraOptions(reply, host.Options)
}

// classless is option 121's routes: the host routes, then the default
// route via the gateway unless a host route already is one.
func classless(sn Subnet) []*dhcpv4.Route {
	if len(sn.Routes) == 0 {
		return nil
	}
	var out []*dhcpv4.Route
	hasDefault := false
	for _, r := range sn.Routes {
		if !r.Dst.Addr().Is4() || !r.Gw.Is4() {
			continue
		}
		hasDefault = hasDefault || r.Dst.Bits() == 0
		out = append(out, &dhcpv4.Route{
			Dest:   &net.IPNet{IP: r.Dst.Masked().Addr().AsSlice(), Mask: net.CIDRMask(r.Dst.Bits(), 32)},
			Router: r.Gw.AsSlice(),
		})
	}
	if !hasDefault && sn.Router.IsValid() {
		out = append(out, &dhcpv4.Route{
			Dest:   &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)},
			Router: sn.Router.AsSlice(),
		})
	}
	return out
}

func broadcastOf(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := ^uint32(0) >> p.Bits()
	v := binary.BigEndian.Uint32(b[:]) | host
	binary.BigEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b)
}

// addrOf converts an IPv4 address from a packet; the unspecified address
// and anything else that is not one are invalid.
func addrOf(ip net.IP) netip.Addr {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return netip.Addr{}
	}
	a = a.Unmap()
	if !a.Is4() || a.IsUnspecified() {
		return netip.Addr{}
	}
	return a
}
