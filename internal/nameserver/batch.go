package nameserver

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// batchConn reads and writes a UDP socket's datagrams in batches
// (recvmmsg, sendmmsg), through the runtime's poller, into and from
// buffers made once with the headers that point at them: a datagram costs
// no allocation and no address parsed, where golang.org/x/net's
// ReadBatch and WriteBatch make a *net.UDPAddr of each source and
// marshal it back for each reply. Not safe for concurrent use: the socket
// has one reader, which also writes the fast path's answers.
type batchConn struct {
	raw     syscall.RawConn
	in, out mmsgs
	// n and errno are the last system call's result, set by recv and
	// send (the poller's callbacks, made once as method values so that
	// passing them allocates nothing).
	n              int
	errno          syscall.Errno
	sending        []unix.Mmsghdr
	recvFn, sendFn func(fd uintptr) bool
}

// mmsgs are a batch's headers, each naming one buffer and one address.
type mmsgs struct {
	hdrs  []unix.Mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet6 // room for either family's address
	bufs  [][]byte
}

func newMmsgs(n, size int) mmsgs {
	m := mmsgs{
		hdrs:  make([]unix.Mmsghdr, n),
		iovs:  make([]unix.Iovec, n),
		names: make([]unix.RawSockaddrInet6, n),
		bufs:  make([][]byte, n),
	}
	for i := range n {
		m.bufs[i] = make([]byte, size)
		m.hdrs[i].Hdr.Name = (*byte)(unsafe.Pointer(&m.names[i]))
		m.hdrs[i].Hdr.Iov = &m.iovs[i]
		m.hdrs[i].Hdr.SetIovlen(1)
	}
	return m
}

func newBatchConn(c syscall.Conn, n, size int) (*batchConn, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("batch I/O: %w", err)
	}
	b := &batchConn{raw: raw, in: newMmsgs(n, size), out: newMmsgs(n, size)}
	b.recvFn, b.sendFn = b.recv, b.send
	return b, nil
}

// read waits for datagrams and reads as many as are queued, up to the
// batch; datagram returns each.
func (b *batchConn) read() (int, error) {
	for i := range b.in.hdrs {
		h := &b.in.hdrs[i]
		h.Hdr.Namelen = unix.SizeofSockaddrInet6
		h.Hdr.Flags = 0
		h.Len = 0
		b.in.iovs[i].Base = &b.in.bufs[i][0]
		b.in.iovs[i].SetLen(len(b.in.bufs[i]))
	}
	if err := b.raw.Read(b.recvFn); err != nil {
		return 0, err
	}
	if b.errno != 0 {
		return 0, fmt.Errorf("recvmmsg: %w", b.errno)
	}
	return b.n, nil
}

func (b *batchConn) recv(fd uintptr) bool {
	for {
		n, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&b.in.hdrs[0])), uintptr(len(b.in.hdrs)), 0, 0, 0)
		switch errno {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false // nothing queued: the poller waits
		}
		b.n, b.errno = int(n), errno
		return true
	}
}

// datagram is the i-th datagram of the last read: its bytes (valid until
// the next read) and whether it was longer than the buffer.
func (b *batchConn) datagram(i int) (data []byte, truncated bool) {
	h := &b.in.hdrs[i]
	return b.in.bufs[i][:h.Len], h.Hdr.Flags&unix.MSG_TRUNC != 0
}

// source is the sender of the i-th datagram of the last read.
func (b *batchConn) source(i int) net.Addr {
	sa := &b.in.names[i]
	port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:])
	switch sa.Family {
	case unix.AF_INET:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), port))
	case unix.AF_INET6:
		return net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), port))
	}
	return &net.UDPAddr{}
}

// reply is the buffer of the j-th reply of the next write, empty, to
// append to.
func (b *batchConn) reply(j int) []byte { return b.out.bufs[j][:0] }

// setReply makes the j-th reply of the next write data (appended to
// reply(j)'s buffer), to the sender of the i-th datagram read.
func (b *batchConn) setReply(j int, data []byte, i int) {
	b.out.bufs[j] = data[:cap(data)] // keep a buffer grown by the append
	b.out.names[j] = b.in.names[i]
	h := &b.out.hdrs[j]
	h.Hdr.Namelen = b.in.hdrs[i].Hdr.Namelen
	h.Len = 0
	b.out.iovs[j].Base = unsafe.SliceData(data)
	b.out.iovs[j].SetLen(len(data))
}

// write sends the replies 0..n-1 set since the last write. A reply the
// kernel refuses is skipped (its client asks again) and reported after
// the others are sent; sent tells which went.
func (b *batchConn) write(n int) error {
	var failed error
	for next := 0; next < n; {
		b.sending = b.out.hdrs[next:n]
		if err := b.raw.Write(b.sendFn); err != nil {
			return err // the socket is closed
		}
		if b.errno != 0 {
			// sendmmsg fails only when its first message does.
			failed = fmt.Errorf("sendmmsg: %w", b.errno)
			next++
			continue
		}
		next += max(b.n, 1)
	}
	return failed
}

// sent reports whether the j-th reply of the last write was sent.
func (b *batchConn) sent(j int) bool { return b.out.hdrs[j].Len > 0 }

func (b *batchConn) send(fd uintptr) bool {
	for {
		n, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&b.sending[0])), uintptr(len(b.sending)), 0, 0, 0)
		switch errno {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false // the send buffer is full: the poller waits
		}
		b.n, b.errno = int(n), errno
		return true
	}
}
