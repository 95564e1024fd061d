package agent

import (
	"cmp"
	"slices"
	"strings"
)

// StatusCount is how many objects of one kind ("network", as the API names
// its resources) are in one status.
type StatusCount struct {
	Kind, Status string
	Count        int
}

// StatusCounts counts the objects the agent has looked at by kind and
// status, as the API shows them (a network's includes its DHCP services).
// It is cheap enough to call on every metrics scrape: one walk of the
// agent's status table under its lock, no store read, no kernel read.
func (a *Agent) StatusCounts() []StatusCount {
	a.mu.Lock()
	n := map[StatusCount]int{}
	for k := range a.statuses {
		if k.kind == dhcpKind {
			continue // shown as its network's status
		}
		s := a.statusLocked(k)
		n[StatusCount{Kind: strings.TrimSuffix(string(k.kind), "s"), Status: s.Status}]++
	}
	a.mu.Unlock()
	out := make([]StatusCount, 0, len(n))
	for c, count := range n {
		c.Count = count
		out = append(out, c)
	}
	slices.SortFunc(out, func(x, y StatusCount) int {
		return cmp.Or(cmp.Compare(x.Kind, y.Kind), cmp.Compare(x.Status, y.Status))
	})
	return out
}

// ServerCounts returns the replies of the networks' DHCP servers by message
// type and the answers of their DNS servers by response code, since the
// agent started (servers that went keep their share).
func (a *Agent) ServerCounts() (dhcpReplies, dnsAnswers map[string]uint64) {
	return a.dhcpCounts.Replies(), a.dnsCounts.Answers()
}
