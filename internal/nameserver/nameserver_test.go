package nameserver

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

func TestAnswer(t *testing.T) {
	z := NewZone("lab.example.")
	z.Add("vm1", netip.MustParseAddr("10.0.0.5"))
	z.Add("VM2", netip.MustParseAddr("10.0.0.6"))
	// vm1 is dual-stack; v6only has a SLAAC address only.
	z.Add("vm1", netip.MustParseAddr("2001:db8:1::f816:3eff:fe00:5"))
	z.Add("v6only", netip.MustParseAddr("2001:db8:1::7"))
	// A port's dns_name in its own dns_domain: that one name, not its domain.
	z.AddName("Web.Other.test.", netip.MustParseAddr("10.0.0.5"))
	z.Subnets = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24"), netip.MustParsePrefix("2001:db8:1::/64")}
	rev := func(a string) string {
		name, err := dns.ReverseAddr(a)
		if err != nil {
			t.Fatal(err)
		}
		return name
	}
	tests := []struct {
		name    string
		qname   string
		qtype   uint16
		forward bool
		rcode   int
		answer  string // first answer's data
	}{
		{"instance", "vm1.lab.example.", dns.TypeA, false, dns.RcodeSuccess, "10.0.0.5"},
		{"any case", "Vm2.LAB.example.", dns.TypeA, false, dns.RcodeSuccess, "10.0.0.6"},
		{"no such data", "vm2.lab.example.", dns.TypeAAAA, false, dns.RcodeSuccess, ""},
		{"AAAA", "vm1.lab.example.", dns.TypeAAAA, false, dns.RcodeSuccess, "2001:db8:1:0:f816:3eff:fe00:5"},
		{"A of a dual-stack name is its IPv4 only", "vm1.lab.example.", dns.TypeA, false, dns.RcodeSuccess, "10.0.0.5"},
		{"ANY gives both", "vm1.lab.example.", dns.TypeANY, false, dns.RcodeSuccess, "10.0.0.5 2001:db8:1:0:f816:3eff:fe00:5"},
		{"IPv6 only: no A", "v6only.lab.example.", dns.TypeA, false, dns.RcodeSuccess, ""},
		{"IPv6 only: AAAA", "v6only.lab.example.", dns.TypeAAAA, false, dns.RcodeSuccess, "2001:db8:1::7"},
		{"IPv6 reverse", rev("2001:db8:1::f816:3eff:fe00:5"), dns.TypePTR, false, dns.RcodeSuccess, "vm1.lab.example."},
		{"IPv6 reverse in capitals", strings.ToUpper(rev("2001:db8:1::7")), dns.TypePTR, false, dns.RcodeSuccess, "v6only.lab.example."},
		{"IPv6 reverse of an unused address", rev("2001:db8:1::99"), dns.TypePTR, false, dns.RcodeNameError, ""},
		{"IPv6 reverse elsewhere", rev("2001:db8:2::1"), dns.TypePTR, true, 0, ""},
		{"IPv6 reverse of a prefix, not an address", "1.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.", dns.TypePTR, true, 0, ""},
		{"IPv6 reverse with a non-hex label", strings.Replace(rev("2001:db8:1::7"), "7.", "g.", 1), dns.TypePTR, true, 0, ""},
		{"IPv6 reverse with a two-digit label", strings.Replace(rev("2001:db8:1::7"), "7.0.", "70.", 1), dns.TypePTR, true, 0, ""},
		{"no such name", "vm9.lab.example.", dns.TypeA, false, dns.RcodeNameError, ""},
		{"reverse", "5.0.0.10.in-addr.arpa.", dns.TypePTR, false, dns.RcodeSuccess, "vm1.lab.example."},
		{"reverse of an unused address", "9.0.0.10.in-addr.arpa.", dns.TypePTR, false, dns.RcodeNameError, ""},
		{"reverse elsewhere", "1.2.0.192.in-addr.arpa.", dns.TypePTR, true, 0, ""},
		{"another domain", "example.com.", dns.TypeA, true, 0, ""},
		{"a name added outside the domain", "web.other.TEST.", dns.TypeA, false, dns.RcodeSuccess, "10.0.0.5"},
		{"another name in that name's domain", "db.other.test.", dns.TypeA, true, 0, ""},
		{"the reverse stays the domain's name", "5.0.0.10.in-addr.arpa.", dns.TypeANY, false, dns.RcodeSuccess, "vm1.lab.example."},
		{"a suffix that is not a subdomain", "xlab.example.", dns.TypeA, true, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reply := z.Answer(new(dns.Msg).SetQuestion(tt.qname, tt.qtype))
			if tt.forward {
				if reply != nil {
					t.Fatalf("answered %v, want it forwarded", reply)
				}
				return
			}
			if reply == nil {
				t.Fatal("forwarded, want an answer")
			}
			if reply.Rcode != tt.rcode || !reply.Authoritative {
				t.Fatalf("rcode %s aa %v, want %s aa", dns.RcodeToString[reply.Rcode], reply.Authoritative, dns.RcodeToString[tt.rcode])
			}
			switch {
			case tt.answer == "" && len(reply.Answer) > 0:
				t.Errorf("answers %v, want none", reply.Answer)
			case tt.answer != "" && len(reply.Answer) == 0:
				t.Errorf("no answer, want %s", tt.answer)
			case tt.answer != "":
				var all []string
				for _, rr := range reply.Answer {
					switch rr := rr.(type) {
					case *dns.A:
						all = append(all, rr.A.String())
					case *dns.AAAA:
						a, _ := netip.AddrFromSlice(rr.AAAA)
						all = append(all, a.String())
					case *dns.PTR:
						all = append(all, rr.Ptr)
					}
				}
				if got := strings.Join(all, " "); got != tt.answer {
					t.Errorf("answer %s, want %s", got, tt.answer)
				}
			}
		})
	}
}

