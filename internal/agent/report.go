package agent

import (
	"context"
	"time"

	"github.com/nsnet/nsnet/internal/hoststatus"
	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/store"
)

// reported reports whether the agent publishes the statuses of kind:
// the kinds of its reconcilers that the API shows. A part's status (a
// network's DHCP and VXLAN device) is folded into its whole's.
func reported(kind store.Kind) bool {
	_, ours := reconcilerOf[kind]
	_, part := wholeOf[kind]
	return ours && !part
}

// publishing is what the passes leave the publisher goroutine
// (runPublisher) to write: the keys whose statuses changed since its last
// publication, or all of them. It reads them, with the revision, under
// Agent.mu when it writes, so that a burst of passes costs one write of
// the last, and the next pass never waits for a store commit — nor for a
// copy of every status: a pass after a one-port change hands over one key,
// at 10,000 ports as at 10.
type publishing struct {
	kick chan struct{}
	// Under Agent.mu.
	dirty map[key]bool
	// all: publish every status (after a full pass or recomputation,
	// or a publication that failed); reread: check what the store holds
	// first (after a full pass, or a failure).
	all, reread bool
}

// markLocked notes that k's status may have changed since the last
// publication.
func (q *publishing) markLocked(k key) {
	if q.all {
		return
	}
	if q.dirty == nil {
		q.dirty = map[key]bool{}
	}
	q.dirty[k] = true
}

// publish wakes the publisher after a pass: it writes what changed to the
// store for the API servers to read (Config.Publisher); after a full pass,
// everything, checking what the store holds first.
func (a *Agent) publish(full bool) {
	if a.cfg.Publisher == nil {
		return
	}
	if full {
		a.mu.Lock()
		a.pub.all, a.pub.reread, a.pub.dirty = true, true, nil
		a.mu.Unlock()
	}
	select {
	case a.pub.kick <- struct{}{}:
	default:
	}
}

// takePublication takes what there is to publish: the revision the
// kernel is programmed for and either every reported status (all) or the
// changed ones (nil: gone).
func (a *Agent) takePublication() (rev int64, all map[hoststatus.Object]hoststatus.State, changes map[hoststatus.Object]*hoststatus.State, reread bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	q := &a.pub
	rev, reread = a.converged, q.reread
	if q.all {
		all = make(map[hoststatus.Object]hoststatus.State, len(a.statuses))
		for k := range a.statuses {
			if reported(k.kind) {
				s := a.statusLocked(k)
				all[hoststatus.Object{Kind: k.kind, ID: k.id}] = hoststatus.State{Status: s.Status, Reason: s.Reason}
			}
		}
	} else {
		changes = make(map[hoststatus.Object]*hoststatus.State, len(q.dirty))
		for k := range q.dirty {
			if whole, part := wholeOf[k.kind]; part {
				k.kind = whole // shown as its whole's status
			}
			if !reported(k.kind) {
				continue
			}
			o := hoststatus.Object{Kind: k.kind, ID: k.id}
			if _, ok := a.statuses[k]; !ok {
				changes[o] = nil
				continue
			}
			s := a.statusLocked(k)
			changes[o] = &hoststatus.State{Status: s.Status, Reason: s.Reason}
		}
	}
	q.dirty, q.all, q.reread = nil, false, false
	return rev, all, changes, reread
}

// runPublisher writes what passes leave it until ctx ends. A publication
// that fails (the store unreachable) is tried again with backoff, in full:
// what the store took of it is unknown.
func (a *Agent) runPublisher(ctx context.Context) {
	retry := time.NewTimer(0)
	retry.Stop()
	backoff := time.Duration(0)
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.pub.kick:
		case <-retry.C:
		}
		rev, all, changes, reread := a.takePublication()
		var err error
		if all != nil {
			err = a.cfg.Publisher.PublishPass(ctx, rev, all, reread)
		} else {
			err = a.cfg.Publisher.PublishChanges(ctx, rev, changes)
		}
		if err == nil {
			backoff = 0
			continue
		}
		if ctx.Err() != nil {
			return
		}
		a.log.Warn("cannot publish the pass", "revision", rev, "err", err)
		a.mu.Lock()
		a.pub.all, a.pub.reread, a.pub.dirty = true, true, nil
		a.mu.Unlock()
		backoff = min(max(2*backoff, minRetry), a.cfg.ResyncInterval)
		retry.Reset(backoff)
	}
}

// reportsOnly reports whether the revisions after the one the last pass
// read, up to rev, changed report records only (statuses, counters,
// passes: the agents' own writes), which ask nothing of the kernel: the
// agent then counts itself converged at rev without a pass. Without a
// change feed it cannot tell, and passes.
func (a *Agent) reportsOnly(rev int64) bool {
	feed, ok := a.cfg.Store.(store.ChangeFeed)
	if !ok {
		return false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.converged < 0 {
		return false
	}
	changes, ok := feed.ChangesBetween(a.converged, rev)
	if !ok || !store.OnlyReports(changes) {
		return false
	}
	if rev > a.converged {
		a.converged = rev
		a.health.Revision = rev
		close(a.convergedCh)
		a.convergedCh = make(chan struct{})
	}
	return true
}

// PortFirewallCounters returns the drop counters of every port the
// host's firewall filters, by port id (the daemon publishes them).
func (a *Agent) PortFirewallCounters() map[string]model.PortFirewallCounters {
	a.FirewallCounters("") // refreshes the cache when it is stale
	h := &a.firewall
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[string]model.PortFirewallCounters, len(h.counters))
	for id, c := range h.counters {
		out[id] = c
	}
	return out
}
