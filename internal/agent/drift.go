package agent

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/nsnet/nsnet/internal/dataplane/dpspec"
	"github.com/nsnet/nsnet/internal/firewall"
	"github.com/nsnet/nsnet/internal/nat"
	"github.com/nsnet/nsnet/internal/netns"
	"github.com/nsnet/nsnet/internal/nfsock"
)

// Drift is what someone else does to the objects nsnet made: an interface,
// an address or an nft table deleted by hand. The periodic full pass
// repairs it eventually; a driftWatch makes it prompt. It listens to the
// kernel's notifications in one namespace and reports the deletion of
// anything the agent still wants — a link carrying the nsnet alias of a
// wanted object, a wanted address, a wanted forwarding entry of a VXLAN
// device, a table of nsnet's (in a router, also a chain, rule or set of
// it) — after which the agent runs a full pass. The
// agent's own deletions do not count: at thousands of objects a full pass
// costs seconds, and one per deleted port would starve the API's waits.
// Links and addresses it deletes are ones it no longer wants; nft objects
// it deletes (a table rebuilt, the host's tables when the last secured
// port goes) are told by the socket that sent them (nfsock.Ours), so that
// a rebuild never schedules a full pass that could rebuild again.
type driftWatch struct {
	namespace string
	conns     []*netlink.Conn
	done      sync.WaitGroup
}

// nfnlgrpNftables is the netlink multicast group of nftables changes
// (NFNLGRP_NFTABLES); netlink numbers groups from 1, the bitmask from bit 0.
const nfnlgrpNftables = 7

// nftDeletions are the nf_tables messages that remove part of a table's
// structure. Elements are left out: the agent removes those all the time
// (a floating IP disassociated), and a full pass finds any removed by hand.
var nftDeletions = map[uint16]string{
	unix.NFT_MSG_DELTABLE: "nft table",
	unix.NFT_MSG_DELCHAIN: "nft chain",
	unix.NFT_MSG_DELRULE:  "nft rule",
	unix.NFT_MSG_DELSET:   "nft set",
}

// wantedKernel is what the agent wants of the objects its drift watches
// see: links by their nsnet alias, and the addresses it puts on bridges and
// router ports. A deletion matters only if it removed one of these.
type wantedKernel struct {
	aliases map[string]bool
	addrs   map[netip.Addr]bool
	// fdb are the VXLAN devices' forwarding entries, "MAC dst VTEP"
	// (dpspec.FDBEntry.String).
	fdb map[string]bool
}

// wantedOn is what one pass's desired state wants of the objects the
// drift watches see, built when a watch first asks: most passes hear of
// no deletion, and the set is a walk of every object the host has, which
// a pass per change would otherwise pay for a change of one.
type wantedOn struct {
	d    *desired
	once sync.Once
	w    *wantedKernel
}

// setWanted makes d's wants what the drift watches compare deletions with.
func (a *Agent) setWanted(d *desired) {
	a.wanted.Store(&wantedOn{d: d})
}

// wantedNow is the set of o, built under a.mu: the next pass's update
// changes its desired state in place under a.mu too. A set built after
// that update holds what the next pass wants, which is as good: what that
// pass deletes it no longer wants either.
func (a *Agent) wantedNow(o *wantedOn) *wantedKernel {
	o.once.Do(func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		a.wantedBuilt.Add(1)
		o.w = wantedOf(o.d)
	})
	return o.w
}

func wantedOf(d *desired) *wantedKernel {
	w := &wantedKernel{aliases: map[string]bool{}, addrs: map[netip.Addr]bool{}, fdb: map[string]bool{}}
	for _, r := range reconcilers {
		if wr, ok := r.(watched); ok {
			wr.watch(d, w)
		}
	}
	return w
}

// watched is a reconciler whose objects the drift watches see: watch adds
// what d wants of them to w.
type watched interface {
	watch(d *desired, w *wantedKernel)
}

// nftWatch says which nftables deletions in a namespace are drift.
type nftWatch struct {
	// tables are the names of nsnet's tables there; deletions in other
	// tables (a trace's, a user's) are not drift.
	tables []string
	// wholeTables counts only the deletion of a whole table: in the host
	// namespace the firewall deletes a port's chains and sets as the port
	// goes, which a structural watch would take for drift.
	wholeTables bool
}

// routerTables and hostTables are what a router's and the host's drift
// watches look at.
var (
	routerTables = &nftWatch{tables: []string{nat.TableName}}
	hostTables   = &nftWatch{tables: []string{nat.TableName, firewall.TableName}, wholeTables: true}
)

