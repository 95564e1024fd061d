package trace

import (
	"encoding/binary"
	"net/netip"
	"reflect"
	"testing"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/nsnet/nsnet/internal/capture"
)

func TestProbeMatching(t *testing.T) {
	a := netip.MustParseAddr
	icmp := &Probe{Proto: capture.ProtoICMP, ICMPID: 7, Marker: "nsnet-trace-0123456789ab"}
	tcp := &Probe{Proto: capture.ProtoTCP, SrcPort: 40000, DstPort: 80, Seq: 1000}
	udp := &Probe{Proto: capture.ProtoUDP, SrcPort: 40000, DstPort: 53, Marker: "nsnet-trace-0123456789ab"}
	ip := func(src, dst string, proto uint8) capture.Packet {
		return capture.Packet{EtherType: capture.EtherTypeIPv4, Src: a(src), Dst: a(dst), Proto: proto}
	}
	// The probes as NAT left them: other addresses, ports and ICMP id.
	echo := ip("198.51.100.2", "203.0.113.1", capture.ProtoICMP)
	echo.ICMPType, echo.ICMPID, echo.Payload = capture.ICMPEchoRequest, 999, []byte(icmp.Marker)
	syn := ip("198.51.100.2", "203.0.113.1", capture.ProtoTCP)
	syn.SrcPort, syn.DstPort, syn.TCPFlags, syn.Seq = 3333, 80, capture.TCPSyn, 1000
	dgram := ip("198.51.100.2", "203.0.113.1", capture.ProtoUDP)
	dgram.SrcPort, dgram.DstPort, dgram.Payload = 3333, 53, []byte(udp.Marker)

	reply := ip("203.0.113.1", "198.51.100.2", capture.ProtoICMP)
	reply.ICMPType, reply.Payload = capture.ICMPEchoReply, []byte(icmp.Marker)
	synAck := ip("203.0.113.1", "198.51.100.2", capture.ProtoTCP)
	synAck.TCPFlags, synAck.Ack = capture.TCPSyn|capture.TCPAck, 1001
	rst := synAck
	rst.TCPFlags = capture.TCPRst | capture.TCPAck
	otherSyn := syn
	otherSyn.Seq = 5
	unreachTCP := ip("10.9.0.1", "10.9.0.2", capture.ProtoICMP)
	unreachTCP.ICMPType, unreachTCP.Quoted = capture.ICMPUnreachable, &syn
	unreachUDP := ip("10.0.0.3", "10.0.0.2", capture.ProtoICMP)
	unreachUDP.ICMPType, unreachUDP.ICMPCode, unreachUDP.Quoted = capture.ICMPUnreachable, 3, &dgram
	udpReply := ip("203.0.113.1", "198.51.100.2", capture.ProtoUDP)
	udpReply.SrcPort, udpReply.DstPort = 53, 3333
	strayUDP := udpReply
	strayUDP.DstPort = 4444

	tests := []struct {
		name            string
		probe           *Probe
		pk              capture.Packet
		fwd             *capture.Packet // the probe at the same interface
		isProbe, answer bool
	}{
		{"echo request, translated", icmp, echo, nil, true, false},
		{"echo reply", icmp, reply, &echo, false, true},
		{"another ping", icmp, func() capture.Packet { p := echo; p.Payload = []byte("x"); return p }(), nil, false, false},
		{"SYN, translated", tcp, syn, nil, true, false},
		{"another SYN", tcp, otherSyn, nil, false, false},
		{"SYN-ACK", tcp, synAck, &syn, false, true},
		{"RST", tcp, rst, &syn, false, true},
		{"net unreachable quoting the SYN", tcp, unreachTCP, nil, false, true},
		{"UDP, translated", udp, dgram, nil, true, false},
		{"port unreachable quoting the datagram", udp, unreachUDP, nil, false, true},
		{"UDP reply to the flow", udp, udpReply, &dgram, false, true},
		{"UDP to another port", udp, strayUDP, &dgram, false, false},
		{"UDP reply, the probe not seen here", udp, udpReply, nil, false, false},
	}
	// IPv6: an ICMPv6 echo, and the same probes' answers.
	icmp6 := &Probe{Proto: capture.ProtoICMPv6, ICMPID: 7, Marker: "nsnet-trace-0123456789ab"}
	ip6 := func(src, dst string, proto uint8) capture.Packet {
		return capture.Packet{EtherType: capture.EtherTypeIPv6, Src: a(src), Dst: a(dst), Proto: proto}
	}
	echo6 := ip6("2001:db8:1::5", "2001:db8:ff::1", capture.ProtoICMPv6)
	echo6.ICMPType, echo6.ICMPID, echo6.Payload = capture.ICMPv6EchoRequest, 7, []byte(icmp6.Marker)
	reply6 := ip6("2001:db8:ff::1", "2001:db8:1::5", capture.ProtoICMPv6)
	reply6.ICMPType, reply6.Payload = capture.ICMPv6EchoReply, []byte(icmp6.Marker)
	// An ICMPv4 echo reply with the same marker answers no ICMPv6 probe.
	reply4 := reply
	syn6 := ip6("2001:db8:1::5", "2001:db8:ff::1", capture.ProtoTCP)
	syn6.SrcPort, syn6.DstPort, syn6.TCPFlags, syn6.Seq = 40000, 80, capture.TCPSyn, 1000
	rst6 := ip6("2001:db8:ff::1", "2001:db8:1::5", capture.ProtoTCP)
	rst6.TCPFlags, rst6.Ack = capture.TCPRst|capture.TCPAck, 1001
	dgram6 := ip6("2001:db8:1::5", "2001:db8:ff::1", capture.ProtoUDP)
	dgram6.SrcPort, dgram6.DstPort, dgram6.Payload = 40000, 53, []byte(udp.Marker)
	unreach6 := func(code uint8, quoted *capture.Packet) capture.Packet {
		u := ip6("2001:db8:1::1", "2001:db8:1::5", capture.ProtoICMPv6)
		u.ICMPType, u.ICMPCode, u.Quoted = capture.ICMPv6Unreachable, code, quoted
		return u
	}
	tooBig := unreach6(0, &echo6)
	tooBig.ICMPType = capture.ICMPv6PacketTooBig
	// An ICMPv6 neighbour solicitation is neither.
	ns := ip6("2001:db8:1::5", "ff02::1:ff00:1", capture.ProtoICMPv6)
	ns.ICMPType = capture.ICMPv6NeighborSolic
	tests = append(tests, []struct {
		name            string
		probe           *Probe
		pk              capture.Packet
		fwd             *capture.Packet
		isProbe, answer bool
	}{
		{"ICMPv6 echo request", icmp6, echo6, nil, true, false},
		{"ICMPv6 echo reply", icmp6, reply6, &echo6, false, true},
		{"ICMPv4 reply to an ICMPv6 probe", icmp6, reply4, &echo6, false, false},
		{"ICMPv6 address unreachable quoting the echo", icmp6, unreach6(3, &echo6), nil, false, true},
		{"ICMPv6 packet too big quoting the echo", icmp6, tooBig, nil, false, true},
		{"ICMPv6 no route quoting the SYN", tcp, unreach6(0, &syn6), nil, false, true},
		{"ICMPv6 port unreachable quoting the datagram", udp, unreach6(4, &dgram6), nil, false, true},
		{"IPv6 SYN", tcp, syn6, nil, true, false},
		{"IPv6 RST", tcp, rst6, &syn6, false, true},
		{"IPv6 UDP probe", udp, dgram6, nil, true, false},
		{"neighbour solicitation", icmp6, ns, nil, false, false},
	}...)
	for _, tc := range tests {
		pk := tc.pk
		if got := tc.probe.IsProbe(&pk); got != tc.isProbe {
			t.Errorf("%s: IsProbe = %v, want %v", tc.name, got, tc.isProbe)
		}
		if got := tc.probe.IsAnswer(&pk, tc.fwd); got != tc.answer {
			t.Errorf("%s: IsAnswer = %v, want %v", tc.name, got, tc.answer)
		}
	}
}

