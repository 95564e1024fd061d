package firewall_test

// IPv6 through the firewall with real traffic: the lab's instances get
// IPv6 addresses (without duplicate address detection, so that they work
// at once), real clients (ping -6, TCP) prove the rules, and frames
// written by hand on a raw socket — what a hostile instance could send —
// prove the anti-spoofing: each forged frame is either seen by the other
// instance's packet socket or dropped and counted.

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nsnet/nsnet/internal/firewall"
	"github.com/nsnet/nsnet/internal/netns"
)

var (
	v6A       = netip.MustParseAddr("2001:db8:9::1")
	v6B       = netip.MustParseAddr("2001:db8:9::2")
	v6C       = netip.MustParseAddr("2001:db8:9::3") // nobody's
	pairNet6  = netip.MustParsePrefix("2001:db8:9:100::/64")
	pairMAC   = net.HardwareAddr{0xfa, 0x16, 0x3e, 0x00, 0x00, 0xaa}
	any6      = netip.MustParsePrefix("::/0")
	egressAll = []firewall.Rule{
		{Direction: firewall.Egress, ProtoMax: 255, PortMax: 65535, Remote: netip.MustParsePrefix("0.0.0.0/0")},
		{Direction: firewall.Egress, IPv6: true, ProtoMax: 255, PortMax: 65535, Remote: any6},
	}
)

// eui64 is the link-local address the kernel gives an interface with mac.
func eui64(mac net.HardwareAddr) netip.Addr {
	a := [16]byte{0: 0xfe, 1: 0x80, 8: mac[0] ^ 2, 9: mac[1], 10: mac[2], 11: 0xff, 12: 0xfe, 13: mac[3], 14: mac[4], 15: mac[5]}
	return netip.AddrFrom16(a)
}

// newLab6 is the lab with 2001:db8:9::1 on a and ::2 on b, both without
// duplicate address detection (their link-local addresses too).
func newLab6(t *testing.T) *lab {
	l := newLab(t)
	for i, inst := range []string{l.a, l.b} {
		run(t, "ip", "netns", "exec", inst, "sysctl", "-qw", "net.ipv6.conf.eth0.accept_dad=0")
		run(t, "ip", "-n", inst, "link", "set", "eth0", "down")
		run(t, "ip", "-n", inst, "link", "set", "eth0", "up")
		run(t, "ip", "-n", inst, "addr", "add", []netip.Addr{v6A, v6B}[i].String()+"/64", "dev", "eth0", "nodad")
	}
	return l
}

// spec6 secures a and b with their IPv4 and IPv6 addresses, egress open,
// and rulesB as b's further rules.
func (l *lab) spec6(rulesB ...firewall.Rule) firewall.Spec {
	return firewall.Spec{Ports: []firewall.Port{
		{Interface: l.tapA, MAC: l.macA, Addresses: []netip.Addr{netip.MustParseAddr("10.9.0.1"), v6A}, Rules: egressAll},
		{Interface: l.tapB, MAC: l.macB, Addresses: []netip.Addr{netip.MustParseAddr("10.9.0.2"), v6B}, Rules: append(append([]firewall.Rule{}, egressAll...), rulesB...)},
	}}
}

