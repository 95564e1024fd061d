package model

// Device owners of ports that routers and floating IPs own, as Neutron
// spells them.
const (
	DeviceOwnerRouterInterface = "network:router_interface"
	DeviceOwnerRouterGateway   = "network:router_gateway"
	DeviceOwnerFloatingIP      = "network:floatingip"
)

// Interface and namespace prefixes of routers (Neutron's L3 agent names).
const (
	RouterInterfacePrefix = "qr-"
	RouterGatewayPrefix   = "qg-"
	RouterNetnsPrefix     = "qrouter-"
)

// RouterInterfaceName is the router-side end of an interface port.
func RouterInterfaceName(portID string) string { return RouterInterfacePrefix + shortID(portID) }

// RouterGatewayName is the router-side end of the gateway port.
func RouterGatewayName(portID string) string { return RouterGatewayPrefix + shortID(portID) }

// RouterNetns is the namespace of router id, under the agent's prefix.
func RouterNetns(prefix, routerID string) string { return prefix + RouterNetnsPrefix + routerID }

// ExternalGatewayInfo connects a router to an external network.
type ExternalGatewayInfo struct {
	NetworkID        string    `json:"network_id"`
	EnableSNAT       bool      `json:"enable_snat"`
	ExternalFixedIPs []FixedIP `json:"external_fixed_ips"`
}

// Router is a qrouter namespace: it routes between the subnets of its
// interface ports (device_owner network:router_interface, device_id the
// router) and, with a gateway, NATs them out of its qg- port (the port with
// device_owner network:router_gateway and device_id the router, as in
// Neutron, which keeps that port out of the router's attributes).
type Router struct {
	ID                  string               `json:"id"`
	Name                string               `json:"name"`
	ProjectID           string               `json:"project_id"`
	TenantID            string               `json:"tenant_id"`
	AdminStateUp        bool                 `json:"admin_state_up"`
	Status              string               `json:"status"`
	StatusReason        string               `json:"nsnet:status_reason,omitempty"`
	ExternalGatewayInfo *ExternalGatewayInfo `json:"external_gateway_info"`
	Routes              []HostRoute          `json:"routes"`
	// AvailabilityZoneHints are the zones the router may be hosted in;
	// AvailabilityZones those of the L3 agents hosting it (rendered).
	AvailabilityZoneHints []string `json:"availability_zone_hints"`
	AvailabilityZones     []string `json:"availability_zones"`
	// L3Unscheduled records that an admin removed the router from its
	// host's L3 agent (l3_agent_scheduler): the agent builds no qrouter
	// namespace for it until it is added again. Stored, never shown.
	L3Unscheduled bool `json:"nsnet:l3_unscheduled,omitzero"`
	// L3Waiting records that no network node could take the router
	// when it was made (it is L3Unscheduled too): the scheduler places
	// it when one can (service.ScheduleWaiting), which it does not for
	// one an admin removed. Stored, never shown.
	L3Waiting bool `json:"nsnet:l3_waiting,omitzero"`
	// L3Host is the network node whose L3 agent hosts the router (a
	// model.Host's name), chosen by the scheduler. Stored, never shown.
	L3Host string `json:"nsnet:l3_host,omitzero"`
	// Helpers are the router's conntrack helpers (l3-conntrack-helper),
	// kept in its record: they live and die with it. Stored, never shown;
	// ConntrackHelpers is how the body shows them
	// (expose-l3-conntrack-helper), rendered, never stored.
	Helpers          []ConntrackHelper       `json:"nsnet:conntrack_helpers,omitempty"`
	ConntrackHelpers []RouterConntrackHelper `json:"conntrack_helpers,omitzero"`
	Standard
}

// ConntrackHelper assigns a kernel conntrack helper to new connections of
// Protocol to Port through its router (/v2.0/routers/{id}/conntrack_helpers).
type ConntrackHelper struct {
	ID       string `json:"id"`
	Protocol string `json:"protocol"`
	Port     int    `json:"port"`
	Helper   string `json:"helper"`
}

// RouterConntrackHelper is a conntrack helper as its router's body shows
// it: without its id.
type RouterConntrackHelper struct {
	Protocol string `json:"protocol"`
	Port     int    `json:"port"`
	Helper   string `json:"helper"`
}

