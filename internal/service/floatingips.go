package service

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"sort"
	"strings"

	"github.com/nsnet/nsnet/internal/auth"
	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/store"
)

// fipInput is a floating IP body before its network, address and port are
// resolved inside the transaction.
type fipInput struct {
	model.FloatingIP
	subnetID string
	portSet  bool // port_id given (null: disassociate)
	fixedSet bool // fixed_ip_address given
}

func optionalString(raw json.RawMessage, check func(string) error) (*string, error) {
	if isNull(raw) {
		return nil, nil
	}
	s, err := parseString(raw, maxNameLen)
	if err != nil {
		return nil, err
	}
	if check != nil {
		if err := check(s); err != nil {
			return nil, err
		}
	}
	return &s, nil
}

func checkAddr(s string) error { _, err := parseAddr(s); return err }

var fipAttrs = append([]attr[fipInput]{
	stringAttr("description", true, true, func(f *fipInput) *string { return &f.Description }),
	{name: "floating_network_id", post: true, required: true, set: func(f *fipInput, raw json.RawMessage) error {
		s, err := parseString(raw, maxNameLen)
		f.FloatingNetworkID = s
		return err
	}},
	{name: "floating_ip_address", post: true, set: func(f *fipInput, raw json.RawMessage) error {
		s, err := optionalString(raw, checkAddr)
		if s != nil {
			f.FloatingIPAddress = *s
		}
		return err
	}},
	{name: "subnet_id", post: true, set: func(f *fipInput, raw json.RawMessage) error {
		s, err := optionalString(raw, nil)
		if s != nil {
			f.subnetID = *s
		}
		return err
	}},
	{name: "port_id", post: true, put: true, set: func(f *fipInput, raw json.RawMessage) error {
		s, err := optionalString(raw, nil)
		f.PortID, f.portSet = s, true
		return err
	}},
	{name: "fixed_ip_address", post: true, put: true, set: func(f *fipInput, raw json.RawMessage) error {
		s, err := optionalString(raw, checkAddr)
		f.FixedIPAddress, f.fixedSet = s, true
		return err
	}},
}, projectAttrs(func(f *fipInput) *string { return &f.ProjectID })...)

// CreateFloatingIP allocates an address on an external network (a port
// with device_owner network:floatingip holds it) and, with port_id,
// associates it at once.
func (s *Service) CreateFloatingIP(ctx context.Context, in Attrs) (Result[model.FloatingIP], error) {
	return createOne(ctx, s, in, s.prepareFloatingIP, s.GetFloatingIP)
}

// CreateFloatingIPs creates several in one transaction (Neutron's bulk create).
func (s *Service) CreateFloatingIPs(ctx context.Context, in []Attrs) (Results[model.FloatingIP], error) {
	return createMany(ctx, s, in, s.prepareFloatingIP, s.GetFloatingIP)
}

func (s *Service) prepareFloatingIP(ctx context.Context, in Attrs) (pending, error) {
	f := fipInput{FloatingIP: model.FloatingIP{ID: newID()}}
	if err := mustCreate(ctx, "create_floatingip"); err != nil {
		return pending{}, err
	}
	if err := decode(&f, fipAttrs, in, opCreate); err != nil {
		return pending{}, err
	}
	if f.FloatingIPAddress != "" && !caller(ctx).IsAdmin() {
		return pending{}, denied("create_floatingip", "create_floatingip:floating_ip_address")
	}
	return pending{id: f.ID, apply: func(tx store.Txn) error {
		// A retry starts again from the request: the address the run
		// before it allocated may be taken now (see store.Update).
		f := f
		f.Tags = slices.Clone(f.Tags)
		network, _, err := loadNetwork(ctx, tx, f.FloatingNetworkID)
		if err != nil {
			return err
		}
		if !network.RouterExternal {
			return badResource("floatingip", "Network %s is not a valid external network", network.ID)
		}
		if f.ProjectID, err = owner(ctx, "create_floatingip", f.ProjectID); err != nil {
			return err
		}
		if err := s.checkQuota(tx, f.ProjectID, quotaFloatingIP); err != nil {
			return err
		}
		if err := s.allocateFloatingIP(ctx, tx, &f); err != nil {
			return err
		}
		if err := s.associate(ctx, tx, &f, nil); err != nil {
			return err
		}
		f.Touch(s.now())
		return tx.Put(store.FloatingIPs, f.ID, f.FloatingIP)
	}}, nil
}

