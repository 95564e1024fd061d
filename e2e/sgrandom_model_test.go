package e2e

import (
	"net/netip"
	"slices"
	"strconv"
)

// The reference model of TestSecurityGroupsRandomized: what Neutron's
// documented semantics say a probe between two instances does, computed
// from the API's view of ports, rules, subnets and routers alone. It shares
// no code with internal/firewall or the agent on purpose: it is the
// second opinion the firewall is checked against.

// apiPort, apiRule and apiSubnet are the attributes of the API's ports,
// security group rules and subnets that the model reads.
type apiPort struct {
	ID                  string       `json:"id"`
	Name                string       `json:"name"`
	NetworkID           string       `json:"network_id"`
	DeviceID            string       `json:"device_id"`
	DeviceOwner         string       `json:"device_owner"`
	Status              string       `json:"status"`
	PortSecurityEnabled bool         `json:"port_security_enabled"`
	FixedIPs            []apiFixedIP `json:"fixed_ips"`
	SecurityGroups      []string     `json:"security_groups"`
	AllowedAddressPairs []struct {
		IPAddress  string `json:"ip_address"`
		MACAddress string `json:"mac_address"`
	} `json:"allowed_address_pairs"`
}

type apiFixedIP struct {
	SubnetID  string `json:"subnet_id"`
	IPAddress string `json:"ip_address"`
}

type apiRule struct {
	ID              string  `json:"id"`
	SecurityGroupID string  `json:"security_group_id"`
	Direction       string  `json:"direction"`
	EtherType       string  `json:"ethertype"`
	Protocol        *string `json:"protocol"`
	PortRangeMin    *int    `json:"port_range_min"`
	PortRangeMax    *int    `json:"port_range_max"`
	RemoteIPPrefix  *string `json:"remote_ip_prefix"`
	RemoteGroupID   *string `json:"remote_group_id"`
	// RemoteAddressGroupID names an address group: its CIDRs.
	RemoteAddressGroupID *string `json:"remote_address_group_id"`
}

type apiAddressGroup struct {
	ID        string   `json:"id"`
	Addresses []string `json:"addresses"`
}

type apiSubnet struct {
	ID        string `json:"id"`
	NetworkID string `json:"network_id"`
	CIDR      string `json:"cidr"`
}

// probeService is what one probe sends: TCP or UDP to a port, or an ICMP
// (ICMPv6) message of a type and code.
type probeService struct {
	name       string
	proto      int // IP protocol number: 6, 17, 1, or 58 for ICMPv6
	port       int // TCP and UDP
	icmpType   int
	icmpCode   int
	icmpExpect int // the reply's type
}

// sgModel is one snapshot of the API.
type sgModel struct {
	ports      []apiPort
	rules      []apiRule
	subnets    []apiSubnet
	addrGroups []apiAddressGroup
}

// address is p's fixed IP of addr's family (IPv4 or IPv6), and its
// subnet's id; ok is false when p has none. Instance ports here have one
// of each.
func (m *sgModel) address(p *apiPort, family netip.Addr) (netip.Addr, string, bool) {
	for _, ip := range p.FixedIPs {
		if a := netip.MustParseAddr(ip.IPAddress); a.Is6() == family.Is6() {
			return a, ip.SubnetID, true
		}
	}
	return netip.Addr{}, "", false
}

// addresses are p's fixed IPs, both families.
func (m *sgModel) addresses(p *apiPort) []netip.Addr {
	var out []netip.Addr
	for _, ip := range p.FixedIPs {
		out = append(out, netip.MustParseAddr(ip.IPAddress))
	}
	return out
}

func (m *sgModel) subnet(id string) *apiSubnet {
	for i := range m.subnets {
		if m.subnets[i].ID == id {
			return &m.subnets[i]
		}
	}
	return nil
}

// answerer is the instance port that receives what src sends to addr: the
// port with that fixed IP on src's own network when addr is in src's
// subnet of its family (instances on another network with the same CIDR
// are out of reach), else on a subnet that a router joins to src's.
// Allowed address pairs only permit sending from an address; no instance
// holds one.
func (m *sgModel) answerer(src *apiPort, addr netip.Addr) *apiPort {
	_, ownID, ok := m.address(src, addr)
	if !ok {
		return nil
	}
	own := m.subnet(ownID)
	var via []string // subnets reachable from src's
	if netip.MustParsePrefix(own.CIDR).Contains(addr) {
		via = []string{own.ID}
	} else {
		for _, r := range m.routersOf(own.ID) {
			via = append(via, m.routerSubnets(r)...)
		}
	}
	for i := range m.ports {
		p := &m.ports[i]
		if p.DeviceOwner != "compute:nsnet" {
			continue
		}
		if a, sub, ok := m.address(p, addr); ok && a == addr && slices.Contains(via, sub) {
			return p
		}
	}
	return nil
}

