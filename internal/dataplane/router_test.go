package dataplane

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nsnet/nsnet/internal/netns"
)

func sysctl(t *testing.T, ns, key string) string {
	t.Helper()
	fd, err := netns.Open(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	v, err := netns.ReadSysctl(fd, key)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestRouterNetns(t *testing.T) {
	e := newEnv(t)
	name, marker := e.ns("qrouter-r1"), RouterMarker("r1", e.hostName)
	hostForwarding := sysctl(t, e.hostName, "net.ipv4.ip_forward")
	ns, changed, err := EnsureRouterNetns(name, marker)
	if err != nil || !changed {
		t.Fatalf("create: changed %v, %v", changed, err)
	}
	ns.Close()
	for _, s := range RouterSysctls {
		if got := sysctl(t, name, s.Key); got != s.Value {
			t.Errorf("%s = %s, want %s", s.Key, got, s.Value)
		}
	}
	// The host's own forwarding is not the router's business.
	if now := sysctl(t, e.hostName, "net.ipv4.ip_forward"); now != hostForwarding {
		t.Errorf("host namespace forwarding changed from %s to %s", hostForwarding, now)
	}
	if lo := e.ip("-n", name, "link", "show", "lo"); !strings.Contains(lo, "alias "+marker) || !strings.Contains(lo, ",UP") {
		t.Errorf("lo not up and marked:\n%s", lo)
	}

	e.ip("netns", "exec", name, "sh", "-c", "echo 0 > /proc/sys/net/ipv4/ip_forward; echo 1 > /proc/sys/net/ipv4/conf/all/send_redirects")
	ns, changed, err = EnsureRouterNetns(name, marker)
	if err != nil || !changed {
		t.Fatalf("repair: changed %v, %v", changed, err)
	}
	ns.Close()
	if got := sysctl(t, name, "net.ipv4.ip_forward"); got != "1" {
		t.Errorf("ip_forward not repaired: %s", got)
	}
	ns, changed, err = EnsureRouterNetns(name, marker)
	if err != nil || changed {
		t.Fatalf("converged: changed %v, %v", changed, err)
	}
	ns.Close()

	if routers, _ := ListRouterNamespaces(e.prefix); routers[name] != marker {
		t.Errorf("ListRouterNamespaces = %v", routers)
	}
	if insts, _ := ListInstanceNamespaces(e.prefix); len(insts) != 0 {
		t.Errorf("a router listed as an instance: %v", insts)
	}
	_, _, err = EnsureRouterNetns(name, RouterMarker("r1", "another-host"))
	mustNotOwned(t, err)
	if err := DeleteRouterNetns(name, marker, e.links); err != nil {
		t.Fatal(err)
	}
	if netns.Exists(name) {
		t.Fatal("router namespace still exists")
	}
}

// TestRouterGatewayAndGARP plugs a router's qg- port into an external
// bridge shared with an upstream namespace, associates a floating IP,
// and checks: the upstream sees a gratuitous ARP for it from qg-'s MAC and
// replaces the stale MAC it had cached; the floating IP answers; the
// default route is the router's; a second pass changes and announces
// nothing; disassociation withdraws the address.
func TestRouterGatewayAndGARP(t *testing.T) {
	e := newEnv(t)
	if _, err := EnsureBridge(e.links, BridgeSpec{Name: "nsb-ext", Alias: NetworkAlias("ext"), MTU: 1500, Up: true}); err != nil {
		t.Fatal(err)
	}
	up, _, err := EnsureInstanceNetns(e.ns("up"), e.marker("i-up"))
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	upPort := PortSpec{TapName: "tapup", Bridge: "nsb-ext", Alias: PortAlias("up"), MTU: 1500, Up: true, IfName: "eth0",
		Addrs: []netip.Prefix{netip.MustParsePrefix("198.51.100.1/24")}}
	if _, err := EnsureVethPort(e.links, up, upPort); err != nil {
		t.Fatal(err)
	}
	router := ensureRouter(t, e, "r1")
	qgMAC, _ := net.ParseMAC("fa:16:3e:00:00:10")
	gw := GatewaySpec{Port: PortSpec{TapName: "tapqg", Bridge: "nsb-ext", Alias: PortAlias("qg"), MTU: 1500, Up: true,
		IfName: "qg-r1", MAC: qgMAC, Addrs: []netip.Prefix{netip.MustParsePrefix("198.51.100.10/24")},
		Routes: []Route{{Dst: netip.MustParsePrefix("0.0.0.0/0"), Gw: netip.MustParseAddr("198.51.100.1")}}}}
	if _, err := EnsureRouterGateway(e.links, router, gw); err != nil {
		t.Fatal(err)
	}
	if r := e.ip("-n", router.Name, "route", "show", "default"); !strings.Contains(r, "via 198.51.100.1 dev qg-r1 proto 78") {
		t.Fatalf("default route: %s", r)
	}

	// The upstream has the floating address cached with someone else's
	// MAC, as it would after the address served another router.
	e.ip("-n", up.Name, "neigh", "replace", "198.51.100.20", "lladdr", "02:00:00:00:00:99", "dev", "eth0", "nud", "stale")
	capture := captureARP(t, up.Name, "eth0")
	gw.FloatingIPs = []netip.Addr{netip.MustParseAddr("198.51.100.20")}
	if changed, err := EnsureRouterGateway(e.links, router, gw); err != nil || !changed {
		t.Fatalf("associate: changed %v, %v", changed, err)
	}
	garps := capture(garpWindow)
	if len(garps) != 1 || !bytes.Equal(garps[0].sha, qgMAC) || garps[0].spa != netip.MustParseAddr("198.51.100.20") || garps[0].tpa != garps[0].spa {
		t.Fatalf("gratuitous ARPs seen upstream: %+v", garps)
	}
	if n := e.ip("-n", up.Name, "neigh", "show", "198.51.100.20"); !strings.Contains(n, "fa:16:3e:00:00:10") {
		t.Fatalf("upstream neighbour entry not updated by the GARP: %s", n)
	}
	if err := ping(up.Name, "198.51.100.20"); err != nil {
		t.Fatal(err)
	}
	if a := e.ip("-n", router.Name, "addr", "show", "qg-r1"); !strings.Contains(a, "198.51.100.20/32") {
		t.Fatalf("floating address not on qg-:\n%s", a)
	}

	capture = captureARP(t, up.Name, "eth0")
	if changed, err := EnsureRouterGateway(e.links, router, gw); err != nil || changed {
		t.Fatalf("second pass: changed %v, %v", changed, err)
	}
	if garps := capture(300 * time.Millisecond); len(garps) != 0 {
		t.Fatalf("second pass announced again: %+v", garps)
	}

	gw.FloatingIPs = nil
	if changed, err := EnsureRouterGateway(e.links, router, gw); err != nil || !changed {
		t.Fatalf("disassociate: changed %v, %v", changed, err)
	}
	if a := e.ip("-n", router.Name, "addr", "show", "qg-r1"); strings.Contains(a, "198.51.100.20") {
		t.Fatalf("floating address still on qg-:\n%s", a)
	}
	e.ip("-n", up.Name, "neigh", "flush", "dev", "eth0")
	if err := ping(up.Name, "198.51.100.20"); err == nil {
		t.Fatal("the withdrawn floating address still answers")
	}
}

// TestUpdateGatewayAddrs adds and removes floating addresses one change
// at a time, as the agent does between full passes: only those addresses
// move, each added one is announced once, repeats change nothing, and a
// link that is not nsnet's is refused.
func TestUpdateGatewayAddrs(t *testing.T) {
	e := newEnv(t)
	if _, err := EnsureBridge(e.links, BridgeSpec{Name: "nsb-ext", Alias: NetworkAlias("ext"), MTU: 1500, Up: true}); err != nil {
		t.Fatal(err)
	}
	up, _, err := EnsureInstanceNetns(e.ns("up"), e.marker("i-up"))
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	if _, err := EnsureVethPort(e.links, up, PortSpec{TapName: "tapup", Bridge: "nsb-ext", Alias: PortAlias("up"), MTU: 1500, Up: true,
		IfName: "eth0", Addrs: []netip.Prefix{netip.MustParsePrefix("198.51.100.1/24")}}); err != nil {
		t.Fatal(err)
	}
	router := ensureRouter(t, e, "r1")
	gw := GatewaySpec{Port: PortSpec{TapName: "tapqg", Bridge: "nsb-ext", Alias: PortAlias("qg"), MTU: 1500, Up: true,
		IfName: "qg-r1", Addrs: []netip.Prefix{netip.MustParsePrefix("198.51.100.10/24")}},
		FloatingIPs: []netip.Addr{netip.MustParseAddr("198.51.100.20")}}
	if _, err := EnsureRouterGateway(e.links, router, gw); err != nil {
		t.Fatal(err)
	}
	f21, f20 := netip.MustParseAddr("198.51.100.21"), netip.MustParseAddr("198.51.100.20")

	capture := captureARP(t, up.Name, "eth0")
	if changed, err := UpdateGatewayAddrs(router, "qg-r1", PortAlias("qg"), []netip.Addr{f21}, []netip.Addr{f20}); err != nil || !changed {
		t.Fatalf("update: changed %v, %v", changed, err)
	}
	if garps := capture(garpWindow); len(garps) != 1 || garps[0].spa != f21 {
		t.Fatalf("gratuitous ARPs: %+v", garps)
	}
	a := e.ip("-n", router.Name, "addr", "show", "qg-r1")
	if !strings.Contains(a, "198.51.100.21/32") || strings.Contains(a, "198.51.100.20/32") || !strings.Contains(a, "198.51.100.10/24") {
		t.Fatalf("qg- after update:\n%s", a)
	}
	if err := ping(up.Name, "198.51.100.21"); err != nil {
		t.Fatal(err)
	}
	if changed, err := UpdateGatewayAddrs(router, "qg-r1", PortAlias("qg"), []netip.Addr{f21}, []netip.Addr{f20}); err != nil || changed {
		t.Fatalf("repeat: changed %v, %v", changed, err)
	}
	// The whole-port ensure agrees with what the update left.
	gw.FloatingIPs = []netip.Addr{f21}
	if changed, err := EnsureRouterGateway(e.links, router, gw); err != nil || changed {
		t.Fatalf("ensure after update: changed %v, %v", changed, err)
	}
	if _, err := UpdateGatewayAddrs(router, "qg-r1", PortAlias("other"), []netip.Addr{f20}, nil); !errors.Is(err, ErrNotOwned) {
		t.Fatalf("someone else's link: %v", err)
	}
}

// ensureRouter makes a router namespace that the test deletes on exit,
// before its env checks for leftovers.
func ensureRouter(t *testing.T, e *testEnv, id string) *Namespace {
	t.Helper()
	name, marker := e.ns("qrouter-"+id), RouterMarker(id, e.hostName)
	ns, _, err := EnsureRouterNetns(name, marker)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ns.Close()
		if err := DeleteRouterNetns(name, marker, e.links); err != nil {
			t.Error(err)
		}
	})
	return ns
}

