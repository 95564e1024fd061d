package dhcp6

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/insomniacslk/dhcp/dhcpv6"
	vnetns "github.com/vishvananda/netns"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"

	"github.com/nsnet/nsnet/internal/netns"
)

// allServers is All_DHCP_Relay_Agents_and_Servers (RFC 8415 7.1), where
// clients send.
var allServers = netip.MustParseAddr("ff02::1:2")

// Server answers DHCPv6 on one interface of one namespace. Its socket is
// created inside the namespace (a socket stays in the namespace it was
// made in), bound to the interface, so the daemon's thread never stays
// there. Create it with Listen, give it a Config with SetConfig (before
// that it answers nobody), stop it with Close.
type Server struct {
	conn   *net.UDPConn
	ifname string
	index  int
	duid   dhcpv6.DUID
	cfg    atomic.Pointer[Config]
	// counters, when set, count the replies sent (see CountInto).
	counters atomic.Pointer[Counters]
	log      *slog.Logger
	done     chan struct{}
	once     sync.Once
}

// Listen opens the server's socket on UDP port 547 of ifname inside ns,
// joined to ff02::1:2 there, and starts serving. Its server identifier is
// the DUID-LL of the interface's MAC.
func Listen(ns vnetns.NsHandle, ifname string, log *slog.Logger) (*Server, error) {
	s := &Server{ifname: ifname, log: log, done: make(chan struct{})}
	err := netns.Do(ns, func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		if len(ifi.HardwareAddr) != 6 {
			return fmt.Errorf("%s has no Ethernet address for the server identifier", ifname)
		}
		s.index, s.duid = ifi.Index, ServerDUID(ifi.HardwareAddr)
		lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = unix.BindToDevice(int(fd), ifname)
			})
			return errors.Join(err, serr)
		}}
		pc, err := lc.ListenPacket(context.Background(), "udp6", net.JoinHostPort("::", strconv.Itoa(dhcpv6.DefaultServerPort)))
		if err != nil {
			return err
		}
		s.conn = pc.(*net.UDPConn)
		if err := ipv6.NewPacketConn(s.conn).JoinGroup(ifi, &net.UDPAddr{IP: allServers.AsSlice()}); err != nil {
			s.conn.Close()
			return fmt.Errorf("join %s: %w", allServers, err)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("open DHCPv6 socket on %s: %w", ifname, err)
	}
	go s.serve()
	return s, nil
}

// SetConfig replaces what the server answers from; messages already being
// answered finish with the old one.
func (s *Server) SetConfig(c *Config) { s.cfg.Store(c) }

// Close stops the server and waits for it.
func (s *Server) Close() {
	s.once.Do(func() { s.conn.Close() })
	<-s.done
}

func (s *Server) serve() {
	defer close(s.done)
	buf := make([]byte, 65536)
	for {
		n, from, err := s.conn.ReadFromUDPAddrPort(buf)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			s.log.Warn("DHCPv6 read", "interface", s.ifname, "err", err)
			continue
		}
		// The zone Go reports is the interface's index turned into a
		// name through a process-wide cache, filled from whichever
		// namespace a thread was in: meaningless here, and dropped.
		reply := s.handle(buf[:n], from.Addr().WithZone(""))
		if reply == nil {
			continue
		}
		// Back to where the client sent from, on this interface, named
		// by its index, which Go passes to the kernel as it is.
		to := &net.UDPAddr{IP: from.Addr().AsSlice(), Port: int(from.Port()), Zone: strconv.Itoa(s.index)}
		if _, err := s.conn.WriteToUDP(reply.ToBytes(), to); err != nil {
			s.log.Warn("DHCPv6 reply", "interface", s.ifname, "to", to, "err", err)
			continue
		}
		s.counters.Load().sent(reply)
	}
}

// handle parses one datagram from src and returns the reply to send, if
// any.
func (s *Server) handle(packet []byte, src netip.Addr) *dhcpv6.Message {
	cfg := s.cfg.Load()
	if cfg == nil {
		return nil
	}
	reply, req, err := answer(cfg, packet, src, s.duid)
	if err != nil {
		s.log.Debug("malformed DHCPv6 message", "interface", s.ifname, "from", src, "err", err)
		return nil
	}
	s.log.Debug("DHCPv6", "interface", s.ifname, "from", src, "request", req.MessageType, "reply", replyType(reply))
	return reply
}

// answer is the server's whole handling of a datagram, parsing included:
// what the fuzz target exercises. Relayed messages are not served.
func answer(cfg *Config, packet []byte, src netip.Addr, server dhcpv6.DUID) (reply, req *dhcpv6.Message, err error) {
	msg, err := dhcpv6.FromBytes(packet)
	if err != nil {
		return nil, nil, err
	}
	req, ok := msg.(*dhcpv6.Message)
	if !ok {
		return nil, nil, fmt.Errorf("relayed message: no relays on nsnet's networks")
	}
	return cfg.Reply(req, src.WithZone(""), server), req, nil
}

func replyType(r *dhcpv6.Message) string {
	if r == nil {
		return "none"
	}
	return r.MessageType.String()
}
