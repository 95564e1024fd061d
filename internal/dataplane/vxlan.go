package dataplane

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The overlay between hosts: a VXLAN device per network on each host that
// has the network, a port of the network's bridge, with its forwarding
// entries and ARP/ND proxy programmed from what the store knows (L2
// population, as Neutron's l2population driver does for its Linux bridge
// agent) rather than learned:
//
//   - learning off: the device never adds a forwarding entry from a frame
//     it receives, so what it forwards is exactly what nsnet wrote;
//   - a static entry per remote port's MAC, "dst <remote VTEP>";
//   - all-zero MAC entries, one per remote host that has the network:
//     head-end replication of broadcast, multicast and unknown unicast to
//     those hosts only (a host without the network never gets a frame);
//   - proxy on, with a neighbour entry per remote port's address: the
//     device answers ARP requests and neighbour solicitations for remote
//     ports itself, and they never cross the underlay.
//
// What the device holds is nsnet's by the device: the device carries the
// alias VXLANAlias, and every forwarding and neighbour entry on it is
// nsnet's to keep or remove.

// vxlanPort is the UDP destination port of s's device.
func vxlanPort(s VXLANSpec) int {
	if s.Port == 0 {
		return VXLANPort
	}
	return s.Port
}

// EnsureVXLAN makes the VXLAN device exist as spec says, a port of its
// bridge. What cannot change on a live device (the VNI, the local
// address, the port, learning and proxy) is made by replacing it; the
// alias, MTU, master and state are set in place.
func EnsureVXLAN(l *Links, spec VXLANSpec) (changed bool, err error) {
	br, err := l.Get(spec.Bridge)
	if err != nil {
		return false, err
	}
	if br == nil || !owns(br, spec.BridgeAlias) {
		return false, fmt.Errorf("VXLAN device %s: bridge %s is not nsnet's network bridge", spec.Name, spec.Bridge)
	}
	link, err := l.Get(spec.Name)
	if err != nil {
		return false, err
	}
	if link != nil {
		if !owns(link, spec.Alias) {
			return false, notOwnedLink(link)
		}
		if vx, ok := link.(*netlink.Vxlan); !ok || !sameVXLAN(vx, spec) {
			if _, err := DeleteLink(l, spec.Name, spec.Alias); err != nil {
				return true, err
			}
			link = nil
		}
	}
	if link == nil {
		if err := createVXLAN(l, spec); err != nil {
			return true, err
		}
		if link, err = l.Get(spec.Name); err != nil || link == nil {
			return true, fmt.Errorf("read VXLAN device %s after creating it: %w", spec.Name, err)
		}
		changed = true
	}
	c, err := setLinkAttrs(l, link, linkState{Alias: spec.Alias, MTU: spec.MTU, Master: br.Attrs().Index, Up: spec.Up})
	return changed || c, err
}

// sameVXLAN reports whether the device's fixed attributes are spec's.
func sameVXLAN(vx *netlink.Vxlan, spec VXLANSpec) bool {
	local, _ := netip.AddrFromSlice(vx.SrcAddr)
	return vx.VxlanId == spec.VNI && local.Unmap() == spec.Local && vx.Port == vxlanPort(spec) &&
		!vx.Learning && vx.Proxy
}

func createVXLAN(l *Links, spec VXLANSpec) error {
	if !spec.Local.IsValid() {
		return fmt.Errorf("VXLAN device %s: no local VTEP address", spec.Name)
	}
	attrs := netlink.NewLinkAttrs()
	attrs.Name = spec.Name
	attrs.MTU = spec.MTU
	attrs.HardwareAddr = birthMAC(spec.Alias)
	vx := &netlink.Vxlan{LinkAttrs: attrs, VxlanId: spec.VNI, SrcAddr: net.IP(spec.Local.AsSlice()),
		Port: vxlanPort(spec), Learning: false, Proxy: true}
	defer l.forget(spec.Name)
	if err := l.h.LinkAdd(vx); err != nil {
		return fmt.Errorf("create VXLAN device %s (VNI %d): %w", spec.Name, spec.VNI, err)
	}
	if err := l.h.LinkSetAlias(vx, spec.Alias); err != nil {
		return fmt.Errorf("label VXLAN device %s: %w", spec.Name, err)
	}
	return nil
}

// fdbKey is e as a map key.
func fdbKey(e FDBEntry) string { return e.MAC.String() + " " + e.Dst.String() }

// vxlanDevice returns the VXLAN device name labelled alias, or an error
// if it is missing or not nsnet's.
func vxlanDevice(l *Links, name, alias string) (netlink.Link, error) {
	link, err := l.Get(name)
	if err != nil {
		return nil, err
	}
	if link == nil {
		return nil, fmt.Errorf("VXLAN device %s does not exist", name)
	}
	if !owns(link, alias) {
		return nil, notOwnedLink(link)
	}
	if link.Type() != "vxlan" {
		return nil, fmt.Errorf("link %s is a %s, not a VXLAN device", name, link.Type())
	}
	return link, nil
}

