package service

import (
	"context"
	"encoding/json"
	"net/http"
	"net/netip"
	"slices"

	"github.com/google/uuid"

	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/store"
)

// RouterInterface is the answer of add_router_interface and
// remove_router_interface, in Neutron's shape (no envelope).
type RouterInterface struct {
	ID        string   `json:"id"`
	TenantID  string   `json:"tenant_id"`
	ProjectID string   `json:"project_id"`
	PortID    string   `json:"port_id"`
	NetworkID string   `json:"network_id"`
	SubnetID  string   `json:"subnet_id"`
	SubnetIDs []string `json:"subnet_ids"`
}

// interfaceRequest is the body of add/remove_router_interface.
type interfaceRequest struct {
	SubnetID string
	PortID   string
}

func parseInterfaceRequest(in Attrs) (interfaceRequest, error) {
	var req interfaceRequest
	for _, k := range sortedKeys(in) {
		var s string
		if err := json.Unmarshal(in[k], &s); err != nil {
			return req, badValue(k, "'"+shown(in[k])+"' is not a valid UUID")
		}
		// Neutron checks the ids' form first: a malformed one is 400, not
		// a 404 for a port or subnet that cannot exist.
		if _, err := uuid.Parse(s); err != nil && (k == "subnet_id" || k == "port_id") {
			return req, badResource("router", "'%s' is not a valid UUID", s)
		}
		switch k {
		case "subnet_id":
			req.SubnetID = s
		case "port_id":
			req.PortID = s
		default:
			return req, badRequest("Unrecognized attribute(s) '%s'", k)
		}
	}
	return req, nil
}

// AddRouterInterface attaches a subnet to a router: by subnet_id, a new
// port holding the subnet's gateway address; by port_id, an existing
// unbound port with one fixed IP. The port becomes the router's qr-
// interface (device_owner network:router_interface, device_id the router).
func (s *Service) AddRouterInterface(ctx context.Context, routerID string, in Attrs) (RouterInterface, int64, error) {
	req, err := parseInterfaceRequest(in)
	if err != nil {
		return RouterInterface{}, 0, err
	}
	switch {
	case req.SubnetID == "" && req.PortID == "":
		return RouterInterface{}, 0, badResource("router", "Either subnet_id or port_id must be specified")
	case req.SubnetID != "" && req.PortID != "":
		return RouterInterface{}, 0, badResource("router", "Cannot specify both subnet-id and port-id")
	}
	var out RouterInterface
	rev, err := s.store.Update(ctx, func(tx store.Txn) error {
		r, err := loadRouter(ctx, tx, routerID)
		if err != nil {
			return err
		}
		if err := authorize(ctx, "add_router_interface", r.ProjectID); err != nil {
			return err
		}
		var port model.Port
		if req.PortID != "" {
			port, err = s.interfaceByPort(ctx, tx, &r, req.PortID)
		} else {
			port, err = s.interfaceBySubnet(ctx, tx, &r, req.SubnetID)
		}
		if err != nil {
			return err
		}
		port.Touch(s.now())
		if err := tx.Put(store.Ports, port.ID, port); err != nil {
			return err
		}
		out = interfaceInfo(&r, &port)
		if req.SubnetID != "" {
			// Neutron answers with the subnet added, also when it
			// joined the router's IPv6 port on its network.
			out.SubnetID, out.SubnetIDs = req.SubnetID, []string{req.SubnetID}
		}
		return bumpRevision[model.Router](s, tx, store.Routers, r.ID)
	})
	return out, rev, err
}

