package dhcp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"
	"github.com/insomniacslk/dhcp/iana"
	vnetns "github.com/vishvananda/netns"
	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"

	"github.com/nsnet/nsnet/internal/netns"
)

// Server answers DHCP on one interface of one namespace. Its socket is
// created inside the namespace (a socket stays in the namespace it was
// made in), bound to the interface, so the daemon's thread never stays
// there. Create it with Listen, give it a Config with SetConfig (before
// that it answers nobody), stop it with Close.
type Server struct {
	conn *net.UDPConn
	// link unicasts to clients without an address; nil when its socket
	// could not be opened, and such replies are broadcast.
	link   *linkSender
	ifname string
	cfg    atomic.Pointer[Config]
	// counters, when set, count the replies sent (see CountInto).
	counters atomic.Pointer[Counters]
	log      *slog.Logger
	done     chan struct{}
	once     sync.Once
	// reads counts the system calls that read requests.
	reads atomic.Uint64
}

// receiveBuffer is the server's socket receive buffer. Every client of a
// network may start at once (a host boots, a deployment of hundreds of
// instances): their DISCOVERs arrive together, and what does not fit while
// the server is not scheduled is lost, each loss costing its client a
// retransmission timeout. 4 MiB holds thousands of requests (each takes
// its packet's truesize, a few KiB from a veth, not its 300 bytes).
const receiveBuffer = 4 << 20

// Listen opens the server's sockets on ifname inside ns and starts
// serving: UDP port 67, and a packet socket for replies to clients that
// have no address yet.
func Listen(ns vnetns.NsHandle, ifname string, log *slog.Logger) (*Server, error) {
	s, err := listen(ns, ifname, log)
	if err != nil {
		return nil, err
	}
	go s.serve()
	return s, nil
}

// listen opens the server's sockets; serve serves them.
func listen(ns vnetns.NsHandle, ifname string, log *slog.Logger) (*Server, error) {
	var conn *net.UDPConn
	var link *linkSender
	var linkErr error
	err := netns.Do(ns, func() error {
		var err error
		conn, err = server4.NewIPv4UDPConn(ifname, &net.UDPAddr{Port: dhcpv4.ServerPort})
		if err != nil {
			return err
		}
		link, linkErr = newLinkSender(ifname)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("open DHCP socket on %s: %w", ifname, err)
	}
	if linkErr != nil {
		log.Warn("DHCP replies to clients without an address will be broadcast", "interface", ifname, "err", linkErr)
	}
	if err := setReceiveBuffer(conn, receiveBuffer); err != nil {
		log.Warn("DHCP socket receive buffer", "interface", ifname, "err", err)
	}
	return &Server{conn: conn, link: link, ifname: ifname, log: log, done: make(chan struct{})}, nil
}

// setReceiveBuffer sets conn's receive buffer to size: beyond the
// machine's net.core.rmem_max with SO_RCVBUFFORCE (the daemon has
// CAP_NET_ADMIN), else as far as that limit allows.
func setReceiveBuffer(conn *net.UDPConn, size int) error {
	raw, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, size); serr != nil {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, size)
		}
	}); err != nil {
		return err
	}
	return serr
}

// SetConfig replaces what the server answers from; requests already being
// answered finish with the old one.
func (s *Server) SetConfig(c *Config) { s.cfg.Store(c) }

// Close stops the server and waits for it.
func (s *Server) Close() {
	s.once.Do(func() { s.conn.Close() })
	<-s.done
	if s.link != nil {
		s.link.close()
	}
}

// batch is how many datagrams one read takes, and maxRequest the
// largest request read whole: a DHCP request fits an Ethernet frame
// (RFC 2131 requires clients to accept 576 bytes, and asks no more of
// servers), and a longer one is dropped as truncated.
const (
	batch      = 16
	maxRequest = 4096
)

// serve reads requests in batches (recvmmsg) and answers each: when many
// clients start at once their requests queue while the server waits for
// a CPU, and it then takes up to a batch of them per system call rather
// than one.
func (s *Server) serve() {
	defer close(s.done)
	pc := ipv4.NewPacketConn(s.conn)
	msgs := make([]ipv4.Message, batch)
	for i := range msgs {
		msgs[i].Buffers = [][]byte{make([]byte, maxRequest)}
	}
	for {
		n, err := pc.ReadBatch(msgs, 0)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			s.log.Warn("DHCP read", "interface", s.ifname, "err", err)
			continue
		}
		s.reads.Add(1)
		for _, m := range msgs[:n] {
			if m.Flags&unix.MSG_TRUNC != 0 {
				s.log.Debug("DHCP request too long, dropped", "interface", s.ifname, "from", m.Addr)
				continue
			}
			s.serveOne(m.Buffers[0][:m.N])
		}
	}
}

