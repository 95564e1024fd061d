package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/nsnet/nsnet/internal/store"
	"github.com/nsnet/nsnet/internal/store/storetest"
)

func TestMain(m *testing.M) { os.Exit(storetest.Main(m)) }

type rec struct{ Name string }

// backend is one implementation under the shared contract tests.
type backend struct {
	name string
	open func(tb testing.TB) store.Store
	// peer is another handle on the same records, as another process
	// (another host's daemon) has one: etcd's; bbolt has one process.
	peer func(tb testing.TB, s store.Store) store.Store
	// concurrent: the Updates of s and of its peer may run their
	// functions at once (etcd, from two processes); bbolt runs one
	// writer at a time.
	concurrent bool
	// forget makes the store lose its history up to rev (etcd compacts
	// it; a bbolt file is closed and opened again, its log starting
	// afresh) and returns a handle on the same records that never saw
	// that history.
	forget func(tb testing.TB, s store.Store, rev int64) store.Store
}

var backends = []backend{
	{name: "bolt", open: func(tb testing.TB) store.Store { return storetest.OpenBolt(tb, tb.TempDir()) },
		peer: func(_ testing.TB, s store.Store) store.Store { return s },
		forget: func(tb testing.TB, s store.Store, _ int64) store.Store {
			path := s.(*store.Bolt).Path()
			if err := s.Close(); err != nil {
				tb.Fatal(err)
			}
			s, err := store.OpenBolt(path)
			if err != nil {
				tb.Fatal(err)
			}
			tb.Cleanup(func() { s.Close() })
			return s
		}},
	{name: "etcd", open: func(tb testing.TB) store.Store { return storetest.OpenEtcd(tb) },
		peer:       func(tb testing.TB, s store.Store) store.Store { return storetest.OpenPeer(tb, s.(*store.Etcd)) },
		concurrent: true,
		forget: func(tb testing.TB, s store.Store, rev int64) store.Store {
			e := s.(*store.Etcd)
			cli, err := clientv3.New(clientv3.Config{Endpoints: e.Endpoints()})
			if err != nil {
				tb.Fatal(err)
			}
			defer cli.Close()
			if _, err := cli.Compact(context.Background(), rev); err != nil {
				tb.Fatal(err)
			}
			return storetest.OpenPeer(tb, e)
		}},
}

// each runs test over every backend.
func each(t *testing.T, test func(t *testing.T, b backend, s store.Store)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { test(t, b, b.open(t)) })
	}
}

// eachKind runs test over every backend, once with kind and once with a
// report kind (store.ReportKind), which a store may keep apart from the
// records of desired state (bbolt keeps them in memory) but under the
// same contract.
func eachKind(t *testing.T, kind store.Kind, test func(t *testing.T, b backend, s store.Store, kind store.Kind)) {
	for _, k := range []store.Kind{kind, store.ObjectStatuses} {
		t.Run(string(k), func(t *testing.T) {
			each(t, func(t *testing.T, b backend, s store.Store) { test(t, b, s, k) })
		})
	}
}

func revision(t *testing.T, s store.Store) int64 {
	t.Helper()
	var rev int64
	if err := s.View(context.Background(), func(r store.Reader) error { rev = r.Revision(); return nil }); err != nil {
		t.Fatal(err)
	}
	return rev
}

func TestUpdateIsAllOrNothing(t *testing.T) {
	eachKind(t, store.Networks, func(t *testing.T, _ backend, s store.Store, kind store.Kind) {
		ctx := context.Background()
		base := revision(t, s)
		rev, err := s.Update(ctx, func(tx store.Txn) error { return tx.Put(kind, "a", rec{"a"}) })
		if err != nil || rev <= base {
			t.Fatalf("first update: rev=%d (before: %d) err=%v", rev, base, err)
		}
		boom := errors.New("boom")
		if _, err := s.Update(ctx, func(tx store.Txn) error {
			if err := tx.Put(kind, "b", rec{"b"}); err != nil {
				return err
			}
			return boom
		}); !errors.Is(err, boom) {
			t.Fatalf("failed update returned %v", err)
		}
		s.View(ctx, func(r store.Reader) error {
			if _, err := store.Get[rec](r, kind, "b"); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("write of a failed transaction is visible: %v", err)
			}
			if r.Revision() != rev {
				t.Errorf("revision %d after a failed update, want %d", r.Revision(), rev)
			}
			return nil
		})
		// A transaction that writes nothing does not advance the revision.
		if got, _ := s.Update(ctx, func(tx store.Txn) error { return nil }); got != rev {
			t.Errorf("read-only update moved revision from %d to %d", rev, got)
		}
	})
}

