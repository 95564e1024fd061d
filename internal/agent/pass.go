package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nsnet/nsnet/internal/dataplane"
	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/netns"
	"github.com/nsnet/nsnet/internal/store"
)

// pass is one convergence pass over one store snapshot.
//
// A full pass reads the host's whole link table (one dump) and every
// namespace with the agent's prefix, deletes what nsnet owns there but the
// store does not want, and ensures every desired object, each Ensure
// reading the kernel before it writes. An incremental pass, run on store
// changes, ensures only the objects whose spec changed since they were last
// programmed or whose last attempt failed, and deletes the objects that
// left the store: its cost follows the size of the change, not of the host.
// Drift behind nsnet's back is repaired by the next full pass. A full pass
// yields to store changes that arrive while it runs, and is continued by
// full passes that skip what it verified (yield.go).
//
// Neither reads the whole store nor recomputes the whole desired state
// when it can help it: the records are kept decoded, only those the
// store's change log names are read again, and the desired state is
// updated for the records that changed (incremental.go). A full pass
// computes the desired state from every record, as the definition.
type pass struct {
	a     *Agent
	d     *desired
	links *dataplane.Links
	full  bool
	// round is the full round a full pass is part of (yield.go); cut:
	// the pass yielded to a store change before its end.
	round *fullRound
	cut   bool
	// sweep: the pass reads the host's links in one dump and looks for
	// leftovers (removeUnwanted).
	sweep bool
	// yield, in a full pass that may yield, ends when it must
	// (Agent.yielding).
	yield context.Context
	// kinds are the kinds whose ensure ran to its end in a full pass,
	// merged into its round.
	kinds []store.Kind

	mu      sync.Mutex
	results map[key]status // objects looked at in this pass
	tried   map[key]any    // merged into Agent.tried at the end
	good    map[key]bool
	// verified are the objects a full pass programmed without error,
	// merged into its round at the end.
	verified map[key]any
	forget   []key // objects whose kernel state is gone
	// dscpTables are the instances' DSCP tables this pass programmed
	// (nil: it tried and failed), merged into Agent.dscpTables.
	dscpTables map[string]map[string]uint8
	// hostNATRan: the host's table was programmed in this pass, so the
	// host-gateway networks, whose status follows it, are visited.
	hostNATRan bool
	// sweepFailed: something left over (see reconciler.discover) is
	// still there; only full passes look for leftovers, so the retry
	// must be one.
	sweepFailed bool
	changes     int
	errors      int
	// stages are where the pass spent its time (the "pass done" log).
	stages stageTimes
	// firewallDone delivers the outcome of the firewall begun with the
	// pass (firewallReconciler.begin).
	firewallDone chan error
}

// beginner is a reconciler whose kernel work needs nothing the
// reconcilers before it create: begin starts it as the pass's ensures
// start, and its ensure, in its place in the registry, waits for it and
// records its outcome.
type beginner interface {
	begin(p *pass)
}

// stageTimes are the durations of a pass's stages in order: reading the
// store, the desired state's update, the deletions, each reconciler's
// ensure, the publication. They go into the "pass done" debug log, so
// that an operator sees where a slow pass went (a firewall commit, a
// namespace's veths, the statuses) without a profiler.
type stageTimes struct {
	last  time.Time
	names []string
	took  []time.Duration
}

// mark ends the stage called name, begun at the last mark.
func (s *stageTimes) mark(name string) {
	now := time.Now()
	s.names = append(s.names, name)
	s.took = append(s.took, now.Sub(s.last))
	s.last = now
}

// LogValue lists the stages that took a measurable time (the reconcilers
// with nothing to do take none).
func (s *stageTimes) LogValue() slog.Value {
	var attrs []slog.Attr
	for i, name := range s.names {
		if s.took[i] >= stageLogMin {
			attrs = append(attrs, slog.Duration(name, s.took[i]))
		}
	}
	return slog.GroupValue(attrs...)
}

// stageLogMin is the shortest stage the log shows.
const stageLogMin = 50 * time.Microsecond

