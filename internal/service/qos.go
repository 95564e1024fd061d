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
	"strings"

	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/store"
)

// QoS policies are Neutron's qos extension as ML2 with the Linux bridge
// agent has it: bandwidth limit rules (one per direction) and DSCP marking
// rules, on a port directly or through its network; minimum bandwidth
// rules are served but may not be in effect anywhere (qosEnforced). Policies are an
// admin's to write (Neutron's default policy); projects see their own and
// those shared with them by RBAC (object type qos_policy), and name those
// in their ports' and networks' qos_policy_id.

// validDSCPMarks is Neutron's VALID_DSCP_MARKS.
var validDSCPMarks = []int{0, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 32, 34, 36, 38, 40, 46, 48, 56}

// maxKbps is Neutron's DB_INTEGER_MAX_VALUE, the bound of rates and bursts.
const maxKbps = math.MaxInt32

type qosPolicyInput struct {
	model.QosPolicy
	shared, sharedSet bool
}

var qosPolicyAttrs = append([]attr[qosPolicyInput]{
	stringAttr("name", true, true, func(p *qosPolicyInput) *string { return &p.Name }),
	{name: "description", post: true, put: true, set: func(p *qosPolicyInput, raw json.RawMessage) error {
		v, err := parseString(raw, maxDescriptionLen)
		p.Description = v
		return err
	}},
	{name: "shared", post: true, put: true, set: func(p *qosPolicyInput, raw json.RawMessage) error {
		v, err := parseBool(raw)
		p.shared, p.sharedSet = v, true
		return err
	}},
	boolAttr("is_default", true, true, func(p *qosPolicyInput) *bool { return &p.IsDefault }),
}, projectAttrs(func(p *qosPolicyInput) *string { return &p.ProjectID })...)

// CreateQosPolicy creates a policy from the attributes of a POST.
func (s *Service) CreateQosPolicy(ctx context.Context, in Attrs) (Result[model.QosPolicy], error) {
	return createOne(ctx, s, in, s.prepareQosPolicy, s.GetQosPolicy)
}

func (s *Service) prepareQosPolicy(ctx context.Context, in Attrs) (pending, error) {
	p := qosPolicyInput{QosPolicy: model.QosPolicy{ID: newID(), Rules: []model.QosRule{}}}
	// Neutron checks the body before its policy.
	if err := decode(&p, qosPolicyAttrs, in, opCreate); err != nil {
		return pending{}, err
	}
	if !caller(ctx).IsAdmin() {
		return pending{}, denied("create_policy")
	}
	return pending{id: p.ID, apply: func(tx store.Txn) error {
		p := p // a retry starts again from the request (see store.Update)
		p.Rules = []model.QosRule{}
		project, err := owner(ctx, "create_policy", p.ProjectID)
		if err != nil {
			return err
		}
		p.ProjectID = project
		if p.IsDefault {
			if err := checkNoDefaultQos(tx, project, p.ID); err != nil {
				return err
			}
		}
		p.Touch(s.now())
		if err := tx.Put(store.QosPolicies, p.ID, p.QosPolicy); err != nil {
			return err
		}
		if p.shared {
			return putWildcardShare(tx, model.RBACObjectQosPolicy, p.ID, project)
		}
		return nil
	}}, nil
}

// checkNoDefaultQos: one default policy per project (qos-default).
func checkNoDefaultQos(r store.Reader, project, self string) error {
	all, err := store.List[model.QosPolicy](r, store.QosPolicies)
	if err != nil {
		return err
	}
	for _, o := range all {
		if o.IsDefault && o.ProjectID == project && o.ID != self {
			return conflict("QoSPolicyDefaultAlreadyExists", "A default QoS policy exists for project %s.", project)
		}
	}
	return nil
}

