package firewall

import (
	"encoding/binary"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"golang.org/x/sys/unix"
)

// compile turns spec into the elements of both tables. Ports keep the tags
// they had in prev; new ports take tags no port of prev held, so a tag is
// never handed over within one batch.
func compile(spec Spec, prev map[string]uint16) compiled {
	c := compiled{tags: map[string]uint16{}, ports: map[uint16]*Port{}, sets: map[setKey]map[string]element{}}
	used := map[uint16]bool{}
	for _, t := range prev {
		used[t] = true
	}
	for i := range spec.Ports {
		if t, ok := prev[spec.Ports[i].Interface]; ok {
			c.tags[spec.Ports[i].Interface] = t
		}
	}
	next := uint16(1)
	for i := range spec.Ports {
		p := &spec.Ports[i]
		tag, ok := c.tags[p.Interface]
		if !ok {
			for used[next] {
				next++
			}
			tag = next
			used[tag] = true
			c.tags[p.Interface] = tag
		}
		c.ports[tag] = p
		c.addPort(p, tag)
	}
	return c
}

func (c compiled) add(family nftables.TableFamily, set string, e element) {
	k := setKey{family, set}
	if c.sets[k] == nil {
		c.sets[k] = map[string]element{}
	}
	c.sets[k][string(e.key)+"/"+string(e.keyEnd)] = e
}

func (c compiled) addPort(p *Port, tag uint16) {
	br, inet := nftables.TableFamilyBridge, nftables.TableFamilyINet
	name := ifname(p.Interface)
	c.add(br, setSecured, element{key: name})
	c.add(br, setTagOut, element{key: name, val: u32(uint32(tag))})
	c.add(br, setTagIn, element{key: name, chain: tagChainName(tag)})
	c.add(br, setMAC, element{key: concat(name, pad(p.MAC))})
	for _, m := range p.MACs {
		c.add(br, setMAC, element{key: concat(name, pad(m))})
	}
	addrs := append([]netip.Addr{linkLocal(p.MAC)}, p.Addresses...)
	for _, a := range addrs {
		if a.Is4() {
			c.add(br, setIP4, element{key: concat(name, a.AsSlice())})
		} else {
			c.add(br, setIP6, element{key: concat(name, a.AsSlice())})
		}
	}
	for _, n := range p.Networks {
		first, last := bounds(n)
		set := setNet4
		if n.Addr().Is6() {
			set = setNet6
		}
		c.add(br, set, element{key: concat(name, first.AsSlice()), keyEnd: concat(name, last.AsSlice())})
	}
	for _, r := range p.Rules {
		t := uint32(tag)
		if r.Direction == Egress {
			t <<= 16
		}
		first, last := bounds(r.Remote)
		set := setRules4
		if r.IPv6 {
			set = setRules6
		}
		c.add(inet, set, element{
			key:    concat(u32(t), []byte{r.ProtoMin}, be16(r.PortMin), first.AsSlice()),
			keyEnd: concat(u32(t), []byte{r.ProtoMax}, be16(r.PortMax), last.AsSlice()),
		})
	}
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
