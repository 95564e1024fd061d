package model

import (
	"strconv"
	"strings"
)

// IPProtocols are the protocol names Neutron accepts on a rule, with their
// IANA numbers (neutron_lib.constants.IP_PROTOCOL_MAP).
var IPProtocols = map[string]int{
	"ah": 51, "dccp": 33, "egp": 8, "esp": 50, "gre": 47, "hopopt": 0, "icmp": 1,
	"igmp": 2, "ip": 0, "ipip": 4, "ipv6-encap": 41, "ipv6-frag": 44, "ipv6-icmp": 58,
	"icmpv6": 58, "ipv6-nonxt": 59, "ipv6-opts": 60, "ipv6-route": 43, "ospf": 89,
	"pgm": 113, "rsvp": 46, "sctp": 132, "tcp": 6, "udp": 17, "udplite": 136, "vrrp": 112,
}

// ProtocolNumber is the IP protocol number of a rule, or -1 for any.
func (r *SecurityGroupRule) ProtocolNumber() int {
	if r.Protocol == nil {
		return -1
	}
	if n, ok := IPProtocols[strings.ToLower(*r.Protocol)]; ok {
		return n
	}
	n, err := strconv.Atoi(*r.Protocol)
	if err != nil {
		return -1 // never stored: validated on create
	}
	return n
}

// IsTrusted reports whether a port belongs to the network itself (routers,
// floating IPs, DHCP): Neutron applies no security groups to those.
func (p *Port) IsTrusted() bool { return strings.HasPrefix(p.DeviceOwner, "network:") }

// Security group rule directions and ethertypes, as Neutron spells them.
const (
	DirectionIngress = "ingress"
	DirectionEgress  = "egress"
	EtherTypeIPv4    = "IPv4"
	EtherTypeIPv6    = "IPv6"
)

// DefaultSecurityGroupName is the group every project gets on first use.
const DefaultSecurityGroupName = "default"

// SecurityGroup is a named set of allow rules applied to ports. Its rules
// are stored as records of their own (quotas count them one by one); the
// API shows them inline in security_group_rules.
type SecurityGroup struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	ProjectID string `json:"project_id"`
	TenantID  string `json:"tenant_id"`
	Stateful  bool   `json:"stateful"`
	Shared    bool   `json:"shared"`
	// Rules is filled when the group is shown, never stored.
	Rules []SecurityGroupRule `json:"security_group_rules"`
	Standard
}

// AddressGroup is a named list of CIDRs (Neutron's address-group
// extension) that security group rules may name as their remote
// (remote_address_group_id): the firewall keeps its addresses in sets of
// their own, shared by every rule that names it.
type AddressGroup struct {
	ID          string   `json:"id"`
	Name        string   `json:"name"`
	Description string   `json:"description"`
	ProjectID   string   `json:"project_id"`
	TenantID    string   `json:"tenant_id"`
	Addresses   []string `json:"addresses"`
}

// SecurityGroupRule allows one kind of traffic into (ingress) or out of
// (egress) the ports of its group. Protocol is what the client sent (a
// name or a number, or nil for any); nil port bounds mean every port (or,
// for ICMP, every type/code).
type SecurityGroupRule struct {
	ID                   string  `json:"id"`
	SecurityGroupID      string  `json:"security_group_id"`
	ProjectID            string  `json:"project_id"`
	TenantID             string  `json:"tenant_id"`
	Direction            string  `json:"direction"`
	EtherType            string  `json:"ethertype"`
	Protocol             *string `json:"protocol"`
	PortRangeMin         *int    `json:"port_range_min"`
	PortRangeMax         *int    `json:"port_range_max"`
	RemoteIPPrefix       *string `json:"remote_ip_prefix"`
	RemoteGroupID        *string `json:"remote_group_id"`
	RemoteAddressGroupID *string `json:"remote_address_group_id"`
	NormalizedCIDR       *string `json:"normalized_cidr"`
	BelongsToDefaultSG   bool    `json:"belongs_to_default_sg"`
	Description          string  `json:"description"`
	CreatedAt            string  `json:"created_at"`
	UpdatedAt            string  `json:"updated_at"`
	RevisionNumber       int     `json:"revision_number"`
}

// PortFirewallCounters are the packets nsnet's firewall dropped for one
// port, by reason. The agent reads them from the kernel's named counters.
type PortFirewallCounters struct {
	SpoofedMAC uint64 `json:"spoofed_mac"`
	SpoofedIP  uint64 `json:"spoofed_ip"`
	SpoofedARP uint64 `json:"spoofed_arp"`
	// SpoofedND are IPv6 neighbour advertisements for an address the
	// port does not own.
	SpoofedND    uint64 `json:"spoofed_nd"`
	DHCPServer   uint64 `json:"dhcp_server"`
	RouterAdvert uint64 `json:"router_advertisement"`
	// IPv6Off are router solicitations and duplicate address
	// detection's probes from a port of a network without IPv6, which
	// its bridge would copy to every port.
	IPv6Off uint64 `json:"ipv6_off"`
	Ingress uint64 `json:"ingress_denied"`
	Egress  uint64 `json:"egress_denied"`
	Invalid uint64 `json:"invalid"`
}
