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
}

func TestDecodeTrace(t *testing.T) {
	u32 := func(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
	msg := func(typ uint32, verdict int32, policy bool) []byte {
		ae := netlink.NewAttributeEncoder()
		ae.String(unix.NFTA_TRACE_TABLE, "sg")
		ae.String(unix.NFTA_TRACE_CHAIN, "port-1")
		ae.Bytes(unix.NFTA_TRACE_RULE_HANDLE, binary.BigEndian.AppendUint64(nil, 42))
		ae.Bytes(unix.NFTA_TRACE_TYPE, u32(typ))
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
			NFTEvent{Family: "inet", Table: "sg", Chain: "port-1", Handle: 42, Verdict: "drop"}},
		{"policy drops", msg(unix.NFT_TRACETYPE_POLICY, nfDrop, true), true,
			NFTEvent{Family: "inet", Table: "sg", Chain: "port-1", Handle: 42, Verdict: "drop", Policy: true}},
		{"rule accepts", msg(unix.NFT_TRACETYPE_RULE, nfAccept, false), true,
			NFTEvent{Family: "inet", Table: "sg", Chain: "port-1", Handle: 42, Verdict: "accept"}},
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
}
