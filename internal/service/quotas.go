package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/http"
	"slices"
	"sort"
	"strings"

	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/store"
)

// Quota resources, as Neutron names them in /v2.0/quotas.
const (
	quotaNetwork           = "network"
	quotaSubnet            = "subnet"
	quotaPort              = "port"
	quotaRouter            = "router"
	quotaFloatingIP        = "floatingip"
	quotaSecurityGroup     = "security_group"
	quotaSecurityGroupRule = "security_group_rule"
	quotaRBACPolicy        = "rbac_policy"
	quotaSubnetPool        = "subnetpool"
)

// QuotaResources lists the resources a quota limits, in the order nsnet
// shows them.
var QuotaResources = []string{
	quotaNetwork, quotaSubnet, quotaPort, quotaRouter, quotaFloatingIP,
	quotaSecurityGroup, quotaSecurityGroupRule, quotaRBACPolicy, quotaSubnetPool,
}

// neutronDefaults are Neutron's default quota limits ([quotas] quota_*).
var neutronDefaults = map[string]int{
	quotaNetwork: 100, quotaSubnet: 100, quotaPort: 500, quotaRouter: 10, quotaFloatingIP: 50,
	quotaSecurityGroup: 10, quotaSecurityGroupRule: 100, quotaRBACPolicy: 10,
	// Neutron tracks subnet pools without a quota option of their own:
	// they take quota_default, unlimited.
	quotaSubnetPool: Unlimited,
}

// quotaKinds is where each resource's records are counted. The ports of routers' gateways
// and of floating IPs belong to no project, so they count for none.
var quotaKinds = map[string]store.Kind{
	quotaNetwork: store.Networks, quotaSubnet: store.Subnets, quotaPort: store.Ports,
	quotaRouter: store.Routers, quotaFloatingIP: store.FloatingIPs,
	quotaRBACPolicy: store.RBACPolicies, quotaSecurityGroup: store.SecurityGroups,
	quotaSecurityGroupRule: store.SecurityGroupRules, quotaSubnetPool: store.SubnetPools,
}

// maxQuota is Neutron's upper bound for a limit (its DB integer maximum).
const maxQuota = math.MaxInt32

// Unlimited is the limit that never refuses.
const Unlimited = -1

// DefaultQuotas returns Neutron's default limits with overrides applied.
func DefaultQuotas(overrides map[string]int) map[string]int {
	out := maps.Clone(neutronDefaults)
	for k, v := range overrides {
		out[k] = v
	}
	return out
}

// CheckQuotaDefaults validates the daemon's default limits.
func CheckQuotaDefaults(defaults map[string]int) error {
	for k, v := range defaults {
		if !slices.Contains(QuotaResources, k) {
			return fmt.Errorf("unknown quota resource %q: want one of %s", k, strings.Join(QuotaResources, ", "))
		}
		if v < Unlimited || v > maxQuota {
			return fmt.Errorf("quota %s=%d: want -1 (unlimited) through %d", k, v, maxQuota)
		}
	}
	return nil
}

// QuotaDetail is one resource of GET /v2.0/quotas/{project}/details.
type QuotaDetail struct {
	Limit    int `json:"limit"`
	Used     int `json:"used"`
	Reserved int `json:"reserved"`
}

// checkQuota refuses one more resource for project once its limit is
// reached. It runs inside the transaction that creates the resource, which
// is serializable, so concurrent creates cannot overshoot together.
func (s *Service) checkQuota(r store.Reader, project, resource string) error {
	return s.checkQuotaFor(r, project, resource, 1)
}

// checkQuotaFor refuses a create of more resources at once that would
// take project over its quota.
func (s *Service) checkQuotaFor(r store.Reader, project, resource string, more int) error {
	limits, err := s.limits(r, project)
	if err != nil {
		return err
	}
	limit := limits[resource]
	if limit == Unlimited {
		return nil
	}
	used, err := usage(r, project, resource)
	if err != nil {
		return err
	}
	if used+more > limit {
		return conflict("OverQuota", "Quota exceeded for resources: ['%s'].", resource)
	}
	return nil
}