// interfaceBySubnet makes the port that gives subnetID's gateway address to
// the router.
func (s *Service) interfaceBySubnet(ctx context.Context, tx store.Txn, r *model.Router, subnetID string) (model.Port, error) {
	sn, err := loadSubnet(ctx, tx, subnetID)
	if err != nil {
		return model.Port{}, err
	}
	if sn.GatewayIP == nil {
		return model.Port{}, badResource("router", "Subnet for router interface must have a gateway IP")
	}
	if sn.ProjectID != caller(ctx).ProjectID && !caller(ctx).IsAdmin() {
		return model.Port{}, badResource("router", "Cannot add interface to router because subnet %s is not owned by project making the request", sn.ID)
	}
	if sn.IPVersion == 6 && sn.IPv6RAMode == nil && sn.IPv6AddressMode != nil {
		return model.Port{}, badResource("router",
			"IPv6 subnet %s configured to receive RAs from an external router cannot be added to Neutron Router", sn.ID)
	}
	if sn.IPVersion == 6 {
		// A router has one port per network for all its IPv6 subnets
		// there, as in Neutron: one link, one interface advertising
		// every prefix.
		if port, err := v6InterfaceOn(tx, r.ID, sn.NetworkID); err != nil || port != nil {
			if err != nil {
				return model.Port{}, err
			}
			if slices.ContainsFunc(port.FixedIPs, func(ip model.FixedIP) bool { return ip.SubnetID == sn.ID }) {
				return model.Port{}, badResource("router", "Router already has a port on subnet %s", sn.ID)
			}
			if err := checkInterfaceOverlap(tx, r.ID, model.Port{ID: port.ID, DeviceOwner: port.DeviceOwner, FixedIPs: []model.FixedIP{{SubnetID: sn.ID}}}); err != nil {
				return model.Port{}, err
			}
			p := portInput{Port: *port, fixedIPs: []fixedIPRequest{}}
			for _, ip := range port.FixedIPs {
				p.fixedIPs = append(p.fixedIPs, fixedIPRequest{SubnetID: ip.SubnetID, IPAddress: ip.IPAddress})
			}
			p.fixedIPs = append(p.fixedIPs, fixedIPRequest{SubnetID: sn.ID, IPAddress: *sn.GatewayIP})
			if err := s.completePort(ctx, tx, &p); err != nil {
				return model.Port{}, err
			}
			return p.Port, nil
		}
	}
	if err := s.checkQuota(tx, r.ProjectID, quotaPort); err != nil {
		return model.Port{}, err
	}
	p := portInput{
		Port: model.Port{
			ID: newID(), NetworkID: sn.NetworkID, ProjectID: r.ProjectID, AdminStateUp: true,
			DeviceOwner: model.DeviceOwnerRouterInterface, DeviceID: r.ID,
			SecurityGroups: []string{}, AllowedAddressPairs: []model.AddressPair{},
		},
		fixedIPs: []fixedIPRequest{{SubnetID: sn.ID, IPAddress: *sn.GatewayIP}},
	}
	if err := checkInterfaceOverlap(tx, r.ID, model.Port{ID: p.ID, DeviceOwner: p.DeviceOwner, FixedIPs: []model.FixedIP{{SubnetID: sn.ID}}}); err != nil {
		return model.Port{}, err
	}
	if err := s.completePort(ctx, tx, &p); err != nil {
		return model.Port{}, err
	}
	return p.Port, nil
}

// v6InterfaceOn finds the interface port of router on network that has an
// IPv6 address, if any.
func v6InterfaceOn(r store.Reader, routerID, networkID string) (*model.Port, error) {
	ports, err := routerPorts(r, routerID)
	if err != nil {
		return nil, err
	}
	for _, p := range ports {
		if p.DeviceOwner != model.DeviceOwnerRouterInterface || p.NetworkID != networkID {
			continue
		}
		for _, ip := range p.FixedIPs {
			if netip.MustParseAddr(ip.IPAddress).Is6() {
				return &p, nil
			}
		}
	}
	return nil, nil
}

