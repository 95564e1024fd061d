package agent

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nsnet/nsnet/internal/hoststatus"
	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/store"
)

// TestAgentReportsThroughTheStore: with its publisher, the agent's
// statuses and programmed revision reach a reader only through the store
// (a hoststatus.View on it): a write is waited for there, the statuses are
// the agent's, a deleted object's record goes; a restarted agent whose
// kernel still matches rewrites no status; another host's reports wake no
// pass, yet count as programmed.
func TestAgentReportsThroughTheStore(t *testing.T) {
	e := newEnv(t, time.Hour)
	e.stop()
	const host = "host-a"
	newPublisher := func() *hoststatus.Publisher {
		p, err := hoststatus.NewPublisher(e.st, host)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	e.publisher = newPublisher()
	e.start()

	view, waitView := e.statusView(host)
	ctx := context.Background()

	redPort := testPort("red", "eth0", "10.9.0.11", "fa:16:3e:00:00:11")
	greenPort := testPort("green", "eth0", "10.9.0.12", "fa:16:3e:00:00:12")
	waitView(e.put(testNetwork(), testSubnet(), testInstance("red"), testInstance("green"), redPort, greenPort))
	objects := []hoststatus.Object{{Kind: store.Networks, ID: netID}, {Kind: store.Instances, ID: "inst-red"},
		{Kind: store.Instances, ID: "inst-green"}, {Kind: store.Ports, ID: redPort.ID}, {Kind: store.Ports, ID: greenPort.ID}}
	for _, o := range objects {
		for _, owner := range []string{host, ""} {
			if got, reason := view.Status(o.Kind, o.ID, owner); got != model.StatusActive {
				t.Errorf("status of %s/%s through the store (owner %q) = %s %q, want ACTIVE", o.Kind, o.ID, owner, got, reason)
			}
		}
	}

	// A deleted object's status record goes with it.
	waitView(e.del(greenPort, testInstance("green")))
	var left []string
	e.st.View(ctx, func(r store.Reader) error {
		return r.List(store.ObjectStatuses, func(id string, _ []byte) error { left = append(left, id); return nil })
	})
	if len(left) != 3 {
		t.Errorf("status records after green left: %v, want the network's, red's and its port's", left)
	}
	if got, _ := view.Status(store.Instances, "inst-green", host); got != model.StatusBuild {
		t.Errorf("deleted instance's status = %s, want BUILD (no record)", got)
	}

	// A restart: the first (full) pass finds the kernel as it was and
	// publishes no status.
	e.stop()
	e.publisher = newPublisher()
	e.start()
	eventually(t, 20*time.Second, "the restarted agent's first publication", func() error {
		if got := e.publisher.Stats(); got.Publications == 0 {
			return fmt.Errorf("%+v", got)
		}
		return nil
	})
	if got := e.publisher.Stats(); got.Statuses != 0 {
		t.Errorf("a restarted agent wrote %d status records, want none (%+v)", got.Statuses, got)
	}

	// Another host's reports: the agent counts them as programmed
	// without a pass.
	other, err := hoststatus.NewPublisher(e.st, "host-b")
	if err != nil {
		t.Fatal(err)
	}
	passes := e.agent.Health().Passes
	if err := other.PublishPass(ctx, e.revision(), map[hoststatus.Object]hoststatus.State{{Kind: store.Networks, ID: netID}: {Status: model.StatusActive}}, false); err != nil {
		t.Fatal(err)
	}
	e.converge(e.revision())
	if got := e.agent.Health().Passes; got != passes {
		t.Errorf("another host's reports ran %d passes, want none", got-passes)
	}
}

// TestAgentPublishesWhatAPassChanged: after a pass that changed one
// instance and its port, the agent hands its publisher those objects'
// statuses, not every status it holds — what a waited write costs to
// publish must not grow with the objects in the store (at 10,000 ports,
// copying and comparing every status on every pass was the tail of port
// create → kernel) — and the statuses reach the store all the same; a
// full pass publishes everything, checking the store.
func TestAgentPublishesWhatAPassChanged(t *testing.T) {
	e := newEnv(t, time.Hour)
	e.stop()
	p, err := hoststatus.NewPublisher(e.st, "host-a")
	if err != nil {
		t.Fatal(err)
	}
	e.publisher = p
	e.start()
	view, waitView := e.statusView("host-a")

	// Unbound ports: a status each (DOWN), no kernel state.
	const unbound = 40
	records := []any{testNetwork(), testSubnet()}
	for i := range unbound {
		p := testPort("none", fmt.Sprintf("u%d", i), fmt.Sprintf("10.9.0.%d", 100+i), fmt.Sprintf("fa:16:3e:00:01:%02x", i))
		p.DeviceID, p.DeviceOwner = "", ""
		records = append(records, p)
	}
	waitView(e.put(records...))

	before := e.publisher.Stats()
	red := testPort("red", "eth0", "10.9.0.11", "fa:16:3e:00:00:11")
	waitView(e.put(testInstance("red"), red))
	eventually(t, 20*time.Second, "red's statuses in the store", func() error {
		for _, o := range []hoststatus.Object{{Kind: store.Instances, ID: "inst-red"}, {Kind: store.Ports, ID: red.ID}} {
			if got, reason := view.Status(o.Kind, o.ID, "host-a"); got != model.StatusActive {
				return fmt.Errorf("%s/%s = %s %q, want ACTIVE", o.Kind, o.ID, got, reason)
			}
		}
		return nil
	})
	after := e.publisher.Stats()
	// The instance, its port and the network (whose DHCP the port
	// changed), in however many passes the change took.
	if examined, passes := after.Examined-before.Examined, after.Publications-before.Publications; examined > 3*passes || examined > unbound/2 {
		t.Errorf("publishing one instance and its port examined %d statuses in %d publications, want at most 3 a publication (the store holds %d ports)",
			examined, passes, unbound+1)
	}
	if got, _ := view.Status(store.Ports, "port-none-u7", "host-a"); got != model.StatusDown {
		t.Errorf("an unbound port's status = %s, want DOWN", got)
	}

	// A full pass (the first of a restarted agent) publishes every
	// status.
	before = e.publisher.Stats()
	e.stop()
	e.start()
	eventually(t, 20*time.Second, "a full pass's publication", func() error {
		if got := e.publisher.Stats(); got.Examined-before.Examined < unbound {
			return fmt.Errorf("%+v", got)
		}
		return nil
	})
}

// statusView starts an API server's View of the store's reports, for
// host as the local one, and returns it with a wait until it shows host
// programmed a revision, as a waited API write does.
func (e *env) statusView(host string) (*hoststatus.View, func(rev int64)) {
	e.t.Helper()
	view := hoststatus.NewView(hoststatus.ViewConfig{Store: e.st, Local: host})
	if err := view.Load(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.t.Cleanup(cancel)
	go view.Run(ctx)
	return view, func(rev int64) {
		e.t.Helper()
		wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		if err := view.WaitConverged(wctx, rev); err != nil {
			e.t.Fatalf("waiting through the store for revision %d: %v (agent %+v)", rev, err, e.agent.Health())
		}
	}
}
