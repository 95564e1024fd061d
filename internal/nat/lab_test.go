package nat_test

// The lab: every test builds its own little world in namespaces whose
// names start with a prefix of its own — a host namespace holding the
// bridges, an upstream router and a far host on documentation addresses,
// nsnet routers and instances — with internal/dataplane, exactly as the
// agent will, and proves NAT with real TCP, UDP and ICMP. Nothing touches
// the machine's own namespace; cleanup fails the test if a namespace, link
// or nft table it made survives.

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nsnet/nsnet/internal/dataplane"
	testlab "github.com/nsnet/nsnet/internal/lab"
	"github.com/nsnet/nsnet/internal/nat"
	"github.com/nsnet/nsnet/internal/netns"
)

var allPrefix = fmt.Sprintf("nsnat%d-", os.Getpid())

func TestMain(m *testing.M) {
	os.Exit(testlab.RunTests(m, "nat", allPrefix))
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces)")
	}
}

var testSeq atomic.Int32

// lab is one test's world.
type lab struct {
	t      *testing.T
	prefix string
	host   string // the test's host namespace: bridges and taps
	hostNS *dataplane.Namespace
	links  *dataplane.Links
	open   []*dataplane.Namespace
}

func newLab(t *testing.T) *lab {
	t.Helper()
	needRoot(t)
	l := &lab{t: t, prefix: fmt.Sprintf("%s%d-", allPrefix, testSeq.Add(1))}
	l.host = l.prefix + "host"
	if err := netns.Create(l.host); err != nil {
		t.Fatal(err)
	}
	ns, err := dataplane.OpenNamespace(l.host)
	if err != nil {
		netns.Delete(l.host)
		t.Fatal(err)
	}
	l.hostNS, l.links = ns, dataplane.NewLinks(ns.Handle)
	l.links.SetNamespace(l.host)
	t.Cleanup(l.cleanup)
	return l
}

func (l *lab) marker(id string) string       { return dataplane.InstanceMarker(id, l.host) }
func (l *lab) routerMarker(id string) string { return dataplane.RouterMarker(id, l.host) }

// cleanup deletes what the test made through the product's own delete
// functions, then fails the test for anything that survived.
func (l *lab) cleanup() {
	t := l.t
	for _, ns := range l.open {
		ns.Close()
	}
	// The host namespace is the only one a table can outlive its test
	// in: every other goes, tables and all.
	if tables := nftTables(l.host); tables != "" {
		t.Errorf("nft tables left in the host namespace:\n%s", tables)
		nat.DeleteTable(l.host)
	}
	routers, err := dataplane.ListRouterNamespaces(l.prefix)
	if err != nil {
		t.Errorf("cleanup: %v", err)
	}
	for name, m := range routers {
		if err := dataplane.DeleteRouterNetns(name, m, l.links); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	}
	insts, err := dataplane.ListInstanceNamespaces(l.prefix)
	if err != nil {
		t.Errorf("cleanup: %v", err)
	}
	for name, m := range insts {
		if err := dataplane.DeleteInstanceNetns(name, m, l.links); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	}
	owned, err := dataplane.ListOwnedLinks(l.hostNS.Handle)
	if err != nil {
		t.Errorf("cleanup: %v", err)
	}
	for alias, link := range owned {
		if _, err := dataplane.DeleteLink(l.links, link.Attrs().Name, alias); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	}
	if left := linksIn(l.host); len(left) > 0 {
		t.Errorf("links left in the host namespace: %v", left)
	}
	for _, n := range testlab.Namespaces(l.prefix) {
		if n != l.host {
			t.Errorf("namespace %s left behind", n)
			netns.Delete(n)
		}
	}
	l.hostNS.Close()
	if err := netns.Delete(l.host); err != nil {
		t.Errorf("cleanup: %v", err)
	}
}