// interfaceByPort takes an existing port as the router's interface.
func (s *Service) interfaceByPort(ctx context.Context, tx store.Txn, r *model.Router, portID string) (model.Port, error) {
	p, err := loadOwnPort(ctx, tx, portID)
	if err != nil {
		return model.Port{}, err
	}
	if p.DeviceID != "" {
		return model.Port{}, conflict("PortInUse",
			"Unable to complete operation on port %s for network %s. Port already has an attached device %s.",
			p.ID, p.NetworkID, p.DeviceID)
	}
	if len(p.FixedIPs) == 0 {
		return model.Port{}, badResource("router", "Router port must have at least one fixed IP")
	}
	v4 := 0
	for _, ip := range p.FixedIPs {
		if netip.MustParseAddr(ip.IPAddress).Is4() {
			v4++
		}
	}
	if v4 > 1 {
		return model.Port{}, badResource("router", "Cannot have multiple IPv4 subnets on router port")
	}
	p.DeviceOwner, p.DeviceID, p.InterfaceName = model.DeviceOwnerRouterInterface, r.ID, ""
	return p, checkInterfaceOverlap(tx, r.ID, p)
}

// checkInterfaceOverlap refuses a port for a router that has a port on one
// of the new port's subnets already, or, among ports of the same kind
// (interfaces, or the gateway), one on a subnet whose CIDR overlaps: the
// router's routing table could not tell them apart. This is Neutron's
// _check_for_dup_router_subnets, which compares interfaces with interfaces
// and the gateway with the gateway only.
func checkInterfaceOverlap(r store.Reader, routerID string, port model.Port) error {
	isGateway := port.DeviceOwner == model.DeviceOwnerRouterGateway
	ports, err := routerPorts(r, routerID)
	if err != nil {
		return err
	}
	for _, fip := range port.FixedIPs {
		sn, err := store.Get[model.Subnet](r, store.Subnets, fip.SubnetID)
		if err != nil {
			return err
		}
		cidr := netip.MustParsePrefix(sn.CIDR)
		for _, o := range ports {
			if o.ID == port.ID {
				continue
			}
			for _, ofip := range o.FixedIPs {
				if ofip.SubnetID == sn.ID {
					return badResource("router", "Router already has a port on subnet %s", sn.ID)
				}
				if (o.DeviceOwner == model.DeviceOwnerRouterGateway) != isGateway {
					continue
				}
				osn, err := store.Get[model.Subnet](r, store.Subnets, ofip.SubnetID)
				if err != nil {
					return err
				}
				if netip.MustParsePrefix(osn.CIDR).Overlaps(cidr) {
					return badResource("router", "Cidr %s of subnet %s overlaps with cidr %s of subnet %s",
						sn.CIDR, sn.ID, osn.CIDR, osn.ID)
				}
			}
		}
	}
	return nil
}

// RemoveRouterInterface detaches a subnet (or an interface port) from a
// router and deletes the interface port, as Neutron does; refused while
// floating IPs or routes of the router need it.
func (s *Service) RemoveRouterInterface(ctx context.Context, routerID string, in Attrs) (RouterInterface, int64, error) {
	req, err := parseInterfaceRequest(in)
	if err != nil {
		return RouterInterface{}, 0, err
	}
	if req.SubnetID == "" && req.PortID == "" {
		return RouterInterface{}, 0, badResource("router", "Either subnet_id or port_id must be specified")
	}
	var out RouterInterface
	rev, err := s.store.Update(ctx, func(tx store.Txn) error {
		r, err := loadRouter(ctx, tx, routerID)
		if err != nil {
			return err
		}
		if err := authorize(ctx, "remove_router_interface", r.ProjectID); err != nil {
			return err
		}
		port, err := findInterface(tx, &r, req)
		if err != nil {
			return err
		}
		// By subnet, only that subnet goes; the port with it when it
		// was its last (an IPv6 port carries all the router's IPv6
		// subnets of its network).
		gone := port.FixedIPs
		if req.SubnetID != "" {
			gone = slices.DeleteFunc(slices.Clone(port.FixedIPs), func(ip model.FixedIP) bool { return ip.SubnetID != req.SubnetID })
		}
		for _, ip := range gone {
			if err := checkInterfaceUnused(tx, &r, ip.SubnetID); err != nil {
				return err
			}
		}
		out = interfaceInfo(&r, &port)
		if len(gone) < len(port.FixedIPs) {
			out.SubnetID, out.SubnetIDs = req.SubnetID, []string{req.SubnetID}
			port.FixedIPs = slices.DeleteFunc(port.FixedIPs, func(ip model.FixedIP) bool { return ip.SubnetID == req.SubnetID })
			port.Touch(s.now())
			if err := tx.Put(store.Ports, port.ID, port); err != nil {
				return err
			}
		} else if err := tx.Delete(store.Ports, port.ID); err != nil {
			return err
		}
		return bumpRevision[model.Router](s, tx, store.Routers, r.ID)
	})
	return out, rev, err
}

