package model

// Agent types as Neutron names them: tempest and clients look agents up by
// these strings.
const (
	AgentTypeL3       = "L3 agent"
	AgentTypeDHCP     = "DHCP agent"
	AgentTypeMetadata = "Metadata agent"
	// AgentTypeLinuxBridge is the L2 role: nsnet, like Neutron's Linux
	// bridge agent, plugs ports as veths into a Linux bridge per network
	// and filters them with nftables.
	AgentTypeLinuxBridge = "Linux bridge agent"
)

// AgentBinary is the program every nsnet agent role runs in: the agent
// inside `nsnet daemon`.
const AgentBinary = "nsnet-agent"

// DefaultAvailabilityZone is the zone of every agent, network and router
// while nsnet runs on one host: Neutron's default, "nova".
const DefaultAvailabilityZone = "nova"

// AgentTimeFormat is how Neutron shows an agent's timestamps (UTC, no zone).
const AgentTimeFormat = "2006-01-02 15:04:05"

// Agent is one role of a host's agent, as Neutron's agent resource shows
// it. The record is written by the daemon when it starts (registration);
// an admin may change admin_state_up and description. Alive and the
// heartbeat are not stored: they come from the running agent's last full
// pass.
type Agent struct {
	ID                 string         `json:"id"`
	AgentType          string         `json:"agent_type"`
	Binary             string         `json:"binary"`
	Host               string         `json:"host"`
	Topic              string         `json:"topic"`
	AdminStateUp       bool           `json:"admin_state_up"`
	Alive              bool           `json:"alive"`
	HeartbeatTimestamp string         `json:"heartbeat_timestamp"`
	CreatedAt          string         `json:"created_at"`
	StartedAt          string         `json:"started_at"`
	Configurations     map[string]any `json:"configurations"`
	// AvailabilityZone is set for the roles that schedule resources (L3
	// and DHCP), null for the others, as in Neutron.
	AvailabilityZone *string `json:"availability_zone"`
	Description      *string `json:"description"`
	// ResourcesSynced is Neutron's placement sync flag; nsnet reports no
	// resources to placement: null.
	ResourcesSynced *bool `json:"resources_synced"`
}

// AvailabilityZone is one entry of GET /v2.0/availability_zones: a zone
// and the kind of resource it can host.
type AvailabilityZone struct {
	Name     string `json:"name"`
	Resource string `json:"resource"`
	State    string `json:"state"`
}
