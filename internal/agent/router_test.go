package agent

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/netns"
	"github.com/nsnet/nsnet/internal/store"
)

// The usual L3 topology (seed 004): internal networks 10.0.0.0/24 and
// 10.1.0.0/24 behind one router whose gateway is 198.51.100.10 on the
// external network 198.51.100.0/24.
type l3topo struct {
	ext, int1, int2   l3net
	r                 model.Router
	qr1, qr2, qg      model.Port
	vm1, vm2, vm3     []any
	vm1IP, vm2IP, gw  string
	recordsWithoutVMs []any
}

func newL3Topo() l3topo {
	t := l3topo{
		ext:  l3network(100, "198.51.100.0/24", "198.51.100.1", true),
		int1: l3network(110, "10.0.0.0/24", "10.0.0.1", false),
		int2: l3network(120, "10.1.0.0/24", "10.1.0.1", false),
	}
	t.r = router(200, &t.ext, true)
	t.qr1 = t.int1.port(201, "10.0.0.1", model.DeviceOwnerRouterInterface, t.r.ID)
	t.qr2 = t.int2.port(202, "10.1.0.1", model.DeviceOwnerRouterInterface, t.r.ID)
	t.qg = t.ext.port(203, "198.51.100.10", model.DeviceOwnerRouterGateway, t.r.ID)
	t.vm1 = t.int1.vm(211, "vm1", "10.0.0.11")
	t.vm2 = t.int1.vm(212, "vm2", "10.0.0.12")
	t.vm3 = t.int2.vm(213, "vm3", "10.1.0.13")
	t.vm1IP, t.vm2IP, t.gw = "10.0.0.11", "10.0.0.12", "198.51.100.10"
	t.recordsWithoutVMs = append(append(append(t.ext.records(), t.int1.records()...), t.int2.records()...), t.r, t.qr1, t.qr2, t.qg)
	return t
}

func (t l3topo) all() []any {
	return append(append(append(append([]any{}, t.recordsWithoutVMs...), t.vm1...), t.vm2...), t.vm3...)
}