// FDBEntries reads the forwarding entries of the VXLAN device: those
// with a remote destination, the only kind nsnet writes (the bridge's own
// entries for the port, flagged master, are the bridge's).
func FDBEntries(l *Links, name, alias string) ([]FDBEntry, error) {
	link, err := vxlanDevice(l, name, alias)
	if err != nil {
		return nil, err
	}
	return fdbEntries(l, link)
}

func fdbEntries(l *Links, link netlink.Link) ([]FDBEntry, error) {
	neighs, err := l.h.NeighList(link.Attrs().Index, unix.AF_BRIDGE)
	if err != nil {
		return nil, fmt.Errorf("read forwarding entries of %s: %w", link.Attrs().Name, err)
	}
	var out []FDBEntry
	for _, n := range neighs {
		if n.LinkIndex != link.Attrs().Index || n.Flags&netlink.NTF_SELF == 0 || n.IP == nil {
			continue
		}
		dst, ok := netip.AddrFromSlice(n.IP)
		if !ok {
			continue
		}
		out = append(out, FDBEntry{MAC: n.HardwareAddr, Dst: dst.Unmap()})
	}
	return out, nil
}

// EnsureFDB makes the VXLAN device's forwarding entries exactly want:
// it reads them, removes those not wanted (a MAC that moved to another
// host loses its old destination first) and appends the missing ones.
func EnsureFDB(l *Links, name, alias string, want []FDBEntry) (changed bool, err error) {
	link, err := vxlanDevice(l, name, alias)
	if err != nil {
		return false, err
	}
	have, err := fdbEntries(l, link)
	if err != nil {
		return false, err
	}
	wanted := map[string]bool{}
	for _, e := range want {
		wanted[fdbKey(e)] = true
	}
	present := map[string]bool{}
	for _, e := range have {
		present[fdbKey(e)] = true
		if wanted[fdbKey(e)] {
			continue
		}
		if err := l.h.NeighDel(fdbNeigh(link, e)); err != nil && !isNotFound(err) {
			return changed, fmt.Errorf("remove forwarding entry %s from %s: %w", e, name, err)
		}
		changed = true
	}
	for _, e := range want {
		if present[fdbKey(e)] {
			continue
		}
		present[fdbKey(e)] = true
		// Append: the all-zero MAC has one entry per destination.
		if err := l.h.NeighAppend(fdbNeigh(link, e)); err != nil {
			return changed, fmt.Errorf("add forwarding entry %s to %s: %w", e, name, err)
		}
		changed = true
	}
	return changed, nil
}

func fdbNeigh(link netlink.Link, e FDBEntry) *netlink.Neigh {
	return &netlink.Neigh{LinkIndex: link.Attrs().Index, Family: unix.AF_BRIDGE, Flags: netlink.NTF_SELF,
		State: netlink.NUD_PERMANENT | netlink.NUD_NOARP, HardwareAddr: e.MAC, IP: net.IP(e.Dst.AsSlice())}
}

// NeighEntries reads the permanent neighbour entries of the VXLAN
// device, IPv4 and IPv6.
func NeighEntries(l *Links, name, alias string) ([]NeighEntry, error) {
	link, err := vxlanDevice(l, name, alias)
	if err != nil {
		return nil, err
	}
	return neighEntries(l, link)
}

func neighEntries(l *Links, link netlink.Link) ([]NeighEntry, error) {
	var out []NeighEntry
	for _, family := range []int{unix.AF_INET, unix.AF_INET6} {
		neighs, err := l.h.NeighList(link.Attrs().Index, family)
		if err != nil {
			return nil, fmt.Errorf("read neighbour entries of %s: %w", link.Attrs().Name, err)
		}
		for _, n := range neighs {
			// The kernel's own entries (the multicast groups the
			// device's link-local address reports, NOARP) are not
			// nsnet's: only permanent ones are.
			ip, ok := netip.AddrFromSlice(n.IP)
			if !ok || n.LinkIndex != link.Attrs().Index || n.State&netlink.NUD_PERMANENT == 0 {
				continue
			}
			out = append(out, NeighEntry{IP: ip.Unmap(), MAC: n.HardwareAddr})
		}
	}
	return out, nil
}

