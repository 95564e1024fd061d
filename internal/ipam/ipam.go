// Package ipam does address arithmetic for subnets: default gateways and
// allocation pools, pool validation, and picking a free address or MAC.
//
// It owns the rules of which addresses may be handed out. It must not read or
// write the store: callers pass in what is in use, inside their transaction,
// so that allocation is exactly as consistent as the transaction.
package ipam

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// Range is an inclusive range of addresses.
type Range struct {
	Start, End netip.Addr
}

func (r Range) String() string { return r.Start.String() + "-" + r.End.String() }

// Contains reports whether a is inside r.
func (r Range) Contains(a netip.Addr) bool {
	return r.Start.Compare(a) <= 0 && a.Compare(r.End) <= 0
}

// Overlaps reports whether r and o share an address.
func (r Range) Overlaps(o Range) bool {
	return r.Start.Compare(o.End) <= 0 && o.Start.Compare(r.End) <= 0
}

// Usable is the range of host addresses of a prefix: for IPv4 everything
// but the network and broadcast addresses, for IPv6 everything but the
// prefix itself (IPv6 has no broadcast, so its last address is a host's,
// as in Neutron's generate_pools). ok is false when there are none.
func Usable(p netip.Prefix) (r Range, ok bool) {
	p = p.Masked()
	first := p.Addr()
	last := lastAddr(p)
	if p.Addr().Is4() {
		if p.Bits() >= 31 {
			return Range{}, false
		}
		first, last = first.Next(), last.Prev()
	} else {
		// The subnet-router anycast address (the prefix itself) is never
		// handed out, as in Neutron.
		first = first.Next()
	}
	return Range{first, last}, first.Compare(last) <= 0
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 1 << (7 - i%8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// SpecialRange is a range of special use (RFC 6890) that a subnet's hosts
// cannot simply have addresses in.
type SpecialRange struct {
	Prefix netip.Prefix
	Name   string
}

// Special-use IPv4 ranges.
var (
	ThisNetwork = SpecialRange{netip.MustParsePrefix("0.0.0.0/8"), `"this network"`}
	Loopback    = SpecialRange{netip.MustParsePrefix("127.0.0.0/8"), "loopback"}
	LinkLocal   = SpecialRange{netip.MustParsePrefix("169.254.0.0/16"), "link-local"}
	Multicast   = SpecialRange{netip.MustParsePrefix("224.0.0.0/4"), "multicast"}
	// Reserved holds the limited broadcast address, 255.255.255.255.
	Reserved = SpecialRange{netip.MustParsePrefix("240.0.0.0/4"), "reserved"}
)

// Special-use IPv6 ranges. The loopback and unspecified addresses are
// single /128s, which have no host addresses anyway.
var (
	// LinkLocal6 is every interface's own: the kernel gives each link
	// its fe80:: address, and nsnet serves metadata at fe80::a9fe:a9fe.
	LinkLocal6 = SpecialRange{netip.MustParsePrefix("fe80::/10"), "link-local"}
	Multicast6 = SpecialRange{netip.MustParsePrefix("ff00::/8"), "multicast"}
)

// Special returns the special-use ranges p shares addresses with, in
// address order.
func Special(p netip.Prefix) []SpecialRange {
	var out []SpecialRange
	for _, r := range []SpecialRange{ThisNetwork, Loopback, LinkLocal, Multicast, Reserved, LinkLocal6, Multicast6} {
		if r.Prefix.Overlaps(p) {
			out = append(out, r)
		}
	}
	return out
}

// DefaultGateway is Neutron's default gateway: the first host address.
func DefaultGateway(p netip.Prefix) (netip.Addr, bool) {
	r, ok := Usable(p)
	return r.Start, ok
}

// DefaultPools covers the usable addresses of p, leaving out gw when it is
// valid. Like Neutron, a gateway inside the range splits it in two.
func DefaultPools(p netip.Prefix, gw netip.Addr) []Range {
	r, ok := Usable(p)
	if !ok {
		return nil
	}
	if !gw.IsValid() || !r.Contains(gw) {
		return []Range{r}
	}
	var out []Range
	if r.Start.Compare(gw) < 0 {
		out = append(out, Range{r.Start, gw.Prev()})
	}
	if gw.Compare(r.End) < 0 {
		out = append(out, Range{gw.Next(), r.End})
	}
	return out
}

// ErrExhausted is returned when no address in the pools is free.
var ErrExhausted = errors.New("no free address")

// Allocate returns the first address in pools that used does not hold.
func Allocate(pools []Range, used func(netip.Addr) bool) (netip.Addr, error) {
	for _, r := range pools {
		for a := r.Start; a.IsValid() && a.Compare(r.End) <= 0; a = a.Next() {
			if !used(a) {
				return a, nil
			}
		}
	}
	return netip.Addr{}, ErrExhausted
}

// AllocateLast returns the last address in pools that used does not hold:
// the end a network's service ports (its DHCP port) take addresses from,
// so that they never shift the addresses instances get from the start.
func AllocateLast(pools []Range, used func(netip.Addr) bool) (netip.Addr, error) {
	for i := len(pools) - 1; i >= 0; i-- {
		r := pools[i]
		for a := r.End; a.IsValid() && a.Compare(r.Start) >= 0; a = a.Prev() {
			if !used(a) {
				return a, nil
			}
		}
	}
	return netip.Addr{}, ErrExhausted
}

// MACPrefix is the fixed first half of every MAC nsnet generates. It is
// Neutron's default base_mac, so addresses look familiar to its users; the
// locally-administered bit is set, so it never collides with real hardware.
var MACPrefix = [3]byte{0xfa, 0x16, 0x3e}

// NewMAC returns a random MAC under MACPrefix that taken does not hold.
func NewMAC(taken func(string) bool) (string, error) {
	for range 64 {
		var b [3]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", fmt.Errorf("read random bytes: %w", err)
		}
		mac := net.HardwareAddr{MACPrefix[0], MACPrefix[1], MACPrefix[2], b[0], b[1], b[2]}.String()
		if !taken(mac) {
			return mac, nil
		}
	}
	return "", errors.New("no free MAC address after 64 attempts")
}

// EUI64 is the address a host with MAC mac configures on the /64 prefix p
// by SLAAC (RFC 4291 appendix A): the MAC with ff:fe in its middle and the
// universal/local bit flipped, as the interface identifier.
func EUI64(p netip.Prefix, mac string) (netip.Addr, error) {
	hw, err := net.ParseMAC(mac)
	if err != nil || len(hw) != 6 {
		return netip.Addr{}, fmt.Errorf("%q is not a 48-bit MAC address", mac)
	}
	if !p.Addr().Is6() || p.Bits() > 64 {
		return netip.Addr{}, fmt.Errorf("%s is not an IPv6 prefix of /64 or shorter", p)
	}
	b := p.Masked().Addr().As16()
	id := [8]byte{hw[0] ^ 0x02, hw[1], hw[2], 0xff, 0xfe, hw[3], hw[4], hw[5]}
	copy(b[8:], id[:])
	return netip.AddrFrom16(b), nil
}
