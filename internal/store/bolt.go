package store

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

var (
	metaBucket  = []byte("meta")
	revisionKey = []byte("revision")
)

// Bolt is a Store in one bbolt file.
//
// The report kinds (ReportKind: statuses, counters, programmed
// revisions) live in memory, in boltReports, and reach the file without
// a commit of their own: a transaction that writes only reports commits
// no bbolt transaction (no fdatasync, which on one box put two syncs on
// the path of every write a client waits for: the API's commit, then the
// agent's report of it), and the reports written since the file's last
// commit go to the file with the next commit of desired state, or
// fileReportsAfter later in a commit of their own off every writer's
// path, or at Close. So the file is, at every instant, the whole store
// as of its last commit: a crash loses only the reports written since
// (at most about fileReportsAfter's), which the agent derives from the
// kernel and publishes again in its first pass after the restart. The
// revisions they took are taken again by whatever commits next: no
// record holds a revision across a restart but the reports, which are
// then as of the file's. Desired state keeps bbolt's full durability,
// and a clean Close keeps everything.
type Bolt struct {
	db *bolt.DB

	// wmu makes writers (Update, Close) one at a time, over the file
	// and the reports together.
	wmu sync.Mutex
	// reports is the latest committed snapshot of the report kinds and
	// the store's revision; a writer replaces it after its commit.
	reports atomic.Pointer[boltReports]
	// unsaved names the reports written after the file's last commit
	// (Rev unset): what the next commit of the file writes too. Under wmu.
	unsaved map[Change]struct{}
	// filing is the timer that files the unsaved reports; nil: none
	// pending. Under wmu.
	filing *time.Timer
	closed bool // under wmu

	mu       sync.Mutex
	watchers map[chan int64]struct{}
	// log is the records the latest revisions wrote, oldest first; it
	// knows every change after revision logFrom (see ChangedSince).
	log     []Change
	logFrom int64
	// logTo is the newest revision logged.
	logTo int64

	presence boltPresence
}

// boltReports is one revision of a Bolt store's report kinds, never
// changed once published.
type boltReports struct {
	// rev is the store's revision.
	rev int64
	// fileRev is the revision of the file's last commit at rev: a
	// reader whose bbolt snapshot is at fileRev sees the records of rev.
	fileRev int64
	trees   map[Kind]*memTree
}

// fileReportsAfter is how long reports may stay unsaved: after a
// transaction of reports alone, unless a commit of desired state takes
// them first. Long beside a pass, so that the next write of a client
// that waits for each usually files them for free; short beside a
// restart.
var fileReportsAfter = time.Second

// maxLog bounds the change log: a reader further behind reads everything.
var maxLog = 1 << 16

// boltOptions are the file's: a short lock timeout, so that a second
// daemon on the same file fails fast with a clear message instead of
// hanging; and the free pages kept in memory only, as etcd keeps its
// own. A file whose records are rewritten keeps thousands of free pages
// (1,400 at 10,000 ports), and bbolt otherwise writes their whole list
// with every commit — pages of ids beside the one port a create writes —
// and allocates from it by a walk of that list. With no list in the
// file, bbolt finds the free pages at open, by a walk of the file's page
// tree: milliseconds at 10,000 ports, once. Files written either way
// open either way.
var boltOptions = &bolt.Options{Timeout: 2 * time.Second, NoFreelistSync: true, FreelistType: bolt.FreelistMapType}

