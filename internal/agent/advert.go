package agent

import (
	"net/netip"
	"slices"

	"github.com/nsnet/nsnet/internal/dataplane/dpspec"
	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/radv"
)

// Router advertisements, as Neutron's L3 agent has radvd send them: from
// every qr- port on a subnet with an ipv6_ra_mode, advertising the
// prefixes of all such subnets of the port, the network's MTU and, for
// SLAAC subnets, their DNS servers, at the L3 agent's intervals with
// radvd's router lifetime for them (radv.ForSubnets,
// radv.NeutronRouterLifetime).

// advertSpec is what one qr- port advertises. Like networkService, it is
// handed to a running server each pass rather than diffed: a server
// advertises a new configuration at once, and only a changed one.
type advertSpec struct {
	IfName string
	Alias  string // the port's, to find its link
	Config *radv.Config
}

// advertFor is the advertisement of qr- port p (its veth as computed),
// nil when none of its subnets asks for one or the port is down (there is
// no link to advertise on).
func advertFor(p model.Port, veth dpspec.PortSpec, n model.Network, subnets map[string]model.Subnet) *advertSpec {
	if !veth.Up {
		return nil
	}
	var subs []radv.Subnet
	seen := map[string]bool{}
	for _, ip := range p.FixedIPs {
		sn, ok := subnets[ip.SubnetID]
		if !ok || sn.IPVersion != 6 || seen[sn.ID] || deref(sn.IPv6RAMode) == "" {
			continue
		}
		seen[sn.ID] = true
		prefix, err := netip.ParsePrefix(sn.CIDR)
		if err != nil {
			continue
		}
		s := radv.Subnet{Prefix: prefix.Masked(), RAMode: *sn.IPv6RAMode}
		for _, d := range sn.DNSNameservers {
			if a, err := netip.ParseAddr(d); err == nil {
				s.DNS = append(s.DNS, a)
			}
		}
		subs = append(subs, s)
	}
	cfg := radv.ForSubnets(subs, networkMTU(n), radv.NeutronRouterLifetime)
	if cfg == nil {
		return nil
	}
	return &advertSpec{IfName: veth.IfName, Alias: veth.Alias, Config: cfg}
}

// sameAdvert reports whether two configurations advertise the same.
func sameAdvert(a, b *radv.Config) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Managed == b.Managed && a.Other == b.Other && a.RouterLifetime == b.RouterLifetime &&
		a.HopLimit == b.HopLimit && a.MTU == b.MTU && slices.Equal(a.Prefixes, b.Prefixes) &&
		slices.Equal(a.RDNSS, b.RDNSS) && slices.Equal(a.DNSSL, b.DNSSL) && a.DNSLifetime == b.DNSLifetime &&
		a.MinInterval == b.MinInterval && a.MaxInterval == b.MaxInterval
}
