package metadata

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/nsnet/nsnet/internal/lab"
	"github.com/nsnet/nsnet/internal/netns"
)

// testPrefix starts every namespace this test binary makes.
var testPrefix = fmt.Sprintf("nsmd%d-", os.Getpid())

func TestMain(m *testing.M) {
	os.Exit(lab.RunTests(m, "metadata", testPrefix))
}

func TestLinkLocal(t *testing.T) {
	for _, tc := range []struct{ mac, want string }{
		{"fa:16:3e:00:00:05", "fe80::f816:3eff:fe00:5"},
		{"02:00:00:00:00:01", "fe80::ff:fe00:1"},
		{"00:1b:21:3c:4d:5e", "fe80::21b:21ff:fe3c:4d5e"},
	} {
		mac, _ := net.ParseMAC(tc.mac)
		got, err := LinkLocal(mac)
		if err != nil || got.String() != tc.want {
			t.Errorf("LinkLocal(%s) = %v, %v; want %s", tc.mac, got, err, tc.want)
		}
	}
	if _, err := LinkLocal(net.HardwareAddr{1, 2, 3}); err == nil {
		t.Error("LinkLocal of a 3-byte address: no error")
	}
}

func TestKeys(t *testing.T) {
	a := netip.MustParseAddr
	for _, tc := range []struct {
		name  string
		addrs []netip.Addr
		want  string
	}{
		{"IPv4 only: no link-local", []netip.Addr{a("10.0.0.5")}, "[{n 10.0.0.5}]"},
		{"dual stack: the link-local too", []netip.Addr{a("10.0.0.5"), a("2001:db8:1::5")},
			"[{n 10.0.0.5} {n 2001:db8:1::5} {n fe80::f816:3eff:fe00:5}]"},
		{"zones and mapped forms are dropped", []netip.Addr{a("::ffff:10.0.0.5"), a("2001:db8:1::5%eth0")},
			"[{n 10.0.0.5} {n 2001:db8:1::5} {n fe80::f816:3eff:fe00:5}]"},
	} {
		keys, err := Keys("n", "fa:16:3e:00:00:05", tc.addrs)
		if err != nil || fmt.Sprint(keys) != tc.want {
			t.Errorf("%s: Keys = %v, %v; want %s", tc.name, keys, err, tc.want)
		}
	}
	if _, err := Keys("n", "not-a-mac", []netip.Addr{a("2001:db8:1::5")}); err == nil {
		t.Error("Keys with a bad MAC: no error")
	}
}

func TestNetworkDataIPv6(t *testing.T) {
	a := netip.MustParseAddr
	inst := &Instance{ID: "i", Ports: []Port{{
		ID: "port-1", MAC: "fa:16:3e:00:00:05", MTU: 1450, NetworkID: "net-1",
		Addrs: []netip.Prefix{netip.MustParsePrefix("10.0.0.5/24"), netip.MustParsePrefix("2001:db8:1:0:f816:3eff:fe00:5/64"),
			netip.MustParsePrefix("2001:db8:2::9/64")},
		Gateway: a("10.0.0.1"), Gateway6: a("2001:db8:1::1"),
		Modes: map[netip.Addr]string{a("2001:db8:1:0:f816:3eff:fe00:5"): "slaac"},
	}}}
	r := Answer(inst, "/openstack/latest/network_data.json")
	var doc struct {
		Networks []struct {
			Type      string `json:"type"`
			IPAddress string `json:"ip_address"`
			Netmask   string `json:"netmask"`
			Routes    []struct {
				Network, Netmask, Gateway string
			} `json:"routes"`
		} `json:"networks"`
	}
	if err := json.Unmarshal(r.Body, &doc); err != nil {
		t.Fatal(err)
	}
	type net struct{ typ, ip, mask, route string }
	var got []net
	for _, n := range doc.Networks {
		route := ""
		for _, rt := range n.Routes {
			route = rt.Network + "/" + rt.Netmask + " via " + rt.Gateway
		}
		got = append(got, net{n.Type, n.IPAddress, n.Netmask, route})
	}
	want := []net{
		{"ipv4", "10.0.0.5", "255.255.255.0", "0.0.0.0/0.0.0.0 via 10.0.0.1"},
		{"ipv6_slaac", "2001:db8:1:0:f816:3eff:fe00:5", "ffff:ffff:ffff:ffff::", "::/:: via 2001:db8:1::1"},
		{"ipv6", "2001:db8:2::9", "ffff:ffff:ffff:ffff::", ""},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("networks\n got %v\nwant %v", got, want)
	}
	if r := Answer(inst, "/latest/meta-data/local-ipv4"); r.Status != 200 || len(r.Body) != 0 {
		t.Errorf("local-ipv4 of an instance without one: %d %q", r.Status, r.Body)
	}
}

