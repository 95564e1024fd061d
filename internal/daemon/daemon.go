package daemon

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/nsnet/nsnet/internal/agent"
	"github.com/nsnet/nsnet/internal/api"
	"github.com/nsnet/nsnet/internal/hostlock"
	"github.com/nsnet/nsnet/internal/hoststatus"
	"github.com/nsnet/nsnet/internal/metrics"
	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/service"
	"github.com/nsnet/nsnet/internal/store"
	"github.com/nsnet/nsnet/internal/topoview"
	"github.com/nsnet/nsnet/internal/ui"
)

// Version is the nsnet release, shown by the status endpoint.
var Version = "0.1.0-dev"

// Run serves the API and runs the agent until ctx ends.
func Run(ctx context.Context, cfg Config) error {
	cfg = withDefaults(cfg)
	log := cfg.Logger

	if err := service.CheckQuotaDefaults(cfg.Quotas); err != nil {
		return fmt.Errorf("default quotas: %w", err)
	}
	// Before anything touches the kernel: a second agent on this host
	// would delete the first one's objects as leftovers of its own.
	lock, err := hostlock.Acquire(hostlock.Dir, cfg.HostNetns)
	if err != nil {
		return fmt.Errorf("%w; one daemon per host namespace, whatever their prefixes", err)
	}
	defer lock.Release()
	ids, err := newIdentity(cfg, log)
	if err != nil {
		return err
	}

	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	// The status names where desired state lives: the file, or the
	// cluster.
	statePath := cmp.Or(cfg.Store, filepath.Join(cfg.StateDir, "state.db"))

	// The channel from agents to API servers is the store: this host's
	// agent publishes its statuses, counters and programmed revision as
	// records (hoststatus.Publisher), and the API reads every host's
	// through a mirror of them (hoststatus.View) — one path, whether one
	// host or many. A host is alive while its registry heartbeat is
	// younger than the agent down time.
	host := cmp.Or(cfg.Host, DefaultHost(cfg.HostNetns))
	downTime := cmp.Or(cfg.AgentDownTime, service.DefaultAgentDownTime)
	publisher, err := hoststatus.NewPublisher(st, host)
	if err != nil {
		return err
	}
	reports := hoststatus.NewView(hoststatus.ViewConfig{Store: st, Local: host, DownTime: downTime})
	if err := reports.Load(ctx); err != nil {
		return err
	}

	// The agent reports its passes into the metrics, which count its
	// objects at each scrape.
	var ag *agent.Agent
	mx := metrics.New(metrics.Sources{Objects: func() []metrics.ObjectCount {
		var out []metrics.ObjectCount
		for _, c := range ag.StatusCounts() {
			out = append(out, metrics.ObjectCount{Kind: c.Kind, Status: c.Status, Count: c.Count})
		}
		return out
	}, Servers: func() metrics.ServerCounts {
		dhcpReplies, dhcp6Replies, dnsAnswers := ag.ServerCounts()
		return metrics.ServerCounts{DHCPReplies: dhcpReplies, DHCP6Replies: dhcp6Replies, DNSAnswers: dnsAnswers}
	}, PortTraffic: func() (map[string]metrics.PortTraffic, error) {
		traffic, err := ag.PortTraffic()
		out := make(map[string]metrics.PortTraffic, len(traffic))
		for id, t := range traffic {
			out[id] = metrics.PortTraffic(t)
		}
		return out, err
	}, PortDrops: func() map[string]map[string]uint64 { return ag.PortDrops() },
		RouterConntrack: func() (map[string]int, error) { return ag.RouterConntrack() },
		RouterNAT:       func() map[string]map[string]int { return ag.RouterNAT() },
		Metering: func() ([]metrics.MeterCount, error) {
			counts, err := ag.MeteringCounts()
			out := make([]metrics.MeterCount, 0, len(counts))
			for _, c := range counts {
				out = append(out, metrics.MeterCount(c))
			}
			return out, err
		}})
	ag, err = agent.New(agent.Config{
		Store:             st,
		Host:              host,
		VTEPAddress:       cfg.VTEPAddress,
		InterfaceMappings: cfg.InterfaceMappings,
		Roles:             cfg.Roles,
		HostNetns:         cfg.HostNetns,
		NetnsPrefix:       cfg.NetnsPrefix,
		ResyncInterval:    cfg.ResyncInterval,
		DHCPLeaseTime:     cfg.DHCPLeaseTime,
		DNSUpstreams:      cfg.DNSUpstreams,
		Publisher:         publisher,
		OnPass: func(full bool, d time.Duration, clean bool, err error) {
			result := metrics.PassOK
			switch {
			case err != nil:
				result = metrics.PassFailed
			case !clean:
				result = metrics.PassObjectErrors
			}
			mx.ObservePass(full, d, result, time.Now())
		},
		Logger: log.With("component", "agent"),
	})
	if err != nil {
		return fmt.Errorf("start agent: %w", err)
	}

	started := time.Now()
	resync := cmp.Or(cfg.ResyncInterval, agent.DefaultResyncInterval)
	beat := cmp.Or(cfg.HeartbeatInterval, service.DefaultHeartbeatInterval)
	scfg := serviceConfig(cfg, host)
	scfg.Store, scfg.Status, scfg.Counters = st, reports, reports
	svc := service.New(scfg)
	vtep := scfg.VTEPAddress
	// The host's record and its agents' roles are registered before the
	// API serves; the agents again on every resync, so that a deleted one
	// comes back as a Neutron agent does at its next state report.
	// Networks stored before the provider extension take their segment
	// before anyone can read them (see service.AssignSegments).
	if n, err := svc.AssignSegments(ctx); err != nil {
		return fmt.Errorf("assign network segments: %w", err)
	} else if n > 0 {
		log.Info("assigned provider segments to networks stored without one", "networks", n)
	}
	if _, err := svc.RegisterHost(ctx, started); err != nil {
		return fmt.Errorf("register host %s: %w", host, err)
	}
	if _, err := svc.RegisterAgents(ctx, started); err != nil {
		return fmt.Errorf("register agents: %w", err)
	}
	// A store of one box, written before hosts, gives what it holds to
	// its only host.
	if n, err := svc.AdoptUnhosted(ctx); err != nil {
		return fmt.Errorf("give unhosted records to %s: %w", host, err)
	} else if n > 0 {
		log.Info("gave instances, routers and networks stored without a host to this host, the only one registered", "host", host, "records", n)
	}
	// A network node that registers takes what waited for one.
	scheduleWaiting(ctx, svc, log)
	log.Info("host registered", "host", host, "roles", cfg.Roles, "vtep_address", vtep,
		"availability_zone", cmp.Or(cfg.AvailabilityZone, model.DefaultAvailabilityZone))
	srv := api.New(api.Config{
		Service:   svc,
		Converger: reports,
		Projects:  ids.projects,
		Metrics:   mx.Handler(),
		Observe:   mx.ObserveRequest,
		Logger:    log.With("component", "api"),
		Status: func() any {
			return map[string]any{
				"daemon": map[string]any{
					"version":        Version,
					"pid":            os.Getpid(),
					"started_at":     started.UTC().Format(time.RFC3339),
					"uptime_seconds": int(time.Since(started).Seconds()),
					"state_file":     statePath,
					"host_netns":     cfg.HostNetns,
					"netns_prefix":   cfg.NetnsPrefix,
					"host":           host,
					"vtep_address":   vtep,
					"socket":         cfg.Socket,
					"listen":         cfg.Listen,
					"identity":       ids.mode,
				},
				"agent": ag.Health(),
			}
		},
	})

	unixLn, err := listenUnix(cfg.Socket)
	if err != nil {
		return err
	}
	// The web view (/ui/) beside the API on each listener, authenticated
	// as the API there is: nobody asked on the socket, a token on TCP.
	traffic := func() (map[string]topoview.Traffic, error) {
		t, err := ag.PortTraffic()
		out := make(map[string]topoview.Traffic, len(t))
		for id, c := range t {
			out[id] = topoview.Traffic(c)
		}
		return out, err
	}
	uiLog := log.With("component", "ui")
	trusted := srv.TrustedHandler()
	servers := []*served{{srv: &http.Server{Handler: ui.WithAPI(trusted,
		ui.New(ui.Config{API: trusted, Traffic: traffic, Logger: uiLog}))}, ln: unixLn}}
	if cfg.Listen != "" {
		tcpLn, err := net.Listen("tcp", cfg.Listen)
		if err != nil {
			unixLn.Close()
			return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
		}
		tokenAPI := srv.TokenHandler(ids.authenticator)
		servers = append(servers, &served{srv: &http.Server{Handler: ui.WithAPI(tokenAPI,
			ui.New(ui.Config{API: tokenAPI, Authenticator: ids.authenticator, Traffic: traffic, Logger: uiLog}))}, ln: tcpLn})
		// As Jupyter does: a link that logs the admin in, when there is
		// one admin token; else the login form takes any token.
		link := "http://" + tcpLn.Addr().String() + "/ui/"
		if ids.adminToken != "" {
			link += "?token=" + url.QueryEscape(ids.adminToken)
		}
		log.Info("topology view: " + link)
	}
	if cfg.MetricsListen != "" {
		ln, err := net.Listen("tcp", cfg.MetricsListen)
		if err != nil {
			for _, s := range servers {
				s.ln.Close()
			}
			return fmt.Errorf("listen on %s: %w", cfg.MetricsListen, err)
		}
		// Only /metrics, and without a token, as Prometheus scrapes
		// exporters: who can reach this address can read the counts.
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", mx.Handler())
		servers = append(servers, &served{srv: &http.Server{Handler: mux}, ln: ln, what: "metrics"})
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, len(servers)+2)
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := ag.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			errs <- fmt.Errorf("agent: %w", err)
		}
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		heartbeat(ctx, svc, log, beat, started)
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := reports.Run(ctx); err != nil && ctx.Err() == nil {
			errs <- fmt.Errorf("host reports: %w", err)
		}
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		publishCounters(ctx, publisher, ag, log)
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		every(ctx, resync, func() {
			if _, err := svc.RegisterAgents(ctx, started); err != nil && ctx.Err() == nil {
				log.Warn("cannot register agents", "err", err)
			}
		})
	}()
	for _, s := range servers {
		s.srv.ReadHeaderTimeout = 10 * time.Second
		s.srv.ErrorLog = slog.NewLogLogger(log.Handler(), slog.LevelWarn)
		go func() {
			if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errs <- fmt.Errorf("serve %s: %w", s.ln.Addr(), err)
			}
		}()
		log.Info(cmp.Or(s.what, "API")+" listening", "address", s.ln.Addr().String())
	}

	var runErr error
