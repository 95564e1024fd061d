package agent

import (
	"context"

	"github.com/nsnet/nsnet/internal/hoststatus"
	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/store"
)

// reported are the kinds whose statuses the agent publishes: those the
// API shows. A network's DHCP service is folded into its network's.
var reported = map[store.Kind]bool{store.Networks: true, store.Ports: true, store.Instances: true,
	store.Routers: true, store.FloatingIPs: true, store.Trunks: true}

// publish hands the statuses and the revision of the pass that just
// finished to the publisher (Config.Publisher), which writes what changed
// to the store for the API servers to read; after a full pass, it checks
// what the store holds first.
func (a *Agent) publish(ctx context.Context, full bool) error {
	if a.cfg.Publisher == nil {
		return nil
	}
	a.mu.Lock()
	rev := a.converged
	statuses := make(map[hoststatus.Object]hoststatus.State, len(a.statuses))
	for k := range a.statuses {
		if reported[k.kind] {
			s := a.statusLocked(k)
			statuses[hoststatus.Object{Kind: k.kind, ID: k.id}] = hoststatus.State{Status: s.Status, Reason: s.Reason}
		}
	}
	a.mu.Unlock()
	return a.cfg.Publisher.PublishPass(ctx, rev, statuses, full)
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
