package firewall

import (
	"bytes"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"

	"github.com/nsnet/nsnet/internal/nfsock"
)

// Firewall is the pair of nsnet_fw tables of one namespace, open for
// programming. Its methods are safe for concurrent use.
type Firewall struct {
	namespace string
	log       *slog.Logger

	mu  sync.Mutex
	own *nfsock.Owner // proves (by the generation) the kernel holds current
	// current is what the last successful Apply programmed or adopted
	// (no tags before the first).
	current compiled
}

// compiled is a Spec as set elements, port by port, with the tags it
// used, and the zones of its bridges.
type compiled struct {
	tags  map[string]uint16        // interface → tag
	ports map[uint16]*portElements // tag → the port's elements
	zones map[string]uint16        // zoned bridge → conntrack zone
}

type setKey struct {
	family nftables.TableFamily
	name   string
}

// Open opens the firewall of the named namespace ("" is the process's
// own); it creates nothing until Apply.
func Open(namespace string, log *slog.Logger) (*Firewall, error) {
	if log == nil {
		log = slog.Default()
	}
	own, err := nfsock.Own(namespace)
	if err != nil {
		return nil, fmt.Errorf("open firewall: %w", err)
	}
	return &Firewall{namespace: namespace, own: own, log: log.With("netns", namespace, "table", TableName)}, nil
}

// Close releases the sockets; the tables stay.
func (f *Firewall) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.own.Close()
}

// Result says what an Apply did.
type Result struct {
	Adopted        bool // the tables already implemented the spec: nothing written
	Rebuilt        bool // both tables replaced in one batch
	Added, Deleted int  // set elements
	// Forgotten counts conntrack entries deleted because the rules that
	// allowed their connections were removed, or their bridge's zone
	// was.
	Forgotten uint
	// Read: the tables were read back, because the ruleset generation
	// did not prove them unchanged since the last Apply.
	Read bool
}

