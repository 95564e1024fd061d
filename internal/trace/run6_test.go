package trace

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nsnet/nsnet/internal/capture"
	"github.com/nsnet/nsnet/internal/lab"
	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/netns"
)

// testPrefix starts every namespace this test binary makes.
var testPrefix = fmt.Sprintf("nstr%d-", os.Getpid())

func TestMain(m *testing.M) {
	os.Exit(lab.RunTests(m, "trace", testPrefix))
}

// v6Lab is a routed IPv6 path between two namespaces, built with ip(8):
//
//	vm1 eth0 2001:db8:1::5 ── qr0 2001:db8:1::1  router  qg0 2001:db8:2::1 ── eth0 2001:db8:2::6 vm2
//
// without duplicate address detection, so that every address is usable
// at once.
type v6Lab struct {
	vm1, r, vm2 string
}

func newV6Lab(t *testing.T) *v6Lab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces)")
	}
	l := &v6Lab{vm1: testPrefix + "vm1", r: testPrefix + "r", vm2: testPrefix + "vm2"}
	for _, n := range []string{l.vm1, l.r, l.vm2} {
		if err := netns.Create(n); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := netns.Delete(n); err != nil {
				t.Error(err)
			}
		})
		fd, err := netns.Open(n)
		if err != nil {
			t.Fatal(err)
		}
		for _, key := range []string{"net.ipv6.conf.all.accept_dad", "net.ipv6.conf.default.accept_dad"} {
			if _, err := netns.EnsureSysctl(fd, key, "0"); err != nil {
				t.Fatal(err)
			}
		}
		if n == l.r {
			if _, err := netns.EnsureSysctl(fd, "net.ipv6.conf.all.forwarding", "1"); err != nil {
				t.Fatal(err)
			}
		}
		fd.Close()
	}
	run(t, "ip", "-n", l.vm1, "link", "add", "eth0", "type", "veth", "peer", "name", "qr0", "netns", l.r)
	run(t, "ip", "-n", l.vm2, "link", "add", "eth0", "type", "veth", "peer", "name", "qg0", "netns", l.r)
	for _, a := range []struct{ ns, dev, addr string }{
		{l.vm1, "eth0", "2001:db8:1::5/64"}, {l.r, "qr0", "2001:db8:1::1/64"},
		{l.r, "qg0", "2001:db8:2::1/64"}, {l.vm2, "eth0", "2001:db8:2::6/64"},
	} {
		run(t, "ip", "-n", a.ns, "addr", "add", a.addr, "dev", a.dev, "nodad")
		run(t, "ip", "-n", a.ns, "link", "set", a.dev, "up")
	}
	run(t, "ip", "-n", l.vm1, "-6", "route", "add", "default", "via", "2001:db8:1::1")
	run(t, "ip", "-n", l.vm2, "-6", "route", "add", "default", "via", "2001:db8:2::1")
	return l
}

func run(t *testing.T, argv ...string) string {
	t.Helper()
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	return string(out)
}

func (l *v6Lab) source() Source {
	return Source{Netns: l.vm1, Interface: "eth0", Node: "instance vm1", Addr: netip.MustParseAddr("2001:db8:1::5")}
}

// plan is the path to dst: all four interfaces, or, for toRouter, the
// way into the router and out of qg0 (whoever holds dst there).
func (l *v6Lab) plan(dst string, hops int, end string) *Plan {
	all := []Hop{
		{Netns: l.vm1, Interface: "eth0", Kind: KindSource, Node: "instance vm1"},
		{Netns: l.r, Interface: "qr0", Kind: KindRouter, Node: "router r", Ingress: true},
		{Netns: l.r, Interface: "qg0", Kind: KindRouter, Node: "router r"},
		{Netns: l.vm2, Interface: "eth0", Kind: KindInstance, Node: "instance vm2", Ingress: true},
	}
	return &Plan{Src: netip.MustParseAddr("2001:db8:1::5"), Dst: netip.MustParseAddr(dst), Hops: all[:hops],
		End: end, EndDetail: "the lab's " + end, SourceNextHop: netip.MustParseAddr("2001:db8:1::1")}
}

