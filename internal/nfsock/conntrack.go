package nfsock

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// ctnetlink (linux/netfilter/nfnetlink_conntrack.h): what Tracked and
// ForgetFlows say to the kernel and read back.
const (
	ctMsgGet    = 1 // IPCTNL_MSG_CT_GET
	ctMsgDelete = 2 // IPCTNL_MSG_CT_DELETE

	ctaTupleOrig  = 1  // CTA_TUPLE_ORIG
	ctaTupleReply = 2  // CTA_TUPLE_REPLY
	ctaZone       = 18 // CTA_ZONE
	ctaFilter     = 25 // CTA_FILTER

	ctaTupleIP    = 1 // CTA_TUPLE_IP
	ctaTupleProto = 2 // CTA_TUPLE_PROTO

	ctaIPv4Src = 1 // CTA_IP_V4_SRC
	ctaIPv4Dst = 2
	ctaIPv6Src = 3
	ctaIPv6Dst = 4

	ctaProtoNum     = 1 // CTA_PROTO_NUM
	ctaProtoSrcPort = 2
	ctaProtoDstPort = 3

	ctaFilterOrigFlags  = 1      // CTA_FILTER_ORIG_FLAGS
	ctaFilterReplyFlags = 2      // CTA_FILTER_REPLY_FLAGS
	ctaFilterFlagIPSrc  = 1 << 0 // CTA_FILTER_FLAG_CTA_IP_SRC

)

// countFile is where the kernel shows how many conntrack entries a
// namespace holds: the namespace of whoever opened it, whichever thread
// reads it later.
const countFile = "/proc/sys/net/netfilter/nf_conntrack_count"

// Tracked is how many conntrack entries the namespace holds, every
// family: the count the kernel keeps per namespace, read without a walk
// of its table. ok is false when it cannot tell (conntrack was not loaded
// when the Conn was opened).
func (c *Conn) Tracked() (n uint64, ok bool) {
	if c.ctCount == nil {
		return 0, false
	}
	buf := make([]byte, 24)
	k, err := c.ctCount.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, false
	}
	n, err = strconv.ParseUint(strings.TrimSpace(string(buf[:k])), 10, 64)
	return n, err == nil
}

// Forgot is what a ForgetFlows did: the entries it deleted, and those the
// kernel sent it to judge (what it cost, besides the kernel's own walk).
type Forgot struct {
	Deleted, Examined uint
	// Walks counts the dumps it asked for: each walks the kernel's
	// whole conntrack hash, every namespace's buckets (262,144 on a
	// machine with a few GiB), whatever it returns.
	Walks uint
}

