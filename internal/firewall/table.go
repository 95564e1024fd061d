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
	// (no tags before the first), and version its spec's Version (0:
	// none, or the last Apply failed).
	current compiled
	version uint64
	zoned   []string // current's Spec.Zoned
}

// compiled is a Spec as set elements, port by port, with the tags it
// used, and the zones of its bridges.
type compiled struct {
	tags  map[string]uint16        // interface → tag
	ports map[uint16]*portElements // tag → the port's elements
	zones map[string]uint16        // zoned bridge → conntrack zone
	// sigs are the signatures of the ports' rules, by number and by key;
	// kernelSigs, when adopting, the signature the kernel gives each tag
	// (a hint: compile keeps the numbers where it can).
	sigs       map[uint16]*signature
	sigByKey   map[string]*signature
	kernelSigs map[uint16]uint16
	// groups are the remote groups the ports' rules name; deltas, those
	// compiled as a change of the compilation before (see compile),
	// which is what an update sends for them.
	groups map[string]*groupElements
	deltas map[string]*groupDelta
	// sigPorts count the ports of each signature, and used the tags of
	// ports: what a compilation of a change (compileChanged) updates
	// instead of walking every port.
	sigPorts map[uint16]int
	used     *tagSet
	// changes, when compileChanged made this compilation, are the tags
	// it changed from the one before, which is what an update sends.
	changes *portChanges
	// looked counts the ports of the spec the compilation looked at (a
	// cost, for tests).
	looked int
}

// portChanges are the ports a compilation of a change added or altered
// (changed) and removed (gone), by tag, sorted.
type portChanges struct {
	changed, gone []uint16
}

// tagSet is a set of port tags.
type tagSet [maxTag/64 + 1]uint64

func (t *tagSet) has(tag uint16) bool { return t[tag/64]&(1<<(tag%64)) != 0 }
func (t *tagSet) add(tag uint16)      { t[tag/64] |= 1 << (tag % 64) }
func (t *tagSet) remove(tag uint16)   { t[tag/64] &^= 1 << (tag % 64) }

// firstFree is the lowest tag from 1 the set lacks (maxTag+1: none).
func (t *tagSet) firstFree() uint16 {
	for i, w := range t {
		if w != ^uint64(0) {
			for b := range uint16(64) {
				if tag := uint16(i)*64 + b; tag > 0 && w&(1<<b) == 0 {
					return tag
				}
			}
		}
	}
	return maxTag + 1
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
	// Examined counts the conntrack entries read to find those: after
	// members left a group (the most frequent removal: a port deleted),
	// only the entries from or to the addresses that left, which the
	// kernel picks out; after other removals, the namespace's whole
	// table.
	Examined uint
	// ConntrackWalks counts the dumps of the conntrack table that took:
	// each walks the kernel's whole hash, every namespace's buckets.
	ConntrackWalks uint
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
	f.mu.Lock()
	defer f.mu.Unlock()
	// A change of the spec applied: validated and compiled port by
	// changed port (see Spec.Base), unless it changes more than ports.
	var changed *compiled
	if spec.Base != 0 && spec.Base == f.version && slices.Equal(spec.Zoned, f.zoned) && f.namesGroups(spec) {
		if c, ok := compileChanged(spec, f.current); ok {
			changed = &c
		}
	}
	if changed != nil {
		if err := spec.validateChanged(); err != nil {
			return Result{}, fmt.Errorf("firewall spec: %w", err)
		}
	} else if err := spec.Validate(); err != nil {
		return Result{}, fmt.Errorf("firewall spec: %w", err)
	}
	f.version = 0 // until this Apply succeeds
	res, err := f.apply(spec, changed)
	if err == nil {
		f.version, f.zoned = spec.Version, spec.Zoned
	}
	return res, err
}

// namesGroups reports whether spec has every group the rules applied
// name (a port spec does not change may name them).
func (f *Firewall) namesGroups(spec Spec) bool {
	for g := range f.current.groups {
		if _, ok := spec.Groups[g]; !ok {
			return false
		}
	}
	return true
}

