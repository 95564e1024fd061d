package firewall

import (
	"bytes"
	"encoding/binary"
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
	return c
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
	pe.add(br, setMAC, element{key: concat(name, pad(p.MAC))})
	for _, m := range p.MACs {
		pe.add(br, setMAC, element{key: concat(name, pad(m))})
	}
	addrs := append([]netip.Addr{linkLocal(p.MAC)}, p.Addresses...)
	for _, a := range addrs {
		if a.Is4() {
			pe.add(br, setIP4, element{key: concat(name, a.AsSlice())})
		} else {
			pe.add(br, setIP6, element{key: concat(name, a.AsSlice())})
		}
	}
	for _, n := range p.Networks {
		first, last := bounds(n)
		set := setNet4
		if n.Addr().Is6() {
			set = setNet6
		}
		pe.add(br, set, element{key: concat(name, first.AsSlice()), keyEnd: concat(name, last.AsSlice())})
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
	set4, set6 := rulesSet4(tag), rulesSet6(tag)
	for _, r := range p.Rules {
		t := uint32(tag)
		if r.Direction == Egress {
			t <<= 16
		}
		first, last := bounds(r.Remote)
		set := set4
		if r.IPv6 {
			set = set6
		}
		pe.add(inet, set, element{
			key:    concat(u32(t), []byte{r.ProtoMin}, be16(r.PortMin), first.AsSlice()),
			keyEnd: concat(u32(t), []byte{r.ProtoMax}, be16(r.PortMax), last.AsSlice()),
		})
	}
	return pe
}

// decodeRule reads a rules4/rules6 element back into its rule and tag.
func decodeRule(e element) (Rule, uint16, bool) {
	if len(e.key) != len(e.keyEnd) || len(e.key) != 16 && len(e.key) != 28 {
		return Rule{}, 0, false
	}
	t := binaryutil.NativeEndian.Uint32(e.key[:4])
	r := Rule{Direction: Ingress, IPv6: len(e.key) == 28,
		ProtoMin: e.key[4], ProtoMax: e.keyEnd[4],
		PortMin: binary.BigEndian.Uint16(e.key[8:10]), PortMax: binary.BigEndian.Uint16(e.keyEnd[8:10])}
	if t > maxTag {
		r.Direction, t = Egress, t>>16
	}
	first, _ := netip.AddrFromSlice(e.key[12:])
	last, _ := netip.AddrFromSlice(e.keyEnd[12:])
	r.Remote = prefixBetween(first, last)
	return r, uint16(t), true
}

// prefixBetween is the smallest prefix holding first..last (they always
// bound one prefix here).
func prefixBetween(first, last netip.Addr) netip.Prefix {
	for bits := first.BitLen(); bits >= 0; bits-- {
		p := netip.PrefixFrom(first, bits).Masked()
		if p.Contains(last) {
			return p
		}
	}
	return netip.PrefixFrom(first, 0).Masked()
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
