package dataplane

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/nsnet/nsnet/internal/netns"
)

// Links reads the links of one namespace for a convergence pass. Made by
// DumpLinks, it answers from one dump of the link table (a pass over N
// links costs one request, not N) and asks the kernel again only for links
// this package has changed since; made by NewLinks, it asks the kernel for
// every link. Safe for concurrent use.
type Links struct {
	h *netlink.Handle

	mu     sync.Mutex
	dumped bool                    // answer from known, except stale names
	known  map[string]netlink.Link // the dump, by name
	stale  map[string]bool         // changed since the dump: ask the kernel
	// nsName is the namespace h is bound to, if known (SetNamespace),
	// and sock a socket kept there (SetSocket).
	nsName *string
	sock   *RouteSocket
	// made are the veth pairs' host ends this Links created, by name,
	// whose qdiscs nothing has set since (EnsurePortQos takes the name
	// out): as the kernel made them, which need no reading back.
	made map[string]bool
	// ipv6On are the links with IPv6 on, by name, in DumpLinksVia's dump.
	ipv6On map[string]bool
}

// takeFresh reports whether l created the link called name and its
// qdiscs were not set since, and forgets it: the caller sets them.
func (l *Links) takeFresh(name string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	fresh := l.made[name]
	delete(l.made, name)
	return fresh
}

func (l *Links) madeHere(name string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.made == nil {
		l.made = map[string]bool{}
	}
	l.made[name] = true
}

// SetNamespace tells l the name of the namespace its handle is bound to
// ("" the process's). l then reads a bridge port's flags, and a link's
// root qdisc, with a get of that one from inside the namespace, rather
// than with a dump of the whole namespace's, which is all the handle can
// ask for (a host's thousand ports' taps for one).
func (l *Links) SetNamespace(name string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.nsName = &name
}

// RouteSocket is an rtnetlink socket opened in one namespace and kept
// open: the gets netlink.Handle cannot make (one link's bridge port flags,
// one link's root qdisc: it dumps every link's or qdisc's) go through it
// from any thread, where a socket opened for each would move a thread to
// the namespace and back per get — per port, in every full pass. Safe
// for concurrent use: netlink serializes the requests on a socket.
type RouteSocket struct {
	socks map[int]*nl.SocketHandle
}

// OpenRouteSocket opens a RouteSocket in the named namespace ("" is the
// process's).
func OpenRouteSocket(name string) (*RouteSocket, error) {
	s, err := netns.RouteSocket(name)
	if err != nil {
		return nil, err
	}
	return &RouteSocket{socks: map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: {Socket: s}}}, nil
}

// Close closes s; nil is closed.
func (s *RouteSocket) Close() {
	if s != nil {
		s.socks[unix.NETLINK_ROUTE].Close()
	}
}

// SetSocket tells l the name of the namespace its handle is bound to, as
// SetNamespace, and a socket kept open there, through which l makes its
// single gets without entering the namespace.
func (l *Links) SetSocket(name string, s *RouteSocket) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.nsName, l.sock = &name, s
}

// execute sends req in namespace ns through l's kept socket, if any, or
// from inside ns, and returns the kernel's answers of type res.
func (l *Links) execute(ns string, req *nl.NetlinkRequest, res uint16) ([][]byte, error) {
	l.mu.Lock()
	sock := l.sock
	l.mu.Unlock()
	if sock != nil {
		req.Sockets = sock.socks
		return req.Execute(unix.NETLINK_ROUTE, res)
	}
	var msgs [][]byte
	err := netns.DoNamed(ns, func() error {
		var err error
		msgs, err = req.Execute(unix.NETLINK_ROUTE, res)
		return err
	})
	return msgs, err
}

