package model

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
	SpoofedMAC   uint64 `json:"spoofed_mac"`
	SpoofedIP    uint64 `json:"spoofed_ip"`
	SpoofedARP   uint64 `json:"spoofed_arp"`
	DHCPServer   uint64 `json:"dhcp_server"`
	RouterAdvert uint64 `json:"router_advertisement"`
	Ingress      uint64 `json:"ingress_denied"`
	Egress       uint64 `json:"egress_denied"`
	Invalid      uint64 `json:"invalid"`
}
