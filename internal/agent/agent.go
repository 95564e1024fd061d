// Package agent turns the desired state in the store into kernel state on
// one host: a bridge per network, a namespace per instance, a veth pair per
// plugged port, with addresses and routes; and per router a qrouter
// namespace with its qr-/qg- ports, routes and nsnet nft table (default
// SNAT, floating IPs, port forwards); networks' uplinks (host interfaces it
// plugs into their bridges and releases, never deletes) and host NAT (the
// gateway addresses of host-gateway networks on their bridges, forwarding
// and the host namespace's nsnet table, with published ports). See
// docs/NAT.md.
//
// It programs its own host's objects only: the instances, routers and
// DHCP whose host field names its host (Config.Host). With many hosts
// (Config.VTEPAddress) it has the bridges of the networks present on its
// host only, each joined to the other hosts that have it by a VXLAN device
// whose forwarding and neighbour entries it writes from the store (L2
// population: hosts.go, pass_overlay.go, docs/OVERLAY.md).
//
// It owns convergence. It is level-triggered and idempotent: every pass
// compares what the store asks for with what the kernel has and changes only
// the difference, so running it twice changes nothing the second time, and a
// restarted agent finishes what a killed one started. It reports per-object
// status (ACTIVE only once the kernel has the object) and lets callers wait
// until a store revision is programmed. It listens for the kernel's
// notifications of deleted links, addresses and nft objects, and repairs
// such drift in a full pass within a fraction of a second (drift.go); the
// periodic full pass is the fallback. It must not validate API input or
// write desired state: the service does both.
package agent

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/nsnet/nsnet/internal/dataplane"
	"github.com/nsnet/nsnet/internal/dhcp"
	"github.com/nsnet/nsnet/internal/dhcp6"
	"github.com/nsnet/nsnet/internal/hoststatus"
	"github.com/nsnet/nsnet/internal/metadata"
	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/nameserver"
	"github.com/nsnet/nsnet/internal/netns"
	"github.com/nsnet/nsnet/internal/store"
)

// Config is what an Agent needs.
type Config struct {
	// Host is this host's name (model.Host): the agent programs the
	// instances, routers and DHCP whose host field names it, and, with
	// no VTEPAddress, those that name no host (one box).
	Host string
	// VTEPAddress is this host's underlay address for VXLAN; set, the
	// agent is in multi-host mode: it builds bridges only for the
	// networks present here and joins them to the other hosts' by VXLAN
	// (docs/OVERLAY.md).
	VTEPAddress netip.Addr
	// InterfaceMappings map physical networks to this host's interfaces
	// (--physical-interface-mappings): a flat network on a mapped one,
	// with no nsnet:uplink, has the interface bridged into its bridge.
	InterfaceMappings map[string]string
	// Roles are the host's roles (model.RoleCompute, model.RoleNetwork).
	// The scheduler reads them from the host registry; the agent goes by
	// the records' host fields.
	Roles []string

	Store store.Store
	// HostNetns names the namespace treated as the host; "" is the one
	// the daemon runs in. A named one is created if missing.
	HostNetns string
	// NetnsPrefix starts the name of every namespace the agent names
	// (instances: prefix + instance name). The agent only ever looks for
	// leftovers among namespaces with this prefix.
	NetnsPrefix string
	// ResyncInterval is the period of full passes, which re-read the whole
	// kernel state and repair drift; default 30s.
	ResyncInterval time.Duration
	// DHCPLeaseTime is the lease time DHCP clients are given; default
	// dhcp.DefaultLeaseTime.
	DHCPLeaseTime time.Duration
	// DNSUpstreams are the resolvers (address:port) the networks' DNS
	// servers forward other names to; none: they answer REFUSED.
	DNSUpstreams []string
	// OnPass, when set, is told of every pass that ran (not one cut short
	// by the agent stopping): full or partial, how long it took, whether
	// it left objects in error (clean) and whether it failed as a whole.
	// A full pass that yielded to store changes is told of once, when its
	// round ends: one full pass, its time that of its pieces together
	// (what ran between them not counted), so that the metrics' full
	// passes are whole ones.
	OnPass func(full bool, d time.Duration, clean bool, err error)
	// Publisher, when set, is given the statuses and the revision of
	// every pass, which it writes to the store for the API servers, in a
	// goroutine of its own that writes the newest (report.go); one that
	// fails is tried again with backoff.
	Publisher *hoststatus.Publisher
	Logger    *slog.Logger
}

