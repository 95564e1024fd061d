// Package radv is nsnet's IPv6 router advertisement daemon: what radvd is
// to Neutron's L3 agent, served by nsnet itself.
//
// It owns the router side of Neighbor Discovery's router discovery (RFC
// 4861 section 6): building a router advertisement from a Config (a pure
// function: Config.Advertisement and Config.Final), deciding whether a
// received router solicitation deserves an answer (solicitation, pure and
// fuzzed), and one ICMPv6 socket per interface, opened inside the
// interface's namespace through internal/netns (Server). It must not read
// the store or program the kernel beyond its own socket: the agent hands it
// a Config and replaces it whenever the interface's subnets change.
//
// The public API, for the agent's wiring:
//
//	srv, err := radv.Listen(ns, "qr-1234", log) // never fails for want of a link-local address
//	srv.SetConfig(&radv.Config{...})           // advertises at once, and from then on
//	srv.SetConfig(nil)                         // withdraws: one final advertisement, then silence
//	srv.Close()                                // final advertisement, socket closed
//
//	mode, ok := radv.ModeOf("dhcpv6-stateless") // Neutron's ipv6_ra_mode → flags
//	cfg := radv.ForSubnets(subnets, mtu, radv.NeutronRouterLifetime) // or 0: not a default router
//
// Neutron's modes, as its radvd template (neutron/agent/linux/ra.py) has
// them: every prefix is on-link (L); "slaac" and "dhcpv6-stateless"
// prefixes are autonomous (A), "dhcpv6-stateful" ones are not; the M flag
// is set when any subnet of the interface is dhcpv6-stateful, the O flag
// when any is dhcpv6-stateless (the template sets AdvOtherConfigFlag for
// stateless only: with M set, RFC 4861 makes O redundant); RDNSS carries
// the DNS servers of the slaac subnets, three at most; the MTU option is
// sent when the network's MTU is at least IPv6's minimum, 1280.
//
// The server behaves as radvd with Neutron's configuration does: it answers
// every valid solicitation (unicast to a soliciting address, to all nodes
// for an unspecified one), advertises unsolicited every MinInterval to
// MaxInterval (the first three at most 16 s apart, RFC 4861's
// MAX_INITIAL_RTR_ADVERT_INTERVAL), advertises at once on SetConfig, keeps
// a removed prefix in its next advertisements with zero lifetimes, and on
// Close sends a last advertisement with router lifetime 0 and zero prefix
// lifetimes, so that clients drop the default route at once.
package radv

import (
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/mdlayher/ndp"
)

// radvd's defaults, which the zero values of Config and Prefix stand for.
const (
	DefaultMaxInterval       = 600 * time.Second
	DefaultMinInterval       = 200 * time.Second
	DefaultValidLifetime     = 86400 * time.Second
	DefaultPreferredLifetime = 14400 * time.Second
	// DefaultHopLimit is the Cur Hop Limit advertised (radvd's
	// AdvCurHopLimit).
	DefaultHopLimit = 64
)

// Neutron's L3 agent defaults (min_rtr_adv_interval, max_rtr_adv_interval),
// which ForSubnets uses, and the router lifetime radvd derives from them
// (AdvDefaultLifetime: three times MaxRtrAdvInterval).
const (
	NeutronMinInterval    = 30 * time.Second
	NeutronMaxInterval    = 100 * time.Second
	NeutronRouterLifetime = 3 * NeutronMaxInterval
)

// RFC 4861 section 10's router constants.
const (
	maxInitialAdvertInterval = 16 * time.Second
	maxInitialAdvertisements = 3
	minDelayBetweenRAs       = 3 * time.Second
)

// MinMTU is IPv6's minimum link MTU: a smaller MTU is not advertised.
const MinMTU = 1280

// maxRDNSS is how many DNS servers Neutron puts in the RDNSS option.
const maxRDNSS = 3

// Prefix is one prefix information option.
type Prefix struct {
	Prefix     netip.Prefix
	OnLink     bool // L: addresses in the prefix are on this link
	Autonomous bool // A: clients configure their own address from it (SLAAC)
	// Zero lifetimes stand for radvd's defaults (86400 s and 14400 s);
	// ndp.Infinity for infinite ones.
	ValidLifetime     time.Duration
	PreferredLifetime time.Duration
}

