package service

import (
	"net/netip"
	"slices"
	"testing"
)

// TestReadPool checks Neutron's SubnetPoolReader rules: the version and
// compaction of the prefixes, the bounds' defaults, and which bound check
// fails first.
func TestReadPool(t *testing.T) {
	for _, tc := range []struct {
		name               string
		prefixes           []string
		min, max, def      int // -1: not given
		wantMin, wantMax   int
		wantDef, wantVer   int
		wantPrefixes       []string
		wantType, wantText string
	}{
		{name: "ipv4 defaults", prefixes: []string{"10.0.0.0/8"}, min: -1, max: -1, def: -1,
			wantMin: 8, wantMax: 32, wantDef: 8, wantVer: 4, wantPrefixes: []string{"10.0.0.0/8"}},
		{name: "ipv6 defaults", prefixes: []string{"2001:db8::/32"}, min: -1, max: -1, def: -1,
			wantMin: 64, wantMax: 128, wantDef: 64, wantVer: 6, wantPrefixes: []string{"2001:db8::/32"}},
		{name: "default follows the given min", prefixes: []string{"10.0.0.0/8"}, min: 24, max: -1, def: -1,
			wantMin: 24, wantMax: 32, wantDef: 24, wantVer: 4, wantPrefixes: []string{"10.0.0.0/8"}},
		{name: "merged", prefixes: []string{"10.0.1.0/24", "10.0.0.0/24"}, min: -1, max: -1, def: -1,
			wantMin: 8, wantMax: 32, wantDef: 8, wantVer: 4, wantPrefixes: []string{"10.0.0.0/23"}},
		{name: "empty", min: -1, max: -1, def: -1, wantType: "EmptySubnetPoolPrefixList"},
		{name: "mixed", prefixes: []string{"2001:db8::/32", "10.0.0.0/8"}, min: -1, max: -1, def: -1, wantType: "PrefixVersionMismatch"},
		{name: "max beyond the family is found before default", prefixes: []string{"10.0.0.0/8"}, min: 30, max: 40, def: 50,
			wantType: "IllegalSubnetPoolPrefixBounds", wantText: "Illegal prefix bounds: max_prefixlen=40, ip_version_max=32."},
		{name: "min over a defaulted max", prefixes: []string{"10.0.0.0/8"}, min: 33, max: -1, def: -1,
			wantType: "IllegalSubnetPoolPrefixBounds", wantText: "Illegal prefix bounds: min_prefixlen=33, max_prefixlen=32."},
		{name: "ipv6 max", prefixes: []string{"2001:db8::/32"}, min: -1, max: 129, def: -1,
			wantType: "IllegalSubnetPoolPrefixBounds", wantText: "Illegal prefix bounds: max_prefixlen=129, ip_version_max=128."},
		{name: "default over max", prefixes: []string{"10.0.0.0/8"}, min: 16, max: 24, def: 28,
			wantType: "IllegalSubnetPoolPrefixBounds", wantText: "Illegal prefix bounds: default_prefixlen=28, max_prefixlen=24."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var p poolInput
			for _, s := range tc.prefixes {
				p.prefixes = append(p.prefixes, netip.MustParsePrefix(s))
			}
			if tc.min >= 0 {
				p.MinPrefixLen, p.minSet = tc.min, true
			}
			if tc.max >= 0 {
				p.MaxPrefixLen, p.maxSet = tc.max, true
			}
			if tc.def >= 0 {
				p.DefaultPrefixLen, p.defaultSet = tc.def, true
			}
			err := readPool(&p)
			if tc.wantType != "" {
				e := AsError(err)
				if e == nil || e.Type != tc.wantType || tc.wantText != "" && e.Message != tc.wantText {
					t.Fatalf("error %v, want %s %q", err, tc.wantType, tc.wantText)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.MinPrefixLen != tc.wantMin || p.MaxPrefixLen != tc.wantMax || p.DefaultPrefixLen != tc.wantDef ||
				p.IPVersion != tc.wantVer || !slices.Equal(p.Prefixes, tc.wantPrefixes) {
				t.Errorf("got min %d max %d default %d v%d %v", p.MinPrefixLen, p.MaxPrefixLen, p.DefaultPrefixLen, p.IPVersion, p.Prefixes)
			}
		})
	}
}

func TestParsePoolPrefix(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{in: "10.11.12.13/24", want: "10.11.12.0/24"}, // Neutron keeps host bits in the request, compaction drops them
		{in: "2001:db8:1234:1111::/64", want: "2001:db8:1234:1111::/64"},
		{in: "10.0.0.0", err: "'10.0.0.0' isn't a recognized IP subnet cidr, '10.0.0.0/32' is recommended"},
		{in: "10.0.0.0/33", err: "'10.0.0.0/33' is not a valid IP subnet"},
		{in: " 10.0.0.0/8", err: "' 10.0.0.0/8' is not a valid IP subnet"},
		{in: "fe80::1%eth0/64", err: "'fe80::1%eth0/64' is not a valid IP subnet"},
	} {
		got, err := parsePoolPrefix(tc.in)
		switch {
		case tc.err != "" && (err == nil || err.Error() != tc.err):
			t.Errorf("%q: error %v, want %q", tc.in, err, tc.err)
		case tc.err == "" && (err != nil || got.String() != tc.want):
			t.Errorf("%q: %v %v, want %s", tc.in, got, err, tc.want)
		}
	}
}
