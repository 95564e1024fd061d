package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ErrUnavailable wraps every error that says the store could not be
// reached (etcd down, no leader, a request that timed out): the request
// may succeed later, unchanged. The API answers it with 503.
var ErrUnavailable = errors.New("store unavailable")

// errCompacted ends an attempt whose snapshot etcd compacted away while
// it read: Update starts again on a fresh one.
var errCompacted = errors.New("snapshot compacted")

// Defaults of an etcd store.
const (
	// DefaultEtcdPrefix is the root of nsnet's keys in etcd.
	DefaultEtcdPrefix = "/nsnet"
	// DefaultEtcdRequestTimeout bounds each request to etcd: the client
	// otherwise waits for an unreachable cluster for as long as its
	// caller's context lasts, and an API request has no deadline.
	DefaultEtcdRequestTimeout = 5 * time.Second
	// DefaultEtcdMaxTxnOps is etcd's own default bound on the operations
	// of one transaction (its --max-txn-ops).
	DefaultEtcdMaxTxnOps = 128
)

// Bounds of the retries of Update's function on conflicts.
const (
	maxEtcdAttempts  = 200
	maxEtcdBackoff   = 50 * time.Millisecond
	maxKeyComparesOf = 4 // per kind; more reads of a kind compare its generation
)

// EtcdConfig says where an etcd store lives.
type EtcdConfig struct {
	// Endpoints are the cluster's client addresses, host:port.
	Endpoints []string
	// Prefix roots every key (default DefaultEtcdPrefix), so that several
	// nsnet deployments, or tests, share one cluster.
	Prefix string
	// RequestTimeout bounds each request (default
	// DefaultEtcdRequestTimeout); past it the store is ErrUnavailable.
	RequestTimeout time.Duration
	// MaxTxnOps is the cluster's --max-txn-ops (default
	// DefaultEtcdMaxTxnOps, etcd's): a commit that needs more operations
	// fails with ErrTooLarge before it is sent.
	MaxTxnOps int
}

// ParseEtcdURL reads etcd://HOST:PORT[,HOST:PORT…][/PREFIX][?max-txn-ops=N],
// the daemon's --store value for an etcd cluster (plain http; the prefix
// defaults to /nsnet; max-txn-ops tells nsnet the cluster's raised
// --max-txn-ops, default 128).
func ParseEtcdURL(s string) (EtcdConfig, error) {
	rest, ok := strings.CutPrefix(s, "etcd://")
	if !ok {
		return EtcdConfig{}, fmt.Errorf("%q: want etcd://HOST:PORT[,HOST:PORT…][/PREFIX][?max-txn-ops=N]", s)
	}
	rest, query, _ := strings.Cut(rest, "?")
	hosts, prefix, _ := strings.Cut(rest, "/")
	cfg := EtcdConfig{Prefix: DefaultEtcdPrefix}
	if query != "" {
		q, err := url.ParseQuery(query)
		if err != nil {
			return EtcdConfig{}, fmt.Errorf("%q: %w", s, err)
		}
		for k, v := range q {
			if k != "max-txn-ops" || len(v) != 1 {
				return EtcdConfig{}, fmt.Errorf("%q: unknown option %q (want max-txn-ops=N)", s, k)
			}
			n, err := strconv.Atoi(v[0])
			if err != nil || n < 2 {
				return EtcdConfig{}, fmt.Errorf("%q: max-txn-ops=%q: want a number of operations, 2 or more", s, v[0])
			}
			cfg.MaxTxnOps = n
		}
	}
	if prefix != "" {
		p, err := url.PathUnescape(prefix)
		if err != nil {
			return EtcdConfig{}, fmt.Errorf("%q: prefix: %w", s, err)
		}
		cfg.Prefix = "/" + strings.TrimSuffix(p, "/")
	}
	for h := range strings.SplitSeq(hosts, ",") {
		host, port, err := net.SplitHostPort(h)
		if err != nil || host == "" || port == "" {
			return EtcdConfig{}, fmt.Errorf("%q: endpoint %q: want HOST:PORT", s, h)
		}
		cfg.Endpoints = append(cfg.Endpoints, h)
	}
	return cfg, nil
}

