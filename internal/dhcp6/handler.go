// Package dhcp6 is nsnet's DHCPv6 server: static bindings only, as
// Neutron's dnsmasq serves them for dhcpv6-stateful and dhcpv6-stateless
// subnets. A port's MAC gets the port's addresses on the stateful subnets
// (IA_NA) with the network's DNS servers and search domain; any host on
// the link gets the DNS servers and search domain alone from an
// Information-request (stateless). Clients are recognised by MAC, whatever
// their DUID, as dnsmasq recognises Neutron's ports.
//
// It owns the DHCPv6 protocol: deciding the reply to a message
// (Config.Reply, a pure function, fuzzed) and one UDP socket per network,
// opened inside the network's qdhcp namespace (Server). It must not read
// the store or program the kernel beyond its socket: the agent hands it a
// Config and replaces it whenever the network's ports or subnets change.
//
// The public API, for the agent's wiring (the same shape as internal/dhcp):
//
//	srv, err := dhcp6.Listen(ns, "ns-1234", log) // UDP [::]:547 on the interface, in ff02::1:2
//	srv.SetConfig(&dhcp6.Config{Subnets: ..., Hosts: pmap.From(map[mac]dhcp6.Host{...})})
//	srv.Close()
//
// Replies, after RFC 8415 section 18.3:
//
//	Solicit             → Advertise with the port's addresses (preference 255:
//	                      the client need not wait for other servers), or Reply
//	                      when the client asks for Rapid Commit and Config allows
//	                      it; unknown clients get no answer
//	Request, Renew      → Reply with the port's addresses; an address the port no
//	                      longer has is returned with zero lifetimes; NoAddrsAvail
//	                      (Request) or NoBinding (Renew) for an unknown client
//	Rebind              → as Renew; an unknown client's addresses in the
//	                      network's prefixes come back with zero lifetimes,
//	                      and silence when they are not the network's
//	Confirm             → Reply Success, or NotOnLink when an address is off the
//	                      network's prefixes
//	Information-request → Reply with DNS servers (option 23) and the domain
//	                      search list (24) only
//	Release, Decline    → Reply Success (static bindings: nothing to free)
//
// Messages addressed to another server (a Server Identifier that is not
// ours), messages without the identifiers RFC 8415 section 16 requires,
// and relayed messages (nsnet's networks have no relays) are dropped.
package dhcp6

import (
	"bytes"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/nsnet/nsnet/internal/pmap"
)

// DefaultLeaseTime is Neutron's dhcp_lease_duration: the valid and
// preferred lifetimes of an address, as dnsmasq gives a static one.
const DefaultLeaseTime = 24 * time.Hour

// Subnet is one of the network's IPv6 subnets.
type Subnet struct {
	Prefix netip.Prefix
	// DNS are the servers clients on the subnet are told (the subnet's
	// dns_nameservers, or the DHCP port's address, as Neutron does).
	DNS []netip.Addr
}

// Host is one port's static binding.
type Host struct {
	// Addrs are the port's addresses on the network's dhcpv6-stateful
	// subnets; a port with none (stateless subnets only) gets no
	// address, only Information-request answers.
	Addrs []netip.Addr
}

// Config is everything one network's server answers from.
type Config struct {
	// LeaseTime is the addresses' valid and preferred lifetime; 0 stands
	// for DefaultLeaseTime. T1 and T2 are half and seven eighths of it.
	LeaseTime time.Duration
	Subnets   []Subnet
	// Domain is the network's DNS domain (the search list), without the
	// trailing dot; empty for none.
	Domain string
	// Hosts are the static bindings by MAC, in net.HardwareAddr.String
	// form: immutable, as dhcp.Config.Hosts.
	Hosts pmap.Map[string, Host]
	// RapidCommit lets a Solicit with the Rapid Commit option be answered
	// with a Reply at once (RFC 8415 18.3.1). dnsmasq, as Neutron runs it,
	// does not: off unless asked.
	RapidCommit bool
}