wait:
	for {
		select {
		case <-ctx.Done():
			break wait
		case runErr = <-errs:
			break wait
		case <-cfg.Reload:
			ids.reload(log)
		}
	}
	log.Info("shutting down")
	shutdownCtx, stop := context.WithTimeout(context.Background(), 10*time.Second)
	defer stop()
	for _, s := range servers {
		_ = s.srv.Shutdown(shutdownCtx)
	}
	cancel()
	wg.Wait()
	_ = os.Remove(cfg.Socket)
	return runErr
}

// CounterInterval is how often the daemon publishes its ports' firewall
// drop counters (those that changed) for the API servers to read.
const CounterInterval = 2 * time.Second

// publishCounters publishes the agent's drop counters every
// CounterInterval until ctx ends.
func publishCounters(ctx context.Context, p *hoststatus.Publisher, ag *agent.Agent, log *slog.Logger) {
	every(ctx, CounterInterval, func() {
		if err := p.PublishCounters(ctx, ag.PortFirewallCounters()); err != nil && ctx.Err() == nil {
			log.Warn("cannot publish firewall counters", "err", err)
		}
	})
}

// every calls fn every d until ctx ends.
func every(ctx context.Context, d time.Duration, fn func()) {
	tick := time.NewTicker(d)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			fn()
		}
	}
}

