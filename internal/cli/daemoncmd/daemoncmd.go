// Package daemoncmd is the `nsnet daemon` command. It is apart from package
// cli so that the client commands build and test without the daemon's code,
// and so that only cmd/nsnet links the two together.
//
// It owns the daemon's flags and its signal handling. It must not hold
// daemon logic: it fills a daemon.Config and calls daemon.Run.
package daemoncmd

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/nsnet/nsnet/internal/auth"
	"github.com/nsnet/nsnet/internal/daemon"
	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/service"
	"github.com/nsnet/nsnet/internal/store"
)

// flags are the command line of nsnet daemon.
type flags struct {
	stateDir       string
	store          string
	socket         string
	listen         string
	metricsListen  string
	tokensFile     string
	tokenFile      string
	keystone       keystoneFlags
	quotas         map[string]int
	physnetMTU     int
	vniRanges      string
	hostNetns      string
	netnsPrefix    string
	host           string
	roles          []string
	vtepAddress    string
	ifaceMappings  []string
	zone           string
	agentDownTime  time.Duration
	heartbeat      time.Duration
	resyncInterval time.Duration
	dhcpLeaseTime  time.Duration
	dnsUpstreams   []string
	logLevel       string
	profileDir     string
}

// keystoneFlags are the service credentials nsnet validates tokens with.
type keystoneFlags struct {
	url, username, passwordFile, project, userDomain, projectDomain string
}

// New returns the `nsnet daemon` command.
func New() *cobra.Command { return newCommand(&flags{}) }

