package store

import "context"

// WatchFrom exposes the etcd watch from a given revision to the tests.
func (s *Etcd) WatchFrom(ctx context.Context, rev int64) <-chan int64 { return s.watchFrom(ctx, rev) }
