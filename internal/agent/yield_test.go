package agent

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nsnet/nsnet/internal/dataplane"
	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/netns"
	"github.com/nsnet/nsnet/internal/store"
)

// TestFullPassYieldsToChange: a port created while a full pass is under
// way (here one repairing drift: a tap deleted by hand) is programmed by an
// incremental pass before the full pass goes on, so that a client waiting
// for it does not wait for a pass over the whole host; the full pass that
// continues it then repairs the drift, and only that one counts as a full
// pass. The order is held by the test: each full pass stops at its start
// until the test lets it go.
func TestFullPassYieldsToChange(t *testing.T) {
	var target atomic.Pointer[Agent]
	started := make(chan context.Context, 1)
	release := make(chan struct{})
	var calls atomic.Int32
	fullPassStarted = func(a *Agent, ctx context.Context) {
		if target.Load() != a {
			return
		}
		if calls.Add(1) == 1 {
			started <- ctx
			// Until it yields; bounded, so that an agent that does not
			// fails the test instead of hanging it.
			select {
			case <-ctx.Done():
			case <-time.After(30 * time.Second):
			}
			return
		}
		<-release
	}
	var once sync.Once
	let := func() { once.Do(func() { close(release) }) }
	e := newEnv(t, time.Hour)
	t.Cleanup(func() { let(); fullPassStarted = nil })
	// What the metrics are told: a round that yielded is one full pass,
	// however many pieces it took.
	var fullReported atomic.Int32
	e.stop()
	e.onPass = func(full bool, _ time.Duration, _ bool, _ error) {
		if full {
			fullReported.Add(1)
		}
	}
	e.start()

	red := testPort("red", "eth0", "10.9.0.11", "fa:16:3e:00:00:11")
	green := testPort("green", "eth0", "10.9.0.12", "fa:16:3e:00:00:12")
	e.converge(e.put(testNetwork(), testSubnet(), testInstance("red"), red))
	target.Store(e.agent)
	fullBefore := e.agent.Health().FullPasses
	reportedBefore := fullReported.Load()

	e.ip("-n", e.hostNetns, "link", "del", model.TapName(red.ID))
	var ctx context.Context
	select {
	case ctx = <-started:
	case <-time.After(20 * time.Second):
		t.Fatal("no full pass after the drift")
	}
	e.converge(e.put(testInstance("green"), green))
	if ctx.Err() == nil {
		t.Fatal("the full pass did not yield to the change")
	}
	e.wantStatus(store.Ports, green.ID, model.StatusActive)
	if l := strings.Join(linksIn(e.hostNetns), " "); strings.Contains(l, model.TapName(red.ID)) {
		t.Fatalf("the drift was repaired before the change was programmed: %s", l)
	}
	if got := e.agent.Health().FullPasses; got != fullBefore {
		t.Fatalf("%d full passes counted while the one under way yielded, want %d", got, fullBefore)
	}
	if got := fullReported.Load(); got != reportedBefore {
		t.Fatalf("%d full passes reported to OnPass while the one under way yielded, want %d", got, reportedBefore)
	}

	let()
	e.waitFullPasses(1)
	if l := strings.Join(linksIn(e.hostNetns), " "); !strings.Contains(l, model.TapName(red.ID)) {
		t.Fatalf("the full pass that continued did not repair the drift: %s", l)
	}
	if err := ping(e.ns("red"), "10.9.0.12"); err != nil {
		t.Fatal(err)
	}
	e.wantStatus(store.Ports, red.ID, model.StatusActive)
	if n := calls.Load(); n < 2 {
		t.Fatalf("%d full passes started, want the one that yielded and one that continued it", n)
	}
	if got := fullReported.Load() - reportedBefore; got != 1 {
		t.Fatalf("the round that yielded was reported to OnPass as %d full passes, want 1", got)
	}
}

