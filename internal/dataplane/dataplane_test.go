package dataplane

import (
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/nsnet/nsnet/internal/netns"
)

func TestEnsureBridge(t *testing.T) {
	e := newEnv(t)
	spec := BridgeSpec{Name: "nsb-test", Alias: NetworkAlias("test"), MTU: 1450, Up: true}

	steps := []struct {
		name        string
		spec        BridgeSpec
		drift       []string // ip arguments run before Ensure
		wantChanged bool
		wantShow    []string // substrings of `ip -d link show`
	}{
		{"create", spec, nil, true, []string{"mtu 1450", "alias " + spec.Alias, ",UP", "bridge"}},
		{"converged", spec, nil, false, nil},
		{"mtu changes", withMTU(spec, 1400), nil, true, []string{"mtu 1400"}},
		{"admin down", withUp(withMTU(spec, 1400), false), nil, true, []string{"state DOWN"}},
		{"drift: deleted", spec, []string{"link", "del", "nsb-test"}, true, []string{"mtu 1450", "alias " + spec.Alias}},
		{"drift: alias gone but MAC ours", spec, []string{"link", "set", "nsb-test", "alias", ""}, true, []string{"alias " + spec.Alias}},
		{"converged again", spec, nil, false, nil},
	}
	for _, s := range steps {
		if s.drift != nil {
			e.ip(append([]string{"-n", e.hostName}, s.drift...)...)
		}
		changed, err := EnsureBridge(e.links, s.spec)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if changed != s.wantChanged {
			t.Fatalf("%s: changed = %v, want %v", s.name, changed, s.wantChanged)
		}
		show := e.ip("-n", e.hostName, "-d", "link", "show", "nsb-test")
		for _, want := range s.wantShow {
			if !strings.Contains(show, want) {
				t.Fatalf("%s: %q not in\n%s", s.name, want, show)
			}
		}
	}
}

func withMTU(s BridgeSpec, mtu int) BridgeSpec { s.MTU = mtu; return s }
func withUp(s BridgeSpec, up bool) BridgeSpec  { s.Up = up; return s }

func TestForeignBridgeUntouched(t *testing.T) {
	e := newEnv(t)
	e.ip("-n", e.hostName, "link", "add", "nsb-test", "mtu", "1300", "type", "bridge")
	_, err := EnsureBridge(e.links, BridgeSpec{Name: "nsb-test", Alias: NetworkAlias("test"), MTU: 1500, Up: true})
	mustNotOwned(t, err)
	_, err = DeleteLink(e.links, "nsb-test", NetworkAlias("test"))
	mustNotOwned(t, err)
	show := e.ip("-n", e.hostName, "link", "show", "nsb-test")
	if !strings.Contains(show, "mtu 1300") || strings.Contains(show, "alias") || strings.Contains(show, ",UP") {
		t.Fatalf("foreign bridge was changed:\n%s", show)
	}
	e.ip("-n", e.hostName, "link", "del", "nsb-test")
}

// topology is the usual test network: one bridge, two instances with one
// port each on 10.9.0.0/24 (gateway 10.9.0.1).
type topology struct {
	e      *testEnv
	bridge BridgeSpec
	insts  map[string]string // instance id → namespace
	ports  map[string]portAt // port id → where and what
}

type portAt struct {
	instance string
	spec     PortSpec
}

func newTopology(e *testEnv) *topology {
	tp := &topology{
		e:      e,
		bridge: BridgeSpec{Name: "nsb-net1", Alias: NetworkAlias("net1"), MTU: 1500, Up: true},
		insts:  map[string]string{"i-red": e.ns("red"), "i-green": e.ns("green")},
		ports:  map[string]portAt{},
	}
	tp.ports["p-red"] = portAt{"i-red", portSpec("p-red", "fa:16:3e:00:00:11", "10.9.0.11/24")}
	tp.ports["p-green"] = portAt{"i-green", portSpec("p-green", "fa:16:3e:00:00:12", "10.9.0.12/24")}
	return tp
}

