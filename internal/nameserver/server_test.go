package nameserver

import (
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/nsnet/nsnet/internal/lab"
	"github.com/nsnet/nsnet/internal/netns"
)

// testPrefix starts every namespace this test binary makes.
var testPrefix = fmt.Sprintf("nsns%d-", os.Getpid())

func TestMain(m *testing.M) {
	os.Exit(lab.RunTests(m, "nameserver", testPrefix))
}

// TestListenIPv6: a server on an IPv6 address opens before the address
// exists (as a DHCP port's new address is tentative for a while), then
// answers AAAA, A and ip6.arpa PTR queries over UDP and TCP once it does.
func TestListenIPv6(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces)")
	}
	name := testPrefix + "qdhcp"
	ns := loopbackNamespace(t, name)
	server := netip.MustParseAddr("2001:db8:1::2")
	s, err := Listen(ns, server, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("listen before the address exists: %v", err)
	}
	defer s.Close()
	z := NewZone("nsnet.internal.")
	z.Add("vm1", netip.MustParseAddr("10.0.0.5"))
	z.Add("vm1", netip.MustParseAddr("2001:db8:1::5"))
	z.Subnets = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24"), netip.MustParsePrefix("2001:db8:1::/64")}
	s.SetZone(z)

	h, err := netns.NewHandle(name)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.AddrAdd(lo, &netlink.Addr{IPNet: &net.IPNet{IP: server.AsSlice(), Mask: net.CIDRMask(128, 128)}, Flags: unix.IFA_F_NODAD}); err != nil {
		t.Fatal(err)
	}
	ptr, _ := dns.ReverseAddr("2001:db8:1::5")
	for _, proto := range []string{"udp", "tcp"} {
		for _, q := range []struct {
			name  string
			qtype uint16
			want  string
		}{
			{"vm1.nsnet.internal.", dns.TypeAAAA, "2001:db8:1::5"},
			{"vm1.nsnet.internal.", dns.TypeA, "10.0.0.5"},
			{ptr, dns.TypePTR, "vm1.nsnet.internal."},
		} {
			got := ask(t, name, proto, server, q.name, q.qtype)
			if got != q.want {
				t.Errorf("%s %s %s = %q, want %q", proto, dns.TypeToString[q.qtype], q.name, got, q.want)
			}
		}
	}
}

// ask sends one query from inside namespace ns, retrying as a resolver
// would, and returns the first answer's data.
func ask(t *testing.T, ns, proto string, server netip.Addr, name string, qtype uint16) string {
	t.Helper()
	c := &dns.Client{Net: proto, Timeout: time.Second}
	var lastErr error
	for range 5 {
		var reply *dns.Msg
		err := netns.DoNamed(ns, func() error {
			var err error
			reply, _, err = c.Exchange(new(dns.Msg).SetQuestion(name, qtype), netip.AddrPortFrom(server, Port).String())
			return err
		})
		if err != nil {
			lastErr = err
			continue
		}
		if len(reply.Answer) == 0 {
			return dns.RcodeToString[reply.Rcode] + " without answers"
		}
		switch rr := reply.Answer[0].(type) {
		case *dns.A:
			return rr.A.String()
		case *dns.AAAA:
			a, _ := netip.AddrFromSlice(rr.AAAA)
			return a.String()
		case *dns.PTR:
			return rr.Ptr
		}
		return reply.Answer[0].String()
	}
	t.Fatalf("%s query for %s: %v", proto, name, lastErr)
	return ""
}

