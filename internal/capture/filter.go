package capture

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Filter decides which packets a capture keeps.
type Filter func(*Packet) bool

// FilterHelp documents the filter language; the CLI shows it.
const FilterHelp = `A filter is a small subset of tcpdump's language, evaluated by nsnet on
decoded packets (not compiled to BPF):

  protocol      ip (IPv4), ip6, arp, icmp (over IPv4), icmp6, tcp, udp
                (tcp and udp over either IP version)
  host ADDR     IPv4 or IPv6 source or destination (ARP: sender or
                target) is ADDR
  net CIDR      source or destination is in CIDR (IPv4 or IPv6)
  port N        TCP or UDP source or destination port is N
  src/dst       before host, net or port: only that side ("src host 10.0.0.5")
  not, and, or  with the usual precedence (not, then and, then or);
                !, && and || too, and parentheses to group

Examples: "icmp", "tcp and port 80", "host 10.0.0.5 and not arp",
"udp and (dst port 53 or dst port 5353)", "icmp6 and net fe80::/10",
"ip6 and port 547".`

// ParseFilter compiles expr. The empty expression keeps everything.
func ParseFilter(expr string) (Filter, error) {
	p := &filterParser{toks: tokenize(expr)}
	if len(p.toks) == 0 {
		return func(*Packet) bool { return true }, nil
	}
	f, err := p.or()
	if err != nil {
		return nil, fmt.Errorf("filter %q: %w", expr, err)
	}
	if p.pos < len(p.toks) {
		return nil, fmt.Errorf("filter %q: unexpected %q", expr, p.toks[p.pos])
	}
	return f, nil
}

func tokenize(expr string) []string {
	for _, op := range []string{"(", ")", "!"} {
		expr = strings.ReplaceAll(expr, op, " "+op+" ")
	}
	return strings.Fields(expr)
}

type filterParser struct {
	toks []string
	pos  int
}

func (p *filterParser) peek() string {
	if p.pos < len(p.toks) {
		return p.toks[p.pos]
	}
	return ""
}

func (p *filterParser) next() string {
	t := p.peek()
	if t != "" {
		p.pos++
	}
	return t
}

func (p *filterParser) or() (Filter, error) {
	left, err := p.and()
	if err != nil {
		return nil, err
	}
	for p.peek() == "or" || p.peek() == "||" {
		p.next()
		right, err := p.and()
		if err != nil {
			return nil, err
		}
		l := left
		left = func(pk *Packet) bool { return l(pk) || right(pk) }
	}
	return left, nil
}

func (p *filterParser) and() (Filter, error) {
	left, err := p.unary()
	if err != nil {
		return nil, err
	}
	for p.peek() == "and" || p.peek() == "&&" {
		p.next()
		right, err := p.unary()
		if err != nil {
			return nil, err
		}
		l := left
		left = func(pk *Packet) bool { return l(pk) && right(pk) }
	}
	return left, nil
}

func (p *filterParser) unary() (Filter, error) {
	switch t := p.next(); t {
	case "not", "!":
		f, err := p.unary()
		if err != nil {
			return nil, err
		}
		return func(pk *Packet) bool { return !f(pk) }, nil
	case "(":
		f, err := p.or()
		if err != nil {
			return nil, err
		}
		if p.next() != ")" {
			return nil, fmt.Errorf("missing )")
		}
		return f, nil
	case "":
		return nil, fmt.Errorf("expression ends too early")
	default:
		return p.primitive(t)
	}
}

// side is which addresses or ports a primitive looks at.
type side int

const (
	either side = iota
	srcSide
	dstSide
)

func (p *filterParser) primitive(t string) (Filter, error) {
	switch t {
	case "ip":
		return func(pk *Packet) bool { return pk.IsIPv4() }, nil
	case "ip6":
		return func(pk *Packet) bool { return pk.IsIPv6() }, nil
	case "arp":
		return func(pk *Packet) bool { return pk.EtherType == EtherTypeARP }, nil
	case "icmp":
		return func(pk *Packet) bool { return pk.IsIPv4() && pk.Proto == ProtoICMP }, nil
	case "icmp6":
		return func(pk *Packet) bool { return pk.IsIPv6() && pk.Proto == ProtoICMPv6 }, nil
	case "tcp":
		return protoIs(ProtoTCP), nil
	case "udp":
		return protoIs(ProtoUDP), nil
	}
	s := either
	switch t {
	case "src":
		s, t = srcSide, p.next()
	case "dst":
		s, t = dstSide, p.next()
	}
	if t == "" {
		return nil, fmt.Errorf("expression ends too early")
	}
	if t != "host" && t != "net" && t != "port" {
		return nil, fmt.Errorf("unknown word %q (want ip, ip6, arp, icmp, icmp6, tcp, udp, host, net, port, src, dst, not, and, or)", t)
	}
	arg := p.next()
	if arg == "" {
		return nil, fmt.Errorf("%q needs a value", t)
	}
	switch t {
	case "host":
		a, err := netip.ParseAddr(arg)
		if err != nil || a.Zone() != "" {
			return nil, fmt.Errorf("host %q: want an IPv4 or IPv6 address", arg)
		}
		a = a.Unmap()
		return addrMatch(s, func(x netip.Addr) bool { return x == a }), nil
	case "net":
		n, err := netip.ParsePrefix(arg)
		if err != nil {
			return nil, fmt.Errorf("net %q: want an IPv4 or IPv6 prefix such as 10.0.0.0/24 or 2001:db8::/64", arg)
		}
		n = n.Masked()
		return addrMatch(s, n.Contains), nil
	case "port":
		v, err := strconv.ParseUint(arg, 10, 16)
		if err != nil {
			return nil, fmt.Errorf("port %q: want a number from 0 to 65535", arg)
		}
		port := uint16(v)
		return func(pk *Packet) bool {
			if pk.Proto != ProtoTCP && pk.Proto != ProtoUDP || !pk.IsIP() {
				return false
			}
			return s != dstSide && pk.SrcPort == port || s != srcSide && pk.DstPort == port
		}, nil
	}
	return nil, fmt.Errorf("unknown word %q", t)
}

// protoIs matches a transport over either IP version, as tcpdump's tcp
// and udp do.
func protoIs(proto uint8) Filter {
	return func(pk *Packet) bool { return pk.IsIP() && pk.Proto == proto }
}

func addrMatch(s side, match func(netip.Addr) bool) Filter {
	return func(pk *Packet) bool {
		src, dst := pk.Src, pk.Dst
		if pk.EtherType == EtherTypeARP {
			src, dst = pk.ARPSender, pk.ARPTarget
		}
		if !src.IsValid() {
			return false
		}
		return s != dstSide && match(src) || s != srcSide && match(dst)
	}
}