// Defaults.
const (
	DefaultResyncInterval = 30 * time.Second
	// workers bounds the instances programmed at once in one pass. The
	// kernel serialises most of the work under the RTNL lock, but
	// namespace creation and the round trips overlap usefully.
	workers = 4
	// deleteWorkers bounds deletions at once. Deleting a namespace
	// mostly waits for the kernel to destroy it, which it does in
	// batches: the more at once, the fewer batches.
	deleteWorkers = 32
	// minRetry is the first delay before retrying a pass that left
	// errors; it doubles up to ResyncInterval.
	minRetry = 500 * time.Millisecond
)

// Agent converges one host. Create it with New, start it with Run.
type Agent struct {
	cfg        Config
	log        *slog.Logger
	markerHost string // the host part of this agent's instance markers

	mu       sync.Mutex
	statuses map[key]status
	// counts counts the statuses as StatusCounts shows them, kept with
	// them (setStatusLocked) so that a metrics scrape does not walk
	// every status with the lock held.
	counts map[statusCountKey]int
	// errored are the keys of statuses in ERROR.
	errored map[key]bool
	// names are what the API calls the objects, for Health.Errors.
	names       map[key]string
	converged   int64         // store revision the last finished pass read
	convergedCh chan struct{} // closed and replaced when converged moves
	health      Health

	// Owned by the Run goroutine.
	host    *netlink.Handle
	hostIno uint64 // inode of the host namespace host is bound to
	// hostSock is a socket kept in the host namespace, for the gets of
	// one port's link or qdisc a pass makes per port (dataplane.Links).
	hostSock *dataplane.RouteSocket
	// hostDrift watches the host namespace; routers' namespaces are
	// watched by their routerNAT. Both send to drift.
	hostDrift *driftWatch
	drift     chan string
	wanted    atomic.Pointer[wantedOn] // what drift is, as of the running pass
	// wantedBuilt counts the wanted sets built (wantedOf), for tests.
	wantedBuilt atomic.Int64
	repair      <-chan time.Time // when the full pass that repairs drift is due
	resume      <-chan time.Time // when the full pass that continues a.round is due
	records     records
	// storeWake: the agent woke for a store change only, which may be
	// one it has nothing to do for (see idle); pending are the changes
	// idle read that the next pass must take.
	storeWake bool
	pending   *changes
	// woke is the revision the store's watch delivered last; fed: the
	// records were brought to it from the store's feed of changed
	// records (idle), so the pass that follows reads nothing more.
	woke int64
	fed  bool
	// inc is the desired state, kept between passes (incremental.go).
	inc incremental
	// tried is the spec each object was last programmed with, whether or
	// not that worked: an object that leaves the store between full passes
	// is deleted by what its spec names. good tells which of them worked;
	// incremental passes retry the others.
	tried map[key]any
	good  map[key]bool
	// unsettled are the objects an incremental pass looks at whatever
	// changed: those whose last programming failed and those whose
	// kernel state was forgotten (deleted, or found not nsnet's). The
	// others need work only when the desired state's update touched them
	// (incremental.touched): a pass after a change looks at what the
	// change reached and these, not at every object of the host.
	unsettled map[key]bool
	// triedOf indexes tried by kind: an incremental pass looks for the
	// objects to delete among the few kinds' whole and the changed
	// objects of the many's (pass.gone).
	triedOf map[store.Kind]map[string]bool
	// counted are the instances and ports the health counts managed
	// (desired, programmed without error), kept as passes change them
	// (managedLocked).
	counted map[store.Kind]map[string]bool
	// compared counts the objects passes asked whether they need work
	// (pass.needs): what a pass's walk costs, for tests.
	compared atomic.Int64
	// dscpTables are the DSCP marks each instance's namespace was last
	// given (qosmark), by instance: an incremental pass that programs
	// the same ones again does not read the table back.
	dscpTables map[string]map[string]uint8
	// instanceNS keeps the instance namespaces passes opened open for
	// the passes after them: a port plugged into an instance just made
	// needs no namespace switch for its handle.
	instanceNS *dataplane.InstanceNamespaces
	// round is the full pass under way (nil: none): a full pass yields to
	// store changes (see yielding), and the full passes that continue it
	// skip what it verified already.
	round *fullRound
	// roundTook and roundDirty are what the round's pieces so far took
	// and whether one left objects in error: OnPass is told of the round
	// whole, when it ends.
	roundTook  time.Duration
	roundDirty bool
	// newest is the newest revision the store's watch delivered, and
	// moved is signalled with it: a full pass in progress watches them to
	// yield (forward).
	newest atomic.Int64
	moved  chan struct{}
	// resweep: the last full pass left leftovers behind (a mount point
	// too young to tell from a creation under way, a deletion that
	// failed), so the passes that retry it are full ones.
	resweep bool
	// nat holds the open nft tables of routers, and the host's.
	nat natTables
	// metered is the routers whose nsnet_meter table holds labels.
	metered syncSet
	// hostNATApplied is the host NAT last programmed, hostNATDone whether
	// that worked, hostNATErr why not.
	hostNATApplied hostNATSpec
	hostNATDone    bool
	hostNATErr     string
	// firewall is the host's security group tables.
	firewall hostFirewall
	// servers are the networks' DHCP, DNS and metadata servers.
	servers closers[*networkServers]
	// dhcpCounts, dhcp6Counts and dnsCounts total what every network's
	// DHCP, DHCPv6 and DNS servers answered (see ServerCounts).
	dhcpCounts  dhcp.Counters
	dhcp6Counts dhcp6.Counters
	dnsCounts   nameserver.Counters
	// metadata is the metadata service; metaListeners its listeners in
	// router namespaces.
	metadata      *metadata.Service
	metaListeners closers[*routerListener]
	// metadata6 are its IPv6 listeners, by network id.
	metadata6 closers[*metadata6Listener]
	// adverts are the routers' IPv6 router advertisement servers.
	adverts closers[*routerAdverts]
	// pub hands passes to the publisher goroutine (report.go).
	pub publishing
}

