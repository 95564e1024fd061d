package agent

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/nsnet/nsnet/internal/dataplane/dpspec"
	"github.com/nsnet/nsnet/internal/metadata"
	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/nat"
	"github.com/nsnet/nsnet/internal/store"
)

// key names one resource across passes.
type key struct {
	kind store.Kind
	id   string
}

func (k key) String() string { return string(k.kind) + "/" + k.id }

// networkSpec is what the kernel must have for a network on this host.
type networkSpec struct {
	Bridge dpspec.BridgeSpec
	// Uplink is the host interface the network reaches beyond the host
	// by (nsnet:uplink): a port of the bridge when Bridged (an external
	// network), the interface its NATed traffic leaves by otherwise.
	Uplink  string
	Bridged bool
	// HostGateway: the bridge carries Gateway, the gateway address of
	// each of its subnets (nsnet:host_gateway).
	HostGateway bool
	Gateway     []netip.Prefix
}

// instanceSpec is what the kernel must have for an instance.
type instanceSpec struct {
	Name   string
	Netns  string
	Marker string
	// ResolvConf is the content of the instance's
	// /etc/netns/<netns>/resolv.conf. When DHCPClient is set, a DHCP
	// client in the instance owns the file once it exists, and nsnet
	// only creates it.
	ResolvConf string
	DHCPClient bool
}

// portSpec is what the kernel must have for a plugged port. It holds
// everything the port's kernel state is derived from (the instance's
// namespace, the network's MTU, the subnets' gateways and routes), so that
// comparing two specs tells whether the port needs work.
//
// A router's port has RouterID instead of InstanceID; its gateway port
// (Gateway) also carries the floating addresses the router answers for.
type portSpec struct {
	InstanceID string
	RouterID   string
	NetworkID  string
	Netns      string
	Veth       dpspec.PortSpec
	Gateway    bool
	Floating   []netip.Addr
	// DHCP marks a network's DHCP port, plugged into its qdhcp namespace.
	DHCP bool
	// Qos is an instance port's bandwidth limits, DSCP its DSCP mark
	// when Marked (see addPortQos).
	Qos    dpspec.QosSpec
	DSCP   uint8
	Marked bool
}

// trunkSpec is what the kernel must have for a trunk whose parent is
// plugged on this host: per wired subport, its interface and the tagging
// for the parent's tap (see pass_trunk.go).
type trunkSpec struct {
	ParentID string
	VLANs    []dpspec.VLANSpec // by subport, in port id order
	// Unwired are the subports that cannot be wired, with why; the trunk
	// is DEGRADED while there are any.
	Unwired []string
}

// sameNetwork, samePort and sameTrunk report whether two specs ask for
// the same kernel state (see reconciler.same).
func sameNetwork(a, b networkSpec) bool {
	return a.Bridge == b.Bridge && a.Uplink == b.Uplink && a.Bridged == b.Bridged &&
		a.HostGateway == b.HostGateway && slices.Equal(a.Gateway, b.Gateway)
}

func samePort(a, b portSpec) bool {
	return a.InstanceID == b.InstanceID && a.RouterID == b.RouterID && a.NetworkID == b.NetworkID &&
		a.Netns == b.Netns && a.Gateway == b.Gateway && a.DHCP == b.DHCP && a.Qos == b.Qos && a.DSCP == b.DSCP && a.Marked == b.Marked && sameVeth(a.Veth, b.Veth) &&
		slices.Equal(a.Floating, b.Floating)
}

func sameTrunk(a, b trunkSpec) bool {
	return a.ParentID == b.ParentID && slices.Equal(a.VLANs, b.VLANs) && slices.Equal(a.Unwired, b.Unwired)
}

func sameVeth(a, b dpspec.PortSpec) bool {
	return a.TapName == b.TapName && a.Bridge == b.Bridge && a.Alias == b.Alias && a.MTU == b.MTU &&
		a.Up == b.Up && a.IfName == b.IfName && a.DHCPClient == b.DHCPClient && a.Hairpin == b.Hairpin && a.AcceptRA == b.AcceptRA && a.NetworkIPv6 == b.NetworkIPv6 && bytes.Equal(a.MAC, b.MAC) &&
		slices.Equal(a.Addrs, b.Addrs) && slices.Equal(a.Routes, b.Routes)
}

// desired is the kernel state one store snapshot asks for on this host.
type desired struct {
	rev       int64
	networks  map[string]networkSpec
	instances map[string]instanceSpec
	ports     map[string]portSpec // plugged ports only
	// dscp are the DSCP marks of each instance's ports, by interface
	// name (the instance's nsnet_qos table; see addPortQos).
	dscp    map[string]map[string]uint8
	routers map[string]routerSpec
	hostNAT hostNATSpec
	dhcp    map[string]dhcpSpec // by network id
	// services are the servers' configurations, by network id.
	services map[string]networkService
	// adverts are the router advertisements of each router's qr- ports,
	// by router id and interface name: like services, configurations.
	adverts map[string]map[string]advertSpec
	// trunks are the trunks whose parent is plugged here, by trunk id,
	// and subports the interface each wired subport has here, by port id
	// (the firewall filters it there).
	trunks   map[string]trunkSpec
	subports map[string]subportIface
	// metadata is who is who for the metadata service.
	metadata metadata.Directory
	// metadata6 is where each network with IPv6 serves metadata on
	// fe80::a9fe:a9fe, by network id.
	metadata6 map[string]metadata6Spec
	// overlay are the VXLAN devices of the networks present here, by
	// network id (hosts.go); pinned the networks present here for a
	// trunk's subports, which no port's host tells.
	overlay map[string]overlaySpec
	pinned  map[string]bool
	// statuses of records that get no kernel object: unplugged ports
	// (DOWN) and records that cannot be programmed (ERROR, with why).
	fixed map[key]status
	// names are what the API calls the records that have a status.
	names map[key]string
}

