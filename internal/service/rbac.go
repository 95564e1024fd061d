package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/store"
)

// Networks are shared the way Neutron shares them: by RBAC policies. The
// `shared` attribute of a network is not stored; it is true for a caller
// when a policy grants access_as_shared to the caller's project or to "*",
// and setting it true or false adds or removes the "*" policy. Likewise
// `router:external` (which is stored) comes with an access_as_external
// policy for "*", and such a policy makes a network external.

// rbacActions are the actions nsnet implements, in Neutron's order.
var rbacActions = []string{model.ActionAccessAsExternal, model.ActionAccessAsShared}

// rbacObjectTypes are the kinds of object nsnet shares by policy, in
// Neutron's (alphabetical) order.
var rbacObjectTypes = []string{model.RBACObjectAddressGroup, model.RBACObjectAddressScope, model.RBACObjectNetwork, model.RBACObjectQosPolicy, model.RBACObjectSecurityGroup, model.RBACObjectSubnetPool}

// access is every RBAC policy, by network, as one transaction read them.
type access map[string][]model.RBACPolicy

// readAccessTo reads the policies of the objects ids alone, through the
// index of policies by object: an access that knows nothing of others.
func readAccessTo(r store.Reader, ids ...string) (access, error) {
	a := access{}
	for _, id := range ids {
		ps, err := indexed[model.RBACPolicy](r, store.RBACPolicies, policiesPrefix(id))
		if err != nil {
			return nil, err
		}
		if len(ps) > 0 {
			a[id] = ps
		}
	}
	return a, nil
}

func readAccess(r store.Reader) (access, error) {
	all, err := store.List[model.RBACPolicy](r, store.RBACPolicies)
	if err != nil {
		return nil, err
	}
	a := access{}
	for _, p := range all {
		a[p.ObjectID] = append(a[p.ObjectID], p)
	}
	return a, nil
}

// grants reports whether a policy on network gives project action.
func (a access) grants(network, action, project string) bool {
	return slices.ContainsFunc(a[network], func(p model.RBACPolicy) bool {
		return p.Action == action && (p.TargetTenant == model.RBACWildcard || p.TargetTenant == project)
	})
}

// wildcard returns the "*" policy of network for action, if any.
func (a access) wildcard(network, action string) (model.RBACPolicy, bool) {
	for _, p := range a[network] {
		if p.Action == action && p.TargetTenant == model.RBACWildcard {
			return p, true
		}
	}
	return model.RBACPolicy{}, false
}

// canSeeNetwork: an admin sees every network, a project its own and those
// shared with it or external to it.
func (a access) canSeeNetwork(ctx context.Context, n *model.Network) bool {
	c := caller(ctx)
	return canSee(ctx, n.ProjectID) ||
		a.grants(n.ID, model.ActionAccessAsShared, c.ProjectID) ||
		a.grants(n.ID, model.ActionAccessAsExternal, c.ProjectID)
}

// usableBy reports whether project may put ports on network n.
func (a access) usableBy(n *model.Network, project string) bool {
	return n.ProjectID == project || a.grants(n.ID, model.ActionAccessAsShared, project)
}

// checkDependents refuses a change of the policies of network n (after is
// what they would become) that would take access away from a project that
// uses it: one with ports on it (access_as_shared), or with a router's
// gateway or a floating IP on it (access_as_external). fail words the
// refusal (Neutron's RbacPolicyInUse) with the project and what it has.
func checkDependents(r store.Reader, n *model.Network, after access, fail func(project, has string) error) error {
	ports, err := portsOn(r, n.ID)
	if err != nil {
		return err
	}
	for _, p := range ports {
		// Gateway and floating IP ports are no project's: their routers
		// and floating IPs are checked below.
		if p.ProjectID != "" && !after.usableBy(n, p.ProjectID) {
			return fail(p.ProjectID, "ports")
		}
	}
	external := func(project string) bool {
		return project == n.ProjectID || after.grants(n.ID, model.ActionAccessAsExternal, project)
	}
	routers, err := routersWithGatewayOn(r, n.ID)
	if err != nil {
		return err
	}
	for _, rt := range routers {
		if !external(rt.ProjectID) {
			return fail(rt.ProjectID, "routers")
		}
	}
	fips, err := fipsOn(r, n.ID)
	if err != nil {
		return err
	}
	for _, f := range fips {
		if !external(f.ProjectID) {
			return fail(f.ProjectID, "floating IPs")
		}
	}
	return nil
}

