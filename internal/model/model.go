// Package model defines nsnet's resources as the API shows them and the store
// keeps them: networks, subnets, ports and instances, in the shapes of the
// OpenStack Networking API v2.0 (plus nsnet's own extension attributes).
//
// It owns the resource types, their JSON form, and the rules that derive
// kernel names (bridges, veths, namespaces) from resource ids. It must not
// touch the store, the network or the kernel: everything here is pure data.
package model

import (
	"time"
)

// Resource statuses, as Neutron spells them.
const (
	StatusActive = "ACTIVE"
	StatusDown   = "DOWN"
	StatusBuild  = "BUILD"
	StatusError  = "ERROR"
)

// DeviceOwnerCompute is the device_owner of a port plugged into an nsnet
// instance; Nova uses "compute:<zone>" and nsnet's zone is "nsnet".
const DeviceOwnerCompute = "compute:nsnet"

// DefaultMTU is the MTU of a network created without one.
const DefaultMTU = 1500

// Standard holds the attributes Neutron adds to every resource through its
// standard-attr-* extensions.
type Standard struct {
	Description    string   `json:"description"`
	Tags           []string `json:"tags"`
	RevisionNumber int      `json:"revision_number"`
	CreatedAt      string   `json:"created_at"`
	UpdatedAt      string   `json:"updated_at"`
}

// StandardAttrs returns s: through embedding, every resource that has
// standard attributes answers it, for code generic over resources.
func (s *Standard) StandardAttrs() *Standard { return s }

// Touch stamps a create (when CreatedAt is empty) or an update.
func (s *Standard) Touch(now time.Time) {
	ts := now.UTC().Format(time.RFC3339)
	if s.CreatedAt == "" {
		s.CreatedAt = ts
	} else {
		s.RevisionNumber++
	}
	s.UpdatedAt = ts
	if s.Tags == nil {
		s.Tags = []string{}
	}
}

// Network is an L2 segment: one Linux bridge on every host that needs it.
type Network struct {
	ID             string `json:"id"`
	Name           string `json:"name"`
	ProjectID      string `json:"project_id"`
	TenantID       string `json:"tenant_id"`
	AdminStateUp   bool   `json:"admin_state_up"`
	Status         string `json:"status"`
	Shared         bool   `json:"shared"`
	MTU            int    `json:"mtu"`
	RouterExternal bool   `json:"router:external"`
	// IsDefault marks the default external network (Neutron's is_default);
	// only an external network is one.
	IsDefault             bool     `json:"is_default"`
	PortSecurityEnabled   bool     `json:"port_security_enabled"`
	Subnets               []string `json:"subnets"`
	AvailabilityZoneHints []string `json:"availability_zone_hints"`
	AvailabilityZones     []string `json:"availability_zones"`
	IPv4AddressScope      *string  `json:"ipv4_address_scope"`
	IPv6AddressScope      *string  `json:"ipv6_address_scope"`
	L2Adjacency           bool     `json:"l2_adjacency"`
	// DNSDomain is the domain nsnet's DNS server answers instance names
	// in on this network (Neutron's dns-domain-for-networks attribute);
	// empty means DefaultDNSDomain.
	DNSDomain string `json:"dns_domain"`
	// Uplink is the host interface by which the network reaches beyond
	// the host (nsnet-uplink; docs/NAT.md): bridged into the network's
	// bridge on a router:external network, the interface NATed traffic
	// leaves by on a HostGateway one. nil: none.
	Uplink *string `json:"nsnet:uplink"`
	// HostGateway puts each subnet's gateway address on the network's
	// bridge in the host namespace, which forwards and NATs for it
	// (nsnet-host-nat).
	HostGateway bool `json:"nsnet:host_gateway"`
	// SNATAddress is the fixed source address of a host-gateway
	// network's connections leaving by its uplink; nil masquerades.
	SNATAddress  *string `json:"nsnet:snat_address"`
	StatusReason string  `json:"nsnet:status_reason,omitempty"`
	// DHCPHosted is an admin's choice of whether the host's DHCP agent
	// serves the network (dhcp_agent_scheduler): nil leaves it to the
	// subnets (hosted while one enables DHCP), true hosts it even
	// without, false keeps DHCP off it. Stored, never shown.
	DHCPHosted *bool `json:"nsnet:dhcp_hosted,omitzero"`
	// DHCPHost is the network node whose DHCP agent serves the network
	// (a model.Host's name), chosen by the scheduler. Stored, never
	// shown.
	DHCPHost string `json:"nsnet:dhcp_host,omitzero"`
	// QosPolicyID is the QoS policy of the network's ports that have
	// none of their own (qos extension).
	QosPolicyID *string `json:"qos_policy_id"`
	// The provider attributes (Neutron's provider extension): how the
	// network is carried between hosts. Admins only see them.
	NetworkType     Provider[string] `json:"provider:network_type,omitzero"`
	PhysicalNetwork Provider[string] `json:"provider:physical_network,omitzero"`
	SegmentationID  Provider[int]    `json:"provider:segmentation_id,omitzero"`
	Standard
}

