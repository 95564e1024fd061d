package service

import (
	"context"
	"encoding/json"
	"fmt"

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
	{name: "availability_zone_hints", post: true, set: func(n *model.Network, raw json.RawMessage) error {
		hints, err := parseStringList(raw, func(z string) error {
			if z != "nova" && z != "nsnet" {
				return fmt.Errorf("availability zone '%s' does not exist", z)
			}
			return nil
		})
		n.AvailabilityZoneHints = hints
		return err
	}},
}, projectAttrs(func(n *model.Network) *string { return &n.ProjectID })...)

// CreateNetwork creates a network from the attributes of a POST.
func (s *Service) CreateNetwork(ctx context.Context, in Attrs) (Result[model.Network], error) {
	n := model.Network{
		ID:                    newID(),
		AdminStateUp:          true,
		MTU:                   model.DefaultMTU,
		PortSecurityEnabled:   true,
		AvailabilityZoneHints: []string{},
		L2Adjacency:           true,
	}
	if err := mustWrite(ctx); err != nil {
		return Result[model.Network]{}, err
	}
	if err := decode(&n, networkAttrs, in, opCreate); err != nil {
		return Result[model.Network]{}, err
	}
	project, err := owner(ctx, n.ProjectID)
	if err != nil {
		return Result[model.Network]{}, err
	}
	n.ProjectID = project
	n.Touch(s.now())
	rev, err := s.store.Update(ctx, func(tx store.Txn) error {
		return tx.Put(store.Networks, n.ID, n)
	})
	if err != nil {
		return Result[model.Network]{}, fmt.Errorf("create network: %w", err)
	}
	return s.networkResult(ctx, n.ID, rev)
}

// UpdateNetwork applies the attributes of a PUT.
func (s *Service) UpdateNetwork(ctx context.Context, id string, in Attrs) (Result[model.Network], error) {
	if err := mustWrite(ctx); err != nil {
		return Result[model.Network]{}, err
	}
	rev, err := s.store.Update(ctx, func(tx store.Txn) error {
		n, err := loadNetwork(ctx, tx, id)
		if err != nil {
			return err
		}
		if err := decode(&n, networkAttrs, in, opUpdate); err != nil {
			return err
		}
		n.Touch(s.now())
		return tx.Put(store.Networks, id, n)
	})
	if err != nil {
		return Result[model.Network]{}, err
	}
	return s.networkResult(ctx, id, rev)
}

// DeleteNetwork deletes a network and its subnets, refusing while ports
// other than nsnet's own service ports are on it.
func (s *Service) DeleteNetwork(ctx context.Context, id string) (int64, error) {
	if err := mustWrite(ctx); err != nil {
		return 0, err
	}
	return s.store.Update(ctx, func(tx store.Txn) error {
		if _, err := loadNetwork(ctx, tx, id); err != nil {
			return err
		}
		ports, err := portsOn(tx, id)
		if err != nil {
			return err
		}
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
		return tx.Delete(store.Networks, id)
	})
}

// GetNetwork returns one network as the API shows it.
func (s *Service) GetNetwork(ctx context.Context, id string) (model.Network, error) {
	var n model.Network
	err := s.store.View(ctx, func(r store.Reader) error {
		var err error
		if n, err = loadNetwork(ctx, r, id); err != nil {
			return err
		}
		subnets, err := subnetsOn(r, id)
		s.renderNetwork(&n, subnets)
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
		byNetwork := map[string][]model.Subnet{}
		for _, sn := range subnets {
			byNetwork[sn.NetworkID] = append(byNetwork[sn.NetworkID], sn)
		}
		for _, n := range all {
			if !canSeeNetwork(ctx, &n) {
				continue
			}
			s.renderNetwork(&n, byNetwork[n.ID])
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

func (s *Service) renderNetwork(n *model.Network, subnets []model.Subnet) {
	n.TenantID = n.ProjectID
	n.Subnets = make([]string, 0, len(subnets))
	for _, sn := range subnets {
		n.Subnets = append(n.Subnets, sn.ID)
	}
	n.AvailabilityZones = []string{"nsnet"}
	if n.AvailabilityZoneHints == nil {
		n.AvailabilityZoneHints = []string{}
	}
	n.Status, _ = s.statusOf(store.Networks, n.ID)
	if !n.AdminStateUp {
		n.Status = model.StatusDown
	}
}

// canSeeNetwork: shared and external networks are visible to every project.
func canSeeNetwork(ctx context.Context, n *model.Network) bool {
	return n.Shared || n.RouterExternal || canSee(ctx, n.ProjectID)
}

func loadNetwork(ctx context.Context, r store.Reader, id string) (model.Network, error) {
	n, err := store.Get[model.Network](r, store.Networks, id)
	if err == store.ErrNotFound || err == nil && !canSeeNetwork(ctx, &n) {
		return n, notFound("Network", id)
	}
	return n, err
}

func subnetsOn(r store.Reader, networkID string) ([]model.Subnet, error) {
	all, err := store.List[model.Subnet](r, store.Subnets)
	if err != nil {
		return nil, err
	}
	var out []model.Subnet
	for _, sn := range all {
		if sn.NetworkID == networkID {
			out = append(out, sn)
		}
	}
	return out, nil
}

func portsOn(r store.Reader, networkID string) ([]model.Port, error) {
	all, err := store.List[model.Port](r, store.Ports)
	if err != nil {
		return nil, err
	}
	var out []model.Port
	for _, p := range all {
		if p.NetworkID == networkID {
			out = append(out, p)
		}
	}
	return out, nil
}
