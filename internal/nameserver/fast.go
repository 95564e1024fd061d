package nameserver

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"strings"
	"sync"

	"github.com/miekg/dns"
)

// The fast path answers the common question, an A or AAAA query over UDP
// for a name in the zone's domain, straight from the datagram's bytes:
// no message decoded, no reply built from records and packed, no
// goroutine. It gives the very bytes the general path (miekg/dns's server,
// Zone.Answer, Msg.Pack) would send, which FuzzFastAnswer checks, and
// leaves everything else to that path: a question it does not recognise
// exactly (EDNS, compression, escapes, other classes, reverse names,
// names outside the domain) is not an error, only not its to answer.

// fastZone is a zone's forward names, prepared once per zone the server
// is given: a zone is never modified after SetZone, and a new one
// replaces it whole.
type fastZone struct {
	zone *Zone
	once sync.Once
	// domain is the zone's domain; empty when the fast path must not
	// answer for the zone at all (a domain under arpa., whose names the
	// general path may read as reverse ones).
	domain string
}

// prepare checks the zone once; the maps are read as they are.
func (f *fastZone) prepare() {
	f.once.Do(func() {
		d := f.zone.Domain
		if d != "" && d != "." && !strings.HasSuffix(d, "arpa.") && d == strings.ToLower(d) {
			f.domain = d
		}
	})
}

// maxName is the longest name in wire form (RFC 1035 3.1).
const maxName = 255

// fastAnswer appends to out the reply to the query req, a whole UDP
// datagram, and reports whether it did; when it did not, the query is the
// general path's.
func (f *fastZone) fastAnswer(req, out []byte) ([]byte, bool) {
	f.prepare()
	if f.domain == "" || len(req) < 12+1+4 {
		return out, false
	}
	// Header: a query (QR 0, opcode 0) with one question and nothing
	// else; anything more (EDNS's OPT record included) goes the general
	// way.
	if req[2]&0xf8 != 0 || binary.BigEndian.Uint16(req[4:]) != 1 || binary.BigEndian.Uint64(req[4:12])&0xffffffffffff != 0 {
		return out, false
	}
	// The question's name: plain labels of letters, digits, '-' and
	// '_', which print as they are (no escape) and compare in lower
	// case; lowered into name, dot separated, as the zone keeps names.
	var buf [maxName + 1]byte
	name := buf[:0]
	off := 12
	for {
		if off >= len(req) {
			return out, false
		}
		l := int(req[off])
		off++
		if l == 0 {
			break
		}
		if l > 63 || off+l > len(req) || off-12+l+1 > maxName {
			return out, false
		}
		for _, c := range req[off : off+l] {
			switch {
			case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
			case c >= 'A' && c <= 'Z':
				c += 'a' - 'A'
			default:
				return out, false
			}
			name = append(name, c)
		}
		name = append(name, '.')
		off += l
	}
	nameEnd := off
	if len(name) == 0 || nameEnd-12 > maxName || len(req) != off+4 {
		return out, false
	}
	qtype := binary.BigEndian.Uint16(req[off:])
	if binary.BigEndian.Uint16(req[off+2:]) != dns.ClassINET {
		return out, false
	}
	// Names in the domain only; reverse names are the general path's.
	n := len(name)
	d := f.domain
	inDomain := string(name) == d || n > len(d) && name[n-len(d)-1] == '.' && string(name[n-len(d):]) == d
	if !inDomain || bytes.HasSuffix(name, []byte(".arpa.")) {
		return out, false
	}

	addrs, exists := f.zone.A.Get(string(name))
	rcode := byte(dns.RcodeSuccess)
	if !exists && string(name) != d {
		rcode = dns.RcodeNameError
	}
	out = append(out, req[0], req[1],
		0x80|0x04|req[2]&0x01, // QR, AA, RD copied
		req[3]&0x10|rcode,     // CD copied
		0, 1, 0, 0, 0, 0, 0, 0)
	out = append(out, req[12:off+4]...) // the question as asked
	count := 0
	if rcode == dns.RcodeSuccess {
		for _, a := range addrs {
			var typ uint16
			switch {
			case a.Is4() && (qtype == dns.TypeA || qtype == dns.TypeANY):
				typ = dns.TypeA
			case a.Is6() && (qtype == dns.TypeAAAA || qtype == dns.TypeANY):
				typ = dns.TypeAAAA
			default:
				continue
			}
			out = appendRR(out, req[12:nameEnd], typ, a)
			count++
		}
	}
	binary.BigEndian.PutUint16(out[6:], uint16(count))
	return out, true
}

// appendRR appends an A or AAAA record of name (wire form, uncompressed
// as the general path packs it) holding a.
func appendRR(out, name []byte, typ uint16, a netip.Addr) []byte {
	out = append(out, name...)
	out = binary.BigEndian.AppendUint16(out, typ)
	out = binary.BigEndian.AppendUint16(out, dns.ClassINET)
	out = binary.BigEndian.AppendUint32(out, TTL)
	if typ == dns.TypeA {
		b := a.As4()
		out = binary.BigEndian.AppendUint16(out, 4)
		return append(out, b[:]...)
	}
	b := a.As16()
	out = binary.BigEndian.AppendUint16(out, 16)
	return append(out, b[:]...)
}
