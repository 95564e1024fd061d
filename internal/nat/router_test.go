package nat_test

import (
	"net/netip"
	"testing"

	"github.com/nsnet/nsnet/internal/dataplane"
	"github.com/nsnet/nsnet/internal/nat"
)

// The router of seed 004, as nsnet builds it:
//
//	far 203.0.113.1 ── up 203.0.113.254 / 198.51.100.1 ── nsb-ext
//	nsb-ext ── qg-r1 198.51.100.10 (floating 198.51.100.20 → vm1, 198.51.100.30 forwards)
//	qrouter-r1: qr-a 10.0.0.1/24 ── nsb-neta ── vm1 10.0.0.5, vm2 10.0.0.6
//	            qr-b 10.1.0.1/24 ── nsb-netb ── vm3 10.1.0.5
const (
	gwAddr  = "198.51.100.10"
	fip1    = "198.51.100.20"
	pfAddr  = "198.51.100.30"
	farEcho = "203.0.113.1:7"
)

type routerLab struct {
	*lab
	w             *world
	r             *dataplane.Namespace
	vm1, vm2, vm3 *dataplane.Namespace
	router        nat.Router
	gwPort        port
}

func newRouterLab(t *testing.T) *routerLab {
	l := newLab(t)
	rl := &routerLab{lab: l, w: l.outside()}
	netA, netB := l.bridge("neta"), l.bridge("netb")
	rl.r = l.router("r1")
	l.plug(rl.r, port{id: "qra", bridge: netA, ifname: "qr-a", addr: "10.0.0.1/24"})
	l.plug(rl.r, port{id: "qrb", bridge: netB, ifname: "qr-b", addr: "10.1.0.1/24"})
	rl.gwPort = port{id: "qg", bridge: rl.w.ext, ifname: "qg-r1", addr: gwAddr + "/24", gw: "198.51.100.1"}
	l.gateway(rl.r, rl.gwPort, fip1, pfAddr)

	rl.vm1, rl.vm2, rl.vm3 = l.instance("vm1"), l.instance("vm2"), l.instance("vm3")
	l.plug(rl.vm1, port{id: "vm1", bridge: netA, ifname: "eth0", addr: "10.0.0.5/24", gw: "10.0.0.1"})
	l.plug(rl.vm2, port{id: "vm2", bridge: netA, ifname: "eth0", addr: "10.0.0.6/24", gw: "10.0.0.1"})
	l.plug(rl.vm3, port{id: "vm3", bridge: netB, ifname: "eth0", addr: "10.1.0.5/24", gw: "10.1.0.1"})
	for _, vm := range []*dataplane.Namespace{rl.vm1, rl.vm2, rl.vm3} {
		l.serve(vm, "0.0.0.0", 80)
	}

	rl.router = nat.Router{
		Gateway:     "qg-r1",
		GatewayAddr: netip.MustParseAddr(gwAddr),
		EnableSNAT:  true,
		Internal: []nat.Subnet{
			{Interface: "qr-a", Prefix: netip.MustParsePrefix("10.0.0.0/24")},
			{Interface: "qr-b", Prefix: netip.MustParsePrefix("10.1.0.0/24")},
		},
		FloatingIPs: []nat.FloatingIP{{Floating: netip.MustParseAddr(fip1), Fixed: netip.MustParseAddr("10.0.0.5")}},
	}
	applyNAT(t, rl.r.Name, rl.router.Spec())
	return rl
}

