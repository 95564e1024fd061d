package firewall

import (
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/google/nftables"

	"github.com/nsnet/nsnet/internal/nfsock"
)

// adopt takes over tables a previous daemon left, when they implement
// spec exactly: ports keep the tags the kernel gave them and bridges the
// zones (kernelZones), and nothing is written, so a restart recreates no
// table, chain or set. ok is false when the tables are missing or differ;
// the caller then rebuilds them.
func (f *Firewall) adopt(c *nfsock.Conn, spec Spec, kernelZones map[string]uint16) (want compiled, ok bool) {
	tags, err := f.kernelTags(c)
	if err != nil {
		return compiled{}, false
	}
	sigs, err := f.kernelSigs(c)
	if err != nil {
		return compiled{}, false // another layout: rebuilt
	}
	want = compile(spec, compiled{tags: tags, zones: kernelZones, kernelSigs: sigs})
	if same, err := f.matches(c, want); err != nil || !same {
		f.log.Debug("existing firewall tables not adopted", "err", err)
		return compiled{}, false
	}
	return want, true
}

// intact reports whether the kernel still holds exactly what the last
// Apply programmed, and the ruleset generation it read: proven by the
// generation, or else (not proven) read back and compared.
func (f *Firewall) intact() (gen uint32, proven, ok bool, err error) {
	gen, proven, err = f.own.Generation()
	if err != nil || proven || f.current.tags == nil {
		return gen, proven, proven, err
	}
	c, _ := f.own.Conn()
	if ok, err = f.matches(c, f.current); ok {
		f.own.Prove(gen)
	}
	return gen, false, ok, err
}

// Verify reports whether the kernel's tables still hold exactly what the
// last Apply programmed; false before the first. Unless the ruleset
// generation proves it, it reads them back (see matches).
func (f *Firewall) Verify() (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, _, ok, err := f.intact()
	if err != nil {
		return false, f.own.Fail(err)
	}
	return ok, nil
}

// kernelTags reads the tag of each port interface from the bridge table.
func (f *Firewall) kernelTags(c *nfsock.Conn) (map[string]uint16, error) {
	bridge, _ := tables()
	set, err := c.GetSetByName(bridge, setTagOut)
	if err != nil {
		return nil, err
	}
	els, err := c.GetSetElements(set)
	if err != nil {
		return nil, err
	}
	tags := map[string]uint16{}
	for _, e := range els {
		if len(e.Val) != 4 {
			return nil, fmt.Errorf("tag of %q: %d bytes", e.Key, len(e.Val))
		}
		tag := binary.NativeEndian.Uint32(e.Val)
		if tag == 0 || tag > maxTag {
			return nil, fmt.Errorf("tag of %q: %d", e.Key, tag)
		}
		tags[nfsock.NameOf(e.Key)] = uint16(tag)
	}
	return tags, nil
}

// kernelSigs reads the signature of each port's tag from the inet
// table's ingress_ports map: the number of the chain its element goes to.
// A chain of another layout is no signature's: matches then finds the
// tables differ.
func (f *Firewall) kernelSigs(c *nfsock.Conn) (map[uint16]uint16, error) {
	_, inet := tables()
	set, err := c.GetSetByName(inet, setIngressPorts)
	if err != nil {
		return nil, err
	}
	els, err := c.Elements(set)
	if err != nil {
		return nil, err
	}
	sigs := map[uint16]uint16{}
	for _, e := range els {
		if len(e.Key) != 4 {
			return nil, fmt.Errorf("tag of an ingress_ports element: %d bytes", len(e.Key))
		}
		tag := binary.NativeEndian.Uint32(e.Key)
		if sig, ok := SigChain(e.Chain); ok && tag <= maxTag {
			sigs[uint16(tag)] = sig
		}
	}
	return sigs, nil
}

