package service

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/store"
)

// Neutron accepts MTUs down to IPv4's minimum; the bridge takes up to this.
const (
	minMTU = 68
	maxMTU = 65535
)

var networkAttrs = append([]attr[model.Network]{
	stringAttr("name", true, true, func(n *model.Network) *string { return &n.Name }),
	stringAttr("description", true, true, func(n *model.Network) *string { return &n.Description }),
	boolAttr("admin_state_up", true, true, func(n *model.Network) *bool { return &n.AdminStateUp }),
	boolAttr("shared", true, true, func(n *model.Network) *bool { return &n.Shared }),
	boolAttr("router:external", true, true, func(n *model.Network) *bool { return &n.RouterExternal }),
	boolAttr("is_default", true, true, func(n *model.Network) *bool { return &n.IsDefault }),
	boolAttr("port_security_enabled", true, true, func(n *model.Network) *bool { return &n.PortSecurityEnabled }),
	{name: "mtu", post: true, put: true, set: func(n *model.Network, raw json.RawMessage) error {
		mtu, err := parseInt(raw)
		if err != nil {
			return err
		}
		if mtu < minMTU || mtu > maxMTU {
			return fmt.Errorf("'%d' is not in range %d through %d", mtu, minMTU, maxMTU)
		}
		n.MTU = mtu
		return nil
	}},
	{name: "dns_domain", post: true, put: true, set: func(n *model.Network, raw json.RawMessage) error {
		v, err := parseString(raw, maxDNSDomainLen)
		if err != nil {
			return err
		}
		if err := checkDNSDomain(v); err != nil {
			return err
		}
		n.DNSDomain = v
		return nil
	}},
	{name: "availability_zone_hints", post: true, set: func(n *model.Network, raw json.RawMessage) error {
		hints, err := parseZoneHints(raw)
		n.AvailabilityZoneHints = hints
		return err
	}},
	{name: "qos_policy_id", post: true, put: true, set: func(n *model.Network, raw json.RawMessage) error {
		v, err := parseQosPolicyID(raw)
		n.QosPolicyID = v
		return err
	}},
	providerJSON(attrNetworkType), providerJSON(attrPhysicalNetwork), providerJSON(attrSegmentationID),
}, append(hostNetworkAttrs, projectAttrs(func(n *model.Network) *string { return &n.ProjectID })...)...)

// CreateNetwork creates a network from the attributes of a POST. `shared`
// and `router:external` are admin-only, as in Neutron; each comes with its
// "*" RBAC policy.
func (s *Service) CreateNetwork(ctx context.Context, in Attrs) (Result[model.Network], error) {
	return createOne(ctx, s, in, s.prepareNetwork, s.GetNetwork)
}

// CreateNetworks creates several in one transaction (Neutron's bulk create).
func (s *Service) CreateNetworks(ctx context.Context, in []Attrs) (Results[model.Network], error) {
	return createMany(ctx, s, in, s.prepareNetwork, s.GetNetwork)
}

