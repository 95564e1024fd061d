package capture

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// ProtoICMPv6 is ICMPv6's next-header value.
const ProtoICMPv6 = 58

// IPv6 extension headers the decoder walks over to reach the transport.
const (
	ext6HopByHop = 0
	ext6Routing  = 43
	ext6Fragment = 44
	ext6AH       = 51
	ext6DestOpts = 60
	ext6NoNext   = 59
)

// ICMPv6 types the summaries name (RFC 4443, RFC 4861).
const (
	ICMPv6Unreachable    = 1
	ICMPv6PacketTooBig   = 2
	ICMPv6TimeExceeded   = 3
	ICMPv6ParamProblem   = 4
	ICMPv6EchoRequest    = 128
	ICMPv6EchoReply      = 129
	ICMPv6RouterSolicit  = 133
	ICMPv6RouterAdvert   = 134
	ICMPv6NeighborSolic  = 135
	ICMPv6NeighborAdvert = 136
	ICMPv6Redirect       = 137
)

// DHCPv6's UDP ports: clients listen on 546, servers and relays on 547.
const (
	DHCPv6ClientPort = 546
	DHCPv6ServerPort = 547
)

// ND is what a neighbour discovery message (router solicitation or
// advertisement, neighbour solicitation or advertisement, redirect)
// says, with its options.
type ND struct {
	// Target is the address a neighbour solicitation asks about, an
	// advertisement answers for, or a redirect's better first hop.
	Target netip.Addr
	// Destination is a redirect's destination.
	Destination netip.Addr
	// Flags: a neighbour advertisement's R(outer), S(olicited),
	// O(verride) as "R", "S", "O"; a router advertisement's M(anaged)
	// and O(ther configuration) as "managed", "other".
	Flags []string
	// Router advertisement fields.
	HopLimit       uint8
	RouterLifetime uint16 // seconds
	Reachable      uint32 // milliseconds
	Retrans        uint32 // milliseconds
	// Options.
	SourceLLA, TargetLLA net.HardwareAddr
	Prefixes             []NDPrefix
	MTU                  uint32
	RDNSS                []netip.Addr
	RDNSSLifetime        uint32
}

// NDPrefix is a router advertisement's prefix information option.
type NDPrefix struct {
	Prefix             netip.Prefix
	OnLink, Autonomous bool
	Valid, Preferred   uint32 // seconds
}

// decodeIPv6 decodes an IPv6 packet: its header, the extension headers
// up to the transport, and the transport; it is also how the packet an
// ICMPv6 error quotes is read, which may be cut short.
func (p *Packet) decodeIPv6(b []byte) {
	if len(b) < 40 || b[0]>>4 != 6 {
		return
	}
	p.FlowLabel = binary.BigEndian.Uint32(b[0:4]) & 0xfffff
	payloadLen := int(binary.BigEndian.Uint16(b[4:6]))
	p.IPLen = 40 + payloadLen
	p.TTL = b[7]
	p.Src = netip.AddrFrom16([16]byte(b[8:24]))
	p.Dst = netip.AddrFrom16([16]byte(b[24:40]))
	rest := b[40:]
	if payloadLen < len(rest) {
		rest = rest[:payloadLen] // Ethernet padding is not payload
	}
	next := b[6]
	first := true // the fragment, if any, carries the transport header
	for {
		switch next {
		case ext6HopByHop, ext6Routing, ext6DestOpts, ext6AH:
			if len(rest) < 8 {
				p.Proto = next
				return
			}
			// Options headers count 8-octet units beyond the first; AH
			// counts 4-octet units, less 2 (RFC 8200 4.3, RFC 4302 2.2).
			n := (int(rest[1]) + 1) * 8
			if next == ext6AH {
				n = (int(rest[1]) + 2) * 4
			}
			if len(rest) < n {
				p.Proto = next
				return
			}
			p.ExtHeaders = append(p.ExtHeaders, next)
			next, rest = rest[0], rest[n:]
			continue
		case ext6Fragment:
			if len(rest) < 8 {
				p.Proto = next
				return
			}
			p.ExtHeaders = append(p.ExtHeaders, next)
			p.IPID = uint16(binary.BigEndian.Uint32(rest[4:8]))
			p.FragOffset = binary.BigEndian.Uint16(rest[2:4]) &^ 7
			first = p.FragOffset == 0
			next, rest = rest[0], rest[8:]
			continue
		}
		break
	}
	p.Proto = next
	if !first || next == ext6NoNext {
		return
	}
	switch next {
	case ProtoTCP, ProtoUDP:
		p.decodeL4(rest)
	case ProtoICMPv6:
		p.decodeICMPv6(rest)
	}
}

