package nat

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"

	"golang.org/x/sys/unix"
)

// Spec is everything the nsnet table of one namespace translates. Its
// zero value is a table that translates nothing. Router and Host build the
// usual ones; the fields can also be combined freely (the edge router of a
// two-level NAT masquerades, as seed 003 does).
//
// All addresses are IPv4 for now.
type Spec struct {
	// SNAT gives new connections leaving an interface from some sources a
	// fixed source address, with fully random source ports: a router's
	// default SNAT to its gateway address, or host NAT to a fixed address.
	SNAT []SNAT
	// Masquerade gives them the address of the interface they leave by.
	Masquerade []Masquerade
	// Hairpin masquerades connections that were DNATed (floating IP, port
	// forward, published port) and leave by the interface of a subnet
	// they came from: without it the server would answer the client
	// directly, from the wrong address.
	Hairpin []Subnet
	// FloatingIPs are 1:1 NAT: DNAT of the floating address to the fixed
	// one (from anywhere, and from the namespace itself), SNAT of the
	// fixed address to the floating one leaving by Out.
	FloatingIPs []FloatingIP
	// PortForwards DNAT an external address, protocol and port (range).
	PortForwards []PortForward
	// Publish DNATs a protocol and port (range) on any local address of
	// the namespace: the host's published ports (8080 → instance:80).
	Publish []Publish
	// Helpers assign conntrack helpers to new connections by protocol
	// and destination port (see helpers.go).
	Helpers []Helper
}

// SNAT rewrites the source of connections from From leaving by Out to To.
type SNAT struct {
	Out  string
	From netip.Prefix
	To   netip.Addr
}

// Masquerade rewrites the source of connections from From leaving by Out
// to Out's address.
type Masquerade struct {
	Out  string
	From netip.Prefix
}

// Subnet is a prefix reached through an interface.
type Subnet struct {
	Interface string
	Prefix    netip.Prefix
}

// FloatingIP maps Floating to Fixed one to one; Out is the interface the
// floating address lives on (a router's qg-).
type FloatingIP struct {
	Out      string
	Floating netip.Addr
	Fixed    netip.Addr
}

// Protocol is a transport protocol a port forward applies to.
type Protocol uint8

const (
	TCP Protocol = unix.IPPROTO_TCP
	UDP Protocol = unix.IPPROTO_UDP
)

func (p Protocol) String() string {
	switch p {
	case TCP:
		return "tcp"
	case UDP:
		return "udp"
	}
	return "proto " + strconv.Itoa(int(p))
}

// ParseProtocol reads "tcp" or "udp".
func ParseProtocol(s string) (Protocol, error) {
	switch s {
	case "tcp":
		return TCP, nil
	case "udp":
		return UDP, nil
	}
	return 0, fmt.Errorf("protocol %q: only tcp and udp can be forwarded", s)
}

// PortRange is the ports First through Last; a single port has First ==
// Last.
type PortRange struct{ First, Last uint16 }

// Port is the range of the single port p.
func Port(p uint16) PortRange { return PortRange{p, p} }

// Size is the number of ports in r.
func (r PortRange) Size() int { return int(r.Last) - int(r.First) + 1 }

func (r PortRange) String() string {
	if r.First == r.Last {
		return strconv.Itoa(int(r.First))
	}
	return fmt.Sprintf("%d-%d", r.First, r.Last)
}

func (r PortRange) valid() error {
	if r.First == 0 || r.Last < r.First {
		return fmt.Errorf("invalid port range %d-%d", r.First, r.Last)
	}
	return nil
}

// PortForward sends connections to External:ExternalPorts to
// Internal:InternalPorts, port by port: the two ranges have the same size
// and the n-th external port goes to the n-th internal one.
type PortForward struct {
	Protocol      Protocol
	External      netip.Addr
	ExternalPorts PortRange
	Internal      netip.Addr
	InternalPorts PortRange
}

func (f PortForward) String() string {
	return fmt.Sprintf("%s %s:%s → %s:%s", f.Protocol, f.External, f.ExternalPorts, f.Internal, f.InternalPorts)
}

// Publish sends connections to any local address on Ports to
// Internal:InternalPorts, port by port as PortForward does.
type Publish struct {
	Protocol      Protocol
	Ports         PortRange
	Internal      netip.Addr
	InternalPorts PortRange
}

func (p Publish) String() string {
	return fmt.Sprintf("%s *:%s → %s:%s", p.Protocol, p.Ports, p.Internal, p.InternalPorts)
}

