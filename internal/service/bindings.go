package service

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/store"
)

// Port binding (Neutron's binding extension), as it is on a host whose
// agent plugs ports as veths into a Linux bridge per network.
//
// binding:host_id, binding:vnic_type and binding:profile are stored as
// requested. A port an agent plugs itself (an instance's, a DHCP port, a
// router's) is bound to the host of what it belongs to (portHost: the
// instance's host, the network's DHCP host, the router's L3 host), derived
// and never stored twice, so a request naming another host for it is
// refused. Any other port is bound to the host an admin names: vif_type
// "bridge" on a host with an nsnet agent (the agent would plug it like the
// others), "binding_failed" on a host nsnet has no agent on or for a
// vnic_type other than normal, "unbound" without a host. As in
// Neutron's policy, host, profile and the VIF are an admin's to see and
// set; vnic_type is everyone's.

// vnicTypes are Neutron's VNIC_TYPES; nsnet can plug only "normal".
var vnicTypes = []string{"normal", "direct", "macvtap", "baremetal", "direct-physical", "virtio-forwarder",
	"smart-nic", "vdpa", "accelerator-direct", "accelerator-direct-physical", "remote-managed"}

const vnicNormal = "normal"

// Neutron's VIF types for what nsnet does: a port on a Linux bridge, or no
// binding.
const (
	vifBridge        = "bridge"
	vifUnbound       = "unbound"
	vifBindingFailed = "binding_failed"
)

// bindingSet records which binding attributes a request gave.
type bindingSet struct{ host, profile, vnic bool }

var bindingAttrs = []attr[portInput]{
	{name: "binding:host_id", post: true, put: true, set: func(p *portInput, raw json.RawMessage) error {
		host := ""
		if !isNull(raw) {
			var err error
			if host, err = parseString(raw, maxHostLen); err != nil {
				return err
			}
		}
		p.HostID, p.binding.host = &host, true
		return nil
	}},
	{name: "binding:profile", post: true, put: true, set: func(p *portInput, raw json.RawMessage) error {
		profile := map[string]any{}
		if !isNull(raw) {
			if err := json.Unmarshal(raw, &profile); err != nil || profile == nil {
				return fmt.Errorf("'%s' is not a dictionary", shown(raw))
			}
		}
		p.Profile, p.binding.profile = profile, true
		return nil
	}},
	{name: "binding:vnic_type", post: true, put: true, set: func(p *portInput, raw json.RawMessage) error {
		var v string
		if err := json.Unmarshal(raw, &v); err != nil || !slices.Contains(vnicTypes, v) {
			return fmt.Errorf("%s is not in valid_values", shown(raw))
		}
		p.VNICType, p.binding.vnic = v, true
		return nil
	}},
}

// maxHostLen is Neutron's HOST_ID_FIELD_SIZE.
const maxHostLen = 255

// pluggedHere reports whether this host's agent plugs the port itself: an
// instance's port, a network's DHCP port, a router's ports.
func pluggedHere(p *model.Port) bool {
	return p.DeviceOwner == model.DeviceOwnerCompute || p.DeviceOwner == model.DeviceOwnerDHCP || isRouterPort(p)
}

// checkBinding applies Neutron's policy to the binding attributes of a
// create or update (action) and refuses a binding nsnet could not honour
// for a port its agent plugs. It runs once the port's device is resolved.
func (s *Service) checkBinding(ctx context.Context, r store.Reader, action string, p *portInput) error {
	admin := caller(ctx).IsAdmin()
	if p.binding.host && !admin {
		return denied(action, action+":binding:host_id")
	}
	if p.binding.profile && !admin {
		return denied(action, action+":binding:profile")
	}
	if !pluggedHere(&p.Port) {
		return nil
	}
	host, err := portHost(r, &p.Port, nil)
	if err != nil {
		return err
	}
	if p.HostID != nil && *p.HostID != "" && *p.HostID != host {
		return invalidInput("port %s is plugged by the agent of host %s, binding:host_id cannot be %s", p.ID, host, *p.HostID)
	}
	if p.VNICType != "" && p.VNICType != vnicNormal {
		return invalidInput("port %s is plugged by nsnet as a veth, binding:vnic_type must be %s", p.ID, vnicNormal)
	}
	return nil
}

// binding is where a port is bound, as renderBinding shows it: its
// host, and whether nsnet has an agent there.
type binding struct {
	host  string
	known bool
}

// bindingOf reads where p is bound, for an admin (nobody else sees it);
// memo serves the ports of one list.
func (s *Service) bindingOf(ctx context.Context, r store.Reader, p *model.Port, memo hostMemo) (binding, error) {
	if !caller(ctx).IsAdmin() {
		return binding{}, nil
	}
	host, err := portHost(r, p, memo)
	if err != nil || host == "" {
		return binding{host: host}, err
	}
	known, err := s.knownHost(r, host, memo)
	return binding{host, known}, err
}

// renderBinding fills the binding attributes the caller may see.
func (s *Service) renderBinding(ctx context.Context, p *model.Port, b binding) {
	if p.VNICType == "" {
		p.VNICType = vnicNormal
	}
	if !caller(ctx).IsAdmin() {
		p.HostID, p.Profile, p.VIFType, p.VIFDetails = nil, nil, "", nil
		return
	}
	host := b.host
	p.HostID = &host
	if p.Profile == nil {
		p.Profile = map[string]any{}
	}
	p.VIFDetails = map[string]any{}
	switch {
	case host == "":
		p.VIFType = vifUnbound
	case !b.known || p.VNICType != vnicNormal:
		p.VIFType = vifBindingFailed
	default:
		p.VIFType = vifBridge
		p.VIFDetails = map[string]any{
			"connectivity": "l2",
			"bridge_name":  model.BridgeName(p.NetworkID),
			// nsnet's firewall filters the port (security groups,
			// anti-spoofing) when port security is on.
			"port_filter": p.PortSecurityEnabled,
		}
	}
}