// UpdateQosPolicy applies the attributes of a PUT. `shared` adds or
// removes the "*" access_as_shared policy; removing it is refused while
// another project's port or network uses the policy.
func (s *Service) UpdateQosPolicy(ctx context.Context, id string, in Attrs) (Result[model.QosPolicy], error) {
	if err := decode(&qosPolicyInput{}, qosPolicyAttrs, in, opUpdate); err != nil {
		return Result[model.QosPolicy]{}, err
	}
	rev, err := s.store.Update(ctx, func(tx store.Txn) error {
		cur, acc, err := loadQosPolicy(ctx, tx, id)
		if err != nil {
			return err
		}
		if !caller(ctx).IsAdmin() {
			return denied("update_policy")
		}
		p := qosPolicyInput{QosPolicy: cur}
		if err := decode(&p, qosPolicyAttrs, in, opUpdate); err != nil {
			return err
		}
		if p.IsDefault && !cur.IsDefault {
			if err := checkNoDefaultQos(tx, cur.ProjectID, id); err != nil {
				return err
			}
		}
		wildcard, wasShared := acc.wildcard(id, model.ActionAccessAsShared)
		switch {
		case p.sharedSet && p.shared && !wasShared:
			if err := putWildcardShare(tx, model.RBACObjectQosPolicy, id, cur.ProjectID); err != nil {
				return err
			}
		case p.sharedSet && !p.shared && wasShared:
			if err := checkShareDependents(tx, wildcard, acc.without(wildcard.ID)); err != nil {
				return err
			}
			if err := tx.Delete(store.RBACPolicies, wildcard.ID); err != nil {
				return err
			}
		}
		p.Touch(s.now())
		return tx.Put(store.QosPolicies, id, p.QosPolicy)
	})
	if err != nil {
		return Result[model.QosPolicy]{}, err
	}
	p, err := s.GetQosPolicy(ctx, id)
	return Result[model.QosPolicy]{p, rev}, err
}

// DeleteQosPolicy deletes a policy no port or network uses, with its rules
// and the RBAC policies that share it.
func (s *Service) DeleteQosPolicy(ctx context.Context, id string) (int64, error) {
	return s.store.Update(ctx, func(tx store.Txn) error {
		_, acc, err := loadQosPolicy(ctx, tx, id)
		if err != nil {
			return err
		}
		if !caller(ctx).IsAdmin() {
			return denied("delete_policy")
		}
		if err := checkQosUnused(tx, id, func(string) bool { return false }); err != nil {
			return err
		}
		for _, p := range acc[id] {
			if err := tx.Delete(store.RBACPolicies, p.ID); err != nil {
				return err
			}
		}
		return tx.Delete(store.QosPolicies, id)
	})
}

// checkQosUnused refuses (409 QosPolicyInUse) while a network or port
// whose project is not allowed by ok uses policy id.
func checkQosUnused(r store.Reader, id string, ok func(project string) bool) error {
	inUse := func(typ, obj string) error {
		return conflict("QosPolicyInUse", "QoS Policy %s is used by %s %s.", id, typ, obj)
	}
	nets, err := store.List[model.Network](r, store.Networks)
	if err != nil {
		return err
	}
	for _, n := range nets {
		if n.QosPolicyID != nil && *n.QosPolicyID == id && !ok(n.ProjectID) {
			return inUse("network", n.ID)
		}
	}
	ports, err := portsWithPolicy(r, id)
	if err != nil {
		return err
	}
	for _, p := range ports {
		if !ok(p.ProjectID) {
			return inUse("port", p.ID)
		}
	}
	return nil
}

// GetQosPolicy returns one policy with its rules.
func (s *Service) GetQosPolicy(ctx context.Context, id string) (model.QosPolicy, error) {
	return getShared(ctx, s.store, id, loadQosPolicy, func(acc access, v *model.QosPolicy) { renderQosPolicy(ctx, acc, v) })
}

// ListQosPolicies returns the policies the caller may see.
func (s *Service) ListQosPolicies(ctx context.Context) ([]model.QosPolicy, error) {
	return listShared(ctx, s.store, store.QosPolicies, func(p *model.QosPolicy) (string, string) { return p.ID, p.ProjectID },
		func(acc access, p *model.QosPolicy) { renderQosPolicy(ctx, acc, p) })
}

func renderQosPolicy(ctx context.Context, acc access, p *model.QosPolicy) {
	p.TenantID = p.ProjectID
	p.Shared = acc.grants(p.ID, model.ActionAccessAsShared, caller(ctx).ProjectID)
	if p.Rules == nil {
		p.Rules = []model.QosRule{}
	}
	if p.Tags == nil {
		p.Tags = []string{}
	}
}