// decodeL4 reads a TCP or UDP header (p.Proto says which).
func (p *Packet) decodeL4(l4 []byte) {
	if len(l4) < 8 {
		return
	}
	p.SrcPort = binary.BigEndian.Uint16(l4[0:2])
	p.DstPort = binary.BigEndian.Uint16(l4[2:4])
	if p.Proto == ProtoUDP {
		p.Payload = l4[8:]
		p.decodeVXLAN()
		return
	}
	p.Seq = binary.BigEndian.Uint32(l4[4:8])
	if len(l4) < 20 {
		return // a quoted header: ports and sequence are all there is
	}
	p.Ack = binary.BigEndian.Uint32(l4[8:12])
	p.TCPFlags = l4[13]
	if off := int(l4[12]>>4) * 4; off >= 20 && off <= len(l4) {
		p.Payload = l4[off:]
	}
}

func (p *Packet) decodeICMPv6(b []byte) {
	if len(b) < 4 {
		return
	}
	p.ICMPType, p.ICMPCode = b[0], b[1]
	if len(b) < 8 {
		return
	}
	switch p.ICMPType {
	case ICMPv6EchoRequest, ICMPv6EchoReply:
		p.ICMPID = binary.BigEndian.Uint16(b[4:6])
		p.ICMPSeq = binary.BigEndian.Uint16(b[6:8])
		p.Payload = b[8:]
	case ICMPv6Unreachable, ICMPv6PacketTooBig, ICMPv6TimeExceeded, ICMPv6ParamProblem:
		if p.ICMPType == ICMPv6PacketTooBig {
			p.MTU = binary.BigEndian.Uint32(b[4:8])
		}
		q := &Packet{EtherType: EtherTypeIPv6}
		q.decodeIPv6(b[8:])
		if q.Src.IsValid() {
			p.Quoted = q
		}
	case ICMPv6RouterSolicit:
		p.ND = &ND{}
		p.ND.options(b[8:])
	case ICMPv6RouterAdvert:
		if len(b) < 16 {
			return
		}
		nd := &ND{HopLimit: b[4], RouterLifetime: binary.BigEndian.Uint16(b[6:8]),
			Reachable: binary.BigEndian.Uint32(b[8:12]), Retrans: binary.BigEndian.Uint32(b[12:16])}
		if b[5]&0x80 != 0 {
			nd.Flags = append(nd.Flags, "managed")
		}
		if b[5]&0x40 != 0 {
			nd.Flags = append(nd.Flags, "other")
		}
		nd.options(b[16:])
		p.ND = nd
	case ICMPv6NeighborSolic, ICMPv6NeighborAdvert:
		if len(b) < 24 {
			return
		}
		nd := &ND{Target: netip.AddrFrom16([16]byte(b[8:24]))}
		if p.ICMPType == ICMPv6NeighborAdvert {
			for _, f := range []struct {
				bit  byte
				name string
			}{{0x80, "R"}, {0x40, "S"}, {0x20, "O"}} {
				if b[4]&f.bit != 0 {
					nd.Flags = append(nd.Flags, f.name)
				}
			}
		}
		nd.options(b[24:])
		p.ND = nd
	case ICMPv6Redirect:
		if len(b) < 40 {
			return
		}
		nd := &ND{Target: netip.AddrFrom16([16]byte(b[8:24])), Destination: netip.AddrFrom16([16]byte(b[24:40]))}
		nd.options(b[40:])
		p.ND = nd
	}
}

