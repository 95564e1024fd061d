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

// EnsureVethPort makes the veth pair of spec exist between the host
// namespace (host) and inst, as spec says. A pair that lost one end, or
// whose ends are not each other's peers (the port moved to another
// instance), is deleted and created again. A link in inst called IfName that
// is not nsnet's is a NotOwnedError.
func EnsureVethPort(host *Links, inst *Namespace, spec PortSpec) (changed bool, err error) {
	br, err := host.Get(spec.Bridge)
	if err != nil {
		return false, err
	}
	if br == nil {
		return false, fmt.Errorf("bridge %s does not exist", spec.Bridge)
	}
	if br.Type() != "bridge" {
		return false, fmt.Errorf("link %s is a %s, not a bridge", spec.Bridge, br.Type())
	}
	tap, err := host.Get(spec.TapName)
	if err != nil {
		return false, err
	}
	if tap != nil && !owns(tap, spec.Alias) {
		return false, notOwnedLink(tap)
	}
	inside := NewLinks(inst.Handle)
	peer, err := inside.Get(spec.IfName)
	if err != nil {
		return false, fmt.Errorf("in namespace %s: %w", inst.Name, err)
	}
	paired := tap != nil && peer != nil && arePeers(tap, peer)
	if peer != nil && !paired && peer.Attrs().Alias != spec.Alias {
		return false, &NotOwnedError{Object: fmt.Sprintf("link %s in namespace %s", spec.IfName, inst.Name), Mark: peer.Attrs().Alias}
	}

	// fresh: the pair is the one created here, as the kernel makes a
	// link: no hairpin, no address, which need no reading back.
	fresh := false
	if !paired {
		if err := removeBrokenPair(host, inside, tap, peer, spec); err != nil {
			return false, err
		}
		if tap, err = createPair(host, inst, br.Attrs().Index, spec); err != nil {
			return true, err
		}
		changed, fresh = true, true
		if peer, err = inside.Get(spec.IfName); err == nil && peer == nil {
			err = fmt.Errorf("link %s in namespace %s vanished after creation", spec.IfName, inst.Name)
		}
		if err != nil {
			return true, err
		}
	}

	// Read before setLinkAttrs, which makes the dump's answer stale.
	c, err := host.keepIPv6Off(spec.TapName)
	changed = changed || c
	if err != nil {
		return changed, fmt.Errorf("port %s: %w", spec.TapName, err)
	}
	c, err = setLinkAttrs(host, tap, linkState{Alias: spec.Alias, MTU: spec.MTU, Master: br.Attrs().Index, Up: spec.Up})
	changed = changed || c
	if err != nil {
		return changed, err
	}
	hairpin := false
	if !fresh {
		hairpin, err = host.hairpin(tap)
	}
	if err == nil && hairpin != spec.Hairpin {
		err = host.setHairpin(tap, spec.Hairpin)
		changed = true
	}
	if err != nil {
		return changed, err
	}
	// Before the link comes up: the router solicitation the kernel sends
	// once the link-local address is ready already follows AcceptRA.
	c, err = ensureAcceptRA(inst, spec)
	changed = changed || c
	if err != nil {
		return changed, err
	}
	c, err = setLinkAttrs(inside, peer, linkState{Alias: spec.Alias, MTU: spec.MTU, MAC: spec.MAC, Up: spec.Up})
	changed = changed || c
	if err != nil {
		return changed, fmt.Errorf("in namespace %s: %w", inst.Name, err)
	}
	if !spec.DHCPClient {
		c, err = ensureAddrs(inst.Handle, peer, spec.Addrs, spec.AcceptRA, fresh)
		changed = changed || c
		if err != nil {
			return changed, fmt.Errorf("in namespace %s: %w", inst.Name, err)
		}
	}
	if !spec.Up {
		// The kernel drops the routes of a link that goes down and
		// refuses gateways behind one: there is nothing to program
		// until the port is up again.
		return changed, nil
	}
	c, err = ensureRoutes(inst.Handle, peer, spec.Routes)
	changed = changed || c
	if err != nil {
		return changed, fmt.Errorf("in namespace %s: %w", inst.Name, err)
	}
	return changed, nil
}

// arePeers reports whether tap and peer are the two ends of one veth pair.
// A veth's IFLA_LINK is its peer's ifindex (in the peer's namespace).
func arePeers(tap, peer netlink.Link) bool {
	return tap.Type() == "veth" && peer.Type() == "veth" &&
		tap.Attrs().ParentIndex == peer.Attrs().Index &&
		peer.Attrs().ParentIndex == tap.Attrs().Index
}

