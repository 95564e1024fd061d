package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/netip"
	"slices"
	"strings"

	"github.com/google/uuid"

	"github.com/nsnet/nsnet/internal/ipam"
	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/store"
)

// Subnet pools are Neutron's subnet_allocation extension: a subnet created
// with a subnetpool_id takes the next free prefix of the pool (or the one
// it names, if free). What a pool has handed out is not stored: it is the
// CIDRs of the subnets that name the pool, read in the transaction that
// allocates, so an allocation is a pure function of the store's snapshot
// and a retried transaction allocates the same way.

// Neutron's SubnetPoolHelper: the bounds of a pool's prefix lengths and the
// unit its default_quota counts in, by IP version.
var poolVersions = map[int]struct{ defaultMin, max, quotaUnit int }{
	4: {8, 32, 32},
	6: {64, 128, 64},
}

// poolInput is a subnet pool body before the parts that depend on each
// other (version, bounds, scope) are checked together.
type poolInput struct {
	model.SubnetPool
	// prefixes are the prefixes as the client sent them (masked), nil
	// when it sent none.
	prefixes                   []netip.Prefix
	minSet, maxSet, defaultSet bool
	shared, sharedSet          bool
}

// clone copies p with the slices a create changes in place.
func (p poolInput) clone() poolInput {
	p.Prefixes = slices.Clone(p.Prefixes)
	p.Tags = slices.Clone(p.Tags)
	p.prefixes = slices.Clone(p.prefixes)
	return p
}

func parsePrefixLen(raw json.RawMessage) (int, error) {
	n, err := parseInt(raw)
	if err != nil {
		return 0, err
	}
	if n < 0 {
		return 0, fmt.Errorf("'%d' should be non-negative", n)
	}
	return n, nil
}

// parsePoolPrefix is Neutron's validate_subnet: a CIDR with its slash; host
// bits are allowed (the pool keeps the masked prefix).
func parsePoolPrefix(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
			return netip.Prefix{}, fmt.Errorf("'%s' isn't a recognized IP subnet cidr, '%s' is recommended", s, netip.PrefixFrom(a, a.BitLen()))
		}
	}
	p, err := netip.ParsePrefix(s)
	if err != nil || strings.TrimSpace(s) != s {
		return netip.Prefix{}, fmt.Errorf("'%s' is not a valid IP subnet", s)
	}
	return netip.PrefixFrom(p.Addr().Unmap(), p.Bits()).Masked(), nil
}

