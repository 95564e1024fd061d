package api

import (
	"context"
	"reflect"

	"github.com/nsnet/nsnet/internal/model"
)

// serviceProviderResource is /v2.0/service-providers (service-type): only
// listed, filtered and paged like any collection.
func (s *Server) serviceProviderResource() resource {
	svc := s.cfg.Service
	return resource{
		singular: "service_provider", collection: "service_providers", path: "service-providers",
		schema: schemaOf(reflect.TypeFor[model.ServiceProvider]()),
		list: func(ctx context.Context) ([]any, error) {
			items, err := svc.ListServiceProviders(ctx)
			return anys(items), err
		},
	}
}
