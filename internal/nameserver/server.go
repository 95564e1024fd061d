package nameserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/miekg/dns"
	vnetns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/nsnet/nsnet/internal/netns"
)

// Port is where DNS is served.
const Port = 53

// forwardTimeout bounds one forwarded query, all upstreams together.
const forwardTimeout = 4 * time.Second

// Server answers DNS on UDP and TCP port 53 of one address in one
// namespace. Before SetZone it refuses everything.
type Server struct {
	servers   []*dns.Server
	zone      atomic.Pointer[Zone]
	upstreams []string
	log       *slog.Logger
}

// Listen opens the server's sockets on addr inside ns and starts serving.
// upstreams (address:port) get the questions that are not the zone's; with
// none, such questions are REFUSED.
//
// An IPv6 address is bound with IPV6_FREEBIND: until its duplicate
// address detection ends, an address is tentative and cannot be bound,
// and the DHCP port's IPv6 addresses are new whenever the port is; the
// server answers from the moment the address is usable.
func Listen(ns vnetns.NsHandle, addr netip.Addr, upstreams []string, log *slog.Logger) (*Server, error) {
	s := &Server{upstreams: upstreams, log: log}
	var lc net.ListenConfig
	if addr.Is6() {
		lc.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			if err := c.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_IPV6, unix.IPV6_FREEBIND, 1)
			}); err != nil {
				return err
			}
			return serr
		}
	}
	err := netns.Do(ns, func() error {
		ap := netip.AddrPortFrom(addr, Port).String()
		pc, err := lc.ListenPacket(context.Background(), "udp", ap)
		if err != nil {
			return err
		}
		s.servers = append(s.servers, &dns.Server{PacketConn: pc, Handler: s})
		ln, err := lc.Listen(context.Background(), "tcp", ap)
		if err != nil {
			return err
		}
		s.servers = append(s.servers, &dns.Server{Listener: ln, Handler: s})
		return nil
	})
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("open DNS sockets: %w", err)
	}
	for _, srv := range s.servers {
		go func() {
			if err := srv.ActivateAndServe(); err != nil && !errors.Is(err, net.ErrClosed) {
				log.Warn("DNS server stopped", "err", err)
			}
		}()
	}
	return s, nil
}

// SetZone replaces what the server answers from.
func (s *Server) SetZone(z *Zone) { s.zone.Store(z) }

// Close stops the server.
func (s *Server) Close() {
	for _, srv := range s.servers {
		if srv.PacketConn != nil {
			srv.PacketConn.Close()
		}
		if srv.Listener != nil {
			srv.Listener.Close()
		}
		_ = srv.Shutdown()
	}
}

// ServeDNS answers one query.
func (s *Server) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	reply := s.answer(req, w.RemoteAddr().Network())
	if reply == nil {
		return
	}
	if err := w.WriteMsg(reply); err != nil {
		s.log.Debug("DNS reply", "to", w.RemoteAddr(), "err", err)
	}
}

func (s *Server) answer(req *dns.Msg, network string) *dns.Msg {
	zone := s.zone.Load()
	if zone == nil {
		return new(dns.Msg).SetRcode(req, dns.RcodeRefused)
	}
	if reply := zone.Answer(req); reply != nil {
		return reply
	}
	if len(s.upstreams) == 0 {
		return new(dns.Msg).SetRcode(req, dns.RcodeRefused)
	}
	return s.forward(req, network)
}

// forward asks the upstreams in turn and relays the first answer.
func (s *Server) forward(req *dns.Msg, network string) *dns.Msg {
	ctx, cancel := context.WithTimeout(context.Background(), forwardTimeout)
	defer cancel()
	client := &dns.Client{Net: network, Timeout: forwardTimeout / time.Duration(len(s.upstreams))}
	for _, up := range s.upstreams {
		reply, _, err := client.ExchangeContext(ctx, req, up)
		if err == nil {
			return reply
		}
		s.log.Debug("DNS upstream", "upstream", up, "err", err)
	}
	return new(dns.Msg).SetRcode(req, dns.RcodeServerFailure)
}