func parsePoolPrefixes(raw json.RawMessage) ([]netip.Prefix, error) {
	var list []string
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, fmt.Errorf("'%s' is not a list", shown(raw))
	}
	if firstDuplicate(list) >= 0 {
		return nil, fmt.Errorf("Duplicate items in the list: '%s'", strings.Join(list, ", "))
	}
	out := make([]netip.Prefix, 0, len(list))
	for _, s := range list {
		p, err := parsePoolPrefix(s)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// parseUUIDOrNull is Neutron's uuid_or_none.
func parseUUIDOrNull(raw json.RawMessage) (*string, error) {
	if isNull(raw) {
		return nil, nil
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return nil, fmt.Errorf("'%s' is not a valid UUID", shown(raw))
	}
	if _, err := uuid.Parse(s); err != nil || len(s) != 36 {
		return nil, fmt.Errorf("'%s' is not a valid UUID", s)
	}
	return &s, nil
}

var subnetPoolAttrs = append([]attr[poolInput]{
	{name: "name", post: true, put: true, required: true, set: func(p *poolInput, raw json.RawMessage) error {
		v, err := parseString(raw, maxNameLen)
		if err != nil {
			return err
		}
		if strings.TrimSpace(v) == "" {
			return fmt.Errorf("'%s' Blank strings are not permitted", v)
		}
		p.Name = v
		return nil
	}},
	stringAttr("description", true, true, func(p *poolInput) *string { return &p.Description }),
	{name: "prefixes", post: true, put: true, required: true, set: func(p *poolInput, raw json.RawMessage) error {
		v, err := parsePoolPrefixes(raw)
		p.prefixes = v
		return err
	}},
	{name: "default_quota", post: true, put: true, set: func(p *poolInput, raw json.RawMessage) error {
		if isNull(raw) {
			p.DefaultQuota = nil
			return nil
		}
		v, err := parsePrefixLen(raw)
		p.DefaultQuota = &v
		return err
	}},
	{name: "default_prefixlen", post: true, put: true, set: func(p *poolInput, raw json.RawMessage) error {
		v, err := parsePrefixLen(raw)
		p.DefaultPrefixLen, p.defaultSet = v, true
		return err
	}},
	{name: "min_prefixlen", post: true, put: true, set: func(p *poolInput, raw json.RawMessage) error {
		v, err := parsePrefixLen(raw)
		p.MinPrefixLen, p.minSet = v, true
		return err
	}},
	{name: "max_prefixlen", post: true, put: true, set: func(p *poolInput, raw json.RawMessage) error {
		v, err := parsePrefixLen(raw)
		p.MaxPrefixLen, p.maxSet = v, true
		return err
	}},
	{name: "is_default", post: true, put: true, set: func(p *poolInput, raw json.RawMessage) error {
		v, err := parseBool(raw)
		p.IsDefault = v
		return err
	}},
	{name: "shared", post: true, set: func(p *poolInput, raw json.RawMessage) error {
		v, err := parseBool(raw)
		p.shared, p.sharedSet = v, true
		return err
	}},
	// Derived from the prefixes.
	{name: "ip_version"},
	{name: "address_scope_id", post: true, put: true, set: func(p *poolInput, raw json.RawMessage) error {
		v, err := parseUUIDOrNull(raw)
		p.AddressScopeID = v
		return err
	}},
}, projectAttrs(func(p *poolInput) *string { return &p.ProjectID })...)

// readPool is Neutron's SubnetPoolReader: the IP version from the
// prefixes, the prefixes compacted, the bounds' defaults (min 8 or 64, max
// the address length, default the min), and the bounds checked against
// each other.
func readPool(p *poolInput) error {
	if len(p.prefixes) == 0 {
		return typed(http.StatusBadRequest, "EmptySubnetPoolPrefixList", "Empty subnet pool prefix list.")
	}
	p.IPVersion = 4
	if p.prefixes[0].Addr().Is6() {
		p.IPVersion = 6
	}
	for _, q := range p.prefixes {
		if q.Addr().Is6() != (p.IPVersion == 6) {
			return typed(http.StatusBadRequest, "PrefixVersionMismatch", "Cannot mix IPv4 and IPv6 prefixes in a subnet pool.")
		}
	}
	p.Prefixes = nil
	for _, q := range ipam.NewPrefixSet(p.prefixes...).Prefixes() {
		p.Prefixes = append(p.Prefixes, q.String())
	}
	v := poolVersions[p.IPVersion]
	if !p.minSet {
		p.MinPrefixLen = v.defaultMin
	}
	if !p.maxSet {
		p.MaxPrefixLen = v.max
	}
	if !p.defaultSet {
		p.DefaultPrefixLen = p.MinPrefixLen
	}
	bounds := func(typ string, n int, base string, m int) error {
		return typed(http.StatusBadRequest, "IllegalSubnetPoolPrefixBounds",
			"Illegal prefix bounds: %s=%d, %s=%d.", typ, n, base, m)
	}
	switch {
	case p.MinPrefixLen > p.MaxPrefixLen:
		return bounds("min_prefixlen", p.MinPrefixLen, "max_prefixlen", p.MaxPrefixLen)
	case p.MaxPrefixLen > v.max:
		return bounds("max_prefixlen", p.MaxPrefixLen, "ip_version_max", v.max)
	case p.DefaultPrefixLen < p.MinPrefixLen:
		return bounds("default_prefixlen", p.DefaultPrefixLen, "min_prefixlen", p.MinPrefixLen)
	case p.DefaultPrefixLen > p.MaxPrefixLen:
		return bounds("default_prefixlen", p.DefaultPrefixLen, "max_prefixlen", p.MaxPrefixLen)
	}
	return nil
}

func poolPrefixes(sp *model.SubnetPool) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(sp.Prefixes))
	for _, s := range sp.Prefixes {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

// CreateSubnetPool creates a subnet pool from the attributes of a POST.
func (s *Service) CreateSubnetPool(ctx context.Context, in Attrs) (Result[model.SubnetPool], error) {
	return createOne(ctx, s, in, s.prepareSubnetPool, s.GetSubnetPool)
}

func (s *Service) prepareSubnetPool(ctx context.Context, in Attrs) (pending, error) {
	p := poolInput{SubnetPool: model.SubnetPool{ID: newID()}}
	if err := mustCreate(ctx, "create_subnetpool"); err != nil {
		return pending{}, err
	}
	if err := decode(&p, subnetPoolAttrs, in, opCreate); err != nil {
		return pending{}, err
	}
	if !caller(ctx).IsAdmin() {
		switch {
		case p.shared:
			return pending{}, denied("create_subnetpool", "create_subnetpool:shared")
		case p.IsDefault:
			return pending{}, denied("create_subnetpool", "create_subnetpool:is_default")
		}
	}
	return pending{id: p.ID, apply: func(tx store.Txn) error {
		// A retry starts again from the request (see store.Update).
		p := p.clone()
		project, err := owner(ctx, "create_subnetpool", p.ProjectID)
		if err != nil {
			return err
		}
		p.ProjectID = project
		// Neutron's API reserves quota before its plugin reads the pool.
		if err := s.checkQuota(tx, project, quotaSubnetPool); err != nil {
			return err
		}
		if err := readPool(&p); err != nil {
			return err
		}
		if p.IsDefault {
			if err := checkNoDefaultPool(tx, p.IPVersion, p.ID); err != nil {
				return err
			}
		}
		if err := checkPoolScope(ctx, tx, &p.SubnetPool); err != nil {
			return err
		}
		p.Touch(s.now())
		if err := tx.Put(store.SubnetPools, p.ID, p.SubnetPool); err != nil {
			return err
		}
		if p.shared {
			return putWildcardShare(tx, model.RBACObjectSubnetPool, p.ID, project)
		}
		return nil
	}}, nil
}

// checkNoDefaultPool: one default pool per IP version.
func checkNoDefaultPool(r store.Reader, version int, self string) error {
	all, err := store.List[model.SubnetPool](r, store.SubnetPools)
	if err != nil {
		return err
	}
	for _, o := range all {
		if o.IsDefault && o.IPVersion == version && o.ID != self {
			return invalidInput("A default subnetpool for this IP family has already been set. Only one default may exist per IP family")
		}
	}
	return nil
}

// checkPoolScope is Neutron's _validate_address_scope_id: the scope a pool
// joins is one the caller may use, of the pool's IP version, no network
// would have subnets of two scopes, and no other pool of the scope has any
// of the pool's addresses.
func checkPoolScope(ctx context.Context, r store.Reader, sp *model.SubnetPool) error {
	if sp.AddressScopeID == nil {
		return nil
	}
	scope, _, err := loadAddressScope(ctx, r, *sp.AddressScopeID)
	if err != nil {
		return err
	}
	if scope.IPVersion != sp.IPVersion {
		return typed(http.StatusBadRequest, "IllegalSubnetPoolIpVersionAssociationToAddressScope",
			"Illegal subnetpool association: subnetpool %s cannot associate with address scope %s because subnetpool ip_version is not %d.",
			sp.ID, scope.ID, scope.IPVersion)
	}
	subnets, err := store.List[model.Subnet](r, store.Subnets)
	if err != nil {
		return err
	}
	networks := map[string]bool{}
	for _, sn := range subnets {
		if sn.SubnetPoolID != nil && *sn.SubnetPoolID == sp.ID {
			networks[sn.NetworkID] = true
		}
	}
	for _, sn := range subnets {
		if networks[sn.NetworkID] && sn.IPVersion == sp.IPVersion && (sn.SubnetPoolID == nil || *sn.SubnetPoolID != sp.ID) {
			return typed(http.StatusBadRequest, "NetworkAddressScopeAffinityError",
				"Subnets of the same address family hosted on the same network must all participate in the same address scope.")
		}
	}
	pools, err := store.List[model.SubnetPool](r, store.SubnetPools)
	if err != nil {
		return err
	}
	mine := ipam.NewPrefixSet(poolPrefixes(sp)...)
	for _, o := range pools {
		if o.ID != sp.ID && o.AddressScopeID != nil && *o.AddressScopeID == scope.ID &&
			mine.Overlaps(ipam.NewPrefixSet(poolPrefixes(&o)...)) {
			return conflict("AddressScopePrefixConflict",
				"Failed to associate address scope: subnetpools within an address scope must have unique prefixes.")
		}
	}
	return nil
}

// UpdateSubnetPool applies the attributes of a PUT.
func (s *Service) UpdateSubnetPool(ctx context.Context, id string, in Attrs) (Result[model.SubnetPool], error) {
	// Neutron checks the body before it looks the pool up: a read-only
	// attribute is 400 even on a pool the caller cannot see.
	if err := decode(&poolInput{}, subnetPoolAttrs, in, opUpdate); err != nil {
		return Result[model.SubnetPool]{}, err
	}
	rev, err := s.store.Update(ctx, func(tx store.Txn) error {
		cur, _, err := loadSubnetPool(ctx, tx, id)
		if err != nil {
			return err
		}
		if err := authorize(ctx, "update_subnetpool", cur.ProjectID); err != nil {
			return err
		}
		p := poolInput{SubnetPool: cur}
		if err := decode(&p, subnetPoolAttrs, in, opUpdate); err != nil {
			return err
		}
		// Neutron's policy checks an attribute an update names, even
		// at its current value.
		if _, named := in["is_default"]; named && !caller(ctx).IsAdmin() {
			return denied("update_subnetpool", "update_subnetpool:is_default")
		}
		return s.updatePool(ctx, tx, cur, p)
	})
	if err != nil {
		return Result[model.SubnetPool]{}, err
	}
	sp, err := s.GetSubnetPool(ctx, id)
	return Result[model.SubnetPool]{sp, rev}, err
}

// updatePool is Neutron's update_subnetpool once the body is decoded: new
// prefixes only add to the old ones, the result is read and checked as on
// create, and a pool in a scope the caller does not own is not the
// caller's to change.
func (s *Service) updatePool(ctx context.Context, tx store.Txn, cur model.SubnetPool, p poolInput) error {
	old := poolPrefixes(&cur)
	if p.prefixes == nil {
		p.prefixes = old
	} else if !ipam.NewPrefixSet(p.prefixes...).Covers(ipam.NewPrefixSet(old...)) {
		return typed(http.StatusBadRequest, "IllegalSubnetPoolPrefixUpdate",
			"Illegal update to prefixes: Existing prefixes must be a subset of the new prefixes.")
	}
	p.minSet, p.maxSet, p.defaultSet = true, true, true
	if err := readPool(&p); err != nil {
		return err
	}
	if p.IsDefault && !cur.IsDefault {
		if err := checkNoDefaultPool(tx, p.IPVersion, p.ID); err != nil {
			return err
		}
	}
	if cur.AddressScopeID != nil {
		if err := checkScopeOwned(ctx, tx, cur.ID, *cur.AddressScopeID); err != nil {
			return err
		}
	}
	if err := checkPoolScope(ctx, tx, &p.SubnetPool); err != nil {
		return err
	}
	p.Touch(s.now())
	return tx.Put(store.SubnetPools, cur.ID, p.SubnetPool)
}

// checkScopeOwned is Neutron's _check_subnetpool_update_allowed: a pool in
// a scope shared with the caller, not the caller's own, is the scope
// owner's (or an admin's) to change.
func checkScopeOwned(ctx context.Context, r store.Reader, pool, scopeID string) error {
	scope, err := store.Get[model.AddressScope](r, store.AddressScopes, scopeID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read address scope %s: %w", scopeID, err)
	}
	if !canSee(ctx, scope.ProjectID) {
		return typed(http.StatusBadRequest, "IllegalSubnetPoolUpdate",
			"Illegal subnetpool update : subnetpool %s cannot be updated when associated with shared address scope %s.",
			pool, scopeID)
	}
	return nil
}

// prefixesBody is the body of add_prefixes and remove_prefixes.
func prefixesBody(in Attrs) ([]netip.Prefix, error) {
	for k := range in {
		if k != "prefixes" {
			return nil, badRequest("Unrecognized attribute(s) '%s'", k)
		}
	}
	raw, ok := in["prefixes"]
	if !ok {
		return nil, badRequest("Failed to parse request. Required attribute 'prefixes' not specified")
	}
	v, err := parsePoolPrefixes(raw)
	if err != nil {
		return nil, badValue("prefixes", err.Error())
	}
	return v, nil
}

// AddSubnetPoolPrefixes adds prefixes to a pool (subnetpool-prefix-ops),
// returning its prefixes after.
func (s *Service) AddSubnetPoolPrefixes(ctx context.Context, id string, in Attrs) ([]string, int64, error) {
	add, err := prefixesBody(in)
	if err != nil {
		return nil, 0, err
	}
	rev, err := s.store.Update(ctx, func(tx store.Txn) error {
		cur, _, err := loadSubnetPool(ctx, tx, id)
		if err != nil {
			return err
		}
		if err := authorize(ctx, "add_prefixes", cur.ProjectID); err != nil {
			return err
		}
		if len(add) == 0 {
			return nil
		}
		return s.updatePool(ctx, tx, cur, poolInput{SubnetPool: cur, prefixes: append(poolPrefixes(&cur), add...)})
	})
	if err != nil {
		return nil, 0, err
	}
	sp, err := s.GetSubnetPool(ctx, id)
	return sp.Prefixes, rev, err
}

// RemoveSubnetPoolPrefixes takes prefixes out of a pool, refusing when a
// subnet has addresses in them, and returns its prefixes after.
func (s *Service) RemoveSubnetPoolPrefixes(ctx context.Context, id string, in Attrs) ([]string, int64, error) {
	remove, err := prefixesBody(in)
	if err != nil {
		return nil, 0, err
	}
	rev, err := s.store.Update(ctx, func(tx store.Txn) error {
		cur, _, err := loadSubnetPool(ctx, tx, id)
		if err != nil {
			return err
		}
		if err := authorize(ctx, "remove_prefixes", cur.ProjectID); err != nil {
			return err
		}
		all, gone := ipam.NewPrefixSet(poolPrefixes(&cur)...), ipam.NewPrefixSet(remove...)
		if len(remove) == 0 || !all.Overlaps(gone) {
			return nil
		}
		used, err := poolAllocations(tx, id, "")
		if err != nil {
			return err
		}
		if used.Overlaps(gone) {
			return typed(http.StatusBadRequest, "IllegalSubnetPoolPrefixUpdate",
				"Illegal update to prefixes: One or more the prefixes to be removed is in use by a subnet.")
		}
		// As in Neutron, the bounds are not checked again: only prefixes go.
		cur.Prefixes = []string{}
		for _, q := range all.Subtract(gone).Prefixes() {
			cur.Prefixes = append(cur.Prefixes, q.String())
		}
		cur.Touch(s.now())
		return tx.Put(store.SubnetPools, id, cur)
	})
	if err != nil {
		return nil, 0, err
	}
	sp, err := s.GetSubnetPool(ctx, id)
	return sp.Prefixes, rev, err
}

// poolAllocations is what pool has handed out: the CIDRs of the subnets
// that name it (of project only, unless project is empty).
func poolAllocations(r store.Reader, pool, project string) (ipam.PrefixSet, error) {
	all, err := store.List[model.Subnet](r, store.Subnets)
	if err != nil {
		return ipam.PrefixSet{}, err
	}
	var used []netip.Prefix
	for _, sn := range all {
		if sn.SubnetPoolID != nil && *sn.SubnetPoolID == pool && (project == "" || sn.ProjectID == project) {
			used = append(used, netip.MustParsePrefix(sn.CIDR))
		}
	}
	return ipam.NewPrefixSet(used...), nil
}

// DeleteSubnetPool deletes a pool no subnet was allocated from, with the
// RBAC policies that share it.
func (s *Service) DeleteSubnetPool(ctx context.Context, id string) (int64, error) {
	return s.store.Update(ctx, func(tx store.Txn) error {
		cur, acc, err := loadSubnetPool(ctx, tx, id)
		if err != nil {
			return err
		}
		if err := authorize(ctx, "delete_subnetpool", cur.ProjectID); err != nil {
			return err
		}
		used, err := poolAllocations(tx, id, "")
		if err != nil {
			return err
		}
		if !used.Empty() {
			return typed(http.StatusBadRequest, "SubnetPoolDeleteError",
				"Unable to delete subnet pool: Subnet pool has existing allocations.")
		}
		for _, p := range acc[id] {
			if err := tx.Delete(store.RBACPolicies, p.ID); err != nil {
				return err
			}
		}
		return tx.Delete(store.SubnetPools, id)
	})
}

// GetSubnetPool returns one pool.
func (s *Service) GetSubnetPool(ctx context.Context, id string) (model.SubnetPool, error) {
	return getShared(ctx, s.store, id, loadSubnetPool, func(acc access, v *model.SubnetPool) { renderSubnetPool(ctx, acc, v) })
}

// ListSubnetPools returns the pools the caller may see: its own and those
// shared with it.
func (s *Service) ListSubnetPools(ctx context.Context) ([]model.SubnetPool, error) {
	return listShared(ctx, s.store, store.SubnetPools, func(sp *model.SubnetPool) (string, string) { return sp.ID, sp.ProjectID },
		func(acc access, sp *model.SubnetPool) { renderSubnetPool(ctx, acc, sp) })
}

func renderSubnetPool(ctx context.Context, acc access, sp *model.SubnetPool) {
	sp.TenantID = sp.ProjectID
	sp.Shared = acc.grants(sp.ID, model.ActionAccessAsShared, caller(ctx).ProjectID)
	if sp.Prefixes == nil {
		sp.Prefixes = []string{}
	}
}

// canSeeShared: an admin sees every object, a project its own and those
// shared with it (access_as_shared).
func (a access) canSeeShared(ctx context.Context, id, project string) bool {
	return canSee(ctx, project) || a.grants(id, model.ActionAccessAsShared, caller(ctx).ProjectID)
}

// loadSubnetPool reads a pool the caller may see.
func loadSubnetPool(ctx context.Context, r store.Reader, id string) (model.SubnetPool, access, error) {
	sp, err := store.Get[model.SubnetPool](r, store.SubnetPools, id)
	missing := typed(http.StatusNotFound, "SubnetPoolNotFound", "Subnet pool %s could not be found.", id)
	if errors.Is(err, store.ErrNotFound) {
		return sp, nil, missing
	}
	if err != nil {
		return sp, nil, fmt.Errorf("read subnet pool %s: %w", id, err)
	}
	acc, err := readAccess(r)
	if err != nil {
		return sp, nil, err
	}
	if !acc.canSeeShared(ctx, id, sp.ProjectID) {
		return sp, nil, missing
	}
	return sp, acc, checkRevision(ctx, r, id, &sp)
}

// subnetRequest is what a subnet create asks of IPAM beyond its own
// attributes: Neutron's cidr/prefixlen/subnetpool_id/use_default_subnetpool.
type subnetRequest struct {
	pool       *string
	prefixLen  *int
	useDefault bool
	cidrSet    bool
	versionSet bool
}

func subnetsRequest(format string, args ...any) *Error {
	return badResource("subnets", format, args...)
}

// check refuses the combinations Neutron refuses before any lookup.
func (q *subnetRequest) check(sn *subnetInput) error {
	switch {
	case q.cidrSet && q.prefixLen != nil:
		return subnetsRequest("cidr and prefixlen must not be supplied together")
	case q.useDefault && q.pool != nil:
		return subnetsRequest("subnetpool_id and use_default_subnetpool cannot both be specified")
	case q.useDefault && !q.cidrSet && !q.versionSet:
		return subnetsRequest("ip_version must be specified in the absence of cidr and subnetpool_id")
	case q.pool == nil && !q.useDefault && !q.cidrSet:
		return subnetsRequest("a subnetpool must be specified in the absence of a cidr")
	case (q.pool != nil || q.useDefault) && !q.cidrSet && sn.poolsSet:
		return subnetsRequest("allocation_pools allowed only for specific subnet requests")
	}
	return nil
}

// allocateFromPool gives sn its CIDR from its subnet pool, inside the
// transaction that creates it: the pool's free space is what its prefixes
// hold less the subnets already allocated from it in this snapshot.
func allocateFromPool(ctx context.Context, r store.Reader, sn *subnetInput, q *subnetRequest) error {
	if q.useDefault {
		version := sn.IPVersion
		if q.cidrSet {
			version = 4
			if netip.MustParsePrefix(sn.CIDR).Addr().Is6() {
				version = 6
			}
		}
		all, err := store.List[model.SubnetPool](r, store.SubnetPools)
		if err != nil {
			return err
		}
		acc, err := readAccess(r)
		if err != nil {
			return err
		}
		i := slices.IndexFunc(all, func(sp model.SubnetPool) bool {
			return sp.IsDefault && sp.IPVersion == version && acc.canSeeShared(ctx, sp.ID, sp.ProjectID)
		})
		if i < 0 {
			return subnetsRequest("No default subnetpool found for IPv%d", version)
		}
		q.pool = &all[i].ID
	}
	if q.pool == nil {
		return nil
	}
	sp, _, err := loadSubnetPool(ctx, r, *q.pool)
	if err != nil {
		return err
	}
	if q.versionSet && sn.IPVersion != sp.IPVersion {
		return subnetsRequest("Cannot allocate IPv%d subnet from IPv%d subnet pool", sn.IPVersion, sp.IPVersion)
	}
	sn.IPVersion = sp.IPVersion
	sn.SubnetPoolID = &sp.ID

	bits := sp.DefaultPrefixLen
	if q.prefixLen != nil {
		bits = *q.prefixLen
	}
	var want netip.Prefix
	switch {
	case q.cidrSet:
		want = netip.MustParsePrefix(sn.CIDR)
		bits = want.Bits()
	case sn.GatewayIP != nil:
		// Neutron's SubnetRequestFactory: a gateway without a cidr asks
		// for the prefix around the gateway.
		gw := netip.MustParseAddr(*sn.GatewayIP)
		if gw.Is6() != (sp.IPVersion == 6) || bits > gw.BitLen() {
			return subnetsRequest("Cannot allocate IPv%d subnet from IPv%d subnet pool", map[bool]int{true: 6, false: 4}[gw.Is6()], sp.IPVersion)
		}
		want = netip.PrefixFrom(gw, bits).Masked()
	}
	if bits > sp.MaxPrefixLen {
		return typed(http.StatusBadRequest, "MaxPrefixSubnetAllocationError",
			"Unable to allocate subnet with prefix length %d, maximum allowed prefix is %d.", bits, sp.MaxPrefixLen)
	}
	if bits < sp.MinPrefixLen {
		return typed(http.StatusBadRequest, "MinPrefixSubnetAllocationError",
			"Unable to allocate subnet with prefix length %d, minimum allowed prefix is %d.", bits, sp.MinPrefixLen)
	}
	if sp.DefaultQuota != nil && *sp.DefaultQuota > 0 {
		if err := checkPoolQuota(r, &sp, sn.ProjectID, bits); err != nil {
			return err
		}
	}
	used, err := poolAllocations(r, sp.ID, "")
	if err != nil {
		return err
	}
	pool := ipam.NewPrefixSet(poolPrefixes(&sp)...)
	// Neutron answers a pool that cannot serve with SubnetAllocationError,
	// which its API maps to 500.
	if want.IsValid() {
		if !pool.Subtract(used).Covers(ipam.NewPrefixSet(want)) {
			return typed(http.StatusInternalServerError, "SubnetAllocationError",
				"Failed to allocate subnet: Cannot allocate requested subnet from the available set of prefixes.")
		}
		sn.CIDR = want.String()
		return nil
	}
	got, ok := ipam.AllocatePrefix(pool, used, bits)
	if !ok {
		return typed(http.StatusInternalServerError, "SubnetAllocationError",
			"Failed to allocate subnet: Insufficient prefix space to allocate subnet size /%d.", bits)
	}
	sn.CIDR = got.String()
	return nil
}

// checkPoolQuota is the pool's default_quota: the addresses project holds
// in the pool, in /32 (IPv4) or /64 (IPv6) units, may not exceed it. Neutron
// counts the pool owner's subnets here (a slip: the quota is documented
// per project); nsnet counts the requesting project's.
func checkPoolQuota(r store.Reader, sp *model.SubnetPool, project string, bits int) error {
	unit := poolVersions[sp.IPVersion].quotaUnit
	units := func(b int) float64 { return math.Ldexp(1, unit-b) }
	held, err := poolAllocations(r, sp.ID, project)
	if err != nil {
		return err
	}
	used := 0.0
	for _, p := range held.Prefixes() {
		used += units(p.Bits())
	}
	if used+units(bits) > float64(*sp.DefaultQuota) {
		return conflict("SubnetPoolQuotaExceeded", "Per-tenant subnet pool prefix quota exceeded.")
	}
	return nil
}

// checkPoolAffinity is Neutron's _validate_network_subnetpools: the
// subnets of one IP version on a network all come from the same pool, or
// none from any.
func checkPoolAffinity(sn *subnetInput, siblings []model.Subnet) error {
	for _, o := range siblings {
		if o.ID == sn.ID || o.IPVersion != sn.IPVersion {
			continue
		}
		same := (o.SubnetPoolID == nil) == (sn.SubnetPoolID == nil) &&
			(o.SubnetPoolID == nil || *o.SubnetPoolID == *sn.SubnetPoolID)
		if !same {
			return typed(http.StatusBadRequest, "NetworkSubnetPoolAffinityError",
				"Subnets hosted on the same network must be allocated from the same subnet pool.")
		}
	}
	return nil
}
