// Package dpspec describes the kernel objects nsnet wants — bridges, veth
// ports and their routes, bandwidth limits, trunk subports, VXLAN devices
// with their forwarding and neighbour entries — and names them: the
// aliases and namespace markers that make a kernel object nsnet's.
//
// It owns those types and names and nothing else. It must not touch the
// kernel (no netlink, no namespaces, no syscalls): code that only decides
// what the kernel should hold, like the agent's desired state, uses it
// without reaching the kernel. internal/dataplane, which programs the
// kernel, takes these types (as aliases of its own) and names.
package dpspec

import "strings"

// AliasPrefix starts the alias of every link nsnet owns.
const AliasPrefix = "nsnet:"

// NetworkAlias is the alias of the bridge of network id.
func NetworkAlias(id string) string { return AliasPrefix + "network:" + id }

// PortAlias is the alias of both ends of the veth pair of port id.
func PortAlias(id string) string { return AliasPrefix + "port:" + id }

// ParseAlias splits an nsnet link alias into its kind ("network", "port")
// and resource id.
func ParseAlias(alias string) (kind, id string, ok bool) {
	rest, ok := strings.CutPrefix(alias, AliasPrefix)
	if !ok {
		return "", "", false
	}
	kind, id, ok = strings.Cut(rest, ":")
	if !ok || kind == "" || id == "" {
		return "", "", false
	}
	return kind, id, true
}

// HostRoot names the host in markers when the host is the namespace the
// daemon runs in rather than a named one.
const HostRoot = "root"

const instanceMarkerPrefix = AliasPrefix + "instance:"

// InstanceMarker is the alias of lo in the namespace of instance id, made by
// the agent whose host namespace is host ("" is the root one). The host part
// keeps agents that share a machine (tests, the multi-host simulation) from
// claiming each other's namespaces.
func InstanceMarker(instanceID, host string) string {
	return makeMarker(instanceMarkerPrefix, instanceID, host)
}

// ParseInstanceMarker is the inverse of InstanceMarker.
func ParseInstanceMarker(marker string) (instanceID, host string, ok bool) {
	return parseMarker(instanceMarkerPrefix, marker)
}

// makeMarker is the marker of the namespace of the object id of a kind
// (prefix), made by the agent of host ("" is the root namespace).
func makeMarker(prefix, id, host string) string {
	if host == "" {
		host = HostRoot
	}
	return prefix + id + ":host:" + host
}

// parseMarker is the inverse of makeMarker.
func parseMarker(prefix, marker string) (id, host string, ok bool) {
	rest, ok := strings.CutPrefix(marker, prefix)
	if !ok {
		return "", "", false
	}
	id, host, ok = strings.Cut(rest, ":host:")
	if !ok || id == "" || host == "" {
		return "", "", false
	}
	return id, host, true
}

const dhcpMarkerPrefix = AliasPrefix + "dhcp:"

// DHCPMarker is the alias of lo in the DHCP namespace of network id, made
// by the agent whose host namespace is host ("" is the root one).
func DHCPMarker(networkID, host string) string {
	return makeMarker(dhcpMarkerPrefix, networkID, host)
}

// ParseDHCPMarker is the inverse of DHCPMarker.
func ParseDHCPMarker(marker string) (networkID, host string, ok bool) {
	return parseMarker(dhcpMarkerPrefix, marker)
}

const routerMarkerPrefix = AliasPrefix + "router:"

// RouterMarker is the alias of lo in the namespace of router id, made by
// the agent whose host namespace is host ("" is the root one).
func RouterMarker(routerID, host string) string {
	return makeMarker(routerMarkerPrefix, routerID, host)
}

// ParseRouterMarker is the inverse of RouterMarker.
func ParseRouterMarker(marker string) (routerID, host string, ok bool) {
	return parseMarker(routerMarkerPrefix, marker)
}

// SubportAlias is the alias of both ends of trunk subport id's veth pair.
func SubportAlias(id string) string { return AliasPrefix + "subport:" + id }

// VXLANAlias is the alias of the VXLAN device of network id.
func VXLANAlias(id string) string { return AliasPrefix + "vxlan:" + id }