// allocateFloatingIP writes the port that holds f's address: the one asked
// for, or the first free one of the network (of subnet_id, if given).
func (s *Service) allocateFloatingIP(ctx context.Context, tx store.Txn, f *fipInput) error {
	p := portInput{Port: model.Port{
		ID: newID(), NetworkID: f.FloatingNetworkID, AdminStateUp: true,
		DeviceOwner: model.DeviceOwnerFloatingIP, DeviceID: f.ID,
		SecurityGroups: []string{}, AllowedAddressPairs: []model.AddressPair{},
	}}
	if f.FloatingIPAddress != "" || f.subnetID != "" {
		p.fixedIPs = []fixedIPRequest{{SubnetID: f.subnetID, IPAddress: f.FloatingIPAddress}}
	}
	if err := s.completePort(ctx, tx, &p); err != nil {
		return err
	}
	// The port may hold IPv6 addresses of the network too (Neutron's
	// IPAM gives them); the floating IP is its IPv4 one.
	i := slices.IndexFunc(p.FixedIPs, func(ip model.FixedIP) bool { return netip.MustParseAddr(ip.IPAddress).Is4() })
	if i < 0 {
		return badResource("floatingip", "Network %s does not contain any IPv4 subnet", f.FloatingNetworkID)
	}
	f.FloatingIPAddress = p.FixedIPs[i].IPAddress
	p.Touch(s.now())
	return tx.Put(store.Ports, p.ID, p.Port)
}

// associate resolves f's port_id and fixed_ip_address (already decoded
// into f) to the fixed address and the router that translates it. cur is
// the stored floating IP on update, nil on create.
func (s *Service) associate(ctx context.Context, tx store.Reader, f *fipInput, cur *model.FloatingIP) error {
	if f.portSet && !f.fixedSet {
		// A port named without a fixed IP means that port's own address,
		// never the one the floating IP had on its previous port.
		f.FixedIPAddress = nil
	}
	if !f.portSet {
		if f.fixedSet && cur != nil && cur.PortID != nil {
			f.PortID, f.portSet = cur.PortID, true // a new fixed IP on the same port
		} else if f.fixedSet && f.FixedIPAddress != nil {
			return badResource("floatingip", "fixed_ip_address cannot be specified without a port_id")
		} else {
			return nil
		}
	}
	if f.PortID == nil {
		// Port forwardings keep the router that translates them.
		forwards, err := forwardingsOf(tx, f.ID)
		if len(forwards) == 0 {
			f.RouterID = nil
		}
		f.FixedIPAddress = nil
		return err
	}
	// Another project's port is refused with 400 as Neutron does (it
	// looks the port up elevated), not hidden behind a 404.
	port, err := loadOwnPort(auth.WithCaller(ctx, auth.Admin), tx, *f.PortID)
	if err != nil {
		return err
	}
	if port.ProjectID != f.ProjectID && !caller(ctx).IsAdmin() {
		return badResource("floatingip", "Cannot create floating IP and bind it to Port %s, since that port is owned by a different tenant", port.ID)
	}
	fixed, err := fixedIPFor(&port, f.FixedIPAddress)
	if err != nil {
		return err
	}
	if err := checkNotAssociated(tx, f, &port, fixed); err != nil {
		return err
	}
	router, err := routerFor(tx, f.FloatingNetworkID, &port, fixed)
	if err != nil {
		return err
	}
	addr := fixed.IPAddress
	f.FixedIPAddress, f.RouterID = &addr, &router
	return nil
}

// fixedIPFor picks the fixed IP of port that a floating IP translates to:
// the one asked for, or the port's only IPv4 address. Floating IPs are
// IPv4 only, as in Neutron: IPv6 is routed, not translated.
func fixedIPFor(port *model.Port, want *string) (model.FixedIP, error) {
	if want != nil {
		if a, err := netip.ParseAddr(*want); err == nil && !a.Is4() {
			return model.FixedIP{}, badResource("floatingip",
				"Cannot process floating IP association with %s, since that is not an IPv4 address", *want)
		}
		for _, ip := range port.FixedIPs {
			if ip.IPAddress == *want {
				return ip, nil
			}
		}
		return model.FixedIP{}, badResource("floatingip", "Port %s does not have fixed ip %s", port.ID, *want)
	}
	v4 := slices.DeleteFunc(slices.Clone(port.FixedIPs), func(ip model.FixedIP) bool { return !netip.MustParseAddr(ip.IPAddress).Is4() })
	switch len(v4) {
	case 0:
		return model.FixedIP{}, badResource("floatingip", "Cannot add floating IP to port %s that has no fixed IPv4 addresses", port.ID)
	case 1:
		return v4[0], nil
	default:
		return model.FixedIP{}, badResource("floatingip",
			"Port %s has multiple fixed IPv4 addresses.  Must provide a specific IPv4 address when assigning a floating IP", port.ID)
	}
}

