package store

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Presence is what a Store that keeps the hosts' liveness apart from the
// records offers. A host's proof of life is written every few seconds by
// each host; as a record it would be a revision every agent is woken for
// and reads (N hosts beating cost N² reads), so a beat is no revision of
// the records: nothing a Watch delivers, nothing in the change log.
type Presence interface {
	// Beat says that host is alive at at. The store forgets the beat
	// once ttl has passed without another (etcd: the key's lease
	// expires), or keeps the newest (bbolt: one process, whose readers
	// judge a beat's age themselves).
	Beat(ctx context.Context, host string, at time.Time, ttl time.Duration) error
	// Beats returns the newest beat of every host the store knows
	// present, by host name.
	Beats(ctx context.Context) (map[string]time.Time, error)
}

// Beats of a Bolt store: one box, one daemon, so the beats live in the
// process, and a beat writes nothing to the file.
type boltPresence struct {
	mu    sync.Mutex
	beats map[string]time.Time
}

// Beat implements Presence: the newest beat of host, kept in memory.
func (b *Bolt) Beat(_ context.Context, host string, at time.Time, _ time.Duration) error {
	p := &b.presence
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.beats == nil {
		p.beats = map[string]time.Time{}
	}
	p.beats[host] = at
	return nil
}

// Beats implements Presence.
func (b *Bolt) Beats(context.Context) (map[string]time.Time, error) {
	p := &b.presence
	p.mu.Lock()
	defer p.mu.Unlock()
	return maps.Clone(p.beats), nil
}

// etcdPresence holds an Etcd store's leases, one per host it beats for
// (a daemon beats for its own host; a simulation for many), and the beats
// it read last.
//
// A host's presence is the key <prefix>.presence/<host>, holding the
// beat's time, under a lease of the beat's ttl that every beat keeps
// alive: the key disappears ttl after the host's last beat, whoever
// reads it, with no clock but etcd's. The key lies outside <prefix>/,
// which the store's watches and change log follow, so that a beat is a
// revision of the cluster that no watcher of the records receives.
type etcdPresence struct {
	mu     sync.Mutex
	leases map[string]presenceLease
	// read and readAt are the last Beats answer and when it was read:
	// a burst of readers (schedulers, agent lists) shares one request.
	read   map[string]time.Time
	readAt time.Time
}

type presenceLease struct {
	id  clientv3.LeaseID
	ttl int64 // seconds
}

// presenceFresh is how long a Beats answer of an etcd store serves again:
// short beside any agent down time (seconds at least), long enough that a
// burst of schedulings reads the presences once.
const presenceFresh = 250 * time.Millisecond

func (s *Etcd) presencePrefix() string { return s.root + ".presence/" }

// Beat implements Presence: the host's key, put under its lease, the
// lease kept alive first (granted again when it expired: the host was
// dead, or etcd lost it).
func (s *Etcd) Beat(ctx context.Context, host string, at time.Time, ttl time.Duration) error {
	if host == "" {
		return errors.New("beat: no host name")
	}
	secs := max(int64(math.Ceil(ttl.Seconds())), 1)
	rctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	p := &s.presence
	p.mu.Lock()
	l, ok := p.leases[host]
	p.mu.Unlock()
	if ok && l.ttl == secs {
		if _, err := s.cli.KeepAliveOnce(rctx, l.id); errors.Is(err, rpctypes.ErrLeaseNotFound) {
			ok = false
		} else if err != nil {
			return s.wrap(ctx, "keep the lease of host "+host+" alive", err)
		}
	} else {
		ok = false
	}
	if !ok {
		resp, err := s.cli.Grant(rctx, secs)
		if err != nil {
			return s.wrap(ctx, "grant a lease for host "+host, err)
		}
		l = presenceLease{id: resp.ID, ttl: secs}
		p.mu.Lock()
		if p.leases == nil {
			p.leases = map[string]presenceLease{}
		}
		p.leases[host] = l
		p.mu.Unlock()
	}
	_, err := s.cli.Put(rctx, s.presencePrefix()+host, at.UTC().Format(time.RFC3339Nano), clientv3.WithLease(l.id))
	if err != nil {
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			// Expired between the two requests: the next beat grants
			// a new one.
			p.mu.Lock()
			delete(p.leases, host)
			p.mu.Unlock()
		}
		return s.wrap(ctx, "beat for host "+host, err)
	}
	// This process's readers see its own beat at once.
	p.mu.Lock()
	if p.read != nil && at.After(p.read[host]) {
		p.read[host] = at
	}
	p.mu.Unlock()
	return nil
}

// Beats implements Presence: one range read of the presence keys, shared
// by the readers of the next presenceFresh.
func (s *Etcd) Beats(ctx context.Context) (map[string]time.Time, error) {
	p := &s.presence
	p.mu.Lock()
	if p.read != nil && time.Since(p.readAt) < presenceFresh {
		defer p.mu.Unlock()
		return maps.Clone(p.read), nil
	}
	p.mu.Unlock()
	resp, err := s.get(ctx, s.presencePrefix(), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("read the hosts' presence: %w", err)
	}
	beats := make(map[string]time.Time, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		at, err := time.Parse(time.RFC3339Nano, string(kv.Value))
		if err != nil {
			continue // not a beat nsnet wrote: no proof of life
		}
		beats[strings.TrimPrefix(string(kv.Key), s.presencePrefix())] = at
	}
	p.mu.Lock()
	p.read, p.readAt = beats, time.Now()
	p.mu.Unlock()
	return maps.Clone(beats), nil
}