// linksIn lists the links of a namespace other than lo, as ip shows them.
func linksIn(ns string) []string {
	out, err := exec.Command("ip", "-n", ns, "-o", "link", "show").Output()
	if err != nil {
		return nil
	}
	var links []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 {
			if name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@"); name != "lo" {
				links = append(links, name)
			}
		}
	}
	return links
}

func nftTables(ns string) string {
	out, _ := exec.Command("ip", "netns", "exec", ns, "nft", "list", "tables").Output()
	return strings.TrimSpace(string(out))
}

// nft runs nft inside ns (to look, or to drift things behind nsnet's back).
func (l *lab) nft(ns string, args ...string) string {
	l.t.Helper()
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns, "nft"}, args...)...).CombinedOutput()
	if err != nil {
		l.t.Fatalf("nft %s in %s: %v\n%s", strings.Join(args, " "), ns, err, out)
	}
	return string(out)
}

func (l *lab) ip(args ...string) string {
	l.t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		l.t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// bridge makes a network's bridge in the host namespace.
func (l *lab) bridge(id string) string {
	l.t.Helper()
	name := "nsb-" + id
	if _, err := dataplane.EnsureBridge(l.links, dataplane.BridgeSpec{Name: name, Alias: dataplane.NetworkAlias(id), MTU: 1500, Up: true}); err != nil {
		l.t.Fatal(err)
	}
	return name
}

// instance makes an instance namespace (also what upstream and far hosts
// are: machines with ports).
func (l *lab) instance(name string) *dataplane.Namespace {
	l.t.Helper()
	ns, _, err := dataplane.EnsureInstanceNetns(l.prefix+name, l.marker("i-"+name))
	if err != nil {
		l.t.Fatal(err)
	}
	l.open = append(l.open, ns)
	return ns
}

// router makes a router namespace.
func (l *lab) router(id string) *dataplane.Namespace {
	l.t.Helper()
	ns, _, err := dataplane.EnsureRouterNetns(l.prefix+"qrouter-"+id, l.routerMarker(id))
	if err != nil {
		l.t.Fatal(err)
	}
	l.open = append(l.open, ns)
	return ns
}

// port is a veth port: id names it (tap<id> on the bridge), ifname is the
// end inside ns with addr; gw, when given, is its default route.
type port struct {
	id, bridge, ifname, addr, gw string
	routes                       []dataplane.Route
}

func (p port) spec() dataplane.PortSpec {
	s := dataplane.PortSpec{
		TapName: "tap" + p.id, Bridge: p.bridge, Alias: dataplane.PortAlias(p.id),
		MTU: 1500, Up: true, IfName: p.ifname,
		Addrs:  []netip.Prefix{netip.MustParsePrefix(p.addr)},
		Routes: p.routes,
	}
	if p.gw != "" {
		s.Routes = append(s.Routes, dataplane.Route{Dst: netip.MustParsePrefix("0.0.0.0/0"), Gw: netip.MustParseAddr(p.gw)})
	}
	return s
}

func (l *lab) plug(ns *dataplane.Namespace, p port) {
	l.t.Helper()
	if _, err := dataplane.EnsureVethPort(l.links, ns, p.spec()); err != nil {
		l.t.Fatalf("port %s: %v", p.id, err)
	}
}

// gateway plugs a router's qg- port with floating IPs.
func (l *lab) gateway(r *dataplane.Namespace, p port, fips ...string) {
	l.t.Helper()
	spec := dataplane.GatewaySpec{Port: p.spec()}
	for _, f := range fips {
		spec.FloatingIPs = append(spec.FloatingIPs, netip.MustParseAddr(f))
	}
	if _, err := dataplane.EnsureRouterGateway(l.links, r, spec); err != nil {
		l.t.Fatalf("gateway %s: %v", p.id, err)
	}
}

// world is the outside: an upstream router on the external bridge
// (198.51.100.1) and a far host behind it (203.0.113.1) running servers.
type world struct {
	up, far *dataplane.Namespace
	ext     string // the external bridge
	farSrv  *servers
}

func (l *lab) outside() *world {
	l.t.Helper()
	w := &world{ext: l.bridge("ext")}
	farNet := l.bridge("far")
	w.up = l.instance("up")
	l.plug(w.up, port{id: "up-ext", bridge: w.ext, ifname: "eth0", addr: "198.51.100.1/24"})
	l.plug(w.up, port{id: "up-far", bridge: farNet, ifname: "eth1", addr: "203.0.113.254/24"})
	if _, err := dataplane.EnsureSysctls(w.up, dataplane.HostNATSysctls); err != nil {
		l.t.Fatal(err)
	}
	w.far = l.instance("far")
	l.plug(w.far, port{id: "far", bridge: farNet, ifname: "eth0", addr: "203.0.113.1/24", gw: "203.0.113.254"})
	w.farSrv = l.serve(w.far, "0.0.0.0", 7)
	return w
}

// servers are a TCP and a UDP server on one port inside a namespace. Both
// tell each client the address they saw it come from ("peer=IP:PORT");
// the TCP one then echoes lines until the client hangs up.
type servers struct {
	mu    sync.Mutex
	peers []netip.AddrPort
}

func (s *servers) saw(p netip.AddrPort) {
	s.mu.Lock()
	s.peers = append(s.peers, p)
	s.mu.Unlock()
}

// Peers returns the sources seen so far.
func (s *servers) Peers() []netip.AddrPort {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]netip.AddrPort(nil), s.peers...)
}

