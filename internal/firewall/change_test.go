package firewall_test

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"testing"

	"github.com/nsnet/nsnet/internal/firewall"
)

// TestChangesApplyAsWhole: specs applied as changes of the last one
// (Spec.Base, Changed) leave the kernel holding exactly what applying
// each whole programs: after every change, another Firewall given the
// same spec without a Base adopts the tables as they are (adopt reads
// them back and compares every element).
func TestChangesApplyAsWhole(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces)")
	}
	ns := fmt.Sprintf("fwc%d-h", os.Getpid()%100000)
	run(t, "ip", "netns", "add", ns)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			t.Errorf("remove namespace %s: %v\n%s", ns, err, out)
		}
	})
	fw, err := firewall.Open(ns, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer fw.Close()
	any4 := netip.MustParsePrefix("0.0.0.0/0")
	rules := [][]firewall.Rule{
		{{Direction: firewall.Egress, ProtoMax: 255, PortMax: 65535, Remote: any4}, {Direction: firewall.Ingress, ProtoMax: 255, PortMax: 65535, Group: "sg"}},
		{{Direction: firewall.Ingress, ProtoMin: 6, ProtoMax: 6, PortMin: 22, PortMax: 22, Remote: any4}},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	ports := map[string]firewall.Port{}
	members := firewall.MembersOf()
	for version := uint64(1); version <= 40; version++ {
		var changed []string
		for range 1 + rng.IntN(3) {
			name := fmt.Sprintf("tapc%d", rng.IntN(12))
			p, had := ports[name]
			a := netip.AddrFrom4([4]byte{10, 81, 0, byte(1 + rng.IntN(250))})
			if had && rng.IntN(2) == 0 {
				delete(ports, name)
				members = members.Without(netip.PrefixFrom(p.Addresses[0], 32))
			} else {
				if !had {
					p = firewall.Port{Interface: name, MAC: net.HardwareAddr{0xfa, 0x16, 0x3e, 0, 1, byte(rng.IntN(250))},
						Bridge: "nsb-c", Rules: rules[rng.IntN(len(rules))]}
				} else {
					members = members.Without(netip.PrefixFrom(p.Addresses[0], 32))
				}
				p.Addresses = []netip.Addr{a}
				ports[name] = p
				members = members.With(netip.PrefixFrom(a, 32))
			}
			changed = append(changed, name)
		}
		spec := firewall.Spec{Zoned: []string{"nsb-c"}, Groups: map[string]firewall.Members{"sg": members}}
		for _, name := range slices.Sorted(maps.Keys(ports)) {
			spec.Ports = append(spec.Ports, ports[name])
		}
		if len(spec.Ports) == 0 {
			continue // no tables: nothing to compare
		}
		asChange := spec
		asChange.Version, asChange.Base, asChange.Changed = version, version-1, changed
		if _, err := fw.Apply(asChange); err != nil {
			t.Fatalf("version %d (changed %v): %v", version, changed, err)
		}
		other, err := firewall.Open(ns, nil)
		if err != nil {
			t.Fatal(err)
		}
		res, err := other.Apply(spec)
		other.Close()
		if err != nil {
			t.Fatal(err)
		}
		if !res.Adopted {
			out := run(t, "ip", "netns", "exec", ns, "nft", "list", "ruleset")
			t.Fatalf("version %d (changed %v): the tables differ from the spec applied whole (%+v):\n%s", version, changed, res, out)
		}
	}
	if err := fw.Delete(); err != nil {
		t.Fatal(err)
	}
}
