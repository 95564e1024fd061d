package qosmark

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nsnet/nsnet/internal/netns"
)

var prefix = fmt.Sprintf("nsqm%d-", os.Getpid())
var seq atomic.Int32

// pair makes two namespaces joined by a veth (qa in the first, qb in the
// second) with 10.77.0.1/24, fd77::1/64 and .2, ::2, and removes them.
func pair(t *testing.T) (nsA, nsB string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces)")
	}
	n := seq.Add(1)
	nsA, nsB = fmt.Sprintf("%sa%d", prefix, n), fmt.Sprintf("%sb%d", prefix, n)
	for _, ns := range []string{nsA, nsB} {
		if err := netns.Create(ns); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := netns.Delete(ns); err != nil {
				t.Errorf("delete %s: %v", ns, err)
			}
		})
	}
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v\n%s", args, err, out)
		}
	}
	run("-n", nsA, "link", "add", "qa", "type", "veth", "peer", "name", "qb", "netns", nsB)
	for _, end := range []struct{ ns, link, v4, v6 string }{{nsA, "qa", "10.77.0.1/24", "fd77::1/64"}, {nsB, "qb", "10.77.0.2/24", "fd77::2/64"}} {
		run("-n", end.ns, "addr", "add", end.v4, "dev", end.link)
		run("-n", end.ns, "addr", "add", end.v6, "dev", end.link, "nodad")
		run("-n", end.ns, "link", "set", end.link, "up")
	}
	return nsA, nsB
}

// received returns the TOS (IPv4) or traffic class (IPv6) of the datagrams
// that arrive at addr in ns from a sender in from, sending until one
// arrives (a first packet may wait for neighbour discovery).
func received(t *testing.T, from, ns, addr string) uint8 {
	t.Helper()
	ap := netip.MustParseAddrPort(addr)
	network, level, opt := "udp4", unix.IPPROTO_IP, unix.IP_RECVTOS
	if ap.Addr().Is6() {
		network, level, opt = "udp6", unix.IPPROTO_IPV6, unix.IPV6_RECVTCLASS
	}
	var rc, sc *net.UDPConn
	err := netns.DoNamed(ns, func() error {
		var err error
		rc, err = net.ListenUDP(network, net.UDPAddrFromAddrPort(ap))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	raw, _ := rc.SyscallConn()
	raw.Control(func(fd uintptr) { err = unix.SetsockoptInt(int(fd), level, opt, 1) })
	if err != nil {
		t.Fatal(err)
	}
	if err := netns.DoNamed(from, func() error {
		var err error
		sc, err = net.ListenUDP(network, nil)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	buf, oob := make([]byte, 100), make([]byte, 128)
	for range 50 {
		sc.WriteToUDPAddrPort([]byte("dscp?"), ap)
		rc.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		_, oobn, _, _, err := rc.ReadMsgUDP(buf, oob)
		if err != nil {
			continue
		}
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			if (m.Header.Type == unix.IP_TOS || m.Header.Type == unix.IPV6_TCLASS) && len(m.Data) > 0 {
				return m.Data[0] // the low byte: TOS, or the traffic class as an int
			}
		}
		t.Fatal("no TOS in the control messages")
	}
	t.Fatalf("nothing arrived at %s", addr)
	return 0
}

// TestDSCPMarking marks what leaves qa with DSCP 26 and reads
// the TOS / traffic class the receiver sees, both families; then checks
// that a second Ensure changes nothing, that drift is repaired, and that
// no marks removes the table.
func TestDSCPMarking(t *testing.T) {
	nsA, nsB := pair(t)
	for _, addr := range []string{"10.77.0.2:4000", "[fd77::2]:4000"} {
		if got := received(t, nsA, nsB, addr); got != 0 {
			t.Fatalf("%s: unmarked traffic arrives with TOS %#x", addr, got)
		}
	}
	if changed, err := Ensure(nsA, map[string]uint8{"qa": 26}); err != nil || !changed {
		t.Fatalf("ensure: changed %v, %v", changed, err)
	}
	if changed, err := Ensure(nsA, map[string]uint8{"qa": 26}); err != nil || changed {
		t.Fatalf("second ensure: changed %v, %v", changed, err)
	}
	for _, addr := range []string{"10.77.0.2:4001", "[fd77::2]:4001"} {
		if got := received(t, nsA, nsB, addr); got != 26<<2 {
			t.Errorf("%s: TOS/traffic class %#x, want DSCP 26 (%#x)", addr, got, 26<<2)
		}
	}
	// Traffic the other way is not marked: the mark is of what a sends.
	if got := received(t, nsB, nsA, "10.77.0.1:4002"); got != 0 {
		t.Errorf("b's traffic marked %#x", got)
	}

	// Drift: someone flushes the chain; the next Ensure rewrites it.
	if out, err := exec.Command("ip", "netns", "exec", nsA, "nft", "flush", "chain", "inet", Table, "postrouting").CombinedOutput(); err != nil {
		t.Fatalf("nft flush: %v\n%s", err, out)
	}
	if changed, err := Ensure(nsA, map[string]uint8{"qa": 26}); err != nil || !changed {
		t.Fatalf("repair: changed %v, %v", changed, err)
	}
	if got := received(t, nsA, nsB, "10.77.0.2:4003"); got != 26<<2 {
		t.Errorf("after repair: TOS %#x", got)
	}

	if changed, err := Ensure(nsA, nil); err != nil || !changed {
		t.Fatalf("remove: changed %v, %v", changed, err)
	}
	if got := received(t, nsA, nsB, "10.77.0.2:4004"); got != 0 {
		t.Errorf("after removal: TOS %#x", got)
	}
	if changed, err := Ensure(nsA, nil); err != nil || changed {
		t.Fatalf("after removal: changed %v, %v", changed, err)
	}
}
