package agent

import (
	"testing"

	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/store"
)

// TestComputeDesiredUnscheduledRouter: a router an admin removed from this
// host's L3 agent (l3_agent_scheduler) gets no qrouter namespace and its
// ports no kernel object, while the instances on its networks stay.
func TestComputeDesiredUnscheduledRouter(t *testing.T) {
	topo := newL3Topo()
	for _, tc := range []struct {
		name        string
		unscheduled bool
	}{
		{"hosted", false},
		{"removed from its L3 agent", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := topo.r
			r.L3Unscheduled = tc.unscheduled
			d := computeDesired(snapshotOf(append(topo.all(), r)), "p-", "h")
			_, built := d.routers[r.ID]
			if built == tc.unscheduled {
				t.Fatalf("router spec present = %v, want %v", built, !tc.unscheduled)
			}
			for _, p := range []model.Port{topo.qr1, topo.qr2, topo.qg} {
				if _, ok := d.ports[p.ID]; ok == tc.unscheduled {
					t.Errorf("port %s spec present = %v, want %v", p.ID, ok, !tc.unscheduled)
				}
			}
			st, fixed := d.fixed[key{store.Routers, r.ID}]
			if fixed != tc.unscheduled || tc.unscheduled && st.Status != model.StatusDown {
				t.Errorf("router status %+v (fixed %v)", st, fixed)
			}
			if len(d.instances) == 0 {
				t.Error("the instances went with the router")
			}
		})
	}
}
