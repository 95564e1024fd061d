package model

// Host roles: what a host's agent takes on. Compute hosts take instances;
// network nodes take routers and DHCP. A one-box daemon has both.
const (
	RoleCompute = "compute"
	RoleNetwork = "network"
)

// Host is one host of the registry (store.Hosts): written by the daemon
// running on it when it starts (or its roles, VTEP or zone change); its
// proof of life while it runs is a beat in the store's presence
// (store.Presence), no write of the record.
// Other hosts' agents read it for the VTEP address their overlay sends a
// remote port's frames to; the service reads it for scheduling and for
// agents' liveness.
type Host struct {
	// Name is the host's name (`nsnet daemon --host`), the record's id.
	Name string `json:"name"`
	// Roles are RoleCompute and/or RoleNetwork.
	Roles []string `json:"roles"`
	// VTEPAddress is the underlay address VXLAN packets for this host's
	// ports are sent to; empty on a one-box daemon (no overlay).
	VTEPAddress string `json:"vtep_address,omitempty"`
	// NetnsPrefix starts the name of every namespace the host's agent
	// makes (`nsnet daemon --netns-prefix`): an API server names an
	// instance's namespace with its host's prefix, since several hosts
	// on one machine each need their own and an agent refuses a
	// namespace outside it.
	NetnsPrefix string `json:"netns_prefix,omitempty"`
	// InterfaceMappings map physical network names to the host
	// interface each is reached by on this host (`nsnet daemon
	// --physical-interface-mappings`, the Linux bridge agent's
	// physical_interface_mappings): a flat network on a mapped physical
	// network is bridged to that interface here. Hosts may map one name
	// to differently named interfaces.
	InterfaceMappings map[string]string `json:"interface_mappings,omitempty"`
	// AvailabilityZone is the host's zone, DefaultAvailabilityZone unless
	// configured.
	AvailabilityZone string `json:"availability_zone"`
	// StartedAt and Heartbeat are RFC 3339 times (UTC): when the daemon
	// started, and its last proof of life — as stored, when the record
	// was written; as the service reads it, the newer of that and the
	// host's beat.
	StartedAt string `json:"started_at"`
	Heartbeat string `json:"heartbeat"`
}
