// Package store keeps nsnet's desired state: resource records as JSON, grouped
// by kind, changed only in serializable transactions that each advance one
// global revision, and watched by the agent.
//
// It owns persistence and transactions. It must not validate resources or
// know what they mean: that is the service's job — the service's indexes
// too are records to it, of the Indexes kind, read by Range.
//
// Two implementations fill the interface. Bolt is one bbolt file: one host,
// no server, the default; its writers run one at a time. It keeps the
// report kinds (ReportKind) in memory and writes them to the file with
// the next commit of desired state, so that an agent's report costs no
// fdatasync: a crash loses only reports the agent publishes again (see
// Bolt). Etcd keeps the
// records in an etcd cluster that many hosts share: keys
// <prefix>/<kind>/<id> (the prefix, /nsnet by default, lets deployments and
// tests share a cluster), the store's revision is etcd's, and Update is an
// optimistic transaction in the manner of etcd's STM: its function runs on
// a snapshot read at one revision, and the commit succeeds only if nothing
// it read changed since — each key it got, by its mod revision, and each
// kind it listed, by a per-kind generation key that every write to the
// kind bumps — else the function runs again (so writers of different kinds
// never conflict). Etcd's change log (ChangedSince, ChangesBetween, and
// RecordsBetween with the records' values) is etcd's own history of the
// prefix, followed by one watch, which serves the store's Watches too:
// resuming after outages, and asking for a full re-read after a
// compaction. When etcd cannot be reached, operations fail with
// ErrUnavailable (the API's 503). A commit larger than the cluster takes
// (its --max-txn-ops) fails with ErrTooLarge.
//
// Hosts' liveness is no record (Presence): etcd keeps a key per host under
// a lease outside the records' prefix, bbolt the beats in the process, so
// that heartbeats wake no watcher.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
)

// Kind groups records of one resource type (a bbolt bucket, an etcd prefix).
type Kind string

// The kinds nsnet stores.
const (
	Networks  Kind = "networks"
	Subnets   Kind = "subnets"
	Ports     Kind = "ports"
	Instances Kind = "instances"
	// RBACPolicies share networks with other projects.
	RBACPolicies Kind = "rbac_policies"
	// Quotas are per-project overrides of the default quota limits,
	// keyed by project id.
	Quotas Kind = "quotas"
	// Routers, FloatingIPs and PortForwardings are the L3 resources.
	Routers         Kind = "routers"
	FloatingIPs     Kind = "floatingips"
	PortForwardings Kind = "port_forwardings"
	// PublishedPorts are the host's published ports (host NAT).
	PublishedPorts Kind = "published_ports"
	// SecurityGroups and SecurityGroupRules are the firewall resources;
	// rules are records of their own so quotas count them.
	SecurityGroups     Kind = "security_groups"
	SecurityGroupRules Kind = "security_group_rules"
	// AddressGroups are named lists of CIDRs that rules may name as
	// their remote (remote_address_group_id).
	AddressGroups Kind = "address_groups"
	// Agents are the registered agent roles of the hosts (Neutron's
	// agent resource), written by the daemon and changed by admins.
	Agents Kind = "agents"
	// SubnetPools and AddressScopes are the IPAM resources subnets take
	// their CIDRs from.
	SubnetPools   Kind = "subnetpools"
	AddressScopes Kind = "address_scopes"
	// MeteringLabels and MeteringLabelRules are the L3 metering
	// resources (admin only).
	MeteringLabels     Kind = "metering_labels"
	MeteringLabelRules Kind = "metering_label_rules"
	// QosPolicies are QoS policies, each with its rules.
	QosPolicies Kind = "qos_policies"
	// Trunks are parent ports carrying subports' traffic VLAN-tagged.
	Trunks Kind = "trunks"
	// Indexes are the service's secondary indexes: records whose ids are
	// keys (a MAC on a network, an address on a subnet, a port of a
	// device) and whose values point at the records of other kinds. The
	// service writes them in the same transactions as the records they
	// index; to the store they are records like any other.
	Indexes Kind = "indexes"
	// Hosts are the registry of the hosts running an agent (model.Host),
	// one record per host, written by that host's daemon: its roles, its
	// VTEP address and its heartbeat.
	Hosts Kind = "hosts"
	// HostPasses, ObjectStatuses and PortCounters are what the hosts'
	// agents report back (see internal/hoststatus): per host, the
	// revision its last pass programmed; per object a host owns, its
	// status; per port, its firewall drop counters. They are the only
	// channel from agents to API servers, and no desired state: agents
	// run no pass for a change of these kinds alone (ReportKind).
	HostPasses     Kind = "host_passes"
	ObjectStatuses Kind = "object_statuses"
	PortCounters   Kind = "port_counters"
)

