// Package nameserver is nsnet's DNS server for one network: it answers A,
// AAAA and PTR (in-addr.arpa and ip6.arpa) queries for the names of the
// network's instances and ports in the network's dns_domain, as Neutron's
// dnsmasq does (and A/AAAA for the single names the zone adds outside it:
// ports' dns_name in their own dns_domain), from the DHCP port's addresses in the qdhcp
// namespace, and forwards any other question to the upstream resolvers the
// daemon was given (or refuses it when there are none).
//
// It owns the DNS protocol side: deciding the answer (Zone.Answer, pure,
// and a fast path giving the same bytes for the common A/AAAA question
// over UDP, fast.go) and the sockets (Server), opened inside the
// network's namespace through internal/netns. Forwarded queries leave from the daemon's own namespace,
// where the host's resolvers are reachable. It must not read the store or
// program the kernel: the agent hands it a Zone whenever the network's
// ports change.
package nameserver

import (
	"net/netip"
	"slices"
	"strings"

	"github.com/miekg/dns"

	"github.com/nsnet/nsnet/internal/pmap"
)

// TTL of the answers nsnet is authoritative for: short, since ports come
// and go.
const TTL = 30

// Zone is what one network's server knows. A server reads it while the
// agent makes the next one: its maps are immutable (pmap), so that the
// next zone shares all but what changed with this one.
type Zone struct {
	// Domain is the network's DNS domain, fully qualified, lower case.
	Domain string
	// A holds the addresses of each fully qualified, lower-case name:
	// IPv4 ones are its A records, IPv6 ones its AAAA records.
	A pmap.Map[string, []netip.Addr]
	// PTR holds the names of each address.
	PTR pmap.Map[netip.Addr, []string]
	// Subnets are the network's subnets, IPv4 and IPv6: reverse names in
	// them are nsnet's to answer (NXDOMAIN when unknown), never
	// forwarded.
	Subnets []netip.Prefix
}

// NewZone returns an empty zone for domain.
func NewZone(domain string) *Zone {
	return &Zone{Domain: dns.Fqdn(strings.ToLower(domain))}
}

// Add records that host (a single label) in the zone's domain has addr,
// an IPv4 address (answered as A) or an IPv6 one (AAAA). It changes z in
// place: only for a zone no server has yet (a Draft builds big ones).
func (z *Zone) Add(host string, addr netip.Addr) {
	name, addr := z.hostName(host), addr.Unmap().WithZone("")
	as, _ := z.A.Get(name)
	z.A = z.A.Set(name, append(slices.Clip(as), addr))
	ns, _ := z.PTR.Get(addr)
	z.PTR = z.PTR.Set(addr, append(slices.Clip(ns), name))
}

// AddName records that fqdn, a name outside the zone's domain, has addr:
// nsnet answers that one name (a port's dns_name in its own dns_domain),
// not the rest of its domain, and gives addr no PTR of it.
func (z *Zone) AddName(fqdn string, addr netip.Addr) {
	name := dns.Fqdn(strings.ToLower(fqdn))
	as, _ := z.A.Get(name)
	z.A = z.A.Set(name, append(slices.Clip(as), addr.Unmap().WithZone("")))
}

func (z *Zone) hostName(host string) string { return strings.ToLower(host) + "." + z.Domain }

// Draft is a zone being built, in Go maps: adding every port of a network
// to a Zone would copy a path of its maps per name.
type Draft struct {
	Domain string
	// A and PTR are Zone's, as Add and AddName fill them.
	A   map[string][]netip.Addr
	PTR map[netip.Addr][]string
}

// NewDraft returns an empty draft of a zone for domain.
func NewDraft(domain string) *Draft {
	return &Draft{Domain: dns.Fqdn(strings.ToLower(domain)), A: map[string][]netip.Addr{}, PTR: map[netip.Addr][]string{}}
}

// Add is Zone.Add.
func (d *Draft) Add(host string, addr netip.Addr) {
	addr = addr.Unmap().WithZone("")
	name := strings.ToLower(host) + "." + d.Domain
	d.A[name] = append(d.A[name], addr)
	d.PTR[addr] = append(d.PTR[addr], name)
}

// AddName is Zone.AddName.
func (d *Draft) AddName(fqdn string, addr netip.Addr) {
	name := dns.Fqdn(strings.ToLower(fqdn))
	d.A[name] = append(d.A[name], addr.Unmap().WithZone(""))
}