// TestFullPassProgramsItsChangesFirst: a port created just before a full
// pass reads the store is in that pass's snapshot, so no later change comes
// for the pass to yield to; it is programmed (ACTIVE, its revision
// converged) before the full pass goes over the host's other objects, not
// when the pass reaches its instance. The full pass then repairs the
// drift it was for and counts as one. The test holds the order: the full
// pass waits before its read until the port is in the store, and its
// other objects wait for nothing.
func TestFullPassProgramsItsChangesFirst(t *testing.T) {
	var target atomic.Pointer[Agent]
	reading := make(chan struct{})
	written := make(chan struct{})
	var armedRead, armedStart atomic.Bool
	type seen struct {
		status    string
		converged int64
	}
	atStart := make(chan seen, 1)
	green := testPort("green", "eth0", "10.9.0.12", "fa:16:3e:00:00:12")
	fullPassReads = func(a *Agent) {
		if target.Load() != a || !armedRead.CompareAndSwap(true, false) {
			return
		}
		close(reading)
		// Bounded, so that a test that fails does not hang the agent.
		select {
		case <-written:
		case <-time.After(30 * time.Second):
		}
	}
	fullPassStarted = func(a *Agent, ctx context.Context) {
		if target.Load() != a || !armedStart.CompareAndSwap(true, false) {
			return
		}
		st, _ := a.Status(store.Ports, green.ID)
		a.mu.Lock()
		defer a.mu.Unlock()
		atStart <- seen{st, a.converged}
	}
	e := newEnv(t, time.Hour)
	t.Cleanup(func() { fullPassReads, fullPassStarted = nil, nil })

	red := testPort("red", "eth0", "10.9.0.11", "fa:16:3e:00:00:11")
	e.converge(e.put(testNetwork(), testSubnet(), testInstance("red"), red))
	fullBefore := e.agent.Health().FullPasses
	armedStart.Store(true)
	armedRead.Store(true)
	target.Store(e.agent)

	// A full pass to repair drift; it waits before its read.
	e.ip("-n", e.hostNetns, "link", "del", model.TapName(red.ID))
	select {
	case <-reading:
	case <-time.After(20 * time.Second):
		t.Fatal("no full pass after the drift")
	}
	rev := e.put(testInstance("green"), green)
	close(written)
	var got seen
	select {
	case got = <-atStart:
	case <-time.After(20 * time.Second):
		t.Fatal("the full pass did not start")
	}
	if got.status != model.StatusActive || got.converged < rev {
		t.Fatalf("as the full pass that read it started: port %s, revision %d programmed; want ACTIVE, revision %d", got.status, got.converged, rev)
	}

	eventually(t, 20*time.Second, "the full pass's end", func() error {
		if n := e.agent.Health().FullPasses; n <= fullBefore {
			return fmt.Errorf("%d full passes, want more than %d", n, fullBefore)
		}
		return nil
	})
	if l := strings.Join(linksIn(e.hostNetns), " "); !strings.Contains(l, model.TapName(red.ID)) {
		t.Fatalf("the full pass did not repair the drift: %s", l)
	}
	e.converge(rev)
	e.wantStatus(store.Ports, green.ID, model.StatusActive)
	e.wantStatus(store.Ports, red.ID, model.StatusActive)
	if err := ping(e.ns("red"), "10.9.0.12"); err != nil {
		t.Fatal(err)
	}
}

