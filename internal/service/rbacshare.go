package service

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/store"
)

// RBAC policies on subnet pools, address scopes, address groups and QoS
// policies (rbac-subnetpool, rbac-address-scope, rbac-address-group, qos):
// only access_as_shared, which lets the target project see the object and
// use it (allocate subnets from a pool, put a pool in a scope, name a group
// as the remote of its security group rules, bind a QoS policy). Network
// policies, with their external action and their ports,
// are rbac.go's.

// listShared reads the records of kind the caller may see (its own and
// those shared with it; an admin sees all), each rendered for the caller.
// key gives a record's id and project.
func listShared[T any](ctx context.Context, st store.Store, kind store.Kind, key func(*T) (id, project string), render func(access, *T)) ([]T, error) {
	var out []T
	err := st.View(ctx, func(r store.Reader) error {
		all, err := store.List[T](r, kind)
		if err != nil {
			return err
		}
		acc, err := readAccess(r)
		if err != nil {
			return err
		}
		for i := range all {
			if id, project := key(&all[i]); acc.canSeeShared(ctx, id, project) {
				render(acc, &all[i])
				out = append(out, all[i])
			}
		}
		return nil
	})
	return out, err
}

// getShared reads one record the caller may see with load (which answers
// the kind's own 404), rendered for the caller.
func getShared[T any](ctx context.Context, st store.Store, id string,
	load func(context.Context, store.Reader, string) (T, access, error), render func(access, *T)) (T, error) {
	var v T
	err := st.View(ctx, func(r store.Reader) error {
		var acc access
		var err error
		v, acc, err = load(ctx, r, id)
		render(acc, &v)
		return err
	})
	return v, err
}

// sharedObjectOwner reads the project of a pool or scope the caller may
// see (404 otherwise, in the object's own words).
func sharedObjectOwner(ctx context.Context, r store.Reader, typ, id string) (string, error) {
	switch typ {
	case model.RBACObjectSubnetPool:
		sp, _, err := loadSubnetPool(ctx, r, id)
		return sp.ProjectID, err
	case model.RBACObjectAddressGroup:
		g, err := loadAddressGroup(ctx, r, id)
		return g.ProjectID, err
	case model.RBACObjectQosPolicy:
		q, _, err := loadQosPolicy(ctx, r, id)
		return q.ProjectID, err
	default:
		a, _, err := loadAddressScope(ctx, r, id)
		return a.ProjectID, err
	}
}

func (s *Service) createSharePolicy(ctx context.Context, p model.RBACPolicy) (Result[model.RBACPolicy], error) {
	if p.Action != model.ActionAccessAsShared {
		return Result[model.RBACPolicy]{}, typed(http.StatusBadRequest, "InvalidActionForType",
			"Invalid action '%s' for object type '%s'. Valid actions: ['%s']", p.Action, p.ObjectType, model.ActionAccessAsShared)
	}
	rev, err := s.store.Update(ctx, func(tx store.Txn) error {
		project, err := sharedObjectOwner(ctx, tx, p.ObjectType, p.ObjectID)
		if err != nil {
			return err
		}
		if c := caller(ctx); !c.IsAdmin() && project != c.ProjectID {
			return invalidInput("Only admins can manipulate policies on objects they do not own")
		}
		acc, err := readAccess(tx)
		if err != nil {
			return err
		}
		if dup(acc, p) {
			return conflict("DuplicateRbacPolicy", "An RBAC policy already exists with those values.")
		}
		if err := s.checkQuota(tx, p.ProjectID, quotaRBACPolicy); err != nil {
			return err
		}
		if err := checkScopeReach(tx, acc, p); err != nil {
			return err
		}
		return tx.Put(store.RBACPolicies, p.ID, p)
	})
	if err != nil {
		return Result[model.RBACPolicy]{}, err
	}
	return s.rbacResult(ctx, p.ID, rev)
}

// checkScopeReach refuses to share a pool with a project that cannot use
// the pool's address scope: the project could allocate from the pool but
// not see what its subnets are scoped by (Neutron's subnetpool RBAC check).
func checkScopeReach(r store.Reader, acc access, p model.RBACPolicy) error {
	if p.ObjectType != model.RBACObjectSubnetPool {
		return nil
	}
	sp, err := store.Get[model.SubnetPool](r, store.SubnetPools, p.ObjectID)
	if err != nil || sp.AddressScopeID == nil {
		return ignoreMissing(err)
	}
	scope, err := store.Get[model.AddressScope](r, store.AddressScopes, *sp.AddressScopeID)
	if err != nil {
		return ignoreMissing(err)
	}
	if scope.ProjectID != p.TargetTenant && !acc.grants(scope.ID, model.ActionAccessAsShared, p.TargetTenant) {
		return invalidInput("The target project %s has no access to address scope %s of subnet pool %s", p.TargetTenant, scope.ID, sp.ID)
	}
	return nil
}

func ignoreMissing(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}

// changeSharePolicy updates cur to next, or deletes it when next is nil,
// unless a project would lose access to what it uses: subnets allocated
// from a pool, pools in a scope (409 RbacPolicyInUse).
func (s *Service) changeSharePolicy(ctx context.Context, tx store.Txn, cur model.RBACPolicy, next *model.RBACPolicy) error {
	acc, err := readAccess(tx)
	if err != nil {
		return err
	}
	after := acc.without(cur.ID)
	if next != nil {
		if dup(acc, *next) {
			return conflict("DuplicateRbacPolicy", "An RBAC policy already exists with those values.")
		}
		if err := checkScopeReach(tx, acc, *next); err != nil {
			return err
		}
		// An update of a QoS policy's share is checked as the deletion of
		// the old one, as Neutron's RbacNeutronDbObjectMixin does.
		if cur.ObjectType != model.RBACObjectQosPolicy {
			after = acc.with(*next)
		}
	}
	if err := checkShareDependents(tx, cur, after); err != nil {
		return err
	}
	if next == nil {
		return tx.Delete(store.RBACPolicies, cur.ID)
	}
	return tx.Put(store.RBACPolicies, cur.ID, *next)
}

