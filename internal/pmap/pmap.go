// Package pmap is an immutable (persistent) hash map: a change returns a
// new map sharing all but the changed path with the old one, which stays
// as it was. The agent keeps the configurations the DHCP, DHCPv6 and DNS
// servers read in them: a port created at 10,000 ports in a network
// copies a few nodes of at most 32 entries, not every entry, and a server
// reading the old map concurrently never sees a half-applied change.
//
// It is a hash array mapped trie: 5 bits of a key's hash per level, a
// bitmap of the children present per node, and a list for keys whose
// 64-bit hashes are equal. Its shape is a function of its keys (a node
// exists where two keys share a hash prefix), so that two maps with the
// same entries are reflect.DeepEqual whatever order they were built in,
// but for the order of keys whose whole hashes collide.
//
// It owns nothing else and must not import any other nsnet package.
package pmap

import (
	"hash/maphash"
	"iter"
	"math/bits"
	"slices"
)

// seed is the hash seed of every map of the process: one seed, so that
// maps with the same keys have the same shape.
var seed = maphash.MakeSeed()

const (
	bitsPerLevel = 5
	fanout       = 1 << bitsPerLevel
)

// Map is an immutable map from K to V. The zero Map is empty and ready to
// use. Values are stored as given: a V holding slices or pointers must not
// be modified once set.
type Map[K comparable, V any] struct {
	root *node[K, V]
	n    int
}

type node[K comparable, V any] struct {
	// bitmap has bit i set when the child for hash chunk i is present;
	// entries holds them in chunk order. A collision node (below the
	// last chunk) has no bitmap, only entries of one hash.
	bitmap  uint32
	entries []entry[K, V]
}

// entry is a key and its value (sub nil), or a subtree.
type entry[K comparable, V any] struct {
	hash uint64
	key  K
	val  V
	sub  *node[K, V]
}

func hashOf[K comparable](k K) uint64 { return maphash.Comparable(seed, k) }

// Len is the number of entries.
func (m Map[K, V]) Len() int { return m.n }

// Get is the value of k, and whether m has k.
func (m Map[K, V]) Get(k K) (V, bool) {
	h := hashOf(k)
	n := m.root
	for shift := uint(0); n != nil; shift += bitsPerLevel {
		if shift >= 64 {
			for _, e := range n.entries {
				if e.key == k {
					return e.val, true
				}
			}
			break
		}
		bit := uint32(1) << ((h >> shift) & (fanout - 1))
		if n.bitmap&bit == 0 {
			break
		}
		e := &n.entries[bits.OnesCount32(n.bitmap&(bit-1))]
		if e.sub != nil {
			n = e.sub
			continue
		}
		if e.hash == h && e.key == k {
			return e.val, true
		}
		break
	}
	var zero V
	return zero, false
}

// Set is m with k's value v.
func (m Map[K, V]) Set(k K, v V) Map[K, V] {
	root, added := set(m.root, 0, entry[K, V]{hash: hashOf(k), key: k, val: v})
	if added {
		m.n++
	}
	m.root = root
	return m
}

// Delete is m without k.
func (m Map[K, V]) Delete(k K) Map[K, V] {
	root, removed := del(m.root, 0, hashOf(k), k)
	if removed {
		m.n--
		m.root = root
		if m.n == 0 {
			m.root = nil
		}
	}
	return m
}

// All yields every entry, in an order that depends on the hash seed.
func (m Map[K, V]) All() iter.Seq2[K, V] {
	return func(yield func(K, V) bool) {
		walk(m.root, yield)
	}
}

func walk[K comparable, V any](n *node[K, V], yield func(K, V) bool) bool {
	if n == nil {
		return true
	}
	for i := range n.entries {
		e := &n.entries[i]
		if e.sub != nil {
			if !walk(e.sub, yield) {
				return false
			}
		} else if !yield(e.key, e.val) {
			return false
		}
	}
	return true
}

// Collect is m's entries in a Go map.
func (m Map[K, V]) Collect() map[K]V {
	out := make(map[K]V, m.n)
	for k, v := range m.All() {
		out[k] = v
	}
	return out
}

