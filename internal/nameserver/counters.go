package nameserver

import (
	"strconv"
	"sync/atomic"

	"github.com/miekg/dns"
)

// Counters are running totals of the answers of a set of servers (an
// agent's, over all its networks): they outlive any one server, so that a
// network's going does not take its share back. Safe for concurrent use;
// the zero value counts from zero. They carry no metrics library: whoever
// exports them reads Answers.
type Counters struct {
	answers [16]atomic.Uint64 // by response code (the header's four bits)
}

// Answers returns the queries answered so far by response code
// ("NOERROR", "NXDOMAIN", "REFUSED", "SERVFAIL"…); codes never sent are
// left out.
func (c *Counters) Answers() map[string]uint64 {
	out := map[string]uint64{}
	for rc := range c.answers {
		if n := c.answers[rc].Load(); n > 0 {
			name, ok := dns.RcodeToString[rc]
			if !ok {
				name = "RCODE" + strconv.Itoa(rc)
			}
			out[name] = n
		}
	}
	return out
}

// answered counts one answer with response code rc (its low four bits:
// what the header carries).
func (c *Counters) answered(rc int) {
	if c != nil {
		c.answers[rc&0xf].Add(1)
	}
}

// CountInto has the server add the answers it sends to c from now on.
func (s *Server) CountInto(c *Counters) { s.counters.Store(c) }
