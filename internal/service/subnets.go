package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"

	"github.com/nsnet/nsnet/internal/ipam"
	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/store"
)

// Neutron's defaults for max_dns_nameservers and max_subnet_host_routes.
const (
	maxDNSNameservers = 5
	maxHostRoutes     = 20
)

// subnetInput is a subnet body before the parts that depend on each other
// (cidr, gateway, pools) are checked together.
type subnetInput struct {
	model.Subnet
	gatewaySet bool
	poolsSet   bool
	// cur is the stored subnet on update, nil on create.
	cur *model.Subnet
	// req is what the create asks of subnet pools.
	req subnetRequest
}

// clone returns a copy of sn that shares nothing a transaction changes, so
// that each run of one (store.Update may run it again) starts from the
// request, not from the defaults an earlier run filled in.
func (sn subnetInput) clone() subnetInput {
	sn.AllocationPools = slices.Clone(sn.AllocationPools)
	sn.DNSNameservers = slices.Clone(sn.DNSNameservers)
	sn.HostRoutes = slices.Clone(sn.HostRoutes)
	sn.ServiceTypes = slices.Clone(sn.ServiceTypes)
	sn.Tags = slices.Clone(sn.Tags)
	return sn
}

var subnetAttrs = append([]attr[subnetInput]{
	stringAttr("name", true, true, func(s *subnetInput) *string { return &s.Name }),
	{name: "service_types", post: true, put: true, set: func(s *subnetInput, raw json.RawMessage) error {
		types, err := parseServiceTypes(raw)
		s.ServiceTypes = types
		return err
	}},
	stringAttr("description", true, true, func(s *subnetInput) *string { return &s.Description }),
	{name: "network_id", post: true, required: true, set: func(s *subnetInput, raw json.RawMessage) error {
		v, err := parseString(raw, maxNameLen)
		s.NetworkID = v
		return err
	}},
	{name: "ip_version", post: true, set: func(s *subnetInput, raw json.RawMessage) error {
		v, err := parseInt(raw)
		if err != nil {
			return err
		}
		if v != 4 && v != 6 {
			return fmt.Errorf("'%d' is not in [4, 6]", v)
		}
		s.IPVersion, s.req.versionSet = v, true
		return nil
	}},
	// Without a cidr, a subnet takes one from its subnet pool.
	{name: "cidr", post: true, set: func(s *subnetInput, raw json.RawMessage) error {
		if isNull(raw) {
			return nil
		}
		s.req.cidrSet = true
		v, err := parseString(raw, maxNameLen)
		if err != nil {
			return err
		}
		p, err := parseCIDR(v)
		s.CIDR = p.String()
		return err
	}},
	{name: "gateway_ip", post: true, put: true, set: func(s *subnetInput, raw json.RawMessage) error {
		s.gatewaySet = true
		if isNull(raw) {
			s.GatewayIP = nil
			return nil
		}
		v, err := parseString(raw, maxNameLen)
		if err != nil {
			return err
		}
		a, err := parseAddr(v)
		if err != nil {
			return err
		}
		gw := a.String()
		s.GatewayIP = &gw
		return nil
	}},
	{name: "allocation_pools", post: true, put: true, set: func(s *subnetInput, raw json.RawMessage) error {
		var pools []model.AllocationPool
		if err := json.Unmarshal(raw, &pools); err != nil {
			return fmt.Errorf("'%s' is not a list of {start, end} ranges", shown(raw))
		}
		for _, p := range pools {
			if _, err := parseRange(p); err != nil {
				return err
			}
		}
		s.AllocationPools, s.poolsSet = pools, true
		return nil
	}},
	{name: "dns_nameservers", post: true, put: true, set: func(s *subnetInput, raw json.RawMessage) error {
		list, err := parseStringList(raw, func(v string) error { _, err := parseAddr(v); return err })
		if err != nil {
			return err
		}
		if len(list) > maxDNSNameservers {
			return fmt.Errorf("at most %d DNS nameservers are allowed, got %d", maxDNSNameservers, len(list))
		}
		s.DNSNameservers = list
		return nil
	}},
	{name: "host_routes", post: true, put: true, set: func(s *subnetInput, raw json.RawMessage) error {
		var routes []model.HostRoute
		if err := json.Unmarshal(raw, &routes); err != nil {
			return fmt.Errorf("'%s' is not a list of {destination, nexthop} routes", shown(raw))
		}
		if len(routes) > maxHostRoutes {
			return fmt.Errorf("at most %d host routes are allowed, got %d", maxHostRoutes, len(routes))
		}
		for i, r := range routes {
			if _, err := parseCIDR(r.Destination); err != nil {
				return err
			}
			if _, err := parseAddr(r.NextHop); err != nil {
				return err
			}
			if slices.Contains(routes[:i], r) {
				return fmt.Errorf("duplicate host route %s via %s", r.Destination, r.NextHop)
			}
		}
		s.HostRoutes = routes
		return nil
	}},
	boolAttr("enable_dhcp", true, true, func(s *subnetInput) *bool { return &s.EnableDHCP }),
	// The modes are fixed at create, as in Neutron: the ports' addresses
	// (EUI-64 or from the pools) follow from them.
	{name: "ipv6_ra_mode", post: true, set: func(s *subnetInput, raw json.RawMessage) error {
		v, err := parseIPv6Mode(raw)
		s.IPv6RAMode = v
		return err
	}},
	{name: "ipv6_address_mode", post: true, set: func(s *subnetInput, raw json.RawMessage) error {
		v, err := parseIPv6Mode(raw)
		s.IPv6AddressMode = v
		return err
	}},
	{name: "subnetpool_id", post: true, set: func(s *subnetInput, raw json.RawMessage) error {
		v, err := parseUUIDOrNull(raw)
		s.req.pool = v
		return err
	}},
	{name: "prefixlen", post: true, set: func(s *subnetInput, raw json.RawMessage) error {
		v, err := parsePrefixLen(raw)
		s.req.prefixLen = &v
		return err
	}},
	{name: "use_default_subnetpool", post: true, set: func(s *subnetInput, raw json.RawMessage) error {
		v, err := parseBool(raw)
		s.req.useDefault = v
		return err
	}},
}, projectAttrs(func(s *subnetInput) *string { return &s.ProjectID })...)

