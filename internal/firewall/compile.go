package firewall

import (
	"bytes"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"

	"github.com/nsnet/nsnet/internal/nfsock"
)

// compile turns spec into the elements of both tables, port by port.
// Ports keep the tags they had in prev; new ports take tags no port of
// prev held, so a tag is never handed over within one batch. A port equal
// to its compilation in prev reuses it (the same pointer), which is how an
// update skips the ports that did not change.
func compile(spec Spec, prev compiled) compiled {
	c := compiled{tags: make(map[string]uint16, len(spec.Ports)), ports: make(map[uint16]*portElements, len(spec.Ports)),
		sigs: map[uint16]*signature{}, sigByKey: map[string]*signature{}}
	sigs := newSigNumbers(prev, spec)
	used := map[uint16]bool{}
	for _, t := range prev.tags {
		used[t] = true
	}
	next := uint16(1)
	c.looked = len(spec.Ports)
	for i := range spec.Ports {
		p := &spec.Ports[i]
		tag, ok := prev.tags[p.Interface]
		if ok {
			if old := prev.ports[tag]; old != nil && samePort(&old.port, p) {
				c.tags[p.Interface], c.ports[tag] = tag, old
				c.sigs[old.sig.num], c.sigByKey[old.sig.key] = old.sig, old.sig
				continue
			}
		} else {
			for used[next] {
				next++
			}
			tag = next
			used[tag] = true
		}
		c.tags[p.Interface] = tag
		c.ports[tag] = compilePort(p, tag, sigs.of(&c, prev, p, tag))
	}
	c.sigPorts, c.used = map[uint16]int{}, &tagSet{}
	for tag, pe := range c.ports {
		c.sigPorts[pe.sig.num]++
		c.used.add(tag)
	}
	c.finish(spec, prev)
	return c
}

// compileChanged compiles spec as a change of prev, the compilation of the
// spec spec.Base names (see Spec.Base): only the ports of spec.Changed,
// each as compile would. ok is false when the change is one it does not
// compile that way — a port whose rules changed (its signature may change
// in place, see sigNumbers), a compilation that adopted the kernel's
// numbers, too many tags — which compile does.
func compileChanged(spec Spec, prev compiled) (c compiled, ok bool) {
	if prev.used == nil || len(prev.kernelSigs) > 0 {
		return compiled{}, false
	}
	c = compiled{tags: maps.Clone(prev.tags), ports: maps.Clone(prev.ports), sigs: maps.Clone(prev.sigs),
		sigByKey: maps.Clone(prev.sigByKey), sigPorts: maps.Clone(prev.sigPorts), used: new(tagSet)}
	*c.used = *prev.used
	changes := &portChanges{}
	cmp := func(p Port, name string) int { return strings.Compare(p.Interface, name) }
	var present []int // in spec.Ports
	var removed []string
	seen := make(map[string]bool, len(spec.Changed))
	for _, name := range spec.Changed {
		if seen[name] {
			continue
		}
		seen[name] = true
		if i, found := slices.BinarySearchFunc(spec.Ports, name, cmp); found {
			present = append(present, i)
		} else if _, had := prev.tags[name]; had {
			removed = append(removed, name)
		}
	}
	// In the spec's order, as compile hands out tags; before the ports
	// removed, whose signature a port added may take (as compile would:
	// it is prev's).
	slices.Sort(present)
	c.looked = len(present) + len(removed)
	for _, i := range present {
		p := &spec.Ports[i]
		if tag, had := prev.tags[p.Interface]; had {
			old := prev.ports[tag]
			if samePort(&old.port, p) {
				continue
			}
			if !slices.Equal(old.port.Rules, p.Rules) {
				return compiled{}, false
			}
			c.ports[tag] = compilePort(p, tag, old.sig)
			changes.changed = append(changes.changed, tag)
			continue
		}
		tag := c.used.firstFree()
		if tag > maxTag {
			return compiled{}, false
		}
		c.used.add(tag)
		sig := c.signatureOf(prev, p)
		c.tags[p.Interface], c.ports[tag] = tag, compilePort(p, tag, sig)
		c.sigPorts[sig.num]++
		changes.changed = append(changes.changed, tag)
	}
	for _, name := range removed {
		tag := prev.tags[name]
		pe := prev.ports[tag]
		delete(c.tags, name)
		delete(c.ports, tag)
		c.used.remove(tag)
		changes.gone = append(changes.gone, tag)
		if c.sigPorts[pe.sig.num]--; c.sigPorts[pe.sig.num] == 0 {
			delete(c.sigPorts, pe.sig.num)
			delete(c.sigs, pe.sig.num)
			if c.sigByKey[pe.sig.key] == pe.sig {
				delete(c.sigByKey, pe.sig.key)
			}
		}
	}
	slices.Sort(changes.changed)
	slices.Sort(changes.gone)
	c.changes = changes
	c.finish(spec, prev)
	return c, true
}