// FloatingIP is a public address on an external network, translated 1:1 to
// a port's fixed address by the router that connects the two. The address
// is held by a port on the external network (device_owner
// network:floatingip, device_id the floating IP).
type FloatingIP struct {
	ID                string  `json:"id"`
	ProjectID         string  `json:"project_id"`
	TenantID          string  `json:"tenant_id"`
	Status            string  `json:"status"`
	FloatingNetworkID string  `json:"floating_network_id"`
	FloatingIPAddress string  `json:"floating_ip_address"`
	RouterID          *string `json:"router_id"`
	PortID            *string `json:"port_id"`
	FixedIPAddress    *string `json:"fixed_ip_address"`
	// PortForwardings are the floating IP's port forwardings as its body
	// shows them (expose-port-forwarding-in-fip); rendered, never stored.
	PortForwardings []FIPPortForwarding `json:"port_forwardings"`
	// PortDetails describes the associated port (fip-port-details): null
	// when there is none; rendered, never stored.
	PortDetails *FIPPortDetails `json:"port_details"`
	Standard
}

// FIPPortDetails is Neutron's port_details of a floating IP: the
// associated port's attributes a floating IP's owner may want without
// reading the port itself.
type FIPPortDetails struct {
	Name         string `json:"name"`
	NetworkID    string `json:"network_id"`
	MACAddress   string `json:"mac_address"`
	AdminStateUp bool   `json:"admin_state_up"`
	Status       string `json:"status"`
	DeviceID     string `json:"device_id"`
	DeviceOwner  string `json:"device_owner"`
}

// FloatingIPPool is one subnet floating IPs may be taken from
// (floatingip-pools): an IPv4 subnet of an external network.
type FloatingIPPool struct {
	SubnetID   string `json:"subnet_id"`
	SubnetName string `json:"subnet_name"`
	NetworkID  string `json:"network_id"`
	CIDR       string `json:"cidr"`
	ProjectID  string `json:"project_id"`
	TenantID   string `json:"tenant_id"`
}

// FIPPortForwarding is a port forwarding in a floating IP's body: Neutron's
// short form, the ports or (for a range) the port ranges.
type FIPPortForwarding struct {
	Protocol          string `json:"protocol"`
	InternalIPAddress string `json:"internal_ip_address"`
	InternalPort      *int   `json:"internal_port,omitempty"`
	ExternalPort      *int   `json:"external_port,omitempty"`
	InternalPortRange string `json:"internal_port_range,omitempty"`
	ExternalPortRange string `json:"external_port_range,omitempty"`
}

// PortForwarding maps external_port(_range) of a floating IP to
// internal_port(_range) of a port's fixed address. FloatingIPID is kept
// for the store; the API, like Neutron, does not show it (the floating IP
// is in the path), so the service clears it.
type PortForwarding struct {
	ID                string `json:"id"`
	FloatingIPID      string `json:"floatingip_id,omitempty"`
	ProjectID         string `json:"project_id"`
	Protocol          string `json:"protocol"`
	ExternalPort      *int   `json:"external_port"`
	InternalPort      *int   `json:"internal_port"`
	ExternalPortRange string `json:"external_port_range,omitempty"`
	InternalPortRange string `json:"internal_port_range,omitempty"`
	InternalIPAddress string `json:"internal_ip_address"`
	InternalPortID    string `json:"internal_port_id"`
	Description       string `json:"description"`
}

// PublishedPort sends connections to a protocol and host port (range) on
// any address of the host to an address and port (range) on a network
// whose gateway is the host (nsnet:host_gateway): docker's -p 8080:80.
type PublishedPort struct {
	ID                string `json:"id"`
	ProjectID         string `json:"project_id"`
	Protocol          string `json:"protocol"`
	HostPort          *int   `json:"host_port"`
	HostPortRange     string `json:"host_port_range,omitempty"`
	InternalIPAddress string `json:"internal_ip_address"`
	InternalPortID    string `json:"internal_port_id"`
	InternalPort      *int   `json:"internal_port"`
	InternalPortRange string `json:"internal_port_range,omitempty"`
	Description       string `json:"description"`
}

// IsRouterOwner reports whether device_owner owner makes a port one of a
// router's: its interface on a subnet, or its gateway.
func IsRouterOwner(owner string) bool {
	return owner == DeviceOwnerRouterInterface || owner == DeviceOwnerRouterGateway
}
