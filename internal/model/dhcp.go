package model

import "strings"

// DeviceOwnerDHCP is the device_owner of a network's DHCP port, as in
// Neutron: the port nsnet's DHCP and DNS servers (and, on a network with no
// router, the metadata service) answer on, in the network's qdhcp namespace.
const DeviceOwnerDHCP = "network:dhcp"

// DHCP namespaces and interfaces, named as Neutron's DHCP agent names them.
const (
	DHCPNetnsPrefix     = "qdhcp-"
	DHCPInterfacePrefix = "ns-"
)

// DefaultDNSDomain is the domain of instance names on a network whose
// dns_domain is empty.
const DefaultDNSDomain = "nsnet.internal."

// DHCPNetns is the namespace serving network id, under the agent's prefix.
func DHCPNetns(prefix, networkID string) string { return prefix + DHCPNetnsPrefix + networkID }

// DHCPInterfaceName is the namespace end of the DHCP port's veth pair.
func DHCPInterfaceName(portID string) string { return DHCPInterfacePrefix + shortID(portID) }

// DHCPDeviceID is the device_id of network id's DHCP port served by host,
// Neutron's "dhcp<host id>-<network id>".
func DHCPDeviceID(hostID, networkID string) string { return "dhcp" + hostID + "-" + networkID }

// DNSDomain is the fully qualified domain of network n's instance names:
// its dns_domain, or DefaultDNSDomain.
func DNSDomain(n Network) string {
	d := strings.ToLower(n.DNSDomain)
	if d == "" {
		return DefaultDNSDomain
	}
	if !strings.HasSuffix(d, ".") {
		d += "."
	}
	return d
}
