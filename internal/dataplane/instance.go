package dataplane

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"strings"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/nsnet/nsnet/internal/netns"
)

// EnsureInstanceNetns makes the named instance namespace exist, marked with
// marker (see InstanceMarker) and with lo up, and returns it open; the
// caller closes it. A namespace of that name without that marker is a
// NotOwnedError and is left alone.
//
// A new namespace is marked and has lo up before it appears under its name,
// so a namespace nsnet created is never seen unmarked, even after a crash.
func EnsureInstanceNetns(name, marker string) (ns *Namespace, changed bool, err error) {
	if !netns.Exists(name) {
		ns, err := createMarked(name, marker)
		if err != nil || ns != nil {
			return ns, ns != nil, err
		}
		// Created by someone else meanwhile: check it like any other.
	}
	ns, err = OpenNamespace(name)
	if err != nil {
		return nil, false, err
	}
	changed, err = checkMarked(ns, marker)
	if err != nil {
		ns.Close()
		return nil, false, err
	}
	return ns, changed, nil
}

// checkMarked verifies ns carries marker and brings its lo up if needed.
func checkMarked(ns *Namespace, marker string) (changed bool, err error) {
	lo, err := ns.Handle.LinkByName("lo")
	if err != nil {
		return false, fmt.Errorf("read lo in namespace %s: %w", ns.Name, err)
	}
	if lo.Attrs().Alias != marker {
		return false, &NotOwnedError{Object: "namespace " + ns.Name, Mark: lo.Attrs().Alias}
	}
	if lo.Attrs().Flags&net.FlagUp != 0 {
		return false, nil
	}
	if err := ns.Handle.LinkSetUp(lo); err != nil {
		return false, fmt.Errorf("bring lo up in namespace %s: %w", ns.Name, err)
	}
	return true, nil
}

// createMarked creates the namespace, marking it from inside before it is
// mounted. It returns nil, nil if the namespace appeared meanwhile.
func createMarked(name, marker string) (*Namespace, error) {
	var h *netlink.Handle
	created, err := netns.CreateWith(name, func() error {
		var err error
		// The handle made here stays bound to the new namespace.
		if h, err = netns.NewHandle(""); err != nil {
			return err
		}
		// lo is the same in every new namespace (ifindex 1, down, no
		// alias): label it and bring it up with one request.
		lo := netlink.LinkAttrs{Index: loopbackIndex, Name: "lo", TxQLen: -1, Alias: marker, Flags: net.FlagUp}
		if err := h.LinkModify(&netlink.Device{LinkAttrs: lo}); err != nil {
			return fmt.Errorf("mark lo and bring it up: %w", err)
		}
		return nil
	})
	if err != nil || !created {
		if h != nil {
			h.Close()
		}
		return nil, err
	}
	fd, err := netns.Open(name)
	if err != nil {
		h.Close()
		return nil, err
	}
	return &Namespace{Name: name, Handle: h, Fresh: true, fd: fd}, nil
}

// LegacyInstanceSysctls are the IPv6 defaults the previous nsnet gave
// every instance namespace it created, which the links made in it later
// inherit: no router solicitations, no duplicate address detection.
//
// nsnet no longer writes them. Writing them cost every instance
// namespace's creation a /proc/sys lookup that walks one dentry per
// namespace of the host (1.4 to 1.7 ms of CPU with 1,000 instances, and
// growing); an instance now keeps its kernel's defaults, as a VM does,
// and its port's firewall drops the solicitations of a network without
// IPv6 (firewall.Port.IPv4Only). A namespace the previous nsnet made
// keeps them, so that a restart recreates nothing: its ports on a
// network with IPv6 get the kernel's defaults back on their own link
// (IPv6PortSysctls), and explain replays them where it finds them.
var LegacyInstanceSysctls = []Sysctl{
	{"net.ipv6.conf.default.router_solicitations", "0"},
	{"net.ipv6.conf.default.dad_transmits", "0"},
}

// IPv6PortSysctls are the kernel's defaults that LegacyInstanceSysctls
// change, under conf/<link>/: what the instance end of a port on a
// network with IPv6 has, so that it solicits the router's advertisements
// and checks its addresses, as on any host.
var IPv6PortSysctls = []Sysctl{
	{"router_solicitations", "-1"},
	{"dad_transmits", "1"},
}

func toNetns(list []Sysctl) []netns.Sysctl {
	out := make([]netns.Sysctl, len(list))
	for i, s := range list {
		out[i] = netns.Sysctl(s)
	}
	return out
}

// loopbackIndex is lo's ifindex in every network namespace: the kernel
// registers it first, with this index.
const loopbackIndex = 1

// ReadMarker returns the alias of lo in the named namespace: the marker of
// an nsnet instance namespace, or whatever else is there.
func ReadMarker(name string) (string, error) {
	ns, err := OpenNamespace(name)
	if err != nil {
		return "", err
	}
	defer ns.Close()
	return ns.marker()
}