// ServerDUID is the server identifier of a server on an interface with
// hardware address mac: a DUID-LL, stable across restarts as the
// interface's MAC is.
func ServerDUID(mac net.HardwareAddr) dhcpv6.DUID {
	return &dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: mac}
}

// Reply returns the answer to req, received from src (the client's
// link-local address) by the server whose identifier is server, or nil
// when the server must stay silent.
func (c *Config) Reply(req *dhcpv6.Message, src netip.Addr, server dhcpv6.DUID) *dhcpv6.Message {
	if c == nil || req == nil || server == nil {
		return nil
	}
	cid := req.Options.ClientID()
	sid := req.Options.ServerID()
	// RFC 8415 16: which identifiers each message must and must not
	// carry; a Server Identifier that is not ours means another server
	// was chosen.
	switch req.MessageType {
	case dhcpv6.MessageTypeSolicit, dhcpv6.MessageTypeConfirm, dhcpv6.MessageTypeRebind:
		if cid == nil || sid != nil {
			return nil
		}
	case dhcpv6.MessageTypeRequest, dhcpv6.MessageTypeRenew, dhcpv6.MessageTypeRelease, dhcpv6.MessageTypeDecline:
		if cid == nil || sid == nil || !sid.Equal(server) {
			return nil
		}
	case dhcpv6.MessageTypeInformationRequest:
		if sid != nil && !sid.Equal(server) {
			return nil
		}
		if len(req.Options.IANA()) > 0 || len(req.Options.IATA()) > 0 || len(req.Options.IAPD()) > 0 {
			return nil // RFC 8415 16.12: an Information-request asks for no address
		}
		reply := c.newReply(req, dhcpv6.MessageTypeReply, server)
		c.addInfo(reply, nil)
		return reply
	default:
		return nil
	}

	host, known := c.host(req, src)
	switch req.MessageType {
	case dhcpv6.MessageTypeSolicit:
		if !known || len(host.Addrs) == 0 {
			return nil
		}
		typ := dhcpv6.MessageTypeAdvertise
		rapid := c.RapidCommit && req.GetOneOption(dhcpv6.OptionRapidCommit) != nil
		if rapid {
			typ = dhcpv6.MessageTypeReply
		}
		reply := c.newReply(req, typ, server)
		if rapid {
			reply.AddOption(&dhcpv6.OptionGeneric{OptionCode: dhcpv6.OptionRapidCommit})
		} else {
			reply.AddOption(dhcpv6.OptPreference(255))
		}
		c.addIAs(reply, req, host)
		c.addInfo(reply, host.Addrs)
		return reply
	case dhcpv6.MessageTypeRequest, dhcpv6.MessageTypeRenew, dhcpv6.MessageTypeRebind:
		if !known && req.MessageType == dhcpv6.MessageTypeRebind && !c.anyOnLink(req) {
			return nil // RFC 8415 18.3.5: not ours to judge
		}
		reply := c.newReply(req, dhcpv6.MessageTypeReply, server)
		c.addIAs(reply, req, host)
		c.addInfo(reply, host.Addrs)
		return reply
	case dhcpv6.MessageTypeConfirm:
		return c.confirm(req, server)
	case dhcpv6.MessageTypeRelease, dhcpv6.MessageTypeDecline:
		reply := c.newReply(req, dhcpv6.MessageTypeReply, server)
		reply.AddOption(&dhcpv6.OptStatusCode{StatusCode: iana.StatusSuccess, StatusMessage: "static binding: nothing to free"})
		return reply
	}
	return nil
}

// host finds the binding of the client that sent req from src, by its MAC
// address (see clientMACs); ok is false for a client that has none.
func (c *Config) host(req *dhcpv6.Message, src netip.Addr) (Host, bool) {
	for _, mac := range clientMACs(req, src) {
		if h, ok := c.Hosts.Get(mac.String()); ok {
			return h, true
		}
	}
	return Host{}, false
}

