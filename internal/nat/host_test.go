package nat_test

import (
	"net/netip"
	"testing"

	"github.com/nsnet/nsnet/internal/dataplane"
	"github.com/nsnet/nsnet/internal/nat"
)

// TestHostNAT is seeds 000, 001 and 002 (challenges 4–5): a network whose
// gateway is the host itself — 192.168.24.1 on its bridge in the host
// namespace, forwarding on there — masquerading (or SNATing to a fixed
// address, as 001 does) out of an uplink to host2 (192.168.1.15), and
// publishing host:8080 → red:80.
//
//	red 192.168.24.10, green .11 ── nsb-lan (192.168.24.1) ─ host ─ nsb-up (192.168.1.32, .33) ── host2 192.168.1.15
func TestHostNAT(t *testing.T) {
	l := newLab(t)
	lan, up := l.bridge("lan"), l.bridge("up")
	setAddrs(t, l, lan, "192.168.24.1/24")
	setAddrs(t, l, up, "192.168.1.32/24", "192.168.1.33/24")
	if _, err := dataplane.EnsureSysctls(l.hostNS, dataplane.HostNATSysctls); err != nil {
		t.Fatal(err)
	}
	// host2 knows only its own LAN, like the seed's second machine: it can
	// answer the host's addresses and nothing behind them.
	host2 := l.instance("host2")
	l.plug(host2, port{id: "host2", bridge: up, ifname: "eth0", addr: "192.168.1.15/24"})
	l.serve(host2, "0.0.0.0", 7)
	red, green := l.instance("red"), l.instance("green")
	l.plug(red, port{id: "red", bridge: lan, ifname: "veth-red", addr: "192.168.24.10/24", gw: "192.168.24.1"})
	l.plug(green, port{id: "green", bridge: lan, ifname: "veth-green", addr: "192.168.24.11/24", gw: "192.168.24.1"})
	l.serve(red, "0.0.0.0", 80)

	lanNet := netip.MustParsePrefix("192.168.24.0/24")
	publish := []nat.Publish{{Protocol: nat.TCP, Ports: nat.Port(8080), Internal: netip.MustParseAddr("192.168.24.10"), InternalPorts: nat.Port(80)}}
	masq := nat.Host{Uplink: up, Networks: []nat.HostNetwork{{Bridge: lan, Prefix: lanNet}}, Publish: publish}

	t.Run("no NAT yet: replies cannot come back", func(t *testing.T) {
		mustFail(t, red, "tcp", "192.168.1.15:7")
	})
	applyNAT(t, l.host, masq.Spec())
	for _, s := range []struct {
		name      string
		from      *dataplane.Namespace
		proto, to string
		want      string
	}{
		{"masquerade (000, 002 challenge 4)", red, "tcp", "192.168.1.15:7", "192.168.1.32"},
		{"masquerade, UDP", green, "udp", "192.168.1.15:7", "192.168.1.32"},
		{"published port 8080 → red:80 (002 challenge 5)", host2, "tcp", "192.168.1.32:8080", "192.168.1.15"},
		{"published on every local address", host2, "tcp", "192.168.1.33:8080", "192.168.1.15"},
		{"hairpin: green reaches the published port on its gateway", green, "tcp", "192.168.24.1:8080", "192.168.24.1"},
	} {
		t.Run(s.name, func(t *testing.T) { mustSee(t, s.from, s.proto, s.to, s.want) })
	}
	t.Run("ping through masquerade", func(t *testing.T) {
		if err := ping(red, "192.168.1.15"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("SNAT to a fixed address (001)", func(t *testing.T) {
		fixed := masq
		fixed.Networks = []nat.HostNetwork{{Bridge: lan, Prefix: lanNet, SNATTo: netip.MustParseAddr("192.168.1.33")}}
		res := applyNAT(t, l.host, fixed.Spec())
		if len(res.Rewritten) > 0 || res.Created || res.Rebuilt {
			t.Fatalf("switching masquerade to SNAT changed rules: %+v", res)
		}
		mustSee(t, red, "tcp", "192.168.1.15:7", "192.168.1.33")
	})

	t.Run("deleting the table stops NAT and leaves nothing", func(t *testing.T) {
		deleted, err := nat.DeleteTable(l.host)
		if err != nil || !deleted {
			t.Fatalf("DeleteTable = %v, %v", deleted, err)
		}
		if tables := nftTables(l.host); tables != "" {
			t.Fatalf("tables after delete:\n%s", tables)
		}
		mustFail(t, red, "tcp", "192.168.1.15:7")
		mustFail(t, host2, "tcp", "192.168.1.32:8080")
	})
}

func setAddrs(t *testing.T, l *lab, bridge string, addrs ...string) {
	t.Helper()
	var ps []netip.Prefix
	for _, a := range addrs {
		ps = append(ps, netip.MustParsePrefix(a))
	}
	if _, err := dataplane.EnsureLinkAddrs(l.links, bridge, dataplane.NetworkAlias(bridge[len("nsb-"):]), ps); err != nil {
		t.Fatal(err)
	}
}

// TestTwoLevelNAT is seed 003: a tenant router SNATs its subnet to its
// address on a link-local transit network (169.254.0.0/18), and an edge
// router serving that network masquerades it to the public network. The
// far host sees the edge's public address; the edge sees the tenant
// router's transit address.
//
//	vm 192.168.65.125 ── qr-tenant 192.168.64.1/23 [tenant] qg-tenant 169.254.43.17/18
//	    ── nsb-transit ── qr-transit 169.254.0.1/18 [edge] qg-edge 198.51.100.2 ── nsb-ext ── up ── far
func TestTwoLevelNAT(t *testing.T) {
	l := newLab(t)
	w := l.outside()
	transit, tenantNet := l.bridge("transit"), l.bridge("tenant")

	edge := l.router("edge")
	l.plug(edge, port{id: "qrtransit", bridge: transit, ifname: "qr-transit", addr: "169.254.0.1/18"})
	l.gateway(edge, port{id: "qgedge", bridge: w.ext, ifname: "qg-edge", addr: "198.51.100.2/24", gw: "198.51.100.1"})
	edgeSrv := l.serve(edge, "169.254.0.1", 7)
	applyNAT(t, edge.Name, nat.Spec{Masquerade: []nat.Masquerade{{Out: "qg-edge", From: netip.MustParsePrefix("169.254.0.0/18")}}})

	tenant := l.router("tenant")
	l.plug(tenant, port{id: "qrtenant", bridge: tenantNet, ifname: "qr-tenant", addr: "192.168.64.1/23"})
	l.gateway(tenant, port{id: "qgtenant", bridge: transit, ifname: "qg-tenant", addr: "169.254.43.17/18", gw: "169.254.0.1"})
	applyNAT(t, tenant.Name, nat.Router{
		Gateway: "qg-tenant", GatewayAddr: netip.MustParseAddr("169.254.43.17"), EnableSNAT: true,
		Internal: []nat.Subnet{{Interface: "qr-tenant", Prefix: netip.MustParsePrefix("192.168.64.0/23")}},
	}.Spec())

	vm := l.instance("vm")
	l.plug(vm, port{id: "vm", bridge: tenantNet, ifname: "eth0", addr: "192.168.65.125/23", gw: "192.168.64.1"})

	t.Run("the far host sees the edge's public address", func(t *testing.T) {
		mustSee(t, vm, "tcp", farEcho, "198.51.100.2")
		mustSee(t, vm, "udp", farEcho, "198.51.100.2")
		if err := ping(vm, "203.0.113.1"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("the edge sees the tenant router's transit address", func(t *testing.T) {
		mustSee(t, vm, "tcp", "169.254.0.1:7", "169.254.43.17")
		if p := edgeSrv.Peers(); len(p) == 0 || p[len(p)-1].Addr().String() != "169.254.43.17" {
			t.Fatalf("edge server saw %v", p)
		}
	})
	t.Run("the far host never saw a private or transit address", func(t *testing.T) {
		for _, p := range w.farSrv.Peers() {
			if p.Addr().String() != "198.51.100.2" {
				t.Fatalf("far host saw %v", p)
			}
		}
	})
}
