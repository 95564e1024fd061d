package api

import (
	"context"
	"net/http"
	"reflect"

	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/service"
)

// qosResources are Neutron's qos extension: /v2.0/qos/policies, their
// bandwidth_limit_rules, dscp_marking_rules and minimum_bandwidth_rules
// below each policy, and the rule types (/v2.0/qos/rule-types, which are
// only read).
func (s *Server) qosResources() []resource {
	svc := s.cfg.Service
	policies := withMarker(bind[model.QosPolicy]("policy", "policies", svc.CreateQosPolicy, svc.UpdateQosPolicy,
		svc.DeleteQosPolicy, svc.GetQosPolicy, svc.ListQosPolicies), svc.QosPolicyMarker)
	policies.path = "qos/policies"
	bw, dscp, minBW := svc.BandwidthLimitRules(), svc.DSCPMarkingRules(), svc.MinimumBandwidthRules()
	readOnly := func(context.Context) error {
		return &service.Error{Status: http.StatusMethodNotAllowed, Type: "HTTPMethodNotAllowed",
			Message: "The method is not allowed for this resource."}
	}
	ruleTypes := resource{
		singular: "rule_type", collection: "rule_types", path: "qos/rule-types",
		schema: schemaOf(reflect.TypeFor[model.QosRuleType]()),
		list: func(ctx context.Context) ([]any, error) {
			items, err := svc.ListQosRuleTypes(ctx)
			return anys(items), err
		},
		get: func(ctx context.Context, id string) (any, error) { return svc.GetQosRuleType(ctx, id) },
		update: func(ctx context.Context, _ string, _ service.Attrs) (any, int64, error) {
			return nil, 0, readOnly(ctx)
		},
		remove: func(ctx context.Context, _ string) (int64, error) { return 0, readOnly(ctx) },
	}
	return []resource{
		policies,
		ruleResource("bandwidth_limit_rule", "bandwidth_limit_rules", bw, model.BandwidthLimitView),
		ruleResource("dscp_marking_rule", "dscp_marking_rules", dscp, model.DSCPMarkingView),
		ruleResource("minimum_bandwidth_rule", "minimum_bandwidth_rules", minBW, model.MinimumBandwidthView),
		ruleTypes,
	}
}

// ruleResource binds one rule type's sub-resource of policies, showing
// each rule as view does.
func ruleResource[T any](singular, collection string, rules service.QosRules, view func(model.QosRule) T) resource {
	result := func(r service.Result[model.QosRule], err error) (service.Result[T], error) {
		return service.Result[T]{Object: view(r.Object), Revision: r.Revision}, err
	}
	return bindNested[T](singular, collection, "qos/policies/{parent}/"+collection,
		func(ctx context.Context, policy string, in service.Attrs) (service.Result[T], error) {
			return result(rules.Create(ctx, policy, in))
		},
		func(ctx context.Context, policy, id string, in service.Attrs) (service.Result[T], error) {
			return result(rules.Update(ctx, policy, id, in))
		},
		rules.Delete,
		func(ctx context.Context, policy, id string) (T, error) {
			r, err := rules.Get(ctx, policy, id)
			return view(r), err
		},
		func(ctx context.Context, policy string) ([]T, error) {
			list, err := rules.List(ctx, policy)
			out := make([]T, len(list))
			for i, r := range list {
				out[i] = view(r)
			}
			return out, err
		},
	)
}
