package nat

import (
	"encoding/binary"
	"net/netip"

	"github.com/nsnet/nsnet/internal/nfsock"
)

// Conntrack keeps the translation of every established connection, which
// is what lets a batch change the maps without disturbing them. The same
// memory would keep a disassociated floating IP reaching its instance, and
// the instance reaching out from it, until each connection timed out. So
// once a batch has removed floating IPs, port forwards or published ports,
// the connections they translated are forgotten, as Neutron's L3 agent does
// with conntrack -D: their next packet is a new connection, judged by the
// table as it is now.

type portKey struct {
	addr  netip.Addr
	proto uint8
	port  uint16
}

// removedFlows matches the conntrack entries of the mappings d deletes: a
// connection to a floating address (inbound, or hairpin), one SNATed to it
// (its reply goes to the floating address), one to a removed forward, or
// one to a removed published port that went to its instance. It is nil if
// d deletes no mapping.
func removedFlows(d delta) nfsock.FlowMatch {
	floating := map[netip.Addr]bool{} // floating addresses
	forwards := map[portKey]bool{}    // external address . protocol . port
	publish := map[portKey]bool{}     // protocol . port . internal address
	for _, e := range d.del[setFloatingDNAT] {
		if len(e.Key) == 4 {
			floating[addrFrom(e.Key)] = true
		}
	}
	for _, e := range d.del[setPortForward] {
		if len(e.Key) == 12 {
			forwards[portKey{addrFrom(e.Key), e.Key[4], binary.BigEndian.Uint16(e.Key[8:])}] = true
		}
	}
	for _, e := range d.del[setPublish] {
		if len(e.Key) == 8 && len(e.Val) == 8 {
			publish[portKey{addrFrom(e.Val), e.Key[0], binary.BigEndian.Uint16(e.Key[4:])}] = true
		}
	}
	if len(floating)+len(forwards)+len(publish) == 0 {
		return nil
	}
	return func(f nfsock.Flow) bool {
		return floating[f.Orig.Dst] || floating[f.Reply.Dst] ||
			forwards[portKey{f.Orig.Dst, f.Proto, f.Orig.DstPort}] ||
			publish[portKey{f.Reply.Src, f.Proto, f.Orig.DstPort}]
	}
}
