package nameserver

import (
	"net/netip"
	"testing"

	"github.com/miekg/dns"
)

func TestAnswer(t *testing.T) {
	z := NewZone("lab.example.")
	z.Add("vm1", netip.MustParseAddr("10.0.0.5"))
	z.Add("VM2", netip.MustParseAddr("10.0.0.6"))
	z.Subnets = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24")}
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
		{"no such data", "vm1.lab.example.", dns.TypeAAAA, false, dns.RcodeSuccess, ""},
		{"no such name", "vm9.lab.example.", dns.TypeA, false, dns.RcodeNameError, ""},
		{"reverse", "5.0.0.10.in-addr.arpa.", dns.TypePTR, false, dns.RcodeSuccess, "vm1.lab.example."},
		{"reverse of an unused address", "9.0.0.10.in-addr.arpa.", dns.TypePTR, false, dns.RcodeNameError, ""},
		{"reverse elsewhere", "1.2.0.192.in-addr.arpa.", dns.TypePTR, true, 0, ""},
		{"another domain", "example.com.", dns.TypeA, true, 0, ""},
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
				var got string
				switch rr := reply.Answer[0].(type) {
				case *dns.A:
					got = rr.A.String()
				case *dns.PTR:
					got = rr.Ptr
				}
				if got != tt.answer {
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
	} {
		b, _ := m.Pack()
		f.Add(b)
	}
	z := NewZone("nsnet.internal.")
	z.Add("vm1", netip.MustParseAddr("10.0.0.5"))
	z.Subnets = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24")}
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
