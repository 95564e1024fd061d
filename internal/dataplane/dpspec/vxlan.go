package dpspec

import (
	"bytes"
	"net"
	"net/netip"
	"slices"
)

// VXLANPort is the IANA port of VXLAN (Linux's own default is 8472, the
// port of its first implementation, so it is always set).
const VXLANPort = 4789

// VXLANSpec is a network's VXLAN device as nsnet wants it.
type VXLANSpec struct {
	Name  string // model.VXLANName
	Alias string // VXLANAlias
	VNI   int
	// Local is this host's VTEP address, the outer source of what the
	// device sends.
	Local netip.Addr
	// Port is the UDP destination port; zero means VXLANPort.
	Port int
	// Bridge is the network's bridge the device is a port of, labelled
	// BridgeAlias.
	Bridge, BridgeAlias string
	MTU                 int
	Up                  bool
}

// FDBEntry is a forwarding entry of a VXLAN device: frames to MAC go to
// the VTEP Dst. The all-zero MAC (FloodMAC) is head-end replication: one
// entry per remote host that has the network.
type FDBEntry struct {
	MAC net.HardwareAddr
	Dst netip.Addr
}

// FloodMAC is the MAC of the entries that replicate broadcast, multicast
// and unknown unicast frames.
var FloodMAC = net.HardwareAddr{0, 0, 0, 0, 0, 0}

func (e FDBEntry) String() string { return e.MAC.String() + " dst " + e.Dst.String() }

// NeighEntry is a neighbour entry of a VXLAN device, which its proxy
// answers ARP requests (IPv4) and neighbour solicitations (IPv6) from.
type NeighEntry struct {
	IP  netip.Addr
	MAC net.HardwareAddr
}

func (e NeighEntry) String() string { return e.IP.String() + " lladdr " + e.MAC.String() }

// SortFDB orders entries by MAC then destination, for stable output (the
// order of dataplane.UpdateEntries's arguments).
func SortFDB(entries []FDBEntry) { slices.SortFunc(entries, CompareFDB) }

// CompareFDB orders forwarding entries by MAC then destination. The MACs
// compare as bytes, which for MACs of one length is the order of their
// text, without making it.
func CompareFDB(a, b FDBEntry) int {
	if c := bytes.Compare(a.MAC, b.MAC); c != 0 {
		return c
	}
	return a.Dst.Compare(b.Dst)
}

// CompareNeigh orders neighbour entries by address, then MAC: the order
// of dataplane.UpdateEntries's arguments.
func CompareNeigh(a, b NeighEntry) int {
	if c := a.IP.Compare(b.IP); c != 0 {
		return c
	}
	return bytes.Compare(a.MAC, b.MAC)
}

// L2Entries are what L2 population programs on a VXLAN device:
// forwarding entries sorted by CompareFDB, neighbour entries sorted by
// CompareNeigh.
type L2Entries struct {
	FDB   []FDBEntry
	Neigh []NeighEntry
}