// Etcd is a Store in an etcd cluster, shared by every nsnet process of a
// deployment.
//
// Records are keys <prefix>/<kind>/<id> holding the record's JSON. The
// store's revision is etcd's: a snapshot's Revision is the revision it was
// read at, and Update returns the revision of its commit.
//
// Update is optimistic, as etcd's STM: its function runs on a snapshot
// read at one revision R, lazily (only what it reads is fetched, each
// read at R, each key once), its writes buffered; then one etcd Txn commits the writes
// if nothing it read changed since R, else the function runs again on a
// fresh snapshot. A Get is checked by the mod revision of its key (zero
// for a missing one, so a record created or deleted since shows too). A
// List cannot be checked key by key (a record added to the range has no
// key to compare yet), so every write to a kind also bumps the kind's
// generation key <prefix>/_gen/<kind>, and a List is checked by that key's
// mod revision being at most R. Per-kind generations keep writers of
// different kinds from conflicting with each other; writers of one kind
// conflict only when one of them listed it or read what the other wrote.
// Each read is a round trip, so a function that knows what it will read
// says so first (Prefetch): one etcd Txn of Gets at R reads it all, and
// each read then takes its part — checked at the commit as if it had been
// read alone, and not at all if the function never reads it.
//
// One commit is one etcd Txn, so it holds at most the cluster's
// --max-txn-ops operations (128 by default; EtcdConfig.MaxTxnOps tells
// the store a raised one): a record written and each kind written count
// one each, and reads are checked in at most four compares per kind. The
// service writes index records with each record (about ten for a
// port), so a bulk create of more than about a dozen ports is past that
// bound: the Update fails with a TooLargeError and writes nothing. Jobs
// that may split their writes (the service's index rebuild, upgrades of
// old records) commit SplitWrites records at a time.
//
// The Updates of one process run one at a time, as bbolt's do: optimism
// pays across processes, but within one, writers of one kind conflict
// with each other — every port create lists the ports to allocate an
// address — and 500 concurrent port creates retried each other so often
// that fewer than 50 had committed after a minute. Serialized, they
// commit at the pace of one attempt each; only writers in other processes
// make an Update run again.
type Etcd struct {
	cli     *clientv3.Client
	root    string
	timeout time.Duration
	where   string // endpoints, for errors
	maxOps  int    // the cluster's --max-txn-ops
	// writer is held by the running Update: a channel, so that waiting
	// for it ends with the caller's context.
	writer chan struct{}
	// changes is the change log, kept from the first ChangedSince or
	// ChangesBetween on.
	changes etcdLog
	// presence are the hosts' leases and beats (Presence).
	presence etcdPresence
	// reads counts the read requests of Views and Updates (ReadRequests).
	reads atomic.Int64
}

// ReadRequests is how many read requests the store's Views and Updates
// have sent to etcd: each is a round trip, which is what a transaction's
// latency is made of.
func (s *Etcd) ReadRequests() int64 { return s.reads.Load() }

// Endpoints are the cluster's client addresses the store was opened with.
func (s *Etcd) Endpoints() []string { return s.cli.Endpoints() }

// Prefix is the root of the store's keys.
func (s *Etcd) Prefix() string { return s.root }

