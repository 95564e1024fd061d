package model

import (
	"fmt"
	"strings"
)

// Kernel interface names are at most 15 bytes (IFNAMSIZ-1). nsnet follows the
// Neutron convention: a short role prefix and the first characters of the
// resource id, so an interface can be traced back to its resource by eye.
const (
	MaxIfNameLen  = 15
	idCharsInName = 11

	BridgePrefix = "nsb-"
	// VXLANPrefix names a network's VXLAN device, a port of its bridge
	// (Neutron's Linux bridge agent names it by VNI, "vxlan-<vni>"; nsnet
	// by network id, as the bridge, so the two go together by eye).
	VXLANPrefix = "nsv-"
	TapPrefix   = "tap"
	// SubportPrefix names the bridge end of a trunk subport's veth pair,
	// its interface on the host; SubportPeerPrefix the other end, where
	// the subport's frames are tagged for the parent's tap.
	SubportPrefix     = "spt"
	SubportPeerPrefix = "spv"
)

// BridgeName is the Linux bridge that carries network id on a host.
func BridgeName(networkID string) string { return BridgePrefix + shortID(networkID) }

// VXLANName is the VXLAN device that joins network id's bridge on a
// host to the other hosts that have the network.
func VXLANName(networkID string) string { return VXLANPrefix + shortID(networkID) }

// TapName is the host end of the veth pair of port id.
func TapName(portID string) string { return TapPrefix + shortID(portID) }

// SubportName is the interface of trunk subport id on the host: the end
// of its veth pair in the subport network's bridge.
func SubportName(portID string) string { return SubportPrefix + shortID(portID) }

// SubportPeerName is the other end of subport id's veth pair, which tags
// and untags its frames for the trunk parent's tap.
func SubportPeerName(portID string) string { return SubportPeerPrefix + shortID(portID) }

func shortID(id string) string {
	if len(id) > idCharsInName {
		return id[:idCharsInName]
	}
	return id
}

// MaxInstanceNameLen bounds instance names so that the namespace name
// (prefix + instance name) stays a comfortable file name and DNS label.
const MaxInstanceNameLen = 63

// InstanceNetnsName is the namespace name of an instance, chosen when it is
// created. Instance names are unique within a project; the namespace name
// must be unique on the host, so it carries the project too, after an '@'
// that instance names cannot contain: "<prefix>red@alpha". Instances of
// homeProject (nsnet's own admin project) keep the plain "<prefix>red".
// The project id goes in whole, so two projects can never get one name.
func InstanceNetnsName(prefix, homeProject, projectID, name string) string {
	if projectID == homeProject {
		return prefix + name
	}
	return prefix + name + "@" + netnsSafe(projectID)
}

// netnsSafe keeps a project id to characters that are safe in a file name
// and a shell word. Keystone's ids are hex and tokens-file ids are checked
// on load, so this only matters for ids from elsewhere.
func netnsSafe(id string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			return r
		}
		return '_'
	}, id)
}

// ValidateInterfaceName reports why name cannot be a Linux interface name,
// or nil if it can.
func ValidateInterfaceName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("must not be empty")
	case len(name) > MaxIfNameLen:
		return fmt.Errorf("%q is longer than %d bytes", name, MaxIfNameLen)
	case name == "." || name == "..":
		return fmt.Errorf("%q is not allowed", name)
	}
	for _, r := range name {
		if r <= ' ' || r == '/' || r == ':' || r >= 0x7f {
			return fmt.Errorf("%q contains %q; use letters, digits, '-', '_' or '.'", name, r)
		}
	}
	return nil
}

// ValidateInstanceName reports why name cannot name an instance (and so a
// network namespace and a DNS label), or nil if it can.
func ValidateInstanceName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("must not be empty")
	case len(name) > MaxInstanceNameLen:
		return fmt.Errorf("%q is longer than %d characters", name, MaxInstanceNameLen)
	case strings.HasPrefix(name, ".") || strings.HasPrefix(name, "-"):
		return fmt.Errorf("%q must start with a letter or digit", name)
	}
	for _, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.'
		if !ok {
			return fmt.Errorf("%q contains %q; use letters, digits, '-', '_' or '.'", name, r)
		}
	}
	return nil
}
