package capture

import (
	"encoding/binary"
	"net/netip"
	"testing"
)

// etherIPv4 builds an Ethernet frame carrying an IPv4 packet of proto with
// l4 as its transport header and payload.
func etherIPv4(srcMAC, dstMAC byte, src, dst string, proto uint8, l4 []byte) []byte {
	f := make([]byte, 14+20)
	copy(f[0:6], []byte{0xfa, 0x16, 0x3e, 0, 0, dstMAC})
	copy(f[6:12], []byte{0xfa, 0x16, 0x3e, 0, 0, srcMAC})
	binary.BigEndian.PutUint16(f[12:14], EtherTypeIPv4)
	ip := f[14:]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:4], uint16(20+len(l4)))
	ip[8], ip[9] = 64, proto
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(ip[12:16], s[:])
	copy(ip[16:20], d[:])
	return append(f, l4...)
}

func udp(sport, dport uint16, payload []byte) []byte {
	h := binary.BigEndian.AppendUint16(nil, sport)
	h = binary.BigEndian.AppendUint16(h, dport)
	h = binary.BigEndian.AppendUint16(h, uint16(8+len(payload)))
	return append(append(h, 0, 0), payload...)
}

// TestDecodeVXLAN: a UDP datagram to port 4789 with a VXLAN header whose
// VNI is valid carries a frame, decoded as Inner; anything else is plain
// UDP.
func TestDecodeVXLAN(t *testing.T) {
	echo := etherIPv4(1, 2, "10.7.0.1", "10.7.0.2", ProtoICMP, []byte{ICMPEchoRequest, 0, 0, 0, 0, 7, 0, 1, 'h', 'i'})
	header := func(flags byte, vni uint32) []byte {
		return []byte{flags, 0, 0, 0, byte(vni >> 16), byte(vni >> 8), byte(vni), 0}
	}
	for _, tc := range []struct {
		name    string
		dport   uint16
		payload []byte
		vni     uint32
		summary string
	}{
		{"VXLAN", VXLANPort, append(header(0x08, 4242), echo...), 4242,
			"192.0.2.1:40000 > 192.0.2.2:4789: VXLAN, vni 4242: fa:16:3e:00:00:01 > fa:16:3e:00:00:02, 10.7.0.1 > 10.7.0.2: ICMP echo request, id 7, seq 1, length 10"},
		{"VNI not valid", VXLANPort, append(header(0, 4242), echo...), 0, "192.0.2.1:40000 > 192.0.2.2:4789: UDP, length 52"},
		{"another port", 8472, append(header(0x08, 4242), echo...), 0, "192.0.2.1:40000 > 192.0.2.2:8472: UDP, length 52"},
		{"too short for a frame", VXLANPort, header(0x08, 4242), 0, "192.0.2.1:40000 > 192.0.2.2:4789: UDP, length 8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := Decode(etherIPv4(9, 10, "192.0.2.1", "192.0.2.2", ProtoUDP, udp(40000, tc.dport, tc.payload)))
			if p.VNI != tc.vni || (p.Inner != nil) != (tc.vni != 0) {
				t.Errorf("VNI %d, inner %v; want VNI %d", p.VNI, p.Inner, tc.vni)
			}
			if p.Inner != nil && (p.Inner.Src != netip.MustParseAddr("10.7.0.1") || p.Inner.ICMPID != 7 || string(p.Inner.Payload) != "hi") {
				t.Errorf("inner packet %+v", p.Inner)
			}
			if got := p.Summary(); got != tc.summary {
				t.Errorf("summary %q, want %q", got, tc.summary)
			}
		})
	}
}