func portSpec(id, mac, addr string) PortSpec {
	hw, _ := net.ParseMAC(mac)
	return PortSpec{
		TapName: "tap" + id,
		Bridge:  "nsb-net1",
		Alias:   PortAlias(id),
		MTU:     1500,
		Up:      true,
		IfName:  "eth0",
		MAC:     hw,
		Addrs:   []netip.Prefix{netip.MustParsePrefix(addr)},
		Routes: []Route{
			{Dst: netip.MustParsePrefix("0.0.0.0/0"), Gw: netip.MustParseAddr("10.9.0.1")},
			{Dst: netip.MustParsePrefix("198.51.100.0/24"), Gw: netip.MustParseAddr("10.9.0.254")},
		},
	}
}

// ensure converges the whole topology and reports whether anything changed.
func (tp *topology) ensure(t *testing.T) bool {
	t.Helper()
	changed, err := EnsureBridge(tp.e.links, tp.bridge)
	if err != nil {
		t.Fatal(err)
	}
	open := map[string]*Namespace{}
	defer func() {
		for _, ns := range open {
			ns.Close()
		}
	}()
	for id, name := range tp.insts {
		ns, c, err := EnsureInstanceNetns(name, tp.e.marker(id))
		if err != nil {
			t.Fatal(err)
		}
		open[id] = ns
		changed = changed || c
	}
	for id, p := range tp.ports {
		c, err := EnsureVethPort(tp.e.links, open[p.instance], p.spec)
		if err != nil {
			t.Fatalf("port %s: %v", id, err)
		}
		changed = changed || c
	}
	return changed
}

func (tp *topology) pingAll(t *testing.T) {
	t.Helper()
	if err := ping(tp.e.ns("red"), "10.9.0.12"); err != nil {
		t.Fatal(err)
	}
	if err := ping(tp.e.ns("green"), "10.9.0.11"); err != nil {
		t.Fatal(err)
	}
}

func TestPortsPingAndConverge(t *testing.T) {
	e := newEnv(t)
	tp := newTopology(e)
	if !tp.ensure(t) {
		t.Fatal("first pass reported no change")
	}
	tp.pingAll(t)
	if tp.ensure(t) {
		t.Fatal("second pass changed something")
	}

	red := e.ns("red")
	show := e.ip("-n", red, "-d", "link", "show", "eth0")
	for _, want := range []string{"fa:16:3e:00:00:11", "alias " + PortAlias("p-red"), "mtu 1500", ",UP", "veth"} {
		if !strings.Contains(show, want) {
			t.Errorf("%q not in eth0 of red:\n%s", want, show)
		}
	}
	if tap := e.ip("-n", e.hostName, "link", "show", "tapp-red"); !strings.Contains(tap, "master nsb-net1") || !strings.Contains(tap, "alias "+PortAlias("p-red")) {
		t.Errorf("tap not enslaved and labelled:\n%s", tap)
	}
	routes := e.ip("-n", red, "route", "show")
	for _, want := range []string{"default via 10.9.0.1 dev eth0 proto 78", "198.51.100.0/24 via 10.9.0.254 dev eth0 proto 78", "10.9.0.0/24 dev eth0 proto kernel"} {
		if !strings.Contains(routes, want) {
			t.Errorf("%q not in routes of red:\n%s", want, routes)
		}
	}
	if lo := e.ip("-n", red, "link", "show", "lo"); !strings.Contains(lo, "alias "+e.marker("i-red")) || !strings.Contains(lo, ",UP") {
		t.Errorf("lo of red not up and marked:\n%s", lo)
	}
}

