package store

import (
	"context"
	"time"
)

// WatchFrom exposes the etcd watch from a given revision to the tests.
func (s *Etcd) WatchFrom(ctx context.Context, rev int64) <-chan int64 { return s.watchFrom(ctx, rev) }

// PauseLogWatch ends the change log's watch as a lost connection would,
// and keeps it from resuming until resume is called: it then resumes
// after the last revision it delivered.
func (s *Etcd) PauseLogWatch() (resume func()) {
	l := &s.changes
	l.mu.Lock()
	defer l.mu.Unlock()
	hold := make(chan struct{})
	l.hold = hold
	if l.drop != nil {
		l.drop()
	}
	return func() {
		l.mu.Lock()
		l.hold = nil
		l.mu.Unlock()
		close(hold)
	}
}

// SetMaxLog bounds the change logs to n changes until restore is called.
func SetMaxLog(n int) (restore func()) {
	old := maxLog
	maxLog = n
	return func() { maxLog = old }
}

// FileTxID is the id of the bbolt transaction the file was last
// committed by: it grows by one per commit of the file.
func (b *Bolt) FileTxID(t interface{ Fatal(...any) }) int {
	tx, err := b.db.Begin(false)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	return tx.ID()
}

// Crash closes the file as a power loss would leave it: with what its
// last commit wrote, and nothing Close would have saved.
func (b *Bolt) Crash() error {
	b.wmu.Lock()
	defer b.wmu.Unlock()
	b.closed = true
	if b.filing != nil {
		b.filing.Stop()
	}
	return b.db.Close()
}

// SetFileReportsAfter sets how long a Bolt store's reports may stay out
// of the file, until restore is called.
func SetFileReportsAfter(d time.Duration) (restore func()) {
	old := fileReportsAfter
	fileReportsAfter = d
	return func() { fileReportsAfter = old }
}

// PagesAllocated is how many pages the file's commits allocated so far:
// what they wrote, free-page list included.
func (b *Bolt) PagesAllocated() int {
	st := b.db.Stats()
	return int(st.TxStats.GetPageCount())
}
