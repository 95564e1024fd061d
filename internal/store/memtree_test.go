package store

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestMemTreeMatchesAMap: random puts and removes on a memTree read like
// the same on a map, in Get, in ordered ranges and after stops; and every
// older tree still reads as it did when it was the newest.
func TestMemTreeMatchesAMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var tree *memTree
	ref := map[string]string{}
	type version struct {
		tree *memTree
		ref  map[string]string
	}
	var versions []version
	for step := range 3000 {
		id := fmt.Sprintf("k%03d", rng.IntN(300))
		if rng.IntN(3) == 0 {
			tree = tree.remove(id)
			delete(ref, id)
		} else {
			v := fmt.Sprint(step)
			tree = tree.put(id, []byte(v))
			ref[id] = v
		}
		if step%100 == 0 {
			versions = append(versions, version{tree, maps.Clone(ref)})
		}
	}
	versions = append(versions, version{tree, ref})
	for i, v := range versions {
		checkTree(t, fmt.Sprintf("version %d", i), v.tree, v.ref)
	}
}

func checkTree(t *testing.T, name string, tree *memTree, ref map[string]string) {
	t.Helper()
	ids := slices.Sorted(maps.Keys(ref))
	for _, id := range []string{"k000", "k150", "k299", "k3", "a", "z"} {
		raw, ok := tree.get(id)
		if want, wok := ref[id]; ok != wok || string(raw) != want {
			t.Errorf("%s: get(%s) = %q, %v; want %q, %v", name, id, raw, ok, want, wok)
		}
	}
	for _, tc := range []struct{ from, to, stop string }{
		{"", "", ""}, {"k100", "k200", ""}, {"k1", "k2", "k150"}, {"k250", "", ""}, {"", "k050", ""}, {"l", "", ""},
	} {
		var want []string
		for _, id := range ids {
			if id >= tc.from && (tc.to == "" || id < tc.to) {
				want = append(want, id+"="+ref[id])
				if id >= tc.stop && tc.stop != "" {
					break
				}
			}
		}
		var got []string
		tree.ascend(tc.from, tc.to, func(id string, raw []byte) bool {
			got = append(got, id+"="+string(raw))
			return tc.stop == "" || id < tc.stop
		})
		if !slices.Equal(got, want) {
			t.Errorf("%s: ascend(%q, %q) stopping at %q = %v; want %v", name, tc.from, tc.to, tc.stop, got, want)
		}
	}
}
