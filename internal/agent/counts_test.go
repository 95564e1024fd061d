package agent

import (
	"maps"
	"math/rand/v2"
	"testing"

	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/store"
)

// TestStatusCountsKeptInPlace: whatever order wholes and their parts come,
// change and go in, the counts StatusCounts shows are those of the
// statuses as they stand — a network's DHCP or VXLAN device in ERROR puts
// the network in ERROR, a part without its network counts nothing.
func TestStatusCountsKeptInPlace(t *testing.T) {
	keys := []key{
		{store.Networks, "n1"}, {dhcpKind, "n1"}, {overlayKind, "n1"},
		{store.Networks, "n2"}, {dhcpKind, "n2"},
		{store.Ports, "p1"}, {store.Ports, "p2"}, {store.Instances, "i1"},
	}
	statuses := []string{model.StatusActive, model.StatusDown, model.StatusBuild, model.StatusError}
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 7))
		a := &Agent{statuses: map[key]status{}, counts: map[statusCountKey]int{}}
		for step := range 200 {
			k := keys[rng.IntN(len(keys))]
			if rng.IntN(4) == 0 {
				a.setStatusLocked(k, nil)
			} else {
				a.setStatusLocked(k, &status{Status: statuses[rng.IntN(len(statuses))]})
			}
			if want := referenceCounts(a.statuses); !maps.Equal(a.counts, want) {
				t.Fatalf("seed %d step %d (%v): kept %v, from scratch %v", seed, step, k, a.counts, want)
			}
		}
	}
}

// referenceCounts counts statuses as the API shows them, naively.
func referenceCounts(statuses map[key]status) map[statusCountKey]int {
	names := map[store.Kind]string{store.Networks: "network", store.Ports: "port", store.Instances: "instance"}
	n := map[statusCountKey]int{}
	for k, st := range statuses {
		name, whole := names[k.kind]
		if !whole {
			continue // a network's part
		}
		s := st.Status
		if k.kind == store.Networks {
			for _, part := range []store.Kind{dhcpKind, overlayKind} {
				if statuses[key{part, k.id}].Status == model.StatusError {
					s = model.StatusError
				}
			}
		}
		n[statusCountKey{name, s}]++
	}
	return n
}
