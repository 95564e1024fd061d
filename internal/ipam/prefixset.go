package ipam

import (
	"net/netip"
	"slices"
)

// PrefixSet is a set of addresses given as prefixes, kept as sorted,
// disjoint, non-adjacent ranges: the arithmetic of subnet pools (their
// prefixes, what subnets took from them, what is left).
type PrefixSet struct {
	ranges []Range
}

// NewPrefixSet returns the union of prefixes.
func NewPrefixSet(prefixes ...netip.Prefix) PrefixSet {
	rs := make([]Range, 0, len(prefixes))
	for _, p := range prefixes {
		p = p.Masked()
		rs = append(rs, Range{p.Addr(), lastAddr(p)})
	}
	return PrefixSet{normalize(rs)}
}

// normalize sorts rs and merges the ranges that overlap or touch.
func normalize(rs []Range) []Range {
	slices.SortFunc(rs, func(a, b Range) int { return a.Start.Compare(b.Start) })
	var out []Range
	for _, r := range rs {
		if n := len(out); n > 0 {
			last := &out[n-1]
			// Adjacent ranges merge too; the last address of the family
			// has no next one, so nothing can start after it.
			if next := last.End.Next(); !next.IsValid() || r.Start.Compare(next) <= 0 {
				if r.End.Compare(last.End) > 0 {
					last.End = r.End
				}
				continue
			}
		}
		out = append(out, r)
	}
	return out
}

// Union returns the addresses in s or o.
func (s PrefixSet) Union(o PrefixSet) PrefixSet {
	return PrefixSet{normalize(append(slices.Clone(s.ranges), o.ranges...))}
}

// Subtract returns the addresses of s that are not in o.
func (s PrefixSet) Subtract(o PrefixSet) PrefixSet {
	var out []Range
	for _, r := range s.ranges {
		rest := []Range{r}
		for _, cut := range o.ranges {
			var next []Range
			for _, piece := range rest {
				if !piece.Overlaps(cut) {
					next = append(next, piece)
					continue
				}
				if piece.Start.Less(cut.Start) {
					next = append(next, Range{piece.Start, cut.Start.Prev()})
				}
				if cut.End.Less(piece.End) {
					next = append(next, Range{cut.End.Next(), piece.End})
				}
			}
			rest = next
		}
		out = append(out, rest...)
	}
	return PrefixSet{out}
}

// Overlaps reports whether s and o share an address.
func (s PrefixSet) Overlaps(o PrefixSet) bool {
	for _, a := range s.ranges {
		for _, b := range o.ranges {
			if a.Overlaps(b) {
				return true
			}
		}
	}
	return false
}

// Covers reports whether every address of o is in s.
func (s PrefixSet) Covers(o PrefixSet) bool {
	return len(o.Subtract(s).ranges) == 0
}

// Empty reports whether s has no address.
func (s PrefixSet) Empty() bool { return len(s.ranges) == 0 }

// Prefixes returns s as the fewest prefixes, in address order (what
// Neutron's IPSet.compact and iter_cidrs give).
func (s PrefixSet) Prefixes() []netip.Prefix {
	var out []netip.Prefix
	for _, r := range s.ranges {
		start := r.Start
		for {
			// The largest aligned block at start that stays in r.
			var p netip.Prefix
			for bits := 0; bits <= start.BitLen(); bits++ {
				c := netip.PrefixFrom(start, bits)
				if c.Masked().Addr() == start && lastAddr(c).Compare(r.End) <= 0 {
					p = c
					break
				}
			}
			out = append(out, p)
			last := lastAddr(p)
			if last == r.End {
				break
			}
			start = last.Next()
		}
	}
	return out
}

// AllocatePrefix picks a prefix of length bits from what is in pool but
// not in used, as Neutron's subnet allocator does: it tries the free
// blocks from the smallest up (in address order among equals) and takes
// the first prefix of the first block that can hold one, so that large
// blocks stay whole. ok is false when no block can.
func AllocatePrefix(pool, used PrefixSet, bits int) (p netip.Prefix, ok bool) {
	free := pool.Subtract(used).Prefixes()
	slices.SortStableFunc(free, func(a, b netip.Prefix) int { return b.Bits() - a.Bits() })
	for _, f := range free {
		if bits >= f.Bits() && bits <= f.Addr().BitLen() {
			return netip.PrefixFrom(f.Addr(), bits), true
		}
	}
	return netip.Prefix{}, false
}
