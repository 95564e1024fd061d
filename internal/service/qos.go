package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"

	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/store"
)

// QoS policies are Neutron's qos extension as ML2 with the Linux bridge
// agent has it: bandwidth limit rules (one per direction) and DSCP marking
// rules, on a port directly or through its network. Policies are an
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
	ports, err := store.List[model.Port](r, store.Ports)
	if err != nil {
		return err
	}
	for _, p := range ports {
		if p.QosPolicyID != nil && *p.QosPolicyID == id && !ok(p.ProjectID) {
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

// QosRules serves one rule type's sub-resource of policies.
type QosRules struct {
	s    *Service
	kind qosRuleKind
}

// BandwidthLimitRules and DSCPMarkingRules are the rule sub-resources.
func (s *Service) BandwidthLimitRules() QosRules { return QosRules{s, qosBandwidthLimit} }

// DSCPMarkingRules: see BandwidthLimitRules.
func (s *Service) DSCPMarkingRules() QosRules { return QosRules{s, qosDSCPMarking} }

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
		p.Rules = append(p.Rules, rule)
		p.Touch(q.s.now())
		return tx.Put(store.QosPolicies, p.ID, p)
	})
	if err != nil {
		return Result[model.QosRule]{}, err
	}
	return Result[model.QosRule]{rule, rev}, nil
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
		p.Rules = slices.Clone(p.Rules)
		p.Rules[i] = rule
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
// project's default policy when it names none (qos-default).
func checkNetworkQos(ctx context.Context, tx store.Txn, n *model.Network, in Attrs) error {
	if _, named := in["qos_policy_id"]; named {
		return checkQosAssociation(ctx, tx, nil, n.QosPolicyID)
	}
	id, err := defaultQosPolicy(tx, n.ProjectID)
	n.QosPolicyID = id
	return err
}
