package store_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/nsnet/nsnet/internal/store"
	"github.com/nsnet/nsnet/internal/store/storetest"
)

// TestBoltCommitWritesNoFreeList: a commit of one small record writes as
// many pages in a file with thousands of free pages (records deleted, as
// a store whose records are rewritten has them) as in a fresh one. bbolt
// wrote the list of free page ids with every commit: 1,400 at 10,000
// ports, several pages beside the port a create writes.
func TestBoltCommitWritesNoFreeList(t *testing.T) {
	ctx := context.Background()
	onePut := func(s *store.Bolt, id string) int {
		t.Helper()
		before := s.PagesAllocated()
		if _, err := s.Update(ctx, func(tx store.Txn) error { return tx.Put(store.Ports, id, map[string]string{"id": id}) }); err != nil {
			t.Fatal(err)
		}
		return s.PagesAllocated() - before
	}
	measure := func(s *store.Bolt) int {
		onePut(s, "warm") // frees what the last commits left pending
		return onePut(s, "timed")
	}

	fresh := measure(storetest.OpenBolt(t, t.TempDir()))

	s := storetest.OpenBolt(t, t.TempDir())
	big := map[string]string{"pad": strings.Repeat("x", 3000)}
	const n = 3000
	for from := 0; from < n; from += 500 {
		if _, err := s.Update(ctx, func(tx store.Txn) error {
			for i := from; i < from+500; i++ {
				if err := tx.Put(store.Networks, fmt.Sprint("net-", i), big); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Update(ctx, func(tx store.Txn) error {
		for i := range n {
			if err := tx.Delete(store.Networks, fmt.Sprint("net-", i)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if fragmented := measure(s); fragmented != fresh {
		t.Errorf("a one-record commit allocated %d pages in a file with %d records' pages free, %d in a fresh file", fragmented, n, fresh)
	}
}

// TestBoltOpensFilesOfEitherFreeList: a file an older nsnet wrote (its
// free pages listed in it) opens, and one this store wrote (not listed)
// opens with bbolt's defaults, which an older nsnet used: a downgrade
// keeps the state.
func TestBoltOpensFilesOfEitherFreeList(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	old, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := old.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte(store.Ports))
		if err != nil {
			return err
		}
		return b.Put([]byte("old"), []byte(`{"id":"old"}`))
	}); err != nil {
		t.Fatal(err)
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}

	s, err := store.OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]string
	if err := s.View(ctx, func(r store.Reader) error { return r.Get(store.Ports, "old", &got) }); err != nil || got["id"] != "old" {
		t.Fatalf("the older file's record: %v, %v", got, err)
	}
	if _, err := s.Update(ctx, func(tx store.Txn) error { return tx.Put(store.Ports, "new", map[string]string{"id": "new"}) }); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	again, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if err := again.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(store.Ports))
		for _, id := range []string{"old", "new"} {
			if b.Get([]byte(id)) == nil {
				return fmt.Errorf("record %s missing", id)
			}
		}
		return b.Put([]byte("after"), []byte(`{}`))
	}); err != nil {
		t.Fatalf("bbolt's defaults on the store's file: %v", err)
	}
}