// removeBrokenPair deletes what is left of a pair that is not whole: its
// host end (whose peer is gone or elsewhere) and an instance end of ours
// paired with some other link.
func removeBrokenPair(host, inside *Links, tap, peer netlink.Link, spec PortSpec) error {
	if tap != nil {
		if _, err := DeleteLink(host, spec.TapName, spec.Alias); err != nil {
			return fmt.Errorf("replace broken pair: %w", err)
		}
	}
	if peer != nil {
		if _, err := DeleteLink(inside, spec.IfName, spec.Alias); err != nil {
			return fmt.Errorf("replace broken pair: %w", err)
		}
	}
	return nil
}

// maxBridgePorts is how many ports a Linux bridge holds (BR_MAX_PORTS
// less port 0, which it does not use).
const maxBridgePorts = 1023

// createPair creates both ends with one RTM_NEWLINK: the host end in the
// host namespace and the peer directly in inst under its final name and
// MAC, so no half-named link is ever visible inside the instance. It
// returns the host end as created: enslaved, labelled, down and with its
// IPv6 off (setLinkAttrs brings it up).
//
// The host end is created down so that its IPv6 is off before it first
// comes up (disableIPv6): a bridge port is never addressed, and the
// kernel's IPv6 on it (a link-local address, its routes) is what every
// later up, down or carrier change of a link in the host namespace would
// walk, the whole host's worth, holding the RTNL lock the next port's
// creation waits for.
//
// It costs four requests (the library's create, its read of the new
// index, enslaving, the label) and the write of disable_ipv6 in the host
// namespace (a switch there, about 0.25 ms). One RTM_NEWLINK carrying
// IFLA_MASTER and NLM_F_ECHO, then the label (the kernel ignores
// IFLA_IFALIAS on create), would be two requests rather than four.
// Measured on 6.18 in a test namespace, both take the same 1.4 ms: the
// kernel's creation of the pair is the cost, not the round trips, so the
// library's way stays.
func createPair(host *Links, inst *Namespace, bridgeIndex int, spec PortSpec) (netlink.Link, error) {
	attrs := netlink.NewLinkAttrs()
	attrs.Name = spec.TapName
	attrs.MTU = spec.MTU
	attrs.HardwareAddr = birthMAC(spec.Alias)
	attrs.MasterIndex = bridgeIndex
	oneQueueEachWay(&attrs)
	veth := &netlink.Veth{
		LinkAttrs:        attrs,
		PeerName:         spec.IfName,
		PeerHardwareAddr: spec.MAC,
		PeerNamespace:    netlink.NsFd(inst.fd),
		PeerTxQLen:       -1,
	}
	defer host.forget(spec.TapName)
	host.madeHere(spec.TapName)
	if err := host.h.LinkAdd(veth); err != nil {
		if veth.Index != 0 {
			// Created but not enslaved: don't leave half a port behind.
			host.h.LinkDel(veth)
		}
		if errors.Is(err, unix.EXFULL) {
			// The kernel's bare "exchange full": its bridges number
			// their ports in 10 bits.
			err = fmt.Errorf("its network's bridge (ifindex %d) is full: a Linux bridge holds at most %d ports, so a network can have no more bound on one host: %w", bridgeIndex, maxBridgePorts, err)
		}
		return nil, fmt.Errorf("create veth %s (peer %s in %s): %w", spec.TapName, spec.IfName, inst.Name, err)
	}
	// Labelled right after, so that a failure leaves nothing that is not
	// nsnet's. The label goes first: a pass that failed in between finds
	// its own link, with disable_ipv6 at 0, which the next full pass
	// reads from its link dump and sets (keepIPv6Off).
	if err := host.h.LinkSetAlias(veth, spec.Alias); err != nil {
		return nil, fmt.Errorf("label %s: %w", spec.TapName, err)
	}
	veth.Alias = spec.Alias
	if _, err := host.disableIPv6(spec.TapName); err != nil {
		return nil, fmt.Errorf("port %s: %w", spec.TapName, err)
	}
	return veth, nil
}

// oneQueueEachWay asks for one transmit and one receive queue at both
// ends of the veth pair made of attrs (the peer takes the same counts):
// the real counts the kernel leaves a veth with anyway, but asked for,
// the kernel makes no queue per possible CPU that it then trims after
// registering the end, which waits for an expedited RCU grace period
// with the RTNL held, once per end: the slowest part of a port's
// create, and much slower while the kernel tears down a deleted
// namespace (docs/SCALE.md, "Port create → kernel's p99 at 10,000
// ports").
func oneQueueEachWay(attrs *netlink.LinkAttrs) {
	attrs.NumTxQueues, attrs.NumRxQueues = 1, 1
}

