package radv

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"reflect"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mdlayher/ndp"
	vnetns "github.com/vishvananda/netns"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"

	"github.com/nsnet/nsnet/internal/netns"
)

// Server advertises on one interface of one namespace. Its socket is
// created inside the namespace and bound to the interface's link-local
// address, so the daemon's threads never stay there. Create it with
// Listen, give it a Config with SetConfig (before that it advertises
// nothing and answers nobody), stop it with Close.
type Server struct {
	ns     vnetns.NsHandle // the server's own copy, closed when it stops
	ifname string
	log    *slog.Logger

	mu        sync.Mutex
	cfg       *Config
	withdrawn map[netip.Prefix]int // removed prefixes → advertisements left to carry them
	// restart is set by SetConfig when advertising starts (again): the
	// initial, faster advertisements follow.
	restart bool
	// silent is set by Leave: no final advertisement.
	silent bool

	// advertisements counts what went out, for tests to tell the first
	// advertisement from later ones.
	advertisements atomic.Int64

	update  chan struct{} // SetConfig: advertise the new Config now
	solicit chan struct{} // a multicast solicitation: advertise soon
	closing chan struct{}
	done    chan struct{}
	once    sync.Once
}

// link is the open socket and what the interface's advertisements say
// about it.
type link struct {
	pc    *ipv6.PacketConn
	index int
	src   netip.Addr // the interface's link-local address
	mac   net.HardwareAddr
}