// TestDriftRepaired breaks one thing at a time behind nsnet's back, the
// way an operator with `ip` might, and checks that one Ensure pass repairs
// it (reporting a change), the next changes nothing, and traffic flows.
func TestDriftRepaired(t *testing.T) {
	e := newEnv(t)
	tp := newTopology(e)
	tp.ensure(t)
	host, red := e.hostName, e.ns("red")

	for _, tc := range []struct {
		name  string
		drift [][]string
		check func(t *testing.T)
	}{
		{name: "tap deleted", drift: [][]string{{"-n", host, "link", "del", "tapp-red"}}},
		{name: "instance end deleted", drift: [][]string{{"-n", red, "link", "del", "eth0"}}},
		{name: "tap detached", drift: [][]string{{"-n", host, "link", "set", "tapp-red", "nomaster"}}},
		{name: "tap down", drift: [][]string{{"-n", host, "link", "set", "tapp-red", "down"}}},
		{name: "bridge deleted", drift: [][]string{{"-n", host, "link", "del", "nsb-net1"}}},
		{name: "instance end down", drift: [][]string{{"-n", red, "link", "set", "eth0", "down"}}},
		{name: "MAC changed", drift: [][]string{{"-n", red, "link", "set", "eth0", "address", "fa:16:3e:99:99:99"}}},
		{name: "MTU changed", drift: [][]string{{"-n", red, "link", "set", "eth0", "mtu", "1400"}}},
		{name: "address flushed", drift: [][]string{{"-n", red, "addr", "flush", "dev", "eth0"}}},
		{name: "extra address", drift: [][]string{{"-n", red, "addr", "add", "10.9.0.99/24", "dev", "eth0"}},
			check: func(t *testing.T) {
				if a := e.ip("-n", red, "addr", "show", "eth0"); strings.Contains(a, "10.9.0.99") {
					t.Errorf("extra address kept:\n%s", a)
				}
			}},
		{name: "default route deleted", drift: [][]string{{"-n", red, "route", "del", "default"}}},
		{name: "extra nsnet route", drift: [][]string{{"-n", red, "route", "add", "192.0.2.0/24", "via", "10.9.0.1", "proto", "78"}},
			check: func(t *testing.T) {
				if r := e.ip("-n", red, "route", "show"); strings.Contains(r, "192.0.2.0/24") {
					t.Errorf("route nsnet no longer wants kept:\n%s", r)
				}
			}},
		{name: "lo down", drift: [][]string{{"-n", red, "link", "set", "lo", "down"}}},
		{name: "namespace deleted", drift: [][]string{{"netns", "delete", red}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, args := range tc.drift {
				e.ip(args...)
			}
			if !tp.ensure(t) {
				t.Fatal("repair pass reported no change")
			}
			if tp.ensure(t) {
				t.Fatal("pass after repair changed something")
			}
			tp.pingAll(t)
			if tc.check != nil {
				tc.check(t)
			}
		})
	}
}

func TestForeignRouteKept(t *testing.T) {
	e := newEnv(t)
	tp := newTopology(e)
	tp.ensure(t)
	red := e.ns("red")
	e.ip("-n", red, "route", "add", "192.0.2.0/24", "via", "10.9.0.1")
	if tp.ensure(t) {
		t.Fatal("a route nsnet did not make caused a change")
	}
	if r := e.ip("-n", red, "route", "show"); !strings.Contains(r, "192.0.2.0/24 via 10.9.0.1") {
		t.Fatalf("foreign route removed:\n%s", r)
	}

	// A foreign route where nsnet wants one is reported, not replaced.
	e.ip("-n", red, "route", "del", "198.51.100.0/24")
	e.ip("-n", red, "route", "add", "198.51.100.0/24", "via", "10.9.0.1")
	ns, _, err := EnsureInstanceNetns(red, e.marker("i-red"))
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	_, err = EnsureVethPort(e.links, ns, tp.ports["p-red"].spec)
	mustNotOwned(t, err)
	if r := e.ip("-n", red, "route", "show"); !strings.Contains(r, "198.51.100.0/24 via 10.9.0.1 dev eth0 \n") && !strings.Contains(r, "198.51.100.0/24 via 10.9.0.1 dev eth0\n") {
		t.Fatalf("foreign route replaced:\n%s", r)
	}
}

