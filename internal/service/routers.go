package service

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/netip"
	"slices"
	"sort"
	"strings"

	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/store"
)

// maxRoutes is Neutron's default max_routes: the extra routes of one router.
const maxRoutes = 30

// routerInput is a router body before its gateway is resolved inside the
// transaction.
type routerInput struct {
	model.Router
	gateway    *gatewayRequest // set when external_gateway_info was given
	gatewaySet bool
	routesSet  bool
}

// gatewayRequest is external_gateway_info as a client sends it; a nil
// *gatewayRequest with gatewaySet clears the gateway.
type gatewayRequest struct {
	NetworkID        string           `json:"network_id"`
	EnableSNAT       *bool            `json:"enable_snat"`
	ExternalFixedIPs []fixedIPRequest `json:"external_fixed_ips"`
	fixedIPsSet      bool
}

var routerAttrs = append([]attr[routerInput]{
	stringAttr("name", true, true, func(r *routerInput) *string { return &r.Name }),
	stringAttr("description", true, true, func(r *routerInput) *string { return &r.Description }),
	boolAttr("admin_state_up", true, true, func(r *routerInput) *bool { return &r.AdminStateUp }),
	{name: "external_gateway_info", post: true, put: true, set: func(r *routerInput, raw json.RawMessage) error {
		gw, err := parseGateway(raw)
		r.gateway, r.gatewaySet = gw, true
		return err
	}},
	// routes are PUT-only, as in Neutron's extraroute: a new router has no
	// interfaces, so no next hop could be valid yet.
	{name: "routes", put: true, set: func(r *routerInput, raw json.RawMessage) error {
		routes, err := parseRoutes(raw)
		r.Routes, r.routesSet = routes, true
		return err
	}},
	// Shown (expose-l3-conntrack-helper), changed only through
	// /routers/{id}/conntrack_helpers.
	{name: "conntrack_helpers"},
	{name: "availability_zone_hints", post: true, set: func(r *routerInput, raw json.RawMessage) error {
		hints, err := parseZoneHints(raw)
		r.AvailabilityZoneHints = hints
		return err
	}},
}, projectAttrs(func(r *routerInput) *string { return &r.ProjectID })...)

func parseGateway(raw json.RawMessage) (*gatewayRequest, error) {
	if isNull(raw) || string(raw) == "{}" {
		return nil, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("'%s' is not a dictionary", shown(raw))
	}
	gw := &gatewayRequest{}
	for _, k := range sortedKeys(m) {
		v := m[k]
		switch k {
		case "network_id":
			s, err := parseString(v, maxNameLen)
			if err != nil {
				return nil, err
			}
			gw.NetworkID = s
		case "enable_snat":
			b, err := parseBool(v)
			if err != nil {
				return nil, err
			}
			gw.EnableSNAT = &b
		case "external_fixed_ips":
			reqs, err := parseFixedIPRequests(v)
			if err != nil {
				return nil, err
			}
			gw.ExternalFixedIPs, gw.fixedIPsSet = reqs, true
		default:
			return nil, fmt.Errorf("Validation of dictionary's keys failed. Expected keys: {'enable_snat', 'external_fixed_ips', 'network_id'} Provided keys: {'%s'}", k)
		}
	}
	if gw.NetworkID == "" {
		return nil, fmt.Errorf("Validation of dictionary's keys failed. Expected keys: {'network_id'}")
	}
	return gw, nil
}

// parseRoutes checks the form of each route; whether its next hop is
// reachable is checked against the router's ports in the transaction.
func parseRoutes(raw json.RawMessage) ([]model.HostRoute, error) {
	return parseRouteList(raw, false)
}

