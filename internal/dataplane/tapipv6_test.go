package dataplane

import (
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/nsnet/nsnet/internal/netns"
)

// TestPortHostEndHasNoIPv6 plugs two ports and checks that their host
// ends, bridge ports never addressed, have IPv6 off and never had any:
// no IPv6 address or route in the host namespace, and no IPv6 address
// announced for them while they were made and carried traffic.
func TestPortHostEndHasNoIPv6(t *testing.T) {
	e := newEnv(t)
	tp := newTopology(e)
	hostFd, err := netns.Open(e.hostName)
	if err != nil {
		t.Fatal(err)
	}
	defer hostFd.Close()
	updates, done := make(chan netlink.AddrUpdate, 64), make(chan struct{})
	defer close(done)
	if err := netlink.AddrSubscribeWithOptions(updates, done, netlink.AddrSubscribeOptions{Namespace: &hostFd}); err != nil {
		t.Fatal(err)
	}
	tp.ensure(t)
	// Both ends up and carrying traffic: on a tap with IPv6 on, the
	// kernel has made its link-local address by now.
	tp.pingAll(t)

	taps := map[int]string{}
	for _, p := range tp.ports {
		link, err := e.links.Get(p.spec.TapName)
		if err != nil || link == nil {
			t.Fatalf("tap %s: %v", p.spec.TapName, err)
		}
		taps[link.Attrs().Index] = p.spec.TapName
		if v, err := netns.ReadSysctl(hostFd, "net/ipv6/conf/"+p.spec.TapName+"/disable_ipv6"); err != nil || v != "1" {
			t.Errorf("%s: disable_ipv6 = %q (%v), want 1", p.spec.TapName, v, err)
		}
		addrs, err := e.host.Handle.AddrList(link, netlink.FAMILY_V6)
		if err != nil {
			t.Fatal(err)
		}
		if len(addrs) > 0 {
			t.Errorf("%s has IPv6 addresses %v", p.spec.TapName, addrs)
		}
	}
	routes, err := e.host.Handle.RouteListFiltered(netlink.FAMILY_V6, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range routes {
		if name, ok := taps[r.LinkIndex]; ok {
			t.Errorf("IPv6 route on %s: %v", name, r)
		}
	}
	// The kernel announces a link-local address once its duplicate
	// address detection is over, a second or so after the link is up:
	// what comes until 2 s of quiet.
	for {
		select {
		case u := <-updates:
			if name, ok := taps[u.LinkIndex]; ok && u.LinkAddress.IP.To4() == nil {
				t.Errorf("%s had IPv6 address %v", name, u.LinkAddress.IP)
			}
		case <-time.After(2 * time.Second):
			return
		}
	}
}

// TestPortHostEndIPv6Repaired turns a port's host end's IPv6 back on
// behind nsnet's back: a pass over a Links of DumpLinksVia (a full pass)
// sees it in the dump and turns it off again, reporting a change, and the
// next finds nothing to do; a pass that does not dump (incremental)
// neither reads nor touches it.
func TestPortHostEndIPv6Repaired(t *testing.T) {
	e := newEnv(t)
	tp := newTopology(e)
	tp.ensure(t)
	sock := e.routeSocket(t)
	ns, err := OpenNamespace(e.ns("red"))
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	spec := tp.ports["p-red"].spec
	key := "net/ipv6/conf/" + spec.TapName + "/disable_ipv6"
	hostFd, err := netns.Open(e.hostName)
	if err != nil {
		t.Fatal(err)
	}
	defer hostFd.Close()
	if _, err := netns.EnsureSysctl(hostFd, key, "0"); err != nil {
		t.Fatal(err)
	}

	for _, pass := range []struct {
		name       string
		links      func() (*Links, error)
		wantChange bool
		wantValue  string
	}{
		{"incremental", func() (*Links, error) {
			l := NewLinks(e.host.Handle)
			l.SetSocket(e.hostName, sock)
			return l, nil
		}, false, "0"},
		{"full", func() (*Links, error) { return DumpLinksVia(e.host.Handle, e.hostName, sock) }, true, "1"},
		{"full again", func() (*Links, error) { return DumpLinksVia(e.host.Handle, e.hostName, sock) }, false, "1"},
	} {
		links, err := pass.links()
		if err != nil {
			t.Fatal(err)
		}
		changed, err := EnsureVethPort(links, ns, spec)
		if err != nil {
			t.Fatalf("%s: %v", pass.name, err)
		}
		if changed != pass.wantChange {
			t.Errorf("%s pass: changed %v, want %v", pass.name, changed, pass.wantChange)
		}
		if v, err := netns.ReadSysctl(hostFd, key); err != nil || v != pass.wantValue {
			t.Errorf("after the %s pass: disable_ipv6 = %q (%v), want %s", pass.name, v, err, pass.wantValue)
		}
	}
	tp.pingAll(t)
}
