package agent

import (
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nsnet/nsnet/internal/meter"
	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/store"
)

// TestRouterMetering is Neutron's L3 metering on the wire: a label of the
// router's project counts the traffic an instance sends out through the
// gateway and the replies that come in; a label whose excluded rule
// covers the far host counts none of it; another project's label is not
// in the router at all. A restart changes nothing (counts included), and
// deleting a label removes its chain and counter, the last one the table.
func TestRouterMetering(t *testing.T) {
	e := newEnv(t, 100*time.Millisecond)
	topo := newL3Topo()
	topo.r.ProjectID = "p1"
	for i, r := range topo.recordsWithoutVMs {
		if rr, ok := r.(model.Router); ok && rr.ID == topo.r.ID {
			topo.recordsWithoutVMs[i] = topo.r
		}
	}
	counted := model.MeteringLabel{ID: rid(400), Name: "counted", ProjectID: "p1"}
	excluded := model.MeteringLabel{ID: rid(401), Name: "excluded", ProjectID: "p1"}
	foreign := model.MeteringLabel{ID: rid(402), Name: "foreign", ProjectID: "p2"}
	// Source and destination prefixes: vm1's traffic out (before SNAT)
	// and vm2's, which is not sent.
	fromVM1 := model.MeteringLabel{ID: rid(403), Name: "from-vm1", ProjectID: "p1"}
	fromVM2 := model.MeteringLabel{ID: rid(404), Name: "from-vm2", ProjectID: "p1", Shared: true}
	far := ptr("203.0.113.0/24")
	rules := []any{
		model.MeteringLabelRule{ID: rid(410), MeteringLabelID: counted.ID, Direction: "egress", RemoteIPPrefix: far},
		model.MeteringLabelRule{ID: rid(411), MeteringLabelID: counted.ID, Direction: "ingress", RemoteIPPrefix: far},
		model.MeteringLabelRule{ID: rid(412), MeteringLabelID: excluded.ID, Direction: "egress", RemoteIPPrefix: far},
		model.MeteringLabelRule{ID: rid(413), MeteringLabelID: excluded.ID, Direction: "egress", RemoteIPPrefix: ptr("203.0.113.1/32"), Excluded: true},
		model.MeteringLabelRule{ID: rid(414), MeteringLabelID: foreign.ID, Direction: "egress", RemoteIPPrefix: far},
		model.MeteringLabelRule{ID: rid(415), MeteringLabelID: fromVM1.ID, Direction: "egress", SourceIPPrefix: ptr("10.0.0.11/32"), DestinationIPPrefix: far},
		model.MeteringLabelRule{ID: rid(416), MeteringLabelID: fromVM2.ID, Direction: "egress", SourceIPPrefix: ptr("10.0.0.12/32")},
	}
	e.converge(e.put(append(append(topo.all(), counted, excluded, foreign, fromVM1, fromVM2), rules...)...))
	e.wantStatus(store.Routers, topo.r.ID, model.StatusActive)
	rns := e.routerNS(topo.r)
	e.outside(topo.ext, "198.51.100.1/24")
	vm1 := e.ns("vm1")

	// Inside the router: not metered (it never leaves by the gateway).
	e.serve(e.ns("vm3"), 7)
	e.mustArriveFrom(vm1, "10.1.0.13:7", topo.vm1IP)
	if c := counts(t, rns); c[counted.ID].Packets != 0 || c[excluded.ID].Packets != 0 {
		t.Fatalf("east-west traffic counted: %+v", c)
	}
	if _, ok := counts(t, rns)[foreign.ID]; ok {
		t.Fatal("another project's label is in the router")
	}

	e.mustArriveFrom(vm1, "203.0.113.1:7", topo.gw)
	c := settledCounts(t, rns)
	if c[counted.ID].Packets < 2 || c[counted.ID].Bytes == 0 {
		t.Errorf("label counted %+v, want the request and its reply", c[counted.ID])
	}
	if c[excluded.ID].Packets != 0 {
		t.Errorf("label whose excluded rule covers the far host counted %+v", c[excluded.ID])
	}
	if c[fromVM1.ID].Packets == 0 || c[fromVM1.ID].Packets >= c[counted.ID].Packets {
		t.Errorf("label of vm1's egress counted %+v, want its requests alone (all: %+v)", c[fromVM1.ID], c[counted.ID])
	}
	if c[fromVM2.ID].Packets != 0 {
		t.Errorf("label of vm2's egress counted %+v, vm2 sent nothing", c[fromVM2.ID])
	}

	t.Logf("counts after one exchange: %+v", c)
	// A restart changes nothing: same rules, same counts.
	table := e.nft(rns, "-a", "list", "table", "inet", meter.TableName)
	e.stop()
	e.start()
	e.converge(e.revision())
	if ch := e.agent.Health().Changes; ch != 0 {
		t.Fatalf("restart of a converged agent made %d changes", ch)
	}
	if after := e.nft(rns, "-a", "list", "table", "inet", meter.TableName); after != table {
		t.Fatalf("restart changed the table:\n%s\n→\n%s", table, after)
	}
	if after := counts(t, rns); after[counted.ID] != c[counted.ID] {
		t.Fatalf("restart changed the count: %+v → %+v", c[counted.ID], after[counted.ID])
	}
	// What the agent reports (the daemon's /metrics series) is the kernel's.
	reported, err := e.agent.MeteringCounts()
	want := []MeterCount{
		{Router: topo.r.ID, Label: counted.ID, Packets: c[counted.ID].Packets, Bytes: c[counted.ID].Bytes},
		{Router: topo.r.ID, Label: excluded.ID},
		{Router: topo.r.ID, Label: fromVM1.ID, Packets: c[fromVM1.ID].Packets, Bytes: c[fromVM1.ID].Bytes},
		{Router: topo.r.ID, Label: fromVM2.ID},
	}
	if err != nil || !slices.Equal(reported, want) {
		t.Fatalf("MeteringCounts = %+v, %v; want %+v", reported, err, want)
	}

	// Without its excluded rule the label counts the far host too.
	e.converge(e.del(rules[3]))
	e.mustArriveFrom(vm1, "203.0.113.1:7", topo.gw)
	if got := counts(t, rns); got[excluded.ID].Packets == 0 || got[counted.ID].Packets <= c[counted.ID].Packets {
		t.Errorf("after the excluded rule went: %+v (before %+v)", got, c)
	}

	// A deleted label takes its chain and counter; the last, the table.
	e.converge(e.del(excluded, rules[2], fromVM1, fromVM2, rules[5], rules[6]))
	if got := counts(t, rns); len(got) != 1 || got[counted.ID].Packets == 0 {
		t.Errorf("after deleting a label: %+v", got)
	}
	if s := e.nft(rns, "list", "table", "inet", meter.TableName); strings.Contains(s, excluded.ID) {
		t.Errorf("deleted label still in the table:\n%s", s)
	}
	e.converge(e.del(counted, rules[0], rules[1]))
	if tables := nftTables(rns); strings.Contains(tables, meter.TableName) {
		t.Errorf("metering table outlived the router's last label:\n%s", tables)
	}
	if reported, err := e.agent.MeteringCounts(); err != nil || len(reported) != 0 {
		t.Errorf("MeteringCounts without labels = %+v, %v", reported, err)
	}
}

