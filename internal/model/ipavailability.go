package model

import "math/big"

// NetworkIPAvailability is Neutron's network-ip-availability of one network:
// how many addresses its subnets' allocation pools hold and how many of them
// ports use. It is computed, never stored. Counts are big integers: an IPv6
// subnet's pools hold up to 2^128 addresses, and Neutron answers them exact.
type NetworkIPAvailability struct {
	NetworkID   string                 `json:"network_id"`
	NetworkName string                 `json:"network_name"`
	ProjectID   string                 `json:"project_id"`
	TenantID    string                 `json:"tenant_id"`
	Subnets     []SubnetIPAvailability `json:"subnet_ip_availability"`
	UsedIPs     *big.Int               `json:"used_ips"`
	TotalIPs    *big.Int               `json:"total_ips"`
}

// SubnetIPAvailability is one subnet's part of a NetworkIPAvailability.
type SubnetIPAvailability struct {
	SubnetID   string   `json:"subnet_id"`
	SubnetName string   `json:"subnet_name"`
	CIDR       string   `json:"cidr"`
	IPVersion  int      `json:"ip_version"`
	UsedIPs    *big.Int `json:"used_ips"`
	TotalIPs   *big.Int `json:"total_ips"`
}
