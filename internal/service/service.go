// Package service is nsnet's API logic below HTTP: it checks every request
// against Neutron's attribute rules and nsnet's own, applies policy, allocates
// addresses, and writes desired state in one store transaction per request,
// so that a failed request changes nothing.
//
// It owns validation, defaults, IPAM bookkeeping and referential integrity.
// It must not touch the kernel (the agent does) or speak HTTP (the api does).
//
// A request costs the same with 10 ports as with 10,000: uniqueness checks
// (a MAC on a network, an address on a subnet, an instance's name), the
// next free address, quota counts and the lookups of what refers to what
// (a device's ports, a port's or a router's floating IPs) read secondary
// indexes, never a whole kind. The indexes are records of the store's
// Indexes kind that every write transaction keeps with the records it
// writes, rather than a structure derived in memory from the store: so
// they commit, roll back and retry with the records, a transaction stays
// a pure function of its snapshot, and an etcd store (a key prefix) and
// every host sharing it get them with no code of their own. index.go
// has the keys and the check that rebuilds them from the records.
package service

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/nsnet/nsnet/internal/auth"
	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/store"
)

// StatusSource tells what the kernel has for a resource, as the hosts'
// agents report it through the store (hoststatus.View): host is the
// object's owner, whose report it is; "" when the service does not know
// it (one host, or an object present on several, as a network is).
type StatusSource interface {
	Status(kind store.Kind, id, host string) (status, reason string)
}

// CounterSource tells how many packets the firewall dropped for a port,
// as the host filtering it reports (hoststatus.View). Nil when the port is
// not filtered.
type CounterSource interface {
	FirewallCounters(portID string) *model.PortFirewallCounters
}

