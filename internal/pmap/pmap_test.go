package pmap

import (
	"fmt"
	"maps"
	"math/bits"
	"math/rand/v2"
	"reflect"
	"testing"
)

// TestMatchesGoMap: after every random Set and Delete (on keys from a
// small pool, so that keys are replaced, deleted twice and come back), a
// Map has the entries of a Go map given the same operations; every older
// version keeps the entries it had; and a Map built by From of the same
// entries is the same, shape included (reflect.DeepEqual), whatever order
// they came in.
func TestMatchesGoMap(t *testing.T) {
	for _, pool := range []int{1, 40, 3000} {
		t.Run(fmt.Sprint(pool), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(pool), 7))
			var m Map[string, int]
			want := map[string]int{}
			type version struct {
				m    Map[string, int]
				want map[string]int
			}
			var versions []version
			for step := range 4 * pool {
				k := fmt.Sprintf("k%d", rng.IntN(pool))
				if rng.IntN(3) == 0 {
					m = m.Delete(k)
					delete(want, k)
				} else {
					m = m.Set(k, step)
					want[k] = step
				}
				if m.Len() != len(want) {
					t.Fatalf("step %d: Len %d, want %d", step, m.Len(), len(want))
				}
				if step%max(1, pool/10) == 0 {
					versions = append(versions, version{m, maps.Clone(want)})
				}
			}
			for i, v := range versions {
				if got := v.m.Collect(); !maps.Equal(got, v.want) {
					t.Fatalf("version %d changed: %v, want %v", i, got, v.want)
				}
				for k, w := range v.want {
					if got, ok := v.m.Get(k); !ok || got != w {
						t.Fatalf("version %d: Get(%q) = %d, %v, want %d", i, k, got, ok, w)
					}
				}
				if _, ok := v.m.Get("absent"); ok {
					t.Fatalf("version %d has a key never set", i)
				}
				if built := From(v.want); !reflect.DeepEqual(built, v.m) {
					t.Fatalf("version %d: From of its entries has another shape", i)
				}
			}
		})
	}
}

// TestCollisions: keys whose whole hashes are equal (forced through
// entries that share one hash, below the last level) are kept apart,
// replaced and deleted one by one.
func TestCollisions(t *testing.T) {
	h := hashOf("a")
	var m Map[string, int]
	for i, k := range []string{"a", "b", "c"} {
		m.root, _ = set(m.root, 0, entry[string, int]{hash: h, key: k, val: i})
		m.n++
	}
	get := func(m Map[string, int], k string) (int, bool) {
		n := m.root
		for shift := uint(0); ; shift += bitsPerLevel {
			if n == nil {
				return 0, false
			}
			if shift >= 64 {
				for _, e := range n.entries {
					if e.key == k {
						return e.val, true
					}
				}
				return 0, false
			}
			bit := uint32(1) << ((h >> shift) & (fanout - 1))
			if n.bitmap&bit == 0 {
				return 0, false
			}
			e := n.entries[bits.OnesCount32(n.bitmap&(bit-1))]
			if e.sub == nil {
				if e.key == k {
					return e.val, true
				}
				return 0, false
			}
			n = e.sub
		}
	}
	for i, k := range []string{"a", "b", "c"} {
		if v, ok := get(m, k); !ok || v != i {
			t.Fatalf("%s = %d, %v, want %d", k, v, ok, i)
		}
	}
	root, removed := del(m.root, 0, h, "b")
	if !removed {
		t.Fatal("b not removed")
	}
	m2 := Map[string, int]{root: root, n: 2}
	if _, ok := get(m2, "b"); ok {
		t.Error("b still there")
	}
	if v, ok := get(m2, "c"); !ok || v != 2 {
		t.Errorf("c = %d, %v after b went", v, ok)
	}
	if v, ok := get(m, "b"); !ok || v != 1 {
		t.Errorf("the old version lost b: %d, %v", v, ok)
	}
}

// TestSetCopiesAPath: a Set or Delete in a map of 100,000 entries copies one path
// of nodes (at most 32 entries each, one per level), not the map.
func TestSetCopiesAPath(t *testing.T) {
	src := map[int]int{}
	for i := range 100000 {
		src[i] = i
	}
	m := From(src)
	for name, m2 := range map[string]Map[int, int]{"Set": m.Set(-1, -1), "Delete": m.Delete(5), "replace": m.Set(7, 8)} {
		if copied := entriesCopied(m.root, m2.root); copied > 32*levels {
			t.Errorf("%s copied %d entries, want at most %d (a path)", name, copied, 32*levels)
		}
	}
}

const levels = (64 + bitsPerLevel - 1) / bitsPerLevel

// entriesCopied counts the entries of the nodes of b that a does not
// share.
func entriesCopied[K comparable, V any](a, b *node[K, V]) int {
	shared := map[*node[K, V]]bool{}
	var mark func(n *node[K, V])
	mark = func(n *node[K, V]) {
		shared[n] = true
		for _, e := range n.entries {
			if e.sub != nil {
				mark(e.sub)
			}
		}
	}
	mark(a)
	var count func(n *node[K, V]) int
	count = func(n *node[K, V]) int {
		if shared[n] {
			return 0
		}
		c := len(n.entries)
		for _, e := range n.entries {
			if e.sub != nil {
				c += count(e.sub)
			}
		}
		return c
	}
	return count(b)
}
