package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/nsnet/nsnet/internal/store"
	"github.com/nsnet/nsnet/internal/store/storetest"
)

func TestParseEtcdURL(t *testing.T) {
	for _, tc := range []struct {
		in        string
		endpoints []string
		prefix    string
		maxOps    int
		err       bool
	}{
		{in: "etcd://h1:2379?max-txn-ops=1024", endpoints: []string{"h1:2379"}, prefix: "/nsnet", maxOps: 1024},
		{in: "etcd://h1:2379,h2:2379/p?max-txn-ops=512", endpoints: []string{"h1:2379", "h2:2379"}, prefix: "/p", maxOps: 512},
		{in: "etcd://h1:2379?max-txn-ops=many", err: true},
		{in: "etcd://h1:2379?max-txn-ops=1", err: true},
		{in: "etcd://h1:2379?max-txn-ops=200&max-txn-ops=300", err: true},
		{in: "etcd://h1:2379?timeout=1s", err: true},
		{in: "etcd://127.0.0.1:2379", endpoints: []string{"127.0.0.1:2379"}, prefix: "/nsnet"},
		{in: "etcd://h1:2379,h2:2379,[::1]:2379", endpoints: []string{"h1:2379", "h2:2379", "[::1]:2379"}, prefix: "/nsnet"},
		{in: "etcd://h1:2379/prod/nsnet/", endpoints: []string{"h1:2379"}, prefix: "/prod/nsnet"},
		{in: "etcd://", err: true},
		{in: "etcd://h1", err: true},
		{in: "etcd://h1:2379,", err: true},
		{in: "http://h1:2379", err: true},
		{in: "/var/lib/nsnet/state.db", err: true},
	} {
		cfg, err := store.ParseEtcdURL(tc.in)
		if tc.err {
			if err == nil {
				t.Errorf("ParseEtcdURL(%q) = %+v, want an error", tc.in, cfg)
			}
			continue
		}
		if err != nil || !slices.Equal(cfg.Endpoints, tc.endpoints) || cfg.Prefix != tc.prefix || cfg.MaxTxnOps != tc.maxOps {
			t.Errorf("ParseEtcdURL(%q) = %+v, %v; want %v under %s", tc.in, cfg, err, tc.endpoints, tc.prefix)
		}
	}
}