func (a access) without(id string) access {
	out := access{}
	for net, ps := range a {
		out[net] = slices.DeleteFunc(slices.Clone(ps), func(p model.RBACPolicy) bool { return p.ID == id })
	}
	return out
}

func (a access) with(p model.RBACPolicy) access {
	out := a.without(p.ID)
	out[p.ObjectID] = append(out[p.ObjectID], p)
	return out
}

var rbacAttrs = append([]attr[model.RBACPolicy]{
	{name: "object_type", post: true, required: true, set: func(p *model.RBACPolicy, raw json.RawMessage) error {
		v, err := parseString(raw, maxNameLen)
		if err != nil {
			return err
		}
		if !slices.Contains(rbacObjectTypes, v) {
			return fmt.Errorf("'%s' is not in ['%s']", v, strings.Join(rbacObjectTypes, "', '"))
		}
		p.ObjectType = v
		return nil
	}},
	{name: "object_id", post: true, required: true, set: func(p *model.RBACPolicy, raw json.RawMessage) error {
		v, err := parseString(raw, maxNameLen)
		p.ObjectID = v
		return err
	}},
	{name: "action", post: true, required: true, set: func(p *model.RBACPolicy, raw json.RawMessage) error {
		v, err := parseString(raw, maxNameLen)
		if err != nil {
			return err
		}
		if !slices.Contains(rbacActions, v) {
			return fmt.Errorf("'%s' is not in ['%s', '%s']", v, rbacActions[0], rbacActions[1])
		}
		p.Action = v
		return nil
	}},
	{name: "target_tenant", post: true, put: true, required: true, set: func(p *model.RBACPolicy, raw json.RawMessage) error {
		v, err := parseString(raw, maxNameLen)
		if err != nil {
			return err
		}
		if v == "" {
			return fmt.Errorf("'' is not a project id or '*'")
		}
		p.TargetTenant = v
		return nil
	}},
}, projectAttrs(func(p *model.RBACPolicy) *string { return &p.ProjectID })...)

// CreateRBACPolicy shares a network with a project (or every project).
// The network's owner or an admin may; only an admin may target "*".
func (s *Service) CreateRBACPolicy(ctx context.Context, in Attrs) (Result[model.RBACPolicy], error) {
	p := model.RBACPolicy{ID: newID()}
	if err := mustCreate(ctx, "create_rbac_policy"); err != nil {
		return Result[model.RBACPolicy]{}, err
	}
	if err := decode(&p, rbacAttrs, in, opCreate); err != nil {
		return Result[model.RBACPolicy]{}, err
	}
	if p.TargetTenant == model.RBACWildcard && !caller(ctx).IsAdmin() {
		return Result[model.RBACPolicy]{}, denied("create_rbac_policy", "create_rbac_policy:target_tenant")
	}
	project, err := owner(ctx, "create_rbac_policy", p.ProjectID)
	if err != nil {
		return Result[model.RBACPolicy]{}, err
	}
	p.ProjectID = project
	if p.ObjectType == model.RBACObjectSecurityGroup {
		return s.createGroupPolicy(ctx, p)
	}
	if p.ObjectType != model.RBACObjectNetwork {
		return s.createSharePolicy(ctx, p)
	}
	rev, err := s.store.Update(ctx, func(tx store.Txn) error {
		n, acc, err := loadNetwork(ctx, tx, p.ObjectID)
		if err != nil {
			return err
		}
		if c := caller(ctx); !c.IsAdmin() && n.ProjectID != c.ProjectID {
			// Neutron's answer to a member sharing a network it sees but
			// does not own (one shared with it).
			return invalidInput("Only admins can manipulate policies on networks they do not own")
		}
		if dup(acc, p) {
			return conflict("DuplicateRbacPolicy", "An RBAC policy already exists with those values.")
		}
		if err := s.checkQuota(tx, p.ProjectID, quotaRBACPolicy); err != nil {
			return err
		}
		if p.Action == model.ActionAccessAsExternal && !n.RouterExternal {
			// As in Neutron: a network usable as external is external.
			n.RouterExternal = true
			n.Touch(s.now())
			if err := tx.Put(store.Networks, n.ID, n); err != nil {
				return err
			}
		}
		if err := tx.Put(store.RBACPolicies, p.ID, p); err != nil {
			return err
		}
		return bumpRevision[model.Network](s, tx, store.Networks, n.ID)
	})
	if err != nil {
		return Result[model.RBACPolicy]{}, err
	}
	return s.rbacResult(ctx, p.ID, rev)
}

