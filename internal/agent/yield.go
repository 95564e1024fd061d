package agent

import (
	"context"
	"time"

	"github.com/nsnet/nsnet/internal/store"
)

// A full pass re-reads the kernel state of every object of the host: at a
// thousand ports, seconds. Store changes that arrive meanwhile used to wait
// for its end, and a write waited on by a client (a port create, until
// ACTIVE) took seconds instead of the tenth of a second of an incremental
// pass. So a full pass yields: when a store change arrives that is not the
// hosts' reports alone, it starts nothing more (the objects being
// programmed finish), ends, and the agent runs the incremental pass that
// programs the change; resumeDelay later (store changes first) it
// continues the full pass with another, which skips the objects the round
// verified already with the same spec. The
// round ends with a full pass that ran to its end; only that counts as a
// full pass in the health (FullPasses, LastFullPass).
//
// A full pass whose store read holds changes no pass programmed yet (a
// port created just before it read) has no later change to yield to: it
// runs an incremental pass on its snapshot first (see unprogrammed), then
// goes on as a full pass on the same snapshot.
//
// Drift repair keeps its guarantee: an object verified by the round is as
// it was at its verification, as with one long full pass; a deletion the
// drift watches see starts the round's verification over; and a round
// that has lasted ResyncInterval stops yielding, so that a busy store
// cannot keep it from ending. The agent's first round (at its start)
// does not yield: nothing is known programmed before it ends.

// fullRound is the full pass under way, over the passes that continue it.
type fullRound struct {
	// start is when the round began; a restart keeps it.
	start time.Time
	// verified is the spec each object was verified with in this round;
	// kinds are those whose whole state (a table of their own, a sweep)
	// it verified.
	verified map[key]any
	kinds    map[store.Kind]bool
	// passes counts the round's passes (the last one included) since it
	// began or restarted.
	passes int
}

func newRound() *fullRound {
	return &fullRound{start: time.Now(), verified: map[key]any{}, kinds: map[store.Kind]bool{}}
}

// restart forgets what the round verified: drift may have undone it (or
// replaced the host namespace). Its next pass is as a first one: it reads
// the kernel whole.
func (r *fullRound) restart() {
	r.verified, r.kinds, r.passes = map[key]any{}, map[store.Kind]bool{}, 0
}

// done reports whether the round verified k with spec.
func (r *fullRound) done(k key, spec any) bool {
	v, ok := r.verified[k]
	return ok && reconcilerOf[k.kind].same(v, spec)
}

// yields reports whether the full passes of the round under way yield to
// store changes: not in the agent's first round, nor once the round has
// lasted a resync interval.
func (a *Agent) yields() bool {
	return a.round != nil && a.health.FullPasses > 0 && time.Since(a.round.start) < a.cfg.ResyncInterval
}

// unprogrammed reports whether the store at revision rev may hold a change
// the kernel is not programmed for: one after the revision the last
// finished pass read that is not the hosts' reports only.
func (a *Agent) unprogrammed(rev int64) bool {
	a.mu.Lock()
	converged := a.converged
	a.mu.Unlock()
	return rev > converged && a.programsAny(converged, rev)
}

// forward relays the store's watch to the Run loop, coalescing as the
// stores do, and keeps the newest revision where a full pass in progress
// looks for a change to yield to (a.newest, signalled on a.moved).
func (a *Agent) forward(in <-chan int64) <-chan int64 {
	out := make(chan int64, 1)
	go func() {
		defer close(out)
		for rev := range in {
			a.newest.Store(rev)
			select {
			case a.moved <- struct{}{}:
			default:
			}
			// Replace an unread older revision with the newer one.
			select {
			case <-out:
			default:
			}
			out <- rev
		}
	}()
	return out
}

// yielding returns the context the reconcilers of a full pass that read
// revision rev run with: it ends when a store change after rev arrives
// that is not reports only, or with ctx. stop ends its watch.
func (a *Agent) yielding(ctx context.Context, rev int64) (yctx context.Context, stop func()) {
	yctx, cancel := context.WithCancel(ctx)
	quit := make(chan struct{})
	go func() {
		for {
			if newest := a.newest.Load(); newest > rev && a.programsAny(rev, newest) {
				cancel()
				return
			}
			select {
			case <-a.moved:
			case <-quit:
				return
			case <-yctx.Done():
				return
			}
		}
	}()
	return yctx, func() { close(quit); cancel() }
}

// programsAny reports whether the changes between revisions from and to
// may be something for the agent to program: anything but the hosts'
// reports, or changes the store cannot list.
func (a *Agent) programsAny(from, to int64) bool {
	feed, ok := a.cfg.Store.(store.ChangeFeed)
	if !ok {
		return true
	}
	changes, ok := feed.ChangesBetween(from, to)
	return !ok || !store.OnlyReports(changes)
}

// stopsWithin are the kinds whose ensure starts nothing more once its
// context ends (its objects' jobs check it, an instance's ports too): one
// that yielded has not verified all its objects. The others' ensure runs
// to its end once begun.
var stopsWithin = map[store.Kind]bool{store.Instances: true, store.Routers: true, dhcpKind: true}

// fullPassStarted, when set (by tests), is called by every full pass before
// it ensures anything, with its agent and the context that ends when the
// pass yields.
var fullPassStarted func(a *Agent, ctx context.Context)

// fullPassReads, when set (by tests), is called by every full pass before
// it reads the store, with its agent.
var fullPassReads func(a *Agent)
