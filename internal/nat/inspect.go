package nat

import (
	"github.com/google/nftables"

	"github.com/nsnet/nsnet/internal/nfsock"
)

// Status is what the live table holds, read from the kernel.
type Status struct {
	// Exists says there is a table at all; nothing else is set if not.
	Exists bool
	// Generation is the namespace's ruleset generation when read.
	Generation uint32
	// Chains are the table's chains, in layout order, then any others.
	Chains []ChainStatus
	// Sets are the table's sets and maps, in layout order, then others.
	Sets []SetStatus
	// Spec is what the elements of the layout's sets implement.
	Spec Spec
	// Undecoded counts elements that implement no spec entry (someone
	// else's, in a set of nsnet's).
	Undecoded int
	// Problems say how the chains and sets differ from the layout; an
	// Apply would rebuild the table. Empty when it is the layout's.
	Problems []string
	// Stale are the chains whose rules differ from the layout; an Apply
	// would rewrite them.
	Stale []string
}

// ChainStatus is one chain.
type ChainStatus struct {
	Name string
	// Hook is "prerouting", "output", … or "" for a regular chain.
	Hook     string
	Priority int32
	Rules    []RuleStatus
}

// RuleStatus is one rule.
type RuleStatus struct {
	Handle  uint64
	Comment string
	// Text is the rule in nft syntax when it is exactly one of the
	// layout's rules, "" when it is not.
	Text string
}

// SetStatus is one set or map.
type SetStatus struct {
	Name     string
	Map      bool
	Interval bool
	Elements int
	// Type is the set's type in nft syntax ("ifname . ipv4_addr :
	// ipv4_addr") when it is the layout's set of that name, "" when not.
	Type string
}

// Elements returns the element count of the named set, or -1 without it.
func (s Status) Elements(set string) int {
	for _, st := range s.Sets {
		if st.Name == set {
			return st.Elements
		}
	}
	return -1
}

// Inspect reads the live table. It changes nothing, and tells what an
// Apply would have to fix.
func (t *Table) Inspect() (Status, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	gen, _, err := t.own.Generation()
	if err != nil {
		return Status{}, err
	}
	c, _ := t.own.Conn()
	l, err := c.Read(table, nil)
	if err != nil {
		return Status{}, t.own.Fail(err)
	}
	st := Status{Generation: gen, Exists: l.Table != nil}
	if !st.Exists {
		return st, nil
	}
	st.Problems = l.Problems(layoutSets, layoutChains)
	seen := map[string]bool{}
	for _, def := range layoutChains {
		if ch, ok := l.Chains[def.Name]; ok {
			st.Chains = append(st.Chains, chainStatus(ch, l.Rules[def.Name]))
			seen[def.Name] = true
			if !l.Current(def) {
				st.Stale = append(st.Stale, def.Name)
			}
		}
	}
	for _, name := range sortedNames(l.Chains) {
		if !seen[name] {
			st.Chains = append(st.Chains, chainStatus(l.Chains[name], l.Rules[name]))
		}
	}
	seen = map[string]bool{}
	for _, def := range layoutSets {
		if s, ok := l.Sets[def.Name]; ok {
			st.Sets = append(st.Sets, setStatus(s, len(l.Elements[def.Name])))
			seen[def.Name] = true
		}
	}
	for _, name := range sortedNames(l.Sets) {
		if !seen[name] {
			st.Sets = append(st.Sets, setStatus(l.Sets[name], len(l.Elements[name])))
		}
	}
	ours := contents{}
	for name := range seen {
		ours[name] = byKey(l.Elements[name])
	}
	st.Spec, st.Undecoded = decode(ours)
	return st, nil
}

func chainStatus(ch *nftables.Chain, rules []*nftables.Rule) ChainStatus {
	cs := ChainStatus{Name: ch.Name}
	if ch.Hooknum != nil {
		cs.Hook = nfsock.HookName(*ch.Hooknum)
	}
	if ch.Priority != nil {
		cs.Priority = int32(*ch.Priority)
	}
	for _, r := range rules {
		comment := nfsock.LiveComment(r)
		cs.Rules = append(cs.Rules, RuleStatus{Handle: r.Handle, Comment: comment,
			Text: layoutRuleText(ch.Name, comment, nfsock.LiveFingerprint(r))})
	}
	return cs
}

func setStatus(s *nftables.Set, n int) SetStatus {
	st := SetStatus{Name: s.Name, Map: s.IsMap, Interval: s.Interval, Elements: n}
	if def, ok := layoutSet(s.Name); ok && def.Matches(s) {
		st.Type = def.Key.Name
		if def.Data != nil {
			st.Type += " : " + def.Data.Name
		}
	}
	return st
}
