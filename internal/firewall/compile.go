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

	"github.com/nsnet/nsnet/internal/nfsock"
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
	if len(c.zones) > 0 {
		out[setKey{nftables.TableFamilyINet, setZones}] = c.zoneElements()
	}
	return out
}

// portElements is one port's share of the tables' elements, by set.
type portElements struct {
	port  Port
	tag   uint16
	elems map[setKey][]nfsock.Element
}

func samePort(a, b *Port) bool {
	return a.Interface == b.Interface && bytes.Equal(a.MAC, b.MAC) &&
		slices.Equal(a.Addresses, b.Addresses) && slices.Equal(a.Networks, b.Networks) &&
		slices.EqualFunc(a.MACs, b.MACs, func(x, y net.HardwareAddr) bool { return bytes.Equal(x, y) }) &&
		slices.Equal(a.Rules, b.Rules) && a.Bridge == b.Bridge && slices.Equal(a.Routed, b.Routed)
}

func (pe *portElements) add(family nftables.TableFamily, set string, e nfsock.Element) {
	k := setKey{family, set}
	pe.elems[k] = append(pe.elems[k], e)
}

func compilePort(p *Port, tag uint16) *portElements {
	pe := &portElements{port: *p, tag: tag, elems: map[setKey][]nfsock.Element{}}
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
	pe.add(inet, setEgressPorts, nfsock.Element{Key: u32(uint32(tag) << 16), Chain: egressChainName(tag), GoTo: true})
	pe.add(inet, setIngressPorts, nfsock.Element{Key: u32(uint32(tag)), Chain: ingressChainName(tag), GoTo: true})
	for _, v6 := range []bool{false, true} {
		set, addr := rulesSet4(tag), 4
		if v6 {
			set, addr = rulesSet6(tag), 16
		}
		for _, dir := range []Direction{Ingress, Egress} {
			var boxes []nfsock.Box
			for _, r := range p.Rules {
				if r.IPv6 == v6 && r.Direction == dir {
					boxes = append(boxes, nfsock.Box{
						{Lo: n8(r.ProtoMin), Hi: n8(r.ProtoMax)},
						{Lo: n16(r.PortMin), Hi: n16(r.PortMax)},
						nfsock.PrefixSpan(r.Remote),
					})
				}
			}
			t := u32(ruleTag(tag, dir))
			for _, b := range nfsock.Disjoint(boxes, ruleFields(addr)) {
				pe.add(inet, set, nfsock.Element{
					Key:    nfsock.Concat(t, b[0].Lo.Bytes(1), b[1].Lo.Bytes(2), b[2].Lo.Bytes(addr)),
					KeyEnd: nfsock.Concat(t, b[0].Hi.Bytes(1), b[1].Hi.Bytes(2), b[2].Hi.Bytes(addr)),
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
func ruleFields(addr int) []nfsock.Num {
	return []nfsock.Num{nfsock.MaxOf(1), nfsock.MaxOf(2), nfsock.MaxOf(addr)}
}

func n8(v uint8) nfsock.Num   { return nfsock.Num{Lo: uint64(v)} }
func n16(v uint16) nfsock.Num { return nfsock.Num{Lo: uint64(v)} }

// ruleElement is a rules4/rules6 element read back: the tag and direction
// of its key, and its box of protocol, port and peer address.
type ruleElement struct {
	tag uint16
	dir Direction
	v6  bool
	box nfsock.Box
}

func decodeRule(e nfsock.Element) (ruleElement, bool) {
	if len(e.Key) != len(e.KeyEnd) || len(e.Key) != 16 && len(e.Key) != 28 {
		return ruleElement{}, false
	}
	t := binaryutil.NativeEndian.Uint32(e.Key[:4])
	r := ruleElement{dir: Ingress, v6: len(e.Key) == 28, box: nfsock.Box{
		{Lo: n8(e.Key[4]), Hi: n8(e.KeyEnd[4])},
		{Lo: nfsock.NumOf(e.Key[8:10]), Hi: nfsock.NumOf(e.KeyEnd[8:10])},
		{Lo: nfsock.NumOf(e.Key[12:]), Hi: nfsock.NumOf(e.KeyEnd[12:])},
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
	if peer.Is6() != r.v6 || !r.box[0].Contains(n8(proto)) || !r.box[2].Contains(nfsock.NumOf(peer.AsSlice())) {
		return false
	}
	return proto != unix.IPPROTO_TCP && proto != unix.IPPROTO_UDP || r.box[1].Contains(n16(port))
}