// AllocationPool is an inclusive range of addresses IPAM may hand out.
type AllocationPool struct {
	Start string `json:"start"`
	End   string `json:"end"`
}

// HostRoute is a route pushed to instances on a subnet.
type HostRoute struct {
	Destination string `json:"destination"`
	NextHop     string `json:"nexthop"`
}

// Subnet is an IP range on a network, with IPAM and instance configuration.
type Subnet struct {
	ID              string           `json:"id"`
	Name            string           `json:"name"`
	ProjectID       string           `json:"project_id"`
	TenantID        string           `json:"tenant_id"`
	NetworkID       string           `json:"network_id"`
	IPVersion       int              `json:"ip_version"`
	CIDR            string           `json:"cidr"`
	GatewayIP       *string          `json:"gateway_ip"`
	AllocationPools []AllocationPool `json:"allocation_pools"`
	DNSNameservers  []string         `json:"dns_nameservers"`
	HostRoutes      []HostRoute      `json:"host_routes"`
	EnableDHCP      bool             `json:"enable_dhcp"`
	IPv6RAMode      *string          `json:"ipv6_ra_mode"`
	IPv6AddressMode *string          `json:"ipv6_address_mode"`
	SubnetPoolID    *string          `json:"subnetpool_id"`
	ServiceTypes    []string         `json:"service_types"`
	Standard
}

// FixedIP is one address of a port.
type FixedIP struct {
	SubnetID  string `json:"subnet_id"`
	IPAddress string `json:"ip_address"`
}

// AddressPair is an extra (IP or CIDR, MAC) a port may send from.
type AddressPair struct {
	IPAddress  string `json:"ip_address"`
	MACAddress string `json:"mac_address"`
}

// Port is an attachment to a network. When DeviceID names an instance, the
// agent plugs it into that instance's namespace as a veth pair.
type Port struct {
	ID                  string        `json:"id"`
	Name                string        `json:"name"`
	ProjectID           string        `json:"project_id"`
	TenantID            string        `json:"tenant_id"`
	NetworkID           string        `json:"network_id"`
	AdminStateUp        bool          `json:"admin_state_up"`
	Status              string        `json:"status"`
	MACAddress          string        `json:"mac_address"`
	FixedIPs            []FixedIP     `json:"fixed_ips"`
	DeviceID            string        `json:"device_id"`
	DeviceOwner         string        `json:"device_owner"`
	PortSecurityEnabled bool          `json:"port_security_enabled"`
	SecurityGroups      []string      `json:"security_groups"`
	AllowedAddressPairs []AddressPair `json:"allowed_address_pairs"`
	InterfaceName       string        `json:"nsnet:interface_name"`
	// FirewallDrops are the packets the firewall dropped for the port,
	// read from the kernel when the port is shown; never stored.
	FirewallDrops *PortFirewallCounters `json:"nsnet:firewall_drops,omitempty"`
	// TrunkDetails is the trunk the port is the parent of (trunk-details),
	// rendered when the port is shown; never stored.
	TrunkDetails *TrunkDetails `json:"trunk_details,omitempty"`
	// DHCPClient makes nsnet plug the port into its instance with only its
	// link (MAC, MTU, up): the instance configures its address and routes
	// itself, by DHCP from the network's DHCP port.
	DHCPClient   bool   `json:"nsnet:dhcp_client"`
	StatusReason string `json:"nsnet:status_reason,omitempty"`
	// ExtraDHCPOpts are options the network's DHCP server sends this port
	// besides its subnet's (Neutron's extra_dhcp_opt extension).
	ExtraDHCPOpts []ExtraDHCPOpt `json:"extra_dhcp_opts"`
	// DNSName is the host name nsnet's DNS and DHCP give the port
	// (Neutron's dns-integration): a label, or a fully qualified name in
	// the network's DNS domain. Empty: the name is chosen as PortHostname
	// says.
	DNSName string `json:"dns_name"`
	// DNSDomain is a domain of the port's own (dns-domain-ports), where
	// nsnet's DNS also answers its dns_name, as Neutron publishes it in
	// an external DNS; fully qualified, or empty for none.
	DNSDomain string `json:"dns_domain"`
	// DNSAssignment is the name each of the port's addresses has in
	// nsnet's DNS; rendered, never stored.
	DNSAssignment []DNSAssignment `json:"dns_assignment,omitzero"`
	// QosPolicyID is the port's own QoS policy; without one, the port
	// has its network's (qos extension).
	QosPolicyID *string `json:"qos_policy_id"`
	PortBinding
	Standard
}