func (s *Service) prepareNetwork(ctx context.Context, in Attrs) (pending, error) {
	n := model.Network{
		ID:                    newID(),
		AdminStateUp:          true,
		MTU:                   s.physnetMTU,
		PortSecurityEnabled:   true,
		AvailabilityZoneHints: []string{},
		L2Adjacency:           true,
	}
	if err := mustCreate(ctx, "create_network"); err != nil {
		return pending{}, err
	}
	if err := decode(&n, networkAttrs, in, opCreate); err != nil {
		return pending{}, err
	}
	if err := s.checkMTU(n.MTU); err != nil {
		return pending{}, err
	}
	provider, err := parseProvider(in)
	if err != nil {
		return pending{}, err
	}
	_, mtuGiven := in["mtu"]
	project, err := owner(ctx, "create_network", n.ProjectID)
	if err != nil {
		return pending{}, err
	}
	n.ProjectID = project
	for _, a := range []struct {
		set  bool
		rule string
	}{{n.Shared, "create_network:shared"}, {n.RouterExternal, "create_network:router:external"}, {n.IsDefault, "create_network:is_default"}} {
		if a.set && !caller(ctx).IsAdmin() {
			return pending{}, denied("create_network", a.rule)
		}
	}
	if name, given := hostAttrGiven(in); given && !caller(ctx).IsAdmin() {
		return pending{}, denied("create_network", "create_network:"+name)
	}
	if name, given := providerGiven(in); given && !caller(ctx).IsAdmin() {
		return pending{}, denied("create_network", "create_network:"+name)
	}
	shared := n.Shared
	n.Shared = false // not stored: RBAC policies say who it is shared with
	n.Touch(s.now())
	return pending{id: n.ID, apply: func(tx store.Txn) error {
		n := n // a retry starts again from the request (see store.Update)
		if err := s.checkQuota(tx, n.ProjectID, quotaNetwork); err != nil {
			return err
		}
		if err := checkDefaultExternal(tx, &n); err != nil {
			return err
		}
		if err := checkHostAttrs(tx, &n); err != nil {
			return err
		}
		seg, err := s.segmentFor(tx, &n, provider)
		if err != nil {
			return err
		}
		n.SetSegment(seg)
		if !mtuGiven {
			n.MTU = s.maxNetworkMTU(seg.NetworkType)
		} else if err := s.checkNetworkMTU(&n); err != nil {
			return err
		}
		if err := checkZones(tx, "network", n.AvailabilityZoneHints); err != nil {
			return err
		}
		if err := checkNetworkQos(ctx, tx, &n, in); err != nil {
			return err
		}
		if shared {
			if err := putPolicy(tx, wildcardPolicy(&n, model.ActionAccessAsShared)); err != nil {
				return err
			}
		}
		if n.RouterExternal {
			if err := putPolicy(tx, wildcardPolicy(&n, model.ActionAccessAsExternal)); err != nil {
				return err
			}
		}
		return tx.Put(store.Networks, n.ID, n)
	}}, nil
}

// checkMTU refuses an MTU larger than the physical network's, as Neutron's
// ML2 does for a flat network (net-mtu-writable). The agent sets a
// network's MTU on its bridge and every veth plugged into it, so a change
// reaches the kernel and, through DHCP's interface-mtu option and router
// advertisements, the instances at their next lease or advertisement.
func (s *Service) checkMTU(mtu int) error {
	if mtu > s.physnetMTU {
		return invalidInput("Requested MTU is too big, maximum is %d", s.physnetMTU)
	}
	return nil
}

// checkNetworkMTU refuses an MTU above the largest n's type may carry:
// a vxlan network's frames are encapsulated once tunnels carry them.
func (s *Service) checkNetworkMTU(n *model.Network) error {
	if max := s.maxNetworkMTU(n.NetworkType.Get()); n.MTU > max {
		return invalidInput("Requested MTU is too big, maximum is %d", max)
	}
	return nil
}

func putPolicy(tx store.Txn, p model.RBACPolicy) error { return tx.Put(store.RBACPolicies, p.ID, p) }