// parseIPv6Mode reads an ipv6_ra_mode or ipv6_address_mode: one of
// Neutron's three modes, or null for none.
func parseIPv6Mode(raw json.RawMessage) (*string, error) {
	if isNull(raw) {
		return nil, nil
	}
	v, err := parseString(raw, maxNameLen)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(model.IPv6Modes, v) {
		return nil, fmt.Errorf("%s is not in ['%s']", v, strings.Join(model.IPv6Modes, "', '"))
	}
	return &v, nil
}

func parseRange(p model.AllocationPool) (ipam.Range, error) {
	start, err1 := parseAddr(p.Start)
	end, err2 := parseAddr(p.End)
	if err1 != nil || err2 != nil || start.Is4() != end.Is4() || end.Less(start) {
		return ipam.Range{}, &Error{400, "InvalidAllocationPool",
			fmt.Sprintf("The allocation pool %s-%s is not valid.", p.Start, p.End), ""}
	}
	return ipam.Range{Start: start, End: end}, nil
}

// CreateSubnet creates a subnet from the attributes of a POST.
func (s *Service) CreateSubnet(ctx context.Context, in Attrs) (Result[model.Subnet], error) {
	return createOne(ctx, s, in, s.prepareSubnet, s.GetSubnet)
}

// CreateSubnets creates several in one transaction (Neutron's bulk create).
func (s *Service) CreateSubnets(ctx context.Context, in []Attrs) (Results[model.Subnet], error) {
	return createMany(ctx, s, in, s.prepareSubnet, s.GetSubnet)
}