// Apply makes the tables implement spec. The first Apply of a Firewall
// adopts the tables a previous daemon left if they implement spec exactly,
// and otherwise replaces both (atomically, in one batch, bridges keeping
// the zones the kernel gave them); later ones send only the elements that
// differ, in one batch, once the ruleset generation proves, or a read back
// shows, that the tables still hold what the last Apply programmed (else
// they adopt or replace them again). Removed rules take their
// connections' conntrack entries with them, and a bridge's zone going
// takes its entries (a later bridge may get the number).
func (f *Firewall) Apply(spec Spec) (Result, error) {
	if err := spec.Validate(); err != nil {
		return Result{}, fmt.Errorf("firewall spec: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	gen, proven, intact, err := f.intact()
	if err != nil {
		return Result{}, f.own.Fail(err)
	}
	c, _ := f.own.Conn() // open: intact used it
	res := Result{Read: !proven}
	if !intact {
		kernelZones, err := f.kernelZones(c)
		if err != nil {
			kernelZones = f.current.zones // no table (or an unreadable one)
		}
		if want, ok := f.adopt(c, spec, kernelZones); ok {
			f.current = want
			f.own.Prove(gen)
			res.Adopted = true
			return res, nil
		}
		old := compiled{zones: kernelZones}
		want := compile(spec, old)
		if err := f.rebuild(c, want); err != nil {
			return res, f.own.Fail(err)
		}
		if _, err := f.own.Commit(gen); err != nil {
			return res, fmt.Errorf("replace %s tables in %q: %w", TableName, f.namespace, err)
		}
		f.current = want
		res.Rebuilt, res.Added = true, want.size()
		res.Forgotten, err = forget(c, newFlowMatcher(nil, old, want))
		return res, err
	}
	want := compile(spec, f.current)
	removed, err := f.update(c, want, &res)
	if err != nil {
		return res, f.own.Fail(err)
	}
	if res.Added+res.Deleted == 0 {
		// Nothing queued: another spec with the same elements. The
		// proof stands.
		f.current = want
		return res, nil
	}
	if _, err := f.own.Commit(gen); err != nil {
		return res, fmt.Errorf("update %s tables in %q: %w", TableName, f.namespace, err)
	}
	old := f.current
	f.current = want
	res.Forgotten, err = forget(c, newFlowMatcher(removed, old, want))
	return res, err
}

// forget deletes the conntrack entries m matches, if it can match any.
func forget(c *nfsock.Conn, m *flowMatcher) (uint, error) {
	if len(m.removed) == 0 && len(m.released) == 0 {
		return 0, nil
	}
	n, err := c.Forget(m.match)
	if err != nil {
		return n, fmt.Errorf("forget connections of removed rules and zones: %w", err)
	}
	return n, nil
}

func (c compiled) size() int {
	n := 0
	for _, p := range c.ports {
		for _, es := range p.elems {
			n += len(es)
		}
	}
	return n
}

// bySet gathers the elements of ports, set by set.
func bySet(ports map[uint16]*portElements) map[setKey][]nfsock.Element {
	out := map[setKey][]nfsock.Element{}
	for _, tag := range slices.Sorted(maps.Keys(ports)) {
		for k, es := range ports[tag].elems {
			out[k] = append(out[k], es...)
		}
	}
	return out
}

func tables() (bridge, inet *nftables.Table) {
	return &nftables.Table{Name: TableName, Family: nftables.TableFamilyBridge},
		&nftables.Table{Name: TableName, Family: nftables.TableFamilyINet}
}

// tableLayout is one of the two tables with its fixed sets and chains.
type tableLayout struct {
	t      *nftables.Table
	sets   []nfsock.SetDef
	chains []nfsock.ChainDef
}

func layouts() []tableLayout {
	bridge, inet := tables()
	return []tableLayout{{bridge, bridgeSets, bridgeChains}, {inet, inetSets, inetChains}}
}

// with is the table's sets and chains once c's ports and zones are in it:
// a tagging chain per port in the bridge table; two chains and two rule
// sets per port, and a chain per zone, in the inet table.
func (l tableLayout) with(c compiled) (sets []nfsock.SetDef, chains []nfsock.ChainDef) {
	sets, chains = slices.Clone(l.sets), slices.Clone(l.chains)
	if l.t.Family == nftables.TableFamilyINet {
		for _, b := range slices.Sorted(maps.Keys(c.zones)) {
			chains = append(chains, zoneChain(c.zones[b]))
		}
	}
	for _, tag := range slices.Sorted(maps.Keys(c.ports)) {
		if l.t.Family == nftables.TableFamilyBridge {
			chains = append(chains, tagChain(tag))
			continue
		}
		chains = append(chains, portChains(tag)...)
		for _, name := range []string{rulesSet4(tag), rulesSet6(tag)} {
			d, _ := rulesSetDef(name)
			sets = append(sets, d)
		}
	}
	return sets, chains
}

// rebuild queues the replacement of both tables by want.
func (f *Firewall) rebuild(c *nfsock.Conn, want compiled) error {
	elems := want.elements()
	for _, tbl := range layouts() {
		if ok, err := c.Exists(tbl.t); err != nil {
			return err
		} else if ok {
			c.DelTable(tbl.t)
		}
		sets, chains := tbl.with(want)
		if err := c.Create(tbl.t, sets, chains); err != nil {
			return err
		}
		for _, d := range sets {
			if err := c.AddElements(d.NFT(tbl.t), elems[setKey{tbl.t.Family, d.Name}]); err != nil {
				return err
			}
		}
	}
	return nil
}

// update queues the difference between f.current and want, counts it in
// res, and returns the rule elements it removes. Ports whose compilation
// want reused from f.current are skipped: the cost follows the ports that
// changed.
func (f *Firewall) update(c *nfsock.Conn, want compiled, res *Result) ([]nfsock.Element, error) {
	bridge, inet := tables()
	table := map[nftables.TableFamily]*nftables.Table{bridge.Family: bridge, inet.Family: inet}
	add, del := map[setKey][]nfsock.Element{}, map[setKey][]nfsock.Element{}
	var removedRules []nfsock.Element
	var gone []uint16
	for tag, old := range f.current.ports {
		if _, ok := want.ports[tag]; ok {
			continue
		}
		gone = append(gone, tag)
		for k, es := range old.elems {
			if _, isRules := rulesSetDef(k.name); isRules {
				removedRules = append(removedRules, es...) // the set goes whole
				continue
			}
			del[k] = append(del[k], es...)
		}
	}
	for _, tag := range slices.Sorted(maps.Keys(want.ports)) {
		next, old := want.ports[tag], f.current.ports[tag]
		if next == old {
			continue
		}
		if old == nil {
			// A new port's chains and rule sets before the elements
			// that refer to them.
			for _, name := range []string{rulesSet4(tag), rulesSet6(tag)} {
				d, _ := rulesSetDef(name)
				if err := c.CreateSet(d, inet); err != nil {
					return nil, err
				}
			}
			c.AddChains(bridge, []nfsock.ChainDef{tagChain(tag)})
			c.AddChains(inet, portChains(tag))
			old = &portElements{}
		}
		keys := map[setKey]bool{}
		for k := range old.elems {
			keys[k] = true
		}
		for k := range next.elems {
			keys[k] = true
		}
		for k := range keys {
			a, d := diffElements(old.elems[k], next.elems[k])
			add[k], del[k] = append(add[k], a...), append(del[k], d...)
			if _, isRules := rulesSetDef(k.name); isRules {
				// Rule elements have no data: what goes, goes.
				removedRules = append(removedRules, d...)
			}
		}
	}
	zones := setKey{inet.Family, setZones}
	add[zones], del[zones] = diffElements(f.current.zoneElements(), want.zoneElements())
	// A new zone's chain before the element that jumps to it; a zone
	// gone takes its chain after its element.
	newZones, goneZones := zoneChanges(f.current.zones, want.zones)
	for _, z := range newZones {
		c.AddChains(inet, []nfsock.ChainDef{zoneChain(z)})
	}
	defs := map[setKey]nfsock.SetDef{}
	for _, d := range bridgeSets {
		defs[setKey{bridge.Family, d.Name}] = d
	}
	for _, d := range inetSets {
		defs[setKey{inet.Family, d.Name}] = d
	}
	def := func(k setKey) nfsock.SetDef {
		if d, ok := defs[k]; ok {
			return d
		}
		d, _ := rulesSetDef(k.name)
		return d
	}
	// Deletions first: an interval set refuses an element that overlaps
	// one it holds, even one the same batch deletes later; a deletion
	// earlier in the batch frees the keys (tested on 6.18). The elements
	// want keeps are disjoint from the ones it adds.
	for _, k := range sortedKeys(del) {
		if err := c.DeleteElements(def(k).NFT(table[k.family]), del[k]); err != nil {
			return nil, err
		}
		res.Deleted += len(del[k])
	}
	for _, k := range sortedKeys(add) {
		if err := c.AddElements(def(k).NFT(table[k.family]), add[k]); err != nil {
			return nil, err
		}
		res.Added += len(add[k])
	}
	// Ports gone: their chains and rule sets, after the map elements
	// that referred to them, and their drop counters (a tag or an
	// interface name may come back for another port).
	for _, tag := range gone {
		c.DelChain(&nftables.Chain{Table: bridge, Name: tagChainName(tag)})
		for _, ch := range portChains(tag) {
			c.DelChain(&nftables.Chain{Table: inet, Name: ch.Name})
		}
		for _, name := range []string{rulesSet4(tag), rulesSet6(tag)} {
			c.DelSet(&nftables.Set{Table: inet, Name: name})
		}
	}
	if len(gone) > 0 {
		if err := f.forgetCounters(c, gone); err != nil {
			return nil, err
		}
	}
	for _, z := range goneZones {
		c.DelChain(&nftables.Chain{Table: inet, Name: zoneChainName(z)})
	}
	return removedRules, nil
}

// zoneChanges returns the zones of next that prev lacks, and those of
// prev that next lacks.
func zoneChanges(prev, next map[string]uint16) (added, gone []uint16) {
	in := func(zones map[string]uint16) map[uint16]bool {
		out := map[uint16]bool{}
		for _, z := range zones {
			out[z] = true
		}
		return out
	}
	p, n := in(prev), in(next)
	for z := range n {
		if !p[z] {
			added = append(added, z)
		}
	}
	for z := range p {
		if !n[z] {
			gone = append(gone, z)
		}
	}
	slices.Sort(added)
	slices.Sort(gone)
	return added, gone
}

// diffElements returns what a set holding old needs to hold next: the
// elements to add (new keys, and keys whose data changed) and to delete
// (keys gone, and the old versions of the changed ones).
func diffElements(old, next []nfsock.Element) (add, del []nfsock.Element) {
	was := map[string]nfsock.Element{}
	for _, e := range old {
		was[string(e.Key)+"/"+string(e.KeyEnd)] = e
	}
	for _, e := range next {
		id := string(e.Key) + "/" + string(e.KeyEnd)
		prev, ok := was[id]
		delete(was, id)
		if ok && prev.Equal(e) {
			continue
		}
		if ok {
			del = append(del, prev)
		}
		add = append(add, e)
	}
	for _, e := range was {
		del = append(del, e)
	}
	return add, del
}

func sortedKeys(m map[setKey][]nfsock.Element) []setKey {
	return slices.SortedFunc(maps.Keys(m), func(a, b setKey) int {
		return bytes.Compare([]byte(a.name), []byte(b.name))
	})
}

// forgetCounters queues the deletion of the drop counters of the ports
// with tags gone.
func (f *Firewall) forgetCounters(c *nfsock.Conn, gone []uint16) error {
	bridge, inet := tables()
	names := map[string]bool{}
	tags := map[uint32]bool{}
	for _, tag := range gone {
		names[string(nfsock.IfName(f.current.ports[tag].port.Interface))] = true
		tags[uint32(tag)] = true
		tags[uint32(tag)<<16] = true
	}
	for _, d := range []struct {
		set  *nftables.Set
		gone func(key []byte) bool
	}{
		{&nftables.Set{Table: bridge, Name: setDrops}, func(k []byte) bool { return len(k) >= 16 && names[string(k[:16])] }},
		{&nftables.Set{Table: inet, Name: setDrops}, func(k []byte) bool {
			return len(k) >= 4 && tags[binaryutil.NativeEndian.Uint32(k[:4])]
		}},
	} {
		els, err := c.GetSetElements(d.set)
		if err != nil {
			return fmt.Errorf("read drop counters: %w", err)
		}
		var del []nfsock.Element
		for _, e := range els {
			if d.gone(e.Key) {
				del = append(del, nfsock.Element{Key: e.Key})
			}
		}
		if err := c.DeleteElements(d.set, del); err != nil {
			return err
		}
	}
	return nil
}

// Counters returns the drop counters of every port of the last Apply, by
// interface name.
func (f *Firewall) Counters() (map[string]Counters, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	conn, err := f.own.Conn()
	if err != nil {
		return nil, err
	}
	out := map[string]Counters{}
	for name := range f.current.tags {
		out[name] = Counters{}
	}
	bridge, inet := tables()
	els, err := conn.GetSetElements(&nftables.Set{Table: bridge, Name: setDrops})
	if err != nil {
		return nil, fmt.Errorf("read drop counters: %w", err)
	}
	for _, e := range els {
		if len(e.Key) < 20 || e.Counter == nil {
			continue
		}
		name := nfsock.NameOf(e.Key[:16])
		c := out[name]
		c.add(binaryutil.NativeEndian.Uint32(e.Key[16:20]), e.Counter.Packets)
		out[name] = c
	}
	els, err = conn.GetSetElements(&nftables.Set{Table: inet, Name: setDrops})
	if err != nil {
		return nil, fmt.Errorf("read drop counters: %w", err)
	}
	for _, e := range els {
		if len(e.Key) < 8 || e.Counter == nil {
			continue
		}
		tag := binaryutil.NativeEndian.Uint32(e.Key[:4])
		if tag > maxTag {
			tag >>= 16
		}
		p := f.current.ports[uint16(tag)]
		if p == nil {
			continue
		}
		c := out[p.port.Interface]
		c.add(binaryutil.NativeEndian.Uint32(e.Key[4:8]), e.Counter.Packets)
		out[p.port.Interface] = c
	}
	return out, nil
}

// Present reports whether both tables exist: a full pass of the agent
// checks that nobody removed them.
func (f *Firewall) Present() (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.own.Conn()
	if err != nil {
		return false, err
	}
	for _, tbl := range layouts() {
		if ok, err := c.Exists(tbl.t); err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

// Delete removes both tables, if they exist, and the conntrack entries of
// their zones: the bridges' traffic is tracked in zone 0 again, and a
// later Apply may number the bridges otherwise.
func (f *Firewall) Delete() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.own.Conn()
	if err != nil {
		return err
	}
	f.own.Forget()
	zones, err := f.kernelZones(c)
	if err != nil {
		zones = nil // no inet table: no zones either
	}
	for _, tbl := range layouts() {
		if ok, err := c.Exists(tbl.t); err != nil {
			return f.own.Fail(err)
		} else if ok {
			c.DelTable(tbl.t)
		}
	}
	if err := c.Flush(); err != nil {
		return f.own.Fail(fmt.Errorf("delete %s tables in %q: %w", TableName, f.namespace, err))
	}
	_, err = forget(c, newFlowMatcher(nil, compiled{zones: zones}, compiled{}))
	return err
}

// flowMatcher matches the conntrack entries of connections that removed
// rule elements allowed and the port's rules allow no longer (elements
// are pieces of the union of a port's rules: a change elsewhere in the
// union may remove an element and add another that still allows the
// connection), and every entry of a zone that no bridge has any more.
type flowMatcher struct {
	removed []ruleElement
	old     compiled
	// rules are the rule elements of the ports of removed, as they are
	// now, by tag.
	rules    map[uint16][]ruleElement
	released map[uint16]bool
}

func newFlowMatcher(removedElems []nfsock.Element, old, next compiled) *flowMatcher {
	m := &flowMatcher{old: old, rules: map[uint16][]ruleElement{}, released: map[uint16]bool{}}
	_, gone := zoneChanges(old.zones, next.zones)
	for _, z := range gone {
		m.released[z] = true
	}
	for _, e := range removedElems {
		r, ok := decodeRule(e)
		if !ok || old.ports[r.tag] == nil {
			continue
		}
		m.removed = append(m.removed, r)
		pe := next.ports[r.tag]
		if _, done := m.rules[r.tag]; done || pe == nil {
			continue
		}
		var now []ruleElement
		for k, es := range pe.elems {
			if _, isRules := rulesSetDef(k.name); isRules {
				for _, e := range es {
					if n, ok := decodeRule(e); ok {
						now = append(now, n)
					}
				}
			}
		}
		m.rules[r.tag] = now
	}
	m.removed = slices.DeleteFunc(m.removed, m.stillAllowed())
	return m
}

// stillAllowed reports, for a removed rule element, whether the port's
// rules now still allow every key it held. Most removals during growth
// are of that kind: elements are the canonical pieces of the union of a
// port's rules, so a member joining a remote group re-cuts them (10.9.0.10
// and a new 10.9.0.11 make one element 10.9.0.10–11) without taking
// anything away. Such an element cannot have admitted a connection the
// rules refuse now, and dropping it from the matcher spares Apply the
// conntrack dump, which walks the kernel's whole table each time. An
// element is covered when adding it to the port's elements of its
// direction and family leaves their canonical union (nfsock.Disjoint)
// unchanged.
func (m *flowMatcher) stillAllowed() func(ruleElement) bool {
	type group struct {
		tag uint16
		dir Direction
		v6  bool
	}
	canon := map[group][]nfsock.Box{}
	return func(r ruleElement) bool {
		now, ok := m.rules[r.tag]
		if !ok {
			return false // the port is gone
		}
		g := group{r.tag, r.dir, r.v6}
		max := []nfsock.Num{nfsock.MaxOf(1), nfsock.MaxOf(2), nfsock.MaxOf(4)}
		if r.v6 {
			max[2] = nfsock.MaxOf(16)
		}
		var boxes []nfsock.Box
		for _, n := range now {
			if n.dir == r.dir && n.v6 == r.v6 {
				boxes = append(boxes, n.box)
			}
		}
		if len(boxes) == 0 {
			return false
		}
		cur, ok := canon[g]
		if !ok {
			cur = nfsock.Disjoint(boxes, max)
			canon[g] = cur
		}
		with := nfsock.Disjoint(append(boxes, r.box), max)
		return slices.EqualFunc(cur, with, func(a, b nfsock.Box) bool { return slices.Equal(a, b) })
	}
}

// match is the matcher as an nfsock.FlowMatch. The rules judged the
// connection's first packet as the forward hook sees it: after its
// destination was translated (a published port), before its source was
// (masquerade): from the original source to the reply's source and port.
func (m *flowMatcher) match(fl nfsock.Flow) bool {
	if m.released[fl.Zone] {
		return true
	}
	src, dst := fl.Orig.Src, fl.Reply.Src
	proto, port := fl.Proto, fl.Reply.SrcPort
	for _, r := range m.removed {
		own, peer := dst, src
		if r.dir == Egress {
			own, peer = src, dst
		}
		// The port's connections are in its bridge's zone (0 if the
		// bridge has none); another network may have the same addresses.
		p := &m.old.ports[r.tag].port
		if !r.allows(proto, port, peer) || m.old.zones[p.Bridge] != fl.Zone || !p.owns(own) {
			continue
		}
		still := slices.ContainsFunc(m.rules[r.tag], func(n ruleElement) bool {
			return n.dir == r.dir && n.allows(proto, port, peer)
		})
		if !still {
			return true
		}
	}
	return false
}

// owns reports whether the port may send from a: what the anti-spoofing
// lets it, link-local addresses included (instances on one link may
// connect to each other's).
func (p *Port) owns(a netip.Addr) bool {
	if slices.Contains(p.Addresses, a) {
		return true
	}
	if a.Is6() && a.IsLinkLocalUnicast() {
		if a == linkLocal(p.MAC) || slices.ContainsFunc(p.MACs, func(m net.HardwareAddr) bool { return a == linkLocal(m) }) {
			return true
		}
	}
	for _, n := range p.Networks {
		if n.Contains(a) {
			return true
		}
	}
	return false
}