// ForgetFlows deletes the conntrack entries m matches and says how many
// it looked at. With from, it looks only at the entries whose original or
// reply source is one of those addresses — the connections of members
// that left a group — which the kernel picks out of its table (CTA_FILTER)
// so that the rest of it, however large, never reaches the process (an
// empty from: none); with a nil from, at every entry, IPv4 and IPv6. A namespace whose table is empty
// (the kernel's count, read first) costs no dump at all.
func (c *Conn) ForgetFlows(from []netip.Addr, m FlowMatch) (Forgot, error) {
	var res Forgot
	if from != nil && len(from) == 0 {
		return res, nil
	}
	if n, ok := c.Tracked(); ok && n == 0 {
		return res, nil
	}
	type query struct {
		family uint8
		attrs  []byte // the filter; nil: the whole table
	}
	var queries []query
	if from == nil {
		// One walk for both families: without a filter (AF_UNSPEC and
		// no attributes) the kernel returns every entry of the
		// namespace, IPv4 and IPv6, each message naming its family.
		queries = []query{{unix.AF_UNSPEC, nil}}
	}
	for _, a := range from {
		a = a.Unmap()
		family, ipAttr := uint8(unix.AF_INET), uint16(ctaIPv4Src)
		if a.Is6() {
			family, ipAttr = unix.AF_INET6, ctaIPv6Src
		}
		for _, dir := range []uint16{ctaTupleOrig, ctaTupleReply} {
			ae := netlink.NewAttributeEncoder()
			ae.ByteOrder = binary.BigEndian
			ae.Nested(dir, func(ae *netlink.AttributeEncoder) error {
				ae.Nested(ctaTupleIP, func(ae *netlink.AttributeEncoder) error {
					ae.Bytes(ipAttr, a.AsSlice())
					return nil
				})
				return nil
			})
			var orig, reply uint32
			if dir == ctaTupleOrig {
				orig = ctaFilterFlagIPSrc
			} else {
				reply = ctaFilterFlagIPSrc
			}
			ae.Nested(ctaFilter, func(ae *netlink.AttributeEncoder) error {
				// Flags in the host's byte order (nla_get_u32), unlike
				// the tuples'.
				ae.Bytes(ctaFilterOrigFlags, binary.NativeEndian.AppendUint32(nil, orig))
				ae.Bytes(ctaFilterReplyFlags, binary.NativeEndian.AppendUint32(nil, reply))
				return nil
			})
			attrs, err := ae.Encode()
			if err != nil {
				return res, fmt.Errorf("conntrack filter for %s: %w", a, err)
			}
			queries = append(queries, query{family, attrs})
		}
	}
	seen := map[string]bool{} // entries both queries of an address return
	var errs []error
	for _, q := range queries {
		res.Walks++
		msgs, err := c.gen.Execute(ctRequest(ctMsgGet, q.family, netlink.Request|netlink.Dump, q.attrs))
		if err != nil {
			errs = append(errs, fmt.Errorf("read conntrack entries: %w", err))
			continue
		}
		for _, msg := range msgs {
			if len(msg.Data) < 4 {
				continue
			}
			fl, orig, err := parseFlow(msg.Data[4:])
			if err != nil {
				errs = append(errs, err)
				continue
			}
			// The same tuple may be tracked in several zones.
			id := fmt.Sprint(fl.Zone, string(orig))
			if seen[id] {
				continue
			}
			seen[id] = true
			res.Examined++
			if !m(fl) {
				continue
			}
			// The entry as the kernel sent it names it: its tuples,
			// zone and id.
			_, err = c.gen.Execute(ctRequest(ctMsgDelete, uint8(msg.Data[0]), netlink.Request|netlink.Acknowledge, msg.Data[4:]))
			switch {
			case err == nil:
				res.Deleted++
			case !errors.Is(err, unix.ENOENT): // gone meanwhile: as good
				errs = append(errs, fmt.Errorf("delete conntrack entry %+v: %w", fl, err))
			}
		}
	}
	return res, errors.Join(errs...)
}

func ctRequest(msg uint16, family uint8, flags netlink.HeaderFlags, attrs []byte) netlink.Message {
	return netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_CTNETLINK<<8 | msg), Flags: flags},
		// struct nfgenmsg: family, version, resource id.
		Data: append([]byte{family, unix.NFNETLINK_V0, 0, 0}, attrs...),
	}
}

// parseFlow reads a conntrack entry's attributes: its flow, and its
// original tuple's bytes, which identify it.
func parseFlow(b []byte) (Flow, []byte, error) {
	var fl Flow
	var orig []byte
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return fl, nil, fmt.Errorf("conntrack entry: %w", err)
	}
	ad.ByteOrder = binary.BigEndian
	for ad.Next() {
		switch ad.Type() {
		case ctaTupleOrig:
			orig = ad.Bytes()
			ad.Nested(tupleDecoder(&fl.Orig, &fl.Proto))
		case ctaTupleReply:
			ad.Nested(tupleDecoder(&fl.Reply, new(uint8)))
		case ctaZone:
			fl.Zone = ad.Uint16()
		}
	}
	if err := ad.Err(); err != nil {
		return fl, nil, fmt.Errorf("conntrack entry: %w", err)
	}
	return fl, orig, nil
}

func tupleDecoder(t *Tuple, proto *uint8) func(*netlink.AttributeDecoder) error {
	return func(ad *netlink.AttributeDecoder) error {
		for ad.Next() {
			switch ad.Type() {
			case ctaTupleIP:
				ad.Nested(func(ad *netlink.AttributeDecoder) error {
					for ad.Next() {
						a, _ := netip.AddrFromSlice(ad.Bytes())
						switch ad.Type() {
						case ctaIPv4Src, ctaIPv6Src:
							t.Src = a.Unmap()
						case ctaIPv4Dst, ctaIPv6Dst:
							t.Dst = a.Unmap()
						}
					}
					return nil
				})
			case ctaTupleProto:
				ad.Nested(func(ad *netlink.AttributeDecoder) error {
					for ad.Next() {
						switch ad.Type() {
						case ctaProtoNum:
							*proto = ad.Uint8()
						case ctaProtoSrcPort:
							t.SrcPort = ad.Uint16()
						case ctaProtoDstPort:
							t.DstPort = ad.Uint16()
						}
					}
					return nil
				})
			}
		}
		return nil
	}
}