type status struct {
	Status string
	Reason string
}

// snapshot is the records a pass reads from the store.
type snapshot struct {
	rev        int64
	networks   []model.Network
	subnets    []model.Subnet
	ports      []model.Port
	instances  []model.Instance
	routers    []model.Router
	fips       []model.FloatingIP
	forwards   []model.PortForwarding
	published  []model.PublishedPort
	groups     []model.SecurityGroup
	rules      []model.SecurityGroupRule
	addrGroups []model.AddressGroup
	// pools are the subnet pools, for the address scopes of subnets.
	pools []model.SubnetPool
	// labels and labelRules are the L3 metering labels and their rules.
	labels     []model.MeteringLabel
	labelRules []model.MeteringLabelRule
	// qos are the QoS policies, for the limits of instance ports.
	qos    []model.QosPolicy
	trunks []model.Trunk
	// hosts are the host registry, for the other hosts' VTEP addresses;
	// self is who this agent is among them (not a record: the agent's
	// configuration, the same for every snapshot it reads).
	hosts []model.Host
	self  hostView
}

// records keeps the records of the store, decoded, across passes, so that
// a pass decodes only the records that changed and learns which did: with
// the API writing one record per request and the agent passing after each,
// decoding the whole store every time would make a burst of N creates cost
// O(N²), and the incremental desired state (incremental.go) follows the
// changed records only.
type records struct {
	networks   recordSet[model.Network]
	subnets    recordSet[model.Subnet]
	ports      recordSet[model.Port]
	instances  recordSet[model.Instance]
	routers    recordSet[model.Router]
	fips       recordSet[model.FloatingIP]
	forwards   recordSet[model.PortForwarding]
	published  recordSet[model.PublishedPort]
	groups     recordSet[model.SecurityGroup]
	rules      recordSet[model.SecurityGroupRule]
	addrGroups recordSet[model.AddressGroup]
	pools      recordSet[model.SubnetPool]
	labels     recordSet[model.MeteringLabel]
	labelRules recordSet[model.MeteringLabelRule]
	qos        recordSet[model.QosPolicy]
	trunks     recordSet[model.Trunk]
	hosts      recordSet[model.Host]
	// rev is the revision last read; synced: every record was read
	// once, so that the changes since rev are all there is to read.
	rev    int64
	synced bool
}

// changes are the records that differ between two reads of the store: by
// kind, the ids that were added, changed or deleted. For the kinds the
// incremental desired state follows record by record, the previous values
// too.
type changes struct {
	rev       int64
	kinds     map[store.Kind]int // changed records, by kind
	ports     map[string]prev[model.Port]
	instances map[string]prev[model.Instance]
	fips      map[string]prev[model.FloatingIP]
}

// follow makes c the changes since before earlier, which c follows:
// a record changed in both keeps earlier's previous value.
func (c *changes) follow(earlier *changes) {
	for k, n := range earlier.kinds {
		c.kinds[k] += n
	}
	for id, p := range earlier.ports {
		c.ports[id] = p
	}
	for id, p := range earlier.instances {
		c.instances[id] = p
	}
	for id, p := range earlier.fips {
		c.fips[id] = p
	}
}

// only reports whether every changed record is of one of kinds.
func (c *changes) only(kinds ...store.Kind) bool {
	for k := range c.kinds {
		if !slices.Contains(kinds, k) {
			return false
		}
	}
	return true
}

// newChanges is an empty change set at revision rev: what a sync fills,
// or what a pass that reads nothing more than the one before it has.
func newChanges(rev int64) *changes {
	return &changes{rev: rev, kinds: map[store.Kind]int{},
		ports: map[string]prev[model.Port]{}, instances: map[string]prev[model.Instance]{}, fips: map[string]prev[model.FloatingIP]{}}
}