// ensureAcceptRA sets the IPv6 sysctls of the instance end of spec in ns:
// for a port that has IPv6, its autoconfiguration (see PortSpec.AcceptRA);
// for a port whose network has IPv6, the kernel's defaults of router
// solicitations and duplicate address detection, which the links of a
// namespace the previous nsnet made are born without
// (LegacyInstanceSysctls). In a namespace made since they are what the
// link has, so they cost two reads, in the switch that such a port's
// accept_ra settings already pay; without them, a port plugged into an
// old instance on a network with IPv6, or whose network gains it, would
// never solicit the router nor check its addresses. An IPv4-only port's
// are left as they are: entering the namespace for them would cost every
// port of a large host, and its firewall drops its solicitations.
func ensureAcceptRA(ns *Namespace, spec PortSpec) (changed bool, err error) {
	// Slashed keys: an interface name may hold dots.
	conf := "net/ipv6/conf/" + spec.IfName + "/"
	var want []netns.Sysctl
	if spec.AcceptRA || slices.ContainsFunc(spec.Addrs, func(a netip.Prefix) bool { return a.Addr().Is6() }) {
		v := "0"
		if spec.AcceptRA {
			v = "1"
		}
		want = append(want, netns.Sysctl{Key: conf + "accept_ra", Value: v}, netns.Sysctl{Key: conf + "autoconf", Value: v})
	}
	if spec.NetworkIPv6 {
		for _, s := range IPv6PortSysctls {
			want = append(want, netns.Sysctl{Key: conf + s.Key, Value: s.Value})
		}
	}
	if len(want) == 0 {
		return false, nil
	}
	changed, err = netns.EnsureSysctls(ns.fd, want...)
	if err != nil {
		return changed, fmt.Errorf("in namespace %s: %w", ns.Name, err)
	}
	return changed, nil
}

// ensureAddrs makes link's addresses the wanted ones, keeping the
// kernel's own link-local address and, when autoconf, the IPv6 addresses
// the kernel configured from router advertisements: those are not
// permanent (they have lifetimes), and every address nsnet adds is.
//
// A link-local address is nsnet's when it carries IFA_F_NODAD: nsnet adds
// every IPv6 address without duplicate address detection, and the kernel
// never marks its own so (it runs DAD, or only skips it, on the address
// it makes). So a link-local address nsnet asked for (the metadata
// service's fe80::a9fe:a9fe) goes when no longer wanted, and the kernel's
// stays.
//
// A fresh link (just created: none of nsnet's yet) is not read: what the
// kernel may have put on it meanwhile is its own link-local address, kept
// anyway.
func ensureAddrs(h *netlink.Handle, link netlink.Link, want []netip.Prefix, autoconf, fresh bool) (changed bool, err error) {
	have := map[netip.Prefix]*netlink.Addr{}
	if !fresh {
		if have, err = listAddrs(h, link); err != nil {
			return false, err
		}
	}
	wanted := make(map[netip.Prefix]bool, len(want))
	for _, p := range want {
		wanted[p] = true
	}
	for p, addr := range have {
		if wanted[p] || p.Addr().IsLinkLocalUnicast() && addr.Flags&unix.IFA_F_NODAD == 0 {
			continue
		}
		if autoconf && p.Addr().Is6() && addr.Flags&unix.IFA_F_PERMANENT == 0 {
			continue
		}
		if err := h.AddrDel(link, addr); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
			return changed, fmt.Errorf("remove address %s from %s: %w", p, link.Attrs().Name, err)
		}
		changed = true
	}
	if changed {
		// Removing a primary IPv4 address can take its secondaries with
		// it: read again rather than assume.
		if have, err = listAddrs(h, link); err != nil {
			return changed, err
		}
	}
	for _, p := range want {
		if _, ok := have[p]; ok {
			continue
		}
		addr := &netlink.Addr{IPNet: prefixToIPNet(p)}
		if p.Addr().Is6() {
			// IPAM made the address unique; don't keep it unusable for
			// the second DAD takes.
			addr.Flags = unix.IFA_F_NODAD
		}
		err := h.AddrAdd(link, addr)
		if fresh && errors.Is(err, unix.EEXIST) {
			// The kernel's meanwhile (autoconfigured): a read would
			// have found it, and kept it.
			continue
		}
		if err != nil {
			return changed, fmt.Errorf("add address %s to %s: %w", p, link.Attrs().Name, err)
		}
		changed = true
	}
	return changed, nil
}

