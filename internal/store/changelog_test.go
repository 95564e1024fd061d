package store

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"testing"
)

type rec struct{ Name string }

// TestChangedSince: the records each revision wrote or deleted, after a
// given revision, oldest first; nothing of a failed transaction's or of
// one that wrote nothing; and not ok for revisions before the store was
// opened, whose changes it never saw.
func TestChangedSince(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	put := func(kind Kind, ids ...string) {
		t.Helper()
		if _, err := s.Update(ctx, func(tx Txn) error {
			for _, id := range ids {
				if err := tx.Put(kind, id, rec{id}); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	put(Networks, "n1")                                                                            // 1
	put(Ports, "p1", "p2")                                                                         // 2
	if _, err := s.Update(ctx, func(tx Txn) error { return tx.Delete(Ports, "p1") }); err != nil { // 3
		t.Fatal(err)
	}
	if _, err := s.Update(ctx, func(tx Txn) error {
		tx.Put(Ports, "p9", rec{"p9"})
		return errors.New("boom")
	}); err == nil {
		t.Fatal("failed update succeeded")
	}
	if _, err := s.Update(ctx, func(tx Txn) error { return nil }); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		since int64
		want  []Change
	}{
		{0, []Change{{1, Networks, "n1"}, {2, Ports, "p1"}, {2, Ports, "p2"}, {3, Ports, "p1"}}},
		{2, []Change{{3, Ports, "p1"}}},
		{3, nil},
	} {
		got, ok := s.ChangedSince(tc.since)
		if !ok || !slices.Equal(got, tc.want) {
			t.Errorf("ChangedSince(%d) = %v, %v; want %v, true", tc.since, got, ok, tc.want)
		}
	}
	s.Close()

	s, err = OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got, ok := s.ChangedSince(2); ok {
		t.Errorf("reopened store knows the changes since 2: %v", got)
	}
	put(Subnets, "s1") // 4
	if got, ok := s.ChangedSince(3); !ok || !slices.Equal(got, []Change{{4, Subnets, "s1"}}) {
		t.Errorf("reopened store: ChangedSince(3) = %v, %v", got, ok)
	}
}

// TestChangedSinceForgets: past its bound the log forgets its older half,
// whole revisions at a time, and says so to a reader that far behind.
func TestChangedSinceForgets(t *testing.T) {
	defer func(n int) { maxLog = n }(maxLog)
	maxLog = 5
	s, err := OpenBolt(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	for _, ids := range [][]string{{"a", "b"}, {"c"}, {"d", "e"}, {"f"}, {"g", "h", "i", "j", "k", "l"}} { // revisions 1 to 5
		if _, err := s.Update(ctx, func(tx Txn) error {
			for _, id := range ids {
				if err := tx.Put(Ports, id, rec{id}); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	for since, wantOK := range map[int64]bool{0: false, 1: false, 2: false, 3: true, 4: true, 5: true} {
		got, ok := s.ChangedSince(since)
		if ok != wantOK {
			t.Errorf("ChangedSince(%d) ok = %v, want %v (%v)", since, ok, wantOK, got)
		}
		if ok {
			for _, c := range got {
				if c.Rev <= since {
					t.Errorf("ChangedSince(%d) names revision %d", since, c.Rev)
				}
			}
		}
	}
	if got, _ := s.ChangedSince(4); len(got) != 6 {
		t.Errorf("ChangedSince(4) = %v, want the 6 records of revision 5", got)
	}
}
