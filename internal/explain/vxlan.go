package explain

import (
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"

	"github.com/nsnet/nsnet/internal/dataplane"
)

// bridgeCmd is a bridge(8) command in namespace ns.
func bridgeCmd(ns string, args ...string) string {
	if ns != "" {
		args = append([]string{"-n", ns}, args...)
	}
	return shellJoin(append([]string{"bridge"}, args...))
}

// vxlanCommands are the commands that make network id's VXLAN device in
// ns as nsnet made it: the device with its fixed attributes, its
// settings (after its bridge, its master, exists), its forwarding entries
// and the neighbour entries its ARP/ND proxy answers from. Nothing when
// the network has no VXLAN device there.
func vxlanCommands(ns *namespace, networkID string) ([]string, error) {
	alias := dataplane.VXLANAlias(networkID)
	link := ns.byAlias(alias)
	if link == nil {
		return nil, nil
	}
	vx, ok := link.(*netlink.Vxlan)
	if !ok {
		return nil, fmt.Errorf("link %s labelled %s is a %s, not a VXLAN device", link.Attrs().Name, alias, link.Type())
	}
	name := vx.Attrs().Name
	add := []string{"link", "add", name, "type", "vxlan", "id", fmt.Sprint(vx.VxlanId)}
	if local, ok := netip.AddrFromSlice(vx.SrcAddr); ok {
		add = append(add, "local", local.Unmap().String())
	}
	add = append(add, "dstport", fmt.Sprint(vx.Port))
	if !vx.Learning {
		add = append(add, "nolearning")
	}
	if vx.Proxy {
		add = append(add, "proxy")
	}
	cmds := []string{ip(ns.name, add...), ip(ns.name, linkSettings(ns, link, true)...)}

	h, err := dataplane.OpenNamespace(ns.name)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	links := dataplane.NewLinks(h.Handle)
	fdb, err := dataplane.FDBEntries(links, name, alias)
	if err != nil {
		return nil, err
	}
	dataplane.SortFDB(fdb)
	for _, e := range fdb {
		cmds = append(cmds, bridgeCmd(ns.name, "fdb", "append", e.MAC.String(), "dev", name, "dst", e.Dst.String(), "self", "permanent"))
	}
	neighs, err := dataplane.NeighEntries(links, name, alias)
	if err != nil {
		return nil, err
	}
	for _, n := range neighs {
		cmds = append(cmds, ip(ns.name, "neigh", "replace", n.IP.String(), "lladdr", n.MAC.String(), "dev", name, "nud", "permanent"))
	}
	return cmds, nil
}