// Zone is the zone d drafted, with subnets; d must not be used after.
func (d *Draft) Zone(subnets []netip.Prefix) *Zone {
	return &Zone{Domain: d.Domain, A: pmap.From(d.A), PTR: pmap.From(d.PTR), Subnets: subnets}
}

// Answer returns the reply to req, or nil when the question is not the
// zone's and must be forwarded.
func (z *Zone) Answer(req *dns.Msg) *dns.Msg {
	reply := new(dns.Msg)
	if req.Opcode != dns.OpcodeQuery {
		return reply.SetRcode(req, dns.RcodeNotImplemented)
	}
	if len(req.Question) != 1 {
		return reply.SetRcode(req, dns.RcodeFormatError)
	}
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	if q.Qclass != dns.ClassINET {
		return nil
	}
	if addr, ok := reverseAddr(name); ok {
		return z.answerPTR(req, q, addr)
	}
	if _, named := z.A.Get(name); !named && name != z.Domain && !strings.HasSuffix(name, "."+z.Domain) {
		return nil
	}
	reply.SetReply(req)
	reply.Authoritative = true
	addrs, exists := z.A.Get(name)
	if !exists && name != z.Domain {
		reply.Rcode = dns.RcodeNameError
		return reply
	}
	for _, a := range addrs {
		switch {
		case a.Is4() && (q.Qtype == dns.TypeA || q.Qtype == dns.TypeANY):
			reply.Answer = append(reply.Answer, &dns.A{
				Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: TTL},
				A:   a.AsSlice(),
			})
		case a.Is6() && (q.Qtype == dns.TypeAAAA || q.Qtype == dns.TypeANY):
			reply.Answer = append(reply.Answer, &dns.AAAA{
				Hdr:  dns.RR_Header{Name: q.Name, Rrtype: dns.TypeAAAA, Class: dns.ClassINET, Ttl: TTL},
				AAAA: a.AsSlice(),
			})
		}
	}
	return reply // other types: the name exists, with no such data
}

func (z *Zone) answerPTR(req *dns.Msg, q dns.Question, addr netip.Addr) *dns.Msg {
	names, ok := z.PTR.Get(addr)
	if !ok {
		inside := false
		for _, p := range z.Subnets {
			inside = inside || p.Contains(addr)
		}
		if !inside {
			return nil
		}
	}
	reply := new(dns.Msg).SetReply(req)
	reply.Authoritative = true
	if !ok {
		reply.Rcode = dns.RcodeNameError
		return reply
	}
	if q.Qtype == dns.TypePTR || q.Qtype == dns.TypeANY {
		for _, n := range names {
			reply.Answer = append(reply.Answer, &dns.PTR{
				Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypePTR, Class: dns.ClassINET, Ttl: TTL},
				Ptr: n,
			})
		}
	}
	return reply
}

// reverseAddr parses a reverse name of a whole address: an IPv4 one,
// d.c.b.a.in-addr.arpa., or an IPv6 one, 32 nibbles (least significant
// first) under ip6.arpa. (lower case).
func reverseAddr(name string) (netip.Addr, bool) {
	if rest, ok := strings.CutSuffix(name, ".ip6.arpa."); ok {
		return reverseAddr6(rest)
	}
	rest, ok := strings.CutSuffix(name, ".in-addr.arpa.")
	if !ok {
		return netip.Addr{}, false
	}
	labels := strings.Split(rest, ".")
	if len(labels) != 4 {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(labels[3] + "." + labels[2] + "." + labels[1] + "." + labels[0])
	if err != nil || !a.Is4() {
		return netip.Addr{}, false
	}
	return a, true
}

func reverseAddr6(nibbles string) (netip.Addr, bool) {
	// "b.a.9.8.….8.b.d.0.1.0.0.2": 32 hex digits, one per label.
	if len(nibbles) != 63 {
		return netip.Addr{}, false
	}
	var b [16]byte
	for i := 0; i < 32; i++ {
		c := nibbles[2*i]
		if i < 31 && nibbles[2*i+1] != '.' {
			return netip.Addr{}, false
		}
		var v byte
		switch {
		case c >= '0' && c <= '9':
			v = c - '0'
		case c >= 'a' && c <= 'f':
			v = c - 'a' + 10
		default:
			return netip.Addr{}, false
		}
		// Label i is nibble 31-i of the address.
		n := 31 - i
		if n%2 == 0 {
			b[n/2] |= v << 4
		} else {
			b[n/2] |= v
		}
	}
	return netip.AddrFrom16(b), true
}
