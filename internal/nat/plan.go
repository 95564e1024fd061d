package nat

import (
	"bytes"
	"fmt"
	"maps"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"

	"github.com/nsnet/nsnet/internal/nfsock"
)

// delta is a change of set elements, by set: deletions, applied first,
// and additions. A changed value is a deletion and an addition of the same
// key, in that order, in the same batch.
type delta struct {
	del, add map[string][]element
}

func (d *delta) put(into *map[string][]element, set string, e element) {
	if *into == nil {
		*into = map[string][]element{}
	}
	(*into)[set] = append((*into)[set], e)
}

func count(m map[string][]element) int {
	n := 0
	for _, els := range m {
		n += len(els)
	}
	return n
}

// diff is the delta that turns have into want.
func diff(have, want contents) delta {
	var d delta
	for _, def := range layoutSets {
		h, w := have[def.name], want[def.name]
		for k, e := range h {
			if we, ok := w[k]; !ok || !we.equal(e) {
				d.put(&d.del, def.name, e)
			}
		}
		for k, e := range w {
			if he, ok := h[k]; !ok || !he.equal(e) {
				d.put(&d.add, def.name, e)
			}
		}
	}
	return d
}

// delta is the change that removes rm from c and adds ad to it. Entries of
// rm that c lacks, and entries of ad that c has, are no change; an entry
// whose key c holds with another value is a conflict.
func (c contents) delta(rm, ad contents) (delta, error) {
	var d delta
	removed := map[string]map[string]bool{}
	for _, def := range layoutSets {
		removed[def.name] = map[string]bool{}
		for k, e := range rm[def.name] {
			cur, ok := c[def.name][k]
			if !ok {
				continue
			}
			if !cur.equal(e) {
				return delta{}, fmt.Errorf("cannot remove %s: the spec has %s", describe(def.name, e), describe(def.name, cur))
			}
			d.put(&d.del, def.name, cur)
			removed[def.name][k] = true
		}
	}
	for _, def := range layoutSets {
		for k, e := range ad[def.name] {
			cur, ok := c[def.name][k]
			switch {
			case ok && removed[def.name][k]:
			case ok && cur.equal(e):
				continue
			case ok:
				return delta{}, fmt.Errorf("cannot add %s: the spec has %s", describe(def.name, e), describe(def.name, cur))
			}
			if def.interval {
				if other, ok := c.overlapping(def.name, e, removed[def.name]); ok {
					return delta{}, fmt.Errorf("cannot add %s: it overlaps %s", describe(def.name, e), describe(def.name, other))
				}
			}
			d.put(&d.add, def.name, e)
		}
	}
	return d, nil
}

// overlapping finds an element of interval set name, other than those in
// skip, that shares an interface and addresses with e.
func (c contents) overlapping(name string, e element, skip map[string]bool) (element, bool) {
	for k, o := range c[name] {
		if skip[k] || !bytes.Equal(o.key[:16], e.key[:16]) {
			continue
		}
		if bytes.Compare(o.key, e.keyEnd) <= 0 && bytes.Compare(e.key, o.keyEnd) <= 0 {
			return o, true
		}
	}
	return element{}, false
}

// apply changes c by d, in place, and returns it.
func (c contents) apply(d delta) contents {
	for set, els := range d.del {
		for _, e := range els {
			delete(c[set], string(e.key))
		}
	}
	for set, els := range d.add {
		for _, e := range els {
			c[set].add(e)
		}
	}
	return c
}

// revert undoes apply(d).
func (c contents) revert(d delta) {
	for set, els := range d.add {
		for _, e := range els {
			delete(c[set], string(e.key))
		}
	}
	for set, els := range d.del {
		for _, e := range els {
			c[set].add(e)
		}
	}
}

// describe names one element for an error message, as a spec entry.
func describe(set string, e element) string {
	s, _ := decode(contents{set: elements{string(e.key): e}})
	var items []any
	for _, x := range s.SNAT {
		items = append(items, fmt.Sprintf("SNAT of %v out of %s to %v", x.From, x.Out, x.To))
	}
	for _, x := range s.Masquerade {
		items = append(items, fmt.Sprintf("masquerade of %v out of %s", x.From, x.Out))
	}
	for _, x := range s.Hairpin {
		items = append(items, fmt.Sprintf("hairpin of %v on %s", x.Prefix, x.Interface))
	}
	for _, x := range s.FloatingIPs {
		switch {
		case x.Floating.IsValid() && x.Fixed.IsValid():
			items = append(items, fmt.Sprintf("floating IP %v → %v", x.Floating, x.Fixed))
		case x.Floating.IsValid():
			items = append(items, fmt.Sprintf("floating IP %v", x.Floating))
		default:
			items = append(items, fmt.Sprintf("floating IP of %v", x.Fixed))
		}
	}
	for _, x := range s.PortForwards {
		items = append(items, "port forward "+x.String())
	}
	for _, x := range s.Publish {
		items = append(items, "published port "+x.String())
	}
	if len(items) == 0 {
		return fmt.Sprintf("an element of %s", set)
	}
	return fmt.Sprint(items[0])
}

