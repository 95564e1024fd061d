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
		// IPv6 has no broadcast: the last address is a host's. The
		// prefix itself (the subnet-router anycast address) is not.
		{"2001:db8::/64", "2001:db8::1", "[2001:db8::2-2001:db8::ffff:ffff:ffff:ffff]"},
		{"2001:db8::/64", "", "[2001:db8::1-2001:db8::ffff:ffff:ffff:ffff]"},
		{"2001:db8::/64", "2001:db8::", "[2001:db8::1-2001:db8::ffff:ffff:ffff:ffff]"},
		{"2001:db8::/64", "fe80::1", "[2001:db8::1-2001:db8::ffff:ffff:ffff:ffff]"},
		{"2001:db8::/126", "2001:db8::1", "[2001:db8::2-2001:db8::3]"},
		{"2001:db8::/127", "", "[2001:db8::1-2001:db8::1]"},
		{"2001:db8::/128", "", "[]"},
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
		{"2001:db8::/64", nil},
		{"fd00::/8", nil},
		{"fe80::/64", []SpecialRange{LinkLocal6}},
		{"ff02::/64", []SpecialRange{Multicast6}},
		{"8000::/1", []SpecialRange{LinkLocal6, Multicast6}},
	}
	for _, tc := range cases {
		if got := Special(netip.MustParsePrefix(tc.cidr)); fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("Special(%s) = %v, want %v", tc.cidr, got, tc.want)
		}
	}
}

func TestEUI64(t *testing.T) {
	cases := []struct {
		prefix, mac, want, err string
	}{
		{"2001:db8::/64", "00:16:3e:33:44:55", "2001:db8::216:3eff:fe33:4455", ""},
		{"2001:db8:1:2::/64", "fa:16:3e:11:22:33", "2001:db8:1:2:f816:3eff:fe11:2233", ""},
		// The universal/local bit flips either way.
		{"fd00::/64", "02:00:00:00:00:01", "fd00::ff:fe00:1", ""},
		{"2001:db8::/64", "not-a-mac", "", `"not-a-mac" is not a 48-bit MAC address`},
		{"2001:db8::/80", "00:16:3e:33:44:55", "", "2001:db8::/80 is not an IPv6 prefix of /64 or shorter"},
		{"10.0.0.0/24", "00:16:3e:33:44:55", "", "10.0.0.0/24 is not an IPv6 prefix of /64 or shorter"},
	}
	for _, tc := range cases {
		a, err := EUI64(netip.MustParsePrefix(tc.prefix), tc.mac)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("EUI64(%s, %s) = %v, %v; want error %q", tc.prefix, tc.mac, a, err, tc.err)
			}
			continue
		}
		if err != nil || a.String() != tc.want {
			t.Errorf("EUI64(%s, %s) = %v, %v; want %s", tc.prefix, tc.mac, a, err, tc.want)
		}
	}
}