// limits are project's quota limits: its overrides over the defaults.
func (s *Service) limits(r store.Reader, project string) (map[string]int, error) {
	out := maps.Clone(s.quotas)
	q, err := store.Get[model.Quota](r, store.Quotas, project)
	if errors.Is(err, store.ErrNotFound) {
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read quota of %s: %w", project, err)
	}
	for k, v := range q.Limits {
		out[k] = v
	}
	return out, nil
}

// usage counts project's records of resource.
func usage(r store.Reader, project, resource string) (int, error) {
	kind, ok := quotaKinds[resource]
	if !ok {
		return 0, nil
	}
	// Ports and floating IPs are counted as they are written (index.go):
	// a create at 10,000 of them must not read them all.
	switch kind {
	case store.Ports:
		return portCount(r, project)
	case store.FloatingIPs:
		return countOf(r, idxFIPCount, project)
	}
	owned, err := store.List[struct {
		ProjectID   string `json:"project_id"`
		DeviceOwner string `json:"device_owner"`
		Name        string `json:"name"`
	}](r, kind)
	n := 0
	for _, o := range owned {
		// A network's DHCP port is nsnet's, made for the network, not
		// a port the project asked for; nor did it ask for its default
		// security group, which Neutron does not count either.
		if o.ProjectID == project && o.DeviceOwner != model.DeviceOwnerDHCP &&
			!(kind == store.SecurityGroups && o.Name == model.DefaultSecurityGroupName) {
			n++
		}
	}
	return n, err
}

// quotaBody is a project's limits as Neutron shows them: one integer per
// resource, plus project_id and tenant_id in lists.
func quotaBody(limits map[string]int) map[string]any {
	out := make(map[string]any, len(limits)+2)
	for k, v := range limits {
		out[k] = v
	}
	return out
}

// mayReadQuota: a project reads its own quota, an admin any (Neutron's
// get_quota policy).
func mayReadQuota(ctx context.Context, project string) error {
	if project == caller(ctx).ProjectID || caller(ctx).IsAdmin() {
		return nil
	}
	return typed(http.StatusForbidden, "AdminRequired",
		"User does not have admin privileges: Only admin is authorized to access quotas for another tenant.")
}

func mustAdminQuota(ctx context.Context, action string) error {
	if !caller(ctx).IsAdmin() {
		return denied(action)
	}
	return nil
}

// GetQuota returns project's limits (GET /v2.0/quotas/{project}).
func (s *Service) GetQuota(ctx context.Context, project string) (map[string]any, error) {
	if err := mayReadQuota(ctx, project); err != nil {
		return nil, err
	}
	var limits map[string]int
	err := s.store.View(ctx, func(r store.Reader) error {
		var err error
		limits, err = s.limits(r, project)
		return err
	})
	return quotaBody(limits), err
}

// DefaultQuota returns the default limits (GET /v2.0/quotas/{project}/default).
func (s *Service) DefaultQuota(ctx context.Context, project string) (map[string]any, error) {
	if err := mayReadQuota(ctx, project); err != nil {
		return nil, err
	}
	return quotaBody(s.quotas), nil
}

// QuotaDetails returns limit, usage and reservations of every resource
// (GET /v2.0/quotas/{project}/details). nsnet reserves nothing: a create
// counts and stores in one transaction.
func (s *Service) QuotaDetails(ctx context.Context, project string) (map[string]QuotaDetail, error) {
	if err := mayReadQuota(ctx, project); err != nil {
		return nil, err
	}
	out := map[string]QuotaDetail{}
	err := s.store.View(ctx, func(r store.Reader) error {
		limits, err := s.limits(r, project)
		if err != nil {
			return err
		}
		for _, res := range QuotaResources {
			used, err := usage(r, project, res)
			if err != nil {
				return err
			}
			out[res] = QuotaDetail{Limit: limits[res], Used: used}
		}
		return nil
	})
	return out, err
}

