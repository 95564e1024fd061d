package model

// ServiceProvider is one entry of Neutron's /v2.0/service-providers
// (service-type): a driver serving a type of advanced service.
type ServiceProvider struct {
	ServiceType string `json:"service_type"`
	Name        string `json:"name"`
	Default     bool   `json:"default"`
}

// ServiceTypeL3RouterNAT is Neutron's service type of routers (L3 with NAT).
const ServiceTypeL3RouterNAT = "L3_ROUTER_NAT"