// sync reads the store and updates the records to it, returning what
// changed since the last read. After an error the records are empty, so
// that the next read starts over.
//
// With log, a store's change log, it reads only the records changed since
// the last read, when the log still knows them all.
func (c *records) sync(r store.Reader, log store.ChangeLog) (*changes, error) {
	ch := newChanges(r.Revision())
	if log != nil && c.synced {
		if changed, ok := log.ChangedSince(c.rev); ok {
			if err := c.apply(r, ch, changed); err != nil {
				*c = records{}
				return nil, err
			}
			c.rev = ch.rev
			return ch, nil
		}
	}
	var err error
	if ch.ports, err = syncKind(ch, &c.ports, r, store.Ports); err != nil {
		*c = records{}
		return nil, err
	}
	if ch.instances, err = syncKind(ch, &c.instances, r, store.Instances); err != nil {
		*c = records{}
		return nil, err
	}
	if ch.fips, err = syncKind(ch, &c.fips, r, store.FloatingIPs); err != nil {
		*c = records{}
		return nil, err
	}
	for _, e := range []error{
		syncOther(ch, &c.networks, r, store.Networks),
		syncOther(ch, &c.subnets, r, store.Subnets),
		syncOther(ch, &c.routers, r, store.Routers),
		syncOther(ch, &c.forwards, r, store.PortForwardings),
		syncOther(ch, &c.published, r, store.PublishedPorts),
		syncOther(ch, &c.groups, r, store.SecurityGroups),
		syncOther(ch, &c.rules, r, store.SecurityGroupRules),
		syncOther(ch, &c.pools, r, store.SubnetPools),
		syncOther(ch, &c.addrGroups, r, store.AddressGroups),
		syncOther(ch, &c.labels, r, store.MeteringLabels),
		syncOther(ch, &c.labelRules, r, store.MeteringLabelRules),
		syncOther(ch, &c.qos, r, store.QosPolicies),
		syncOther(ch, &c.trunks, r, store.Trunks),
		syncOther(ch, &c.hosts, r, store.Hosts),
	} {
		if e != nil {
			*c = records{}
			return nil, e
		}
	}
	c.rev, c.synced = ch.rev, true
	return ch, nil
}

// followedKinds are the kinds records keeps.
var followedKinds = []store.Kind{store.Ports, store.Instances, store.FloatingIPs, store.Networks, store.Subnets, store.Routers,
	store.PortForwardings, store.PublishedPorts, store.SecurityGroups, store.SecurityGroupRules, store.SubnetPools,
	store.AddressGroups, store.MeteringLabels, store.MeteringLabelRules, store.QosPolicies, store.Trunks, store.Hosts}

// apply reads the records named by changed, up to the snapshot's
// revision, each once.
func (c *records) apply(r store.Reader, ch *changes, changed []store.Change) error {
	seen := map[store.Change]bool{}
	for _, cg := range changed {
		if cg.Rev > ch.rev {
			break // newer than the snapshot: the next read's
		}
		cg.Rev = 0
		if seen[cg] {
			continue
		}
		seen[cg] = true
		if !slices.Contains(followedKinds, cg.Kind) {
			continue // the agent reads no such records: nothing to fetch
		}
		var raw json.RawMessage
		err := r.Get(cg.Kind, cg.ID, &raw)
		found := err == nil
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if err := c.applyOne(ch, cg, raw, found); err != nil {
			return err
		}
	}
	return nil
}

// syncFeed brings the records to revision to from the store's feed of
// changed records (store.RecordFeed): the values the store's watch
// delivered, no read of the store. ok is false when the records were
// never read whole, or the feed does not know every change since their
// revision: the caller reads the store instead.
func (c *records) syncFeed(feed store.RecordFeed, to int64) (ch *changes, ok bool, err error) {
	if !c.synced || to <= c.rev {
		return nil, false, nil
	}
	changed, ok := feed.RecordsBetween(c.rev, to)
	if !ok {
		return nil, false, nil
	}
	ch = newChanges(to)
	// Each record's last value is the one at to.
	last := map[store.Change]int{}
	for i, rc := range changed {
		cg := rc.Change
		cg.Rev = 0
		last[cg] = i
	}
	for i, rc := range changed {
		cg := rc.Change
		cg.Rev = 0
		if last[cg] != i || !slices.Contains(followedKinds, cg.Kind) {
			continue
		}
		if err := c.applyOne(ch, cg, rc.Value, rc.Value != nil); err != nil {
			*c = records{}
			return nil, false, err
		}
	}
	c.rev = to
	return ch, true, nil
}

// applyOne brings the record cg names to raw (found) or its absence,
// noting in ch whether that changed it.
func (c *records) applyOne(ch *changes, cg store.Change, raw []byte, found bool) error {
	var err error
	switch cg.Kind {
	case store.Ports:
		err = applyKind(ch, &c.ports, cg, raw, found, ch.ports)
	case store.Instances:
		err = applyKind(ch, &c.instances, cg, raw, found, ch.instances)
	case store.FloatingIPs:
		err = applyKind(ch, &c.fips, cg, raw, found, ch.fips)
	case store.Networks:
		err = applyKind(ch, &c.networks, cg, raw, found, nil)
	case store.Subnets:
		err = applyKind(ch, &c.subnets, cg, raw, found, nil)
	case store.Routers:
		err = applyKind(ch, &c.routers, cg, raw, found, nil)
	case store.PortForwardings:
		err = applyKind(ch, &c.forwards, cg, raw, found, nil)
	case store.PublishedPorts:
		err = applyKind(ch, &c.published, cg, raw, found, nil)
	case store.SecurityGroups:
		err = applyKind(ch, &c.groups, cg, raw, found, nil)
	case store.SecurityGroupRules:
		err = applyKind(ch, &c.rules, cg, raw, found, nil)
	case store.SubnetPools:
		err = applyKind(ch, &c.pools, cg, raw, found, nil)
	case store.AddressGroups:
		err = applyKind(ch, &c.addrGroups, cg, raw, found, nil)
	case store.MeteringLabels:
		err = applyKind(ch, &c.labels, cg, raw, found, nil)
	case store.MeteringLabelRules:
		err = applyKind(ch, &c.labelRules, cg, raw, found, nil)
	case store.QosPolicies:
		err = applyKind(ch, &c.qos, cg, raw, found, nil)
	case store.Trunks:
		err = applyKind(ch, &c.trunks, cg, raw, found, nil)
	case store.Hosts:
		err = applyKind(ch, &c.hosts, cg, raw, found, nil)
	}
	return err
}

