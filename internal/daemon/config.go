// Package daemon wires one nsnet daemon together: the store, the API server on
// its listeners, and the agent that programs this host.
//
// It owns process lifetime (listeners, signals, shutdown order). It must not
// hold API or dataplane logic of its own.
package daemon

import (
	"log/slog"
	"net/netip"
	"time"

	"github.com/nsnet/nsnet/internal/auth"
	"github.com/nsnet/nsnet/internal/model"
)

// Defaults for a daemon started with no flags.
const (
	DefaultStateDir = "/var/lib/nsnet"
	DefaultSocket   = "/run/nsnet/nsnet.sock"
)

// Config is everything `nsnet daemon` takes.
type Config struct {
	// StateDir holds the store file, state.db, unless Store names etcd.
	StateDir string
	// Store is where desired state lives: empty for the bbolt file
	// <StateDir>/state.db (one host), or etcd://HOST:PORT[,HOST:PORT…][/PREFIX]
	// for an etcd cluster that many hosts share.
	Store string
	// Socket is the unix socket path of the API (mode 0600, admin).
	Socket string
	// Listen is an optional TCP address for the API, e.g. 127.0.0.1:9696.
	// It requires one way to check tokens: TokensFile, TokenFile or
	// Keystone.
	Listen string
	// MetricsListen is an optional TCP address that serves only /metrics,
	// without authentication, for Prometheus to scrape (e.g.
	// 127.0.0.1:9698). The API serves /metrics too, to admins.
	MetricsListen string
	// TokensFile lists tokens, each with its project, user and roles
	// (see auth.LoadTokens). SIGHUP re-reads it.
	TokensFile string
	// TokenFile holds one admin token that TCP requests must present in
	// X-Auth-Token: the shorthand for a tokens file of one admin.
	TokenFile string
	// Keystone, when its URL is set, validates tokens against Keystone.
	Keystone auth.KeystoneConfig
	// Quotas are the default quota limits by resource; missing ones take
	// Neutron's defaults.
	Quotas map[string]int
	// PhysnetMTU is the MTU of the network beyond the host, the largest a
	// network may have (Neutron's global_physnet_mtu); zero means 1500.
	PhysnetMTU int
	// VNIRanges are the VNIs of tenant (vxlan) networks (ML2's
	// vni_ranges); nil means service.DefaultVNIRanges.
	VNIRanges []model.VNIRange
	// Reload asks the daemon to re-read its tokens file (SIGHUP).
	Reload <-chan struct{}
	// HostNetns names the namespace the agent treats as the host; empty
	// means the namespace the daemon runs in.
	HostNetns string
	// NetnsPrefix starts the name of every namespace the agent creates.
	NetnsPrefix string
	// Host names this host in the registry, its agents and port bindings
	// (Neutron's host option); empty means the host name, and the host
	// namespace when there is one (DefaultHost).
	Host string
	// Roles are this host's roles, model.RoleCompute and/or
	// model.RoleNetwork; nil means both.
	Roles []string
	// VTEPAddress is this host's underlay address for VXLAN between
	// hosts. Set, the daemon runs in multi-host mode: tenant (vxlan)
	// networks lose model.VXLANOverhead of the physnet MTU. The zero Addr
	// is one box: no overlay.
	VTEPAddress netip.Addr
	// InterfaceMappings map physical networks to this host's interfaces
	// (--physical-interface-mappings): kept in the host's record and
	// bridged by its agent into the flat networks on them.
	InterfaceMappings map[string]string
	// AvailabilityZone is this host's zone; empty means
	// model.DefaultAvailabilityZone.
	AvailabilityZone string
	// AgentDownTime is how old a host's heartbeat may be for its agents
	// to be alive (Neutron's agent_down_time); zero means
	// service.DefaultAgentDownTime.
	AgentDownTime time.Duration
	// HeartbeatInterval is how often the daemon refreshes its host's
	// heartbeat, and checks for dead network nodes to fail over from
	// (Neutron's report_interval); zero means
	// service.DefaultHeartbeatInterval.
	HeartbeatInterval time.Duration
	// ResyncInterval is the period of the full convergence pass that
	// backs up event-driven passes.
	ResyncInterval time.Duration
	// DHCPLeaseTime is the lease time of the networks' DHCP servers.
	DHCPLeaseTime time.Duration
	// DNSUpstreams are the resolvers (address:port) the networks' DNS
	// servers forward names they do not hold to; none: REFUSED.
	DNSUpstreams []string
	Logger       *slog.Logger
}