// TestRouterSNATFloatingIPForward is seed 004 end to end, through the
// store: routing between two subnets, default SNAT to the gateway address,
// a floating IP (inbound reaches its instance, its outbound leaves from
// it, its neighbour's from the gateway), a port forward 8080 → 80 on a
// floating IP with no association, disassociation, and a second pass that
// changes nothing.
func TestRouterSNATFloatingIPForward(t *testing.T) {
	e := newEnv(t, 100*time.Millisecond)
	topo := newL3Topo()
	e.converge(e.put(topo.all()...))
	for _, p := range []model.Port{topo.qr1, topo.qr2, topo.qg} {
		e.wantStatus(store.Ports, p.ID, model.StatusActive)
	}
	e.wantStatus(store.Routers, topo.r.ID, model.StatusActive)
	rns := e.routerNS(topo.r)
	if addr := e.ip("-n", rns, "addr", "show", model.RouterGatewayName(topo.qg.ID)); !strings.Contains(addr, "inet 198.51.100.10/24") {
		t.Fatalf("qg-:\n%s", addr)
	}
	if r := e.ip("-n", rns, "route", "show", "default"); !strings.Contains(r, "via 198.51.100.1 dev "+model.RouterGatewayName(topo.qg.ID)+" proto 78") {
		t.Fatalf("router default route:\n%s", r)
	}
	w := e.outside(topo.ext, "198.51.100.1/24")
	vm1, vm2, vm3 := e.ns("vm1"), e.ns("vm2"), e.ns("vm3")

	// Between internal subnets: routed, not translated.
	e.serve(vm3, 7)
	e.mustArriveFrom(vm1, "10.1.0.13:7", topo.vm1IP)
	// Out: default SNAT to the gateway address.
	e.mustArriveFrom(vm1, "203.0.113.1:7", topo.gw)
	e.mustArriveFrom(vm3, "203.0.113.1:7", topo.gw)

	// A floating IP for vm1.
	fip := floatingIP(300, topo.ext, "198.51.100.50", &topo.r, topo.vm1IP)
	e.converge(e.put(fip))
	e.wantStatus(store.FloatingIPs, fip.ID, model.StatusActive)
	vm1Srv := e.serve(vm1, 7)
	e.mustArriveFrom(w.far, "198.51.100.50:7", "203.0.113.1")
	if got := vm1Srv.last(); got.String() != "203.0.113.1" {
		t.Fatalf("vm1 saw %v", got)
	}
	e.mustArriveFrom(vm1, "203.0.113.1:7", "198.51.100.50")
	e.mustArriveFrom(vm2, "203.0.113.1:7", topo.gw)
	// Hairpin: vm2 reaches vm1 through its floating IP.
	e.mustArriveFrom(vm2, "198.51.100.50:7", "10.0.0.1")

	// Port forward 8080 → vm2:80 on a floating IP with no association:
	// the router is the one joining the external network and vm2's subnet.
	fwdIP := floatingIP(301, topo.ext, "198.51.100.51", nil, "")
	pf := model.PortForwarding{ID: rid(302), FloatingIPID: fwdIP.ID, Protocol: "tcp", ExternalPort: ptr(8080), InternalPort: ptr(80), InternalIPAddress: topo.vm2IP}
	e.converge(e.put(fwdIP, pf))
	e.wantStatus(store.FloatingIPs, fwdIP.ID, model.StatusActive)
	e.serve(vm2, 80)
	e.mustArriveFrom(w.far, "198.51.100.51:8080", "203.0.113.1")

	// A converged host does not change.
	changes := e.agent.Health().Changes
	e.waitFullPasses(2)
	if got := e.agent.Health().Changes; got != changes {
		t.Fatalf("converged passes made %d changes", got-changes)
	}
	if h := e.agent.Health(); h.Managed["routers"] != 1 || h.Managed["floatingips"] != 2 || len(h.Errors) != 0 {
		t.Fatalf("health = %+v", h)
	}

	// Disassociation: the address leaves qg-, vm1 leaves from the gateway.
	fip.RouterID, fip.FixedIPAddress, fip.PortID = nil, nil, nil
	e.converge(e.put(fip))
	e.wantStatus(store.FloatingIPs, fip.ID, model.StatusDown)
	if addr := e.ip("-n", rns, "addr", "show", model.RouterGatewayName(topo.qg.ID)); strings.Contains(addr, "198.51.100.50") {
		t.Fatalf("disassociated floating IP still on qg-:\n%s", addr)
	}
	e.mustArriveFrom(vm1, "203.0.113.1:7", topo.gw)

	// The forward goes: nothing answers on 8080 any more.
	e.converge(e.del(pf))
	if got, err := whoami(w.far, "198.51.100.51:8080"); err == nil {
		t.Fatalf("removed forward still answers (from %v)", got)
	}

	// Router administratively down: its ports go down, it stays.
	down := topo.r
	down.AdminStateUp = false
	e.converge(e.put(down))
	e.wantStatus(store.Routers, topo.r.ID, model.StatusDown)
	e.wantStatus(store.Ports, topo.qg.ID, model.StatusDown)
	if l := e.ip("-n", rns, "link", "show", model.RouterGatewayName(topo.qg.ID)); strings.Contains(l, ",UP") {
		t.Fatalf("qg- of an admin-down router is up:\n%s", l)
	}
	e.converge(e.put(topo.r))
	e.wantStatus(store.Routers, topo.r.ID, model.StatusActive)
	e.mustArriveFrom(vm1, "203.0.113.1:7", topo.gw)
}