// BenchmarkServeUDP: queries per second over UDP on the loopback of a
// namespace of its own, 16 clients with one query in flight each, for the
// fast path (an A query of the zone) and the general one (a PTR query).
// Run as root: go test -run XXX -bench ServeUDP ./internal/nameserver
func BenchmarkServeUDP(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root (network namespaces)")
	}
	ns := loopbackNamespace(b, testPrefix+"bench")
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
	z.Subnets = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/16")}
	s.SetZone(z)

	for _, q := range []struct {
		path  string
		name  string
		qtype uint16
	}{
		{"fast", "vm1.nsnet.internal.", dns.TypeA},
		{"general", "1.0.0.10.in-addr.arpa.", dns.TypePTR},
	} {
		b.Run(q.path, func(b *testing.B) {
			query, err := new(dns.Msg).SetQuestion(q.name, q.qtype).Pack()
			if err != nil {
				b.Fatal(err)
			}
			conns := make(chan net.Conn, 16)
			if err := netns.Do(ns, func() error {
				for range cap(conns) {
					c, err := net.Dial("udp", netip.AddrPortFrom(server, Port).String())
					if err != nil {
						return err
					}
					conns <- c
				}
				return nil
			}); err != nil {
				b.Fatal(err)
			}
			b.SetParallelism(8) // 16 goroutines on 2 CPUs
			b.RunParallel(func(pb *testing.PB) {
				c := <-conns
				defer c.Close()
				buf := make([]byte, 512)
				for pb.Next() {
					c.SetDeadline(time.Now().Add(time.Second))
					if _, err := c.Write(query); err != nil {
						b.Error(err)
						return
					}
					if n, err := c.Read(buf); err != nil || n < 12 || buf[7] != 1 {
						b.Errorf("answer %x: %v", buf[:n], err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "queries/s")
		})
	}
}

// TestServeBurst: a burst of queries sent before any answer is read, the
// fast path's (A, AAAA, NXDOMAIN) mixed with the general path's (PTR,
// EDNS, a question outside the zone), is read in batches and every query
// gets its own answer. A client retries as a resolver does: the test
// sends the burst again for the queries still unanswered.
func TestServeBurst(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces)")
	}
	ns := loopbackNamespace(t, testPrefix+"burst")
	server := netip.MustParseAddr("127.0.0.1")
	s, err := Listen(ns, server, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	z := NewZone("nsnet.internal.")
	z.Add("vm1", netip.MustParseAddr("10.0.0.5"))
	z.Add("vm1", netip.MustParseAddr("2001:db8:1::5"))
	z.Subnets = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24")}
	var counters Counters
	s.CountInto(&counters)
	s.SetZone(z)

	ptr, _ := dns.ReverseAddr("10.0.0.5")
	kinds := []struct {
		name  string
		qtype uint16
		edns  bool
		check func(*dns.Msg) bool
	}{
		{"vm1.nsnet.internal.", dns.TypeA, false, func(r *dns.Msg) bool {
			return len(r.Answer) == 1 && r.Answer[0].(*dns.A).A.String() == "10.0.0.5"
		}},
		{"VM1.nsnet.internal.", dns.TypeAAAA, false, func(r *dns.Msg) bool {
			return len(r.Answer) == 1 && r.Answer[0].(*dns.AAAA).AAAA.String() == "2001:db8:1::5" && r.Answer[0].Header().Name == "VM1.nsnet.internal."
		}},
		{"nope.nsnet.internal.", dns.TypeA, false, func(r *dns.Msg) bool { return r.Rcode == dns.RcodeNameError }},
		{ptr, dns.TypePTR, false, func(r *dns.Msg) bool {
			return len(r.Answer) == 1 && r.Answer[0].(*dns.PTR).Ptr == "vm1.nsnet.internal."
		}},
		{"vm1.nsnet.internal.", dns.TypeA, true, func(r *dns.Msg) bool { return len(r.Answer) == 1 }},
		{"example.com.", dns.TypeA, false, func(r *dns.Msg) bool { return r.Rcode == dns.RcodeRefused }},
	}
	const n = 300
	var conn net.Conn
	if err := netns.Do(ns, func() error {
		var err error
		conn, err = net.Dial("udp", netip.AddrPortFrom(server, Port).String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.(*net.UDPConn).SetReadBuffer(1 << 20); err != nil {
		t.Fatal(err)
	}
	open := map[uint16]int{} // query ID → kind
	for id := range uint16(n) {
		open[id] = int(id) % len(kinds)
	}
	buf := make([]byte, 4096)
	for try := 0; len(open) > 0 && try < 10; try++ {
		for id, k := range open {
			m := new(dns.Msg).SetQuestion(kinds[k].name, kinds[k].qtype)
			m.Id = id
			if kinds[k].edns {
				m.SetEdns0(1232, false)
			}
			b, err := m.Pack()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := conn.Write(b); err != nil {
				t.Fatal(err)
			}
		}
		for {
			conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			nr, err := conn.Read(buf)
			if err != nil {
				break // timeout: ask again for what is unanswered
			}
			r := new(dns.Msg)
			if err := r.Unpack(buf[:nr]); err != nil {
				t.Fatalf("answer does not parse: %v", err)
			}
			k, ok := open[r.Id]
			if !ok {
				continue // answered already
			}
			if !strings.EqualFold(r.Question[0].Name, kinds[k].name) || !kinds[k].check(r) {
				t.Fatalf("query %d (%s %s): wrong answer %v", r.Id, kinds[k].name, dns.TypeToString[kinds[k].qtype], r)
			}
			delete(open, r.Id)
		}
	}
	if len(open) > 0 {
		t.Errorf("%d of %d queries unanswered", len(open), n)
	}
	// Every answer is counted by its code, on both paths (A, AAAA and
	// NXDOMAIN on the fast one; PTR, EDNS and REFUSED on the general
	// one); a query sent again may have been answered twice.
	per := uint64(n / len(kinds))
	want := map[string]uint64{"NOERROR": 4 * per, "NXDOMAIN": per, "REFUSED": per}
	got := counters.Answers()
	for rc, min := range want {
		if got[rc] < min {
			t.Errorf("counted %d %s answers, want at least %d (all: %v)", got[rc], rc, min, got)
		}
	}
	if len(got) != len(want) {
		t.Errorf("counted answers %v, want only %v", got, slices.Collect(maps.Keys(want)))
	}
}
