package agent

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/netns"
)

// Helpers of the router tests: records, the outside world, TCP servers
// that report who connected.

// rid makes ids whose first 11 characters, which interface names keep,
// differ: 0000000a-0000-4000-8000-000000000000.
func rid(n int) string { return fmt.Sprintf("%08x-0000-4000-8000-000000000000", n) }

type l3net struct {
	net    model.Network
	subnet model.Subnet
}

// l3network is a network with one IPv4 subnet; gw "" has no gateway.
func l3network(n int, cidr, gw string, external bool) l3net {
	nw := model.Network{ID: rid(n), Name: fmt.Sprintf("net%d", n), AdminStateUp: true, MTU: 1500, RouterExternal: external}
	sn := model.Subnet{ID: rid(n + 1), NetworkID: nw.ID, IPVersion: 4, CIDR: cidr}
	if gw != "" {
		sn.GatewayIP = ptr(gw)
	}
	nw.Subnets = []string{sn.ID}
	return l3net{nw, sn}
}

func (n l3net) records() []any { return []any{n.net, n.subnet} }

func (n l3net) port(id int, ip, owner, device string) model.Port {
	return model.Port{
		ID:           rid(id),
		NetworkID:    n.net.ID,
		AdminStateUp: true,
		MACAddress:   fmt.Sprintf("fa:16:3e:00:%02x:%02x", id>>8&0xff, id&0xff),
		FixedIPs:     []model.FixedIP{{SubnetID: n.subnet.ID, IPAddress: ip}},
		DeviceID:     device,
		DeviceOwner:  owner,
	}
}

// vm is an instance with one port on n.
func (n l3net) vm(id int, name, ip string) []any {
	p := n.port(id, ip, model.DeviceOwnerCompute, "inst-"+name)
	p.InterfaceName = "eth0"
	return []any{testInstance(name), p}
}

func router(n int, ext *l3net, snat bool) model.Router {
	r := model.Router{ID: rid(n), Name: fmt.Sprintf("router%d", n), AdminStateUp: true}
	if ext != nil {
		r.ExternalGatewayInfo = &model.ExternalGatewayInfo{NetworkID: ext.net.ID, EnableSNAT: snat}
	}
	return r
}

func floatingIP(n int, ext l3net, addr string, r *model.Router, fixed string) model.FloatingIP {
	f := model.FloatingIP{ID: rid(n), FloatingNetworkID: ext.net.ID, FloatingIPAddress: addr}
	if r != nil {
		f.RouterID, f.FixedIPAddress = ptr(r.ID), ptr(fixed)
	}
	return f
}

// world is the outside of the test's host: an upstream router on the
// external bridge (198.51.100.1) and a far host behind it (203.0.113.1)
// that records who connects to it. It is made with ip, not nsnet, and
// removed before the agent's cleanup.
type world struct {
	up, far string
	farSrv  *servers
}

// outside builds the world on network ext, whose bridge the agent has
// made, with upstream address upAddr (prefix length included).
func (e *env) outside(ext l3net, upAddr string) *world {
	e.t.Helper()
	w := &world{up: e.prefix + "up", far: e.prefix + "far"}
	const hostEnd = "upl0" // the host namespace is the test's own
	e.t.Cleanup(func() {
		exec.Command("ip", "-n", e.hostNetns, "link", "del", hostEnd).Run()
		netns.Delete(w.up)
		netns.Delete(w.far)
	})
	for _, args := range [][]string{
		{"netns", "add", w.up},
		{"netns", "add", w.far},
		{"-n", e.hostNetns, "link", "add", hostEnd, "type", "veth", "peer", "name", "eth0", "netns", w.up},
		{"-n", e.hostNetns, "link", "set", hostEnd, "master", model.BridgeName(ext.net.ID), "up"},
		{"-n", w.up, "addr", "add", upAddr, "dev", "eth0"},
		{"-n", w.up, "link", "set", "eth0", "up"},
		{"-n", w.up, "link", "set", "lo", "up"},
		{"-n", w.up, "link", "add", "eth1", "type", "veth", "peer", "name", "eth0", "netns", w.far},
		{"-n", w.up, "addr", "add", "203.0.113.254/24", "dev", "eth1"},
		{"-n", w.up, "link", "set", "eth1", "up"},
		{"-n", w.far, "addr", "add", "203.0.113.1/24", "dev", "eth0"},
		{"-n", w.far, "link", "set", "eth0", "up"},
		{"-n", w.far, "link", "set", "lo", "up"},
		{"-n", w.far, "route", "add", "default", "via", "203.0.113.254"},
		{"netns", "exec", w.up, "sysctl", "-qw", "net.ipv4.ip_forward=1"},
	} {
		e.ip(args...)
	}
	w.farSrv = e.serve(w.far, 7)
	return w
}

