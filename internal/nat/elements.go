package nat

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"net/netip"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/nsnet/nsnet/internal/nfsock"
)

// elements are the entries of one set, by key.
type elements map[string]nfsock.Element

func (es elements) add(e nfsock.Element) { es[string(e.Key)] = e }

// byKey indexes the elements of a set, as the kernel lists them, by key.
func byKey(list []nfsock.Element) elements {
	es := make(elements, len(list))
	for _, e := range list {
		es.add(e)
	}
	return es
}

// contents are the entries of every set of the layout, by set name.
type contents map[string]elements

func newContents() contents {
	c := contents{}
	for _, s := range layoutSets {
		c[s.Name] = elements{}
	}
	return c
}

// compile turns a valid spec into the set elements that implement it.
func compile(s Spec) contents {
	c := contents{
		setSNAT:         make(elements, len(s.SNAT)),
		setMasquerade:   make(elements, len(s.Masquerade)),
		setHairpin:      make(elements, len(s.Hairpin)),
		setFloatingDNAT: make(elements, len(s.FloatingIPs)),
		setFloatingSNAT: make(elements, len(s.FloatingIPs)),
		setPortForward:  make(elements, len(s.PortForwards)),
		setPublish:      make(elements, len(s.Publish)),
		setHelpers:      make(elements, len(s.Helpers)),
	}
	for _, h := range s.Helpers {
		k, _ := h.kind()
		c[setHelpers].add(helperElem(h, k))
	}
	for _, n := range s.SNAT {
		c[setSNAT].add(intervalElem(n.Out, n.From, addr4(n.To)))
	}
	for _, m := range s.Masquerade {
		c[setMasquerade].add(intervalElem(m.Out, m.From, nil))
	}
	for _, h := range s.Hairpin {
		c[setHairpin].add(intervalElem(h.Interface, h.Prefix, nil))
	}
	for _, f := range s.FloatingIPs {
		c[setFloatingDNAT].add(nfsock.Element{Key: addr4(f.Floating), Val: addr4(f.Fixed)})
		c[setFloatingSNAT].add(nfsock.Element{Key: nfsock.Concat(nfsock.IfName(f.Out), addr4(f.Fixed)), Val: addr4(f.Floating)})
	}
	for _, f := range s.PortForwards {
		for i := range f.ExternalPorts.Size() {
			c[setPortForward].add(nfsock.Element{
				Key: nfsock.Concat(addr4(f.External), proto(f.Protocol), port(f.ExternalPorts.First+uint16(i))),
				Val: nfsock.Concat(addr4(f.Internal), port(f.InternalPorts.First+uint16(i))),
			})
		}
	}
	for _, p := range s.Publish {
		for i := range p.Ports.Size() {
			c[setPublish].add(nfsock.Element{
				Key: nfsock.Concat(proto(p.Protocol), port(p.Ports.First+uint16(i))),
				Val: nfsock.Concat(addr4(p.Internal), port(p.InternalPorts.First+uint16(i))),
			})
		}
	}
	return c
}

// intervalElem is the element of an ifname . ipv4_addr interval set for
// every address of p on interface name.
func intervalElem(name string, p netip.Prefix, val []byte) nfsock.Element {
	s := nfsock.PrefixSpan(p)
	return nfsock.Element{
		Key:    nfsock.Concat(nfsock.IfName(name), s.Lo.Bytes(4)),
		KeyEnd: nfsock.Concat(nfsock.IfName(name), s.Hi.Bytes(4)),
		Val:    val,
	}
}

func addr4(a netip.Addr) []byte { b := a.As4(); return b[:] }

func proto(p Protocol) []byte { return []byte{byte(p)} }

func port(p uint16) []byte { return binary.BigEndian.AppendUint16(nil, p) }

