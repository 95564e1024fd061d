package dataplane

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"

	"golang.org/x/sys/unix"

	"github.com/nsnet/nsnet/internal/netns"
)

// AnnounceARP sends one gratuitous ARP for addr out of the interface
// ifname of ns: an ARP request from the interface's MAC to broadcast whose
// sender and target address are both addr, as `arping -U` sends. Nobody
// answers it; every neighbour that has addr cached takes the new MAC (Linux
// does so for a gratuitous request even with arp_accept off).
//
// The packet socket is opened inside ns, through internal/netns, and used
// from here: a socket keeps the namespace it was made in.
func AnnounceARP(ns *Namespace, ifname string, addr netip.Addr) error {
	return AnnounceARPs(ns, ifname, []netip.Addr{addr})
}

// AnnounceARPs sends one gratuitous ARP for each of addrs out of ifname
// of ns, as AnnounceARP does, through one packet socket: entering a
// namespace to open a socket costs a thread switch, which for a router
// gaining a thousand floating IPs at once would dominate.
func AnnounceARPs(ns *Namespace, ifname string, addrs []netip.Addr) error {
	if len(addrs) == 0 {
		return nil
	}
	for _, a := range addrs {
		if !a.Is4() {
			return fmt.Errorf("announce %v: ARP is IPv4 only", a)
		}
	}
	link, err := ns.Handle.LinkByName(ifname)
	if err != nil {
		return fmt.Errorf("announce on %s: read it in namespace %s: %w", ifname, ns.Name, err)
	}
	mac := link.Attrs().HardwareAddr
	if len(mac) != 6 {
		return fmt.Errorf("announce on %s: it has no Ethernet address", ifname)
	}
	var fd int
	err = netns.Do(ns.fd, func() error {
		var err error
		// Protocol 0: this socket sends, and receives nothing.
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		return err
	})
	if err != nil {
		return fmt.Errorf("announce on %s: packet socket in namespace %s: %w", ifname, ns.Name, err)
	}
	// Closing a packet socket waits for an RCU grace period (milliseconds)
	// and the packets are already queued by then: nobody needs to wait.
	defer func() { go unix.Close(fd) }()
	to := &unix.SockaddrLinklayer{
		Protocol: htons(unix.ETH_P_ARP),
		Ifindex:  link.Attrs().Index,
		Halen:    6,
		Addr:     [8]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
	}
	for _, a := range addrs {
		if err := unix.Sendto(fd, garp(mac, a), 0, to); err != nil {
			return fmt.Errorf("announce %v on %s in namespace %s: %w", a, ifname, ns.Name, err)
		}
	}
	return nil
}

// garp is the ARP payload (the kernel adds the Ethernet header of a
// SOCK_DGRAM packet socket) of a gratuitous request for addr from mac.
func garp(mac net.HardwareAddr, addr netip.Addr) []byte {
	ip := addr.As4()
	b := make([]byte, 0, 28)
	b = binary.BigEndian.AppendUint16(b, 1)             // hardware: Ethernet
	b = binary.BigEndian.AppendUint16(b, unix.ETH_P_IP) // protocol: IPv4
	b = append(b, 6, 4)                                 // address lengths
	b = binary.BigEndian.AppendUint16(b, 1)             // request
	b = append(b, mac...)                               // sender MAC
	b = append(b, ip[:]...)                             // sender IP
	b = append(b, 0, 0, 0, 0, 0, 0)                     // target MAC: unknown
	return append(b, ip[:]...)                          // target IP: the same
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
