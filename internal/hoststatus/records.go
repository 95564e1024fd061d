// Package hoststatus is the channel from the hosts' agents back to the API
// servers, through the store and nothing else: each host's agent publishes
// records of the report kinds (store.HostPasses, store.ObjectStatuses,
// store.PortCounters) — the revision its last pass programmed, the status
// of each object it owns, its ports' firewall drop counters — and every API
// server reads them through a View, which mirrors them in memory from the
// store's watch and answers the service's status and counter questions and
// the API's waits for a write to be programmed ("programmed at revision
// R"). An API server thus answers for objects another host's agent
// programs, and the one-box daemon uses the same path.
//
// It owns the report records: their keys, their writing (only what
// changed, in transactions of at most maxOps operations) and their
// reading. It must not touch the kernel, import the agent or the service,
// or write desired state: report kinds are written blind (never read in
// the same transaction) so that they never conflict with desired-state
// transactions, and no agent runs a pass for them (store.ReportKind).
//
// What a host writes: after a pass that changed statuses, those records,
// at most maxOps per transaction, the last with its Pass; after a pass
// whose revision brought desired-state changes, its Pass (one record);
// nothing after a pass that changed neither (a converged host's periodic
// full passes, on a store that can tell report-only revisions apart). Its
// counters every CounterInterval of the daemon (two seconds), only the
// ports whose counters moved: nothing on a quiet host, at most one record
// per port every two seconds under drops. On one host (bbolt) the channel
// adds one commit to a waited write: BenchmarkPassToWaiter measures about
// 2 ms from the end of a pass to the waiter's return, what a bare bbolt
// commit costs on the same machine.
package hoststatus

import (
	"strings"

	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/store"
)

// Pass is a host's record of its last pass (store.HostPasses, id: the
// host): the kernel of Host reflects every desired-state change up to
// Revision. A later revision that changed only report kinds needs no pass,
// so that a host is programmed for rev when Revision >= rev or when only
// reports changed in between (see View.WaitConverged).
type Pass struct {
	Host     string `json:"host"`
	Revision int64  `json:"revision"`
	// At is when the pass finished, RFC 3339 (UTC).
	At string `json:"at"`
}

// Object names a resource whose status a host reports: its kind
// (store.Networks, store.Ports, store.Instances, store.Routers,
// store.FloatingIPs, store.Trunks) and id.
type Object struct {
	Kind store.Kind
	ID   string
}

// State is an object's status on a host, as the API shows it: ACTIVE,
// DOWN, BUILD or ERROR with its reason.
type State struct {
	Status string `json:"status"`
	Reason string `json:"reason,omitempty"`
}

// ObjectStatus is the record of one object's status on one host
// (store.ObjectStatuses, id: statusID).
type ObjectStatus struct {
	Host string     `json:"host"`
	Kind store.Kind `json:"kind"`
	ID   string     `json:"id"`
	State
}

// PortCounters is the record of a port's firewall drop counters on the
// host that filters it (store.PortCounters, id: countersID).
type PortCounters struct {
	Host     string                     `json:"host"`
	PortID   string                     `json:"port_id"`
	Counters model.PortFirewallCounters `json:"counters"`
}

// sep ends a host's name in the ids of its records: every record of host
// h lies in [h+sep, h+sepEnd), one range read. Host names carry no '|'.
const (
	sep    = "|"
	sepEnd = "}" // the byte after '|'
)

func statusID(host string, o Object) string {
	return host + sep + string(o.Kind) + sep + o.ID
}

func countersID(host, port string) string { return host + sep + port }

// hostRange is the id range of host's records of a report kind.
func hostRange(host string) (from, to string) { return host + sep, host + sepEnd }

// hostOf is the host part of a report record's id.
func hostOf(id string) string {
	h, _, _ := strings.Cut(id, sep)
	return h
}

// maxOps bounds the records one transaction writes: etcd refuses a
// transaction of more than --max-txn-ops operations (128 by default), and
// each kind written costs one more (its generation key).
const maxOps = 100
