package store

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

var (
	metaBucket  = []byte("meta")
	revisionKey = []byte("revision")
)

// Bolt is a Store in one bbolt file.
type Bolt struct {
	db *bolt.DB

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

// maxLog bounds the change log: a reader further behind reads everything.
var maxLog = 1 << 16

// OpenBolt opens (creating if needed) the store file at path.
func OpenBolt(path string) (*Bolt, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create state directory: %w", err)
	}
	// A short lock timeout: a second daemon on the same file must fail
	// fast with a clear message instead of hanging.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
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
	b := &Bolt{db: db, watchers: map[chan int64]struct{}{}}
	// The change log knows the changes after the revision the file has.
	err = db.View(func(tx *bolt.Tx) error {
		b.logFrom = (&boltTxn{tx: tx}).Revision()
		b.logTo = b.logFrom
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("read store %s: %w", path, err)
	}
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
	return b.db.View(func(tx *bolt.Tx) error { return fn(&boltTxn{tx: tx}) })
}

// Update implements Store.
func (b *Bolt) Update(ctx context.Context, fn func(Txn) error) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	var rev int64
	var wrote bool
	err := b.db.Update(func(tx *bolt.Tx) error {
		t := &boltTxn{tx: tx}
		if err := fn(t); err != nil {
			return err
		}
		rev = t.Revision()
		if t.dirty {
			rev++
			wrote = true
			if err := tx.Bucket(metaBucket).Put(revisionKey, encodeRevision(rev)); err != nil {
				return err
			}
			// Logged before the commit, so that a reader that sees
			// the revision finds its changes. Should the commit fail,
			// the entries name records that did not change, which a
			// reader finds as they were: harmless.
			b.logChanges(rev, t.changed)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	if wrote {
		b.notify(rev)
	}
	return rev, nil
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

// Close implements Store.
func (b *Bolt) Close() error { return b.db.Close() }

type boltTxn struct {
	tx      *bolt.Tx
	dirty   bool
	changed []Change // what Put and Delete wrote, revision not set
}

func (t *boltTxn) Revision() int64 {
	v := t.tx.Bucket(metaBucket).Get(revisionKey)
	if len(v) != 8 {
		return 0
	}
	return int64(binary.BigEndian.Uint64(v))
}

func (t *boltTxn) bucket(kind Kind) (*bolt.Bucket, error) {
	b := t.tx.Bucket([]byte(kind))
	if b == nil {
		return nil, fmt.Errorf("unknown kind %q", kind)
	}
	return b, nil
}

func (t *boltTxn) Get(kind Kind, id string, v any) error {
	b, err := t.bucket(kind)
	if err != nil {
		return err
	}
	raw := b.Get([]byte(id))
	if raw == nil {
		return ErrNotFound
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("decode %s/%s: %w", kind, id, err)
	}
	return nil
}

func (t *boltTxn) List(kind Kind, fn func(id string, raw []byte) error) error {
	b, err := t.bucket(kind)
	if err != nil {
		return err
	}
	return b.ForEach(func(k, v []byte) error { return fn(string(k), v) })
}

func (t *boltTxn) Range(kind Kind, from, to string, fn func(id string, raw []byte) error) error {
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
	b, err := t.bucket(kind)
	if err != nil {
		return err
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s/%s: %w", kind, id, err)
	}
	t.dirty = true
	t.changed = append(t.changed, Change{Kind: kind, ID: id})
	return b.Put([]byte(id), raw)
}

func (t *boltTxn) Delete(kind Kind, id string) error {
	b, err := t.bucket(kind)
	if err != nil {
		return err
	}
	t.dirty = true
	t.changed = append(t.changed, Change{Kind: kind, ID: id})
	return b.Delete([]byte(id))
}

func encodeRevision(rev int64) []byte {
	v := make([]byte, 8)
	binary.BigEndian.PutUint64(v, uint64(rev))
	return v
}

// Path is the store file's path.
func (b *Bolt) Path() string { return b.db.Path() }
