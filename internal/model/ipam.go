package model

// SubnetPool is a set of prefixes that subnets take their CIDRs from
// (Neutron's subnet_allocation extension). The prefix lengths are shown as
// strings, as Neutron shows them; they are stored as numbers.
type SubnetPool struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	ProjectID string `json:"project_id"`
	TenantID  string `json:"tenant_id"`
	// Prefixes are compacted: overlapping and adjacent prefixes merged into
	// the fewest CIDRs, in address order.
	Prefixes         []string `json:"prefixes"`
	IPVersion        int      `json:"ip_version"`
	DefaultPrefixLen int      `json:"default_prefixlen,string"`
	MinPrefixLen     int      `json:"min_prefixlen,string"`
	MaxPrefixLen     int      `json:"max_prefixlen,string"`
	// DefaultQuota bounds the addresses one project may take from the
	// pool, in units of /32 (IPv4) or /64 (IPv6); nil: no bound.
	DefaultQuota   *int    `json:"default_quota"`
	IsDefault      bool    `json:"is_default"`
	AddressScopeID *string `json:"address_scope_id"`
	// Shared is not stored: it is true for a caller when an RBAC policy
	// shares the pool with the caller's project (as for networks).
	Shared bool `json:"shared"`
	Standard
}

// AddressScope is a set of subnet pools whose prefixes are unique across
// it. Neutron gives it no standard attributes (no description, tags,
// revision or timestamps).
type AddressScope struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	ProjectID string `json:"project_id"`
	TenantID  string `json:"tenant_id"`
	IPVersion int    `json:"ip_version"`
	// Shared: see SubnetPool.Shared.
	Shared bool `json:"shared"`
}