func newCommand(f *flags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "daemon",
		Short: "Run the nsnet daemon: the API server and the agent that programs this host",
		Long: `Run the nsnet daemon in the foreground. It serves the OpenStack Networking
v2.0 API on a unix socket (mode 0600: root is the admin) and, with --listen,
on TCP for callers that present a token (X-Auth-Token). Tokens are checked
in one of three ways:

  --tokens FILE       nsnet's own: a YAML list of tokens, each with its
                      project_id, optional project_name, user_id and roles
                      (admin, member, reader). SIGHUP re-reads it; a file
                      that does not parse keeps the old tokens.
  --token-file FILE   shorthand: one token, the admin's.
  --keystone-url URL  a Keystone v3 server validates each token
                      (GET /v3/auth/tokens) as nsnet's service user
                      (--keystone-username, --keystone-password-file,
                      --keystone-project, or OS_USERNAME, OS_PASSWORD,
                      OS_PROJECT_NAME, OS_USER_DOMAIN_NAME,
                      OS_PROJECT_DOMAIN_NAME). Valid tokens are remembered
                      until they expire.

Its agent turns
the stored desired state into kernel objects (namespaces, bridges, veths,
addresses, routes) and repairs drift, every --resync-interval at
the latest.

Desired state lives in <state-dir>/state.db (a bbolt file: one host, no
server), or with --store etcd://HOST:PORT[,HOST:PORT…][/PREFIX][?max-txn-ops=N]
in an etcd cluster (v3.4 or later) that several hosts share, under PREFIX
(default /nsnet, so that deployments can share a cluster). While etcd
cannot be reached, the API answers 503 and the agent keeps the kernel as it
is; both carry on when it is back. One request is one etcd transaction,
and a port writes about ten records with its index entries: a bulk
create of more than about a dozen ports is past etcd's --max-txn-ops
(default 128) and answered 400, naming the bound; raise it on the cluster
and tell nsnet with ?max-txn-ops=N. The kernel holds the rest, so the daemon can be
stopped and started again at any time. SIGINT or SIGTERM
stop it cleanly; the kernel objects stay, and traffic keeps flowing.

Every network with a DHCP-enabled subnet is served from its namespace
<prefix>qdhcp-<network id>, by the daemon itself: DHCP (static leases for
the network's ports, --dhcp-lease-time) and DNS on the DHCP port's
address (instance names in the network's dns_domain; other names go to
--dns-upstream servers, or are REFUSED when there are none).

Every namespace the agent creates starts with --netns-prefix, so that
several daemons (or tests) on one machine never collide, as long as each has
a --host-netns of its own: one daemon programs a host namespace at a time (a
lock under /run/nsnet/locks), and a second one refuses to start, naming the
first one's pid, before it touches the kernel.

Many hosts: run one daemon per host against one etcd (--store etcd://…),
each with its --host name, its --roles and its --vtep-address (the
underlay address other hosts send its VXLAN packets to; given, the daemon
is in multi-host mode and tenant networks' MTU is --physnet-mtu − 50).
Every daemon serves the API and runs its host's agent. Compute hosts take
instances (` + "`nsnet instance create vm1 --host NAME`" + `, or the least loaded alive
compute host); network nodes take routers and DHCP (the least loaded alive
network node, in the availability_zone_hints' zones; --availability-zone
names the host's). A flat provider network reaches each host's network
by the interface --physical-interface-mappings maps its
provider:physical_network to there (names may differ between hosts).
Each daemon writes its host's record when it starts and
refreshes its heartbeat every --heartbeat-interval; a host whose heartbeat
is older than --agent-down-time is dead: its agents show alive=false, and
its routers and networks' DHCP move to an alive network node (failover,
run by every daemon). An agent set admin_state_up=false is drained: it gets
nothing new, and keeps what it has. See docs/AGENTS.md.

Prometheus metrics (docs/METRICS.md) are served at /metrics: to admins on
the API's listeners, and without a token on --metrics-listen, an address
of their own for Prometheus to scrape (keep it on 127.0.0.1 or a
management network).`,
		Example: `  sudo nsnet daemon
  sudo nsnet daemon --listen 127.0.0.1:9696 --token-file /etc/nsnet/token
  sudo nsnet daemon --listen 127.0.0.1:9696 --tokens /etc/nsnet/tokens.yaml --default-quota network=10,port=50
  sudo OS_PASSWORD=… nsnet daemon --listen 127.0.0.1:9696 --keystone-url http://127.0.0.1:5000/v3 \
       --keystone-username nsnet --keystone-project service
  sudo nsnet daemon --store etcd://10.0.0.1:2379,10.0.0.2:2379,10.0.0.3:2379
  sudo nsnet daemon --store etcd://10.0.0.1:2379 --host compute-1 --roles compute --vtep-address 10.0.1.11
  sudo nsnet daemon --store etcd://10.0.0.1:2379 --host net-1 --roles network --vtep-address 10.0.1.21 --availability-zone az1
  sudo nsnet daemon --dhcp-lease-time 1h --dns-upstream 192.0.2.53,192.0.2.54
  sudo nsnet daemon --metrics-listen 127.0.0.1:9698          # Prometheus scrapes http://127.0.0.1:9698/metrics
  sudo nsnet daemon --state-dir /tmp/nsnet --socket /tmp/nsnet.sock --netns-prefix t1- --log-level debug`,
		Args: cobra.NoArgs,
	}
	fs := cmd.Flags()
	fs.StringVar(&f.stateDir, "state-dir", daemon.DefaultStateDir, "directory of the state database, state.db")
	fs.StringVar(&f.store, "store", "", "where desired state lives: etcd://HOST:PORT[,HOST:PORT…][/PREFIX] for an etcd cluster; default: the bbolt file <state-dir>/state.db")
	fs.StringVar(&f.socket, "socket", daemon.DefaultSocket, "unix socket of the API")
	fs.StringVar(&f.listen, "listen", "", "also serve the API on this TCP address, e.g. 127.0.0.1:9696 (needs --tokens, --token-file or --keystone-url)")
	fs.StringVar(&f.metricsListen, "metrics-listen", "", "serve /metrics (Prometheus) on this TCP address without authentication, e.g. 127.0.0.1:9698; the API serves it to admins too")
	fs.StringVar(&f.tokensFile, "tokens", "", "YAML file of tokens with their projects, users and roles (SIGHUP re-reads it)")
	fs.StringVar(&f.tokenFile, "token-file", "", "file holding the admin token that TCP callers send as X-Auth-Token")
	fs.StringVar(&f.keystone.url, "keystone-url", "", "validate tokens with this Keystone v3 endpoint, e.g. http://127.0.0.1:5000/v3")
	fs.StringVar(&f.keystone.username, "keystone-username", "", "nsnet's service user in Keystone (default $OS_USERNAME)")
	fs.StringVar(&f.keystone.passwordFile, "keystone-password-file", "", "file holding the service user's password (default $OS_PASSWORD)")
	fs.StringVar(&f.keystone.project, "keystone-project", "", "project of the service user (default $OS_PROJECT_NAME)")
	fs.StringVar(&f.keystone.userDomain, "keystone-user-domain", "", "domain of the service user (default $OS_USER_DOMAIN_NAME, else Default)")
	fs.StringVar(&f.keystone.projectDomain, "keystone-project-domain", "", "domain of the service project (default $OS_PROJECT_DOMAIN_NAME, else Default)")
	fs.StringToIntVar(&f.quotas, "default-quota", nil, "default quota limits, e.g. network=10,port=50 (-1: unlimited); resources: "+
		strings.Join(service.QuotaResources, ", "))
	fs.IntVar(&f.physnetMTU, "physnet-mtu", 1500, "MTU of the network beyond the host: networks' default and largest MTU (Neutron's global_physnet_mtu)")
	fs.StringVar(&f.vniRanges, "vni-ranges", "", "VNIs of tenant (vxlan) networks, comma-separated MIN:MAX ranges as ML2's vni_ranges (default "+
		service.DefaultVNIRanges[0].String()+")")
	fs.StringVar(&f.hostNetns, "host-netns", "", "named namespace the agent treats as the host (default: the daemon's own)")
	fs.StringVar(&f.netnsPrefix, "netns-prefix", "", "prefix of every namespace name the agent creates")
	fs.StringVar(&f.host, "host", "", "this host's name in the registry, its agents (/v2.0/agents) and port bindings (binding:host_id); default: the host name, then /--host-netns if given")
	fs.StringSliceVar(&f.roles, "roles", []string{model.RoleCompute, model.RoleNetwork}, "what this host takes: compute (instances), network (routers and DHCP), or both")
	fs.StringVar(&f.vtepAddress, "vtep-address", "", "this host's underlay address for VXLAN to other hosts; given: multi-host mode (tenant MTU = --physnet-mtu − 50); default: one box, no overlay")
	fs.StringSliceVar(&f.ifaceMappings, "physical-interface-mappings", nil, "PHYSICAL_NETWORK:INTERFACE pairs, comma-separated (the Linux bridge agent's physical_interface_mappings): a flat network with that provider:physical_network is bridged to this host's INTERFACE")
	fs.StringVar(&f.zone, "availability-zone", model.DefaultAvailabilityZone, "this host's availability zone, which availability_zone_hints name")
	fs.DurationVar(&f.agentDownTime, "agent-down-time", service.DefaultAgentDownTime, "a host whose heartbeat is older is dead: its agents are not alive and its routers and DHCP fail over (Neutron's agent_down_time)")
	fs.DurationVar(&f.heartbeat, "heartbeat-interval", service.DefaultHeartbeatInterval, "how often this host's heartbeat is written, and dead hosts looked for (Neutron's report_interval); below --agent-down-time")
	fs.DurationVar(&f.resyncInterval, "resync-interval", 30*time.Second, "period of the full convergence pass that backs up event-driven ones")
	fs.DurationVar(&f.dhcpLeaseTime, "dhcp-lease-time", 24*time.Hour, "lease time DHCP clients are given (they renew at half of it)")
	fs.StringSliceVar(&f.dnsUpstreams, "dns-upstream", nil, "resolvers (address or address:port) that the networks' DNS servers forward other names to; none: such queries are REFUSED")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	// For benchmarks (bench/create100 -profile): not a user's flag.
	fs.StringVar(&f.profileDir, "profile-dir", "", "profile the daemon between two SIGUSR2s into numbered directories under this one")
	_ = fs.MarkHidden("profile-dir")
	_ = cmd.MarkFlagFilename("token-file")
	_ = cmd.MarkFlagFilename("tokens")
	_ = cmd.MarkFlagFilename("keystone-password-file")
	_ = cmd.MarkFlagDirname("state-dir")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg, err := f.config(os.Stderr, os.Getenv)
		if err != nil {
			return err
		}
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
		reload := make(chan struct{}, 1)
		cfg.Reload = reload
		go func() {
			for range hup {
				select {
				case reload <- struct{}{}:
				default: // a reload is already pending
				}
			}
		}()
		ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		go func() {
			// After the first signal, a second one kills at once.
			<-ctx.Done()
			stop()
		}()
		if f.profileDir != "" {
			pctx, done := context.WithCancel(ctx)
			profiled := make(chan struct{})
			go func() { defer close(profiled); profileOnSignal(pctx, f.profileDir) }()
			defer func() { done(); <-profiled }()
		}
		return daemon.Run(ctx, cfg)
	}
	return cmd
}

