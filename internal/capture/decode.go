package capture

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// EtherTypes and IP protocols the decoder knows.
const (
	EtherTypeIPv4 = 0x0800
	EtherTypeARP  = 0x0806
	EtherTypeIPv6 = 0x86dd
	EtherTypeVLAN = 0x8100

	ProtoICMP = 1
	ProtoTCP  = 6
	ProtoUDP  = 17
)

// ICMP types the summaries name.
const (
	ICMPEchoReply   = 0
	ICMPUnreachable = 3
	ICMPEchoRequest = 8
	ICMPTimeExceed  = 11
)

// TCP flag bits.
const (
	TCPFin = 0x01
	TCPSyn = 0x02
	TCPRst = 0x04
	TCPPsh = 0x08
	TCPAck = 0x10
)

// Packet is an Ethernet frame decoded as far as nsnet needs: Ethernet,
// ARP, IPv4 and its ICMP, TCP or UDP header, IPv6 (through its extension
// headers) and its ICMPv6 (neighbour discovery too), TCP or UDP header. Fields of layers the frame
// does not have are zero. An ICMP error carries the packet it quotes in
// Quoted.
type Packet struct {
	SrcMAC, DstMAC net.HardwareAddr
	EtherType      uint16

	// ARP
	ARPOp                uint16
	ARPSender, ARPTarget netip.Addr

	// IPv4 or IPv6 (TTL is IPv6's hop limit)
	Src, Dst netip.Addr
	Proto    uint8
	TTL      uint8
	IPID     uint16
	IPLen    int

	// TCP and UDP
	SrcPort, DstPort uint16
	TCPFlags         uint8
	Seq, Ack         uint32

	// IPv6: the flow label, the extension headers crossed on the way to
	// the transport (Proto is the transport's next-header value), and a
	// fragment's offset (IPID holds the low 16 bits of its
	// identification).
	FlowLabel  uint32
	ExtHeaders []uint8
	FragOffset uint16

	// ICMP and ICMPv6
	ICMPType, ICMPCode uint8
	ICMPID, ICMPSeq    uint16
	Quoted             *Packet
	// MTU is an ICMPv6 packet too big's MTU.
	MTU uint32
	// ND is what an ICMPv6 neighbour discovery message says.
	ND *ND

	// Payload is what follows the transport header (the ICMP echo data,
	// the UDP or TCP payload).
	Payload []byte

	// VXLAN: a UDP datagram to VXLANPort carrying a VXLAN header with a
	// valid VNI is a tunnel between two hosts' VTEPs; Inner is the frame
	// it carries, decoded, and VNI its network.
	VNI   uint32
	Inner *Packet
}

// VXLANPort is the IANA port of VXLAN (RFC 7348), nsnet's VXLAN devices'
// dstport.
const VXLANPort = 4789

// decodeVXLAN decodes the UDP payload of p as VXLAN when it is sent to
// VXLANPort: an 8-byte header whose I flag says the VNI is valid, then an
// Ethernet frame.
func (p *Packet) decodeVXLAN() {
	b := p.Payload
	if p.DstPort != VXLANPort || len(b) < 8+14 || b[0]&0x08 == 0 {
		return
	}
	p.VNI = uint32(b[4])<<16 | uint32(b[5])<<8 | uint32(b[6])
	p.Inner = Decode(b[8:])
}

// Decode parses an Ethernet frame. It never fails: what it cannot parse is
// left zero, and the EtherType says what the frame was.
func Decode(frame []byte) *Packet {
	p := &Packet{}
	if len(frame) < 14 {
		return p
	}
	p.DstMAC = net.HardwareAddr(frame[0:6])
	p.SrcMAC = net.HardwareAddr(frame[6:12])
	p.EtherType = binary.BigEndian.Uint16(frame[12:14])
	rest := frame[14:]
	if p.EtherType == EtherTypeVLAN && len(rest) >= 4 {
		p.EtherType = binary.BigEndian.Uint16(rest[2:4])
		rest = rest[4:]
	}
	switch p.EtherType {
	case EtherTypeARP:
		p.decodeARP(rest)
	case EtherTypeIPv4:
		p.decodeIPv4(rest)
	case EtherTypeIPv6:
		p.decodeIPv6(rest)
	}
	return p
}