// Listen starts advertising on ifname inside ns. It fails when ns has no
// such interface; an interface without a usable link-local address yet
// (duplicate address detection runs for a second or two after it comes
// up) is not an error: the server opens its socket as soon as it can. ns
// stays the caller's; the server keeps its own descriptor of it.
func Listen(ns vnetns.NsHandle, ifname string, log *slog.Logger) (*Server, error) {
	err := netns.Do(ns, func() error {
		_, err := net.InterfaceByName(ifname)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("router advertisements on %s: %w", ifname, err)
	}
	fd, err := unix.FcntlInt(uintptr(ns), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("router advertisements on %s: keep namespace: %w", ifname, err)
	}
	s := &Server{
		ns:        vnetns.NsHandle(fd),
		ifname:    ifname,
		log:       log,
		withdrawn: map[netip.Prefix]int{},
		update:    make(chan struct{}, 1),
		solicit:   make(chan struct{}, 1),
		closing:   make(chan struct{}),
		done:      make(chan struct{}),
	}
	go s.run()
	return s, nil
}

// SetConfig replaces what the server advertises and advertises it at
// once. Prefixes the previous Config had and c has not are advertised
// with zero lifetimes a few times. A nil c stops advertising: one final
// advertisement (router lifetime 0, zero prefix lifetimes), then silence.
// A Config equal to the current one changes nothing, so the agent may set
// it on every pass; c must not be modified afterwards.
func (s *Server) SetConfig(c *Config) {
	s.mu.Lock()
	old := s.cfg
	if old != nil && c != nil && reflect.DeepEqual(old, c) {
		s.mu.Unlock()
		return
	}
	s.cfg = c
	if old == nil && c != nil {
		s.restart = true
	}
	if c != nil {
		kept := map[netip.Prefix]bool{}
		for _, p := range c.Prefixes {
			kept[p.Prefix.Masked()] = true
			delete(s.withdrawn, p.Prefix.Masked()) // advertised again
		}
		if old != nil {
			for _, p := range old.Prefixes {
				if !kept[p.Prefix.Masked()] {
					s.withdrawn[p.Prefix.Masked()] = maxInitialAdvertisements
				}
			}
		}
	}
	s.mu.Unlock()
	poke(s.update)
}

// Close sends the final advertisement, closes the socket and waits for the
// server to stop.
func (s *Server) Close() {
	s.once.Do(func() { close(s.closing) })
	<-s.done
}

// Leave closes the socket and waits for the server to stop, without a
// final advertisement: the router goes on routing and another server (the
// next daemon's) will advertise for it, so hosts keep it as their default
// router until then, as they would through a restart of radvd's host.
func (s *Server) Leave() {
	s.mu.Lock()
	s.silent = true
	s.mu.Unlock()
	s.Close()
}

func poke(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

func (s *Server) run() {
	defer close(s.done)
	defer s.ns.Close()
	l := s.open()
	if l == nil {
		return // closed before the interface had a link-local address
	}
	readerDone := make(chan struct{})
	go s.answer(l, readerDone)
	defer func() {
		l.pc.Close()
		<-readerDone
	}()

	var (
		advertised *Config // what the last advertisement said; nil: nothing
		sent       int     // unsolicited advertisements since advertising started
		lastMulti  time.Time
		timer      = time.NewTimer(0) // the first advertisement goes out at once
		next       = time.Now()       // when timer fires; zero when it is stopped
	)
	defer timer.Stop()
	schedule := func(d time.Duration) {
		timer.Reset(d)
		next = time.Now().Add(d)
	}
	for {
		select {
		case <-s.closing:
			s.mu.Lock()
			silent := s.silent
			s.mu.Unlock()
			if advertised != nil && !silent {
				s.send(l, advertised.Final(l.mac, s.takeWithdrawn(false)...), allNodes)
			}
			return
		case <-s.update:
			// A new Config goes out at once, as radvd sends on
			// reload; one already advertised (the periodic timer was
			// first) needs nothing more.
			s.mu.Lock()
			changed := s.cfg != advertised
			s.mu.Unlock()
			if !changed {
				continue
			}
		case <-s.solicit:
			// RFC 4861 6.2.6: multicast advertisements at least
			// MIN_DELAY_BETWEEN_RAS apart.
			if wait := minDelayBetweenRAs - time.Since(lastMulti); wait > 0 {
				if next.IsZero() || time.Now().Add(wait).Before(next) {
					schedule(wait)
				}
				continue
			}
		case <-timer.C:
			next = time.Time{}
		}

		s.mu.Lock()
		cfg := s.cfg
		if s.restart {
			s.restart, sent = false, 0
		}
		s.mu.Unlock()
		if cfg == nil {
			if advertised != nil {
				s.send(l, advertised.Final(l.mac, s.takeWithdrawn(true)...), allNodes)
				advertised = nil
			}
			continue // no timer: silent until SetConfig
		}
		s.send(l, cfg.Advertisement(l.mac, s.takeWithdrawn(true)...), allNodes)
		advertised, lastMulti = cfg, time.Now()
		sent++
		schedule(nextInterval(cfg, sent))
	}
}

// nextInterval is the wait before the next unsolicited advertisement,
// sent advertisements after advertising started (RFC 4861 6.2.4).
func nextInterval(c *Config, sent int) time.Duration {
	lo, hi := c.minInterval(), c.maxInterval()
	d := lo
	if hi > lo {
		d += rand.N(hi - lo)
	}
	if sent < maxInitialAdvertisements {
		d = min(d, maxInitialAdvertInterval)
	}
	return d
}

// takeWithdrawn lists the prefixes still to be advertised as withdrawn;
// count says this advertisement uses up one of their repetitions.
func (s *Server) takeWithdrawn(count bool) []netip.Prefix {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []netip.Prefix
	for p, n := range s.withdrawn {
		out = append(out, p)
		if !count {
			continue
		}
		if n <= 1 {
			delete(s.withdrawn, p)
		} else {
			s.withdrawn[p] = n - 1
		}
	}
	return out
}

// open opens the socket, retrying until the interface has a usable
// link-local address; nil when the server was closed first.
func (s *Server) open() *link {
	delay := 100 * time.Millisecond
	for tries := 0; ; tries++ {
		l, err := s.tryOpen()
		if err == nil {
			return l
		}
		// A link-local address in duplicate address detection cannot be
		// bound yet; anything that lasts longer is worth a warning.
		if tries == 20 {
			s.log.Warn("router advertisements: cannot open socket yet, retrying", "interface", s.ifname, "err", err)
		} else {
			s.log.Debug("router advertisements: socket not open yet", "interface", s.ifname, "err", err)
		}
		select {
		case <-s.closing:
			return nil
		case <-time.After(delay):
		}
		delay = min(2*delay, 5*time.Second)
	}
}

var errNoLinkLocal = errors.New("no link-local address")

// sourceOf is the address to advertise from, among an interface's
// addresses: the link-local address the kernel derives from its MAC
// (modified EUI-64), which is the router's own as Neutron's radvd sends
// from it, else the first link-local address. Hosts make the source of
// advertisements their default router, so a second link-local address
// on the interface, the metadata service's fe80::a9fe:a9fe (usable at
// once, nodad, while the kernel's is still tentative), must not be it.
func sourceOf(addrs []net.Addr, mac net.HardwareAddr) netip.Addr {
	var own netip.Addr
	if len(mac) == 6 {
		b := [16]byte{0: 0xfe, 1: 0x80}
		b[8], b[9], b[10] = mac[0]^0x02, mac[1], mac[2]
		b[11], b[12] = 0xff, 0xfe
		b[13], b[14], b[15] = mac[3], mac[4], mac[5]
		own = netip.AddrFrom16(b)
	}
	var first netip.Addr
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(n.IP)
		if !ok || !ip.Is6() || !ip.IsLinkLocalUnicast() {
			continue
		}
		if ip == own {
			return ip
		}
		if !first.IsValid() {
			first = ip
		}
	}
	return first
}

func (s *Server) tryOpen() (*link, error) {
	var l *link
	err := netns.Do(s.ns, func() error {
		ifi, err := net.InterfaceByName(s.ifname)
		if err != nil {
			return err
		}
		addrs, err := ifi.Addrs()
		if err != nil {
			return err
		}
		src := sourceOf(addrs, ifi.HardwareAddr)
		if !src.IsValid() {
			return errNoLinkLocal
		}
		// The zone is the interface's index, not its name: Go resolves
		// names through a process-wide cache filled from whichever
		// namespace the resolving thread was in.
		zone := strconv.Itoa(ifi.Index)
		c, err := icmp.ListenPacket("ip6:ipv6-icmp", src.String()+"%"+zone)
		if err != nil {
			return err // EADDRNOTAVAIL while the address is tentative
		}
		pc := c.IPv6PacketConn()
		if err := setup(pc, ifi); err != nil {
			c.Close()
			return err
		}
		l = &link{pc: pc, index: ifi.Index, src: src, mac: ifi.HardwareAddr}
		return nil
	})
	return l, err
}

func setup(pc *ipv6.PacketConn, ifi *net.Interface) error {
	// RFC 4861: every ND message leaves with hop limit 255, which is
	// how receivers know it was not routed.
	if err := pc.SetHopLimit(ndp.HopLimit); err != nil {
		return fmt.Errorf("set hop limit: %w", err)
	}
	if err := pc.SetMulticastHopLimit(ndp.HopLimit); err != nil {
		return fmt.Errorf("set multicast hop limit: %w", err)
	}
	if err := pc.SetMulticastLoopback(false); err != nil {
		return fmt.Errorf("disable multicast loopback: %w", err)
	}
	var f ipv6.ICMPFilter
	f.SetAll(true)
	f.Accept(ipv6.ICMPTypeRouterSolicitation)
	if err := pc.SetICMPFilter(&f); err != nil {
		return fmt.Errorf("set ICMPv6 filter: %w", err)
	}
	if err := pc.SetControlMessage(ipv6.FlagHopLimit, true); err != nil {
		return fmt.Errorf("ask for hop limits: %w", err)
	}
	if err := pc.JoinGroup(ifi, &net.IPAddr{IP: allRouters.AsSlice()}); err != nil {
		return fmt.Errorf("join all-routers: %w", err)
	}
	return nil
}

// answer reads solicitations until the socket closes, answering each
// valid one from a host with a unicast advertisement and asking the main
// loop for a multicast one for the others.
func (s *Server) answer(l *link, done chan<- struct{}) {
	defer close(done)
	buf := make([]byte, 65536)
	for {
		n, cm, from, err := l.pc.ReadFrom(buf)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			s.log.Warn("router solicitation read", "interface", s.ifname, "err", err)
			continue
		}
		hop := -1
		if cm != nil {
			hop = cm.HopLimit
		}
		// Without the zone Go names from a process-wide cache that may
		// hold another namespace's interfaces.
		var src netip.Addr
		if ipa, ok := from.(*net.IPAddr); ok {
			src, _ = netip.AddrFromSlice(ipa.IP)
		}
		dst, ok := solicitation(buf[:n], hop, src)
		s.log.Debug("router solicitation", "interface", s.ifname, "from", src, "hop_limit", hop, "answer", ok)
		if !ok {
			continue
		}
		if dst == allNodes {
			poke(s.solicit)
			continue
		}
		s.mu.Lock()
		cfg := s.cfg
		s.mu.Unlock()
		if cfg != nil {
			s.send(l, cfg.Advertisement(l.mac, s.takeWithdrawn(false)...), dst)
		}
	}
}

func (s *Server) send(l *link, ra *ndp.RouterAdvertisement, dst netip.Addr) {
	b, err := ndp.MarshalMessage(ra)
	if err != nil {
		s.log.Warn("router advertisement", "interface", s.ifname, "err", err)
		return
	}
	cm := &ipv6.ControlMessage{HopLimit: ndp.HopLimit, Src: l.src.AsSlice(), IfIndex: l.index}
	to := &net.IPAddr{IP: dst.AsSlice(), Zone: strconv.Itoa(l.index)}
	if _, err := l.pc.WriteTo(b, cm, to); err != nil {
		s.log.Warn("router advertisement", "interface", s.ifname, "to", dst, "err", err)
		return
	}
	s.advertisements.Add(1)
}
