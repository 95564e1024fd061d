package nameserver

import (
	"bytes"
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
	servers []*dns.Server
	// zone is the zone answered from, with what the fast path prepared
	// from it.
	zone      atomic.Pointer[fastZone]
	upstreams []string
	// counters, when set, count the answers sent (see CountInto).
	counters atomic.Pointer[Counters]
	log      *slog.Logger
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
		// One reader of the socket: it reads queries in batches and
		// answers them in batches, so a query costs a fraction of two
		// system calls. Several readers of one socket cost more than
		// they gain: each read and each write takes the socket's lock,
		// and every release hands it to a reader waiting for it, a
		// goroutine (often a thread) woken per batch. Under dnsperf on
		// a 2-CPU machine, two readers (one per CPU, as it was) took
		// 1.3-1.7 times the CPU per query of one.
		s.servers = append(s.servers, &dns.Server{PacketConn: &udpConn{pc}, Handler: s, DecorateReader: s.fastReader})
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

// SetZone replaces what the server answers from. z must not be modified
// afterwards.
func (s *Server) SetZone(z *Zone) {
	if z == nil {
		s.zone.Store(nil)
		return
	}
	s.zone.Store(&fastZone{zone: z})
}

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
		return
	}
	s.counters.Load().answered(reply.Rcode)
}

func (s *Server) answer(req *dns.Msg, network string) *dns.Msg {
	f := s.zone.Load()
	if f == nil {
		return new(dns.Msg).SetRcode(req, dns.RcodeRefused)
	}
	if reply := f.zone.Answer(req); reply != nil {
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

// batch is how many datagrams one system call reads or writes.
const batch = 32

// maxQuery is the largest query read whole.
const maxQuery = 4096

// udpConn is the UDP socket as miekg/dns's server sees it: a PacketConn
// that is not a *net.UDPConn, so that the server reads through the
// reader's ReadPacketConn and answers with WriteTo to the address that
// returned. The socket is bound to the one address it serves, so replies
// leave from it without a control message naming it.
type udpConn struct{ net.PacketConn }

// fastReader wraps the UDP server's reader: it reads datagrams in batches
// (recvmmsg), answers those the fast path can in the reading goroutine and
// writes those answers in a batch (sendmmsg), and hands the others one by
// one to miekg/dns's server. Under load a batch is full and a query costs
// a fraction of two system calls, and no allocation.
func (s *Server) fastReader(next dns.Reader) dns.Reader {
	return &fastReader{Reader: next, s: s}
}

type fastReader struct {
	dns.Reader // TCP reads
	s          *Server
	// conn reads and writes in batches, made at the first read.
	conn *batchConn
	// pending are the indexes of the last batch's datagrams left to the
	// general path, next is the first not handed yet.
	pending []int
	next    int
	// failed counts the reads in a row the kernel refused.
	failed int
}

// ReadPacketConn returns the next datagram the fast path does not answer.
func (r *fastReader) ReadPacketConn(conn net.PacketConn, _ time.Duration) ([]byte, net.Addr, error) {
	if u, ok := conn.(*udpConn); ok {
		conn = u.PacketConn
	}
	if r.conn == nil {
		sc, ok := conn.(syscall.Conn)
		if !ok {
			return nil, nil, fmt.Errorf("DNS socket %T has no file descriptor", conn)
		}
		c, err := newBatchConn(sc, batch, maxQuery)
		if err != nil {
			return nil, nil, err
		}
		r.conn = c
	}
	// No read deadline: the server's Close closes the socket, which ends
	// the read.
	for {
		if r.next < len(r.pending) {
			i := r.pending[r.next]
			r.next++
			data, _ := r.conn.datagram(i)
			return bytes.Clone(data), r.conn.source(i), nil
		}
		err := r.serveBatch()
		var errno syscall.Errno
		if !errors.As(err, &errno) {
			if err != nil {
				return nil, nil, err // the socket is closed
			}
			r.failed = 0
			continue
		}
		// An error recvmmsg reports is one datagram's or the moment's
		// (an ICMP error queued on the socket, memory), not the
		// socket's: returned, it would stop miekg/dns's server and the
		// network's DNS with it. One that repeats is paced.
		r.failed++
		r.s.log.Warn("DNS read", "err", err, "in_a_row", r.failed)
		if r.failed > 1 {
			time.Sleep(min(time.Duration(r.failed)*time.Millisecond, 100*time.Millisecond))
		}
	}
}

// serveBatch reads a batch of datagrams, answers what the fast path can
// and leaves the rest pending.
func (r *fastReader) serveBatch() error {
	n, err := r.conn.read()
	if err != nil {
		return err
	}
	r.pending, r.next = r.pending[:0], 0
	f := r.s.zone.Load()
	replies := 0
	for i := range n {
		data, truncated := r.conn.datagram(i)
		if f == nil || truncated {
			r.pending = append(r.pending, i)
			continue
		}
		out, ok := f.fastAnswer(data, r.conn.reply(replies))
		if !ok {
			r.pending = append(r.pending, i)
			continue
		}
		r.conn.setReply(replies, out, i)
		replies++
	}
	if replies == 0 {
		return nil
	}
	if err := r.conn.write(replies); err != nil {
		// A reply that cannot be sent is a query lost: the client asks
		// again.
		r.s.log.Debug("DNS replies", "err", err)
	}
	if counters := r.s.counters.Load(); counters != nil {
		for j := range replies {
			if r.conn.sent(j) {
				counters.answered(int(r.conn.out.bufs[j][3] & 0xf)) // the header's RCODE
			}
		}
	}
	return nil
}