func applyKind[T any](ch *changes, c *recordSet[T], cg store.Change, raw []byte, found bool, into map[string]prev[T]) error {
	p, changed, err := c.apply(cg.Kind, cg.ID, raw, found)
	if err != nil || !changed {
		return err
	}
	ch.kinds[cg.Kind]++
	if into != nil {
		into[cg.ID] = p
	}
	return nil
}

func syncKind[T any](ch *changes, c *recordSet[T], r store.Reader, kind store.Kind) (map[string]prev[T], error) {
	changed, err := c.sync(r, kind)
	if len(changed) > 0 {
		ch.kinds[kind] = len(changed)
	}
	return changed, err
}

func syncOther[T any](ch *changes, c *recordSet[T], r store.Reader, kind store.Kind) error {
	_, err := syncKind(ch, c, r, kind)
	return err
}

// snapshot is every record, each kind in id order as the store lists them.
func (c *records) snapshot(rev int64) *snapshot {
	return &snapshot{
		rev:        rev,
		networks:   c.networks.sorted(),
		subnets:    c.subnets.sorted(),
		ports:      c.ports.sorted(),
		instances:  c.instances.sorted(),
		routers:    c.routers.sorted(),
		fips:       c.fips.sorted(),
		forwards:   c.forwards.sorted(),
		published:  c.published.sorted(),
		groups:     c.groups.sorted(),
		rules:      c.rules.sorted(),
		addrGroups: c.addrGroups.sorted(),
		pools:      c.pools.sorted(),
		labels:     c.labels.sorted(),
		labelRules: c.labelRules.sorted(),
		qos:        c.qos.sorted(),
		trunks:     c.trunks.sorted(),
		hosts:      c.hosts.sorted(),
	}
}

// read updates the records to the store and returns all of them.
func (c *records) read(r store.Reader) (*snapshot, error) {
	ch, err := c.sync(r, nil)
	if err != nil {
		return nil, err
	}
	return c.snapshot(ch.rev), nil
}

// recordSet is one kind's records, decoded, by id.
type recordSet[T any] struct {
	m   map[string]*record[T]
	gen uint64 // of the last sync
	// ids are m's keys in order, nil when not known: a record added or
	// deleted one by one (apply) keeps them, a sync that added or
	// deleted drops them. all is every record in that order, as sorted
	// last returned it, nil once one changed: a full pass's snapshot
	// costs what changed since the last, not a sort and a copy of every
	// record. all is never written once made, so that snapshots may
	// share it.
	ids []string
	all []T
	// sorts counts the sorts of the ids (sorted), for tests.
	sorts int
}

type record[T any] struct {
	// sum stands for the record's bytes, which a sync compares with
	// the store's to decode only what changed: the bytes themselves
	// would double what the agent keeps per record (a port's are a
	// kilobyte, as much as its decoded value).
	sum digest
	val T
	gen uint64 // the last sync that saw it
}

// digest is a 128-bit hash of a record's bytes, under seeds random per
// process: two different records' agreeing by chance is a 2⁻¹²⁸ event,
// and no one who writes records can aim at it without the seeds.
type digest [2]uint64

var digestSeeds = [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}

func digestOf(b []byte) digest {
	return digest{maphash.Bytes(digestSeeds[0], b), maphash.Bytes(digestSeeds[1], b)}
}

// prev is a changed record's previous value; !had: it is new.
type prev[T any] struct {
	old T
	had bool
}

// sync reads every record of kind, decoding only those whose bytes differ
// from the previous sync's, and returns the ids that changed.
func (c *recordSet[T]) sync(r store.Reader, kind store.Kind) (map[string]prev[T], error) {
	if c.m == nil {
		c.m = map[string]*record[T]{}
	}
	c.gen++
	changed := map[string]prev[T]{}
	seen := 0
	err := r.List(kind, func(id string, b []byte) error {
		seen++
		sum := digestOf(canonical(kind, b))
		cur, ok := c.m[id]
		if ok && cur.sum == sum {
			cur.gen = c.gen
			return nil
		}
		var v T
		if err := json.Unmarshal(b, &v); err != nil {
			return fmt.Errorf("decode %s/%s: %w", kind, id, err)
		}
		if ok {
			changed[id] = prev[T]{cur.val, true}
		} else {
			changed[id] = prev[T]{}
			c.ids = nil
		}
		c.m[id] = &record[T]{sum: sum, val: v, gen: c.gen}
		c.all = nil
		return nil
	})
	if err != nil {
		c.m, c.ids, c.all = nil, nil, nil
		return nil, err
	}
	if seen != len(c.m) {
		for id, cur := range c.m {
			if cur.gen != c.gen {
				changed[id] = prev[T]{cur.val, true}
				delete(c.m, id)
				c.ids, c.all = nil, nil
			}
		}
	}
	return changed, nil
}

