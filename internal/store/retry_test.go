package store

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
)

// TestRetryingRunsTwiceCommitsOnce: the discarded attempt leaves nothing,
// a write committed between the attempts is what the real one sees, and
// an error from the first attempt ends the Update.
func TestRetryingRunsTwiceCommitsOnce(t *testing.T) {
	b, err := OpenBolt(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	r := NewRetrying(b)
	r.Between(func(ctx context.Context) {
		if _, err := b.Update(ctx, func(tx Txn) error { return tx.Put(Networks, "other", rec{"between"}) }); err != nil {
			t.Error(err)
		}
	})
	var seen []bool
	rev, err := r.Update(ctx, func(tx Txn) error {
		_, err := Get[rec](tx, Networks, "other")
		seen = append(seen, err == nil)
		return tx.Put(Networks, "a", rec{"a"})
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []bool{false, true}; len(seen) != 2 || seen[0] != want[0] || seen[1] != want[1] {
		t.Errorf("attempts saw the write between them: %v, want %v", seen, want)
	}
	// One revision for the write between, one for the real attempt: the
	// discarded one committed nothing.
	if rev != 2 || r.Attempts() != 2 {
		t.Errorf("rev %d after %d attempts, want 2 after 2", rev, r.Attempts())
	}
	r.Between(nil)

	boom := errors.New("boom")
	runs := 0
	if _, err := r.Update(ctx, func(tx Txn) error { runs++; tx.Put(Networks, "b", rec{"b"}); return boom }); !errors.Is(err, boom) || runs != 1 {
		t.Errorf("failing fn: err %v after %d runs, want boom after 1", err, runs)
	}
	r.View(ctx, func(rd Reader) error {
		if _, err := Get[rec](rd, Networks, "b"); !errors.Is(err, ErrNotFound) {
			t.Errorf("failed update left b: %v", err)
		}
		if rd.Revision() != 2 {
			t.Errorf("revision %d, want 2", rd.Revision())
		}
		return nil
	})
}
