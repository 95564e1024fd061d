package explain

import (
	"net"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func TestShellQuote(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"qr-1234", "qr-1234"},
		{"nsnet:port:5a1f", "nsnet:port:5a1f"},
		{"vm1@project", "vm1@project"},
		{"", "''"},
		{"two words", "'two words'"},
		{"it's", `'it'\''s'`},
	} {
		if got := shellQuote(tc.in); got != tc.want {
			t.Errorf("shellQuote(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestRouteCommand(t *testing.T) {
	qg := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "qg-1", Index: 2}}
	ns := &namespace{name: "r", byIdx: map[int]netlink.Link{2: qg}}
	_, dst, _ := net.ParseCIDR("172.16.0.0/16")
	_, dflt, _ := net.ParseCIDR("0.0.0.0/0")
	_, v6, _ := net.ParseCIDR("::/0")
	_, v6net, _ := net.ParseCIDR("2001:db8:1::/64")
	for _, tc := range []struct {
		name string
		r    netlink.Route
		want string
	}{
		{"default via, nsnet's protocol", netlink.Route{Family: unix.AF_INET, Dst: dflt, Gw: net.ParseIP("198.51.100.1"), LinkIndex: 2, Protocol: 78},
			"ip -n r route add default via 198.51.100.1 dev qg-1 proto 78"},
		{"nil destination is the default", netlink.Route{Family: unix.AF_INET, Gw: net.ParseIP("198.51.100.1"), LinkIndex: 2, Protocol: unix.RTPROT_BOOT},
			"ip -n r route add default via 198.51.100.1 dev qg-1"},
		{"on-link keeps its scope", netlink.Route{Family: unix.AF_INET, Dst: dst, LinkIndex: 2, Protocol: 78, Scope: netlink.SCOPE_LINK, Priority: 10},
			"ip -n r route add 172.16.0.0/16 dev qg-1 proto 78 metric 10"},
		{"global without gateway says so", netlink.Route{Family: unix.AF_INET, Dst: dst, LinkIndex: 2, Protocol: 78},
			"ip -n r route add 172.16.0.0/16 dev qg-1 proto 78 scope global"},
		{"IPv6 default", netlink.Route{Family: unix.AF_INET6, Dst: v6, Gw: net.ParseIP("2001:db8::1"), LinkIndex: 2, Protocol: 78, Priority: 1024},
			"ip -n r -6 route add default via 2001:db8::1 dev qg-1 proto 78 metric 1024"},
		{"IPv6 on-link: no scope", netlink.Route{Family: unix.AF_INET6, Dst: v6net, LinkIndex: 2, Protocol: 78, Priority: 1024},
			"ip -n r -6 route add 2001:db8:1::/64 dev qg-1 proto 78 metric 1024"},
		{"blackhole", netlink.Route{Family: unix.AF_INET, Dst: dst, Type: unix.RTN_BLACKHOLE, Protocol: 78},
			"ip -n r route add blackhole 172.16.0.0/16 proto 78 scope global"},
	} {
		if got := routeCommand(ns, tc.r); got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, got, tc.want)
		}
	}
}

func TestAddrCommands(t *testing.T) {
	mac, _ := net.ParseMAC("fa:16:3e:00:00:05")
	eth0 := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "eth0", Index: 2, HardwareAddr: mac}}
	addr := func(cidr string, flags int) netlink.Addr {
		ip, n, _ := net.ParseCIDR(cidr)
		n.IP = ip
		return netlink.Addr{IPNet: n, Flags: flags, LinkIndex: 2}
	}
	perm := unix.IFA_F_PERMANENT
	ns := &namespace{name: "vm", byIdx: map[int]netlink.Link{2: eth0}, addrs: map[int][]netlink.Addr{2: {
		addr("10.0.0.5/24", perm),
		addr("fe80::f816:3eff:fe00:5/64", perm),                             // the kernel's, from the MAC
		addr("fe80::a9fe:a9fe/64", perm|unix.IFA_F_NODAD),                   // nsnet's (metadata)
		addr("2001:db8:1::7/64", perm|unix.IFA_F_NODAD),                     // nsnet's, static
		addr("2001:db8:1:0:f816:3eff:fe00:5/64", unix.IFA_F_MANAGETEMPADDR), // SLAAC
		addr("::1/128", perm),
	}}}
	got := addrCommands(ns, eth0, nil)
	want := []string{
		"ip -n vm addr add 10.0.0.5/24 dev eth0",
		"ip -n vm -6 addr add fe80::a9fe:a9fe/64 nodad dev eth0",
		"ip -n vm -6 addr add 2001:db8:1::7/64 nodad dev eth0",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("addrCommands:\n got %q\nwant %q", got, want)
	}
	if dyn := dynamicAddrs(ns, eth0); len(dyn) != 1 || dyn[0] != "2001:db8:1:0:f816:3eff:fe00:5/64" {
		t.Errorf("dynamicAddrs = %q, want the SLAAC address", dyn)
	}
}