func (s *Service) prepareSubnet(ctx context.Context, in Attrs) (pending, error) {
	sn := subnetInput{Subnet: model.Subnet{
		ID:             newID(),
		IPVersion:      4,
		EnableDHCP:     true,
		DNSNameservers: []string{},
		HostRoutes:     []model.HostRoute{},
		ServiceTypes:   []string{},
	}}
	if err := mustCreate(ctx, "create_subnet"); err != nil {
		return pending{}, err
	}
	if err := decode(&sn, subnetAttrs, in, opCreate); err != nil {
		return pending{}, err
	}
	if err := sn.req.check(&sn); err != nil {
		return pending{}, err
	}
	return pending{id: sn.ID, apply: func(tx store.Txn) error {
		sn := sn.clone() // a retry starts again from the request
		network, _, err := loadNetwork(ctx, tx, sn.NetworkID)
		if err != nil {
			return err
		}
		project, err := owner(ctx, "create_subnet", sn.ProjectID)
		if err != nil {
			return err
		}
		// A shared network's subnets are its owner's to make.
		if project != network.ProjectID && !caller(ctx).IsAdmin() {
			return denied("create_subnet")
		}
		if err := s.checkQuota(tx, project, quotaSubnet); err != nil {
			return err
		}
		sn.ProjectID = project
		if err := allocateFromPool(ctx, tx, &sn, &sn.req); err != nil {
			return err
		}
		siblings, err := subnetsOn(tx, sn.NetworkID)
		if err != nil {
			return err
		}
		if err := checkPoolAffinity(&sn, siblings); err != nil {
			return err
		}
		if err := checkSubnet(&sn, siblings); err != nil {
			return err
		}
		if network.HostGateway {
			if sn.IPVersion == 6 {
				return errHostGatewayIPv6()
			}
			networks, err := store.List[model.Network](tx, store.Networks)
			if err != nil {
				return err
			}
			if err := checkHostRoutes(tx, networks, network.ID, []model.Subnet{sn.Subnet}); err != nil {
				return err
			}
		}
		sn.Touch(s.now())
		if err := tx.Put(store.Subnets, sn.ID, sn.Subnet); err != nil {
			return err
		}
		if err := bumpRevision[model.Network](s, tx, store.Networks, sn.NetworkID); err != nil {
			return err
		}
		if err := s.addAutoAddresses(tx, &sn.Subnet); err != nil {
			return err
		}
		if network.RouterExternal {
			if err := s.addGatewayAddresses(tx, &sn.Subnet); err != nil {
				return err
			}
		}
		return s.syncDHCPPort(tx, sn.NetworkID)
	}}, nil
}

// addGatewayAddresses gives the routers' gateway ports on an external
// network an address on its new subnet when they have none of its IP
// version yet (Neutron's _update_router_gw_ports): a router that had only
// IPv4 outside gets IPv6 once the admin adds it. Auto-address subnets
// gave their EUI-64 addresses in addAutoAddresses already.
func (s *Service) addGatewayAddresses(tx store.Txn, sn *model.Subnet) error {
	if sn.IsAutoAddress() {
		return nil
	}
	ports, err := portsOn(tx, sn.NetworkID)
	if err != nil {
		return err
	}
	subnets, err := subnetsOn(tx, sn.NetworkID)
	if err != nil {
		return err
	}
	auto := map[string]bool{}
	for _, o := range subnets {
		auto[o.ID] = o.IsAutoAddress()
	}
	used := map[netip.Addr]bool{}
	for _, p := range ports {
		for _, ip := range p.FixedIPs {
			used[netip.MustParseAddr(ip.IPAddress)] = true
		}
	}
	for _, p := range ports {
		if p.DeviceOwner != model.DeviceOwnerRouterGateway {
			continue
		}
		var stateful []netip.Addr
		for _, ip := range p.FixedIPs {
			if !auto[ip.SubnetID] {
				stateful = append(stateful, netip.MustParseAddr(ip.IPAddress))
			}
		}
		if len(stateful) > 1 || len(stateful) == 1 && stateful[0].Is4() == (sn.IPVersion == 4) {
			continue
		}
		a, err := ipam.Allocate(pools(sn), func(a netip.Addr) bool {
			return used[a] || sn.GatewayIP != nil && *sn.GatewayIP == a.String()
		})
		if err != nil {
			continue // as in Neutron, the router keeps the addresses it has
		}
		used[a] = true
		p.FixedIPs = append(p.FixedIPs, model.FixedIP{SubnetID: sn.ID, IPAddress: a.String()})
		if err := s.putGatewayPort(tx, p); err != nil {
			return err
		}
	}
	return nil
}