// checkNotAssociated refuses a second floating IP on the same external
// network for one fixed address, and a floating IP that port forwardings
// already use (Neutron's FloatingIPPortAlreadyAssociated and
// FipInUseByPortForwarding).
func checkNotAssociated(r store.Reader, f *fipInput, port *model.Port, fixed model.FixedIP) error {
	fips, err := fipsOfPort(r, port.ID)
	if err != nil {
		return err
	}
	for _, o := range fips {
		if o.ID != f.ID && o.FloatingNetworkID == f.FloatingNetworkID && o.PortID != nil && *o.PortID == port.ID &&
			o.FixedIPAddress != nil && *o.FixedIPAddress == fixed.IPAddress {
			return conflict("FloatingIPPortAlreadyAssociated",
				"Cannot associate floating IP %s (%s) with port %s using fixed IP %s, as that fixed IP already has a floating IP on external network %s.",
				f.FloatingIPAddress, f.ID, port.ID, fixed.IPAddress, f.FloatingNetworkID)
		}
	}
	forwards, err := forwardingsOf(r, f.ID)
	if err != nil {
		return err
	}
	if len(forwards) > 0 {
		return conflict("FipInUseByPortForwarding", "Floating IP %s in use by Port Forwarding resources.", f.ID)
	}
	return nil
}

// routerFor finds the router that connects fixed's subnet to the external
// network: its gateway is on the network and it has an interface on the
// subnet. Several such routers are possible; the oldest wins, so the
// choice is stable.
func routerFor(r store.Reader, networkID string, port *model.Port, fixed model.FixedIP) (string, error) {
	routers, err := store.List[model.Router](r, store.Routers)
	if err != nil {
		return "", err
	}
	sort.Slice(routers, func(i, j int) bool {
		if routers[i].CreatedAt != routers[j].CreatedAt {
			return routers[i].CreatedAt < routers[j].CreatedAt
		}
		return routers[i].ID < routers[j].ID
	})
	for _, rt := range routers {
		if rt.ExternalGatewayInfo == nil || rt.ExternalGatewayInfo.NetworkID != networkID {
			continue
		}
		ports, err := routerPorts(r, rt.ID)
		if err != nil {
			return "", err
		}
		for _, p := range ports {
			if p.DeviceOwner == model.DeviceOwnerRouterInterface &&
				slices.ContainsFunc(p.FixedIPs, func(ip model.FixedIP) bool { return ip.SubnetID == fixed.SubnetID }) {
				return rt.ID, nil
			}
		}
	}
	return "", typed(http.StatusNotFound, "ExternalGatewayForFloatingIPNotFound",
		"External network %s is not reachable from subnet %s.  Therefore, cannot associate Port %s with a Floating IP.",
		networkID, fixed.SubnetID, port.ID)
}

// UpdateFloatingIP associates, moves or disassociates a floating IP.
func (s *Service) UpdateFloatingIP(ctx context.Context, id string, in Attrs) (Result[model.FloatingIP], error) {
	rev, err := s.store.Update(ctx, func(tx store.Txn) error {
		cur, err := loadFloatingIP(ctx, tx, id)
		if err != nil {
			return err
		}
		if err := authorize(ctx, "update_floatingip", cur.ProjectID); err != nil {
			return err
		}
		f := fipInput{FloatingIP: cur}
		if err := decode(&f, fipAttrs, in, opUpdate); err != nil {
			return err
		}
		if len(in) == 0 {
			// An empty body disassociates: the floating IP's original API
			// had no other attribute to update (Neutron keeps that).
			f.PortID, f.portSet = nil, true
		}
		if err := s.associate(ctx, tx, &f, &cur); err != nil {
			return err
		}
		f.Touch(s.now())
		return tx.Put(store.FloatingIPs, id, f.FloatingIP)
	})
	if err != nil {
		return Result[model.FloatingIP]{}, err
	}
	return s.fipResult(ctx, id, rev)
}

// DeleteFloatingIP deletes a floating IP and the port holding its address;
// one that port forwardings use is refused, as Neutron's port forwarding
// plugin does: they are deleted first.
func (s *Service) DeleteFloatingIP(ctx context.Context, id string) (int64, error) {
	return s.store.Update(ctx, func(tx store.Txn) error {
		f, err := loadFloatingIP(ctx, tx, id)
		if err != nil {
			return err
		}
		if err := authorize(ctx, "delete_floatingip", f.ProjectID); err != nil {
			return err
		}
		forwards, err := forwardingsOf(tx, id)
		if err != nil {
			return err
		}
		if len(forwards) > 0 {
			return conflict("FipInUseByPortForwarding", "Floating IP %s in use by Port Forwarding resources.", id)
		}
		return deleteFloatingIP(tx, id)
	})
}