// clientMACs are the MAC addresses that can name the client, most
// trustworthy first. Neutron binds ports by MAC, not by DUID (a DUID is
// the client's choice and changes with its software), so the server has
// to find the MAC behind the message:
//
//  1. a DUID-LL or DUID-LLT of hardware type Ethernet holds one — the
//     client's own statement of its interface's address, as dhclient and
//     NetworkManager build it;
//  2. else a Client Link-Layer Address option (RFC 6939), which a relay
//     (or a client) adds for exactly this purpose;
//  3. else the source address, when it is a modified EUI-64 link-local
//     address, carries the sending interface's MAC (not with stable
//     privacy or random interface identifiers, hence last).
//
// The first candidate that is a known port wins: a DUID-LLT made once from
// another interface of the same instance (on another network) does not
// hide the MAC the source address shows. (Two interfaces of one instance on
// the same network, sharing a DUID made from one of them, are told that
// one's addresses on both: the client's DUID says they are one client.)
func clientMACs(req *dhcpv6.Message, src netip.Addr) []net.HardwareAddr {
	var out []net.HardwareAddr
	switch d := req.Options.ClientID().(type) {
	case *dhcpv6.DUIDLL:
		if d.HWType == iana.HWTypeEthernet && len(d.LinkLayerAddr) == 6 {
			out = append(out, d.LinkLayerAddr)
		}
	case *dhcpv6.DUIDLLT:
		if d.HWType == iana.HWTypeEthernet && len(d.LinkLayerAddr) == 6 {
			out = append(out, d.LinkLayerAddr)
		}
	}
	if o := req.GetOneOption(dhcpv6.OptionClientLinkLayerAddr); o != nil {
		// Link-layer type (2 bytes), then the address.
		if b := o.ToBytes(); len(b) == 8 && b[0] == 0 && b[1] == byte(iana.HWTypeEthernet) {
			out = append(out, net.HardwareAddr(bytes.Clone(b[2:])))
		}
	}
	if mac := eui64MAC(src); mac != nil {
		out = append(out, mac)
	}
	return out
}

// eui64MAC is the MAC in a modified EUI-64 link-local address (RFC 4291
// appendix A), nil when a is not one.
func eui64MAC(a netip.Addr) net.HardwareAddr {
	a = a.WithZone("")
	if !a.Is6() || !a.IsLinkLocalUnicast() {
		return nil
	}
	b := a.As16()
	if b[11] != 0xff || b[12] != 0xfe {
		return nil
	}
	return net.HardwareAddr{b[8] ^ 0x02, b[9], b[10], b[13], b[14], b[15]}
}

func (c *Config) newReply(req *dhcpv6.Message, typ dhcpv6.MessageType, server dhcpv6.DUID) *dhcpv6.Message {
	reply := &dhcpv6.Message{MessageType: typ, TransactionID: req.TransactionID}
	if cid := req.Options.ClientID(); cid != nil {
		reply.AddOption(dhcpv6.OptClientID(cid))
	}
	reply.AddOption(dhcpv6.OptServerID(server))
	return reply
}

func (c *Config) lease() time.Duration {
	if c.LeaseTime > 0 {
		return c.LeaseTime
	}
	return DefaultLeaseTime
}

