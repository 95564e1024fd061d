package nameserver

import (
	"bytes"
	"log/slog"
	"net/netip"
	"testing"

	"github.com/miekg/dns"
)

func fastTestServer() *Server {
	z := NewZone("nsnet.internal.")
	z.Add("vm1", netip.MustParseAddr("10.0.0.5"))
	z.Add("vm1", netip.MustParseAddr("2001:db8:1::5"))
	z.Add("vm1", netip.MustParseAddr("10.0.0.50"))
	z.Add("v6only", netip.MustParseAddr("2001:db8:1::7"))
	z.Add("under_score-9", netip.MustParseAddr("10.0.0.9"))
	z.Subnets = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24"), netip.MustParsePrefix("2001:db8:1::/64")}
	s := &Server{log: slog.New(slog.DiscardHandler)}
	s.SetZone(z)
	return s
}

// general is what the server sends for data the general way: miekg/dns's
// server decoding it (nothing when it cannot, or when it ignores it),
// Server.answer and Msg.Pack. Only called for data the fast path answers,
// which miekg/dns's server accepts as a query.
func general(t *testing.T, s *Server, data []byte) ([]byte, bool) {
	t.Helper()
	req := new(dns.Msg)
	if err := req.Unpack(data); err != nil {
		return nil, false
	}
	reply := s.answer(req, "udp")
	if reply == nil {
		return nil, false
	}
	b, err := reply.Pack()
	if err != nil {
		t.Fatalf("general reply does not pack: %v", err)
	}
	return b, true
}

func query(t testing.TB, name string, qtype uint16, edit func(*dns.Msg)) []byte {
	t.Helper()
	m := new(dns.Msg).SetQuestion(name, qtype)
	m.Id = 0xbeef
	if edit != nil {
		edit(m)
	}
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestFastAnswer: the fast path answers forward questions of the zone's
// domain with the bytes the general path sends, and leaves everything
// else to it.
func TestFastAnswer(t *testing.T) {
	s := fastTestServer()
	tests := []struct {
		name  string
		query []byte
		fast  bool
	}{
		{"A", query(t, "vm1.nsnet.internal.", dns.TypeA, nil), true},
		{"A, two addresses", query(t, "vm1.nsnet.internal.", dns.TypeA, nil), true},
		{"AAAA", query(t, "vm1.nsnet.internal.", dns.TypeAAAA, nil), true},
		{"ANY", query(t, "vm1.nsnet.internal.", dns.TypeANY, nil), true},
		{"mixed case, kept in the reply", query(t, "VM1.Nsnet.INTERNAL.", dns.TypeA, nil), true},
		{"no such data", query(t, "v6only.nsnet.internal.", dns.TypeA, nil), true},
		{"other type", query(t, "vm1.nsnet.internal.", dns.TypeMX, nil), true},
		{"NXDOMAIN", query(t, "nope.nsnet.internal.", dns.TypeA, nil), true},
		{"the domain itself", query(t, "nsnet.internal.", dns.TypeA, nil), true},
		{"underscore and dash", query(t, "under_score-9.nsnet.internal.", dns.TypeA, nil), true},
		{"RD and CD copied", query(t, "vm1.nsnet.internal.", dns.TypeA, func(m *dns.Msg) { m.RecursionDesired, m.CheckingDisabled = true, true }), true},
		{"AD, Z, TC not copied", query(t, "vm1.nsnet.internal.", dns.TypeA, func(m *dns.Msg) { m.AuthenticatedData, m.Zero, m.Truncated = true, true, true }), true},
		{"EDNS", query(t, "vm1.nsnet.internal.", dns.TypeA, func(m *dns.Msg) { m.SetEdns0(1232, false) }), false},
		{"PTR", query(t, "5.0.0.10.in-addr.arpa.", dns.TypePTR, nil), false},
		{"outside the domain", query(t, "example.com.", dns.TypeA, nil), false},
		{"suffix is not the domain", query(t, "xnsnet.internal.", dns.TypeA, nil), false},
		{"class CHAOS", query(t, "vm1.nsnet.internal.", dns.TypeA, func(m *dns.Msg) { m.Question[0].Qclass = dns.ClassCHAOS }), false},
		{"escaped label", query(t, "v\\.m1.nsnet.internal.", dns.TypeA, nil), false},
		{"not a query", query(t, "vm1.nsnet.internal.", dns.TypeA, func(m *dns.Msg) { m.Opcode = dns.OpcodeNotify }), false},
		{"a response", query(t, "vm1.nsnet.internal.", dns.TypeA, func(m *dns.Msg) { m.Response = true }), false},
		{"root", query(t, ".", dns.TypeA, nil), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, fast := s.zone.Load().fastAnswer(tt.query, nil)
			if fast != tt.fast {
				t.Fatalf("fast path answered: %v, want %v", fast, tt.fast)
			}
			if !fast {
				return
			}
			want, ok := general(t, s, tt.query)
			if !ok || !bytes.Equal(got, want) {
				r := new(dns.Msg)
				r.Unpack(got)
				t.Errorf("fast path:\n%x\n%v\ngeneral path:\n%x", got, r, want)
			}
		})
	}
	// Compressed question names are the general path's: trailing junk
	// after a question too.
	b := query(t, "vm1.nsnet.internal.", dns.TypeA, nil)
	if _, fast := s.zone.Load().fastAnswer(append(b, 0), nil); fast {
		t.Error("answered a query with trailing bytes")
	}
}

// TestFastZoneReplaced: the fast path answers from the zone the server
// has now, not from what it prepared for the one before.
func TestFastZoneReplaced(t *testing.T) {
	s := fastTestServer()
	q := query(t, "vm2.nsnet.internal.", dns.TypeA, nil)
	if b, _ := s.zone.Load().fastAnswer(q, nil); b[3]&0xf != dns.RcodeNameError {
		t.Fatalf("rcode %d before, want NXDOMAIN", b[3]&0xf)
	}
	z := NewZone("nsnet.internal.")
	z.Add("vm2", netip.MustParseAddr("10.0.0.6"))
	s.SetZone(z)
	b, fast := s.zone.Load().fastAnswer(q, nil)
	r := new(dns.Msg)
	if !fast || r.Unpack(b) != nil || len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "10.0.0.6" {
		t.Fatalf("after the zone changed: %v", r)
	}
}

// FuzzFastAnswer: whatever the fast path answers, the general path
// answers with the same bytes.
func FuzzFastAnswer(f *testing.F) {
	for _, name := range []string{"vm1.nsnet.internal.", "VM1.nsnet.internal.", "nope.nsnet.internal.", "nsnet.internal.", "5.0.0.10.in-addr.arpa."} {
		for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeANY, dns.TypeMX} {
			f.Add(query(f, name, qtype, nil))
		}
	}
	s := fastTestServer()
	f.Fuzz(func(t *testing.T, data []byte) {
		got, fast := s.zone.Load().fastAnswer(data, nil)
		if !fast {
			return
		}
		want, ok := general(t, s, data)
		if !ok || !bytes.Equal(got, want) {
			t.Fatalf("fast path:\n%x\ngeneral path (%v):\n%x", got, ok, want)
		}
	})
}