// OpenBolt opens (creating if needed) the store file at path.
func OpenBolt(path string) (*Bolt, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create state directory: %w", err)
	}
	db, err := bolt.Open(path, 0o600, boltOptions)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w (is another nsnet daemon using it?)", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range append([][]byte{metaBucket}, kindBuckets()...) {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("initialise store %s: %w", path, err)
	}
	b := &Bolt{db: db, watchers: map[chan int64]struct{}{}, unsaved: map[Change]struct{}{}}
	// The reports start as the file has them: as of its last commit.
	// The change log knows the changes after the file's revision.
	r := &boltReports{trees: map[Kind]*memTree{}}
	err = db.View(func(tx *bolt.Tx) error {
		r.fileRev = fileRevision(tx)
		r.rev = r.fileRev
		for _, kind := range Kinds {
			if !ReportKind(kind) {
				continue
			}
			var t *memTree
			err := tx.Bucket([]byte(kind)).ForEach(func(k, v []byte) error {
				t = t.put(string(k), slices.Clone(v))
				return nil
			})
			if err != nil {
				return err
			}
			r.trees[kind] = t
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("read store %s: %w", path, err)
	}
	b.reports.Store(r)
	b.logFrom, b.logTo = r.rev, r.rev
	return b, nil
}

func kindBuckets() [][]byte {
	out := make([][]byte, len(Kinds))
	for i, k := range Kinds {
		out[i] = []byte(k)
	}
	return out
}

// View implements Store.
func (b *Bolt) View(ctx context.Context, fn func(Reader) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for {
		r := b.reports.Load()
		tx, err := b.db.Begin(false)
		if err != nil {
			return err
		}
		if fileRevision(tx) != r.fileRev {
			// A commit of the file is visible whose reports are not
			// published yet (its writer is between the two): take both
			// again.
			tx.Rollback()
			runtime.Gosched()
			continue
		}
		defer tx.Rollback()
		return fn(&boltTxn{tx: tx, rev: r.rev, trees: r.trees})
	}
}

// Update implements Store.
func (b *Bolt) Update(ctx context.Context, fn func(Txn) error) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	b.wmu.Lock()
	defer b.wmu.Unlock()
	cur := b.reports.Load()
	tx, err := b.db.Begin(true)
	if err != nil {
		return 0, err
	}
	// Should fn panic, the writer's lock goes with the transaction;
	// after a Commit or a Rollback, this one is a no-op.
	defer tx.Rollback()
	t := &boltTxn{tx: tx, rev: cur.rev, trees: cur.trees, writable: true}
	if err := fn(t); err != nil {
		tx.Rollback()
		return 0, err
	}
	if !t.dirty {
		tx.Rollback()
		return cur.rev, nil
	}
	rev := cur.rev + 1
	next := &boltReports{rev: rev, fileRev: cur.fileRev, trees: t.trees}
	if t.durable {
		if err := b.saveReports(tx, next, t.changed); err != nil {
			tx.Rollback()
			return 0, err
		}
		if err := tx.Bucket(metaBucket).Put(revisionKey, encodeRevision(rev)); err != nil {
			tx.Rollback()
			return 0, err
		}
		// Logged before the commit, so that a reader that sees the
		// revision finds its changes. Should the commit fail, the
		// entries name records that did not change, which a reader
		// finds as they were: harmless.
		b.logChanges(rev, t.changed)
		if err := tx.Commit(); err != nil {
			return 0, err
		}
		next.fileRev = rev
		clear(b.unsaved)
	} else {
		// Reports alone: nothing for the file now (see Bolt).
		tx.Rollback()
		b.logChanges(rev, t.changed)
		for _, c := range t.changed {
			b.unsaved[c] = struct{}{}
		}
		if b.filing == nil {
			b.filing = time.AfterFunc(fileReportsAfter, b.fileReports)
		}
	}
	b.reports.Store(next)
	b.notify(rev)
	return rev, nil
}

// fileReports commits the unsaved reports to the file, and the revision
// they took, in a commit of their own (the timer's).
func (b *Bolt) fileReports() {
	b.wmu.Lock()
	defer b.wmu.Unlock()
	b.filing = nil
	if b.closed {
		return
	}
	// On failure, the next commit, or Close, tries again.
	_ = b.fileLocked()
}

// fileLocked commits the unsaved reports to the file, and the revision
// they took, in a commit of their own. The caller holds wmu.
func (b *Bolt) fileLocked() error {
	r := b.reports.Load()
	if r.rev == r.fileRev {
		return nil // a commit of desired state filed them
	}
	if err := b.db.Update(func(tx *bolt.Tx) error {
		if err := b.saveReports(tx, r, nil); err != nil {
			return err
		}
		return tx.Bucket(metaBucket).Put(revisionKey, encodeRevision(r.rev))
	}); err != nil {
		return fmt.Errorf("save the reports: %w", err)
	}
	clear(b.unsaved)
	b.reports.Store(&boltReports{rev: r.rev, fileRev: r.rev, trees: r.trees})
	return nil
}

