package firewall

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// adopt takes over tables a previous daemon left, when they implement
// spec exactly: ports keep the tags the kernel gave them and bridges the
// zones (kernelZones), and nothing is written, so a restart recreates no
// table, chain or set. ok is false when the tables are missing or differ;
// the caller then rebuilds them.
func (f *Firewall) adopt(spec Spec, kernelZones map[string]uint16) (want compiled, ok bool) {
	tags, err := f.kernelTags()
	if err != nil {
		return compiled{}, false
	}
	want = compile(spec, compiled{tags: tags, zones: kernelZones})
	if same, err := f.matches(want); err != nil || !same {
		f.log.Debug("existing firewall tables not adopted", "err", err)
		return compiled{}, false
	}
	return want, true
}

// Verify reports whether the kernel's tables still hold exactly what the
// last Apply programmed: every chain and set of the layout, every
// element, and the layout's mark (see layoutComment). The rules inside the
// chains are not compared one by one. It is false before the first Apply.
func (f *Firewall) Verify() (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.synced {
		return false, nil
	}
	return f.matches(f.current)
}

// layoutComment marks tables with the layout that built them: it is the
// comment of the first rule of the bridge table's prerouting chain, with a
// hash of every chain, rule and set definition. Tables are adopted only
// from a daemon of the same layout, so an upgrade that changes the layout
// rebuilds them rather than keeping the old rules.
var layoutComment = "nsnet_fw layout " + layoutHash()

const layoutMarkChain = "prerouting"