// TestRouterNAT walks seed 004: default SNAT, a floating IP in both
// directions, the router reaching it, hairpin, east-west untranslated,
// disassociation, and enable_snat off.
func TestRouterNAT(t *testing.T) {
	rl := newRouterLab(t)
	vm1, vm2, vm3 := rl.vm1, rl.vm2, rl.vm3

	steps := []struct {
		name        string
		from        *dataplane.Namespace
		proto, to   string
		want        string // source address the server saw
		reachesHost bool   // ping to the far host works too
	}{
		{"default SNAT to the gateway address", vm2, "tcp", farEcho, gwAddr, true},
		{"default SNAT, UDP", vm2, "udp", farEcho, gwAddr, false},
		{"default SNAT from a second subnet", vm3, "tcp", farEcho, gwAddr, true},
		{"floating IP: outbound from the floating address", vm1, "tcp", farEcho, fip1, true},
		{"floating IP: outbound UDP", vm1, "udp", farEcho, fip1, false},
		{"floating IP: inbound reaches the instance, client address kept", rl.w.far, "tcp", fip1 + ":80", "203.0.113.1", false},
		{"floating IP: inbound UDP", rl.w.far, "udp", fip1 + ":80", "203.0.113.1", false},
		{"the router itself reaches the floating IP (output DNAT)", rl.r, "tcp", fip1 + ":80", fip1, false},
		{"hairpin: a neighbour reaches the floating IP, via the router's address", vm2, "tcp", fip1 + ":80", "10.0.0.1", false},
		{"hairpin from another subnet: routed, not masqueraded", vm3, "tcp", fip1 + ":80", "10.1.0.5", false},
		{"east-west between subnets is not translated", vm3, "tcp", "10.0.0.5:80", "10.1.0.5", false},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			mustSee(t, s.from, s.proto, s.to, s.want)
			if s.reachesHost {
				if err := ping(s.from, "203.0.113.1"); err != nil {
					t.Fatal(err)
				}
			}
		})
	}

	t.Run("disassociation", func(t *testing.T) {
		// Connections through the floating IP, both ways, and one
		// through default SNAT, established before.
		in, out, other := open(t, rl.w.far, fip1+":80"), open(t, vm1, farEcho), open(t, vm2, farEcho)
		noFIP := rl.router
		noFIP.FloatingIPs = nil
		res := applyNAT(t, rl.r.Name, noFIP.Spec())
		if res.Forgotten < 2 {
			t.Errorf("%d conntrack entries forgotten, want at least the two connections", res.Forgotten)
		}
		rl.gateway(rl.r, rl.gwPort, pfAddr)
		if in.echo() == nil || out.echo() == nil {
			t.Fatal("a connection through the removed floating IP still works")
		}
		if err := other.echo(); err != nil {
			t.Fatalf("a connection through default SNAT broke: %v", err)
		}
		mustSee(t, vm1, "tcp", farEcho, gwAddr)
		mustFail(t, rl.w.far, "tcp", fip1+":80")
		if err := ping(rl.w.up, fip1); err == nil {
			t.Fatal("the floating address still answers after disassociation")
		}
	})

	t.Run("enable_snat off: only floating IPs leave", func(t *testing.T) {
		noSNAT := rl.router
		noSNAT.EnableSNAT = false
		rl.gateway(rl.r, rl.gwPort, fip1, pfAddr)
		applyNAT(t, rl.r.Name, noSNAT.Spec())
		mustSee(t, vm1, "tcp", farEcho, fip1)
		mustFail(t, vm2, "tcp", farEcho)
	})
}

// TestPortForwarding forwards TCP, UDP and a port range from a floating
// address without a 1:1 mapping (Neutron's port forwarding), and checks
// hairpin on a forward.
func TestPortForwarding(t *testing.T) {
	rl := newRouterLab(t)
	for _, p := range []int{7000, 7002, 7004} {
		rl.serve(rl.vm2, "0.0.0.0", p)
	}
	pf := netip.MustParseAddr(pfAddr)
	vm1, vm2 := netip.MustParseAddr("10.0.0.5"), netip.MustParseAddr("10.0.0.6")
	spec := rl.router
	spec.PortForwards = []nat.PortForward{
		{Protocol: nat.TCP, External: pf, ExternalPorts: nat.Port(8080), Internal: vm1, InternalPorts: nat.Port(80)},
		{Protocol: nat.UDP, External: pf, ExternalPorts: nat.Port(5300), Internal: vm1, InternalPorts: nat.Port(80)},
		{Protocol: nat.TCP, External: pf, ExternalPorts: nat.PortRange{First: 9000, Last: 9004}, Internal: vm2, InternalPorts: nat.PortRange{First: 7000, Last: 7004}},
	}
	applyNAT(t, rl.r.Name, spec.Spec())

	far := rl.w.far
	for _, s := range []struct {
		name      string
		from      *dataplane.Namespace
		proto, to string
		want      string
	}{
		{"tcp 8080 → vm1:80", far, "tcp", pfAddr + ":8080", "203.0.113.1"},
		{"udp 5300 → vm1:80", far, "udp", pfAddr + ":5300", "203.0.113.1"},
		{"range: first port", far, "tcp", pfAddr + ":9000", "203.0.113.1"},
		{"range: middle port", far, "tcp", pfAddr + ":9002", "203.0.113.1"},
		{"range: last port", far, "tcp", pfAddr + ":9004", "203.0.113.1"},
		{"hairpin on a forward", rl.vm2, "tcp", pfAddr + ":8080", "10.0.0.1"},
		{"the forwarded instance keeps its floating IP outbound", rl.vm1, "tcp", farEcho, fip1},
		{"the range's instance leaves by default SNAT, not by the forward", rl.vm2, "tcp", farEcho, gwAddr},
	} {
		t.Run(s.name, func(t *testing.T) { mustSee(t, s.from, s.proto, s.to, s.want) })
	}
	t.Run("ports outside the forwards go nowhere", func(t *testing.T) {
		mustFail(t, far, "tcp", pfAddr+":9005")
		mustFail(t, far, "udp", pfAddr+":8080")
		mustFail(t, far, "tcp", pfAddr+":80")
	})
}