// signatureOf is the signature of a port new to c, compileChanged's: one
// c has, or a new one numbered as sigNumbers numbers it (the lowest
// number neither prev nor c holds).
func (c *compiled) signatureOf(prev compiled, p *Port) *signature {
	key := sigKey(p.Rules)
	if s := c.sigByKey[key]; s != nil {
		return s
	}
	if s := prev.sigByKey[key]; s != nil && c.sigs[s.num] == nil {
		c.sigs[s.num], c.sigByKey[key] = s, s
		return s
	}
	num := uint16(1)
	for prev.sigs[num] != nil || c.sigs[num] != nil {
		num++
	}
	s := compileSignature(p.Rules, num, key)
	c.sigs[num], c.sigByKey[key] = s, s
	return s
}

// finish compiles the zones and the groups of c, whose ports are
// compiled, against prev.
func (c *compiled) finish(spec Spec, prev compiled) {
	c.zones = zones(spec.Zoned, prev.zones)
	c.groups = map[string]*groupElements{}
	c.deltas = map[string]*groupDelta{}
	// The groups the signatures' rules name: as many signatures as
	// distinct rules, not as many as ports.
	for _, sg := range c.sigs {
		for _, g := range sg.groups() {
			if c.groups[g] != nil {
				continue
			}
			members := spec.Groups[g]
			old := prev.groups[g]
			if old == nil {
				c.groups[g] = compileGroup(g, members)
				continue
			}
			// The members as a change of the group prev has: what
			// Apply sends, and what the compilation redoes, follow
			// the members that came and went, not the group's size.
			lost, gained := memberChanges(old.members, members)
			if len(lost) == 0 && len(gained) == 0 {
				c.groups[g] = old
				continue
			}
			c.groups[g], c.deltas[g] = old.derive(g, members, lost, gained)
		}
	}
}

// signature is the compiled rules that every port with the same rules
// shares: its chains and rule sets are the rules' only copy in the
// kernel. Its number, like a port's tag, stays as long as some port has
// it; its content never changes (a port whose rules change moves to
// another signature).
type signature struct {
	num   uint16
	key   string                      // the rules, canonical: see sigKey
	elems map[setKey][]nfsock.Element // its rule sets' elements
	// The remote groups the rules name, by direction, sorted, and both
	// (see groups).
	ingress, egress, named []string
}

// sigKey identifies a port's rules whatever their order: ports of the
// same security groups share a signature.
func sigKey(rules []Rule) string {
	keys := make([]string, 0, len(rules))
	for _, r := range rules {
		keys = append(keys, fmt.Sprintf("%d/%t/%d-%d/%d-%d/%s/%s", r.Direction, r.IPv6, r.ProtoMin, r.ProtoMax, r.PortMin, r.PortMax, r.Remote, r.Group))
	}
	slices.Sort(keys)
	return strings.Join(slices.Compact(keys), ";")
}

// sigNumbers hands out signature numbers: a signature keeps the number it
// had in prev (or, adopting, the one the kernel gave the port's: hint), a
// new one takes the lowest number no signature of prev held, so that a
// number is never handed over within one batch.
type sigNumbers struct {
	used map[uint16]bool
	next uint16
	// moves are, per signature of prev, the rules all its ports have now.
	moves map[uint16]string
}