// listen6 accepts (and closes) TCP connections on addr:port inside ns
// until the test ends.
func listen6(t *testing.T, ns string, addr netip.Addr, port int) {
	t.Helper()
	var ln net.Listener
	err := netns.DoNamed(ns, func() (err error) {
		ln, err = net.Listen("tcp6", netip.AddrPortFrom(addr, uint16(port)).String())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
}

// dial6 reports whether a TCP connection from ns to addr:port opens, with
// one second for its handshake.
func dial6(t *testing.T, ns string, addr netip.Addr, port int) bool {
	t.Helper()
	err := netns.DoNamed(ns, func() error {
		c, err := net.DialTimeout("tcp6", netip.AddrPortFrom(addr, uint16(port)).String(), time.Second)
		if err == nil {
			c.Close()
		}
		return err
	})
	return err == nil
}

func ping6(ns string, to netip.Addr) bool {
	return exec.Command("ip", "netns", "exec", ns, "ping", "-6", "-c1", "-W1", to.String()).Run() == nil
}

// tries retries check as a client would, three times: true if one passes.
func tries(check func() bool) bool {
	for range 3 {
		if check() {
			return true
		}
	}
	return false
}

// TestIPv6Rules: IPv6 connections meet b's rules as IPv4 ones do — TCP
// blocked until a rule admits it, a rule for one member's address (a
// remote group's, expanded) admitting it and no other, ICMPv6 echo by
// type, a rule of the other family admitting nothing — while neighbour
// discovery passes whatever the rules.
func TestIPv6Rules(t *testing.T) {
	l := newLab6(t)
	listen6(t, l.b, v6B, 8080)
	tcp := func(remote netip.Prefix) firewall.Rule {
		return firewall.Rule{Direction: firewall.Ingress, IPv6: remote.Addr().Is6(), ProtoMin: unix.IPPROTO_TCP, ProtoMax: unix.IPPROTO_TCP, PortMin: 8080, PortMax: 8080, Remote: remote}
	}
	icmp6 := func(typ, code int) firewall.Rule {
		r := firewall.Rule{Direction: firewall.Ingress, IPv6: true, ProtoMin: unix.IPPROTO_ICMPV6, ProtoMax: unix.IPPROTO_ICMPV6, PortMax: 65535, Remote: any6}
		if typ >= 0 {
			r.PortMin, r.PortMax = uint16(typ)<<8, uint16(typ)<<8|0xff
			if code >= 0 {
				r.PortMin, r.PortMax = uint16(typ)<<8|uint16(code), uint16(typ)<<8|uint16(code)
			}
		}
		return r
	}
	for _, tt := range []struct {
		name      string
		rules     []firewall.Rule
		tcp, ping bool
	}{
		{"no rule", nil, false, false},
		{"TCP 8080 from anywhere", []firewall.Rule{tcp(any6)}, true, false},
		{"TCP 8080 from a's address, a remote group member", []firewall.Rule{tcp(netip.PrefixFrom(v6A, 128))}, true, false},
		{"TCP 8080 from another member only", []firewall.Rule{tcp(netip.PrefixFrom(v6C, 128))}, false, false},
		{"TCP 8080 over IPv4 only", []firewall.Rule{tcp(netip.MustParsePrefix("0.0.0.0/0"))}, false, false},
		{"ICMPv6 echo request", []firewall.Rule{icmp6(128, -1)}, false, true},
		{"ICMPv6 echo request code 0", []firewall.Rule{icmp6(128, 0)}, false, true},
		{"ICMPv6 echo reply only", []firewall.Rule{icmp6(129, -1)}, false, false},
		{"ICMPv6, any type", []firewall.Rule{icmp6(-1, -1)}, false, true},
		{"ICMP over IPv4", []firewall.Rule{{Direction: firewall.Ingress, ProtoMin: 1, ProtoMax: 1, PortMax: 65535, Remote: netip.MustParsePrefix("0.0.0.0/0")}}, false, false},
	} {
		if _, err := l.fw.Apply(l.spec6(tt.rules...)); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		before := l.counters(l.tapB)
		check := func(what string, got, want bool) {
			if got != want {
				t.Errorf("%s: %s passed %v, want %v", tt.name, what, got, want)
			}
		}
		if tt.tcp {
			check("TCP a→b:8080", tries(func() bool { return dial6(t, l.a, v6B, 8080) }), true)
		} else {
			check("TCP a→b:8080", dial6(t, l.a, v6B, 8080), false)
		}
		if tt.ping {
			check("ping -6 a→b", tries(func() bool { return ping6(l.a, v6B) }), true)
		} else {
			check("ping -6 a→b", ping6(l.a, v6B), false)
		}
		if !tt.tcp || !tt.ping {
			if after := l.counters(l.tapB); after.Ingress == before.Ingress {
				t.Errorf("%s: b's ingress drops not counted: %+v", tt.name, after)
			}
		}
		// Neighbour discovery passed, whatever the rules: a knows b's MAC.
		if out := run(t, "ip", "-n", l.a, "-6", "neigh", "show", v6B.String(), "dev", "eth0"); !strings.Contains(out, l.macB.String()) {
			t.Errorf("%s: a did not resolve b's address: %q", tt.name, out)
		}
	}
}

func (l *lab) counters(tap string) firewall.Counters {
	l.t.Helper()
	c, err := l.fw.Counters()
	if err != nil {
		l.t.Fatal(err)
	}
	return c[tap]
}

// TestIPv6ConnectionsForgotten: IPv6 connections of a zoned bridge are
// tracked in its zone, and removing the rule that allowed one deletes its
// entry there.
func TestIPv6ConnectionsForgotten(t *testing.T) {
	l := newLab6(t)
	listen6(t, l.b, v6B, 8022)
	spec := func(rules ...firewall.Rule) firewall.Spec {
		s := l.spec6(rules...)
		s.Zoned = []string{"br0"}
		for i := range s.Ports {
			s.Ports[i].Bridge = "br0"
		}
		return s
	}
	ssh := firewall.Rule{Direction: firewall.Ingress, IPv6: true, ProtoMin: unix.IPPROTO_TCP, ProtoMax: unix.IPPROTO_TCP, PortMin: 8022, PortMax: 8022, Remote: netip.PrefixFrom(v6A, 128)}
	if _, err := l.fw.Apply(spec(ssh)); err != nil {
		t.Fatal(err)
	}
	if !tries(func() bool { return dial6(t, l.a, v6B, 8022) }) {
		t.Fatal("a→b:8022 over IPv6 blocked by a rule allowing it")
	}
	out := run(t, "ip", "netns", "exec", l.host, "conntrack", "-L", "-f", "ipv6", "-p", "tcp", "--dport", "8022")
	if !strings.Contains(out, "zone=") || !strings.Contains(out, v6B.String()) {
		t.Fatalf("the connection is not tracked in br0's zone:\n%s", out)
	}
	res, err := l.fw.Apply(spec())
	if err != nil {
		t.Fatal(err)
	}
	if res.Forgotten == 0 {
		t.Errorf("removing the rule that allowed the connection: %+v, want it forgotten", res)
	}
	if out := run(t, "ip", "netns", "exec", l.host, "conntrack", "-L", "-f", "ipv6", "-p", "tcp", "--dport", "8022"); strings.Contains(out, v6B.String()) {
		t.Errorf("the connection's entry is left:\n%s", out)
	}
}

// A raw Ethernet frame carrying an IPv6 packet, written by hand.
type frame6 struct {
	dst, src     net.HardwareAddr
	saddr, daddr netip.Addr
	// proto is the IPv6 next header: the ICMPv6 message or UDP datagram
	// of payload (checksum zero), or 0 for a hop-by-hop header of 8
	// bytes in front of it (see hbh).
	proto   uint8
	payload []byte
}

func (f frame6) bytes() []byte {
	next, ext, p := f.proto, []byte(nil), bytes.Clone(f.payload)
	if next == 0 {
		ext, p = p[:8], p[8:]
		f.proto = ext[0]
	}
	// The upper-layer checksum over the pseudo-header (RFC 8200 8.1).
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(binary.BigEndian.Uint16(b[i:]))
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	add(f.saddr.AsSlice())
	add(f.daddr.AsSlice())
	add(binary.BigEndian.AppendUint32(nil, uint32(len(p))))
	add([]byte{0, 0, 0, f.proto})
	add(p)
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	at := 2 // ICMPv6
	if f.proto == unix.IPPROTO_UDP {
		at = 6
	}
	binary.BigEndian.PutUint16(p[at:], ^uint16(sum))
	b := append(append(bytes.Clone(f.dst), f.src...), 0x86, 0xdd)
	b = append(b, 0x60, 0, 0, 0)
	b = binary.BigEndian.AppendUint16(b, uint16(len(ext)+len(p)))
	b = append(b, next, 255)
	b = append(append(b, f.saddr.AsSlice()...), f.daddr.AsSlice()...)
	return append(append(b, ext...), p...)
}

// hbh is f behind a hop-by-hop options header with a router alert, as
// MLD messages carry (and as an attacker may, to hide a message from a
// filter that reads only the IPv6 header's next header).
func hbh(f frame6) frame6 {
	f.payload = append([]byte{f.proto, 0, 5, 2, 0, 0, 1, 0}, f.payload...) // router alert, PadN
	f.proto = 0
	return f
}

func icmp6Msg(typ uint8, body ...[]byte) []byte {
	return append([]byte{typ, 0, 0, 0}, bytes.Join(body, nil)...)
}

func udpMsg(sport, dport uint16, data string) []byte {
	b := binary.BigEndian.AppendUint16(nil, sport)
	b = binary.BigEndian.AppendUint16(b, dport)
	b = binary.BigEndian.AppendUint16(b, uint16(8+len(data)))
	return append(append(b, 0, 0), data...)
}

func echo6(token string) []byte { return icmp6Msg(128, []byte{0, 1, 0, 1}, []byte(token)) }

// na6 is a neighbour advertisement (solicited, override) for target,
// with its link-layer address option.
func na6(target netip.Addr, mac net.HardwareAddr) []byte {
	return icmp6Msg(136, []byte{0x60, 0, 0, 0}, target.AsSlice(), []byte{2, 1}, mac)
}

// solicitedNode is the multicast group and MAC of a neighbour
// solicitation for target.
func solicitedNode(target netip.Addr) (netip.Addr, net.HardwareAddr) {
	t := target.As16()
	g := netip.AddrFrom16([16]byte{0: 0xff, 1: 0x02, 11: 1, 12: 0xff, 13: t[13], 14: t[14], 15: t[15]})
	return g, net.HardwareAddr{0x33, 0x33, 0xff, t[13], t[14], t[15]}
}

func mcastMAC(group netip.Addr) net.HardwareAddr {
	g := group.As16()
	return net.HardwareAddr{0x33, 0x33, g[12], g[13], g[14], g[15]}
}

// rawPort is a packet socket on an instance's eth0: it sends frames as
// the instance, and keeps every frame the instance receives.
type rawPort struct {
	fd   int
	mu   sync.Mutex
	got  [][]byte
	done chan struct{}
}

func openRaw(t *testing.T, ns string) *rawPort {
	t.Helper()
	r := &rawPort{fd: -1, done: make(chan struct{})}
	err := netns.DoNamed(ns, func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		proto := int(htons(unix.ETH_P_ALL))
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
		if err != nil {
			return fmt.Errorf("packet socket: %w", err)
		}
		r.fd = fd
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: uint16(proto), Ifindex: ifi.Index}); err != nil {
			return fmt.Errorf("bind packet socket: %w", err)
		}
		tv := unix.NsecToTimeval((50 * time.Millisecond).Nanoseconds())
		return unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	})
	if err != nil {
		if r.fd >= 0 {
			unix.Close(r.fd)
		}
		t.Fatal(err)
	}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		buf := make([]byte, 2048)
		for {
			select {
			case <-r.done:
				return
			default:
			}
			n, from, err := unix.Recvfrom(r.fd, buf, 0)
			if err != nil {
				continue // the receive timeout: look at done again
			}
			if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
				continue
			}
			r.mu.Lock()
			r.got = append(r.got, bytes.Clone(buf[:n]))
			r.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		close(r.done)
		<-stopped
		unix.Close(r.fd)
	})
	return r
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func (r *rawPort) send(t *testing.T, frame []byte) {
	t.Helper()
	if _, err := unix.Write(r.fd, frame); err != nil {
		t.Fatalf("send a frame: %v", err)
	}
}

