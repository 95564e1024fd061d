package store

import (
	"context"
	"errors"
	"sync"
)

// errRetry rolls back the discarded attempt of a Retrying store.
var errRetry = errors.New("store: forced retry")

// Retrying is a Store for tests that makes every Update retry once, as
// etcd's STM does when another writer commits between its reads and its
// commit: it runs fn on a transaction it then rolls back, and runs fn again
// on a fresh one, whose writes alone commit. A transaction that is not a
// pure function of its snapshot and inputs (see Store.Update) shows it
// under Retrying: the second run finds what the first left in captured
// variables.
//
// As with etcd, a first run that fails ends the Update with its error: a
// conflict can only be found at commit, after fn succeeded.
type Retrying struct {
	Store

	mu       sync.Mutex
	between  func(ctx context.Context)
	attempts int
}

// NewRetrying wraps s.
func NewRetrying(s Store) *Retrying { return &Retrying{Store: s} }

// Between sets a function to run after each discarded attempt and before
// the real one: a test commits there, on the wrapped store, the conflicting
// write that would have made etcd retry, so the real attempt must see it.
// nil removes it.
func (r *Retrying) Between(fn func(ctx context.Context)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.between = fn
}

// Attempts is how many times Update functions have run, discarded
// attempts included.
func (r *Retrying) Attempts() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.attempts
}

func (r *Retrying) count() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.attempts++
}

// Update implements Store: fn runs twice, and only the second run commits.
func (r *Retrying) Update(ctx context.Context, fn func(Txn) error) (int64, error) {
	_, err := r.Store.Update(ctx, func(tx Txn) error {
		r.count()
		if err := fn(tx); err != nil {
			return err
		}
		return errRetry
	})
	if !errors.Is(err, errRetry) {
		return 0, err
	}
	r.mu.Lock()
	between := r.between
	r.mu.Unlock()
	if between != nil {
		between(ctx)
	}
	return r.Store.Update(ctx, func(tx Txn) error {
		r.count()
		return fn(tx)
	})
}

// ChangedSince implements ChangeLog with the wrapped store's log; without
// one, it cannot tell.
func (r *Retrying) ChangedSince(rev int64) ([]Change, bool) {
	if log, ok := r.Store.(ChangeLog); ok {
		return log.ChangedSince(rev)
	}
	return nil, false
}
