package firewall

import (
	"fmt"
	"iter"
	"net/netip"
	"slices"

	"github.com/nsnet/nsnet/internal/pmap"
)

// Members are a remote group's members (Spec.Groups): the addresses and
// prefixes they may send from, masked, each once, both families mixed.
//
// A Members is immutable: With and Without return a new one that shares
// all but one path of nodes with the old (a persistent hash set, see
// internal/pmap). The agent keeps each group's members from one change to
// the next at the cost of the change, and the firewall, given the members
// it applied and the next ones, finds the members that came and went by
// walking only the nodes the two do not share: a member joining a group of
// 10,000 costs neither side a copy or a walk of the 10,000.
//
// The zero Members is empty and ready to use.
type Members struct {
	set pmap.Map[netip.Prefix, struct{}]
	// invalid counts the members that are not prefixes, which Validate
	// refuses (kept here so that it need not look at every member).
	invalid int
}

// MembersOf is the members ps, built at once (not a path copy each).
func MembersOf(ps ...netip.Prefix) Members {
	src := make(map[netip.Prefix]struct{}, len(ps))
	for _, p := range ps {
		src[p.Masked()] = struct{}{}
	}
	m := Members{set: pmap.From(src)}
	if _, ok := src[netip.Prefix{}]; ok {
		m.invalid = 1
	}
	return m
}

// With is m with p (masked).
func (m Members) With(p netip.Prefix) Members {
	p = p.Masked()
	n := m.set.Len()
	m.set = m.set.Set(p, struct{}{})
	if !p.IsValid() && m.set.Len() > n {
		m.invalid++
	}
	return m
}

// Without is m without p (masked).
func (m Members) Without(p netip.Prefix) Members {
	p = p.Masked()
	n := m.set.Len()
	m.set = m.set.Delete(p)
	if !p.IsValid() && m.set.Len() < n {
		m.invalid--
	}
	return m
}

// Has reports whether p (masked) is a member.
func (m Members) Has(p netip.Prefix) bool {
	_, ok := m.set.Get(p.Masked())
	return ok
}

// Len is the number of members.
func (m Members) Len() int { return m.set.Len() }

// All yields every member, in no particular order.
func (m Members) All() iter.Seq[netip.Prefix] {
	return func(yield func(netip.Prefix) bool) {
		for p := range m.set.All() {
			if !yield(p) {
				return
			}
		}
	}
}

// Sorted is every member by address, then length.
func (m Members) Sorted() []netip.Prefix {
	out := make([]netip.Prefix, 0, m.set.Len())
	for p := range m.set.All() {
		out = append(out, p)
	}
	slices.SortFunc(out, comparePrefix)
	return out
}

// Equal reports whether m and o have the same members; versions of one
// Members are compared at the cost of what differs between them.
func (m Members) Equal(o Members) bool {
	if m.set.Len() != o.set.Len() {
		return false
	}
	same := true
	differ := func(netip.Prefix) { same = false }
	pmap.DiffKeys(m.set, o.set, differ, differ)
	return same
}

// String lists the members in order, for logs and test failures.
func (m Members) String() string {
	return fmt.Sprint(m.Sorted())
}

// memberChanges are the members old has and next lacks, and those next
// has and old lacks, each in canonical order (by address, then length).
// When next was made from old (or old from next) by a few changes, the
// two share all but a few paths of nodes and the comparison costs the
// changes: a group of 10,000 members that gains one is not walked.
func memberChanges(old, next Members) (lost, gained []netip.Prefix) {
	pmap.DiffKeys(old.set, next.set,
		func(p netip.Prefix) { lost = append(lost, p) },
		func(p netip.Prefix) { gained = append(gained, p) })
	slices.SortFunc(lost, comparePrefix)
	slices.SortFunc(gained, comparePrefix)
	return lost, gained
}
