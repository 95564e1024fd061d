package firewall

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
)

// TestSignatureNumbers: whatever the order of the spec's ports, every
// port's signature is the one of its rules, and no two signatures share
// a number — also when the ports of a signature all move to other rules
// (it changes in place, keeping its number) while a new port takes the
// rules they left.
func TestSignatureNumbers(t *testing.T) {
	any4 := netip.MustParsePrefix("0.0.0.0/0")
	r0 := []Rule{{Direction: Egress, ProtoMax: 255, PortMax: 65535, Remote: any4}}
	r1 := append([]Rule{{Direction: Ingress, ProtoMin: 6, ProtoMax: 6, PortMin: 22, PortMax: 22, Remote: any4}}, r0...)
	port := func(i int, rules []Rule) Port {
		return Port{Interface: fmt.Sprintf("tap%d", i), MAC: net.HardwareAddr{0xfa, 0x16, 0x3e, 0, 0, byte(i)},
			Addresses: []netip.Addr{netip.AddrFrom4([4]byte{10, 0, 0, byte(i)})}, Rules: rules}
	}
	prev := compile(Spec{Ports: []Port{port(1, r0), port(2, r0)}}, compiled{})
	moved := prev.ports[prev.tags["tap1"]].sig.num
	for _, c := range []struct {
		name  string
		ports []Port
	}{
		{"moved ports first", []Port{port(1, r1), port(2, r1), port(3, r0)}},
		{"new port first", []Port{port(3, r0), port(1, r1), port(2, r1)}},
	} {
		next := compile(Spec{Ports: c.ports}, prev)
		byNum := map[uint16]string{}
		for _, p := range c.ports {
			sg := next.ports[next.tags[p.Interface]].sig
			if sg.key != sigKey(p.Rules) {
				t.Errorf("%s: %s has signature %d of other rules", c.name, p.Interface, sg.num)
			}
			if k, ok := byNum[sg.num]; ok && k != sg.key {
				t.Errorf("%s: signature number %d given to two signatures", c.name, sg.num)
			}
			byNum[sg.num] = sg.key
			if next.sigs[sg.num] != sg {
				t.Errorf("%s: %s's signature %d is not the compilation's", c.name, p.Interface, sg.num)
			}
		}
		if len(next.sigs) != 2 || len(byNum) != 2 {
			t.Errorf("%s: %d signatures, %d numbers; want 2", c.name, len(next.sigs), len(byNum))
		}
		if c.name == "moved ports first" && next.ports[next.tags["tap1"]].sig.num != moved {
			t.Errorf("%s: the signature whose ports all moved did not keep its number %d", c.name, moved)
		}
	}
}
