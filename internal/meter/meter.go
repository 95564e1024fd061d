// Package meter owns the nsnet_meter nftables table (inet) of a router's
// namespace: Neutron's L3 metering. Each metering label the router
// carries is a named counter and a chain of the label's rules, which
// match traffic the router forwards through its gateway interface
// (ingress: in by it; egress: out by it); an excluded rule's traffic
// returns before the counter, as Neutron's metering agent does with
// iptables. Counters are nftables objects, so that rules can be rebuilt
// without losing what was counted, and a table that already holds the
// wanted rules is left alone (an agent restart changes nothing).
//
// It must not touch any other table, nor switch namespaces but through
// internal/nfsock (internal/netns).
package meter

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/nsnet/nsnet/internal/nfsock"
)

// TableName is the table of a router namespace this package owns.
const TableName = "nsnet_meter"

// Direction of a rule, as Neutron names it, relative to the router.
const (
	Ingress = "ingress"
	Egress  = "egress"
)

// Rule selects traffic of a label. A zero prefix matches any address.
type Rule struct {
	Direction   string
	Remote      netip.Prefix // the far side: the source of ingress, the destination of egress
	Source      netip.Prefix
	Destination netip.Prefix
	Excluded    bool
}

// Label is one label of a router: its id and rules.
type Label struct {
	ID    string
	Rules []Rule
}

// Spec is what a router's table holds: the labels counting on its
// gateway interface. No gateway or no label: no table.
type Spec struct {
	Gateway string
	Labels  []Label
}

// Equal reports whether two specs program the same table.
func (s Spec) Equal(o Spec) bool {
	return s.Gateway == o.Gateway && slices.EqualFunc(s.Labels, o.Labels, func(a, b Label) bool {
		return a.ID == b.ID && slices.Equal(a.Rules, b.Rules)
	})
}

// Count is what one label counted in one router.
type Count struct {
	Packets, Bytes uint64
}

func table() *nftables.Table {
	return &nftables.Table{Family: nftables.TableFamilyINet, Name: TableName}
}

// CounterName is the name of label id's counter and of its chain.
func CounterName(id string) string { return "label-" + id }

// Apply makes namespace's table what spec says, changing only what
// differs, in one atomic batch.
func Apply(namespace string, spec Spec) (changed bool, err error) {
	c, err := nfsock.Dial(namespace)
	if err != nil {
		return false, err
	}
	defer c.Close()
	t := table()
	live, err := c.Read(t, nil)
	if err != nil {
		return false, fmt.Errorf("read table %s: %w", TableName, err)
	}
	if spec.Gateway == "" || len(spec.Labels) == 0 {
		if live.Table == nil {
			return false, nil
		}
		c.DelTable(t)
		if err := c.Flush(); err != nil {
			return false, fmt.Errorf("delete table %s: %w", TableName, err)
		}
		return true, nil
	}
	objs := map[string]bool{}
	if live.Table != nil {
		got, err := c.GetObjects(t)
		if err != nil {
			return false, fmt.Errorf("list counters: %w", err)
		}
		for _, o := range got {
			if co, ok := o.(*nftables.CounterObj); ok {
				objs[co.Name] = true
			}
		}
	}
	chains := compile(spec)
	want := map[string]bool{}
	for _, def := range chains {
		want[def.Name] = true
	}
	if live.Table == nil {
		c.AddTable(t)
	}
	// Counters first (rules name them), then chains, then their rules,
	// base chain first; what is no longer wanted goes last.
	for _, l := range spec.Labels {
		if name := CounterName(l.ID); !objs[name] {
			c.AddObj(&nftables.CounterObj{Table: t, Name: name})
			changed = true
		}
	}
	for _, def := range chains {
		ch, ok := live.Chains[def.Name]
		switch {
		case ok && def.Matches(ch) && live.Current(def):
			continue
		case ok && def.Matches(ch):
			c.FlushChain(def.NFT(t))
		case ok:
			c.FlushChain(ch)
			c.DelChain(ch)
			c.AddChain(def.NFT(t))
		default:
			c.AddChain(def.NFT(t))
		}
		changed = true
	}
	for _, def := range chains {
		if ch, ok := live.Chains[def.Name]; !ok || !def.Matches(ch) || !live.Current(def) {
			c.AddRules(t, def)
		}
	}
	for name, ch := range live.Chains {
		if !want[name] {
			c.FlushChain(ch)
			c.DelChain(ch)
			changed = true
		}
	}
	for name := range objs {
		if !want[name] {
			c.DeleteObject(&nftables.CounterObj{Table: t, Name: name})
			changed = true
		}
	}
	if !changed {
		return false, nil
	}
	if err := c.Flush(); err != nil {
		return false, fmt.Errorf("program table %s: %w", TableName, err)
	}
	return true, nil
}

