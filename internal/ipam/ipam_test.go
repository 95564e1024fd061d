package ipam

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

func TestDefaultPools(t *testing.T) {
	cases := []struct {
		cidr, gw, want string
	}{
		{"192.168.24.0/24", "192.168.24.1", "[192.168.24.2-192.168.24.254]"},
		{"192.168.24.0/24", "192.168.24.254", "[192.168.24.1-192.168.24.253]"},
		{"192.168.24.0/24", "192.168.24.100", "[192.168.24.1-192.168.24.99 192.168.24.101-192.168.24.254]"},
		{"10.0.0.0/30", "10.0.0.1", "[10.0.0.2-10.0.0.2]"},
		{"10.0.0.0/29", "", "[10.0.0.1-10.0.0.6]"},
		{"10.0.0.0/31", "", "[]"},
		{"10.0.0.0/32", "", "[]"},
	}
	for _, tc := range cases {
		var gw netip.Addr
		if tc.gw != "" {
			gw = netip.MustParseAddr(tc.gw)
		}
		if got := fmt.Sprint(DefaultPools(netip.MustParsePrefix(tc.cidr), gw)); got != tc.want {
			t.Errorf("DefaultPools(%s, %s) = %s, want %s", tc.cidr, tc.gw, got, tc.want)
		}
	}
}

func TestAllocateSkipsUsedAndSpansPools(t *testing.T) {
	pools := []Range{
		{netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.3")},
		{netip.MustParseAddr("10.0.0.10"), netip.MustParseAddr("10.0.0.10")},
	}
	used := map[netip.Addr]bool{}
	var got []string
	for {
		a, err := Allocate(pools, func(a netip.Addr) bool { return used[a] })
		if err != nil {
			if err != ErrExhausted {
				t.Fatal(err)
			}
			break
		}
		used[a] = true
		got = append(got, a.String())
	}
	if strings.Join(got, " ") != "10.0.0.2 10.0.0.3 10.0.0.10" {
		t.Errorf("allocated %v", got)
	}
}

func TestNewMACIsLocalUnicastUnderPrefix(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		mac, err := NewMAC(func(m string) bool { return seen[m] })
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(mac, "fa:16:3e:") || seen[mac] {
			t.Fatalf("bad or repeated MAC %s", mac)
		}
		seen[mac] = true
	}
}

func TestSpecial(t *testing.T) {
	cases := []struct {
		cidr string
		want []SpecialRange
	}{
		{"10.0.0.0/8", nil},
		{"100.64.0.0/10", nil},
		{"223.255.255.0/24", nil},
		{"0.0.0.0/24", []SpecialRange{ThisNetwork}},
		{"127.0.0.0/24", []SpecialRange{Loopback}},
		{"169.254.169.0/24", []SpecialRange{LinkLocal}},
		{"169.0.0.0/8", []SpecialRange{LinkLocal}},
		{"224.0.0.0/24", []SpecialRange{Multicast}},
		{"239.255.0.0/16", []SpecialRange{Multicast}},
		{"255.255.255.0/24", []SpecialRange{Reserved}},
		{"0.0.0.0/1", []SpecialRange{ThisNetwork, Loopback}},
		{"128.0.0.0/1", []SpecialRange{LinkLocal, Multicast, Reserved}},
	}
	for _, tc := range cases {
		if got := Special(netip.MustParsePrefix(tc.cidr)); fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("Special(%s) = %v, want %v", tc.cidr, got, tc.want)
		}
	}
}
