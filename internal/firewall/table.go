package firewall

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	vnl "github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/nsnet/nsnet/internal/netns"
	"github.com/nsnet/nsnet/internal/nfsock"
)

// Firewall is the pair of nsnet_fw tables of one namespace, open for
// programming. Its methods are safe for concurrent use.
type Firewall struct {
	namespace string
	log       *slog.Logger

	mu  sync.Mutex
	nft *nfsock.Conn
	ct  *vnl.Handle
	// synced: the kernel holds exactly what current describes (false
	// before the first Apply and after a failed one: the next Apply then
	// replaces both tables in one batch).
	synced  bool
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

type element struct {
	key, keyEnd, val []byte
	chain            string // vmap elements: jump (or goto) target
	goTo             bool
}

func (e element) nft() nftables.SetElement {
	el := nftables.SetElement{Key: e.key, KeyEnd: e.keyEnd, Val: e.val}
	if e.chain != "" {
		el.VerdictData = &expr.Verdict{Kind: expr.VerdictJump, Chain: e.chain}
		if e.goTo {
			el.VerdictData.Kind = expr.VerdictGoto
		}
	}
	return el
}

// Open opens the firewall of the named namespace ("" is the process's
// own); it creates nothing until Apply.
func Open(namespace string, log *slog.Logger) (*Firewall, error) {
	if log == nil {
		log = slog.Default()
	}
	f := &Firewall{namespace: namespace, log: log.With("netns", namespace, "table", TableName)}
	return f, f.dial()
}

// bufferSize bounds one batch: the first Apply of a thousand ports with
// twenty rules each is a few megabytes.
const bufferSize = 64 << 20

func (f *Firewall) dial() error {
	return netns.DoNamed(f.namespace, func() error {
		c, err := nfsock.Open(bufferSize, bufferSize)
		if err != nil {
			return fmt.Errorf("open firewall in %q: %w", f.namespace, err)
		}
		h, err := vnl.NewHandle(unix.NETLINK_NETFILTER)
		if err != nil {
			c.Close()
			return fmt.Errorf("conntrack socket in %q: %w", f.namespace, err)
		}
		f.nft, f.ct = c, h
		return nil
	})
}

// Close releases the sockets; the tables stay.
func (f *Firewall) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ct.Close()
	return f.nft.Close()
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
}

