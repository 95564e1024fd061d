package ipam

import (
	"net/netip"
	"testing"
)

// FuzzPools checks the address arithmetic on any prefix and gateway: the
// default pools stay inside the usable range, never hold the gateway, never
// overlap, and Allocate hands out only addresses from them.
func FuzzPools(f *testing.F) {
	for _, seed := range []struct {
		prefix, gw string
	}{
		{"10.0.0.0/24", "10.0.0.1"}, {"10.0.0.0/30", "10.0.0.2"}, {"10.0.0.0/31", ""},
		{"10.0.0.0/32", ""}, {"0.0.0.0/0", "0.0.0.1"}, {"192.168.1.0/24", "192.168.1.254"},
		{"2001:db8::/64", "2001:db8::1"}, {"2001:db8::/127", ""}, {"10.0.0.0/8", "10.255.255.255"},
	} {
		f.Add(seed.prefix, seed.gw, uint8(3))
	}
	f.Fuzz(func(t *testing.T, prefix, gw string, taken uint8) {
		p, err := netip.ParsePrefix(prefix)
		if err != nil {
			return
		}
		gateway, _ := netip.ParseAddr(gw)
		usable, ok := Usable(p)
		pools := DefaultPools(p, gateway)
		if !ok && len(pools) > 0 {
			t.Fatalf("%v has no usable addresses but pools %v", p, pools)
		}
		for i, r := range pools {
			if r.Start.Compare(r.End) > 0 || !usable.Contains(r.Start) || !usable.Contains(r.End) {
				t.Fatalf("pool %v of %v is outside the usable %v", r, p, usable)
			}
			if gateway.IsValid() && r.Contains(gateway) {
				t.Fatalf("pool %v holds the gateway %v", r, gateway)
			}
			for _, o := range pools[i+1:] {
				if r.Overlaps(o) {
					t.Fatalf("pools %v and %v overlap", r, o)
				}
			}
		}
		// The first `taken` addresses of the pools are in use.
		seen := 0
		a, err := Allocate(pools, func(netip.Addr) bool { seen++; return seen <= int(taken) })
		if err != nil {
			return
		}
		inPool := false
		for _, r := range pools {
			inPool = inPool || r.Contains(a)
		}
		if !inPool {
			t.Fatalf("Allocate handed out %v, outside the pools %v", a, pools)
		}
	})
}
