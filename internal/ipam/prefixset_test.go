package ipam

import (
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
