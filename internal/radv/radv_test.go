package radv

import (
	"bytes"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/mdlayher/ndp"
)

var (
	mac  = net.HardwareAddr{0xfa, 0x16, 0x3e, 0, 0, 1}
	pfx1 = netip.MustParsePrefix("2001:db8:1::/64")
	pfx2 = netip.MustParsePrefix("2001:db8:2::/64")
	dns1 = netip.MustParseAddr("2001:db8:1::53")
)

func TestModeOf(t *testing.T) {
	tests := []struct {
		mode string
		want Mode
		ok   bool
	}{
		{"slaac", Mode{Autonomous: true}, true},
		{"dhcpv6-stateful", Mode{Managed: true}, true},
		{"dhcpv6-stateless", Mode{Other: true, Autonomous: true}, true},
		{"", Mode{}, false},
		{"SLAAC", Mode{}, false},
	}
	for _, tt := range tests {
		got, ok := ModeOf(tt.mode)
		if got != tt.want || ok != tt.ok {
			t.Errorf("ModeOf(%q) = %+v, %v; want %+v, %v", tt.mode, got, ok, tt.want, tt.ok)
		}
	}
}

func TestForSubnets(t *testing.T) {
	pfx3 := netip.MustParsePrefix("2001:db8:3::/64")
	tests := []struct {
		name    string
		subnets []Subnet
		want    *Config
	}{
		{"nothing to advertise", []Subnet{{Prefix: pfx1}}, nil},
		{"slaac with DNS", []Subnet{{Prefix: pfx1, RAMode: ModeSLAAC, DNS: []netip.Addr{dns1}}},
			&Config{MTU: 1450, RouterLifetime: time.Minute,
				Prefixes: []Prefix{{Prefix: pfx1, OnLink: true, Autonomous: true}}, RDNSS: []netip.Addr{dns1}}},
		{"stateful: M, no A, no RDNSS", []Subnet{{Prefix: pfx1, RAMode: ModeStateful, DNS: []netip.Addr{dns1}}},
			&Config{Managed: true, MTU: 1450, RouterLifetime: time.Minute,
				Prefixes: []Prefix{{Prefix: pfx1, OnLink: true}}}},
		{"stateless and stateful mixed", []Subnet{
			{Prefix: pfx1, RAMode: ModeStateless}, {Prefix: pfx2, RAMode: ModeStateful}, {Prefix: pfx3}},
			&Config{Managed: true, Other: true, MTU: 1450, RouterLifetime: time.Minute,
				Prefixes: []Prefix{{Prefix: pfx1, OnLink: true, Autonomous: true}, {Prefix: pfx2, OnLink: true}}}},
		{"three DNS servers at most, IPv6 only", []Subnet{{Prefix: pfx1, RAMode: ModeSLAAC, DNS: []netip.Addr{
			netip.MustParseAddr("10.0.0.1"), dns1, dns1.Next(), dns1.Next().Next(), dns1.Next().Next().Next()}}},
			&Config{MTU: 1450, RouterLifetime: time.Minute,
				Prefixes: []Prefix{{Prefix: pfx1, OnLink: true, Autonomous: true}},
				RDNSS:    []netip.Addr{dns1, dns1.Next(), dns1.Next().Next()}}},
		{"an IPv4 subnet is not advertised", []Subnet{{Prefix: netip.MustParsePrefix("10.0.0.0/24"), RAMode: ModeSLAAC}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ForSubnets(tt.subnets, 1450, time.Minute)
			if (got == nil) != (tt.want == nil) {
				t.Fatalf("ForSubnets = %+v, want %+v", got, tt.want)
			}
			if got == nil {
				return
			}
			if got.MinInterval != NeutronMinInterval || got.MaxInterval != NeutronMaxInterval {
				t.Errorf("intervals %v–%v, want Neutron's", got.MinInterval, got.MaxInterval)
			}
			if got.Managed != tt.want.Managed || got.Other != tt.want.Other || got.MTU != tt.want.MTU ||
				got.RouterLifetime != tt.want.RouterLifetime || !slices.Equal(got.Prefixes, tt.want.Prefixes) ||
				!slices.Equal(got.RDNSS, tt.want.RDNSS) {
				t.Errorf("ForSubnets =\n %+v, want\n %+v", got, tt.want)
			}
		})
	}
}