func checkShareDependents(r store.Reader, p model.RBACPolicy, after access) error {
	inUse := rbacInUse(p)
	switch p.ObjectType {
	case model.RBACObjectSubnetPool:
		sp, err := store.Get[model.SubnetPool](r, store.SubnetPools, p.ObjectID)
		if err != nil {
			return ignoreMissing(err)
		}
		subnets, err := store.List[model.Subnet](r, store.Subnets)
		if err != nil {
			return err
		}
		for _, sn := range subnets {
			if sn.SubnetPoolID != nil && *sn.SubnetPoolID == sp.ID && sn.ProjectID != sp.ProjectID &&
				!after.grants(sp.ID, model.ActionAccessAsShared, sn.ProjectID) {
				return inUse(sn.ProjectID, "subnets")
			}
		}
	case model.RBACObjectAddressScope:
		scope, err := store.Get[model.AddressScope](r, store.AddressScopes, p.ObjectID)
		if err != nil {
			return ignoreMissing(err)
		}
		pools, err := store.List[model.SubnetPool](r, store.SubnetPools)
		if err != nil {
			return err
		}
		for _, sp := range pools {
			if sp.AddressScopeID != nil && *sp.AddressScopeID == scope.ID && sp.ProjectID != scope.ProjectID &&
				!after.grants(scope.ID, model.ActionAccessAsShared, sp.ProjectID) {
				return inUse(sp.ProjectID, "subnet pools")
			}
		}
	case model.RBACObjectAddressGroup:
		g, err := store.Get[model.AddressGroup](r, store.AddressGroups, p.ObjectID)
		if err != nil {
			return ignoreMissing(err)
		}
		rules, err := rulesNaming(r, g.ID)
		if err != nil {
			return err
		}
		for _, rule := range rules {
			if rule.ProjectID != g.ProjectID &&
				!after.grants(g.ID, model.ActionAccessAsShared, rule.ProjectID) {
				return inUse(rule.ProjectID, "security group rules")
			}
		}
	case model.RBACObjectQosPolicy:
		q, err := store.Get[model.QosPolicy](r, store.QosPolicies, p.ObjectID)
		if err != nil {
			return ignoreMissing(err)
		}
		// Neutron counts the policy's owner among the projects bound to
		// it (QosPolicy.get_bound_project_ids): unsharing a policy that
		// the owner's own network uses is refused too.
		return checkQosUnused(r, q.ID, func(project string) bool {
			return after.grants(q.ID, model.ActionAccessAsShared, project)
		})
	default:
		return fmt.Errorf("RBAC policy %s: unknown object type %q", p.ID, p.ObjectType)
	}
	return nil
}

// markerShared reads record id of kind as a list's marker, whoever owns it,
// rendered for the caller; nil when there is no such record. Neutron reads
// its RBAC-shared objects (QoS policies, subnet pools, address scopes,
// address groups) with an elevated context, pager included, and drops what
// the caller may not see afterwards: the marker is a position in the whole
// sorted collection, so a page may continue after a record the caller does
// not see (neutron-tempest-plugin's search criteria tests list as admin and
// fetch the last, empty page as a member), and a marker that names no
// record at all is no marker.
func markerShared[T any](ctx context.Context, st store.Store, kind store.Kind, id string, render func(access, *T)) (*T, error) {
	var out *T
	err := st.View(ctx, func(r store.Reader) error {
		v, err := store.Get[T](r, kind, id)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read %s %s: %w", kind, id, err)
		}
		acc, err := readAccess(r)
		if err != nil {
			return err
		}
		render(acc, &v)
		out = &v
		return nil
	})
	return out, err
}

// QosPolicyMarker, SubnetPoolMarker, AddressScopeMarker and
// AddressGroupMarker read a list's marker: see markerShared.
func (s *Service) QosPolicyMarker(ctx context.Context, id string) (*model.QosPolicy, error) {
	return markerShared(ctx, s.store, store.QosPolicies, id, func(acc access, p *model.QosPolicy) { renderQosPolicy(ctx, acc, p) })
}

// SubnetPoolMarker: see QosPolicyMarker.
func (s *Service) SubnetPoolMarker(ctx context.Context, id string) (*model.SubnetPool, error) {
	return markerShared(ctx, s.store, store.SubnetPools, id, func(acc access, sp *model.SubnetPool) { renderSubnetPool(ctx, acc, sp) })
}

// AddressScopeMarker: see QosPolicyMarker.
func (s *Service) AddressScopeMarker(ctx context.Context, id string) (*model.AddressScope, error) {
	return markerShared(ctx, s.store, store.AddressScopes, id, func(acc access, a *model.AddressScope) { renderAddressScope(ctx, acc, a) })
}

// AddressGroupMarker: see QosPolicyMarker.
func (s *Service) AddressGroupMarker(ctx context.Context, id string) (*model.AddressGroup, error) {
	return markerShared(ctx, s.store, store.AddressGroups, id, func(_ access, g *model.AddressGroup) { renderAddressGroup(g) })
}