// apply brings record id to raw (found) or its absence, and reports
// whether that changed it, with its previous value.
func (c *recordSet[T]) apply(kind store.Kind, id string, raw []byte, found bool) (prev[T], bool, error) {
	if c.m == nil {
		c.m = map[string]*record[T]{}
	}
	cur, had := c.m[id]
	var sum digest
	if found {
		raw = canonical(kind, raw)
		sum = digestOf(raw)
	}
	switch {
	case !found && !had:
		return prev[T]{}, false, nil
	case !found:
		delete(c.m, id)
		c.ids, c.all = without(c.ids, id), nil
		return prev[T]{cur.val, true}, true, nil
	case had && cur.sum == sum:
		return prev[T]{}, false, nil
	}
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		return prev[T]{}, false, fmt.Errorf("decode %s/%s: %w", kind, id, err)
	}
	c.m[id] = &record[T]{sum: sum, val: v, gen: c.gen}
	c.all = nil
	if had {
		return prev[T]{cur.val, true}, true, nil
	}
	c.ids = with(c.ids, id)
	return prev[T]{}, true, nil
}

// with is the sorted ids with id, in place (nothing but the recordSet
// holds its ids: sorted hands out a copy of the records); nil stays nil
// (not known).
func with(ids []string, id string) []string {
	if ids == nil {
		return nil
	}
	i, _ := slices.BinarySearch(ids, id)
	return slices.Insert(ids, i, id)
}

// without is the sorted ids without id, in place, as with.
func without(ids []string, id string) []string {
	i, ok := slices.BinarySearch(ids, id)
	if !ok {
		return ids
	}
	return slices.Delete(ids, i, i+1)
}

// get returns the record id.
func (c *recordSet[T]) get(id string) (T, bool) {
	if cur, ok := c.m[id]; ok {
		return cur.val, true
	}
	var zero T
	return zero, false
}

// sorted returns every record, in id order. The caller must not write
// to the slice: the next call returns the same one while no record
// changed.
func (c *recordSet[T]) sorted() []T {
	if c.all != nil {
		return c.all
	}
	if c.ids == nil {
		c.sorts++
		c.ids = sortedKeys(c.m)
	}
	out := make([]T, len(c.ids))
	for i, id := range c.ids {
		out[i] = c.m[id].val
	}
	if len(out) > 0 {
		c.all = out
	}
	return out
}

// InstanceNetns is the name of the namespace of the instance called
// instanceName, for an agent whose namespaces start with prefix: the name
// of an instance whose record does not carry one (made before records did).
func InstanceNetns(prefix, instanceName string) string { return prefix + instanceName }

// instanceNetns is the namespace of inst: the name the service chose and
// stored when it created the instance.
func instanceNetns(prefix string, inst *model.Instance) string {
	if inst.Netns != "" {
		return inst.Netns
	}
	return InstanceNetns(prefix, inst.Name)
}

// namesOf is what the API calls each record that has a status: its name,
// a floating IP's address.
func namesOf(s *snapshot) map[key]string {
	names := map[key]string{}
	for _, n := range s.networks {
		names[key{store.Networks, n.ID}] = n.Name
	}
	for _, p := range s.ports {
		names[key{store.Ports, p.ID}] = p.Name
	}
	for _, inst := range s.instances {
		names[key{store.Instances, inst.ID}] = inst.Name
	}
	for _, r := range s.routers {
		names[key{store.Routers, r.ID}] = r.Name
	}
	for _, f := range s.fips {
		names[key{store.FloatingIPs, f.ID}] = f.FloatingIPAddress
	}
	for _, t := range s.trunks {
		names[key{store.Trunks, t.ID}] = t.Name
	}
	return names
}