// parseRouteList is parseRoutes; with duplicatesOK a route listed twice is
// taken once (the atomic add and remove, whose result Neutron checks).
func parseRouteList(raw json.RawMessage, duplicatesOK bool) ([]model.HostRoute, error) {
	routes := []model.HostRoute{}
	if isNull(raw) {
		return routes, nil
	}
	if err := json.Unmarshal(raw, &routes); err != nil {
		return nil, fmt.Errorf("'%s' is not a list of {destination, nexthop} routes", shown(raw))
	}
	for i, r := range routes {
		p, err := parseCIDR(r.Destination)
		if err != nil {
			return nil, err
		}
		a, err := parseAddr(r.NextHop)
		if err != nil {
			return nil, err
		}
		if p.Addr().Is4() != a.Is4() {
			// Neutron takes it and its agent fails to install it;
			// nsnet says so at once.
			return nil, fmt.Errorf("route %s via %s: the destination and the nexthop are of different IP versions", r.Destination, r.NextHop)
		}
		if slices.Contains(routes[:i], r) && !duplicatesOK {
			return nil, fmt.Errorf("Duplicate items in the list: '%s via %s'", r.Destination, r.NextHop)
		}
	}
	if duplicatesOK {
		var unique []model.HostRoute
		for _, r := range routes {
			if !slices.Contains(unique, r) {
				unique = append(unique, r)
			}
		}
		return unique, nil
	}
	return routes, nil
}

// badResource is Neutron's BadRequest(resource=…, msg=…): "Bad router
// request: …."
func badResource(resource, format string, args ...any) *Error {
	return typed(http.StatusBadRequest, "BadRequest", "Bad %s request: %s.", resource, fmt.Sprintf(format, args...))
}

// CreateRouter creates a router and, with external_gateway_info, its
// gateway port on the external network.
func (s *Service) CreateRouter(ctx context.Context, in Attrs) (Result[model.Router], error) {
	return createOne(ctx, s, in, s.prepareRouter, s.GetRouter)
}

// CreateRouters creates several in one transaction (Neutron's bulk create).
func (s *Service) CreateRouters(ctx context.Context, in []Attrs) (Results[model.Router], error) {
	return createMany(ctx, s, in, s.prepareRouter, s.GetRouter)
}

func (s *Service) prepareRouter(ctx context.Context, in Attrs) (pending, error) {
	r := routerInput{Router: model.Router{ID: newID(), AdminStateUp: true, Routes: []model.HostRoute{}}}
	if err := mustCreate(ctx, "create_router"); err != nil {
		return pending{}, err
	}
	if err := decode(&r, routerAttrs, in, opCreate); err != nil {
		return pending{}, err
	}
	return pending{id: r.ID, apply: func(tx store.Txn) error {
		// A retry starts again from the request (see store.Update): its
		// gateway port is allocated afresh.
		r := r
		r.Routes = slices.Clone(r.Routes)
		r.AvailabilityZoneHints = slices.Clone(r.AvailabilityZoneHints)
		r.Tags = slices.Clone(r.Tags)
		var err error
		if r.ProjectID, err = owner(ctx, "create_router", r.ProjectID); err != nil {
			return err
		}
		if err := s.checkQuota(tx, r.ProjectID, quotaRouter); err != nil {
			return err
		}
		if err := s.setGateway(ctx, tx, &r, "create_router"); err != nil {
			return err
		}
		if err := checkZones(tx, "router", r.AvailabilityZoneHints); err != nil {
			return err
		}
		// A new router goes to the least loaded alive network node of
		// its zones whose L3 agent an admin has not set down and that
		// maps its gateway's physical network (l3_agent_scheduler; see
		// hosts.go); with none, it stays
		// unscheduled, waiting for a network node that can take it or
		// an admin who adds it to an L3 agent.
		host, ok, err := s.scheduleRouter(tx, &r.Router)
		if err != nil {
			return err
		}
		r.L3Unscheduled, r.L3Waiting, r.L3Host = !ok, !ok, ""
		if ok {
			r.L3Host = host
		}
		r.Touch(s.now())
		return tx.Put(store.Routers, r.ID, r.Router)
	}}, nil
}

// UpdateRouter applies the attributes of a PUT: a new gateway replaces the
// gateway port, routes are checked against the router's ports.
func (s *Service) UpdateRouter(ctx context.Context, id string, in Attrs) (Result[model.Router], error) {
	rev, err := s.store.Update(ctx, func(tx store.Txn) error {
		cur, err := loadRouter(ctx, tx, id)
		if err != nil {
			return err
		}
		if err := authorize(ctx, "update_router", cur.ProjectID); err != nil {
			return err
		}
		r := routerInput{Router: cur}
		if err := decode(&r, routerAttrs, in, opUpdate); err != nil {
			return err
		}
		if err := s.setGateway(ctx, tx, &r, "update_router"); err != nil {
			return err
		}
		if r.gatewaySet {
			if err := s.placeForGateway(tx, &r.Router); err != nil {
				return err
			}
		}
		if err := checkRoutes(tx, &r.Router, r.Routes, ""); err != nil {
			return err
		}
		r.Touch(s.now())
		return tx.Put(store.Routers, id, r.Router)
	})
	if err != nil {
		return Result[model.Router]{}, err
	}
	return s.routerResult(ctx, id, rev)
}

