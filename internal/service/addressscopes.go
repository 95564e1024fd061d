package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/store"
)

// Address scopes are Neutron's address-scope extension: subnet pools join
// one, and the pools of one scope never share an address. Sharing is by
// RBAC policy, as for networks and subnet pools.

type scopeInput struct {
	model.AddressScope
	shared, sharedSet bool
}

var addressScopeAttrs = append([]attr[scopeInput]{
	stringAttr("name", true, true, func(a *scopeInput) *string { return &a.Name }),
	{name: "shared", post: true, put: true, set: func(a *scopeInput, raw json.RawMessage) error {
		v, err := parseBool(raw)
		a.shared, a.sharedSet = v, true
		return err
	}},
	{name: "ip_version", post: true, required: true, set: func(a *scopeInput, raw json.RawMessage) error {
		v, err := parseInt(raw)
		if err != nil {
			return err
		}
		if v != 4 && v != 6 {
			return fmt.Errorf("%d is not in [4, 6]", v)
		}
		a.IPVersion = v
		return nil
	}},
}, projectAttrs(func(a *scopeInput) *string { return &a.ProjectID })...)

// CreateAddressScope creates an address scope from the attributes of a POST.
func (s *Service) CreateAddressScope(ctx context.Context, in Attrs) (Result[model.AddressScope], error) {
	return createOne(ctx, s, in, s.prepareAddressScope, s.GetAddressScope)
}

func (s *Service) prepareAddressScope(ctx context.Context, in Attrs) (pending, error) {
	a := scopeInput{AddressScope: model.AddressScope{ID: newID()}}
	if err := mustCreate(ctx, "create_address_scope"); err != nil {
		return pending{}, err
	}
	if err := decode(&a, addressScopeAttrs, in, opCreate); err != nil {
		return pending{}, err
	}
	if a.shared && !caller(ctx).IsAdmin() {
		return pending{}, denied("create_address_scope", "create_address_scope:shared")
	}
	return pending{id: a.ID, apply: func(tx store.Txn) error {
		a := a // a retry starts again from the request (see store.Update)
		project, err := owner(ctx, "create_address_scope", a.ProjectID)
		if err != nil {
			return err
		}
		a.ProjectID = project
		if err := tx.Put(store.AddressScopes, a.ID, a.AddressScope); err != nil {
			return err
		}
		if a.shared {
			return putWildcardShare(tx, model.RBACObjectAddressScope, a.ID, project)
		}
		return nil
	}}, nil
}

// putWildcardShare stores the "*" access_as_shared policy that `shared:
// true` stands for.
func putWildcardShare(tx store.Txn, objectType, id, project string) error {
	p := model.RBACPolicy{ID: newID(), ObjectType: objectType, ObjectID: id, Action: model.ActionAccessAsShared,
		TargetTenant: model.RBACWildcard, ProjectID: project}
	return tx.Put(store.RBACPolicies, p.ID, p)
}

// UpdateAddressScope applies the attributes of a PUT. Only an admin
// changes `shared`, and a shared scope stays shared, as in Neutron.
func (s *Service) UpdateAddressScope(ctx context.Context, id string, in Attrs) (Result[model.AddressScope], error) {
	// The body first, as in Neutron (see UpdateSubnetPool).
	if err := decode(&scopeInput{}, addressScopeAttrs, in, opUpdate); err != nil {
		return Result[model.AddressScope]{}, err
	}
	rev, err := s.store.Update(ctx, func(tx store.Txn) error {
		cur, acc, err := loadAddressScope(ctx, tx, id)
		if err != nil {
			return err
		}
		if err := authorize(ctx, "update_address_scope", cur.ProjectID); err != nil {
			return err
		}
		a := scopeInput{AddressScope: cur}
		if err := decode(&a, addressScopeAttrs, in, opUpdate); err != nil {
			return err
		}
		if a.sharedSet && !caller(ctx).IsAdmin() {
			return denied("update_address_scope", "update_address_scope:shared")
		}
		_, wasShared := acc.wildcard(id, model.ActionAccessAsShared)
		if a.sharedSet && wasShared && !a.shared {
			return typed(http.StatusBadRequest, "AddressScopeUpdateError",
				"Unable to update address scope %s : Shared address scope can't be unshared.", id)
		}
		if err := tx.Put(store.AddressScopes, id, a.AddressScope); err != nil {
			return err
		}
		if a.shared && !wasShared {
			return putWildcardShare(tx, model.RBACObjectAddressScope, id, cur.ProjectID)
		}
		return nil
	})
	if err != nil {
		return Result[model.AddressScope]{}, err
	}
	a, err := s.GetAddressScope(ctx, id)
	return Result[model.AddressScope]{a, rev}, err
}

