package agent

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/nsnet/nsnet/internal/netns"
)

// vlanARP asks, from namespace ns, on link ifname, tagged with vid, who
// has target, as (mac, ip) would: a VLAN-aware guest's subport
// interface, done with a packet socket since this kernel has no 802.1Q
// devices. It returns the answerer's MAC, or an error once three requests
// (as a client retries) went unanswered, or an answer came untagged.
func vlanARP(ns, ifname string, vid int, mac net.HardwareAddr, ip, target netip.Addr) (net.HardwareAddr, error) {
	var got net.HardwareAddr
	err := netns.DoNamed(ns, func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		proto := int(htons(unix.ETH_P_ALL))
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, proto)
		if err != nil {
			return fmt.Errorf("packet socket: %w", err)
		}
		defer unix.Close(fd)
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: uint16(proto), Ifindex: ifi.Index}); err != nil {
			return fmt.Errorf("bind to %s: %w", ifname, err)
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_AUXDATA, 1); err != nil {
			return err
		}
		tv := unix.NsecToTimeval((200 * time.Millisecond).Nanoseconds())
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return err
		}
		frame := taggedARPRequest(vid, mac, ip, target)
		to := &unix.SockaddrLinklayer{Ifindex: ifi.Index, Halen: 6}
		copy(to.Addr[:], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
		buf, oob := make([]byte, 2048), make([]byte, 256)
		for range 3 {
			if err := unix.Sendto(fd, frame, 0, to); err != nil {
				return fmt.Errorf("send: %w", err)
			}
			deadline := time.Now().Add(time.Second)
			for time.Now().Before(deadline) {
				n, oobn, _, _, err := unix.Recvmsg(fd, buf, oob, 0)
				if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
					continue
				}
				if err != nil {
					return fmt.Errorf("receive: %w", err)
				}
				sender, ok := arpReplyFrom(buf[:n], target, ip)
				if !ok {
					continue
				}
				if tag, tagged := vlanOf(oob[:oobn]); !tagged || tag != vid {
					return fmt.Errorf("ARP reply from %s arrived with VLAN %d (tagged %v), want %d", target, tag, tagged, vid)
				}
				got = sender
				return nil
			}
		}
		return fmt.Errorf("no ARP reply from %s on %s VLAN %d, three times", target, ifname, vid)
	})
	return got, err
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func taggedARPRequest(vid int, mac net.HardwareAddr, ip, target netip.Addr) []byte {
	var b bytes.Buffer
	b.Write([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	b.Write(mac)
	binary.Write(&b, binary.BigEndian, []uint16{unix.ETH_P_8021Q, uint16(vid), unix.ETH_P_ARP, 1, unix.ETH_P_IP})
	b.Write([]byte{6, 4, 0, 1})
	b.Write(mac)
	b.Write(ip.AsSlice())
	b.Write(make([]byte, 6))
	b.Write(target.AsSlice())
	return b.Bytes()
}

// arpReplyFrom reports whether frame (its tag, if any, taken off by the
// kernel) is from's ARP reply to to, and from's MAC.
func arpReplyFrom(frame []byte, from, to netip.Addr) (net.HardwareAddr, bool) {
	if len(frame) < 42 || binary.BigEndian.Uint16(frame[12:]) != unix.ETH_P_ARP || binary.BigEndian.Uint16(frame[20:]) != 2 {
		return nil, false
	}
	if !bytes.Equal(frame[28:32], from.AsSlice()) || !bytes.Equal(frame[38:42], to.AsSlice()) {
		return nil, false
	}
	return net.HardwareAddr(bytes.Clone(frame[22:28])), true
}

// vlanOf reads the VLAN tag of a received frame from its
// PACKET_AUXDATA.
func vlanOf(oob []byte) (vid int, tagged bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return 0, false
	}
	for _, m := range msgs {
		if m.Header.Level != unix.SOL_PACKET || m.Header.Type != unix.PACKET_AUXDATA || len(m.Data) < int(unsafe.Sizeof(unix.TpacketAuxdata{})) {
			continue
		}
		aux := (*unix.TpacketAuxdata)(unsafe.Pointer(&m.Data[0]))
		return int(aux.Vlan_tci & 0x0fff), aux.Status&unix.TP_STATUS_VLAN_VALID != 0
	}
	return 0, false
}
