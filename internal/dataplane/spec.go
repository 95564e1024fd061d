package dataplane

import "github.com/nsnet/nsnet/internal/dataplane/spec"

// The kinds of kernel object nsnet wants, and their names, are described
// in internal/dataplane/spec, which touches no kernel, so that code that
// only decides what the kernel should hold can name them without this
// package. They are this package's own through these aliases.

type (
	BridgeSpec  = spec.BridgeSpec
	PortSpec    = spec.PortSpec
	Route       = spec.Route
	GatewaySpec = spec.GatewaySpec
	QosSpec     = spec.QosSpec
	VLANSpec    = spec.VLANSpec
	VXLANSpec   = spec.VXLANSpec
	FDBEntry    = spec.FDBEntry
	NeighEntry  = spec.NeighEntry
	L2Entries   = spec.L2Entries
)

const (
	aliasPrefix = spec.AliasPrefix
	HostRoot    = spec.HostRoot
	VXLANPort   = spec.VXLANPort
)

// FloodMAC is spec.FloodMAC.
var FloodMAC = spec.FloodMAC

// NetworkAlias is spec.NetworkAlias.
func NetworkAlias(id string) string { return spec.NetworkAlias(id) }

// PortAlias is spec.PortAlias.
func PortAlias(id string) string { return spec.PortAlias(id) }

// SubportAlias is spec.SubportAlias.
func SubportAlias(id string) string { return spec.SubportAlias(id) }

// VXLANAlias is spec.VXLANAlias.
func VXLANAlias(id string) string { return spec.VXLANAlias(id) }

// ParseAlias is spec.ParseAlias.
func ParseAlias(alias string) (kind, id string, ok bool) { return spec.ParseAlias(alias) }

// InstanceMarker is spec.InstanceMarker.
func InstanceMarker(instanceID, host string) string { return spec.InstanceMarker(instanceID, host) }

// ParseInstanceMarker is spec.ParseInstanceMarker.
func ParseInstanceMarker(marker string) (instanceID, host string, ok bool) {
	return spec.ParseInstanceMarker(marker)
}

// RouterMarker is spec.RouterMarker.
func RouterMarker(routerID, host string) string { return spec.RouterMarker(routerID, host) }

// ParseRouterMarker is spec.ParseRouterMarker.
func ParseRouterMarker(marker string) (routerID, host string, ok bool) {
	return spec.ParseRouterMarker(marker)
}

// DHCPMarker is spec.DHCPMarker.
func DHCPMarker(networkID, host string) string { return spec.DHCPMarker(networkID, host) }

// ParseDHCPMarker is spec.ParseDHCPMarker.
func ParseDHCPMarker(marker string) (networkID, host string, ok bool) {
	return spec.ParseDHCPMarker(marker)
}

// AssignRoutes is spec.AssignRoutes.
func AssignRoutes(ports []PortSpec, routes []Route) ([]PortSpec, error) {
	return spec.AssignRoutes(ports, routes)
}

// SortFDB is spec.SortFDB.
func SortFDB(entries []FDBEntry) { spec.SortFDB(entries) }

// CompareFDB is spec.CompareFDB.
func CompareFDB(a, b FDBEntry) int { return spec.CompareFDB(a, b) }

// CompareNeigh is spec.CompareNeigh.
func CompareNeigh(a, b NeighEntry) int { return spec.CompareNeigh(a, b) }