// TestRouterAddressScope is Neutron's address scopes on the wire: a subnet
// in the external network's address scope leaves the router with its own
// addresses (the upstream router routes the scope's prefixes back to the
// router), while a subnet outside the scope is still translated to the
// gateway address; once the external subnet leaves the scope, both are.
func TestRouterAddressScope(t *testing.T) {
	e := newEnv(t, 100*time.Millisecond)
	topo := newL3Topo()
	e.converge(e.put(append(topo.all(), scopedTopo(topo, "scope-a", "scope-a", "")...)...))
	e.wantStatus(store.Routers, topo.r.ID, model.StatusActive)
	w := e.outside(topo.ext, "198.51.100.1/24")
	e.ip("-n", w.up, "route", "add", "10.0.0.0/24", "via", topo.gw)
	vm1, vm3 := e.ns("vm1"), e.ns("vm3")

	e.mustArriveFrom(vm1, "203.0.113.1:7", topo.vm1IP)
	e.mustArriveFrom(vm3, "203.0.113.1:7", topo.gw)

	e.converge(e.put(topo.ext.subnet))
	e.mustArriveFrom(vm1, "203.0.113.1:7", topo.gw)
	e.mustArriveFrom(vm3, "203.0.113.1:7", topo.gw)
}

// TestRouterManyFloatingIPs adds one floating IP to a router that has a
// thousand: an element change (nat Update), the chains untouched.
func TestRouterManyFloatingIPs(t *testing.T) {
	e := newEnv(t, time.Hour)
	ext := l3network(100, "100.64.0.0/16", "100.64.0.1", true)
	in := l3network(110, "10.0.0.0/16", "10.0.0.1", false)
	r := router(200, &ext, true)
	recs := append(append(ext.records(), in.records()...), r,
		in.port(201, "10.0.0.1", model.DeviceOwnerRouterInterface, r.ID),
		ext.port(203, "100.64.0.10", model.DeviceOwnerRouterGateway, r.ID))
	const n = 1000
	for i := range n {
		recs = append(recs, floatingIP(1000+i, ext, fmt.Sprintf("100.64.%d.%d", 1+i/250, 1+i%250), &r, fmt.Sprintf("10.0.%d.%d", 1+i/250, 1+i%250)))
	}
	start := time.Now()
	e.converge(e.put(recs...))
	t.Logf("router with %d floating IPs programmed in %v", n, time.Since(start))
	e.wantStatus(store.Routers, r.ID, model.StatusActive)

	rns := e.routerNS(r)
	chains := e.nft(rns, "-a", "list", "chain", "inet", "nsnet", "prerouting") + e.nft(rns, "-a", "list", "chain", "inet", "nsnet", "postrouting")
	applies, updates := e.agent.nat.counts()

	extra := floatingIP(1000+n, ext, "100.64.200.1", &r, "10.0.200.1")
	start = time.Now()
	e.converge(e.put(extra))
	took := time.Since(start)
	t.Logf("one floating IP added to a router with %d, store write to converged: %v", n, took)
	e.wantStatus(store.FloatingIPs, extra.ID, model.StatusActive)
	a, u := e.agent.nat.counts()
	if a, u := a-applies, u-updates; a != 0 || u != 1 {
		t.Fatalf("adding one floating IP: %d Applies, %d Updates; want an Update only", a, u)
	}
	after := e.nft(rns, "-a", "list", "chain", "inet", "nsnet", "prerouting") + e.nft(rns, "-a", "list", "chain", "inet", "nsnet", "postrouting")
	if after != chains {
		t.Fatalf("chains changed:\n%s\n→\n%s", chains, after)
	}
	if m := e.nft(rns, "list", "map", "inet", "nsnet", "floating_dnat"); !strings.Contains(m, "100.64.200.1 : 10.0.200.1") {
		t.Fatalf("new floating IP not in the map:\n%s", m)
	}
	if addr := e.ip("-n", rns, "addr", "show", model.RouterGatewayName(rid(203))); !strings.Contains(addr, "100.64.200.1/32") {
		t.Fatal("new floating IP not on qg-")
	}
}