func newSigNumbers(prev compiled, spec Spec) *sigNumbers {
	n := &sigNumbers{used: map[uint16]bool{}, next: 1, moves: map[uint16]string{}}
	// A signature all of whose ports (those still there) move to the same
	// rules — a rule added to or removed from their security group —
	// changes in place: it keeps its number, and the change is its
	// elements', not a verdict-map element per port.
	const split = "\x00"
	for i := range spec.Ports {
		p := &spec.Ports[i]
		pe := prev.ports[prev.tags[p.Interface]]
		if pe == nil || pe.sig == nil {
			continue
		}
		key := pe.sig.key
		if !slices.Equal(pe.port.Rules, p.Rules) {
			key = sigKey(p.Rules) // a key per changed port only: Sprintf is dear
		}
		if m, ok := n.moves[pe.sig.num]; ok && m != key {
			n.moves[pe.sig.num] = split
			continue
		}
		n.moves[pe.sig.num] = key
	}
	for num := range prev.sigs {
		n.used[num] = true
	}
	for _, num := range prev.kernelSigs {
		n.used[num] = true
	}
	return n
}

// of returns the signature of port p (with tag) in c: one c already has,
// prev's, or a new one.
func (n *sigNumbers) of(c *compiled, prev compiled, p *Port, tag uint16) *signature {
	key := sigKey(p.Rules)
	if s := c.sigByKey[key]; s != nil {
		return s
	}
	s := prev.sigByKey[key]
	if s != nil && c.sigs[s.num] != nil {
		// Its number went to the rules its ports moved to (a new port
		// has the rules they left): these get another.
		s = nil
	}
	if s == nil {
		num, ok := prev.kernelSigs[tag]
		if pe := prev.ports[prev.tags[p.Interface]]; pe != nil && pe.sig != nil && n.moves[pe.sig.num] == key {
			num, ok = pe.sig.num, true
		}
		if !ok || c.sigs[num] != nil {
			for n.used[n.next] {
				n.next++
			}
			num = n.next
			n.used[num] = true
		}
		s = compileSignature(p.Rules, num, key)
	}
	c.sigs[s.num], c.sigByKey[key] = s, s
	return s
}

// comparePrefix is the members' order (Members.Sorted): by address, then
// by length.
func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}

// groupElements is one remote group's members, what its member sets
// hold. The elements of its sets of single addresses are not kept: they
// are the members themselves (singles), made into elements only for a
// rebuild or a comparison with the kernel, so that a group of 10,000
// members that changes costs a compilation of what changed.
type groupElements struct {
	name    string
	members Members
	// ranges are the members that are not single addresses, and
	// rangeElems the elements of the interval sets they make.
	ranges     []netip.Prefix
	rangeElems map[setKey][]nfsock.Element
}

// groupDelta is how a group's compilation differs from the one it was
// derived from (base): the members it lost and the elements to add and
// delete.
type groupDelta struct {
	base          *groupElements
	lost          []netip.Prefix
	added, delete map[setKey][]nfsock.Element
}

func compileGroup(name string, members Members) *groupElements {
	ge := &groupElements{name: name, members: members}
	ge.ranges = rangesOf(members)
	ge.rangeElems = rangeElements(name, ge.ranges)
	return ge
}

// rangesOf are the members that are not single addresses, in order.
func rangesOf(members Members) []netip.Prefix {
	var out []netip.Prefix
	for m := range members.All() {
		if !m.IsSingleIP() {
			out = append(out, m)
		}
	}
	slices.SortFunc(out, comparePrefix)
	return out
}