// saveReports writes into tx, a commit of the file, the reports of r
// that the file does not have: the unsaved ones and those of changed.
func (b *Bolt) saveReports(tx *bolt.Tx, r *boltReports, changed []Change) error {
	save := func(c Change) error {
		bk := tx.Bucket([]byte(c.Kind))
		if raw, ok := r.trees[c.Kind].get(c.ID); ok {
			return bk.Put([]byte(c.ID), raw)
		}
		return bk.Delete([]byte(c.ID))
	}
	for c := range b.unsaved {
		if err := save(c); err != nil {
			return fmt.Errorf("save %s/%s: %w", c.Kind, c.ID, err)
		}
	}
	for _, c := range changed {
		if ReportKind(c.Kind) {
			if err := save(c); err != nil {
				return fmt.Errorf("save %s/%s: %w", c.Kind, c.ID, err)
			}
		}
	}
	return nil
}

// Watch implements Store.
func (b *Bolt) Watch(ctx context.Context) <-chan int64 {
	ch := make(chan int64, 1)
	b.mu.Lock()
	b.watchers[ch] = struct{}{}
	b.mu.Unlock()
	go func() {
		<-ctx.Done()
		b.mu.Lock()
		delete(b.watchers, ch)
		close(ch)
		b.mu.Unlock()
	}()
	return ch
}

func (b *Bolt) notify(rev int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for ch := range b.watchers {
		// Replace an unread older revision with the newer one.
		select {
		case <-ch:
		default:
		}
		ch <- rev
	}
}

// forgetOlderHalf drops the older half of a change log, whole revisions
// at a time: it returns what is kept and the revision after which that
// knows every change; ok is false when the log is one revision, which
// cannot be cut.
func forgetOlderHalf(log []Change) (kept []Change, from int64, ok bool) {
	cut := max(1, len(log)/2)
	for cut < len(log) && log[cut].Rev == log[cut-1].Rev {
		cut++
	}
	if cut == len(log) {
		return log, 0, false
	}
	return append(log[:0:0], log[cut:]...), log[cut].Rev - 1, true
}

func (b *Bolt) logChanges(rev int64, changed []Change) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.log) > 0 && len(b.log)+len(changed) > maxLog {
		if kept, from, ok := forgetOlderHalf(b.log); ok {
			b.log, b.logFrom = kept, from
		} else {
			b.logFrom, b.log = rev-1, nil
		}
	}
	for _, c := range changed {
		c.Rev = rev
		b.log = append(b.log, c)
	}
	b.logTo = rev
}

// ChangedSince implements ChangeLog. The log starts when the store is
// opened: it knows nothing of the revisions before.
func (b *Bolt) ChangedSince(rev int64) ([]Change, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if rev < b.logFrom {
		return nil, false
	}
	i := sort.Search(len(b.log), func(i int) bool { return b.log[i].Rev > rev })
	return slices.Clone(b.log[i:]), true
}

// ChangesBetween implements ChangeFeed. Changes are logged before their
// commit, so every revision a reader can see is known.
func (b *Bolt) ChangesBetween(from, to int64) ([]Change, bool) {
	b.mu.Lock()
	known := to <= b.logTo
	b.mu.Unlock()
	changes, ok := b.ChangedSince(from)
	if !ok || !known {
		return nil, false
	}
	i := sort.Search(len(changes), func(i int) bool { return changes[i].Rev > to })
	return changes[:i], true
}

// Close implements Store: the reports written since the file's last
// commit, and the revision they took, are saved in one last commit.
func (b *Bolt) Close() error {
	b.wmu.Lock()
	defer b.wmu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	if b.filing != nil {
		b.filing.Stop()
	}
	return errors.Join(b.fileLocked(), b.db.Close())
}

type boltTxn struct {
	tx  *bolt.Tx
	rev int64 // the snapshot's revision
	// trees holds the report kinds at the snapshot, then (ownTrees)
	// with this transaction's writes.
	trees    map[Kind]*memTree
	ownTrees bool
	writable bool
	dirty    bool     // wrote anything
	durable  bool     // wrote a kind that is no ReportKind
	changed  []Change // what Put and Delete wrote, revision not set
}