// AddExtraRoutes adds routes to a router's extra routes in one transaction
// (extraroute-atomic, PUT /v2.0/routers/ID/add_extraroutes): a route it has
// already is kept once, and the whole new set is checked as an update of
// routes would be. Concurrent clients each adding their own routes do not
// lose each other's, as they would reading and writing the whole list.
func (s *Service) AddExtraRoutes(ctx context.Context, id string, in Attrs) (Result[model.Router], error) {
	return s.changeExtraRoutes(ctx, id, in, "add_extraroutes", func(cur, routes []model.HostRoute) []model.HostRoute {
		out := slices.Clone(cur)
		for _, rt := range routes {
			if !slices.Contains(out, rt) {
				out = append(out, rt)
			}
		}
		return out
	})
}

// RemoveExtraRoutes removes routes from a router's extra routes in one
// transaction (PUT /v2.0/routers/ID/remove_extraroutes). As in Neutron, the
// end state is what counts: removing a route the router does not have is
// no error.
func (s *Service) RemoveExtraRoutes(ctx context.Context, id string, in Attrs) (Result[model.Router], error) {
	return s.changeExtraRoutes(ctx, id, in, "remove_extraroutes", func(cur, routes []model.HostRoute) []model.HostRoute {
		return slices.DeleteFunc(slices.Clone(cur), func(rt model.HostRoute) bool { return slices.Contains(routes, rt) })
	})
}

func (s *Service) changeExtraRoutes(ctx context.Context, id string, in Attrs, action string,
	change func(cur, routes []model.HostRoute) []model.HostRoute) (Result[model.Router], error) {
	for name := range in {
		if name != "routes" {
			return Result[model.Router]{}, badRequest("Unrecognized attribute(s) '%s'", name)
		}
	}
	raw, ok := in["routes"]
	if !ok {
		return Result[model.Router]{}, badRequest("Failed to parse request. Required attribute 'routes' not specified")
	}
	routes, err := parseRouteList(raw, true)
	if err != nil {
		if e := AsError(err); e != nil {
			return Result[model.Router]{}, e
		}
		return Result[model.Router]{}, badValue("routes", err.Error())
	}
	rev, err := s.store.Update(ctx, func(tx store.Txn) error {
		r, err := loadRouter(ctx, tx, id)
		if err != nil {
			return err
		}
		if err := authorize(ctx, action, r.ProjectID); err != nil {
			return err
		}
		r.Routes = change(r.Routes, routes)
		if err := checkRoutes(tx, &r, r.Routes, ""); err != nil {
			return err
		}
		r.Touch(s.now())
		return tx.Put(store.Routers, id, r)
	})
	if err != nil {
		return Result[model.Router]{}, err
	}
	return s.routerResult(ctx, id, rev)
}

// setGateway turns a requested external_gateway_info into the gateway port
// (device_owner network:router_gateway, device_id the router). Like
// Neutron's, the port belongs to no project: it is the router's, not a
// port the project manages or pays quota for.
func (s *Service) setGateway(ctx context.Context, tx store.Txn, r *routerInput, action string) error {
	if !r.gatewaySet {
		return nil
	}
	gw := r.gateway
	if gw != nil && !caller(ctx).IsAdmin() {
		// Neutron's defaults: choosing SNAT or addresses on the
		// external network is the cloud admin's call.
		if gw.EnableSNAT != nil {
			return denied(action, action+":external_gateway_info:enable_snat")
		}
		if gw.fixedIPsSet {
			return denied(action, action+":external_gateway_info:external_fixed_ips")
		}
	}
	cur, err := gatewayPort(tx, r.ID)
	if err != nil {
		return err
	}
	old := r.ExternalGatewayInfo
	if gw == nil {
		if old == nil {
			return nil
		}
		if err := checkGatewayUnused(tx, r.ID, old.NetworkID); err != nil {
			return err
		}
		r.ExternalGatewayInfo = nil
		if cur == nil {
			return nil
		}
		return tx.Delete(store.Ports, cur.ID)
	}
	network, _, err := loadNetwork(ctx, tx, gw.NetworkID)
	if err != nil {
		return err
	}
	if !network.RouterExternal {
		return badResource("router", "Network %s is not an external network", network.ID)
	}
	if old != nil && old.NetworkID != gw.NetworkID {
		if err := checkGatewayUnused(tx, r.ID, old.NetworkID); err != nil {
			return err
		}
	}
	info := &model.ExternalGatewayInfo{NetworkID: network.ID, EnableSNAT: true}
	if old != nil {
		info.EnableSNAT = old.EnableSNAT
	}
	if gw.EnableSNAT != nil {
		info.EnableSNAT = *gw.EnableSNAT
	}
	port, err := s.gatewayPortFor(ctx, tx, r, cur, gw)
	if err != nil {
		return err
	}
	if err := checkInterfaceOverlap(tx, r.ID, port); err != nil {
		return err
	}
	info.ExternalFixedIPs = port.FixedIPs
	r.ExternalGatewayInfo = info
	return nil
}

