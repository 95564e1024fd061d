package dataplane

import (
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/nsnet/nsnet/internal/netns"
)

// udpIn opens a UDP socket inside namespace ns, bound to addr.
func udpIn(t *testing.T, ns, addr string) *net.UDPConn {
	t.Helper()
	var c net.PacketConn
	err := netns.DoNamed(ns, func() error {
		var err error
		c, err = net.ListenPacket("udp4", addr)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.UDPConn)
}

// blast sends n datagrams of size bytes from ns to dst as fast as the
// socket takes them and returns how many bytes the receiver got. The
// receiver reads until the line has been quiet for a second: a read
// deadline, not a pass threshold.
func blast(t *testing.T, from *net.UDPConn, to *net.UDPConn, dst string, n, size int) (sent, got int) {
	t.Helper()
	raddr, err := net.ResolveUDPAddr("udp4", dst)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan int)
	go func() {
		buf := make([]byte, 65536)
		total := 0
		for {
			to.SetReadDeadline(time.Now().Add(time.Second))
			k, _, err := to.ReadFrom(buf)
			if err != nil {
				done <- total
				return
			}
			total += k
		}
	}()
	payload := make([]byte, size)
	for range n {
		k, err := from.WriteTo(payload, raddr)
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			continue // a full socket buffer: the datagram is not sent
		}
		sent += k
	}
	return sent, <-done
}

// qdiscStats reads the drops and overlimits of the tap's qdisc with parent.
func qdiscStats(t *testing.T, h *netlink.Handle, tap string, parent uint32) (drops, overlimits uint32) {
	t.Helper()
	link, err := h.LinkByName(tap)
	if err != nil {
		t.Fatal(err)
	}
	qs, err := h.QdiscList(link)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range qs {
		if q.Attrs().Parent == parent && q.Attrs().Statistics != nil {
			s := q.Attrs().Statistics
			return s.Queue.Drops, s.Queue.Overlimits
		}
	}
	t.Fatalf("no qdisc with parent %x on %s", parent, tap)
	return 0, 0
}

// TestPortBandwidthLimits limits red's port both ways to 1 Mbit/s, sends 2
// MB as fast as possible each way, and checks that the shaper of that
// direction dropped what was over (its drop counter grew) and that the
// receiver got less than was sent; then that a second Ensure changes
// nothing, that drift is repaired and that removing the limits removes
// the qdiscs.
func TestPortBandwidthLimits(t *testing.T) {
	e := newEnv(t)
	tp := newTopology(e)
	tp.ensure(t)
	tp.pingAll(t)
	redNs, err := OpenNamespace(e.ns("red"))
	if err != nil {
		t.Fatal(err)
	}
	defer redNs.Close()
	tap, alias := "tapp-red", PortAlias("p-red")
	spec := QosSpec{EgressKbps: 1000, IngressKbps: 1000}
	ensure := func(spec QosSpec) bool {
		t.Helper()
		changed, err := EnsurePortQos(e.links, redNs, tap, "eth0", alias, spec)
		if err != nil {
			t.Fatal(err)
		}
		return changed
	}
	if !ensure(spec) {
		t.Fatal("first ensure changed nothing")
	}
	if ensure(spec) {
		t.Fatal("second ensure changed something")
	}

	red := udpIn(t, e.ns("red"), "10.9.0.11:5001")
	green := udpIn(t, e.ns("green"), "10.9.0.12:5001")
	const n, size = 1500, 1400 // 2.1 MB
	for _, tc := range []struct {
		name     string
		from, to *net.UDPConn
		dst      string
		h        *netlink.Handle
		link     string
	}{
		{"egress (from the instance)", red, green, "10.9.0.12:5001", redNs.Handle, "eth0"},
		{"ingress (to the instance)", green, red, "10.9.0.11:5001", e.host.Handle, tap},
	} {
		t.Run(tc.name, func(t *testing.T) {
			drops0, _ := qdiscStats(t, tc.h, tc.link, netlink.HANDLE_ROOT)
			sent, got := blast(t, tc.from, tc.to, tc.dst, n, size)
			drops, over := qdiscStats(t, tc.h, tc.link, netlink.HANDLE_ROOT)
			t.Logf("sent %d bytes, received %d; tbf drops %d→%d, overlimits %d", sent, got, drops0, drops, over)
			if drops <= drops0 {
				t.Errorf("tbf drops did not grow (%d → %d)", drops0, drops)
			}
			if got >= sent {
				t.Errorf("received %d of %d bytes: nothing was limited", got, sent)
			}
		})
	}

	// Drift: an operator deletes the tap's shaper; one pass puts it back.
	link, _ := e.host.Handle.LinkByName(tap)
	qs, _ := e.host.Handle.QdiscList(link)
	for _, q := range qs {
		if q.Attrs().Parent == netlink.HANDLE_ROOT {
			if err := e.host.Handle.QdiscDel(q); err != nil {
				t.Fatal(err)
			}
		}
	}
	if !ensure(spec) {
		t.Fatal("repair changed nothing")
	}
	if ensure(spec) {
		t.Fatal("after repair: changed something")
	}

	// No limits: both shapers go.
	if !ensure(QosSpec{}) {
		t.Fatal("removal changed nothing")
	}
	for _, end := range []struct {
		h    *netlink.Handle
		name string
	}{{e.host.Handle, tap}, {redNs.Handle, "eth0"}} {
		link, _ := end.h.LinkByName(end.name)
		qs, _ := end.h.QdiscList(link)
		for _, q := range qs {
			if q.Type() == "tbf" {
				t.Errorf("%s: shaper left: %+v", end.name, q.Attrs())
			}
		}
	}
	if ensure(QosSpec{}) {
		t.Fatal("after removal: changed something")
	}
}