// UpdateNetwork applies the attributes of a PUT.
func (s *Service) UpdateNetwork(ctx context.Context, id string, in Attrs) (Result[model.Network], error) {
	rev, err := s.store.Update(ctx, func(tx store.Txn) error {
		n, acc, err := loadNetwork(ctx, tx, id)
		if err != nil {
			return err
		}
		if err := authorize(ctx, "update_network", n.ProjectID); err != nil {
			return err
		}
		for _, a := range []struct{ attr, rule string }{
			{"shared", "update_network:shared"}, {"router:external", "update_network:router:external"},
			{"is_default", "update_network:is_default"},
			{attrUplink, "update_network:" + attrUplink}, {attrHostGateway, "update_network:" + attrHostGateway},
			{attrSNATAddress, "update_network:" + attrSNATAddress},
			{attrNetworkType, "update_network:" + attrNetworkType},
			{attrPhysicalNetwork, "update_network:" + attrPhysicalNetwork},
			{attrSegmentationID, "update_network:" + attrSegmentationID},
		} {
			if _, given := in[a.attr]; given && !caller(ctx).IsAdmin() {
				return denied("update_network", a.rule)
			}
		}
		_, wasShared := acc.wildcard(id, model.ActionAccessAsShared)
		n.Shared = wasShared
		wasExternal, wasHostGateway := n.RouterExternal, n.HostGateway
		oldQos := n.QosPolicyID
		if err := decode(&n, networkAttrs, in, opUpdate); err != nil {
			return err
		}
		provider, err := parseProvider(in)
		if err != nil {
			return err
		}
		if err := checkProviderUpdate(&n, provider); err != nil {
			return err
		}
		if err := checkQosAssociation(ctx, tx, oldQos, n.QosPolicyID); err != nil {
			return err
		}
		if n.QosPolicyID != nil && (oldQos == nil || *oldQos != *n.QosPolicyID) {
			if err := checkNetworkQosChange(tx, &n); err != nil {
				return err
			}
		}
		if _, given := in["mtu"]; given {
			if err := s.checkNetworkMTU(&n); err != nil {
				return err
			}
		}
		if err := checkHostAttrs(tx, &n); err != nil {
			return err
		}
		if wasHostGateway && !n.HostGateway {
			if err := checkHostGatewayUnused(tx, id); err != nil {
				return err
			}
		}
		if wasExternal && !n.RouterExternal {
			if err := checkNoExternalPorts(tx, id); err != nil {
				return err
			}
		}
		if err := checkDefaultExternal(tx, &n); err != nil {
			return err
		}
		if err := s.updateSharing(tx, &n, acc, wasShared); err != nil {
			return err
		}
		n.Shared = false
		n.Touch(s.now())
		return tx.Put(store.Networks, id, n)
	})
	if err != nil {
		return Result[model.Network]{}, err
	}
	return s.networkResult(ctx, id, rev)
}

// checkDefaultExternal keeps is_default to external networks (on another,
// Neutron ignores it) and to one of them at a time (409
// DefaultExternalNetworkExists).
func checkDefaultExternal(r store.Reader, n *model.Network) error {
	if !n.RouterExternal {
		n.IsDefault = false
	}
	if !n.IsDefault {
		return nil
	}
	all, err := store.List[model.Network](r, store.Networks)
	if err != nil {
		return err
	}
	for _, o := range all {
		if o.ID != n.ID && o.IsDefault {
			return conflict("DefaultExternalNetworkExists", "Unable to mark network %s default: default external network %s already exists.", n.ID, o.ID)
		}
	}
	return nil
}

// checkNoExternalPorts refuses to make a network internal while routers'
// gateways or floating IPs are on it (Neutron's ExternalNetworkInUse).
func checkNoExternalPorts(r store.Reader, networkID string) error {
	ports, err := portsOn(r, networkID)
	if err != nil {
		return err
	}
	for _, p := range ports {
		if p.DeviceOwner == model.DeviceOwnerRouterGateway || p.DeviceOwner == model.DeviceOwnerFloatingIP {
			return conflict("ExternalNetworkInUse",
				"External network %s cannot be updated to be made non-external, since it has existing gateway ports", networkID)
		}
	}
	return nil
}