func qosPolicyNotFound(id string) error {
	return typed(http.StatusNotFound, "QosPolicyNotFound", "QoS policy %s could not be found.", id)
}

// loadQosPolicy reads a policy the caller may see.
func loadQosPolicy(ctx context.Context, r store.Reader, id string) (model.QosPolicy, access, error) {
	p, err := store.Get[model.QosPolicy](r, store.QosPolicies, id)
	if errors.Is(err, store.ErrNotFound) {
		return p, nil, qosPolicyNotFound(id)
	}
	if err != nil {
		return p, nil, fmt.Errorf("read QoS policy %s: %w", id, err)
	}
	acc, err := readAccess(r)
	if err != nil {
		return p, nil, err
	}
	if !acc.canSeeShared(ctx, id, p.ProjectID) {
		return p, nil, qosPolicyNotFound(id)
	}
	return p, acc, checkRevision(ctx, r, id, &p)
}

// checkQosAssociation is the QoS plugin's check of a port's or network's
// qos_policy_id change from old to next: the new policy is one the caller
// may see (404 otherwise), and the caller may drop the old one only if it
// may see it (403 PolicyRemoveAuthorizationError).
func checkQosAssociation(ctx context.Context, r store.Reader, old, next *string) error {
	if old != nil && (next == nil || *next != *old) {
		if _, _, err := loadQosPolicy(ctx, r, *old); err != nil {
			if AsError(err) != nil && AsError(err).Status == http.StatusNotFound {
				return typed(http.StatusForbidden, "PolicyRemoveAuthorizationError",
					"Failed to remove provided policy %s because you are not authorized.", *old)
			}
			return err
		}
	}
	if next != nil && (old == nil || *next != *old) {
		if _, _, err := loadQosPolicy(ctx, r, *next); err != nil {
			return err
		}
	}
	return nil
}

// defaultQosPolicy is the project's default policy, if any: the one a new
// network takes when the request names none.
func defaultQosPolicy(r store.Reader, project string) (*string, error) {
	all, err := store.List[model.QosPolicy](r, store.QosPolicies)
	if err != nil {
		return nil, err
	}
	for _, p := range all {
		if p.IsDefault && p.ProjectID == project {
			return &p.ID, nil
		}
	}
	return nil, nil
}

// parseQosPolicyID reads a qos_policy_id: a UUID or null.
func parseQosPolicyID(raw json.RawMessage) (*string, error) {
	return parseUUIDOrNull(raw)
}

// QoS rules.

// qosRuleKind is one rule type's sub-resource: its attributes and the
// conflicts between rules of one policy.
type qosRuleKind struct {
	typ   string
	attrs []attr[model.QosRule]
	// defaults fills what a create did not name.
	defaults func(*model.QosRule)
	// clash reports whether two rules of the type may not share a policy.
	clash func(a, b *model.QosRule) bool
}

func intRange(raw json.RawMessage, lo, hi int) (int, error) {
	v, err := parseInt(raw)
	if err != nil {
		return 0, err
	}
	if v < lo || v > hi {
		return 0, fmt.Errorf("'%d' is not in range %d through %d", v, lo, hi)
	}
	return v, nil
}

var qosBandwidthLimit = qosRuleKind{
	typ: model.QosRuleBandwidthLimit,
	attrs: []attr[model.QosRule]{
		{name: "max_kbps", post: true, put: true, required: true, set: func(q *model.QosRule, raw json.RawMessage) error {
			v, err := intRange(raw, 0, maxKbps)
			q.MaxKbps = &v
			return err
		}},
		{name: "max_burst_kbps", post: true, put: true, set: func(q *model.QosRule, raw json.RawMessage) error {
			v, err := intRange(raw, 0, maxKbps)
			q.MaxBurstKbps = &v
			return err
		}},
		{name: "direction", post: true, put: true, set: func(q *model.QosRule, raw json.RawMessage) error {
			v, err := parseString(raw, maxNameLen)
			if err != nil {
				return err
			}
			if v != model.QosDirectionEgress && v != model.QosDirectionIngress {
				return fmt.Errorf("%s is not in ['%s', '%s']", v, model.QosDirectionEgress, model.QosDirectionIngress)
			}
			q.Direction = v
			return nil
		}},
	},
	defaults: func(q *model.QosRule) {
		if q.MaxBurstKbps == nil {
			zero := 0
			q.MaxBurstKbps = &zero
		}
		if q.Direction == "" {
			q.Direction = model.QosDirectionEgress
		}
	},
	clash: func(a, b *model.QosRule) bool { return a.Direction == b.Direction },
}

