package model

import (
	"fmt"
	"net/netip"
	"strings"
)

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

// CheckDNSLabel checks that label is one DNS label (RFC 1123): 1 to 63
// letters, digits and hyphens, not starting or ending with a hyphen.
func CheckDNSLabel(label string) error {
	switch {
	case label == "":
		return fmt.Errorf("empty label")
	case len(label) > 63:
		return fmt.Errorf("label '%s' is longer than 63 characters", label)
	case label[0] == '-' || label[len(label)-1] == '-':
		return fmt.Errorf("label '%s' starts or ends with a hyphen", label)
	}
	for _, r := range label {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
			return fmt.Errorf("label '%s' has the character '%c'", label, r)
		}
	}
	return nil
}

// PortHostname is the host name nsnet's DNS and DHCP give port p's address
// addr on a network whose DNS domain is domain (fully qualified, see
// DNSDomain): its dns_name (less the domain, when fully qualified), else
// the name of its instance (instanceName, for a compute port; "" when
// none), else its own name when that is a DNS label, else Neutron's
// host-<address>.
func PortHostname(p Port, addr netip.Addr, instanceName, domain string) string {
	if name := strings.ToLower(p.DNSName); name != "" {
		if !strings.HasSuffix(name, ".") {
			return name
		}
		if host, ok := strings.CutSuffix(name, "."+domain); ok && host != "" {
			return host
		}
		// The network's domain changed since: the first label is the host.
		host, _, _ := strings.Cut(name, ".")
		return host
	}
	if p.DeviceOwner == DeviceOwnerCompute && CheckDNSLabel(instanceName) == nil {
		return strings.ToLower(instanceName)
	}
	if CheckDNSLabel(p.Name) == nil {
		return strings.ToLower(p.Name)
	}
	return "host-" + strings.NewReplacer(".", "-", ":", "-").Replace(addr.String())
}

// PortDNSAssignment is the dns_assignment of port p: the name of each of
// its addresses in nsnet's DNS, as PortHostname gives it.
func PortDNSAssignment(p Port, instanceName, domain string) []DNSAssignment {
	out := []DNSAssignment{}
	for _, ip := range p.FixedIPs {
		addr, err := netip.ParseAddr(ip.IPAddress)
		if err != nil {
			continue
		}
		host := PortHostname(p, addr, instanceName, domain)
		out = append(out, DNSAssignment{Hostname: host, IPAddress: ip.IPAddress, FQDN: host + "." + domain})
	}
	return out
}