// servers is a TCP server in a namespace that tells each client the
// address it saw it come from ("peer=IP:PORT") and remembers it.
type servers struct {
	mu    sync.Mutex
	peers []netip.Addr
}

func (s *servers) last() netip.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.peers) == 0 {
		return netip.Addr{}
	}
	return s.peers[len(s.peers)-1]
}

// serve listens on port in namespace ns until the test ends.
func (e *env) serve(ns string, port int) *servers {
	e.t.Helper()
	return e.serveOn(ns, "tcp4", fmt.Sprintf("0.0.0.0:%d", port))
}

// serve6 is serve for IPv6: it listens on [::]:port, IPv6 only, beside
// an IPv4 server on the same port.
func (e *env) serve6(ns string, port int) *servers {
	e.t.Helper()
	return e.serveOn(ns, "tcp6", fmt.Sprintf("[::]:%d", port))
}

func (e *env) serveOn(ns, network, addr string) *servers {
	e.t.Helper()
	s := &servers{}
	var ln net.Listener
	if err := netns.DoNamed(ns, func() (err error) {
		ln, err = net.Listen(network, addr)
		return err
	}); err != nil {
		e.t.Fatal(err)
	}
	// Registered after the env's, so it runs first: a socket would keep
	// the instance's namespace alive after the agent deletes it.
	e.t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p := c.RemoteAddr().(*net.TCPAddr).AddrPort()
			s.mu.Lock()
			s.peers = append(s.peers, p.Addr().Unmap())
			s.mu.Unlock()
			fmt.Fprintf(c, "peer=%s\n", p.Addr().Unmap())
			c.Close()
		}
	}()
	return s
}

// whoami connects from ns to `to` (an IPv4 or a bracketed IPv6 address
// and port) and returns the source address the
// server saw.
func whoami(ns, to string) (netip.Addr, error) {
	var c net.Conn
	err := netns.DoNamed(ns, func() (err error) {
		c, err = net.DialTimeout("tcp", to, 2*time.Second)
		return err
	})
	if err != nil {
		return netip.Addr{}, fmt.Errorf("tcp from %s to %s: %w", ns, to, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return netip.Addr{}, fmt.Errorf("tcp from %s to %s: %w", ns, to, err)
	}
	return netip.ParseAddr(strings.TrimSpace(strings.TrimPrefix(line, "peer=")))
}

// mustArriveFrom checks that a connection from ns to `to` arrives from
// want. Like a client, it tries again, for up to ten seconds and at least
// three times: a connect that sends two SYNs in its two seconds can lose
// both to the softnet backlog of a busy 2-core machine, or to a veth the
// kernel has not finished bringing up (a router set up again: its qdisc
// stays noop until linkwatch runs); and a router whose neighbour
// resolution fails meanwhile (3 s) answers "no route to host" to every
// SYN queued behind it, so three tries can all fall in it (CI saw
// TestRouterMeteringIPv6 fail so). A closed path still fails, after the
// ten seconds.
func (e *env) mustArriveFrom(ns, to, want string) {
	e.t.Helper()
	var got netip.Addr
	var err error
	deadline := time.Now().Add(10 * time.Second)
	for try := 1; ; try++ {
		if got, err = whoami(ns, to); err == nil {
			break
		}
		if try >= 3 && time.Now().After(deadline) {
			e.t.Fatalf("%d tries in 10s: %v", try, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
	if got.String() != want {
		e.t.Fatalf("%s → %s arrived from %s, want %s", ns, to, got, want)
	}
}

// nft runs nft inside ns.
func (e *env) nft(ns string, args ...string) string {
	e.t.Helper()
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns, "nft"}, args...)...).CombinedOutput()
	if err != nil {
		e.t.Fatalf("nft %s in %s: %v\n%s", strings.Join(args, " "), ns, err, out)
	}
	return string(out)
}

func (e *env) routerNS(r model.Router) string { return model.RouterNetns(e.prefix, r.ID) }