// From is the map of the entries of src, built in place: a map built
// from many entries does not pay a path copy per entry.
func From[K comparable, V any](src map[K]V) Map[K, V] {
	if len(src) == 0 {
		return Map[K, V]{}
	}
	es := make([]entry[K, V], 0, len(src))
	for k, v := range src {
		es = append(es, entry[K, V]{hash: hashOf(k), key: k, val: v})
	}
	return Map[K, V]{root: build(es, 0), n: len(es)}
}

// build is the node at level shift holding es (two or more entries, or
// the root's one or more), whose hashes agree below shift.
func build[K comparable, V any](es []entry[K, V], shift uint) *node[K, V] {
	if shift >= 64 {
		return &node[K, V]{entries: slices.Clone(es)}
	}
	chunk := func(e entry[K, V]) int { return int((e.hash >> shift) & (fanout - 1)) }
	slices.SortFunc(es, func(a, b entry[K, V]) int { return chunk(a) - chunk(b) })
	n := &node[K, V]{}
	for i := 0; i < len(es); {
		j := i + 1
		for j < len(es) && chunk(es[j]) == chunk(es[i]) {
			j++
		}
		n.bitmap |= 1 << chunk(es[i])
		if j-i == 1 {
			n.entries = append(n.entries, es[i])
		} else {
			n.entries = append(n.entries, entry[K, V]{sub: build(es[i:j], shift+bitsPerLevel)})
		}
		i = j
	}
	return n
}

// set is n with e, copied along its path, and whether e's key is new.
func set[K comparable, V any](n *node[K, V], shift uint, e entry[K, V]) (*node[K, V], bool) {
	if shift >= 64 {
		c := &node[K, V]{entries: slices.Clone(n.entries)}
		for i := range c.entries {
			if c.entries[i].key == e.key {
				c.entries[i] = e
				return c, false
			}
		}
		c.entries = append(c.entries, e)
		return c, true
	}
	if n == nil {
		return &node[K, V]{bitmap: 1 << ((e.hash >> shift) & (fanout - 1)), entries: []entry[K, V]{e}}, true
	}
	bit := uint32(1) << ((e.hash >> shift) & (fanout - 1))
	i := bits.OnesCount32(n.bitmap & (bit - 1))
	if n.bitmap&bit == 0 {
		return &node[K, V]{bitmap: n.bitmap | bit, entries: slices.Insert(slices.Clip(n.entries), i, e)}, true
	}
	c := &node[K, V]{bitmap: n.bitmap, entries: slices.Clone(n.entries)}
	old := c.entries[i]
	switch {
	case old.sub != nil:
		sub, added := set(old.sub, shift+bitsPerLevel, e)
		c.entries[i] = entry[K, V]{sub: sub}
		return c, added
	case old.hash == e.hash && old.key == e.key:
		c.entries[i] = e
		return c, false
	default:
		c.entries[i] = entry[K, V]{sub: pair(old, e, shift+bitsPerLevel)}
		return c, true
	}
}

// pair is the node at level shift holding two entries of different keys.
func pair[K comparable, V any](a, b entry[K, V], shift uint) *node[K, V] {
	return build([]entry[K, V]{a, b}, shift)
}