// putGatewayPort stores a port whose addresses changed outside a router
// update; a router's gateway port carries its router's
// external_fixed_ips along.
func (s *Service) putGatewayPort(tx store.Txn, p model.Port) error {
	p.Touch(s.now())
	if err := tx.Put(store.Ports, p.ID, p); err != nil {
		return err
	}
	if p.DeviceOwner != model.DeviceOwnerRouterGateway {
		return nil
	}
	r, err := store.Get[model.Router](tx, store.Routers, p.DeviceID)
	if errors.Is(err, store.ErrNotFound) || err == nil && r.ExternalGatewayInfo == nil {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read router %s of gateway port %s: %w", p.DeviceID, p.ID, err)
	}
	r.ExternalGatewayInfo.ExternalFixedIPs = p.FixedIPs
	r.Touch(s.now())
	return tx.Put(store.Routers, r.ID, r)
}

// addAutoAddresses gives every port already on the network of a new
// auto-address subnet its EUI-64 address there, as Neutron does on subnet
// create, but for router interfaces (which take the gateway address when
// the subnet is added to their router) and the DHCP port (syncDHCPPort's).
func (s *Service) addAutoAddresses(tx store.Txn, sn *model.Subnet) error {
	if !sn.IsAutoAddress() {
		return nil
	}
	ports, err := portsOn(tx, sn.NetworkID)
	if err != nil {
		return err
	}
	used := map[netip.Addr]string{}
	for _, p := range ports {
		for _, ip := range p.FixedIPs {
			used[netip.MustParseAddr(ip.IPAddress)] = p.ID
		}
	}
	for _, p := range ports {
		if p.DeviceOwner == model.DeviceOwnerRouterInterface || p.DeviceOwner == model.DeviceOwnerDHCP {
			continue
		}
		ip, err := eui64Address(sn, p.MACAddress, holdersIn(used), p.ID)
		if err != nil {
			return err
		}
		used[netip.MustParseAddr(ip.IPAddress)] = p.ID
		p.FixedIPs = append(p.FixedIPs, ip)
		if err := s.putGatewayPort(tx, p); err != nil {
			return err
		}
	}
	return nil
}