// updateSharing turns a change of `shared` or `router:external` into the
// RBAC policies they stand for. Unsharing a network that other projects
// have ports on is refused, as Neutron does.
func (s *Service) updateSharing(tx store.Txn, n *model.Network, acc access, wasShared bool) error {
	switch wild, ok := acc.wildcard(n.ID, model.ActionAccessAsShared); {
	case n.Shared && !ok:
		if err := putPolicy(tx, wildcardPolicy(n, model.ActionAccessAsShared)); err != nil {
			return err
		}
	case !n.Shared && wasShared:
		err := checkDependents(tx, n, acc.without(wild.ID), func(string, string) error {
			return conflict("InvalidSharedSetting",
				"Unable to reconfigure sharing settings for network %s. Multiple tenants are using it.", n.ID)
		})
		if err != nil {
			return err
		}
		if err := tx.Delete(store.RBACPolicies, wild.ID); err != nil {
			return err
		}
	}
	_, externalToAll := acc.wildcard(n.ID, model.ActionAccessAsExternal)
	switch {
	case n.RouterExternal && !externalToAll:
		return putPolicy(tx, wildcardPolicy(n, model.ActionAccessAsExternal))
	case !n.RouterExternal:
		// A network that is no longer external is usable as external
		// by nobody: its access_as_external policies go with it.
		for _, p := range acc[n.ID] {
			if p.Action == model.ActionAccessAsExternal {
				if err := tx.Delete(store.RBACPolicies, p.ID); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// DeleteNetwork deletes a network, its subnets and its RBAC policies,
// refusing while ports are on it.
func (s *Service) DeleteNetwork(ctx context.Context, id string) (int64, error) {
	return s.store.Update(ctx, func(tx store.Txn) error {
		n, acc, err := loadNetwork(ctx, tx, id)
		if err != nil {
			return err
		}
		if err := authorize(ctx, "delete_network", n.ProjectID); err != nil {
			return err
		}
		if err := deleteDisassociatedFloatingIPs(ctx, tx, id); err != nil {
			return err
		}
		ports, err := portsOn(tx, id)
		if err != nil {
			return err
		}
		ports = slices.DeleteFunc(ports, func(p model.Port) bool { return p.DeviceOwner == model.DeviceOwnerDHCP })
		if len(ports) > 0 {
			return conflict("NetworkInUse",
				"Unable to complete operation on network %s. There are one or more ports still in use on the network.", id)
		}
		subnets, err := subnetsOn(tx, id)
		if err != nil {
			return err
		}
		for _, sn := range subnets {
			if err := tx.Delete(store.Subnets, sn.ID); err != nil {
				return err
			}
		}
		if err := s.syncDHCPPort(tx, id); err != nil {
			return err
		}
		for _, p := range acc[id] {
			if err := tx.Delete(store.RBACPolicies, p.ID); err != nil {
				return err
			}
		}
		return tx.Delete(store.Networks, id)
	})
}

// GetNetwork returns one network as the API shows it.
func (s *Service) GetNetwork(ctx context.Context, id string) (model.Network, error) {
	var n model.Network
	err := s.store.View(ctx, func(r store.Reader) error {
		var acc access
		var err error
		if n, acc, err = loadNetwork(ctx, r, id); err != nil {
			return err
		}
		subnets, err := subnetsOn(r, id)
		if err != nil {
			return err
		}
		zones, err := hostZones(r)
		if err != nil {
			return err
		}
		scopes, err := poolScopes(r)
		s.renderNetwork(ctx, &n, subnets, acc, zones)
		renderNetworkScopes(&n, subnets, scopes)
		return err
	})
	return n, err
}

// ListNetworks returns the networks the caller may see.
func (s *Service) ListNetworks(ctx context.Context) ([]model.Network, error) {
	var out []model.Network
	err := s.store.View(ctx, func(r store.Reader) error {
		all, err := store.List[model.Network](r, store.Networks)
		if err != nil {
			return err
		}
		subnets, err := store.List[model.Subnet](r, store.Subnets)
		if err != nil {
			return err
		}
		acc, err := readAccess(r)
		if err != nil {
			return err
		}
		scopes, err := poolScopes(r)
		if err != nil {
			return err
		}
		zones, err := hostZones(r)
		if err != nil {
			return err
		}
		byNetwork := map[string][]model.Subnet{}
		for _, sn := range subnets {
			byNetwork[sn.NetworkID] = append(byNetwork[sn.NetworkID], sn)
		}
		for _, n := range all {
			if !acc.canSeeNetwork(ctx, &n) {
				continue
			}
			s.renderNetwork(ctx, &n, byNetwork[n.ID], acc, zones)
			renderNetworkScopes(&n, byNetwork[n.ID], scopes)
			out = append(out, n)
		}
		return nil
	})
	return out, err
}

func (s *Service) networkResult(ctx context.Context, id string, rev int64) (Result[model.Network], error) {
	n, err := s.GetNetwork(ctx, id)
	return Result[model.Network]{n, rev}, err
}

// renderNetwork fills the attributes that are not stored. `shared` is
// whether the network is shared with the caller's project, as Neutron
// computes it.
func (s *Service) renderNetwork(ctx context.Context, n *model.Network, subnets []model.Subnet, acc access, zones map[string]string) {
	n.TenantID = n.ProjectID
	n.Shared = acc.grants(n.ID, model.ActionAccessAsShared, caller(ctx).ProjectID)
	n.Subnets = make([]string, 0, len(subnets))
	for _, sn := range subnets {
		n.Subnets = append(n.Subnets, sn.ID)
	}
	// The zones of the DHCP agents hosting it: this host's, while it
	// does (see dhcpHostedNetworks; a network's DHCP port exists while a
	// subnet enables DHCP unless an admin chose otherwise).
	hosted := slices.ContainsFunc(subnets, func(sn model.Subnet) bool { return sn.EnableDHCP })
	if n.DHCPHosted != nil {
		hosted = *n.DHCPHosted
	}
	n.DHCPHosted = nil // stored, not shown
	n.AvailabilityZones = []string{}
	if hosted {
		n.AvailabilityZones = []string{cmp.Or(zones[n.DHCPHost], model.DefaultAvailabilityZone)}
	}
	n.DHCPHost = "" // stored, not shown
	if n.AvailabilityZoneHints == nil {
		n.AvailabilityZoneHints = []string{}
	}
	if !caller(ctx).IsAdmin() {
		n.HideProvider() // get_network:provider:* is admin-only
	}
	n.Status, n.StatusReason = s.statusOf(store.Networks, n.ID, "")
	if !n.AdminStateUp {
		n.Status, n.StatusReason = model.StatusDown, ""
	}
}

// loadNetwork reads a network the caller may see, and the RBAC policies
// that decided it.
func loadNetwork(ctx context.Context, r store.Reader, id string) (model.Network, access, error) {
	n, err := store.Get[model.Network](r, store.Networks, id)
	if errors.Is(err, store.ErrNotFound) {
		return n, nil, notFound("Network", id)
	}
	if err != nil {
		return n, nil, fmt.Errorf("read network %s: %w", id, err)
	}
	// Its own policies: the access is the network's alone.
	acc, err := readAccessTo(r, id)
	if err != nil {
		return n, nil, err
	}
	if !acc.canSeeNetwork(ctx, &n) {
		return n, nil, notFound("Network", id)
	}
	return n, acc, checkRevision(ctx, r, id, &n)
}

// subnetsOn reads the subnets of a network, in id order, through the
// index of subnets by network: the other networks' are not read.
func subnetsOn(r store.Reader, networkID string) ([]model.Subnet, error) {
	out, err := indexed[model.Subnet](r, store.Subnets, subnetsPrefix(networkID))
	if len(out) == 0 {
		out = nil // as before: callers test for nil
	}
	return out, err
}

// portsOn reads the ports of a network, in id order, through the index
// of ports by network: the other networks' ports are not read.
func portsOn(r store.Reader, networkID string) ([]model.Port, error) {
	return indexed[model.Port](r, store.Ports, netPrefix(networkID))
}