// Kinds lists every kind, in the order a consistent dump should read them.
var Kinds = []Kind{Networks, Subnets, Ports, Instances, RBACPolicies, Quotas, Routers, FloatingIPs, PortForwardings, PublishedPorts, SecurityGroups, SecurityGroupRules, AddressGroups, Agents, SubnetPools, AddressScopes, MeteringLabels, MeteringLabelRules, QosPolicies, Trunks, Indexes, Hosts, HostPasses, ObjectStatuses, PortCounters}

// ReportKind reports whether kind holds what agents report (statuses,
// counters, programmed revisions) rather than desired state: a change of
// these alone asks no agent to program anything.
func ReportKind(kind Kind) bool {
	return kind == HostPasses || kind == ObjectStatuses || kind == PortCounters
}

// ErrNotFound is returned by Get for a missing record.
var ErrNotFound = errors.New("not found")

// ErrTooLarge is wrapped by the failure of a transaction that writes more
// than the store takes in one commit (etcd's --max-txn-ops): nothing was
// written, and the same transaction will never fit (see TooLargeError).
var ErrTooLarge = errors.New("transaction too large")

// TooLargeError is the failure of a transaction past the store's bound.
type TooLargeError struct {
	// Writes is how many operations the commit needed: the records it
	// put or deleted and the kinds it wrote (or, when more, the reads it
	// had to check).
	Writes int
	// Limit is the store's bound; 0 when the store learnt of it only
	// from the refusal.
	Limit int
	Where string // the store, for the message
}

func (e *TooLargeError) Error() string {
	if e.Limit == 0 {
		return fmt.Sprintf("the transaction needs %d operations, more than %s takes in one (its --max-txn-ops)", e.Writes, e.Where)
	}
	return fmt.Sprintf("the transaction needs %d operations, more than the %d %s takes in one (its --max-txn-ops)", e.Writes, e.Limit, e.Where)
}

// Is makes a TooLargeError an ErrTooLarge.
func (e *TooLargeError) Is(target error) bool { return target == ErrTooLarge }

// SplitWrites is how many records a job that may split its writes over
// several transactions (an index rebuild, an upgrade of old records)
// writes in each: within etcd's default bound of 128 operations per
// transaction, with room for the generation keys of the kinds written.
const SplitWrites = 100

// Stop, returned by the function Range calls, ends the range early
// without an error.
var Stop = errors.New("stop")

// Reader reads one consistent snapshot.
type Reader interface {
	// Get decodes the record kind/id into v, or returns ErrNotFound.
	Get(kind Kind, id string, v any) error
	// List calls fn for every record of kind, in id order.
	List(kind Kind, fn func(id string, raw []byte) error) error
	// Range calls fn for the records of kind whose ids lie in [from, to)
	// in byte order, in id order; to == "" sets no upper bound. It finds
	// from without reading what lies before it (a bbolt cursor's Seek,
	// an etcd range request), so a prefix or the first id at or after a
	// key costs O(log n), not a walk of the kind. fn returns Stop to end
	// the range early.
	Range(kind Kind, from, to string, fn func(id string, raw []byte) error) error
	// Revision is the revision of the snapshot.
	Revision() int64
}

// Txn is a read-write transaction. Its writes become visible, all at once,
// only if the function that received it returns nil and the store commits
// that run (see Store.Update).
type Txn interface {
	Reader
	Put(kind Kind, id string, v any) error
	Delete(kind Kind, id string) error
}