// TestRouterDriftAndDelete deletes a qr- veth, the router's nft table and
// a floating address, and turns forwarding off, behind the agent's back,
// expects a full pass to repair all of it, then
// removes the router's records and expects its namespace, taps and table
// gone.
func TestRouterDriftAndDelete(t *testing.T) {
	e := newEnv(t, 100*time.Millisecond)
	topo := newL3Topo()
	fip := floatingIP(300, topo.ext, "198.51.100.50", &topo.r, topo.vm1IP)
	e.converge(e.put(append(topo.all(), fip)...))
	w := e.outside(topo.ext, "198.51.100.1/24")
	rns := e.routerNS(topo.r)
	vm1 := e.ns("vm1")
	e.serve(vm1, 7)
	e.mustArriveFrom(vm1, "203.0.113.1:7", "198.51.100.50")

	e.ip("-n", rns, "link", "del", model.RouterInterfaceName(topo.qr1.ID))
	e.nft(rns, "delete", "table", "inet", "nsnet")
	e.ip("-n", rns, "addr", "del", "198.51.100.50/32", "dev", model.RouterGatewayName(topo.qg.ID))
	e.ip("netns", "exec", rns, "sysctl", "-qw", "net.ipv4.ip_forward=0")
	e.waitFullPasses(2)
	if out := e.ip("netns", "exec", rns, "sysctl", "-n", "net.ipv4.ip_forward"); strings.TrimSpace(out) != "1" {
		t.Fatalf("ip_forward not restored: %s", out)
	}
	e.mustArriveFrom(w.far, "198.51.100.50:7", "203.0.113.1")
	e.mustArriveFrom(vm1, "203.0.113.1:7", "198.51.100.50")
	e.mustArriveFrom(e.ns("vm2"), "203.0.113.1:7", topo.gw)
	e.wantStatus(store.Routers, topo.r.ID, model.StatusActive)

	e.converge(e.del(fip, topo.qr1, topo.qr2, topo.qg, topo.r))
	if netns.Exists(rns) {
		t.Fatal("router namespace survived its records")
	}
	links := strings.Join(linksIn(e.hostNetns), " ")
	for _, p := range []model.Port{topo.qr1, topo.qr2, topo.qg} {
		if strings.Contains(links, model.TapName(p.ID)) {
			t.Fatalf("tap of router port %s survived: %s", p.ID, links)
		}
	}
	e.wantStatus(store.FloatingIPs, fip.ID, model.StatusBuild)
}

// TestRouterRestartLeftover: a restarted agent leaves a converged router
// alone, and a router deleted while the agent is down is found by its
// namespace's marker and removed by the next agent.
func TestRouterRestartLeftover(t *testing.T) {
	e := newEnv(t, time.Hour)
	topo := newL3Topo()
	fip := floatingIP(300, topo.ext, "198.51.100.50", &topo.r, topo.vm1IP)
	e.converge(e.put(append(topo.recordsWithoutVMs, fip)...))

	// A restart with nothing changed changes nothing: same links, same
	// table (a flow through the router would not notice).
	rns := e.routerNS(topo.r)
	before := e.ifindex(rns, model.RouterGatewayName(topo.qg.ID)) + e.ifindex(rns, model.RouterInterfaceName(topo.qr1.ID))
	table := e.nft(rns, "-a", "list", "table", "inet", "nsnet")
	e.stop()
	e.start()
	e.converge(e.revision())
	if c := e.agent.Health().Changes; c != 0 {
		t.Fatalf("restart of a converged agent made %d changes", c)
	}
	if after := e.ifindex(rns, model.RouterGatewayName(topo.qg.ID)) + e.ifindex(rns, model.RouterInterfaceName(topo.qr1.ID)); after != before {
		t.Fatalf("restart recreated router links: %s → %s", before, after)
	}
	if after := e.nft(rns, "-a", "list", "table", "inet", "nsnet"); after != table {
		t.Fatalf("restart changed the table:\n%s\n→\n%s", table, after)
	}
	e.wantStatus(store.FloatingIPs, fip.ID, model.StatusActive)

	e.stop()
	e.del(fip)
	e.del(topo.qr1, topo.qr2, topo.qg, topo.r)
	rev := e.revision()
	e.start()
	e.converge(rev)
	if netns.Exists(e.routerNS(topo.r)) {
		t.Fatal("router deleted while the agent was down survived")
	}
}