// addIAs answers each IA_NA of req. A host with addresses gets them with
// their lifetimes, and the addresses its client still holds and it no
// longer has with zero lifetimes, so that the client stops using them now.
// Without addresses for the client, each IA says so: NoAddrsAvail to a
// Solicit or Request, NoBinding to a Renew; a Rebind gets the network's
// addresses it holds back with zero lifetimes (RFC 8415 18.3.5: this
// server knows they are not the client's).
func (c *Config) addIAs(reply, req *dhcpv6.Message, host Host) {
	lease := c.lease()
	for _, ia := range req.Options.IANA() {
		out := &dhcpv6.OptIANA{IaId: ia.IaId}
		if len(host.Addrs) > 0 {
			out.T1, out.T2 = lease/2, lease*7/8
			for _, a := range host.Addrs {
				out.Options.Add(&dhcpv6.OptIAAddress{IPv6Addr: a.AsSlice(), PreferredLifetime: lease, ValidLifetime: lease})
			}
		}
		for _, held := range ia.Options.Addresses() {
			a, ok := netip.AddrFromSlice(held.IPv6Addr)
			if !ok || slices.Contains(host.Addrs, a) {
				continue
			}
			if len(host.Addrs) > 0 || (req.MessageType == dhcpv6.MessageTypeRebind && c.onLink(a)) {
				out.Options.Add(&dhcpv6.OptIAAddress{IPv6Addr: a.AsSlice()})
			}
		}
		if len(host.Addrs) == 0 {
			switch req.MessageType {
			case dhcpv6.MessageTypeSolicit, dhcpv6.MessageTypeRequest:
				out.Options.Add(&dhcpv6.OptStatusCode{StatusCode: iana.StatusNoAddrsAvail, StatusMessage: "no address for this client"})
			case dhcpv6.MessageTypeRenew:
				out.Options.Add(&dhcpv6.OptStatusCode{StatusCode: iana.StatusNoBinding, StatusMessage: "no binding for this client"})
			}
		}
		reply.AddOption(out)
	}
}

// confirm answers a Confirm: are the client's addresses still on this
// link (RFC 8415 18.3.3)? A Confirm without addresses gets no answer.
func (c *Config) confirm(req *dhcpv6.Message, server dhcpv6.DUID) *dhcpv6.Message {
	any, off := false, false
	for _, ia := range req.Options.IANA() {
		for _, held := range ia.Options.Addresses() {
			a, ok := netip.AddrFromSlice(held.IPv6Addr)
			any = true
			off = off || !ok || !c.onLink(a)
		}
	}
	if !any {
		return nil
	}
	reply := c.newReply(req, dhcpv6.MessageTypeReply, server)
	if off {
		reply.AddOption(&dhcpv6.OptStatusCode{StatusCode: iana.StatusNotOnLink, StatusMessage: "address not on this link"})
	} else {
		reply.AddOption(&dhcpv6.OptStatusCode{StatusCode: iana.StatusSuccess, StatusMessage: "all addresses on link"})
	}
	return reply
}

func (c *Config) onLink(a netip.Addr) bool {
	for _, sn := range c.Subnets {
		if sn.Prefix.Contains(a) {
			return true
		}
	}
	return false
}

func (c *Config) anyOnLink(req *dhcpv6.Message) bool {
	for _, ia := range req.Options.IANA() {
		for _, held := range ia.Options.Addresses() {
			if a, ok := netip.AddrFromSlice(held.IPv6Addr); ok && c.onLink(a) {
				return true
			}
		}
	}
	return false
}

// addInfo adds the DNS servers and search domain: those of the subnets of
// addrs, or of every subnet when addrs is empty (stateless, where the
// client's subnet is not known).
func (c *Config) addInfo(reply *dhcpv6.Message, addrs []netip.Addr) {
	var dns []net.IP
	var seen []netip.Addr
	for _, sn := range c.Subnets {
		if len(addrs) > 0 && !slices.ContainsFunc(addrs, sn.Prefix.Contains) {
			continue
		}
		for _, d := range sn.DNS {
			if d.Is6() && !d.Is4In6() && !slices.Contains(seen, d) {
				seen = append(seen, d)
				dns = append(dns, d.AsSlice())
			}
		}
	}
	if len(dns) > 0 {
		reply.AddOption(dhcpv6.OptDNS(dns...))
	}
	if d := strings.TrimSuffix(c.Domain, "."); d != "" {
		dhcpv6.WithDomainSearchList(d)(reply)
	}
}
