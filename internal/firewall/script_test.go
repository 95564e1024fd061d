package firewall_test

import (
	"net/netip"
	"os/exec"
	"strings"
	"testing"

	"github.com/nsnet/nsnet/internal/firewall"
	"github.com/nsnet/nsnet/internal/firewall/fwtest"
)

// TestScriptRebuildsTables proves Script honest: nft(8), fed the script
// read back from the tables Apply built — ports stateless and stateful,
// zoned and routed bridges, address pairs, remote groups with single
// addresses and ranges of both families — builds tables that nft lists
// exactly as the originals, rules, sets and elements; a rule added behind
// nsnet's back is named, not rendered.
func TestScriptRebuildsTables(t *testing.T) {
	l := newLab(t)
	replayed := l.host + "r"
	t.Cleanup(func() { exec.Command("ip", "netns", "del", replayed).Run() })
	run(t, "ip", "netns", "add", replayed)

	http := firewall.Rule{Direction: firewall.Ingress, ProtoMin: 6, ProtoMax: 6, PortMin: 8080, PortMax: 8080, Group: "web"}
	icmp6 := firewall.Rule{Direction: firewall.Ingress, IPv6: true, ProtoMin: 58, ProtoMax: 58, PortMax: 65535, Remote: netip.MustParsePrefix("2001:db8::/64")}
	ssh := firewall.Rule{Direction: firewall.Egress, ProtoMin: 6, ProtoMax: 6, PortMin: 22, PortMax: 22, Group: "admins"}
	s := l.spec(http, icmp6, ssh)
	s.Groups = map[string]firewall.Members{
		"web":    firewall.MembersOf(netip.MustParsePrefix("10.9.0.77/32"), netip.MustParsePrefix("10.9.1.0/24"), netip.MustParsePrefix("2001:db8::1/128")),
		"admins": firewall.MembersOf(netip.MustParsePrefix("2001:db8:1::/48")),
	}
	s.Zoned = []string{"br0"}
	s.Ports[0].Bridge, s.Ports[0].Stateless = "br0", true
	s.Ports[1].Bridge = "br1"
	s.Ports[1].Routed = []netip.Prefix{netip.MustParsePrefix("10.9.0.2/32"), netip.MustParsePrefix("10.9.5.0/24")}
	s.Ports[1].Networks = []netip.Prefix{netip.MustParsePrefix("10.9.5.0/24")}
	if _, err := l.fw.Apply(s); err != nil {
		t.Fatal(err)
	}
	script, err := l.fw.Script(firewall.Visible{})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(script, "is not nsnet's") {
		t.Errorf("script of nsnet's own tables leaves something out:\n%s", script)
	}
	for _, want := range []string{
		"# r4e_2: the egress rules of signature 2: protocol . port or ICMP type and code . peer",
		"# g4i_2_web: the ingress rules of signature 2 whose peer is remote group web: protocol . port",
		"# m4r_web: the prefixes of remote group web",
	} {
		if !strings.Contains(script, want) {
			t.Errorf("script lacks %q:\n%s", want, script)
		}
	}
	cmd := exec.Command("ip", "netns", "exec", replayed, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft -f of the script: %v\n%s\nscript:\n%s", err, out, script)
	}
	for _, family := range []string{"bridge", "inet"} {
		want := fwtest.Canon(fwtest.WithoutUnwritable(run(t, "ip", "netns", "exec", l.host, "nft", "--debug=netlink", "list", "table", family, firewall.TableName)))
		got := fwtest.Canon(run(t, "ip", "netns", "exec", replayed, "nft", "--debug=netlink", "list", "table", family, firewall.TableName))
		if want != got {
			t.Errorf("replayed table %s differs.\nbuilt by Apply:\n%s\nbuilt by the script:\n%s\nscript:\n%s", family, want, got, script)
		}
	}

	// A caller who sees port a and bridge br0 only (the web view's
	// explain, as a project member): nothing of port b — its addresses,
	// MAC, tag, rules, the members of the group only its rules name, the
	// bridge it is routed through — and what is shown loads.
	partial, err := l.fw.Script(firewall.Visible{Port: func(n string) bool { return n == l.tapA }, Bridge: func(n string) bool { return n == "br0" }})
	if err != nil {
		t.Fatal(err)
	}
	for _, hidden := range []string{l.tapB, "10.9.0.2", "fa:16:3e:00:00:02", "r4e_2", "egress_s2", "tag_2", "m4_web", "g4i_2_web", "br1", "0x00020000"} {
		if strings.Contains(partial, hidden) {
			t.Errorf("a caller who cannot see port b is shown %q:\n%s", hidden, partial)
		}
	}
	for _, shown := range []string{l.tapA, "10.9.0.1", "r4e_1", "egress_s1", `"br0" : jump zone_1`, "# ports and networks this caller cannot see are left out"} {
		if !strings.Contains(partial, shown) {
			t.Errorf("a caller who sees port a is not shown %q:\n%s", shown, partial)
		}
	}
	if strings.Contains(script, "cannot see") {
		t.Errorf("a script of every port says some are left out:\n%s", script)
	}
	part := l.host + "p"
	t.Cleanup(func() { exec.Command("ip", "netns", "del", part).Run() })
	run(t, "ip", "netns", "add", part)
	cmd = exec.Command("ip", "netns", "exec", part, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(partial)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft -f of the partial script: %v\n%s\nscript:\n%s", err, out, partial)
	}

	run(t, "ip", "netns", "exec", l.host, "nft", "insert", "rule", "inet", firewall.TableName, "bridged", "counter", "comment", `"mine"`)
	if script, err = l.fw.Script(firewall.Visible{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(script, `("mine") is not nsnet's layout and is left out`) {
		t.Errorf("a foreign rule is not flagged:\n%s", script)
	}
}
