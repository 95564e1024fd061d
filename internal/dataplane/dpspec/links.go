package dpspec

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
)

// BridgeSpec is a Linux bridge as nsnet wants it.
type BridgeSpec struct {
	Name  string
	Alias string
	MTU   int
	Up    bool
	// NoIPv6 turns IPv6 off on the bridge itself (disable_ipv6), as
	// Neutron's Linux bridge agent does: the host only switches the
	// network's IPv6, and never configures an address or a default route
	// from a tenant router's advertisements, nor announces itself there.
	// dataplane.Links must know their namespace (SetNamespace).
	NoIPv6 bool
}

// PortSpec is a veth pair as nsnet wants it: the host end (TapName)
// enslaved to Bridge, the other end (IfName) in an instance namespace with
// the port's MAC, addresses and routes. Both ends carry Alias.
type PortSpec struct {
	TapName string
	Bridge  string
	Alias   string
	MTU     int
	Up      bool
	IfName  string
	MAC     net.HardwareAddr
	Addrs   []netip.Prefix // address with the prefix length of its subnet
	Routes  []Route
	// DHCPClient leaves the instance end's addresses and routes to the
	// instance (a DHCP client in it): nsnet sets only the link, and
	// removes only the routes it installed itself (and, through
	// dataplane.DropPortAddrs, the addresses it set before).
	DHCPClient bool
	// Hairpin makes the bridge send frames back out of the tap they came
	// in by: on a network whose gateway is the host, an instance reaching
	// its own published port is translated back to itself.
	Hairpin bool
	// AcceptRA leaves IPv6 autoconfiguration to the namespace's kernel, as
	// a VM's: router advertisements are accepted (accept_ra, autoconf),
	// so the kernel makes the SLAAC address and the default route, and
	// nsnet leaves the addresses it made (dynamic ones, with lifetimes)
	// alone. Off, on a port with IPv6 addresses, both sysctls are off:
	// nsnet sets every address and route itself, and a router's
	// interface never takes a route from a neighbour's advertisement.
	AcceptRA bool
	// NetworkIPv6 says an instance's port is on a network with an IPv6
	// subnet: its instance end sends router solicitations and checks its
	// addresses for duplicates, as on any host, also in a namespace the
	// previous nsnet made without (dataplane.LegacyInstanceSysctls). On
	// an IPv4-only network its firewall drops both (firewall.Port's
	// IPv4Only), nothing there answering. Router and DHCP namespaces
	// keep the kernel's defaults: their ports leave it unset.
	NetworkIPv6 bool
}

// Route is a route in the instance's main table, out of the port.
type Route struct {
	Dst netip.Prefix
	Gw  netip.Addr
}

func (r Route) String() string { return r.Dst.String() + " via " + r.Gw.String() }

// QosSpec is a port's bandwidth limits, in kbit/s and kbit; a zero rate
// means no limit that way. The directions are Neutron's, seen from the
// network: Egress is what the instance sends, Ingress what it receives.
type QosSpec struct {
	EgressKbps, EgressBurstKbit   int
	IngressKbps, IngressBurstKbit int
}

// AssignRoutes returns ports with each of routes added to the port whose
// addresses' prefixes contain the route's next hop: the interface the
// kernel would send it out of. A route whose next hop no port reaches is
// an error, as Neutron refuses it.
func AssignRoutes(ports []PortSpec, routes []Route) ([]PortSpec, error) {
	out := make([]PortSpec, len(ports))
	for i, p := range ports {
		out[i] = p
		out[i].Routes = slices.Clone(p.Routes)
	}
	var errs []error
	for _, r := range routes {
		i := slices.IndexFunc(out, func(p PortSpec) bool {
			return slices.ContainsFunc(p.Addrs, func(a netip.Prefix) bool { return a.Masked().Contains(r.Gw) })
		})
		if i < 0 {
			errs = append(errs, fmt.Errorf("route %s: no interface reaches the next hop", r))
			continue
		}
		out[i].Routes = append(out[i].Routes, r)
	}
	return out, errors.Join(errs...)
}

// GatewaySpec is a router's gateway port as nsnet wants it.
type GatewaySpec struct {
	// Port is the qg- pair on the external network's bridge: its fixed
	// IPs with their subnet's prefix length, and routes (the default
	// route via the external gateway).
	Port PortSpec
	// FloatingIPs are the floating addresses the router answers for on
	// qg-, as /32s next to the fixed IPs.
	FloatingIPs []netip.Addr
}

// VLANSpec is a trunk subport on the host. Linux bridge's trunk driver
// makes a VLAN device on the parent's tap; kernels without 802.1Q
// support (CONFIG_VLAN_8021Q, as on nsnet's reference hosts) have none,
// so nsnet does the same with what every kernel it runs on has: a veth
// pair per subport, Name in the subport network's bridge and Peer free,
// and two tc BPF programs (cls_bpf, direct action) that move frames
// between Peer and the parent's tap (Parent): frames the instance sends
// on its link tagged with VID lose the tag and leave by Peer into the
// bridge; the bridge's frames for the subport arrive on Peer and leave by
// the tap tagged with VID. Untagged frames go on to the parent's bridge
// as before. Name is the subport's interface on the host: the firewall
// filters it as it filters a tap.
type VLANSpec struct {
	Name   string
	Peer   string
	Parent string
	VID    int
	Bridge string
	Alias  string
	MTU    int
	Up     bool
}
