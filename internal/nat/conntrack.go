package nat

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"

	vnl "github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Conntrack keeps the translation of every established connection, which
// is what lets a batch change the maps without disturbing them. The same
// memory would keep a disassociated floating IP reaching its instance, and
// the instance reaching out from it, until each connection timed out. So
// once a batch has removed floating IPs, port forwards or published ports,
// the connections they translated are forgotten, as Neutron's L3 agent does
// with conntrack -D: their next packet is a new connection, judged by the
// table as it is now.

// flowMatcher matches the conntrack entries of removed mappings.
type flowMatcher struct {
	floating map[netip.Addr]bool // floating addresses
	forwards map[portKey]bool    // external address . protocol . port
	publish  map[portKey]bool    // protocol . port . internal address
}

type portKey struct {
	addr  netip.Addr
	proto uint8
	port  uint16
}

// removedFlows returns the matcher for the mappings d deletes, or nil if it
// deletes none.
func removedFlows(d delta) *flowMatcher {
	m := &flowMatcher{floating: map[netip.Addr]bool{}, forwards: map[portKey]bool{}, publish: map[portKey]bool{}}
	for _, e := range d.del[setFloatingDNAT] {
		if len(e.key) == 4 {
			m.floating[addrFrom(e.key)] = true
		}
	}
	for _, e := range d.del[setPortForward] {
		if len(e.key) == 12 {
			m.forwards[portKey{addrFrom(e.key), e.key[4], binary.BigEndian.Uint16(e.key[8:])}] = true
		}
	}
	for _, e := range d.del[setPublish] {
		if len(e.key) == 8 && len(e.val) == 8 {
			m.publish[portKey{addrFrom(e.val), e.key[0], binary.BigEndian.Uint16(e.key[4:])}] = true
		}
	}
	if len(m.floating)+len(m.forwards)+len(m.publish) == 0 {
		return nil
	}
	return m
}

// MatchConntrackFlow implements netlink.CustomConntrackFilter: a
// connection to a floating address (inbound, or hairpin), one SNATed to it
// (its reply goes to the floating address), one to a removed forward, or
// one to a removed published port that went to its instance.
func (m *flowMatcher) MatchConntrackFlow(f *vnl.ConntrackFlow) bool {
	origDst, ok1 := ipAddr(f.Forward.DstIP)
	replyDst, ok2 := ipAddr(f.Reverse.DstIP)
	replySrc, ok3 := ipAddr(f.Reverse.SrcIP)
	if !ok1 || !ok2 || !ok3 {
		return false
	}
	return m.floating[origDst] || m.floating[replyDst] ||
		m.forwards[portKey{origDst, f.Forward.Protocol, f.Forward.DstPort}] ||
		m.publish[portKey{replySrc, f.Forward.Protocol, f.Forward.DstPort}]
}

func ipAddr(ip net.IP) (netip.Addr, bool) {
	a, ok := netip.AddrFromSlice(ip)
	return a.Unmap(), ok
}

// forgetFlows deletes the conntrack entries m matches and returns how
// many. It reads the whole conntrack table of the namespace: it runs only
// when mappings went away, never when one is added.
func (s *sockets) forgetFlows(m *flowMatcher) (uint, error) {
	n, err := s.ct.ConntrackDeleteFilters(vnl.ConntrackTable, unix.AF_INET, m)
	if err != nil {
		return n, fmt.Errorf("forget connections of removed mappings: %w", err)
	}
	return n, nil
}
