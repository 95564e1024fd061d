package explain

import (
	"fmt"
	"net"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Step is one object's commands: what it is, why it is there, and the
// shell commands that build it, in order.
type Step struct {
	Object   string   `json:"object"`
	Comment  string   `json:"comment"`
	Commands []string `json:"commands"`
}

// Explanation is the steps that build one router, network or instance.
type Explanation struct {
	Kind  string `json:"kind"`
	Name  string `json:"name"`
	ID    string `json:"id"`
	Steps []Step `json:"steps"`
}

// Script is the explanation as a shell script: each step a # comment and
// its commands.
func (e Explanation) Script() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s %s (%s), as nsnet built it: run as root to build the same by hand.\n", e.Kind, e.Name, e.ID)
	for _, s := range e.Steps {
		fmt.Fprintf(&b, "\n# %s: %s\n", s.Object, s.Comment)
		for _, c := range s.Commands {
			b.WriteString(c)
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// ip is an ip(8) command in namespace ns.
func ip(ns string, args ...string) string {
	if ns != "" {
		args = append([]string{"-n", ns}, args...)
	}
	return shellJoin(append([]string{"ip"}, args...))
}

// inNamespace is argv run inside namespace ns.
func inNamespace(ns string, argv ...string) string {
	if ns != "" {
		argv = append([]string{"ip", "netns", "exec", ns}, argv...)
	}
	return shellJoin(argv)
}

func shellJoin(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = shellQuote(a)
	}
	return strings.Join(q, " ")
}

// shellQuote quotes s for sh unless every character is safe bare.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("@%+=:,./_-", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// linkSettings are the `ip link set` arguments that give l what nsnet
// gave it: MAC, MTU, alias, master, state.
func linkSettings(ns *namespace, l netlink.Link, withMAC bool) []string {
	a := l.Attrs()
	args := []string{"link", "set", a.Name}
	if withMAC && len(a.HardwareAddr) > 0 {
		args = append(args, "address", a.HardwareAddr.String())
	}
	if a.MTU > 0 && l.Type() != "device" {
		args = append(args, "mtu", fmt.Sprint(a.MTU))
	}
	if a.Alias != "" {
		args = append(args, "alias", a.Alias)
	}
	if m, ok := ns.byIdx[a.MasterIndex]; ok && a.MasterIndex != 0 {
		args = append(args, "master", m.Attrs().Name)
	}
	if isUp(l) {
		args = append(args, "up")
	}
	return args
}

// addrCommands are the `ip addr add` of l's addresses that keep is true
// for, leaving out what the kernel adds by itself (see kernelMade).
func addrCommands(ns *namespace, l netlink.Link, keep func(netlink.Addr) bool) []string {
	var cmds []string
	for _, a := range ns.addrs[l.Attrs().Index] {
		if kernelMade(l, a) || keep != nil && !keep(a) {
			continue
		}
		cmds = append(cmds, addrCommand(ns.name, l.Attrs().Name, a))
	}
	return cmds
}

// kernelMade reports whether the kernel configured a of l by itself:
// loopback's, the IPv6 link-local address it derives from the MAC
// (modified EUI-64), and addresses from router advertisements (SLAAC) or
// any other with a lifetime (not permanent: a DHCPv6 client's, say). A
// link-local address nsnet adds, as the metadata service's
// fe80::a9fe:a9fe, is not.
func kernelMade(l netlink.Link, a netlink.Addr) bool {
	if a.IP.IsLoopback() {
		return true
	}
	if a.IP.To4() != nil {
		return false
	}
	if a.Flags&unix.IFA_F_PERMANENT == 0 {
		return true
	}
	return a.IP.IsLinkLocalUnicast() && a.IP.Equal(eui64LinkLocal(l.Attrs().HardwareAddr))
}

// dynamicAddrs are l's IPv6 addresses with a lifetime: what router
// advertisements or a DHCPv6 client configured, not nsnet's commands.
func dynamicAddrs(ns *namespace, l netlink.Link) []string {
	var out []string
	for _, a := range ns.addrs[l.Attrs().Index] {
		if a.IP.To4() == nil && !a.IP.IsLinkLocalUnicast() && a.Flags&unix.IFA_F_PERMANENT == 0 {
			out = append(out, a.IPNet.String())
		}
	}
	return out
}

// eui64LinkLocal is fe80:: and the modified EUI-64 of a 6-byte MAC (RFC
// 4291 appendix A); nil for other addresses.
func eui64LinkLocal(mac net.HardwareAddr) net.IP {
	if len(mac) != 6 {
		return nil
	}
	ip := make(net.IP, 16)
	ip[0], ip[1] = 0xfe, 0x80
	ip[8], ip[9], ip[10] = mac[0]^0x02, mac[1], mac[2]
	ip[11], ip[12] = 0xff, 0xfe
	ip[13], ip[14], ip[15] = mac[3], mac[4], mac[5]
	return ip
}

func addrCommand(ns, dev string, a netlink.Addr) string {
	var args []string
	if a.IP.To4() == nil {
		args = append(args, "-6")
	}
	args = append(args, "addr", "add", a.IPNet.String())
	if a.Broadcast != nil && a.IP.To4() != nil {
		args = append(args, "brd", a.Broadcast.String())
	}
	if a.Flags&unix.IFA_F_NODAD != 0 {
		args = append(args, "nodad")
	}
	return ip(ns, append(args, "dev", dev)...)
}

// routeCommand is the `ip route add` of r in ns.
func routeCommand(ns *namespace, r netlink.Route) string {
	var args []string
	if r.Family == unix.AF_INET6 {
		args = append(args, "-6")
	}
	args = append(args, "route", "add")
	if r.Type != 0 && r.Type != unix.RTN_UNICAST {
		args = append(args, routeType(r.Type))
	}
	if r.Dst == nil || isDefault(r.Dst) {
		args = append(args, "default")
	} else {
		args = append(args, r.Dst.String())
	}
	if r.Gw != nil {
		args = append(args, "via", r.Gw.String())
	}
	if l, ok := ns.byIdx[r.LinkIndex]; ok {
		args = append(args, "dev", l.Attrs().Name)
	}
	if r.Protocol != unix.RTPROT_BOOT {
		args = append(args, "proto", fmt.Sprint(int(r.Protocol)))
	}
	switch {
	case r.Family == unix.AF_INET6:
		// IPv6 routes have no scope: the kernel ignores ip(8)'s.
	case r.Scope == netlink.SCOPE_UNIVERSE:
		if r.Gw == nil {
			// ip(8) gives a route without a gateway link scope unless told.
			args = append(args, "scope", "global")
		}
	case r.Scope == netlink.SCOPE_LINK:
		if r.Gw != nil {
			args = append(args, "scope", "link")
		}
	case r.Scope == netlink.SCOPE_HOST:
		args = append(args, "scope", "host")
	}
	if r.Src != nil {
		args = append(args, "src", r.Src.String())
	}
	if r.Priority != 0 {
		args = append(args, "metric", fmt.Sprint(r.Priority))
	}
	return ip(ns.name, args...)
}

func routeType(t int) string {
	switch t {
	case unix.RTN_BLACKHOLE:
		return "blackhole"
	case unix.RTN_UNREACHABLE:
		return "unreachable"
	case unix.RTN_PROHIBIT:
		return "prohibit"
	case unix.RTN_LOCAL:
		return "local"
	}
	return fmt.Sprint(t)
}

func isDefault(n *net.IPNet) bool {
	ones, _ := n.Mask.Size()
	return ones == 0 && n.IP.IsUnspecified()
}

// nftCommand loads script into namespace ns in one transaction.
func nftCommand(ns, script string) string {
	return inNamespace(ns, "nft", "-f", "-") + " <<'EOF'\n" + strings.TrimRight(script, "\n") + "\nEOF"
}