// Counts reads the counters of namespace's table, by label id; none when
// there is no table.
func Counts(namespace string) (map[string]Count, error) {
	c, err := nfsock.Dial(namespace)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	t := table()
	out := map[string]Count{}
	if ok, err := c.Exists(t); err != nil || !ok {
		return out, err
	}
	got, err := c.GetObjects(t)
	if err != nil {
		return nil, fmt.Errorf("list counters: %w", err)
	}
	for _, o := range got {
		if co, ok := o.(*nftables.CounterObj); ok {
			if id, ok := strings.CutPrefix(co.Name, "label-"); ok {
				out[id] = Count{Packets: co.Packets, Bytes: co.Bytes}
			}
		}
	}
	return out, nil
}

// compile is the chains of spec: the base chain on the forward hook,
// which sends every packet through each label's chain.
func compile(spec Spec) []nfsock.ChainDef {
	base := nfsock.ChainDef{Name: "forward", Hook: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter}
	var out []nfsock.ChainDef
	for _, l := range spec.Labels {
		name := CounterName(l.ID)
		base.Rules = append(base.Rules, []expr.Any{&expr.Verdict{Kind: expr.VerdictJump, Chain: name}})
		base.Comments = append(base.Comments, "metering label "+l.ID)
		def := nfsock.ChainDef{Name: name}
		// Excluded rules first: what they match is not counted.
		for _, excluded := range []bool{true, false} {
			for _, r := range l.Rules {
				if r.Excluded != excluded {
					continue
				}
				m, ok := match(spec.Gateway, r)
				if !ok {
					continue
				}
				if !excluded {
					m = append(m, &expr.Objref{Type: int(nftables.ObjTypeCounter), Name: name})
				}
				def.Rules = append(def.Rules, append(m, &expr.Verdict{Kind: expr.VerdictReturn}))
			}
		}
		out = append(out, def)
	}
	return append([]nfsock.ChainDef{base}, out...)
}

// match is the expressions that select r's traffic; false when no packet
// can match (its prefixes are of both families).
func match(gateway string, r Rule) ([]expr.Any, bool) {
	key := expr.MetaKeyIIFNAME
	if r.Direction == Egress {
		key = expr.MetaKeyOIFNAME
	}
	src, dst := r.Source, r.Destination
	switch {
	case r.Remote.IsValid() && r.Direction == Egress:
		src, dst = netip.Prefix{}, r.Remote
	case r.Remote.IsValid():
		src, dst = r.Remote, netip.Prefix{}
	}
	e := []expr.Any{
		&expr.Meta{Key: key, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: nfsock.IfName(gateway)},
	}
	family := 0
	for _, p := range []netip.Prefix{src, dst} {
		if !p.IsValid() {
			continue
		}
		f := 4
		if p.Addr().Is6() {
			f = 6
		}
		if family != 0 && family != f {
			return nil, false
		}
		family = f
	}
	switch family {
	case 4:
		e = append(e, &expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV4}})
	case 6:
		e = append(e, &expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV6}})
	}
	if src.IsValid() {
		e = append(e, prefixMatch(src, true)...)
	}
	if dst.IsValid() {
		e = append(e, prefixMatch(dst, false)...)
	}
	return e, true
}

// prefixMatch matches the source (or destination) address against p.
func prefixMatch(p netip.Prefix, source bool) []expr.Any {
	p = p.Masked()
	n := p.Addr().BitLen() / 8
	off := uint32(16) // IPv4 daddr
	switch {
	case n == 4 && source:
		off = 12
	case n == 16 && source:
		off = 8
	case n == 16:
		off = 24
	}
	if p.Bits() == 0 {
		return nil
	}
	mask := make([]byte, n)
	for i := 0; i < p.Bits(); i++ {
		mask[i/8] |= 0x80 >> (i % 8)
	}
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: uint32(n)},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: uint32(n), Mask: mask, Xor: make([]byte, n)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: p.Addr().AsSlice()},
	}
}
