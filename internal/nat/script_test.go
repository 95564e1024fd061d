package nat_test

import (
	"net/netip"
	"os/exec"
	"strings"
	"testing"

	"github.com/nsnet/nsnet/internal/nat"
)

// TestScriptRebuildsTable proves Script honest: nft(8), fed the script
// read back from a table Apply built, builds a table that nft lists
// exactly as the original, rules, sets and elements.
func TestScriptRebuildsTable(t *testing.T) {
	l := newLab(t)
	built, replayed := l.instance("built"), l.instance("replayed")
	tbl, err := nat.Open(built.Name, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Close()
	spec := nat.Spec{
		SNAT:        []nat.SNAT{{Out: "qg-1", From: netip.MustParsePrefix("10.0.0.0/24"), To: netip.MustParseAddr("198.51.100.5")}},
		Masquerade:  []nat.Masquerade{{Out: "qg-1", From: netip.MustParsePrefix("10.1.0.0/24")}},
		Hairpin:     []nat.Subnet{{Interface: "qr-1", Prefix: netip.MustParsePrefix("10.0.0.0/24")}},
		FloatingIPs: []nat.FloatingIP{{Out: "qg-1", Floating: netip.MustParseAddr("198.51.100.10"), Fixed: netip.MustParseAddr("10.0.0.5")}},
		PortForwards: []nat.PortForward{{Protocol: nat.TCP, External: netip.MustParseAddr("198.51.100.11"),
			ExternalPorts: nat.PortRange{First: 8080, Last: 8081}, Internal: netip.MustParseAddr("10.0.0.6"), InternalPorts: nat.PortRange{First: 80, Last: 81}}},
		Publish: []nat.Publish{{Protocol: nat.UDP, Ports: nat.Port(53), Internal: netip.MustParseAddr("10.0.0.7"), InternalPorts: nat.Port(5353)}},
	}
	if _, err := tbl.Apply(spec); err != nil {
		t.Fatal(err)
	}
	st, err := tbl.Inspect()
	if err != nil {
		t.Fatal(err)
	}
	script := st.Script()
	if strings.Contains(script, "left out") {
		t.Errorf("script of nsnet's own table leaves something out:\n%s", script)
	}
	for _, want := range []string{"# floating IP 198.51.100.10 → 10.0.0.5", "# port forward tcp 198.51.100.11:8080-8081 → 10.0.0.6:80-81"} {
		if !strings.Contains(script, want) {
			t.Errorf("script lacks %q:\n%s", want, script)
		}
	}
	cmd := exec.Command("ip", "netns", "exec", replayed.Name, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft -f of the script: %v\n%s\nscript:\n%s", err, out, script)
	}
	want, got := l.nft(built.Name, "list", "table", "inet", "nsnet"), l.nft(replayed.Name, "list", "table", "inet", "nsnet")
	if want != got {
		t.Errorf("replayed table differs.\nbuilt by Apply:\n%s\nbuilt by the script:\n%s\nscript:\n%s", want, got, script)
	}

	// A rule edited behind nsnet's back is named, not rendered as the
	// layout's.
	l.nft(built.Name, "insert", "rule", "inet", "nsnet", "postrouting", "counter", "comment", `"SNAT"`)
	st, err = tbl.Inspect()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(st.Script(), `is not nsnet's layout and is left out`) {
		t.Errorf("a foreign rule is not flagged:\n%s", st.Script())
	}
}
