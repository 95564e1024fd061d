package nat

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/mdlayher/netlink"
	vnl "github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/nsnet/nsnet/internal/netns"
	"github.com/nsnet/nsnet/internal/nfsock"
)

// sockets are the two netfilter netlink sockets of a Table, both created
// inside its namespace (a socket keeps the namespace it was created in,
// whichever thread uses it later).
type sockets struct {
	nft *nfsock.Conn  // lasting: rules, sets, elements, batches
	gen *netlink.Conn // the ruleset generation
	ct  *vnl.Handle   // conntrack
}

// bufferSize bounds one batch. The first Apply of a router with ten
// thousand floating IPs sends about a megabyte in one sendmsg, and a
// netlink socket refuses a message larger than its send buffer, whose
// default is 208 KiB. It is a limit, not an allocation.
const bufferSize = 64 << 20

func dial(namespace string) (*sockets, error) {
	var s sockets
	err := netns.DoNamed(namespace, func() error {
		var err error
		// Answers are few (errors, and the generation): a sixteenth of
		// the send buffer.
		s.nft, err = nfsock.Open(bufferSize, bufferSize/16)
		if err != nil {
			return err
		}
		s.gen, err = netlink.Dial(unix.NETLINK_NETFILTER, nil)
		if err != nil {
			s.nft.Close()
			return fmt.Errorf("netfilter socket: %w", err)
		}
		// A handle's sockets are made now, here, for the families it is
		// given; it never opens one later on whatever thread it runs.
		s.ct, err = vnl.NewHandle(unix.NETLINK_NETFILTER)
		if err != nil {
			s.nft.Close()
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
	return errors.Join(s.nft.Close(), s.gen.Close())
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