// readChanges brings the records to the store's revision by a read: the
// records its change log names, or all of them.
func (a *Agent) readChanges(ctx context.Context) (ch *changes, err error) {
	log, _ := a.cfg.Store.(store.ChangeLog)
	err = a.cfg.Store.View(ctx, func(r store.Reader) error {
		var err error
		ch, err = a.records.sync(r, log)
		return err
	})
	return ch, err
}

// pass runs one pass and reports whether every object ended without error.
// An error means the pass as a whole failed and converged nothing. A full
// pass may run an incremental one first (yield.go), which it reports to
// OnPass itself; *start, when the pass began, then moves to its end.
func (a *Agent) pass(ctx context.Context, full bool, start *time.Time) (clean bool, err error) {
	stages := stageTimes{last: *start}
	if full && fullPassReads != nil {
		fullPassReads(a)
	}
	var ch *changes
	if !full && a.fed && a.pending != nil {
		// idle brought the records to the revision the watch delivered
		// from the store's feed: the pass programs that one, and a
		// newer revision wakes the agent again.
		ch = a.pending
	} else {
		ch, err = a.readChanges(ctx)
		if err != nil {
			a.inc.d, a.pending, a.fed = nil, nil, false // the records start over: so does the desired state
			return false, fmt.Errorf("read store: %w", err)
		}
		if a.pending != nil {
			ch.follow(a.pending)
		}
	}
	a.pending, a.fed = nil, false
	stages.mark("read")
	if full && a.round == nil {
		a.round = newRound()
	}
	if full && a.yields() && a.unprogrammed(ch.rev) {
		// The snapshot holds changes no pass has programmed (a port
		// created just before the read): no later change comes for
		// the full pass to yield to, and the port would wait for the
		// pass to reach its instance, seconds on a big host. An
		// incremental pass on the same snapshot programs them first,
		// as it would have had the change come a moment later.
		clean, err := a.run(ctx, a.inc.update(&a.records, ch, false, &a.mu), false, *start, stages)
		if ctx.Err() == nil && a.cfg.OnPass != nil {
			a.cfg.OnPass(false, time.Since(*start), clean, err)
		}
		if err != nil {
			return false, err
		}
		a.publish(false)
		// The full pass reads nothing more: the same snapshot.
		ch = newChanges(ch.rev)
		*start = time.Now()
		stages = stageTimes{last: *start}
	}
	// A full round computes the desired state from every record once, at
	// its start; the passes that continue it update it as incremental
	// ones do.
	d := a.inc.update(&a.records, ch, full && a.round.passes == 0, &a.mu)
	return a.run(ctx, d, full, *start, stages)
}

