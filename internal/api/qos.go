package api

import (
	"context"
	"net/http"
	"reflect"

	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/service"
)

// qosResources are Neutron's qos extension: /v2.0/qos/policies, their
// bandwidth_limit_rules and dscp_marking_rules below each policy, and the
// rule types (/v2.0/qos/rule-types, which are only read).
func (s *Server) qosResources() []resource {
	svc := s.cfg.Service
	policies := bind[model.QosPolicy]("policy", "policies", svc.CreateQosPolicy, svc.UpdateQosPolicy,
		svc.DeleteQosPolicy, svc.GetQosPolicy, svc.ListQosPolicies)
	policies.path = "qos/policies"
	bw, dscp := svc.BandwidthLimitRules(), svc.DSCPMarkingRules()
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
		bindNested[model.QosRule]("bandwidth_limit_rule", "bandwidth_limit_rules", "qos/policies/{parent}/bandwidth_limit_rules",
			bw.Create, bw.Update, bw.Delete, bw.Get, bw.List),
		bindNested[model.QosRule]("dscp_marking_rule", "dscp_marking_rules", "qos/policies/{parent}/dscp_marking_rules",
			dscp.Create, dscp.Update, dscp.Delete, dscp.Get, dscp.List),
		ruleTypes,
	}
}