// ListQuotas lists the limits of every project that has any of its own
// (GET /v2.0/quotas); a non-admin sees only its project's.
func (s *Service) ListQuotas(ctx context.Context) ([]map[string]any, error) {
	var out []map[string]any
	err := s.store.View(ctx, func(r store.Reader) error {
		all, err := store.List[model.Quota](r, store.Quotas)
		if err != nil {
			return err
		}
		for _, q := range all {
			if !canSee(ctx, q.ProjectID) {
				continue
			}
			limits, err := s.limits(r, q.ProjectID)
			if err != nil {
				return err
			}
			body := quotaBody(limits)
			body["project_id"], body["tenant_id"] = q.ProjectID, q.ProjectID
			out = append(out, body)
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i]["project_id"].(string) < out[j]["project_id"].(string) })
	return out, err
}

// UpdateQuota sets some of project's limits (PUT /v2.0/quotas/{project}).
// With check_limit, a limit below what the project already uses is
// refused, as Neutron's quota-check-limit extension does.
func (s *Service) UpdateQuota(ctx context.Context, project string, in Attrs) (map[string]any, int64, error) {
	if err := mustAdminQuota(ctx, "update_quota"); err != nil {
		return nil, 0, err
	}
	set, checkLimit, err := decodeQuota(in)
	if err != nil {
		return nil, 0, err
	}
	var limits map[string]int
	rev, err := s.store.Update(ctx, func(tx store.Txn) error {
		q, err := store.Get[model.Quota](tx, store.Quotas, project)
		if errors.Is(err, store.ErrNotFound) {
			q, err = model.Quota{ProjectID: project, Limits: map[string]int{}}, nil
		}
		if err != nil {
			return err
		}
		for _, res := range sortedKeys(set) {
			limit := set[res]
			if checkLimit && limit != Unlimited {
				used, err := usage(tx, project, res)
				if err != nil {
					return err
				}
				if used > limit {
					return badRequest("Quota limit %d for %s must be greater than or equal to already used %d", limit, res, used)
				}
			}
			q.Limits[res] = limit
		}
		if err := tx.Put(store.Quotas, project, q); err != nil {
			return err
		}
		limits, err = s.limits(tx, project)
		return err
	})
	return quotaBody(limits), rev, err
}

// DeleteQuota resets project's limits to the defaults.
func (s *Service) DeleteQuota(ctx context.Context, project string) (int64, error) {
	if err := mustAdminQuota(ctx, "delete_quota"); err != nil {
		return 0, err
	}
	return s.store.Update(ctx, func(tx store.Txn) error {
		if _, err := store.Get[model.Quota](tx, store.Quotas, project); errors.Is(err, store.ErrNotFound) {
			return nil // already the defaults; Neutron answers 204 too
		}
		return tx.Delete(store.Quotas, project)
	})
}

// decodeQuota reads {"network": 10, …} and the check_limit/force flags of
// a quota update, each limit an integer from -1 (unlimited) up.
func decodeQuota(in Attrs) (map[string]int, bool, error) {
	set := map[string]int{}
	var checkLimit bool
	var unknown []string
	for _, k := range sortedKeys(in) {
		raw := in[k]
		switch {
		case k == "check_limit" || k == "force":
			b, err := parseBool(raw)
			if err != nil {
				return nil, false, badValue(k, err.Error())
			}
			if k == "check_limit" {
				checkLimit = b
			}
		case slices.Contains(QuotaResources, k):
			n, err := parseQuotaLimit(raw)
			if err != nil {
				return nil, false, badValue(k, err.Error())
			}
			set[k] = n
		default:
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		return nil, false, badRequest("Unrecognized attribute(s) '%s'", strings.Join(unknown, ", "))
	}
	return set, checkLimit, nil
}

// parseQuotaLimit accepts what Neutron's convert_to_int and its range
// check accept: an integer (or a string holding one) from -1 up.
func parseQuotaLimit(raw json.RawMessage) (int, error) {
	n, err := parseInt(raw)
	if err != nil {
		return 0, err
	}
	if n < Unlimited || n > maxQuota {
		return 0, fmt.Errorf("'%d' is not in range %d through %d", n, Unlimited, maxQuota)
	}
	return n, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
