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

// NewProbe makes a probe of proto (capture.ProtoICMP, ProtoTCP or
// ProtoUDP) to port (TCP and UDP), with random identifiers.
func NewProbe(proto uint8, port uint16) *Probe {
	var r [10]byte
	rand.Read(r[:])
	p := &Probe{Proto: proto, DstPort: port}
	switch proto {
	case capture.ProtoICMP:
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

// Describe names the probe for people.
func (p *Probe) Describe() string {
	switch p.Proto {
	case capture.ProtoICMP:
		return fmt.Sprintf("ICMP echo request, id %d, seq 1, payload %q", p.ICMPID, p.Marker)
	case capture.ProtoUDP:
		return fmt.Sprintf("UDP to port %d, payload %q", p.DstPort, p.Marker)
	}
	return fmt.Sprintf("TCP SYN to port %d, seq %d", p.DstPort, p.Seq)
}

// IsProbe reports whether pk is the probe, however translated.
func (p *Probe) IsProbe(pk *capture.Packet) bool {
	if !pk.IsIPv4() || pk.Proto != p.Proto {
		return false
	}
	switch p.Proto {
	case capture.ProtoICMP:
		return pk.ICMPType == capture.ICMPEchoRequest && bytes.Contains(pk.Payload, []byte(p.Marker))
	case capture.ProtoUDP:
		return bytes.Contains(pk.Payload, []byte(p.Marker))
	}
	return pk.TCPFlags&capture.TCPSyn != 0 && pk.TCPFlags&capture.TCPAck == 0 && pk.Seq == p.Seq
}

// IsAnswer reports whether pk answers the probe: an echo reply, a TCP
// segment acknowledging the SYN (SYN-ACK or RST), an ICMP error quoting
// the probe, or, for UDP, a datagram back to the flow the probe had at the
// same interface (fwd, nil when the probe was not seen there).
func (p *Probe) IsAnswer(pk, fwd *capture.Packet) bool {
	if !pk.IsIPv4() {
		return false
	}
	if pk.Proto == capture.ProtoICMP && pk.Quoted != nil {
		q := pk.Quoted
		if q.Proto != p.Proto {
			return false
		}
		switch p.Proto {
		case capture.ProtoTCP:
			return q.Seq == p.Seq
		case capture.ProtoICMP:
			return q.ICMPType == capture.ICMPEchoRequest && (bytes.Contains(q.Payload, []byte(p.Marker)) ||
				fwd != nil && q.ICMPID == fwd.ICMPID && q.Dst == fwd.Dst)
		}
		return bytes.Contains(q.Payload, []byte(p.Marker)) ||
			fwd != nil && q.SrcPort == fwd.SrcPort && q.DstPort == fwd.DstPort && q.Dst == fwd.Dst
	}
	if pk.Proto != p.Proto {
		return false
	}
	switch p.Proto {
	case capture.ProtoICMP:
		return pk.ICMPType == capture.ICMPEchoReply && bytes.Contains(pk.Payload, []byte(p.Marker))
	case capture.ProtoTCP:
		return pk.TCPFlags&capture.TCPAck != 0 && pk.Ack == p.Seq+1
	}
	return fwd != nil && pk.Src == fwd.Dst && pk.Dst == fwd.Src && pk.SrcPort == fwd.DstPort && pk.DstPort == fwd.SrcPort
}

// Send sends the probe from src to dst inside namespace ns. The sockets
// are made inside the namespace (internal/netns) and closed before it
// returns.
func (p *Probe) Send(ns string, src, dst netip.Addr) error {
	var fd int
	err := netns.DoNamed(ns, func() error {
		var err error
		switch p.Proto {
		case capture.ProtoICMP:
			fd, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMP)
		case capture.ProtoTCP:
			fd, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
		default:
			fd, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("probe socket in %s: %w", ns, err)
	}
	defer unix.Close(fd)
	local := &unix.SockaddrInet4{Addr: src.As4(), Port: int(p.SrcPort)}
	if p.Proto == capture.ProtoICMP || p.Proto == capture.ProtoTCP {
		local.Port = 0 // raw sockets have no ports
	}
	if err := unix.Bind(fd, local); err != nil {
		return fmt.Errorf("bind probe socket to %s in %s: %w", src, ns, err)
	}
	to := &unix.SockaddrInet4{Addr: dst.As4()}
	var msg []byte
	switch p.Proto {
	case capture.ProtoICMP:
		msg = p.icmpEcho()
	case capture.ProtoTCP:
		msg = p.tcpSyn(src, dst)
	default:
		to.Port = int(p.DstPort)
		msg = []byte(p.Marker)
	}
	if err := unix.Sendto(fd, msg, 0, to); err != nil {
		return fmt.Errorf("send probe from %s to %s in %s: %w", src, dst, ns, err)
	}
	return nil
}

func (p *Probe) icmpEcho() []byte {
	b := make([]byte, 8, 8+len(p.Marker))
	b[0] = capture.ICMPEchoRequest
	binary.BigEndian.PutUint16(b[4:6], p.ICMPID)
	binary.BigEndian.PutUint16(b[6:8], 1)
	b = append(b, p.Marker...)
	binary.BigEndian.PutUint16(b[2:4], checksum(b, 0))
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
	// The pseudo-header: addresses, protocol, length.
	s, d := src.As4(), dst.As4()
	var sum uint32
	for _, w := range [][]byte{s[:2], s[2:], d[:2], d[2:]} {
		sum += uint32(binary.BigEndian.Uint16(w))
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
