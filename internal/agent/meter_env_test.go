package agent

import (
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
	c := counts(t, rns)
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

func counts(t *testing.T, ns string) map[string]meter.Count {
	t.Helper()
	c, err := meter.Counts(ns)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
