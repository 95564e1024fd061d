package agent

import (
	"github.com/nsnet/nsnet/internal/dataplane/dpspec"
	"github.com/nsnet/nsnet/internal/model"
)

// addPortQos gives each instance port the bandwidth limits and DSCP mark
// of its QoS policy: its own qos_policy_id, or else its network's, as Neutron's QoS
// plugin resolves them for a compute port. The limits are part of the
// port's spec, so a policy or rule change reprograms the ports it reaches,
// and every full pass checks them (drift repaired, restart changes
// nothing).
func addPortQos(d *desired, s *snapshot, networks map[string]model.Network) {
	policies := make(map[string]model.QosPolicy, len(s.qos))
	for _, p := range s.qos {
		policies[p.ID] = p
	}
	for _, p := range s.ports {
		portQos(d, p, policies, networks)
	}
}

// portQos adds the QoS of port p, when it is an instance's port.
func portQos(d *desired, p model.Port, policies map[string]model.QosPolicy, networks map[string]model.Network) {
	spec, ok := d.ports[p.ID]
	if !ok || spec.InstanceID == "" {
		return
	}
	id := p.QosPolicyID
	if id == nil {
		id = networks[p.NetworkID].QosPolicyID
	}
	if id == nil {
		return
	}
	pol := policies[*id]
	spec.Qos = qosSpec(pol)
	for _, r := range pol.Rules {
		if r.Type == model.QosRuleDSCPMarking && r.DSCPMark != nil {
			spec.DSCP, spec.Marked = uint8(*r.DSCPMark), true
			if d.dscp[spec.InstanceID] == nil {
				d.dscp[spec.InstanceID] = map[string]uint8{}
			}
			d.dscp[spec.InstanceID][spec.Veth.IfName] = spec.DSCP
		}
	}
	d.ports[p.ID] = spec
}

// qosSpec is what a policy's bandwidth limit rules ask of a port's veth.
func qosSpec(p model.QosPolicy) dpspec.QosSpec {
	var q dpspec.QosSpec
	for _, r := range p.Rules {
		if r.Type != model.QosRuleBandwidthLimit || r.MaxKbps == nil {
			continue
		}
		burst := 0
		if r.MaxBurstKbps != nil {
			burst = *r.MaxBurstKbps
		}
		if r.Direction == model.QosDirectionIngress {
			q.IngressKbps, q.IngressBurstKbit = *r.MaxKbps, burst
		} else {
			q.EgressKbps, q.EgressBurstKbit = *r.MaxKbps, burst
		}
	}
	return q
}