type arpSeen struct {
	sha      net.HardwareAddr
	spa, tpa netip.Addr
	op       uint16
}

// garpWindow is how long a test collects the gratuitous ARPs a change
// sends: they are sent before the change returns, but cross a veth, a
// bridge and another veth in softirqs, which a loaded machine (load 7.6)
// ran more than 500 ms late. Long enough to see a repeat too.
const garpWindow = 2 * time.Second

// captureARP opens a packet socket for ARP on ifname inside ns now, and
// returns a function that collects the gratuitous ARPs (sender address =
// target address) it receives for a while.
func captureARP(t *testing.T, ns, ifname string) func(time.Duration) []arpSeen {
	t.Helper()
	var sock int
	err := netns.DoNamed(ns, func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		sock, err = unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ARP)))
		if err != nil {
			return err
		}
		return unix.Bind(sock, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: ifi.Index})
	})
	if err != nil {
		t.Fatal(err)
	}
	return func(d time.Duration) []arpSeen {
		defer unix.Close(sock)
		var seen []arpSeen
		deadline := time.Now().Add(d)
		buf := make([]byte, 128)
		for time.Now().Before(deadline) {
			tv := unix.NsecToTimeval(int64(time.Until(deadline)) + 1000)
			unix.SetsockoptTimeval(sock, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
			n, _, err := unix.Recvfrom(sock, buf, 0)
			if err != nil || n < 28 {
				continue
			}
			a := arpSeen{sha: net.HardwareAddr(bytes.Clone(buf[8:14])), spa: netip.AddrFrom4([4]byte(buf[14:18])),
				tpa: netip.AddrFrom4([4]byte(buf[24:28])), op: uint16(buf[6])<<8 | uint16(buf[7])}
			if a.spa == a.tpa {
				seen = append(seen, a)
			}
		}
		return seen
	}
}
