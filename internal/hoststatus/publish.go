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

// Publisher writes one host's report records: its agent calls PublishPass
// after each pass, and the daemon PublishCounters every few seconds. It
// remembers what the store holds for its host (read once, at the first
// publication), so that it writes only what changed: a restarted agent
// whose kernel still matches rewrites nothing, and no status flaps.
type Publisher struct {
	st   store.Store
	host string
	now  func() time.Time

	mu       sync.Mutex
	loaded   bool
	pass     int64 // the stored Pass's revision
	statuses map[Object]State
	counters map[string]model.PortFirewallCounters
	stats    Stats
}

// Stats count what a Publisher wrote: records put or deleted, and the
// transactions they took.
// Publications counts the PublishPass and PublishChanges calls that
// succeeded; Examined the statuses they were handed to compare with what
// the store holds (what a publication costs: the change, unless full).
type Stats struct {
	Statuses, Passes, Counters, Txns, Publications, Examined int64
}

// NewPublisher returns the publisher of host's records in st. The host is
// the agent's name, as the service names owners (model.Instance.Host,
// model.Router.L3Host); "" on an agent without one (tests), which then
// owns what has no host.
func NewPublisher(st store.Store, host string) (*Publisher, error) {
	if strings.Contains(host, sep) {
		return nil, fmt.Errorf("host name %q: must not contain %q", host, sep)
	}
	return &Publisher{st: st, host: host, now: time.Now}, nil
}

// Host is the host the publisher writes for.
func (p *Publisher) Host() string { return p.host }

// Stats returns what the publisher wrote so far.
func (p *Publisher) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats
}

// load reads the host's records as the store has them.
func (p *Publisher) load(ctx context.Context) error {
	if p.loaded {
		return nil
	}
	statuses := map[Object]State{}
	counters := map[string]model.PortFirewallCounters{}
	var pass int64
	err := p.st.View(ctx, func(r store.Reader) error {
		from, to := hostRange(p.host)
		if err := r.Range(store.ObjectStatuses, from, to, func(id string, raw []byte) error {
			var s ObjectStatus
			if err := json.Unmarshal(raw, &s); err != nil {
				return fmt.Errorf("decode %s/%s: %w", store.ObjectStatuses, id, err)
			}
			statuses[Object{s.Kind, s.ID}] = s.State
			return nil
		}); err != nil {
			return err
		}
		if err := r.Range(store.PortCounters, from, to, func(id string, raw []byte) error {
			var c PortCounters
			if err := json.Unmarshal(raw, &c); err != nil {
				return fmt.Errorf("decode %s/%s: %w", store.PortCounters, id, err)
			}
			counters[c.PortID] = c.Counters
			return nil
		}); err != nil {
			return err
		}
		rec, err := store.Get[Pass](r, store.HostPasses, p.host)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		pass = rec.Revision
		return nil
	})
	if err != nil {
		return fmt.Errorf("read the reports of host %q: %w", p.host, err)
	}
	p.statuses, p.counters, p.pass, p.loaded = statuses, counters, pass, true
	return nil
}

// op is one write of a report record: a put when v is non-nil.
type op struct {
	kind store.Kind
	id   string
	v    any
}

// PublishPass publishes a pass of the host's agent that read the store at
// revision rev and left the objects it owns with statuses: first the
// statuses that changed (records of objects no longer there deleted), then
// the host's Pass record, so that a reader that sees the pass sees its
// statuses. The Pass is rewritten only when rev brought desired-state
// changes since the stored one: a pass after reports alone (other hosts',
// or this publisher's own) changes nothing a waiter needs.
//
// reread makes it read what the store holds for the host first, rather
// than trust what it last wrote: the agent asks for it on its full passes,
// so that records someone else removed (RemoveHost, while the host lives)
// come back within one resync.
func (p *Publisher) PublishPass(ctx context.Context, rev int64, statuses map[Object]State, reread bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if reread {
		p.loaded = false
	}
	if err := p.load(ctx); err != nil {
		return err
	}
	var ops []op
	for o, st := range statuses {
		if s, ok := p.statuses[o]; !ok || s != st {
			ops = append(ops, op{store.ObjectStatuses, statusID(p.host, o), ObjectStatus{Host: p.host, Kind: o.Kind, ID: o.ID, State: st}})
		}
	}
	for o := range p.statuses {
		if _, ok := statuses[o]; !ok {
			ops = append(ops, op{kind: store.ObjectStatuses, id: statusID(p.host, o)})
		}
	}
	if err := p.commit(ctx, rev, ops); err != nil {
		return err
	}
	p.statuses = maps.Clone(statuses)
	p.stats.Examined += int64(len(statuses))
	return nil
}