// TestEtcdPrefixesAreApart: two stores under different prefixes of one
// cluster see neither each other's records nor each other's commits.
func TestEtcdPrefixesAreApart(t *testing.T) {
	a, b := storetest.OpenEtcd(t), storetest.OpenEtcd(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	watchB := b.Watch(ctx)
	if _, err := a.Update(ctx, func(tx store.Txn) error { return tx.Put(store.Networks, "n", rec{"a"}) }); err != nil {
		t.Fatal(err)
	}
	revB, err := b.Update(ctx, func(tx store.Txn) error { return tx.Put(store.Ports, "p", rec{"b"}) })
	if err != nil {
		t.Fatal(err)
	}
	b.View(ctx, func(r store.Reader) error {
		if got, _ := store.List[rec](r, store.Networks); len(got) != 0 {
			t.Errorf("b sees a's networks: %v", got)
		}
		return nil
	})
	// b's watch wakes for b's commit only: the first revision it gives
	// is b's, not a's earlier one.
	select {
	case rev := <-watchB:
		if rev != revB {
			t.Errorf("b's watch gave %d, want its own commit %d", rev, revB)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("b's watch saw nothing")
	}
}

// TestEtcdWritersOfDifferentKindsDoNotConflict: a commit to another kind
// between a transaction's reads and its commit does not make it run
// again; one to the kind it listed does.
func TestEtcdWritersOfDifferentKindsDoNotConflict(t *testing.T) {
	s := storetest.OpenEtcd(t)
	other := storetest.OpenPeer(t, s) // another process's writes
	ctx := context.Background()
	for _, tc := range []struct {
		other    store.Kind
		wantRuns int
	}{{store.Ports, 1}, {store.Networks, 2}} {
		runs := 0
		_, err := s.Update(ctx, func(tx store.Txn) error {
			runs++
			if _, err := store.List[rec](tx, store.Networks); err != nil {
				return err
			}
			if runs == 1 {
				if _, err := other.Update(ctx, func(tx store.Txn) error { return tx.Put(tc.other, "x", rec{"x"}) }); err != nil {
					return err
				}
			}
			return tx.Put(store.Networks, "mine", rec{string(tc.other)})
		})
		if err != nil || runs != tc.wantRuns {
			t.Errorf("a write to %s between: %d runs (%v), want %d", tc.other, runs, err, tc.wantRuns)
		}
	}
}

// TestEtcdGetConflictsOnDeleteAndRecreate: a key read as present and
// deleted since, or read as missing and created since, conflicts.
func TestEtcdGetConflictsOnDeleteAndRecreate(t *testing.T) {
	s := storetest.OpenEtcd(t)
	other := storetest.OpenPeer(t, s)
	ctx := context.Background()
	if _, err := s.Update(ctx, func(tx store.Txn) error { return tx.Put(store.Routers, "r", rec{"r"}) }); err != nil {
		t.Fatal(err)
	}
	for _, between := range []func(tx store.Txn) error{
		func(tx store.Txn) error { return tx.Delete(store.Routers, "r") },
		func(tx store.Txn) error { return tx.Put(store.Routers, "r", rec{"again"}) },
	} {
		runs := 0
		if _, err := s.Update(ctx, func(tx store.Txn) error {
			runs++
			store.Get[rec](tx, store.Routers, "r")
			if runs == 1 {
				if _, err := other.Update(ctx, between); err != nil {
					return err
				}
			}
			return tx.Put(store.FloatingIPs, "f", rec{"f"})
		}); err != nil || runs != 2 {
			t.Errorf("%d runs (%v), want 2", runs, err)
		}
	}
}

// TestEtcdCompactionRereads: a snapshot compacted away while a
// transaction reads it makes the transaction run again on a fresh one.
func TestEtcdCompactionRereads(t *testing.T) {
	e := storetest.StartEtcd(t)
	s, err := store.OpenEtcd(context.Background(), store.EtcdConfig{Endpoints: []string{e.Endpoint()}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	other := storetest.OpenPeer(t, s)
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{e.Endpoint()}})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx := context.Background()
	for _, id := range []string{"a", "b"} {
		if _, err := s.Update(ctx, func(tx store.Txn) error { return tx.Put(store.Subnets, id, rec{id}) }); err != nil {
			t.Fatal(err)
		}
	}
	runs := 0
	var got []rec
	rev, err := s.Update(ctx, func(tx store.Txn) error {
		runs++
		if _, err := store.Get[rec](tx, store.Subnets, "a"); err != nil {
			return err
		}
		if runs == 1 {
			// Another writer commits and the cluster compacts past this
			// snapshot: the List below cannot read at its revision.
			rev, err := other.Update(ctx, func(tx store.Txn) error { return tx.Put(store.Subnets, "c", rec{"c"}) })
			if err != nil {
				return err
			}
			if _, err := cli.Compact(ctx, rev); err != nil {
				return err
			}
		}
		var err error
		got, err = store.List[rec](tx, store.Subnets)
		if err != nil {
			return err
		}
		return tx.Put(store.Subnets, "d", rec{"d"})
	})
	if err != nil || runs != 2 {
		t.Fatalf("update across a compaction: %d runs, %v; want 2 runs", runs, err)
	}
	if want := []rec{{"a"}, {"b"}, {"c"}}; !slices.Equal(got, want) {
		t.Errorf("the run after compaction listed %v, want %v", got, want)
	}
	if r := revision(t, s); r != rev {
		t.Errorf("revision %d after the commit, want %d", r, rev)
	}

	// A View's function need not be safe to run twice: it runs once,
	// and the View fails as if etcd had been out for a moment.
	views := 0
	err = s.View(ctx, func(r store.Reader) error {
		views++
		if _, err := store.Get[rec](r, store.Subnets, "a"); err != nil {
			return err
		}
		rev, err := s.Update(ctx, func(tx store.Txn) error { return tx.Put(store.Subnets, "e", rec{"e"}) })
		if err != nil {
			return err
		}
		if _, err := cli.Compact(ctx, rev); err != nil {
			return err
		}
		_, err = store.List[rec](r, store.Subnets)
		return err
	})
	if !errors.Is(err, store.ErrUnavailable) || views != 1 {
		t.Errorf("view across a compaction: %d runs, %v; want 1 run and ErrUnavailable", views, err)
	}
}

// TestEtcdUnavailableThenRecovers: with etcd killed, reads and writes fail
// with ErrUnavailable and a watch stays open; with it back, writes succeed
// and the watch delivers them.
func TestEtcdUnavailableThenRecovers(t *testing.T) {
	e := storetest.StartEtcd(t)
	s, err := store.OpenEtcd(context.Background(), store.EtcdConfig{Endpoints: []string{e.Endpoint()}, RequestTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	watch := s.Watch(ctx)
	put := func(name string) (int64, error) {
		return s.Update(ctx, func(tx store.Txn) error { return tx.Put(store.Networks, "n", rec{name}) })
	}
	if _, err := put("before"); err != nil {
		t.Fatal(err)
	}

	e.Stop()
	if _, err := put("during"); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("update with etcd down: %v, want ErrUnavailable", err)
	}
	if err := s.View(ctx, func(r store.Reader) error { _, err := store.List[rec](r, store.Networks); return err }); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("view with etcd down: %v, want ErrUnavailable", err)
	}
	if _, err := store.OpenEtcd(ctx, store.EtcdConfig{Endpoints: []string{e.Endpoint()}, RequestTimeout: time.Second}); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("open with etcd down: %v, want ErrUnavailable", err)
	}

	if err := e.Start(); err != nil {
		t.Fatal(err)
	}
	// The client reconnects with a backoff: retry as a client of a 503
	// would.
	var rev int64
	for attempt := 0; ; attempt++ {
		rev, err = put("after")
		if err == nil {
			break
		}
		if !errors.Is(err, store.ErrUnavailable) || attempt == 60 {
			t.Fatalf("update after etcd came back: %v", err)
		}
	}
	for {
		select {
		case got := <-watch:
			if got == rev {
				s.View(ctx, func(r store.Reader) error {
					if n, err := store.Get[rec](r, store.Networks, "n"); err != nil || n.Name != "after" {
						t.Errorf("after recovery: %v %v", n, err)
					}
					return nil
				})
				return
			}
		case <-time.After(60 * time.Second):
			t.Fatalf("the watch never gave revision %d after etcd came back", rev)
		}
	}
}

// TestEtcdWatchAfterCompactionSendsCurrent: a watch that resumes from a
// revision compacted away (as after a long disconnection) cannot replay
// what it missed, so it sends the current revision at once, for the
// watcher to re-read everything, and then follows new commits.
func TestEtcdWatchAfterCompactionSendsCurrent(t *testing.T) {
	e := storetest.StartEtcd(t)
	s, err := store.OpenEtcd(context.Background(), store.EtcdConfig{Endpoints: []string{e.Endpoint()}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{e.Endpoint()}})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var revs []int64
	for _, id := range []string{"a", "b", "c"} {
		rev, err := s.Update(ctx, func(tx store.Txn) error { return tx.Put(store.Trunks, id, rec{id}) })
		if err != nil {
			t.Fatal(err)
		}
		revs = append(revs, rev)
	}
	if _, err := cli.Compact(ctx, revs[2]); err != nil {
		t.Fatal(err)
	}
	ch := s.WatchFrom(ctx, revs[0]+1)
	recv := func(what string) int64 {
		select {
		case rev := <-ch:
			return rev
		case <-time.After(30 * time.Second):
			t.Fatalf("the watch gave nothing: %s", what)
			return 0
		}
	}
	if got := recv("after the compaction"); got < revs[2] {
		t.Errorf("watch from a compacted revision gave %d, want the current revision, at least %d", got, revs[2])
	}
	rev, err := s.Update(ctx, func(tx store.Txn) error { return tx.Put(store.Trunks, "d", rec{"d"}) })
	if err != nil {
		t.Fatal(err)
	}
	for got := recv("the commit after"); got != rev; got = recv("the commit after") {
		if got > rev {
			t.Fatalf("watch gave %d, past the commit %d", got, rev)
		}
	}
}

// TestEtcdTransactionSizes: a transaction may read any number of records
// (many reads of a kind are checked through its generation, within
// etcd's bound on a transaction's operations, --max-txn-ops, 128 by
// default); one that writes more records than that bound fails, saying
// so, and writes nothing.
func TestEtcdTransactionSizes(t *testing.T) {
	s := storetest.OpenEtcd(t)
	ctx := context.Background()
	const n = 100
	if _, err := s.Update(ctx, func(tx store.Txn) error {
		for i := range n {
			if err := tx.Put(store.Ports, fmt.Sprintf("p%03d", i), rec{"p"}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// Reads of 200 keys of two kinds (half of them missing), one write.
	if _, err := s.Update(ctx, func(tx store.Txn) error {
		for i := range 2 * n {
			for _, kind := range []store.Kind{store.Ports, store.Instances} {
				if _, err := store.Get[rec](tx, kind, fmt.Sprintf("p%03d", i)); err != nil && !errors.Is(err, store.ErrNotFound) {
					return err
				}
			}
		}
		return tx.Put(store.Networks, "n", rec{"n"})
	}); err != nil {
		t.Errorf("a transaction of many reads: %v", err)
	}
	_, err := s.Update(ctx, func(tx store.Txn) error {
		for i := range 200 {
			if err := tx.Put(store.Instances, fmt.Sprintf("i%03d", i), rec{"i"}); err != nil {
				return err
			}
		}
		return nil
	})
	var tooLarge *store.TooLargeError
	if !errors.As(err, &tooLarge) || !errors.Is(err, store.ErrTooLarge) || tooLarge.Writes != 201 || tooLarge.Limit != 128 ||
		!strings.Contains(err.Error(), "--max-txn-ops") {
		t.Errorf("a transaction of 200 writes: %v, want a TooLargeError of 201 operations past 128 naming --max-txn-ops", err)
	}
	// A store told a higher bound than the cluster's sends the commit,
	// and etcd's refusal is the same error, without the bound.
	raised, err := store.OpenEtcd(ctx, store.EtcdConfig{Endpoints: s.Endpoints(), Prefix: s.Prefix(), MaxTxnOps: 1000})
	if err != nil {
		t.Fatal(err)
	}
	defer raised.Close()
	_, err = raised.Update(ctx, func(tx store.Txn) error {
		for i := range 200 {
			if err := tx.Put(store.Instances, fmt.Sprintf("i%03d", i), rec{"i"}); err != nil {
				return err
			}
		}
		return nil
	})
	if !errors.As(err, &tooLarge) || tooLarge.Writes != 201 || tooLarge.Limit != 0 {
		t.Errorf("a transaction of 200 writes past etcd's bound: %v, want a TooLargeError of 201 operations", err)
	}
	s.View(ctx, func(r store.Reader) error {
		if got, _ := store.List[rec](r, store.Instances); len(got) != 0 {
			t.Errorf("the failed transaction left %d instances", len(got))
		}
		return nil
	})
}

// TestEtcdStoresShareAPrefix: two stores on one prefix, as two hosts'
// daemons are, see each other's records, and each one's watch wakes for
// the other's commits.
func TestEtcdStoresShareAPrefix(t *testing.T) {
	a := storetest.OpenEtcd(t)
	cfg, err := store.ParseEtcdURL("etcd://" + a.Endpoints()[0] + a.Prefix())
	if err != nil {
		t.Fatal(err)
	}
	b, err := store.OpenEtcd(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	watchB := b.Watch(ctx)
	rev, err := a.Update(ctx, func(tx store.Txn) error { return tx.Put(store.Agents, "host-a", rec{"a"}) })
	if err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-watchB:
		if got != rev {
			t.Errorf("b's watch gave %d, want a's commit %d", got, rev)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("b's watch never saw a's commit")
	}
	b.View(ctx, func(r store.Reader) error {
		if got, err := store.Get[rec](r, store.Agents, "host-a"); err != nil || got.Name != "a" || r.Revision() < rev {
			t.Errorf("b reads a's record as %v, %v at revision %d (commit %d)", got, err, r.Revision(), rev)
		}
		return nil
	})
}

// TestEtcdWritersOfOneProcessDoNotRetry: concurrent Updates through one
// store that all list a kind and write to it run one at a time, so none
// runs twice (optimistically, each commit made every other one retry: 500
// concurrent port creates through the API mostly timed out).
func TestEtcdWritersOfOneProcessDoNotRetry(t *testing.T) {
	s := storetest.OpenEtcd(t)
	ctx := context.Background()
	const writers = 20
	var runs atomic.Int32
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			if _, err := s.Update(ctx, func(tx store.Txn) error {
				runs.Add(1)
				if _, err := store.List[rec](tx, store.Ports); err != nil {
					return err
				}
				return tx.Put(store.Ports, fmt.Sprint(i), rec{"p"})
			}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := runs.Load(); n != writers {
		t.Errorf("%d Updates ran their functions %d times, want once each", writers, n)
	}
}

// TestEtcdWatchEndsWithTheStore: closing the store closes its watches,
// instead of leaving them retrying a closed client.
func TestEtcdWatchEndsWithTheStore(t *testing.T) {
	s := storetest.OpenPeer(t, storetest.OpenEtcd(t))
	ch := s.Watch(context.Background())
	s.Close()
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-time.After(30 * time.Second):
			t.Fatal("the watch of a closed store never closed")
		}
	}
}

// TestEtcdChangeLogResumes: the change log's watch, cut off, resumes
// after the last revision it delivered and loses none of the changes
// committed meanwhile; when etcd compacted those away before it resumed,
// the log says it cannot tell for the revisions before, and knows the
// changes after it started again.
func TestEtcdChangeLogResumes(t *testing.T) {
	e := storetest.StartEtcd(t)
	s, err := store.OpenEtcd(context.Background(), store.EtcdConfig{Endpoints: []string{e.Endpoint()}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	other := storetest.OpenPeer(t, s)
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{e.Endpoint()}})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx := context.Background()
	put := func(kind store.Kind, id string) int64 {
		t.Helper()
		rev, err := other.Update(ctx, func(tx store.Txn) error { return tx.Put(kind, id, rec{id}) })
		if err != nil {
			t.Fatal(err)
		}
		return rev
	}
	base := revision(t, s)
	if _, ok := s.ChangedSince(base); !ok {
		t.Fatalf("ChangedSince(%d), the current revision: not ok", base)
	}
	r1 := put(store.Networks, "n1")

	resume := s.PauseLogWatch()
	r2 := put(store.Ports, "p1")
	r3 := put(store.Subnets, "s1")
	resume()
	want := []store.Change{{Rev: r2, Kind: store.Ports, ID: "p1"}, {Rev: r3, Kind: store.Subnets, ID: "s1"}}
	if got, ok := changedSince(s, r1); !ok || !slices.Equal(got, want) {
		t.Errorf("ChangedSince(%d) after the watch resumed = %v, %v; want %v, ok", r1, got, ok, want)
	}

	resume = s.PauseLogWatch()
	put(store.Ports, "p2")
	r5 := put(store.Routers, "r1")
	if _, err := cli.Compact(ctx, r5); err != nil {
		t.Fatal(err)
	}
	resume()
	for _, since := range []int64{r1, r3} {
		if got, ok := s.ChangedSince(since); ok {
			t.Errorf("ChangedSince(%d) after a compaction the watch missed = %v, ok; want not ok", since, got)
		}
	}
	if got, ok := changedSince(s, r5); !ok || len(got) != 0 {
		t.Errorf("ChangedSince(%d), the revision the log started again at = %v, %v; want nothing, ok", r5, got, ok)
	}
	r6 := put(store.Ports, "p3")
	want = []store.Change{{Rev: r6, Kind: store.Ports, ID: "p3"}}
	if got, ok := changedSince(s, r5); !ok || !slices.Equal(got, want) {
		t.Errorf("ChangedSince(%d) = %v, %v; want %v, ok", r5, got, ok, want)
	}
}

// TestEtcdChangeLogForgets: past its bound the etcd store's log forgets
// its older half, whole revisions at a time, as bbolt's does, and says so
// to a reader that far behind.
func TestEtcdChangeLogForgets(t *testing.T) {
	defer store.SetMaxLog(5)()
	// An etcd of its own: its revisions are this test's commits alone.
	e := storetest.StartEtcd(t)
	s, err := store.OpenEtcd(context.Background(), store.EtcdConfig{Endpoints: []string{e.Endpoint()}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	base := revision(t, s)
	if _, ok := s.ChangedSince(base); !ok {
		t.Fatalf("ChangedSince(%d), the current revision: not ok", base)
	}
	var revs []int64
	for _, ids := range [][]string{{"a", "b"}, {"c"}, {"d", "e"}, {"f"}, {"g", "h", "i", "j", "k", "l"}} {
		rev, err := s.Update(ctx, func(tx store.Txn) error {
			for _, id := range ids {
				if err := tx.Put(store.Ports, id, rec{id}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		revs = append(revs, rev)
	}
	// Full at f, the log forgot a and b; full again within the last
	// revision, it forgot c, d and e, and never splits that revision:
	// it knows the changes after revs[2].
	for i, since := range []int64{base, revs[0], revs[1], revs[2], revs[3], revs[4]} {
		got, ok := s.ChangedSince(since)
		if wantOK := i >= 3; ok != wantOK {
			t.Errorf("ChangedSince(%d) ok = %v, want %v (%v)", since, ok, wantOK, got)
		}
		for _, c := range got {
			if c.Rev <= since {
				t.Errorf("ChangedSince(%d) names revision %d", since, c.Rev)
			}
		}
	}
	if got, _ := s.ChangedSince(revs[3]); len(got) != 6 {
		t.Errorf("ChangedSince(%d) = %v, want the 6 records of the last revision", revs[3], got)
	}
}

// TestEtcdChangesBetweenReadsHistory: etcd's change feed is its change
// log, which reads etcd's history: a process opened after a range of
// revisions committed (an API server restarted, a host's daemon that
// joined) still names what they changed, and one watch serves both
// ChangesBetween and ChangedSince.
func TestEtcdChangesBetweenReadsHistory(t *testing.T) {
	s := storetest.OpenEtcd(t)
	base := revision(t, s)
	r1 := write(t, s, map[store.Kind]map[string]*rec{store.ObjectStatuses: {"h|ports|p": {"p"}}})
	r2 := write(t, s, map[store.Kind]map[string]*rec{store.Ports: {"p": {"p"}}})

	later := storetest.OpenPeer(t, s)
	want := []store.Change{{Rev: r1, Kind: store.ObjectStatuses, ID: "h|ports|p"}}
	if got, ok := later.ChangesBetween(base, r1); !ok || !slices.Equal(got, want) {
		t.Errorf("ChangesBetween(%d, %d) of a store opened after = %v, %v; want %v, ok", base, r1, got, ok, want)
	}
	want = []store.Change{{Rev: r2, Kind: store.Ports, ID: "p"}}
	if got, ok := later.ChangedSince(r1); !ok || !slices.Equal(got, want) {
		t.Errorf("ChangedSince(%d) = %v, %v; want %v, ok", r1, got, ok, want)
	}
	if got, ok := later.ChangesBetween(r1, r2); !ok || !slices.Equal(got, want) {
		t.Errorf("ChangesBetween(%d, %d) = %v, %v; want %v, ok", r1, r2, got, ok, want)
	}
}

// TestEtcdRecordsBetween: the change feed with values hands each change
// the record as it left it (nil for a deletion), in revision order, for
// a process opened after the revisions too; the values stay with their
// changes when the log forgets its older half.
func TestEtcdRecordsBetween(t *testing.T) {
	s := storetest.OpenEtcd(t)
	base := revision(t, s)
	r1 := write(t, s, map[store.Kind]map[string]*rec{store.Ports: {"p": {"one"}, "q": {"q"}}})
	r2 := write(t, s, map[store.Kind]map[string]*rec{store.Ports: {"p": {"two"}}})
	r3 := write(t, s, map[store.Kind]map[string]*rec{store.Ports: {"q": nil}, store.Networks: {"n": {"n"}}})
	type got struct {
		rev   int64
		kind  store.Kind
		id    string
		value string
	}
	read := func(s *store.Etcd, from, to int64) []got {
		t.Helper()
		changes, ok := s.RecordsBetween(from, to)
		if !ok {
			t.Fatalf("RecordsBetween(%d, %d): not ok", from, to)
		}
		var out []got
		for _, c := range changes {
			v := "<deleted>"
			if c.Value != nil {
				var r rec
				if err := json.Unmarshal(c.Value, &r); err != nil {
					t.Fatal(err)
				}
				v = r.Name
			}
			out = append(out, got{c.Rev, c.Kind, c.ID, v})
		}
		return out
	}
	later := storetest.OpenPeer(t, s)
	for _, tc := range []struct {
		from, to int64
		want     []got
	}{
		{base, r1, []got{{r1, store.Ports, "p", "one"}, {r1, store.Ports, "q", "q"}}},
		{r1, r2, []got{{r2, store.Ports, "p", "two"}}},
		{base, r3, []got{{r1, store.Ports, "p", "one"}, {r1, store.Ports, "q", "q"}, {r2, store.Ports, "p", "two"},
			{r3, store.Networks, "n", "n"}, {r3, store.Ports, "q", "<deleted>"}}},
	} {
		if g := read(later, tc.from, tc.to); !slices.Equal(g, tc.want) {
			t.Errorf("RecordsBetween(%d, %d) = %v, want %v", tc.from, tc.to, g, tc.want)
		}
	}
	// A log of 3 changes at most: reading the history, it forgets r1's
	// two when r3's come, and keeps r2's and r3's with their values.
	defer store.SetMaxLog(3)()
	small := storetest.OpenPeer(t, s)
	if changes, ok := small.RecordsBetween(base, r3); ok {
		t.Errorf("RecordsBetween(%d, %d) of a log of 3 = %v, ok; want not ok (it forgot r1)", base, r3, changes)
	}
	want := []got{{r2, store.Ports, "p", "two"}, {r3, store.Networks, "n", "n"}, {r3, store.Ports, "q", "<deleted>"}}
	if g := read(small, r1, r3); !slices.Equal(g, want) {
		t.Errorf("RecordsBetween(%d, %d) of a log of 3 = %v, want %v", r1, r3, g, want)
	}
}

// TestEtcdWatchesShareOneWatch: a process's Watches and its change log
// are served by one etcd watch, so that a commit is one watch message to
// the process, however many readers follow it; each Watch still receives
// every commit's revision.
func TestEtcdWatchesShareOneWatch(t *testing.T) {
	e := storetest.StartEtcd(t)
	s, err := store.OpenEtcd(context.Background(), store.EtcdConfig{Endpoints: []string{e.Endpoint()}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w1, w2 := s.Watch(ctx), s.Watch(ctx)
	base := revision(t, s)
	if _, ok := s.ChangesBetween(base, base); !ok {
		t.Fatal("ChangesBetween of the current revision: not ok")
	}
	rev := write(t, s, map[store.Kind]map[string]*rec{store.Ports: {"p": {"p"}}})
	for i, w := range []<-chan int64{w1, w2} {
		select {
		case got := <-w:
			if got != rev {
				t.Errorf("watch %d delivered %d, want %d", i, got, rev)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("watch %d delivered nothing", i)
		}
	}
	if n := etcdWatchers(t, e.Endpoint()); n != 1 {
		t.Errorf("etcd has %d watchers for one process's two watches and change log, want 1", n)
	}
}

// etcdWatchers is etcd's count of its watchers, from its metrics.
func etcdWatchers(t *testing.T, endpoint string) int {
	t.Helper()
	resp, err := http.Get("http://" + endpoint + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, "etcd_debugging_mvcc_watcher_total "); ok {
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return int(n)
		}
	}
	t.Fatal("etcd's metrics have no etcd_debugging_mvcc_watcher_total")
	return 0
}

// TestEtcdChangeFeedsPastOtherKeys: a revision of a key outside the
// store's prefix (a host's beat), which the watch never delivers, is
// known all the same: no change of the store's records in it, ok — not a
// wait for a revision the log will never see, ended by the timeout.
func TestEtcdChangeFeedsPastOtherKeys(t *testing.T) {
	s := storetest.OpenEtcd(t)
	ctx := context.Background()
	r1 := write(t, s, map[store.Kind]map[string]*rec{store.Ports: {"p": {"p"}}})
	if _, ok := s.ChangesBetween(r1-1, r1); !ok {
		t.Fatalf("ChangesBetween(%d, %d): not ok", r1-1, r1)
	}
	if err := s.Beat(ctx, "h", time.Now(), time.Minute); err != nil {
		t.Fatal(err)
	}
	r2 := revision(t, s)
	if r2 <= r1 {
		t.Fatalf("the beat did not move etcd's revision past %d", r1)
	}
	if changes, ok := s.ChangesBetween(r1, r2); !ok || len(changes) != 0 {
		t.Errorf("ChangesBetween(%d, %d) over a beat = %v, %v; want none, ok", r1, r2, changes, ok)
	}
	if changes, ok := s.RecordsBetween(r1, r2); !ok || len(changes) != 0 {
		t.Errorf("RecordsBetween(%d, %d) over a beat = %v, %v; want none, ok", r1, r2, changes, ok)
	}
	r3 := write(t, s, map[store.Kind]map[string]*rec{store.Ports: {"q": {"q"}}})
	if changes, ok := s.ChangesBetween(r1, r3); !ok || len(changes) != 1 || changes[0].ID != "q" {
		t.Errorf("ChangesBetween(%d, %d) = %v, %v; want port q, ok", r1, r3, changes, ok)
	}
}