// DNSAssignment is the name of one of a port's addresses, as Neutron's
// dns_assignment shows it.
type DNSAssignment struct {
	Hostname  string `json:"hostname"`
	IPAddress string `json:"ip_address"`
	FQDN      string `json:"fqdn"`
}

// ExtraDHCPOpt is one extra DHCP option of a port: a dnsmasq option name
// or decimal code, its value in dnsmasq's text form, and the DHCP it is for
// (4 or 6).
type ExtraDHCPOpt struct {
	OptName   string `json:"opt_name"`
	OptValue  string `json:"opt_value"`
	IPVersion int    `json:"ip_version"`
}

// PortBinding is Neutron's binding extension on a port. HostID, VNICType
// and Profile are stored as requested; the host a port is bound to and
// its VIF are rendered (see the service's bindings.go). The admin-only
// ones are nil for other callers, which omits them.
type PortBinding struct {
	HostID     *string        `json:"binding:host_id,omitzero"`
	VNICType   string         `json:"binding:vnic_type,omitzero"`
	Profile    map[string]any `json:"binding:profile,omitzero"`
	VIFType    string         `json:"binding:vif_type,omitzero"`
	VIFDetails map[string]any `json:"binding:vif_details,omitzero"`
}

// Instance is nsnet's stand-in for a VM: a named network namespace with lo
// up, into which ports are plugged.
type Instance struct {
	ID           string `json:"id"`
	Name         string `json:"name"`
	ProjectID    string `json:"project_id"`
	TenantID     string `json:"tenant_id"`
	Status       string `json:"status"`
	StatusReason string `json:"status_reason,omitempty"`
	// Netns is the kernel name of the instance's namespace, chosen once
	// when the instance is created and kept for its life (see
	// InstanceNetnsName): the agent reads it from here rather than
	// deriving it again.
	Netns string `json:"netns"`
	// Host is the compute host the instance runs on (a model.Host's
	// name): chosen on create, by the caller or by the scheduler, and
	// kept for the instance's life. Its ports bind to it.
	Host string `json:"host,omitempty"`
	// UserData, Meta and SSHKeys are what the metadata service
	// (169.254.169.254) gives the instance, as Nova's user_data,
	// metadata and key pairs.
	UserData string            `json:"user_data"`
	Meta     map[string]string `json:"meta"`
	SSHKeys  []string          `json:"ssh_keys"`
	Standard
}

// RBAC actions: what an RBAC policy grants its target project on a network.
const (
	ActionAccessAsShared   = "access_as_shared"
	ActionAccessAsExternal = "access_as_external"
)

// RBAC object types: what a policy shares.
const (
	RBACObjectNetwork       = "network"
	RBACObjectSecurityGroup = "security_group"
	RBACObjectSubnetPool    = "subnetpool"
	RBACObjectAddressScope  = "address_scope"
	RBACObjectAddressGroup  = "address_group"
	RBACObjectQosPolicy     = "qos_policy"
)

// RBACWildcard is the target_tenant of a policy that applies to every project.
const RBACWildcard = "*"

// RBACPolicy grants one project (or every project, "*") access to one
// object of another: a network shared with it or usable as external, or a
// security group shared with it.
type RBACPolicy struct {
	ID           string `json:"id"`
	ObjectType   string `json:"object_type"`
	ObjectID     string `json:"object_id"`
	Action       string `json:"action"`
	TargetTenant string `json:"target_tenant"`
	ProjectID    string `json:"project_id"`
	TenantID     string `json:"tenant_id"`
}

// Quota is the stored override of a project's quota limits: only the
// resources set for the project; the rest come from the daemon's defaults.
type Quota struct {
	ProjectID string         `json:"project_id"`
	Limits    map[string]int `json:"limits"`
}