// checkSubnet fills the defaults that depend on the CIDR and checks that the
// CIDR, gateway, pools, DNS servers, host routes and IPv6 modes agree with
// each other and with the network's other subnets, in the order Neutron's
// _validate_subnet checks them (so that a request with several faults gets
// Neutron's error).
func checkSubnet(sn *subnetInput, siblings []model.Subnet) error {
	prefix := netip.MustParsePrefix(sn.CIDR)
	if err := checkVersion(sn.IPVersion, "cidr", sn.CIDR, prefix.Addr()); err != nil {
		return err
	}
	dhcpWasEnabled := sn.cur != nil && sn.cur.EnableDHCP
	if sn.IPVersion == 6 && sn.EnableDHCP && !dhcpWasEnabled && prefix.Bits() > 126 {
		return invalidInput("Subnet has a prefix length that is incompatible with DHCP service enabled")
	}
	if _, ok := ipam.Usable(prefix); !ok {
		shortest := "/30"
		if sn.IPVersion == 6 {
			shortest = "/127"
		}
		return badValue("cidr", fmt.Sprintf("'%s' has no usable host addresses; use a prefix of %s or shorter", sn.CIDR, shortest))
	}
	if prefix.Bits() == 0 {
		return badValue("cidr", fmt.Sprintf("'%s' would cover every address; use a specific prefix", sn.CIDR))
	}
	if err := checkSpecialUse(sn); err != nil {
		return err
	}
	for _, o := range siblings {
		if o.ID != sn.ID && netip.MustParsePrefix(o.CIDR).Overlaps(prefix) {
			return invalidInput("Requested subnet with cidr: %s for network: %s overlaps with another subnet", sn.CIDR, sn.NetworkID)
		}
	}

	var gw netip.Addr
	if !sn.gatewaySet && sn.GatewayIP == nil {
		gw, _ = ipam.DefaultGateway(prefix)
		g := gw.String()
		sn.GatewayIP = &g
	} else if sn.GatewayIP != nil {
		gw = netip.MustParseAddr(*sn.GatewayIP)
		if err := checkVersion(sn.IPVersion, "gateway_ip", *sn.GatewayIP, gw); err != nil {
			return err
		}
		if !gatewayValid(prefix, gw) {
			return invalidInput("Gateway is not valid on subnet")
		}
	}
	for _, d := range sn.DNSNameservers {
		if err := checkVersion(sn.IPVersion, "dns_nameserver", d, netip.MustParseAddr(d)); err != nil {
			return err
		}
	}
	for _, r := range sn.HostRoutes {
		if err := checkVersion(sn.IPVersion, "nexthop", r.NextHop, netip.MustParseAddr(r.NextHop)); err != nil {
			return err
		}
		if err := checkVersion(sn.IPVersion, "destination", r.Destination, netip.MustParsePrefix(r.Destination).Addr()); err != nil {
			return err
		}
	}
	if err := checkIPv6Modes(sn, prefix); err != nil {
		return err
	}

	if !sn.poolsSet {
		sn.AllocationPools = nil
		for _, r := range ipam.DefaultPools(prefix, gw) {
			sn.AllocationPools = append(sn.AllocationPools, model.AllocationPool{Start: r.Start.String(), End: r.End.String()})
		}
		return nil
	}
	return checkPools(sn, prefix, gw)
}

// checkVersion is Neutron's _validate_ip_version: an address of a subnet
// (its cidr, gateway, DNS servers, routes) is of the subnet's IP version.
func checkVersion(version int, name, shown string, a netip.Addr) error {
	if a.Is4() != (version == 4) {
		return invalidInput("%s '%s' does not match the ip_version '%d'", name, shown, version)
	}
	return nil
}

// gatewayValid: an IPv4 gateway is a host address of the subnet; an IPv6
// one any address of the prefix (the prefix itself, the subnet-router
// anycast address, is a router's to have) or a link-local address, the
// address routers advertise themselves from. nsnet, unlike Neutron since
// force_gateway_on_subnet went, refuses other gateways outside the
// subnet: the router's interface on the subnet takes the gateway address,
// and hosts could not reach a gateway off their link.
func gatewayValid(prefix netip.Prefix, gw netip.Addr) bool {
	if prefix.Addr().Is6() {
		return prefix.Contains(gw) || gw.IsLinkLocalUnicast()
	}
	usable, _ := ipam.Usable(prefix)
	return usable.Contains(gw)
}

