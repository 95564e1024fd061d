package model

// Trunk is Neutron's trunk (the trunk extension): a parent port that
// carries, besides its own untagged traffic, the traffic of its subports,
// each tagged with its VLAN id on the parent's link. Where Linux bridge's
// trunk driver makes a VLAN device per subport on the parent's tap, the
// agent gives each subport a veth pair in the subport network's bridge and
// tags and untags its frames for the tap with tc BPF programs, which works
// on kernels without 802.1Q support (see dataplane.VLANSpec).
type Trunk struct {
	ID           string    `json:"id"`
	Name         string    `json:"name"`
	ProjectID    string    `json:"project_id"`
	TenantID     string    `json:"tenant_id"`
	PortID       string    `json:"port_id"`
	AdminStateUp bool      `json:"admin_state_up"`
	Status       string    `json:"status"`
	SubPorts     []SubPort `json:"sub_ports"`
	Standard
}

// SubPort is one port of a trunk: its traffic crosses the parent's link
// tagged with SegmentationID.
type SubPort struct {
	PortID           string `json:"port_id"`
	SegmentationType string `json:"segmentation_type"`
	SegmentationID   int    `json:"segmentation_id"`
}

// TrunkDetails is a parent port's trunk_details (the trunk-details
// extension): its trunk and the subports with their MACs, which a guest
// needs to configure its VLAN interfaces.
type TrunkDetails struct {
	TrunkID  string          `json:"trunk_id"`
	SubPorts []SubPortDetail `json:"sub_ports"`
}

// SubPortDetail is a subport as trunk_details shows it.
type SubPortDetail struct {
	SubPort
	MACAddress string `json:"mac_address"`
}

// DeviceOwnerTrunkSubport is the device_owner of a port while it is a
// trunk's subport, as Neutron sets it.
const DeviceOwnerTrunkSubport = "trunk:subport"

// Trunk statuses, as Neutron names them.
const (
	TrunkStatusDown     = "DOWN"
	TrunkStatusActive   = "ACTIVE"
	TrunkStatusBuild    = "BUILD"
	TrunkStatusDegraded = "DEGRADED"
	TrunkStatusError    = "ERROR"
)