// TestLookAlikesUntouched puts objects with the names nsnet wants, but not
// its marks, where it would create its own, and checks they are reported and
// left exactly as they were.
func TestLookAlikesUntouched(t *testing.T) {
	e := newEnv(t)
	tp := newTopology(e)
	if _, err := EnsureBridge(e.links, tp.bridge); err != nil {
		t.Fatal(err)
	}
	red, green := e.ns("red"), e.ns("green")

	t.Run("namespace without marker", func(t *testing.T) {
		e.ip("netns", "add", red)
		defer netns.Delete(red)
		ino, _ := netns.Inode(red)
		_, _, err := EnsureInstanceNetns(red, e.marker("i-red"))
		mustNotOwned(t, err)
		mustNotOwned(t, DeleteInstanceNetns(red, e.marker("i-red"), e.links))
		if again, _ := netns.Inode(red); again != ino {
			t.Fatal("foreign namespace replaced")
		}
		if lo := e.ip("-n", red, "link", "show", "lo"); strings.Contains(lo, "alias") || strings.Contains(lo, ",UP") {
			t.Fatalf("foreign namespace's lo changed:\n%s", lo)
		}
		if found, _ := ListInstanceNamespaces(e.prefix); found[red] != "" {
			t.Fatal("foreign namespace listed as an instance namespace")
		}
	})

	t.Run("namespace of another host", func(t *testing.T) {
		other := InstanceMarker("i-red", "someone-else")
		ns, _, err := EnsureInstanceNetns(red, other)
		if err != nil {
			t.Fatal(err)
		}
		ns.Close()
		defer DeleteInstanceNetns(red, other, e.links)
		_, _, err = EnsureInstanceNetns(red, e.marker("i-red"))
		mustNotOwned(t, err)
		mustNotOwned(t, DeleteInstanceNetns(red, e.marker("i-red"), e.links))
		if !netns.Exists(red) {
			t.Fatal("another host's namespace deleted")
		}
	})

	t.Run("link in the instance", func(t *testing.T) {
		ns, _, err := EnsureInstanceNetns(green, e.marker("i-green"))
		if err != nil {
			t.Fatal(err)
		}
		defer ns.Close()
		e.ip("-n", green, "link", "add", "eth0", "type", "veth", "peer", "name", "other")
		before := e.ip("-n", green, "-o", "link", "show", "eth0")
		_, err = EnsureVethPort(e.links, ns, tp.ports["p-green"].spec)
		mustNotOwned(t, err)
		if after := e.ip("-n", green, "-o", "link", "show", "eth0"); after != before {
			t.Fatalf("foreign eth0 changed:\n%s\n%s", before, after)
		}
		if l := linksIn(e.hostName); strings.Contains(strings.Join(l, " "), "tapp-green") {
			t.Fatal("tap created although the port cannot be plugged")
		}
		e.ip("-n", green, "link", "del", "eth0")
	})

	t.Run("tap in the host", func(t *testing.T) {
		ns, _, err := EnsureInstanceNetns(green, e.marker("i-green"))
		if err != nil {
			t.Fatal(err)
		}
		defer ns.Close()
		e.ip("-n", e.hostName, "link", "add", "tapp-green", "type", "veth", "peer", "name", "x-peer")
		before := e.ip("-n", e.hostName, "-o", "link", "show", "tapp-green")
		_, err = EnsureVethPort(e.links, ns, tp.ports["p-green"].spec)
		mustNotOwned(t, err)
		_, err = DeleteLink(e.links, "tapp-green", PortAlias("p-green"))
		mustNotOwned(t, err)
		if after := e.ip("-n", e.hostName, "-o", "link", "show", "tapp-green"); after != before {
			t.Fatalf("foreign tap changed:\n%s\n%s", before, after)
		}
		if owned, _ := ListOwnedLinks(e.host.Handle); len(owned) != 1 {
			t.Fatalf("owned links = %v, want only the bridge", owned)
		}
		e.ip("-n", e.hostName, "link", "del", "tapp-green")
	})
}

func TestPortMovesToAnotherInstance(t *testing.T) {
	e := newEnv(t)
	tp := newTopology(e)
	tp.ensure(t)
	moved := withIfName(tp.ports["p-red"].spec, "eth1")
	moved.Routes = nil // green's default route stays on its eth0
	tp.ports["p-red"] = portAt{"i-green", moved}
	if !tp.ensure(t) {
		t.Fatal("move reported no change")
	}
	if l := linksIn(e.ns("red")); len(l) != 0 {
		t.Fatalf("red still has %v", l)
	}
	if l := strings.Join(linksIn(e.ns("green")), " "); !strings.Contains(l, "eth0") || !strings.Contains(l, "eth1") {
		t.Fatalf("green has %s, want eth0 and eth1", l)
	}
	if tp.ensure(t) {
		t.Fatal("pass after move changed something")
	}
	if err := ping(e.ns("green"), "10.9.0.12"); err != nil {
		t.Fatal(err)
	}
}

func withIfName(s PortSpec, name string) PortSpec { s.IfName = name; return s }

