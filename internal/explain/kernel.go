package explain

import (
	"errors"
	"fmt"
	"net"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/nsnet/nsnet/internal/dataplane"
	"github.com/nsnet/nsnet/internal/firewall"
	"github.com/nsnet/nsnet/internal/nat"
	"github.com/nsnet/nsnet/internal/netns"
)

// namespace is what one network namespace holds, as read from the kernel.
type namespace struct {
	name   string // "" is the namespace nsnet's CLI runs in
	links  []netlink.Link
	addrs  map[int][]netlink.Addr // by link index
	routes []netlink.Route        // main table, not the kernel's own
	byName map[string]netlink.Link
	byIdx  map[int]netlink.Link
	// hairpin: the bridge ports in hairpin mode, by index
	hairpin map[int]bool
}

// readNamespace reads links, addresses and main-table routes of name.
func readNamespace(name string) (*namespace, error) {
	ns, err := dataplane.OpenNamespace(name)
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	links, err := ns.Handle.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list links in %s: %w", nsLabel(name), err)
	}
	slices.SortFunc(links, func(a, b netlink.Link) int { return a.Attrs().Index - b.Attrs().Index })
	n := &namespace{name: name, links: links, addrs: map[int][]netlink.Addr{},
		byName: map[string]netlink.Link{}, byIdx: map[int]netlink.Link{}}
	for _, l := range links {
		n.byName[l.Attrs().Name] = l
		n.byIdx[l.Attrs().Index] = l
	}
	addrs, err := ns.Handle.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("list addresses in %s: %w", nsLabel(name), err)
	}
	for _, a := range addrs {
		n.addrs[a.LinkIndex] = append(n.addrs[a.LinkIndex], a)
	}
	routes, err := ns.Handle.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("list routes in %s: %w", nsLabel(name), err)
	}
	if n.hairpin, err = dataplane.BridgePortHairpins(name); err != nil {
		return nil, err
	}
	for _, r := range routes {
		// The kernel's own routes (connected subnets, IPv6 link-local and
		// router advertisements) come back by themselves.
		if r.Protocol == unix.RTPROT_KERNEL || r.Protocol == unix.RTPROT_RA {
			continue
		}
		n.routes = append(n.routes, r)
	}
	return n, nil
}

// byAlias is the link of ns labelled alias, or nil.
func (n *namespace) byAlias(alias string) netlink.Link {
	for _, l := range n.links {
		if l.Attrs().Alias == alias {
			return l
		}
	}
	return nil
}

// readSysctls returns the live value of each key in namespace name.
func readSysctls(name string, keys []string) (map[string]string, error) {
	fd, err := netns.Open(name)
	if err != nil {
		return nil, err
	}
	defer fd.Close()
	values := map[string]string{}
	for _, k := range keys {
		v, err := netns.ReadSysctl(fd, k)
		if err != nil {
			return nil, fmt.Errorf("in %s: %w", nsLabel(name), err)
		}
		values[k] = v
	}
	return values, nil
}

// readTable returns nsnet's nft table of namespace name as nft(8) input,
// or "" when it has none.
func readTable(name string) (string, error) {
	t, err := nat.Open(name, nil)
	if err != nil {
		return "", err
	}
	defer t.Close()
	st, err := t.Inspect()
	if err != nil {
		return "", fmt.Errorf("read the nft table of %s: %w", nsLabel(name), err)
	}
	return st.Script(), nil
}

// readFirewall returns the firewall's tables of namespace name as nft(8)
// input, as far as v shows them, or "" when it has none.
func readFirewall(name string, v firewall.Visible) (string, error) {
	fw, err := firewall.Open(name, nil)
	if err != nil {
		return "", err
	}
	defer fw.Close()
	script, err := fw.Script(v)
	if err != nil {
		return "", fmt.Errorf("read the firewall tables of %s: %w", nsLabel(name), err)
	}
	return script, nil
}

func nsLabel(name string) string {
	if name == "" {
		return "the host namespace"
	}
	return "namespace " + name
}

// isUp reports a link's administrative state.
func isUp(l netlink.Link) bool { return l.Attrs().Flags&net.FlagUp != 0 }

// errNoNamespace is returned for an object whose namespace is not on this
// host.
var errNoNamespace = errors.New("no such namespace on this host")
