package store_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nsnet/nsnet/internal/store"
	"github.com/nsnet/nsnet/internal/store/storetest"
)

// TestBoltReportsCommitNoFile: a transaction that writes only report
// kinds commits no bbolt transaction (no fdatasync), yet is a revision
// like any other: readers see it, and watchers wake for it. One that
// writes desired state commits the file, reports with it or not.
func TestBoltReportsCommitNoFile(t *testing.T) {
	defer store.SetFileReportsAfter(time.Hour)()
	for _, tc := range []struct {
		name      string
		kinds     []store.Kind
		wantFiled bool
	}{
		{"statuses", []store.Kind{store.ObjectStatuses}, false},
		{"passes", []store.Kind{store.HostPasses}, false},
		{"counters", []store.Kind{store.PortCounters}, false},
		{"every report kind", []store.Kind{store.HostPasses, store.ObjectStatuses, store.PortCounters}, false},
		{"desired state", []store.Kind{store.Ports}, true},
		{"desired state and reports", []store.Kind{store.Ports, store.ObjectStatuses}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := storetest.OpenBolt(t, t.TempDir())
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			watch := s.Watch(ctx)
			before, rev0 := s.FileTxID(t), revision(t, s)
			rev, err := s.Update(ctx, func(tx store.Txn) error {
				for _, k := range tc.kinds {
					if err := tx.Put(k, "h/x", rec{string(k)}); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if rev != rev0+1 {
				t.Errorf("revision %d after %d", rev, rev0)
			}
			if filed := s.FileTxID(t) != before; filed != tc.wantFiled {
				t.Errorf("file committed: %v, want %v", filed, tc.wantFiled)
			}
			if got := <-watch; got != rev {
				t.Errorf("watch woke with %d, want %d", got, rev)
			}
			s.View(ctx, func(r store.Reader) error {
				for _, k := range tc.kinds {
					if got, err := store.Get[rec](r, k, "h/x"); err != nil || got.Name != string(k) {
						t.Errorf("%s/h/x = %v, %v", k, got, err)
					}
				}
				if r.Revision() != rev {
					t.Errorf("read at revision %d, want %d", r.Revision(), rev)
				}
				return nil
			})
		})
	}
}

// TestBoltReportsAcrossRestart: after a clean Close the file has every
// report and the revision; after a crash it has the store as of the
// file's last commit of desired state, reports written before it
// included, and the revisions after it are taken again.
func TestBoltReportsAcrossRestart(t *testing.T) {
	defer store.SetFileReportsAfter(time.Hour)()
	type want struct {
		rev     int64
		present []string // kind/id
		absent  []string
	}
	for _, tc := range []struct {
		name  string
		crash bool
		want  want
	}{
		{"clean close", false, want{5, []string{"networks/n1", "networks/n2", "object_statuses/s2", "host_passes/h"}, []string{"object_statuses/s1"}}},
		{"crash", true, want{3, []string{"networks/n1", "networks/n2", "object_statuses/s1"}, []string{"object_statuses/s2", "host_passes/h"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.db")
			s, err := store.OpenBolt(path)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			for i, w := range []func(tx store.Txn) error{
				func(tx store.Txn) error { return tx.Put(store.Networks, "n1", rec{"n1"}) },       // 1
				func(tx store.Txn) error { return tx.Put(store.ObjectStatuses, "s1", rec{"s1"}) }, // 2, reports only
				func(tx store.Txn) error { return tx.Put(store.Networks, "n2", rec{"n2"}) },       // 3, files s1
				func(tx store.Txn) error { // 4, reports only
					if err := tx.Put(store.ObjectStatuses, "s2", rec{"s2"}); err != nil {
						return err
					}
					return tx.Put(store.HostPasses, "h", rec{"h"})
				},
				func(tx store.Txn) error { return tx.Delete(store.ObjectStatuses, "s1") }, // 5, reports only
			} {
				if rev, err := s.Update(ctx, w); err != nil || rev != int64(i+1) {
					t.Fatalf("write %d: revision %d, %v", i+1, rev, err)
				}
			}
			if tc.crash {
				err = s.Crash()
			} else {
				err = s.Close()
			}
			if err != nil {
				t.Fatal(err)
			}
			s, err = store.OpenBolt(path)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			s.View(ctx, func(r store.Reader) error {
				if r.Revision() != tc.want.rev {
					t.Errorf("revision %d after the restart, want %d", r.Revision(), tc.want.rev)
				}
				for _, key := range tc.want.present {
					kind, id, _ := cutKey(key)
					if got, err := store.Get[rec](r, kind, id); err != nil || got.Name != id {
						t.Errorf("%s after the restart: %v, %v", key, got, err)
					}
				}
				for _, key := range tc.want.absent {
					kind, id, _ := cutKey(key)
					if _, err := store.Get[rec](r, kind, id); !errors.Is(err, store.ErrNotFound) {
						t.Errorf("%s after the restart: %v, want not found", key, err)
					}
				}
				return nil
			})
			// The next revision follows the file's.
			if rev, err := s.Update(ctx, func(tx store.Txn) error { return tx.Put(store.ObjectStatuses, "s3", rec{"s3"}) }); err != nil || rev != tc.want.rev+1 {
				t.Errorf("first write after the restart: revision %d, %v; want %d", rev, err, tc.want.rev+1)
			}
		})
	}
}

// TestBoltFilesReportsSoon: reports that no commit of desired state
// follows are filed in a commit of their own soon after, so that a crash
// then loses none of them.
func TestBoltFilesReportsSoon(t *testing.T) {
	defer store.SetFileReportsAfter(time.Millisecond)()
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := store.OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := s.Update(ctx, func(tx store.Txn) error { return tx.Put(store.Networks, "n", rec{"n"}) }); err != nil {
		t.Fatal(err)
	}
	filed := s.FileTxID(t)
	rev, err := s.Update(ctx, func(tx store.Txn) error { return tx.Put(store.ObjectStatuses, "s", rec{"s"}) })
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); s.FileTxID(t) == filed; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the reports were never filed")
		}
	}
	if err := s.Crash(); err != nil {
		t.Fatal(err)
	}
	if s, err = store.OpenBolt(path); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.View(ctx, func(r store.Reader) error {
		if r.Revision() != rev {
			t.Errorf("revision %d after the crash, want %d", r.Revision(), rev)
		}
		if got, err := store.Get[rec](r, store.ObjectStatuses, "s"); err != nil || got.Name != "s" {
			t.Errorf("report after the crash: %v, %v", got, err)
		}
		return nil
	})
}