// decode turns the elements of the live sets back into the spec they
// implement, so that a reader sees what the kernel really does. Port
// forwards that the kernel holds port by port come back as ranges where
// consecutive ports go to consecutive ports of one address. Elements that
// do not decode (someone else's) are counted in the result, not guessed
// at.
func decode(c contents) (s Spec, undecoded int) {
	for _, e := range c[setSNAT] {
		name, p, ok := decodeInterval(e)
		if !ok || len(e.Val) != 4 {
			undecoded++
			continue
		}
		s.SNAT = append(s.SNAT, SNAT{Out: name, From: p, To: addrFrom(e.Val)})
	}
	for _, e := range c[setMasquerade] {
		name, p, ok := decodeInterval(e)
		if !ok {
			undecoded++
			continue
		}
		s.Masquerade = append(s.Masquerade, Masquerade{Out: name, From: p})
	}
	for _, e := range c[setHairpin] {
		name, p, ok := decodeInterval(e)
		if !ok {
			undecoded++
			continue
		}
		s.Hairpin = append(s.Hairpin, Subnet{Interface: name, Prefix: p})
	}
	s.FloatingIPs, undecoded = decodeFloating(c, undecoded)
	s.PortForwards, s.Publish, undecoded = decodeForwards(c, undecoded)
	var n int
	s.Helpers, n = decodeHelpers(c[setHelpers])
	undecoded += n
	sortSpec(&s)
	return s, undecoded
}

// decodeFloating pairs the DNAT and SNAT halves of each floating IP. A half
// without the other is still reported, with what it has, so that a broken
// pair is visible rather than hidden.
func decodeFloating(c contents, undecoded int) ([]FloatingIP, int) {
	out := map[netip.Addr]FloatingIP{} // by floating address
	for _, e := range c[setFloatingSNAT] {
		if len(e.Key) != unix.IFNAMSIZ+4 || len(e.Val) != 4 {
			undecoded++
			continue
		}
		f := FloatingIP{Out: nfsock.NameOf(e.Key[:unix.IFNAMSIZ]), Fixed: addrFrom(e.Key[unix.IFNAMSIZ:]), Floating: addrFrom(e.Val)}
		out[f.Floating] = f
	}
	var list []FloatingIP
	for _, e := range c[setFloatingDNAT] {
		if len(e.Key) != 4 || len(e.Val) != 4 {
			undecoded++
			continue
		}
		fl, fx := addrFrom(e.Key), addrFrom(e.Val)
		f, ok := out[fl]
		if !ok || f.Fixed != fx {
			list = append(list, FloatingIP{Floating: fl, Fixed: fx}) // DNAT only
			continue
		}
		delete(out, fl)
		list = append(list, f)
	}
	for _, f := range out {
		list = append(list, FloatingIP{Out: f.Out, Fixed: f.Fixed}) // SNAT only
	}
	return list, undecoded
}

type portMap struct {
	addr     netip.Addr // external address; invalid for published ports
	proto    Protocol
	port     uint16
	internal netip.Addr
	inPort   uint16
}

func decodeForwards(c contents, undecoded int) ([]PortForward, []Publish, int) {
	var fwd, pub []portMap
	for _, e := range c[setPortForward] {
		if len(e.Key) != 12 || len(e.Val) != 8 {
			undecoded++
			continue
		}
		fwd = append(fwd, portMap{addrFrom(e.Key[:4]), Protocol(e.Key[4]), binary.BigEndian.Uint16(e.Key[8:]),
			addrFrom(e.Val[:4]), binary.BigEndian.Uint16(e.Val[4:])})
	}
	for _, e := range c[setPublish] {
		if len(e.Key) != 8 || len(e.Val) != 8 {
			undecoded++
			continue
		}
		pub = append(pub, portMap{netip.Addr{}, Protocol(e.Key[0]), binary.BigEndian.Uint16(e.Key[4:]),
			addrFrom(e.Val[:4]), binary.BigEndian.Uint16(e.Val[4:])})
	}
	var forwards []PortForward
	for _, r := range mergePorts(fwd) {
		forwards = append(forwards, PortForward{r.proto, r.addr, r.ports, r.internal, r.inPorts})
	}
	var publish []Publish
	for _, r := range mergePorts(pub) {
		publish = append(publish, Publish{r.proto, r.ports, r.internal, r.inPorts})
	}
	return forwards, publish, undecoded
}