// apply is Apply on a valid spec, and its compilation against current
// when compileChanged made one.
func (f *Firewall) apply(spec Spec, changed *compiled) (Result, error) {
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
		res.Forgotten, res.Examined, res.ConntrackWalks, err = forget(c, newFlowMatcher(old, want))
		return res, err
	}
	var want compiled
	if changed != nil {
		want = *changed
	} else {
		want = compile(spec, f.current)
	}
	rewrote, err := f.update(c, want, &res)
	if err != nil {
		return res, f.own.Fail(err)
	}
	if res.Added+res.Deleted == 0 && !rewrote {
		// Nothing queued: another spec with the same elements. The
		// proof stands.
		want.deltas = nil
		f.current = want
		return res, nil
	}
	if _, err := f.own.Commit(gen); err != nil {
		return res, fmt.Errorf("update %s tables in %q: %w", TableName, f.namespace, err)
	}
	old := f.current
	res.Forgotten, res.Examined, res.ConntrackWalks, err = forget(c, newFlowMatcher(old, want))
	// The deltas were what this update sent; kept, they would hold the
	// compilation before it.
	want.deltas = nil
	f.current = want
	return res, err
}

// forget deletes the conntrack entries m matches, if it can match any,
// and says how many it deleted and examined.
func forget(c *nfsock.Conn, m *flowMatcher) (deleted, examined, walks uint, err error) {
	if len(m.changed) == 0 && len(m.shrunk) == 0 && len(m.released) == 0 {
		return 0, 0, 0, nil
	}
	res, err := c.ForgetFlows(m.from(), m.match)
	if err != nil {
		return res.Deleted, res.Examined, res.Walks, fmt.Errorf("forget connections of removed rules and zones: %w", err)
	}
	return res.Deleted, res.Examined, res.Walks, nil
}

