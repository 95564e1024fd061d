package firewall

import (
	"cmp"
	"encoding/binary"
	"slices"
)

// The kernel's interval sets (pipapo: every set here with a range is a
// concatenation) refuse an element that overlaps one they hold, and a
// hash set keeps one copy of a key added twice — so that the tables would
// hold less than nsnet listed, and never match it. Rules, address pairs
// and remote groups overlap all the time (a port in two groups with the
// same rules, a rule for any source beside the same rule for a group's
// members, a pair inside another). So each set's elements are computed as
// the union of what the spec asks, cut into disjoint pieces in one
// canonical way: the same union always gives the same elements, whatever
// rules, in whatever order, made it.

// num is an unsigned number of up to 128 bits: a field of a set's key
// (protocol, port, address) read big endian.
type num struct{ hi, lo uint64 }

func numOf(b []byte) num {
	var full [16]byte
	copy(full[16-len(b):], b)
	return num{binary.BigEndian.Uint64(full[:8]), binary.BigEndian.Uint64(full[8:])}
}

// bytes is n as a big-endian field of width bytes.
func (n num) bytes(width int) []byte {
	var full [16]byte
	binary.BigEndian.PutUint64(full[:8], n.hi)
	binary.BigEndian.PutUint64(full[8:], n.lo)
	return slices.Clone(full[16-width:])
}

func (n num) cmp(m num) int {
	if c := cmp.Compare(n.hi, m.hi); c != 0 {
		return c
	}
	return cmp.Compare(n.lo, m.lo)
}

// next is n+1; callers never ask past a field's largest value.
func (n num) next() num {
	n.lo++
	if n.lo == 0 {
		n.hi++
	}
	return n
}

func (n num) prev() num {
	if n.lo == 0 {
		n.hi--
	}
	n.lo--
	return n
}

// maxOf is the largest value of a field of width bytes.
func maxOf(width int) num {
	return numOf(slices.Repeat([]byte{0xff}, width))
}

// span is the closed interval lo..hi of one field.
type span struct{ lo, hi num }

func (s span) contains(n num) bool { return s.lo.cmp(n) <= 0 && n.cmp(s.hi) <= 0 }

// box is a set of keys: those whose every field lies in its span.
type box []span

func (b box) contains(point []num) bool {
	for i, s := range b {
		if !s.contains(point[i]) {
			return false
		}
	}
	return true
}

// disjoint returns boxes that together hold exactly the keys the given
// boxes hold, and pairwise share none. max is the largest value of each
// field. The result is canonical — a function of the union alone, not of
// the boxes that made it — and sorted: the first field is cut where the
// set of boxes covering it changes, neighbouring pieces whose remaining
// fields cover the same keys are joined, and each piece's remaining
// fields are cut the same way; the last field is the union of its spans,
// touching spans joined. An element per box of the result.
func disjoint(boxes []box, max []num) []box {
	if len(boxes) == 0 {
		return nil
	}
	if len(max) == 1 {
		return union(boxes, max[0])
	}
	// Where the boxes covering the first field may change: at each start,
	// and after each end.
	cuts := make([]num, 0, 2*len(boxes))
	for _, b := range boxes {
		cuts = append(cuts, b[0].lo)
		if b[0].hi != max[0] {
			cuts = append(cuts, b[0].hi.next())
		}
	}
	slices.SortFunc(cuts, num.cmp)
	cuts = slices.Compact(cuts)
	var out []box
	var run span
	var runRest []box // the remaining fields of run; nil: no run open
	flush := func() {
		for _, r := range runRest {
			out = append(out, append(box{run}, r...))
		}
		runRest = nil
	}
	for i, c := range cuts {
		piece := span{c, max[0]}
		if i+1 < len(cuts) {
			piece.hi = cuts[i+1].prev()
		}
		var rest []box
		for _, b := range boxes {
			if b[0].contains(c) {
				rest = append(rest, b[1:])
			}
		}
		sub := disjoint(rest, max[1:])
		if runRest != nil && slices.EqualFunc(sub, runRest, slices.Equal) {
			run.hi = piece.hi // pieces follow one another: one run
			continue
		}
		flush()
		run, runRest = piece, sub
	}
	flush()
	return out
}

// union is the one-field case of disjoint: the spans sorted, overlapping
// and touching ones joined.
func union(boxes []box, max num) []box {
	spans := make([]span, 0, len(boxes))
	for _, b := range boxes {
		spans = append(spans, b[0])
	}
	slices.SortFunc(spans, func(a, b span) int { return a.lo.cmp(b.lo) })
	var out []box
	cur := spans[0]
	for _, s := range spans[1:] {
		if cur.hi == max || s.lo.cmp(cur.hi.next()) <= 0 {
			if s.hi.cmp(cur.hi) > 0 {
				cur.hi = s.hi
			}
			continue
		}
		out = append(out, box{cur})
		cur = s
	}
	return append(out, box{cur})
}
