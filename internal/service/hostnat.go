package service

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"unicode"

	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/store"
)

// The nsnet network attributes that reach the host (docs/NAT.md): which
// host interface a network is connected upstream by, and whether the host
// itself is its gateway. They change the host, not a tenant's world, so
// only an admin may set them, like router:external.
const (
	attrUplink      = "nsnet:uplink"
	attrHostGateway = "nsnet:host_gateway"
	attrSNATAddress = "nsnet:snat_address"
)

var hostNetworkAttrs = []attr[model.Network]{
	{name: attrUplink, post: true, put: true, set: func(n *model.Network, raw json.RawMessage) error {
		if isNull(raw) {
			n.Uplink = nil
			return nil
		}
		s, err := parseString(raw, maxNameLen)
		if err != nil {
			return err
		}
		if err := validIfName(s); err != nil {
			return err
		}
		n.Uplink = &s
		return nil
	}},
	boolAttr(attrHostGateway, true, true, func(n *model.Network) *bool { return &n.HostGateway }),
	{name: attrSNATAddress, post: true, put: true, set: func(n *model.Network, raw json.RawMessage) error {
		if isNull(raw) {
			n.SNATAddress = nil
			return nil
		}
		s, err := parseString(raw, maxNameLen)
		if err != nil {
			return err
		}
		a, err := parseAddr(s)
		if err != nil {
			return err
		}
		if !a.Is4() {
			return fmt.Errorf("'%s' is not an IPv4 address", s)
		}
		s = a.String()
		n.SNATAddress = &s
		return nil
	}},
}

// validIfName accepts what the kernel accepts as an interface name
// (dev_valid_name): 1 to 15 bytes, not "." or "..", no '/', ':' or
// whitespace.
func validIfName(s string) error {
	switch {
	case s == "":
		return fmt.Errorf("an interface name cannot be empty")
	case len(s) > 15:
		return fmt.Errorf("'%s' is longer than the 15 characters of an interface name", s)
	case s == "." || s == "..":
		return fmt.Errorf("'%s' is not a valid interface name", s)
	case strings.ContainsAny(s, "/:"):
		return fmt.Errorf("'%s' is not a valid interface name: it contains '/' or ':'", s)
	case strings.IndexFunc(s, unicode.IsSpace) >= 0:
		return fmt.Errorf("'%s' is not a valid interface name: it contains whitespace", s)
	}
	return nil
}

// hostAttrGiven reports whether a request body sets an attribute that
// only an admin may set.
func hostAttrGiven(in Attrs) (string, bool) {
	for _, name := range []string{attrUplink, attrHostGateway, attrSNATAddress} {
		if _, ok := in[name]; ok {
			return name, true
		}
	}
	return "", false
}

// checkHostAttrs checks the host attributes of n, as it would be stored,
// against each other and against the other networks:
//
//   - an uplink is bridged into a router:external network, or routed out
//     of by a host-gateway one; on any other network it means nothing;
//   - a network is not both (an external network is reached upstream by
//     bridging; the host as its gateway would put the uplink on one side
//     and the gateway on the other);
//   - a fixed SNAT address needs a host-gateway network with an uplink;
//   - an interface has one master: an uplink bridged into one network is
//     neither bridged into another nor routed out of by a host gateway.
func checkHostAttrs(r store.Reader, n *model.Network) error {
	switch {
	case n.HostGateway && n.RouterExternal:
		return invalidInput("%s cannot be set on a router:external network: it is connected upstream by bridging %s", attrHostGateway, attrUplink)
	case n.Uplink != nil && !n.HostGateway && !n.RouterExternal:
		return invalidInput("%s needs a router:external network (bridged) or %s (routed)", attrUplink, attrHostGateway)
	case n.SNATAddress != nil && (!n.HostGateway || n.Uplink == nil):
		return invalidInput("%s needs %s and %s", attrSNATAddress, attrHostGateway, attrUplink)
	}
	if n.Uplink == nil && !n.HostGateway {
		return nil // nothing to compare: the common case costs no read
	}
	all, err := store.List[model.Network](r, store.Networks)
	if err != nil {
		return err
	}
	if n.HostGateway {
		mine, err := subnetsOn(r, n.ID)
		if err != nil {
			return err
		}
		for _, sn := range mine {
			if sn.IPVersion == 6 {
				return invalidInput("%s cannot be set on a network with an IPv6 subnet (%s): the host routes and translates IPv4 only; connect IPv6 through a router", attrHostGateway, sn.CIDR)
			}
		}
		if err := checkHostRoutes(r, all, n.ID, mine); err != nil {
			return err
		}
	}
	if n.Uplink == nil {
		return nil
	}
	for _, o := range all {
		if o.ID == n.ID || o.Uplink == nil || *o.Uplink != *n.Uplink {
			continue
		}
		if n.RouterExternal || o.RouterExternal {
			return conflict("UplinkInUse", "Interface %s is already the uplink of network %s; an interface bridged into a network cannot be the uplink of another.", *n.Uplink, o.ID)
		}
	}
	return nil
}

// errHostGatewayIPv6 refuses an IPv6 subnet on a host-gateway network.
// The host is such a network's router, and it routes and translates
// IPv4 only: its bridges take no part in IPv6 (no address, no
// forwarding), and making the host forward IPv6 would change its own
// IPv6 (a forwarding Linux host stops accepting router advertisements on
// its uplinks). An IPv6 subnet there would give instances addresses that
// reach nothing beyond the bridge; a router gives them IPv6 instead.
func errHostGatewayIPv6() error {
	return invalidInput("ip_version 6 is not supported on a network with %s: the host routes and translates IPv4 only; connect IPv6 through a router", attrHostGateway)
}

// checkHostGatewayUnused refuses to turn off the host gateway of network
// id while published ports send connections into it.
func checkHostGatewayUnused(r store.Reader, id string) error {
	subnets, err := subnetsOn(r, id)
	if err != nil {
		return err
	}
	published, err := store.List[model.PublishedPort](r, store.PublishedPorts)
	if err != nil {
		return err
	}
	for _, pp := range published {
		a, err := netip.ParseAddr(pp.InternalIPAddress)
		if err != nil {
			continue
		}
		for _, sn := range subnets {
			if p, err := netip.ParsePrefix(sn.CIDR); err == nil && p.Contains(a) {
				return conflict("HostGatewayInUse", "Network %s cannot stop having the host as its gateway: published port %s sends connections to %s on it.", id, pp.ID, a)
			}
		}
	}
	return nil
}

// checkHostRoutes refuses subnets of host-gateway network networkID that
// overlap a subnet of another host-gateway network: the host's routing
// table has one connected route per prefix, and its nsnet table one
// hairpin entry.
func checkHostRoutes(r store.Reader, networks []model.Network, networkID string, subnets []model.Subnet) error {
	hostGateway := map[string]bool{}
	for _, n := range networks {
		hostGateway[n.ID] = n.HostGateway && n.ID != networkID
	}
	others, err := store.List[model.Subnet](r, store.Subnets)
	if err != nil {
		return err
	}
	for _, sn := range subnets {
		p, err := netip.ParsePrefix(sn.CIDR)
		if err != nil {
			continue
		}
		for _, o := range others {
			if !hostGateway[o.NetworkID] {
				continue
			}
			if op, err := netip.ParsePrefix(o.CIDR); err == nil && op.Overlaps(p) {
				return invalidInput("subnet %s of a network whose gateway is the host overlaps subnet %s (%s) of network %s, whose gateway is the host too",
					sn.CIDR, o.ID, o.CIDR, o.NetworkID)
			}
		}
	}
	return nil
}
