package agent

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/netns"
	"github.com/nsnet/nsnet/internal/store"
)

// dsnet is a dual-stack network: l3net's network and IPv4 subnet, and an
// IPv6 subnet.
type dsnet struct {
	l3net
	v6 model.Subnet
}

// dualNetwork is l3network with an IPv6 subnet cidr6 (gateway gw6, the
// modes ra and addr, "" for unset) next to the IPv4 one.
func dualNetwork(n int, cidr4, gw4, cidr6, gw6 string, external bool, ra, addr string) dsnet {
	d := dsnet{l3net: l3network(n, cidr4, gw4, external)}
	d.v6 = model.Subnet{ID: rid(n + 2), NetworkID: d.net.ID, IPVersion: 6, CIDR: cidr6, EnableDHCP: true}
	if gw6 != "" {
		d.v6.GatewayIP = ptr(gw6)
	}
	if ra != "" {
		d.v6.IPv6RAMode = ptr(ra)
	}
	if addr != "" {
		d.v6.IPv6AddressMode = ptr(addr)
	}
	d.net.Subnets = append(d.net.Subnets, d.v6.ID)
	return d
}

func (n dsnet) records() []any { return []any{n.net, n.subnet, n.v6} }

// port has ip4 on the IPv4 subnet and ip6 on the IPv6 one ("" for none).
func (n dsnet) port(id int, ip4, ip6, owner, device string) model.Port {
	p := n.l3net.port(id, ip4, owner, device)
	if ip4 == "" {
		p.FixedIPs = nil
	}
	if ip6 != "" {
		p.FixedIPs = append(p.FixedIPs, model.FixedIP{SubnetID: n.v6.ID, IPAddress: ip6})
	}
	return p
}

func (n dsnet) vm(id int, name, ip4, ip6 string) []any {
	p := n.port(id, ip4, ip6, model.DeviceOwnerCompute, "inst-"+name)
	p.InterfaceName = "eth0"
	return []any{testInstance(name), p}
}