// Health is the agent's state for the status endpoint.
type Health struct {
	LastPass         time.Time `json:"last_pass,omitzero"`
	LastPassDuration string    `json:"last_pass_duration"`
	LastPassFull     bool      `json:"last_pass_full"`
	LastFullPass     time.Time `json:"last_full_pass,omitzero"`
	// Revision is the newest store revision the kernel is programmed for.
	Revision   int64 `json:"revision"`
	Passes     int64 `json:"passes"`
	FullPasses int64 `json:"full_passes"`
	// Changes counts objects a pass had to create, change or delete;
	// a converged host adds none.
	Changes int64 `json:"changes"`
	// Managed counts the objects the kernel has, per kind.
	Managed map[string]int `json:"managed"`
	// Errors lists what is wrong right now: the objects in ERROR, and
	// the last pass when it failed as a whole.
	Errors []ObjectError `json:"errors"`
}

// ObjectError is an object in ERROR, named as the API names it.
type ObjectError struct {
	// Type is the resource: network, port, instance, router or
	// floatingip; "pass" for a pass that failed as a whole.
	Type string `json:"type"`
	ID   string `json:"id,omitempty"`
	// Name is the resource's name (a floating IP's address); "" when it
	// has none.
	Name   string `json:"name,omitempty"`
	Reason string `json:"reason"`
}

// keptNamespaces bounds the instance namespaces the agent keeps open
// between passes (two descriptors each): those of the instances being
// created and plugged now, not every instance of a large host.
const keptNamespaces = 64