// checkIPv6Modes applies Neutron's rules for ipv6_ra_mode and
// ipv6_address_mode: none on IPv4; on IPv6 only with DHCP enabled, the
// same value when both are set, and a /64 when the hosts make their
// addresses from it (EUI-64). On update the modes stay (they are not
// updatable), and DHCP cannot be turned off under them.
func checkIPv6Modes(sn *subnetInput, prefix netip.Prefix) error {
	ra, addr := sn.IPv6RAMode, sn.IPv6AddressMode
	if sn.IPVersion == 4 {
		if ra != nil {
			return invalidInput("ipv6_ra_mode is not valid when ip_version is 4")
		}
		if addr != nil {
			return invalidInput("ipv6_address_mode is not valid when ip_version is 4")
		}
		return nil
	}
	if sn.cur != nil {
		if !sn.EnableDHCP && (ra != nil || addr != nil) {
			return invalidInput("Cannot disable enable_dhcp with ipv6 attributes set")
		}
		return nil
	}
	if (ra != nil || addr != nil) && !sn.EnableDHCP {
		return invalidInput("ipv6_ra_mode or ipv6_address_mode cannot be set when enable_dhcp is set to False")
	}
	if ra != nil && addr != nil && *ra != *addr {
		return invalidInput("ipv6_ra_mode set to '%s' with ipv6_address_mode set to '%s' is not valid. "+
			"If both attributes are set, they must be the same value", *ra, *addr)
	}
	if sn.IsAutoAddress() && prefix.Bits() != 64 {
		return invalidInput("Invalid CIDR %s for IPv6 address mode. "+
			"OpenStack uses the EUI-64 address format, which requires the prefix to be /64", sn.CIDR)
	}
	return nil
}

// checkSpecialUse refuses a CIDR in a range whose addresses hosts cannot
// have: multicast, loopback, "this network" and reserved addresses are
// never a host's on the wire (the kernel drops them as martians), and a
// link-local subnet with DHCP would share its range with the metadata
// address nsnet serves on DHCP subnets, 169.254.169.254. Neutron refuses
// multicast, loopback and 0.0.0.0 only with enable_dhcp; nsnet refuses
// them always, since nothing on such a subnet could work. The gateway and
// pools lie inside the CIDR, so they never land in these ranges either.
// IPv6 link-local addresses are refused always: every interface has its
// own from the kernel, and nsnet serves metadata at fe80::a9fe:a9fe.
func checkSpecialUse(sn *subnetInput) error {
	for _, r := range ipam.Special(netip.MustParsePrefix(sn.CIDR)) {
		switch {
		case r == ipam.LinkLocal && !sn.EnableDHCP:
		case r == ipam.LinkLocal:
			return invalidInput("cidr %s overlaps the link-local range %s, which is not supported if enable_dhcp is True: "+
				"nsnet serves metadata at 169.254.169.254 on DHCP subnets", sn.CIDR, r.Prefix)
		case r == ipam.LinkLocal6:
			return invalidInput("cidr %s overlaps the link-local range %s: the kernel gives every interface its own "+
				"link-local address there, and nsnet serves metadata at fe80::a9fe:a9fe", sn.CIDR, r.Prefix)
		default:
			return invalidInput("cidr %s overlaps the %s range %s, where hosts cannot have addresses", sn.CIDR, r.Name, r.Prefix)
		}
	}
	return nil
}

func checkPools(sn *subnetInput, prefix netip.Prefix, gw netip.Addr) error {
	usable, _ := ipam.Usable(prefix)
	var ranges []ipam.Range
	for _, p := range sn.AllocationPools {
		r, err := parseRange(p)
		if err != nil {
			return err
		}
		if !usable.Contains(r.Start) || !usable.Contains(r.End) {
			return &Error{400, "OutOfBoundsAllocationPool",
				fmt.Sprintf("The allocation pool %s spans beyond the subnet cidr %s.", r, sn.CIDR), ""}
		}
		for _, o := range ranges {
			if o.Overlaps(r) {
				return &Error{400, "OverlappingAllocationPools",
					fmt.Sprintf("Found overlapping allocation pools: %s and %s for subnet %s.", o, r, sn.CIDR), ""}
			}
		}
		if gw.IsValid() && r.Contains(gw) {
			return conflict("GatewayConflictWithAllocationPools",
				"Gateway ip %s conflicts with allocation pool %s.", gw, r)
		}
		ranges = append(ranges, r)
	}
	return nil
}