func (n *Namespace) marker() (string, error) {
	lo, err := n.Handle.LinkByName("lo")
	if err != nil {
		return "", fmt.Errorf("read lo in namespace %s: %w", n.Name, err)
	}
	return lo.Attrs().Alias, nil
}

// ListInstanceNamespaces returns the namespaces whose names start with
// prefix and that carry an nsnet instance marker (of any host), with their
// markers. Names that are not namespaces, or vanish meanwhile, are skipped.
func ListInstanceNamespaces(prefix string) (map[string]string, error) {
	return listMarked(prefix, ParseInstanceMarker)
}

// listMarked returns the namespaces whose names start with prefix and
// whose marker parse accepts, with their markers.
func listMarked(prefix string, parse func(string) (string, string, bool)) (map[string]string, error) {
	names, err := netns.List()
	if err != nil {
		return nil, err
	}
	found := map[string]string{}
	var errs []error
	for _, name := range names {
		if !strings.HasPrefix(name, prefix) || !netns.Exists(name) {
			continue
		}
		m, err := ReadMarker(name)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			errs = append(errs, err)
		default:
			if _, _, ok := parse(m); ok {
				found[name] = m
			}
		}
	}
	return found, errors.Join(errs...)
}

// DeleteInstanceNetns deletes the named namespace if it carries marker. A
// missing namespace is not an error; one without the marker is a
// NotOwnedError and stays.
//
// The kernel destroys a namespace, with its veths and so the host ends of
// nsnet's pairs, once the last reference to it goes, in a batch for all
// namespaces that went meanwhile: far cheaper than deleting each veth
// (every deletion waits for RCU grace periods under the RTNL lock). So the
// namespace is only unmounted here; when host is not nil, DeleteInstanceNetns
// then waits for the host ends to go, and deletes those still there after
// hostEndTimeout (something else, a process inside, keeps the namespace
// alive) itself. The namespace's own files under /etc/netns (an instance's
// resolv.conf) go with it, also when the namespace itself is already gone.
func DeleteInstanceNetns(name, marker string, host *Links) error {
	// A creation that died before mounting leaves a plain file.
	if _, err := netns.RemoveStale(name); err != nil {
		return err
	}
	ns, err := OpenNamespace(name)
	if errors.Is(err, fs.ErrNotExist) {
		return netns.RemoveEtc(name)
	}
	if err != nil {
		return err
	}
	ends, err := hostEnds(ns, marker)
	// Our own handle would keep the namespace alive.
	ns.Close()
	if err != nil {
		return err
	}
	if err := netns.Delete(name); err != nil {
		return err
	}
	if err := netns.RemoveEtc(name); err != nil {
		return err
	}
	if host == nil {
		return nil
	}
	return host.awaitGone(ends, hostEndTimeout)
}

// hostEndTimeout bounds the wait for the kernel to destroy a deleted
// namespace's veths.
const hostEndTimeout = time.Second

// hostEnd is the host side of one of nsnet's veth pairs, seen from inside.
type hostEnd struct {
	index int // ifindex in the host namespace
	alias string
}

// hostEnds checks ns carries marker and lists the host ends of nsnet's
// veths in it.
func hostEnds(ns *Namespace, marker string) ([]hostEnd, error) {
	m, err := ns.marker()
	if err != nil {
		return nil, err
	}
	if m != marker {
		return nil, &NotOwnedError{Object: "namespace " + ns.Name, Mark: m}
	}
	links, err := ns.Handle.LinkList()
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return nil, fmt.Errorf("list links in namespace %s: %w", ns.Name, err)
	}
	var ends []hostEnd
	for _, l := range links {
		if kind, _, ok := ParseAlias(l.Attrs().Alias); ok && kind == "port" && l.Type() == "veth" {
			ends = append(ends, hostEnd{index: l.Attrs().ParentIndex, alias: l.Attrs().Alias})
		}
	}
	return ends, nil
}

// awaitGone waits until none of ends is in l's namespace any more, then
// deletes those still there after timeout.
func (l *Links) awaitGone(ends []hostEnd, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	pause := time.Millisecond
	for len(ends) > 0 {
		var left []hostEnd
		for _, e := range ends {
			link, err := l.h.LinkByIndex(e.index)
			switch {
			case isNotFound(err):
			case err != nil:
				return fmt.Errorf("read link %d: %w", e.index, err)
			case link.Attrs().Alias != e.alias:
				// Index reused by another link: ours is gone.
			default:
				l.forget(link.Attrs().Name)
				left = append(left, e)
			}
		}
		ends = left
		if len(ends) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(pause)
		pause = min(2*pause, 20*time.Millisecond)
	}
	for _, e := range ends {
		link, err := l.h.LinkByIndex(e.index)
		if err != nil || link.Attrs().Alias != e.alias {
			continue
		}
		if err := l.h.LinkDel(link); err != nil && !isNotFound(err) {
			return fmt.Errorf("delete %s of deleted namespace: %w", link.Attrs().Name, err)
		}
	}
	return nil
}
