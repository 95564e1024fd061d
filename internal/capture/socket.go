// Package capture owns packet capture on one interface of a network
// namespace, in pure Go: an AF_PACKET socket opened inside the namespace
// (through internal/netns, the only package that switches namespaces),
// frames decoded into Packet, a small filter language (see ParseFilter),
// and pcap files that tcpdump and Wireshark read.
//
// It only ever reads: it sends nothing, and changes nothing in the kernel
// except the interface's promiscuous count, which the kernel drops again
// when the socket closes.
package capture

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nsnet/nsnet/internal/netns"
)

// Frame is one frame seen on an interface.
type Frame struct {
	Time time.Time
	// Outgoing is true for a frame the interface sent, false for one it
	// received.
	Outgoing bool
	Data     []byte
	// Length is the frame's length on the wire; Data may be shorter
	// when the frame was larger than the socket's buffer.
	Length int
}

// Direction is "out" or "in", as seen by the interface.
func (f Frame) Direction() string {
	if f.Outgoing {
		return "out"
	}
	return "in"
}

// Socket captures every frame of one interface, in both directions.
type Socket struct {
	Netns, Interface string
	file             *os.File
	closeOnce        sync.Once
	closeErr         error
	buf, oob         []byte // Read's, reused
}

// snapLen is the largest frame a Socket returns whole.
const snapLen = 65535

// Open starts capturing on interface ifname of the named namespace ("" is
// the namespace of the process). The interface is put in promiscuous mode
// for as long as the socket is open, as tcpdump does: on a bridge, that is
// what makes it see the frames it forwards between its ports.
func Open(netnsName, ifname string) (*Socket, error) {
	var fd int
	err := netns.DoNamed(netnsName, func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		// Protocol 0 receives nothing until bind names the interface:
		// frames of other interfaces never get in.
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("packet socket: %w", err)
		}
		if err := setup(fd, ifi.Index); err != nil {
			unix.Close(fd)
			return err
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("capture on %s in namespace %s: %w", ifname, nsLabel(netnsName), err)
	}
	return &Socket{Netns: netnsName, Interface: ifname, file: os.NewFile(uintptr(fd), "packet:"+ifname)}, nil
}

func setup(fd, ifindex int) error {
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
		return fmt.Errorf("enable timestamps: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20); err != nil {
		return fmt.Errorf("set receive buffer: %w", err)
	}
	mreq := &unix.PacketMreq{Ifindex: int32(ifindex), Type: unix.PACKET_MR_PROMISC}
	if err := unix.SetsockoptPacketMreq(fd, unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP, mreq); err != nil {
		return fmt.Errorf("promiscuous mode: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifindex}); err != nil {
		return fmt.Errorf("bind: %w", err)
	}
	return nil
}

func nsLabel(name string) string {
	if name == "" {
		return "(host)"
	}
	return name
}

// Read returns the next frame; one goroutine at a time may call it. It
// returns ctx's error when ctx ends first,
// and net.ErrClosed once the socket is closed.
func (s *Socket) Read(ctx context.Context) (Frame, error) {
	// A Read ended by its context leaves the deadline in the past: clear
	// it, or every later Read would fail at once. The ending function of
	// this Read is waited for, so that it cannot set the deadline of the
	// next one.
	s.file.SetReadDeadline(time.Time{})
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		s.file.SetReadDeadline(time.Unix(1, 0))
		close(fired)
	})
	defer func() {
		if !stop() {
			<-fired
		}
	}()
	rc, err := s.file.SyscallConn()
	if err != nil {
		return Frame{}, err
	}
	if s.buf == nil {
		s.buf, s.oob = make([]byte, snapLen), make([]byte, 128)
	}
	buf, oob := s.buf, s.oob
	var (
		n, oobn int
		from    unix.Sockaddr
		rerr    error
	)
	err = rc.Read(func(fd uintptr) bool {
		n, oobn, _, from, rerr = unix.Recvmsg(int(fd), buf, oob, unix.MSG_TRUNC)
		return !errors.Is(rerr, unix.EAGAIN)
	})
	if err != nil {
		if ctx.Err() != nil {
			return Frame{}, ctx.Err()
		}
		if errors.Is(err, os.ErrClosed) {
			return Frame{}, net.ErrClosed
		}
		return Frame{}, err
	}
	if rerr != nil {
		return Frame{}, fmt.Errorf("read from %s: %w", s.Interface, rerr)
	}
	// A copy of its own size: a caller may keep many frames.
	f := Frame{Time: stamp(oob[:oobn]), Length: n, Data: append([]byte(nil), buf[:min(n, len(buf))]...)}
	if ll, ok := from.(*unix.SockaddrLinklayer); ok {
		f.Outgoing = ll.Pkttype == unix.PACKET_OUTGOING
	}
	return f, nil
}

// stamp is the kernel's receive time from the control messages, or now.
func stamp(oob []byte) time.Time {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err == nil {
		for _, m := range msgs {
			if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SO_TIMESTAMPNS && len(m.Data) >= 16 {
				// struct timespec: two native longs (64-bit Linux).
				sec := int64(binary.NativeEndian.Uint64(m.Data[0:8]))
				nsec := int64(binary.NativeEndian.Uint64(m.Data[8:16]))
				return time.Unix(sec, nsec)
			}
		}
	}
	return time.Now()
}

// Close stops the capture; a Read in progress returns net.ErrClosed.
func (s *Socket) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.file.Close() })
	return s.closeErr
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
