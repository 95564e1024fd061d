package service

import (
	"context"
	"fmt"

	"github.com/nsnet/nsnet/internal/store"
)

// pending is a create checked as far as it can be without the store: its
// id and defaults are chosen, its attributes decoded. apply finishes it in
// a transaction, from that transaction's snapshot alone, so that several
// creates can share one transaction (a bulk create) and each sees the
// writes of those before it (quotas count the whole batch).
type pending struct {
	id    string
	apply func(store.Txn) error
}

// Results is what a bulk create returns: the resources as the API shows
// them, in the order asked, and the one revision that holds them all.
type Results[T any] struct {
	Objects  []T
	Revision int64
}

// createOne runs one create in a transaction of its own.
func createOne[T any](ctx context.Context, s *Service, in Attrs,
	prepare func(context.Context, Attrs) (pending, error), get func(context.Context, string) (T, error),
) (Result[T], error) {
	out, err := createMany(ctx, s, []Attrs{in}, prepare, get)
	if err != nil {
		return Result[T]{}, err
	}
	return Result[T]{out.Objects[0], out.Revision}, nil
}

// createMany is Neutron's bulk create: every item is checked and written in
// one transaction, and the first that fails fails them all, with its own
// error, leaving nothing behind.
func createMany[T any](ctx context.Context, s *Service, ins []Attrs,
	prepare func(context.Context, Attrs) (pending, error), get func(context.Context, string) (T, error),
) (Results[T], error) {
	items := make([]pending, len(ins))
	for i, in := range ins {
		p, err := prepare(ctx, in)
		if err != nil {
			return Results[T]{}, err
		}
		items[i] = p
	}
	rev, err := s.store.Update(ctx, func(tx store.Txn) error {
		for _, p := range items {
			if err := p.apply(tx); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return Results[T]{}, err
	}
	out := Results[T]{Objects: make([]T, len(items)), Revision: rev}
	for i, p := range items {
		if out.Objects[i], err = get(ctx, p.id); err != nil {
			return Results[T]{}, fmt.Errorf("read back %s: %w", p.id, err)
		}
	}
	return out, nil
}
