package nfsock

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

func nv(v uint64) Num { return Num{Lo: v} }

// bx builds a box from lo, hi pairs.
func bx(bounds ...uint64) Box {
	var b Box
	for i := 0; i < len(bounds); i += 2 {
		b = append(b, Span{nv(bounds[i]), nv(bounds[i+1])})
	}
	return b
}

func TestDisjoint(t *testing.T) {
	m255, m65535 := MaxOf(1), MaxOf(2)
	tests := []struct {
		name string
		max  []Num
		in   []Box
		want []Box
	}{
		{"nothing", []Num{m255}, nil, nil},
		{"one", []Num{m255, m65535}, []Box{bx(6, 6, 22, 22)}, []Box{bx(6, 6, 22, 22)}},
		{"the same twice", []Num{m255, m65535}, []Box{bx(6, 6, 22, 22), bx(6, 6, 22, 22)}, []Box{bx(6, 6, 22, 22)}},
		{"one inside another", []Num{m255, m65535, MaxOf(4)},
			[]Box{bx(6, 6, 22, 22, 0, 1<<32-1), bx(6, 6, 22, 22, 10, 10)},
			[]Box{bx(6, 6, 22, 22, 0, 1<<32-1)}},
		{"touching spans join", []Num{m65535}, []Box{bx(6, 9), bx(1, 5)}, []Box{bx(1, 9)}},
		{"overlapping spans join", []Num{m65535}, []Box{bx(1, 5), bx(3, 9), bx(11, 12)}, []Box{bx(1, 9), bx(11, 12)}},
		{"crossing", []Num{m65535, m255},
			[]Box{bx(20, 30, 0, 255), bx(25, 40, 0, 127)},
			[]Box{bx(20, 30, 0, 255), bx(31, 40, 0, 127)}},
		{"a cross", []Num{m255, m255},
			[]Box{bx(10, 20, 0, 255), bx(0, 255, 100, 110)},
			[]Box{bx(0, 9, 100, 110), bx(10, 20, 0, 255), bx(21, 255, 100, 110)}},
		{"halves of one box", []Num{m255, m65535},
			[]Box{bx(0, 127, 80, 80), bx(128, 255, 80, 80)},
			[]Box{bx(0, 255, 80, 80)}},
		{"to the largest value", []Num{m255, m255},
			[]Box{bx(255, 255, 0, 10), bx(0, 254, 0, 10), bx(3, 255, 250, 255)},
			[]Box{bx(0, 2, 0, 10), bx(3, 255, 0, 10), bx(3, 255, 250, 255)}},
		{"any protocol beside TCP to one port", []Num{m255, m65535},
			[]Box{bx(0, 255, 0, 65535), bx(6, 6, 22, 22)},
			[]Box{bx(0, 255, 0, 65535)}},
	}
	for _, tt := range tests {
		if got := Disjoint(tt.in, tt.max); !slices.EqualFunc(got, tt.want, slices.Equal) {
			t.Errorf("%s: Disjoint(%v) = %v, want %v", tt.name, tt.in, got, tt.want)
		}
	}
}