// serviceConfig is what the daemon's flags make of the service's host
// facts and limits (the store and the agent's sources are the caller's).
func serviceConfig(cfg Config, host string) service.Config {
	vtep := ""
	// Multi-host mode: frames between hosts are VXLAN-encapsulated, so a
	// tenant network's MTU leaves room for the outer headers.
	overhead := 0
	if cfg.VTEPAddress.IsValid() {
		vtep, overhead = cfg.VTEPAddress.String(), model.VXLANOverhead
	}
	return service.Config{NetnsPrefix: cfg.NetnsPrefix, Quotas: cfg.Quotas,
		PhysnetMTU: cfg.PhysnetMTU, VNIRanges: cfg.VNIRanges, TunnelOverhead: overhead,
		HostID: service.HostUUID(host), Host: host, Roles: cfg.Roles, VTEPAddress: vtep, AvailabilityZone: cfg.AvailabilityZone,
		InterfaceMappings: cfg.InterfaceMappings,
		// Alive is the host's beat in the store's presence, which this
		// daemon refreshes every heartbeat interval, under a lease of
		// the down time on etcd (see service/hosts.go).
		AgentDownTime: cmp.Or(cfg.AgentDownTime, service.DefaultAgentDownTime),
	}
}

// DefaultHost names this host in the registry, its agents and port
// bindings when --host does not, as Neutron's host option does: the host
// name, and the host namespace when there is one (several daemons on one
// machine are several hosts).
func DefaultHost(hostNetns string) string {
	name, err := os.Hostname()
	if err != nil {
		name = "localhost"
	}
	if hostNetns != "" {
		name += "/" + hostNetns
	}
	return name
}

