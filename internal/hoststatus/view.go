package hoststatus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/store"
)

// ViewConfig wires a View.
type ViewConfig struct {
	Store store.Store
	// Local is the host of the daemon the View serves in, whose agent
	// runs as long as the daemon does: waits wait for it even before it
	// published anything. "" with no agent in the process.
	Local string
	// DownTime is how old a registered host's heartbeat (model.Host, or
	// its beat in the store's Presence when newer) may be for the host
	// to be alive; zero means DefaultDownTime.
	DownTime time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// DefaultDownTime is Neutron's agent_down_time.
const DefaultDownTime = 75 * time.Second

// View mirrors the report records of every host and the host registry in
// memory, following the store's watch, so that a status costs a map
// lookup and a list of a thousand ports no store read per port. Create it
// with NewView, fill it with Load, keep it current with Run.
type View struct {
	cfg ViewConfig

	mu   sync.Mutex
	seen int64 // the revision the mirror reflects
	// changed is closed and replaced whenever the mirror moves.
	changed  chan struct{}
	passes   map[string]Pass
	statuses map[Object]map[string]State                      // by host
	counters map[string]map[string]model.PortFirewallCounters // by port, by host
	hosts    map[string]model.Host
	// beats are the hosts' beats in the store's Presence (nil without
	// one), read every presenceRefresh: a host's heartbeat is the newer
	// of its record's and its beat.
	beats map[string]time.Time
}

// presenceRefresh is how often the View reads the hosts' beats: a fifth
// of the down time, so that a host is seen dead (or alive again) within
// a fraction of it, and at most every 5s.
func (v *View) presenceRefresh() time.Duration {
	return min(max(v.cfg.DownTime/5, 100*time.Millisecond), 5*time.Second)
}

// readBeats reads the hosts' beats, when the store keeps them apart.
func (v *View) readBeats(ctx context.Context) error {
	p, ok := v.cfg.Store.(store.Presence)
	if !ok {
		return nil
	}
	beats, err := p.Beats(ctx)
	if err != nil {
		return err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.beats = beats
	// Waiters look again: a host may have died or come back.
	close(v.changed)
	v.changed = make(chan struct{})
	return nil
}

// NewView returns an empty View of cfg.Store.
func NewView(cfg ViewConfig) *View {
	if cfg.DownTime <= 0 {
		cfg.DownTime = DefaultDownTime
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &View{cfg: cfg, changed: make(chan struct{}), passes: map[string]Pass{},
		statuses: map[Object]map[string]State{}, counters: map[string]map[string]model.PortFirewallCounters{}, hosts: map[string]model.Host{}}
}

// mirrored are the kinds the View follows.
var mirrored = []store.Kind{store.HostPasses, store.ObjectStatuses, store.PortCounters, store.Hosts}

// Load reads every report record and host.
func (v *View) Load(ctx context.Context) error {
	passes := map[string]Pass{}
	statuses := map[Object]map[string]State{}
	counters := map[string]map[string]model.PortFirewallCounters{}
	hosts := map[string]model.Host{}
	var rev int64
	err := v.cfg.Store.View(ctx, func(r store.Reader) error {
		rev = r.Revision()
		for _, kind := range mirrored {
			if err := r.List(kind, func(id string, raw []byte) error {
				return apply(passes, statuses, counters, hosts, kind, id, raw)
			}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("read host reports: %w", err)
	}
	if err := v.readBeats(ctx); err != nil {
		return fmt.Errorf("read host reports: %w", err)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.passes, v.statuses, v.counters, v.hosts = passes, statuses, counters, hosts
	v.moveLocked(rev)
	return nil
}

// Run keeps the mirror current until ctx ends: on each revision the
// watch delivers, it reads the report records and hosts that changed
// (all of them when the store cannot tell which). A read that fails (the
// store unreachable) is tried again a second later, and at the next
// revision, which covers the missed one: the mirror never skips a change.
func (v *View) Run(ctx context.Context) error {
	changes := v.cfg.Store.Watch(ctx)
	// A full read first: anything committed between Load and the watch.
	retry := time.NewTimer(0)
	defer retry.Stop()
	var beats <-chan time.Time
	if _, ok := v.cfg.Store.(store.Presence); ok {
		t := time.NewTicker(v.presenceRefresh())
		defer t.Stop()
		beats = t.C
	}
	reload := true
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-beats:
			// Unreachable, the beats stay as they were, and grow old.
			_ = v.readBeats(ctx)
		case rev, ok := <-changes:
			if !ok {
				return nil
			}
			if err := v.follow(ctx, rev); err != nil && ctx.Err() == nil {
				reload = true
				retry.Reset(time.Second)
			}
		case <-retry.C:
			if !reload {
				continue
			}
			if err := v.Load(ctx); err != nil {
				retry.Reset(time.Second)
				continue
			}
			reload = false
		}
	}
}

// follow brings the mirror to rev, or later: to the revision of the
// snapshot it reads the changed records from.
//
// Why the changes come from the snapshot and not from rev: the snapshot
// is the store's current one, newer than rev when more was committed
// since (the watch coalesces, and the read comes after it). Applying the
// records changed up to rev as that snapshot has them would mix
// revisions: a host's Pass rewritten after rev, read at its newer
// revision, with its statuses that changed in the same later commit left
// unread — a waiter would see the pass and not its statuses. So the
// mirror takes every change up to the snapshot's revision, read in that
// snapshot, and moves to it.
func (v *View) follow(ctx context.Context, rev int64) error {
	v.mu.Lock()
	seen := v.seen
	v.mu.Unlock()
	if rev <= seen {
		return nil
	}
	log, ok := v.cfg.Store.(store.ChangeLog)
	if !ok {
		return v.Load(ctx)
	}
	type rec struct {
		kind store.Kind
		id   string
	}
	// Many records of one host and kind (a pass that changed many
	// statuses) are read in one range rather than one by one: on etcd,
	// each read is a round trip.
	type group struct {
		kind store.Kind
		host string
	}
	type item struct {
		id  string
		raw []byte
	}
	var (
		snap   int64
		known  bool
		single []rec
		raws   [][]byte
		ranged = map[group][]item{}
	)
	err := v.cfg.Store.View(ctx, func(r store.Reader) error {
		snap = r.Revision()
		// Asked after the snapshot is taken, the log knows every change
		// up to it (and perhaps later ones, skipped).
		var changes []store.Change
		changes, known = log.ChangedSince(seen)
		if !known {
			return nil
		}
		var todo []rec
		done := map[rec]bool{}
		many := map[group]int{}
		for _, c := range changes {
			r := rec{c.Kind, c.ID}
			if c.Rev > snap || !slices.Contains(mirrored, c.Kind) || done[r] {
				continue
			}
			done[r] = true
			todo = append(todo, r)
			if c.Kind == store.ObjectStatuses || c.Kind == store.PortCounters {
				many[group{c.Kind, hostOf(c.ID)}]++
			}
		}
		for _, t := range todo {
			if g := (group{t.kind, hostOf(t.id)}); many[g] > rangeOver {
				ranged[g] = nil
				continue
			}
			single = append(single, t)
		}
		raws = make([][]byte, len(single))
		for i, t := range single {
			var raw json.RawMessage
			err := r.Get(t.kind, t.id, &raw)
			if errors.Is(err, store.ErrNotFound) {
				continue // deleted: nil
			}
			if err != nil {
				return err
			}
			raws[i] = raw
		}
		for g := range ranged {
			from, to := hostRange(g.host)
			if err := r.Range(g.kind, from, to, func(id string, raw []byte) error {
				ranged[g] = append(ranged[g], item{id, slices.Clone(raw)})
				return nil
			}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("read host reports: %w", err)
	}
	if !known {
		return v.Load(ctx)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.seen != seen {
		return nil // a Load got further meanwhile
	}
	for i, t := range single {
		if err := apply(v.passes, v.statuses, v.counters, v.hosts, t.kind, t.id, raws[i]); err != nil {
			return err
		}
	}
	for g, items := range ranged {
		v.forgetLocked(g.kind, g.host)
		for _, it := range items {
			if err := apply(v.passes, v.statuses, v.counters, v.hosts, g.kind, it.id, it.raw); err != nil {
				return err
			}
		}
	}
	if snap > seen {
		v.moveLocked(snap)
	}
	return nil
}

// rangeOver is how many changed records of one host and kind are read
// by a range of all of the host's rather than one by one.
const rangeOver = 8

// forgetLocked drops host's records of kind from the mirror.
func (v *View) forgetLocked(kind store.Kind, host string) {
	switch kind {
	case store.ObjectStatuses:
		for o, byHost := range v.statuses {
			delete(byHost, host)
			if len(byHost) == 0 {
				delete(v.statuses, o)
			}
		}
	case store.PortCounters:
		for p, byHost := range v.counters {
			delete(byHost, host)
			if len(byHost) == 0 {
				delete(v.counters, p)
			}
		}
	}
}

// apply sets (raw non-nil) or removes record kind/id in the maps.
func apply(passes map[string]Pass, statuses map[Object]map[string]State, counters map[string]map[string]model.PortFirewallCounters,
	hosts map[string]model.Host, kind store.Kind, id string, raw []byte) error {
	decode := func(v any) error {
		if err := json.Unmarshal(raw, v); err != nil {
			return fmt.Errorf("decode %s/%s: %w", kind, id, err)
		}
		return nil
	}
	switch kind {
	case store.HostPasses:
		if raw == nil {
			delete(passes, id)
			return nil
		}
		var p Pass
		if err := decode(&p); err != nil {
			return err
		}
		passes[id] = p
	case store.Hosts:
		if raw == nil {
			delete(hosts, id)
			return nil
		}
		var h model.Host
		if err := decode(&h); err != nil {
			return err
		}
		hosts[id] = h
	case store.ObjectStatuses:
		host, rest, _ := strings.Cut(id, sep)
		kind, oid, _ := strings.Cut(rest, sep)
		o := Object{store.Kind(kind), oid}
		if raw == nil {
			delete(statuses[o], host)
			if len(statuses[o]) == 0 {
				delete(statuses, o)
			}
			return nil
		}
		var s ObjectStatus
		if err := decode(&s); err != nil {
			return err
		}
		if statuses[o] == nil {
			statuses[o] = map[string]State{}
		}
		statuses[o][host] = s.State
	case store.PortCounters:
		host, port, _ := strings.Cut(id, sep)
		if raw == nil {
			delete(counters[port], host)
			if len(counters[port]) == 0 {
				delete(counters, port)
			}
			return nil
		}
		var c PortCounters
		if err := decode(&c); err != nil {
			return err
		}
		if counters[port] == nil {
			counters[port] = map[string]model.PortFirewallCounters{}
		}
		counters[port][host] = c.Counters
	}
	return nil
}

func (v *View) moveLocked(rev int64) {
	v.seen = rev
	close(v.changed)
	v.changed = make(chan struct{})
}

// aliveLocked reports whether host is alive: registered with a fresh
// heartbeat, or, unregistered, the local host or one that reports while
// nothing is registered (a store without the registry).
func (v *View) aliveLocked(host string, now time.Time) (alive bool, until time.Time) {
	h, ok := v.hosts[host]
	if !ok {
		return host == v.cfg.Local || len(v.hosts) == 0, time.Time{}
	}
	beat, err := time.Parse(time.RFC3339Nano, h.Heartbeat)
	if b, ok := v.beats[host]; ok && (err != nil || b.After(beat)) {
		beat, err = b, nil
	}
	if err != nil {
		return host == v.cfg.Local, time.Time{}
	}
	until = beat.Add(v.cfg.DownTime)
	return host == v.cfg.Local || now.Before(until), until
}

// Status is kind/id's status as host, its owner, reports it: BUILD until
// the owner reported it. With no owner ("": the object has none, or it is
// present on several hosts, as a network is), it is what the hosts that
// report it say together — ERROR if one says so, else BUILD if one is
// still building, else ACTIVE if one is, else DOWN — the alive hosts'
// when any reports it, else the last word of the dead ones.
func (v *View) Status(kind store.Kind, id, host string) (status, reason string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	byHost := v.statuses[Object{kind, id}]
	if host != "" {
		if s, ok := byHost[host]; ok {
			return s.Status, s.Reason
		}
		if _, ok := v.hosts[host]; ok || len(v.hosts) == 0 && len(byHost) == 0 {
			return model.StatusBuild, ""
		}
		// An owner that never registered (a store from before the
		// registry): whoever reports it.
	}
	now := v.cfg.Now()
	var alive, dead []State
	for h, s := range byHost {
		if ok, _ := v.aliveLocked(h, now); ok {
			alive = append(alive, s)
		} else {
			dead = append(dead, s)
		}
	}
	if len(alive) == 0 {
		alive = dead
	}
	s := combine(alive)
	return s.Status, s.Reason
}

var statusRank = map[string]int{model.StatusError: 4, model.StatusBuild: 3, model.StatusActive: 2, model.StatusDown: 1}

// combine is what several hosts' states of one object say together (see
// Status); the reasons of states in error are joined, in order.
func combine(states []State) State {
	if len(states) == 0 {
		return State{Status: model.StatusBuild}
	}
	best := states[0]
	for _, s := range states[1:] {
		if statusRank[s.Status] > statusRank[best.Status] {
			best = s
		}
	}
	if best.Status == model.StatusError {
		var reasons []string
		for _, s := range states {
			if s.Status == model.StatusError {
				reasons = append(reasons, s.Reason)
			}
		}
		slices.Sort(reasons)
		best.Reason = strings.Join(slices.Compact(reasons), "; ")
	}
	return best
}

// FirewallCounters is port id's drop counters as the host filtering it
// reports them (an alive one first); nil when no host does.
func (v *View) FirewallCounters(portID string) *model.PortFirewallCounters {
	v.mu.Lock()
	defer v.mu.Unlock()
	byHost := v.counters[portID]
	if len(byHost) == 0 {
		return nil
	}
	now := v.cfg.Now()
	hosts := slices.Sorted(maps.Keys(byHost))
	for _, h := range hosts {
		if ok, _ := v.aliveLocked(h, now); ok {
			c := byHost[h]
			return &c
		}
	}
	c := byHost[hosts[0]]
	return &c
}

// LaggingError is a wait that ended before every alive host programmed
// the revision waited for: it names those that had not.
type LaggingError struct {
	Revision int64
	// Hosts are the hosts waited for, with the revision each had
	// programmed (0: none published yet).
	Hosts map[string]int64
	Err   error
}

func (e *LaggingError) Error() string {
	var parts []string
	for _, h := range slices.Sorted(maps.Keys(e.Hosts)) {
		parts = append(parts, fmt.Sprintf("%s (at revision %d)", cmpOr(h, `""`), e.Hosts[h]))
	}
	return fmt.Sprintf("revision %d not programmed by host %s: %v", e.Revision, strings.Join(parts, ", "), e.Err)
}

func (e *LaggingError) Unwrap() error { return e.Err }

func cmpOr(s, or string) string {
	if s == "" {
		return or
	}
	return s
}

// WaitConverged returns once every alive host has programmed revision
// rev: its Pass is at rev or later, or only report records changed
// between its Pass and rev. Dead hosts (heartbeat older than DownTime) are
// not waited for: a write must not hang on a host that is gone; a host
// dying while waited for ends its wait when its heartbeat expires. When
// ctx ends first, the error is a *LaggingError naming the hosts waited
// for.
func (v *View) WaitConverged(ctx context.Context, rev int64) error {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		v.mu.Lock()
		lagging, expiry := v.laggingLocked(rev)
		ch := v.changed
		v.mu.Unlock()
		if len(lagging) == 0 {
			return nil
		}
		var expired <-chan time.Time
		if !expiry.IsZero() {
			if timer == nil {
				timer = time.NewTimer(time.Until(expiry))
			} else {
				timer.Reset(time.Until(expiry))
			}
			expired = timer.C
		}
		select {
		case <-ch:
		case <-expired:
		case <-ctx.Done():
			return &LaggingError{Revision: rev, Hosts: lagging, Err: ctx.Err()}
		}
	}
}

// laggingLocked returns the alive hosts that have not programmed rev, with
// the revision each has, and the earliest time one of them stops being
// alive (zero: none will).
func (v *View) laggingLocked(rev int64) (map[string]int64, time.Time) {
	now := v.cfg.Now()
	candidates := map[string]bool{}
	for h := range v.hosts {
		candidates[h] = true
	}
	if len(v.hosts) == 0 {
		// No registry: the hosts that report.
		for h := range v.passes {
			candidates[h] = true
		}
	}
	if v.cfg.Local != "" || len(candidates) == 0 {
		candidates[v.cfg.Local] = true
	}
	var lagging map[string]int64
	var expiry time.Time
	feed, _ := v.cfg.Store.(store.ChangeFeed)
	for h := range candidates {
		alive, until := v.aliveLocked(h, now)
		if !alive {
			continue
		}
		at := v.passes[h].Revision
		if at >= rev {
			continue
		}
		if _, published := v.passes[h]; published && feed != nil && v.seen >= rev {
			// Nothing for the host to program since its pass?
			if changes, ok := feed.ChangesBetween(at, rev); ok && store.OnlyReports(changes) {
				continue
			}
		}
		if lagging == nil {
			lagging = map[string]int64{}
		}
		lagging[h] = at
		if !until.IsZero() && h != v.cfg.Local && (expiry.IsZero() || until.Before(expiry)) {
			expiry = until
		}
	}
	return lagging, expiry
}

// Revision is the revision the mirror reflects.
func (v *View) Revision() int64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.seen
}
