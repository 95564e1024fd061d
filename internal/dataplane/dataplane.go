// Package dataplane creates, inspects and deletes one host's L2/L3 kernel
// objects through netlink: bridges, veth pairs, addresses, routes, and the
// instance namespaces they are plugged into.
//
// It owns ownership: every link nsnet makes carries an alias naming the
// resource it belongs to ("nsnet:network:<id>", "nsnet:port:<id>"), every
// instance namespace is marked by the alias of its lo, and every route nsnet
// installs carries RouteProtocol. Functions here only ever change or delete
// objects carrying those marks, and report anything else that is in the way
// as a NotOwnedError.
//
// Ensure functions read the kernel first, change only what differs, and
// report whether they changed anything; run twice, the second run changes
// nothing. The package knows nothing about the store or the API, and never
// execs ip, nft or sysctl. It never switches threads between namespaces
// itself: internal/netns does that.
package dataplane

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/nsnet/nsnet/internal/netns"
)

// RouteProtocol is the rtm_protocol of every route nsnet installs ('N').
// It is not in iproute2's rt_protos, so `ip route` shows it as "proto 78";
// only routes with it are ever removed.
const RouteProtocol netlink.RouteProtocol = 0x4e

// ErrNotOwned matches every NotOwnedError.
var ErrNotOwned = errors.New("not nsnet's")

// NotOwnedError reports a kernel object that has the name nsnet wants but
// not nsnet's mark for it. nsnet never adopts, changes or deletes it.
type NotOwnedError struct {
	Object string // "namespace red", "link tap0123", …
	Mark   string // the alias or marker it carries instead, if any
}

func (e *NotOwnedError) Error() string {
	if e.Mark == "" {
		return e.Object + " exists and is not nsnet's"
	}
	return fmt.Sprintf("%s exists and is not nsnet's (it is marked %q)", e.Object, e.Mark)
}

// Is makes errors.Is(err, ErrNotOwned) match.
func (e *NotOwnedError) Is(target error) bool { return target == ErrNotOwned }

// birthMAC is the MAC nsnet gives a link it creates on the host side,
// derived from its alias. The kernel ignores IFLA_IFALIAS when creating a
// link, so the alias is a second write; the MAC is set by the creating
// message itself, which lets nsnet recognise a link it created but did not
// get to label (a crash in between). A fixed bridge MAC also keeps the
// bridge from changing address as ports come and go. The address is locally
// administered unicast (fe:4e:…), like Neutron's fe:16:3e taps.
func birthMAC(alias string) net.HardwareAddr {
	sum := sha256.Sum256([]byte(alias))
	return net.HardwareAddr{0xfe, 0x4e, sum[0], sum[1], sum[2], sum[3]}
}

// owns reports whether link is the one nsnet labels alias: it carries the
// alias, or no alias but the birth MAC that goes with it.
func owns(link netlink.Link, alias string) bool {
	a := link.Attrs()
	return a.Alias == alias || a.Alias == "" && a.HardwareAddr.String() == birthMAC(alias).String()
}

func notOwnedLink(link netlink.Link) error {
	return &NotOwnedError{Object: "link " + link.Attrs().Name, Mark: link.Attrs().Alias}
}

// Namespace is a named network namespace opened for programming: a netlink
// handle inside it, usable from any goroutine, and a file descriptor that
// pins it and lets veth peers be created directly in it.
type Namespace struct {
	Name   string
	Handle *netlink.Handle
	// Fresh: EnsureInstanceNetns created it, and it holds nothing but
	// what its creation put there (a marked lo).
	Fresh bool
	fd    vnetns.NsHandle
	// release, when set, gives Handle and fd back to the
	// InstanceNamespaces that keeps them, instead of closing them.
	release func()
}

// OpenNamespace opens the named namespace ("" is the process's own).
func OpenNamespace(name string) (*Namespace, error) {
	fd, err := netns.Open(name)
	if err != nil {
		return nil, err
	}
	h, err := netns.NewHandleAt(fd)
	if err != nil {
		fd.Close()
		return nil, fmt.Errorf("netlink handle in namespace %s: %w", name, err)
	}
	return &Namespace{Name: name, Handle: h, fd: fd}, nil
}

// Close releases the handle and the descriptor; the namespace itself stays.
func (n *Namespace) Close() {
	if n == nil {
		return
	}
	if n.release != nil {
		n.release()
		return
	}
	if n.Handle != nil {
		n.Handle.Close()
	}
	if n.fd.IsOpen() {
		n.fd.Close()
	}
}

// isNotFound reports a netlink "no such link/address/route" answer.
func isNotFound(err error) bool {
	var lnf netlink.LinkNotFoundError
	return errors.As(err, &lnf) || errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ESRCH)
}
