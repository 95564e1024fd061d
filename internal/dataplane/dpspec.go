package dataplane

import "github.com/nsnet/nsnet/internal/dataplane/dpspec"

// The kinds of kernel object nsnet wants, and their names, are described
// in internal/dataplane/dpspec, which touches no kernel, so that code that
// only decides what the kernel should hold can name them without this
// package. They are this package's own through these aliases.

type (
	BridgeSpec  = dpspec.BridgeSpec
	PortSpec    = dpspec.PortSpec
	Route       = dpspec.Route
	GatewaySpec = dpspec.GatewaySpec
	QosSpec     = dpspec.QosSpec
	VLANSpec    = dpspec.VLANSpec
	VXLANSpec   = dpspec.VXLANSpec
	FDBEntry    = dpspec.FDBEntry
	NeighEntry  = dpspec.NeighEntry
	L2Entries   = dpspec.L2Entries
)

const (
	aliasPrefix = dpspec.AliasPrefix
	HostRoot    = dpspec.HostRoot
	VXLANPort   = dpspec.VXLANPort
)

// FloodMAC is dpspec.FloodMAC.
var FloodMAC = dpspec.FloodMAC

// NetworkAlias is dpspec.NetworkAlias.
func NetworkAlias(id string) string { return dpspec.NetworkAlias(id) }

// PortAlias is dpspec.PortAlias.
func PortAlias(id string) string { return dpspec.PortAlias(id) }

// SubportAlias is dpspec.SubportAlias.
func SubportAlias(id string) string { return dpspec.SubportAlias(id) }

// VXLANAlias is dpspec.VXLANAlias.
func VXLANAlias(id string) string { return dpspec.VXLANAlias(id) }

// ParseAlias is dpspec.ParseAlias.
func ParseAlias(alias string) (kind, id string, ok bool) { return dpspec.ParseAlias(alias) }

// InstanceMarker is dpspec.InstanceMarker.
func InstanceMarker(instanceID, host string) string { return dpspec.InstanceMarker(instanceID, host) }

// ParseInstanceMarker is dpspec.ParseInstanceMarker.
func ParseInstanceMarker(marker string) (instanceID, host string, ok bool) {
	return dpspec.ParseInstanceMarker(marker)
}

// RouterMarker is dpspec.RouterMarker.
func RouterMarker(routerID, host string) string { return dpspec.RouterMarker(routerID, host) }

// ParseRouterMarker is dpspec.ParseRouterMarker.
func ParseRouterMarker(marker string) (routerID, host string, ok bool) {
	return dpspec.ParseRouterMarker(marker)
}

// DHCPMarker is dpspec.DHCPMarker.
func DHCPMarker(networkID, host string) string { return dpspec.DHCPMarker(networkID, host) }

// ParseDHCPMarker is dpspec.ParseDHCPMarker.
func ParseDHCPMarker(marker string) (networkID, host string, ok bool) {
	return dpspec.ParseDHCPMarker(marker)
}

// AssignRoutes is dpspec.AssignRoutes.
func AssignRoutes(ports []PortSpec, routes []Route) ([]PortSpec, error) {
	return dpspec.AssignRoutes(ports, routes)
}

// SortFDB is dpspec.SortFDB.
func SortFDB(entries []FDBEntry) { dpspec.SortFDB(entries) }

// CompareFDB is dpspec.CompareFDB.
func CompareFDB(a, b FDBEntry) int { return dpspec.CompareFDB(a, b) }

// CompareNeigh is dpspec.CompareNeigh.
func CompareNeigh(a, b NeighEntry) int { return dpspec.CompareNeigh(a, b) }
