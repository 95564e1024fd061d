package pmap

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestDiffKeys: the keys one map has and another lacks, both ways, for
// versions of one map apart by random changes (sharing most nodes), for
// maps built apart with From (sharing none), and for a map and the empty
// one; each key named once.
func TestDiffKeys(t *testing.T) {
	diff := func(old, next Map[int, int]) (gone, came []int) {
		DiffKeys(old, next, func(k int) { gone = append(gone, k) }, func(k int) { came = append(came, k) })
		slices.Sort(gone)
		slices.Sort(came)
		return gone, came
	}
	want := func(old, next map[int]int) (gone, came []int) {
		for k := range old {
			if _, ok := next[k]; !ok {
				gone = append(gone, k)
			}
		}
		for k := range next {
			if _, ok := old[k]; !ok {
				came = append(came, k)
			}
		}
		slices.Sort(gone)
		slices.Sort(came)
		return gone, came
	}
	for _, pool := range []int{2, 50, 5000} {
		t.Run(fmt.Sprint(pool), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(pool), 3))
			var m Map[int, int]
			ref := map[int]int{}
			for step := range 300 {
				old, oldRef := m, maps.Clone(ref)
				for range 1 + rng.IntN(4) {
					k := rng.IntN(pool)
					if rng.IntN(3) == 0 {
						m = m.Delete(k)
						delete(ref, k)
					} else {
						// A value changing alone is no difference.
						m = m.Set(k, step)
						ref[k] = step
					}
				}
				wantGone, wantCame := want(oldRef, ref)
				for _, tt := range []struct {
					name      string
					old, next Map[int, int]
				}{
					{"derived", old, m},
					{"built apart", From(oldRef), m},
				} {
					gone, came := diff(tt.old, tt.next)
					if !slices.Equal(gone, wantGone) || !slices.Equal(came, wantCame) {
						t.Fatalf("step %d, %s: gone %v came %v, want %v and %v", step, tt.name, gone, came, wantGone, wantCame)
					}
					came, gone = diff(tt.next, tt.old)
					if !slices.Equal(gone, wantGone) || !slices.Equal(came, wantCame) {
						t.Fatalf("step %d, %s, reversed: gone %v came %v, want %v and %v", step, tt.name, gone, came, wantGone, wantCame)
					}
				}
			}
			gone, came := diff(m, Map[int, int]{})
			if wantGone, _ := want(ref, nil); len(came) > 0 || !slices.Equal(gone, wantGone) {
				t.Fatalf("to the empty map: gone %v came %v", gone, came)
			}
		})
	}
}

// TestDiffKeysCollisions: keys of one whole hash, compared in their
// collision nodes.
func TestDiffKeysCollisions(t *testing.T) {
	h := hashOf("a")
	var a Map[string, int]
	for i, k := range []string{"a", "b", "c"} {
		a.root, _ = set(a.root, 0, entry[string, int]{hash: h, key: k, val: i})
		a.n++
	}
	root, _ := del(a.root, 0, h, "b")
	b := Map[string, int]{root: root, n: 2}
	b.root, _ = set(b.root, 0, entry[string, int]{hash: h, key: "d", val: 9})
	var gone, came []string
	DiffKeys(a, b, func(k string) { gone = append(gone, k) }, func(k string) { came = append(came, k) })
	if !slices.Equal(gone, []string{"b"}) || !slices.Equal(came, []string{"d"}) {
		t.Errorf("gone %v came %v, want [b] and [d]", gone, came)
	}
}