// run runs the pass that began at start (its stages so far: the read) on
// desired state d.
func (a *Agent) run(ctx context.Context, d *desired, full bool, start time.Time, stages stageTimes) (clean bool, err error) {
	// Before any deletion of this pass: what it deletes is not drift.
	a.setWanted(d)
	p := &pass{
		a:        a,
		d:        d,
		full:     full,
		results:  map[key]status{},
		tried:    map[key]any{},
		good:     map[key]bool{},
		verified: map[key]any{},
	}
	stages.mark("desired")
	if full {
		p.round = a.round
	}
	// A round reads the kernel whole (the host's links, the namespaces
	// with their markers, for leftovers) in its first pass, or while a
	// leftover it found is still there; the passes that continue it look
	// at the objects they verify, as incremental ones do: on a busy
	// store they run between changes, and each yields soon.
	p.sweep = full && (a.round.passes == 0 || a.resweep)
	if p.sweep {
		// Namespaces deleted behind the agent's back stay alive while
		// it keeps them open: they go now.
		a.instanceNS.Prune()
		if err := a.openHost(); err != nil {
			return false, err
		}
		if p.links, err = dataplane.DumpLinksVia(a.host, a.cfg.HostNetns, a.hostSock); err != nil {
			return false, fmt.Errorf("read host links: %w", err)
		}
	} else {
		p.links = dataplane.NewLinks(a.host)
		p.links.SetSocket(a.cfg.HostNetns, a.hostSock)
	}

	p.stages = stages
	p.removeUnwanted()
	p.stages.mark("delete")
	ectx := ctx
	if full && a.yields() {
		// It yields to store changes (yield.go), unless the round has
		// gone on for a resync interval already: then it ends. The
		// first round does not: until it ends no object is known
		// programmed, and the incremental pass it would yield to
		// would program them all.
		yctx, stop := a.yielding(ctx, d.rev)
		defer stop()
		ectx, p.yield = yctx, yctx
	} else if !full {
		// An incremental pass runs every kind to its end and keeps
		// p.full: what works beside the ports (the firewall) starts
		// now. A full pass, which may yield before a kind and sets
		// p.full kind by kind, runs each in its place.
		for _, r := range reconcilers {
			if b, ok := r.(beginner); ok {
				b.begin(p)
			}
		}
	}
	if full && fullPassStarted != nil {
		fullPassStarted(a, ectx)
	}
	for _, r := range reconcilers {
		if ectx.Err() != nil {
			break
		}
		if full {
			// Whatever a kind checks whole in a full pass (a
			// table of its own, a sweep) it checks once a round:
			// the passes that continue it verify that kind's
			// objects the round has not.
			p.full = !p.round.kinds[r.kind()]
		}
		r.ensure(ectx, p)
		p.stages.mark(string(r.kind()))
		if full && (ectx.Err() == nil || !stopsWithin[r.kind()]) {
			// It ran to its end: a kind that ignores the
			// context finishes whatever it started.
			p.kinds = append(p.kinds, r.kind())
		}
	}
	p.full = full
	if err := ctx.Err(); err != nil {
		return false, err
	}
	p.cut = ectx.Err() != nil
	a.finish(p, time.Since(start))
	return p.errors == 0, nil
}

// needs reports whether object k must be (re)programmed with spec: in a
// full pass, unless its round verified it with spec already.
func (p *pass) needs(k key, spec any) bool {
	p.a.compared.Add(1)
	return p.round != nil && !p.round.done(k, spec) || !p.a.good[k] || !reconcilerOf[k.kind].same(p.a.tried[k], spec)
}

// candidates lists the objects of kind that may need work in this pass,
// by id: in an incremental pass after updates record by record, those
// the updates touched (incremental.touched: every object whose spec they
// changed, put or took away) and the unsettled ones (Agent.unsettled);
// the others were programmed with the spec they have. every: the pass
// must look at every object of the kind, as a full pass does, or any pass
// after the desired state was computed afresh (incremental.all), when
// any spec may have changed.
func (p *pass) candidates(kind store.Kind) (ids map[string]bool, every bool) {
	if p.round != nil || p.a.inc.all {
		return nil, true
	}
	ids = map[string]bool{}
	for k := range p.a.inc.touched {
		if k.kind == kind {
			ids[k.id] = true
		}
	}
	for k := range p.a.unsettled {
		if k.kind == kind {
			ids[k.id] = true
		}
	}
	return ids, false
}

// yielded reports whether the full pass yields to a store change: the
// objects it has not started on are left to the pass that continues it.
func (p *pass) yielded() bool {
	return p.yield != nil && p.yield.Err() != nil
}

// isGood reports whether k's kernel state is in place, as of this pass.
func (p *pass) isGood(k key) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if ok, seen := p.good[k]; seen {
		return ok
	}
	return p.a.good[k]
}

// record notes the outcome of programming k with spec.
func (p *pass) record(k key, spec any, changed bool, err error, ok status) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.tried[k] = spec
	p.good[k] = err == nil
	if p.round != nil && err == nil {
		p.verified[k] = spec
	}
	if changed {
		p.changes++
		p.a.log.Info("programmed", "object", k.String())
	}
	if err != nil {
		p.errors++
		p.results[k] = status{model.StatusError, err.Error()}
		return
	}
	p.results[k] = ok
}

