package dhcp

import (
	"sync/atomic"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// Counters are running totals of the replies of a set of servers (an
// agent's, over all its networks): they outlive any one server, so that a
// network's going does not take its share back. Safe for concurrent use;
// the zero value counts from zero. They carry no metrics library: whoever
// exports them reads Replies.
type Counters struct {
	replies [256]atomic.Uint64 // by DHCP message type
}

// Replies returns the replies sent so far by message type ("OFFER",
// "ACK", "NAK"); types never sent are left out.
func (c *Counters) Replies() map[string]uint64 {
	out := map[string]uint64{}
	for t := range c.replies {
		if n := c.replies[t].Load(); n > 0 {
			out[dhcpv4.MessageType(t).String()] = n
		}
	}
	return out
}

func (c *Counters) sent(r *dhcpv4.DHCPv4) {
	if c != nil {
		c.replies[r.MessageType()].Add(1)
	}
}

// CountInto has the server add the replies it sends to c from now on.
func (s *Server) CountInto(c *Counters) { s.counters.Store(c) }
