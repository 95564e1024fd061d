package nat

import (
	"net/netip"
	"testing"
)

func benchSpec(n int) Spec {
	r := Router{Gateway: "qg-bench", GatewayAddr: netip.MustParseAddr("198.51.100.10"), EnableSNAT: true,
		Internal: []Subnet{{"qr-bench", netip.MustParsePrefix("10.0.0.0/24")}}}
	for i := range n {
		r.FloatingIPs = append(r.FloatingIPs, FloatingIP{
			Floating: netip.AddrFrom4([4]byte{100, 64 | byte(i>>16), byte(i >> 8), byte(i)}),
			Fixed:    netip.AddrFrom4([4]byte{172, 16 | byte(i>>16), byte(i >> 8), byte(i)})})
	}
	return r.Spec()
}

// BenchmarkDeclarative is the memory side of Apply with ten thousand
// floating IPs: validate, compile, diff against the spec before.
func BenchmarkDeclarative(b *testing.B) {
	old := compile(benchSpec(10000))
	s := benchSpec(10001)
	for b.Loop() {
		if err := s.Validate(); err != nil {
			b.Fatal(err)
		}
		if d := diff(old, compile(s)); count(d.add) != 2 {
			b.Fatal(count(d.add))
		}
	}
}
