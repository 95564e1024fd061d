package e2e

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nsnet/nsnet/internal/netns"
)

// Probes of TestSecurityGroupsRandomized: real connections made from
// inside the instances' namespaces, in this process (sockets are created
// on a thread switched into the namespace and keep it), so that a whole
// matrix is probed at once without a process per probe.

// probeServices are what every cell of the matrix is probed with, over
// IPv4; probeServices6 over IPv6. The rules the test makes draw their
// ports and ICMP types around these.
var probeServices = []probeService{
	{name: "tcp/22", proto: 6, port: 22},
	{name: "tcp/8080", proto: 6, port: 8080},
	{name: "udp/53", proto: 17, port: 53},
	{name: "udp/5353", proto: 17, port: 5353},
	{name: "icmp/echo", proto: 1, icmpType: 8, icmpCode: 0, icmpExpect: 0},
	{name: "icmp/timestamp", proto: 1, icmpType: 13, icmpCode: 0, icmpExpect: 14},
}

var probeServices6 = []probeService{
	{name: "tcp/22", proto: 6, port: 22},
	{name: "tcp/8080", proto: 6, port: 8080},
	{name: "udp/53", proto: 17, port: 53},
	{name: "udp/5353", proto: 17, port: 5353},
	{name: "icmp6/echo", proto: 58, icmpType: 128, icmpCode: 0, icmpExpect: 129},
}

// servicesOf are the services probed towards addr.
func servicesOf(addr netip.Addr) []probeService {
	if addr.Is6() {
		return probeServices6
	}
	return probeServices
}

// probeTimeout bounds a TCP connection attempt: the SYN and its first
// retransmission, at 1 s. UDP and ICMP requests are sent up to probeTries
// times, probeResend apart: a busy machine drops packets (its softnet
// backlog overflows), and a lost packet must not read as a policy.
const (
	probeTimeout = 1500 * time.Millisecond
	probeTries   = 4
	probeResend  = 350 * time.Millisecond
)

// instanceServers answers TCP and UDP probes with the instance's name, so
// that a probe tells who answered, not only whether someone did.
type instanceServers struct {
	closers []interface{ Close() error }
}

func startServers(t *testing.T, ns, name string) *instanceServers {
	t.Helper()
	s := &instanceServers{}
	err := netns.DoNamed(ns, func() error {
		for _, svc := range probeServices {
			switch svc.proto {
			case 6:
				// Both families: [::] takes IPv4 too.
				ln, err := net.Listen("tcp", fmt.Sprintf(":%d", svc.port))
				if err != nil {
					return err
				}
				s.closers = append(s.closers, ln)
				go func() {
					for {
						c, err := ln.Accept()
						if err != nil {
							return
						}
						c.SetDeadline(time.Now().Add(probeTimeout))
						c.Write([]byte(name + "\n"))
						c.Close()
					}
				}()
			case 17:
				pc, err := net.ListenPacket("udp", fmt.Sprintf(":%d", svc.port))
				if err != nil {
					return err
				}
				s.closers = append(s.closers, pc)
				go func() {
					buf := make([]byte, 64)
					for {
						_, from, err := pc.ReadFrom(buf)
						if err != nil {
							return
						}
						pc.WriteTo([]byte(name), from)
					}
				}()
			}
		}
		return nil
	})
	if err != nil {
		s.close()
		t.Fatalf("servers in %s: %v", ns, err)
	}
	return s
}

func (s *instanceServers) close() {
	for _, c := range s.closers {
		c.Close()
	}
}

// probe sends svc from namespace ns to addr and returns who answered: the
// instance's name for TCP and UDP, "icmp" for an ICMP reply, "" for no
// answer.
func probe(ns string, addr netip.Addr, svc probeService) (string, error) {
	switch svc.proto {
	case 6:
		return probeTCP(ns, addr, svc.port)
	case 17:
		return probeUDP(ns, addr, svc.port, 0)
	default:
		return probeICMP(ns, addr, svc)
	}
}

