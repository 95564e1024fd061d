package dhcp

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/nsnet/nsnet/internal/lab"
	"github.com/nsnet/nsnet/internal/netns"
)

// testPrefix starts every namespace this test binary makes.
var testPrefix = fmt.Sprintf("nsdh%d-", os.Getpid())

func TestMain(m *testing.M) {
	os.Exit(lab.RunTests(m, "dhcp", testPrefix))
}

// TestServeUnicast: a server on one end of a veth pair answers a client
// on the other that has no address and sends from a packet socket, as
// udhcpc and dhclient do. The OFFER comes to the client's hardware address
// and the offered IP (not broadcast: a broadcast reaches every client of
// the network), with valid IPv4 and UDP checksums; a client that sets the
// broadcast flag gets a broadcast. The server's socket has the large
// receive buffer a burst of clients needs.
func TestServeUnicast(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces)")
	}
	s, peer, fd := serverPair(t, true)
	var counters Counters
	s.CountInto(&counters)
	s.SetConfig(testConfig())
	if s.link == nil {
		t.Fatal("no packet socket for unicast replies")
	}
	raw, err := s.conn.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var rcvbuf int
	raw.Control(func(fd uintptr) { rcvbuf, err = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF) })
	if err != nil || rcvbuf < receiveBuffer {
		t.Errorf("receive buffer %d (%v), want at least %d", rcvbuf, err, receiveBuffer)
	}

	tests := []struct {
		name      string
		broadcast bool
		wantMAC   net.HardwareAddr
		wantIP    netip.Addr
	}{
		{"unicast", false, knownMAC, netip.MustParseAddr("10.0.0.5")},
		{"broadcast flag", true, net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, netip.MustParseAddr("255.255.255.255")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			discover := packet(t, dhcpv4.MessageTypeDiscover, knownMAC, dhcpv4.WithBroadcast(tt.broadcast))
			frame := discoverFrame(discover.ToBytes())
			// As a client does: send again until answered, a frame may
			// be lost while the veth comes up.
			for start := time.Now(); time.Since(start) < 20*time.Second; {
				to := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IP), Ifindex: peer.Attrs().Index, Halen: 6}
				copy(to.Addr[:], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
				if err := unix.Sendto(fd, frame, 0, to); err != nil {
					t.Fatal(err)
				}
				if offer, ok := readOffer(t, fd, discover.TransactionID); ok {
					if got := net.HardwareAddr(offer[0:6]); got.String() != tt.wantMAC.String() {
						t.Errorf("offer to %v, want %v", got, tt.wantMAC)
					}
					ip := offer[14:34]
					if dst, _ := netip.AddrFromSlice(ip[16:20]); dst != tt.wantIP {
						t.Errorf("offer to IP %v, want %v", dst, tt.wantIP)
					}
					if src, _ := netip.AddrFromSlice(ip[12:16]); src != server {
						t.Errorf("offer from IP %v, want %v", src, server)
					}
					if checksum(0, ip) != 0 {
						t.Error("bad IPv4 header checksum")
					}
					// The kernel's own UDP checksum is left to the
					// veth's offload: only nsnet's is complete here.
					if !tt.broadcast && !udpChecksumOK(ip, offer[34:]) {
						t.Error("bad UDP checksum")
					}
					return
				}
			}
			t.Fatal("no offer")
		})
	}
	// Each subtest got an OFFER (a retransmission may have got another),
	// counted once sent: the counter may trail the client by a moment.
	for start := time.Now(); ; time.Sleep(10 * time.Millisecond) {
		got := counters.Replies()
		if got["OFFER"] >= uint64(len(tests)) && len(got) == 1 {
			break
		}
		if time.Since(start) > 5*time.Second {
			t.Fatalf("counted replies %v, want %d OFFER or more and nothing else", got, len(tests))
		}
	}
}