// deleteDisassociatedFloatingIPs deletes the floating IPs on an external
// network that is being deleted which the caller may see and nothing
// uses: no port, no router (Neutron's delete_disassociated_floatingips). A
// floating IP in use keeps its port, so the network stays in use.
func deleteDisassociatedFloatingIPs(ctx context.Context, tx store.Txn, networkID string) error {
	fips, err := store.List[model.FloatingIP](tx, store.FloatingIPs)
	if err != nil {
		return err
	}
	for _, f := range fips {
		if f.FloatingNetworkID == networkID && f.PortID == nil && f.RouterID == nil && canSee(ctx, f.ProjectID) {
			if err := deleteFloatingIP(tx, f.ID); err != nil {
				return err
			}
		}
	}
	return nil
}

// deleteFloatingIP deletes a floating IP that no port forwarding uses and
// the port holding its address.
func deleteFloatingIP(tx store.Txn, id string) error {
	ports, err := store.List[model.Port](tx, store.Ports)
	if err != nil {
		return err
	}
	for _, p := range ports {
		if p.DeviceOwner == model.DeviceOwnerFloatingIP && p.DeviceID == id {
			if err := tx.Delete(store.Ports, p.ID); err != nil {
				return err
			}
		}
	}
	return tx.Delete(store.FloatingIPs, id)
}

// GetFloatingIP returns one floating IP.
func (s *Service) GetFloatingIP(ctx context.Context, id string) (model.FloatingIP, error) {
	var f model.FloatingIP
	err := s.store.View(ctx, func(r store.Reader) error {
		var err error
		if f, err = loadFloatingIP(ctx, r, id); err != nil {
			return err
		}
		return s.renderFloatingIP(r, &f)
	})
	return f, err
}

// ListFloatingIPs returns the floating IPs the caller may see.
func (s *Service) ListFloatingIPs(ctx context.Context) ([]model.FloatingIP, error) {
	return listWhere(ctx, s.store, store.FloatingIPs,
		func(_ store.Reader, f *model.FloatingIP) (bool, error) { return canSee(ctx, f.ProjectID), nil },
		s.renderFloatingIP)
}

// FloatingIPSelection names the floating IPs ListFloatingIPsWhere reads
// through an index: a superset of what a list filtered by port_id or
// router_id shows, without reading the others.
type FloatingIPSelection struct {
	// PortIDs, when set, selects the floating IPs of any of these ports.
	PortIDs []string
	// RouterIDs, when set (and PortIDs not), those any of these routers
	// translates.
	RouterIDs []string
}

// ListFloatingIPsWhere returns, in id order, the floating IPs of sel the
// caller may see, each as ListFloatingIPs shows it.
func (s *Service) ListFloatingIPsWhere(ctx context.Context, sel FloatingIPSelection) ([]model.FloatingIP, error) {
	read, keys := fipsOfPort, sel.PortIDs
	if len(keys) == 0 {
		read, keys = fipsOfRouter, sel.RouterIDs
	}
	var out []model.FloatingIP
	err := s.store.View(ctx, func(r store.Reader) error {
		out = nil
		seen := map[string]bool{}
		for _, key := range keys {
			fips, err := read(r, key)
			if err != nil {
				return err
			}
			for _, f := range fips {
				if seen[f.ID] || !canSee(ctx, f.ProjectID) {
					continue
				}
				seen[f.ID] = true
				if err := s.renderFloatingIP(r, &f); err != nil {
					return err
				}
				out = append(out, f)
			}
		}
		slices.SortFunc(out, func(a, b model.FloatingIP) int { return strings.Compare(a.ID, b.ID) })
		return nil
	})
	return out, err
}

func (s *Service) fipResult(ctx context.Context, id string, rev int64) (Result[model.FloatingIP], error) {
	f, err := s.GetFloatingIP(ctx, id)
	return Result[model.FloatingIP]{f, rev}, err
}

