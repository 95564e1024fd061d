// Package nfsock opens the nftables connections nsnet's table owners
// (internal/nat, internal/firewall) send their batches on: lasting, with
// buffers big enough for a batch of thousands of messages, and with a
// bounded wait for the kernel's answers, so that a lost acknowledgement
// fails one batch instead of stalling the agent forever.
//
// It also keeps which sockets are nsnet's own, so that a watcher of
// nf_tables notifications tells nsnet's changes from others' (Ours).
//
// It opens sockets in the calling thread's namespace and must not switch
// namespaces itself (callers use internal/netns), nor know any table.
package nfsock

import (
	"errors"
	"fmt"
	"sync"
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
	id   sockID
}

// sockID names a netlink socket: the inode of its network namespace and
// its port id, unique in that namespace while the socket is open.
type sockID struct {
	netns  uint64
	portID uint32
}

// ours holds the sockets of the Conns: when each was closed, the zero
// time while it is open. A closed one is kept closedKept: the kernel
// queues the notifications of a batch to the watchers before Flush
// returns, but a watcher may read them after the Conn is closed (the
// host's tables deleted with the last secured port, then closed).
var ours = struct {
	sync.Mutex
	ids map[sockID]time.Time
}{ids: map[sockID]time.Time{}}

const closedKept = time.Minute

// Ours reports whether an nf_tables notification heard in the namespace
// with inode netns, carrying portID (its netlink header's pid), is of a
// change sent on a Conn of this process: the kernel stamps each
// notification of a batch with the port id of the socket that sent it.
func Ours(netns uint64, portID uint32) bool {
	ours.Lock()
	defer ours.Unlock()
	_, ok := ours.ids[sockID{netns, portID}]
	return ok
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
	if c.id, err = idOf(c.sock); err != nil {
		c.Conn.CloseLasting()
		return nil, err
	}
	ours.Lock()
	ours.ids[c.id] = time.Time{}
	ours.Unlock()
	return c, nil
}

// idOf reads the namespace of the calling thread (the socket's) and the
// port id the kernel bound the socket to.
func idOf(s *netlink.Conn) (sockID, error) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/net", &st); err != nil {
		return sockID{}, fmt.Errorf("namespace of the nftables socket: %w", err)
	}
	raw, err := s.SyscallConn()
	if err != nil {
		return sockID{}, err
	}
	var sa unix.Sockaddr
	var serr error
	if err := raw.Control(func(fd uintptr) { sa, serr = unix.Getsockname(int(fd)) }); err != nil {
		return sockID{}, err
	}
	if serr != nil {
		return sockID{}, fmt.Errorf("port id of the nftables socket: %w", serr)
	}
	nl, ok := sa.(*unix.SockaddrNetlink)
	if !ok {
		return sockID{}, fmt.Errorf("port id of the nftables socket: address %T", sa)
	}
	return sockID{st.Ino, nl.Pid}, nil
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
func (c *Conn) Close() error {
	now := time.Now()
	ours.Lock()
	ours.ids[c.id] = now
	for id, closed := range ours.ids {
		if !closed.IsZero() && now.Sub(closed) > closedKept {
			delete(ours.ids, id)
		}
	}
	ours.Unlock()
	return c.Conn.CloseLasting()
}

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
