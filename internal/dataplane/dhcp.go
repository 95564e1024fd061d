package dataplane

import "fmt"

// A network's DHCP namespace (<prefix>qdhcp-<network id>) is made and
// marked like a router's, by the alias of its lo, and holds one veth port:
// the network's DHCP port (ns-…), whose addresses nsnet's DHCP, DNS and
// metadata servers answer on. It does not forward.

// ListDHCPNamespaces returns the namespaces whose names start with prefix
// and that carry an nsnet DHCP marker (of any host), with their markers.
func ListDHCPNamespaces(prefix string) (map[string]string, error) {
	return listMarked(prefix, ParseDHCPMarker)
}

// EnsureDHCPNetns makes the named DHCP namespace exist, marked with marker
// (see DHCPMarker), with lo up, and returns it open; the caller closes it.
// A namespace of that name without that marker is a NotOwnedError. Delete
// it with DeleteInstanceNetns, whose rules it follows.
func EnsureDHCPNetns(name, marker string) (ns *Namespace, changed bool, err error) {
	if _, _, ok := ParseDHCPMarker(marker); !ok {
		return nil, false, fmt.Errorf("%q is not a DHCP marker", marker)
	}
	return EnsureInstanceNetns(name, marker)
}

// LinkIndex returns the index of nsnet's link name (labelled alias) in ns,
// or 0 if it is missing or not nsnet's: the interface a server socket in ns
// is bound to.
func LinkIndex(ns *Namespace, name, alias string) (int, error) {
	link, err := NewLinks(ns.Handle).Get(name)
	if err != nil || link == nil || link.Attrs().Alias != alias {
		return 0, err
	}
	return link.Attrs().Index, nil
}

// Fd returns the namespace's file descriptor, for code that must run
// inside it (through internal/netns); it stays owned by n.
func (n *Namespace) Fd() int { return int(n.fd) }
