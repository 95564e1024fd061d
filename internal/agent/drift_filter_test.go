package agent

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"testing"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/nsnet/nsnet/internal/netns"
)

// TestDriftSocketsQueueOnlyDeletions: a drift watch's sockets are given
// by the kernel only the deletions the watch looks at. Links and tables
// made and changed in bulk, as while ports come and go, queue nothing
// (unfiltered, they overran the socket's buffer on a busy host, and each
// overrun cost a full pass): the first message the socket holds after
// them is the deletion that follows.
func TestDriftSocketsQueueOnlyDeletions(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces)")
	}
	var nftDels []uint16
	for msg := range nftDeletions {
		nftDels = append(nftDels, unix.NFNL_SUBSYS_NFTABLES<<8|msg)
	}
	for _, tc := range []struct {
		name   string
		family int
		groups uint32
		accept []uint16
		// busy makes and changes objects; then del deletes one.
		busy, del [][]string
		want      uint16
	}{
		{
			name: "links and addresses", family: unix.NETLINK_ROUTE,
			groups: unix.RTMGRP_LINK | unix.RTMGRP_IPV4_IFADDR,
			accept: []uint16{unix.RTM_DELLINK, unix.RTM_DELADDR, unix.RTM_DELNEIGH},
			busy: func() (cmds [][]string) {
				for i := range 50 {
					name := fmt.Sprintf("d%d", i)
					cmds = append(cmds, []string{"ip", "link", "add", name, "type", "bridge"},
						[]string{"ip", "link", "set", name, "up"},
						[]string{"ip", "link", "set", name, "mtu", "1400"})
				}
				return cmds
			}(),
			del:  [][]string{{"ip", "link", "del", "d7"}},
			want: unix.RTM_DELLINK,
		},
		{
			name: "nft tables", family: unix.NETLINK_NETFILTER,
			groups: 1 << (nfnlgrpNftables - 1),
			accept: nftDels,
			busy: [][]string{
				{"nft", "add", "table", "inet", "t"},
				{"nft", "add", "set", "inet", "t", "s", "{ type ipv4_addr; }"},
				{"nft", "add", "element", "inet", "t", "s", "{ 10.0.0.1, 10.0.0.2, 10.0.0.3 }"},
				{"nft", "add", "chain", "inet", "t", "c"},
				{"nft", "add", "rule", "inet", "t", "c", "ip saddr @s accept"},
				{"nft", "delete", "element", "inet", "t", "s", "{ 10.0.0.2 }"},
			},
			// The table's rule goes first: deleting a table
			// reports its contents' deletions before its own.
			del:  [][]string{{"nft", "delete", "table", "inet", "t"}},
			want: unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_DELRULE,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := fmt.Sprintf("%s%d-filter", allPrefix, testSeq.Add(1))
			if err := netns.Create(ns); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { netns.Delete(ns) })
			var c *netlink.Conn
			err := netns.DoNamed(ns, func() error {
				var err error
				if c, err = netlink.Dial(tc.family, &netlink.Config{Groups: tc.groups}); err != nil {
					return err
				}
				return onlyTypes(c, tc.accept...)
			})
			if c != nil {
				defer c.Close()
			}
			if err != nil {
				t.Fatal(err)
			}
			run := func(cmds [][]string) {
				for _, cmd := range cmds {
					args := append([]string{"netns", "exec", ns}, cmd...)
					if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
						t.Fatalf("%v: %v\n%s", cmd, err, out)
					}
				}
			}
			run(tc.busy)
			run(tc.del)
			msgs, err := c.Receive()
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range msgs {
				if typ := uint16(m.Header.Type); !slices.Contains(tc.accept, typ) {
					t.Errorf("socket queued message type %#x, which the watch does not look at", typ)
				}
			}
			if typ := uint16(msgs[0].Header.Type); typ != tc.want {
				t.Errorf("first message type %#x, want %#x (the deletion)", typ, tc.want)
			}
		})
	}
}
