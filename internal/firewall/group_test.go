package firewall

import (
	"bytes"
	"math/rand/v2"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"testing"

	"github.com/nsnet/nsnet/internal/nfsock"
)

// TestGroupChangesMatchACompilation: after each of a few hundred random
// changes of a remote group's members (single addresses and ranges, both
// families, joining and leaving, some repeated), the group compiled as a
// change of the one before holds the elements a compilation from scratch
// holds, and the change it carries (the elements to add and delete) turns
// the elements before into those: what an update sends is exactly the
// difference, and nothing of the members that stayed.
func TestGroupChangesMatchACompilation(t *testing.T) {
	mac, _ := net.ParseMAC("fa:16:3e:00:00:02")
	rule := Rule{Direction: Ingress, ProtoMax: 255, PortMax: 65535, Group: "web"}
	spec := func(members []netip.Prefix) Spec {
		return Spec{Groups: map[string]Members{"web": MembersOf(members...)},
			Ports: []Port{{Interface: "tapweb", MAC: mac, Bridge: "nsb-web", Rules: []Rule{rule}}}}
	}
	rng := rand.New(rand.NewPCG(16, 3))
	member := func() netip.Prefix {
		switch rng.IntN(6) {
		case 0:
			return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(rng.IntN(64))}), 28+rng.IntN(4)).Masked()
		case 1:
			return netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(rng.IntN(32))}), 128)
		default:
			return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(rng.IntN(64))}), 32)
		}
	}
	var members []netip.Prefix
	for range 40 {
		members = append(members, member())
	}
	c := compile(spec(members), compiled{})
	derived := 0
	for step := range 300 {
		next := slices.Clone(members)
		for range 1 + rng.IntN(3) {
			if len(next) > 0 && rng.IntN(2) == 0 {
				i := rng.IntN(len(next))
				next = slices.Delete(next, i, i+1)
			} else {
				next = append(next, member())
			}
		}
		rng.Shuffle(len(next), func(i, j int) { next[i], next[j] = next[j], next[i] })
		want := compile(spec(next), compiled{}).groups["web"].elems()
		got := compile(spec(next), c)
		g := got.groups["web"]
		if !sameSets(g.elems(), want) {
			t.Fatalf("step %d: the group compiled as a change holds\n%v\nfrom scratch\n%v", step, g.elems(), want)
		}
		if d := got.deltas["web"]; d != nil {
			derived++
			if d.base != c.groups["web"] {
				t.Fatalf("step %d: the change is of another compilation", step)
			}
			after := c.groups["web"].elems()
			for k, es := range d.delete {
				after[k] = slices.DeleteFunc(after[k], func(e nfsock.Element) bool {
					return slices.ContainsFunc(es, func(x nfsock.Element) bool { return x.Equal(e) })
				})
			}
			for k, es := range d.added {
				after[k] = append(after[k], es...)
			}
			if !sameSets(after, want) {
				t.Fatalf("step %d: the elements before with the change applied are\n%v\nwant\n%v", step, after, want)
			}
			if n := len(d.lost); n > len(members) {
				t.Fatalf("step %d: %d members lost of %d", step, n, len(members))
			}
		} else if g != c.groups["web"] {
			t.Fatalf("step %d: a new compilation without a change, though the group was there", step)
		}
		members, c = next, got
	}
	if derived == 0 {
		t.Fatal("no change was compiled as one: the sequence tests nothing")
	}
}

// sameSets reports whether two sets of sets hold the same elements,
// in any order.
func sameSets(a, b map[setKey][]nfsock.Element) bool {
	norm := func(m map[setKey][]nfsock.Element) map[setKey][]nfsock.Element {
		out := map[setKey][]nfsock.Element{}
		for k, es := range m {
			if len(es) == 0 {
				continue
			}
			es = slices.Clone(es)
			slices.SortFunc(es, func(x, y nfsock.Element) int {
				if c := bytes.Compare(x.Key, y.Key); c != 0 {
					return c
				}
				return bytes.Compare(x.KeyEnd, y.KeyEnd)
			})
			out[k] = es
		}
		return out
	}
	x, y := norm(a), norm(b)
	if len(x) != len(y) {
		return false
	}
	for k, es := range x {
		if !slices.EqualFunc(es, y[k], func(p, q nfsock.Element) bool { return p.Equal(q) }) {
			return false
		}
	}
	return true
}

// TestGroupJoinCostFlat: a member joining a remote group, compiled as a
// change of the last compilation and matched for connections to forget
// as Apply does, allocates as many bytes at 10,000 members as at 100:
// neither the members nor their elements are copied or walked whole.
func TestGroupJoinCostFlat(t *testing.T) {
	mac, _ := net.ParseMAC("fa:16:3e:00:00:02")
	rule := Rule{Direction: Ingress, ProtoMax: 255, PortMax: 65535, Group: "web"}
	addr := func(i int) netip.Prefix {
		return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 32)
	}
	spec := func(members Members) Spec {
		return Spec{Zoned: []string{"nsb-web"}, Groups: map[string]Members{"web": members},
			Ports: []Port{{Interface: "tapweb", MAC: mac, Bridge: "nsb-web", Rules: []Rule{rule}}}}
	}
	perJoin := func(n int) float64 {
		var members Members
		for i := range n {
			members = members.With(addr(i))
		}
		c := compile(spec(members), compiled{})
		const joins = 200
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for i := range joins {
			members = members.With(addr(n + i))
			next := compile(spec(members), c)
			if next.deltas["web"] == nil {
				t.Fatal("a join not compiled as a change")
			}
			newFlowMatcher(c, next).from()
			c = next
		}
		runtime.ReadMemStats(&after)
		return float64(after.TotalAlloc-before.TotalAlloc) / joins
	}
	small, big := perJoin(100), perJoin(10000)
	t.Logf("bytes allocated per join: %.0f at 100 members, %.0f at 10,000", small, big)
	if big > 2*small+4096 {
		t.Errorf("a join at 10,000 members allocates %.0f bytes, at 100 members %.0f: the cost follows the group's size", big, small)
	}
}