// TestDisjointRandom checks disjoint against the definition on random
// boxes in small fields, point by point: a point is in the result iff it
// is in one of the boxes, in exactly one box of the result; the result of
// the result is itself, and the union cut otherwise (shuffled, with pieces
// of the result added) gives the same result.
func TestDisjointRandom(t *testing.T) {
	for seed := uint64(1); seed <= 2000; seed++ {
		r := rand.New(rand.NewPCG(seed, 0))
		fields := 1 + r.IntN(3)
		max := make([]Num, fields)
		for i := range max {
			max[i] = nv(uint64(1<<(1+r.IntN(4)) - 1)) // 1, 3, 7 or 15
		}
		in := make([]Box, r.IntN(9))
		for i := range in {
			in[i] = make(Box, fields)
			for f := range fields {
				a, b := uint64(r.IntN(int(max[f].Lo)+1)), uint64(r.IntN(int(max[f].Lo)+1))
				in[i][f] = Span{nv(min(a, b)), nv(a + b - min(a, b))}
			}
		}
		out := Disjoint(in, max)
		if err := sameKeys(in, out, max); err != nil {
			t.Fatalf("seed %d: Disjoint(%v) = %v: %v", seed, in, out, err)
		}
		if again := Disjoint(out, max); !slices.EqualFunc(again, out, slices.Equal) {
			t.Fatalf("seed %d: disjoint of its own result %v is %v", seed, out, again)
		}
		other := append(slices.Clone(in), out[:r.IntN(len(out)+1)]...)
		r.Shuffle(len(other), func(i, j int) { other[i], other[j] = other[j], other[i] })
		if got := Disjoint(other, max); !slices.EqualFunc(got, out, slices.Equal) {
			t.Fatalf("seed %d: the same union given as %v gives %v, not %v", seed, other, got, out)
		}
	}
}

// checkPoint: point is in one box of out if it is in a box of in, else in
// none.
func checkPoint(in, out []Box, point []Num) error {
	want := slices.ContainsFunc(in, func(b Box) bool { return b.Contains(point) })
	holders := 0
	for _, b := range out {
		if b.Contains(point) {
			holders++
		}
	}
	if holders > 1 || (holders == 1) != want {
		return fmt.Errorf("point %v: in %d boxes of the result, in the given boxes %v", point, holders, want)
	}
	return nil
}

// sameKeys checks every point of the fields.
func sameKeys(in, out []Box, max []Num) error {
	point := make([]Num, len(max))
	var walk func(f int) error
	walk = func(f int) error {
		if f == len(max) {
			return checkPoint(in, out, point)
		}
		for v := uint64(0); v <= max[f].Lo; v++ {
			point[f] = nv(v)
			if err := walk(f + 1); err != nil {
				return err
			}
		}
		return nil
	}
	return walk(0)
}

// TestDisjointWideFields: fields as wide as the rules' (protocol, port,
// IPv6 address), with boxes reaching the largest address; points at and
// around every bound of the boxes.
func TestDisjointWideFields(t *testing.T) {
	max := []Num{MaxOf(1), MaxOf(2), MaxOf(16)}
	for seed := uint64(1); seed <= 300; seed++ {
		r := rand.New(rand.NewPCG(seed, 1))
		pick := func(f int) Num {
			switch r.IntN(4) {
			case 0:
				return Num{}
			case 1:
				return max[f]
			}
			if f == 2 {
				return Num{Hi: ^uint64(0), Lo: r.Uint64() % 8} // near the top
			}
			return nv(r.Uint64() % (max[f].Lo + 1))
		}
		in := make([]Box, 1+r.IntN(6))
		for i := range in {
			in[i] = make(Box, 3)
			for f := range 3 {
				a, b := pick(f), pick(f)
				if a.Cmp(b) > 0 {
					a, b = b, a
				}
				in[i][f] = Span{a, b}
			}
		}
		out := Disjoint(in, max)
		// Bounds and their neighbours, per field.
		var probes [3][]Num
		for _, b := range append(slices.Clone(in), out...) {
			for f, s := range b {
				probes[f] = append(probes[f], s.Lo, s.Hi)
				if s.Lo != (Num{}) {
					probes[f] = append(probes[f], s.Lo.prev())
				}
				if s.Hi != max[f] {
					probes[f] = append(probes[f], s.Hi.next())
				}
			}
		}
		for f := range probes {
			slices.SortFunc(probes[f], Num.Cmp)
			probes[f] = slices.Compact(probes[f])
		}
		for _, p0 := range probes[0] {
			for _, p1 := range probes[1] {
				for _, p2 := range probes[2] {
					if err := checkPoint(in, out, []Num{p0, p1, p2}); err != nil {
						t.Fatalf("seed %d: Disjoint(%v) = %v: %v", seed, in, out, err)
					}
				}
			}
		}
	}
}
