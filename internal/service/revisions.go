package service

import (
	"context"
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
type writes struct{ store.Store }

type writeTxn struct{ store.Txn }

func (w writes) Update(ctx context.Context, fn func(store.Txn) error) (int64, error) {
	return w.Store.Update(ctx, func(tx store.Txn) error { return fn(writeTxn{tx}) })
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
