package dhcp

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"
	vnetns "github.com/vishvananda/netns"

	"github.com/nsnet/nsnet/internal/netns"
)

// Server answers DHCP on one interface of one namespace. Its socket is
// created inside the namespace (a socket stays in the namespace it was
// made in), bound to the interface, so the daemon's thread never stays
// there. Create it with Listen, give it a Config with SetConfig (before
// that it answers nobody), stop it with Close.
type Server struct {
	conn   *net.UDPConn
	ifname string
	cfg    atomic.Pointer[Config]
	log    *slog.Logger
	done   chan struct{}
	once   sync.Once
}

// Listen opens the server's socket on port 67 of ifname inside ns and
// starts serving.
func Listen(ns vnetns.NsHandle, ifname string, log *slog.Logger) (*Server, error) {
	var conn *net.UDPConn
	err := netns.Do(ns, func() error {
		var err error
		conn, err = server4.NewIPv4UDPConn(ifname, &net.UDPAddr{Port: dhcpv4.ServerPort})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("open DHCP socket on %s: %w", ifname, err)
	}
	s := &Server{conn: conn, ifname: ifname, log: log, done: make(chan struct{})}
	go s.serve()
	return s, nil
}

// SetConfig replaces what the server answers from; requests already being
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
		n, _, err := s.conn.ReadFromUDP(buf)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			s.log.Warn("DHCP read", "interface", s.ifname, "err", err)
			continue
		}
		req, reply := s.handle(buf[:n])
		if reply == nil {
			continue
		}
		dst := destination(req, reply)
		if _, err := s.conn.WriteToUDP(reply.ToBytes(), dst); err != nil {
			s.log.Warn("DHCP reply", "interface", s.ifname, "to", dst, "err", err)
		}
	}
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
	s.log.Debug("DHCP", "interface", s.ifname, "request", req.MessageType(), "mac", req.ClientHWAddr.String(),
		"reply", replyType(reply))
	return req, reply
}

func replyType(r *dhcpv4.DHCPv4) string {
	if r == nil {
		return "none"
	}
	return r.MessageType().String()
}

// destination is where the reply to req goes (RFC 2131 4.1): to a relay's
// giaddr; a NAK, and a reply to a client that has no address yet,
// broadcast (a client without an address cannot answer ARP for a
// unicast); otherwise to the client's ciaddr.
func destination(req, reply *dhcpv4.DHCPv4) *net.UDPAddr {
	if gw := addrOf(req.GatewayIPAddr); gw.IsValid() {
		return &net.UDPAddr{IP: gw.AsSlice(), Port: dhcpv4.ServerPort}
	}
	if ci := addrOf(req.ClientIPAddr); ci.IsValid() && reply.MessageType() != dhcpv4.MessageTypeNak {
		return &net.UDPAddr{IP: ci.AsSlice(), Port: dhcpv4.ClientPort}
	}
	return &net.UDPAddr{IP: net.IPv4bcast, Port: dhcpv4.ClientPort}
}