// EnsureNeighbours makes the VXLAN device's neighbour entries exactly
// want, permanent: it removes the others and replaces those missing or
// with another MAC.
func EnsureNeighbours(l *Links, name, alias string, want []NeighEntry) (changed bool, err error) {
	link, err := vxlanDevice(l, name, alias)
	if err != nil {
		return false, err
	}
	have, err := neighEntries(l, link)
	if err != nil {
		return false, err
	}
	wanted := map[netip.Addr]net.HardwareAddr{}
	for _, e := range want {
		wanted[e.IP] = e.MAC
	}
	held := map[netip.Addr]bool{}
	for _, e := range have {
		if mac, ok := wanted[e.IP]; ok && bytes.Equal(mac, e.MAC) {
			held[e.IP] = true
			continue
		}
		if _, ok := wanted[e.IP]; ok {
			continue // replaced below
		}
		if err := l.h.NeighDel(ipNeigh(link, e)); err != nil && !isNotFound(err) {
			return changed, fmt.Errorf("remove neighbour %s from %s: %w", e, name, err)
		}
		changed = true
	}
	for _, e := range want {
		if held[e.IP] {
			continue
		}
		held[e.IP] = true
		if err := l.h.NeighSet(ipNeigh(link, e)); err != nil {
			return changed, fmt.Errorf("set neighbour %s on %s: %w", e, name, err)
		}
		changed = true
	}
	return changed, nil
}

func ipNeigh(link netlink.Link, e NeighEntry) *netlink.Neigh {
	family := unix.AF_INET
	if e.IP.Is6() {
		family = unix.AF_INET6
	}
	return &netlink.Neigh{LinkIndex: link.Attrs().Index, Family: family, State: netlink.NUD_PERMANENT,
		IP: net.IP(e.IP.AsSlice()), HardwareAddr: e.MAC}
}

// VXLANDevices lists the VXLAN devices nsnet owns among l's links, by
// network id: what a reconciler compares with the networks it wants, to
// delete the leftovers (DeleteLink with the device's alias).
func VXLANDevices(l *Links) map[string]netlink.Link {
	out := map[string]netlink.Link{}
	for alias, link := range l.Owned() {
		if kind, id, ok := ParseAlias(alias); ok && kind == "vxlan" && link.Type() == "vxlan" {
			out[id] = link
		}
	}
	return out
}

// UpdateEntries changes the VXLAN device's entries from was, what it was
// last made to hold, to want, without reading its tables: it removes the
// forwarding entries was has and want lacks, then appends those want
// adds; it removes the neighbour entries of addresses want no longer
// has, and sets those it adds or gives another MAC. Its cost is the
// difference's, where EnsureFDB's and EnsureNeighbours's is the tables':
// a caller that knows the device holds was (it programmed it, nothing
// failed since) applies a change with it, and repairs drift with those.
func UpdateEntries(l *Links, name, alias string, was, want L2Entries) (changed bool, err error) {
	if !slices.IsSortedFunc(was.FDB, CompareFDB) || !slices.IsSortedFunc(want.FDB, CompareFDB) ||
		!slices.IsSortedFunc(was.Neigh, CompareNeigh) || !slices.IsSortedFunc(want.Neigh, CompareNeigh) {
		return false, fmt.Errorf("update entries of %s: entries not sorted", name)
	}
	delFDB, addFDB := diffSorted(was.FDB, want.FDB, CompareFDB)
	delNeigh, setNeigh := diffSorted(was.Neigh, want.Neigh, CompareNeigh)
	if len(delFDB)+len(addFDB)+len(delNeigh)+len(setNeigh) == 0 {
		return false, nil
	}
	link, err := vxlanDevice(l, name, alias)
	if err != nil {
		return false, err
	}
	// Removals first: a MAC that moved to another host loses its old
	// destination before it gets the new one (an append would keep both).
	for _, e := range delFDB {
		if err := l.h.NeighDel(fdbNeigh(link, e)); err != nil && !isNotFound(err) {
			return changed, fmt.Errorf("remove forwarding entry %s from %s: %w", e, name, err)
		}
		changed = true
	}
	for _, e := range addFDB {
		if err := l.h.NeighAppend(fdbNeigh(link, e)); err != nil {
			return changed, fmt.Errorf("add forwarding entry %s to %s: %w", e, name, err)
		}
		changed = true
	}
	kept := map[netip.Addr]bool{}
	for _, e := range setNeigh {
		kept[e.IP] = true
	}
	for _, e := range delNeigh {
		if kept[e.IP] {
			continue // another MAC: replaced below
		}
		if err := l.h.NeighDel(ipNeigh(link, e)); err != nil && !isNotFound(err) {
			return changed, fmt.Errorf("remove neighbour %s from %s: %w", e, name, err)
		}
		changed = true
	}
	for _, e := range setNeigh {
		if err := l.h.NeighSet(ipNeigh(link, e)); err != nil {
			return changed, fmt.Errorf("set neighbour %s on %s: %w", e, name, err)
		}
		changed = true
	}
	return changed, nil
}

// diffSorted walks two slices sorted by cmp together: del are the
// elements of was that want lacks, add those of want that was lacks.
func diffSorted[E any](was, want []E, cmp func(a, b E) int) (del, add []E) {
	i, j := 0, 0
	for i < len(was) && j < len(want) {
		switch c := cmp(was[i], want[j]); {
		case c < 0:
			del = append(del, was[i])
			i++
		case c > 0:
			add = append(add, want[j])
			j++
		default:
			i, j = i+1, j+1
		}
	}
	return append(del, was[i:]...), append(add, want[j:]...)
}
