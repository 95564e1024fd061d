package dhcp

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"

	"golang.org/x/sys/unix"
)

// linkSender sends IPv4/UDP datagrams to a hardware address on one
// interface, through a packet socket: how a reply reaches a client that
// has no address yet without a broadcast (RFC 2131 4.1). A UDP socket
// cannot: the kernel would ask ARP for the client's new address, which
// the client does not answer until it is bound.
//
// A broadcast reply costs the whole network: the bridge floods it to every
// port, and every client still looking for its lease reads it from its
// packet socket and throws it away. With 200 clients starting at once that
// is 200 copies and 200 process wake-ups per reply, the input backlog of a
// busy machine overflows and requests are lost. dnsmasq unicasts too.
type linkSender struct {
	fd      int
	ifindex int
}

// newLinkSender opens the socket for ifname; call it inside the
// interface's namespace. Protocol 0: the socket receives nothing.
func newLinkSender(ifname string) (*linkSender, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, err
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("packet socket: %w", err)
	}
	return &linkSender{fd: fd, ifindex: ifi.Index}, nil
}

// send sends payload from src:67 to dst:68 at hardware address hw. The
// kernel adds the Ethernet header with the interface's own address.
func (l *linkSender) send(hw net.HardwareAddr, src, dst netip.Addr, payload []byte) error {
	to := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IP), Ifindex: l.ifindex, Halen: uint8(len(hw))}
	copy(to.Addr[:], hw)
	return unix.Sendto(l.fd, udp4(src, dst, 67, 68, payload), 0, to)
}

func (l *linkSender) close() error { return unix.Close(l.fd) }

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// udp4 is an IPv4 packet holding a UDP datagram, checksums filled in.
func udp4(src, dst netip.Addr, sport, dport uint16, payload []byte) []byte {
	const ipLen, udpLen = 20, 8
	total := ipLen + udpLen + len(payload)
	b := make([]byte, total)
	ip := b[:ipLen]
	ip[0] = 4<<4 | ipLen/4 // version, header length in 32-bit words
	binary.BigEndian.PutUint16(ip[2:], uint16(total))
	ip[8] = 64 // TTL
	ip[9] = unix.IPPROTO_UDP
	s4, d4 := src.As4(), dst.As4()
	copy(ip[12:16], s4[:])
	copy(ip[16:20], d4[:])
	binary.BigEndian.PutUint16(ip[10:], checksum(0, ip))

	u := b[ipLen:]
	binary.BigEndian.PutUint16(u[0:], sport)
	binary.BigEndian.PutUint16(u[2:], dport)
	binary.BigEndian.PutUint16(u[4:], uint16(udpLen+len(payload)))
	copy(u[udpLen:], payload)
	// The pseudo-header: addresses, protocol, UDP length.
	var pseudo [12]byte
	copy(pseudo[0:4], s4[:])
	copy(pseudo[4:8], d4[:])
	pseudo[9] = unix.IPPROTO_UDP
	binary.BigEndian.PutUint16(pseudo[10:], uint16(udpLen+len(payload)))
	sum := checksum(sum16(0, pseudo[:]), u)
	if sum == 0 {
		sum = 0xffff // zero means "no checksum" in UDP over IPv4
	}
	binary.BigEndian.PutUint16(u[6:], sum)
	return b
}

// sum16 adds b to the one's complement sum acc, as 16-bit words.
func sum16(acc uint32, b []byte) uint32 {
	for len(b) >= 2 {
		acc += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		acc += uint32(b[0]) << 8
	}
	return acc
}

// checksum is the Internet checksum (RFC 1071) of b, continuing acc.
func checksum(acc uint32, b []byte) uint16 {
	acc = sum16(acc, b)
	for acc>>16 != 0 {
		acc = acc&0xffff + acc>>16
	}
	return ^uint16(acc)
}