// OpenEtcd connects to the cluster and checks that it answers.
func OpenEtcd(ctx context.Context, cfg EtcdConfig) (*Etcd, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("etcd store: no endpoints")
	}
	root := strings.TrimSuffix(cfg.Prefix, "/")
	if root == "" {
		root = DefaultEtcdPrefix
	}
	timeout := cfg.RequestTimeout
	if timeout <= 0 {
		timeout = DefaultEtcdRequestTimeout
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   cfg.Endpoints,
		DialTimeout: timeout,
		// The client's own log is JSON on stderr for every reconnect;
		// the store's errors say what matters instead.
		Logger: zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("etcd store %s: %w", strings.Join(cfg.Endpoints, ","), err)
	}
	maxOps := cfg.MaxTxnOps
	if maxOps <= 0 {
		maxOps = DefaultEtcdMaxTxnOps
	}
	s := &Etcd{cli: cli, root: root, timeout: timeout, where: strings.Join(cfg.Endpoints, ","), maxOps: maxOps, writer: make(chan struct{}, 1)}
	if _, err := s.currentRevision(ctx); err != nil {
		cli.Close()
		return nil, fmt.Errorf("open etcd store: %w", err)
	}
	return s, nil
}

func (s *Etcd) kindPrefix(kind Kind) string { return s.root + "/" + string(kind) + "/" }
func (s *Etcd) key(kind Kind, id string) string {
	return s.kindPrefix(kind) + id
}
func (s *Etcd) genKey(kind Kind) string { return s.root + "/_gen/" + string(kind) }

// wrap turns a failed request into the store's errors: the caller's own
// cancellation as itself, a compacted revision as errCompacted, and
// anything that says etcd could not be reached as ErrUnavailable.
func (s *Etcd) wrap(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if errors.Is(err, rpctypes.ErrCompacted) {
		return errCompacted
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return fmt.Errorf("%w: etcd %s: no answer within %s", ErrUnavailable, s.where, s.timeout)
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded:
		return fmt.Errorf("%w: etcd %s: %v", ErrUnavailable, s.where, err)
	}
	if errors.Is(err, rpctypes.ErrNoLeader) || errors.Is(err, rpctypes.ErrTimeout) || errors.Is(err, rpctypes.ErrTimeoutDueToLeaderFail) ||
		errors.Is(err, rpctypes.ErrTimeoutDueToConnectionLost) || errors.Is(err, rpctypes.ErrLeaderChanged) {
		return fmt.Errorf("%w: etcd %s: %v", ErrUnavailable, s.where, err)
	}
	return fmt.Errorf("etcd %s: %s: %w", s.where, op, err)
}

func (s *Etcd) get(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	rctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	resp, err := s.cli.Get(rctx, key, opts...)
	return resp, s.wrap(ctx, "get "+key, err)
}

// currentRevision reads the cluster's revision (linearizably: every
// commit acknowledged before is at or below it).
func (s *Etcd) currentRevision(ctx context.Context) (int64, error) {
	resp, err := s.get(ctx, s.genKey(Networks), clientv3.WithCountOnly())
	if err != nil {
		return 0, err
	}
	return resp.Header.Revision, nil
}

// View implements Store. Unlike Update's, View's function need not be
// safe to run twice, so a snapshot compacted away while it reads (it would
// have to last longer than the cluster's compaction retention) is not
// read again: the View fails with ErrUnavailable, and its caller tries
// again as it would after any outage.
func (s *Etcd) View(ctx context.Context, fn func(Reader) error) error {
	t := s.newTxn(ctx)
	err := fn(t)
	if t.err != nil {
		err = t.err
	}
	if errors.Is(err, errCompacted) {
		return fmt.Errorf("%w: etcd %s compacted the snapshot while it was read", ErrUnavailable, s.where)
	}
	return err
}