// plan is one batch.
type plan struct {
	create  bool     // the table is missing: make all of it
	rebuild bool     // delete the table, then make all of it
	why     []string // why it is rebuilt
	rewrite []chainDef
	delta   delta
}

// planFrom is the batch that turns the live table l into one holding want.
func planFrom(l *live, want contents) plan {
	if l.table == nil {
		return plan{create: true, delta: diff(newContents(), want)}
	}
	if why := l.problems(); len(why) > 0 {
		return plan{rebuild: true, why: why, delta: diff(newContents(), want)}
	}
	var p plan
	for _, def := range layoutChains {
		if !l.current(def) {
			p.rewrite = append(p.rewrite, def)
		}
	}
	p.delta = diff(l.contents, want)
	return p
}

func (p plan) fill(r *Result) {
	r.Created, r.Rebuilt = p.create, p.rebuild
	for _, def := range p.rewrite {
		r.Rewritten = append(r.Rewritten, def.name)
	}
	r.Added, r.Deleted = count(p.delta.add), count(p.delta.del)
}

// elementsPerMessage bounds the elements of one netlink message: their
// list is a netlink attribute, whose length is 16 bits, so one message
// cannot carry more than 64 KiB of them. The batch, made of many such
// messages, stays one transaction.
const elementsPerMessage = 512

// send queues p as one batch and commits it.
func (t *Table) send(p plan, want contents) error {
	c := t.socks.nft
	tbl := &nftables.Table{Name: TableName, Family: nftables.TableFamilyINet}
	ids := map[string]uint32{}
	if p.rebuild {
		c.DelTable(tbl)
	}
	if p.create || p.rebuild {
		c.AddTable(tbl)
		for i, def := range layoutSets {
			s := def.nft(tbl)
			// Set IDs name sets created in this batch; they only need
			// to be unique within it. Setting them here keeps
			// google/nftables from counting them in a global variable.
			s.ID = uint32(i + 1)
			ids[def.name] = s.ID
			if err := c.AddSet(s, nil); err != nil {
				return fmt.Errorf("add set %s: %w", def.name, err)
			}
		}
		for _, def := range layoutChains {
			c.AddChain(def.nft(tbl))
		}
		for _, def := range layoutChains {
			addRules(c, tbl, def, ids)
		}
	}
	for _, def := range p.rewrite {
		ch := def.nft(tbl)
		c.FlushChain(ch)
		addRules(c, tbl, def, ids)
	}
	for _, def := range layoutSets {
		s := def.nft(tbl)
		s.ID = ids[def.name]
		for chunk := range slices.Chunk(p.delta.del[def.name], elementsPerMessage) {
			if err := c.SetDeleteElements(s, toNFT(chunk)); err != nil {
				return fmt.Errorf("delete elements of %s: %w", def.name, err)
			}
		}
	}
	for _, def := range layoutSets {
		s := def.nft(tbl)
		s.ID = ids[def.name]
		for chunk := range slices.Chunk(p.delta.add[def.name], elementsPerMessage) {
			if err := c.SetAddElements(s, toNFT(chunk)); err != nil {
				return fmt.Errorf("add elements to %s: %w", def.name, err)
			}
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("commit nat batch: %w", err)
	}
	return nil
}

// addRules queues the rules of def. Lookups of sets created in the same
// batch name them by ID too; the shared layout expressions are copied, not
// changed.
func addRules(c *nfsock.Conn, tbl *nftables.Table, def chainDef, ids map[string]uint32) {
	ch := def.nft(tbl)
	for _, r := range def.rules {
		exprs := make([]expr.Any, len(r.exprs))
		for i, e := range r.exprs {
			if l, ok := e.(*expr.Lookup); ok {
				cp := *l
				cp.SetID = ids[l.SetName]
				e = &cp
			}
			exprs[i] = e
		}
		c.AddRule(&nftables.Rule{Table: tbl, Chain: ch, Exprs: exprs, UserData: r.userData()})
	}
}

func toNFT(els []element) []nftables.SetElement {
	out := make([]nftables.SetElement, len(els))
	for i, e := range els {
		out[i] = nftables.SetElement{Key: e.key, KeyEnd: e.keyEnd, Val: e.val}
	}
	return out
}

// sortedNames returns the keys of m in order, for stable output.
func sortedNames[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}
