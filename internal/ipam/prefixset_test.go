package ipam

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
)

func prefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

func TestPrefixSetCompacts(t *testing.T) {
	for _, tc := range []struct {
		name     string
		in, want []string
	}{
		{"disjoint stay apart, sorted", []string{"10.11.15.0/24", "10.11.12.0/24"}, []string{"10.11.12.0/24", "10.11.15.0/24"}},
		{"contained one is absorbed", []string{"10.10.10.0/24", "10.10.0.0/16"}, []string{"10.10.0.0/16"}},
		{"adjacent halves merge", []string{"10.0.0.0/25", "10.0.0.128/25"}, []string{"10.0.0.0/24"}},
		{"unaligned union splits", []string{"10.0.1.0/24", "10.0.2.0/24"}, []string{"10.0.1.0/24", "10.0.2.0/24"}},
		{"three into two", []string{"10.0.0.0/24", "10.0.1.0/24", "10.0.2.0/24"}, []string{"10.0.0.0/23", "10.0.2.0/24"}},
		{"ipv6 overlap", []string{"2001:db8:1234::/48", "2001:db8:1234:1111::/64"}, []string{"2001:db8:1234::/48"}},
		{"whole ipv4 space", []string{"0.0.0.0/1", "128.0.0.0/1"}, []string{"0.0.0.0/0"}},
		{"last address of the family", []string{"255.255.255.255/32", "255.255.255.254/32"}, []string{"255.255.255.254/31"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := NewPrefixSet(prefixes(tc.in...)...).Prefixes()
			if !slices.Equal(got, prefixes(tc.want...)) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestPrefixSetSubtractCoversOverlaps(t *testing.T) {
	set := NewPrefixSet(prefixes("192.168.1.0/24", "192.168.2.0/24")...)
	got := set.Subtract(NewPrefixSet(prefixes("192.168.2.0/24", "192.168.1.64/26")...)).Prefixes()
	if want := prefixes("192.168.1.0/26", "192.168.1.128/25"); !slices.Equal(got, want) {
		t.Errorf("subtract: got %v, want %v", got, want)
	}
	small := NewPrefixSet(prefixes("192.168.1.0/26")...)
	if !set.Covers(small) || small.Covers(set) {
		t.Errorf("covers is wrong")
	}
	if !set.Overlaps(small) || set.Overlaps(NewPrefixSet(prefixes("10.0.0.0/8")...)) {
		t.Errorf("overlaps is wrong")
	}
}

func TestAllocatePrefix(t *testing.T) {
	for _, tc := range []struct {
		name       string
		pool, used []string
		bits       int
		want       string // "" for none
	}{
		{"first of an empty pool", []string{"10.11.12.0/24"}, nil, 29, "10.11.12.0/29"},
		{"next after one taken", []string{"10.11.12.0/24"}, []string{"10.11.12.0/29"}, 29, "10.11.12.8/29"},
		{"smallest block first", []string{"10.0.0.0/16", "192.168.0.0/28"}, nil, 28, "192.168.0.0/28"},
		{"a hole is reused", []string{"10.0.0.0/24"}, []string{"10.0.0.0/26", "10.0.0.128/26"}, 26, "10.0.0.64/26"},
		{"too big for any block", []string{"10.0.0.0/24"}, nil, 23, ""},
		{"pool full", []string{"10.0.0.0/30"}, []string{"10.0.0.0/30"}, 30, ""},
		{"ipv6", []string{"2001:db8:3::/48"}, []string{"2001:db8:3::/64"}, 64, "2001:db8:3:1::/64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := AllocatePrefix(NewPrefixSet(prefixes(tc.pool...)...), NewPrefixSet(prefixes(tc.used...)...), tc.bits)
			switch {
			case tc.want == "" && ok:
				t.Errorf("got %v, want none", got)
			case tc.want != "" && got != netip.MustParsePrefix(tc.want):
				t.Errorf("got %v (%v), want %s", got, ok, tc.want)
			}
		})
	}
}

// TestPrefixSetAgainstBitmap checks union, difference, compaction and
// allocation against a bitmap of the 256 addresses of 10.0.0.0/24, for
// random sets of prefixes inside it (seeded: the same cases every run).
func TestPrefixSetAgainstBitmap(t *testing.T) {
	rng := rand.New(rand.NewPCG(14, 14))
	randomPrefixes := func() ([]netip.Prefix, [256]bool) {
		var ps []netip.Prefix
		var bits [256]bool
		for range rng.IntN(6) {
			l := 24 + rng.IntN(9)
			p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(rng.IntN(256))}), l).Masked()
			ps = append(ps, p)
			start, size := int(p.Addr().As4()[3]), 1<<(32-l)
			for i := start; i < start+size; i++ {
				bits[i] = true
			}
		}
		return ps, bits
	}
	covered := func(ps []netip.Prefix) (out [256]bool) {
		for _, p := range ps {
			start, size := int(p.Addr().As4()[3]), 1<<(32-p.Bits())
			for i := start; i < start+size; i++ {
				if out[i] {
					t.Fatalf("%v: %s overlaps another prefix", ps, p)
				}
				out[i] = true
			}
		}
		return out
	}
	for range 500 {
		a, aBits := randomPrefixes()
		b, bBits := randomPrefixes()
		sa, sb := NewPrefixSet(a...), NewPrefixSet(b...)
		var want [256]bool
		for i := range want {
			want[i] = aBits[i] && !bBits[i]
		}
		free := sa.Subtract(sb).Prefixes()
		if got := covered(free); got != want {
			t.Fatalf("%v − %v = %v: wrong addresses", a, b, free)
		}
		if got := covered(sa.Prefixes()); got != aBits {
			t.Fatalf("%v compacts to %v: wrong addresses", a, sa.Prefixes())
		}
		// Compact: sorted, and no two prefixes are the halves of one.
		ps := sa.Prefixes()
		for i := 1; i < len(ps); i++ {
			prev, cur := ps[i-1], ps[i]
			if !prev.Addr().Less(cur.Addr()) {
				t.Fatalf("%v: not in address order", ps)
			}
			if prev.Bits() == cur.Bits() && prev.Bits() > 0 {
				parent := netip.PrefixFrom(prev.Addr(), prev.Bits()-1).Masked()
				if parent.Contains(cur.Addr()) && parent.Addr() == prev.Addr() {
					t.Fatalf("%v: %s and %s should merge", ps, prev, cur)
				}
			}
		}
		overlap, covers := false, true
		for i := range aBits {
			overlap = overlap || aBits[i] && bBits[i]
			covers = covers && (!bBits[i] || aBits[i])
		}
		if sa.Overlaps(sb) != overlap || sa.Covers(sb) != covers {
			t.Fatalf("%v, %v: overlaps/covers wrong", a, b)
		}
		// Allocation: a free, aligned block when one exists, none otherwise.
		l := 24 + rng.IntN(9)
		got, ok := AllocatePrefix(sa, sb, l)
		size := 1 << (32 - l)
		exists := false
		for start := 0; start < 256 && !exists; start += size {
			exists = !slices.Contains(want[start:start+size], false)
		}
		if ok != exists {
			t.Fatalf("allocate /%d from %v − %v: %v %v, a free block exists: %v", l, a, b, got, ok, exists)
		}
		if ok {
			start := int(got.Addr().As4()[3])
			if got.Bits() != l || got.Masked() != got || slices.Contains(want[start:start+size], false) {
				t.Fatalf("allocate /%d from %v − %v: %v is not free", l, a, b, got)
			}
		}
	}
}
