package agent

import (
	"context"
	"sync"
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

// publication is what one pass hands the publisher.
type publication struct {
	rev      int64
	statuses map[hoststatus.Object]hoststatus.State
	// reread: a full pass; the publisher checks what the store holds.
	reread bool
}

// publishing hands a pass's results to the publisher goroutine
// (runPublisher): the newest replaces one not yet written, so that a
// burst of passes costs one write of the last, and the next pass never
// waits for a store commit.
type publishing struct {
	mu      sync.Mutex
	pending *publication
	kick    chan struct{}
}

// publish hands the statuses and the revision of the pass that just
// finished to the publisher (Config.Publisher), which writes what changed
// to the store for the API servers to read; after a full pass, it checks
// what the store holds first.
func (a *Agent) publish(full bool) {
	if a.cfg.Publisher == nil {
		return
	}
	a.mu.Lock()
	p := &publication{rev: a.converged, reread: full,
		statuses: make(map[hoststatus.Object]hoststatus.State, len(a.statuses))}
	for k := range a.statuses {
		if reported(k.kind) {
			s := a.statusLocked(k)
			p.statuses[hoststatus.Object{Kind: k.kind, ID: k.id}] = hoststatus.State{Status: s.Status, Reason: s.Reason}
		}
	}
	a.mu.Unlock()
	a.pub.hand(p)
}

func (q *publishing) hand(p *publication) {
	q.mu.Lock()
	if q.pending != nil {
		p.reread = p.reread || q.pending.reread
	}
	q.pending = p
	q.mu.Unlock()
	select {
	case q.kick <- struct{}{}:
	default:
	}
}

// runPublisher writes what passes hand it until ctx ends. A publication
// that fails (the store unreachable) is tried again with backoff, unless
// a newer one replaced it meanwhile.
func (a *Agent) runPublisher(ctx context.Context) {
	q := &a.pub
	retry := time.NewTimer(0)
	retry.Stop()
	backoff := time.Duration(0)
	for {
		select {
		case <-ctx.Done():
			return
		case <-q.kick:
		case <-retry.C:
		}
		q.mu.Lock()
		p := q.pending
		q.pending = nil
		q.mu.Unlock()
		if p == nil {
			continue
		}
		err := a.cfg.Publisher.PublishPass(ctx, p.rev, p.statuses, p.reread)
		if err == nil {
			backoff = 0
			continue
		}
		if ctx.Err() != nil {
			return
		}
		a.log.Warn("cannot publish the pass", "revision", p.rev, "err", err)
		q.mu.Lock()
		if q.pending == nil {
			q.pending = p
		} else {
			q.pending.reread = true // what the store holds is unknown
		}
		q.mu.Unlock()
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
