package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/store"
)

// standardPtr is a pointer to a resource with Neutron's standard
// attributes.
type standardPtr[T any] interface {
	*T
	StandardAttrs() *model.Standard
}

// bumpRevision advances the revision_number of kind/id when a change to
// one of its children shows in it, as Neutron's revision plugin does for
// related resources: a network's subnets, a group's rules, a router's
// interfaces, a network's RBAC policies. A parent already gone (deleted in
// the same transaction) is no error.
func bumpRevision[T any, P standardPtr[T]](s *Service, tx store.Txn, kind store.Kind, id string) error {
	v, err := store.Get[T](tx, kind, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s %s: %w", kind, id, err)
	}
	P(&v).StandardAttrs().Touch(s.now())
	return tx.Put(kind, id, v)
}

type revisionKey struct{}

type revisionConstraint struct {
	id       string
	revision int
}

// WithRevisionConstraint makes the update or delete of id in ctx happen only
// while id's revision_number is revision (Neutron's revision-if-match: the
// If-Match header); otherwise it fails with 412.
func WithRevisionConstraint(ctx context.Context, id string, revision int) context.Context {
	return context.WithValue(ctx, revisionKey{}, revisionConstraint{id, revision})
}

// writes is the service's store: its read-write transactions are marked,
// so that a revision constraint holds for the change a request makes and
// not for the read that answers it.
// writes is the service's store: its transactions are writeTxns, and the
// first of them (or the first read) checks the indexes (see index.go).
type writes struct {
	store.Store
	indexes *indexCheck
}

// writeTxn keeps the indexes of what a transaction writes: a port's (a
// floating IP's) entries change with every Put and Delete of the port
// (the floating IP), whichever code wrote it.
type writeTxn struct {
	store.Txn
	ix *indexCheck
}

// Prefetch passes the hint on to the store's transaction (store.Prefetch).
func (t writeTxn) Prefetch(wants ...store.Want) error { return store.Prefetch(t.Txn, wants...) }

func (w writes) View(ctx context.Context, fn func(store.Reader) error) error {
	if err := w.indexes.ensure(ctx, w.Store); err != nil {
		return err
	}
	return w.Store.View(ctx, fn)
}

func (w writes) Update(ctx context.Context, fn func(store.Txn) error) (int64, error) {
	if err := w.indexes.ensure(ctx, w.Store); err != nil {
		return 0, err
	}
	return w.Store.Update(ctx, func(tx store.Txn) error { return fn(writeTxn{tx, w.indexes}) })
}

func (t writeTxn) Put(kind store.Kind, id string, v any) error {
	if kind == store.Ports {
		p, err := indexedOf(v)
		if err != nil {
			return fmt.Errorf("index port %s: %w", id, err)
		}
		p.ID = id
		old, err := stored[indexedPort](t.Txn, store.Ports, id)
		if err != nil {
			return err
		}
		if err := indexPutPort(t.Txn, old, &p); err != nil {
			return fmt.Errorf("index port %s: %w", id, err)
		}
	}
	if kind == store.FloatingIPs {
		f, err := fipIndexedOf(v)
		if err != nil {
			return fmt.Errorf("index floating IP %s: %w", id, err)
		}
		f.ID = id
		old, err := stored[indexedFIP](t.Txn, store.FloatingIPs, id)
		if err != nil {
			return err
		}
		if err := indexPutFIP(t.Txn, old, &f); err != nil {
			return fmt.Errorf("index floating IP %s: %w", id, err)
		}
	}
	if _, ok := keyedKinds[kind]; ok {
		raw, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("index %s %s: %w", kind, id, err)
		}
		old, err := storedRaw(t.Txn, kind, id)
		if err != nil {
			return err
		}
		if err := indexPutKeyed(t.Txn, kind, id, old, raw); err != nil {
			return fmt.Errorf("index %w", err)
		}
	}
	if kind == store.Instances {
		in, err := instanceIndexedOf(v, t.ix.netnsPrefix)
		if err != nil {
			return fmt.Errorf("index instance %s: %w", id, err)
		}
		in.ID = id
		old, err := storedInstance(t.Txn, id, t.ix.netnsPrefix)
		if err != nil {
			return err
		}
		if err := indexPutInstance(t.Txn, old, &in); err != nil {
			return fmt.Errorf("index instance %s: %w", id, err)
		}
	}
	return t.Txn.Put(kind, id, v)
}

func (t writeTxn) Delete(kind store.Kind, id string) error {
	if kind == store.Ports {
		old, err := stored[indexedPort](t.Txn, store.Ports, id)
		if err != nil {
			return err
		}
		if old != nil {
			if err := indexPutPort(t.Txn, old, nil); err != nil {
				return fmt.Errorf("unindex port %s: %w", id, err)
			}
		}
	}
	if kind == store.FloatingIPs {
		old, err := stored[indexedFIP](t.Txn, store.FloatingIPs, id)
		if err != nil {
			return err
		}
		if old != nil {
			if err := indexPutFIP(t.Txn, old, nil); err != nil {
				return fmt.Errorf("unindex floating IP %s: %w", id, err)
			}
		}
	}
	if _, ok := keyedKinds[kind]; ok {
		old, err := storedRaw(t.Txn, kind, id)
		if err != nil {
			return err
		}
		if err := indexPutKeyed(t.Txn, kind, id, old, nil); err != nil {
			return fmt.Errorf("unindex %w", err)
		}
	}
	if kind == store.Instances {
		old, err := storedInstance(t.Txn, id, t.ix.netnsPrefix)
		if err != nil {
			return err
		}
		if old != nil {
			if err := indexPutInstance(t.Txn, old, nil); err != nil {
				return fmt.Errorf("unindex instance %s: %w", id, err)
			}
		}
	}
	return t.Txn.Delete(kind, id)
}

// checkRevision enforces ctx's revision constraint on a resource a write
// transaction has just loaded: the check and the change are one
// transaction, so no other change can come between.
func checkRevision(ctx context.Context, r store.Reader, id string, v any) error {
	c, ok := ctx.Value(revisionKey{}).(revisionConstraint)
	if _, write := r.(writeTxn); !ok || !write || c.id != id {
		return nil
	}
	std, ok := v.(interface{ StandardAttrs() *model.Standard })
	if !ok {
		return nil
	}
	if cur := std.StandardAttrs().RevisionNumber; cur != c.revision {
		return typed(http.StatusPreconditionFailed, "RevisionNumberConstraintFailed",
			"Constrained to %d, but current revision is %d", c.revision, cur)
	}
	return nil
}