func TestChecksum(t *testing.T) {
	// An ICMP echo request with its checksum filled in sums to zero.
	p := &Probe{Proto: capture.ProtoICMP, ICMPID: 0x1234, Marker: "nsnet-trace-abc"}
	if got := checksum(p.icmpEcho(), 0); got != 0 {
		t.Errorf("checksum over a checksummed message = %#x, want 0", got)
	}
	// So does a TCP SYN with its pseudo-header, in both IP versions (the
	// pseudo-header summed here independently, word by word).
	syn := &Probe{Proto: capture.ProtoTCP, SrcPort: 40000, DstPort: 80, Seq: 0xdeadbeef}
	for _, pair := range [][2]string{{"10.0.0.5", "203.0.113.1"}, {"2001:db8:1::5", "2001:db8:ff::1"}} {
		src, dst := netip.MustParseAddr(pair[0]), netip.MustParseAddr(pair[1])
		seg := syn.tcpSyn(src, dst)
		pseudo := append(src.AsSlice(), dst.AsSlice()...)
		if src.Is4() {
			pseudo = append(pseudo, 0, capture.ProtoTCP, 0, byte(len(seg)))
		} else {
			pseudo = append(pseudo, 0, 0, 0, byte(len(seg)), 0, 0, 0, capture.ProtoTCP)
		}
		if got := checksum(append(pseudo, seg...), 0); got != 0 {
			t.Errorf("%s > %s: TCP checksum does not verify (%#x)", src, dst, got)
		}
	}
	// ICMPv6's checksum is the kernel's (it covers the pseudo-header).
	p6 := &Probe{Proto: capture.ProtoICMPv6, ICMPID: 0x1234, Marker: "nsnet-trace-abc"}
	if b := p6.icmpEcho(); b[0] != capture.ICMPv6EchoRequest || b[2] != 0 || b[3] != 0 {
		t.Errorf("ICMPv6 echo = % x, want type 128 and the checksum left to the kernel", b[:4])
	}
}