// UpdateSubnet applies the attributes of a PUT.
func (s *Service) UpdateSubnet(ctx context.Context, id string, in Attrs) (Result[model.Subnet], error) {
	rev, err := s.store.Update(ctx, func(tx store.Txn) error {
		cur, err := loadSubnet(ctx, tx, id)
		if err != nil {
			return err
		}
		if err := authorize(ctx, "update_subnet", cur.ProjectID); err != nil {
			return err
		}
		// On update the gateway and pools are what they were unless the
		// client replaces them; a new gateway must not land inside them.
		sn := subnetInput{Subnet: cur, gatewaySet: true, poolsSet: true, cur: &cur}
		if err := decode(&sn, subnetAttrs, in, opUpdate); err != nil {
			return err
		}
		siblings, err := subnetsOn(tx, sn.NetworkID)
		if err != nil {
			return err
		}
		if err := checkSubnet(&sn, siblings); err != nil {
			return err
		}
		if err := checkAllocationsStillValid(tx, &cur, &sn.Subnet); err != nil {
			return err
		}
		sn.Touch(s.now())
		if err := tx.Put(store.Subnets, id, sn.Subnet); err != nil {
			return err
		}
		if err := bumpRevision[model.Network](s, tx, store.Networks, sn.NetworkID); err != nil {
			return err
		}
		return s.syncDHCPPort(tx, sn.NetworkID)
	})
	if err != nil {
		return Result[model.Subnet]{}, err
	}
	return s.subnetResult(ctx, id, rev)
}

// checkAllocationsStillValid refuses a gateway change onto an address a port
// already holds. An unchanged gateway is no change: the router interface
// that usually holds it is the gateway.
func checkAllocationsStillValid(r store.Reader, cur, sn *model.Subnet) error {
	if sn.GatewayIP == nil || (cur.GatewayIP != nil && *cur.GatewayIP == *sn.GatewayIP) {
		return nil
	}
	ports, err := portsOn(r, sn.NetworkID)
	if err != nil {
		return err
	}
	for _, p := range ports {
		for _, ip := range p.FixedIPs {
			if ip.SubnetID == sn.ID && ip.IPAddress == *sn.GatewayIP {
				return conflict("GatewayIpInUse", "Gateway ip %s is in use by port %s.", ip.IPAddress, p.ID)
			}
		}
	}
	return nil
}

// DeleteSubnet deletes a subnet no port has an address on.
func (s *Service) DeleteSubnet(ctx context.Context, id string) (int64, error) {
	return s.store.Update(ctx, func(tx store.Txn) error {
		sn, err := loadSubnet(ctx, tx, id)
		if err != nil {
			return err
		}
		if err := authorize(ctx, "delete_subnet", sn.ProjectID); err != nil {
			return err
		}
		ports, err := portsOn(tx, sn.NetworkID)
		if err != nil {
			return err
		}
		// Ports lose their addresses on an auto-address subnet with it,
		// as in Neutron; addresses from the pools, and router interfaces
		// anywhere, keep it.
		var released []model.Port
		for _, p := range ports {
			if p.DeviceOwner == model.DeviceOwnerDHCP {
				continue // syncDHCPPort releases its address
			}
			i := slices.IndexFunc(p.FixedIPs, func(ip model.FixedIP) bool { return ip.SubnetID == id })
			if i < 0 {
				continue
			}
			if !sn.IsAutoAddress() || p.DeviceOwner == model.DeviceOwnerRouterInterface {
				return conflict("SubnetInUse",
					"Unable to complete operation on subnet %s: One or more ports have an IP allocation from this subnet.", id)
			}
			p.FixedIPs = slices.DeleteFunc(p.FixedIPs, func(ip model.FixedIP) bool { return ip.SubnetID == id })
			released = append(released, p)
		}
		for _, p := range released {
			if err := s.putGatewayPort(tx, p); err != nil {
				return err
			}
		}
		if err := tx.Delete(store.Subnets, id); err != nil {
			return err
		}
		if err := bumpRevision[model.Network](s, tx, store.Networks, sn.NetworkID); err != nil {
			return err
		}
		return s.syncDHCPPort(tx, sn.NetworkID)
	})
}

// GetSubnet returns one subnet.
func (s *Service) GetSubnet(ctx context.Context, id string) (model.Subnet, error) {
	var sn model.Subnet
	err := s.store.View(ctx, func(r store.Reader) error {
		var err error
		sn, err = loadSubnet(ctx, r, id)
		return err
	})
	renderSubnet(&sn)
	return sn, err
}

