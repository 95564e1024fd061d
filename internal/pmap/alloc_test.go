package pmap

import (
	"fmt"
	"net/netip"
	"testing"
)

// TestGetAllocatesNothing: a lookup, which the DNS and DHCP servers make
// per query, allocates nothing (a key hashed through an interface would
// be copied to the heap).
func TestGetAllocatesNothing(t *testing.T) {
	src := map[string]int{}
	addrs := map[netip.Addr]int{}
	for i := range 1000 {
		src[fmt.Sprint("host-", i)] = i
		addrs[netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})] = i
	}
	m, a := From(src), From(addrs)
	key, addr := "host-500", netip.MustParseAddr("10.0.1.244")
	if n := testing.AllocsPerRun(100, func() {
		if _, ok := m.Get(key); !ok {
			t.Fatal("missing")
		}
		if _, ok := a.Get(addr); !ok {
			t.Fatal("missing")
		}
	}); n != 0 {
		t.Errorf("Get allocates %v times", n)
	}
}
