// Package nfsock opens the nftables connections nsnet's table owners
// (internal/nat, internal/firewall) send their batches on: lasting, with
// buffers big enough for a batch of thousands of messages, and with a
// bounded wait for the kernel's answers, so that a lost acknowledgement
// fails one batch instead of stalling the agent forever.
//
// It opens sockets in the calling thread's namespace and must not switch
// namespaces itself (callers use internal/netns), nor know any table.
package nfsock

import (
	"errors"
	"fmt"
	"time"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// FlushTimeout bounds how long Flush waits for the kernel's answers. A
// batch of a thousand ports' rules is committed in well under a second.
const FlushTimeout = 30 * time.Second

// Conn is a lasting nftables connection.
type Conn struct {
	*nftables.Conn
	sock *netlink.Conn
}

// Open opens a Conn in the calling thread's namespace whose socket's send
// buffer holds sndBuf bytes and receive buffer rcvBuf: one batch is one
// sendmsg, and each of its messages may be acknowledged.
func Open(sndBuf, rcvBuf int) (*Conn, error) {
	c := &Conn{}
	var err error
	c.Conn, err = nftables.New(nftables.AsLasting(), nftables.WithSockOptions(func(s *netlink.Conn) error {
		c.sock = s
		return forceBuffers(s, sndBuf, rcvBuf)
	}))
	if err != nil {
		return nil, fmt.Errorf("nftables socket: %w", err)
	}
	return c, nil
}

// Flush sends the queued batch and waits, at most FlushTimeout, for the
// kernel's answers. After a timeout the socket may hold a late answer:
// the caller closes the Conn and opens another.
func (c *Conn) Flush() error {
	if err := c.sock.SetReadDeadline(time.Now().Add(FlushTimeout)); err != nil {
		return fmt.Errorf("nftables socket deadline: %w", err)
	}
	defer c.sock.SetReadDeadline(time.Time{})
	return c.Conn.Flush()
}

// Close closes the connection's socket.
func (c *Conn) Close() error { return c.Conn.CloseLasting() }

// forceBuffers raises the socket's buffers past the system maximum, which
// needs CAP_NET_ADMIN, as nft(8) does.
func forceBuffers(c *netlink.Conn, sndBuf, rcvBuf int) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = raw.Control(func(fd uintptr) {
		serr = errors.Join(
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, sndBuf),
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvBuf),
		)
	})
	if err := errors.Join(err, serr); err != nil {
		return fmt.Errorf("socket buffers: %w", err)
	}
	return nil
}