// recordDelete notes the outcome of deleting d's kernel state.
func (p *pass) recordDelete(d deletion, deleted bool, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	k, what := d.k, d.what
	switch {
	case errors.Is(err, dataplane.ErrNotOwned):
		// Someone else's object took the name: nsnet has nothing
		// there any more to delete.
		p.a.log.Warn("not deleting what is not nsnet's", "object", k.String(), "err", err)
		p.forget = append(p.forget, k)
	case err != nil:
		// Stays in tried, so the next pass tries again; a leftover
		// is found again by the next full pass.
		p.errors++
		p.sweepFailed = p.sweepFailed || d.leftover
		p.a.log.Error("delete failed", "object", k.String(), "kernel", what, "err", err)
	default:
		if deleted {
			p.changes++
			p.a.log.Info("deleted", "object", k.String(), "kernel", what)
		}
		p.forget = append(p.forget, k)
	}
}

// deletion is the removal of one object's kernel state.
type deletion struct {
	k    key
	what string // the kernel object: "link tap0123", "namespace red"
	run  func() (deleted bool, err error)
	// leftover: found in the kernel by a full pass (reconciler.discover),
	// not remembered in tried.
	leftover bool
}

// removeUnwanted deletes the kernel state the store no longer wants, kind
// by kind in the registry's reverse order (see reconcilers), each kind's
// deletions side by side.
func (p *pass) removeUnwanted() {
	gone := p.gone()
	var f *found
	if p.sweep {
		f = p.findOwned()
	}
	seen := map[string]bool{}
	for _, r := range slices.Backward(reconcilers) {
		dels := gone[r.kind()]
		if f != nil {
			for _, d := range r.discover(p, f) {
				d.leftover = true
				dels = append(dels, d)
			}
		}
		var jobs []func()
		for _, d := range dels {
			if seen[d.what] {
				continue
			}
			seen[d.what] = true
			jobs = append(jobs, func() {
				deleted, err := d.run()
				p.recordDelete(d, deleted, err)
			})
		}
		parallel(deleteWorkers, jobs)
	}
}

// gone lists, by kind, the deletions of objects programmed before that the
// store no longer wants, or wants under another name.
//
// An object leaves the store, or changes its name, only by a change of its
// spec: an incremental pass looks at the instances and ports among its
// candidates, and at every programmed object of the other kinds, which
// are few (networks, routers, their services).
func (p *pass) gone() map[store.Kind][]deletion {
	dels := map[store.Kind][]deletion{}
	look := func(k key) {
		spec, ok := p.a.tried[k]
		if !ok {
			return
		}
		p.a.compared.Add(1)
		if d, ok := reconcilerOf[k.kind].gone(p, k.id, spec); ok {
			dels[k.kind] = append(dels[k.kind], d)
		}
	}
	for kind, ids := range p.a.triedOf {
		if perChange[kind] {
			if changed, every := p.candidates(kind); !every {
				ids = changed
			}
		}
		for id := range ids {
			look(key{kind, id})
		}
	}
	return dels
}

// perChange are the kinds of which a host has many objects, whose
// candidates an incremental pass looks at rather than every one.
var perChange = map[store.Kind]bool{store.Ports: true, store.Instances: true}

func (p *pass) linkDeletion(k key, name, alias string) deletion {
	return deletion{k: k, what: "link " + name, run: func() (bool, error) { return dataplane.DeleteLink(p.links, name, alias) }}
}

func (p *pass) namespaceDeletion(k key, name, marker string) deletion {
	return deletion{k: k, what: "namespace " + name, run: func() (bool, error) {
		// A namespace kept open would outlive its deletion.
		p.a.instanceNS.Forget(name)
		err := dataplane.DeleteInstanceNetns(name, marker, p.links)
		return err == nil, err
	}}
}