// serveOne answers one request.
func (s *Server) serveOne(packet []byte) {
	req, reply := s.handle(packet)
	if reply == nil {
		return
	}
	if err := s.send(req, reply); err != nil {
		s.log.Warn("DHCP reply", "interface", s.ifname, "err", err)
		return
	}
	s.counters.Load().sent(reply)
}

// send sends reply where destination says, broadcasting a reply meant for
// a hardware address when the packet socket is missing or fails.
func (s *Server) send(req, reply *dhcpv4.DHCPv4) error {
	dst := destination(req, reply)
	b := reply.ToBytes()
	if dst.hw != nil {
		src := addrOf(reply.ServerIdentifier())
		if s.link != nil && src.IsValid() {
			err := s.link.send(dst.hw, src, dst.addr.AddrPort().Addr(), b)
			if err == nil {
				return nil
			}
			s.log.Debug("DHCP unicast, broadcasting instead", "interface", s.ifname, "to", dst.hw, "err", err)
		}
		dst.addr = &net.UDPAddr{IP: net.IPv4bcast, Port: dhcpv4.ClientPort}
	}
	if _, err := s.conn.WriteToUDP(b, dst.addr); err != nil {
		return fmt.Errorf("to %v: %w", dst.addr, err)
	}
	return nil
}

// handle parses one datagram and returns it with the reply to send, if
// any.
func (s *Server) handle(packet []byte) (req, reply *dhcpv4.DHCPv4) {
	cfg := s.cfg.Load()
	if cfg == nil {
		return nil, nil
	}
	req, err := dhcpv4.FromBytes(packet)
	if err != nil {
		s.log.Debug("malformed DHCP packet", "interface", s.ifname, "err", err)
		return nil, nil
	}
	reply = cfg.Reply(req)
	// Enabled first: the arguments cost more than the reply at a burst.
	if s.log.Enabled(context.Background(), slog.LevelDebug) {
		s.log.Debug("DHCP", "interface", s.ifname, "request", req.MessageType(), "mac", req.ClientHWAddr.String(),
			"reply", replyType(reply))
	}
	return req, reply
}

func replyType(r *dhcpv4.DHCPv4) string {
	if r == nil {
		return "none"
	}
	return r.MessageType().String()
}

// dest is where a reply goes: an address, and for a client that has no
// address yet, its hardware address.
type dest struct {
	addr *net.UDPAddr
	hw   net.HardwareAddr
}

// destination is where the reply to req goes (RFC 2131 4.1): to a relay's
// giaddr; a NAK broadcast; to the client's ciaddr when it has one;
// broadcast when the client asks for it (the broadcast flag: it cannot
// receive a unicast before it is configured); otherwise to the address
// offered, at the client's hardware address, which needs no ARP.
func destination(req, reply *dhcpv4.DHCPv4) dest {
	if gw := addrOf(req.GatewayIPAddr); gw.IsValid() {
		return dest{addr: &net.UDPAddr{IP: gw.AsSlice(), Port: dhcpv4.ServerPort}}
	}
	broadcast := dest{addr: &net.UDPAddr{IP: net.IPv4bcast, Port: dhcpv4.ClientPort}}
	if reply.MessageType() == dhcpv4.MessageTypeNak {
		return broadcast
	}
	if ci := addrOf(req.ClientIPAddr); ci.IsValid() {
		return dest{addr: &net.UDPAddr{IP: ci.AsSlice(), Port: dhcpv4.ClientPort}}
	}
	yi := addrOf(reply.YourIPAddr)
	if req.IsBroadcast() || !yi.IsValid() || req.HWType != iana.HWTypeEthernet || len(req.ClientHWAddr) != 6 {
		return broadcast
	}
	return dest{addr: &net.UDPAddr{IP: yi.AsSlice(), Port: dhcpv4.ClientPort}, hw: req.ClientHWAddr}
}