// TestRouterChain is seed 003: a tenant router whose external network is a
// link-local transit network, served by an edge router that SNATs to the
// public network. The far host sees the edge's public address.
func TestRouterChain(t *testing.T) {
	e := newEnv(t, time.Hour)
	public := l3network(100, "198.51.100.0/24", "198.51.100.1", true)
	transit := l3network(130, "169.254.0.0/18", "169.254.0.1", true)
	tenant := l3network(110, "10.0.0.0/24", "10.0.0.1", false)
	edge := router(200, &public, true)
	tr := router(210, &transit, true)
	recs := append(append(append(public.records(), transit.records()...), tenant.records()...),
		edge, tr,
		public.port(201, "198.51.100.20", model.DeviceOwnerRouterGateway, edge.ID),
		transit.port(202, "169.254.0.1", model.DeviceOwnerRouterInterface, edge.ID),
		transit.port(211, "169.254.0.2", model.DeviceOwnerRouterGateway, tr.ID),
		tenant.port(212, "10.0.0.1", model.DeviceOwnerRouterInterface, tr.ID))
	recs = append(recs, tenant.vm(220, "vm1", "10.0.0.11")...)
	e.converge(e.put(recs...))
	e.wantStatus(store.Routers, edge.ID, model.StatusActive)
	e.wantStatus(store.Routers, tr.ID, model.StatusActive)
	e.outside(public, "198.51.100.1/24")
	e.mustArriveFrom(e.ns("vm1"), "203.0.113.1:7", "198.51.100.20")
	// The edge sees the tenant router's transit address.
	e.serve(e.routerNS(edge), 7)
	e.mustArriveFrom(e.ns("vm1"), "169.254.0.1:7", "169.254.0.2")
}

// TestRouterGatewayWithoutAddress: a router whose gateway is on an external
// network without a subnet (Neutron allows it; the port has no fixed IP)
// is ACTIVE with its qg- plugged and no address or default route on it,
// still routes between its interfaces, and has no SNAT to translate to.
func TestRouterGatewayWithoutAddress(t *testing.T) {
	e := newEnv(t, time.Hour)
	topo := newL3Topo()
	bare := model.Network{ID: rid(150), Name: "bare", AdminStateUp: true, MTU: 1500, RouterExternal: true}
	topo.qg.NetworkID, topo.qg.FixedIPs = bare.ID, []model.FixedIP{}
	topo.r.ExternalGatewayInfo.NetworkID = bare.ID
	records := append(append(append([]any{bare}, topo.int1.records()...), topo.int2.records()...), topo.r, topo.qr1, topo.qr2, topo.qg)
	e.converge(e.put(append(append(records, topo.vm1...), topo.vm3...)...))
	e.wantStatus(store.Routers, topo.r.ID, model.StatusActive)
	e.wantStatus(store.Ports, topo.qg.ID, model.StatusActive)

	rns, qg := e.routerNS(topo.r), model.RouterGatewayName(topo.qg.ID)
	if out := e.ip("-n", rns, "-4", "addr", "show", "dev", qg); strings.Contains(out, "inet ") {
		t.Errorf("qg- has an IPv4 address: %s", out)
	}
	if out := e.ip("-n", rns, "-4", "route", "show", "default"); strings.TrimSpace(out) != "" {
		t.Errorf("default route without a gateway address: %s", out)
	}
	if err := ping(e.ns("vm1"), "10.1.0.13"); err != nil {
		t.Errorf("vm1 → vm3 across the router: %v", err)
	}
}
