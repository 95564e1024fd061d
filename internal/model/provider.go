package model

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Network types nsnet has (Neutron's provider:network_type values, as the
// ML2 type drivers name them).
const (
	// NetworkTypeVXLAN is a tenant network: a bridge per host that has it,
	// joined to the other hosts' by a VXLAN device with the network's VNI.
	NetworkTypeVXLAN = "vxlan"
	// NetworkTypeFlat is a provider network: the bridge carries a physical
	// network untagged (on this host, the network's nsnet:uplink).
	NetworkTypeFlat = "flat"
	// NetworkTypeLocal is a network confined to one host: a bridge and
	// nothing beyond it.
	NetworkTypeLocal = "local"
)

// VXLAN Network Identifiers are 24 bits; 0 is not one Neutron allocates.
const (
	MinVNI = 1
	MaxVNI = 1<<24 - 1
)

// VXLANOverhead is what VXLAN over IPv4 adds to each frame: outer
// Ethernet 14, IPv4 20, UDP 8, VXLAN 8 (Neutron's 30 of encapsulation
// plus the 20 of the IPv4 header).
const VXLANOverhead = 50

// Provider is an attribute of the provider extension, which Neutron's
// policy shows to admins only: Hidden omits it from the JSON (omitzero
// asks IsZero), otherwise it is its value or null.
type Provider[T any] struct {
	Value  *T
	Hidden bool
}

// IsZero is true when the attribute is hidden, for omitzero.
func (p Provider[T]) IsZero() bool { return p.Hidden }

// MarshalJSON writes the value, or null.
func (p Provider[T]) MarshalJSON() ([]byte, error) { return json.Marshal(p.Value) }

// UnmarshalJSON reads a value or null.
func (p *Provider[T]) UnmarshalJSON(b []byte) error {
	p.Hidden = false
	if string(b) == "null" {
		p.Value = nil
		return nil
	}
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	p.Value = &v
	return nil
}

// Get is the value, or the zero T.
func (p Provider[T]) Get() T {
	if p.Value == nil {
		var zero T
		return zero
	}
	return *p.Value
}

// Of is a shown attribute holding v.
func Of[T any](v T) Provider[T] { return Provider[T]{Value: &v} }

// Segment is a network's provider attributes as one value.
type Segment struct {
	NetworkType     string
	PhysicalNetwork string
	SegmentationID  int
}

// Segment returns n's provider attributes.
func (n *Network) Segment() Segment {
	return Segment{n.NetworkType.Get(), n.PhysicalNetwork.Get(), n.SegmentationID.Get()}
}

// SetSegment stores seg as n's provider attributes, with null for what
// its type does not have.
func (n *Network) SetSegment(seg Segment) {
	n.NetworkType = Of(seg.NetworkType)
	n.PhysicalNetwork, n.SegmentationID = Provider[string]{}, Provider[int]{}
	if seg.PhysicalNetwork != "" {
		n.PhysicalNetwork = Of(seg.PhysicalNetwork)
	}
	if seg.SegmentationID != 0 {
		n.SegmentationID = Of(seg.SegmentationID)
	}
}

// HideProvider omits the provider attributes from n's JSON.
func (n *Network) HideProvider() {
	n.NetworkType.Hidden, n.PhysicalNetwork.Hidden, n.SegmentationID.Hidden = true, true, true
}

// VNIRange is an inclusive range of VNIs, as ML2's vni_ranges spells one:
// "MIN:MAX".
type VNIRange struct{ Min, Max int }

func (r VNIRange) String() string { return fmt.Sprintf("%d:%d", r.Min, r.Max) }

// ParseVNIRanges reads ML2's vni_ranges: comma-separated "MIN:MAX" ranges
// of VNIs available for tenant networks (an empty string is none).
func ParseVNIRanges(s string) ([]VNIRange, error) {
	var out []VNIRange
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		lo, hi, ok := strings.Cut(part, ":")
		if !ok {
			return nil, fmt.Errorf("VNI range %q: want MIN:MAX", part)
		}
		min, err1 := strconv.Atoi(strings.TrimSpace(lo))
		max, err2 := strconv.Atoi(strings.TrimSpace(hi))
		switch {
		case err1 != nil || err2 != nil:
			return nil, fmt.Errorf("VNI range %q: MIN and MAX must be integers", part)
		case min < MinVNI || max > MaxVNI:
			return nil, fmt.Errorf("VNI range %q: VNIs are %d through %d", part, MinVNI, MaxVNI)
		case min > max:
			return nil, fmt.Errorf("VNI range %q: MIN is above MAX", part)
		}
		out = append(out, VNIRange{min, max})
	}
	return out, nil
}

// MaxPhysicalNetworkLen is the longest physical network name Neutron
// takes (provider:physical_network).
const MaxPhysicalNetworkLen = 64

// ParseInterfaceMappings reads the Linux bridge agent's
// physical_interface_mappings: "PHYSNET:INTERFACE" pairs (given as
// separate values or comma-separated), each physical network and each
// interface named once, as Neutron's parse_mappings with unique values
// demands (an interface bridged into two networks' bridges would belong
// to neither). nil for none.
func ParseInterfaceMappings(values []string) (map[string]string, error) {
	var out map[string]string
	ifaces := map[string]string{}
	for _, v := range values {
		for _, part := range strings.Split(v, ",") {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			name, iface, ok := strings.Cut(part, ":")
			name, iface = strings.TrimSpace(name), strings.TrimSpace(iface)
			switch {
			case !ok || name == "" || iface == "":
				return nil, fmt.Errorf("mapping %q: want PHYSICAL_NETWORK:INTERFACE", part)
			case len(name) > MaxPhysicalNetworkLen:
				return nil, fmt.Errorf("mapping %q: a physical network name has at most %d characters", part, MaxPhysicalNetworkLen)
			case !ValidInterfaceName(iface):
				return nil, fmt.Errorf("mapping %q: %q is not an interface name (1 to 15 characters, no '/', ':' or space)", part, iface)
			}
			if _, dup := out[name]; dup {
				return nil, fmt.Errorf("mapping %q: physical network %s is mapped twice", part, name)
			}
			if other, dup := ifaces[iface]; dup {
				return nil, fmt.Errorf("mapping %q: interface %s is already physical network %s's", part, iface, other)
			}
			if out == nil {
				out = map[string]string{}
			}
			out[name], ifaces[iface] = iface, name
		}
	}
	return out, nil
}

// ValidInterfaceName reports whether s can name a Linux network
// interface: 1 to 15 bytes (IFNAMSIZ less its NUL), none of them '/',
// ':' or white space, and not "." or "..".
func ValidInterfaceName(s string) bool {
	if s == "" || len(s) > 15 || s == "." || s == ".." {
		return false
	}
	return !strings.ContainsAny(s, "/: \t\n\r\v\f")
}