var qosDSCPMarking = qosRuleKind{
	typ: model.QosRuleDSCPMarking,
	attrs: []attr[model.QosRule]{
		{name: "dscp_mark", post: true, put: true, required: true, set: func(q *model.QosRule, raw json.RawMessage) error {
			v, err := parseInt(raw)
			if err != nil {
				return err
			}
			if !slices.Contains(validDSCPMarks, v) {
				marks := make([]string, len(validDSCPMarks))
				for i, m := range validDSCPMarks {
					marks[i] = fmt.Sprint(m)
				}
				return fmt.Errorf("%d is not in [%s]", v, strings.Join(marks, ", "))
			}
			q.DSCPMark = &v
			return nil
		}},
	},
	defaults: func(*model.QosRule) {},
	clash:    func(a, b *model.QosRule) bool { return true },
}

// qosMinimumBandwidth is Neutron's minimum_bandwidth rule. Without
// qos-bw-minimum-ingress (not listed) its direction is egress only. nsnet
// stores and serves it, as Neutron's API does whatever its drivers
// support, but enforces none: see qosEnforced.
var qosMinimumBandwidth = qosRuleKind{
	typ: model.QosRuleMinimumBandwidth,
	attrs: []attr[model.QosRule]{
		{name: "min_kbps", post: true, put: true, required: true, set: func(q *model.QosRule, raw json.RawMessage) error {
			v, err := intRange(raw, 0, maxKbps)
			q.MinKbps = &v
			return err
		}},
		{name: "direction", post: true, put: true, set: func(q *model.QosRule, raw json.RawMessage) error {
			v, err := parseString(raw, maxNameLen)
			if err != nil {
				return err
			}
			if v != model.QosDirectionEgress {
				return fmt.Errorf("%s is not in ['%s']", v, model.QosDirectionEgress)
			}
			q.Direction = v
			return nil
		}},
	},
	defaults: func(q *model.QosRule) {
		if q.Direction == "" {
			q.Direction = model.QosDirectionEgress
		}
	},
	clash: func(a, b *model.QosRule) bool { return a.Direction == b.Direction },
}

// QosRules serves one rule type's sub-resource of policies.
type QosRules struct {
	s    *Service
	kind qosRuleKind
}

// BandwidthLimitRules and DSCPMarkingRules are the rule sub-resources.
func (s *Service) BandwidthLimitRules() QosRules { return QosRules{s, qosBandwidthLimit} }

// DSCPMarkingRules: see BandwidthLimitRules.
func (s *Service) DSCPMarkingRules() QosRules { return QosRules{s, qosDSCPMarking} }

// MinimumBandwidthRules: see BandwidthLimitRules.
func (s *Service) MinimumBandwidthRules() QosRules { return QosRules{s, qosMinimumBandwidth} }

// Create adds a rule to policy.
func (q QosRules) Create(ctx context.Context, policy string, in Attrs) (Result[model.QosRule], error) {
	rule := model.QosRule{ID: newID(), Type: q.kind.typ, QosPolicyID: policy}
	if err := decode(&rule, q.kind.attrs, in, opCreate); err != nil {
		return Result[model.QosRule]{}, err
	}
	if !caller(ctx).IsAdmin() {
		return Result[model.QosRule]{}, denied("create_policy_" + q.kind.typ + "_rule")
	}
	q.kind.defaults(&rule)
	rev, err := q.s.store.Update(ctx, func(tx store.Txn) error {
		p, _, err := loadQosPolicy(ctx, tx, policy)
		if err != nil {
			return err
		}
		if err := q.checkClash(&p, &rule); err != nil {
			return err
		}
		if err := checkRateConflict(&p, &rule, rule.Direction); err != nil {
			return err
		}
		p.Rules = append(p.Rules, rule)
		if err := checkQosPolicyPorts(tx, &p); err != nil {
			return err
		}
		p.Touch(q.s.now())
		return tx.Put(store.QosPolicies, p.ID, p)
	})
	if err != nil {
		return Result[model.QosRule]{}, err
	}
	return Result[model.QosRule]{rule, rev}, nil
}