func cutKey(key string) (store.Kind, string, bool) {
	for i := len(key) - 1; i >= 0; i-- {
		if key[i] == '/' {
			return store.Kind(key[:i]), key[i+1:], true
		}
	}
	return "", key, false
}

// TestBoltSnapshotsSpanFileAndReports: a reader sees the records a
// transaction wrote to the file and its reports together, never one
// without the other, while writers alternate commits of both and of
// reports alone.
func TestBoltSnapshotsSpanFileAndReports(t *testing.T) {
	s := storetest.OpenBolt(t, t.TempDir())
	ctx := context.Background()
	const writes = 300
	var wg sync.WaitGroup
	var done atomic.Bool
	wg.Go(func() {
		defer done.Store(true)
		for i := range writes {
			v := rec{fmt.Sprint(i)}
			_, err := s.Update(ctx, func(tx store.Txn) error {
				if i%2 == 0 { // both: the pair x
					if err := tx.Put(store.Networks, "x", v); err != nil {
						return err
					}
					return tx.Put(store.ObjectStatuses, "x", v)
				}
				// reports alone: the pair y
				if err := tx.Put(store.ObjectStatuses, "y", v); err != nil {
					return err
				}
				return tx.Put(store.HostPasses, "y", v)
			})
			if err != nil {
				t.Error(err)
				return
			}
		}
	})
	var reads sync.WaitGroup
	for range 2 {
		reads.Go(func() {
			for last := false; !last; {
				last = done.Load()
				err := s.View(ctx, func(r store.Reader) error {
					for _, pair := range [][2]store.Kind{{store.Networks, store.ObjectStatuses}, {store.ObjectStatuses, store.HostPasses}} {
						id := "x"
						if pair[0] == store.ObjectStatuses {
							id = "y"
						}
						a, errA := store.Get[rec](r, pair[0], id)
						b, errB := store.Get[rec](r, pair[1], id)
						if errors.Is(errA, store.ErrNotFound) != errors.Is(errB, store.ErrNotFound) || a != b {
							return fmt.Errorf("revision %d: %s/%s = %v (%v), %s/%s = %v (%v)", r.Revision(), pair[0], id, a, errA, pair[1], id, b, errB)
						}
					}
					return nil
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	reads.Wait()
}

// TestBoltUpdateSurvivesAPanic: a transaction function that panics
// leaves the store writable, with nothing of its writes.
func TestBoltUpdateSurvivesAPanic(t *testing.T) {
	s := storetest.OpenBolt(t, t.TempDir())
	ctx := context.Background()
	func() {
		defer func() {
			if recover() == nil {
				t.Error("the panic did not reach the caller")
			}
		}()
		s.Update(ctx, func(tx store.Txn) error {
			tx.Put(store.Networks, "n", rec{"n"})
			tx.Put(store.ObjectStatuses, "s", rec{"s"})
			panic("boom")
		})
	}()
	rev, err := s.Update(ctx, func(tx store.Txn) error { return tx.Put(store.Ports, "p", rec{"p"}) })
	if err != nil || rev != 1 {
		t.Fatalf("update after a panic: revision %d, %v", rev, err)
	}
	s.View(ctx, func(r store.Reader) error {
		for _, k := range []store.Kind{store.Networks, store.ObjectStatuses} {
			if _, err := store.Get[rec](r, k, map[store.Kind]string{store.Networks: "n", store.ObjectStatuses: "s"}[k]); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("%s of the panicked transaction: %v, want not found", k, err)
			}
		}
		return nil
	})
}