// Router is the NAT of a Neutron router.
type Router struct {
	// Gateway is the qg- interface on the external network; "" for a
	// router without an external gateway, which only routes between its
	// subnets and so translates nothing.
	Gateway string
	// GatewayAddr is the router's address on the external network, the
	// source of its default SNAT.
	GatewayAddr netip.Addr
	// EnableSNAT is Neutron's enable_snat: internal sources leaving by the
	// gateway take GatewayAddr unless a floating IP translates them.
	EnableSNAT bool
	// Internal are the qr- interfaces and every source prefix reached
	// through them: their subnets, and the destinations of routes whose
	// next hop is behind them.
	Internal []Subnet
	// Routed are the prefixes of Internal that share the external
	// network's address scope (Neutron's address scopes): they leave by
	// the gateway with their own source addresses, untranslated, as the
	// addresses of one scope are unique across it.
	Routed []netip.Prefix
	// FloatingIPs are the router's associated floating IPs; their Out is
	// the gateway, whatever they say.
	FloatingIPs []FloatingIP
	// PortForwards are the port forwardings of the router's floating IPs.
	PortForwards []PortForward
	// Helpers are the router's conntrack helpers, gateway or not.
	Helpers []Helper
}

// Spec is the table spec of r.
func (r Router) Spec() Spec {
	var s Spec
	s.Hairpin = slices.Clone(r.Internal)
	s.Helpers = slices.Clone(r.Helpers)
	if r.Gateway == "" {
		// Floating IPs and forwards need a gateway: keep them, so that
		// validation says so instead of silently dropping them.
		s.FloatingIPs = slices.Clone(r.FloatingIPs)
		s.PortForwards = slices.Clone(r.PortForwards)
		return s
	}
	if r.EnableSNAT {
		for _, in := range r.Internal {
			if !slices.Contains(r.Routed, in.Prefix) {
				s.SNAT = append(s.SNAT, SNAT{Out: r.Gateway, From: in.Prefix, To: r.GatewayAddr})
			}
		}
	}
	s.FloatingIPs = make([]FloatingIP, len(r.FloatingIPs))
	for i, f := range r.FloatingIPs {
		f.Out = r.Gateway
		s.FloatingIPs[i] = f
	}
	s.PortForwards = slices.Clone(r.PortForwards)
	return s
}

// Host is host NAT (seeds 000–002): networks whose gateway is the host
// itself, on their bridge, leaving by an uplink.
type Host struct {
	Uplink   string
	Networks []HostNetwork
	// Publish are the published ports, on every local address.
	Publish []Publish
}

// HostNetwork is one network of host NAT.
type HostNetwork struct {
	// Bridge carries the network's gateway address on the host.
	Bridge string
	Prefix netip.Prefix
	// SNATTo is the fixed source address of its connections leaving by
	// the uplink (seed 001); the zero Addr masquerades (seeds 000, 002).
	SNATTo netip.Addr
}

// Spec is the table spec of h.
func (h Host) Spec() Spec {
	var s Spec
	for _, n := range h.Networks {
		s.Hairpin = append(s.Hairpin, Subnet{Interface: n.Bridge, Prefix: n.Prefix})
		if n.SNATTo.IsValid() {
			s.SNAT = append(s.SNAT, SNAT{Out: h.Uplink, From: n.Prefix, To: n.SNATTo})
		} else {
			s.Masquerade = append(s.Masquerade, Masquerade{Out: h.Uplink, From: n.Prefix})
		}
	}
	s.Publish = slices.Clone(h.Publish)
	return s
}