// checkRateConflict is Neutron's check_bandwidth_rule_conflict: a
// minimum may not exceed the policy's limit, nor a limit fall below its
// minimum, compared in the rule's direction when the request names one
// (in every direction when an update does not).
func checkRateConflict(p *model.QosPolicy, rule *model.QosRule, direction string) error {
	for _, o := range p.Rules {
		if o.ID == rule.ID || direction != "" && o.Direction != direction {
			continue
		}
		var value, existing int
		switch {
		case o.Type == model.QosRuleMinimumBandwidth && rule.MaxKbps != nil && *o.MinKbps > *rule.MaxKbps:
			value, existing = *rule.MaxKbps, *o.MinKbps
		case o.Type == model.QosRuleBandwidthLimit && rule.MinKbps != nil && *o.MaxKbps < *rule.MinKbps:
			value, existing = *rule.MinKbps, *o.MaxKbps
		default:
			continue
		}
		return conflict("QoSRuleParameterConflict",
			"Unable to add the rule with value %d to the policy %s as the existing rule of type %s has value %d.",
			value, p.ID, o.Type, existing)
	}
	return nil
}

func (q QosRules) checkClash(p *model.QosPolicy, rule *model.QosRule) error {
	for _, o := range p.Rules {
		if o.ID != rule.ID && o.Type == rule.Type && q.kind.clash(&o, rule) {
			return conflict("QoSRulesConflict", "Rule %s conflicts with rule %s which already exists in QoS Policy %s.",
				rule.Type, o.ID, p.ID)
		}
	}
	return nil
}

// find returns the index of rule id of the kind in p.
func (q QosRules) find(p *model.QosPolicy, id string) (int, error) {
	i := slices.IndexFunc(p.Rules, func(r model.QosRule) bool { return r.ID == id && r.Type == q.kind.typ })
	if i < 0 {
		return -1, typed(http.StatusNotFound, "QosRuleNotFound",
			"QoS rule %s for policy %s could not be found.", id, p.ID)
	}
	return i, nil
}

// Update changes a rule of policy.
func (q QosRules) Update(ctx context.Context, policy, id string, in Attrs) (Result[model.QosRule], error) {
	if err := decode(&model.QosRule{}, q.kind.attrs, in, opUpdate); err != nil {
		return Result[model.QosRule]{}, err
	}
	var rule model.QosRule
	rev, err := q.s.store.Update(ctx, func(tx store.Txn) error {
		p, _, err := loadQosPolicy(ctx, tx, policy)
		if err != nil {
			return err
		}
		if !caller(ctx).IsAdmin() {
			return denied("update_policy_" + q.kind.typ + "_rule")
		}
		i, err := q.find(&p, id)
		if err != nil {
			return err
		}
		rule = p.Rules[i]
		if err := decode(&rule, q.kind.attrs, in, opUpdate); err != nil {
			return err
		}
		if err := q.checkClash(&p, &rule); err != nil {
			return err
		}
		direction := ""
		if _, given := in["direction"]; given {
			direction = rule.Direction
		}
		if err := checkRateConflict(&p, &rule, direction); err != nil {
			return err
		}
		p.Rules = slices.Clone(p.Rules)
		p.Rules[i] = rule
		if err := checkQosPolicyPorts(tx, &p); err != nil {
			return err
		}
		p.Touch(q.s.now())
		return tx.Put(store.QosPolicies, p.ID, p)
	})
	return Result[model.QosRule]{rule, rev}, err
}