// TestTxnSeesItsOwnWrites: Get and List inside a transaction show its
// puts and deletes, List in id order.
func TestTxnSeesItsOwnWrites(t *testing.T) {
	eachKind(t, store.Ports, func(t *testing.T, _ backend, s store.Store, kind store.Kind) {
		ctx := context.Background()
		if _, err := s.Update(ctx, func(tx store.Txn) error {
			for _, id := range []string{"b", "d", "a"} {
				if err := tx.Put(kind, id, rec{id}); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Update(ctx, func(tx store.Txn) error {
			if err := tx.Put(kind, "c", rec{"c"}); err != nil {
				return err
			}
			if err := tx.Put(kind, "a", rec{"A"}); err != nil {
				return err
			}
			if err := tx.Delete(kind, "d"); err != nil {
				return err
			}
			if got, err := store.Get[rec](tx, kind, "c"); err != nil || got.Name != "c" {
				t.Errorf("Get of own put: %v %v", got, err)
			}
			if _, err := store.Get[rec](tx, kind, "d"); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("Get of own delete: %v", err)
			}
			got, err := store.List[rec](tx, kind)
			if want := []rec{{"A"}, {"b"}, {"c"}}; err != nil || !slices.Equal(got, want) {
				t.Errorf("List in the transaction = %v, %v; want %v", got, err, want)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		s.View(ctx, func(r store.Reader) error {
			got, err := store.List[rec](r, kind)
			if want := []rec{{"A"}, {"b"}, {"c"}}; err != nil || !slices.Equal(got, want) {
				t.Errorf("List after commit = %v, %v; want %v", got, err, want)
			}
			if err := r.Get("nonsense", "x", &rec{}); err == nil || errors.Is(err, store.ErrNotFound) {
				t.Errorf("Get of an unknown kind: %v, want an error", err)
			}
			return nil
		})
	})
}

func TestWatchSeesEveryCommitCoalesced(t *testing.T) {
	eachKind(t, store.Ports, func(t *testing.T, _ backend, s store.Store, kind store.Kind) {
		ctx, cancel := context.WithCancel(context.Background())
		ch := s.Watch(ctx)
		// The first update also proves the watch is established: wait for
		// it before the rest, so that none is lost to a watch not yet
		// started (bbolt's is at once, etcd's is a stream).
		var last int64
		for i := range 5 {
			rev, err := s.Update(ctx, func(tx store.Txn) error { return tx.Put(kind, "p", rec{fmt.Sprint(i)}) })
			if err != nil {
				t.Fatal(err)
			}
			last = rev
		}
		var seen []int64
		for len(seen) == 0 || seen[len(seen)-1] < last {
			select {
			case rev := <-ch:
				seen = append(seen, rev)
			case <-time.After(30 * time.Second):
				t.Fatalf("watch saw %v, never %d", seen, last)
			}
		}
		if !slices.IsSorted(seen) || seen[len(seen)-1] != last {
			t.Errorf("watch gave %v, want increasing revisions ending at the newest, %d", seen, last)
		}
		cancel()
		for range ch {
		}
	})
}

// TestConcurrentUpdatesLoseNoWrite: goroutines increment counters, some
// the same record and some each its own, through three handles on the
// store (three processes, on etcd); every increment counts.
func TestConcurrentUpdatesLoseNoWrite(t *testing.T) {
	eachKind(t, store.Quotas, func(t *testing.T, b backend, s store.Store, kind store.Kind) {
		handles := []store.Store{s, b.peer(t, s), b.peer(t, s)}
		type counter struct{ N int }
		const workers, increments = 6, 15
		ctx := context.Background()
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		for w := range workers {
			wg.Go(func() {
				for range increments {
					for _, id := range []string{"shared", fmt.Sprintf("own-%d", w)} {
						if _, err := handles[w%len(handles)].Update(ctx, func(tx store.Txn) error {
							c, err := store.Get[counter](tx, kind, id)
							if err != nil && !errors.Is(err, store.ErrNotFound) {
								return err
							}
							c.N++
							return tx.Put(kind, id, c)
						}); err != nil {
							errs <- err
							return
						}
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		s.View(ctx, func(r store.Reader) error {
			want := map[string]int{"shared": workers * increments}
			for w := range workers {
				want[fmt.Sprintf("own-%d", w)] = increments
			}
			for id, n := range want {
				if c, err := store.Get[counter](r, kind, id); err != nil || c.N != n {
					t.Errorf("counter %s = %d (%v), want %d", id, c.N, err, n)
				}
			}
			return nil
		})
	})
}

// TestListThenPutConflicts: two writers (two processes, on etcd) each
// check that a name is unused by listing, then take it; only one may
// succeed, the other must see the first's record when it runs again.
func TestListThenPutConflicts(t *testing.T) {
	// A Range is a read of the kind too (the service's index lookups).
	reads := []struct {
		name string
		read func(tx store.Txn) ([]rec, error)
	}{
		{"list", func(tx store.Txn) ([]rec, error) { return store.List[rec](tx, store.Networks) }},
		{"range", func(tx store.Txn) ([]rec, error) {
			var names []rec
			err := tx.Range(store.Networks, "net-", "net.", func(_ string, raw []byte) error {
				var r rec
				names = append(names, r)
				return json.Unmarshal(raw, &names[len(names)-1])
			})
			return names, err
		}},
	}
	for _, rd := range reads {
		t.Run(rd.name, func(t *testing.T) { listThenPutConflicts(t, rd.read) })
	}
}

func listThenPutConflicts(t *testing.T, read func(store.Txn) ([]rec, error)) {
	each(t, func(t *testing.T, b backend, s store.Store) {
		handles := []store.Store{s, b.peer(t, s)}
		ctx := context.Background()
		errTaken := errors.New("name taken")
		// On etcd, both first attempts read before either commits.
		var ready sync.WaitGroup
		ready.Add(2)
		var wg sync.WaitGroup
		results := make([]error, 2)
		runs := make([]int, 2)
		for i := range 2 {
			wg.Go(func() {
				_, results[i] = handles[i].Update(ctx, func(tx store.Txn) error {
					runs[i]++
					names, err := read(tx)
					if err != nil {
						return err
					}
					if b.concurrent && runs[i] == 1 {
						ready.Done()
						ready.Wait()
					}
					for _, n := range names {
						if n.Name == "web" {
							return errTaken
						}
					}
					return tx.Put(store.Networks, fmt.Sprintf("net-%d", i), rec{"web"})
				})
			})
		}
		wg.Wait()
		ok, taken := 0, 0
		for _, err := range results {
			switch {
			case err == nil:
				ok++
			case errors.Is(err, errTaken):
				taken++
			default:
				t.Fatal(err)
			}
		}
		if ok != 1 || taken != 1 {
			t.Errorf("%d writers took the name and %d found it taken, want 1 and 1 (runs %v)", ok, taken, runs)
		}
		if b.concurrent && runs[0]+runs[1] < 3 {
			t.Errorf("runs %v: the losing writer did not run again", runs)
		}
		s.View(ctx, func(r store.Reader) error {
			if got, _ := store.List[rec](r, store.Networks); len(got) != 1 {
				t.Errorf("networks %v, want one", got)
			}
			return nil
		})
	})
}

// TestRange: ids in [from, to) in order, an open end, an early Stop,
// nothing of the kinds or ids around the range, a transaction's own writes
// merged in, and more records than etcd's store reads at a time.
func TestRange(t *testing.T) {
	eachKind(t, store.Indexes, func(t *testing.T, _ backend, s store.Store, kind store.Kind) {
		ctx := context.Background()
		many := make([]string, 150)
		for i := range many {
			many[i] = fmt.Sprintf("m/%03d", i)
		}
		// In chunks: etcd allows 128 operations in a transaction.
		for ids := range slices.Chunk(append([]string{"a/1", "a/2", "a/3", "ab", "b/1"}, many...), 50) {
			if _, err := s.Update(ctx, func(tx store.Txn) error {
				for _, id := range ids {
					if err := tx.Put(kind, id, rec{id}); err != nil {
						return err
					}
				}
				return tx.Put(store.Ports, "a/9", rec{"port"})
			}); err != nil {
				t.Fatal(err)
			}
		}
		rangeIDs := func(r store.Reader, from, to, stopAt string) ([]string, error) {
			var got []string
			err := r.Range(kind, from, to, func(id string, raw []byte) error {
				var v rec
				if err := json.Unmarshal(raw, &v); err != nil || v.Name != id && v.Name != "new "+id {
					return fmt.Errorf("record %s is %s (%v)", id, raw, err)
				}
				got = append(got, id)
				if id == stopAt {
					return store.Stop
				}
				return nil
			})
			return got, err
		}
		for _, tc := range []struct {
			from, to, stopAt string
			want             []string
		}{
			{from: "a/", to: "a0", want: []string{"a/1", "a/2", "a/3"}},
			{from: "a/2", to: "a0", want: []string{"a/2", "a/3"}},
			{from: "a/25", to: "m", want: []string{"a/3", "ab", "b/1"}},
			{from: "a/", to: "a0", stopAt: "a/2", want: []string{"a/1", "a/2"}},
			{from: "n", want: nil},
			{to: "a/2", want: []string{"a/1"}},
			{from: "m/", to: "m0", want: many},
			{from: "m/100", stopAt: "m/102", want: many[100:103]},
		} {
			s.View(ctx, func(r store.Reader) error {
				if got, err := rangeIDs(r, tc.from, tc.to, tc.stopAt); err != nil || !slices.Equal(got, tc.want) {
					t.Errorf("Range(%q, %q) stopping at %q = %q, %v; want %q", tc.from, tc.to, tc.stopAt, got, err, tc.want)
				}
				return nil
			})
		}
		// In a transaction, its own writes are in its ranges, beyond
		// the first batch too.
		if _, err := s.Update(ctx, func(tx store.Txn) error {
			for _, w := range []struct {
				id  string
				del bool
			}{{"a/25", false}, {"a/3", true}, {"m/000", true}, {"m/0995", false}, {"m/149", false}, {"m/150", false}} {
				var err error
				if w.del {
					err = tx.Delete(kind, w.id)
				} else {
					err = tx.Put(kind, w.id, rec{"new " + w.id})
				}
				if err != nil {
					return err
				}
			}
			want := slices.Concat(many[1:100], []string{"m/0995"}, many[100:], []string{"m/150"})
			if got, err := rangeIDs(tx, "m/", "m0", ""); err != nil || !slices.Equal(got, want) {
				t.Errorf("Range in the transaction = %q, %v; want %q", got, err, want)
			}
			if got, err := rangeIDs(tx, "a/", "a0", ""); err != nil || !slices.Equal(got, []string{"a/1", "a/2", "a/25"}) {
				t.Errorf("Range of a/ in the transaction = %q, %v", got, err)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	})
}

// TestRetryingRunsTwiceCommitsOnce: the discarded attempt leaves nothing,
// a write committed between the attempts is what the real one sees, and
// an error from the first attempt ends the Update.
func TestRetryingRunsTwiceCommitsOnce(t *testing.T) {
	each(t, func(t *testing.T, _ backend, b store.Store) {
		ctx := context.Background()
		base := revision(t, b)
		r := store.NewRetrying(b)
		var between int64
		r.Between(func(ctx context.Context) {
			rev, err := b.Update(ctx, func(tx store.Txn) error { return tx.Put(store.Networks, "other", rec{"between"}) })
			if err != nil {
				t.Error(err)
			}
			between = rev
		})
		var seen []bool
		rev, err := r.Update(ctx, func(tx store.Txn) error {
			_, err := store.Get[rec](tx, store.Networks, "other")
			seen = append(seen, err == nil)
			return tx.Put(store.Networks, "a", rec{"a"})
		})
		if err != nil {
			t.Fatal(err)
		}
		if want := []bool{false, true}; !slices.Equal(seen, want) {
			t.Errorf("attempts saw the write between them: %v, want %v", seen, want)
		}
		// One revision for the write between, one for the real attempt:
		// the discarded one committed nothing.
		if !(base < between && between < rev) || r.Attempts() != 2 {
			t.Errorf("revisions %d < %d < %d after %d attempts, want increasing after 2", base, between, rev, r.Attempts())
		}
		r.Between(nil)

		boom := errors.New("boom")
		runs := 0
		if _, err := r.Update(ctx, func(tx store.Txn) error { runs++; tx.Put(store.Networks, "b", rec{"b"}); return boom }); !errors.Is(err, boom) || runs != 1 {
			t.Errorf("failing fn: err %v after %d runs, want boom after 1", err, runs)
		}
		r.View(ctx, func(rd store.Reader) error {
			if _, err := store.Get[rec](rd, store.Networks, "b"); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("failed update left b: %v", err)
			}
			if rd.Revision() != rev {
				t.Errorf("revision %d, want %d", rd.Revision(), rev)
			}
			return nil
		})
	})
}

// BenchmarkStore: a read-modify-write Update of one record, and a View
// listing 500 records, on each backend.
func BenchmarkStore(b *testing.B) {
	type counter struct{ N int }
	ctx := context.Background()
	for _, be := range backends {
		b.Run(be.name+"/update", func(b *testing.B) {
			s := be.open(b)
			for b.Loop() {
				if _, err := s.Update(ctx, func(tx store.Txn) error {
					c, err := store.Get[counter](tx, store.Quotas, "c")
					if err != nil && !errors.Is(err, store.ErrNotFound) {
						return err
					}
					c.N++
					return tx.Put(store.Quotas, "c", c)
				}); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(be.name+"/list500", func(b *testing.B) {
			s := be.open(b)
			for i := range 5 {
				if _, err := s.Update(ctx, func(tx store.Txn) error {
					for j := range 100 {
						if err := tx.Put(store.Ports, fmt.Sprintf("p%d-%03d", i, j), rec{"port"}); err != nil {
							return err
						}
					}
					return nil
				}); err != nil {
					b.Fatal(err)
				}
			}
			for b.Loop() {
				if err := s.View(ctx, func(r store.Reader) error {
					got, err := store.List[rec](r, store.Ports)
					if err == nil && len(got) != 500 {
						err = fmt.Errorf("listed %d", len(got))
					}
					return err
				}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestChangesBetweenNamesWhatARevisionDelivered: once a watch delivered a
// revision, the store's change feed names the records of every revision
// up to it — other processes' commits too, on etcd — and says when it
// does not know a range (its log does not reach back to it: the store's
// history is gone; or not yet seen), so that a watcher can tell
// report-only revisions (store.OnlyReports) from others.
func TestChangesBetweenNamesWhatARevisionDelivered(t *testing.T) {
	each(t, func(t *testing.T, b backend, s store.Store) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		feed, ok := s.(store.ChangeFeed)
		if !ok {
			t.Fatalf("%s offers no ChangeFeed", b.name)
		}
		peer := b.peer(t, s)
		ch := s.Watch(ctx)
		start, err := s.Update(ctx, func(tx store.Txn) error { return tx.Put(store.Networks, "n", rec{"n"}) })
		if err != nil {
			t.Fatal(err)
		}
		for rev := int64(0); rev < start; {
			rev = <-ch
		}
		type write struct {
			kind store.Kind
			id   string
			del  bool
		}
		writes := [][]write{
			{{kind: store.ObjectStatuses, id: "h|ports|p"}},
			{{kind: store.Ports, id: "p"}, {kind: store.Indexes, id: "i"}},
			{{kind: store.HostPasses, id: "h"}, {kind: store.PortCounters, id: "h|p"}},
			{{kind: store.ObjectStatuses, id: "h|ports|p", del: true}},
		}
		var revs []int64
		for i, w := range writes {
			st := s
			if i%2 == 1 {
				st = peer // another process's commits, on etcd
			}
			rev, err := st.Update(ctx, func(tx store.Txn) error {
				for _, x := range w {
					if x.del {
						if err := tx.Delete(x.kind, x.id); err != nil {
							return err
						}
					} else if err := tx.Put(x.kind, x.id, rec{x.id}); err != nil {
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
		last := revs[len(revs)-1]
		if _, ok := feed.ChangesBetween(start, last+1000); ok {
			t.Errorf("ChangesBetween(%d, %d): ok past the newest revision", start, last+1000)
		}
		for rev := int64(0); rev < last; {
			select {
			case rev = <-ch:
			case <-time.After(30 * time.Second):
				t.Fatalf("watch never delivered %d", last)
			}
		}
		for _, tc := range []struct {
			from, to int64
			want     []store.Change
			reports  bool
		}{
			{from: start, to: revs[0], want: []store.Change{{Rev: revs[0], Kind: store.ObjectStatuses, ID: "h|ports|p"}}, reports: true},
			{from: revs[0], to: revs[1], want: []store.Change{{Rev: revs[1], Kind: store.Indexes, ID: "i"}, {Rev: revs[1], Kind: store.Ports, ID: "p"}}},
			{from: revs[1], to: last, want: []store.Change{{Rev: revs[2], Kind: store.HostPasses, ID: "h"}, {Rev: revs[2], Kind: store.PortCounters, ID: "h|p"},
				{Rev: revs[3], Kind: store.ObjectStatuses, ID: "h|ports|p"}}, reports: true},
			{from: last, to: last, want: nil, reports: true},
		} {
			got, ok := feed.ChangesBetween(tc.from, tc.to)
			if !ok {
				t.Errorf("ChangesBetween(%d, %d): not known", tc.from, tc.to)
				continue
			}
			// Within a revision, the order is the store's.
			slices.SortFunc(got, func(a, b store.Change) int {
				if a.Rev != b.Rev {
					return int(a.Rev - b.Rev)
				}
				return strings.Compare(string(a.Kind), string(b.Kind))
			})
			if !slices.Equal(got, tc.want) {
				t.Errorf("ChangesBetween(%d, %d) = %v, want %v", tc.from, tc.to, got, tc.want)
			}
			if store.OnlyReports(got) != tc.reports {
				t.Errorf("OnlyReports(ChangesBetween(%d, %d)) = %v, want %v", tc.from, tc.to, !tc.reports, tc.reports)
			}
		}

		// With the history gone (etcd compacted it, a bbolt file was
		// opened again), a range reaching back into it is not known; one
		// after it is, once a watch delivered its end.
		fresh := b.forget(t, s, last)
		ffeed := fresh.(store.ChangeFeed)
		if got, ok := ffeed.ChangesBetween(start, last); ok {
			t.Errorf("ChangesBetween(%d, %d) with the history gone = %v, ok; want not ok", start, last, got)
		}
		now := revision(t, fresh)
		fch := fresh.Watch(ctx)
		rev, err := b.peer(t, fresh).Update(ctx, func(tx store.Txn) error { return tx.Put(store.Ports, "q", rec{"q"}) })
		if err != nil {
			t.Fatal(err)
		}
		for got := int64(0); got < rev; {
			select {
			case got = <-fch:
			case <-time.After(30 * time.Second):
				t.Fatalf("watch never delivered %d", rev)
			}
		}
		want := []store.Change{{Rev: rev, Kind: store.Ports, ID: "q"}}
		if got, ok := ffeed.ChangesBetween(now, rev); !ok || !slices.Equal(got, want) {
			t.Errorf("ChangesBetween(%d, %d) after the history went = %v, %v; want %v, ok", now, rev, got, ok, want)
		}
	})
}

// changedSince is log.ChangedSince(rev) with each change named once, in
// revision order and by kind and id within a revision: the contract lets
// a log name a change more than once, and orders only revisions.
func changedSince(log store.ChangeLog, rev int64) ([]store.Change, bool) {
	got, ok := log.ChangedSince(rev)
	slices.SortFunc(got, func(a, b store.Change) int {
		if a.Rev != b.Rev {
			return int(a.Rev - b.Rev)
		}
		if a.Kind != b.Kind {
			return strings.Compare(string(a.Kind), string(b.Kind))
		}
		return strings.Compare(a.ID, b.ID)
	})
	return slices.Compact(got), ok
}

// write commits puts (and deletes: a nil value) of records of several
// kinds in one Update and returns its revision.
func write(t *testing.T, s store.Store, recs map[store.Kind]map[string]*rec) int64 {
	t.Helper()
	rev, err := s.Update(context.Background(), func(tx store.Txn) error {
		for kind, byID := range recs {
			for id, r := range byID {
				var err error
				if r == nil {
					err = tx.Delete(kind, id)
				} else {
					err = tx.Put(kind, id, *r)
				}
				if err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return rev
}

// TestChangeLog: the change log contract. Asked right after commits —
// this handle's and another process's — the log names every record they
// put or deleted, of every kind, with the revision that did, and nothing
// of a failed transaction's; it answers for any revision it has followed
// since; and once the store's history is gone (etcd compacted it, a
// bbolt file was opened again), it says it cannot tell, until asked
// about a revision it saw.
func TestChangeLog(t *testing.T) {
	each(t, func(t *testing.T, b backend, s store.Store) {
		ctx := context.Background()
		log, ok := s.(store.ChangeLog)
		if !ok {
			t.Fatalf("%T has no change log", s)
		}
		base := revision(t, s)
		if got, ok := changedSince(log, base); !ok || len(got) != 0 {
			t.Fatalf("ChangedSince(%d) of a new store = %v, %v; want nothing, ok", base, got, ok)
		}
		peer := b.peer(t, s)
		r1 := write(t, s, map[store.Kind]map[string]*rec{store.Networks: {"n1": {"n1"}}})
		r2 := write(t, peer, map[store.Kind]map[string]*rec{store.Ports: {"p1": {"p1"}, "p2": {"p2"}}, store.Subnets: {"s/1": {"s1"}}})
		r3 := write(t, s, map[store.Kind]map[string]*rec{store.Ports: {"p1": nil}, store.Indexes: {"port.dev/d/p2": {"p2"}}})
		if _, err := s.Update(ctx, func(tx store.Txn) error {
			tx.Put(store.Routers, "failed", rec{"failed"})
			return errors.New("boom")
		}); err == nil {
			t.Fatal("a failing update succeeded")
		}
		if _, err := s.Update(ctx, func(tx store.Txn) error { return nil }); err != nil {
			t.Fatal(err)
		}
		all := []store.Change{{Rev: r1, Kind: store.Networks, ID: "n1"},
			{Rev: r2, Kind: store.Ports, ID: "p1"}, {Rev: r2, Kind: store.Ports, ID: "p2"}, {Rev: r2, Kind: store.Subnets, ID: "s/1"},
			{Rev: r3, Kind: store.Indexes, ID: "port.dev/d/p2"}, {Rev: r3, Kind: store.Ports, ID: "p1"}}
		for _, tc := range []struct {
			since int64
			want  []store.Change
		}{{base, all}, {r1, all[1:]}, {r2, all[4:]}, {r3, nil}} {
			if got, ok := changedSince(log, tc.since); !ok || !slices.Equal(got, tc.want) {
				t.Errorf("ChangedSince(%d) = %v, %v; want %v, ok", tc.since, got, ok, tc.want)
			}
		}

		// Each commit of another process is known as soon as it returns.
		last := r3
		for i := range 20 {
			id := fmt.Sprintf("p%02d", i)
			rev := write(t, peer, map[store.Kind]map[string]*rec{store.Ports: {id: {id}}})
			want := []store.Change{{Rev: rev, Kind: store.Ports, ID: id}}
			if got, ok := changedSince(log, last); !ok || !slices.Equal(got, want) {
				t.Fatalf("ChangedSince(%d) right after commit %d = %v, %v; want %v, ok", last, rev, got, ok, want)
			}
			last = rev
		}

		fresh := b.forget(t, s, last)
		flog := fresh.(store.ChangeLog)
		if got, ok := flog.ChangedSince(r2); ok {
			t.Errorf("ChangedSince(%d) with the history gone = %v, ok; want not ok", r2, got)
		}
		now := revision(t, fresh)
		if got, ok := changedSince(flog, now); !ok || len(got) != 0 {
			t.Errorf("ChangedSince(%d), the current revision, after the history went = %v, %v; want nothing, ok", now, got, ok)
		}
		rev := write(t, fresh, map[store.Kind]map[string]*rec{store.Routers: {"r": {"r"}}, store.Ports: {"p00": nil}})
		want := []store.Change{{Rev: rev, Kind: store.Ports, ID: "p00"}, {Rev: rev, Kind: store.Routers, ID: "r"}}
		if got, ok := changedSince(flog, now); !ok || !slices.Equal(got, want) {
			t.Errorf("ChangedSince(%d) after the history went = %v, %v; want %v, ok", now, got, ok, want)
		}
	})
}