// roundTrip marshals ra and parses it back, as a client would see it.
func roundTrip(t testing.TB, ra *ndp.RouterAdvertisement) *ndp.RouterAdvertisement {
	t.Helper()
	b, err := ndp.MarshalMessage(ra)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	m, err := ndp.ParseMessage(b)
	if err != nil {
		t.Fatalf("parse back: %v", err)
	}
	got, ok := m.(*ndp.RouterAdvertisement)
	if !ok {
		t.Fatalf("parsed back as %T", m)
	}
	return got
}

type prefixView struct {
	prefix           netip.Prefix
	l, a             bool
	valid, preferred time.Duration
}

func prefixes(ra *ndp.RouterAdvertisement) []prefixView {
	var out []prefixView
	for _, o := range ra.Options {
		if p, ok := o.(*ndp.PrefixInformation); ok {
			out = append(out, prefixView{netip.PrefixFrom(p.Prefix, int(p.PrefixLength)), p.OnLink,
				p.AutonomousAddressConfiguration, p.ValidLifetime, p.PreferredLifetime})
		}
	}
	return out
}

func option[T ndp.Option](ra *ndp.RouterAdvertisement) (T, bool) {
	for _, o := range ra.Options {
		if v, ok := o.(T); ok {
			return v, true
		}
	}
	var zero T
	return zero, false
}

func TestAdvertisement(t *testing.T) {
	cfg := &Config{
		Other:          true,
		RouterLifetime: 1800 * time.Second,
		MTU:            1400,
		Prefixes: []Prefix{
			{Prefix: pfx1, OnLink: true, Autonomous: true},
			{Prefix: netip.MustParsePrefix("2001:db8:2::1/64"), OnLink: true, ValidLifetime: time.Hour, PreferredLifetime: 2 * time.Hour},
			{Prefix: pfx1, OnLink: false}, // duplicate: the first one counts
			{Prefix: netip.MustParsePrefix("fe80::/64"), OnLink: true},
			{Prefix: netip.MustParsePrefix("10.0.0.0/24"), OnLink: true},
		},
		RDNSS:       []netip.Addr{dns1, netip.MustParseAddr("10.0.0.1")},
		DNSSL:       []string{"example.org.", "bad..name", ""},
		MaxInterval: 10 * time.Second,
	}
	ra := roundTrip(t, cfg.Advertisement(mac, netip.MustParsePrefix("2001:db8:9::/64"), pfx1))
	if ra.ManagedConfiguration || !ra.OtherConfiguration || ra.RouterLifetime != 1800*time.Second || ra.CurrentHopLimit != 64 {
		t.Errorf("header: M=%v O=%v lifetime %v hop limit %d", ra.ManagedConfiguration, ra.OtherConfiguration, ra.RouterLifetime, ra.CurrentHopLimit)
	}
	want := []prefixView{
		{pfx1, true, true, DefaultValidLifetime, DefaultPreferredLifetime},
		// Preferred beyond valid would make clients ignore the prefix.
		{pfx2, true, false, time.Hour, time.Hour},
		// Withdrawn: zero lifetimes; one still configured is not withdrawn.
		{netip.MustParsePrefix("2001:db8:9::/64"), true, true, 0, 0},
	}
	if got := prefixes(ra); !slices.Equal(got, want) {
		t.Errorf("prefixes\n %+v, want\n %+v", got, want)
	}
	if o, ok := option[*ndp.MTU](ra); !ok || o.MTU != 1400 {
		t.Errorf("MTU option %+v", o)
	}
	if o, ok := option[*ndp.LinkLayerAddress](ra); !ok || o.Direction != ndp.Source || o.Addr.String() != mac.String() {
		t.Errorf("source link-layer address %+v", o)
	}
	if o, ok := option[*ndp.RecursiveDNSServer](ra); !ok || !slices.Equal(o.Servers, []netip.Addr{dns1}) || o.Lifetime != 30*time.Second {
		t.Errorf("RDNSS %+v", o)
	}
	if o, ok := option[*ndp.DNSSearchList](ra); !ok || !slices.Equal(o.DomainNames, []string{"example.org"}) {
		t.Errorf("DNSSL %+v", o)
	}
}

