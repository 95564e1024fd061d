package firewall

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"net/netip"
	"reflect"
	"slices"
	"testing"
)

// benchSpec is n ports of one group whose ingress rules name the group,
// port i being 10.80.i/32 and a member, and the spec with port n added,
// made from it as the agent makes the next spec: the same ports (slices
// shared) and the group's members one element more.
func benchSpec(n int) (base, more Spec) {
	port := func(i int) Port {
		a := netip.AddrFrom4([4]byte{10, 80, byte(i >> 8), byte(i)})
		return Port{
			Interface: fmt.Sprintf("tapscale%05d", i),
			MAC:       net.HardwareAddr{0xfa, 0x16, 0x3e, 0, byte(i >> 8), byte(i)},
			Addresses: []netip.Addr{a},
			Bridge:    "nsb-scale",
			Rules: []Rule{
				{Direction: Egress, ProtoMax: 255, PortMax: 65535, Remote: netip.MustParsePrefix("0.0.0.0/0")},
				{Direction: Ingress, ProtoMax: 255, PortMax: 65535, Group: "sg"},
			},
		}
	}
	var members []netip.Prefix
	for i := range n {
		base.Ports = append(base.Ports, port(i))
		members = append(members, netip.PrefixFrom(base.Ports[i].Addresses[0], 32))
	}
	base.Zoned = []string{"nsb-scale"}
	base.Groups = map[string]Members{"sg": MembersOf(members...)}
	more.Ports = append(append([]Port(nil), base.Ports...), port(n))
	more.Zoned = base.Zoned
	more.Groups = map[string]Members{"sg": base.Groups["sg"].With(netip.PrefixFrom(more.Ports[n].Addresses[0], 32))}
	return base, more
}

// BenchmarkCompilePortAdd is what Apply computes, besides the kernel's
// work, to add one port to n: validation, compilation against the
// compilation of the n, and what the conntrack cleanup must match; the
// spec whole, and as a change of the last one (Spec.Base).
//
//	go test -run '^$' -bench CompilePortAdd ./internal/firewall
func BenchmarkCompilePortAdd(b *testing.B) {
	for _, n := range []int{10, 1000} {
		for _, asChange := range []bool{false, true} {
			b.Run(fmt.Sprintf("%d/change=%t", n, asChange), func(b *testing.B) {
				base, more := benchSpec(n)
				more.Base, more.Changed = 1, []string{more.Ports[n].Interface}
				prev := compile(base, compiled{})
				for b.Loop() {
					c, ok := compiled{}, false
					if asChange {
						c, ok = compileChanged(more, prev)
					}
					if ok {
						if err := more.validateChanged(); err != nil {
							b.Fatal(err)
						}
					} else {
						if err := more.Validate(); err != nil {
							b.Fatal(err)
						}
						c = compile(more, prev)
					}
					newFlowMatcher(prev, c)
				}
			})
		}
	}
}