// outside6 gives the world IPv6: the upstream router up6 on the external
// network, the far host at 2001:db8:f0::1 behind it, and routes on the
// upstream router to the tenant prefixes via the tenant router's gateway
// address — the routes an admin adds on the external side, since IPv6 is
// routed, never translated. It returns the far host's IPv6 server on
// port 7.
func (e *env) outside6(w *world, up6, routerGw string, tenants ...string) *servers {
	e.t.Helper()
	cmds := [][]string{
		{"-n", w.up, "addr", "add", up6, "dev", "eth0", "nodad"},
		{"-n", w.up, "addr", "add", "2001:db8:f0::fe/64", "dev", "eth1", "nodad"},
		{"-n", w.far, "addr", "add", "2001:db8:f0::1/64", "dev", "eth0", "nodad"},
		{"-n", w.far, "route", "add", "::/0", "via", "2001:db8:f0::fe"},
		{"netns", "exec", w.up, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"},
	}
	for _, p := range tenants {
		cmds = append(cmds, []string{"-n", w.up, "route", "add", p, "via", routerGw})
	}
	for _, args := range cmds {
		e.ip(args...)
	}
	return e.serve6(w.far, 7)
}

// sysctl reads a sysctl in namespace ns.
func (e *env) sysctl(ns, key string) string {
	e.t.Helper()
	out, err := exec.Command("ip", "netns", "exec", ns, "sysctl", "-n", key).CombinedOutput()
	if err != nil {
		e.t.Fatalf("sysctl %s in %s: %v\n%s", key, ns, err, out)
	}
	return strings.TrimSpace(string(out))
}

// The usual L3 topology, dual-stack: each network also has an IPv6 /64
// with static addresses (no RA, no DHCPv6: the agent configures them, as
// it does IPv4).
type l3topo6 struct {
	ext, int1, int2 dsnet
	r               model.Router
	qr1, qr2, qg    model.Port
	vm1, vm3        []any
}

func newL3Topo6() l3topo6 {
	t := l3topo6{
		ext:  dualNetwork(100, "198.51.100.0/24", "198.51.100.1", "2001:db8:ff::/64", "2001:db8:ff::1", true, "", ""),
		int1: dualNetwork(110, "10.0.0.0/24", "10.0.0.1", "2001:db8:1::/64", "2001:db8:1::1", false, "", ""),
		int2: dualNetwork(120, "10.1.0.0/24", "10.1.0.1", "2001:db8:2::/64", "2001:db8:2::1", false, "", ""),
	}
	t.r = router(200, &t.ext.l3net, true)
	t.qr1 = t.int1.port(201, "10.0.0.1", "2001:db8:1::1", model.DeviceOwnerRouterInterface, t.r.ID)
	t.qr2 = t.int2.port(202, "10.1.0.1", "2001:db8:2::1", model.DeviceOwnerRouterInterface, t.r.ID)
	t.qg = t.ext.port(203, "198.51.100.10", "2001:db8:ff::10", model.DeviceOwnerRouterGateway, t.r.ID)
	t.vm1 = t.int1.vm(211, "vm1", "10.0.0.11", "2001:db8:1::11")
	t.vm3 = t.int2.vm(213, "vm3", "10.1.0.13", "2001:db8:2::13")
	return t
}

func (t l3topo6) all() []any {
	recs := append(append(append([]any{}, t.ext.records()...), t.int1.records()...), t.int2.records()...)
	recs = append(recs, t.r, t.qr1, t.qr2, t.qg)
	return append(append(recs, t.vm1...), t.vm3...)
}

// TestRouterDualStack: a router between two dual-stack subnets routes
// IPv6 between them and to an IPv6 upstream with no translation (the far
// host sees the instance's own address), while IPv4 leaves SNATed to the
// gateway address; router ports never accept advertisements; a converged
// host does not change; an IPv6 address removed behind the agent's back
// comes back; a restarted agent changes nothing; an IPv6 address that
// leaves the port's records leaves the kernel.
func TestRouterDualStack(t *testing.T) {
	e := newEnv(t, 100*time.Millisecond)
	topo := newL3Topo6()
	e.converge(e.put(topo.all()...))
	for _, p := range []model.Port{topo.qr1, topo.qr2, topo.qg} {
		e.wantStatus(store.Ports, p.ID, model.StatusActive)
	}
	e.wantStatus(store.Routers, topo.r.ID, model.StatusActive)
	rns, qg, qr1 := e.routerNS(topo.r), model.RouterGatewayName(topo.qg.ID), model.RouterInterfaceName(topo.qr1.ID)
	if addr := e.ip("-n", rns, "addr", "show", qg); !strings.Contains(addr, "inet 198.51.100.10/24") || !strings.Contains(addr, "inet6 2001:db8:ff::10/64") {
		t.Fatalf("qg-:\n%s", addr)
	}
	if addr := e.ip("-n", rns, "addr", "show", qr1); !strings.Contains(addr, "inet6 2001:db8:1::1/64") {
		t.Fatalf("qr-:\n%s", addr)
	}
	if r := e.ip("-n", rns, "-6", "route", "show", "default"); !strings.Contains(r, "via 2001:db8:ff::1 dev "+qg+" proto 78") {
		t.Fatalf("router IPv6 default route:\n%s", r)
	}
	if got := e.sysctl(rns, "net.ipv6.conf.all.forwarding"); got != "1" {
		t.Fatalf("router IPv6 forwarding = %s", got)
	}
	for _, ifname := range []string{qg, qr1} {
		if got := e.sysctl(rns, "net/ipv6/conf/"+ifname+"/accept_ra"); got != "0" {
			t.Fatalf("%s accept_ra = %s", ifname, got)
		}
	}
	vm1, vm3 := e.ns("vm1"), e.ns("vm3")
	if r := e.ip("-n", vm1, "-6", "route", "show", "default"); !strings.Contains(r, "via 2001:db8:1::1 dev eth0 proto 78") {
		t.Fatalf("vm1 IPv6 default route:\n%s", r)
	}

	// Between the subnets: routed, both families.
	if err := ping6(vm1, "2001:db8:2::13"); err != nil {
		t.Fatal(err)
	}
	if err := ping(vm1, "10.1.0.13"); err != nil {
		t.Fatal(err)
	}
	e.serve6(vm3, 7)
	e.mustArriveFrom(vm1, "[2001:db8:2::13]:7", "2001:db8:1::11")

	// Out: IPv4 SNATed to the gateway address, IPv6 with its own source.
	w := e.outside(topo.ext.l3net, "198.51.100.1/24")
	far6 := e.outside6(w, "2001:db8:ff::1/64", "2001:db8:ff::10", "2001:db8:1::/64", "2001:db8:2::/64")
	e.mustArriveFrom(vm1, "203.0.113.1:7", "198.51.100.10")
	e.mustArriveFrom(vm1, "[2001:db8:f0::1]:7", "2001:db8:1::11")
	e.mustArriveFrom(vm3, "[2001:db8:f0::1]:7", "2001:db8:2::13")
	if got := far6.last(); got.String() != "2001:db8:2::13" {
		t.Fatalf("far host saw %v", got)
	}
	// And in: the far host reaches the instance by its address.
	e.mustArriveFrom(w.far, "[2001:db8:2::13]:7", "2001:db8:f0::1")

	// A converged host does not change.
	changes := e.agent.Health().Changes
	e.waitFullPasses(2)
	if got := e.agent.Health().Changes; got != changes {
		t.Fatalf("converged passes made %d changes", got-changes)
	}

	// A restarted agent finds it all as it wants it.
	e.stop()
	e.start()
	e.converge(e.revision())
	if c := e.agent.Health().Changes; c != 0 {
		t.Fatalf("restart of a converged dual-stack host made %d changes", c)
	}

	// Drift: IPv6 addresses removed behind the agent's back come back.
	e.ip("-n", rns, "addr", "del", "2001:db8:1::1/64", "dev", qr1)
	e.ip("-n", vm1, "addr", "del", "2001:db8:1::11/64", "dev", "eth0")
	e.ip("netns", "exec", rns, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=0")
	e.waitFullPasses(2)
	if got := e.sysctl(rns, "net.ipv6.conf.all.forwarding"); got != "1" {
		t.Fatalf("IPv6 forwarding not restored: %s", got)
	}
	if addr := e.ip("-n", rns, "addr", "show", qr1); !strings.Contains(addr, "inet6 2001:db8:1::1/64") {
		t.Fatalf("qr- address not restored:\n%s", addr)
	}
	e.mustArriveFrom(vm1, "[2001:db8:f0::1]:7", "2001:db8:1::11")

	// Router administratively down and up again: the kernel flushes a
	// down link's IPv6 addresses (keep_addr_on_down is 0), the agent
	// puts them back.
	down := topo.r
	down.AdminStateUp = false
	e.converge(e.put(down))
	e.wantStatus(store.Routers, topo.r.ID, model.StatusDown)
	e.converge(e.put(topo.r))
	e.wantStatus(store.Routers, topo.r.ID, model.StatusActive)
	if addr := e.ip("-n", rns, "addr", "show", qr1); !strings.Contains(addr, "inet6 2001:db8:1::1/64") {
		t.Fatalf("qr- after the router came back up:\n%s", addr)
	}
	if r := e.ip("-n", rns, "-6", "route", "show", "default"); !strings.Contains(r, "via 2001:db8:ff::1 dev "+qg+" proto 78") {
		t.Fatalf("router IPv6 default route after the router came back up:\n%s", r)
	}
	e.mustArriveFrom(vm1, "[2001:db8:f0::1]:7", "2001:db8:1::11")

	// vm3 leaves the IPv6 subnet: its address goes, IPv4 stays.
	vm3Port := topo.vm3[1].(model.Port)
	vm3Port.FixedIPs = vm3Port.FixedIPs[:1]
	e.converge(e.put(vm3Port))
	if addr := e.ip("-n", vm3, "addr", "show", "eth0"); strings.Contains(addr, "2001:db8:2::13") || !strings.Contains(addr, "10.1.0.13/24") {
		t.Fatalf("vm3 after leaving the IPv6 subnet:\n%s", addr)
	}
	if r := e.ip("-n", vm3, "-6", "route", "show", "default"); r != "" {
		t.Fatalf("vm3 kept an IPv6 default route:\n%s", r)
	}

	// Everything goes with the records.
	recs := topo.all()
	e.converge(e.del(recs[len(recs)-4:]...)) // the instances and their ports
	e.converge(e.del(topo.qr1, topo.qr2, topo.qg, topo.r))
	if netns.Exists(rns) {
		t.Fatal("router namespace survived its records")
	}
}