// markedNamespaces lists the namespaces with the agent's prefix, but those
// named in wanted, with their markers, for the reconcilers to recognise
// their leftovers by. It removes the mount points of namespaces whose
// creation died before it mounted them.
func (p *pass) markedNamespaces(wanted map[string]bool) []markedNetns {
	names, err := netns.List()
	if err != nil {
		p.sweepFailedOn()
		p.a.log.Error("list namespaces", "err", err)
		return nil
	}
	var marked []markedNetns
	for _, name := range names {
		if wanted[name] || !strings.HasPrefix(name, p.a.cfg.NetnsPrefix) {
			continue
		}
		if !netns.Exists(name) {
			// The mount point of a creation that died (SIGKILL) before
			// it mounted the namespace.
			if removed, err := netns.RemoveStale(name); err != nil {
				// Maybe a creation under way; if not, a retry
				// removes it once it is old enough to tell.
				p.a.log.Debug("mount point without a namespace", "path", netns.Path(name), "err", err)
				p.sweepFailedOn()
			} else if removed {
				p.a.log.Info("removed the mount point of an unfinished namespace", "path", netns.Path(name))
			}
			continue
		}
		marker, err := dataplane.ReadMarker(name)
		if err != nil {
			continue // vanished, or not something nsnet could have made
		}
		marked = append(marked, markedNetns{name: name, marker: marker})
	}
	return marked
}

// namespaceLeftovers are the deletions of the namespaces in f whose marker
// parse recognises as this agent's (del makes each).
func (p *pass) namespaceLeftovers(f *found, parse func(string) (id, host string, ok bool), del func(id string, ns markedNetns) deletion) []deletion {
	var dels []deletion
	for _, ns := range f.namespaces {
		if id, host, ok := parse(ns.marker); ok && host == p.a.markerHost {
			dels = append(dels, del(id, ns))
		}
	}
	return dels
}

// sweepFailedOn notes a leftover the sweep could not look at or remove.
func (p *pass) sweepFailedOn() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.errors++
	p.sweepFailed = true
}

// parallel runs jobs, at most n at a time, and waits for them.
func parallel(n int, jobs []func()) {
	if len(jobs) == 1 {
		jobs[0]()
		return
	}
	sem := make(chan struct{}, n)
	var wg sync.WaitGroup
	for _, job := range jobs {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			job()
		}()
	}
	wg.Wait()
}