// New checks cfg and prepares the host namespace; Run does the work.
func New(cfg Config) (*Agent, error) {
	if cfg.Store == nil {
		return nil, errors.New("agent: no store")
	}
	if cfg.ResyncInterval <= 0 {
		cfg.ResyncInterval = DefaultResyncInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.DHCPLeaseTime <= 0 {
		cfg.DHCPLeaseTime = dhcp.DefaultLeaseTime
	}
	if cfg.HostNetns != "" {
		if err := netns.Create(cfg.HostNetns); err != nil {
			return nil, fmt.Errorf("host namespace: %w", err)
		}
	}
	return &Agent{
		cfg:         cfg,
		log:         cfg.Logger,
		markerHost:  cmp.Or(cfg.HostNetns, dataplane.HostRoot),
		statuses:    map[key]status{},
		counts:      map[statusCountKey]int{},
		converged:   -1,
		convergedCh: make(chan struct{}),
		health:      Health{Managed: map[string]int{}, Errors: []ObjectError{}},
		tried:       map[key]any{},
		good:        map[key]bool{},
		dscpTables:  map[string]map[string]uint8{},
		instanceNS:  dataplane.NewInstanceNamespaces(keptNamespaces),
		nat:         natTables{m: map[string]*routerNAT{}},
		drift:       make(chan string, 1),
		moved:       make(chan struct{}, 1),
		metadata:    metadata.NewService(cfg.Logger.With("component", "metadata")),
		inc: incremental{prefix: cfg.NetnsPrefix, host: cmp.Or(cfg.HostNetns, dataplane.HostRoot),
			self: hostView{name: cfg.Host, vtep: cfg.VTEPAddress.Unmap(), mappings: cfg.InterfaceMappings}},
		pub: publishing{kick: make(chan struct{}, 1)},
	}, nil
}

// Run converges the host until ctx ends: a full pass at once, a pass after
// every store change (changes during a pass cause exactly one more), a
// full pass every ResyncInterval, and retries with backoff while objects
// are in error.
func (a *Agent) Run(ctx context.Context) error {
	if err := a.openHost(); err != nil {
		return err
	}
	defer func() { a.host.Close(); a.hostSock.Close(); a.hostDrift.Close() }()
	defer a.instanceNS.Close()
	defer a.nat.closeAll()
	defer a.firewall.close()
	defer a.servers.closeAll()
	defer a.metaListeners.closeAll()
	defer a.metadata6.closeAll()
	defer func() {
		for _, r := range a.adverts.takeAll() {
			r.leave()
		}
	}()

	if a.cfg.Publisher != nil {
		pctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); a.runPublisher(pctx) }()
		// Stopped before Run returns: nothing writes to the store after.
		defer func() { stop(); <-done }()
	}

	// Watch before the first pass, so that no change slips in between.
	changes := a.forward(a.cfg.Store.Watch(ctx))
	resync := time.NewTicker(a.cfg.ResyncInterval)
	defer resync.Stop()
	retry := time.NewTimer(0)
	retry.Stop()
	backoff := time.Duration(0)

	full := true
	for {
		start := time.Now()
		if !full && a.storeWake && a.idle(ctx) {
			// Nothing the agent programs changed (a heartbeat): no
			// pass, and the retries pending stay pending.
			if done := a.wait(ctx, changes, resync.C, retry.C, &full); done {
				return nil
			}
			continue
		}
		if full {
			a.resume = nil // this one continues the round, if any
		}
		clean, err := a.pass(ctx, full, &start)
		a.onPass(ctx, full, time.Since(start), clean, err)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			a.log.Error("pass failed", "full", full, "err", err)
			a.setPassError(err)
		default:
			// Everything after a full round's end; what changed
			// after a full pass that yielded (see finish).
			a.publish(full && a.round == nil)
		}
		if full && err != nil {
			a.round = nil // verified nothing: it starts again
		}
		if full && err == nil && a.round != nil {
			a.resume = time.After(resumeDelay)
		}
		if full && err == nil && a.round == nil {
			// A round ended: the next is due a resync interval from
			// now, not at once for a tick that came during this one.
			resync.Reset(a.cfg.ResyncInterval)
		}
		// A pass that failed as a whole is retried as it was; one that
		// left objects in error is retried incrementally, which
		// revisits exactly those, unless leftovers remain, which only
		// a full pass looks for. A full pass that yielded to a store
		// change is continued once the change is programmed (wait).
		full = full && err != nil || a.resweep
		if clean && err == nil {
			backoff = 0
			retry.Stop()
		} else {
			backoff = min(max(2*backoff, minRetry), a.cfg.ResyncInterval)
			retry.Reset(backoff)
		}
		if done := a.wait(ctx, changes, resync.C, retry.C, &full); done {
			return nil
		}
	}
}

// onPass tells Config.OnPass of a pass that ended; of a full pass that
// yielded, once its round has ended (see Config.OnPass).
func (a *Agent) onPass(ctx context.Context, full bool, took time.Duration, clean bool, err error) {
	if full {
		if err == nil && a.round != nil {
			a.roundTook += took
			a.roundDirty = a.roundDirty || !clean
			return
		}
		took, clean = took+a.roundTook, clean && !a.roundDirty
		a.roundTook, a.roundDirty = 0, false
	}
	if ctx.Err() == nil && a.cfg.OnPass != nil {
		a.cfg.OnPass(full, took, clean, err)
	}
}

