package store

import (
	"context"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// etcdLog is the change log of an Etcd store (see ChangedSince): the
// records etcd's own history says the revisions after from changed,
// followed by one watch of the store's prefix that a goroutine appends
// to the log as its events arrive.
//
// Why a watch that stays open, and not one opened per question from the
// revision asked about: etcd serves a watch that starts in the past from
// its unsynced watchers, which it catches up every 100 ms, so each
// question would wait up to that long — longer than reading a thousand
// records. A watch caught up once is served as commits happen, and the
// question costs one small read (see lastCommit), or none when the asker
// names the revision it waits for (ChangesBetween). It starts at the
// first question, of either kind, so that one watch serves both; a
// process that never asks keeps no log.
//
// Why the log knows when it has caught up: a reader asks about the
// changes up to its snapshot, which it read before asking; the log must
// hold them all before it answers. etcd's watch gives no "you have
// everything up to R" that the cluster's etcd 3.4 keeps in order with
// the events (its progress notifications may overtake them), and the
// cluster's revision moves with the keys of other prefixes too, whose
// events this watch never sees. But every commit of an Update puts the
// generation keys of the kinds it writes, so the newest generation key's
// mod revision is the store's last commit at least as new as any
// snapshot read before: once the watch has passed it, the log holds every
// change of the snapshot.
type etcdLog struct {
	mu      sync.Mutex
	running bool
	// from: the log knows every change after from; upTo: the watch has
	// delivered every change up to upTo.
	from, upTo int64
	log        []Change
	// values are the records as each change of log left them, index by
	// index (nil: deleted): the watch delivers them with the changes,
	// and RecordsBetween hands them on, so that a watcher learns what
	// changed without reading it again.
	values [][]byte
	// moved is closed, and replaced, whenever upTo or from moves.
	moved chan struct{}
	// subs are the channels of Watch, each with the revision it has
	// (it is sent only newer ones).
	subs map[chan int64]int64
	// drop, when set, ends the watch as a lost connection would, so
	// that the tests see it resume (export_test.go).
	drop context.CancelFunc
	// hold, when set, keeps a dropped watch from resuming until it is
	// closed (export_test.go): the tests commit and compact meanwhile.
	hold chan struct{}
}

// ChangedSince implements ChangeLog, from etcd's history of the store's
// keys rather than a read of them. ok is false when that history is gone
// (etcd compacted it past rev before the log read it), when the log
// started after rev, or when etcd cannot say what its last commit is in
// time; the reader then reads everything, as it would from bbolt after a
// restart.
func (s *Etcd) ChangedSince(rev int64) ([]Change, bool) {
	s.startLog(rev)
	ctx, cancel := context.WithTimeout(s.cli.Ctx(), s.timeout)
	defer cancel()
	last, err := s.lastCommit(ctx)
	if err != nil {
		return nil, false
	}
	return s.changes.since(ctx, rev, last)
}

// ChangesBetween implements ChangeFeed with the change log, as Bolt's
// does. A caller woken by a Watch revision to, a commit of the store's
// keys, finds the log there already: no read of the store's last commit
// (which tells, for a revision the log has not seen, whether it is one
// of other keys: see reach). ok is false when the log does not reach
// back to from, or has not seen to within the store's request timeout.
func (s *Etcd) ChangesBetween(from, to int64) ([]Change, bool) {
	s.startLog(from)
	ctx, cancel := context.WithTimeout(s.cli.Ctx(), s.timeout)
	defer cancel()
	changes, ok := s.changes.since(ctx, from, s.reach(ctx, to))
	if !ok {
		return nil, false
	}
	i := sort.Search(len(changes), func(i int) bool { return changes[i].Rev > to })
	return changes[:i], true
}

// reach is how far the log must have followed the watch to know every
// change up to revision to: to itself, unless the log has not seen it
// yet and the store's last commit is older though etcd has reached to —
// to is then a revision of keys outside the store's prefix (a host's
// beat, another deployment's write), which the watch never delivers, and
// the log knows every change up to to once it has the last commit. A
// revision etcd has not reached is waited for, as the callers promise.
func (s *Etcd) reach(ctx context.Context, to int64) int64 {
	l := &s.changes
	l.mu.Lock()
	seen := l.upTo >= to
	l.mu.Unlock()
	if seen {
		return to
	}
	last, now, err := s.lastCommitAt(ctx)
	if err != nil || last >= to || now < to {
		return to
	}
	return last
}

// startLog starts the change log at revision rev, its first question,
// unless it runs already.
func (s *Etcd) startLog(rev int64) {
	l := &s.changes
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.running {
		return
	}
	// etcd's revisions start at 1: from 0, the log knows every change.
	rev = max(rev, 0)
	l.running = true
	l.from, l.upTo = rev, rev
	l.moved = make(chan struct{})
	go s.followLog(rev)
}

// since returns the changes of the revisions after rev once the log holds
// every change up to upTo; ok is false when the log does not reach back
// to rev, or ctx ends first.
func (l *etcdLog) since(ctx context.Context, rev, upTo int64) ([]Change, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.waitLocked(ctx, rev, upTo) {
		return nil, false
	}
	i := sort.Search(len(l.log), func(i int) bool { return l.log[i].Rev > rev })
	return slices.Clone(l.log[i:]), true
}

// waitLocked waits, with l.mu held (and released while it waits), until
// the log holds every change up to upTo; false when the log does not
// reach back to the revisions after from, or ctx ends first.
func (l *etcdLog) waitLocked(ctx context.Context, from, upTo int64) bool {
	for from >= l.from && l.upTo < upTo {
		moved := l.moved
		l.mu.Unlock()
		select {
		case <-moved:
		case <-ctx.Done():
		}
		l.mu.Lock()
		if ctx.Err() != nil {
			return false
		}
	}
	return from >= l.from
}

// RecordsBetween implements RecordFeed from the change log, which holds
// the values the watch delivered: no read of the store. ok is false when
// the log does not reach back to from, or has not seen to within the
// store's request timeout.
func (s *Etcd) RecordsBetween(from, to int64) ([]RecordChange, bool) {
	s.startLog(from)
	ctx, cancel := context.WithTimeout(s.cli.Ctx(), s.timeout)
	defer cancel()
	upTo := s.reach(ctx, to)
	l := &s.changes
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.waitLocked(ctx, from, upTo) {
		return nil, false
	}
	i := sort.Search(len(l.log), func(i int) bool { return l.log[i].Rev > from })
	j := sort.Search(len(l.log), func(i int) bool { return l.log[i].Rev > to })
	out := make([]RecordChange, 0, j-i)
	for k := i; k < j; k++ {
		// The values are never changed in place: sharing them is safe.
		out = append(out, RecordChange{Change: l.log[k], Value: l.values[k]})
	}
	return out, true
}

// lastCommit is the revision of the store's newest commit: the newest
// mod revision of its generation keys (one per kind, put by every commit
// that writes the kind). Zero for a store never written.
func (s *Etcd) lastCommit(ctx context.Context) (int64, error) {
	last, _, err := s.lastCommitAt(ctx)
	return last, err
}

// lastCommitAt is lastCommit and the cluster's revision it was read at.
func (s *Etcd) lastCommitAt(ctx context.Context) (last, now int64, err error) {
	resp, err := s.get(ctx, s.root+"/_gen/", clientv3.WithPrefix(), clientv3.WithKeysOnly(),
		clientv3.WithSort(clientv3.SortByModRevision, clientv3.SortDescend), clientv3.WithLimit(1))
	if err != nil {
		return 0, 0, err
	}
	if len(resp.Kvs) == 0 {
		return 0, resp.Header.Revision, nil
	}
	return resp.Kvs[0].ModRevision, resp.Header.Revision, nil
}

// followLog watches the store's keys from after revision from and
// appends their changes to the log, until the store closes. A watch
// that ends (a lost connection, a member without a leader) resumes after
// the last revision it delivered; when etcd compacted that away, the log
// forgets what it had and starts again from the current revision.
func (s *Etcd) followLog(from int64) {
	l := &s.changes
	ctx := s.cli.Ctx()
	next := from + 1
	for ctx.Err() == nil {
		if next == 0 {
			// Start again from a revision read first, not from whatever
			// a watch without one begins at: the log must know where
			// its knowledge starts.
			rev, err := s.currentRevision(ctx)
			if err != nil {
				if !sleepCtx(ctx, 200*time.Millisecond) {
					return
				}
				continue
			}
			l.mu.Lock()
			l.log, l.values, l.from, l.upTo = nil, nil, rev, rev
			l.signal()
			// The watchers missed what was compacted: the current
			// revision tells them to read everything.
			l.notify(rev)
			l.mu.Unlock()
			next = rev + 1
		}
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		l.mu.Lock()
		l.drop = cancel
		l.mu.Unlock()
		for resp := range s.cli.Watch(wctx, s.root+"/", clientv3.WithPrefix(), clientv3.WithRev(next)) {
			if resp.CompactRevision != 0 {
				next = 0
				break
			}
			if resp.Err() != nil {
				break
			}
			if n := len(resp.Events); n > 0 {
				last := resp.Events[n-1].Kv.ModRevision
				l.mu.Lock()
				for _, ev := range resp.Events {
					if c, ok := s.changeOf(string(ev.Kv.Key)); ok {
						c.Rev = ev.Kv.ModRevision
						var value []byte
						if ev.Type == mvccpb.PUT {
							value = ev.Kv.Value
						}
						l.append(c, value)
					}
				}
				l.upTo = last
				l.signal()
				l.notify(last)
				l.mu.Unlock()
				next = last + 1
			}
		}
		cancel()
		if !sleepCtx(ctx, 200*time.Millisecond) {
			return
		}
		l.mu.Lock()
		hold := l.hold
		l.mu.Unlock()
		if hold != nil {
			select {
			case <-hold:
			case <-ctx.Done():
				return
			}
		}
	}
}

// changeOf names the record of key: <prefix>/<kind>/<id>; ok is false for
// the generation keys and anything else that is no record.
func (s *Etcd) changeOf(key string) (Change, bool) {
	rest, ok := strings.CutPrefix(key, s.root+"/")
	if !ok {
		return Change{}, false
	}
	kind, id, ok := strings.Cut(rest, "/")
	if !ok || !slices.Contains(Kinds, Kind(kind)) {
		return Change{}, false
	}
	return Change{Kind: Kind(kind), ID: id}, true
}

// append adds c, the record it left value, forgetting the older half of
// the log, whole revisions at a time, once it holds maxLog changes (as
// Bolt's does).
func (l *etcdLog) append(c Change, value []byte) {
	if len(l.log) >= maxLog {
		if kept, from, ok := forgetOlderHalf(l.log); ok {
			l.log, l.from = kept, from
			l.values = append(l.values[:0:0], l.values[len(l.values)-len(kept):]...)
		} else if l.log[len(l.log)-1].Rev != c.Rev {
			l.from, l.log, l.values = c.Rev-1, nil, nil
		}
	}
	l.log = append(l.log, c)
	l.values = append(l.values, value)
}

// notify sends rev to the watchers that have an older one: the newest
// only, as Watch promises (a slow watcher sees the latest revision, never
// a backlog). Only holders of l.mu send, so after taking an unread older
// revision out, the send cannot block.
func (l *etcdLog) notify(rev int64) {
	for ch, had := range l.subs {
		if rev <= had {
			continue
		}
		select {
		case <-ch:
		default:
		}
		ch <- rev
		l.subs[ch] = rev
	}
}

// Watch implements Store with the change log's watch: one etcd watch of
// the prefix serves the log and every Watch of the store (an agent's, the
// status view's), so that each commit is one watch message to the
// process, not one per reader. It sends every revision after the current
// one as the log learns of it (coalesced), and the current revision after
// a compaction made the log start again, so that the watcher re-reads
// everything. When etcd cannot be reached to say what the current
// revision is, it watches on its own from whenever it can.
func (s *Etcd) Watch(ctx context.Context) <-chan int64 {
	rev, err := s.currentRevision(ctx)
	if err != nil {
		return s.watchFrom(ctx, 0)
	}
	s.startLog(rev)
	out := make(chan int64, 1)
	l := &s.changes
	l.mu.Lock()
	if l.subs == nil {
		l.subs = map[chan int64]int64{}
	}
	l.subs[out] = rev
	if l.upTo > rev {
		// Commits since the revision was read.
		l.notify(l.upTo)
	}
	l.mu.Unlock()
	go func() {
		select {
		case <-ctx.Done():
		case <-s.cli.Ctx().Done(): // the store is closed
		}
		l.mu.Lock()
		delete(l.subs, out)
		close(out)
		l.mu.Unlock()
	}()
	return out
}

// signal wakes the readers waiting for the log to move.
func (l *etcdLog) signal() {
	close(l.moved)
	l.moved = make(chan struct{})
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}