// settledCounts are the counters of ns once an exchange's last packets
// have passed: whoami returns when it has read the answer, and the
// connection's closing FIN and ACK cross the router after it (later still
// on a busy machine), so the counters are read until two reads 100 ms
// apart agree, for at most ten seconds.
func settledCounts(t *testing.T, ns string) map[string]meter.Count {
	t.Helper()
	last := counts(t, ns)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		c := counts(t, ns)
		if maps.Equal(c, last) {
			return c
		}
		last = c
	}
	t.Fatalf("the counters of %s did not settle in 10s: %+v", ns, last)
	return nil
}

func counts(t *testing.T, ns string) map[string]meter.Count {
	t.Helper()
	c, err := meter.Counts(ns)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestRouterMeteringIPv6: IPv6 rules count IPv6 traffic through the
// gateway (routed, never translated: the prefixes are the instances'),
// an excluded IPv6 prefix is not counted, and an IPv4 rule does not count
// IPv6 traffic, even for 0.0.0.0/0.
func TestRouterMeteringIPv6(t *testing.T) {
	e := newEnv(t, 100*time.Millisecond)
	topo := newL3Topo6()
	out := model.MeteringLabel{ID: rid(400), Name: "out"}
	in := model.MeteringLabel{ID: rid(401), Name: "in"}
	excl := model.MeteringLabel{ID: rid(402), Name: "excluded"}
	v4 := model.MeteringLabel{ID: rid(403), Name: "v4-only"}
	rules := []any{
		model.MeteringLabelRule{ID: rid(410), MeteringLabelID: out.ID, Direction: "egress", SourceIPPrefix: ptr("2001:db8:1::/64"), DestinationIPPrefix: ptr("2001:db8:f0::/64")},
		model.MeteringLabelRule{ID: rid(411), MeteringLabelID: in.ID, Direction: "ingress", RemoteIPPrefix: ptr("2001:db8:f0::1/128")},
		model.MeteringLabelRule{ID: rid(412), MeteringLabelID: excl.ID, Direction: "egress", RemoteIPPrefix: ptr("2001:db8:f0::/64")},
		model.MeteringLabelRule{ID: rid(413), MeteringLabelID: excl.ID, Direction: "egress", RemoteIPPrefix: ptr("2001:db8:f0::1/128"), Excluded: true},
		model.MeteringLabelRule{ID: rid(414), MeteringLabelID: v4.ID, Direction: "egress", RemoteIPPrefix: ptr("0.0.0.0/0")},
	}
	e.converge(e.put(append(append(topo.all(), out, in, excl, v4), rules...)...))
	e.wantStatus(store.Routers, topo.r.ID, model.StatusActive)
	rns := e.routerNS(topo.r)
	w := e.outside(topo.ext.l3net, "198.51.100.1/24")
	e.outside6(w, "2001:db8:ff::1/64", "2001:db8:ff::10", "2001:db8:1::/64", "2001:db8:2::/64")

	// vm3 (2001:db8:2::/64) is not in out's source prefix.
	e.mustArriveFrom(e.ns("vm3"), "[2001:db8:f0::1]:7", "2001:db8:2::13")
	c := counts(t, rns)
	if c[out.ID].Packets != 0 || c[in.ID].Packets == 0 {
		t.Fatalf("after vm3's exchange: %+v", c)
	}
	e.mustArriveFrom(e.ns("vm1"), "[2001:db8:f0::1]:7", "2001:db8:1::11")
	c = counts(t, rns)
	t.Logf("counts: %+v", c)
	if c[out.ID].Packets == 0 {
		t.Errorf("vm1's IPv6 egress not counted: %+v", c[out.ID])
	}
	if c[excl.ID].Packets != 0 {
		t.Errorf("excluded IPv6 host counted: %+v", c[excl.ID])
	}
	if c[v4.ID].Packets != 0 {
		t.Errorf("an IPv4 rule counted IPv6 traffic: %+v", c[v4.ID])
	}
	// And the IPv4 rule does count IPv4.
	e.mustArriveFrom(e.ns("vm1"), "203.0.113.1:7", "198.51.100.10")
	if got := counts(t, rns); got[v4.ID].Packets == 0 {
		t.Errorf("IPv4 rule did not count IPv4 egress: %+v", got[v4.ID])
	}
}
