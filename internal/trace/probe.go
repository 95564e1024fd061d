package trace

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"

	"github.com/nsnet/nsnet/internal/capture"
	"github.com/nsnet/nsnet/internal/netns"
)

// Probe is the one packet a trace sends, and how to recognise it and its
// answers wherever they are seen, whatever NAT did to addresses and ports:
// ICMP and UDP probes carry a marker in their payload, which no NAT
// touches; a TCP probe is a SYN with a random sequence number, which NAT
// does not rewrite either, and its answer acknowledges that number plus
// one.
type Probe struct {
	Proto   uint8  `json:"-"`
	Marker  string `json:"marker,omitempty"`
	ICMPID  uint16 `json:"icmp_id,omitempty"`
	SrcPort uint16 `json:"src_port,omitempty"`
	DstPort uint16 `json:"dst_port,omitempty"`
	Seq     uint32 `json:"tcp_seq,omitempty"`
}

// markerPrefix starts the payload of ICMP and UDP probes; random hex
// follows.
const markerPrefix = "nsnet-trace-"

// NewProbe makes a probe of proto (capture.ProtoICMP, ProtoICMPv6,
// ProtoTCP or ProtoUDP) to port (TCP and UDP), with random identifiers.
func NewProbe(proto uint8, port uint16) *Probe {
	var r [10]byte
	rand.Read(r[:])
	p := &Probe{Proto: proto, DstPort: port}
	switch proto {
	case capture.ProtoICMP, capture.ProtoICMPv6:
		p.ICMPID = binary.BigEndian.Uint16(r[0:2])
		p.Marker = markerPrefix + hex.EncodeToString(r[2:8])
	case capture.ProtoUDP:
		p.SrcPort = 40000 + binary.BigEndian.Uint16(r[0:2])%20000
		p.Marker = markerPrefix + hex.EncodeToString(r[2:8])
	case capture.ProtoTCP:
		p.SrcPort = 40000 + binary.BigEndian.Uint16(r[0:2])%20000
		p.Seq = binary.BigEndian.Uint32(r[2:6])
	}
	return p
}

// ProbeProto is the protocol of a probe to dst for what the user asked
// (capture.ProtoICMP, ProtoTCP or ProtoUDP): an ICMP echo to an IPv6
// address is ICMPv6's.
func ProbeProto(proto uint8, dst netip.Addr) uint8 {
	if proto == capture.ProtoICMP && dst.Is6() {
		return capture.ProtoICMPv6
	}
	return proto
}

// isEcho reports whether the probe is an echo request (ICMP or ICMPv6).
func (p *Probe) isEcho() bool { return p.Proto == capture.ProtoICMP || p.Proto == capture.ProtoICMPv6 }

// Describe names the probe for people.
func (p *Probe) Describe() string {
	switch p.Proto {
	case capture.ProtoICMP:
		return fmt.Sprintf("ICMP echo request, id %d, seq 1, payload %q", p.ICMPID, p.Marker)
	case capture.ProtoICMPv6:
		return fmt.Sprintf("ICMPv6 echo request, id %d, seq 1, payload %q", p.ICMPID, p.Marker)
	case capture.ProtoUDP:
		return fmt.Sprintf("UDP to port %d, payload %q", p.DstPort, p.Marker)
	}
	return fmt.Sprintf("TCP SYN to port %d, seq %d", p.DstPort, p.Seq)
}

// IsProbe reports whether pk is the probe, however translated.
func (p *Probe) IsProbe(pk *capture.Packet) bool {
	if !pk.IsIP() || pk.Proto != p.Proto {
		return false
	}
	switch p.Proto {
	case capture.ProtoICMP, capture.ProtoICMPv6:
		return pk.IsEchoRequest() && bytes.Contains(pk.Payload, []byte(p.Marker))
	case capture.ProtoUDP:
		return bytes.Contains(pk.Payload, []byte(p.Marker))
	}
	return pk.TCPFlags&capture.TCPSyn != 0 && pk.TCPFlags&capture.TCPAck == 0 && pk.Seq == p.Seq
}

// IsAnswer reports whether pk answers the probe: an echo reply, a TCP
// segment acknowledging the SYN (SYN-ACK or RST), an ICMP or ICMPv6 error
// quoting the probe, or, for UDP, a datagram back to the flow the probe
// had at the same interface (fwd, nil when the probe was not seen there).
func (p *Probe) IsAnswer(pk, fwd *capture.Packet) bool {
	if !pk.IsIP() {
		return false
	}
	if pk.IsICMP() && pk.Quoted != nil {
		q := pk.Quoted
		if q.Proto != p.Proto {
			return false
		}
		switch p.Proto {
		case capture.ProtoTCP:
			return q.Seq == p.Seq
		case capture.ProtoICMP, capture.ProtoICMPv6:
			return q.IsEchoRequest() && (bytes.Contains(q.Payload, []byte(p.Marker)) ||
				fwd != nil && q.ICMPID == fwd.ICMPID && q.Dst == fwd.Dst)
		}
		return bytes.Contains(q.Payload, []byte(p.Marker)) ||
			fwd != nil && q.SrcPort == fwd.SrcPort && q.DstPort == fwd.DstPort && q.Dst == fwd.Dst
	}
	if pk.Proto != p.Proto {
		return false
	}
	switch p.Proto {
	case capture.ProtoICMP, capture.ProtoICMPv6:
		return pk.IsEchoReply() && bytes.Contains(pk.Payload, []byte(p.Marker))
	case capture.ProtoTCP:
		return pk.TCPFlags&capture.TCPAck != 0 && pk.Ack == p.Seq+1
	}
	return fwd != nil && pk.Src == fwd.Dst && pk.Dst == fwd.Src && pk.SrcPort == fwd.DstPort && pk.DstPort == fwd.SrcPort
}

