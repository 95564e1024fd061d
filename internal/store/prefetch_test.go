package store_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/nsnet/nsnet/internal/store"
	"github.com/nsnet/nsnet/internal/store/storetest"
)

// ranged lists the ids and names Range gives from from to to.
func ranged(t *testing.T, r store.Reader, kind store.Kind, from, to string) []string {
	t.Helper()
	var out []string
	if err := r.Range(kind, from, to, func(id string, raw []byte) error {
		out = append(out, id+"="+string(raw))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestEtcdPrefetchReadsTheSnapshotInOneRequest: a prefetch reads records,
// missing records, whole kinds and Range's first batch in one request, at
// the snapshot's revision even when it comes after the snapshot's first
// read and others wrote since; the reads it serves, and a second read of
// one key, send nothing more to etcd.
func TestEtcdPrefetchReadsTheSnapshotInOneRequest(t *testing.T) {
	s := storetest.OpenEtcd(t)
	other := storetest.OpenPeer(t, s)
	ctx := context.Background()
	put := func(st store.Store, name string) {
		t.Helper()
		if _, err := st.Update(ctx, func(tx store.Txn) error {
			return errors.Join(tx.Put(store.Routers, "r", rec{name}), tx.Put(store.Networks, "n1", rec{name}),
				tx.Put(store.Indexes, "a/1", name), tx.Put(store.Indexes, "b/1", name), tx.Put(store.FloatingIPs, "f", rec{name}))
		}); err != nil {
			t.Fatal(err)
		}
	}
	put(s, "old")

	before := s.ReadRequests()
	err := s.View(ctx, func(r store.Reader) error {
		if _, err := store.Get[rec](r, store.FloatingIPs, "f"); err != nil {
			return err
		}
		put(other, "new")
		if _, err := other.Update(ctx, func(tx store.Txn) error {
			return errors.Join(tx.Put(store.Routers, "missing", rec{"new"}), tx.Put(store.Networks, "n2", rec{"new"}), tx.Put(store.Indexes, "a/2", "new"))
		}); err != nil {
			return err
		}
		if err := store.Prefetch(r, store.Record(store.Routers, "r"), store.Record(store.Routers, "missing"),
			store.Every(store.Networks), store.Span(store.Indexes, "a/", "a0")); err != nil {
			return err
		}
		for range 2 {
			if got, err := store.Get[rec](r, store.Routers, "r"); err != nil || got.Name != "old" {
				t.Errorf("router r: %v, %v; want the snapshot's, old", got, err)
			}
			if _, err := store.Get[rec](r, store.Routers, "missing"); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("router missing: %v, want not found at the snapshot", err)
			}
			// A record of a kind prefetched whole comes from the
			// prefetch: no request of its own.
			if got, err := store.Get[rec](r, store.Networks, "n1"); err != nil || got.Name != "old" {
				t.Errorf("network n1: %v, %v; want the snapshot's, old", got, err)
			}
			if _, err := store.Get[rec](r, store.Networks, "n2"); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("network n2: %v, want not found at the snapshot", err)
			}
			if got, err := store.List[rec](r, store.Networks); err != nil || !slices.Equal(got, []rec{{"old"}}) {
				t.Errorf("networks: %v, %v; want the snapshot's [old]", got, err)
			}
			if got, want := ranged(t, r, store.Indexes, "a/", "a0"), []string{`a/1="old"`}; !slices.Equal(got, want) {
				t.Errorf("range a/: %v, want %v", got, want)
			}
			if got, err := store.Get[string](r, store.Indexes, "a/1"); err != nil || got != "old" {
				t.Errorf("index a/1: %q, %v; want the range's, old", got, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The first Get, and the prefetch.
	if n := s.ReadRequests() - before; n != 2 {
		t.Errorf("%d read requests, want 2", n)
	}
}

// TestEtcdPrefetchChecksOnlyWhatIsRead: what a transaction prefetched
// conflicts with another writer's change only once the transaction read
// it, as if it had read it without the prefetch.
func TestEtcdPrefetchChecksOnlyWhatIsRead(t *testing.T) {
	s := storetest.OpenEtcd(t)
	other := storetest.OpenPeer(t, s)
	ctx := context.Background()
	if _, err := s.Update(ctx, func(tx store.Txn) error {
		return errors.Join(tx.Put(store.Routers, "r", rec{"r"}), tx.Put(store.Networks, "n", rec{"n"}), tx.Put(store.Indexes, "a/1", "a"))
	}); err != nil {
		t.Fatal(err)
	}
	wants := []store.Want{store.Record(store.Routers, "r"), store.Record(store.Routers, "absent"),
		store.Every(store.Networks), store.Span(store.Indexes, "a/", "a0")}
	for _, tc := range []struct {
		name     string
		read     func(store.Txn) error
		between  func(store.Txn) error
		wantRuns int
	}{
		{"a record prefetched, not read", nil,
			func(tx store.Txn) error { return tx.Put(store.Routers, "r", rec{"changed"}) }, 1},
		{"a record prefetched and read", func(tx store.Txn) error { _, err := store.Get[rec](tx, store.Routers, "r"); return err },
			func(tx store.Txn) error { return tx.Put(store.Routers, "r", rec{"changed"}) }, 2},
		{"a missing record prefetched, not read", nil,
			func(tx store.Txn) error { return tx.Put(store.Routers, "absent", rec{"created"}) }, 1},
		{"a missing record prefetched and read", func(tx store.Txn) error {
			_, err := store.Get[rec](tx, store.Routers, "absent")
			return ignoreNotFound(err)
		}, func(tx store.Txn) error { return tx.Put(store.Routers, "absent", rec{"created"}) }, 2},
		{"a kind prefetched, not listed", nil,
			func(tx store.Txn) error { return tx.Put(store.Networks, "n2", rec{"added"}) }, 1},
		{"a kind prefetched and listed", func(tx store.Txn) error { _, err := store.List[rec](tx, store.Networks); return err },
			func(tx store.Txn) error { return tx.Put(store.Networks, "n3", rec{"added"}) }, 2},
		{"a record of a kind prefetched whole, got", func(tx store.Txn) error { _, err := store.Get[rec](tx, store.Networks, "n"); return err },
			func(tx store.Txn) error { return tx.Put(store.Networks, "n", rec{"changed"}) }, 2},
		{"a record of a kind prefetched whole, another got", func(tx store.Txn) error { _, err := store.Get[rec](tx, store.Networks, "n"); return err },
			func(tx store.Txn) error { return tx.Put(store.Networks, "n4", rec{"added"}) }, 1},
		{"a span prefetched, not ranged", nil,
			func(tx store.Txn) error { return tx.Put(store.Indexes, "a/2", "added") }, 1},
		{"a span prefetched and ranged", func(tx store.Txn) error {
			return tx.Range(store.Indexes, "a/", "a0", func(string, []byte) error { return store.Stop })
		}, func(tx store.Txn) error { return tx.Put(store.Indexes, "a/3", "added") }, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			runs := 0
			_, err := s.Update(ctx, func(tx store.Txn) error {
				runs++
				if err := store.Prefetch(tx, wants...); err != nil {
					return err
				}
				if tc.read != nil {
					if err := tc.read(tx); err != nil {
						return err
					}
				}
				if runs == 1 {
					if _, err := other.Update(ctx, tc.between); err != nil {
						return err
					}
				}
				return tx.Put(store.Trunks, "t", rec{tc.name})
			})
			if err != nil || runs != tc.wantRuns {
				t.Errorf("%d runs (%v), want %d", runs, err, tc.wantRuns)
			}
		})
	}
}

func ignoreNotFound(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}

// TestPrefetchIsIgnoredByBolt: bbolt reads locally; a prefetch there is
// no error and changes nothing it reads.
func TestPrefetchIsIgnoredByBolt(t *testing.T) {
	b := storetest.OpenBolt(t, t.TempDir())
	ctx := context.Background()
	if _, err := b.Update(ctx, func(tx store.Txn) error { return tx.Put(store.Routers, "r", rec{"r"}) }); err != nil {
		t.Fatal(err)
	}
	if err := b.View(ctx, func(r store.Reader) error {
		if err := store.Prefetch(r, store.Record(store.Routers, "r"), store.Every(store.Networks)); err != nil {
			return err
		}
		got, err := store.Get[rec](r, store.Routers, "r")
		if err == nil && got.Name != "r" {
			t.Errorf("router r: %v", got)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
}
