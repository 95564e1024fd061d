package firewall

import (
	"bytes"
	"maps"
	"net"
	"net/netip"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"golang.org/x/sys/unix"
)

// compile turns spec into the elements of both tables, port by port.
// Ports keep the tags they had in prev; new ports take tags no port of
// prev held, so a tag is never handed over within one batch. A port equal
// to its compilation in prev reuses it (the same pointer), which is how an
// update skips the ports that did not change.
func compile(spec Spec, prev compiled) compiled {
	c := compiled{tags: map[string]uint16{}, ports: map[uint16]*portElements{}}
	used := map[uint16]bool{}
	for _, t := range prev.tags {
		used[t] = true
	}
	next := uint16(1)
	for i := range spec.Ports {
		p := &spec.Ports[i]
		tag, ok := prev.tags[p.Interface]
		if ok {
			if old := prev.ports[tag]; old != nil && samePort(&old.port, p) {
				c.tags[p.Interface], c.ports[tag] = tag, old
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
		c.ports[tag] = compilePort(p, tag)
	}
	c.zones = zones(spec.Zoned, prev.zones)
	return c
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
func (c compiled) zoneElements() []element {
	out := make([]element, 0, len(c.zones))
	for _, b := range slices.Sorted(maps.Keys(c.zones)) {
		out = append(out, element{key: ifname(b), chain: zoneChainName(c.zones[b])})
	}
	return out
}

// elements are every element of both tables, by set.
func (c compiled) elements() map[setKey][]element {
	out := bySet(c.ports)
	if len(c.zones) > 0 {
		out[setKey{nftables.TableFamilyINet, setZones}] = c.zoneElements()
	}
	return out
}

// portElements is one port's share of the tables' elements, by set.
type portElements struct {
	port  Port
	tag   uint16
	elems map[setKey][]element
}

func samePort(a, b *Port) bool {
	return a.Interface == b.Interface && bytes.Equal(a.MAC, b.MAC) &&
		slices.Equal(a.Addresses, b.Addresses) && slices.Equal(a.Networks, b.Networks) &&
		slices.EqualFunc(a.MACs, b.MACs, func(x, y net.HardwareAddr) bool { return bytes.Equal(x, y) }) &&
		slices.Equal(a.Rules, b.Rules) && a.Bridge == b.Bridge && slices.Equal(a.Routed, b.Routed)
}

func (pe *portElements) add(family nftables.TableFamily, set string, e element) {
	k := setKey{family, set}
	pe.elems[k] = append(pe.elems[k], e)
}

func compilePort(p *Port, tag uint16) *portElements {
	pe := &portElements{port: *p, tag: tag, elems: map[setKey][]element{}}
	pe.port.Addresses = slices.Clone(p.Addresses)
	pe.port.Networks = slices.Clone(p.Networks)
	pe.port.MACs = slices.Clone(p.MACs)
	pe.port.Rules = slices.Clone(p.Rules)
	pe.port.Routed = slices.Clone(p.Routed)
	br, inet := nftables.TableFamilyBridge, nftables.TableFamilyINet
	name := ifname(p.Interface)
	pe.add(br, setSecured, element{key: name})
	pe.add(br, setTagOut, element{key: name, val: u32(uint32(tag))})
	pe.add(br, setTagIn, element{key: name, chain: tagChainName(tag)})
	// The hash sets: each key once (a pair may repeat the port's MAC or
	// a fixed IP, or name a MAC twice).
	seen := map[string]bool{}
	once := func(set string, key []byte) {
		if id := set + string(key); !seen[id] {
			seen[id] = true
			pe.add(br, set, element{key: key})
		}
	}
	for _, m := range append([]net.HardwareAddr{p.MAC}, p.MACs...) {
		once(setMAC, concat(name, pad(m)))
	}
	for _, a := range append([]netip.Addr{linkLocal(p.MAC)}, p.Addresses...) {
		if a.Is4() {
			once(setIP4, concat(name, a.AsSlice()))
		} else {
			once(setIP6, concat(name, a.AsSlice()))
		}
	}
	// The interval sets: the union of what was asked, as disjoint pieces.
	for _, fam := range []struct {
		v6   bool
		set  string
		addr int // bytes
	}{{false, setNet4, 4}, {true, setNet6, 16}} {
		var nets []box
		for _, n := range p.Networks {
			if n.Addr().Is6() == fam.v6 {
				nets = append(nets, box{addressSpan(n)})
			}
		}
		for _, b := range disjoint(nets, []num{maxOf(fam.addr)}) {
			pe.add(br, fam.set, element{key: concat(name, b[0].lo.bytes(fam.addr)), keyEnd: concat(name, b[0].hi.bytes(fam.addr))})
		}
	}
	bridge := ifname(p.Bridge)
	for _, d := range p.Routed {
		first, last := bounds(d)
		if d.IsSingleIP() {
			pe.add(inet, setDest4, element{key: concat(bridge, first.AsSlice()), val: u32(uint32(tag))})
			continue
		}
		pe.add(inet, setDest4Net, element{key: concat(bridge, first.AsSlice()), keyEnd: concat(bridge, last.AsSlice()), val: u32(uint32(tag))})
	}
	pe.add(inet, setEgressPorts, element{key: u32(uint32(tag) << 16), chain: egressChainName(tag), goTo: true})
	pe.add(inet, setIngressPorts, element{key: u32(uint32(tag)), chain: ingressChainName(tag), goTo: true})
	for _, v6 := range []bool{false, true} {
		set, addr := rulesSet4(tag), 4
		if v6 {
			set, addr = rulesSet6(tag), 16
		}
		for _, dir := range []Direction{Ingress, Egress} {
			var boxes []box
			for _, r := range p.Rules {
				if r.IPv6 == v6 && r.Direction == dir {
					boxes = append(boxes, box{
						{n8(r.ProtoMin), n8(r.ProtoMax)},
						{n16(r.PortMin), n16(r.PortMax)},
						addressSpan(r.Remote),
					})
				}
			}
			t := u32(ruleTag(tag, dir))
			for _, b := range disjoint(boxes, ruleFields(addr)) {
				pe.add(inet, set, element{
					key:    concat(t, b[0].lo.bytes(1), b[1].lo.bytes(2), b[2].lo.bytes(addr)),
					keyEnd: concat(t, b[0].hi.bytes(1), b[1].hi.bytes(2), b[2].hi.bytes(addr)),
				})
			}
		}
	}
	return pe
}

// ruleTag is the first field of a rule element's key: egress rules are
// keyed by the tag in the mark's high half, ingress ones by the tag.
func ruleTag(tag uint16, dir Direction) uint32 {
	if dir == Egress {
		return uint32(tag) << 16
	}
	return uint32(tag)
}

// ruleFields are the largest values of a rule element's fields after the
// tag: protocol, port, peer address of addr bytes.
func ruleFields(addr int) []num { return []num{maxOf(1), maxOf(2), maxOf(addr)} }

func n8(v uint8) num   { return num{lo: uint64(v)} }
func n16(v uint16) num { return num{lo: uint64(v)} }

func addressSpan(p netip.Prefix) span {
	first, last := bounds(p)
	return span{numOf(first.AsSlice()), numOf(last.AsSlice())}
}

// ruleElement is a rules4/rules6 element read back: the tag and direction
// of its key, and its box of protocol, port and peer address.
type ruleElement struct {
	tag uint16
	dir Direction
	v6  bool
	box box
}

func decodeRule(e element) (ruleElement, bool) {
	if len(e.key) != len(e.keyEnd) || len(e.key) != 16 && len(e.key) != 28 {
		return ruleElement{}, false
	}
	t := binaryutil.NativeEndian.Uint32(e.key[:4])
	r := ruleElement{dir: Ingress, v6: len(e.key) == 28, box: box{
		{n8(e.key[4]), n8(e.keyEnd[4])},
		{numOf(e.key[8:10]), numOf(e.keyEnd[8:10])},
		{numOf(e.key[12:]), numOf(e.keyEnd[12:])},
	}}
	if t > maxTag {
		r.dir, t = Egress, t>>16
	}
	r.tag = uint16(t)
	return r, true
}

// allows reports whether the element admits a new connection of proto to
// port with peer: the port is compared for TCP and UDP only.
func (r ruleElement) allows(proto uint8, port uint16, peer netip.Addr) bool {
	if peer.Is6() != r.v6 || !r.box[0].contains(n8(proto)) || !r.box[2].contains(numOf(peer.AsSlice())) {
		return false
	}
	return proto != unix.IPPROTO_TCP && proto != unix.IPPROTO_UDP || r.box[1].contains(n16(port))
}

// bounds returns the first and last address of p.
func bounds(p netip.Prefix) (netip.Addr, netip.Addr) {
	p = p.Masked()
	first := p.Addr().AsSlice()
	last := make([]byte, len(first))
	copy(last, first)
	for i := p.Bits(); i < len(last)*8; i++ {
		last[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(last)
	return p.Addr(), a
}

// ifname is an interface name as the kernel compares it: IFNAMSIZ bytes,
// zero padded.
func ifname(name string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return b
}

// pad rounds b up to a multiple of 4 bytes, as fields of a concatenated
// key are.
func pad(b []byte) []byte {
	out := make([]byte, (len(b)+3)/4*4)
	copy(out, b)
	return out
}

func concat(fields ...[]byte) []byte {
	var out []byte
	for _, f := range fields {
		out = append(out, pad(f)...)
	}
	return out
}
