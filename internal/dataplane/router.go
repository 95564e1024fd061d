package dataplane

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/nsnet/nsnet/internal/netns"
)

// A router is a namespace like an instance's (named by the caller,
// <prefix>qrouter-<id>, marked by the alias of its lo), forwarding, with
// one veth port per attached subnet (qr-…) and one on the external network
// (qg-…): the same pairs as instance ports, built by EnsureVethPort, their
// host ends (tap…) on the networks' bridges. Its NAT is internal/nat's.

// Sysctl is a network sysctl of a namespace and the value nsnet wants.
type Sysctl struct{ Key, Value string }

// RouterSysctls are the sysctls of every router namespace.
var RouterSysctls = []Sysctl{
	{"net.ipv4.ip_forward", "1"},
	// Strict reverse-path filtering: a router's routing table is the
	// whole truth about where each source lives (its subnets, its static
	// routes, the rest via the gateway), so a packet arriving on qg-
	// claiming an internal source is spoofed and dropped. The kernel
	// applies max(all, interface), so default is set too, for the
	// interfaces plugged in later.
	{"net.ipv4.conf.all.rp_filter", "1"},
	{"net.ipv4.conf.default.rp_filter", "1"},
	// No ICMP redirects: a hairpinned connection (an instance reaching a
	// floating IP of its own subnet) leaves by the interface it came in
	// on, which is exactly when the kernel would tell the client to go
	// straight to the server's fixed address, and break it. The kernel
	// sends redirects if all or the interface allows them, so both are
	// off.
	{"net.ipv4.conf.all.send_redirects", "0"},
	{"net.ipv4.conf.default.send_redirects", "0"},
	// IPv6 is routed, never translated. Writing all.forwarding turns it
	// on for every interface and for default, so for those plugged in
	// later. A forwarding interface ignores router advertisements unless
	// accept_ra is 2; nsnet never sets 2, and sets accept_ra 0 on every
	// router port itself (PortSpec.AcceptRA), so a router's routes are
	// only those nsnet programs.
	{"net.ipv6.conf.all.forwarding", "1"},
	{"net.ipv6.conf.default.accept_ra", "0"},
}

// HostNATSysctls are the sysctls of a host namespace doing host NAT (the
// gateway of its networks on their bridges): it forwards.
var HostNATSysctls = []Sysctl{{"net.ipv4.ip_forward", "1"}}

// EnsureSysctls gives each sysctl of list its value in ns, and reports
// whether it wrote any.
func EnsureSysctls(ns *Namespace, list []Sysctl) (changed bool, err error) {
	changed, err = netns.EnsureSysctls(ns.fd, toNetns(list)...)
	if err != nil {
		return changed, fmt.Errorf("in namespace %s: %w", ns.Name, err)
	}
	return changed, nil
}

// EnsureRouterNetns makes the named router namespace exist, marked with
// marker (see RouterMarker), with lo up and RouterSysctls set, and returns
// it open; the caller closes it. A namespace of that name without that
// marker is a NotOwnedError and is left alone. Delete it with
// DeleteRouterNetns.
func EnsureRouterNetns(name, marker string) (ns *Namespace, changed bool, err error) {
	if _, _, ok := ParseRouterMarker(marker); !ok {
		return nil, false, fmt.Errorf("%q is not a router marker", marker)
	}
	// The marking and lo are an instance namespace's; only the marker's
	// kind and the sysctls differ.
	ns, changed, err = EnsureInstanceNetns(name, marker)
	if err != nil {
		return nil, false, err
	}
	c, err := EnsureSysctls(ns, RouterSysctls)
	if err != nil {
		ns.Close()
		return nil, changed, err
	}
	return ns, changed || c, nil
}

// DeleteRouterNetns deletes the named router namespace if it carries
// marker, with its qr-/qg- pairs, as DeleteInstanceNetns does for an
// instance (whose rules it follows), and so its nft table.
func DeleteRouterNetns(name, marker string, host *Links) error {
	return DeleteInstanceNetns(name, marker, host)
}

// ListRouterNamespaces returns the namespaces whose names start with
// prefix and that carry an nsnet router marker (of any host), with their
// markers.
func ListRouterNamespaces(prefix string) (map[string]string, error) {
	return listMarked(prefix, ParseRouterMarker)
}

