package model

// QoS rule types (Neutron's qos_consts.RULE_TYPE_*): nsnet enforces the two
// the Linux bridge agent has, a bandwidth limit per direction and DSCP
// marking of what an instance sends. Minimum bandwidth rules are stored
// and served, as Neutron's API does whatever its drivers, but no port or
// network may have one in effect (see docs/QOS.md).
const (
	QosRuleBandwidthLimit   = "bandwidth_limit"
	QosRuleDSCPMarking      = "dscp_marking"
	QosRuleMinimumBandwidth = "minimum_bandwidth"

	QosDirectionEgress  = "egress"
	QosDirectionIngress = "ingress"
)

// QosPolicy is Neutron's QoS policy: a set of rules that ports and
// networks point to by qos_policy_id. Its rules are stored inside it, so a
// policy and its rules change in one write.
type QosPolicy struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	ProjectID string `json:"project_id"`
	TenantID  string `json:"tenant_id"`
	// IsDefault makes the policy the one a network of its project gets
	// when it is created without a qos_policy_id (qos-default); one per
	// project.
	IsDefault bool `json:"is_default"`
	// Shared is not stored: see SubnetPool.Shared.
	Shared bool      `json:"shared"`
	Rules  []QosRule `json:"rules"`
	Standard
}

// QosRule is one rule of a policy. Which fields it has depends on Type;
// the others are nil and not shown.
type QosRule struct {
	ID          string `json:"id"`
	Type        string `json:"type"`
	QosPolicyID string `json:"qos_policy_id"`
	// bandwidth_limit: kbit/s, and the burst in kbit (0: 80% of the
	// rate, as Neutron's agents default it).
	MaxKbps      *int   `json:"max_kbps,omitempty"`
	MaxBurstKbps *int   `json:"max_burst_kbps,omitempty"`
	Direction    string `json:"direction,omitempty"`
	// dscp_marking: the DSCP value set on what the port sends.
	DSCPMark *int `json:"dscp_mark,omitempty"`
	// minimum_bandwidth: kbit/s (with Direction).
	MinKbps *int `json:"min_kbps,omitempty"`
}

// QosRuleType is one entry of /v2.0/qos/rule-types; Drivers only when one
// type is shown (qos-rule-type-details).
type QosRuleType struct {
	Type    string          `json:"type"`
	Drivers []QosRuleDriver `json:"drivers,omitempty"`
}

// QosRuleDriver says which parameters of a rule type a driver supports.
type QosRuleDriver struct {
	Name                string             `json:"name"`
	SupportedParameters []QosRuleParameter `json:"supported_parameters"`
}

// QosRuleParameter is one parameter: a range ({start, end}) or choices.
type QosRuleParameter struct {
	Name   string `json:"parameter_name"`
	Type   string `json:"parameter_type"`
	Values any    `json:"parameter_values"`
}

// BandwidthLimitRule is how a bandwidth_limit rule shows below its policy
// (/v2.0/qos/policies/{id}/bandwidth_limit_rules): without its type and
// policy, which the path says.
type BandwidthLimitRule struct {
	ID           string `json:"id"`
	MaxKbps      int    `json:"max_kbps"`
	MaxBurstKbps int    `json:"max_burst_kbps"`
	Direction    string `json:"direction"`
}

// DSCPMarkingRule: see BandwidthLimitRule.
type DSCPMarkingRule struct {
	ID       string `json:"id"`
	DSCPMark int    `json:"dscp_mark"`
}

// MinimumBandwidthRule: see BandwidthLimitRule.
type MinimumBandwidthRule struct {
	ID        string `json:"id"`
	MinKbps   int    `json:"min_kbps"`
	Direction string `json:"direction"`
}

func deref(p *int) int {
	if p == nil {
		return 0
	}
	return *p
}

// BandwidthLimitView shows r as its sub-resource.
func BandwidthLimitView(r QosRule) BandwidthLimitRule {
	return BandwidthLimitRule{ID: r.ID, MaxKbps: deref(r.MaxKbps), MaxBurstKbps: deref(r.MaxBurstKbps), Direction: r.Direction}
}

// DSCPMarkingView shows r as its sub-resource.
func DSCPMarkingView(r QosRule) DSCPMarkingRule {
	return DSCPMarkingRule{ID: r.ID, DSCPMark: deref(r.DSCPMark)}
}

// MinimumBandwidthView shows r as its sub-resource.
func MinimumBandwidthView(r QosRule) MinimumBandwidthRule {
	return MinimumBandwidthRule{ID: r.ID, MinKbps: deref(r.MinKbps), Direction: r.Direction}
}