func dup(a access, p model.RBACPolicy) bool {
	return slices.ContainsFunc(a[p.ObjectID], func(o model.RBACPolicy) bool {
		return o.ID != p.ID && o.Action == p.Action && o.TargetTenant == p.TargetTenant
	})
}

// UpdateRBACPolicy changes a policy's target project.
func (s *Service) UpdateRBACPolicy(ctx context.Context, id string, in Attrs) (Result[model.RBACPolicy], error) {
	rev, err := s.store.Update(ctx, func(tx store.Txn) error {
		cur, err := loadRBACPolicy(ctx, tx, id)
		if err != nil {
			return err
		}
		if err := authorize(ctx, "update_rbac_policy", cur.ProjectID); err != nil {
			return err
		}
		p := cur
		if err := decode(&p, rbacAttrs, in, opUpdate); err != nil {
			return err
		}
		if p.TargetTenant == model.RBACWildcard && cur.TargetTenant != model.RBACWildcard && !caller(ctx).IsAdmin() {
			return denied("update_rbac_policy", "update_rbac_policy:target_tenant")
		}
		if cur.ObjectType == model.RBACObjectSecurityGroup {
			return updateGroupPolicy(ctx, tx, cur, p)
		}
		if cur.ObjectType != model.RBACObjectNetwork {
			return s.changeSharePolicy(ctx, tx, cur, &p)
		}
		n, acc, err := rbacNetwork(tx, cur)
		if err != nil {
			return err
		}
		if dup(acc, p) {
			return conflict("DuplicateRbacPolicy", "An RBAC policy already exists with those values.")
		}
		if p.TargetTenant != cur.TargetTenant {
			if err := checkDefaultShared(&n, cur); err != nil {
				return err
			}
		}
		if err := checkDependents(tx, &n, acc.with(p), rbacInUse(cur)); err != nil {
			return err
		}
		if err := tx.Put(store.RBACPolicies, id, p); err != nil {
			return err
		}
		return bumpRevision[model.Network](s, tx, store.Networks, n.ID)
	})
	if err != nil {
		return Result[model.RBACPolicy]{}, err
	}
	return s.rbacResult(ctx, id, rev)
}

// DeleteRBACPolicy deletes a policy no port depends on.
func (s *Service) DeleteRBACPolicy(ctx context.Context, id string) (int64, error) {
	return s.store.Update(ctx, func(tx store.Txn) error {
		cur, err := loadRBACPolicy(ctx, tx, id)
		if err != nil {
			return err
		}
		if err := authorize(ctx, "delete_rbac_policy", cur.ProjectID); err != nil {
			return err
		}
		if cur.ObjectType == model.RBACObjectSecurityGroup {
			return deleteGroupPolicy(tx, cur)
		}
		if cur.ObjectType != model.RBACObjectNetwork {
			return s.changeSharePolicy(ctx, tx, cur, nil)
		}
		n, acc, err := rbacNetwork(tx, cur)
		if err != nil {
			return err
		}
		after := acc.without(id)
		if err := checkDefaultShared(&n, cur); err != nil {
			return err
		}
		if err := checkDependents(tx, &n, after, rbacInUse(cur)); err != nil {
			return err
		}
		if cur.Action == model.ActionAccessAsExternal && !slices.ContainsFunc(after[n.ID], func(p model.RBACPolicy) bool {
			return p.Action == model.ActionAccessAsExternal
		}) {
			// As in Neutron: a network usable as external by nobody is
			// not external.
			if err := checkNoExternalPorts(tx, n.ID); err != nil {
				return err
			}
			n.RouterExternal = false
			n.Touch(s.now())
			if err := tx.Put(store.Networks, n.ID, n); err != nil {
				return err
			}
		}
		if err := tx.Delete(store.RBACPolicies, id); err != nil {
			return err
		}
		return bumpRevision[model.Network](s, tx, store.Networks, n.ID)
	})
}