// options reads ND options (RFC 4861 section 4.6, RFC 8106 for RDNSS);
// it stops at the first malformed one.
func (nd *ND) options(b []byte) {
	for len(b) >= 2 {
		typ, n := b[0], int(b[1])*8
		if n == 0 || n > len(b) {
			return
		}
		o := b[2:n]
		switch typ {
		case 1, 2: // source, target link-layer address
			if len(o) >= 6 {
				lla := net.HardwareAddr(append([]byte(nil), o[:6]...))
				if typ == 1 {
					nd.SourceLLA = lla
				} else {
					nd.TargetLLA = lla
				}
			}
		case 3: // prefix information
			if len(o) >= 30 && o[0] <= 128 {
				pfx := NDPrefix{OnLink: o[1]&0x80 != 0, Autonomous: o[1]&0x40 != 0,
					Valid: binary.BigEndian.Uint32(o[2:6]), Preferred: binary.BigEndian.Uint32(o[6:10])}
				pfx.Prefix = netip.PrefixFrom(netip.AddrFrom16([16]byte(o[14:30])), int(o[0]))
				nd.Prefixes = append(nd.Prefixes, pfx)
			}
		case 5: // MTU
			if len(o) >= 6 {
				nd.MTU = binary.BigEndian.Uint32(o[2:6])
			}
		case 25: // recursive DNS servers
			if len(o) >= 6 {
				nd.RDNSSLifetime = binary.BigEndian.Uint32(o[2:6])
				for a := o[6:]; len(a) >= 16; a = a[16:] {
					nd.RDNSS = append(nd.RDNSS, netip.AddrFrom16([16]byte(a[:16])))
				}
			}
		}
		b = b[n:]
	}
}

// IsIPv6 reports whether the frame carried an IPv6 packet.
func (p *Packet) IsIPv6() bool { return p.EtherType == EtherTypeIPv6 && p.Src.IsValid() }

// IsIP reports whether the frame carried an IPv4 or IPv6 packet.
func (p *Packet) IsIP() bool { return p.IsIPv4() || p.IsIPv6() }

// IsICMP reports whether the packet is ICMP of its IP version: ICMP over
// IPv4, ICMPv6 over IPv6.
func (p *Packet) IsICMP() bool {
	return p.IsIPv4() && p.Proto == ProtoICMP || p.IsIPv6() && p.Proto == ProtoICMPv6
}

// IsEchoRequest and IsEchoReply report an ICMP or ICMPv6 echo.
func (p *Packet) IsEchoRequest() bool {
	return p.IsIPv4() && p.Proto == ProtoICMP && p.ICMPType == ICMPEchoRequest ||
		p.IsIPv6() && p.Proto == ProtoICMPv6 && p.ICMPType == ICMPv6EchoRequest
}

// IsEchoReply: see IsEchoRequest.
func (p *Packet) IsEchoReply() bool {
	return p.IsIPv4() && p.Proto == ProtoICMP && p.ICMPType == ICMPEchoReply ||
		p.IsIPv6() && p.Proto == ProtoICMPv6 && p.ICMPType == ICMPv6EchoReply
}

// IsUnreachable reports an ICMP or ICMPv6 destination unreachable.
func (p *Packet) IsUnreachable() bool {
	return p.IsIPv4() && p.Proto == ProtoICMP && p.ICMPType == ICMPUnreachable ||
		p.IsIPv6() && p.Proto == ProtoICMPv6 && p.ICMPType == ICMPv6Unreachable
}

// IsTimeExceeded reports an ICMP or ICMPv6 time exceeded.
func (p *Packet) IsTimeExceeded() bool {
	return p.IsIPv4() && p.Proto == ProtoICMP && p.ICMPType == ICMPTimeExceed ||
		p.IsIPv6() && p.Proto == ProtoICMPv6 && p.ICMPType == ICMPv6TimeExceeded
}