// computeDesired turns a snapshot into kernel specs. It is pure: every
// decision about what the kernel should hold is made here.
func computeDesired(s *snapshot, prefix, host string) *desired {
	d := &desired{
		rev:       s.rev,
		networks:  map[string]networkSpec{},
		instances: map[string]instanceSpec{},
		ports:     map[string]portSpec{},
		dscp:      map[string]map[string]uint8{},
		routers:   map[string]routerSpec{},
		adverts:   map[string]map[string]advertSpec{},
		dhcp:      map[string]dhcpSpec{},
		services:  map[string]networkService{},
		metadata6: map[string]metadata6Spec{},
		overlay:   map[string]overlaySpec{},
		trunks:    map[string]trunkSpec{},
		subports:  map[string]subportIface{},
		fixed:     map[key]status{},
		names:     namesOf(s),
	}
	subnets, subnetsOf := map[string]model.Subnet{}, map[string][]model.Subnet{}
	for _, sn := range s.subnets {
		subnets[sn.ID] = sn
		subnetsOf[sn.NetworkID] = append(subnetsOf[sn.NetworkID], sn)
	}
	networks := map[string]model.Network{}
	byUplink := map[string][]nat.HostNetwork{}
	for _, n := range s.networks {
		networks[n.ID] = n
		spec, nets := bridgeOf(n, subnetsOf[n.ID], s.self)
		if spec.HostGateway {
			byUplink[spec.Uplink] = append(byUplink[spec.Uplink], nets...)
		}
		d.networks[n.ID] = spec
	}
	addHostNAT(d, s, byUplink)
	pl := placementOf(s)
	instanceHost := hostOfInstance(pl.instances)

	byNetns := map[string]string{}
	// Oldest first: if two instances ever want one namespace, the one
	// that has it keeps it.
	for _, inst := range sortedBy(s.instances, func(i model.Instance) string { return i.CreatedAt + "/" + i.ID }) {
		if !s.self.owns(inst.Host) {
			continue // another host's
		}
		ns := instanceNetns(prefix, &inst)
		if !strings.HasPrefix(ns, prefix) {
			// Every namespace this agent makes starts with its prefix, so
			// that it never touches one it does not own.
			d.fixed[key{store.Instances, inst.ID}] = status{model.StatusError, fmt.Sprintf("namespace %s does not start with this agent's prefix %q", ns, prefix)}
			continue
		}
		if other, dup := byNetns[ns]; dup {
			d.fixed[key{store.Instances, inst.ID}] = status{model.StatusError, fmt.Sprintf("namespace %s is already instance %s's", ns, other)}
			continue
		}
		byNetns[ns] = inst.ID
		d.instances[inst.ID] = instanceSpec{Name: inst.Name, Netns: ns, Marker: dpspec.InstanceMarker(inst.ID, host)}
	}

	plugged := map[string][]model.Port{} // by instance
	for _, p := range s.ports {
		k := key{store.Ports, p.ID}
		if p.DeviceOwner == model.DeviceOwnerRouterInterface || p.DeviceOwner == model.DeviceOwnerRouterGateway || p.DeviceOwner == model.DeviceOwnerDHCP {
			continue // addRouters and addDHCP decide
		}
		if _, ok := d.instances[p.DeviceID]; !ok || p.DeviceOwner != model.DeviceOwnerCompute {
			if s.self.reportsPort(p, instanceHost) {
				d.fixed[k] = status{model.StatusDown, ""}
			}
			continue
		}
		plugged[p.DeviceID] = append(plugged[p.DeviceID], p)
	}
	dhcpAddrs := dhcpAddrsOf(s.ports)
	metaRoutes := isolatedMetadataRoutes(dhcpAddrs, routedSubnets(s.ports))
	has6 := ipv6Networks(s.subnets)
	for instID, ports := range plugged {
		addInstancePorts(d, d.instances[instID], instID, ports, networks, subnets, has6, metaRoutes)
	}
	addPortQos(d, s, networks)
	for id, inst := range d.instances {
		ports := plugged[id]
		slices.SortFunc(ports, func(a, b model.Port) int { return compareIfNames(a.InterfaceName, b.InterfaceName) })
		inst.ResolvConf = resolvConf(ports, networks, subnets, dhcpAddrs)
		inst.DHCPClient = slices.ContainsFunc(ports, func(p model.Port) bool { return p.DHCPClient })
		d.instances[id] = inst
	}
	addTrunks(d, s, networks, has6)
	addDHCP(d, s, prefix, host, networks, subnets)
	d.metadata = metadataDirectory(s, networks, subnets)
	interfaces, gateways := routerPortsOf(s.ports)
	addRouters(d, s, prefix, host, routerInputs{networks: networks, subnets: subnets, interfaces: interfaces, gateways: gateways,
		scopes: subnetScopes(s)})
	addMetadata6(d, subnetsOf)
	placeNetworks(d, s, pl)
	return d
}

// bridgeOf is what network n needs on a host that has it: its bridge, its
// uplink (nsnet:uplink, or the interface self maps a flat network's
// physical network to) and, for a host-gateway network, the gateway addresses with the
// host NAT of its subnets. With many hosts, a host-gateway network's
// gateway is on its DHCP host only: two hosts answering for one gateway
// address would split its traffic.
func bridgeOf(n model.Network, subnets []model.Subnet, self hostView) (networkSpec, []nat.HostNetwork) {
	spec := networkSpec{Bridge: dpspec.BridgeSpec{
		Name:  model.BridgeName(n.ID),
		Alias: dpspec.NetworkAlias(n.ID),
		MTU:   networkMTU(n),
		Up:    n.AdminStateUp,
		// The host switches tenants' IPv6 and takes no part in it.
		NoIPv6: true,
	}}
	gateway := n.HostGateway && (!self.multi() || self.owns(n.DHCPHost))
	switch seg := n.Segment(); {
	case n.Uplink != nil && (!n.HostGateway || gateway):
		spec.Uplink, spec.Bridged = *n.Uplink, !n.HostGateway
	case n.Uplink == nil && !n.HostGateway && seg.NetworkType == model.NetworkTypeFlat && self.mappings[seg.PhysicalNetwork] != "":
		// A flat provider network is its physical network untagged: on
		// this host, the interface the host maps it to (the Linux
		// bridge agent's physical_interface_mappings).
		spec.Uplink, spec.Bridged = self.mappings[seg.PhysicalNetwork], true
	}
	if !gateway {
		return spec, nil
	}
	var nets []nat.HostNetwork
	spec.HostGateway = true
	spec.Gateway, nets = hostGateway(n, spec.Bridge.Name, subnets)
	return spec, nets
}