// rangeElements are the interval sets' elements of a group's ranges.
func rangeElements(name string, ranges []netip.Prefix) map[setKey][]nfsock.Element {
	out := map[setKey][]nfsock.Element{}
	boxes := map[bool][]nfsock.Box{}
	for _, m := range ranges {
		boxes[m.Addr().Is6()] = append(boxes[m.Addr().Is6()], nfsock.Box{nfsock.PrefixSpan(m)})
	}
	for _, v6 := range []bool{false, true} {
		width := 4
		if v6 {
			width = 16
		}
		k := setKey{nftables.TableFamilyINet, memberSet(name, v6, true)}
		for _, b := range nfsock.Disjoint(boxes[v6], []nfsock.Num{nfsock.MaxOf(width)}) {
			out[k] = append(out[k], nfsock.Element{
				Key: nfsock.Concat(u32(0), b[0].Lo.Bytes(width)), KeyEnd: nfsock.Concat(u32(0), b[0].Hi.Bytes(width))})
		}
	}
	return out
}

// singleElement is the element of a single address member, and the set
// that holds it.
func (ge *groupElements) singleElement(m netip.Prefix) (setKey, nfsock.Element) {
	return setKey{nftables.TableFamilyINet, memberSet(ge.name, m.Addr().Is6(), false)}, nfsock.Element{Key: m.Addr().AsSlice()}
}

// elems are every element of the group's sets, by set.
func (ge *groupElements) elems() map[setKey][]nfsock.Element {
	out := maps.Clone(ge.rangeElems)
	for _, m := range ge.members.Sorted() {
		if m.IsSingleIP() {
			k, e := ge.singleElement(m)
			out[k] = append(out[k], e)
		}
	}
	return out
}

// derive compiles members, which differ from ge's by lost and gained, as
// a change of ge: single addresses are an element each; the interval
// sets are cut again only when a range came or went.
func (ge *groupElements) derive(name string, members Members, lost, gained []netip.Prefix) (*groupElements, *groupDelta) {
	next := &groupElements{name: name, members: members, ranges: ge.ranges, rangeElems: ge.rangeElems}
	d := &groupDelta{base: ge, lost: lost, added: map[setKey][]nfsock.Element{}, delete: map[setKey][]nfsock.Element{}}
	rangesMoved := false
	for _, m := range lost {
		if !m.IsSingleIP() {
			rangesMoved = true
			continue
		}
		k, e := ge.singleElement(m)
		d.delete[k] = append(d.delete[k], e)
	}
	for _, m := range gained {
		if !m.IsSingleIP() {
			rangesMoved = true
			continue
		}
		k, e := next.singleElement(m)
		d.added[k] = append(d.added[k], e)
	}
	if rangesMoved {
		next.ranges = rangesOf(members)
		next.rangeElems = rangeElements(name, next.ranges)
		keys := map[setKey]bool{}
		for k := range ge.rangeElems {
			keys[k] = true
		}
		for k := range next.rangeElems {
			keys[k] = true
		}
		for k := range keys {
			a, del := diffElements(ge.rangeElems[k], next.rangeElems[k])
			d.added[k], d.delete[k] = append(d.added[k], a...), append(d.delete[k], del...)
		}
	}
	return next, d
}

// holds reports whether a member of the group may send from a.
func (ge *groupElements) holds(a netip.Addr) bool {
	if ge == nil {
		return false
	}
	if ge.members.Has(netip.PrefixFrom(a, a.BitLen())) {
		return true
	}
	return slices.ContainsFunc(ge.ranges, func(p netip.Prefix) bool { return p.Contains(a) })
}

// zones numbers the bridges: each keeps its zone in prev (a live
// connection's packets must go on finding its entry), a new one takes
// the lowest number no bridge of prev held, so that a zone is never
// handed over within one batch (the entries of a released zone are
// deleted after it).
func zones(bridges []string, prev map[string]uint16) map[string]uint16 {
	out := make(map[string]uint16, len(bridges))
	used := map[uint16]bool{}
	for _, z := range prev {
		used[z] = true
	}
	next := uint16(1)
	for _, b := range bridges {
		if z, ok := prev[b]; ok {
			out[b] = z
			continue
		}
		for used[next] {
			next++
		}
		out[b], used[next] = next, true
	}
	return out
}