// Config is what one interface advertises.
type Config struct {
	Managed bool // M: addresses from DHCPv6
	Other   bool // O: other configuration (DNS) from DHCPv6
	// RouterLifetime is how long clients may use this router as their
	// default router; 0 says it is not one.
	RouterLifetime time.Duration
	// HopLimit is the Cur Hop Limit clients should use; 0 stands for
	// DefaultHopLimit.
	HopLimit uint8
	// MTU is the link MTU option; below MinMTU none is sent.
	MTU      int
	Prefixes []Prefix
	// RDNSS are the recursive DNS servers (RFC 8106), DNSSL the search
	// domains (without trailing dots); DNSLifetime their lifetime, 0 for
	// RFC 8106's recommended three times MaxInterval.
	RDNSS       []netip.Addr
	DNSSL       []string
	DNSLifetime time.Duration
	// MinInterval and MaxInterval bound the time between unsolicited
	// advertisements; 0 stands for the defaults (200 s and 600 s).
	MinInterval time.Duration
	MaxInterval time.Duration
}

// Neutron's ipv6_ra_mode values.
const (
	ModeSLAAC     = "slaac"
	ModeStateful  = "dhcpv6-stateful"
	ModeStateless = "dhcpv6-stateless"
)

// Mode is what one subnet's ipv6_ra_mode asks of the advertisement.
type Mode struct {
	Managed    bool // the RA's M flag
	Other      bool // the RA's O flag
	Autonomous bool // the prefix's A flag (L is always set)
}

// ModeOf maps Neutron's ipv6_ra_mode to flags; ok is false for a mode that
// asks for no advertisement (unset) or an unknown one.
func ModeOf(raMode string) (m Mode, ok bool) {
	switch raMode {
	case ModeSLAAC:
		return Mode{Autonomous: true}, true
	case ModeStateful:
		return Mode{Managed: true}, true
	case ModeStateless:
		return Mode{Other: true, Autonomous: true}, true
	}
	return Mode{}, false
}

// Subnet is one IPv6 subnet on an advertising interface.
type Subnet struct {
	Prefix netip.Prefix
	RAMode string
	DNS    []netip.Addr
}

// ForSubnets is the Config of an interface carrying subnets, as Neutron's
// radvd template builds it (see the package comment), advertised at
// Neutron's intervals. Subnets whose RAMode asks for no advertisement are
// left out; with none left the result is nil: nothing to advertise.
// routerLifetime is 0 when the interface is not a default router, else
// usually NeutronRouterLifetime.
func ForSubnets(subnets []Subnet, mtu int, routerLifetime time.Duration) *Config {
	c := &Config{RouterLifetime: routerLifetime, MTU: mtu, MinInterval: NeutronMinInterval, MaxInterval: NeutronMaxInterval}
	for _, sn := range subnets {
		m, ok := ModeOf(sn.RAMode)
		if !ok || !sn.Prefix.Addr().Is6() || sn.Prefix.Addr().Is4In6() {
			continue
		}
		c.Managed = c.Managed || m.Managed
		c.Other = c.Other || m.Other
		c.Prefixes = append(c.Prefixes, Prefix{Prefix: sn.Prefix.Masked(), OnLink: true, Autonomous: m.Autonomous})
		if sn.RAMode == ModeSLAAC {
			for _, d := range sn.DNS {
				if len(c.RDNSS) < maxRDNSS && d.Is6() && !d.Is4In6() {
					c.RDNSS = append(c.RDNSS, d)
				}
			}
		}
	}
	if len(c.Prefixes) == 0 {
		return nil
	}
	return c
}

func (c *Config) maxInterval() time.Duration {
	if c.MaxInterval > 0 {
		return c.MaxInterval
	}
	return DefaultMaxInterval
}