// TestListenLinkLocal: an instance asks [fe80::a9fe:a9fe%eth0]:80 from
// its link-local address and from a global one, and gets its own data; an
// address of its link nsnet does not know gets 404, and so does the same
// link-local address registered on another network.
func TestListenLinkLocal(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces)")
	}
	srv, cli := testPrefix+"qdhcp", testPrefix+"vm"
	for _, n := range []string{srv, cli} {
		if err := netns.Create(n); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := netns.Delete(n); err != nil {
				t.Error(err)
			}
		})
	}
	mac, _ := net.ParseMAC("fa:16:3e:00:00:05")
	ll, _ := LinkLocal(mac)
	global, stranger := netip.MustParseAddr("2001:db8:1::5"), netip.MustParseAddr("2001:db8:1::7")
	svc := NewService(slog.New(slog.DiscardHandler))
	mine := &Instance{ID: "mine", Name: "vm", Hostname: "vm", Domain: "nsnet.internal"}
	other := &Instance{ID: "other", Name: "other", Hostname: "other"}
	svc.SetDirectory(Directory{
		{NetworkID: "net-1", Addr: ll}:     mine,
		{NetworkID: "net-1", Addr: global}: mine,
		{NetworkID: "net-2", Addr: ll}:     other,
		{NetworkID: "net-2", Addr: global}: other,
	})

	// The server's side of the link first, and the listener before its
	// address: IPV6_FREEBIND makes the order irrelevant.
	h, err := netns.NewHandle(srv)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	cfd, err := netns.Open(cli)
	if err != nil {
		t.Fatal(err)
	}
	defer cfd.Close()
	attrs := netlink.NewLinkAttrs()
	attrs.Name = "md0"
	if err := h.LinkAdd(&netlink.Veth{LinkAttrs: attrs, PeerName: "eth0", PeerHardwareAddr: mac, PeerNamespace: netlink.NsFd(cfd)}); err != nil {
		t.Fatal(err)
	}
	sfd, err := netns.Open(srv)
	if err != nil {
		t.Fatal(err)
	}
	defer sfd.Close()
	l, err := svc.ListenLinkLocal(sfd, "md0", "net-1")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	md0, err := h.LinkByName("md0")
	if err != nil {
		t.Fatal(err)
	}
	// Prefix6, and the DHCP port's address on the subnet: the way back
	// to the instance's global address.
	for _, p := range []netip.Prefix{Prefix6, netip.MustParsePrefix("2001:db8:1::2/64")} {
		if err := h.AddrAdd(md0, &netlink.Addr{IPNet: prefixNet(p), Flags: unix.IFA_F_NODAD}); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.LinkSetUp(md0); err != nil {
		t.Fatal(err)
	}

	// The instance: no duplicate address detection, so that its
	// link-local address is usable as soon as the link is up.
	if _, err := netns.EnsureSysctl(cfd, "net.ipv6.conf.eth0.accept_dad", "0"); err != nil {
		t.Fatal(err)
	}
	ch, err := netns.NewHandle(cli)
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	eth0, err := ch.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []netip.Addr{global, stranger} {
		if err := ch.AddrAdd(eth0, &netlink.Addr{IPNet: prefixNet(netip.PrefixFrom(a, 64)), Flags: unix.IFA_F_NODAD}); err != nil {
			t.Fatal(err)
		}
	}
	if err := ch.LinkSetUp(eth0); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		from   netip.Addr
		status int
		want   string
	}{
		{ll, 200, `"uuid": "mine"`},
		{global, 200, `"uuid": "mine"`},
		{stranger, 404, ""},
	} {
		status, body := getFrom(t, cli, eth0.Attrs().Index, tc.from, "/openstack/latest/meta_data.json")
		if status != tc.status || !strings.Contains(body, tc.want) {
			t.Errorf("GET from %s: %d %q, want %d with %q", tc.from, status, body, tc.status, tc.want)
		}
	}
}

func prefixNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// getFrom GETs path from [Addr6%ifindex]:80 inside namespace ns, from
// source address src, retrying as a client would while the link comes up.
func getFrom(t *testing.T, ns string, ifindex int, src netip.Addr, path string) (int, string) {
	t.Helper()
	zone := strconv.Itoa(ifindex)
	dial := func(ctx context.Context, _, _ string) (net.Conn, error) {
		var conn net.Conn
		err := netns.DoNamed(ns, func() error {
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: src.AsSlice(), Zone: zone}, Timeout: time.Second}
			var err error
			conn, err = d.DialContext(ctx, "tcp6", netip.AddrPortFrom(Addr6.WithZone(zone), Port6).String())
			return err
		})
		return conn, err
	}
	c := &http.Client{Transport: &http.Transport{DialContext: dial, DisableKeepAlives: true}, Timeout: 5 * time.Second}
	var lastErr error
	for range 20 {
		resp, err := c.Get("http://metadata" + path)
		if err != nil {
			lastErr = err
			time.Sleep(200 * time.Millisecond)
			continue
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(b)
	}
	t.Fatalf("GET %s from %s: %v", path, src, lastErr)
	return 0, ""
}
