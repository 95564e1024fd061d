package model

// MeteringLabel is Neutron's L3 metering label: a named counter, kept in
// every router of its project (or of every project when Shared), of the
// traffic through the router's gateway that its rules match.
type MeteringLabel struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description"`
	Shared      bool   `json:"shared"`
	ProjectID   string `json:"project_id"`
	TenantID    string `json:"tenant_id"`
}

// MeteringLabelRule selects traffic a label counts: traffic through the
// router's gateway in Direction (ingress: into the router from the
// external network; egress: out to it) whose remote address is in
// RemoteIPPrefix, or whose source and destination are in SourceIPPrefix
// and DestinationIPPrefix (each nil for any). An Excluded rule's traffic
// is never counted by the label, whatever its other rules say.
type MeteringLabelRule struct {
	ID                  string  `json:"id"`
	MeteringLabelID     string  `json:"metering_label_id"`
	Direction           string  `json:"direction"`
	Excluded            bool    `json:"excluded"`
	RemoteIPPrefix      *string `json:"remote_ip_prefix"`
	SourceIPPrefix      *string `json:"source_ip_prefix"`
	DestinationIPPrefix *string `json:"destination_ip_prefix"`
	ProjectID           string  `json:"project_id"`
	TenantID            string  `json:"tenant_id"`
}
