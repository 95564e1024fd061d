package nfsock

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	vnl "github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Element is one entry of a set or map as the kernel holds it: its key
// (and, in interval sets, the last key of the interval) and, in maps, its
// value — in verdict maps, the chain it jumps, or goes, to.
type Element struct {
	Key, KeyEnd, Val []byte
	Chain            string
	GoTo             bool
}

// Equal reports whether e and o are the same element.
func (e Element) Equal(o Element) bool {
	return bytes.Equal(e.Key, o.Key) && bytes.Equal(e.KeyEnd, o.KeyEnd) && bytes.Equal(e.Val, o.Val) &&
		e.Chain == o.Chain && e.GoTo == o.GoTo
}

// nft is e as google/nftables sends it.
func (e Element) nft() nftables.SetElement {
	el := nftables.SetElement{Key: e.Key, KeyEnd: e.KeyEnd, Val: e.Val}
	if e.Chain != "" {
		el.VerdictData = &expr.Verdict{Kind: expr.VerdictJump, Chain: e.Chain}
		if e.GoTo {
			el.VerdictData.Kind = expr.VerdictGoto
		}
	}
	return el
}

// Elements reads the elements of the live set s, as Equal compares them
// with the ones sent: the kernel leaves out the end of an interval element
// that is a single key, and gives a verdict map's data as the verdict's
// attributes, which google/nftables leaves undecoded.
func (c *Conn) Elements(s *nftables.Set) ([]Element, error) {
	els, err := c.GetSetElements(s)
	if err != nil {
		return nil, fmt.Errorf("list elements of %s: %w", s.Name, err)
	}
	out := make([]Element, 0, len(els))
	for _, e := range els {
		el := Element{Key: e.Key, KeyEnd: e.KeyEnd, Val: e.Val}
		switch {
		case !s.Interval:
			el.KeyEnd = nil
		case el.KeyEnd == nil:
			el.KeyEnd = el.Key
		}
		if _, data := liveTypes(s); data.Name == nftables.TypeVerdict.Name {
			var code uint32
			code, el.Chain = decodeVerdict(e.Val)
			el.Val, el.GoTo = nil, int32(code) == unix.NFT_GOTO
		}
		if len(el.Val) == 0 {
			el.Val = nil
		}
		out = append(out, el)
	}
	return out, nil
}

func decodeVerdict(b []byte) (code uint32, chain string) {
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return 0, ""
	}
	ad.ByteOrder = binary.BigEndian
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_VERDICT_CODE:
			code = ad.Uint32()
		case unix.NFTA_VERDICT_CHAIN:
			chain = ad.String()
		}
	}
	return code, chain
}

// elementsPerMessage bounds the elements of one netlink message: their
// list is one netlink attribute, whose length is 16 bits, so one message
// cannot carry more than 64 KiB of them. The batch, made of many such
// messages, stays one transaction.
const elementsPerMessage = 256

// AddElements queues the addition of els to s.
func (c *Conn) AddElements(s *nftables.Set, els []Element) error {
	for chunk := range slices.Chunk(els, elementsPerMessage) {
		if err := c.SetAddElements(s, nftElements(chunk)); err != nil {
			return fmt.Errorf("add elements to %s: %w", s.Name, err)
		}
	}
	return nil
}

// DeleteElements queues the deletion of els from s.
func (c *Conn) DeleteElements(s *nftables.Set, els []Element) error {
	for chunk := range slices.Chunk(els, elementsPerMessage) {
		if err := c.SetDeleteElements(s, nftElements(chunk)); err != nil {
			return fmt.Errorf("delete elements from %s: %w", s.Name, err)
		}
	}
	return nil
}

func nftElements(els []Element) []nftables.SetElement {
	out := make([]nftables.SetElement, len(els))
	for i, e := range els {
		out[i] = e.nft()
	}
	return out
}

// IfName is an interface name as the kernel compares it: IFNAMSIZ bytes,
// zero padded.
func IfName(name string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return b
}

// NameOf reads an interface name back from IfName's bytes.
func NameOf(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// Concat joins fields the way the kernel lays out a concatenated key:
// each field starts on a 4-byte register boundary.
func Concat(fields ...[]byte) []byte {
	var b []byte
	for _, f := range fields {
		b = append(b, f...)
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
	}
	return b
}

// Tuple is one direction of a conntrack entry.
type Tuple struct {
	Src, Dst         netip.Addr
	SrcPort, DstPort uint16
}

// Flow is a conntrack entry: its protocol, its original direction and its
// reply's, where the translations show (the reply of a DNATed connection
// comes from the translated destination, that of a SNATed one goes to the
// translated source), and its conntrack zone (0, the default, unless a
// rule set another).
type Flow struct {
	Proto       uint8
	Orig, Reply Tuple
	Zone        uint16
}

// FlowMatch selects conntrack entries: those of connections that a
// removed translation or rule let through and nothing lets through now,
// which are forgotten so that the removal takes effect at once. It
// implements netlink.CustomConntrackFilter.
type FlowMatch func(Flow) bool

// MatchConntrackFlow implements netlink.CustomConntrackFilter.
func (m FlowMatch) MatchConntrackFlow(f *vnl.ConntrackFlow) bool {
	var fl Flow
	for _, t := range []struct {
		from *vnl.IPTuple
		to   *Tuple
	}{{&f.Forward, &fl.Orig}, {&f.Reverse, &fl.Reply}} {
		src, ok1 := netip.AddrFromSlice(t.from.SrcIP)
		dst, ok2 := netip.AddrFromSlice(t.from.DstIP)
		if !ok1 || !ok2 {
			return false
		}
		*t.to = Tuple{src.Unmap(), dst.Unmap(), t.from.SrcPort, t.from.DstPort}
	}
	fl.Proto, fl.Zone = f.Forward.Protocol, f.Zone
	return m(fl)
}

// Forget deletes the conntrack entries m matches, IPv4 and IPv6, and
// returns how many. It reads the namespace's whole conntrack table, when
// it holds any: its callers ask only when something was removed.
func (c *Conn) Forget(m FlowMatch) (uint, error) {
	res, err := c.ForgetFlows(nil, m)
	return res.Deleted, err
}