// del is n without key k (of hash h), copied along its path, and whether
// n had k. A node left with a single entry that is a key is replaced by
// it in its parent, keeping the shape a function of the keys.
func del[K comparable, V any](n *node[K, V], shift uint, h uint64, k K) (*node[K, V], bool) {
	if n == nil {
		return nil, false
	}
	if shift >= 64 {
		i := slices.IndexFunc(n.entries, func(e entry[K, V]) bool { return e.key == k })
		if i < 0 {
			return n, false
		}
		if len(n.entries) == 1 {
			return nil, true
		}
		return &node[K, V]{entries: slices.Delete(slices.Clone(n.entries), i, i+1)}, true
	}
	bit := uint32(1) << ((h >> shift) & (fanout - 1))
	if n.bitmap&bit == 0 {
		return n, false
	}
	i := bits.OnesCount32(n.bitmap & (bit - 1))
	old := n.entries[i]
	var repl *entry[K, V]
	if old.sub != nil {
		sub, removed := del(old.sub, shift+bitsPerLevel, h, k)
		if !removed {
			return n, false
		}
		if sub != nil {
			e := entry[K, V]{sub: sub}
			if len(sub.entries) == 1 && sub.entries[0].sub == nil {
				e = sub.entries[0] // a lone key moves up
			}
			repl = &e
		}
	} else if old.hash != h || old.key != k {
		return n, false
	}
	if repl != nil {
		c := &node[K, V]{bitmap: n.bitmap, entries: slices.Clone(n.entries)}
		c.entries[i] = *repl
		return c, true
	}
	if len(n.entries) == 1 {
		return nil, true
	}
	return &node[K, V]{bitmap: n.bitmap &^ bit, entries: slices.Delete(slices.Clone(n.entries), i, i+1)}, true
}

// DiffKeys calls gone with each key of old that next lacks and came with
// each key of next that old lacks, values aside. The subtrees the two
// maps share — next made from old by changes, or old from next — are
// skipped without a look inside, so that comparing two versions of a map
// of 10,000 keys that differ by one costs a path, not 10,000 lookups.
// Maps built apart (From, or other chains of changes) share nothing and
// are compared entry by entry. The order of the calls depends on the
// hash seed.
func DiffKeys[K comparable, V any](old, next Map[K, V], gone, came func(K)) {
	diffNodes(old.root, next.root, 0, gone, came)
}

func diffNodes[K comparable, V any](a, b *node[K, V], shift uint, gone, came func(K)) {
	switch {
	case a == b:
		return
	case a == nil:
		walkKeys(b, came)
		return
	case b == nil:
		walkKeys(a, gone)
		return
	case shift >= 64:
		// Collision nodes: a few keys of one hash.
		has := func(n *node[K, V], k K) bool {
			return slices.ContainsFunc(n.entries, func(e entry[K, V]) bool { return e.key == k })
		}
		for _, e := range a.entries {
			if !has(b, e.key) {
				gone(e.key)
			}
		}
		for _, e := range b.entries {
			if !has(a, e.key) {
				came(e.key)
			}
		}
		return
	}
	for present := a.bitmap | b.bitmap; present != 0; present &= present - 1 {
		bit := present & -present
		ea, eb := entryAt(a, bit), entryAt(b, bit)
		switch {
		case ea == nil:
			walkEntry(eb, came)
		case eb == nil:
			walkEntry(ea, gone)
		case ea.sub != nil && eb.sub != nil:
			diffNodes(ea.sub, eb.sub, shift+bitsPerLevel, gone, came)
		case ea.sub == nil && eb.sub == nil:
			if ea.hash != eb.hash || ea.key != eb.key {
				gone(ea.key)
				came(eb.key)
			}
		case ea.sub != nil:
			diffLeaf(ea.sub, eb.key, gone, came)
		default:
			diffLeaf(eb.sub, ea.key, came, gone)
		}
	}
}

// diffLeaf compares subtree n of one map with the single key k the other
// holds in its place: every key of n but k is only n's.
func diffLeaf[K comparable, V any](n *node[K, V], k K, onlyN, onlyK func(K)) {
	found := false
	walkKeys(n, func(key K) {
		if key == k {
			found = true
		} else {
			onlyN(key)
		}
	})
	if !found {
		onlyK(k)
	}
}

// entryAt is n's entry for the chunk bit, nil when n has none.
func entryAt[K comparable, V any](n *node[K, V], bit uint32) *entry[K, V] {
	if n.bitmap&bit == 0 {
		return nil
	}
	return &n.entries[bits.OnesCount32(n.bitmap&(bit-1))]
}

func walkEntry[K comparable, V any](e *entry[K, V], f func(K)) {
	if e.sub != nil {
		walkKeys(e.sub, f)
	} else {
		f(e.key)
	}
}

func walkKeys[K comparable, V any](n *node[K, V], f func(K)) {
	walk(n, func(k K, _ V) bool {
		f(k)
		return true
	})
}