// TestRunIPv6: a real IPv6 probe through a real router, answered,
// refused, unrouted, unresolved and dropped by an ip6 table, and what the
// trace says of each.
func TestRunIPv6(t *testing.T) {
	l := newV6Lab(t)
	// vm2 listens on TCP 8080, and drops TCP 8082 in an ip6 table.
	var ln net.Listener
	if err := netns.DoNamed(l.vm2, func() (err error) {
		ln, err = net.Listen("tcp6", "[2001:db8:2::6]:8080")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	nft := exec.Command("ip", "netns", "exec", l.vm2, "nft", "-f", "-")
	nft.Stdin = strings.NewReader(`table ip6 blocker {
	chain input {
		type filter hook input priority 0; policy accept;
		tcp dport 8082 drop comment "vm2 firewall"
	}
}`)
	if out, err := nft.CombinedOutput(); err != nil {
		t.Fatalf("nft: %v\n%s", err, out)
	}

	m := &Model{HostNetns: testPrefix + "no-host"}
	tests := []struct {
		name     string
		proto    uint8
		port     uint16
		plan     *Plan
		timeout  time.Duration
		answered bool
		seenOut  int      // interfaces the probe was seen at
		reason   string   // the first reason starts so; "" for none
		also     []string // other reasons start so
		drop     string   // a reason holds this nftables drop
		// collect deletes the source's neighbour entry for this
		// address while the trace waits, as a busy host's garbage
		// collection of failed entries does.
		collect string
	}{
		{name: "ICMPv6 echo answered", proto: capture.ProtoICMPv6, plan: l.plan("2001:db8:2::6", 4, EndInstance),
			answered: true, seenOut: 4},
		{name: "TCP answered", proto: capture.ProtoTCP, port: 8080, plan: l.plan("2001:db8:2::6", 4, EndInstance),
			answered: true, seenOut: 4},
		{name: "TCP refused with a reset", proto: capture.ProtoTCP, port: 8081, plan: l.plan("2001:db8:2::6", 4, EndInstance),
			answered: true, seenOut: 4, reason: "no listener: 2001:db8:2::6"},
		{name: "UDP refused with ICMPv6 port unreachable", proto: capture.ProtoUDP, port: 9, plan: l.plan("2001:db8:2::6", 4, EndInstance),
			answered: true, seenOut: 4, reason: "no listener: 2001:db8:2::6 (first seen at instance vm2"},
		{name: "no route in the router", proto: capture.ProtoICMPv6, plan: l.plan("2001:db8:9::1", 2, EndNoRoute),
			answered: true, seenOut: 2, reason: "no route: 2001:db8:1::1 (first seen at router r"},
		{name: "nobody answers neighbour discovery", proto: capture.ProtoICMPv6, plan: l.plan("2001:db8:2::99", 3, EndNobody),
			timeout: 5 * time.Second, seenOut: 2, reason: "neighbour discovery failed"},
		{name: "the source's own neighbour discovery fails", proto: capture.ProtoICMPv6, plan: l.plan("2001:db8:1::77", 1, EndNobody),
			timeout: 4 * time.Second, seenOut: 0, reason: "the probe was not seen anywhere",
			also: []string{"neighbour discovery failed: instance vm1 has no MAC address for 2001:db8:1::77 on eth0 (ND "}},
		{name: "the source's own neighbour discovery fails, its entry collected before the end", proto: capture.ProtoICMPv6, plan: l.plan("2001:db8:1::77", 1, EndNobody),
			timeout: 4 * time.Second, seenOut: 0, reason: "the probe was not seen anywhere", collect: "2001:db8:1::77",
			also: []string{"neighbour discovery failed: instance vm1 has no MAC address for 2001:db8:1::77 on eth0 (ND "}},
		{name: "dropped by an ip6 table", proto: capture.ProtoTCP, port: 8082, plan: l.plan("2001:db8:2::6", 4, EndInstance),
			timeout: 1500 * time.Millisecond, seenOut: 4, reason: "the probe reached",
			drop: `dropped by nftables: drop by rule handle 2 of chain input in table ip6 blocker, instance vm2 (comment "vm2 firewall")`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			timeout := tc.timeout
			if timeout == 0 {
				timeout = 3 * time.Second
			}
			probe := NewProbe(tc.proto, tc.port)
			opts := Options{Timeout: timeout}
			collected := make(chan struct{})
			if tc.collect != "" {
				opts.Ready = func() {
					go func() {
						defer close(collected)
						time.Sleep(timeout - time.Second)
						// Deleted, or never made: either way gone.
						exec.Command("ip", "-n", l.vm1, "-6", "neigh", "del", tc.collect, "dev", "eth0").Run()
					}()
				}
			} else {
				close(collected)
			}
			res, err := Run(context.Background(), m, tc.plan, l.source(), probe, opts)
			<-collected
			if tc.collect != "" {
				if state, ok := neighbourState(l.vm1, "eth0", netip.MustParseAddr(tc.collect)); ok {
					t.Fatalf("the neighbour entry for %s is still there (%s): the case tests nothing", tc.collect, state)
				}
			}
			if err != nil {
				t.Fatal(err)
			}
			var out strings.Builder
			res.Print(&out, true)
			if len(res.Notes) > 0 {
				t.Errorf("notes: %v", res.Notes)
			}
			// The ND failure may end either way: the router's ICMPv6
			// address unreachable, or, before it comes, its INCOMPLETE
			// neighbour entry. Both are failed neighbour discovery.
			if res.Answered != tc.answered && tc.plan.End != EndNobody {
				t.Errorf("answered %v, want %v\n%s", res.Answered, tc.answered, out.String())
			}
			if got := seenCount(res.Way); got != tc.seenOut {
				t.Errorf("probe seen at %d interfaces, want %d\n%s", got, tc.seenOut, out.String())
			}
			if tc.answered && tc.plan.End == EndInstance && seenCount(res.WayBack) != len(tc.plan.Hops) {
				t.Errorf("answer seen at %d interfaces, want all\n%s", seenCount(res.WayBack), out.String())
			}
			if len(res.Rewrites) > 0 {
				t.Errorf("IPv6 is not NATed, yet: %v", res.Rewrites)
			}
			switch {
			case tc.reason == "" && res.Stopped != nil:
				t.Errorf("stopped: %v\n%s", res.Stopped.Reasons, out.String())
			case tc.reason != "" && (res.Stopped == nil || len(res.Stopped.Reasons) == 0 || !strings.HasPrefix(res.Stopped.Reasons[0], tc.reason)):
				t.Errorf("want a stop starting %q\n%s", tc.reason, out.String())
			}
			for _, also := range tc.also {
				if res.Stopped == nil || !slices.ContainsFunc(res.Stopped.Reasons, func(r string) bool { return strings.HasPrefix(r, also) }) {
					t.Errorf("want a reason starting %q\n%s", also, out.String())
				}
			}
			// The wire's word: the solicitations the capture saw.
			if strings.HasPrefix(tc.name, "the source's own neighbour discovery fails") && !strings.Contains(out.String(), " neighbour solicitation(s) for 2001:db8:1::77 on "+l.vm1+"/eth0 (instance vm1), and no advertisement") {
				t.Errorf("the unanswered solicitations are not named\n%s", out.String())
			}
			if tc.drop != "" && (res.Stopped == nil || !slices.Contains(res.Stopped.Reasons, tc.drop)) {
				t.Errorf("want the reason %q\n%s", tc.drop, out.String())
			}
			// Nothing stays: no trace table in any namespace.
			for _, ns := range []string{l.vm1, l.r, l.vm2} {
				if tables := run(t, "ip", "netns", "exec", ns, "nft", "list", "tables"); strings.Contains(tables, TraceTablePrefix) {
					t.Errorf("%s keeps a trace table:\n%s", ns, tables)
				}
			}
		})
	}
}

func seenCount(hops []HopSeen) int {
	n := 0
	for _, h := range hops {
		if h.Seen {
			n++
		}
	}
	return n
}

// TestExternalSourceIPv6: a temporary source on an external network with
// an IPv6 address, usable at once (no duplicate address detection), its
// default route via the subnet's gateway and a route to the tenant
// address through the router that holds it; Remove takes it all away.
func TestExternalSourceIPv6(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces)")
	}
	m := chainModel()
	m.HostNetns, m.Prefix = testPrefix+"host", testPrefix
	if err := netns.Create(m.HostNetns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := netns.Delete(m.HostNetns); err != nil {
			t.Error(err)
		}
	})
	bridge := model.BridgeName("public")
	run(t, "ip", "-n", m.HostNetns, "link", "add", bridge, "type", "bridge")
	run(t, "ip", "-n", m.HostNetns, "link", "set", bridge, "up")

	ext, err := m.ExternalSource("public", netip.MustParseAddr("2001:db8:1::6"))
	if err != nil {
		t.Fatal(err)
	}
	removed := false
	defer func() {
		if !removed {
			ext.Remove()
		}
	}()
	if ext.Addr.String() != "2001:db8:ff:0:ffff:ffff:ffff:ffff" || ext.Via.String() != "2001:db8:ff::10" {
		t.Errorf("source %s via %s, want the subnet's last address via the edge's gateway 2001:db8:ff::10", ext.Addr, ext.Via)
	}
	addrs := run(t, "ip", "-n", ext.Netns, "-6", "addr", "show", "dev", "eth0")
	// The global address is usable at once; the link-local one may be
	// tentative for the instant the kernel takes to skip its DAD.
	if !strings.Contains(addrs, "inet6 2001:db8:ff:0:ffff:ffff:ffff:ffff/64 scope global nodad") {
		t.Errorf("addresses of the source:\n%s", addrs)
	}
	routes := run(t, "ip", "-n", ext.Netns, "-6", "route", "show")
	for _, want := range []string{"2001:db8:1::6 via 2001:db8:ff::10 dev eth0", "default via 2001:db8:ff::1 dev eth0"} {
		if !strings.Contains(routes, want) {
			t.Errorf("routes of the source lack %q:\n%s", want, routes)
		}
	}
	removed = true
	if err := ext.Remove(); err != nil {
		t.Fatal(err)
	}
	if netns.Exists(ext.Netns) {
		t.Errorf("namespace %s survives Remove", ext.Netns)
	}
	if links := run(t, "ip", "-n", m.HostNetns, "-o", "link", "show"); strings.Contains(links, ext.HostEnd) {
		t.Errorf("%s survives Remove:\n%s", ext.HostEnd, links)
	}
}

