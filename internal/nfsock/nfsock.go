// Package nfsock is the nftables toolkit of nsnet's table owners
// (internal/nat, internal/firewall), so that what they share is written
// once:
//
//   - Conn: the sockets a table owner needs in one namespace (opened there
//     by internal/netns): a lasting nftables connection with buffers big
//     enough for a batch of thousands of messages and a bounded wait for
//     the kernel's answers, so that a lost acknowledgement fails one batch
//     instead of stalling the agent forever; the ruleset generation; and
//     conntrack, to forget the connections of removed translations or
//     rules (Flow, ForgetFlows): nothing read when the namespace tracks
//     nothing, only the entries of given addresses when those are all
//     that can match.
//   - Owner: the proof by the ruleset generation that the kernel still
//     holds exactly what a table owner last committed, so that it reads
//     its tables back only when someone committed since.
//   - SetDef and ChainDef: declarative tables, how to create them, and
//     how they compare with what the kernel holds (Live).
//   - Element: set elements as the kernel holds them — interface names,
//     concatenations, big-endian fields — and Disjoint, which cuts what an
//     interval set should hold into the disjoint pieces the kernel takes.
//
// It also keeps which sockets are nsnet's own, so that a watcher of
// nf_tables notifications tells nsnet's changes from others' (Ours).
//
// It must not know any table of its owners, nor switch namespaces but
// through internal/netns.
package nfsock

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/nsnet/nsnet/internal/netns"
)

// FlushTimeout bounds how long Flush waits for the kernel's answers. A
// batch of a thousand ports' rules is committed in well under a second.
const FlushTimeout = 30 * time.Second

// Conn is a lasting nftables connection, with the other netfilter socket
// of its namespace a table owner needs: it asks the ruleset generation,
// and speaks to conntrack (conntrack.go). A socket keeps the namespace it
// was created in, whichever thread uses it later.
type Conn struct {
	*nftables.Conn
	sock *netlink.Conn
	id   sockID
	gen  *netlink.Conn // the generation, conntrack
	// ctCount is the namespace's conntrack count (see Tracked); nil when
	// conntrack was not loaded.
	ctCount *os.File
	setID   uint32 // the last set id CreateSet gave
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

// batchBuffer bounds one batch. The first Apply of a router with ten
// thousand floating IPs, or of a thousand ports with twenty rules each,
// sends megabytes in one sendmsg, and a netlink socket refuses a message
// larger than its send buffer, whose default is 208 KiB. It is a limit,
// not an allocation.
const batchBuffer = 64 << 20

// Dial opens a Conn in the named namespace ("" is the process's own),
// with buffers of batchBuffer.
func Dial(namespace string) (*Conn, error) {
	var c *Conn
	err := netns.DoNamed(namespace, func() error {
		var err error
		c, err = Open(batchBuffer, batchBuffer)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("open nftables in namespace %q: %w", namespace, err)
	}
	return c, nil
}

// Open opens a Conn in the calling thread's namespace whose nftables
// socket's send buffer holds sndBuf bytes and receive buffer rcvBuf: one
// batch is one sendmsg, and each of its messages may be acknowledged.
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
	if c.gen, err = netlink.Dial(unix.NETLINK_NETFILTER, nil); err != nil {
		c.Conn.CloseLasting()
		return nil, fmt.Errorf("netfilter socket: %w", err)
	}
	// Opened here, in the namespace: the file shows the opener's.
	c.ctCount, _ = os.Open(countFile)
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

// Close closes the connection's sockets.
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
	if c.ctCount != nil {
		c.ctCount.Close()
	}
	return errors.Join(c.gen.Close(), c.Conn.CloseLasting())
}

// Generation asks the kernel for the namespace's nftables ruleset
// generation, which every committed batch (by anyone, in any table)
// increments by one.
func (c *Conn) Generation() (uint32, error) {
	msgs, err := c.gen.Execute(netlink.Message{
		Header: netlink.Header{
			Type:  netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETGEN),
			Flags: netlink.Request,
		},
		// struct nfgenmsg: family, version, resource id.
		Data: []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, 0},
	})
	if err != nil {
		return 0, fmt.Errorf("read nftables generation: %w", err)
	}
	for _, m := range msgs {
		if len(m.Data) < 4 {
			continue
		}
		ad, err := netlink.NewAttributeDecoder(m.Data[4:])
		if err != nil {
			return 0, fmt.Errorf("read nftables generation: %w", err)
		}
		ad.ByteOrder = binary.BigEndian
		for ad.Next() {
			if ad.Type() == unix.NFTA_GEN_ID {
				return ad.Uint32(), nil
			}
		}
	}
	return 0, errors.New("read nftables generation: no generation in the answer")
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