// serverPair makes a server namespace and a client namespace joined by a
// veth pair (srv0 holding the server's address, cli0 with knownMAC), and
// a server on srv0, serving unless serving is false (the test starts
// s.serve itself); it returns the server, the client's end, and a packet
// socket on it that sends and sees every IPv4 frame (reads time out
// after 200 ms).
func serverPair(t *testing.T, serving bool) (*Server, netlink.Link, int) {
	t.Helper()
	srvNS, cliNS := testPrefix+"srv", testPrefix+"cli"
	for _, name := range []string{srvNS, cliNS} {
		if err := netns.Create(name); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := netns.Delete(name); err != nil {
				t.Error(err)
			}
		})
	}
	cli, err := netns.Open(cliNS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	h, err := netns.NewHandle(srvNS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "srv0"}, PeerName: "cli0",
		PeerHardwareAddr: knownMAC, PeerNamespace: netlink.NsFd(int(cli))}
	if err := h.LinkAdd(veth); err != nil {
		t.Fatal(err)
	}
	link, err := h.LinkByName("srv0")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.AddrAdd(link, &netlink.Addr{IPNet: &net.IPNet{IP: server.AsSlice(), Mask: net.CIDRMask(24, 32)}}); err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetUp(link); err != nil {
		t.Fatal(err)
	}
	ch, err := netns.NewHandle(cliNS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ch.Close() })
	peer, err := ch.LinkByName("cli0")
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.LinkSetUp(peer); err != nil {
		t.Fatal(err)
	}

	sns, err := netns.Open(srvNS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sns.Close() })
	s, err := listen(sns, "srv0", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close) // waits for serve: a test serving itself must have started it
	if serving {
		go s.serve()
	}
	// The client: a packet socket on cli0 that sends and sees every IPv4
	// frame.
	var fd int
	if err := netns.Do(cli, func() error {
		var err error
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_IP)))
		if err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IP), Ifindex: peer.Attrs().Index})
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	tv := unix.NsecToTimeval(int64(200 * time.Millisecond))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}

	return s, peer, fd
}

// discoverFrame is a client's DISCOVER as an Ethernet frame from
// knownMAC and 0.0.0.0:68 to the broadcast addresses.
func discoverFrame(payload []byte) []byte {
	eth := append([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, knownMAC...)
	eth = append(eth, 0x08, 0x00)
	return append(eth, udp4(netip.IPv4Unspecified(), netip.MustParseAddr("255.255.255.255"), 68, 67, payload)...)
}

// readOffer reads frames (Ethernet header included) until one carries an
// OFFER for xid to port 68.
func readOffer(t *testing.T, fd int, xid dhcpv4.TransactionID) ([]byte, bool) {
	t.Helper()
	buf := make([]byte, 2048)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return nil, false // timeout: send again
		}
		f := buf[:n]
		if len(f) < 14+20+8 || f[14+9] != unix.IPPROTO_UDP || binary.BigEndian.Uint16(f[14+20+2:]) != 68 {
			continue
		}
		m, err := dhcpv4.FromBytes(f[14+20+8:])
		if err != nil || m.TransactionID != xid || m.MessageType() != dhcpv4.MessageTypeOffer {
			continue
		}
		return append([]byte(nil), f...), true
	}
}

// udpChecksumOK checks a UDP datagram's checksum against its IPv4 header.
func udpChecksumOK(ip, udp []byte) bool {
	var pseudo [12]byte
	copy(pseudo[0:8], ip[12:20])
	pseudo[9] = unix.IPPROTO_UDP
	binary.BigEndian.PutUint16(pseudo[10:], uint16(len(udp)))
	return checksum(sum16(0, pseudo[:]), udp) == 0
}

// TestServeBurstBatched: requests that queued while the server was not
// running (as when many clients start at once on a busy machine) are
// read several per system call, and every one is answered.
func TestServeBurstBatched(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces)")
	}
	s, peer, fd := serverPair(t, false)
	s.SetConfig(testConfig())
	const n = 3 * batch / 2
	open := map[dhcpv4.TransactionID][]byte{}
	for range n {
		discover := packet(t, dhcpv4.MessageTypeDiscover, knownMAC)
		open[discover.TransactionID] = discoverFrame(discover.ToBytes())
	}
	to := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IP), Ifindex: peer.Attrs().Index, Halen: 6}
	copy(to.Addr[:], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	sendAll := func() {
		for _, frame := range open {
			if err := unix.Sendto(fd, frame, 0, to); err != nil {
				t.Error(err)
				return
			}
		}
	}
	sendAll()
	go s.serve()
	if t.Failed() {
		return
	}
	buf := make([]byte, 2048)
	for try := 0; len(open) > 0 && try < 20; try++ {
		if try > 0 {
			sendAll() // as a client does: ask again what is unanswered
		}
		for len(open) > 0 {
			nr, _, err := unix.Recvfrom(fd, buf, 0)
			if err != nil {
				break // timeout
			}
			if f := buf[:nr]; len(f) > 14+20+8 && f[14+9] == unix.IPPROTO_UDP && binary.BigEndian.Uint16(f[14+20+2:]) == 68 {
				if m, err := dhcpv4.FromBytes(f[14+20+8:]); err == nil && m.MessageType() == dhcpv4.MessageTypeOffer {
					delete(open, m.TransactionID)
				}
			}
		}
	}
	if len(open) > 0 {
		t.Fatalf("%d of %d DISCOVERs unanswered", len(open), n)
	}
	if reads := s.reads.Load(); reads > n/2 {
		t.Errorf("%d requests read in %d system calls, want several per call", n, reads)
	}
}