// serve starts the servers on addr:port inside ns until the test ends.
func (l *lab) serve(ns *dataplane.Namespace, addr string, port int) *servers {
	l.t.Helper()
	s := &servers{}
	hostport := net.JoinHostPort(addr, fmt.Sprint(port))
	var ln net.Listener
	var pc net.PacketConn
	in(l.t, ns.Name, func() (err error) {
		if ln, err = net.Listen("tcp4", hostport); err != nil {
			return err
		}
		pc, err = net.ListenPacket("udp4", hostport)
		return err
	})
	l.t.Cleanup(func() { ln.Close(); pc.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go s.echo(c)
		}
	}()
	go func() {
		buf := make([]byte, 1500)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			p := from.(*net.UDPAddr).AddrPort()
			s.saw(p)
			pc.WriteTo([]byte("peer="+unmap(p).String()+"\n"), from)
		}
	}()
	return s
}

func (s *servers) echo(c net.Conn) {
	defer c.Close()
	p := unmap(c.RemoteAddr().(*net.TCPAddr).AddrPort())
	s.saw(p)
	if _, err := fmt.Fprintf(c, "peer=%s\n", p); err != nil {
		return
	}
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		if _, err := c.Write([]byte(line)); err != nil {
			return
		}
	}
}

func unmap(p netip.AddrPort) netip.AddrPort { return netip.AddrPortFrom(p.Addr().Unmap(), p.Port()) }

// in runs fn inside the named namespace; sockets it opens stay there.
func in(t *testing.T, name string, fn func() error) {
	t.Helper()
	if err := netns.DoNamed(name, fn); err != nil {
		t.Fatal(err)
	}
}

// dial opens a TCP connection from inside ns.
func dial(ns *dataplane.Namespace, to string) (net.Conn, error) {
	var c net.Conn
	err := netns.DoNamed(ns.Name, func() (err error) {
		c, err = net.DialTimeout("tcp4", to, 2*time.Second)
		return err
	})
	return c, err
}

// session is an open TCP connection to the echo servers.
type session struct {
	c net.Conn
	r *bufio.Reader
}

// open connects from ns to the servers at to and reads their greeting;
// the connection closes when the test ends.
func open(t *testing.T, ns *dataplane.Namespace, to string) *session {
	t.Helper()
	c, err := dial(ns, to)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	s := &session{c: c, r: bufio.NewReader(c)}
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := s.r.ReadString('\n'); err != nil {
		t.Fatalf("greeting from %s: %v", to, err)
	}
	return s
}