// Send sends the probe from src to dst inside namespace ns. The sockets
// are made inside the namespace (internal/netns) and closed before it
// returns.
func (p *Probe) Send(ns string, src, dst netip.Addr) error {
	if src.Is4() != dst.Is4() {
		return fmt.Errorf("probe from %s to %s: not the same IP version", src, dst)
	}
	family := unix.AF_INET
	if dst.Is6() {
		family = unix.AF_INET6
	}
	var fd int
	err := netns.DoNamed(ns, func() error {
		var err error
		switch p.Proto {
		case capture.ProtoICMP:
			fd, err = unix.Socket(family, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMP)
		case capture.ProtoICMPv6:
			// The kernel fills in an ICMPv6 raw socket's checksum
			// (RFC 3542), pseudo-header and all.
			fd, err = unix.Socket(family, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMPV6)
		case capture.ProtoTCP:
			fd, err = unix.Socket(family, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
		default:
			fd, err = unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("probe socket in %s: %w", ns, err)
	}
	defer unix.Close(fd)
	port := int(p.SrcPort)
	if p.Proto != capture.ProtoUDP {
		port = 0 // raw sockets have no ports
	}
	if err := unix.Bind(fd, sockaddr(src, port)); err != nil {
		return fmt.Errorf("bind probe socket to %s in %s: %w", src, ns, err)
	}
	var msg []byte
	port = 0
	switch p.Proto {
	case capture.ProtoICMP, capture.ProtoICMPv6:
		msg = p.icmpEcho()
	case capture.ProtoTCP:
		msg = p.tcpSyn(src, dst)
	default:
		port = int(p.DstPort)
		msg = []byte(p.Marker)
	}
	if err := unix.Sendto(fd, msg, 0, sockaddr(dst, port)); err != nil {
		return fmt.Errorf("send probe from %s to %s in %s: %w", src, dst, ns, err)
	}
	return nil
}

func sockaddr(a netip.Addr, port int) unix.Sockaddr {
	if a.Is4() {
		return &unix.SockaddrInet4{Addr: a.As4(), Port: port}
	}
	return &unix.SockaddrInet6{Addr: a.As16(), Port: port}
}

// icmpEcho is the probe's echo request; an ICMPv6 one's checksum is left
// to the kernel, which covers the pseudo-header.
func (p *Probe) icmpEcho() []byte {
	b := make([]byte, 8, 8+len(p.Marker))
	b[0] = capture.ICMPEchoRequest
	if p.Proto == capture.ProtoICMPv6 {
		b[0] = capture.ICMPv6EchoRequest
	}
	binary.BigEndian.PutUint16(b[4:6], p.ICMPID)
	binary.BigEndian.PutUint16(b[6:8], 1)
	b = append(b, p.Marker...)
	if p.Proto == capture.ProtoICMP {
		binary.BigEndian.PutUint16(b[2:4], checksum(b, 0))
	}
	return b
}

func (p *Probe) tcpSyn(src, dst netip.Addr) []byte {
	b := make([]byte, 20)
	binary.BigEndian.PutUint16(b[0:2], p.SrcPort)
	binary.BigEndian.PutUint16(b[2:4], p.DstPort)
	binary.BigEndian.PutUint32(b[4:8], p.Seq)
	b[12] = 5 << 4
	b[13] = capture.TCPSyn
	binary.BigEndian.PutUint16(b[14:16], 64240)
	// The pseudo-header: addresses, protocol, length (RFC 793; for IPv6
	// RFC 8200 section 8.1, which sums to the same with 16-byte
	// addresses).
	var sum uint32
	for _, a := range []netip.Addr{src, dst} {
		raw := a.AsSlice()
		for i := 0; i < len(raw); i += 2 {
			sum += uint32(binary.BigEndian.Uint16(raw[i:]))
		}
	}
	sum += uint32(capture.ProtoTCP) + uint32(len(b))
	binary.BigEndian.PutUint16(b[16:18], checksum(b, sum))
	return b
}

// checksum is the Internet checksum of b, starting from sum.
func checksum(b []byte, sum uint32) uint16 {
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
