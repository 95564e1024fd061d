package firewall

import (
	"net"
	"net/netip"
	"strings"
	"testing"
)

// TestValidateZoned: the zoned bridges are names the kernel takes, each
// once, and none the host routes to a port through (its connections must
// stay in zone 0).
func TestValidateZoned(t *testing.T) {
	mac, _ := net.ParseMAC("fa:16:3e:00:00:01")
	port := func(bridge string, routed ...string) Port {
		p := Port{Interface: "tap1", MAC: mac, Bridge: bridge}
		for _, r := range routed {
			p.Routed = append(p.Routed, netip.MustParsePrefix(r))
		}
		return p
	}
	for _, tt := range []struct {
		name string
		spec Spec
		want string // "" for valid
	}{
		{"bridged and host-routed bridges", Spec{Zoned: []string{"nsb-a", "nsb-b"}, Ports: []Port{port("nsb-hg", "10.0.0.5/32")}}, ""},
		{"a port on a zoned bridge", Spec{Zoned: []string{"nsb-a"}, Ports: []Port{port("nsb-a")}}, ""},
		{"empty name", Spec{Zoned: []string{""}}, `zoned bridge "": want 1 to 15 bytes`},
		{"name too long", Spec{Zoned: []string{"nsb-0123456789ab"}}, "want 1 to 15 bytes"},
		{"twice", Spec{Zoned: []string{"nsb-a", "nsb-a"}}, "zoned bridge nsb-a appears twice"},
		{"routed through a zoned bridge", Spec{Zoned: []string{"nsb-a"}, Ports: []Port{port("nsb-a", "10.0.0.5/32")}},
			"the host routes to it through bridge nsb-a, which is zoned"},
		{"port's bridge too long", Spec{Ports: []Port{port("nsb-0123456789ab")}}, `bridge "nsb-0123456789ab": want 1 to 15 bytes`},
	} {
		err := tt.spec.Validate()
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
	}
}

// TestValidateGroupMembers: a group whose members include something that
// is not a prefix is refused, however it got there (built at once or
// added), and accepted again once it is taken out.
func TestValidateGroupMembers(t *testing.T) {
	good := MembersOf(netip.MustParsePrefix("10.0.0.1/32"))
	for _, tt := range []struct {
		name    string
		members Members
		want    string // "" for valid
	}{
		{"prefixes", good.With(netip.MustParsePrefix("2001:db8::/64")), ""},
		{"none", Members{}, ""},
		{"built with an invalid one", MembersOf(netip.MustParsePrefix("10.0.0.1/32"), netip.Prefix{}), "group web: member invalid Prefix is not a prefix"},
		{"an invalid one added", good.With(netip.Prefix{}), "group web: member invalid Prefix is not a prefix"},
		{"added twice, removed once", good.With(netip.Prefix{}).With(netip.Prefix{}).Without(netip.Prefix{}), ""},
		{"added, then removed", good.With(netip.Prefix{}).Without(netip.Prefix{}), ""},
	} {
		err := Spec{Groups: map[string]Members{"web": tt.members}}.Validate()
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
	}
}
