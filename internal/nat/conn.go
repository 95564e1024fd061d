package nat

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	vnl "github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/nsnet/nsnet/internal/netns"
)

// sockets are the two netfilter netlink sockets of a Table, both created
// inside its namespace (a socket keeps the namespace it was created in,
// whichever thread uses it later).
type sockets struct {
	nft *nftables.Conn // lasting: rules, sets, elements, batches
	gen *netlink.Conn  // the ruleset generation
	ct  *vnl.Handle    // conntrack
}

// bufferSize bounds one batch. The first Apply of a router with ten
// thousand floating IPs sends about a megabyte in one sendmsg, and a
// netlink socket refuses a message larger than its send buffer, whose
// default is 208 KiB. It is a limit, not an allocation.
const bufferSize = 64 << 20

func dial(namespace string) (*sockets, error) {
	ns, err := netns.Open(namespace)
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	var s sockets
	err = netns.Do(ns, func() error {
		var err error
		s.nft, err = nftables.New(nftables.AsLasting(), nftables.WithSockOptions(forceBuffers))
		if err != nil {
			return fmt.Errorf("nftables socket: %w", err)
		}
		s.gen, err = netlink.Dial(unix.NETLINK_NETFILTER, nil)
		if err != nil {
			s.nft.CloseLasting()
			return fmt.Errorf("netfilter socket: %w", err)
		}
		// A handle's sockets are made now, here, for the families it is
		// given; it never opens one later on whatever thread it runs.
		s.ct, err = vnl.NewHandle(unix.NETLINK_NETFILTER)
		if err != nil {
			s.nft.CloseLasting()
			s.gen.Close()
			return fmt.Errorf("conntrack socket: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("open nftables in namespace %q: %w", namespace, err)
	}
	return &s, nil
}

func (s *sockets) close() error {
	s.ct.Close()
	return errors.Join(s.nft.CloseLasting(), s.gen.Close())
}

// forceBuffers raises the socket's buffers past the system maximum, which
// needs CAP_NET_ADMIN, as nftables itself does.
func forceBuffers(c *netlink.Conn) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = raw.Control(func(fd uintptr) {
		serr = errors.Join(
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, bufferSize),
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, bufferSize/16),
		)
	})
	if err := errors.Join(err, serr); err != nil {
		return fmt.Errorf("socket buffers: %w", err)
	}
	return nil
}

// generation asks the kernel for the namespace's nftables ruleset
// generation, which every committed batch (by anyone, in any table)
// increments by one.
func (s *sockets) generation() (uint32, error) {
	msgs, err := s.gen.Execute(netlink.Message{
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