// hairpin reports whether the bridge port link sends frames back out of
// the port they came in by (IFLA_BRPORT_MODE).
func (l *Links) hairpin(link netlink.Link) (bool, error) {
	l.mu.Lock()
	ns := l.nsName
	l.mu.Unlock()
	if ns == nil {
		pi, err := l.h.LinkGetProtinfo(link)
		if err != nil {
			return false, fmt.Errorf("read bridge port flags of %s: %w", link.Attrs().Name, err)
		}
		return pi.Hairpin, nil
	}
	on, err := l.bridgePortHairpin(*ns, link.Attrs().Index)
	if err != nil {
		return false, fmt.Errorf("read bridge port flags of %s: %w", link.Attrs().Name, err)
	}
	return on, nil
}

func (l *Links) setHairpin(link netlink.Link, on bool) error {
	if err := l.h.LinkSetHairpin(link, on); err != nil {
		return fmt.Errorf("set hairpin mode of %s: %w", link.Attrs().Name, err)
	}
	return nil
}

// bridgeLinksRead counts the links bridgePortHairpin read from the
// kernel: what reading one port's flags costs, for tests.
var bridgeLinksRead atomic.Int64

// bridgePortHairpin reads the hairpin mode of the bridge port with ifindex
// index in the named namespace (through l's kept socket, if any) with a
// get of that link, whose answer carries its flags as the bridge's port
// (IFLA_INFO_SLAVE_DATA, what ip -d link shows), which netlink.Handle does
// not decode.
func (l *Links) bridgePortHairpin(name string, index int) (bool, error) {
	req := nl.NewNetlinkRequest(unix.RTM_GETLINK, unix.NLM_F_ACK)
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Index = int32(index)
	req.AddData(msg)
	msgs, err := l.execute(name, req, unix.RTM_NEWLINK)
	bridgeLinksRead.Add(int64(len(msgs)))
	if err != nil {
		return false, err
	}
	for _, m := range msgs {
		ifi := nl.DeserializeIfInfomsg(m)
		if int(ifi.Index) != index {
			continue
		}
		attrs, err := nl.ParseRouteAttr(m[ifi.Len():])
		if err != nil {
			return false, err
		}
		for _, a := range attrs {
			if a.Attr.Type&nl.NLA_TYPE_MASK != unix.IFLA_LINKINFO {
				continue
			}
			info, err := nl.ParseRouteAttr(a.Value)
			if err != nil {
				return false, err
			}
			bridge := false
			for _, i := range info {
				switch i.Attr.Type & nl.NLA_TYPE_MASK {
				case unix.IFLA_INFO_SLAVE_KIND:
					bridge = unix.ByteSliceToString(i.Value) == "bridge"
				case unix.IFLA_INFO_SLAVE_DATA:
					if !bridge {
						continue
					}
					flags, err := nl.ParseRouteAttr(i.Value)
					if err != nil {
						return false, err
					}
					for _, f := range flags {
						if f.Attr.Type&nl.NLA_TYPE_MASK == nl.IFLA_BRPORT_MODE && len(f.Value) > 0 {
							return f.Value[0] != 0, nil
						}
					}
				}
			}
		}
	}
	return false, nil // not a bridge's port (yet): no hairpin
}

