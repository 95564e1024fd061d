package nameserver

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/nsnet/nsnet/internal/netns"
)

// testPrefix starts every namespace this test binary makes.
var testPrefix = fmt.Sprintf("nsns%d-", os.Getpid())

func TestMain(m *testing.M) {
	code := m.Run()
	if os.Geteuid() == 0 {
		names, _ := netns.List()
		for _, n := range names {
			if strings.HasPrefix(n, testPrefix) {
				fmt.Println("nameserver: namespace left behind:", n)
				netns.Delete(n)
				code = 1
			}
		}
	}
	os.Exit(code)
}

// TestListenIPv6: a server on an IPv6 address opens before the address
// exists (as a DHCP port's new address is tentative for a while), then
// answers AAAA, A and ip6.arpa PTR queries over UDP and TCP once it does.
func TestListenIPv6(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces)")
	}
	name := testPrefix + "qdhcp"
	if err := netns.Create(name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := netns.Delete(name); err != nil {
			t.Error(err)
		}
	})
	ns, err := netns.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
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
	if err := h.LinkSetUp(lo); err != nil {
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