// zoneElements are the zones map's elements.
func (c compiled) zoneElements() []nfsock.Element {
	out := make([]nfsock.Element, 0, len(c.zones))
	for _, b := range slices.Sorted(maps.Keys(c.zones)) {
		out = append(out, nfsock.Element{Key: nfsock.IfName(b), Chain: zoneChainName(c.zones[b])})
	}
	return out
}

// elements are every element of both tables, by set.
func (c compiled) elements() map[setKey][]nfsock.Element {
	out := bySet(c.ports)
	for _, num := range slices.Sorted(maps.Keys(c.sigs)) {
		for k, es := range c.sigs[num].elems {
			out[k] = append(out[k], es...)
		}
	}
	for _, g := range slices.Sorted(maps.Keys(c.groups)) {
		for k, es := range c.groups[g].elems() {
			out[k] = append(out[k], es...)
		}
	}
	if len(c.zones) > 0 {
		out[setKey{nftables.TableFamilyINet, setZones}] = c.zoneElements()
	}
	return out
}

// portElements is one port's share of the tables' elements, by set.
type portElements struct {
	port  Port
	tag   uint16
	sig   *signature
	elems map[setKey][]nfsock.Element
}

// groups are the remote groups the port's rules name, sorted.
func (pe *portElements) groups() []string { return pe.sig.groups() }

// groups are the remote groups the signature's rules name, sorted:
// computed once, asked for every port.
func (s *signature) groups() []string { return s.named }

// chains are the signature's chains of the inet table.
func (s *signature) chains() []nfsock.ChainDef { return sigChains(s.num, s.ingress, s.egress) }

// sets are the signature's rule sets.
func (s *signature) sets() []nfsock.SetDef {
	var out []nfsock.SetDef
	for _, dir := range []Direction{Ingress, Egress} {
		for _, v6 := range []bool{false, true} {
			d, _ := rulesSetDef(rulesSet(s.num, dir, v6))
			out = append(out, d)
		}
	}
	for _, g := range s.groups() {
		for _, dir := range []Direction{Ingress, Egress} {
			for _, v6 := range []bool{false, true} {
				d, _ := rulesSetDef(groupRulesSet(s.num, g, dir, v6))
				out = append(out, d)
			}
		}
	}
	return out
}

func samePort(a, b *Port) bool {
	return a.Interface == b.Interface && bytes.Equal(a.MAC, b.MAC) &&
		slices.Equal(a.Addresses, b.Addresses) && slices.Equal(a.Networks, b.Networks) &&
		slices.EqualFunc(a.MACs, b.MACs, func(x, y net.HardwareAddr) bool { return bytes.Equal(x, y) }) &&
		slices.Equal(a.Rules, b.Rules) && a.Bridge == b.Bridge && slices.Equal(a.Routed, b.Routed) &&
		a.Stateless == b.Stateless && a.IPv4Only == b.IPv4Only
}

func (pe *portElements) add(family nftables.TableFamily, set string, e nfsock.Element) {
	k := setKey{family, set}
	pe.elems[k] = append(pe.elems[k], e)
}