// BridgePortHairpins reads the hairpin mode of every bridge port of the
// named namespace, by ifindex, with one AF_BRIDGE dump: its answers carry
// the ports' flags, which netlink.Handle reads for one port at a time.
func BridgePortHairpins(name string) (map[int]bool, error) {
	var msgs [][]byte
	err := netns.DoNamed(name, func() error {
		var err error
		// A dump interrupted by a concurrent change may be incomplete.
		for range 5 {
			req := nl.NewNetlinkRequest(unix.RTM_GETLINK, unix.NLM_F_DUMP)
			req.AddData(nl.NewIfInfomsg(unix.AF_BRIDGE))
			msgs, err = req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWLINK)
			if !errors.Is(err, nl.ErrDumpInterrupted) {
				break
			}
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list bridge ports of %q: %w", name, err)
	}
	modes := map[int]bool{}
	for _, m := range msgs {
		ifi := nl.DeserializeIfInfomsg(m)
		attrs, err := nl.ParseRouteAttr(m[ifi.Len():])
		if err != nil {
			return nil, fmt.Errorf("list bridge ports of %q: %w", name, err)
		}
		for _, a := range attrs {
			if a.Attr.Type != unix.IFLA_PROTINFO|unix.NLA_F_NESTED {
				continue
			}
			flags, err := nl.ParseRouteAttr(a.Value)
			if err != nil {
				return nil, fmt.Errorf("list bridge ports of %q: %w", name, err)
			}
			for _, f := range flags {
				if f.Attr.Type == nl.IFLA_BRPORT_MODE && len(f.Value) > 0 {
					modes[int(ifi.Index)] = f.Value[0] != 0
				}
			}
		}
	}
	return modes, nil
}

// NewLinks returns a Links that asks the kernel for every lookup.
func NewLinks(h *netlink.Handle) *Links {
	return &Links{h: h, known: map[string]netlink.Link{}, stale: map[string]bool{}}
}

// DumpLinks reads every link of h's namespace with one dump.
func DumpLinks(h *netlink.Handle) (*Links, error) {
	var list []netlink.Link
	var err error
	// A dump interrupted by a concurrent change may be incomplete: retry.
	for range 5 {
		list, err = h.LinkList()
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	l := NewLinks(h)
	l.dumped = true
	for _, link := range list {
		l.known[link.Attrs().Name] = link
	}
	return l, nil
}

// DumpLinksVia is DumpLinks through sock, a socket kept in the named
// namespace h is bound to, which the Links then uses as SetSocket says.
// Its dump is the same request, parsed here rather than by the library,
// which drops what this keeps as well: which links have IPv6 on, from
// the per-link IPv6 sysctls the kernel reports in every link message
// (IFLA_AF_SPEC, AF_INET6, IFLA_INET6_CONF). So a full pass sees a
// bridge port whose IPv6 someone turned on without a read of /proc per
// link (see EnsureVethPort).
func DumpLinksVia(h *netlink.Handle, ns string, sock *RouteSocket) (*Links, error) {
	l := NewLinks(h)
	l.SetSocket(ns, sock)
	var msgs [][]byte
	var err error
	for range 5 {
		req := nl.NewNetlinkRequest(unix.RTM_GETLINK, unix.NLM_F_DUMP)
		req.AddData(nl.NewIfInfomsg(unix.AF_UNSPEC))
		msgs, err = l.execute(ns, req, unix.RTM_NEWLINK)
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	l.dumped, l.ipv6On = true, map[string]bool{}
	for _, m := range msgs {
		link, err := netlink.LinkDeserialize(nil, m)
		if err != nil {
			return nil, fmt.Errorf("list links: %w", err)
		}
		name := link.Attrs().Name
		l.known[name] = link
		if on, err := hasIPv6On(m); err != nil {
			return nil, fmt.Errorf("list links: %s: %w", name, err)
		} else if on {
			l.ipv6On[name] = true
		}
	}
	return l, nil
}

// devconfDisableIPv6 is DEVCONF_DISABLE_IPV6, the index of disable_ipv6
// in IFLA_INET6_CONF, an array of the link's IPv6 sysctls as 32-bit
// integers (include/uapi/linux/ipv6.h: 26).
const devconfDisableIPv6 = 26

// hasIPv6On reports whether the link of the RTM_NEWLINK payload m (its
// ifinfomsg and attributes) has IPv6 on: the kernel reports its IPv6
// sysctls, and disable_ipv6 is 0. A link without IPv6 (none reported)
// has it off.
func hasIPv6On(m []byte) (bool, error) {
	if len(m) < unix.SizeofIfInfomsg {
		return false, fmt.Errorf("link message of %d bytes", len(m))
	}
	conf, err := nestedAttr(m[unix.SizeofIfInfomsg:], unix.IFLA_AF_SPEC, unix.AF_INET6, unix.IFLA_INET6_CONF)
	if err != nil || len(conf) < 4*(devconfDisableIPv6+1) {
		return false, err
	}
	return nl.NativeEndian().Uint32(conf[4*devconfDisableIPv6:]) == 0, nil
}

// nestedAttr is the value of the attribute reached from the attributes b
// by types, each nested in the one before; nil when one is missing.
func nestedAttr(b []byte, types ...uint16) ([]byte, error) {
	for i, t := range types {
		attrs, err := nl.ParseRouteAttr(b)
		if err != nil {
			return nil, fmt.Errorf("attributes inside %v: %w", types[:i], err)
		}
		b = nil
		for _, a := range attrs {
			if a.Attr.Type == t {
				b = a.Value
				break
			}
		}
		if b == nil {
			return nil, nil
		}
	}
	return b, nil
}

// keepIPv6Off turns IPv6 off again on those of names whose IPv6 DumpLinksVia
// saw on (someone turned it on, or an older nsnet made the link with
// it), and reports whether there were any. Writing disable_ipv6 on a link
// that is up removes its IPv6 addresses and routes.
func (l *Links) keepIPv6Off(names ...string) (changed bool, err error) {
	var on []string
	for _, name := range names {
		if l.hasIPv6(name) {
			on = append(on, name)
		}
	}
	if len(on) == 0 {
		return false, nil
	}
	return l.disableIPv6(on...)
}

// hasIPv6 reports whether the link called name had IPv6 on in the dump
// of DumpLinksVia and has not changed since. Any other Links knows
// nothing of it, and says false.
func (l *Links) hasIPv6(name string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ipv6On[name] && !l.stale[name]
}

// Handle is the netlink handle the links are read and changed through.
func (l *Links) Handle() *netlink.Handle { return l.h }

// Get returns the link called name, or nil if there is none.
func (l *Links) Get(name string) (netlink.Link, error) {
	l.mu.Lock()
	if l.dumped && !l.stale[name] {
		link := l.known[name]
		l.mu.Unlock()
		return link, nil
	}
	l.mu.Unlock()

	link, err := l.h.LinkByName(name)
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read link %s: %w", name, err)
	}
	return link, nil
}

// forget makes the next Get of name ask the kernel: this package changed it.
func (l *Links) forget(name string) {
	l.mu.Lock()
	if l.dumped {
		delete(l.known, name)
		l.stale[name] = true
	}
	l.mu.Unlock()
}

// Owned returns the links that carried an nsnet alias when DumpLinks read
// them (nothing for a Links made by NewLinks), by alias. A link created by
// nsnet but not yet labelled is not listed: the Ensure that finds it by name
// labels it.
func (l *Links) Owned() map[string]netlink.Link {
	l.mu.Lock()
	defer l.mu.Unlock()
	owned := map[string]netlink.Link{}
	for _, link := range l.known {
		if link != nil && strings.HasPrefix(link.Attrs().Alias, aliasPrefix) {
			owned[link.Attrs().Alias] = link
		}
	}
	return owned
}

// ListOwnedLinks returns the links of h's namespace that carry an nsnet
// alias, by alias.
func ListOwnedLinks(h *netlink.Handle) (map[string]netlink.Link, error) {
	l, err := DumpLinks(h)
	if err != nil {
		return nil, err
	}
	return l.Owned(), nil
}

// DeleteLink deletes the link called name if it is nsnet's link labelled
// alias, and reports whether it did. A missing link is not an error; a link
// of that name that is not nsnet's is a NotOwnedError and stays.
func DeleteLink(l *Links, name, alias string) (bool, error) {
	link, err := l.Get(name)
	if err != nil || link == nil {
		return false, err
	}
	if !owns(link, alias) {
		return false, notOwnedLink(link)
	}
	defer l.forget(name)
	if err := l.h.LinkDel(link); err != nil {
		if isNotFound(err) {
			return false, nil
		}
		return false, fmt.Errorf("delete link %s: %w", name, err)
	}
	return true, nil
}

// EnsureBridge makes the bridge exist as spec says: its alias, MTU,
// administrative state and IPv6 (NoIPv6).
func EnsureBridge(l *Links, spec BridgeSpec) (changed bool, err error) {
	link, err := l.Get(spec.Name)
	if err != nil {
		return false, err
	}
	if link == nil {
		if err := createBridge(l, spec); err != nil {
			return true, err
		}
		_, err := l.ensureNoIPv6(spec)
		return true, err
	}
	if !owns(link, spec.Alias) {
		return false, notOwnedLink(link)
	}
	if link.Type() != "bridge" {
		return false, fmt.Errorf("link %s is a %s, not a bridge", spec.Name, link.Type())
	}
	changed, err = setLinkAttrs(l, link, linkState{Alias: spec.Alias, MTU: spec.MTU, Up: spec.Up})
	if err != nil {
		return changed, err
	}
	c, err := l.ensureNoIPv6(spec)
	return changed || c, err
}

// ensureNoIPv6 sets the bridge's disable_ipv6 when spec asks for it.
func (l *Links) ensureNoIPv6(spec BridgeSpec) (changed bool, err error) {
	if !spec.NoIPv6 {
		return false, nil
	}
	return l.disableIPv6(spec.Name)
}

// disableIPv6 turns IPv6 off on the links called names (disable_ipv6=1),
// and reports whether it was on on any. Only those links': the namespace
// may be the machine's own, whose defaults (conf/all, conf/default) are
// not nsnet's. Done before a link first comes up, the kernel never gives
// it a link-local address nor its routes (fe80::/64, the address's,
// ff00::/8), which every later up, down or carrier change of any link in
// the namespace would walk (see docs/SCALE.md).
func (l *Links) disableIPv6(names ...string) (changed bool, err error) {
	l.mu.Lock()
	ns := l.nsName
	l.mu.Unlock()
	if ns == nil {
		return false, fmt.Errorf("links %s: IPv6 off needs the links' namespace", strings.Join(names, ", "))
	}
	fd, err := netns.Open(*ns)
	if err != nil {
		return false, err
	}
	defer fd.Close()
	want := make([]netns.Sysctl, len(names))
	for i, name := range names {
		// A slashed key: a link name may hold dots.
		want[i] = netns.Sysctl{Key: "net/ipv6/conf/" + name + "/disable_ipv6", Value: "1"}
	}
	return netns.EnsureSysctls(fd, want...)
}

func createBridge(l *Links, spec BridgeSpec) error {
	attrs := netlink.NewLinkAttrs()
	attrs.Name = spec.Name
	attrs.MTU = spec.MTU
	attrs.HardwareAddr = birthMAC(spec.Alias)
	if spec.Up {
		attrs.Flags = net.FlagUp
	}
	br := &netlink.Bridge{LinkAttrs: attrs}
	defer l.forget(spec.Name)
	if err := l.h.LinkAdd(br); err != nil {
		return fmt.Errorf("create bridge %s: %w", spec.Name, err)
	}
	if err := l.h.LinkSetAlias(br, spec.Alias); err != nil {
		return fmt.Errorf("label bridge %s: %w", spec.Name, err)
	}
	return nil
}

// linkState is what nsnet sets on a link it owns.
type linkState struct {
	Alias  string
	MTU    int              // 0: leave alone
	MAC    net.HardwareAddr // nil: leave alone
	Up     bool
	Master int // ifindex of the bridge; 0: leave alone
}

// setLinkAttrs changes what differs between link, as last read, and want.
// Alias, MTU, MAC and bringing the link up go in one request, which the
// kernel applies in that order (the MAC before the link comes up);
// enslaving and taking a link down each take one of their own.
func setLinkAttrs(l *Links, link netlink.Link, want linkState) (changed bool, err error) {
	h, a := l.h, link.Attrs()
	step := func(what string, differs bool, set func() error) {
		if err != nil || !differs {
			return
		}
		if err = set(); err != nil {
			err = fmt.Errorf("set %s of %s: %w", what, a.Name, err)
			return
		}
		changed = true
	}
	// Enslaved before it comes up, as a bridge port should.
	step("master", want.Master != 0 && a.MasterIndex != want.Master,
		func() error { return h.LinkSetMasterByIndex(link, want.Master) })
	isUp := a.Flags&net.FlagUp != 0
	mod := netlink.LinkAttrs{Index: a.Index, Name: a.Name, TxQLen: -1}
	var what []string
	if a.Alias != want.Alias && want.Alias != "" {
		mod.Alias = want.Alias
		what = append(what, "alias")
	}
	if want.MTU > 0 && a.MTU != want.MTU {
		mod.MTU = want.MTU
		what = append(what, "MTU")
	}
	if want.MAC != nil && a.HardwareAddr.String() != want.MAC.String() {
		mod.HardwareAddr = want.MAC
		what = append(what, "MAC")
	}
	if want.Up && !isUp {
		mod.Flags = net.FlagUp
		what = append(what, "state")
	}
	// An empty alias cannot go in the request (it would say nothing).
	step("alias", a.Alias != "" && want.Alias == "", func() error { return h.LinkSetAlias(link, "") })
	step(strings.Join(what, ", "), len(what) > 0, func() error {
		return h.LinkModify(&netlink.Device{LinkAttrs: mod})
	})
	step("state", isUp && !want.Up, func() error { return h.LinkSetDown(link) })
	if changed && l != nil {
		l.forget(a.Name)
	}
	return changed, err
}

// ErrNoUplink is AttachUplink's answer when the interface does not exist
// (yet): the caller reports it and tries again later.
var ErrNoUplink = errors.New("does not exist in the host namespace")

// AttachUplink makes the host interface uplink a port of nsnet's bridge
// (labelled alias) and sets it up: an external network connected upstream
// (nsnet:uplink). The interface is the user's: nsnet never creates,
// deletes or relabels it, and refuses one that is nsnet's own, or a port
// of another bridge.
func AttachUplink(l *Links, uplink, bridge, alias string) (changed bool, err error) {
	br, err := l.Get(bridge)
	if err != nil {
		return false, err
	}
	if br == nil || !owns(br, alias) {
		return false, fmt.Errorf("bridge %s is not nsnet's network bridge", bridge)
	}
	link, err := l.Get(uplink)
	if err != nil {
		return false, err
	}
	if link == nil {
		return false, fmt.Errorf("uplink %s %w", uplink, ErrNoUplink)
	}
	a := link.Attrs()
	if _, _, ours := ParseAlias(a.Alias); ours {
		return false, fmt.Errorf("uplink %s is nsnet's own link (%s), not a host interface", uplink, a.Alias)
	}
	if link.Type() == "bridge" {
		return false, fmt.Errorf("uplink %s is a bridge; name an interface to plug into the network's bridge", uplink)
	}
	if a.MasterIndex != 0 && a.MasterIndex != br.Attrs().Index {
		return false, fmt.Errorf("uplink %s is already a port of another master (ifindex %d)", uplink, a.MasterIndex)
	}
	return setLinkAttrs(l, link, linkState{Alias: a.Alias, Master: br.Attrs().Index, Up: true})
}

// ReleaseUplink takes the host interface uplink out of nsnet's bridge, if
// it is still a port of it (nomaster), and leaves it otherwise as it is:
// it is not nsnet's to delete.
func ReleaseUplink(l *Links, uplink, bridge string) (changed bool, err error) {
	link, err := l.Get(uplink)
	if err != nil || link == nil {
		return false, err
	}
	br, err := l.Get(bridge)
	if err != nil || br == nil || link.Attrs().MasterIndex != br.Attrs().Index {
		return false, err
	}
	defer l.forget(uplink)
	if err := l.h.LinkSetNoMaster(link); err != nil {
		return false, fmt.Errorf("release uplink %s from %s: %w", uplink, bridge, err)
	}
	return true, nil
}