func (c *Config) minInterval() time.Duration {
	maxI := c.maxInterval()
	minI := c.MinInterval
	if minI <= 0 {
		minI = DefaultMinInterval
		if c.MaxInterval > 0 { // radvd: 0.33 × a configured maximum
			minI = maxI * 33 / 100
		}
	}
	return min(minI, maxI)
}

// Advertisement is the router advertisement of c, sent from an interface
// whose link-layer address is mac (the source link-layer address option;
// none when mac is not Ethernet's). withdrawn are prefixes that c no longer
// has and were advertised before: they go out with zero lifetimes, so that
// clients deprecate their addresses in them.
func (c *Config) Advertisement(mac net.HardwareAddr, withdrawn ...netip.Prefix) *ndp.RouterAdvertisement {
	hop := c.HopLimit
	if hop == 0 {
		hop = DefaultHopLimit
	}
	ra := &ndp.RouterAdvertisement{
		CurrentHopLimit:      hop,
		ManagedConfiguration: c.Managed,
		OtherConfiguration:   c.Other,
		RouterLifetime:       clampLifetime(c.RouterLifetime, 9000*time.Second), // RFC 4861 4.2's maximum
	}
	if len(mac) == 6 {
		ra.Options = append(ra.Options, &ndp.LinkLayerAddress{Direction: ndp.Source, Addr: mac})
	}
	if c.MTU >= MinMTU {
		ra.Options = append(ra.Options, ndp.NewMTU(uint32(min(c.MTU, 0xffffffff))))
	}
	seen := map[netip.Prefix]bool{}
	for _, p := range c.Prefixes {
		if !validPrefix(p.Prefix) || seen[p.Prefix.Masked()] {
			continue
		}
		seen[p.Prefix.Masked()] = true
		valid, preferred := p.ValidLifetime, p.PreferredLifetime
		if valid <= 0 {
			valid = DefaultValidLifetime
		}
		if preferred <= 0 {
			preferred = DefaultPreferredLifetime
		}
		// RFC 4862 5.5.3 c: a client ignores a prefix whose preferred
		// lifetime exceeds its valid one.
		preferred = min(preferred, valid)
		ra.Options = append(ra.Options, prefixOption(p.Prefix, p.OnLink, p.Autonomous, valid, preferred))
	}
	for _, w := range withdrawn {
		if !validPrefix(w) || seen[w.Masked()] {
			continue
		}
		seen[w.Masked()] = true
		ra.Options = append(ra.Options, prefixOption(w, true, true, 0, 0))
	}
	dnsLife := c.DNSLifetime
	if dnsLife <= 0 {
		dnsLife = 3 * c.maxInterval()
	}
	c.dnsOptions(ra, dnsLife)
	return ra
}

// Final is the advertisement sent when c's interface stops advertising:
// router lifetime 0 (clients drop their default route through it at once)
// and every prefix and DNS option with zero lifetimes, as radvd sends on
// stop.
func (c *Config) Final(mac net.HardwareAddr, withdrawn ...netip.Prefix) *ndp.RouterAdvertisement {
	z := *c
	z.RouterLifetime = 0
	z.Prefixes = nil
	var gone []netip.Prefix
	for _, p := range c.Prefixes {
		gone = append(gone, p.Prefix)
	}
	ra := z.Advertisement(mac, append(gone, withdrawn...)...)
	// Advertisement gave the DNS options their lifetime; replace them.
	opts := ra.Options[:0]
	for _, o := range ra.Options {
		switch o.(type) {
		case *ndp.RecursiveDNSServer, *ndp.DNSSearchList:
			continue
		}
		opts = append(opts, o)
	}
	ra.Options = opts
	c.dnsOptions(ra, 0)
	return ra
}