// watchDrift starts listening in the named namespace ("" is the agent's
// own) for deleted links and IPv4 addresses and, when nft is set, deleted
// nftables objects, and kicks the agent for each that was wanted.
func (a *Agent) watchDrift(namespace string, nft *nftWatch) (*driftWatch, error) {
	log, kick := a.log, a.kick
	w := &driftWatch{namespace: namespace}
	ino, err := netns.Inode(namespace)
	if err != nil {
		return nil, fmt.Errorf("watch namespace %q for drift: %w", namespace, err)
	}
	groups := uint32(unix.RTMGRP_LINK | unix.RTMGRP_IPV4_IFADDR)
	if namespace == a.cfg.HostNetns && a.cfg.VTEPAddress.IsValid() {
		// The VXLAN devices' forwarding entries, in multi-host mode
		// only: the bridges' learning makes these notifications busy.
		groups |= unix.RTMGRP_NEIGH
	}
	err = netns.DoNamed(namespace, func() error {
		route, err := netlink.Dial(unix.NETLINK_ROUTE, &netlink.Config{Groups: groups})
		if err != nil {
			return fmt.Errorf("rtnetlink: %w", err)
		}
		w.conns = append(w.conns, route)
		if err := onlyTypes(route, unix.RTM_DELLINK, unix.RTM_DELADDR, unix.RTM_DELNEIGH); err != nil {
			return fmt.Errorf("rtnetlink: %w", err)
		}
		if nft != nil {
			c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{Groups: 1 << (nfnlgrpNftables - 1)})
			if err != nil {
				return fmt.Errorf("nftables notifications: %w", err)
			}
			w.conns = append(w.conns, c)
			var dels []uint16
			for msg := range nftDeletions {
				dels = append(dels, unix.NFNL_SUBSYS_NFTABLES<<8|msg)
			}
			if err := onlyTypes(c, dels...); err != nil {
				return fmt.Errorf("nftables notifications: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("watch namespace %q for drift: %w", namespace, err)
	}
	log = log.With("netns", namespace)
	for i, c := range w.conns {
		classify := a.deletedLinkOrAddr
		if i == 1 {
			classify = func(m netlink.Message) (string, bool) { return nft.deleted(ino, m) }
		}
		w.done.Add(1)
		go func() {
			defer w.done.Done()
			listen(c, classify, log, kick)
		}()
	}
	return w, nil
}

// onlyTypes makes the kernel queue on c, a notification socket, only the
// messages of the types accept: the deletions the watch looks at. The
// others (every link created or changed, every entry a bridge learns,
// every set element added) are most of the traffic while ports come and
// go; queued, they filled the socket's buffer on a busy host, the kernel
// dropped notifications, and each overrun cost a full pass (listen) —
// seconds at a thousand ports. It also gives the socket a receive buffer
// of driftBuffer, past the system's default limit (the agent runs as
// root; without the privilege the default stays).
func onlyTypes(c *netlink.Conn, accept ...uint16) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	// Classic BPF, over the message: accept the types below, drop the
	// rest. nlmsg_type is the 16 bits at offset 4, in the host's byte
	// order; BPF loads them in network order.
	typ := func(t uint16) uint32 {
		var b [2]byte
		binary.NativeEndian.PutUint16(b[:], t)
		return uint32(binary.BigEndian.Uint16(b[:]))
	}
	prog := []unix.SockFilter{{Code: unix.BPF_LD | unix.BPF_H | unix.BPF_ABS, K: 4}}
	for i, t := range accept {
		// Jump to the accepting return, past the other tests.
		prog = append(prog, unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: typ(t), Jt: uint8(len(accept) - i)})
	}
	prog = append(prog,
		unix.SockFilter{Code: unix.BPF_RET | unix.BPF_K, K: 0},
		unix.SockFilter{Code: unix.BPF_RET | unix.BPF_K, K: 0xffffffff})
	var serr error
	err = raw.Control(func(fd uintptr) {
		serr = unix.SetsockoptSockFprog(int(fd), unix.SOL_SOCKET, unix.SO_ATTACH_FILTER,
			&unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]})
		if serr == nil {
			// Best effort: the filter is what matters.
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, driftBuffer)
		}
	})
	if err = errors.Join(err, serr); err != nil {
		return fmt.Errorf("filter notifications: %w", err)
	}
	return nil
}

// driftBuffer is the receive buffer of a drift watch's route socket.
const driftBuffer = 4 << 20

