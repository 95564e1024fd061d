package model

// IPv6 address modes, the values of a subnet's ipv6_ra_mode and
// ipv6_address_mode (Neutron's). ipv6_ra_mode says what the router's
// advertisements tell hosts; ipv6_address_mode how hosts get addresses.
const (
	IPv6SLAAC           = "slaac"
	IPv6DHCPv6Stateful  = "dhcpv6-stateful"
	IPv6DHCPv6Stateless = "dhcpv6-stateless"
)

// IPv6Modes are the values ipv6_ra_mode and ipv6_address_mode take, in
// Neutron's order.
var IPv6Modes = []string{IPv6DHCPv6Stateful, IPv6DHCPv6Stateless, IPv6SLAAC}

// IsAutoAddress reports whether the subnet's hosts configure their
// addresses themselves from the prefix the router advertises (SLAAC, with
// or without stateless DHCPv6 for the other options): each port's address
// on it is then its EUI-64 address, computed from its MAC, never one
// handed out from the pools. Either mode set so makes it one, as in
// Neutron's is_auto_address_subnet.
func (s *Subnet) IsAutoAddress() bool {
	auto := func(m *string) bool { return m != nil && (*m == IPv6SLAAC || *m == IPv6DHCPv6Stateless) }
	return s.IPVersion == 6 && (auto(s.IPv6RAMode) || auto(s.IPv6AddressMode))
}
