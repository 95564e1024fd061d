package nfsock

import (
	"cmp"
	"encoding/binary"
	"net/netip"
	"slices"
)

// The kernel's interval sets (pipapo, for concatenations) refuse an
// element that overlaps one they hold, and a hash set keeps one copy of a
// key added twice — so that a table would hold less than its owner
// listed, and never match it. What a set should hold is therefore computed
// as the union of what is asked, cut by Disjoint into disjoint pieces in
// one canonical way: the same union always gives the same elements,
// whatever asked for it, in whatever order.

// Num is an unsigned number of up to 128 bits: a field of a set's key
// (protocol, port, address) read big endian.
type Num struct{ Hi, Lo uint64 }

// NumOf reads a big-endian field of up to 16 bytes.
func NumOf(b []byte) Num {
	var full [16]byte
	copy(full[16-len(b):], b)
	return Num{binary.BigEndian.Uint64(full[:8]), binary.BigEndian.Uint64(full[8:])}
}

// Bytes is n as a big-endian field of width bytes.
func (n Num) Bytes(width int) []byte {
	var full [16]byte
	binary.BigEndian.PutUint64(full[:8], n.Hi)
	binary.BigEndian.PutUint64(full[8:], n.Lo)
	return slices.Clone(full[16-width:])
}

// Cmp compares n and m as cmp.Compare does.
func (n Num) Cmp(m Num) int {
	if c := cmp.Compare(n.Hi, m.Hi); c != 0 {
		return c
	}
	return cmp.Compare(n.Lo, m.Lo)
}

// next is n+1; callers never ask past a field's largest value.
func (n Num) next() Num {
	n.Lo++
	if n.Lo == 0 {
		n.Hi++
	}
	return n
}

func (n Num) prev() Num {
	if n.Lo == 0 {
		n.Hi--
	}
	n.Lo--
	return n
}

// MaxOf is the largest value of a field of width bytes.
func MaxOf(width int) Num {
	return NumOf(slices.Repeat([]byte{0xff}, width))
}

// Span is the closed interval Lo..Hi of one field.
type Span struct{ Lo, Hi Num }

// Contains reports whether n lies in s.
func (s Span) Contains(n Num) bool { return s.Lo.Cmp(n) <= 0 && n.Cmp(s.Hi) <= 0 }

// Box is a set of keys: those whose every field lies in its span.
type Box []Span

// Contains reports whether every field of point lies in b.
func (b Box) Contains(point []Num) bool {
	for i, s := range b {
		if !s.Contains(point[i]) {
			return false
		}
	}
	return true
}

// Disjoint returns boxes that together hold exactly the keys the given
// boxes hold, and pairwise share none. max is the largest value of each
// field. The result is canonical — a function of the union alone, not of
// the boxes that made it — and sorted: the first field is cut where the
// set of boxes covering it changes, neighbouring pieces whose remaining
// fields cover the same keys are joined, and each piece's remaining
// fields are cut the same way; the last field is the union of its spans,
// touching spans joined. An element per box of the result.
func Disjoint(boxes []Box, max []Num) []Box {
	if len(boxes) == 0 {
		return nil
	}
	if len(max) == 1 {
		return union(boxes, max[0])
	}
	// Where the boxes covering the first field may change: at each start,
	// and after each end.
	cuts := make([]Num, 0, 2*len(boxes))
	for _, b := range boxes {
		cuts = append(cuts, b[0].Lo)
		if b[0].Hi != max[0] {
			cuts = append(cuts, b[0].Hi.next())
		}
	}
	slices.SortFunc(cuts, Num.Cmp)
	cuts = slices.Compact(cuts)
	var out []Box
	var run Span
	var runRest []Box // the remaining fields of run; nil: no run open
	flush := func() {
		for _, r := range runRest {
			out = append(out, append(Box{run}, r...))
		}
		runRest = nil
	}
	for i, c := range cuts {
		piece := Span{c, max[0]}
		if i+1 < len(cuts) {
			piece.Hi = cuts[i+1].prev()
		}
		var rest []Box
		for _, b := range boxes {
			if b[0].Contains(c) {
				rest = append(rest, b[1:])
			}
		}
		sub := Disjoint(rest, max[1:])
		if runRest != nil && slices.EqualFunc(sub, runRest, slices.Equal) {
			run.Hi = piece.Hi // pieces follow one another: one run
			continue
		}
		flush()
		run, runRest = piece, sub
	}
	flush()
	return out
}

// union is the one-field case of Disjoint: the spans sorted, overlapping
// and touching ones joined.
func union(boxes []Box, max Num) []Box {
	spans := make([]Span, 0, len(boxes))
	for _, b := range boxes {
		spans = append(spans, b[0])
	}
	slices.SortFunc(spans, func(a, b Span) int { return a.Lo.Cmp(b.Lo) })
	var out []Box
	cur := spans[0]
	for _, s := range spans[1:] {
		if cur.Hi == max || s.Lo.Cmp(cur.Hi.next()) <= 0 {
			if s.Hi.Cmp(cur.Hi) > 0 {
				cur.Hi = s.Hi
			}
			continue
		}
		out = append(out, Box{cur})
		cur = s
	}
	return append(out, Box{cur})
}

// PrefixSpan is the span of the addresses of p, as a field of 4 or 16
// bytes.
func PrefixSpan(p netip.Prefix) Span {
	p = p.Masked()
	last := p.Addr().AsSlice()
	for i := p.Bits(); i < len(last)*8; i++ {
		last[i/8] |= 0x80 >> (i % 8)
	}
	return Span{NumOf(p.Addr().AsSlice()), NumOf(last)}
}