// TestCompileChangedMatchesCompile: a spec compiled as a change of the
// last one (compileChanged, given the ports that changed) is compiled as
// compile compiles it whole — the same tags, signatures and elements, the
// ports it did not change the very compilations of before — over random
// sequences of ports added, removed, changed and given other rules, and
// of group members coming and going; and the ports it reports changed
// and gone are the ones that differ.
func TestCompileChangedMatchesCompile(t *testing.T) {
	any4 := netip.MustParsePrefix("0.0.0.0/0")
	ruleSets := [][]Rule{
		{{Direction: Egress, ProtoMax: 255, PortMax: 65535, Remote: any4}, {Direction: Ingress, ProtoMax: 255, PortMax: 65535, Group: "sg"}},
		{{Direction: Ingress, ProtoMin: 6, ProtoMax: 6, PortMin: 22, PortMax: 22, Remote: any4}},
		{{Direction: Ingress, ProtoMax: 255, PortMax: 65535, Group: "sg2"}},
	}
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 1))
		byName := map[string]Port{}
		members := MembersOf()
		spec := func(changed []string) Spec {
			s := Spec{Zoned: []string{"nsb-t"}, Groups: map[string]Members{"sg": members, "sg2": MembersOf(netip.MustParsePrefix("10.9.0.0/16"))},
				Base: 1, Changed: changed}
			for _, name := range slices.Sorted(maps.Keys(byName)) {
				s.Ports = append(s.Ports, byName[name])
			}
			return s
		}
		prev := compile(spec(nil), compiled{})
		for step := range 300 {
			var changed []string
			for range 1 + rng.IntN(3) {
				name := fmt.Sprintf("tap%02d", rng.IntN(8+int(seed%3)*11)) // few ports: signatures left without any
				p, had := byName[name]
				a := netip.AddrFrom4([4]byte{10, 80, 0, byte(rng.IntN(250))})
				switch op := rng.IntN(10); {
				case op < 4 || !had: // added, or changed but for its rules
					if !had {
						p = Port{Interface: name, MAC: net.HardwareAddr{0xfa, 0x16, 0x3e, 0, 0, byte(rng.IntN(250))},
							Bridge: "nsb-t", Rules: ruleSets[rng.IntN(len(ruleSets))]}
					}
					p.Addresses = []netip.Addr{a}
					byName[name] = p
					members = members.With(netip.PrefixFrom(a, 32))
				case op < 7:
					delete(byName, name)
					members = members.Without(netip.PrefixFrom(p.Addresses[0], 32))
				case op < 9: // other rules
					p.Rules = ruleSets[rng.IntN(len(ruleSets))]
					byName[name] = p
				default: // listed, not changed
				}
				changed = append(changed, name)
			}
			s := spec(changed)
			want := compile(s, prev)
			got, ok := compileChanged(s, prev)
			if !ok {
				prev = want
				continue
			}
			where := fmt.Sprintf("seed %d step %d (changed %v)", seed, step, changed)
			if !reflect.DeepEqual(got.tags, want.tags) {
				t.Fatalf("%s: tags %v, want %v", where, got.tags, want.tags)
			}
			var gone, changedTags []uint16
			for tag, pe := range prev.ports {
				if want.ports[tag] == nil {
					gone = append(gone, tag)
				}
				_ = pe
			}
			for tag, w := range want.ports {
				g := got.ports[tag]
				if g == nil || g.sig.num != w.sig.num || g.sig.key != w.sig.key || !reflect.DeepEqual(g.port, w.port) || !reflect.DeepEqual(g.elems, w.elems) {
					t.Fatalf("%s: port %d compiled as %+v, want %+v", where, tag, g, w)
				}
				if (g == prev.ports[tag]) != (w == prev.ports[tag]) {
					t.Fatalf("%s: port %d: kept %v, compile keeps %v", where, tag, g == prev.ports[tag], w == prev.ports[tag])
				}
				if w != prev.ports[tag] {
					changedTags = append(changedTags, tag)
				}
			}
			slices.Sort(gone)
			slices.Sort(changedTags)
			if !slices.Equal(got.changes.gone, gone) || !slices.Equal(got.changes.changed, changedTags) {
				t.Fatalf("%s: changes %+v, want gone %v changed %v", where, *got.changes, gone, changedTags)
			}
			if len(got.sigs) != len(want.sigs) || len(got.sigByKey) != len(want.sigByKey) || !reflect.DeepEqual(got.sigPorts, want.sigPorts) || *got.used != *want.used {
				t.Fatalf("%s: signatures %v (ports %v), want %v (ports %v)", where, got.sigs, got.sigPorts, want.sigs, want.sigPorts)
			}
			for num, w := range want.sigs {
				if g := got.sigs[num]; g == nil || g.key != w.key || got.sigByKey[w.key] != g {
					t.Fatalf("%s: signature %d is %+v, want %+v", where, num, g, w)
				}
			}
			if !reflect.DeepEqual(slices.Sorted(maps.Keys(got.groups)), slices.Sorted(maps.Keys(want.groups))) || !reflect.DeepEqual(got.zones, want.zones) {
				t.Fatalf("%s: groups %v zones %v, want %v %v", where, got.groups, got.zones, want.groups, want.zones)
			}
			prev = got
		}
	}
}

// TestCompileChangedLooksAtChanges: adding a port to n, or changing or
// removing one, the compilation of the change looks at that port only,
// whatever n.
func TestCompileChangedLooksAtChanges(t *testing.T) {
	for _, n := range []int{10, 1000} {
		base, more := benchSpec(n)
		prev := compile(base, compiled{})
		changedPort := Spec{Ports: slices.Clone(base.Ports), Zoned: base.Zoned, Groups: base.Groups}
		changedPort.Ports[n/2].Addresses = []netip.Addr{netip.MustParseAddr("10.99.0.1")}
		fewer := Spec{Ports: slices.Delete(slices.Clone(base.Ports), n/2, n/2+1), Zoned: base.Zoned, Groups: base.Groups}
		for _, tc := range []struct {
			name string
			spec Spec
			port string
		}{
			{"added", more, more.Ports[n].Interface},
			{"changed", changedPort, base.Ports[n/2].Interface},
			{"removed", fewer, base.Ports[n/2].Interface},
		} {
			tc.spec.Base, tc.spec.Changed = 1, []string{tc.port}
			c, ok := compileChanged(tc.spec, prev)
			if !ok {
				t.Fatalf("%d ports, %s: not compiled as a change", n, tc.name)
			}
			if c.looked != 1 {
				t.Errorf("%d ports, %s: looked at %d ports, want 1", n, tc.name, c.looked)
			}
		}
	}
}