// findInterface finds the interface port of r that req names.
func findInterface(r store.Reader, router *model.Router, req interfaceRequest) (model.Port, error) {
	ports, err := routerPorts(r, router.ID)
	if err != nil {
		return model.Port{}, err
	}
	for _, p := range ports {
		if p.DeviceOwner != model.DeviceOwnerRouterInterface || len(p.FixedIPs) == 0 {
			continue
		}
		onSubnet := req.SubnetID == "" || slices.ContainsFunc(p.FixedIPs, func(ip model.FixedIP) bool { return ip.SubnetID == req.SubnetID })
		if (req.PortID == "" || p.ID == req.PortID) && onSubnet {
			return p, nil
		}
		if p.ID == req.PortID {
			return model.Port{}, typed(http.StatusBadRequest, "SubnetMismatchForPort",
				"Subnet %s does not match with subnet of port %s", req.SubnetID, p.ID)
		}
	}
	if req.PortID != "" {
		return model.Port{}, typed(http.StatusNotFound, "RouterInterfaceNotFound",
			"Router %s does not have an interface with id %s", router.ID, req.PortID)
	}
	return model.Port{}, typed(http.StatusNotFound, "RouterInterfaceNotFoundForSubnet",
		"Router %s has no interface on subnet %s", router.ID, req.SubnetID)
}

// checkInterfaceUnused refuses to remove a router's interface on subnetID
// while a floating IP or port forwarding translated by the router targets
// an address on that subnet, or a route goes through it.
func checkInterfaceUnused(r store.Reader, router *model.Router, subnetID string) error {
	sn, err := store.Get[model.Subnet](r, store.Subnets, subnetID)
	if err != nil {
		return err
	}
	inUse := func(addr string) bool { return addrIn(sn.CIDR, addr) }
	fips, err := fipsOfRouter(r, router.ID)
	if err != nil {
		return err
	}
	for _, f := range fips {
		if f.RouterID == nil || *f.RouterID != router.ID {
			continue
		}
		forwards, err := forwardingsOf(r, f.ID)
		if err != nil {
			return err
		}
		used := f.FixedIPAddress != nil && inUse(*f.FixedIPAddress)
		for _, pf := range forwards {
			used = used || pf.FloatingIPID == f.ID && inUse(pf.InternalIPAddress)
		}
		if used {
			return conflict("RouterInterfaceInUseByFloatingIP",
				"Router interface for subnet %s on router %s cannot be deleted, as it is required by one or more floating IPs.",
				subnetID, router.ID)
		}
	}
	if err := checkRoutes(r, router, router.Routes, subnetID); err != nil {
		return conflict("RouterInterfaceInUseByRoute",
			"Router interface for subnet %s on router %s cannot be deleted, as it is required by one or more routes.",
			subnetID, router.ID)
	}
	return nil
}

func interfaceInfo(r *model.Router, p *model.Port) RouterInterface {
	info := RouterInterface{ID: r.ID, TenantID: r.ProjectID, ProjectID: r.ProjectID,
		PortID: p.ID, NetworkID: p.NetworkID, SubnetIDs: []string{}}
	for _, ip := range p.FixedIPs {
		info.SubnetIDs = append(info.SubnetIDs, ip.SubnetID)
	}
	if len(info.SubnetIDs) > 0 {
		info.SubnetID = info.SubnetIDs[len(info.SubnetIDs)-1]
	}
	return info
}