// Apply makes the tables implement spec. The first Apply of a Firewall
// adopts the tables a previous daemon left if they implement spec exactly,
// and otherwise replaces both (atomically, in one batch, bridges keeping
// the zones the kernel gave them); later ones send only the elements that
// differ, in one batch. Removed rules take their connections' conntrack
// entries with them, and a bridge's zone going takes its entries (a later
// bridge may get the number).
func (f *Firewall) Apply(spec Spec) (Result, error) {
	if err := spec.Validate(); err != nil {
		return Result{}, fmt.Errorf("firewall spec: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.synced {
		kernelZones, err := f.kernelZones()
		if err != nil {
			kernelZones = f.current.zones // no table (or an unreadable one)
		}
		if want, ok := f.adopt(spec, kernelZones); ok {
			f.current, f.synced = want, true
			return Result{Adopted: true}, nil
		}
		old := compiled{zones: kernelZones}
		want := compile(spec, old)
		if err := f.rebuild(want); err != nil {
			return Result{}, f.fail(err)
		}
		f.current, f.synced = want, true
		res := Result{Rebuilt: true, Added: want.size()}
		res.Forgotten, err = f.forget(newFlowMatcher(nil, old, want))
		return res, err
	}
	want := compile(spec, f.current)
	res, removed, err := f.update(want)
	if err != nil {
		return res, f.fail(err)
	}
	old := f.current
	f.current = want
	res.Forgotten, err = f.forget(newFlowMatcher(removed, old, want))
	return res, err
}

// forget deletes the conntrack entries m matches, if it can match any.
func (f *Firewall) forget(m *flowMatcher) (uint, error) {
	if len(m.removed) == 0 && len(m.released) == 0 {
		return 0, nil
	}
	n, err := f.ct.ConntrackDeleteFilters(vnl.ConntrackTable, unix.AF_INET, m)
	n6, err6 := f.ct.ConntrackDeleteFilters(vnl.ConntrackTable, unix.AF_INET6, m)
	if err := errors.Join(err, err6); err != nil {
		return n + n6, fmt.Errorf("forget connections of removed rules and zones: %w", err)
	}
	return n + n6, nil
}

// fail forgets what the Firewall believed about the kernel and its
// sockets, which may hold half a batch or unread answers: the next Apply
// dials again and replaces both tables.
func (f *Firewall) fail(err error) error {
	f.synced = false
	f.ct.Close()
	f.nft.Close()
	if derr := f.dial(); derr != nil {
		return errors.Join(err, fmt.Errorf("reopen: %w", derr))
	}
	return err
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
func bySet(ports map[uint16]*portElements) map[setKey][]element {
	out := map[setKey][]element{}
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
	sets   []setDef
	chains []chainDef
}

func layouts() []tableLayout {
	bridge, inet := tables()
	return []tableLayout{{bridge, bridgeSets, bridgeChains}, {inet, inetSets, inetChains}}
}

// with is the table's sets and chains once c's ports and zones are in it:
// a tagging chain per port in the bridge table; two chains and two rule
// sets per port, and a chain per zone, in the inet table.
func (l tableLayout) with(c compiled) (sets []setDef, chains []chainDef) {
	sets, chains = slices.Clone(l.sets), slices.Clone(l.chains)
	if l.t.Family == nftables.TableFamilyINet {
		for _, z := range c.zones {
			chains = append(chains, zoneChain(z))
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

// rebuild replaces both tables with want in one batch.
func (f *Firewall) rebuild(want compiled) error {
	bridge, inet := tables()
	for _, t := range []*nftables.Table{bridge, inet} {
		if _, err := f.nft.ListTableOfFamily(TableName, t.Family); err == nil {
			f.nft.DelTable(t)
		}
	}
	elems := want.elements()
	for _, tbl := range layouts() {
		f.nft.AddTable(tbl.t)
		sets, chains := tbl.with(want)
		// Regular chains first: base chains and vmaps jump to them.
		slices.SortStableFunc(chains, func(a, b chainDef) int {
			if (a.hook == nil) == (b.hook == nil) {
				return 0
			}
			if a.hook == nil {
				return -1
			}
			return 1
		})
		created := map[string]*nftables.Chain{}
		for _, c := range chains {
			created[c.name] = f.nft.AddChain(c.nft(tbl.t))
		}
		for _, d := range sets {
			s := d.nft(tbl.t)
			if err := f.nft.AddSet(s, nil); err != nil {
				return fmt.Errorf("set %s: %w", d.name, err)
			}
			if err := f.addElements(s, nftElems(elems[setKey{tbl.t.Family, d.name}])); err != nil {
				return fmt.Errorf("set %s: %w", d.name, err)
			}
		}
		for _, c := range chains {
			for i, r := range c.rules {
				rule := &nftables.Rule{Table: tbl.t, Chain: created[c.name], Exprs: r}
				if tbl.t.Family == nftables.TableFamilyBridge && c.name == layoutMarkChain && i == 0 {
					rule.UserData = userdata.AppendString(nil, userdata.TypeComment, layoutComment)
				}
				f.nft.AddRule(rule)
			}
		}
	}
	if err := f.nft.Flush(); err != nil {
		return fmt.Errorf("replace %s tables in %q: %w", TableName, f.namespace, err)
	}
	return nil
}

func nftElems(es []element) []nftables.SetElement {
	out := make([]nftables.SetElement, 0, len(es))
	for _, e := range es {
		out = append(out, e.nft())
	}
	return out
}

// update sends the difference between f.current and want in one batch and
// returns the rule elements it removed. Ports whose compilation want
// reused from f.current are skipped: the cost follows the ports that
// changed.
func (f *Firewall) update(want compiled) (Result, []element, error) {
	var res Result
	bridge, inet := tables()
	table := map[nftables.TableFamily]*nftables.Table{bridge.Family: bridge, inet.Family: inet}
	add, del := map[setKey][]element{}, map[setKey][]element{}
	var removedRules []element
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
				if err := f.nft.AddSet(d.nft(inet), nil); err != nil {
					return res, nil, fmt.Errorf("set %s: %w", name, err)
				}
			}
			f.addChains(bridge, []chainDef{tagChain(tag)})
			f.addChains(inet, portChains(tag))
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
		f.addChains(inet, []chainDef{zoneChain(z)})
	}
	defs := map[setKey]setDef{}
	for _, d := range bridgeSets {
		defs[setKey{bridge.Family, d.name}] = d
	}
	for _, d := range inetSets {
		defs[setKey{inet.Family, d.name}] = d
	}
	def := func(k setKey) setDef {
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
		if err := f.deleteElements(def(k).nft(table[k.family]), nftElems(del[k])); err != nil {
			return res, nil, err
		}
		res.Deleted += len(del[k])
	}
	for _, k := range sortedKeys(add) {
		if err := f.addElements(def(k).nft(table[k.family]), nftElems(add[k])); err != nil {
			return res, nil, err
		}
		res.Added += len(add[k])
	}
	// Ports gone: their chains and rule sets, after the map elements
	// that referred to them, and their drop counters (a tag or an
	// interface name may come back for another port).
	for _, tag := range gone {
		f.nft.DelChain(&nftables.Chain{Table: bridge, Name: tagChainName(tag)})
		for _, c := range portChains(tag) {
			f.nft.DelChain(&nftables.Chain{Table: inet, Name: c.name})
		}
		for _, name := range []string{rulesSet4(tag), rulesSet6(tag)} {
			f.nft.DelSet(&nftables.Set{Table: inet, Name: name})
		}
	}
	if len(gone) > 0 {
		if err := f.forgetCounters(gone); err != nil {
			return res, nil, err
		}
	}
	for _, z := range goneZones {
		f.nft.DelChain(&nftables.Chain{Table: inet, Name: zoneChainName(z)})
	}
	if err := f.nft.Flush(); err != nil {
		return res, nil, fmt.Errorf("update %s tables in %q: %w", TableName, f.namespace, err)
	}
	return res, removedRules, nil
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
func diffElements(old, next []element) (add, del []element) {
	was := map[string]element{}
	for _, e := range old {
		was[string(e.key)+"/"+string(e.keyEnd)] = e
	}
	for _, e := range next {
		id := string(e.key) + "/" + string(e.keyEnd)
		prev, ok := was[id]
		delete(was, id)
		if ok && sameElement(prev, e) {
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

func sortedKeys(m map[setKey][]element) []setKey {
	return slices.SortedFunc(maps.Keys(m), func(a, b setKey) int {
		return bytes.Compare([]byte(a.name), []byte(b.name))
	})
}

// addChains queues chains and their rules.
func (f *Firewall) addChains(t *nftables.Table, chains []chainDef) {
	for _, c := range chains {
		ch := f.nft.AddChain(c.nft(t))
		for _, r := range c.rules {
			f.nft.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: r})
		}
	}
}

// elementsPerMessage bounds the elements of one netlink message: their
// list is one netlink attribute, whose length is 16 bits. The batch, made
// of many such messages, stays one transaction.
const elementsPerMessage = 256

func (f *Firewall) addElements(s *nftables.Set, els []nftables.SetElement) error {
	for chunk := range slices.Chunk(els, elementsPerMessage) {
		if err := f.nft.SetAddElements(s, chunk); err != nil {
			return fmt.Errorf("add elements to %s: %w", s.Name, err)
		}
	}
	return nil
}

func (f *Firewall) deleteElements(s *nftables.Set, els []nftables.SetElement) error {
	for chunk := range slices.Chunk(els, elementsPerMessage) {
		if err := f.nft.SetDeleteElements(s, chunk); err != nil {
			return fmt.Errorf("delete elements from %s: %w", s.Name, err)
		}
	}
	return nil
}

func sameElement(a, b element) bool {
	return bytes.Equal(a.key, b.key) && bytes.Equal(a.keyEnd, b.keyEnd) && bytes.Equal(a.val, b.val) &&
		a.chain == b.chain && a.goTo == b.goTo
}

// forgetCounters queues the deletion of the drop counters of the ports
// with tags gone.
func (f *Firewall) forgetCounters(gone []uint16) error {
	bridge, inet := tables()
	names := map[string]bool{}
	tags := map[uint32]bool{}
	for _, tag := range gone {
		names[string(ifname(f.current.ports[tag].port.Interface))] = true
		tags[uint32(tag)] = true
		tags[uint32(tag)<<16] = true
	}
	bset := (setDef{name: setDrops, key: typeIfReason, counters: true}).nft(bridge)
	els, err := f.nft.GetSetElements(bset)
	if err != nil {
		return fmt.Errorf("read drop counters: %w", err)
	}
	var del []nftables.SetElement
	for _, e := range els {
		if len(e.Key) >= 16 && names[string(e.Key[:16])] {
			del = append(del, nftables.SetElement{Key: e.Key})
		}
	}
	if err := f.deleteElements(bset, del); err != nil {
		return err
	}
	iset := (setDef{name: setDrops, key: typeTagDrop, counters: true}).nft(inet)
	els, err = f.nft.GetSetElements(iset)
	if err != nil {
		return fmt.Errorf("read drop counters: %w", err)
	}
	del = nil
	for _, e := range els {
		if len(e.Key) >= 4 && tags[binaryutil.NativeEndian.Uint32(e.Key[:4])] {
			del = append(del, nftables.SetElement{Key: e.Key})
		}
	}
	return f.deleteElements(iset, del)
}

// Counters returns the drop counters of every port of the last Apply, by
// interface name.
func (f *Firewall) Counters() (map[string]Counters, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]Counters{}
	for name := range f.current.tags {
		out[name] = Counters{}
	}
	bridge, inet := tables()
	els, err := f.nft.GetSetElements((setDef{name: setDrops, key: typeIfReason, counters: true}).nft(bridge))
	if err != nil {
		return nil, fmt.Errorf("read drop counters: %w", err)
	}
	for _, e := range els {
		if len(e.Key) < 20 || e.Counter == nil {
			continue
		}
		name := string(bytes.TrimRight(e.Key[:16], "\x00"))
		c := out[name]
		c.add(binaryutil.NativeEndian.Uint32(e.Key[16:20]), e.Counter.Packets)
		out[name] = c
	}
	els, err = f.nft.GetSetElements((setDef{name: setDrops, key: typeTagDrop, counters: true}).nft(inet))
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
	bridge, inet := tables()
	for _, t := range []*nftables.Table{bridge, inet} {
		if _, err := f.nft.ListTableOfFamily(TableName, t.Family); err != nil {
			// Missing, or unreadable: either way the next Apply
			// builds it again.
			f.log.Debug("firewall table not found", "family", familyName(t.Family), "err", err)
			return false, nil
		}
	}
	return true, nil
}

func familyName(f nftables.TableFamily) string {
	if f == nftables.TableFamilyBridge {
		return "bridge"
	}
	return "inet"
}

// Forget makes the next Apply replace both tables.
func (f *Firewall) Forget() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.synced = false
}

// Delete removes both tables, if they exist, and the conntrack entries of
// their zones: the bridges' traffic is tracked in zone 0 again, and a
// later Apply may number the bridges otherwise.
func (f *Firewall) Delete() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.synced = false
	zones, err := f.kernelZones()
	if err != nil {
		zones = nil // no inet table: no zones either
	}
	bridge, inet := tables()
	for _, t := range []*nftables.Table{bridge, inet} {
		if _, err := f.nft.ListTableOfFamily(TableName, t.Family); err == nil {
			f.nft.DelTable(t)
		}
	}
	if err := f.nft.Flush(); err != nil {
		return fmt.Errorf("delete %s tables in %q: %w", TableName, f.namespace, err)
	}
	_, err = f.forget(newFlowMatcher(nil, compiled{zones: zones}, compiled{}))
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

func newFlowMatcher(removed []element, old, next compiled) *flowMatcher {
	m := &flowMatcher{old: old, rules: map[uint16][]ruleElement{}, released: map[uint16]bool{}}
	_, gone := zoneChanges(old.zones, next.zones)
	for _, z := range gone {
		m.released[z] = true
	}
	for _, e := range removed {
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
	return m
}

// MatchConntrackFlow implements netlink.CustomConntrackFilter. The rules
// judged the connection's first packet as the forward hook sees it: after
// its destination was translated (a published port), before its source
// was (masquerade): from the original source to the reply's source.
func (m *flowMatcher) MatchConntrackFlow(fl *vnl.ConntrackFlow) bool {
	if m.released[fl.Zone] {
		return true
	}
	src, ok1 := netip.AddrFromSlice(fl.Forward.SrcIP)
	dst, ok2 := netip.AddrFromSlice(fl.Reverse.SrcIP)
	if !ok1 || !ok2 {
		return false
	}
	src, dst = src.Unmap(), dst.Unmap()
	// The rules judged the translated destination port (the reply's source).
	proto, port := fl.Forward.Protocol, fl.Reverse.SrcPort
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

func (p *Port) owns(a netip.Addr) bool {
	if slices.Contains(p.Addresses, a) {
		return true
	}
	for _, n := range p.Networks {
		if n.Contains(a) {
			return true
		}
	}
	return false
}
