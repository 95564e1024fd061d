package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/nsnet/nsnet/internal/store"
)

// TestPresence: a host's beat is seen by every handle on the store, by
// host, and is no revision of the records: no watcher wakes for it and
// the change log names nothing.
func TestPresence(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			s := b.open(t)
			peer := b.peer(t, s)
			rev, err := s.Update(ctx, func(tx store.Txn) error { return tx.Put(store.Networks, "n", rec{"n"}) })
			if err != nil {
				t.Fatal(err)
			}
			watch := peer.Watch(ctx)
			at := time.Date(2026, 12, 7, 1, 2, 3, 456789000, time.UTC)
			for i, host := range []string{"a", "b", "a"} {
				if err := s.(store.Presence).Beat(ctx, host, at.Add(time.Duration(i)*time.Second), time.Minute); err != nil {
					t.Fatal(err)
				}
			}
			want := map[string]time.Time{"a": at.Add(2 * time.Second), "b": at.Add(time.Second)}
			waitBeats(t, peer.(store.Presence), func(got map[string]time.Time) bool {
				return len(got) == 2 && got["a"].Equal(want["a"]) && got["b"].Equal(want["b"])
			})
			// A record written after the beats: the first revision
			// the watch delivers, and the only change since rev.
			rev2, err := s.Update(ctx, func(tx store.Txn) error { return tx.Put(store.Networks, "m", rec{"m"}) })
			if err != nil {
				t.Fatal(err)
			}
			select {
			case got := <-watch:
				if got != rev2 {
					t.Errorf("the watch delivered revision %d first, want the record's %d", got, rev2)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("no revision delivered for a record")
			}
			changes, ok := peer.(store.ChangeFeed).ChangesBetween(rev, rev2)
			if !ok || len(changes) != 1 || changes[0].ID != "m" {
				t.Errorf("changes between %d and %d: %+v, %v; want network m only", rev, rev2, changes, ok)
			}
		})
	}
}

// TestEtcdPresenceExpires: a host that stops beating is gone from the
// presences once its beat's ttl has passed (its lease expired), and a
// beat after makes it present again.
func TestEtcdPresenceExpires(t *testing.T) {
	ctx := context.Background()
	s := backends[1].open(t)
	p := s.(store.Presence)
	other := backends[1].peer(t, s).(store.Presence)
	at := time.Now()
	if err := p.Beat(ctx, "gone", at, time.Second); err != nil {
		t.Fatal(err)
	}
	if err := p.Beat(ctx, "stays", at, time.Hour); err != nil {
		t.Fatal(err)
	}
	waitBeats(t, other, func(got map[string]time.Time) bool { return len(got) == 2 })
	waitBeats(t, other, func(got map[string]time.Time) bool { _, ok := got["gone"]; return !ok && len(got) == 1 })
	if err := p.Beat(ctx, "gone", at.Add(time.Minute), time.Second); err != nil {
		t.Fatal(err)
	}
	waitBeats(t, other, func(got map[string]time.Time) bool { return got["gone"].Equal(at.Add(time.Minute)) })
}

// waitBeats reads p's beats until ok says they are as wanted, for as long
// as a slow etcd may take.
func waitBeats(t *testing.T, p store.Presence, ok func(map[string]time.Time) bool) {
	t.Helper()
	var got map[string]time.Time
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		var err error
		if got, err = p.Beats(context.Background()); err != nil {
			t.Fatal(err)
		}
		if ok(got) {
			return
		}
	}
	t.Fatalf("beats %v, not as wanted after a minute", got)
}