// openHost (re)opens the handle on the host namespace when it is not bound
// to the namespace now called HostNetns: someone deleted it, or replaced it
// with another. A named host namespace that went missing is created again,
// and the full pass that follows programs it from scratch.
func (a *Agent) openHost() error {
	name := a.cfg.HostNetns
	if name != "" {
		if err := netns.Create(name); err != nil {
			return fmt.Errorf("host namespace: %w", err)
		}
	}
	ino, err := netns.Inode(name)
	if err != nil {
		return fmt.Errorf("host namespace: %w", err)
	}
	if a.host != nil && ino == a.hostIno {
		return nil
	}
	h, err := netns.NewHandle(name)
	if err != nil {
		return fmt.Errorf("open host namespace %q: %w", name, err)
	}
	sock, err := dataplane.OpenRouteSocket(name)
	if err != nil {
		h.Close()
		return fmt.Errorf("open host namespace %q: %w", name, err)
	}
	w, err := a.watchDrift(name, hostTables)
	if err != nil {
		h.Close()
		sock.Close()
		return err
	}
	if a.host != nil {
		a.log.Warn("host namespace was replaced; programming the new one", "netns", name)
		a.host.Close()
		a.hostSock.Close()
		a.hostDrift.Close()
	}
	a.host, a.hostIno, a.hostSock, a.hostDrift = h, ino, sock, w
	return nil
}

// wait blocks until the next pass is due and sets full when it must be a
// full one. It reports whether the agent is done. Deletions reported by the
// drift watches schedule a full pass driftSettle later; store changes are
// not held up meanwhile.
//
// A full pass that yielded (a.round) is continued resumeDelay after it
// (a.resume), store changes meanwhile programmed first.
func (a *Agent) wait(ctx context.Context, changes <-chan int64, resync, retry <-chan time.Time, full *bool) (done bool) {
	for {
		select {
		case <-ctx.Done():
			return true
		case rev, ok := <-changes:
			if ok && a.reportsOnly(rev) {
				continue
			}
			a.storeWake, a.woke = true, rev
			return !ok
		case <-resync:
			a.storeWake = false
			*full = true
			return false
		case what := <-a.drift:
			if a.repair == nil {
				a.log.Debug("kernel objects deleted; full pass scheduled", "first", what)
				a.repair = time.After(driftSettle)
			}
		case <-a.repair:
			a.repair = nil
			if a.round != nil {
				// What the round verified may be what was
				// deleted: it verifies everything again.
				a.round.restart()
			}
			a.storeWake = false
			*full = true
			return false
		case <-a.resume:
			a.resume = nil
			a.storeWake = false
			*full = true
			return false
		case <-retry:
			a.storeWake = false
			return false
		}
	}
}

// resumeDelay is how long after a full pass yielded the pass that
// continues it starts. Continued at once, it would run between every two
// changes of a busy store (a script creating ports one by one), each
// continuation reading the host's links and namespaces again before it
// yields: a pass more per change, for a tenth of a second's head start.
const resumeDelay = 100 * time.Millisecond

// driftSettle is how long the agent lets a burst of deletions settle
// before the full pass that repairs them: someone deleting a bridge by
// hand deletes its ports with it, and one pass repairs all.
const driftSettle = 200 * time.Millisecond

// kick reports a deletion seen by a drift watch; one pending is enough.
func (a *Agent) kick(what string) {
	select {
	case a.drift <- what:
	default:
	}
}

// Status is the kernel-side status of a resource: BUILD until a pass has
// looked at it, then ACTIVE, DOWN (unplugged or administratively down) or
// ERROR with a reason.
func (a *Agent) Status(kind store.Kind, id string) (status, reason string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.statusLocked(key{kind, id})
	return s.Status, s.Reason
}