// finish publishes a pass: what was programmed, statuses, health, and the
// revision the kernel now reflects.
func (a *Agent) finish(p *pass, took time.Duration) {
	for k, spec := range p.tried {
		a.tried[k] = spec
		a.good[k] = p.good[k]
		a.unsettle(k, !p.good[k])
		if a.triedOf == nil {
			a.triedOf = map[store.Kind]map[string]bool{}
		}
		if a.triedOf[k.kind] == nil {
			a.triedOf[k.kind] = map[string]bool{}
		}
		a.triedOf[k.kind][k.id] = true
	}
	for id, marks := range p.dscpTables {
		if marks == nil {
			delete(a.dscpTables, id)
			continue
		}
		a.dscpTables[id] = marks
	}
	for _, k := range p.forget {
		if _, still := p.tried[k]; !still {
			delete(a.tried, k)
			delete(a.good, k)
			delete(a.triedOf[k.kind], k.id)
			a.unsettle(k, true)
			if k.kind == store.Instances {
				delete(a.dscpTables, k.id)
			}
		}
	}
	// A forgotten object the store no longer wants is settled for good.
	for k := range a.unsettled {
		if _, tried := a.tried[k]; !tried {
			if r, ok := reconcilerOf[k.kind]; !ok || !r.wanted(p.d)(k.id) {
				delete(a.unsettled, k)
			}
		}
	}
	if p.full {
		for _, k := range p.kinds {
			p.round.kinds[k] = true
		}
		if p.sweep {
			a.resweep = p.sweepFailed
		}
		p.round.passes++
		for k, spec := range p.verified {
			p.round.verified[k] = spec
		}
		if !p.cut {
			a.round = nil // the round is complete
		}
	}

	a.mu.Lock()
	defer a.mu.Unlock()
	var want map[key]status
	if verifyStatuses != nil {
		want = a.statusesOf(p)
	}
	touched, all := a.inc.touched, a.inc.all
	a.inc.touched, a.inc.all = nil, false
	// A full pass that yielded looked at part of the host: its statuses
	// are updated, and published, as an incremental pass's are, unless
	// the desired state was computed afresh.
	if (!p.full || p.cut) && !all {
		a.updateStatusesLocked(p, touched)
		// The keys updateStatusesLocked looked at: the publisher's
		// change.
		for k := range touched {
			a.pub.markLocked(k)
		}
		for k := range p.results {
			a.pub.markLocked(k)
		}
	} else {
		a.statuses, a.errored = a.statusesOf(p), nil
		for k, st := range a.statuses {
			a.markErrorLocked(k, st)
		}
		a.counts = a.countStatusesLocked()
		a.pub.all, a.pub.dirty = true, nil
	}
	if verifyStatuses != nil {
		verifyStatuses(a.statuses, want)
	}
	if verifyCounts != nil {
		verifyCounts(a.counts, a.countStatusesLocked())
	}
	managed := a.managedLocked(p, touched, p.full || all)
	if verifyManaged != nil {
		verifyManaged(managed, a.managedFromScratchLocked(p.d))
	}
	a.names = p.d.names

	now := time.Now()
	h := &a.health
	h.LastPass, h.LastPassDuration, h.LastPassFull = now, took.String(), p.full
	if p.full && !p.cut {
		h.LastFullPass = now
		h.FullPasses++
	}
	h.Passes++
	h.Changes += int64(p.changes)
	h.Managed = managed
	h.Errors = a.objectErrorsLocked()

	if !p.cut {
		// A full pass that yielded may have left a change of its
		// revision unprogrammed: the pass that programs it moves the
		// revision the kernel is programmed for.
		h.Revision = p.d.rev
		a.converged = p.d.rev
		close(a.convergedCh)
		a.convergedCh = make(chan struct{})
	}
	p.stages.mark("statuses")
	if p.full {
		a.log.Debug("pass done", "full", true, "revision", p.d.rev, "took", took, "changes", p.changes, "errors", p.errors,
			"yielded", p.cut, "round_passes", p.round.passes, "round_verified", len(p.round.verified), "stages", &p.stages)
		return
	}
	a.log.Debug("pass done", "full", false, "revision", p.d.rev, "took", took, "changes", p.changes, "errors", p.errors, "stages", &p.stages)
}

// unsettle marks k unsettled (on) or settled (see Agent.unsettled).
func (a *Agent) unsettle(k key, on bool) {
	if !on {
		delete(a.unsettled, k)
		return
	}
	if a.unsettled == nil {
		a.unsettled = map[key]bool{}
	}
	a.unsettled[k] = true
}

// verifyStatuses, when set (by tests), is given the statuses a pass
// updated in place and those statusesOf computes from scratch, which must
// be equal.
var verifyStatuses func(got, want map[key]status)

// statusesOf computes every status after pass p: the objects p looked at
// get their result, the other desired ones keep theirs (BUILD when they
// have none yet), the fixed ones theirs.
func (a *Agent) statusesOf(p *pass) map[key]status {
	statuses := make(map[key]status, len(a.statuses))
	keep := func(k key) {
		st, ok := p.results[k]
		if !ok {
			st, ok = a.statuses[k]
		}
		if !ok {
			st = status{Status: model.StatusBuild}
		}
		if prev := a.statuses[k]; st.Status == model.StatusError && prev != st && verifyStatuses == nil {
			a.log.Warn("object in error", "object", k.String(), "reason", st.Reason)
		}
		statuses[k] = st
	}
	for _, r := range reconcilers {
		kind := r.kind()
		r.objects(p.d, func(id string) { keep(key{kind, id}) })
	}
	for k, st := range p.d.fixed {
		statuses[k] = st
	}
	return statuses
}