type portRun struct {
	addr, internal netip.Addr
	proto          Protocol
	ports, inPorts PortRange
}

// mergePorts joins single-port mappings into runs of consecutive ports.
func mergePorts(list []portMap) []portRun {
	slices.SortFunc(list, func(a, b portMap) int {
		return cmp.Or(a.addr.Compare(b.addr), cmp.Compare(a.proto, b.proto), cmp.Compare(a.port, b.port))
	})
	var runs []portRun
	for _, m := range list {
		if n := len(runs); n > 0 {
			r := &runs[n-1]
			if r.addr == m.addr && r.proto == m.proto && r.internal == m.internal &&
				int(r.ports.Last)+1 == int(m.port) && int(r.inPorts.Last)+1 == int(m.inPort) {
				r.ports.Last, r.inPorts.Last = m.port, m.inPort
				continue
			}
		}
		runs = append(runs, portRun{m.addr, m.internal, m.proto, Port(m.port), Port(m.inPort)})
	}
	return runs
}

// decodeInterval reads an ifname . ipv4_addr interval element that covers
// exactly one prefix.
func decodeInterval(e nfsock.Element) (string, netip.Prefix, bool) {
	if len(e.Key) != unix.IFNAMSIZ+4 || len(e.KeyEnd) != unix.IFNAMSIZ+4 ||
		!bytes.Equal(e.Key[:unix.IFNAMSIZ], e.KeyEnd[:unix.IFNAMSIZ]) {
		return "", netip.Prefix{}, false
	}
	first := binary.BigEndian.Uint32(e.Key[unix.IFNAMSIZ:])
	last := binary.BigEndian.Uint32(e.KeyEnd[unix.IFNAMSIZ:])
	span := last - first + 1 // 0 when the interval is the whole space
	if last < first || span&(span-1) != 0 || first&(span-1) != 0 {
		return "", netip.Prefix{}, false
	}
	bits := 32
	for s := span; s > 1; s >>= 1 {
		bits--
	}
	if span == 0 {
		bits = 0
	}
	return nfsock.NameOf(e.Key[:unix.IFNAMSIZ]), netip.PrefixFrom(addrFrom(e.Key[unix.IFNAMSIZ:]), bits), true
}

func addrFrom(b []byte) netip.Addr { return netip.AddrFrom4([4]byte(b[:4])) }

// sortSpec orders every list of s, so that specs compare with
// reflect.DeepEqual and print the same way twice.
func sortSpec(s *Spec) {
	slices.SortFunc(s.SNAT, func(a, b SNAT) int {
		return cmp.Or(cmp.Compare(a.Out, b.Out), comparePrefix(a.From, b.From))
	})
	slices.SortFunc(s.Masquerade, func(a, b Masquerade) int {
		return cmp.Or(cmp.Compare(a.Out, b.Out), comparePrefix(a.From, b.From))
	})
	slices.SortFunc(s.Hairpin, func(a, b Subnet) int {
		return cmp.Or(cmp.Compare(a.Interface, b.Interface), comparePrefix(a.Prefix, b.Prefix))
	})
	slices.SortFunc(s.FloatingIPs, func(a, b FloatingIP) int {
		return cmp.Or(a.Floating.Compare(b.Floating), a.Fixed.Compare(b.Fixed))
	})
	slices.SortFunc(s.PortForwards, func(a, b PortForward) int {
		return cmp.Or(a.External.Compare(b.External), cmp.Compare(a.Protocol, b.Protocol), cmp.Compare(a.ExternalPorts.First, b.ExternalPorts.First))
	})
	slices.SortFunc(s.Helpers, compareHelpers)
	slices.SortFunc(s.Publish, func(a, b Publish) int {
		return cmp.Or(cmp.Compare(a.Protocol, b.Protocol), cmp.Compare(a.Ports.First, b.Ports.First))
	})
}

func comparePrefix(a, b netip.Prefix) int {
	return cmp.Or(a.Addr().Compare(b.Addr()), cmp.Compare(a.Bits(), b.Bits()))
}
