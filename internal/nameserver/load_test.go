package nameserver

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	vnetns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/nsnet/nsnet/internal/netns"
)

// BenchmarkDnsperf: the server answering dnsperf (a process of its own,
// 16 clients, 64 queries in flight) on the loopback of a namespace of its
// own, for 3 seconds per iteration: queries per second, and the server's
// CPU time per query (this process's, user and system: only the server
// runs in it meanwhile), the figure bench/dhcp compares with dnsmasq's.
// Run as root with dnsperf installed:
//
//	go test -run XXX -bench Dnsperf -benchtime 1x ./internal/nameserver
func BenchmarkDnsperf(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root (network namespaces)")
	}
	if _, err := exec.LookPath("dnsperf"); err != nil {
		b.Skip("dnsperf not installed")
	}
	name := testPrefix + "perf"
	ns := loopbackNamespace(b, name)
	server := netip.MustParseAddr("127.0.0.1")
	s, err := Listen(ns, server, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	z := NewZone("nsnet.internal.")
	for i := range 1000 {
		z.Add(fmt.Sprintf("vm%d", i), netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}))
	}
	s.SetZone(z)
	data := filepath.Join(b.TempDir(), "queries")
	if err := os.WriteFile(data, []byte("vm1.nsnet.internal A\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	var queries, cpu float64
	for b.Loop() {
		cpu0 := processCPU()
		out, err := exec.Command("ip", "netns", "exec", name, "dnsperf", "-s", server.String(), "-d", data,
			"-l", "3", "-c", "16", "-q", "64").CombinedOutput()
		cpu += (processCPU() - cpu0).Seconds()
		if err != nil {
			b.Fatalf("dnsperf: %v\n%s", err, out)
		}
		qps := dnsperfRate(b, string(out))
		queries += qps * 3
		b.ReportMetric(qps, "queries/s")
	}
	b.ReportMetric(cpu/queries*1e6, "server-µs/query")
}

// dnsperfRate is the queries per second dnsperf reports.
func dnsperfRate(b *testing.B, out string) float64 {
	for line := range strings.Lines(out) {
		if f := strings.Fields(line); len(f) >= 4 && strings.HasPrefix(strings.TrimSpace(line), "Queries per second:") {
			qps, err := strconv.ParseFloat(f[3], 64)
			if err != nil {
				b.Fatal(err)
			}
			return qps
		}
	}
	b.Fatalf("no rate in dnsperf's output:\n%s", out)
	return 0
}

// processCPU is the CPU time this process has used, user and system.
func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// loopbackNamespace makes namespace name with its loopback up, removed
// when the test ends, and returns it open.
func loopbackNamespace(tb testing.TB, name string) vnetns.NsHandle {
	tb.Helper()
	if err := netns.Create(name); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := netns.Delete(name); err != nil {
			tb.Error(err)
		}
	})
	h, err := netns.NewHandle(name)
	if err != nil {
		tb.Fatal(err)
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err != nil {
		tb.Fatal(err)
	}
	if err := h.LinkSetUp(lo); err != nil {
		tb.Fatal(err)
	}
	ns, err := netns.Open(name)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ns.Close() })
	return ns
}

// TestOneGoroutinePerSocket: a server runs one goroutine per socket (UDP
// and TCP), none per query on the fast path: the UDP socket's readers
// would take turns at its lock, each turn a goroutine woken. Serving
// goroutines are told by their stacks; those of servers that other tests
// closed may take a moment to end, so the count is read until it is
// right or a few seconds have passed.
func TestOneGoroutinePerSocket(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces)")
	}
	name := testPrefix + "gor"
	ns := loopbackNamespace(t, name)
	server := netip.MustParseAddr("127.0.0.1")
	s, err := Listen(ns, server, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	z := NewZone("nsnet.internal.")
	z.Add("vm1", netip.MustParseAddr("10.0.0.5"))
	s.SetZone(z)
	for range 10 {
		if got := ask(t, name, "udp", server, "vm1.nsnet.internal.", dns.TypeA); got != "10.0.0.5" {
			t.Fatalf("answer %q", got)
		}
	}
	var got int
	for start := time.Now(); time.Since(start) < 5*time.Second; time.Sleep(10 * time.Millisecond) {
		if got = servingGoroutines(); got == 2 {
			return
		}
	}
	t.Errorf("%d goroutines serve DNS, want 2 (one per socket)", got)
}