// DeleteAddressScope deletes a scope no subnet pool is in, with the RBAC
// policies that share it.
func (s *Service) DeleteAddressScope(ctx context.Context, id string) (int64, error) {
	return s.store.Update(ctx, func(tx store.Txn) error {
		cur, acc, err := loadAddressScope(ctx, tx, id)
		if err != nil {
			return err
		}
		if err := authorize(ctx, "delete_address_scope", cur.ProjectID); err != nil {
			return err
		}
		pools, err := store.List[model.SubnetPool](tx, store.SubnetPools)
		if err != nil {
			return err
		}
		for _, sp := range pools {
			if sp.AddressScopeID != nil && *sp.AddressScopeID == id {
				return conflict("AddressScopeInUse",
					"Unable to complete operation on address scope %s. There are one or more subnet pools in use on the address scope.", id)
			}
		}
		for _, p := range acc[id] {
			if err := tx.Delete(store.RBACPolicies, p.ID); err != nil {
				return err
			}
		}
		return tx.Delete(store.AddressScopes, id)
	})
}

// GetAddressScope returns one address scope.
func (s *Service) GetAddressScope(ctx context.Context, id string) (model.AddressScope, error) {
	return getShared(ctx, s.store, id, loadAddressScope, func(acc access, v *model.AddressScope) { renderAddressScope(ctx, acc, v) })
}

// ListAddressScopes returns the scopes the caller may see: its own and
// those shared with it.
func (s *Service) ListAddressScopes(ctx context.Context) ([]model.AddressScope, error) {
	return listShared(ctx, s.store, store.AddressScopes, func(a *model.AddressScope) (string, string) { return a.ID, a.ProjectID },
		func(acc access, a *model.AddressScope) { renderAddressScope(ctx, acc, a) })
}

func renderAddressScope(ctx context.Context, acc access, a *model.AddressScope) {
	a.TenantID = a.ProjectID
	a.Shared = acc.grants(a.ID, model.ActionAccessAsShared, caller(ctx).ProjectID)
}

// loadAddressScope reads a scope the caller may see.
func loadAddressScope(ctx context.Context, r store.Reader, id string) (model.AddressScope, access, error) {
	a, err := store.Get[model.AddressScope](r, store.AddressScopes, id)
	missing := typed(http.StatusNotFound, "AddressScopeNotFound", "Address scope %s could not be found.", id)
	if errors.Is(err, store.ErrNotFound) {
		return a, nil, missing
	}
	if err != nil {
		return a, nil, fmt.Errorf("read address scope %s: %w", id, err)
	}
	acc, err := readAccess(r)
	if err != nil {
		return a, nil, err
	}
	if !acc.canSeeShared(ctx, id, a.ProjectID) {
		return a, nil, missing
	}
	return a, acc, nil
}

// poolScopes maps every subnet pool in an address scope to its scope.
func poolScopes(r store.Reader) (map[string]string, error) {
	pools, err := store.List[model.SubnetPool](r, store.SubnetPools)
	out := map[string]string{}
	for _, sp := range pools {
		if sp.AddressScopeID != nil {
			out[sp.ID] = *sp.AddressScopeID
		}
	}
	return out, err
}

// renderNetworkScopes fills a network's ipv4_address_scope and
// ipv6_address_scope: the scope of its subnets of that version, through
// their pools (pool affinity keeps them all in one).
func renderNetworkScopes(n *model.Network, subnets []model.Subnet, scopes map[string]string) {
	n.IPv4AddressScope, n.IPv6AddressScope = nil, nil
	for _, sn := range subnets {
		if sn.SubnetPoolID == nil || scopes[*sn.SubnetPoolID] == "" {
			continue
		}
		scope := scopes[*sn.SubnetPoolID]
		if sn.IPVersion == 4 {
			n.IPv4AddressScope = &scope
		} else {
			n.IPv6AddressScope = &scope
		}
	}
}