// addInstancePorts adds the specs of one instance's ports. Routes are
// decided per instance: the default route (per address family) goes out of
// the first port, in interface order, that has a subnet with a gateway, and
// a destination is routed out of one port only.
//
// A port on a subnet that no router serves also gets metaRoutes' route to
// the metadata service through the subnet's DHCP port, the one a DHCP
// client there would get.
func addInstancePorts(d *desired, inst instanceSpec, instID string, ports []model.Port, networks map[string]model.Network, subnets map[string]model.Subnet, has6 map[string]bool, metaRoutes map[string]dpspec.Route) {
	slices.SortFunc(ports, func(a, b model.Port) int { return compareIfNames(a.InterfaceName, b.InterfaceName) })
	type plan struct {
		id       string
		spec     portSpec
		defaults []dpspec.Route
	}
	var plans []plan
	taken := map[netip.Prefix]bool{}
	for _, p := range ports {
		veth, defaults, err := portVeth(p, networks, subnets)
		if err != nil {
			d.fixed[key{store.Ports, p.ID}] = status{model.StatusError, err.Error()}
			continue
		}
		// The host translates an instance's connection to its own
		// published port back to it, out of the tap it came in by.
		veth.Hairpin = networks[p.NetworkID].HostGateway
		v6 := ipv6Config(p, subnets)
		veth.AcceptRA = v6.acceptRA
		veth.NetworkIPv6 = has6[p.NetworkID]
		if v6.raDefault {
			// The router's advertisements give the IPv6 default route,
			// via its link-local address, as they would to a VM; no
			// other port gets one from nsnet beside it.
			defaults = slices.DeleteFunc(defaults, func(r dpspec.Route) bool { return r.Dst.Addr().Is6() })
			taken[netip.PrefixFrom(netip.IPv6Unspecified(), 0)] = true
		}
		if len(v6.autoconf) > 0 {
			// The instance's kernel makes these addresses from the
			// prefix advertised: nsnet leaves them to it, and with them
			// the routes whose next hop only they would reach.
			veth.Addrs = slices.DeleteFunc(veth.Addrs, func(a netip.Prefix) bool {
				return slices.Contains(v6.autoconf, a.Masked())
			})
			veth.Routes = slices.DeleteFunc(veth.Routes, func(r dpspec.Route) bool {
				return !slices.ContainsFunc(veth.Addrs, func(a netip.Prefix) bool { return a.Masked().Contains(r.Gw) })
			})
		}
		if p.DHCPClient {
			// The instance asks the network's DHCP server.
			veth.Addrs, veth.Routes, veth.DHCPClient, defaults = nil, nil, true, nil
		} else {
			for _, ip := range p.FixedIPs {
				if r, ok := metaRoutes[ip.SubnetID]; ok {
					veth.Routes = append(veth.Routes, r)
				}
			}
		}
		// Explicit host routes come first: like DHCP's classless static
		// routes, they win over the gateway for the same destination.
		routes := veth.Routes[:0]
		for _, r := range veth.Routes {
			if !taken[r.Dst] {
				taken[r.Dst] = true
				routes = append(routes, r)
			}
		}
		veth.Routes = routes
		plans = append(plans, plan{p.ID, portSpec{InstanceID: instID, NetworkID: p.NetworkID, Netns: inst.Netns, Veth: veth}, defaults})
	}
	for _, pl := range plans {
		for _, r := range pl.defaults {
			if !taken[r.Dst] {
				taken[r.Dst] = true
				pl.spec.Veth.Routes = append(pl.spec.Veth.Routes, r)
			}
		}
		d.ports[pl.id] = pl.spec
	}
}

// portVeth derives a port's veth from its records, with the host routes of
// its subnets that it can reach, and returns separately the default route
// each of its address families would get from its subnets' gateways.
func portVeth(p model.Port, networks map[string]model.Network, subnets map[string]model.Subnet) (dpspec.PortSpec, []dpspec.Route, error) {
	n, ok := networks[p.NetworkID]
	if !ok {
		return dpspec.PortSpec{}, nil, fmt.Errorf("network %s does not exist", p.NetworkID)
	}
	if p.InterfaceName == "" {
		return dpspec.PortSpec{}, nil, fmt.Errorf("port has no interface name")
	}
	mac, err := net.ParseMAC(p.MACAddress)
	if err != nil {
		return dpspec.PortSpec{}, nil, fmt.Errorf("MAC address: %w", err)
	}
	spec := dpspec.PortSpec{
		TapName: model.TapName(p.ID),
		Bridge:  model.BridgeName(p.NetworkID),
		Alias:   dpspec.PortAlias(p.ID),
		MTU:     networkMTU(n),
		Up:      p.AdminStateUp,
		IfName:  p.InterfaceName,
		MAC:     mac,
	}
	var defaults []dpspec.Route
	seen := map[string]bool{}
	for _, ip := range p.FixedIPs {
		sn, ok := subnets[ip.SubnetID]
		if !ok {
			return dpspec.PortSpec{}, nil, fmt.Errorf("subnet %s does not exist", ip.SubnetID)
		}
		addr, err := netip.ParseAddr(ip.IPAddress)
		if err != nil {
			return dpspec.PortSpec{}, nil, fmt.Errorf("fixed IP %q: %w", ip.IPAddress, err)
		}
		cidr, err := netip.ParsePrefix(sn.CIDR)
		if err != nil {
			return dpspec.PortSpec{}, nil, fmt.Errorf("subnet %s CIDR %q: %w", sn.ID, sn.CIDR, err)
		}
		spec.Addrs = append(spec.Addrs, netip.PrefixFrom(addr, cidr.Bits()))
		if seen[sn.ID] {
			continue
		}
		seen[sn.ID] = true
		for _, hr := range sn.HostRoutes {
			r, err := parseRoute(hr.Destination, hr.NextHop)
			if err != nil {
				return dpspec.PortSpec{}, nil, fmt.Errorf("subnet %s host route: %w", sn.ID, err)
			}
			spec.Routes = append(spec.Routes, r)
		}
		if sn.GatewayIP != nil && *sn.GatewayIP != "" {
			gw, err := netip.ParseAddr(*sn.GatewayIP)
			if err != nil {
				return dpspec.PortSpec{}, nil, fmt.Errorf("subnet %s gateway %q: %w", sn.ID, *sn.GatewayIP, err)
			}
			dst := netip.PrefixFrom(netip.IPv4Unspecified(), 0)
			if gw.Is6() {
				dst = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
			}
			if !slices.ContainsFunc(defaults, func(r dpspec.Route) bool { return r.Dst == dst }) {
				defaults = append(defaults, dpspec.Route{Dst: dst, Gw: gw})
			}
		}
	}
	// A host route whose next hop is on none of the port's subnets
	// (Neutron accepts one) cannot be a kernel route (ENETUNREACH): it is
	// left out, as a DHCP client leaves it out.
	spec.Routes = slices.DeleteFunc(spec.Routes, func(r dpspec.Route) bool {
		return r.Gw.IsValid() && !slices.ContainsFunc(spec.Addrs, func(a netip.Prefix) bool { return a.Masked().Contains(r.Gw) })
	})
	return spec, defaults, nil
}