// Delete removes a rule from policy.
func (q QosRules) Delete(ctx context.Context, policy, id string) (int64, error) {
	return q.s.store.Update(ctx, func(tx store.Txn) error {
		p, _, err := loadQosPolicy(ctx, tx, policy)
		if err != nil {
			return err
		}
		if !caller(ctx).IsAdmin() {
			return denied("delete_policy_" + q.kind.typ + "_rule")
		}
		i, err := q.find(&p, id)
		if err != nil {
			return err
		}
		p.Rules = slices.Delete(slices.Clone(p.Rules), i, i+1)
		p.Touch(q.s.now())
		return tx.Put(store.QosPolicies, p.ID, p)
	})
}

// Get returns one rule of policy.
func (q QosRules) Get(ctx context.Context, policy, id string) (model.QosRule, error) {
	var rule model.QosRule
	err := q.s.store.View(ctx, func(r store.Reader) error {
		p, _, err := loadQosPolicy(ctx, r, policy)
		if err != nil {
			return err
		}
		i, err := q.find(&p, id)
		if err == nil {
			rule = p.Rules[i]
		}
		return err
	})
	return rule, err
}

// List returns the rules of the kind in policy.
func (q QosRules) List(ctx context.Context, policy string) ([]model.QosRule, error) {
	var out []model.QosRule
	err := q.s.store.View(ctx, func(r store.Reader) error {
		p, _, err := loadQosPolicy(ctx, r, policy)
		if err != nil {
			return err
		}
		for _, rule := range p.Rules {
			if rule.Type == q.kind.typ {
				out = append(out, rule)
			}
		}
		return nil
	})
	return out, err
}

// Rule types.

// qosRuleTypes are the rule types nsnet's agent enforces, with the
// parameters its one driver (the Linux bridge agent's equivalent) takes.
var qosRuleTypes = []model.QosRuleType{
	{Type: model.QosRuleBandwidthLimit, Drivers: []model.QosRuleDriver{{Name: "linuxbridge", SupportedParameters: []model.QosRuleParameter{
		{Name: "max_kbps", Type: "range", Values: map[string]int{"start": 0, "end": maxKbps}},
		{Name: "max_burst_kbps", Type: "range", Values: map[string]int{"start": 0, "end": maxKbps}},
		{Name: "direction", Type: "choices", Values: []string{model.QosDirectionEgress, model.QosDirectionIngress}},
	}}}},
	{Type: model.QosRuleDSCPMarking, Drivers: []model.QosRuleDriver{{Name: "linuxbridge", SupportedParameters: []model.QosRuleParameter{
		{Name: "dscp_mark", Type: "choices", Values: validDSCPMarks},
	}}}},
}

// ListQosRuleTypes lists the rule types, without their drivers.
func (s *Service) ListQosRuleTypes(ctx context.Context) ([]model.QosRuleType, error) {
	out := make([]model.QosRuleType, len(qosRuleTypes))
	for i, t := range qosRuleTypes {
		out[i] = model.QosRuleType{Type: t.Type}
	}
	return out, nil
}

// GetQosRuleType shows one rule type with its drivers (admin only, as in
// Neutron).
func (s *Service) GetQosRuleType(ctx context.Context, typ string) (model.QosRuleType, error) {
	if !caller(ctx).IsAdmin() {
		return model.QosRuleType{}, denied("get_rule_type")
	}
	for _, t := range qosRuleTypes {
		if t.Type == typ {
			return t, nil
		}
	}
	return model.QosRuleType{}, typed(http.StatusNotFound, "QosRuleTypeNotFound", "QoS rule type %s could not be found.", typ)
}

// checkNetworkQos checks the policy a new network names, or gives it its
// project's default policy when it names none (qos-default); either must
// be one nsnet enforces.
func checkNetworkQos(ctx context.Context, tx store.Txn, n *model.Network, in Attrs) error {
	if _, named := in["qos_policy_id"]; named {
		if err := checkQosAssociation(ctx, tx, nil, n.QosPolicyID); err != nil {
			return err
		}
	} else {
		id, err := defaultQosPolicy(tx, n.ProjectID)
		if err != nil {
			return err
		}
		n.QosPolicyID = id
	}
	return checkQosEnforced(tx, n.QosPolicyID, func(typ string) error { return qosNotSupportedByNetwork(typ, n.ID) })
}

