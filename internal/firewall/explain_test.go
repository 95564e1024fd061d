package firewall

import "testing"

// TestPortChain: a signature's chain is shared by ports, so the port a
// trace event is about comes from the packet's mark: the input port's tag
// (high half) for egress, the output port's (low half) for ingress.
func TestPortChain(t *testing.T) {
	for _, c := range []struct {
		chain string
		mark  uint32
		dir   Direction
		tag   uint16
		ok    bool
	}{
		{"egress_s3", 7<<16 | 9, Egress, 7, true},
		{"ingress_s3", 7<<16 | 9, Ingress, 9, true},
		{"ingress_s12", markAdmitted | 5, Ingress, 5, true},
		{"egress_s3", 9, Egress, 0, false},          // no input port's tag
		{"ingress_3", 7<<16 | 9, Ingress, 0, false}, // the per-port layout's name
		{"egress_s03", 7 << 16, Egress, 0, false},
		{"egress_s0", 7 << 16, Egress, 0, false},
		{"bridged", 7<<16 | 9, Egress, 0, false},
	} {
		dir, tag, ok := PortChain(c.chain, c.mark)
		if ok != c.ok || ok && (dir != c.dir || tag != c.tag) {
			t.Errorf("PortChain(%q, %#x) = %v, %d, %v; want %v, %d, %v", c.chain, c.mark, dir, tag, ok, c.dir, c.tag, c.ok)
		}
	}
}