// gatewayPortFor writes the gateway port gw asks for: the current one kept
// (new addresses if asked) when the network stays, a new one otherwise.
func (s *Service) gatewayPortFor(ctx context.Context, tx store.Txn, r *routerInput, cur *model.Port, gw *gatewayRequest) (model.Port, error) {
	p := portInput{Port: model.Port{
		ID: newID(), NetworkID: gw.NetworkID, AdminStateUp: true,
		DeviceOwner: model.DeviceOwnerRouterGateway, DeviceID: r.ID,
		SecurityGroups: []string{}, AllowedAddressPairs: []model.AddressPair{},
	}}
	switch {
	case cur != nil && cur.NetworkID == gw.NetworkID:
		if !gw.fixedIPsSet || !externalIPsChange(cur.FixedIPs, gw.ExternalFixedIPs) {
			return *cur, nil
		}
		p.Port = *cur
	case cur != nil:
		if err := tx.Delete(store.Ports, cur.ID); err != nil {
			return model.Port{}, err
		}
	}
	if gw.fixedIPsSet && len(gw.ExternalFixedIPs) > 0 {
		p.fixedIPs = gw.ExternalFixedIPs
	}
	if p.fixedIPs != nil {
		p.FixedIPs = nil
	}
	if err := s.completePort(ctx, tx, &p); err != nil {
		return model.Port{}, err
	}
	if len(p.FixedIPs) == 0 {
		// Neutron makes a gateway port without addresses on an external
		// network with no subnet (the router has nothing to SNAT to and no
		// default route until one is given); with subnets, no address is
		// a refusal.
		subnets, err := subnetsOn(tx, gw.NetworkID)
		if err != nil {
			return model.Port{}, err
		}
		if len(subnets) > 0 {
			return model.Port{}, badResource("router", "No address on external network %s for the gateway", gw.NetworkID)
		}
	}
	p.Touch(s.now())
	return p.Port, tx.Put(store.Ports, p.ID, p.Port)
}

// externalIPsChange is Neutron's test of whether requested
// external_fixed_ips change a gateway port that stays on its network: no
// list asks for nothing; otherwise the set of subnets, or the set of
// addresses asked for by value, must differ from the port's. An entry
// naming only a subnet the port already has an address on is no change,
// even beside that address (clients send the current list plus such an
// entry and expect it to be ignored).
func externalIPsChange(cur []model.FixedIP, req []fixedIPRequest) bool {
	if len(req) == 0 {
		return false
	}
	subnets, addrs := map[string]bool{}, map[string]bool{}
	for _, ip := range cur {
		subnets[ip.SubnetID] = true
		addrs[ip.IPAddress] = true
	}
	newSubnets, newAddrs := map[string]bool{}, map[string]bool{}
	for _, ip := range req {
		if ip.SubnetID != "" {
			newSubnets[ip.SubnetID] = true
		}
		if ip.IPAddress != "" {
			newAddrs[ip.IPAddress] = true
		}
	}
	return !maps.Equal(subnets, newSubnets) || !maps.Equal(addrs, newAddrs)
}