func layoutHash() string {
	h := sha256.New()
	enc := json.NewEncoder(h)
	for _, chains := range [][]chainDef{bridgeChains, inetChains, portChains(1), {tagChain(1)}, {zoneChain(1)}} {
		for _, c := range chains {
			fmt.Fprintln(h, c.name, c.hook != nil && c.priority != nil)
			if c.hook != nil && c.priority != nil {
				fmt.Fprintln(h, *c.hook, *c.priority)
			}
			if err := enc.Encode(c.rules); err != nil {
				panic(fmt.Sprintf("firewall layout of chain %s: %v", c.name, err))
			}
		}
	}
	for _, d := range append(append(slices.Clone(bridgeSets), inetSets...), setDef{name: "rules4"}, setDef{name: "rules6"}) {
		if r, ok := rulesSetDef(d.name + "_1"); ok {
			d = r
		}
		data := ""
		if d.data != nil {
			data = d.data.Name
		}
		fmt.Fprintln(h, d.name, d.key.Name, d.key.Bytes, data, d.interval, d.counters)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// sameLayout reports whether the bridge table was built by this layout.
func (f *Firewall) sameLayout(bridge *nftables.Table) (bool, error) {
	rules, err := f.nft.GetRules(bridge, &nftables.Chain{Name: layoutMarkChain, Table: bridge})
	if err != nil {
		return false, err
	}
	if len(rules) == 0 {
		return false, nil
	}
	comment, _ := userdata.GetString(rules[0].UserData, userdata.TypeComment)
	return comment == layoutComment, nil
}

// kernelTags reads the tag of each port interface from the bridge table.
func (f *Firewall) kernelTags() (map[string]uint16, error) {
	bridge, _ := tables()
	els, err := f.elementsOf(bridge, setTagOut)
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
		tags[string(trimIfname(e.Key))] = uint16(tag)
	}
	return tags, nil
}

// kernelZones reads the zone of each bridge from the inet table.
func (f *Firewall) kernelZones() (map[string]uint16, error) {
	_, inet := tables()
	els, err := f.elementsOf(inet, setZones)
	if err != nil {
		return nil, err
	}
	zones := map[string]uint16{}
	seen := map[uint16]bool{}
	for _, e := range els {
		_, chain := decodeVerdict(e.Val)
		rest, ok := strings.CutPrefix(chain, "zone_")
		z, err := strconv.ParseUint(rest, 10, 16)
		if !ok || err != nil || z == 0 || seen[uint16(z)] {
			return nil, fmt.Errorf("zone of %q: chain %q, not a zone's or another bridge's", e.Key, chain)
		}
		seen[uint16(z)] = true
		zones[string(trimIfname(e.Key))] = uint16(z)
	}
	return zones, nil
}

// elementsOf lists the elements of table t's set name.
func (f *Firewall) elementsOf(t *nftables.Table, name string) ([]nftables.SetElement, error) {
	set, err := f.nft.GetSetByName(t, name)
	if err != nil {
		return nil, err
	}
	return f.nft.GetSetElements(set)
}

// matches compares the kernel's tables with want: chain names, the
// layout's mark, set names, and the elements of every set but the drop
// counters.
func (f *Firewall) matches(want compiled) (bool, error) {
	elems := want.elements()
	for _, tbl := range layouts() {
		setDefs, chainDefs := tbl.with(want)
		wantChains := map[string]bool{}
		wantSets := map[string]bool{}
		for _, c := range chainDefs {
			wantChains[c.name] = true
		}
		for _, d := range setDefs {
			wantSets[d.name] = true
		}

		chains, err := f.nft.ListChainsOfTableFamily(tbl.t.Family)
		if err != nil {
			return false, err
		}
		haveChains := map[string]bool{}
		for _, c := range chains {
			if c.Table.Name == TableName {
				haveChains[c.Name] = true
			}
		}
		if !maps.Equal(haveChains, wantChains) {
			return false, nil
		}
		if tbl.t.Family == nftables.TableFamilyBridge {
			if ok, err := f.sameLayout(tbl.t); err != nil || !ok {
				return false, err
			}
		}

		sets, err := f.nft.GetSets(tbl.t)
		if err != nil {
			return false, err
		}
		haveSets := map[string]bool{}
		for _, s := range sets {
			haveSets[s.Name] = true
		}
		if !maps.Equal(haveSets, wantSets) {
			return false, nil
		}
		for _, s := range sets {
			if s.Name == setDrops {
				continue
			}
			have, err := f.nft.GetSetElements(s)
			if err != nil {
				return false, err
			}
			if !sameElements(have, elems[setKey{tbl.t.Family, s.Name}], isVerdictMap(s.Name)) {
				return false, nil
			}
		}
	}
	return true, nil
}

// sameElements compares a set's elements as the kernel lists them with
// the ones nsnet would add.
func sameElements(have []nftables.SetElement, want []element, verdicts bool) bool {
	if len(have) != len(want) {
		return false
	}
	h := make([]string, 0, len(have))
	for _, e := range have {
		h = append(h, listedElementKey(e, verdicts))
	}
	w := make([]string, 0, len(want))
	for _, e := range want {
		w = append(w, elementKey(e))
	}
	slices.Sort(h)
	slices.Sort(w)
	return slices.Equal(h, w)
}

func elementKey(e element) string {
	return fmt.Sprintf("%x/%x/%x/%s/%v", e.key, e.keyEnd, e.val, e.chain, e.chain != "" && e.goTo)
}

// listedElementKey is elementKey of an element the kernel listed. A
// verdict map's data comes back as the verdict's attributes (code and
// chain), which google/nftables leaves undecoded.
func listedElementKey(e nftables.SetElement, verdict bool) string {
	el := element{key: e.Key, keyEnd: e.KeyEnd, val: e.Val}
	if verdict {
		code, chain := decodeVerdict(e.Val)
		el.val, el.chain = nil, chain
		el.goTo = int32(code) == unix.NFT_GOTO
	}
	return elementKey(el)
}

func isVerdictMap(set string) bool {
	return set == setTagIn || set == setEgressPorts || set == setIngressPorts || set == setZones
}

func decodeVerdict(b []byte) (code uint32, chain string) {
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return 0, ""
	}
	ad.ByteOrder = binary.BigEndian
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_VERDICT_CODE:
			code = ad.Uint32()
		case unix.NFTA_VERDICT_CHAIN:
			chain = ad.String()
		}
	}
	return code, chain
}

func trimIfname(b []byte) []byte {
	for i, c := range b {
		if c == 0 {
			return b[:i]
		}
	}
	return b
}