// renderFloatingIP: a floating IP translated by a router (associated, or
// carrying port forwardings) has the agent's status; one that is not is
// DOWN, as in Neutron.
// Its body lists its port forwardings (expose-port-forwarding-in-fip) and
// describes its port (fip-port-details).
func (s *Service) renderFloatingIP(r store.Reader, f *model.FloatingIP) error {
	f.TenantID = f.ProjectID
	if f.RouterID == nil {
		f.Status = model.StatusDown
	} else {
		f.Status, _ = s.statusOf(store.FloatingIPs, f.ID, "")
	}
	f.PortDetails = nil
	if f.PortID != nil {
		p, err := store.Get[model.Port](r, store.Ports, *f.PortID)
		if err != nil {
			return fmt.Errorf("read port %s of floating IP %s: %w", *f.PortID, f.ID, err)
		}
		status, _ := s.portStatus(&p)
		f.PortDetails = &model.FIPPortDetails{
			Name: p.Name, NetworkID: p.NetworkID, MACAddress: p.MACAddress, AdminStateUp: p.AdminStateUp,
			Status: status, DeviceID: p.DeviceID, DeviceOwner: p.DeviceOwner,
		}
	}
	forwards, err := forwardingsOf(r, f.ID)
	if err != nil {
		return err
	}
	sort.Slice(forwards, func(i, j int) bool { return forwards[i].ID < forwards[j].ID })
	f.PortForwardings = make([]model.FIPPortForwarding, 0, len(forwards))
	for _, pf := range forwards {
		f.PortForwardings = append(f.PortForwardings, model.FIPPortForwarding{
			Protocol: pf.Protocol, InternalIPAddress: pf.InternalIPAddress,
			InternalPort: pf.InternalPort, ExternalPort: pf.ExternalPort,
			InternalPortRange: pf.InternalPortRange, ExternalPortRange: pf.ExternalPortRange,
		})
	}
	return nil
}

func loadFloatingIP(ctx context.Context, r store.Reader, id string) (model.FloatingIP, error) {
	f, err := load(ctx, r, store.FloatingIPs, "FloatingIP", id, func(f *model.FloatingIP) string { return f.ProjectID })
	return f, worded(err, "Floating IP %s could not be found", id)
}

// disassociatePort undoes what a deleted port had: floating IPs lose their
// association, port forwardings to it go (as Neutron's
// disassociate_floatingips and the port forwarding plugin's port callback).
func disassociatePort(tx store.Txn, portID string) error {
	fips, err := fipsOfPort(tx, portID)
	if err != nil {
		return err
	}
	for _, f := range fips {
		if f.PortID != nil && *f.PortID == portID {
			f.PortID, f.FixedIPAddress, f.RouterID = nil, nil, nil
			if err := tx.Put(store.FloatingIPs, f.ID, f); err != nil {
				return err
			}
		}
	}
	forwards, err := forwardingsTo(tx, portID)
	if err != nil {
		return err
	}
	for _, pf := range forwards {
		if pf.InternalPortID == portID {
			if err := deleteForwarding(tx, pf); err != nil {
				return err
			}
		}
	}
	return nil
}

// addrIn reports whether addr is inside cidr.
func addrIn(cidr, addr string) bool {
	p, err1 := netip.ParsePrefix(cidr)
	a, err2 := netip.ParseAddr(addr)
	return err1 == nil && err2 == nil && p.Contains(a)
}

// ListFloatingIPPools lists the subnets floating IPs may be taken from
// (floatingip-pools): the IPv4 subnets of the external networks the caller
// can see, whether or not it may see the subnets themselves (Neutron lists
// them whatever their service types, and IPv6 ones only with fip64). Like
// Neutron's, a pool carries the caller's project.
func (s *Service) ListFloatingIPPools(ctx context.Context) ([]model.FloatingIPPool, error) {
	pools := []model.FloatingIPPool{}
	err := s.store.View(ctx, func(r store.Reader) error {
		acc, err := readAccess(r)
		if err != nil {
			return err
		}
		nets, err := store.List[model.Network](r, store.Networks)
		if err != nil {
			return err
		}
		external := map[string]bool{}
		for _, n := range nets {
			if n.RouterExternal && acc.canSeeNetwork(ctx, &n) {
				external[n.ID] = true
			}
		}
		subnets, err := store.List[model.Subnet](r, store.Subnets)
		if err != nil {
			return err
		}
		project := caller(ctx).ProjectID
		for _, sn := range subnets {
			if !external[sn.NetworkID] || sn.IPVersion != 4 {
				continue
			}
			pools = append(pools, model.FloatingIPPool{
				SubnetID: sn.ID, SubnetName: sn.Name, NetworkID: sn.NetworkID, CIDR: sn.CIDR,
				ProjectID: project, TenantID: project,
			})
		}
		return nil
	})
	return pools, err
}