// UnreachableKind classifies an unreachable answer of either version by
// what it means: "no route" (net, host or address unreachable, no route),
// "no listener" (port unreachable), "refused" (administratively
// prohibited, policy, reject route) or "" (anything else).
func (p *Packet) UnreachableKind() string {
	if !p.IsUnreachable() {
		return ""
	}
	if p.IsIPv6() {
		switch p.ICMPCode {
		case 0, 3: // no route, address unreachable
			return "no route"
		case 4:
			return "no listener"
		case 1, 2, 5, 6: // prohibited, beyond scope, policy, reject route
			return "refused"
		}
		return ""
	}
	switch p.ICMPCode {
	case 0, 1:
		return "no route"
	case 3:
		return "no listener"
	case 9, 10, 13:
		return "refused"
	}
	return ""
}

// UnreachableReason6 names an ICMPv6 destination-unreachable code as
// tcpdump does.
func UnreachableReason6(code uint8) string {
	switch code {
	case 0:
		return "no route"
	case 1:
		return "administratively prohibited"
	case 2:
		return "beyond scope"
	case 3:
		return "address unreachable"
	case 4:
		return "port unreachable"
	case 5:
		return "source address failed policy"
	case 6:
		return "reject route"
	}
	return fmt.Sprintf("unreachable code %d", code)
}

// UnreachableString names p's unreachable code in its IP version's
// terms.
func (p *Packet) UnreachableString() string {
	if p.IsIPv6() {
		return UnreachableReason6(p.ICMPCode)
	}
	return UnreachableReason(p.ICMPCode)
}

func (p *Packet) ip6Summary() string {
	if p.FragOffset != 0 {
		// Only the first fragment carries the transport header.
		return fmt.Sprintf("%s > %s: frag (offset %d) of id %d, %s", p.Src, p.Dst, p.FragOffset, p.IPID, ProtoName(p.Proto))
	}
	if p.Inner != nil {
		return fmt.Sprintf("%s > %s: VXLAN, vni %d: %s > %s, %s", netip.AddrPortFrom(p.Src, p.SrcPort), netip.AddrPortFrom(p.Dst, p.DstPort),
			p.VNI, p.Inner.SrcMAC, p.Inner.DstMAC, p.Inner.Summary())
	}
	switch p.Proto {
	case ProtoTCP:
		return fmt.Sprintf("%s > %s: TCP [%s] seq %d, ack %d, length %d",
			netip.AddrPortFrom(p.Src, p.SrcPort), netip.AddrPortFrom(p.Dst, p.DstPort),
			TCPFlagString(p.TCPFlags), p.Seq, p.Ack, len(p.Payload))
	case ProtoUDP:
		what := "UDP"
		if p.SrcPort == DHCPv6ClientPort || p.SrcPort == DHCPv6ServerPort ||
			p.DstPort == DHCPv6ClientPort || p.DstPort == DHCPv6ServerPort {
			what = "DHCPv6"
			if len(p.Payload) > 0 {
				what += " " + dhcpv6Type(p.Payload[0])
			}
		}
		return fmt.Sprintf("%s > %s: %s, length %d",
			netip.AddrPortFrom(p.Src, p.SrcPort), netip.AddrPortFrom(p.Dst, p.DstPort), what, len(p.Payload))
	case ProtoICMPv6:
		return fmt.Sprintf("%s > %s: ICMP6, %s", p.Src, p.Dst, p.icmp6String())
	}
	return fmt.Sprintf("%s > %s: ip6-proto-%d", p.Src, p.Dst, p.Proto)
}