// checkDefaultShared refuses to take away the wildcard access_as_external
// policy of the default external network, as Neutron does.
func checkDefaultShared(n *model.Network, p model.RBACPolicy) error {
	if n.IsDefault && p.Action == model.ActionAccessAsExternal && p.TargetTenant == model.RBACWildcard {
		return conflict("RbacPolicyInUse",
			"RBAC policy on object %s cannot be removed because other objects depend on it.\nDetails: Default external networks must be shared to everyone.", n.ID)
	}
	return nil
}

func rbacInUse(p model.RBACPolicy) func(project, has string) error {
	return func(project, has string) error {
		return conflict("RbacPolicyInUse",
			"RBAC policy on object %s cannot be removed because other objects depend on it.\nDetails: project %s has %s on it",
			p.ObjectID, project, has)
	}
}

// rbacNetwork reads the network a policy is on, whoever may see it.
func rbacNetwork(r store.Reader, p model.RBACPolicy) (model.Network, access, error) {
	n, err := store.Get[model.Network](r, store.Networks, p.ObjectID)
	if err != nil {
		return n, nil, fmt.Errorf("network %s of RBAC policy %s: %w", p.ObjectID, p.ID, err)
	}
	acc, err := readAccess(r)
	return n, acc, err
}

// GetRBACPolicy returns one policy: the caller's project's, or any for an
// admin. The project a policy targets does not see it, as in Neutron.
func (s *Service) GetRBACPolicy(ctx context.Context, id string) (model.RBACPolicy, error) {
	var p model.RBACPolicy
	err := s.store.View(ctx, func(r store.Reader) error {
		var err error
		p, err = loadRBACPolicy(ctx, r, id)
		return err
	})
	p.TenantID = p.ProjectID
	return p, err
}

// ListRBACPolicies returns the policies the caller may see.
func (s *Service) ListRBACPolicies(ctx context.Context) ([]model.RBACPolicy, error) {
	var out []model.RBACPolicy
	err := s.store.View(ctx, func(r store.Reader) error {
		all, err := store.List[model.RBACPolicy](r, store.RBACPolicies)
		for _, p := range all {
			if canSee(ctx, p.ProjectID) {
				p.TenantID = p.ProjectID
				out = append(out, p)
			}
		}
		return err
	})
	return out, err
}

func (s *Service) rbacResult(ctx context.Context, id string, rev int64) (Result[model.RBACPolicy], error) {
	p, err := s.GetRBACPolicy(ctx, id)
	return Result[model.RBACPolicy]{p, rev}, err
}

func loadRBACPolicy(ctx context.Context, r store.Reader, id string) (model.RBACPolicy, error) {
	p, err := load(ctx, r, store.RBACPolicies, "RbacPolicy", id, func(p *model.RBACPolicy) string { return p.ProjectID })
	if e := AsError(err); e != nil && e.Status == http.StatusNotFound {
		// Neutron's words for it.
		return p, typed(http.StatusNotFound, "RbacPolicyNotFound", "RBAC policy with id %s could not be found.", id)
	}
	return p, err
}

// wildcardPolicy is the "*" policy that `shared: true` or
// `router:external: true` on network n stands for.
func wildcardPolicy(n *model.Network, action string) model.RBACPolicy {
	return model.RBACPolicy{ID: newID(), ObjectType: "network", ObjectID: n.ID, Action: action,
		TargetTenant: model.RBACWildcard, ProjectID: n.ProjectID}
}

// Security groups are shared the way Neutron's rbac-security-groups shares
// them: an access_as_shared policy lets its target project see the group
// (with its rules) and put it on its own ports; only the owner (or an
// admin) changes it. A policy that a target project's ports depend on
// stays, as in Neutron.