// TestRunIPv6Bridged: the instance's side of the path as nsnet builds it,
// through a bridge in a host namespace (tap ports), where the trace also
// marks IPv6 in the bridge and netdev families: an answered echo is seen at
// all six interfaces both ways, and a bridge family drop is named.
func TestRunIPv6Bridged(t *testing.T) {
	l := newV6Lab(t)
	host := testPrefix + "host"
	if err := netns.Create(host); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := netns.Delete(host); err != nil {
			t.Error(err)
		}
	})
	// Rewire vm1 ── router through the host's bridge: vm1's eth0 to tapA,
	// the router's qr0 to tapR.
	run(t, "ip", "-n", l.vm1, "link", "del", "eth0")
	run(t, "ip", "-n", host, "link", "add", "br0", "type", "bridge")
	run(t, "ip", "-n", host, "link", "set", "br0", "up")
	run(t, "ip", "-n", host, "link", "add", "tapA", "master", "br0", "type", "veth", "peer", "name", "eth0", "netns", l.vm1)
	run(t, "ip", "-n", host, "link", "add", "tapR", "master", "br0", "type", "veth", "peer", "name", "qr0", "netns", l.r)
	for _, a := range []struct{ ns, dev, addr string }{{l.vm1, "eth0", "2001:db8:1::5/64"}, {l.r, "qr0", "2001:db8:1::1/64"}} {
		run(t, "ip", "-n", a.ns, "addr", "add", a.addr, "dev", a.dev, "nodad")
		run(t, "ip", "-n", a.ns, "link", "set", a.dev, "up")
	}
	for _, dev := range []string{"tapA", "tapR"} {
		run(t, "ip", "-n", host, "link", "set", dev, "up")
	}
	run(t, "ip", "-n", l.vm1, "-6", "route", "add", "default", "via", "2001:db8:1::1")
	nft := exec.Command("ip", "netns", "exec", host, "nft", "-f", "-")
	nft.Stdin = strings.NewReader(`table bridge blocker {
	chain forward {
		type filter hook forward priority 0; policy accept;
		ip6 nexthdr tcp tcp dport 8083 drop comment "bridge drop"
	}
}`)
	if out, err := nft.CombinedOutput(); err != nil {
		t.Fatalf("nft: %v\n%s", err, out)
	}

	m := &Model{HostNetns: host}
	plan := func(dst string) *Plan {
		return &Plan{Src: netip.MustParseAddr("2001:db8:1::5"), Dst: netip.MustParseAddr(dst), End: EndInstance, EndDetail: "vm2",
			SourceNextHop: netip.MustParseAddr("2001:db8:1::1"), Hops: []Hop{
				{Netns: l.vm1, Interface: "eth0", Kind: KindSource, Node: "instance vm1"},
				{Netns: host, Interface: "tapA", Kind: KindBridge, Node: "bridge br0", Ingress: true},
				{Netns: host, Interface: "tapR", Kind: KindBridge, Node: "bridge br0"},
				{Netns: l.r, Interface: "qr0", Kind: KindRouter, Node: "router r", Ingress: true},
				{Netns: l.r, Interface: "qg0", Kind: KindRouter, Node: "router r"},
				{Netns: l.vm2, Interface: "eth0", Kind: KindInstance, Node: "instance vm2", Ingress: true},
			}}
	}

	res, err := Run(context.Background(), m, plan("2001:db8:2::6"), l.source(), NewProbe(capture.ProtoICMPv6, 0), Options{Timeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	res.Print(&out, true)
	if !res.Answered || seenCount(res.Way) != 6 || seenCount(res.WayBack) != 6 || res.Stopped != nil || len(res.Notes) > 0 {
		t.Errorf("echo through the bridge:\n%s", out.String())
	}

	res, err = Run(context.Background(), m, plan("2001:db8:2::6"), l.source(), NewProbe(capture.ProtoTCP, 8083), Options{Timeout: 1500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	out.Reset()
	res.Print(&out, true)
	drop := `dropped by nftables: drop by rule handle 2 of chain forward in table bridge blocker, the host (comment "bridge drop")`
	if res.Answered || seenCount(res.Way) != 2 || res.Stopped == nil ||
		!strings.HasPrefix(res.Stopped.Reasons[0], "bridge br0 received it on tapA but did not forward it to tapR") ||
		!slices.Contains(res.Stopped.Reasons, drop) {
		t.Errorf("a bridge drop: want the stop at tapA and %q\n%s", drop, out.String())
	}
	// Whatever neighbour discovery went on meanwhile is not the probe's
	// story: a bridge does not resolve neighbours.
	if strings.Contains(out.String(), "neighbour discovery failed") {
		t.Errorf("a bridge drop blamed on neighbour discovery:\n%s", out.String())
	}
	for _, ns := range []string{host, l.vm1, l.r, l.vm2} {
		if tables := run(t, "ip", "netns", "exec", ns, "nft", "list", "tables"); strings.Contains(tables, TraceTablePrefix) {
			t.Errorf("%s keeps a trace table:\n%s", ns, tables)
		}
	}
}