// EnsureRouterGateway makes the gateway port of router exist as spec says,
// floating addresses included, and removes floating addresses no longer
// associated. Each IPv4 address that appears on qg- — the gateway's own
// when the port is new, and every newly associated floating IP — is then
// announced with a gratuitous ARP, so that upstream neighbours (the
// external gateway above all) drop whatever MAC they had cached for it.
// Withdrawal is the address going: the router stops answering ARP for it.
func EnsureRouterGateway(host *Links, router *Namespace, spec GatewaySpec) (changed bool, err error) {
	port := spec.Port
	port.Addrs = slices.Clone(port.Addrs)
	// A set, not a search of the list: a router may have ten thousand.
	has := make(map[netip.Prefix]bool, len(port.Addrs)+len(spec.FloatingIPs))
	for _, p := range port.Addrs {
		has[p] = true
	}
	for _, f := range spec.FloatingIPs {
		if !f.Is4() {
			return false, fmt.Errorf("floating IP %v: only IPv4 floating IPs are supported", f)
		}
		if p := netip.PrefixFrom(f, 32); !has[p] {
			has[p] = true
			port.Addrs = append(port.Addrs, p)
		}
	}
	before, err := addrsOf(router, port.IfName, port.Alias)
	if err != nil {
		return false, err
	}
	changed, err = EnsureVethPort(host, router, port)
	if err != nil || !port.Up {
		return changed, err
	}
	var fresh []netip.Addr
	for _, p := range port.Addrs {
		if !before[p] && p.Addr().Is4() {
			fresh = append(fresh, p.Addr())
		}
	}
	return changed, AnnounceARPs(router, port.IfName, fresh)
}

// addrsOf returns the addresses of nsnet's link name (labelled alias) in
// ns, or none if it is missing or not nsnet's (EnsureVethPort will say so).
func addrsOf(ns *Namespace, name, alias string) (map[netip.Prefix]bool, error) {
	link, err := NewLinks(ns.Handle).Get(name)
	if err != nil || link == nil || link.Attrs().Alias != alias {
		return map[netip.Prefix]bool{}, err
	}
	have, err := listAddrs(ns.Handle, link)
	if err != nil {
		return nil, fmt.Errorf("in namespace %s: %w", ns.Name, err)
	}
	set := make(map[netip.Prefix]bool, len(have))
	for p := range have {
		set[p] = true
	}
	return set, nil
}

// EnsureLinkAddrs makes the addresses of nsnet's link name (labelled
// alias) in l's namespace the wanted ones: for host NAT, the gateway
// address of a network on its bridge. A link of that name that is not
// nsnet's is a NotOwnedError.
func EnsureLinkAddrs(l *Links, name, alias string, addrs []netip.Prefix) (changed bool, err error) {
	link, err := l.Get(name)
	if err != nil {
		return false, err
	}
	if link == nil {
		return false, fmt.Errorf("link %s does not exist", name)
	}
	if !owns(link, alias) {
		return false, notOwnedLink(link)
	}
	return ensureAddrs(l.h, link, addrs, false, false)
}

// UpdateGatewayAddrs adds the floating addresses add to, and removes
// remove from, nsnet's gateway link ifname (labelled alias) in router, as
// /32s, and announces each added one with a gratuitous ARP. It is
// EnsureRouterGateway for a caller that knows what changed: it touches
// only those addresses and never lists the link's others, so its cost does
// not grow with the number of floating IPs the router already has.
// Adding an address that is there, or removing one that is not, is no
// change.
func UpdateGatewayAddrs(router *Namespace, ifname, alias string, add, remove []netip.Addr) (changed bool, err error) {
	link, err := NewLinks(router.Handle).Get(ifname)
	if err != nil {
		return false, fmt.Errorf("in namespace %s: %w", router.Name, err)
	}
	if link == nil {
		return false, fmt.Errorf("link %s does not exist in namespace %s", ifname, router.Name)
	}
	if link.Attrs().Alias != alias {
		return false, &NotOwnedError{Object: fmt.Sprintf("link %s in namespace %s", ifname, router.Name), Mark: link.Attrs().Alias}
	}
	for _, a := range remove {
		err := router.Handle.AddrDel(link, &netlink.Addr{IPNet: prefixToIPNet(netip.PrefixFrom(a, 32))})
		switch {
		case errors.Is(err, unix.EADDRNOTAVAIL):
		case err != nil:
			return changed, fmt.Errorf("remove address %s from %s in namespace %s: %w", a, ifname, router.Name, err)
		default:
			changed = true
		}
	}
	var fresh []netip.Addr
	for _, a := range add {
		if !a.Is4() {
			return changed, fmt.Errorf("floating IP %v: only IPv4 floating IPs are supported", a)
		}
		err := router.Handle.AddrAdd(link, &netlink.Addr{IPNet: prefixToIPNet(netip.PrefixFrom(a, 32))})
		switch {
		case errors.Is(err, unix.EEXIST):
		case err != nil:
			return changed, fmt.Errorf("add address %s to %s in namespace %s: %w", a, ifname, router.Name, err)
		default:
			changed = true
			fresh = append(fresh, a)
		}
	}
	if link.Attrs().Flags&net.FlagUp == 0 {
		return changed, nil
	}
	return changed, AnnounceARPs(router, ifname, fresh)
}