func compilePort(p *Port, tag uint16, sig *signature) *portElements {
	pe := &portElements{port: *p, tag: tag, sig: sig, elems: map[setKey][]nfsock.Element{}}
	pe.port.Addresses = slices.Clone(p.Addresses)
	pe.port.Networks = slices.Clone(p.Networks)
	pe.port.MACs = slices.Clone(p.MACs)
	pe.port.Rules = slices.Clone(p.Rules)
	pe.port.Routed = slices.Clone(p.Routed)
	br, inet := nftables.TableFamilyBridge, nftables.TableFamilyINet
	name := nfsock.IfName(p.Interface)
	pe.add(br, setSecured, nfsock.Element{Key: name})
	pe.add(br, setTagOut, nfsock.Element{Key: name, Val: u32(uint32(tag))})
	pe.add(br, setTagIn, nfsock.Element{Key: name, Chain: tagChainName(tag)})
	if p.IPv4Only {
		pe.add(br, setIPv6Off, nfsock.Element{Key: name})
	}
	// The hash sets: each key once (a pair may repeat the port's MAC or
	// a fixed IP, or name a MAC twice).
	seen := map[string]bool{}
	once := func(set string, key []byte) {
		if id := set + string(key); !seen[id] {
			seen[id] = true
			pe.add(br, set, nfsock.Element{Key: key})
		}
	}
	for _, m := range append([]net.HardwareAddr{p.MAC}, p.MACs...) {
		once(setMAC, nfsock.Concat(name, m))
	}
	// An interface takes the EUI-64 link-local address of its MAC, and
	// sends neighbour discovery from it: each MAC the port may send from
	// brings its own, as Neutron's firewalls allow for address pairs.
	var lla []netip.Addr
	for _, m := range append([]net.HardwareAddr{p.MAC}, p.MACs...) {
		lla = append(lla, linkLocal(m))
	}
	for _, a := range append(lla, p.Addresses...) {
		if a.Is4() {
			once(setIP4, nfsock.Concat(name, a.AsSlice()))
		} else {
			once(setIP6, nfsock.Concat(name, a.AsSlice()))
		}
	}
	// The interval sets: the union of what was asked, as disjoint pieces.
	for _, fam := range []struct {
		v6   bool
		set  string
		addr int // bytes
	}{{false, setNet4, 4}, {true, setNet6, 16}} {
		var nets []nfsock.Box
		for _, n := range p.Networks {
			if n.Addr().Is6() == fam.v6 {
				nets = append(nets, nfsock.Box{nfsock.PrefixSpan(n)})
			}
		}
		for _, b := range nfsock.Disjoint(nets, []nfsock.Num{nfsock.MaxOf(fam.addr)}) {
			pe.add(br, fam.set, nfsock.Element{Key: nfsock.Concat(name, b[0].Lo.Bytes(fam.addr)), KeyEnd: nfsock.Concat(name, b[0].Hi.Bytes(fam.addr))})
		}
	}
	bridge := nfsock.IfName(p.Bridge)
	for _, d := range p.Routed {
		s, width := nfsock.PrefixSpan(d), d.Addr().BitLen()/8
		if d.IsSingleIP() {
			pe.add(inet, setDest4, nfsock.Element{Key: nfsock.Concat(bridge, s.Lo.Bytes(width)), Val: u32(uint32(tag))})
			continue
		}
		pe.add(inet, setDest4Net, nfsock.Element{Key: nfsock.Concat(bridge, s.Lo.Bytes(width)),
			KeyEnd: nfsock.Concat(bridge, s.Hi.Bytes(width)), Val: u32(uint32(tag))})
	}
	if p.Stateless {
		// The port's own MAC, unique on its network; an address pair's
		// MAC may be another port's too, whose element this port's
		// going would delete: frames with it stay tracked.
		pe.add(inet, setStatelessMAC, nfsock.Element{Key: nfsock.Concat(nfsock.IfName(p.Bridge), p.MAC)})
		pe.add(inet, setStatelessTags, nfsock.Element{Key: u32(uint32(tag) << 16)})
		pe.add(inet, setStatelessTags, nfsock.Element{Key: u32(uint32(tag))})
	}
	pe.add(inet, setEgressPorts, nfsock.Element{Key: u32(uint32(tag) << 16), Chain: egressChainName(sig.num), GoTo: true})
	pe.add(inet, setIngressPorts, nfsock.Element{Key: u32(uint32(tag)), Chain: ingressChainName(sig.num), GoTo: true})
	return pe
}