// ListSubnets returns the subnets the caller may see: its own, and those of
// networks shared with it.
func (s *Service) ListSubnets(ctx context.Context) ([]model.Subnet, error) {
	var out []model.Subnet
	err := s.store.View(ctx, func(r store.Reader) error {
		all, err := store.List[model.Subnet](r, store.Subnets)
		if err != nil {
			return err
		}
		acc, err := readAccess(r)
		if err != nil {
			return err
		}
		for _, sn := range all {
			ok, err := canSeeSubnet(ctx, r, acc, &sn)
			if err != nil {
				return err
			}
			if ok {
				renderSubnet(&sn)
				out = append(out, sn)
			}
		}
		return nil
	})
	return out, err
}

// canSeeSubnet: an admin sees every subnet, a project its own, those of
// its networks and those of networks shared with it, but not those of
// networks that are only external to it (Neutron's get_subnet policy: a
// member takes floating IPs and gateways from an external network without
// seeing its addressing).
func canSeeSubnet(ctx context.Context, r store.Reader, acc access, sn *model.Subnet) (bool, error) {
	if canSee(ctx, sn.ProjectID) {
		return true, nil
	}
	n, err := store.Get[model.Network](r, store.Networks, sn.NetworkID)
	if err != nil {
		return false, fmt.Errorf("read network %s: %w", sn.NetworkID, err)
	}
	return canSee(ctx, n.ProjectID) || acc.grants(n.ID, model.ActionAccessAsShared, caller(ctx).ProjectID), nil
}

func (s *Service) subnetResult(ctx context.Context, id string, rev int64) (Result[model.Subnet], error) {
	sn, err := s.GetSubnet(ctx, id)
	return Result[model.Subnet]{sn, rev}, err
}

func renderSubnet(sn *model.Subnet) {
	sn.TenantID = sn.ProjectID
}

// loadSubnet reads a subnet the caller may see (canSeeSubnet).
func loadSubnet(ctx context.Context, r store.Reader, id string) (model.Subnet, error) {
	sn, err := store.Get[model.Subnet](r, store.Subnets, id)
	if err == store.ErrNotFound {
		return sn, notFound("Subnet", id)
	}
	if err != nil {
		return sn, err
	}
	acc, err := readAccess(r)
	if err != nil {
		return sn, err
	}
	ok, err := canSeeSubnet(ctx, r, acc, &sn)
	if err == nil && !ok {
		err = notFound("Subnet", id)
	}
	if err != nil {
		return sn, err
	}
	return sn, checkRevision(ctx, r, id, &sn)
}

// parseServiceTypes reads a subnet's service_types (subnet-service-types):
// device_owner values, or prefixes of them, whose ports take addresses
// from the subnet (see serviceSubnets). Neutron accepts a type that starts
// with "network:" or "neutron:", or with any one character of "compute:"
// (its check adds that prefix to its list of prefixes character by
// character), which clients rely on ("test:type_1"); nsnet accepts the same.
func parseServiceTypes(raw json.RawMessage) ([]string, error) {
	types := []string{}
	if isNull(raw) {
		return types, nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, badRequest("Subnet service types must be a list.")
	}
	for _, item := range items {
		var t string
		if err := json.Unmarshal(item, &t); err != nil {
			return nil, typed(http.StatusBadRequest, "InvalidInputSubnetServiceType", "Subnet service type %s is not a string.", shown(item))
		}
		if !strings.HasPrefix(t, "network:") && !strings.HasPrefix(t, "neutron:") && (t == "" || !strings.ContainsRune("compute:", rune(t[0]))) {
			return nil, typed(http.StatusBadRequest, "InvalidSubnetServiceType", "Subnet service type %s does not correspond to a valid device owner.", t)
		}
		if !slices.Contains(types, t) {
			types = append(types, t)
		}
	}
	return types, nil
}