// portIPv6 is how an instance's port gets its IPv6 configuration.
type portIPv6 struct {
	// acceptRA: some subnet of the port is advertised (it has an RA
	// mode, or an address mode that only an advertisement can start,
	// sent by a router outside nsnet), so the instance's kernel listens.
	acceptRA bool
	// raDefault: the IPv6 default route comes from router
	// advertisements (a subnet with an RA mode, or autoconfigured), not
	// from nsnet.
	raDefault bool
	// autoconf are the prefixes whose addresses the instance's kernel
	// configures itself (SLAAC and DHCPv6-stateless subnets).
	autoconf []netip.Prefix
}

// ipv6Config reads a port's IPv6 subnets' modes. Unset modes, and
// dhcpv6-stateful, leave the address to nsnet (or the port's DHCP
// client), as for IPv4.
func ipv6Config(p model.Port, subnets map[string]model.Subnet) portIPv6 {
	var c portIPv6
	for _, ip := range p.FixedIPs {
		sn, ok := subnets[ip.SubnetID]
		if !ok || sn.IPVersion != 6 {
			continue
		}
		if deref(sn.IPv6RAMode) != "" {
			c.acceptRA, c.raDefault = true, true
		}
		// Either mode asking for SLAAC makes the address the EUI-64 one
		// the API computed (model.IsAutoAddress): the kernel's to make.
		if sn.IsAutoAddress() {
			// Whoever advertises the prefix (nsnet's router, or one
			// outside nsnet when only the address mode is set) gives
			// the default route with it; nsnet could not install one
			// via the gateway before the kernel has an address on the
			// prefix anyway.
			c.acceptRA, c.raDefault = true, true
			if cidr, err := netip.ParsePrefix(sn.CIDR); err == nil && !slices.Contains(c.autoconf, cidr.Masked()) {
				c.autoconf = append(c.autoconf, cidr.Masked())
			}
		}
	}
	return c
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func parseRoute(dst, nexthop string) (dpspec.Route, error) {
	d, err := netip.ParsePrefix(dst)
	if err != nil {
		return dpspec.Route{}, fmt.Errorf("destination %q: %w", dst, err)
	}
	gw, err := netip.ParseAddr(nexthop)
	if err != nil {
		return dpspec.Route{}, fmt.Errorf("nexthop %q: %w", nexthop, err)
	}
	return dpspec.Route{Dst: d.Masked(), Gw: gw}, nil
}

func networkMTU(n model.Network) int {
	if n.MTU > 0 {
		return n.MTU
	}
	return model.DefaultMTU
}

// compareIfNames orders interface names naturally: eth2 before eth10.
func compareIfNames(a, b string) int {
	as, an := splitNumber(a)
	bs, bn := splitNumber(b)
	if c := strings.Compare(as, bs); c != 0 {
		return c
	}
	if c := cmp.Compare(an, bn); c != 0 {
		return c
	}
	return strings.Compare(a, b)
}

// splitNumber splits a trailing decimal number off name (-1 if none).
func splitNumber(name string) (string, int) {
	i := len(name)
	for i > 0 && name[i-1] >= '0' && name[i-1] <= '9' {
		i--
	}
	n, err := strconv.Atoi(name[i:])
	if err != nil {
		return name, -1
	}
	return name[:i], n
}

func sortedBy[T any](items []T, sortKey func(T) string) []T {
	out := slices.Clone(items)
	slices.SortFunc(out, func(a, b T) int { return strings.Compare(sortKey(a), sortKey(b)) })
	return out
}
