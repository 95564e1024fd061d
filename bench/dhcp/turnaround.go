package main

import (
	"encoding/binary"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/nsnet/nsnet/internal/netns"
)

// turnaround watches a server's namespace while clients start: every
// DHCP request that arrives and every reply that leaves, with the
// kernel's timestamps (a packet socket on all its interfaces, of every
// protocol: only those see the frames that leave as well as those that
// arrive), so that the server's time per exchange (request in to its
// reply out, DISCOVER to OFFER and REQUEST to ACK) is measured alike for
// both servers, whatever the clients cost.
type turnaround struct {
	fd      int
	stopped atomic.Bool
	done    chan struct{}
	mu      sync.Mutex
	// requests are the last arrival of each (transaction ID, message
	// type answered by the reply); took the server's time of each reply.
	requests map[exchange]time.Time
	took     []time.Duration
}

type exchange struct {
	xid   uint32
	reply byte // the reply's DHCP message type
}

// DHCP message types (RFC 2132 9.6).
const (
	dhcpDiscover = 1
	dhcpOffer    = 2
	dhcpRequest  = 3
	dhcpAck      = 5
)

func watchTurnaround(ns string) (*turnaround, error) {
	t := &turnaround{done: make(chan struct{}), requests: map[exchange]time.Time{}}
	err := netns.DoNamed(ns, func() error {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return err
		}
		t.fd = fd
		return nil
	})
	if err != nil {
		return nil, err
	}
	tv := unix.NsecToTimeval(int64(50 * time.Millisecond))
	err = errors.Join(
		unix.SetsockoptInt(t.fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1),
		unix.SetsockoptInt(t.fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20),
		unix.SetsockoptTimeval(t.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv))
	if err != nil {
		unix.Close(t.fd)
		return nil, err
	}
	go t.read()
	return t, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func (t *turnaround) read() {
	defer close(t.done)
	buf, oob := make([]byte, 2048), make([]byte, 128)
	for !t.stopped.Load() {
		n, oobn, _, _, err := unix.Recvmsg(t.fd, buf, oob, 0)
		if err != nil {
			continue // the receive timeout: see whether to stop
		}
		at, ok := timestamp(oob[:oobn])
		if ok {
			t.packet(buf[:n], at)
		}
	}
}

// timestamp is the kernel's time of a packet, from its control message.
func timestamp(oob []byte) (time.Time, bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return time.Time{}, false
	}
	for _, m := range msgs {
		if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SCM_TIMESTAMPNS && len(m.Data) >= int(unsafe.Sizeof(unix.Timespec{})) {
			ts := (*unix.Timespec)(unsafe.Pointer(&m.Data[0]))
			return time.Unix(ts.Unix()), true
		}
	}
	return time.Time{}, false
}

// packet notes an IPv4 packet: a request to port 67 or a reply to 68.
func (t *turnaround) packet(ip []byte, at time.Time) {
	if len(ip) < 20 || ip[0]>>4 != 4 || ip[9] != unix.IPPROTO_UDP {
		return
	}
	udp := ip[int(ip[0]&0xf)*4:]
	if len(udp) < 8+240 {
		return
	}
	sport, dport := binary.BigEndian.Uint16(udp[0:]), binary.BigEndian.Uint16(udp[2:])
	msg := udp[8:]
	typ, ok := messageType(msg)
	if !ok {
		return
	}
	xid := binary.BigEndian.Uint32(msg[4:])
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case sport == 68 && dport == 67 && typ == dhcpDiscover:
		t.requests[exchange{xid, dhcpOffer}] = at
	case sport == 68 && dport == 67 && typ == dhcpRequest:
		t.requests[exchange{xid, dhcpAck}] = at
	case sport == 67 && dport == 68 && (typ == dhcpOffer || typ == dhcpAck):
		k := exchange{xid, typ}
		if in, ok := t.requests[k]; ok {
			t.took = append(t.took, at.Sub(in))
			delete(t.requests, k)
		}
	}
}

// messageType is option 53 of a DHCP message.
func messageType(msg []byte) (byte, bool) {
	if len(msg) < 240 || binary.BigEndian.Uint32(msg[236:]) != 0x63825363 {
		return 0, false
	}
	for o := msg[240:]; len(o) > 0; {
		switch o[0] {
		case 0:
			o = o[1:]
			continue
		case 255:
			return 0, false
		}
		if len(o) < 2 || len(o) < 2+int(o[1]) {
			return 0, false
		}
		if o[0] == 53 && o[1] == 1 {
			return o[2], true
		}
		o = o[2+int(o[1]):]
	}
	return 0, false
}

// stop ends the watch and returns the server's time of each exchange,
// sorted.
func (t *turnaround) stop() []time.Duration {
	// Packets of the last replies may still be queued: read for a moment
	// more, then close.
	time.Sleep(100 * time.Millisecond)
	t.stopped.Store(true)
	<-t.done
	unix.Close(t.fd)
	t.mu.Lock()
	defer t.mu.Unlock()
	slices.Sort(t.took)
	return t.took
}

// percentile is the p-th percentile of sorted ds.
func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	return ds[min(len(ds)-1, len(ds)*p/100)]
}