// listen reads notifications until c is closed. A receive error other than
// the close (an overrun: the kernel dropped notifications for us) counts as
// drift, since a deletion may be among the lost.
func listen(c *netlink.Conn, classify func(netlink.Message) (string, bool), log *slog.Logger, kick func(string)) {
	for {
		msgs, err := c.Receive()
		if err != nil {
			if errors.Is(err, unix.ENOBUFS) {
				kick("lost notifications")
				continue
			}
			// Close makes Receive fail: that is the normal end.
			log.Debug("drift watch ends", "err", err)
			return
		}
		for _, m := range msgs {
			if what, ok := classify(m); ok {
				kick(what)
			}
		}
	}
}

// deletedLinkOrAddr reports the deletion of a wanted link or address.
func (a *Agent) deletedLinkOrAddr(m netlink.Message) (string, bool) {
	o := a.wanted.Load()
	if o == nil {
		return "", false
	}
	w := a.wantedNow(o)
	switch m.Header.Type {
	case unix.RTM_DELLINK:
		alias, ok := msgAttr(m.Data, unix.SizeofIfInfomsg, unix.IFLA_IFALIAS)
		name := string(bytes.TrimRight(alias, "\x00"))
		return "link " + name, ok && w.aliases[name]
	case unix.RTM_DELADDR:
		raw, ok := msgAttr(m.Data, unix.SizeofIfAddrmsg, unix.IFA_LOCAL)
		if !ok {
			raw, ok = msgAttr(m.Data, unix.SizeofIfAddrmsg, unix.IFA_ADDRESS)
		}
		addr, valid := netip.AddrFromSlice(raw)
		return "address " + addr.String(), ok && valid && w.addrs[addr.Unmap()]
	case unix.RTM_DELNEIGH:
		// Only a VXLAN device's forwarding entries have a remote
		// destination (NDA_DST in the bridge family): the bridges' own
		// entries, which age all the time, have none, and neither do
		// the neighbour caches' notifications, which no state tells
		// from a deletion by hand. A deleted neighbour entry of a
		// VXLAN device waits for the periodic full pass.
		if len(m.Data) < unix.SizeofNdMsg || m.Data[0] != unix.AF_BRIDGE {
			return "", false
		}
		mac, ok := msgAttr(m.Data, unix.SizeofNdMsg, unix.NDA_LLADDR)
		raw, dok := msgAttr(m.Data, unix.SizeofNdMsg, unix.NDA_DST)
		dst, valid := netip.AddrFromSlice(raw)
		if !ok || !dok || !valid {
			return "", false
		}
		e := dpspec.FDBEntry{MAC: net.HardwareAddr(mac), Dst: dst.Unmap()}
		return "forwarding entry " + e.String(), w.fdb[e.String()]
	}
	return "", false
}

// msgAttr returns the attribute of type typ of a netlink message whose
// fixed header is hdrLen bytes.
func msgAttr(data []byte, hdrLen int, typ uint16) ([]byte, bool) {
	if len(data) < hdrLen {
		return nil, false
	}
	ad, err := netlink.NewAttributeDecoder(data[hdrLen:])
	if err != nil {
		return nil, false
	}
	for ad.Next() {
		if ad.Type() == typ {
			return ad.Bytes(), true
		}
	}
	return nil, false
}

// deleted reports the deletion of a table of nsnet's, or of part of one,
// by someone other than the agent, heard in the namespace with inode
// nsIno. Every nf_tables deletion message names its table first
// (NFTA_TABLE_NAME, NFTA_CHAIN_TABLE, NFTA_RULE_TABLE, NFTA_SET_TABLE are
// all attribute 1), after the 4-byte nfgenmsg.
func (w *nftWatch) deleted(nsIno uint64, m netlink.Message) (string, bool) {
	if uint16(m.Header.Type)>>8 != unix.NFNL_SUBSYS_NFTABLES || nfsock.Ours(nsIno, m.Header.PID) {
		return "", false
	}
	msg := uint16(m.Header.Type) & 0xff
	what, ok := nftDeletions[msg]
	if !ok || (w.wholeTables && msg != unix.NFT_MSG_DELTABLE) {
		return "", false
	}
	name, ok := msgAttr(m.Data, 4, 1)
	table := string(bytes.TrimRight(name, "\x00"))
	if !ok || !slices.Contains(w.tables, table) {
		return "", false
	}
	return what + " in table " + table, true
}

// Close stops the watch and releases its sockets, which would otherwise
// keep a deleted namespace alive.
func (w *driftWatch) Close() {
	if w == nil {
		return
	}
	for _, c := range w.conns {
		c.Close()
	}
	w.done.Wait()
}
