package trace

import "fmt"

// NFTEvent is one nftables trace event about the probe: a rule (or a
// chain's policy) that gave it a verdict, in a namespace.
type NFTEvent struct {
	Netns   string `json:"netns"`
	Node    string `json:"node"`
	Family  string `json:"family"`
	Table   string `json:"table"`
	Chain   string `json:"chain"`
	Handle  uint64 `json:"handle,omitempty"`
	Comment string `json:"comment,omitempty"`
	Verdict string `json:"verdict"`
	Policy  bool   `json:"policy,omitempty"` // the chain's policy decided, not a rule
	IIF     string `json:"iif,omitempty"`
	OIF     string `json:"oif,omitempty"`
}

func (e NFTEvent) String() string {
	what := fmt.Sprintf("rule handle %d", e.Handle)
	if e.Policy {
		what = "policy"
	}
	s := fmt.Sprintf("%s %s in %s %s chain %s, %s", e.Verdict, what, e.Family, e.Table, e.Chain, e.Node)
	if e.Comment != "" {
		s += fmt.Sprintf(" (comment %q)", e.Comment)
	}
	return s
}