func (p *Packet) icmp6String() string {
	switch p.ICMPType {
	case ICMPv6EchoRequest:
		return fmt.Sprintf("echo request, id %d, seq %d, length %d", p.ICMPID, p.ICMPSeq, len(p.Payload)+8)
	case ICMPv6EchoReply:
		return fmt.Sprintf("echo reply, id %d, seq %d, length %d", p.ICMPID, p.ICMPSeq, len(p.Payload)+8)
	case ICMPv6Unreachable:
		s := "destination unreachable, " + UnreachableReason6(p.ICMPCode)
		if q := p.Quoted; q != nil {
			s += fmt.Sprintf(" (for %s)", q.flowString())
		}
		return s
	case ICMPv6PacketTooBig:
		s := fmt.Sprintf("packet too big, mtu %d", p.MTU)
		if q := p.Quoted; q != nil {
			s += fmt.Sprintf(" (for %s)", q.flowString())
		}
		return s
	case ICMPv6TimeExceeded:
		s := "time exceeded in-transit"
		if p.ICMPCode == 1 {
			s = "time exceeded in reassembly"
		}
		return s
	case ICMPv6ParamProblem:
		return fmt.Sprintf("parameter problem, code %d", p.ICMPCode)
	case ICMPv6RouterSolicit:
		return "router solicitation" + p.ND.describe(false)
	case ICMPv6RouterAdvert:
		return "router advertisement" + p.ND.describe(true)
	case ICMPv6NeighborSolic:
		if p.ND == nil {
			return "neighbor solicitation"
		}
		return "neighbor solicitation, who has " + p.ND.Target.String() + p.ND.describe(false)
	case ICMPv6NeighborAdvert:
		if p.ND == nil {
			return "neighbor advertisement"
		}
		return "neighbor advertisement, tgt is " + p.ND.Target.String() + p.ND.describe(false)
	case ICMPv6Redirect:
		if p.ND == nil {
			return "redirect"
		}
		return fmt.Sprintf("redirect, %s to %s", p.ND.Destination, p.ND.Target) + p.ND.describe(false)
	case 143:
		return "multicast listener report v2"
	case 130, 131, 132:
		return "multicast listener " + map[uint8]string{130: "query", 131: "report", 132: "done"}[p.ICMPType]
	}
	return fmt.Sprintf("type %d, code %d", p.ICMPType, p.ICMPCode)
}

// describe is an ND message's fields and options, readably: ", hop
// limit 64, flags [managed], router lifetime 1800s, …, prefix
// 2001:db8::/64 (on-link, autonomous, valid 86400s, preferred 14400s),
// mtu 1450, …". ra says the message is a router advertisement.
func (nd *ND) describe(ra bool) string {
	if nd == nil {
		return ""
	}
	var parts []string
	if ra {
		parts = append(parts, fmt.Sprintf("hop limit %d", nd.HopLimit))
	}
	if len(nd.Flags) > 0 {
		parts = append(parts, "flags ["+strings.Join(nd.Flags, ", ")+"]")
	}
	if ra {
		parts = append(parts, fmt.Sprintf("router lifetime %ds, reachable %dms, retrans %dms", nd.RouterLifetime, nd.Reachable, nd.Retrans))
	}
	for _, pfx := range nd.Prefixes {
		var fl []string
		if pfx.OnLink {
			fl = append(fl, "on-link")
		}
		if pfx.Autonomous {
			fl = append(fl, "autonomous")
		}
		fl = append(fl, fmt.Sprintf("valid %ds", pfx.Valid), fmt.Sprintf("preferred %ds", pfx.Preferred))
		parts = append(parts, fmt.Sprintf("prefix %s (%s)", pfx.Prefix, strings.Join(fl, ", ")))
	}
	if nd.MTU != 0 {
		parts = append(parts, fmt.Sprintf("mtu %d", nd.MTU))
	}
	if len(nd.RDNSS) > 0 {
		var a []string
		for _, d := range nd.RDNSS {
			a = append(a, d.String())
		}
		parts = append(parts, fmt.Sprintf("rdnss %s (lifetime %ds)", strings.Join(a, " "), nd.RDNSSLifetime))
	}
	if nd.SourceLLA != nil {
		parts = append(parts, "source link-address "+nd.SourceLLA.String())
	}
	if nd.TargetLLA != nil {
		parts = append(parts, "target link-address "+nd.TargetLLA.String())
	}
	if len(parts) == 0 {
		return ""
	}
	return ", " + strings.Join(parts, ", ")
}

// dhcpv6Type names a DHCPv6 message type (RFC 8415).
func dhcpv6Type(t byte) string {
	names := []string{1: "solicit", 2: "advertise", 3: "request", 4: "confirm", 5: "renew", 6: "rebind",
		7: "reply", 8: "release", 9: "decline", 10: "reconfigure", 11: "information-request",
		12: "relay-forward", 13: "relay-reply"}
	if int(t) < len(names) && names[t] != "" {
		return names[t]
	}
	return fmt.Sprintf("message type %d", t)
}