// servingGoroutines counts the goroutines in miekg/dns's server loops or
// answering a query there.
func servingGoroutines() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		if strings.Contains(g, "miekg/dns.(*Server).serve") {
			n++
		}
	}
	return n
}

// TestFastPathAllocations: the fast path allocates nothing per query.
// Queries of the fast path are sent, then one of the general path's,
// and the server's reader runs until it hands that one on: the
// allocations of a round must not grow with the number of fast queries
// in it (the general query's copy and address are the same in every
// round).
func TestFastPathAllocations(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces)")
	}
	pc, client := serverAndClient(t, loopbackNamespace(t, testPrefix+"alloc"))
	s := &Server{log: slog.New(slog.DiscardHandler)}
	z := NewZone("nsnet.internal.")
	z.Add("vm1", netip.MustParseAddr("10.0.0.5"))
	z.Subnets = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24")}
	s.SetZone(z)
	r := &fastReader{s: s}
	fast, err := new(dns.Msg).SetQuestion("vm1.nsnet.internal.", dns.TypeA).Pack()
	if err != nil {
		t.Fatal(err)
	}
	ptr, _ := dns.ReverseAddr("10.0.0.5")
	general, err := new(dns.Msg).SetQuestion(ptr, dns.TypePTR).Pack()
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 512)
	round := func(queries int) {
		for range queries {
			if _, err := client.Write(fast); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := client.Write(general); err != nil {
			t.Fatal(err)
		}
		got, _, err := r.ReadPacketConn(pc, 0)
		if err != nil || !bytes.Equal(got, general) {
			t.Fatalf("read %x, %v: want the general query", got, err)
		}
		for range queries {
			client.SetReadDeadline(time.Now().Add(5 * time.Second))
			if n, err := client.Read(buf); err != nil || n < 12 || buf[7] != 1 {
				t.Fatalf("answer %x: %v", buf[:n], err)
			}
		}
	}
	round(1) // the reader's buffers are made at its first read
	one := testing.AllocsPerRun(20, func() { round(1) })
	many := testing.AllocsPerRun(20, func() { round(16) })
	// Allocations are counted process-wide: a goroutine of another
	// test's server, still ending, may add a few to a round.
	if perQuery := (many - one) / 15; perQuery >= 0.5 {
		t.Errorf("a round of 16 fast queries allocates %.0f times, of 1 %.0f: %.1f allocations per query, want none",
			many, one, perQuery)
	}
}

// TestReadErrorKeepsServing: an error the kernel reports on a read — here
// ECONNREFUSED, from the ICMP port unreachable a reply to a client gone
// drew back (the socket asks for such errors with IP_RECVERR) — is one
// datagram's, not the socket's: the reader goes on to the queries queued
// behind it. Returned, it would stop miekg/dns's server, and the
// network's DNS with it.
func TestReadErrorKeepsServing(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces)")
	}
	ns := loopbackNamespace(t, testPrefix+"recverr")
	pc, client := serverAndClient(t, ns)
	var gone net.Addr
	if err := netns.Do(ns, func() error {
		closed, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		gone = closed.LocalAddr()
		return closed.Close()
	}); err != nil {
		t.Fatal(err)
	}
	raw, err := pc.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_RECVERR, 1)
	}); err != nil || serr != nil {
		t.Fatal(err, serr)
	}
	// A reply to a client whose socket is closed: the kernel's port
	// unreachable comes back as the socket's pending error.
	if _, err := pc.WriteTo([]byte("late answer"), gone); err != nil {
		t.Fatal(err)
	}
	query, err := new(dns.Msg).SetQuestion("vm1.nsnet.internal.", dns.TypeA).Pack()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Write(query); err != nil {
		t.Fatal(err)
	}
	// No zone: the fast path hands every query on.
	r := &fastReader{s: &Server{log: slog.New(slog.DiscardHandler)}}
	got, _, err := r.ReadPacketConn(pc, 0)
	if err != nil || !bytes.Equal(got, query) {
		t.Fatalf("read %x, %v: want the query queued behind the error", got, err)
	}
}

// serverAndClient opens a UDP socket on the loopback of ns, as a server's,
// and a client's socket connected to it, both closed when the test ends.
func serverAndClient(t *testing.T, ns vnetns.NsHandle) (*net.UDPConn, net.Conn) {
	t.Helper()
	var pc net.PacketConn
	var client net.Conn
	if err := netns.Do(ns, func() error {
		var err error
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			return err
		}
		client, err = net.Dial("udp", pc.LocalAddr().String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		client.Close()
		pc.Close()
	})
	return pc.(*net.UDPConn), client
}