// routersOf are the routers with an interface on subnet.
func (m *sgModel) routersOf(subnet string) []string {
	var out []string
	for _, p := range m.ports {
		if p.DeviceOwner == "network:router_interface" && slices.ContainsFunc(p.FixedIPs, func(ip apiFixedIP) bool { return ip.SubnetID == subnet }) {
			out = append(out, p.DeviceID)
		}
	}
	return out
}

// routerSubnets are the subnets router has interfaces on.
func (m *sgModel) routerSubnets(router string) []string {
	var out []string
	for _, p := range m.ports {
		if p.DeviceOwner == "network:router_interface" && p.DeviceID == router {
			for _, ip := range p.FixedIPs {
				out = append(out, ip.SubnetID)
			}
		}
	}
	return out
}

// allows reports whether a new connection of svc from src to addr, dst's,
// gets through: src's egress rules admit it to addr and dst's ingress
// rules admit it from src's address of addr's family. Groups are
// stateful, so the answer passes.
func (m *sgModel) allows(src, dst *apiPort, svc probeService, addr netip.Addr) bool {
	from, _, ok := m.address(src, addr)
	return ok && m.admits(src, "egress", svc, addr) && m.admits(dst, "ingress", svc, from)
}

// admits: a port without port security filters nothing; one with it
// passes what at least one rule of its groups matches, nothing else.
func (m *sgModel) admits(p *apiPort, direction string, svc probeService, peer netip.Addr) bool {
	if !p.PortSecurityEnabled {
		return true
	}
	for _, r := range m.rules {
		if r.Direction == direction && slices.Contains(p.SecurityGroups, r.SecurityGroupID) && m.matches(r, svc, peer) {
			return true
		}
	}
	return false
}

func (m *sgModel) matches(r apiRule, svc probeService, peer netip.Addr) bool {
	if r.EtherType != map[bool]string{false: "IPv4", true: "IPv6"}[peer.Is6()] {
		return false
	}
	if r.Protocol != nil && protocolNumber(*r.Protocol, peer.Is6()) != svc.proto {
		return false
	}
	if r.PortRangeMin != nil {
		if svc.proto == 1 || svc.proto == 58 {
			// ICMP: min is the type, max (if any) the code.
			if *r.PortRangeMin != svc.icmpType || r.PortRangeMax != nil && *r.PortRangeMax != svc.icmpCode {
				return false
			}
		} else if svc.port < *r.PortRangeMin || svc.port > *r.PortRangeMax {
			return false
		}
	}
	switch {
	case r.RemoteGroupID != nil:
		return m.member(*r.RemoteGroupID, peer)
	case r.RemoteAddressGroupID != nil:
		for _, g := range m.addrGroups {
			if g.ID == *r.RemoteAddressGroupID {
				return slices.ContainsFunc(g.Addresses, func(a string) bool { return parsePrefix(a).Contains(peer) })
			}
		}
		return false
	case r.RemoteIPPrefix != nil:
		return parsePrefix(*r.RemoteIPPrefix).Contains(peer)
	}
	return true
}

// member reports whether addr is an address of group's members: their
// fixed IPs and their allowed address pairs, addresses or CIDRs alike
// (Neutron's _select_ips_for_remote_group).
func (m *sgModel) member(group string, addr netip.Addr) bool {
	for _, p := range m.ports {
		if !slices.Contains(p.SecurityGroups, group) {
			continue
		}
		for _, ip := range p.FixedIPs {
			if netip.MustParseAddr(ip.IPAddress) == addr {
				return true
			}
		}
		for _, pair := range p.AllowedAddressPairs {
			if parsePrefix(pair.IPAddress).Contains(addr) {
				return true
			}
		}
	}
	return false
}

// parsePrefix reads an address or a CIDR (a host route when an address).
func parsePrefix(s string) netip.Prefix {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked()
	}
	a := netip.MustParseAddr(s)
	return netip.PrefixFrom(a, a.BitLen())
}

// protocolNumber is the IP protocol a rule of an ethertype names, by name
// or number; -1 for the names the probes never send. On an IPv6 rule,
// Neutron takes ICMP as ICMPv6.
func protocolNumber(p string, v6 bool) int {
	n := -1
	switch p {
	case "tcp":
		n = 6
	case "udp":
		n = 17
	case "icmp":
		n = 1
	case "ipv6-icmp", "icmpv6":
		n = 58
	default:
		if i, err := strconv.Atoi(p); err == nil {
			n = i
		}
	}
	if v6 && n == 1 {
		n = 58
	}
	return n
}
