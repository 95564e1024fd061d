package agent

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/nsnet/nsnet/internal/netns"
)

// Drift is what someone else does to the objects nsnet made: an interface,
// an address or an nft table deleted by hand. The periodic full pass
// repairs it eventually; a driftWatch makes it prompt. It listens to the
// kernel's notifications in one namespace and reports every deletion,
// after which the agent runs a full pass. It does not try to tell nsnet's
// own deletions from others': a full pass that finds nothing to repair
// changes nothing and so notifies nothing, which ends the loop.
type driftWatch struct {
	namespace string
	conns     []*netlink.Conn
	done      sync.WaitGroup
}

// nfnlgrpNftables is the netlink multicast group of nftables changes
// (NFNLGRP_NFTABLES); netlink numbers groups from 1, the bitmask from bit 0.
const nfnlgrpNftables = 7

// nftDeletions are the nf_tables messages that remove something.
var nftDeletions = map[uint16]string{
	unix.NFT_MSG_DELTABLE:   "nft table",
	unix.NFT_MSG_DELCHAIN:   "nft chain",
	unix.NFT_MSG_DELRULE:    "nft rule",
	unix.NFT_MSG_DELSET:     "nft set",
	unix.NFT_MSG_DELSETELEM: "nft set element",
}

// watchDrift starts listening in the named namespace ("" is the agent's
// own) for deleted links and IPv4 addresses and, when nft is set, deleted
// nftables objects. kick is called, from the watch's goroutines, with what
// was deleted; it must not block.
func watchDrift(namespace string, nft bool, log *slog.Logger, kick func(what string)) (*driftWatch, error) {
	w := &driftWatch{namespace: namespace}
	ns, err := netns.Open(namespace)
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	err = netns.Do(ns, func() error {
		route, err := netlink.Dial(unix.NETLINK_ROUTE, &netlink.Config{Groups: unix.RTMGRP_LINK | unix.RTMGRP_IPV4_IFADDR})
		if err != nil {
			return fmt.Errorf("rtnetlink: %w", err)
		}
		w.conns = append(w.conns, route)
		if nft {
			c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{Groups: 1 << (nfnlgrpNftables - 1)})
			if err != nil {
				return fmt.Errorf("nftables notifications: %w", err)
			}
			w.conns = append(w.conns, c)
		}
		return nil
	})
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("watch namespace %q for drift: %w", namespace, err)
	}
	log = log.With("netns", namespace)
	for i, c := range w.conns {
		classify := deletedLinkOrAddr
		if i == 1 {
			classify = deletedNftObject
		}
		w.done.Add(1)
		go func() {
			defer w.done.Done()
			listen(c, classify, log, kick)
		}()
	}
	return w, nil
}

// listen reads notifications until c is closed. A receive error other than
// the close (an overrun: the kernel dropped notifications for us) counts as
// drift, since a deletion may be among the lost.
func listen(c *netlink.Conn, classify func(netlink.Header) (string, bool), log *slog.Logger, kick func(string)) {
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
			if what, ok := classify(m.Header); ok {
				kick(what)
			}
		}
	}
}

func deletedLinkOrAddr(h netlink.Header) (string, bool) {
	switch h.Type {
	case unix.RTM_DELLINK:
		return "link", true
	case unix.RTM_DELADDR:
		return "address", true
	}
	return "", false
}

func deletedNftObject(h netlink.Header) (string, bool) {
	if uint16(h.Type)>>8 != unix.NFNL_SUBSYS_NFTABLES {
		return "", false
	}
	what, ok := nftDeletions[uint16(h.Type)&0xff]
	return what, ok
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
