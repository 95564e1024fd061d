package firewall_test

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/nsnet/nsnet/internal/firewall"
)

// tableShape counts what `nft -j list table` shows of a table: its
// chains, sets (maps included) and rules.
type tableShape struct{ chains, sets, rules int }

func (s tableShape) minus(o tableShape) tableShape {
	return tableShape{s.chains - o.chains, s.sets - o.sets, s.rules - o.rules}
}

// nftJSON is the part of `nft -j list table` the shape needs: one object
// per table, chain, set, map or rule.
type nftJSON struct {
	Nftables []struct {
		Chain *struct{ Name string }  `json:"chain"`
		Set   *struct{ Name string }  `json:"set"`
		Map   *struct{ Name string }  `json:"map"`
		Rule  *struct{ Chain string } `json:"rule"`
	} `json:"nftables"`
}

func shapeOf(t *testing.T, ns, family string) tableShape {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", ns, "nft", "-j", "list", "table", family, firewall.TableName).Output()
	if err != nil {
		t.Fatalf("nft -j list table %s: %v", family, err)
	}
	var doc nftJSON
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatalf("decode nft -j output: %v", err)
	}
	var s tableShape
	for _, o := range doc.Nftables {
		switch {
		case o.Chain != nil:
			s.chains++
		case o.Set != nil, o.Map != nil:
			s.sets++
		case o.Rule != nil:
			s.rules++
		}
	}
	return s
}

// TestPortAddIsElementsOnly: one port added to a firewall of n ports of
// one security group creates no chain, set or rule in the inet table, and
// the same in the bridge table and as many elements at n = 2 as at n =
// 40: the ports share their signature's chains and rule sets, so what a
// port add costs the kernel does not grow with the ports already there.
// (The layout before, a chain pair and rule sets per port, made the inet
// table 2 chains, 4 sets and 18 rules bigger per port.)
func TestPortAddIsElementsOnly(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces)")
	}
	type growth struct {
		bridge, inet tableShape
		added        int
	}
	var seen []growth
	for _, n := range []int{2, 40} {
		ns := fmt.Sprintf("fws%d-%d", os.Getpid()%100000, n)
		if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
				t.Errorf("remove namespace %s: %v\n%s", ns, err, out)
			}
		})
		fw, err := firewall.Open(ns, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { fw.Close() })
		if _, err := fw.Apply(scaleSpec(n)); err != nil {
			t.Fatal(err)
		}
		bridge, inet := shapeOf(t, ns, "bridge"), shapeOf(t, ns, "inet")
		res, err := fw.Apply(scaleSpec(n + 1))
		if err != nil {
			t.Fatal(err)
		}
		if res.Rebuilt || res.Deleted != 0 {
			t.Fatalf("%d ports, one added: %+v, want an update that adds", n, res)
		}
		g := growth{shapeOf(t, ns, "bridge").minus(bridge), shapeOf(t, ns, "inet").minus(inet), res.Added}
		if g.inet != (tableShape{}) {
			t.Errorf("%d ports, one added: the inet table grew by %+v, want only elements", n, g.inet)
		}
		seen = append(seen, g)
	}
	if seen[0] != seen[1] {
		t.Errorf("one port added to 2 ports: %+v; to 40 ports: %+v; want the same", seen[0], seen[1])
	}
}

// TestUpgradesPerPortLayout: a daemon that finds the tables of the
// per-port layout (a chain pair and rule sets per port, the verdict maps
// going to them) replaces them, leaving none of the old chains or sets,
// and the next daemon adopts the new ones without writing anything.
func TestUpgradesPerPortLayout(t *testing.T) {
	l := newLab(t)
	old := fmt.Sprintf(`table bridge nsnet_fw {
	map tag_out { type ifname : mark; elements = { "%s" : 0x00000001, "%s" : 0x00000002 } }
	chain tag_1 { meta mark set meta mark & 0x8000ffff | 0x00010000; }
}
table inet nsnet_fw {
	set rules4_1 { type mark . inet_proto . inet_service . ipv4_addr; flags interval; }
	chain egress_1 { meta mark & 0x7fff0000 . meta l4proto . th dport . ip daddr @rules4_1 return; }
	chain ingress_1 { counter; }
	map egress_ports { type mark : verdict; elements = { 0x00010000 : goto egress_1 } }
	map ingress_ports { type mark : verdict; elements = { 0x00000001 : goto ingress_1 } }
}
`, l.tapA, l.tapB)
	cmd := exec.Command("ip", "netns", "exec", l.host, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(old)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft -f of the per-port layout: %v\n%s", err, out)
	}
	icmp := firewall.Rule{Direction: firewall.Ingress, ProtoMin: 1, ProtoMax: 1, PortMax: 65535, Remote: netip.MustParsePrefix("10.9.0.0/24")}
	spec := l.spec(icmp)
	if res, err := l.fw.Apply(spec); err != nil || !res.Rebuilt {
		t.Fatalf("Apply over the per-port layout: %+v, %v; want the tables rebuilt", res, err)
	}
	listing := run(t, "ip", "netns", "exec", l.host, "nft", "list", "ruleset")
	for _, gone := range []string{"chain egress_1 ", "chain ingress_1 ", "set rules4_1 "} {
		if strings.Contains(listing, gone) {
			t.Errorf("%q of the per-port layout left behind:\n%s", gone, listing)
		}
	}
	if !l.ping(l.a, "10.9.0.2") {
		t.Error("ping a→b blocked after the upgrade")
	}
	l.reopen()
	if res, err := l.fw.Apply(spec); err != nil || !res.Adopted || res.Added+res.Deleted != 0 {
		t.Errorf("Apply by the next daemon: %+v, %v; want the tables adopted, nothing written", res, err)
	}
}