// createGroupPolicy shares security group p.ObjectID.
func (s *Service) createGroupPolicy(ctx context.Context, p model.RBACPolicy) (Result[model.RBACPolicy], error) {
	if p.Action != model.ActionAccessAsShared {
		return Result[model.RBACPolicy]{}, typed(http.StatusBadRequest, "InvalidActionForType",
			"Invalid action '%s' for object type '%s'. Valid actions: ('%s',)", p.Action, p.ObjectType, model.ActionAccessAsShared)
	}
	rev, err := s.store.Update(ctx, func(tx store.Txn) error {
		g, acc, err := rbacGroup(tx, p)
		if err != nil {
			return err
		}
		if c := caller(ctx); !c.IsAdmin() && g.ProjectID != c.ProjectID {
			return invalidInput("Only admins can manipulate policies on objects they do not own")
		}
		if dup(acc, p) {
			return conflict("DuplicateRbacPolicy", "An RBAC policy already exists with those values.")
		}
		if err := s.checkQuota(tx, p.ProjectID, quotaRBACPolicy); err != nil {
			return err
		}
		return tx.Put(store.RBACPolicies, p.ID, p)
	})
	if err != nil {
		return Result[model.RBACPolicy]{}, err
	}
	return s.rbacResult(ctx, p.ID, rev)
}

// updateGroupPolicy retargets a security group's policy: the project it
// targeted must not be left with ports on a group it no longer sees.
func updateGroupPolicy(ctx context.Context, tx store.Txn, cur, p model.RBACPolicy) error {
	g, acc, err := rbacGroup(tx, cur)
	if err != nil {
		return err
	}
	if c := caller(ctx); !c.IsAdmin() && g.ProjectID != c.ProjectID {
		return invalidInput("Only admins can manipulate policies on objects they do not own")
	}
	if dup(acc, p) {
		return conflict("DuplicateRbacPolicy", "An RBAC policy already exists with those values.")
	}
	if err := checkGroupDependents(tx, &g, acc.with(p), cur); err != nil {
		return err
	}
	return tx.Put(store.RBACPolicies, p.ID, p)
}

// deleteGroupPolicy stops sharing a security group, unless ports of a
// project that would lose sight of it use it.
func deleteGroupPolicy(tx store.Txn, cur model.RBACPolicy) error {
	g, acc, err := rbacGroup(tx, cur)
	if err != nil {
		return err
	}
	if err := checkGroupDependents(tx, &g, acc.without(cur.ID), cur); err != nil {
		return err
	}
	return tx.Delete(store.RBACPolicies, cur.ID)
}

// checkGroupDependents refuses policies (after) under which a project
// other than the owner has ports in group g but no longer access to it.
func checkGroupDependents(r store.Reader, g *model.SecurityGroup, after access, changed model.RBACPolicy) error {
	ports, err := portsInGroup(r, g.ID)
	if err != nil {
		return err
	}
	for _, p := range ports {
		if p.ProjectID != "" && p.ProjectID != g.ProjectID && !after.grants(g.ID, model.ActionAccessAsShared, p.ProjectID) {
			return conflict("RbacPolicyInUse",
				"RBAC policy on object %s cannot be removed because other objects depend on it.\nDetails: project_id=%s",
				changed.ObjectID, changed.TargetTenant)
		}
	}
	return nil
}

// rbacGroup reads the security group a policy is on, whoever may see it.
func rbacGroup(r store.Reader, p model.RBACPolicy) (model.SecurityGroup, access, error) {
	g, err := store.Get[model.SecurityGroup](r, store.SecurityGroups, p.ObjectID)
	if errors.Is(err, store.ErrNotFound) {
		return g, nil, notFound("SecurityGroup", p.ObjectID)
	}
	if err != nil {
		return g, nil, fmt.Errorf("security group %s of RBAC policy %s: %w", p.ObjectID, p.ID, err)
	}
	acc, err := readAccess(r)
	return g, acc, err
}

// deleteObjectPolicies deletes the policies on an object that goes.
func deleteObjectPolicies(tx store.Txn, objectID string) error {
	all, err := store.List[model.RBACPolicy](tx, store.RBACPolicies)
	if err != nil {
		return err
	}
	for _, p := range all {
		if p.ObjectID == objectID {
			if err := tx.Delete(store.RBACPolicies, p.ID); err != nil {
				return err
			}
		}
	}
	return nil
}

// canSeeGroup: an admin sees every security group, a project its own and
// those shared with it.
func (a access) canSeeGroup(ctx context.Context, g *model.SecurityGroup) bool {
	return canSee(ctx, g.ProjectID) || a.grants(g.ID, model.ActionAccessAsShared, caller(ctx).ProjectID)
}