// config maps the flags (and, for Keystone's service credentials, the
// environment) to a daemon.Config, logging to logw.
func (f *flags) config(logw *os.File, getenv func(string) string) (daemon.Config, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return daemon.Config{}, fmt.Errorf("--log-level %q: want debug, info, warn or error", f.logLevel)
	}
	if f.resyncInterval <= 0 {
		return daemon.Config{}, fmt.Errorf("--resync-interval %s: must be positive", f.resyncInterval)
	}
	if f.dhcpLeaseTime < 2*time.Second || f.dhcpLeaseTime > math.MaxUint32*time.Second {
		return daemon.Config{}, fmt.Errorf("--dhcp-lease-time %s: must be between 2s and 136 years", f.dhcpLeaseTime)
	}
	if f.physnetMTU < 68 || f.physnetMTU > 65535 {
		return daemon.Config{}, fmt.Errorf("--physnet-mtu %d: must be between 68 and 65535", f.physnetMTU)
	}
	if f.store != "" {
		if _, err := store.ParseEtcdURL(f.store); err != nil {
			return daemon.Config{}, fmt.Errorf("--store: %w; leave it out for the bbolt file <state-dir>/state.db", err)
		}
	}
	roles, err := parseRoles(f.roles)
	if err != nil {
		return daemon.Config{}, err
	}
	var vtep netip.Addr
	if f.vtepAddress != "" {
		if vtep, err = netip.ParseAddr(f.vtepAddress); err != nil || !vtep.Is4() || !vtep.IsGlobalUnicast() && !vtep.IsPrivate() {
			return daemon.Config{}, fmt.Errorf("--vtep-address %q: want this host's unicast IPv4 address on the underlay", f.vtepAddress)
		}
	}
	mappings, err := model.ParseInterfaceMappings(f.ifaceMappings)
	if err != nil {
		return daemon.Config{}, fmt.Errorf("--physical-interface-mappings: %w", err)
	}
	if strings.Contains(f.host, "\x00") || len(f.host) > 255 || f.host != strings.TrimSpace(f.host) {
		return daemon.Config{}, fmt.Errorf("--host %q: want a name of at most 255 characters without surrounding spaces", f.host)
	}
	if f.zone == "" || len(f.zone) > 255 {
		return daemon.Config{}, fmt.Errorf("--availability-zone %q: want a name of 1 to 255 characters", f.zone)
	}
	if f.heartbeat <= 0 {
		return daemon.Config{}, fmt.Errorf("--heartbeat-interval %s: must be positive", f.heartbeat)
	}
	if f.agentDownTime <= f.heartbeat {
		return daemon.Config{}, fmt.Errorf("--agent-down-time %s: must be longer than --heartbeat-interval %s (twice as long, as Neutron advises, survives a missed heartbeat)", f.agentDownTime, f.heartbeat)
	}
	vniRanges, err := model.ParseVNIRanges(f.vniRanges)
	if err != nil {
		return daemon.Config{}, fmt.Errorf("--vni-ranges: %w", err)
	}
	upstreams, err := parseUpstreams(f.dnsUpstreams)
	if err != nil {
		return daemon.Config{}, err
	}
	ks, err := f.keystone.config(getenv)
	if err != nil {
		return daemon.Config{}, err
	}
	return daemon.Config{
		StateDir:          f.stateDir,
		Store:             f.store,
		Socket:            f.socket,
		Listen:            f.listen,
		MetricsListen:     f.metricsListen,
		TokensFile:        f.tokensFile,
		TokenFile:         f.tokenFile,
		Keystone:          ks,
		Quotas:            f.quotas,
		PhysnetMTU:        f.physnetMTU,
		VNIRanges:         vniRanges,
		HostNetns:         f.hostNetns,
		NetnsPrefix:       f.netnsPrefix,
		Host:              f.host,
		Roles:             roles,
		VTEPAddress:       vtep,
		InterfaceMappings: mappings,
		AvailabilityZone:  f.zone,
		AgentDownTime:     f.agentDownTime,
		HeartbeatInterval: f.heartbeat,
		ResyncInterval:    f.resyncInterval,
		DHCPLeaseTime:     f.dhcpLeaseTime,
		DNSUpstreams:      upstreams,
		Logger:            slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: level})),
	}, nil
}

