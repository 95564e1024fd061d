package agent

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nsnet/nsnet/internal/model"
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

	red := testPort("red", "eth0", "10.9.0.11", "fa:16:3e:00:00:11")
	green := testPort("green", "eth0", "10.9.0.12", "fa:16:3e:00:00:12")
	e.converge(e.put(testNetwork(), testSubnet(), testInstance("red"), red))
	target.Store(e.agent)
	fullBefore := e.agent.Health().FullPasses

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
}