// Update implements Store. An Update must not start another on the same
// Etcd from its function (nor may it on Bolt): it would wait for itself.
func (s *Etcd) Update(ctx context.Context, fn func(Txn) error) (int64, error) {
	select {
	case s.writer <- struct{}{}:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	defer func() { <-s.writer }()
	for attempt := 1; ; attempt++ {
		t := s.newTxn(ctx)
		err := fn(t)
		if t.err != nil {
			// A read failed: whatever fn made of it, this run saw no
			// consistent snapshot and commits nothing.
			err = t.err
		}
		if errors.Is(err, errCompacted) && attempt < maxEtcdAttempts {
			continue
		}
		if err != nil {
			return 0, err
		}
		if len(t.writes) == 0 {
			rev := t.Revision()
			return rev, t.err
		}
		rev, ok, err := s.commit(ctx, t)
		if err != nil || ok {
			return rev, err
		}
		if attempt >= maxEtcdAttempts {
			return 0, fmt.Errorf("etcd %s: transaction conflicted with other writers %d times", s.where, attempt)
		}
		// Back off with jitter, so that writers contending for one key
		// do not collide again in lockstep.
		d := time.Duration(rand.Int64N(int64(min(maxEtcdBackoff, time.Millisecond<<min(attempt, 6)))))
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(d):
		}
	}
}

// commit writes t's buffered writes if nothing t read changed since its
// snapshot; ok is false on a conflict.
func (s *Etcd) commit(ctx context.Context, t *etcdTxn) (rev int64, ok bool, err error) {
	var cmps []clientv3.Cmp
	byKind := map[Kind][]string{}
	for key, r := range t.reads {
		byKind[r.kind] = append(byKind[r.kind], key)
	}
	for kind, keys := range byKind {
		if t.listed[kind] != nil {
			continue // the kind's generation covers these keys
		}
		if len(keys) > maxKeyComparesOf {
			// Many reads of one kind compare its generation instead:
			// coarser, but it keeps the compares within etcd's limit
			// of operations per transaction (--max-txn-ops, 128).
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(s.genKey(kind)), "<", t.rev+1))
			continue
		}
		for _, key := range keys {
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(key), "=", t.reads[key].mod))
		}
	}
	for kind := range t.listed {
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(s.genKey(kind)), "<", t.rev+1))
	}
	for kind := range t.ranged {
		if _, listed := t.listed[kind]; !listed {
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(s.genKey(kind)), "<", t.rev+1))
		}
	}
	var ops []clientv3.Op
	kinds := make([]Kind, 0, len(t.writes))
	for kind := range t.writes {
		kinds = append(kinds, kind)
	}
	slices.Sort(kinds)
	for _, kind := range kinds {
		ids := make([]string, 0, len(t.writes[kind]))
		for id := range t.writes[kind] {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		for _, id := range ids {
			if raw := t.writes[kind][id]; raw != nil {
				ops = append(ops, clientv3.OpPut(s.key(kind, id), string(raw)))
			} else {
				ops = append(ops, clientv3.OpDelete(s.key(kind, id)))
			}
		}
		ops = append(ops, clientv3.OpPut(s.genKey(kind), ""))
	}
	if n := max(len(ops), len(cmps)); n > s.maxOps {
		return 0, false, &TooLargeError{Writes: n, Limit: s.maxOps, Where: "etcd " + s.where}
	}
	rctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	resp, err := s.cli.Txn(rctx).If(cmps...).Then(ops...).Commit()
	if errors.Is(err, rpctypes.ErrTooManyOps) {
		// The cluster's bound is lower than the store was told.
		return 0, false, &TooLargeError{Writes: max(len(ops), len(cmps)), Where: "etcd " + s.where}
	}
	if err != nil {
		// A commit that timed out may have been applied or not: the
		// caller sees ErrUnavailable and may retry its request, which
		// Neutron's clients do for 503.
		return 0, false, s.wrap(ctx, "commit", err)
	}
	return resp.Header.Revision, resp.Succeeded, nil
}