// updateStatusesLocked updates the statuses in place after an incremental
// pass, as statusesOf would compute them: only the keys the desired
// state's update touched and those p looked at can have changed.
func (a *Agent) updateStatusesLocked(p *pass, touched map[key]bool) {
	wanted := map[store.Kind]func(string) bool{}
	desired := func(k key) bool {
		r, ok := reconcilerOf[k.kind]
		if !ok {
			return false
		}
		w, ok := wanted[k.kind]
		if !ok {
			w = r.wanted(p.d)
			wanted[k.kind] = w
		}
		return w(k.id)
	}
	update := func(k key) {
		prev, had := a.statuses[k]
		if st, ok := p.d.fixed[k]; ok {
			a.setStatusLocked(k, &st)
		} else if desired(k) {
			st, ok := p.results[k]
			if !ok {
				st, ok = prev, had
			}
			if !ok {
				st = status{Status: model.StatusBuild}
			}
			if st.Status == model.StatusError && prev != st && verifyStatuses == nil {
				a.log.Warn("object in error", "object", k.String(), "reason", st.Reason)
			}
			a.setStatusLocked(k, &st)
		} else {
			a.setStatusLocked(k, nil)
		}
		a.markErrorLocked(k, a.statuses[k])
	}
	for k := range touched {
		update(k)
	}
	for k := range p.results {
		if !touched[k] {
			update(k)
		}
	}
}

// markErrorLocked keeps a.errored, the keys in ERROR, up to date with k's
// status st.
func (a *Agent) markErrorLocked(k key, st status) {
	if st.Status == model.StatusError {
		if a.errored == nil {
			a.errored = map[key]bool{}
		}
		a.errored[k] = true
	} else {
		delete(a.errored, k)
	}
}

// verifyCounts, when set (by tests), is given the status counts a pass
// kept in place and those counted from scratch, which must be equal.
var verifyCounts func(got, want map[statusCountKey]int)

// verifyManaged, when set (by tests), is given the objects a pass counted
// managed, kept count of, and those counted from scratch, which must be
// equal.
var verifyManaged func(got, want map[string]int)

// managedFromScratchLocked is what managedLocked counts, from every
// desired object.
func (a *Agent) managedFromScratchLocked(d *desired) map[string]int {
	managed := map[string]int{}
	for _, r := range reconcilers {
		if n := a.managedOf(r, d); n > 0 {
			managed[string(r.kind())] += n
		}
	}
	return managed
}

// managedOf counts r's objects the kernel has, from every desired one.
func (a *Agent) managedOf(r reconciler, d *desired) int {
	if c, ok := r.(countsManaged); ok {
		return c.managed(a, d)
	}
	n := 0
	r.objects(d, func(id string) {
		if a.good[key{r.kind(), id}] {
			n++
		}
	})
	return n
}

// managedLocked counts the objects the kernel has, per kind, after pass p:
// the desired ones programmed without error, and the floating IPs their
// routers translate. The instances and ports are counted once (every: a
// full pass, or one after a recomputation) and then kept counted
// (Agent.counted) as passes change them: an object becomes desired or
// stops being so only by an update that touched it, and is programmed
// well or not only by a pass that tried or forgot it.
func (a *Agent) managedLocked(p *pass, touched map[key]bool, every bool) map[string]int {
	d := p.d
	managed := map[string]int{}
	for _, r := range reconcilers {
		kind := r.kind()
		if _, ok := r.(countsManaged); ok || !perChange[kind] {
			if n := a.managedOf(r, d); n > 0 {
				managed[string(kind)] += n
			}
			continue
		}
		if a.counted == nil {
			a.counted = map[store.Kind]map[string]bool{}
		}
		counted := a.counted[kind]
		if every || counted == nil {
			counted = map[string]bool{}
			r.objects(d, func(id string) {
				if a.good[key{kind, id}] {
					counted[id] = true
				}
			})
			a.counted[kind] = counted
		} else {
			wanted := r.wanted(d)
			recount := func(k key) {
				if k.kind != kind {
					return
				}
				if a.good[k] && wanted(k.id) {
					counted[k.id] = true
				} else {
					delete(counted, k.id)
				}
			}
			for k := range touched {
				recount(k)
			}
			for k := range p.tried {
				recount(k)
			}
			for _, k := range p.forget {
				recount(k)
			}
		}
		if len(counted) > 0 {
			managed[string(kind)] += len(counted)
		}
	}
	return managed
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