func (r *rawPort) seen(frame []byte) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, g := range r.got {
		if bytes.Equal(g, frame) {
			return true
		}
	}
	return false
}

// arrives sends frame from `from` until `to` receives it, as a client
// retrying would, and reports whether it did.
func arrives(t *testing.T, from, to *rawPort, frame []byte) bool {
	t.Helper()
	for range 20 {
		from.send(t, frame)
		for range 10 {
			if to.seen(frame) {
				return true
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return false
}

// fromA sends f from a to b. With counted nil it must arrive; else it
// must be dropped, known lost once a's echo sent after it arrived, and
// counted: counted reads the counter of its reason from a's.
func (l *lab) fromA(t *testing.T, rawA, rawB *rawPort, name string, f frame6, counted func(firewall.Counters) uint64) {
	t.Helper()
	before := l.counters(l.tapA)
	frame := f.bytes()
	if counted == nil {
		if !arrives(t, rawA, rawB, frame) {
			t.Errorf("%s: did not arrive; a's drops %+v", name, l.counters(l.tapA))
		}
		return
	}
	rawA.send(t, frame)
	sentinel := frame6{l.macB, l.macA, v6A, v6B, unix.IPPROTO_ICMPV6, echo6("after " + name)}.bytes()
	if !arrives(t, rawA, rawB, sentinel) {
		t.Fatalf("%s: a's echo sent after it did not arrive", name)
	}
	if rawB.seen(frame) {
		t.Errorf("%s: arrived", name)
	}
	if after := l.counters(l.tapA); counted(after) == counted(before) {
		t.Errorf("%s: dropped but not counted under its reason: before %+v, after %+v", name, before, after)
	}
}

// TestIPv6AntiSpoofing: what an instance sends over IPv6 is checked as
// Neutron's firewalls check it. Frames from a to b, which b's rules
// would all admit, arrive if a may send them; if not they are dropped at
// the bridge and counted under their reason. A dropped frame is known
// lost once a frame sent after it on the same path arrived.
func TestIPv6AntiSpoofing(t *testing.T) {
	l := newLab6(t)
	spec := l.spec6(
		firewall.Rule{Direction: firewall.Ingress, IPv6: true, ProtoMin: unix.IPPROTO_ICMPV6, ProtoMax: unix.IPPROTO_ICMPV6, PortMax: 65535, Remote: any6},
		firewall.Rule{Direction: firewall.Ingress, IPv6: true, ProtoMin: unix.IPPROTO_UDP, ProtoMax: unix.IPPROTO_UDP, PortMax: 65535, Remote: any6},
	)
	spec.Ports[0].MACs = []net.HardwareAddr{pairMAC}
	spec.Ports[0].Networks = []netip.Prefix{pairNet6}
	if _, err := l.fw.Apply(spec); err != nil {
		t.Fatal(err)
	}
	rawA, rawB := openRaw(t, l.a), openRaw(t, l.b)
	llA, llB := eui64(l.macA), eui64(l.macB)
	inPair := netip.MustParseAddr("2001:db8:9:100::7")
	allNodes := netip.MustParseAddr("ff02::1")
	dadGroup, dadMAC := solicitedNode(v6A)
	mldRouters := netip.MustParseAddr("ff02::16")
	dhcpServers := netip.MustParseAddr("ff02::1:2")
	ra := icmp6Msg(134, []byte{64, 0, 0x07, 0x08}, make([]byte, 8))
	type reason func(firewall.Counters) uint64
	var (
		spoofedIP reason = func(c firewall.Counters) uint64 { return c.SpoofedIP }
		spoofedND reason = func(c firewall.Counters) uint64 { return c.SpoofedND }
		raGuard   reason = func(c firewall.Counters) uint64 { return c.RouterAdvert }
		dhcp      reason = func(c firewall.Counters) uint64 { return c.DHCPServer }
	)
	for _, tt := range []struct {
		name  string
		frame frame6
		drop  reason // nil: the frame arrives
	}{
		{"echo from its address", frame6{l.macB, l.macA, v6A, v6B, unix.IPPROTO_ICMPV6, echo6("own")}, nil},
		{"echo from its EUI-64 link-local address", frame6{l.macB, l.macA, llA, llB, unix.IPPROTO_ICMPV6, echo6("lla")}, nil},
		{"echo from the link-local address of an address pair's MAC", frame6{l.macB, pairMAC, eui64(pairMAC), llB, unix.IPPROTO_ICMPV6, echo6("pair-lla")}, nil},
		{"echo from an address pair's prefix", frame6{l.macB, l.macA, inPair, v6B, unix.IPPROTO_ICMPV6, echo6("pair")}, nil},
		{"echo from an address it does not own", frame6{l.macB, l.macA, v6C, v6B, unix.IPPROTO_ICMPV6, echo6("spoofed")}, spoofedIP},
		{"echo from b's link-local address", frame6{l.macB, l.macA, llB, v6B, unix.IPPROTO_ICMPV6, echo6("spoofed-lla")}, spoofedIP},
		{"echo from the unspecified address", frame6{l.macB, l.macA, netip.IPv6Unspecified(), v6B, unix.IPPROTO_ICMPV6, echo6("unspecified")}, spoofedIP},
		{"UDP from the unspecified address", frame6{l.macB, l.macA, netip.IPv6Unspecified(), v6B, unix.IPPROTO_UDP, udpMsg(4000, 4000, "unspecified")}, spoofedIP},
		{"duplicate address detection's solicitation, from ::", frame6{dadMAC, l.macA, netip.IPv6Unspecified(), dadGroup, unix.IPPROTO_ICMPV6,
			icmp6Msg(135, make([]byte, 4), v6A.AsSlice())}, nil},
		{"MLDv2 report from ::", hbh(frame6{mcastMAC(mldRouters), l.macA, netip.IPv6Unspecified(), mldRouters, unix.IPPROTO_ICMPV6, icmp6Msg(143, make([]byte, 4))}), nil},
		{"MLDv2 report from its link-local address", hbh(frame6{mcastMAC(mldRouters), l.macA, llA, mldRouters, unix.IPPROTO_ICMPV6, icmp6Msg(143, make([]byte, 4))}), nil},
		{"MLD query from ::", hbh(frame6{mcastMAC(allNodes), l.macA, netip.IPv6Unspecified(), allNodes, unix.IPPROTO_ICMPV6, icmp6Msg(130, make([]byte, 20))}), spoofedIP},
		{"neighbour advertisement for its address", frame6{l.macB, l.macA, v6A, v6B, unix.IPPROTO_ICMPV6, na6(v6A, l.macA)}, nil},
		{"neighbour advertisement for its link-local address", frame6{l.macB, l.macA, llA, llB, unix.IPPROTO_ICMPV6, na6(llA, l.macA)}, nil},
		{"neighbour advertisement for an address of its pair's prefix", frame6{l.macB, l.macA, inPair, v6B, unix.IPPROTO_ICMPV6, na6(inPair, l.macA)}, nil},
		{"neighbour advertisement for b's address", frame6{l.macB, l.macA, v6A, v6B, unix.IPPROTO_ICMPV6, na6(v6B, l.macA)}, spoofedND},
		{"unsolicited advertisement for another's address, to all nodes", frame6{mcastMAC(allNodes), l.macA, llA, allNodes, unix.IPPROTO_ICMPV6, na6(v6C, l.macA)}, spoofedND},
		{"router advertisement", frame6{mcastMAC(allNodes), l.macA, llA, allNodes, unix.IPPROTO_ICMPV6, ra}, raGuard},
		{"router advertisement behind a hop-by-hop header", hbh(frame6{mcastMAC(allNodes), l.macA, llA, allNodes, unix.IPPROTO_ICMPV6, ra}), raGuard},
		{"neighbour advertisement for b's address behind a hop-by-hop header", hbh(frame6{l.macB, l.macA, v6A, v6B, unix.IPPROTO_ICMPV6, na6(v6B, l.macA)}), spoofedND},
		{"DHCPv6 server reply", frame6{l.macB, l.macA, llA, llB, unix.IPPROTO_UDP, udpMsg(547, 546, "reply")}, dhcp},
		{"DHCPv6 client solicit", frame6{mcastMAC(dhcpServers), l.macA, llA, dhcpServers, unix.IPPROTO_UDP, udpMsg(546, 547, "solicit")}, nil},
	} {
		l.fromA(t, rawA, rawB, tt.name, tt.frame, tt.drop)
	}
	// nsnet trace shows the comment of the rule a packet died at.
	if out := run(t, "ip", "netns", "exec", l.host, "nft", "list", "chain", "bridge", firewall.TableName, "nd_target"); !strings.Contains(out, `comment "spoofed_nd: `) {
		t.Errorf("the forged NA's drop rule is not named for trace:\n%s", out)
	}
}

// TestDHCPv6Always: DHCPv6 between an instance and the server (an
// unsecured port, as the DHCP namespace's is) passes whatever the
// instance's rules — here none at all, which stop anything else it sends
// or is sent.
func TestDHCPv6Always(t *testing.T) {
	l := newLab6(t)
	spec := firewall.Spec{Ports: []firewall.Port{{Interface: l.tapA, MAC: l.macA, Addresses: []netip.Addr{v6A}}}}
	if _, err := l.fw.Apply(spec); err != nil {
		t.Fatal(err)
	}
	rawA, rawB := openRaw(t, l.a), openRaw(t, l.b)
	llA, llB := eui64(l.macA), eui64(l.macB)
	servers := netip.MustParseAddr("ff02::1:2")
	for _, tt := range []struct {
		name     string
		from, to *rawPort
		frame    frame6
		want     bool
	}{
		{"a's solicit to the servers' group", rawA, rawB, frame6{mcastMAC(servers), l.macA, llA, servers, unix.IPPROTO_UDP, udpMsg(546, 547, "solicit")}, true},
		{"the server's advertise to a", rawB, rawA, frame6{l.macA, l.macB, llB, llA, unix.IPPROTO_UDP, udpMsg(547, 546, "advertise")}, true},
		{"other UDP from a", rawA, rawB, frame6{l.macB, l.macA, llA, llB, unix.IPPROTO_UDP, udpMsg(546, 548, "other")}, false},
		{"other UDP to a", rawB, rawA, frame6{l.macA, l.macB, llB, llA, unix.IPPROTO_UDP, udpMsg(548, 546, "other")}, false},
	} {
		if got := arrives(t, tt.from, tt.to, tt.frame.bytes()); got != tt.want {
			t.Errorf("%s: arrived %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestIPv6RogueRouterAndNeighbour: b's own kernel is the judge. A router
// advertisement from a, with a prefix to autoconfigure and a default
// route, and an unsolicited neighbour advertisement from a taking over
// another address b knows, change nothing in b while a is secured; once
// a is not (port security off), the same frames give b the prefix and
// the poisoned neighbour entry — so they were good forgeries.
func TestIPv6RogueRouterAndNeighbour(t *testing.T) {
	l := newLab6(t)
	other := net.HardwareAddr{0x02, 0, 0, 0, 0, 0x03}
	run(t, "ip", "-n", l.b, "neigh", "replace", v6C.String(), "lladdr", other.String(), "dev", "eth0", "nud", "stale")
	rawA, rawB := openRaw(t, l.a), openRaw(t, l.b)
	llA := eui64(l.macA)
	allNodes := netip.MustParseAddr("ff02::1")
	rogue := netip.MustParsePrefix("2001:db8:bad::/64")
	ra := frame6{mcastMAC(allNodes), l.macA, llA, allNodes, unix.IPPROTO_ICMPV6, icmp6Msg(134,
		[]byte{64, 0, 0x07, 0x08}, make([]byte, 8), // hop limit, flags, router lifetime 1800 s, timers
		[]byte{3, 4, 64, 0xc0}, []byte{0, 0, 0x0e, 0x10, 0, 0, 0x0e, 0x10}, make([]byte, 4), rogue.Addr().AsSlice(), // prefix: on-link, autonomous, 3600 s
		[]byte{1, 1}, l.macA)}.bytes()
	na := frame6{mcastMAC(allNodes), l.macA, llA, allNodes, unix.IPPROTO_ICMPV6,
		icmp6Msg(136, []byte{0x20, 0, 0, 0}, v6C.AsSlice(), []byte{2, 1}, l.macA)}.bytes() // unsolicited, override
	rogueAddress := func() bool {
		return strings.Contains(run(t, "ip", "-n", l.b, "-6", "addr", "show", "dev", "eth0"), "2001:db8:bad:")
	}
	defaultVia := func() bool {
		return strings.Contains(run(t, "ip", "-n", l.b, "-6", "route", "show", "default"), llA.String())
	}
	neighbourTaken := func() bool {
		return strings.Contains(run(t, "ip", "-n", l.b, "-6", "neigh", "show", v6C.String()), l.macA.String())
	}
	secured := l.spec6(firewall.Rule{Direction: firewall.Ingress, IPv6: true, ProtoMin: unix.IPPROTO_ICMPV6, ProtoMax: unix.IPPROTO_ICMPV6, PortMax: 65535, Remote: any6})
	if _, err := l.fw.Apply(secured); err != nil {
		t.Fatal(err)
	}
	before := l.counters(l.tapA)
	for _, f := range [][]byte{ra, na} {
		rawA.send(t, f)
		if !arrives(t, rawA, rawB, frame6{l.macB, l.macA, v6A, v6B, unix.IPPROTO_ICMPV6, echo6(fmt.Sprint("after ", f[54]))}.bytes()) {
			t.Fatal("a's echo sent after a forged frame did not arrive")
		}
	}
	if rogueAddress() || defaultVia() || neighbourTaken() {
		t.Errorf("a secured port's forgeries took effect in b: address %v, default route %v, neighbour %v", rogueAddress(), defaultVia(), neighbourTaken())
	}
	if after := l.counters(l.tapA); after.RouterAdvert == before.RouterAdvert || after.SpoofedND == before.SpoofedND {
		t.Errorf("forgeries not counted: before %+v, after %+v", before, after)
	}
	// a without port security: the same frames work.
	unsecured := firewall.Spec{Ports: secured.Ports[1:]}
	if _, err := l.fw.Apply(unsecured); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		what  string
		frame []byte
		done  func() bool
	}{{"the rogue prefix's address", ra, rogueAddress}, {"the default route", ra, defaultVia}, {"the neighbour entry", na, neighbourTaken}} {
		took := false
		for i := 0; i < 50 && !took; i++ {
			rawA.send(t, c.frame)
			time.Sleep(20 * time.Millisecond)
			took = c.done()
		}
		if !took {
			t.Errorf("from an unsecured port, %s did not take effect in b: the forgery is not one", c.what)
		}
	}
}

// TestIPv4OnlySolicitations: the port of a network without IPv6
// (Port.IPv4Only) has its router solicitations and duplicate address
// detection's neighbour solicitations dropped at its ingress and counted,
// which nothing on its network would answer and its bridge would copy to
// every port; the same from a port of a dual-stack network pass, and so
// does the rest of its IPv6: neighbour solicitations between link-local
// addresses, MLD reports.
func TestIPv4OnlySolicitations(t *testing.T) {
	l := newLab6(t)
	rawA, rawB := openRaw(t, l.a), openRaw(t, l.b)
	llA, llB := eui64(l.macA), eui64(l.macB)
	routers := netip.MustParseAddr("ff02::2")
	mldRouters := netip.MustParseAddr("ff02::16")
	dadGroup, dadMAC := solicitedNode(llA)
	nsGroup, nsMAC := solicitedNode(llB)
	rs := frame6{mcastMAC(routers), l.macA, llA, routers, unix.IPPROTO_ICMPV6, icmp6Msg(133, make([]byte, 4), []byte{1, 1}, l.macA)}
	rsUnspecified := frame6{mcastMAC(routers), l.macA, netip.IPv6Unspecified(), routers, unix.IPPROTO_ICMPV6, icmp6Msg(133, make([]byte, 4))}
	dad := frame6{dadMAC, l.macA, netip.IPv6Unspecified(), dadGroup, unix.IPPROTO_ICMPV6, icmp6Msg(135, make([]byte, 4), llA.AsSlice())}
	ns := frame6{nsMAC, l.macA, llA, nsGroup, unix.IPPROTO_ICMPV6, icmp6Msg(135, make([]byte, 4), llB.AsSlice(), []byte{1, 1}, l.macA)}
	nsUnicast := frame6{l.macB, l.macA, llA, llB, unix.IPPROTO_ICMPV6, icmp6Msg(135, make([]byte, 4), llB.AsSlice(), []byte{1, 1}, l.macA)}
	mld := hbh(frame6{mcastMAC(mldRouters), l.macA, netip.IPv6Unspecified(), mldRouters, unix.IPPROTO_ICMPV6, icmp6Msg(143, make([]byte, 4))})
	for _, tt := range []struct {
		name     string
		ipv4Only bool
		frame    frame6
		drop     bool
	}{
		{"router solicitation, IPv4-only network", true, rs, true},
		{"router solicitation from ::, IPv4-only network", true, rsUnspecified, true},
		{"duplicate address detection, IPv4-only network", true, dad, true},
		{"neighbour solicitation between link-local addresses, IPv4-only network", true, ns, false},
		{"unicast neighbour solicitation, IPv4-only network", true, nsUnicast, false},
		{"MLDv2 report from ::, IPv4-only network", true, mld, false},
		{"router solicitation, dual-stack network", false, rs, false},
		{"duplicate address detection, dual-stack network", false, dad, false},
		{"neighbour solicitation between link-local addresses, dual-stack network", false, ns, false},
	} {
		spec := l.spec6(firewall.Rule{Direction: firewall.Ingress, IPv6: true, ProtoMin: unix.IPPROTO_ICMPV6, ProtoMax: unix.IPPROTO_ICMPV6, PortMax: 65535, Remote: any6})
		spec.Ports[0].IPv4Only = tt.ipv4Only
		if _, err := l.fw.Apply(spec); err != nil {
			t.Fatal(err)
		}
		var counted func(firewall.Counters) uint64
		if tt.drop {
			counted = func(c firewall.Counters) uint64 { return c.IPv6Off }
		}
		l.fromA(t, rawA, rawB, tt.name, tt.frame, counted)
	}
	// nsnet trace shows the comment of the rule a packet died at.
	if out := run(t, "ip", "netns", "exec", l.host, "nft", "list", "chain", "bridge", firewall.TableName, "antispoof_ip6"); strings.Count(out, `comment "ipv6_off: `) != 2 {
		t.Errorf("the solicitations' drop rules are not named for trace:\n%s", out)
	}
}