func TestDefaultRouteMovesBetweenPorts(t *testing.T) {
	e := newEnv(t)
	tp := newTopology(e)
	eth1 := portSpec("p-red2", "fa:16:3e:00:00:21", "10.9.0.21/24")
	eth1.IfName = "eth1"
	eth1.Routes = nil
	tp.ports["p-red2"] = portAt{"i-red", eth1}
	tp.ensure(t)
	red := e.ns("red")
	if r := e.ip("-n", red, "route", "show", "default"); !strings.Contains(r, "dev eth0") {
		t.Fatalf("default route:\n%s", r)
	}

	// The default route moves to eth1: eth0 stops asking for it first, as
	// the agent computes both from one snapshot.
	p := tp.ports["p-red"]
	p.spec.Routes = nil
	tp.ports["p-red"] = p
	eth1.Routes = []Route{{Dst: netip.MustParsePrefix("0.0.0.0/0"), Gw: netip.MustParseAddr("10.9.0.1")}}
	tp.ports["p-red2"] = portAt{"i-red", eth1}
	tp.ensure(t)
	if r := e.ip("-n", red, "route", "show", "default"); strings.Count(r, "default") != 1 || !strings.Contains(r, "dev eth1") {
		t.Fatalf("default route after move:\n%s", r)
	}
	if tp.ensure(t) {
		t.Fatal("pass after move changed something")
	}
}

func TestDeleteInstanceTakesTapAlong(t *testing.T) {
	e := newEnv(t)
	tp := newTopology(e)
	tp.ensure(t)
	if err := DeleteInstanceNetns(e.ns("red"), e.marker("i-red"), e.links); err != nil {
		t.Fatal(err)
	}
	if netns.Exists(e.ns("red")) {
		t.Fatal("namespace still exists")
	}
	// Synchronously: no waiting for the kernel's namespace cleanup.
	if l := strings.Join(linksIn(e.hostName), " "); strings.Contains(l, "tapp-red") {
		t.Fatalf("tap of the deleted instance still there: %s", l)
	}
	if err := DeleteInstanceNetns(e.ns("red"), e.marker("i-red"), e.links); err != nil {
		t.Fatalf("deleting a missing namespace: %v", err)
	}
}

func TestHalfCreatedLinksAdopted(t *testing.T) {
	e := newEnv(t)
	tp := newTopology(e)
	tp.ensure(t)
	// What a crash between creating a link and labelling it leaves: the
	// birth MAC without the alias. Both ends of the pair.
	e.ip("-n", e.hostName, "link", "set", "tapp-red", "alias", "")
	e.ip("-n", e.ns("red"), "link", "set", "eth0", "alias", "")
	if !tp.ensure(t) {
		t.Fatal("labels not restored")
	}
	owned, err := ListOwnedLinks(e.host.Handle)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := owned[PortAlias("p-red")]; !ok {
		t.Fatalf("tap not relabelled: %v", owned)
	}
	// The same name with another MAC is someone else's.
	e.ip("-n", e.hostName, "link", "set", "tapp-red", "alias", "", "address", "02:00:00:00:00:01")
	ns, _, err := EnsureInstanceNetns(e.ns("red"), e.marker("i-red"))
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	_, err = EnsureVethPort(e.links, ns, tp.ports["p-red"].spec)
	mustNotOwned(t, err)
	e.ip("-n", e.hostName, "link", "del", "tapp-red")
}

func TestDumpedLinksReadOnce(t *testing.T) {
	e := newEnv(t)
	tp := newTopology(e)
	tp.ensure(t)
	links, err := DumpLinks(e.host.Handle)
	if err != nil {
		t.Fatal(err)
	}
	// A link deleted after the dump is still answered from it (no
	// request), while one nsnet changed is read again.
	e.ip("-n", e.hostName, "link", "del", "tapp-green")
	if l, _ := links.Get("tapp-green"); l == nil {
		t.Fatal("dumped Links asked the kernel for a link it had")
	}
	if l, _ := links.Get("nope"); l != nil {
		t.Fatal("dumped Links invented a link")
	}
	links.forget("tapp-green")
	if l, _ := links.Get("tapp-green"); l != nil {
		t.Fatal("forgotten link not read again")
	}
	owned := links.Owned()
	for _, alias := range []string{NetworkAlias("net1"), PortAlias("p-red")} {
		if _, ok := owned[alias]; !ok {
			t.Errorf("Owned lacks %s: %v", alias, owned)
		}
	}
	var _ netlink.Link = owned[NetworkAlias("net1")]
}