// PublishChanges is PublishPass for a pass that changed the statuses of
// the objects in changes only (nil: the object has no status any more):
// what the host's other records hold stands. It costs what changed, not
// what the host owns, which is what makes a pass after a one-port change
// as cheap at 10,000 ports as at 10; the agent hands it every pass but
// the full ones (which PublishPass checks in full).
func (p *Publisher) PublishChanges(ctx context.Context, rev int64, changes map[Object]*State) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.load(ctx); err != nil {
		return err
	}
	var ops []op
	for o, st := range changes {
		s, ok := p.statuses[o]
		switch {
		case st == nil && ok:
			ops = append(ops, op{kind: store.ObjectStatuses, id: statusID(p.host, o)})
		case st != nil && (!ok || s != *st):
			ops = append(ops, op{store.ObjectStatuses, statusID(p.host, o), ObjectStatus{Host: p.host, Kind: o.Kind, ID: o.ID, State: *st}})
		}
	}
	if err := p.commit(ctx, rev, ops); err != nil {
		return err
	}
	for o, st := range changes {
		if st == nil {
			delete(p.statuses, o)
		} else {
			p.statuses[o] = *st
		}
	}
	p.stats.Examined += int64(len(changes))
	return nil
}

// commit writes the status ops of a publication at rev, then the host's
// Pass record when rev brought desired-state changes since the stored one.
func (p *Publisher) commit(ctx context.Context, rev int64, ops []op) error {
	// In id order, so that batches are the same from run to run.
	slices.SortFunc(ops, func(a, b op) int { return strings.Compare(a.id, b.id) })
	nStatuses := len(ops)
	passed := rev > p.pass && !p.onlyReports(p.pass, rev)
	if passed {
		ops = append(ops, op{store.HostPasses, p.host, Pass{Host: p.host, Revision: rev, At: p.now().UTC().Format(time.RFC3339Nano)}})
	}
	if err := p.write(ctx, ops); err != nil {
		return err
	}
	if passed {
		p.pass = rev
		p.stats.Passes++
	}
	p.stats.Statuses += int64(nStatuses)
	p.stats.Publications++
	return nil
}

// onlyReports reports whether the revisions in (from, to] changed report
// kinds only, as far as the store can tell.
func (p *Publisher) onlyReports(from, to int64) bool {
	feed, ok := p.st.(store.ChangeFeed)
	if !ok {
		return false
	}
	changes, ok := feed.ChangesBetween(from, to)
	return ok && store.OnlyReports(changes)
}

// PublishCounters publishes the firewall drop counters of the ports the
// host filters: the records of the ports whose counters changed, and the
// deletion of those of ports no longer filtered. Ports' counters change
// with traffic only, so a quiet host writes nothing.
func (p *Publisher) PublishCounters(ctx context.Context, counters map[string]model.PortFirewallCounters) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.load(ctx); err != nil {
		return err
	}
	var ops []op
	for _, id := range slices.Sorted(maps.Keys(counters)) {
		if c, ok := p.counters[id]; !ok || c != counters[id] {
			ops = append(ops, op{store.PortCounters, countersID(p.host, id), PortCounters{Host: p.host, PortID: id, Counters: counters[id]}})
		}
	}
	for _, id := range slices.Sorted(maps.Keys(p.counters)) {
		if _, ok := counters[id]; !ok {
			ops = append(ops, op{kind: store.PortCounters, id: countersID(p.host, id)})
		}
	}
	if err := p.write(ctx, ops); err != nil {
		return err
	}
	p.counters = maps.Clone(counters)
	p.stats.Counters += int64(len(ops))
	return nil
}

// write commits ops in order, at most maxOps per transaction. The writes
// are blind (nothing read), so that they conflict with no other
// transaction. Should one batch fail, the earlier ones stay: the records
// are each right on their own, and the next publication, comparing with
// what it last wrote in full, writes them again.
func (p *Publisher) write(ctx context.Context, ops []op) error {
	for len(ops) > 0 {
		batch := ops[:min(len(ops), maxOps)]
		ops = ops[len(batch):]
		_, err := p.st.Update(ctx, func(tx store.Txn) error {
			for _, o := range batch {
				var err error
				if o.v == nil {
					err = tx.Delete(o.kind, o.id)
				} else {
					err = tx.Put(o.kind, o.id, o.v)
				}
				if err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			// What the store holds is unknown now: read it again.
			p.loaded = false
			return fmt.Errorf("publish the reports of host %q: %w", p.host, err)
		}
		p.stats.Txns++
	}
	return nil
}

// RemoveHost deletes every report record of host: its Pass, statuses and
// counters (the host's agent record was deleted, or its host left).
func RemoveHost(ctx context.Context, st store.Store, host string) error {
	var ops []op
	err := st.View(ctx, func(r store.Reader) error {
		from, to := hostRange(host)
		for _, kind := range []store.Kind{store.ObjectStatuses, store.PortCounters} {
			if err := r.Range(kind, from, to, func(id string, _ []byte) error {
				ops = append(ops, op{kind: kind, id: id})
				return nil
			}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("read the reports of host %q: %w", host, err)
	}
	ops = append(ops, op{kind: store.HostPasses, id: host})
	p := &Publisher{st: st, host: host}
	return p.write(ctx, ops)
}