func TestAdvertisementWithout(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		mac  net.HardwareAddr
		what func(*ndp.RouterAdvertisement) bool
	}{
		{"no MTU below 1280", Config{MTU: 1279}, mac, func(ra *ndp.RouterAdvertisement) bool { _, ok := option[*ndp.MTU](ra); return ok }},
		{"no source link-layer address without a MAC", Config{}, nil, func(ra *ndp.RouterAdvertisement) bool {
			_, ok := option[*ndp.LinkLayerAddress](ra)
			return ok
		}},
		{"no RDNSS without servers", Config{}, mac, func(ra *ndp.RouterAdvertisement) bool {
			_, ok := option[*ndp.RecursiveDNSServer](ra)
			return ok
		}},
		{"not a default router", Config{}, mac, func(ra *ndp.RouterAdvertisement) bool { return ra.RouterLifetime != 0 }},
		{"router lifetime capped at 9000 s", Config{RouterLifetime: time.Hour * 10}, mac, func(ra *ndp.RouterAdvertisement) bool {
			return ra.RouterLifetime != 9000*time.Second
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if ra := roundTrip(t, tt.cfg.Advertisement(tt.mac)); tt.what(ra) {
				t.Errorf("advertisement %+v", ra)
			}
		})
	}
}

// TestFinal: what radvd sends when it stops — clients drop the default
// route and deprecate their addresses at once.
func TestFinal(t *testing.T) {
	cfg := &Config{
		Managed: true, RouterLifetime: time.Hour, MTU: 1500,
		Prefixes: []Prefix{{Prefix: pfx1, OnLink: true, Autonomous: true, ValidLifetime: ndp.Infinity}},
		RDNSS:    []netip.Addr{dns1}, DNSSL: []string{"example.org"},
	}
	ra := roundTrip(t, cfg.Final(mac, pfx2))
	if ra.RouterLifetime != 0 || !ra.ManagedConfiguration {
		t.Errorf("router lifetime %v, M %v", ra.RouterLifetime, ra.ManagedConfiguration)
	}
	want := []prefixView{{pfx1, true, true, 0, 0}, {pfx2, true, true, 0, 0}}
	if got := prefixes(ra); !slices.Equal(got, want) {
		t.Errorf("prefixes %+v, want %+v", got, want)
	}
	if o, ok := option[*ndp.RecursiveDNSServer](ra); !ok || o.Lifetime != 0 {
		t.Errorf("RDNSS %+v", o)
	}
	if o, ok := option[*ndp.DNSSearchList](ra); !ok || o.Lifetime != 0 {
		t.Errorf("DNSSL %+v", o)
	}
	// Final must not change the Config it was built from.
	if len(cfg.Prefixes) != 1 || cfg.RouterLifetime != time.Hour {
		t.Errorf("config changed: %+v", cfg)
	}
}

func rs(t testing.TB, opts ...ndp.Option) []byte {
	t.Helper()
	b, err := ndp.MarshalMessage(&ndp.RouterSolicitation{Options: opts})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSolicitation(t *testing.T) {
	host := netip.MustParseAddr("fe80::f816:3eff:fe00:2")
	slla := &ndp.LinkLayerAddress{Direction: ndp.Source, Addr: mac}
	withCode := rs(t)
	withCode[1] = 1
	zeroLenOpt := append(rs(t), 1, 0, 0, 0, 0, 0, 0, 0)
	overlong := append(rs(t), 1, 2, 0, 0, 0, 0, 0, 0)
	tests := []struct {
		name string
		b    []byte
		hop  int
		src  netip.Addr
		want netip.Addr // invalid: no answer
	}{
		{"from a host: unicast answer", rs(t, slla), 255, host, host},
		{"zone ignored", rs(t, slla), 255, host.WithZone("eth0"), host},
		{"from the unspecified address: to all nodes", rs(t), 255, netip.IPv6Unspecified(), allNodes},
		{"unspecified source with a link-layer address", rs(t, slla), 255, netip.IPv6Unspecified(), netip.Addr{}},
		{"routed (hop limit 254)", rs(t, slla), 254, host, netip.Addr{}},
		{"hop limit unknown", rs(t, slla), -1, host, netip.Addr{}},
		{"non-zero code", withCode, 255, host, netip.Addr{}},
		{"too short", rs(t)[:7], 255, host, netip.Addr{}},
		{"an option of length zero", zeroLenOpt, 255, host, netip.Addr{}},
		{"an option beyond the message", overlong, 255, host, netip.Addr{}},
		{"not a solicitation", func() []byte {
			b, _ := ndp.MarshalMessage(&ndp.RouterAdvertisement{})
			return b
		}(), 255, host, netip.Addr{}},
		{"multicast source", rs(t), 255, allNodes, netip.Addr{}},
		{"IPv4 source", rs(t), 255, netip.MustParseAddr("10.0.0.1"), netip.Addr{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := solicitation(tt.b, tt.hop, tt.src)
			if ok != tt.want.IsValid() || got != tt.want {
				t.Errorf("solicitation = %v, %v; want %v", got, ok, tt.want)
			}
		})
	}
}

func TestNextInterval(t *testing.T) {
	tests := []struct {
		name   string
		cfg    Config
		sent   int
		lo, hi time.Duration
	}{
		{"initial advertisements at most 16 s apart", Config{}, 1, DefaultMinInterval, maxInitialAdvertInterval},
		{"then radvd's defaults", Config{}, 3, DefaultMinInterval, DefaultMaxInterval},
		{"configured", Config{MinInterval: time.Second, MaxInterval: 2 * time.Second}, 5, time.Second, 2 * time.Second},
		{"a maximum alone: minimum a third of it", Config{MaxInterval: 30 * time.Second}, 5, 9900 * time.Millisecond, 30 * time.Second},
		{"a minimum above the maximum is the maximum", Config{MinInterval: time.Minute, MaxInterval: time.Second}, 5, time.Second, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for range 100 {
				d := nextInterval(&tt.cfg, tt.sent)
				if d < min(tt.lo, tt.hi) || d > tt.hi {
					t.Fatalf("interval %v outside [%v, %v]", d, tt.lo, tt.hi)
				}
			}
		})
	}
}