// TestLinkLocalAddrOfNsnet: a link-local address nsnet asks for (the
// metadata service's fe80::a9fe:a9fe/64) is added without DAD, kept while
// wanted, and removed once not; the kernel's own link-local address (DAD
// done, so no nodad flag) stays throughout.
func TestLinkLocalAddrOfNsnet(t *testing.T) {
	e := newEnv(t)
	tp := newTopology(e)
	meta := netip.MustParsePrefix("fe80::a9fe:a9fe/64")
	red := tp.ports["p-red"]
	red.spec.Addrs = append(red.spec.Addrs, netip.MustParsePrefix("2001:db8:9::11/64"), meta)
	tp.ports["p-red"] = red
	tp.ensure(t)
	show := func() string { return e.ip("-n", e.ns("red"), "-6", "addr", "show", "dev", "eth0") }
	kernel := "fe80::f816:3eff:fe00:11/64"
	if got := show(); !strings.Contains(got, "inet6 fe80::a9fe:a9fe/64 scope link nodad") || !strings.Contains(got, kernel) {
		t.Fatalf("want the metadata address (nodad) and the kernel's link-local:\n%s", got)
	}
	if tp.ensure(t) {
		t.Fatal("second pass changed something")
	}
	red.spec.Addrs = slices.DeleteFunc(slices.Clone(red.spec.Addrs), func(p netip.Prefix) bool { return p == meta })
	tp.ports["p-red"] = red
	if !tp.ensure(t) {
		t.Error("removing the metadata address reported no change")
	}
	if got := show(); strings.Contains(got, "fe80::a9fe:a9fe") || !strings.Contains(got, kernel) {
		t.Fatalf("want only the kernel's link-local left:\n%s", got)
	}
	if tp.ensure(t) {
		t.Fatal("pass after the removal changed something")
	}
}

// TestInstanceEndIPv6Defaults checks that an instance namespace keeps
// the kernel's IPv6 defaults (router solicitations, duplicate address
// detection: an IPv4-only network's firewall stops them), and that in a
// namespace the previous nsnet made quiet (LegacyInstanceSysctls) a port
// whose network has IPv6 gets the kernel's defaults back, before it comes
// up or when its network gains IPv6 later, while an IPv4-only port is
// left as it is.
func TestInstanceEndIPv6Defaults(t *testing.T) {
	e := newEnv(t)
	tp := newTopology(e)
	quiet := map[string]string{"router_solicitations": "0", "dad_transmits": "0"}
	kernel := map[string]string{"router_solicitations": "-1", "dad_transmits": "1"}
	check := func(ns, conf string, want map[string]string) {
		t.Helper()
		for k, v := range want {
			if got := sysctl(t, ns, "net/ipv6/conf/"+conf+"/"+k); got != v {
				t.Errorf("%s: %s/%s = %s, want %s", ns, conf, k, got, v)
			}
		}
	}
	// red's namespace as the previous nsnet made it.
	ns, _, err := EnsureInstanceNetns(e.ns("red"), e.marker("i-red"))
	if err != nil {
		t.Fatal(err)
	}
	ns.Close()
	for _, s := range LegacyInstanceSysctls {
		if out, err := exec.Command("ip", "netns", "exec", e.ns("red"), "sysctl", "-qw", s.Key+"="+s.Value).CombinedOutput(); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
	}
	red := tp.ports["p-red"]
	tp.ensure(t)
	check(e.ns("green"), "default", kernel)
	check(e.ns("green"), "eth0", kernel)
	check(e.ns("red"), "default", quiet)
	check(e.ns("red"), "eth0", quiet)
	// The host namespace is none of this' business.
	check(e.hostName, "default", kernel)
	if tp.ensure(t) {
		t.Fatal("second pass changed something")
	}

	// red's network gains an IPv6 subnet, red's end already up.
	red.spec.NetworkIPv6 = true
	tp.ports["p-red"] = red
	if !tp.ensure(t) {
		t.Error("the network's IPv6 reported no change")
	}
	check(e.ns("red"), "eth0", kernel)
	if tp.ensure(t) {
		t.Fatal("pass after the change changed something")
	}

	// A router's namespace keeps the kernel's defaults.
	name := e.ns("qrouter-r1")
	ns, _, err = EnsureRouterNetns(name, RouterMarker("r1", e.hostName))
	if err != nil {
		t.Fatal(err)
	}
	ns.Close()
	check(name, "default", kernel)
	if err := DeleteRouterNetns(name, RouterMarker("r1", e.hostName), e.links); err != nil {
		t.Fatal(err)
	}
}