func (c compiled) size() int {
	n := 0
	for _, p := range c.ports {
		for _, es := range p.elems {
			n += len(es)
		}
	}
	for _, sg := range c.sigs {
		for _, es := range sg.elems {
			n += len(es)
		}
	}
	for _, g := range c.groups {
		for _, es := range g.rangeElems {
			n += len(es)
		}
		n += g.members.Len() - len(g.ranges)
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

// with is the table's sets and chains once c's ports, groups and zones
// are in it: a tagging chain per port in the bridge table; two chains and
// four rule sets per signature (and four per remote group it names), four
// member sets per remote group, and a chain per zone, in the inet table.
func (l tableLayout) with(c compiled) (sets []nfsock.SetDef, chains []nfsock.ChainDef) {
	sets, chains = slices.Clone(l.sets), slices.Clone(l.chains)
	if l.t.Family == nftables.TableFamilyINet {
		for _, b := range slices.Sorted(maps.Keys(c.zones)) {
			chains = append(chains, zoneChain(c.zones[b]))
		}
		for _, g := range slices.Sorted(maps.Keys(c.groups)) {
			sets = append(sets, memberSetDefs(g)...)
		}
	}
	if l.t.Family == nftables.TableFamilyBridge {
		for _, tag := range slices.Sorted(maps.Keys(c.ports)) {
			chains = append(chains, tagChain(tag))
		}
		return sets, chains
	}
	for _, num := range slices.Sorted(maps.Keys(c.sigs)) {
		sg := c.sigs[num]
		chains = append(chains, sg.chains()...)
		sets = append(sets, sg.sets()...)
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

// update queues the difference between f.current and want, counts the
// elements in res, and reports whether it rewrote chains too. Ports whose
// compilation want reused from f.current are skipped, and so are groups
// whose members did not change: the cost follows what changed.
func (f *Firewall) update(c *nfsock.Conn, want compiled, res *Result) (rewrote bool, err error) {
	bridge, inet := tables()
	table := map[nftables.TableFamily]*nftables.Table{bridge.Family: bridge, inet.Family: inet}
	add, del := map[setKey][]nfsock.Element{}, map[setKey][]nfsock.Element{}
	defs := map[setKey]nfsock.SetDef{}
	for _, d := range bridgeSets {
		defs[setKey{bridge.Family, d.Name}] = d
	}
	for _, d := range inetSets {
		defs[setKey{inet.Family, d.Name}] = d
	}
	// Sets that come and go whole: a signature's rule sets, a group's
	// member sets. They are created first, deleted last (after the rules that
	// look in them), and their elements go with them.
	created, deleted := map[string]nfsock.SetDef{}, map[string]bool{}
	var newChains []nfsock.ChainDef // created whole
	var goneChains []*nftables.Chain
	var gone []uint16
	for _, g := range slices.Sorted(maps.Keys(want.groups)) {
		if f.current.groups[g] == nil {
			for _, d := range memberSetDefs(g) {
				created[d.Name] = d
			}
		}
	}
	for g := range f.current.groups {
		if want.groups[g] == nil {
			for _, d := range memberSetDefs(g) {
				deleted[d.Name] = true
			}
		}
	}
	var changed []uint16
	if want.changes != nil {
		// Compiled as a change of current: the ports it names.
		gone, changed = want.changes.gone, want.changes.changed
		for _, tag := range gone {
			goneChains = append(goneChains, &nftables.Chain{Table: bridge, Name: tagChainName(tag)})
		}
	} else {
		for tag := range f.current.ports {
			if _, ok := want.ports[tag]; ok {
				continue
			}
			gone = append(gone, tag)
			goneChains = append(goneChains, &nftables.Chain{Table: bridge, Name: tagChainName(tag)})
		}
		slices.Sort(gone)
		for _, tag := range slices.Sorted(maps.Keys(want.ports)) {
			if want.ports[tag] != f.current.ports[tag] {
				changed = append(changed, tag)
			}
		}
	}
	// Signatures come and go whole: a new one's sets and chains, a gone
	// one's after the elements that refer to them. A signature never
	// changes: a port whose rules change moves to another.
	// A signature changed in place (see sigNumbers) keeps its sets, but
	// those of remote groups it no longer names, and gets its chains
	// rewritten if the groups it names changed.
	var newSigs, goneSigs, changedSigs []uint16
	var rewritten []nfsock.ChainDef
	for _, num := range slices.Sorted(maps.Keys(want.sigs)) {
		old, next := f.current.sigs[num], want.sigs[num]
		switch {
		case old == next:
		case old == nil:
			newSigs = append(newSigs, num)
		default:
			changedSigs = append(changedSigs, num)
			was := map[string]bool{}
			for _, d := range old.sets() {
				was[d.Name] = true
			}
			for _, d := range next.sets() {
				if !was[d.Name] {
					created[d.Name] = d
				}
				delete(was, d.Name)
			}
			for name := range was {
				deleted[name] = true
			}
			if !slices.Equal(old.ingress, next.ingress) || !slices.Equal(old.egress, next.egress) {
				rewritten = append(rewritten, next.chains()...)
			}
		}
	}
	for _, num := range slices.Sorted(maps.Keys(f.current.sigs)) {
		if want.sigs[num] == nil {
			goneSigs = append(goneSigs, num)
		}
	}
	for _, num := range goneSigs {
		old := f.current.sigs[num]
		for _, d := range old.sets() {
			deleted[d.Name] = true
		}
		for _, ch := range old.chains() {
			goneChains = append(goneChains, &nftables.Chain{Table: inet, Name: ch.Name})
		}
	}
	for _, num := range newSigs {
		for _, d := range want.sigs[num].sets() {
			created[d.Name] = d
		}
		newChains = append(newChains, want.sigs[num].chains()...)
	}
	for _, name := range slices.Sorted(maps.Keys(created)) {
		if err := c.CreateSet(created[name], inet); err != nil {
			return false, err
		}
	}
	// A new port's tagging chain and a new signature's chains, after the
	// sets they look in and before the elements that refer to them.
	for _, tag := range changed {
		if f.current.ports[tag] == nil {
			c.AddChains(bridge, []nfsock.ChainDef{tagChain(tag)})
		}
	}
	c.AddChains(inet, newChains)
	for _, ch := range rewritten {
		c.FlushChain(ch.NFT(inet))
		c.AddRules(inet, ch)
	}
	diff := func(old, next map[setKey][]nfsock.Element) {
		keys := map[setKey]bool{}
		for k := range old {
			keys[k] = true
		}
		for k := range next {
			keys[k] = true
		}
		for k := range keys {
			if deleted[k.name] {
				continue // the set goes whole
			}
			a, d := diffElements(old[k], next[k])
			add[k], del[k] = append(add[k], a...), append(del[k], d...)
		}
	}
	for _, tag := range gone {
		diff(f.current.ports[tag].elems, nil)
	}
	for _, tag := range changed {
		var old map[setKey][]nfsock.Element
		if pe := f.current.ports[tag]; pe != nil {
			old = pe.elems
		}
		diff(old, want.ports[tag].elems)
	}
	for _, num := range goneSigs {
		diff(f.current.sigs[num].elems, nil)
	}
	for _, num := range newSigs {
		diff(nil, want.sigs[num].elems)
	}
	for _, num := range changedSigs {
		diff(f.current.sigs[num].elems, want.sigs[num].elems)
	}
	for g, next := range want.groups {
		old := f.current.groups[g]
		if old == next {
			continue
		}
		if d := want.deltas[g]; d != nil && d.base == old {
			// Compiled as a change of what the kernel holds: the
			// elements that changed, whatever the group's size.
			for k, es := range d.delete {
				del[k] = append(del[k], es...)
			}
			for k, es := range d.added {
				add[k] = append(add[k], es...)
			}
			continue
		}
		var was map[setKey][]nfsock.Element
		if old != nil {
			was = old.elems()
		}
		diff(was, next.elems())
	}
	zones := setKey{inet.Family, setZones}
	add[zones], del[zones] = diffElements(f.current.zoneElements(), want.zoneElements())
	// A new zone's chain before the element that jumps to it; a zone
	// gone takes its chain after its element.
	newZones, goneZones := zoneChanges(f.current.zones, want.zones)
	for _, z := range newZones {
		c.AddChains(inet, []nfsock.ChainDef{zoneChain(z)})
	}
	def := func(k setKey) nfsock.SetDef {
		if d, ok := defs[k]; ok {
			return d
		}
		if d, ok := rulesSetDef(k.name); ok {
			return d
		}
		d, _ := memberSetDef(k.name)
		return d
	}
	// Deletions first: an interval set refuses an element that overlaps
	// one it holds, even one the same batch deletes later; a deletion
	// earlier in the batch frees the keys (tested on 6.18). The elements
	// want keeps are disjoint from the ones it adds.
	for _, k := range sortedKeys(del) {
		if err := c.DeleteElements(def(k).NFT(table[k.family]), del[k]); err != nil {
			return false, err
		}
		res.Deleted += len(del[k])
	}
	for _, k := range sortedKeys(add) {
		if err := c.AddElements(def(k).NFT(table[k.family]), add[k]); err != nil {
			return false, err
		}
		res.Added += len(add[k])
	}
	// Ports gone: their tagging chains, after the map elements that
	// referred to them, and their drop counters (a tag or an interface
	// name may come back for another port); signatures gone: their chains,
	// then their sets. Member sets no rule looks in any more: after the
	// chains that did are deleted.
	for _, ch := range goneChains {
		c.DelChain(ch)
	}
	for _, name := range slices.Sorted(maps.Keys(deleted)) {
		c.DelSet(&nftables.Set{Table: inet, Name: name})
	}
	if len(gone) > 0 {
		if err := f.forgetCounters(c, gone); err != nil {
			return false, err
		}
	}
	for _, z := range goneZones {
		c.DelChain(&nftables.Chain{Table: inet, Name: zoneChainName(z)})
	}
	return len(rewritten) > 0, nil
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
	f.version = 0 // the next spec is no change of the tables gone
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
	_, _, _, err = forget(c, newFlowMatcher(compiled{zones: zones}, compiled{}))
	return err
}

// flowMatcher matches the conntrack entries of connections the rules of a
// port allowed before a change and allow no longer (a change elsewhere in
// a port's rules, or another remote group member with the same address,
// may still allow the connection), and every entry of a zone that no
// bridge has any more.
type flowMatcher struct {
	old, next compiled
	// changed are the ports of old whose compilation next did not reuse
	// and whose rules next does not all keep (see covers), or that are
	// gone.
	changed []uint16
	// shrunk are the members each remote group lost, and byGroup the
	// other ports of old that name the group.
	shrunk   map[string][]netip.Prefix
	byGroup  map[string][]uint16
	released map[uint16]bool
}

func newFlowMatcher(old, next compiled) *flowMatcher {
	m := &flowMatcher{old: old, next: next, shrunk: map[string][]netip.Prefix{},
		byGroup: map[string][]uint16{}, released: map[uint16]bool{}}
	_, gone := zoneChanges(old.zones, next.zones)
	for _, z := range gone {
		m.released[z] = true
	}
	for g, og := range old.groups {
		ng := next.groups[g]
		if ng == og {
			continue
		}
		var lost []netip.Prefix
		if d := next.deltas[g]; d != nil && d.base == og {
			lost = d.lost
		} else if ng != nil {
			lost, _ = memberChanges(og.members, ng.members)
		} else {
			lost = og.members.Sorted()
		}
		if len(lost) > 0 {
			m.shrunk[g] = lost
		}
	}
	if next.changes != nil && len(m.shrunk) == 0 {
		// Compiled as a change of old (compileChanged): the ports
		// it altered kept their rules, and no group lost a member,
		// so the ports gone are all that changed.
		m.changed = next.changes.gone
		return m
	}
	for _, tag := range slices.Sorted(maps.Keys(old.ports)) {
		pe := old.ports[tag]
		if np := next.ports[tag]; np != pe && (np == nil || np.port.Interface != pe.port.Interface || !covers(np.port.Rules, pe.port.Rules)) {
			m.changed = append(m.changed, tag)
			continue
		}
		for _, g := range pe.groups() {
			if len(m.shrunk[g]) > 0 {
				m.byGroup[g] = append(m.byGroup[g], tag)
			}
		}
	}
	return m
}

// covers reports whether rules holds every rule of old. Rules only
// allow (a port admits what any of its rules admits), so a port whose
// rules cover its old ones — a rule added to its group, a group added to
// it — cuts no connection by its rules: only its remote groups' lost
// members may (flowMatcher.shrunk), and it is not changed.
func covers(rules, old []Rule) bool {
	if len(old) > len(rules) {
		return false
	}
	have := make(map[Rule]bool, len(rules))
	for _, r := range rules {
		have[r] = true
	}
	for _, r := range old {
		if !have[r] {
			return false
		}
	}
	return true
}

// from is what the matcher can match, when that is the connections from
// or to some addresses only: members that left groups, each one address
// (remote groups' members are), and nothing else removed — no port's
// rules changed or gone, no zone released. Nil when it may match any
// entry.
func (m *flowMatcher) from() []netip.Addr {
	if len(m.changed) > 0 || len(m.released) > 0 {
		return nil
	}
	var addrs []netip.Addr
	seen := map[netip.Addr]bool{}
	for _, g := range slices.Sorted(maps.Keys(m.shrunk)) {
		if len(m.byGroup[g]) == 0 {
			continue // no port's rules name the group: nothing to cut
		}
		for _, p := range m.shrunk[g] {
			if !p.IsSingleIP() {
				return nil // a range: a filter per address would not do
			}
			if a := p.Addr(); !seen[a] {
				seen[a] = true
				addrs = append(addrs, a)
			}
		}
	}
	if addrs == nil {
		addrs = []netip.Addr{} // nothing to look at
	}
	return addrs
}

// match is the matcher as an nfsock.FlowMatch. The rules judged the
// connection's first packet as the forward hook sees it: after its
// destination was translated (a published port), before its source was
// (masquerade): from the original source to the reply's source and port.
func (m *flowMatcher) match(fl nfsock.Flow) bool {
	if m.released[fl.Zone] {
		return true
	}
	for _, tag := range m.changed {
		if m.cut(tag, fl) {
			return true
		}
	}
	for g, lost := range m.shrunk {
		if !slices.ContainsFunc(lost, func(p netip.Prefix) bool {
			return p.Contains(fl.Orig.Src) || p.Contains(fl.Reply.Src)
		}) {
			continue
		}
		for _, tag := range m.byGroup[g] {
			if m.cut(tag, fl) {
				return true
			}
		}
	}
	return false
}

// cut reports whether the port with tag in old, a party to fl, had rules
// that allowed it and has none that does now.
func (m *flowMatcher) cut(tag uint16, fl nfsock.Flow) bool {
	src, dst := fl.Orig.Src, fl.Reply.Src
	proto, port := fl.Proto, fl.Reply.SrcPort
	old := m.old.ports[tag]
	// The port's connections are in its bridge's zone (0 if the bridge
	// has none); another network may have the same addresses.
	if m.old.zones[old.port.Bridge] != fl.Zone {
		return false
	}
	for _, dir := range []Direction{Ingress, Egress} {
		own, peer := dst, src
		if dir == Egress {
			own, peer = src, dst
		}
		if old.port.owns(own) && old.allows(m.old, dir, proto, port, peer) &&
			!m.next.ports[tag].allows(m.next, dir, proto, port, peer) {
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