// TestYieldingFullPassStopsBetweenPorts: a full pass that yields stops
// between an instance's ports, not after all of them (an instance can have
// dozens, and the change waits for those begun), and the full pass that
// continues its round programs the rest without the instance's
// namespace being verified twice by the round.
func TestYieldingFullPassStopsBetweenPorts(t *testing.T) {
	e := newEnv(t, time.Hour)
	ports := []model.Port{
		testPort("red", "eth0", "10.9.0.11", "fa:16:3e:00:00:11"),
		testPort("red", "eth1", "10.9.0.12", "fa:16:3e:00:00:12"),
		testPort("red", "eth2", "10.9.0.13", "fa:16:3e:00:00:13"),
	}
	for i := range ports {
		ports[i].ID = fmt.Sprintf("p%d-%s", i, ports[i].ID) // taps are named after the id's start
	}
	e.converge(e.put(testNetwork(), testSubnet(), testInstance("red"), ports[0], ports[1], ports[2]))
	e.stop() // the passes below are the test's, on the agent's state
	a := e.agent
	h, err := netns.NewHandle(e.hostNetns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	yielded, cancel := context.WithCancel(context.Background())
	cancel()
	round := newRound()
	newPass := func(yield context.Context) *pass {
		p := &pass{a: a, d: a.inc.d, full: true, round: round, yield: yield, links: dataplane.NewLinks(h),
			results: map[key]status{}, tried: map[key]any{}, good: map[key]bool{}, verified: map[key]any{}}
		p.links.SetNamespace(e.hostNetns)
		return p
	}
	lookedAt := func(p *pass) (instances, ports int) {
		for k := range p.results {
			switch k.kind {
			case store.Instances:
				instances++
			case store.Ports:
				ports++
			}
		}
		return instances, ports
	}

	p := newPass(yielded)
	work := p.instanceWork()
	if len(work) != 1 || len(work[0].ports) != 3 {
		t.Fatalf("full pass work %+v, want the instance and its 3 ports", work)
	}
	p.ensureInstance(work[0])
	if i, n := lookedAt(p); i != 1 || n != 0 {
		t.Fatalf("the yielding pass looked at %d instances and %d ports, want the instance and no port", i, n)
	}
	maps.Copy(round.verified, p.verified)

	p = newPass(nil)
	work = p.instanceWork()
	if len(work) != 1 || len(work[0].ports) != 3 {
		t.Fatalf("continuing pass work %+v, want the instance's 3 ports", work)
	}
	if p.needs(key{store.Instances, work[0].id}, work[0].spec) {
		t.Error("the continuing pass would verify the instance the round verified")
	}
	p.ensureInstance(work[0])
	if _, n := lookedAt(p); n != 3 {
		t.Fatalf("the continuing pass looked at %d ports, want 3", n)
	}
	for k, st := range p.results {
		if st.Status != model.StatusActive {
			t.Errorf("%s: %+v", k, st)
		}
	}
}

// TestYieldedFullPassDoesNotConverge: a full pass that yielded may have
// left objects of its revision unprogrammed (a port created just before
// it read the store), so it does not count as having programmed that
// revision: a client waiting for it waits for the pass that does.
func TestYieldedFullPassDoesNotConverge(t *testing.T) {
	e := newEnv(t, time.Hour)
	e.converge(e.put(testNetwork(), testSubnet(), testInstance("red"), testPort("red", "eth0", "10.9.0.11", "fa:16:3e:00:00:11")))
	e.stop()
	a := e.agent
	before := a.Health().Revision
	d := *a.inc.d
	d.rev = before + 1
	for _, cut := range []bool{true, false} {
		p := &pass{a: a, d: &d, full: true, round: newRound(), cut: cut,
			results: map[key]status{}, tried: map[key]any{}, good: map[key]bool{}, verified: map[key]any{}}
		a.round = p.round
		a.finish(p, time.Millisecond)
		want := before
		if !cut {
			want = d.rev
		}
		if got := a.Health().Revision; got != want {
			t.Errorf("full pass of revision %d (yielded %v): programmed revision %d, want %d", d.rev, cut, got, want)
		}
		if err := a.WaitConverged(canceled(), want); err != nil {
			t.Errorf("yielded %v: WaitConverged(%d): %v", cut, want, err)
		}
		if err := a.WaitConverged(canceled(), want+1); err == nil {
			t.Errorf("yielded %v: WaitConverged(%d) returned", cut, want+1)
		}
	}
}

// canceled is a context that has ended: WaitConverged with it reports
// whether the revision is programmed already.
func canceled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}