func (p *Packet) decodeARP(b []byte) {
	// Ethernet/IPv4 ARP only: hardware length 6, protocol length 4.
	if len(b) < 28 || b[4] != 6 || b[5] != 4 {
		return
	}
	p.ARPOp = binary.BigEndian.Uint16(b[6:8])
	p.ARPSender = netip.AddrFrom4([4]byte(b[14:18]))
	p.ARPTarget = netip.AddrFrom4([4]byte(b[24:28]))
}

// decodeIPv4 decodes an IPv4 packet (header and transport); it is also how
// the packet an ICMP error quotes is read, which may be cut short.
func (p *Packet) decodeIPv4(b []byte) {
	if len(b) < 20 || b[0]>>4 != 4 {
		return
	}
	ihl := int(b[0]&0x0f) * 4
	if ihl < 20 || len(b) < ihl {
		return
	}
	p.IPLen = int(binary.BigEndian.Uint16(b[2:4]))
	p.IPID = binary.BigEndian.Uint16(b[4:6])
	p.TTL = b[8]
	p.Proto = b[9]
	p.Src = netip.AddrFrom4([4]byte(b[12:16]))
	p.Dst = netip.AddrFrom4([4]byte(b[16:20]))
	end := len(b)
	if p.IPLen >= ihl && p.IPLen < end {
		end = p.IPLen // Ethernet padding is not payload
	}
	l4 := b[ihl:end]
	// Only the first fragment carries the transport header.
	if binary.BigEndian.Uint16(b[6:8])&0x1fff != 0 {
		return
	}
	switch p.Proto {
	case ProtoTCP, ProtoUDP:
		p.decodeL4(l4)
	case ProtoICMP:
		if len(l4) < 8 {
			return
		}
		p.ICMPType, p.ICMPCode = l4[0], l4[1]
		switch p.ICMPType {
		case ICMPEchoRequest, ICMPEchoReply:
			p.ICMPID = binary.BigEndian.Uint16(l4[4:6])
			p.ICMPSeq = binary.BigEndian.Uint16(l4[6:8])
			p.Payload = l4[8:]
		case ICMPUnreachable, ICMPTimeExceed:
			q := &Packet{EtherType: EtherTypeIPv4}
			q.decodeIPv4(l4[8:])
			if q.Src.IsValid() {
				p.Quoted = q
			}
		}
	}
}

// IsIPv4 reports whether the frame carried an IPv4 packet.
func (p *Packet) IsIPv4() bool { return p.EtherType == EtherTypeIPv4 && p.Src.IsValid() }

// Summary is a one-line description in the manner of tcpdump's:
// "10.0.0.5 > 203.0.113.1: ICMP echo request, id 7, seq 1".
func (p *Packet) Summary() string {
	switch {
	case p.EtherType == EtherTypeARP && p.ARPSender.IsValid():
		if p.ARPOp == 1 {
			return fmt.Sprintf("ARP, Request who-has %s tell %s", p.ARPTarget, p.ARPSender)
		}
		return fmt.Sprintf("ARP, Reply %s is-at %s", p.ARPSender, p.SrcMAC)
	case p.IsIPv4():
		return p.ipSummary()
	case p.IsIPv6():
		return p.ip6Summary()
	case p.EtherType == EtherTypeIPv6:
		return "IP6, truncated"
	}
	return fmt.Sprintf("ethertype 0x%04x", p.EtherType)
}