// kernelZones reads the zone of each bridge from the inet table's zones
// map: the number of the chain its element jumps to.
func (f *Firewall) kernelZones(c *nfsock.Conn) (map[string]uint16, error) {
	_, inet := tables()
	set, err := c.GetSetByName(inet, setZones)
	if err != nil {
		return nil, err
	}
	els, err := c.Elements(set)
	if err != nil {
		return nil, err
	}
	zones := map[string]uint16{}
	seen := map[uint16]bool{}
	for _, e := range els {
		rest, ok := strings.CutPrefix(e.Chain, "zone_")
		z, err := strconv.ParseUint(rest, 10, 16)
		if !ok || err != nil || z == 0 || seen[uint16(z)] {
			return nil, fmt.Errorf("zone of %q: chain %q, not a zone's or another bridge's", nfsock.NameOf(e.Key), e.Chain)
		}
		seen[uint16(z)] = true
		zones[nfsock.NameOf(e.Key)] = uint16(z)
	}
	return zones, nil
}

// matches compares the kernel's tables with want: their chains and sets
// (names, types, hooks), the rules of the fixed chains, of one port's and
// one signature's chains (every signature's are made alike but for the
// remote groups they look in: another layout, of another nsnet version,
// shows there) and of the chains of every signature whose rules name
// remote groups, and the
// elements of every set but the drop counters. Reading every port's
// rules would cost a dump per chain, each as long as the table.
func (f *Firewall) matches(c *nfsock.Conn, want compiled) (bool, error) {
	elems := want.elements()
	for _, tbl := range layouts() {
		sets, chains := tbl.with(want)
		_, sample := tbl.with(want.sample())
		read := map[string]bool{}
		for _, def := range sample {
			read[def.Name] = true
		}
		if tbl.t.Family == nftables.TableFamilyINet {
			for _, sg := range want.sigs {
				if len(sg.ingress)+len(sg.egress) > 0 {
					for _, def := range sg.chains() {
						sample = append(sample, def)
						read[def.Name] = true
					}
				}
			}
		}
		l, err := c.Read(tbl.t, func(chain string) bool { return read[chain] })
		if err != nil {
			return false, err
		}
		if l.Table == nil {
			return false, nil
		}
		if why := l.Problems(sets, chains); len(why) > 0 {
			f.log.Debug("firewall tables differ", "family", tbl.t.Family, "why", why)
			return false, nil
		}
		for _, def := range sample {
			if !l.Current(def) {
				f.log.Debug("firewall chain differs", "family", tbl.t.Family, "chain", def.Name)
				return false, nil
			}
		}
		for _, d := range sets {
			if !d.Counters && !sameElements(l.Elements[d.Name], elems[setKey{tbl.t.Family, d.Name}]) {
				f.log.Debug("firewall set differs", "family", tbl.t.Family, "set", d.Name)
				return false, nil
			}
		}
	}
	return true, nil
}

// sample is c with one port, one signature and one zone at most: the
// chains whose rules matches reads.
func (c compiled) sample() compiled {
	s := compiled{ports: map[uint16]*portElements{}, sigs: map[uint16]*signature{}, zones: map[string]uint16{}}
	if tags := slices.Sorted(maps.Keys(c.ports)); len(tags) > 0 {
		s.ports[tags[0]] = c.ports[tags[0]]
	}
	if nums := slices.Sorted(maps.Keys(c.sigs)); len(nums) > 0 {
		s.sigs[nums[0]] = c.sigs[nums[0]]
	}
	if bridges := slices.Sorted(maps.Keys(c.zones)); len(bridges) > 0 {
		s.zones[bridges[0]] = c.zones[bridges[0]]
	}
	return s
}

// sameElements reports whether have and want hold the same elements.
func sameElements(have, want []nfsock.Element) bool {
	if len(have) != len(want) {
		return false
	}
	ids := func(es []nfsock.Element) []string {
		out := make([]string, 0, len(es))
		for _, e := range es {
			out = append(out, fmt.Sprintf("%x/%x/%x/%s/%v", e.Key, e.KeyEnd, e.Val, e.Chain, e.GoTo))
		}
		slices.Sort(out)
		return out
	}
	return slices.Equal(ids(have), ids(want))
}