// FuzzSolicitation: no bytes make the solicitation check panic, and every
// solicitation it accepts is one ndp parses, answered to a unicast source
// or to all nodes.
func FuzzSolicitation(f *testing.F) {
	f.Add(rs(f, &ndp.LinkLayerAddress{Direction: ndp.Source, Addr: mac}), 255, []byte(netip.MustParseAddr("fe80::1").AsSlice()))
	f.Add(rs(f), 255, []byte(netip.IPv6Unspecified().AsSlice()))
	f.Add(rs(f, &ndp.RawOption{Type: 200, Length: 1, Value: make([]byte, 6)}), 255, []byte(netip.MustParseAddr("fe80::1").AsSlice()))
	cfg := &Config{Prefixes: []Prefix{{Prefix: pfx1, OnLink: true, Autonomous: true}}, RDNSS: []netip.Addr{dns1}}
	f.Fuzz(func(t *testing.T, b []byte, hop int, src []byte) {
		from, _ := netip.AddrFromSlice(src)
		dst, ok := solicitation(b, hop, from)
		if !ok {
			return
		}
		// The server reads no option but the source link-layer
		// address's presence, and RFC 4861 has it ignore the others;
		// ndp checks the contents of those it knows (a PREF64 option in
		// a solicitation, say). The message must parse once every
		// option is one ndp does not know.
		m, err := ndp.ParseMessage(withUnknownOptions(b))
		if err != nil && longOption(b[8:]) {
			// ndp v1.1.0 computes an unknown option's length in a byte
			// (RawOption: Length*8 overflows from 32 units on): it
			// refuses such a valid message, which the server answers.
			return
		}
		if err != nil {
			t.Fatalf("accepted a solicitation ndp cannot parse: %v", err)
		}
		if _, isRS := m.(*ndp.RouterSolicitation); !isRS {
			t.Fatalf("accepted a %T", m)
		}
		if from.IsUnspecified() && hasOption(b[8:], optSourceLinkLayerAddress) {
			t.Fatal("accepted a solicitation from :: with a source link-layer address (RFC 4861 6.1.1)")
		}
		if dst != allNodes && (dst != from.WithZone("") || dst.IsMulticast() || dst.IsUnspecified()) {
			t.Fatalf("answer to %v for a solicitation from %v", dst, from)
		}
		roundTrip(t, cfg.Advertisement(mac))
	})
}

// longOption reports whether the options opts (checked well formed) have
// one of 32 units of 8 bytes or more.
// withUnknownOptions is the message b with every option's type changed to
// 253 (RFC 4727's experimental type, which ndp keeps as a raw option).
func withUnknownOptions(b []byte) []byte {
	b = bytes.Clone(b)
	for opts := b[8:]; len(opts) >= 2 && opts[1] > 0 && int(opts[1])*8 <= len(opts); opts = opts[int(opts[1])*8:] {
		opts[0] = 253
	}
	return b
}

// hasOption reports whether the options opts hold one of type typ.
func hasOption(opts []byte, typ byte) bool {
	for ; len(opts) >= 2 && opts[1] > 0 && int(opts[1])*8 <= len(opts); opts = opts[int(opts[1])*8:] {
		if opts[0] == typ {
			return true
		}
	}
	return false
}

func longOption(opts []byte) bool {
	for len(opts) >= 2 && opts[1] > 0 && int(opts[1])*8 <= len(opts) {
		if opts[1] >= 32 {
			return true
		}
		opts = opts[int(opts[1])*8:]
	}
	return false
}