func probeTCP(ns string, addr netip.Addr, port int) (string, error) {
	var c net.Conn
	err := netns.DoNamed(ns, func() error {
		var err error
		c, err = net.DialTimeout("tcp", netip.AddrPortFrom(addr, uint16(port)).String(), probeTimeout)
		return err
	})
	var nerr net.Error
	switch {
	case errors.As(err, &nerr) && nerr.Timeout(), errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "", nil
	case err != nil:
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(probeTimeout))
	buf := make([]byte, 64)
	n, _ := c.Read(buf)
	return strings.TrimSpace(string(buf[:n])), nil
}

// probeUDP asks addr:port who it is from source port sport (0: any),
// resending as a UDP client does.
func probeUDP(ns string, addr netip.Addr, port, sport int) (string, error) {
	var c net.Conn
	err := netns.DoNamed(ns, func() error {
		var err error
		network := "udp4"
		if addr.Is6() {
			network = "udp6"
		}
		c, err = net.DialUDP(network, &net.UDPAddr{Port: sport}, net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, uint16(port))))
		return err
	})
	if err != nil {
		return "", err
	}
	defer c.Close()
	buf := make([]byte, 64)
	for range probeTries {
		c.Write([]byte("who"))
		c.SetReadDeadline(time.Now().Add(probeResend))
		if n, err := c.Read(buf); err == nil {
			return string(buf[:n]), nil
		}
	}
	return "", nil
}

// probeICMP sends an ICMP (ICMPv6) request of svc's type and code with a
// random identifier from a raw socket and waits for the reply type that
// answers it, from addr, with that identifier.
func probeICMP(ns string, addr netip.Addr, svc probeService) (string, error) {
	var c net.PacketConn
	err := netns.DoNamed(ns, func() error {
		var err error
		if addr.Is6() {
			// The kernel sums ICMPv6 messages of raw sockets itself.
			c, err = net.ListenPacket("ip6:ipv6-icmp", "::")
		} else {
			c, err = net.ListenPacket("ip4:icmp", "0.0.0.0")
		}
		return err
	})
	if err != nil {
		return "", err
	}
	defer c.Close()
	id := uint16(rand.Uint32())
	msg := make([]byte, 8, 28)
	msg[0], msg[1] = byte(svc.icmpType), byte(svc.icmpCode)
	binary.BigEndian.PutUint16(msg[4:], id)
	if svc.icmpType == 13 { // timestamp request: three 32-bit timestamps
		msg = msg[:20]
	} else {
		msg = append(msg, "nsnet-probe"...)
	}
	binary.BigEndian.PutUint16(msg[2:], icmpChecksum(msg))
	dst := &net.IPAddr{IP: addr.AsSlice()}
	buf := make([]byte, 1500)
	for range probeTries {
		if _, err := c.WriteTo(msg, dst); err != nil {
			return "", nil // e.g. no route: nobody answers
		}
		deadline := time.Now().Add(probeResend)
		c.SetReadDeadline(deadline)
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				break
			}
			if n >= 8 && from.String() == addr.String() && int(buf[0]) == svc.icmpExpect && binary.BigEndian.Uint16(buf[4:]) == id {
				return "icmp", nil
			}
		}
	}
	return "", nil
}

func icmpChecksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// probeCell is one cell of the matrix: a service sent from a port's
// instance to an address.
type probeCell struct {
	src  string // port name
	ns   string // the namespace of src's instance
	addr netip.Addr
	svc  probeService
}

func (c probeCell) String() string {
	return fmt.Sprintf("%s → %s %s", c.src, c.addr, c.svc.name)
}

// probeAll probes every cell at once and returns who answered each.
func probeAll(cells []probeCell) ([]string, error) {
	got := make([]string, len(cells))
	errs := make([]error, len(cells))
	var wg sync.WaitGroup
	for i, c := range cells {
		wg.Go(func() { got[i], errs[i] = probe(c.ns, c.addr, c.svc) })
	}
	wg.Wait()
	return got, errors.Join(errs...)
}