func TestAnswerMalformed(t *testing.T) {
	z := NewZone("nsnet.internal.")
	none := new(dns.Msg)
	none.Id = 7
	if r := z.Answer(none); r == nil || r.Rcode != dns.RcodeFormatError {
		t.Errorf("no question: %v", r)
	}
	update := new(dns.Msg).SetUpdate("nsnet.internal.")
	if r := z.Answer(update); r == nil || r.Rcode != dns.RcodeNotImplemented {
		t.Errorf("update: %v", r)
	}
}

// FuzzAnswer: no message the server can parse makes it panic.
func FuzzAnswer(f *testing.F) {
	for _, m := range []*dns.Msg{
		new(dns.Msg).SetQuestion("vm1.nsnet.internal.", dns.TypeA),
		new(dns.Msg).SetQuestion("5.0.0.10.in-addr.arpa.", dns.TypePTR),
		new(dns.Msg).SetQuestion("vm1.nsnet.internal.", dns.TypeAAAA),
		new(dns.Msg).SetQuestion("5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.", dns.TypePTR),
	} {
		b, _ := m.Pack()
		f.Add(b)
	}
	z := NewZone("nsnet.internal.")
	z.Add("vm1", netip.MustParseAddr("10.0.0.5"))
	z.Add("vm1", netip.MustParseAddr("2001:db8:1::5"))
	z.Subnets = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24"), netip.MustParsePrefix("2001:db8:1::/64")}
	f.Fuzz(func(t *testing.T, data []byte) {
		m := new(dns.Msg)
		if m.Unpack(data) != nil {
			return
		}
		if r := z.Answer(m); r != nil {
			if _, err := r.Pack(); err != nil {
				t.Fatalf("reply does not pack: %v", err)
			}
		}
	})
}

// TestRefusedWithoutUpstreams: a question that is not the network's gets
// REFUSED when the daemon has no upstream resolvers.
func TestRefusedWithoutUpstreams(t *testing.T) {
	s := &Server{}
	req := new(dns.Msg).SetQuestion("example.com.", dns.TypeA)
	if r := s.answer(req, "udp"); r.Rcode != dns.RcodeRefused {
		t.Errorf("before a zone: %s", dns.RcodeToString[r.Rcode])
	}
	s.SetZone(NewZone("nsnet.internal."))
	if r := s.answer(req, "udp"); r.Rcode != dns.RcodeRefused {
		t.Errorf("no upstreams: %s, want REFUSED", dns.RcodeToString[r.Rcode])
	}
}