// checkGatewayUnused refuses to take a router off an external network
// while floating IPs on it are translated by the router.
func checkGatewayUnused(r store.Reader, routerID, networkID string) error {
	fips, err := fipsOfRouter(r, routerID)
	if err != nil {
		return err
	}
	for _, f := range fips {
		if f.RouterID != nil && *f.RouterID == routerID && f.FloatingNetworkID == networkID {
			return conflict("RouterExternalGatewayInUseByFloatingIp",
				"Gateway cannot be updated for router %s, since a gateway to external network %s is required by one or more floating IPs.",
				routerID, networkID)
		}
	}
	return nil
}

// checkRoutes applies Neutron's extraroute rules: at most maxRoutes, each
// next hop on a subnet of one of the router's ports and not one of the
// router's own addresses. without leaves out the interface of a subnet
// being removed.
func checkRoutes(r store.Reader, router *model.Router, routes []model.HostRoute, without string) error {
	if len(routes) > maxRoutes {
		return typed(http.StatusBadRequest, "RoutesExhausted",
			"Unable to complete operation for %s. The number of routes exceeds the maximum %d.", router.ID, maxRoutes)
	}
	if len(routes) == 0 {
		return nil
	}
	ports, err := routerPorts(r, router.ID)
	if err != nil {
		return err
	}
	var cidrs []netip.Prefix
	own := map[netip.Addr]bool{}
	for _, p := range ports {
		for _, ip := range p.FixedIPs {
			if ip.SubnetID == without {
				continue
			}
			sn, err := store.Get[model.Subnet](r, store.Subnets, ip.SubnetID)
			if err != nil {
				return fmt.Errorf("read subnet %s of router port %s: %w", ip.SubnetID, p.ID, err)
			}
			cidrs = append(cidrs, netip.MustParsePrefix(sn.CIDR))
			own[netip.MustParseAddr(ip.IPAddress)] = true
		}
	}
	for _, rt := range routes {
		hop := netip.MustParseAddr(rt.NextHop)
		switch {
		case !slices.ContainsFunc(cidrs, func(p netip.Prefix) bool { return p.Contains(hop) }):
			return invalidRoutes(routes, "the nexthop is not connected with router")
		case own[hop]:
			return invalidRoutes(routes, "the nexthop is used by router")
		}
	}
	return nil
}

func invalidRoutes(routes []model.HostRoute, reason string) *Error {
	shown := make([]string, len(routes))
	for i, r := range routes {
		shown[i] = fmt.Sprintf("{'destination': '%s', 'nexthop': '%s'}", r.Destination, r.NextHop)
	}
	return typed(http.StatusBadRequest, "InvalidRoutes", "Invalid format for routes: [%s], %s.", strings.Join(shown, ", "), reason)
}

// DeleteRouter deletes a router without interfaces, and its gateway port.
func (s *Service) DeleteRouter(ctx context.Context, id string) (int64, error) {
	return s.store.Update(ctx, func(tx store.Txn) error {
		r, err := loadRouter(ctx, tx, id)
		if err != nil {
			return err
		}
		if err := authorize(ctx, "delete_router", r.ProjectID); err != nil {
			return err
		}
		ports, err := routerPorts(tx, id)
		if err != nil {
			return err
		}
		for _, p := range ports {
			if p.DeviceOwner == model.DeviceOwnerRouterInterface {
				return conflict("RouterInUse", "Router %s still has ports", id)
			}
		}
		if r.ExternalGatewayInfo != nil {
			if err := checkGatewayUnused(tx, id, r.ExternalGatewayInfo.NetworkID); err != nil {
				return err
			}
		}
		for _, p := range ports {
			if err := tx.Delete(store.Ports, p.ID); err != nil {
				return err
			}
		}
		return tx.Delete(store.Routers, id)
	})
}

// GetRouter returns one router.
func (s *Service) GetRouter(ctx context.Context, id string) (model.Router, error) {
	var rt model.Router
	err := s.store.View(ctx, func(r store.Reader) error {
		var err error
		if rt, err = loadRouter(ctx, r, id); err != nil {
			return err
		}
		return s.renderRouter(r, &rt)
	})
	return rt, err
}

// ListRouters returns the routers the caller may see.
func (s *Service) ListRouters(ctx context.Context) ([]model.Router, error) {
	return listWhere(ctx, s.store, store.Routers,
		func(_ store.Reader, rt *model.Router) (bool, error) { return canSee(ctx, rt.ProjectID), nil }, s.renderRouter)
}