// heartbeat refreshes the host's heartbeat every interval and then moves
// what dead network nodes hosted (service.Failover) and places what waited
// for a network node (service.ScheduleWaiting), until ctx ends. Every
// daemon does both: the first to see a host dead moves its routers and
// DHCP, and the store's conflict check leaves the others nothing to move.
func heartbeat(ctx context.Context, svc *service.Service, log *slog.Logger, interval time.Duration, started time.Time) {
	every(ctx, interval, func() {
		if _, err := svc.Heartbeat(ctx, started); err != nil && ctx.Err() == nil {
			log.Warn("cannot refresh the host's heartbeat", "err", err)
		}
		moves, err := svc.Failover(ctx)
		if err != nil && ctx.Err() == nil {
			log.Warn("cannot fail over from dead hosts", "err", err)
		}
		for _, m := range moves {
			what := "router"
			if m.Kind == store.Networks {
				what = "network DHCP"
			}
			log.Warn("failover: moved "+what+" off a dead host", "id", m.ID, "from", m.From, "to", m.To)
		}
		scheduleWaiting(ctx, svc, log)
	})
}

// scheduleWaiting places the routers and networks' DHCP that no network
// node could take when they were made, now that one may (it came back,
// registered, or an admin set its agent up): see service.ScheduleWaiting.
func scheduleWaiting(ctx context.Context, svc *service.Service, log *slog.Logger) {
	moves, err := svc.ScheduleWaiting(ctx)
	if err != nil && ctx.Err() == nil {
		log.Warn("cannot schedule waiting routers and networks", "err", err)
	}
	for _, m := range moves {
		what := "router"
		if m.Kind == store.Networks {
			what = "network DHCP"
		}
		log.Info("scheduled a waiting "+what, "id", m.ID, "to", m.To)
	}
}

type served struct {
	srv  *http.Server
	ln   net.Listener
	what string // what it serves, for the log: "API" when empty
}

// openStore opens the store cfg names: the bbolt file in the state
// directory, or an etcd cluster.
func openStore(ctx context.Context, cfg Config) (store.Store, error) {
	if cfg.Store == "" {
		return store.OpenBolt(filepath.Join(cfg.StateDir, "state.db"))
	}
	ecfg, err := store.ParseEtcdURL(cfg.Store)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	st, err := store.OpenEtcd(ctx, ecfg)
	if err != nil {
		return nil, err
	}
	cfg.Logger.Info("store: etcd", "endpoints", ecfg.Endpoints, "prefix", ecfg.Prefix)
	return st, nil
}

func withDefaults(cfg Config) Config {
	if cfg.StateDir == "" {
		cfg.StateDir = DefaultStateDir
	}
	if cfg.Socket == "" {
		cfg.Socket = DefaultSocket
	}
	if cfg.ResyncInterval <= 0 {
		cfg.ResyncInterval = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return cfg
}

// listenUnix listens on path with mode 0600, replacing a stale socket left
// by a daemon that died, but never one a live daemon still answers on.
func listenUnix(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("create socket directory: %w", err)
	}
	if conn, err := net.DialTimeout("unix", path, time.Second); err == nil {
		conn.Close()
		return nil, fmt.Errorf("another nsnet daemon is already serving %s", path)
	}
	if info, err := os.Lstat(path); err == nil {
		if info.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("%s exists and is not a socket", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale socket: %w", err)
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("restrict socket: %w", err)
	}
	return ln, nil
}
