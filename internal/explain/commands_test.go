package explain

import (
	"net"
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
		{"blackhole", netlink.Route{Family: unix.AF_INET, Dst: dst, Type: unix.RTN_BLACKHOLE, Protocol: 78},
			"ip -n r route add blackhole 172.16.0.0/16 proto 78 scope global"},
	} {
		if got := routeCommand(ns, tc.r); got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, got, tc.want)
		}
	}
}