// qosEnforced are the rule types nsnet's agent enforces: its one driver's
// supported rules, as /v2.0/qos/rule-types lists them. Neutron's QoS
// plugin refuses a policy on a port (or network) when no driver of that
// port supports one of its rules; nsnet's one driver is the agent, so a
// policy with a minimum_bandwidth rule may be written and read but never
// be in effect on a port or network: a guarantee nobody keeps is not
// given (see docs/QOS.md).
var qosEnforced = []string{model.QosRuleBandwidthLimit, model.QosRuleDSCPMarking}

// checkQosEnforced answers refuse(type) for the first rule of policy id
// (nil: none) that nsnet does not enforce.
func checkQosEnforced(r store.Reader, id *string, refuse func(typ string) error) error {
	if id == nil {
		return nil
	}
	p, err := store.Get[model.QosPolicy](r, store.QosPolicies, *id)
	if errors.Is(err, store.ErrNotFound) {
		return nil // the caller's own check answers a missing policy
	}
	if err != nil {
		return fmt.Errorf("read QoS policy %s: %w", *id, err)
	}
	return checkRulesEnforced(&p, refuse)
}

func checkRulesEnforced(p *model.QosPolicy, refuse func(typ string) error) error {
	for _, rule := range p.Rules {
		if !slices.Contains(qosEnforced, rule.Type) {
			return refuse(rule.Type)
		}
	}
	return nil
}

func qosNotSupportedByPort(typ, port string) error {
	return conflict("QosRuleNotSupported", "Rule %s is not supported by port %s", typ, port)
}

func qosNotSupportedByNetwork(typ, network string) error {
	return conflict("QosRuleNotSupportedByNetwork", "Rule %s is not supported by network %s", typ, network)
}

// checkPortQos checks the policy in effect on port p (its own, else its
// network's) when a port is created, or when its own changes.
func checkPortQos(r store.Reader, p *model.Port, network *model.Network) error {
	id := p.QosPolicyID
	if id == nil && network != nil {
		id = network.QosPolicyID
	}
	return checkQosEnforced(r, id, func(typ string) error { return qosNotSupportedByPort(typ, p.ID) })
}

// checkNetworkQosChange checks a network's new policy for the network and
// for its ports without a policy of their own, as Neutron's plugin does on
// a network update.
func checkNetworkQosChange(r store.Reader, n *model.Network) error {
	if err := checkQosEnforced(r, n.QosPolicyID, func(typ string) error { return qosNotSupportedByNetwork(typ, n.ID) }); err != nil {
		return err
	}
	ports, err := portsOn(r, n.ID)
	if err != nil {
		return err
	}
	for i := range ports {
		if ports[i].QosPolicyID == nil {
			if err := checkPortQos(r, &ports[i], n); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkQosPolicyPorts checks a policy whose rules change for the ports it
// is in effect on (Neutron's validate_policy): its own ports, and those of
// its networks without a policy of their own.
func checkQosPolicyPorts(r store.Reader, p *model.QosPolicy) error {
	nets, err := store.List[model.Network](r, store.Networks)
	if err != nil {
		return err
	}
	onNetwork := map[string]bool{}
	for _, n := range nets {
		if n.QosPolicyID != nil && *n.QosPolicyID == p.ID {
			onNetwork[n.ID] = true
		}
	}
	// Its own ports, then those of its networks without a policy of
	// their own: through the indexes, not every port.
	ports, err := portsWithPolicy(r, p.ID)
	if err != nil {
		return err
	}
	for _, id := range slices.Sorted(maps.Keys(onNetwork)) {
		on, err := portsOn(r, id)
		if err != nil {
			return err
		}
		ports = append(ports, slices.DeleteFunc(on, func(port model.Port) bool { return port.QosPolicyID != nil })...)
	}
	// In id order, as a walk of every port met them: the first refused
	// is the one the error names.
	slices.SortFunc(ports, func(a, b model.Port) int { return strings.Compare(a.ID, b.ID) })
	for _, port := range ports {
		if err := checkRulesEnforced(p, func(typ string) error { return qosNotSupportedByPort(typ, port.ID) }); err != nil {
			return err
		}
	}
	return nil
}