func (p *Packet) ipSummary() string {
	if p.Inner != nil {
		return fmt.Sprintf("%s > %s: VXLAN, vni %d: %s > %s, %s", netip.AddrPortFrom(p.Src, p.SrcPort), netip.AddrPortFrom(p.Dst, p.DstPort),
			p.VNI, p.Inner.SrcMAC, p.Inner.DstMAC, p.Inner.Summary())
	}
	switch p.Proto {
	case ProtoTCP:
		return fmt.Sprintf("%s > %s: TCP [%s] seq %d, ack %d, length %d",
			netip.AddrPortFrom(p.Src, p.SrcPort), netip.AddrPortFrom(p.Dst, p.DstPort),
			TCPFlagString(p.TCPFlags), p.Seq, p.Ack, len(p.Payload))
	case ProtoUDP:
		return fmt.Sprintf("%s > %s: UDP, length %d",
			netip.AddrPortFrom(p.Src, p.SrcPort), netip.AddrPortFrom(p.Dst, p.DstPort), len(p.Payload))
	case ProtoICMP:
		return fmt.Sprintf("%s > %s: ICMP %s", p.Src, p.Dst, p.icmpString())
	}
	return fmt.Sprintf("%s > %s: ip-proto-%d", p.Src, p.Dst, p.Proto)
}

func (p *Packet) icmpString() string {
	switch p.ICMPType {
	case ICMPEchoRequest:
		return fmt.Sprintf("echo request, id %d, seq %d, length %d", p.ICMPID, p.ICMPSeq, len(p.Payload)+8)
	case ICMPEchoReply:
		return fmt.Sprintf("echo reply, id %d, seq %d, length %d", p.ICMPID, p.ICMPSeq, len(p.Payload)+8)
	case ICMPUnreachable:
		s := UnreachableReason(p.ICMPCode)
		if q := p.Quoted; q != nil {
			s += fmt.Sprintf(" (for %s)", q.flowString())
		}
		return s
	case ICMPTimeExceed:
		return "time exceeded in-transit"
	}
	return fmt.Sprintf("type %d, code %d", p.ICMPType, p.ICMPCode)
}

// flowString names a packet by its addresses, protocol and ports.
func (p *Packet) flowString() string {
	switch p.Proto {
	case ProtoTCP, ProtoUDP:
		return fmt.Sprintf("%s %s > %s", ProtoName(p.Proto),
			netip.AddrPortFrom(p.Src, p.SrcPort), netip.AddrPortFrom(p.Dst, p.DstPort))
	}
	return fmt.Sprintf("%s %s > %s", ProtoName(p.Proto), p.Src, p.Dst)
}

// UnreachableReason names an ICMP destination-unreachable code.
func UnreachableReason(code uint8) string {
	switch code {
	case 0:
		return "net unreachable"
	case 1:
		return "host unreachable"
	case 2:
		return "protocol unreachable"
	case 3:
		return "port unreachable"
	case 4:
		return "fragmentation needed"
	case 9, 10, 13:
		return "administratively prohibited"
	}
	return fmt.Sprintf("unreachable code %d", code)
}

// ProtoName is the lower-case name of an IP protocol.
func ProtoName(proto uint8) string {
	switch proto {
	case ProtoICMP:
		return "icmp"
	case ProtoTCP:
		return "tcp"
	case ProtoUDP:
		return "udp"
	case ProtoICMPv6:
		return "icmp6"
	}
	return fmt.Sprintf("proto-%d", proto)
}

// TCPFlagString renders flags as tcpdump does: S, S., R., F., P. …
func TCPFlagString(flags uint8) string {
	var b strings.Builder
	for _, f := range []struct {
		bit  uint8
		name byte
	}{{TCPSyn, 'S'}, {TCPFin, 'F'}, {TCPPsh, 'P'}, {TCPRst, 'R'}} {
		if flags&f.bit != 0 {
			b.WriteByte(f.name)
		}
	}
	if flags&TCPAck != 0 {
		b.WriteByte('.')
	}
	if b.Len() == 0 {
		return "none"
	}
	return b.String()
}