// config resolves the service credentials: a flag beats its OS_* variable.
// The password comes from a file or the environment, never the command
// line, where every user of the machine could read it.
func (k *keystoneFlags) config(getenv func(string) string) (auth.KeystoneConfig, error) {
	if k.url == "" {
		return auth.KeystoneConfig{}, nil
	}
	cfg := auth.KeystoneConfig{
		URL:           k.url,
		Username:      cmp.Or(k.username, getenv("OS_USERNAME")),
		Password:      getenv("OS_PASSWORD"),
		Project:       cmp.Or(k.project, getenv("OS_PROJECT_NAME")),
		UserDomain:    cmp.Or(k.userDomain, getenv("OS_USER_DOMAIN_NAME")),
		ProjectDomain: cmp.Or(k.projectDomain, getenv("OS_PROJECT_DOMAIN_NAME")),
	}
	if k.passwordFile != "" {
		raw, err := os.ReadFile(k.passwordFile)
		if err != nil {
			return cfg, fmt.Errorf("--keystone-password-file: %w", err)
		}
		cfg.Password = strings.TrimRight(string(raw), "\r\n")
	}
	return cfg, nil
}

// parseRoles reads --roles: compute and/or network, each once, in that
// order.
func parseRoles(list []string) ([]string, error) {
	var out []string
	for _, r := range list {
		r = strings.TrimSpace(r)
		if r != model.RoleCompute && r != model.RoleNetwork {
			return nil, fmt.Errorf("--roles %q: unknown role %q; want compute, network or compute,network", strings.Join(list, ","), r)
		}
		if !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--roles: give at least one of compute and network")
	}
	slices.Sort(out)
	return out, nil
}

// parseUpstreams reads --dns-upstream: addresses, with port 53 unless one
// is given.
func parseUpstreams(list []string) ([]string, error) {
	var out []string
	for _, u := range list {
		if a, err := netip.ParseAddr(u); err == nil {
			out = append(out, netip.AddrPortFrom(a, 53).String())
			continue
		}
		ap, err := netip.ParseAddrPort(u)
		if err != nil {
			return nil, fmt.Errorf("--dns-upstream %q: want an address or address:port", u)
		}
		out = append(out, ap.String())
	}
	return out, nil
}