// DropPortAddrs removes addrs, those it has, from nsnet's link ifname
// (labelled alias) in ns: the addresses nsnet set on a port that has
// become a DHCP client's. A missing link has none.
func DropPortAddrs(ns *Namespace, ifname, alias string, addrs []netip.Prefix) (changed bool, err error) {
	link, err := NewLinks(ns.Handle).Get(ifname)
	if err != nil || link == nil {
		return false, err
	}
	if link.Attrs().Alias != alias {
		return false, &NotOwnedError{Object: fmt.Sprintf("link %s in namespace %s", ifname, ns.Name), Mark: link.Attrs().Alias}
	}
	for _, p := range addrs {
		err := ns.Handle.AddrDel(link, &netlink.Addr{IPNet: prefixToIPNet(p)})
		switch {
		case errors.Is(err, unix.EADDRNOTAVAIL):
		case err != nil:
			return changed, fmt.Errorf("remove address %s from %s in namespace %s: %w", p, ifname, ns.Name, err)
		default:
			changed = true
		}
	}
	return changed, nil
}

func listAddrs(h *netlink.Handle, link netlink.Link) (map[netip.Prefix]*netlink.Addr, error) {
	list, err := h.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("list addresses of %s: %w", link.Attrs().Name, err)
	}
	have := make(map[netip.Prefix]*netlink.Addr, len(list))
	for i := range list {
		if p, ok := ipNetToPrefix(list[i].IPNet); ok {
			have[p] = &list[i]
		}
	}
	return have, nil
}

// ensureRoutes makes the main-table routes nsnet owns out of link the
// wanted ones. A wanted route whose destination is taken by one of nsnet's
// routes out of another link (the default route moving between ports) is
// replaced; one taken by a route nsnet did not install is a NotOwnedError.
func ensureRoutes(h *netlink.Handle, link netlink.Link, want []Route) (changed bool, err error) {
	routes, err := h.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return false, fmt.Errorf("list routes: %w", err)
	}
	ifindex := link.Attrs().Index
	byDst := map[netip.Prefix]netlink.Route{}
	for _, r := range routes {
		dst := routeDst(r)
		if r.Protocol == RouteProtocol && r.LinkIndex == ifindex && !wantsDst(want, dst) {
			if err := h.RouteDel(&r); err != nil && !errors.Is(err, unix.ESRCH) {
				return changed, fmt.Errorf("remove route %s: %w", dst, err)
			}
			changed = true
			continue
		}
		if r.Priority == defaultMetric(dst) && len(r.MultiPath) == 0 {
			byDst[dst] = r
		}
	}
	for _, w := range want {
		nr := &netlink.Route{
			LinkIndex: ifindex,
			Dst:       prefixToIPNet(w.Dst),
			Gw:        net.IP(w.Gw.AsSlice()),
			Protocol:  RouteProtocol,
			Table:     unix.RT_TABLE_MAIN,
		}
		cur, exists := byDst[w.Dst]
		switch {
		case !exists:
			err = h.RouteAdd(nr)
		case cur.Protocol != RouteProtocol:
			return changed, fmt.Errorf("route %s: %w", w.Dst, &NotOwnedError{Object: "route " + w.Dst.String(), Mark: "proto " + cur.Protocol.String()})
		case cur.LinkIndex == ifindex && gwEqual(cur.Gw, w.Gw):
			continue
		default:
			err = h.RouteReplace(nr)
		}
		if err != nil {
			return changed, fmt.Errorf("add route %s: %w", w, err)
		}
		changed = true
	}
	return changed, nil
}

func wantsDst(want []Route, dst netip.Prefix) bool {
	return slices.ContainsFunc(want, func(r Route) bool { return r.Dst == dst })
}

// defaultMetric is the metric the kernel gives a route added without one.
func defaultMetric(dst netip.Prefix) int {
	if dst.Addr().Is6() {
		return 1024
	}
	return 0
}

// routeDst is r's destination, with the default route spelt out.
func routeDst(r netlink.Route) netip.Prefix {
	if p, ok := ipNetToPrefix(r.Dst); ok {
		return p
	}
	if r.Family == unix.AF_INET6 {
		return netip.PrefixFrom(netip.IPv6Unspecified(), 0)
	}
	return netip.PrefixFrom(netip.IPv4Unspecified(), 0)
}

func gwEqual(ip net.IP, a netip.Addr) bool {
	b, ok := netip.AddrFromSlice(ip)
	return ok && b.Unmap() == a.Unmap()
}

func ipNetToPrefix(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	a = a.Unmap()
	ones, bits := n.Mask.Size()
	if bits != a.BitLen() {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(a, ones), true
}

func prefixToIPNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{
		IP:   net.IP(p.Addr().AsSlice()),
		Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen()),
	}
}
