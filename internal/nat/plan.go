package nat

import (
	"bytes"
	"fmt"
	"maps"
	"slices"

	"github.com/nsnet/nsnet/internal/nfsock"
)

// delta is a change of set elements, by set: deletions, applied first,
// and additions. A changed value is a deletion and an addition of the same
// key, in that order, in the same batch.
type delta struct {
	del, add map[string][]nfsock.Element
}

func (d *delta) put(into *map[string][]nfsock.Element, set string, e nfsock.Element) {
	if *into == nil {
		*into = map[string][]nfsock.Element{}
	}
	(*into)[set] = append((*into)[set], e)
}

func count(m map[string][]nfsock.Element) int {
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
		h, w := have[def.Name], want[def.Name]
		for k, e := range h {
			if we, ok := w[k]; !ok || !we.Equal(e) {
				d.put(&d.del, def.Name, e)
			}
		}
		for k, e := range w {
			if he, ok := h[k]; !ok || !he.Equal(e) {
				d.put(&d.add, def.Name, e)
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
		removed[def.Name] = map[string]bool{}
		for k, e := range rm[def.Name] {
			cur, ok := c[def.Name][k]
			if !ok {
				continue
			}
			if !cur.Equal(e) {
				return delta{}, fmt.Errorf("cannot remove %s: the spec has %s", describe(def.Name, e), describe(def.Name, cur))
			}
			d.put(&d.del, def.Name, cur)
			removed[def.Name][k] = true
		}
	}
	for _, def := range layoutSets {
		for k, e := range ad[def.Name] {
			cur, ok := c[def.Name][k]
			switch {
			case ok && removed[def.Name][k]:
			case ok && cur.Equal(e):
				continue
			case ok:
				return delta{}, fmt.Errorf("cannot add %s: the spec has %s", describe(def.Name, e), describe(def.Name, cur))
			}
			if def.Interval {
				if other, ok := c.overlapping(def.Name, e, removed[def.Name]); ok {
					return delta{}, fmt.Errorf("cannot add %s: it overlaps %s", describe(def.Name, e), describe(def.Name, other))
				}
			}
			d.put(&d.add, def.Name, e)
		}
	}
	return d, nil
}

// overlapping finds an element of interval set name, other than those in
// skip, that shares an interface and addresses with e.
func (c contents) overlapping(name string, e nfsock.Element, skip map[string]bool) (nfsock.Element, bool) {
	for k, o := range c[name] {
		if skip[k] || !bytes.Equal(o.Key[:16], e.Key[:16]) {
			continue
		}
		if bytes.Compare(o.Key, e.KeyEnd) <= 0 && bytes.Compare(e.Key, o.KeyEnd) <= 0 {
			return o, true
		}
	}
	return nfsock.Element{}, false
}

// apply changes c by d, in place, and returns it.
func (c contents) apply(d delta) contents {
	for set, els := range d.del {
		for _, e := range els {
			delete(c[set], string(e.Key))
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
			delete(c[set], string(e.Key))
		}
	}
	for set, els := range d.del {
		for _, e := range els {
			c[set].add(e)
		}
	}
}

// describe names one element for an error message, as a spec entry.
func describe(set string, e nfsock.Element) string {
	s, _ := decode(contents{set: elements{string(e.Key): e}})
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
	rewrite []nfsock.ChainDef
	delta   delta
}

// planFrom is the batch that turns the live table l into one holding want.
func planFrom(l *nfsock.Live, want contents) plan {
	if l.Table == nil {
		return plan{create: true, delta: diff(newContents(), want)}
	}
	if why := l.Problems(layoutSets, layoutChains); len(why) > 0 {
		return plan{rebuild: true, why: why, delta: diff(newContents(), want)}
	}
	var p plan
	for _, def := range layoutChains {
		if !l.Current(def) {
			p.rewrite = append(p.rewrite, def)
		}
	}
	have := contents{}
	for name, els := range l.Elements {
		have[name] = byKey(els)
	}
	p.delta = diff(have, want)
	return p
}

func (p plan) fill(r *Result) {
	r.Created, r.Rebuilt = p.create, p.rebuild
	for _, def := range p.rewrite {
		r.Rewritten = append(r.Rewritten, def.Name)
	}
	r.Added, r.Deleted = count(p.delta.add), count(p.delta.del)
}

// queue queues p on c as one batch.
func (p plan) queue(c *nfsock.Conn) error {
	if p.rebuild {
		c.DelTable(table)
	}
	if p.create || p.rebuild {
		// The helper objects first: the layout's rules name them.
		c.AddTable(table)
		queueHelperObjects(c)
		if err := c.Create(table, layoutSets, layoutChains); err != nil {
			return err
		}
	} else if len(p.rewrite) > 0 {
		queueHelperObjects(c)
	}
	for _, def := range p.rewrite {
		c.FlushChain(def.NFT(table))
		c.AddRules(table, def)
	}
	for _, def := range layoutSets {
		if err := c.DeleteElements(def.NFT(table), p.delta.del[def.Name]); err != nil {
			return err
		}
	}
	for _, def := range layoutSets {
		if err := c.AddElements(def.NFT(table), p.delta.add[def.Name]); err != nil {
			return err
		}
	}
	return nil
}

// sortedNames returns the keys of m in order, for stable output.
func sortedNames[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}