// watchFrom is an etcd watch of the prefix from revision next (0: the
// current one), each response's newest revision sent coalesced: Watch
// when etcd cannot say what its revision is (etcdlog.go). After a
// disconnection the watch resumes where it stopped; when that revision
// was compacted away, it sends the current revision, so that the watcher
// re-reads everything.
func (s *Etcd) watchFrom(ctx context.Context, next int64) <-chan int64 {
	out := make(chan int64, 1)
	send := func(rev int64) {
		// Only this goroutine sends: after taking an unread older
		// revision out, the send cannot block.
		select {
		case <-out:
		default:
		}
		out <- rev
	}
	go func() {
		defer close(out)
		missed := false
		for ctx.Err() == nil {
			opts := []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithCreatedNotify()}
			if next > 0 {
				opts = append(opts, clientv3.WithRev(next))
			}
			// A member cut off from its leader ends the watch, which then
			// resumes on another member.
			wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
			for resp := range s.cli.Watch(wctx, s.root+"/", opts...) {
				if resp.CompactRevision != 0 {
					// Changes between next and the compaction are lost:
					// start from now and tell the watcher to re-read.
					next, missed = 0, true
					break
				}
				if resp.Err() != nil {
					break
				}
				if resp.Created && next == 0 {
					next = resp.Header.Revision + 1
					if missed {
						send(resp.Header.Revision)
						missed = false
					}
				}
				if n := len(resp.Events); n > 0 {
					rev := resp.Events[n-1].Kv.ModRevision
					send(rev)
					next = rev + 1
				}
			}
			cancel()
			select {
			case <-ctx.Done():
			case <-s.cli.Ctx().Done():
				return // the store is closed
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	return out
}

// Close implements Store.
func (s *Etcd) Close() error { return s.cli.Close() }

// etcdTxn is one attempt of View or Update: reads at one revision,
// recorded for the commit's compares, and writes buffered until it.
type etcdTxn struct {
	s      *Etcd
	ctx    context.Context
	rev    int64 // the snapshot's revision; 0 until the first read
	err    error // the first failed read
	reads  map[string]keyRead
	listed map[Kind][]*mvccpb.KeyValue
	// ranged: kinds read in part by Range; the commit checks them as a
	// whole, by their generation, as listed kinds.
	ranged map[Kind]bool
	writes map[Kind]map[string][]byte // nil value: deleted
	// known are the keys read so far (by Get, Range or a prefetch),
	// with their values at the snapshot (nil: missing): a second read of
	// one is no second round trip. A key in known is a read as far as
	// the commit is concerned only once the function has read it (reads).
	known map[string]*mvccpb.KeyValue
	// fetched are the kinds a prefetch read whole, not yet listed by
	// the function.
	fetched map[Kind][]*mvccpb.KeyValue
	// ranges are the etcd responses of Range's batches, by their start
	// and end: index lookups seek to the same place more than once.
	ranges map[string]*clientv3.GetResponse
}

type keyRead struct {
	kind Kind
	mod  int64 // 0: missing
}

func (s *Etcd) newTxn(ctx context.Context) *etcdTxn {
	return &etcdTxn{s: s, ctx: ctx, reads: map[string]keyRead{}, listed: map[Kind][]*mvccpb.KeyValue{}, ranged: map[Kind]bool{},
		writes: map[Kind]map[string][]byte{}, known: map[string]*mvccpb.KeyValue{}, fetched: map[Kind][]*mvccpb.KeyValue{}, ranges: map[string]*clientv3.GetResponse{}}
}

// read gets key (or the range of a prefix) at the snapshot's revision,
// fixing that revision at the first read.
func (t *etcdTxn) read(key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	if t.err != nil {
		return nil, t.err
	}
	if t.rev != 0 {
		opts = append(opts, clientv3.WithRev(t.rev))
	}
	t.s.reads.Add(1)
	resp, err := t.s.get(t.ctx, key, opts...)
	if err != nil {
		t.err = err
		return nil, err
	}
	if t.rev == 0 {
		t.rev = resp.Header.Revision
	}
	return resp, nil
}

func (t *etcdTxn) Revision() int64 {
	if t.rev == 0 && t.err == nil {
		t.read(t.s.genKey(Networks), clientv3.WithCountOnly())
	}
	return t.rev
}

func checkKind(kind Kind) error {
	if !slices.Contains(Kinds, kind) {
		return fmt.Errorf("unknown kind %q", kind)
	}
	return nil
}

func (t *etcdTxn) Get(kind Kind, id string, v any) error {
	if err := checkKind(kind); err != nil {
		return err
	}
	raw, err := t.raw(kind, id)
	if err != nil {
		return err
	}
	if raw == nil {
		return ErrNotFound
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("decode %s/%s: %w", kind, id, err)
	}
	return nil
}

// raw is the record kind/id as this transaction sees it: its own write,
// else the snapshot's; nil when there is none.
func (t *etcdTxn) raw(kind Kind, id string) ([]byte, error) {
	if raw, ok := t.writes[kind][id]; ok {
		return raw, nil
	}
	key := t.s.key(kind, id)
	if kvs, ok := t.listed[kind]; ok {
		i := sort.Search(len(kvs), func(i int) bool { return string(kvs[i].Key) >= key })
		if i < len(kvs) && string(kvs[i].Key) == key {
			return kvs[i].Value, nil
		}
		return nil, nil
	}
	kv, ok := t.known[key]
	if kvs, fetched := t.fetched[kind]; !ok && fetched {
		// The kind prefetched whole, at the snapshot: the record is
		// there, or there is none. Only this key counts as read.
		i := sort.Search(len(kvs), func(i int) bool { return string(kvs[i].Key) >= key })
		if i < len(kvs) && string(kvs[i].Key) == key {
			kv = kvs[i]
		}
		t.known[key], ok = kv, true
	}
	if !ok {
		resp, err := t.read(key)
		if err != nil {
			return nil, err
		}
		if len(resp.Kvs) > 0 {
			kv = resp.Kvs[0]
		}
		t.known[key] = kv
	}
	if kv == nil {
		t.reads[key] = keyRead{kind: kind}
		return nil, nil
	}
	t.reads[key] = keyRead{kind: kind, mod: kv.ModRevision}
	return kv.Value, nil
}

// Prefetch implements Prefetcher: the wanted records, kinds and spans
// not read yet, in etcd Txns of Gets at the snapshot's revision, at most
// the cluster's operations per transaction each. What they read is kept
// aside (known, fetched, ranges), to be taken by the reads that want it.
func (t *etcdTxn) Prefetch(wants ...Want) error {
	if t.err != nil {
		return t.err
	}
	var gets []fetch
	for _, w := range wants {
		if err := checkKind(w.Kind); err != nil {
			return err
		}
		if _, ok := t.listed[w.Kind]; ok {
			continue // at hand already
		}
		prefix := t.s.kindPrefix(w.Kind)
		switch {
		case w.span:
			end := rangeEnd(prefix, w.To)
			if _, ok := t.ranges[w.From+"\x00"+end]; !ok {
				gets = append(gets, fetch{key: prefix + w.From, end: end, limit: rangeBatch, span: w.From + "\x00" + end})
			}
		case w.All:
			if _, ok := t.fetched[w.Kind]; !ok {
				gets = append(gets, fetch{key: prefix, end: clientv3.GetPrefixRangeEnd(prefix), kind: w.Kind})
			}
		default:
			_, fetched := t.fetched[w.Kind]
			if _, ok := t.known[prefix+w.ID]; !ok && !fetched {
				gets = append(gets, fetch{key: prefix + w.ID})
			}
		}
	}
	for len(gets) > 0 {
		n := min(len(gets), t.s.maxOps)
		resps, err := t.readMany(gets[:n])
		if err != nil {
			return err
		}
		for i, r := range resps {
			switch g := gets[i]; {
			case g.kind != "":
				t.fetched[g.kind] = r.Kvs
			case g.span != "":
				t.ranges[g.span] = &clientv3.GetResponse{Header: r.Header, Kvs: r.Kvs, More: r.More, Count: r.Count}
				for _, kv := range r.Kvs {
					t.known[string(kv.Key)] = kv
				}
			default:
				var kv *mvccpb.KeyValue
				if len(r.Kvs) > 0 {
					kv = r.Kvs[0]
				}
				t.known[g.key] = kv
			}
		}
		gets = gets[n:]
	}
	return nil
}

// fetch is one read of a prefetch: a key, or keys from key to end (at
// most limit of them, if not 0), for a whole kind or for a Range's batch
// (span, its key in ranges).
type fetch struct {
	key, end string
	limit    int64
	kind     Kind
	span     string
}

// readMany reads gets in one etcd Txn at the snapshot's revision, fixing
// that revision if no read has yet: a Txn's reads all see one revision.
func (t *etcdTxn) readMany(gets []fetch) ([]*pb.RangeResponse, error) {
	ops := make([]clientv3.Op, len(gets))
	for i, g := range gets {
		var opts []clientv3.OpOption
		if g.end != "" {
			opts = append(opts, clientv3.WithRange(g.end))
		}
		if g.limit > 0 {
			opts = append(opts, clientv3.WithLimit(g.limit))
		}
		if t.rev != 0 {
			opts = append(opts, clientv3.WithRev(t.rev))
		}
		ops[i] = clientv3.OpGet(g.key, opts...)
	}
	t.s.reads.Add(1)
	rctx, cancel := context.WithTimeout(t.ctx, t.s.timeout)
	defer cancel()
	resp, err := t.s.cli.Txn(rctx).Then(ops...).Commit()
	if err = t.s.wrap(t.ctx, "prefetch", err); err != nil {
		t.err = err
		return nil, err
	}
	if t.rev == 0 {
		t.rev = resp.Header.Revision
	}
	out := make([]*pb.RangeResponse, len(resp.Responses))
	for i, r := range resp.Responses {
		out[i] = r.GetResponseRange()
	}
	return out, nil
}

func (t *etcdTxn) List(kind Kind, fn func(id string, raw []byte) error) error {
	if err := checkKind(kind); err != nil {
		return err
	}
	kvs, ok := t.listed[kind]
	if !ok {
		if kvs, ok = t.fetched[kind]; !ok {
			// etcd returns a range sorted by key, which is id order.
			resp, err := t.read(t.s.kindPrefix(kind), clientv3.WithPrefix())
			if err != nil {
				return err
			}
			kvs = resp.Kvs
		}
		t.listed[kind] = kvs
	}
	prefix := t.s.kindPrefix(kind)
	writes := t.writes[kind]
	if len(writes) == 0 {
		for _, kv := range kvs {
			if err := fn(strings.TrimPrefix(string(kv.Key), prefix), kv.Value); err != nil {
				return err
			}
		}
		return nil
	}
	// Merge this transaction's writes into the snapshot's range.
	merged := make(map[string][]byte, len(kvs)+len(writes))
	for _, kv := range kvs {
		merged[strings.TrimPrefix(string(kv.Key), prefix)] = kv.Value
	}
	for id, raw := range writes {
		if raw == nil {
			delete(merged, id)
		} else {
			merged[id] = raw
		}
	}
	ids := make([]string, 0, len(merged))
	for id := range merged {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		if err := fn(id, merged[id]); err != nil {
			return err
		}
	}
	return nil
}

// rangeBatch is how many records Range reads from etcd at a time: an
// index lookup usually wants the first one or two after its seek.
const rangeBatch = 64

// Range implements Reader: the records of kind with ids in [from, to) as
// this transaction sees them (its own writes merged into the snapshot's),
// read from etcd a batch at a time so that a seek that stops early reads
// little. To the commit, a range is a read of the whole kind, as a List
// is: it conflicts with any write to the kind since the snapshot.
func (t *etcdTxn) Range(kind Kind, from, to string, fn func(id string, raw []byte) error) error {
	if err := checkKind(kind); err != nil {
		return err
	}
	prefix := t.s.kindPrefix(kind)
	inRange := func(id string) bool { return id >= from && (to == "" || id < to) }
	var written []string // this transaction's writes in the range, sorted
	for id := range t.writes[kind] {
		if inRange(id) {
			written = append(written, id)
		}
	}
	slices.Sort(written)
	if kvs, ok := t.listed[kind]; ok {
		// The whole kind is at hand already.
		var snap []*mvccpb.KeyValue
		for _, kv := range kvs {
			if inRange(strings.TrimPrefix(string(kv.Key), prefix)) {
				snap = append(snap, kv)
			}
		}
		err := t.mergeRange(kind, prefix, snap, written, fn)
		if errors.Is(err, Stop) {
			return nil
		}
		return err
	}
	t.ranged[kind] = true
	end := rangeEnd(prefix, to)
	cursor := from
	for {
		var err error
		resp, ok := t.ranges[cursor+"\x00"+end]
		if !ok {
			resp, err = t.read(prefix+cursor, clientv3.WithRange(end), clientv3.WithLimit(rangeBatch))
			if err != nil {
				return err
			}
			t.ranges[cursor+"\x00"+end] = resp
			for _, kv := range resp.Kvs {
				t.known[string(kv.Key)] = kv
			}
		}
		// This batch holds the snapshot's ids up to its last one; the
		// last batch, every id to the range's end. Writes merge into
		// the batch whose ids they lie among.
		batchWrites := written
		if resp.More {
			last := strings.TrimPrefix(string(resp.Kvs[len(resp.Kvs)-1].Key), prefix)
			n, _ := slices.BinarySearch(written, last+"\x00")
			batchWrites, written = written[:n], written[n:]
			cursor = last + "\x00"
		}
		err = t.mergeRange(kind, prefix, resp.Kvs, batchWrites, fn)
		if errors.Is(err, Stop) {
			return nil
		}
		if err != nil || !resp.More {
			return err
		}
	}
}

// rangeEnd is the etcd range end of the ids of a kind below to ("": all).
func rangeEnd(prefix, to string) string {
	if to == "" {
		return clientv3.GetPrefixRangeEnd(prefix)
	}
	return prefix + to
}

// mergeRange calls fn, in id order, for the snapshot's records snap with
// this transaction's writes to the ids written merged in.
func (t *etcdTxn) mergeRange(kind Kind, prefix string, snap []*mvccpb.KeyValue, written []string, fn func(id string, raw []byte) error) error {
	i, j := 0, 0
	for i < len(snap) || j < len(written) {
		var sid string
		if i < len(snap) {
			sid = strings.TrimPrefix(string(snap[i].Key), prefix)
		}
		var id string
		var raw []byte
		if j == len(written) || i < len(snap) && sid < written[j] {
			id, raw = sid, snap[i].Value
			i++
		} else {
			id, raw = written[j], t.writes[kind][written[j]]
			if i < len(snap) && sid == id {
				i++ // overwritten or deleted by this transaction
			}
			j++
		}
		if raw == nil {
			continue // deleted by this transaction
		}
		if err := fn(id, raw); err != nil {
			return err
		}
	}
	return nil
}

func (t *etcdTxn) Put(kind Kind, id string, v any) error {
	if err := checkKind(kind); err != nil {
		return err
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s/%s: %w", kind, id, err)
	}
	t.write(kind, id, raw)
	return nil
}

func (t *etcdTxn) Delete(kind Kind, id string) error {
	if err := checkKind(kind); err != nil {
		return err
	}
	t.write(kind, id, nil)
	return nil
}

func (t *etcdTxn) write(kind Kind, id string, raw []byte) {
	if t.writes[kind] == nil {
		t.writes[kind] = map[string][]byte{}
	}
	t.writes[kind][id] = raw
}