// statusLocked is k's status as the API shows it. A network's includes
// its services (its qdhcp namespace and the servers there), which have no
// resource of their own: one that fails puts the network in ERROR.
func (a *Agent) statusLocked(k key) status {
	s, ok := a.statuses[k]
	if !ok {
		return status{Status: model.StatusBuild}
	}
	if s.Status != model.StatusError {
		// Its parts' (a network's VXLAN device and DHCP) are part of it.
		for _, part := range partsOf[k.kind] {
			if st := a.statuses[key{part, k.id}]; st.Status == model.StatusError {
				return st
			}
		}
	}
	return s
}

// WaitConverged returns once a pass that read a store snapshot at revision
// rev or later has finished, or when ctx ends.
func (a *Agent) WaitConverged(ctx context.Context, rev int64) error {
	for {
		a.mu.Lock()
		done, ch := a.converged >= rev, a.convergedCh
		a.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Health returns a copy of the agent's state.
func (a *Agent) Health() Health {
	a.mu.Lock()
	defer a.mu.Unlock()
	h := a.health
	h.Managed = make(map[string]int, len(a.health.Managed))
	for k, v := range a.health.Managed {
		h.Managed[k] = v
	}
	h.Errors = slices.Clone(a.health.Errors)
	return h
}

func (a *Agent) setPassError(err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.health.Errors = append(a.objectErrorsLocked(), ObjectError{Type: "pass", Reason: err.Error()})
}

// objectErrorsLocked lists the objects in ERROR, by type and name: those
// in errored, and those whose parts (a network's DHCP or VXLAN device) are.
func (a *Agent) objectErrorsLocked() []ObjectError {
	errs := []ObjectError{}
	added := map[key]bool{}
	add := func(k key) {
		if s := a.statusLocked(k); s.Status == model.StatusError && !added[k] {
			added[k] = true
			errs = append(errs, ObjectError{Type: strings.TrimSuffix(string(k.kind), "s"), ID: k.id, Name: a.names[k], Reason: s.Reason})
		}
	}
	for k := range a.errored {
		whole, part := wholeOf[k.kind]
		if !part {
			add(k)
			continue
		}
		// Shown as its whole's status.
		if _, ok := a.statuses[key{whole, k.id}]; ok {
			add(key{whole, k.id})
		}
	}
	slices.SortFunc(errs, func(x, y ObjectError) int {
		return cmp.Or(cmp.Compare(x.Type, y.Type), cmp.Compare(x.Name, y.Name), cmp.Compare(x.ID, y.ID))
	})
	return errs
}

// idle reads the store changes since the last pass and reports whether
// none of them is of a record the agent programs from, as when the only
// change is another host's heartbeat (canonical leaves heartbeats out):
// then the kernel is already programmed for the new revision, which it
// publishes without a pass. Every host rewrites its heartbeat every few
// seconds; a pass for each, on every host, would cost O(hosts × objects)
// for nothing.
//
// With a store that feeds the changed records with the revisions its watch
// delivers (store.RecordFeed: etcd), the records come from there, without
// a read: with every agent woken by every commit, a read per wake per
// agent is most of what etcd serves. A change this host has nothing to do
// with (another host's instance with no ports yet) is taken into the
// desired state and costs no pass either.
func (a *Agent) idle(ctx context.Context) bool {
	a.fed = false
	if a.inc.d == nil {
		return false
	}
	var ch *changes
	var err error
	if feed, ok := a.cfg.Store.(store.RecordFeed); ok {
		ch, a.fed, err = a.records.syncFeed(feed, a.woke)
	}
	if !a.fed && err == nil {
		ch, err = a.readChanges(ctx)
	}
	if err != nil {
		// The records start over, and the pass that follows reports it.
		a.inc.d, a.fed = nil, false
		return false
	}
	skipped := false
	if len(ch.kinds) > 0 {
		if !a.inc.foreign(&a.records, ch) {
			// Read already: the pass that follows finds them in
			// records, so keep them as its changes.
			a.pending = ch
			return false
		}
		a.inc.update(&a.records, ch, false, &a.mu)
		skipped = true
	}
	a.mu.Lock()
	if ch.rev > a.converged {
		a.converged = ch.rev
		a.health.Revision = ch.rev
		close(a.convergedCh)
		a.convergedCh = make(chan struct{})
	}
	a.mu.Unlock()
	if skipped {
		// The API servers wait for every alive host to have programmed
		// a write (hoststatus.View): this one has, without a pass.
		a.publish(false)
	}
	return true
}
