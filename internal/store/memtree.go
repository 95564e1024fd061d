package store

import "hash/fnv"

// memTree is an immutable ordered map from id to record, the in-memory
// home of a Bolt store's report kinds (see boltReports). A write returns a
// new tree that shares every node off the written path with the old one
// (a persistent treap: O(log n) nodes copied per write), so that a
// snapshot is a root pointer and a reader holding one never sees a later
// write, without copying a kind per commit.
//
// The nil *memTree is the empty tree.
type memTree struct {
	id          string
	raw         []byte
	prio        uint32
	left, right *memTree
}

// treapPrio is a node's heap priority: a hash of its id, so the tree's
// shape depends only on the ids it holds.
func treapPrio(id string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(id))
	return h.Sum32()
}

func (t *memTree) get(id string) ([]byte, bool) {
	for t != nil {
		switch {
		case id < t.id:
			t = t.left
		case id > t.id:
			t = t.right
		default:
			return t.raw, true
		}
	}
	return nil, false
}

// put returns the tree with id set to raw.
func (t *memTree) put(id string, raw []byte) *memTree {
	if t == nil {
		return &memTree{id: id, raw: raw, prio: treapPrio(id)}
	}
	c := *t
	switch {
	case id < t.id:
		c.left = t.left.put(id, raw)
		if c.left.prio > c.prio {
			// Rotate right; c.left is a fresh copy, free to change.
			l := c.left
			c.left, l.right = l.right, &c
			return l
		}
	case id > t.id:
		c.right = t.right.put(id, raw)
		if c.right.prio > c.prio {
			r := c.right
			c.right, r.left = r.left, &c
			return r
		}
	default:
		c.raw = raw
	}
	return &c
}

// remove returns the tree without id.
func (t *memTree) remove(id string) *memTree {
	if t == nil {
		return nil
	}
	switch {
	case id < t.id:
		l := t.left.remove(id)
		if l == t.left {
			return t
		}
		c := *t
		c.left = l
		return &c
	case id > t.id:
		r := t.right.remove(id)
		if r == t.right {
			return t
		}
		c := *t
		c.right = r
		return &c
	default:
		return joinTrees(t.left, t.right)
	}
}

// joinTrees joins two trees whose every id in a is below every id in b.
func joinTrees(a, b *memTree) *memTree {
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	case a.prio > b.prio:
		c := *a
		c.right = joinTrees(a.right, b)
		return &c
	default:
		c := *b
		c.left = joinTrees(a, b.left)
		return &c
	}
}

// ascend calls fn for the ids in [from, to) in order (to == "": no upper
// bound), skipping the subtrees that lie wholly before from. It returns
// false once the walk is over: fn asked to stop, or an id reached to.
func (t *memTree) ascend(from, to string, fn func(id string, raw []byte) bool) bool {
	if t == nil {
		return true
	}
	if from < t.id && !t.left.ascend(from, to, fn) {
		return false
	}
	if to != "" && t.id >= to {
		return false
	}
	if t.id >= from && !fn(t.id, t.raw) {
		return false
	}
	return t.right.ascend(from, to, fn)
}