// Config wires a Service.
type Config struct {
	Store  store.Store
	Status StatusSource
	// Counters, if set, fills the ports' nsnet:firewall_drops.
	Counters CounterSource
	// NetnsPrefix is the agent's namespace prefix: every instance's
	// namespace name starts with it.
	NetnsPrefix string
	// PhysnetMTU is the MTU of the physical network beyond the host (Neutron's
	// global_physnet_mtu): a network's default, and its largest; zero means
	// model.DefaultMTU.
	PhysnetMTU int
	// VNIRanges are the VNIs of tenant (vxlan) networks, as ML2's
	// vni_ranges; nil means DefaultVNIRanges.
	VNIRanges []model.VNIRange
	// TunnelOverhead is what a tunnel between hosts takes off the
	// physical network's MTU for a vxlan network (its default and its
	// largest MTU): model.VXLANOverhead once hosts are joined by VXLAN,
	// zero on one host, where no frame is ever encapsulated (see
	// docs/OVERLAY.md).
	TunnelOverhead int
	// Quotas are the default quota limits, by resource (see
	// QuotaResources); missing ones take Neutron's defaults.
	Quotas map[string]int
	// HostID names this host in the device_id of DHCP ports
	// (model.DHCPDeviceID).
	HostID string
	// Host names this host in its agents and port bindings (Neutron's
	// host: the host name).
	Host string
	// Roles are this host's roles (model.RoleCompute, model.RoleNetwork):
	// which agents it registers and what the schedulers give it; nil
	// means both.
	Roles []string
	// VTEPAddress is this host's underlay address for VXLAN, empty on
	// one box; it is in the host's record and its L2 agent's
	// configurations (tunneling_ip).
	VTEPAddress string
	// InterfaceMappings are this host's physical networks' interfaces
	// (--physical-interface-mappings), kept in its record: shown as its
	// Linux bridge agent's interface_mappings, and the physical networks
	// a flat network may be on (see provider.go).
	InterfaceMappings map[string]string
	// AvailabilityZone is this host's zone; empty means
	// model.DefaultAvailabilityZone.
	AvailabilityZone string
	// Heartbeat, if set, is the running agent's proof of life, which
	// makes this host's agents alive while the host has no record in the
	// registry (see agents.go and hosts.go).
	Heartbeat HeartbeatSource
	// AgentDownTime is how old a heartbeat may be for its agent to be
	// alive; zero means DefaultAgentDownTime.
	AgentDownTime time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Service implements the resources of the API.
type Service struct {
	store store.Store
	// presence is the store's Presence, where hosts beat; nil when it
	// has none (the beat is then a write of the host's record).
	presence    store.Presence
	status      StatusSource
	counters    CounterSource
	netnsPrefix string
	quotas      map[string]int
	physnetMTU  int
	vniRanges   []model.VNIRange
	// tunnelOverhead: see Config.TunnelOverhead.
	tunnelOverhead int
	hostID         string
	host           string
	heartbeat      HeartbeatSource
	roles          []string
	vtepAddress    string
	ifaceMappings  map[string]string
	zone           string
	// agentDownTime: see Config.AgentDownTime.
	agentDownTime time.Duration
	now           func() time.Time
}

// New returns a Service.
func New(cfg Config) *Service {
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	presence, _ := cfg.Store.(store.Presence)
	svc := &Service{store: writes{cfg.Store, &indexCheck{netnsPrefix: cfg.NetnsPrefix}}, presence: presence, status: cfg.Status, counters: cfg.Counters, netnsPrefix: cfg.NetnsPrefix,
		quotas: DefaultQuotas(cfg.Quotas), physnetMTU: cmp.Or(cfg.PhysnetMTU, model.DefaultMTU), hostID: cfg.HostID, host: cfg.Host, heartbeat: cfg.Heartbeat,
		agentDownTime: cmp.Or(cfg.AgentDownTime, DefaultAgentDownTime), now: now,
		vniRanges: cfg.VNIRanges, tunnelOverhead: cfg.TunnelOverhead,
		roles: cfg.Roles, vtepAddress: cfg.VTEPAddress, ifaceMappings: cfg.InterfaceMappings, zone: cmp.Or(cfg.AvailabilityZone, model.DefaultAvailabilityZone)}
	if svc.vniRanges == nil {
		svc.vniRanges = DefaultVNIRanges
	}
	return svc
}

// Result is what a write returns: the resource as the API shows it and the
// store revision that holds the change, which a client may wait for.
type Result[T any] struct {
	Object   T
	Revision int64
}

func newID() string { return uuid.NewString() }

func caller(ctx context.Context) auth.Caller {
	if c, ok := auth.FromContext(ctx); ok {
		return c
	}
	// No caller means an in-process call, which is trusted.
	return auth.Admin
}

// denied is Neutron's answer to a request its policy refuses: rules names
// the policy rules that failed, as Neutron's message lists them
// ("rule:create_network", "rule:create_network:shared").
func denied(rules ...string) *Error {
	for i, r := range rules {
		rules[i] = "rule:" + r
	}
	msg := strings.Join(rules, " and ")
	if len(rules) > 1 {
		msg = "(" + msg + ")"
	}
	return typed(http.StatusForbidden, "PolicyNotAuthorized", "%s is disallowed by policy", msg)
}

// mustCreate refuses creates from callers whose role does not allow
// changes: a reader (Neutron checks the role before anything else).
func mustCreate(ctx context.Context, action string) error {
	if !caller(ctx).CanWrite() {
		return denied(action)
	}
	return nil
}

// owner decides the project of a new resource: the caller's, or, for an
// admin, the one named in the body. A non-admin naming another project is
// refused with 400, as Neutron's API layer does before any policy.
func owner(ctx context.Context, action, requested string) (string, error) {
	c := caller(ctx)
	switch {
	case !c.CanWrite():
		return "", denied(action)
	case requested == "" || requested == c.ProjectID:
		return c.ProjectID, nil
	case c.IsAdmin():
		return requested, nil
	default:
		return "", badRequest("Specifying 'project_id' or 'tenant_id' other than the authenticated project in request requires admin privileges")
	}
}

// canSee reports whether the caller may see a resource of project.
func canSee(ctx context.Context, project string) bool {
	c := caller(ctx)
	return c.IsAdmin() || c.ProjectID == project
}

// authorize refuses a change to a resource of project that the caller can
// see but may not change: it is another project's (a shared network), or
// the caller only reads. Callers load the resource first, so that one the
// caller cannot see answers 404, never 403: Neutron hides existence.
func authorize(ctx context.Context, action, project string) error {
	c := caller(ctx)
	if c.IsAdmin() || c.CanWrite() && c.ProjectID == project {
		return nil
	}
	return denied(action)
}

// load reads kind/id for the caller, answering 404 both for a missing record
// and for one the caller may not see.
func load[T any](ctx context.Context, r store.Reader, kind store.Kind, resource, id string, project func(*T) string) (T, error) {
	v, err := store.Get[T](r, kind, id)
	if errors.Is(err, store.ErrNotFound) || err == nil && !canSee(ctx, project(&v)) {
		return v, notFound(resource, id)
	}
	if err != nil {
		return v, fmt.Errorf("read %s %s: %w", resource, id, err)
	}
	return v, checkRevision(ctx, r, id, &v)
}

// statusOf is kind/id's status as its owner host reports it ("": see
// StatusSource).
func (s *Service) statusOf(kind store.Kind, id, host string) (string, string) {
	if s.status == nil {
		return model.StatusBuild, ""
	}
	return s.status.Status(kind, id, host)
}