// TestRootQdiscReadsOneLink checks what checking a port's shaper reads in
// a host namespace with many other links (a host's other ports): the
// tap's root qdisc alone, not every link's, whether the tap has the
// kernel's default root or a shaper; and that the shaper read so is the
// one programmed (a second ensure changes nothing).
func TestRootQdiscReadsOneLink(t *testing.T) {
	const others = 40
	e := newEnv(t)
	tp := newTopology(e)
	tp.ensure(t)
	for i := range others {
		name, peer := fmt.Sprintf("nsq-o%d", i), fmt.Sprintf("nsq-p%d", i)
		t.Cleanup(func() { e.ip("-n", e.hostName, "link", "del", name) })
		e.ip("-n", e.hostName, "link", "add", name, "type", "veth", "peer", "name", peer)
		e.ip("-n", e.hostName, "link", "set", name, "up")
		e.ip("-n", e.hostName, "link", "set", peer, "up")
	}
	redNs, err := OpenNamespace(e.ns("red"))
	if err != nil {
		t.Fatal(err)
	}
	defer redNs.Close()
	tap, alias := "tapp-red", PortAlias("p-red")
	for _, spec := range []QosSpec{{}, {IngressKbps: 1000}, {IngressKbps: 1000}, {IngressKbps: 8000, IngressBurstKbit: 100}, {}} {
		links := NewLinks(e.host.Handle)
		links.SetNamespace(e.hostName)
		link, err := links.Get(tap)
		if err != nil {
			t.Fatal(err)
		}
		before := qdiscsRead.Load()
		root, err := links.rootQdisc(link)
		if err != nil {
			t.Fatal(err)
		}
		if n := qdiscsRead.Load() - before; n > 1 {
			t.Errorf("%+v: reading the tap's root qdisc read %d qdiscs, want at most 1", spec, n)
		}
		if _, err := EnsurePortQos(links, redNs, tap, "eth0", alias, spec); err != nil {
			t.Fatal(err)
		}
		if changed, err := EnsurePortQos(links, redNs, tap, "eth0", alias, spec); err != nil || changed {
			t.Errorf("%+v: a second ensure changed %v, %v (root was %+v)", spec, changed, err, root)
		}
	}
	link, err := e.host.Handle.LinkByName(tap)
	if err != nil {
		t.Fatal(err)
	}
	if qs, err := e.host.Handle.QdiscList(link); err != nil || slices.ContainsFunc(qs, func(q netlink.Qdisc) bool { return q.Type() == "tbf" }) {
		t.Errorf("the shaper was not removed: %v, %v", qs, err)
	}
}