func (c *Config) dnsOptions(ra *ndp.RouterAdvertisement, life time.Duration) {
	life = clampLifetime(life, ndp.Infinity)
	var servers []netip.Addr
	for _, a := range c.RDNSS {
		if a.Is6() && !a.Is4In6() {
			servers = append(servers, a.WithZone(""))
		}
	}
	if len(servers) > 0 {
		ra.Options = append(ra.Options, &ndp.RecursiveDNSServer{Lifetime: life, Servers: servers})
	}
	var domains []string
	for _, d := range c.DNSSL {
		d = trimDot(d)
		// A name the option cannot carry would make the whole
		// advertisement fail to marshal, or reach clients garbled:
		// leave it out alone.
		if !validDomain(d) {
			continue
		}
		if _, err := ndp.MarshalMessage(&ndp.RouterSolicitation{Options: []ndp.Option{
			&ndp.DNSSearchList{DomainNames: []string{d}},
		}}); err != nil {
			continue
		}
		domains = append(domains, d)
	}
	if len(domains) > 0 {
		ra.Options = append(ra.Options, &ndp.DNSSearchList{Lifetime: life, DomainNames: domains})
	}
}

func prefixOption(p netip.Prefix, onLink, auto bool, valid, preferred time.Duration) *ndp.PrefixInformation {
	return &ndp.PrefixInformation{
		PrefixLength:                   uint8(p.Bits()),
		OnLink:                         onLink,
		AutonomousAddressConfiguration: auto,
		ValidLifetime:                  clampLifetime(valid, ndp.Infinity),
		PreferredLifetime:              clampLifetime(preferred, ndp.Infinity),
		Prefix:                         p.Masked().Addr().WithZone(""),
	}
}

func validPrefix(p netip.Prefix) bool {
	a := p.Addr()
	return p.IsValid() && a.Is6() && !a.Is4In6() && !a.IsLinkLocalUnicast() && !a.IsMulticast()
}

// clampLifetime keeps d within a lifetime field, in whole seconds.
func clampLifetime(d, maxD time.Duration) time.Duration {
	if d < 0 {
		return 0
	}
	return min(d, maxD).Truncate(time.Second)
}

// validDomain: labels of 1 to 63 bytes, 253 bytes in all (RFC 1035).
func validDomain(d string) bool {
	if d == "" || len(d) > 253 {
		return false
	}
	for _, l := range strings.Split(d, ".") {
		if l == "" || len(l) > 63 {
			return false
		}
	}
	return true
}

func trimDot(s string) string {
	for len(s) > 0 && s[len(s)-1] == '.' {
		s = s[:len(s)-1]
	}
	return s
}

// ICMPv6 and ND constants of the solicitation check.
const (
	icmpTypeRouterSolicitation = 133
	optSourceLinkLayerAddress  = 1
)

// solicitation reports whether the ICMPv6 message b, received from src
// with IP hop limit hopLimit, is a router solicitation to answer (RFC 4861
// 6.1.1's validity checks; the kernel has checked the checksum), and where
// the answer goes: to the soliciting address, or to all nodes when the
// solicitation came from the unspecified address (a host still doing
// duplicate address detection, which cannot receive unicast).
func solicitation(b []byte, hopLimit int, src netip.Addr) (dst netip.Addr, ok bool) {
	// Hop limit 255: the solicitation comes from this link, not through
	// a router.
	if hopLimit != 255 {
		return netip.Addr{}, false
	}
	// ICMPv6 header (type, code, checksum) and 4 reserved bytes.
	if len(b) < 8 || b[0] != icmpTypeRouterSolicitation || b[1] != 0 {
		return netip.Addr{}, false
	}
	src = src.WithZone("")
	if !src.Is6() || src.Is4In6() || src.IsMulticast() {
		return netip.Addr{}, false
	}
	hasSLLA := false
	for opts := b[8:]; len(opts) > 0; {
		if len(opts) < 2 || opts[1] == 0 || int(opts[1])*8 > len(opts) {
			return netip.Addr{}, false // every option has a non-zero length, within the message
		}
		if opts[0] == optSourceLinkLayerAddress {
			hasSLLA = true
		}
		opts = opts[int(opts[1])*8:]
	}
	if src.IsUnspecified() {
		if hasSLLA {
			return netip.Addr{}, false // RFC 4861 6.1.1: not from ::
		}
		return allNodes, true
	}
	return src, true
}

var (
	allNodes   = netip.MustParseAddr("ff02::1")
	allRouters = netip.MustParseAddr("ff02::2")
)