func TestDecodeTrace(t *testing.T) {
	u32 := func(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
	msg := func(typ uint32, verdict int32, policy bool) []byte {
		ae := netlink.NewAttributeEncoder()
		ae.String(unix.NFTA_TRACE_TABLE, "sg")
		ae.String(unix.NFTA_TRACE_CHAIN, "port-1")
		ae.Bytes(unix.NFTA_TRACE_RULE_HANDLE, binary.BigEndian.AppendUint64(nil, 42))
		ae.Bytes(unix.NFTA_TRACE_TYPE, u32(typ))
		// The packet's mark: a security group chain is shared by the
		// ports of a signature, the mark says whose tags the packet has.
		ae.Bytes(unix.NFTA_TRACE_MARK, u32(0x00030002))
		if policy {
			ae.Bytes(unix.NFTA_TRACE_POLICY, u32(uint32(verdict)))
		} else {
			ae.Nested(unix.NFTA_TRACE_VERDICT, func(nae *netlink.AttributeEncoder) error {
				nae.Bytes(unix.NFTA_VERDICT_CODE, u32(uint32(verdict)))
				return nil
			})
		}
		b, err := ae.Encode()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		name string
		data []byte
		ok   bool
		want NFTEvent
	}{
		{"rule drops", msg(unix.NFT_TRACETYPE_RULE, nfDrop, false), true,
			NFTEvent{Family: "inet", Table: "sg", Chain: "port-1", Handle: 42, Verdict: "drop", Mark: 0x00030002}},
		{"policy drops", msg(unix.NFT_TRACETYPE_POLICY, nfDrop, true), true,
			NFTEvent{Family: "inet", Table: "sg", Chain: "port-1", Handle: 42, Verdict: "drop", Policy: true, Mark: 0x00030002}},
		{"rule accepts", msg(unix.NFT_TRACETYPE_RULE, nfAccept, false), true,
			NFTEvent{Family: "inet", Table: "sg", Chain: "port-1", Handle: 42, Verdict: "accept", Mark: 0x00030002}},
		{"a jump is no verdict", msg(unix.NFT_TRACETYPE_RULE, -3, false), false, NFTEvent{}},
		{"a continue is no verdict", msg(unix.NFT_TRACETYPE_RULE, -1, false), false, NFTEvent{}},
		{"a return is no verdict", msg(unix.NFT_TRACETYPE_RETURN, -5, false), false, NFTEvent{}},
	}
	for _, tc := range tests {
		got, ok := decodeTrace(unix.NFPROTO_INET, tc.data)
		if ok != tc.ok || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: decodeTrace = %+v, %v; want %+v, %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
	// A verdict of an ip6 family table is named so.
	if got, ok := decodeTrace(unix.NFPROTO_IPV6, msg(unix.NFT_TRACETYPE_RULE, nfDrop, false)); !ok || got.Family != "ip6" {
		t.Errorf("ip6 table's drop: %+v, %v", got, ok)
	}
}
