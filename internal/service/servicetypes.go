package service

import (
	"context"

	"github.com/nsnet/nsnet/internal/model"
)

// serviceProviders are the providers of the services nsnet has a
// provider framework for, in Neutron's terms: its routers are all of one
// kind, a qrouter namespace on the one host with no HA or DVR (Neutron's
// single_node), so it is the only L3_ROUTER_NAT provider and the default.
var serviceProviders = []model.ServiceProvider{
	{ServiceType: model.ServiceTypeL3RouterNAT, Name: "single_node", Default: true},
}

// ListServiceProviders lists the service providers (Neutron's
// service-type extension); any caller may.
func (s *Service) ListServiceProviders(context.Context) ([]model.ServiceProvider, error) {
	return append([]model.ServiceProvider(nil), serviceProviders...), nil
}