func (s *Service) routerResult(ctx context.Context, id string, rev int64) (Result[model.Router], error) {
	r, err := s.GetRouter(ctx, id)
	return Result[model.Router]{r, rev}, err
}

func (s *Service) renderRouter(rd store.Reader, r *model.Router) error {
	r.TenantID = r.ProjectID
	if r.Routes == nil {
		r.Routes = []model.HostRoute{}
	}
	if r.AvailabilityZoneHints == nil {
		r.AvailabilityZoneHints = []string{}
	}
	// The zone of the L3 agent hosting it: its L3 host's, unless it is
	// on none.
	r.AvailabilityZones = []string{}
	if !r.L3Unscheduled {
		zone, err := zoneOf(rd, r.L3Host)
		if err != nil {
			return err
		}
		r.AvailabilityZones = []string{zone}
	}
	r.Status, r.StatusReason = s.statusOf(store.Routers, r.ID, r.L3Host)
	r.L3Unscheduled, r.L3Waiting, r.L3Host = false, false, "" // stored, not shown
	r.ConntrackHelpers = make([]model.RouterConntrackHelper, len(r.Helpers))
	for i, h := range r.Helpers {
		r.ConntrackHelpers[i] = model.RouterConntrackHelper{Protocol: h.Protocol, Port: h.Port, Helper: h.Helper}
	}
	r.Helpers = nil // stored, not shown
	if !r.AdminStateUp {
		r.Status, r.StatusReason = model.StatusDown, ""
	}
	return nil
}

func loadRouter(ctx context.Context, r store.Reader, id string) (model.Router, error) {
	rt, err := load(ctx, r, store.Routers, "Router", id, func(rt *model.Router) string { return rt.ProjectID })
	return rt, worded(err, "Router %s could not be found", id)
}

// getOne reads one record with load (which answers 404 for what the
// caller may not see) and renders it for the API.
func getOne[T any](ctx context.Context, st store.Store, id string,
	load func(context.Context, store.Reader, string) (T, error), render func(*T)) (T, error) {
	var v T
	err := st.View(ctx, func(r store.Reader) error {
		var err error
		v, err = load(ctx, r, id)
		return err
	})
	render(&v)
	return v, err
}

// listVisible lists the records of kind that the caller may see, each
// rendered for the API.
func listVisible[T any](ctx context.Context, st store.Store, kind store.Kind, project func(*T) string, render func(*T)) ([]T, error) {
	return listWhere(ctx, st, kind,
		func(_ store.Reader, v *T) (bool, error) { return canSee(ctx, project(v)), nil },
		func(_ store.Reader, v *T) error { render(v); return nil })
}

// listWhere lists the records of kind that visible admits, each rendered
// for the API; both may read other records of the same snapshot.
func listWhere[T any](ctx context.Context, st store.Store, kind store.Kind,
	visible func(store.Reader, *T) (bool, error), render func(store.Reader, *T) error) ([]T, error) {
	var out []T
	err := st.View(ctx, func(r store.Reader) error {
		all, err := store.List[T](r, kind)
		if err != nil {
			return err
		}
		for i := range all {
			ok, err := visible(r, &all[i])
			if err == nil && ok {
				err = render(r, &all[i])
				out = append(out, all[i])
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}

// routerPorts returns the interface and gateway ports of a router, in a
// stable order.
func routerPorts(r store.Reader, routerID string) ([]model.Port, error) {
	all, err := portsOfDevice(r, routerID)
	if err != nil {
		return nil, err
	}
	out := slices.DeleteFunc(all, func(p model.Port) bool { return p.DeviceID != routerID || !isRouterPort(&p) })
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func isRouterPort(p *model.Port) bool {
	return p.DeviceOwner == model.DeviceOwnerRouterInterface || p.DeviceOwner == model.DeviceOwnerRouterGateway
}

// gatewayPort returns a router's gateway port, or nil.
func gatewayPort(r store.Reader, routerID string) (*model.Port, error) {
	ports, err := routerPorts(r, routerID)
	if err != nil {
		return nil, err
	}
	for _, p := range ports {
		if p.DeviceOwner == model.DeviceOwnerRouterGateway {
			return &p, nil
		}
	}
	return nil, nil
}