// echo sends a line and expects it back within half a second.
func (s *session) echo() error {
	s.c.SetDeadline(time.Now().Add(500 * time.Millisecond))
	if _, err := s.c.Write([]byte("echo\n")); err != nil {
		return err
	}
	line, err := s.r.ReadString('\n')
	if err == nil && line != "echo\n" {
		err = fmt.Errorf("echo came back as %q", line)
	}
	return err
}

// whoami connects from ns to the servers at to (tcp or udp) and returns
// the source address they saw.
func whoami(ns *dataplane.Namespace, proto, to string) (netip.Addr, error) {
	return whoamiWithin(ns, proto, to, 2*time.Second)
}

func whoamiWithin(ns *dataplane.Namespace, proto, to string, timeout time.Duration) (netip.Addr, error) {
	var c net.Conn
	err := netns.DoNamed(ns.Name, func() (err error) {
		c, err = net.DialTimeout(proto+"4", to, timeout)
		return err
	})
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%s from %s to %s: %w", proto, ns.Name, to, err)
	}
	defer c.Close()
	line, err := answer(c, proto, timeout)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%s from %s to %s: %w", proto, ns.Name, to, err)
	}
	p, err := netip.ParseAddrPort(strings.TrimSpace(strings.TrimPrefix(line, "peer=")))
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%s from %s to %s: answer %q: %w", proto, ns.Name, to, line, err)
	}
	return p.Addr(), nil
}

// answer reads the servers' one-line answer within timeout. Over UDP it
// asks five times, as a UDP client does: a datagram can be lost to
// something other than NAT (the CPU's backlog overflows while other tests
// flood their veths), and one loss must not read as a translation that
// does not work.
func answer(c net.Conn, proto string, timeout time.Duration) (string, error) {
	if proto != "udp" {
		c.SetDeadline(time.Now().Add(timeout))
		return bufio.NewReader(c).ReadString('\n')
	}
	buf := make([]byte, 512)
	var err error
	for range 5 {
		if _, err = c.Write([]byte("who\n")); err != nil {
			continue
		}
		c.SetReadDeadline(time.Now().Add(timeout / 5))
		var n int
		if n, err = c.Read(buf); err == nil {
			return string(buf[:n]), nil
		}
	}
	return "", err
}

// mustSee checks that a connection from ns to `to` arrives from want.
func mustSee(t *testing.T, ns *dataplane.Namespace, proto, to, want string) {
	t.Helper()
	got, err := whoami(ns, proto, to)
	if err != nil {
		t.Fatal(err)
	}
	if got.String() != want {
		t.Fatalf("%s %s → %s arrived from %s, want %s", ns.Name, proto, to, got, want)
	}
}

// mustFail checks that nothing answers a connection from ns to `to`.
func mustFail(t *testing.T, ns *dataplane.Namespace, proto, to string) {
	t.Helper()
	// Short: on this machine an answer takes well under a millisecond.
	if got, err := whoamiWithin(ns, proto, to, 500*time.Millisecond); err == nil {
		t.Fatalf("%s %s → %s answered (from %s), want no answer", ns.Name, proto, to, got)
	}
}

func ping(ns *dataplane.Namespace, addr string) error {
	out, err := exec.Command("ip", "netns", "exec", ns.Name, "ping", "-c1", "-W1", addr).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ping %s from %s: %v\n%s", addr, ns.Name, err, out)
	}
	return nil
}

// applyNAT opens the nsnet table of ns, applies spec and closes it again.
func applyNAT(t *testing.T, ns string, spec nat.Spec) nat.Result {
	t.Helper()
	tbl, err := nat.Open(ns, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Close()
	res, err := tbl.Apply(spec)
	if err != nil {
		t.Fatal(err)
	}
	return res
}