// Validate reports everything wrong with s at once: names the kernel would
// refuse, IPv6, prefixes with host bits, forwards whose ranges differ in
// size, and two entries that claim the same packets.
func (s Spec) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	checkIf := func(what, name string) {
		if err := validIfName(name); err != nil {
			bad("%s: %v", what, err)
		}
	}
	checkAddr := func(what string, a netip.Addr) {
		if !a.Is4() {
			bad("%s: %v is not an IPv4 address", what, a)
		}
	}
	checkPrefix := func(what string, p netip.Prefix) {
		switch {
		case !p.IsValid() || !p.Addr().Is4():
			bad("%s: %v is not an IPv4 prefix", what, p)
		case p.Masked() != p:
			bad("%s: %v has host bits set (did you mean %v?)", what, p, p.Masked())
		}
	}

	validateHelpers(s.Helpers, bad)
	var snat, masq, hair []Subnet
	for _, n := range s.SNAT {
		what := fmt.Sprintf("SNAT of %v out of %q", n.From, n.Out)
		checkIf(what, n.Out)
		checkPrefix(what, n.From)
		checkAddr(what, n.To)
		snat = append(snat, Subnet{n.Out, n.From})
	}
	for _, m := range s.Masquerade {
		what := fmt.Sprintf("masquerade of %v out of %q", m.From, m.Out)
		checkIf(what, m.Out)
		checkPrefix(what, m.From)
		masq = append(masq, Subnet{m.Out, m.From})
	}
	for _, h := range s.Hairpin {
		what := fmt.Sprintf("hairpin of %v on %q", h.Prefix, h.Interface)
		checkIf(what, h.Interface)
		checkPrefix(what, h.Prefix)
		hair = append(hair, h)
	}
	for name, list := range map[string][]Subnet{"SNAT": snat, "masquerade": masq, "hairpin": hair} {
		if err := overlaps(list); err != nil {
			bad("%s: %v", name, err)
		}
	}

	floating := make(map[netip.Addr]bool, len(s.FloatingIPs))
	fixed := make(map[Subnet]bool, len(s.FloatingIPs))
	for _, f := range s.FloatingIPs {
		// Checked first and described only when wrong: a router may have
		// ten thousand of these.
		what := func() string { return fmt.Sprintf("floating IP %v → %v", f.Floating, f.Fixed) }
		if f.Out == "" {
			bad("%s: no gateway interface", what())
		} else if err := validIfName(f.Out); err != nil {
			bad("%s: %v", what(), err)
		}
		if !f.Floating.Is4() || !f.Fixed.Is4() {
			bad("%s: only IPv4 addresses are supported", what())
		}
		if floating[f.Floating] {
			bad("%s: floating address %v used twice", what(), f.Floating)
		}
		floating[f.Floating] = true
		k := Subnet{f.Out, netip.PrefixFrom(f.Fixed, 32)}
		if fixed[k] {
			bad("%s: fixed address %v has two floating IPs", what(), f.Fixed)
		}
		fixed[k] = true
	}

	forwarded := map[forwardKey]string{}
	for _, f := range s.PortForwards {
		what := "port forward " + f.String()
		checkAddr(what, f.External)
		checkAddr(what, f.Internal)
		checkForward(what, f.Protocol, f.ExternalPorts, f.InternalPorts, bad)
		claim(forwarded, what, f.External, f.Protocol, f.ExternalPorts, bad)
	}
	published := map[forwardKey]string{}
	for _, p := range s.Publish {
		what := "published port " + p.String()
		checkAddr(what, p.Internal)
		checkForward(what, p.Protocol, p.Ports, p.InternalPorts, bad)
		claim(published, what, netip.Addr{}, p.Protocol, p.Ports, bad)
	}
	return errors.Join(errs...)
}

func checkForward(what string, proto Protocol, ext, in PortRange, bad func(string, ...any)) {
	if proto != TCP && proto != UDP {
		bad("%s: only tcp and udp can be forwarded", what)
	}
	if err := ext.valid(); err != nil {
		bad("%s: external: %v", what, err)
	}
	if err := in.valid(); err != nil {
		bad("%s: internal: %v", what, err)
	}
	if ext.Size() != in.Size() {
		bad("%s: external range has %d ports, internal %d", what, ext.Size(), in.Size())
	}
}

type forwardKey struct {
	addr  netip.Addr
	proto Protocol
	port  uint16
}

// claim records that what forwards the ports of r, and reports the first
// port someone else already forwards.
func claim(seen map[forwardKey]string, what string, addr netip.Addr, proto Protocol, r PortRange, bad func(string, ...any)) {
	if r.valid() != nil {
		return
	}
	for p := int(r.First); p <= int(r.Last); p++ {
		k := forwardKey{addr, proto, uint16(p)}
		if other, ok := seen[k]; ok {
			bad("%s: port %d is already forwarded by %s", what, p, other)
			return
		}
		seen[k] = what
	}
}

// validIfName accepts what the kernel accepts as an interface name.
func validIfName(name string) error {
	switch {
	case name == "":
		return errors.New("empty interface name")
	case len(name) > unix.IFNAMSIZ-1:
		return fmt.Errorf("interface name %q is longer than %d bytes", name, unix.IFNAMSIZ-1)
	case slices.ContainsFunc([]byte(name), func(c byte) bool { return c == 0 || c == '/' || c == ' ' }):
		return fmt.Errorf("invalid interface name %q", name)
	}
	return nil
}

// overlaps reports two entries of list on the same interface whose
// prefixes overlap: an interval set cannot hold both, and which one should
// apply would be a guess.
func overlaps(list []Subnet) error {
	sorted := slices.Clone(list)
	slices.SortFunc(sorted, func(a, b Subnet) int {
		return cmp.Or(cmp.Compare(a.Interface, b.Interface), a.Prefix.Addr().Compare(b.Prefix.Addr()))
	})
	for i := 1; i < len(sorted); i++ {
		a, b := sorted[i-1], sorted[i]
		if a.Interface == b.Interface && a.Prefix.IsValid() && b.Prefix.IsValid() && a.Prefix.Overlaps(b.Prefix) {
			return fmt.Errorf("%v and %v overlap on %q", a.Prefix, b.Prefix, a.Interface)
		}
	}
	return nil
}