// Store is a transactional record store with change notification.
type Store interface {
	// View runs fn on a consistent read-only snapshot.
	View(ctx context.Context, fn func(Reader) error) error
	// Update runs fn in a serializable read-write transaction and returns
	// the revision it committed (or the current one when fn wrote nothing).
	//
	// fn may run more than once, each time on a fresh snapshot: a store
	// that detects conflicts at commit (etcd's STM) discards the attempt
	// and runs fn again. Only the last run's writes commit, and an error
	// from fn ends the Update with nothing written. So fn must be a pure
	// function of its snapshot and its inputs: it must not change
	// variables it captured (copy them first, slices and maps deeply),
	// nor have effects outside the transaction; what it computes for the
	// caller, it sets on every run. Retrying forces a retry to test this.
	Update(ctx context.Context, fn func(Txn) error) (int64, error)
	// Watch returns a channel that receives the newest revision after
	// commits. Notifications coalesce: a slow reader sees the latest
	// revision, never a backlog. The channel closes when ctx ends.
	Watch(ctx context.Context) <-chan int64
	Close() error
}

// Get decodes one record of kind into a new T.
func Get[T any](r Reader, kind Kind, id string) (T, error) {
	var v T
	err := r.Get(kind, id, &v)
	return v, err
}

// List decodes every record of kind.
func List[T any](r Reader, kind Kind) ([]T, error) {
	var out []T
	err := r.List(kind, func(id string, raw []byte) error {
		var v T
		if err := json.Unmarshal(raw, &v); err != nil {
			return fmt.Errorf("decode %s/%s: %w", kind, id, err)
		}
		out = append(out, v)
		return nil
	})
	return out, err
}

// Change names a record that a committed transaction wrote or deleted.
type Change struct {
	Rev  int64 // the revision that committed it
	Kind Kind
	ID   string
}

// ChangeLog is what a Store that remembers the records its latest
// revisions changed may also offer, so that a reader that knows revision
// rev reads what changed since instead of every record.
type ChangeLog interface {
	// ChangedSince returns the changes of the revisions after rev,
	// oldest first: every record those revisions wrote or deleted, some
	// perhaps more than once, or left as they were. It may name revisions
	// newer than a snapshot being read: the reader skips them. ok is
	// false when the store no longer knows (or never knew) every change
	// since rev: the reader reads everything.
	ChangedSince(rev int64) (changes []Change, ok bool)
}

// ChangeFeed is what a Store that can name the records a range of
// revisions changed offers, so that a watcher woken by revision rev tells
// a change it cares about from one it does not without reading records.
// Unlike ChangeLog, it says when it does not know the whole range.
type ChangeFeed interface {
	// ChangesBetween returns the changes of the revisions in (from, to],
	// oldest first, from the store's change log (ChangeLog). ok is false
	// when the store does not know them all: the log does not reach back
	// to from (a bbolt log starts when the file is opened; etcd's from the
	// first question, reading etcd's history back to its compaction), or
	// has not seen to (within the store's request timeout, on etcd); the
	// caller then assumes anything may have changed. A revision a Watch
	// channel delivered is known up to it, from wherever the log reaches.
	ChangesBetween(from, to int64) (changes []Change, ok bool)
}

// RecordChange is a Change with the record as the change left it.
type RecordChange struct {
	Change
	// Value is the record's JSON after the change; nil: deleted. Shared
	// with the store: the reader must not change it.
	Value []byte
}

// RecordFeed is what a Store whose change log holds the records' values
// offers (etcd's: its watch delivers them), so that a watcher woken by
// revision to learns the records that changed since from without reading
// the store: with many hosts, every agent woken by every commit, a read
// per change per agent is what etcd would serve most.
type RecordFeed interface {
	// RecordsBetween returns the changes of the revisions in (from, to],
	// oldest first, each with the record it left. A record changed
	// twice is there twice: the later value is the one at to. ok is
	// false when the store does not know them all (as ChangesBetween).
	RecordsBetween(from, to int64) (changes []RecordChange, ok bool)
}

// OnlyReports reports whether every change is of a ReportKind.
func OnlyReports(changes []Change) bool {
	for _, c := range changes {
		if !ReportKind(c.Kind) {
			return false
		}
	}
	return true
}
