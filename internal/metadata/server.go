package metadata

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	vnetns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/nsnet/nsnet/internal/netns"
)

// Service holds the directory every listener answers from.
type Service struct {
	dir atomic.Pointer[Directory]
	log *slog.Logger
}

// NewService returns a service that knows nobody until SetDirectory.
func NewService(log *slog.Logger) *Service { return &Service{log: log} }

// SetDirectory replaces who is who.
func (s *Service) SetDirectory(d Directory) { s.dir.Store(&d) }

// Listener is one socket of the service in one namespace.
type Listener struct {
	svc *Service
	srv *http.Server
	// networks maps the local address a request arrived at to the
	// network it came from; the invalid address matches any.
	networks atomic.Pointer[map[netip.Addr]string]
	done     chan struct{}
}

// Listen opens a listener on addr inside ns and serves on it.
func (s *Service) Listen(ns vnetns.NsHandle, addr netip.AddrPort) (*Listener, error) {
	var ln net.Listener
	err := netns.Do(ns, func() error {
		var err error
		ln, err = net.Listen("tcp", addr.String())
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("open metadata listener on %s: %w", addr, err)
	}
	return s.serve(ln, addr.String()), nil
}

// ListenLinkLocal opens the IPv6 listener of network networkID on
// [Addr6%ifname]:Port6 inside ns, as Neutron's since Victoria: ifname is
// the interface that serves the network there (the qdhcp port's, or a
// router's qr- on it), where the dataplane configures Prefix6. A link-
// local address is only unique with its interface, so there is one
// listener per interface, and it knows its network.
//
// The socket is bound with IPV6_FREEBIND: it opens before the address
// is configured and keeps working when the dataplane removes the address
// and adds it again (a repair), so the agent need not order the two.
func (s *Service) ListenLinkLocal(ns vnetns.NsHandle, ifname, networkID string) (*Listener, error) {
	var ln net.Listener
	where := fmt.Sprintf("[%s%%%s]:%d", Addr6, ifname, Port6)
	err := netns.Do(ns, func() error {
		// The zone is the interface's index in ns, numeric: Go resolves
		// a zone name through a process-wide cache of the interfaces,
		// which may hold another namespace's.
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			if err := c.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_IPV6, unix.IPV6_FREEBIND, 1)
			}); err != nil {
				return err
			}
			return serr
		}}
		addr := netip.AddrPortFrom(Addr6.WithZone(strconv.Itoa(ifi.Index)), Port6)
		ln, err = lc.Listen(context.Background(), "tcp6", addr.String())
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("open metadata listener on %s: %w", where, err)
	}
	l := s.serve(ln, where)
	l.SetNetworks(map[netip.Addr]string{{}: networkID})
	return l, nil
}

// serve answers on ln until the listener is closed.
func (s *Service) serve(ln net.Listener, addr string) *Listener {
	l := &Listener{svc: s, done: make(chan struct{})}
	l.networks.Store(&map[netip.Addr]string{})
	l.srv = &http.Server{Handler: l, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		defer close(l.done)
		if err := l.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Warn("metadata listener stopped", "address", addr, "err", err)
		}
	}()
	return l
}

// SetNetworks tells the listener which network each of its local
// addresses serves.
func (l *Listener) SetNetworks(byLocal map[netip.Addr]string) { l.networks.Store(&byLocal) }

// Close stops the listener and its connections.
func (l *Listener) Close() {
	l.srv.Close()
	<-l.done
}

// ServeHTTP answers a request with the caller's own data.
func (l *Listener) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "405 Method Not Allowed", http.StatusMethodNotAllowed)
		return
	}
	inst := l.caller(r)
	resp := Answer(inst, r.URL.Path)
	w.Header().Set("Content-Type", resp.ContentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(resp.Body)))
	w.WriteHeader(resp.Status)
	if r.Method == http.MethodGet {
		w.Write(resp.Body)
	}
}

// caller is the instance whose port holds the request's source address on
// the network it came from, or nil. An IPv6 link-local source carries its
// interface as a zone, which the network already says: the directory
// holds it without.
func (l *Listener) caller(r *http.Request) *Instance {
	src, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return nil
	}
	local := localAddr(r.Context())
	networks := *l.networks.Load()
	network, ok := networks[local]
	if !ok {
		network, ok = networks[netip.Addr{}]
	}
	dir := l.svc.dir.Load()
	if !ok || dir == nil {
		return nil
	}
	return (*dir)[Key{NetworkID: network, Addr: src.Addr().Unmap().WithZone("")}]
}

func localAddr(ctx context.Context) netip.Addr {
	a, ok := ctx.Value(http.LocalAddrContextKey).(net.Addr)
	if !ok {
		return netip.Addr{}
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap().WithZone("")
}
