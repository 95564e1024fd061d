package firewall_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
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
