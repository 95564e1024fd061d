package agent

import (
	"cmp"
	"net/netip"
	"slices"

	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/nat"
)

// hostNATKey is the host's entry among the nat tables (router ids are
// UUIDs, so it meets none of theirs).
const hostNATKey = "host"

// hostNATSpec is the host namespace's share of host NAT (seeds 000–002):
// forwarding, and one nsnet table for every network whose gateway is the
// host (nsnet:host_gateway) and every published port. The gateway
// addresses are on the networks' bridges (networkSpec.Gateway).
type hostNATSpec struct {
	// Wanted: some network has the host as its gateway, or some port is
	// published. Without, the host has no nsnet table.
	Wanted bool
	NAT    nat.Spec
}

func sameHostNAT(a, b hostNATSpec) bool {
	return a.Wanted == b.Wanted && slices.Equal(a.NAT.SNAT, b.NAT.SNAT) && slices.Equal(a.NAT.Masquerade, b.NAT.Masquerade) &&
		slices.Equal(a.NAT.Hairpin, b.NAT.Hairpin) && slices.Equal(a.NAT.Publish, b.NAT.Publish)
}

// hostGateway returns the addresses a host-gateway network's bridge
// carries (each IPv4 subnet's gateway, with the subnet's prefix length)
// and the host NAT of its subnets leaving by its uplink, if it has one.
func hostGateway(n model.Network, bridge string, subnets []model.Subnet) ([]netip.Prefix, []nat.HostNetwork) {
	var addrs []netip.Prefix
	var nets []nat.HostNetwork
	var snatTo netip.Addr
	if n.SNATAddress != nil {
		snatTo, _ = netip.ParseAddr(*n.SNATAddress)
	}
	for _, sn := range sortedBy(subnets, func(s model.Subnet) string { return s.CIDR }) {
		prefix, err := netip.ParsePrefix(sn.CIDR)
		if err != nil || !prefix.Addr().Is4() {
			continue // nat translates IPv4 only
		}
		nets = append(nets, nat.HostNetwork{Bridge: bridge, Prefix: prefix.Masked(), SNATTo: snatTo})
		if sn.GatewayIP == nil || *sn.GatewayIP == "" {
			continue
		}
		if gw, err := netip.ParseAddr(*sn.GatewayIP); err == nil {
			addrs = append(addrs, netip.PrefixFrom(gw, prefix.Bits()))
		}
	}
	return addrs, nets
}

// addHostNAT computes the host's table: per uplink, the masquerade (or
// fixed SNAT) of the host-gateway networks leaving by it; the hairpin of
// every host-gateway subnet, so an instance reaches a published port of
// its own network; and the published ports whose internal address is on
// a host-gateway subnet (the service refuses others; one whose network
// stopped being one is left out).
func addHostNAT(d *desired, s *snapshot, byUplink map[string][]nat.HostNetwork) {
	var hairpinOnly []nat.HostNetwork
	for _, uplink := range sortedKeys(byUplink) {
		if uplink == "" {
			hairpinOnly = byUplink[uplink]
			continue
		}
		spec := nat.Host{Uplink: uplink, Networks: byUplink[uplink]}.Spec()
		d.hostNAT.NAT.SNAT = append(d.hostNAT.NAT.SNAT, spec.SNAT...)
		d.hostNAT.NAT.Masquerade = append(d.hostNAT.NAT.Masquerade, spec.Masquerade...)
		d.hostNAT.NAT.Hairpin = append(d.hostNAT.NAT.Hairpin, spec.Hairpin...)
	}
	for _, n := range hairpinOnly {
		d.hostNAT.NAT.Hairpin = append(d.hostNAT.NAT.Hairpin, nat.Subnet{Interface: n.Bridge, Prefix: n.Prefix})
	}
	slices.SortFunc(d.hostNAT.NAT.Hairpin, func(a, b nat.Subnet) int {
		return cmp.Or(a.Prefix.Addr().Compare(b.Prefix.Addr()), cmp.Compare(a.Prefix.Bits(), b.Prefix.Bits()))
	})
	reachable := func(a netip.Addr) bool {
		return slices.ContainsFunc(d.hostNAT.NAT.Hairpin, func(s nat.Subnet) bool { return s.Prefix.Contains(a) })
	}
	for _, pp := range sortedBy(s.published, func(p model.PublishedPort) string { return p.ID }) {
		pub, err := published(pp)
		if err != nil || !reachable(pub.Internal) {
			continue
		}
		d.hostNAT.NAT.Publish = append(d.hostNAT.NAT.Publish, pub)
	}
	slices.SortFunc(d.hostNAT.NAT.Publish, func(a, b nat.Publish) int {
		return cmp.Or(cmp.Compare(a.Protocol, b.Protocol), cmp.Compare(a.Ports.First, b.Ports.First))
	})
	d.hostNAT.Wanted = len(d.hostNAT.NAT.Hairpin) > 0 || len(d.hostNAT.NAT.Publish) > 0
}

// published turns a published port record into nat's.
func published(pp model.PublishedPort) (nat.Publish, error) {
	pf, err := portForward(model.PortForwarding{
		Protocol: pp.Protocol, InternalIPAddress: pp.InternalIPAddress,
		ExternalPort: pp.HostPort, ExternalPortRange: pp.HostPortRange,
		InternalPort: pp.InternalPort, InternalPortRange: pp.InternalPortRange,
	}, netip.Addr{})
	return nat.Publish{Protocol: pf.Protocol, Ports: pf.ExternalPorts, Internal: pf.Internal, InternalPorts: pf.InternalPorts}, err
}
