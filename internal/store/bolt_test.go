package store

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"
)

type rec struct{ Name string }

func TestUpdateIsAllOrNothing(t *testing.T) {
	s, err := OpenBolt(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	rev, err := s.Update(ctx, func(tx Txn) error { return tx.Put(Networks, "a", rec{"a"}) })
	if err != nil || rev != 1 {
		t.Fatalf("first update: rev=%d err=%v", rev, err)
	}
	boom := errors.New("boom")
	if _, err := s.Update(ctx, func(tx Txn) error {
		if err := tx.Put(Networks, "b", rec{"b"}); err != nil {
			return err
		}
		return boom
	}); !errors.Is(err, boom) {
		t.Fatalf("failed update returned %v", err)
	}
	s.View(ctx, func(r Reader) error {
		if _, err := Get[rec](r, Networks, "b"); !errors.Is(err, ErrNotFound) {
			t.Errorf("write of a failed transaction is visible: %v", err)
		}
		if r.Revision() != 1 {
			t.Errorf("revision %d after a failed update, want 1", r.Revision())
		}
		return nil
	})
	// A transaction that writes nothing does not advance the revision.
	if rev, _ := s.Update(ctx, func(tx Txn) error { return nil }); rev != 1 {
		t.Errorf("read-only update moved revision to %d", rev)
	}
}

func TestWatchCoalescesToNewestRevision(t *testing.T) {
	s, err := OpenBolt(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	ch := s.Watch(ctx)
	for i := range 5 {
		s.Update(ctx, func(tx Txn) error { return tx.Put(Ports, "p", rec{string(rune('a' + i))}) })
	}
	select {
	case rev := <-ch:
		if rev != 5 {
			t.Errorf("watch gave revision %d, want the newest, 5", rev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no notification")
	}
	cancel()
	for range ch {
	}
}