// compileSignature compiles rules as signature num's sets' elements.
func compileSignature(rules []Rule, num uint16, key string) *signature {
	s := &signature{num: num, key: key, elems: map[setKey][]nfsock.Element{}}
	inet := nftables.TableFamilyINet
	add := func(set string, e nfsock.Element) {
		k := setKey{inet, set}
		s.elems[k] = append(s.elems[k], e)
	}
	for _, v6 := range []bool{false, true} {
		addr := 4
		if v6 {
			addr = 16
		}
		for _, dir := range []Direction{Ingress, Egress} {
			var boxes []nfsock.Box
			byGroup := map[string][]nfsock.Box{}
			for _, r := range rules {
				if r.IPv6 != v6 || r.Direction != dir {
					continue
				}
				if r.Group != "" {
					byGroup[r.Group] = append(byGroup[r.Group], nfsock.Box{
						{Lo: n8(r.ProtoMin), Hi: n8(r.ProtoMax)},
						{Lo: n16(r.PortMin), Hi: n16(r.PortMax)},
					})
					continue
				}
				boxes = append(boxes, nfsock.Box{
					{Lo: n8(r.ProtoMin), Hi: n8(r.ProtoMax)},
					{Lo: n16(r.PortMin), Hi: n16(r.PortMax)},
					nfsock.PrefixSpan(r.Remote),
				})
			}
			for _, b := range nfsock.Disjoint(boxes, ruleFields(addr)) {
				add(rulesSet(num, dir, v6), nfsock.Element{
					Key:    nfsock.Concat(b[0].Lo.Bytes(1), b[1].Lo.Bytes(2), b[2].Lo.Bytes(addr)),
					KeyEnd: nfsock.Concat(b[0].Hi.Bytes(1), b[1].Hi.Bytes(2), b[2].Hi.Bytes(addr)),
				})
			}
			for g, boxes := range byGroup {
				for _, b := range nfsock.Disjoint(boxes, []nfsock.Num{nfsock.MaxOf(1), nfsock.MaxOf(2)}) {
					add(groupRulesSet(num, g, dir, v6), nfsock.Element{
						Key:    nfsock.Concat(b[0].Lo.Bytes(1), b[1].Lo.Bytes(2)),
						KeyEnd: nfsock.Concat(b[0].Hi.Bytes(1), b[1].Hi.Bytes(2)),
					})
				}
			}
		}
	}
	// The groups named, by direction, whatever the family: the chains
	// look in both families' sets.
	for _, r := range rules {
		if r.Group == "" {
			continue
		}
		if r.Direction == Ingress {
			s.ingress = append(s.ingress, r.Group)
		} else {
			s.egress = append(s.egress, r.Group)
		}
	}
	slices.Sort(s.ingress)
	slices.Sort(s.egress)
	s.ingress, s.egress = slices.Compact(s.ingress), slices.Compact(s.egress)
	s.named = slices.Compact(slices.Sorted(slices.Values(append(slices.Clone(s.ingress), s.egress...))))
	return s
}

// ruleFields are the largest values of a rule element's fields:
// protocol, port, peer address of addr bytes.
func ruleFields(addr int) []nfsock.Num {
	return []nfsock.Num{nfsock.MaxOf(1), nfsock.MaxOf(2), nfsock.MaxOf(addr)}
}

func n8(v uint8) nfsock.Num   { return nfsock.Num{Lo: uint64(v)} }
func n16(v uint16) nfsock.Num { return nfsock.Num{Lo: uint64(v)} }

// allows reports whether the port's rules admit a new connection of proto
// to port with peer in direction dir, the members of remote groups as c
// has them: the port is compared for TCP and UDP only (an ICMP rule's
// type and code are not in a conntrack entry's ports).
func (pe *portElements) allows(c compiled, dir Direction, proto uint8, port uint16, peer netip.Addr) bool {
	if pe == nil {
		return false
	}
	for _, r := range pe.port.Rules {
		if r.Direction != dir || r.IPv6 != peer.Is6() || proto < r.ProtoMin || proto > r.ProtoMax {
			continue
		}
		if (proto == unix.IPPROTO_TCP || proto == unix.IPPROTO_UDP) && (port < r.PortMin || port > r.PortMax) {
			continue
		}
		if r.Group != "" && c.groups[r.Group].holds(peer) || r.Group == "" && r.Remote.Contains(peer) {
			return true
		}
	}
	return false
}