// fileRevision is the revision of the file's commit tx reads.
func fileRevision(tx *bolt.Tx) int64 {
	v := tx.Bucket(metaBucket).Get(revisionKey)
	if len(v) != 8 {
		return 0
	}
	return int64(binary.BigEndian.Uint64(v))
}

func (t *boltTxn) Revision() int64 { return t.rev }

func (t *boltTxn) bucket(kind Kind) (*bolt.Bucket, error) {
	b := t.tx.Bucket([]byte(kind))
	if b == nil {
		return nil, fmt.Errorf("unknown kind %q", kind)
	}
	return b, nil
}

func (t *boltTxn) Get(kind Kind, id string, v any) error {
	var raw []byte
	if ReportKind(kind) {
		raw, _ = t.trees[kind].get(id)
	} else {
		b, err := t.bucket(kind)
		if err != nil {
			return err
		}
		raw = b.Get([]byte(id))
	}
	if raw == nil {
		return ErrNotFound
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("decode %s/%s: %w", kind, id, err)
	}
	return nil
}

func (t *boltTxn) List(kind Kind, fn func(id string, raw []byte) error) error {
	if ReportKind(kind) {
		return t.Range(kind, "", "", fn)
	}
	b, err := t.bucket(kind)
	if err != nil {
		return err
	}
	return b.ForEach(func(k, v []byte) error { return fn(string(k), v) })
}

func (t *boltTxn) Range(kind Kind, from, to string, fn func(id string, raw []byte) error) error {
	if ReportKind(kind) {
		var err error
		t.trees[kind].ascend(from, to, func(id string, raw []byte) bool {
			err = fn(id, raw)
			return err == nil
		})
		if errors.Is(err, Stop) {
			return nil
		}
		return err
	}
	b, err := t.bucket(kind)
	if err != nil {
		return err
	}
	c := b.Cursor()
	for k, v := c.Seek([]byte(from)); k != nil; k, v = c.Next() {
		if to != "" && string(k) >= to {
			return nil
		}
		if err := fn(string(k), v); err != nil {
			if errors.Is(err, Stop) {
				return nil
			}
			return err
		}
	}
	return nil
}

func (t *boltTxn) Put(kind Kind, id string, v any) error {
	if !t.writable {
		return fmt.Errorf("put %s/%s: read-only transaction", kind, id)
	}
	if !ReportKind(kind) {
		if _, err := t.bucket(kind); err != nil {
			return err
		}
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s/%s: %w", kind, id, err)
	}
	return t.write(kind, id, raw)
}

func (t *boltTxn) Delete(kind Kind, id string) error {
	if !t.writable {
		return fmt.Errorf("delete %s/%s: read-only transaction", kind, id)
	}
	return t.write(kind, id, nil)
}

// write puts raw as kind/id, or deletes it when raw is nil.
func (t *boltTxn) write(kind Kind, id string, raw []byte) error {
	if ReportKind(kind) {
		// The file takes the record at the next commit: refuse now
		// what it would refuse then.
		if id == "" {
			return fmt.Errorf("write %s/%s: %w", kind, id, bolt.ErrKeyRequired)
		}
		if len(id) > bolt.MaxKeySize {
			return fmt.Errorf("write %s/%s: %w", kind, id, bolt.ErrKeyTooLarge)
		}
		if !t.ownTrees {
			t.trees, t.ownTrees = maps.Clone(t.trees), true
		}
		if raw != nil {
			t.trees[kind] = t.trees[kind].put(id, raw)
		} else {
			t.trees[kind] = t.trees[kind].remove(id)
		}
	} else {
		b, err := t.bucket(kind)
		if err != nil {
			return err
		}
		if raw != nil {
			err = b.Put([]byte(id), raw)
		} else {
			err = b.Delete([]byte(id))
		}
		if err != nil {
			return fmt.Errorf("write %s/%s: %w", kind, id, err)
		}
		t.durable = true
	}
	t.dirty = true
	t.changed = append(t.changed, Change{Kind: kind, ID: id})
	return nil
}

func encodeRevision(rev int64) []byte {
	v := make([]byte, 8)
	binary.BigEndian.PutUint64(v, uint64(rev))
	return v
}

// Path is the store file's path.
func (b *Bolt) Path() string { return b.db.Path() }
