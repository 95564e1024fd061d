package agent

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/nsnet/nsnet/internal/model"
)

// TestMemberJoinCostFlat: a port joining a remote group costs the agent
// the same bytes allocated (its members kept, and handed to the firewall's
// spec) whether the group has 100 members or 10,000: the members are kept
// as a persistent set, not a list copied on every change.
func TestMemberJoinCostFlat(t *testing.T) {
	port := func(i int) model.Port {
		return model.Port{ID: fmt.Sprintf("p%06d", i), PortSecurityEnabled: true, SecurityGroups: []string{"sg"},
			FixedIPs: []model.FixedIP{{IPAddress: fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)}}}
	}
	perJoin := func(n int) float64 {
		s := &snapshot{}
		for i := range n {
			s.ports = append(s.ports, port(i))
		}
		var m memberSets
		m.reset(s)
		m.of("sg")
		const joins = 200
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for i := range joins {
			m.update(prev[model.Port]{}, port(n+i), true)
			_ = m.of("sg")
		}
		runtime.ReadMemStats(&after)
		return float64(after.TotalAlloc-before.TotalAlloc) / joins
	}
	small, big := perJoin(100), perJoin(10000)
	t.Logf("bytes allocated per join: %.0f at 100 members, %.0f at 10,000", small, big)
	if big > 2*small+4096 {
		t.Errorf("a join at 10,000 members allocates %.0f bytes, at 100 members %.0f: the cost follows the group's size", big, small)
	}
}
