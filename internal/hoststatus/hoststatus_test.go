package hoststatus_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/nsnet/nsnet/internal/hoststatus"
	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/store"
	"github.com/nsnet/nsnet/internal/store/storetest"
)

func TestMain(m *testing.M) { os.Exit(storetest.Main(m)) }

// backends runs fn on a bbolt file and on a real etcd (whose default
// --max-txn-ops, 128, the publisher's batches must respect).
func backends(t *testing.T, fn func(t *testing.T, st store.Store)) {
	t.Run("bolt", func(t *testing.T) { fn(t, storetest.OpenBolt(t, t.TempDir())) })
	t.Run("etcd", func(t *testing.T) { fn(t, storetest.OpenEtcd(t)) })
}

// running starts a View of st serving in host local, kept current until
// the test ends.
func running(t *testing.T, st store.Store, local string, now func() time.Time) *hoststatus.View {
	t.Helper()
	v := hoststatus.NewView(hoststatus.ViewConfig{Store: st, Local: local, DownTime: time.Minute, Now: now})
	if err := v.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- v.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("View.Run: %v", err)
		}
	})
	return v
}

func publisher(t *testing.T, st store.Store, host string) *hoststatus.Publisher {
	t.Helper()
	p, err := hoststatus.NewPublisher(st, host)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// register writes host's registry record, its heartbeat at beat.
func register(t *testing.T, st store.Store, host string, beat time.Time) int64 {
	t.Helper()
	rev, err := st.Update(context.Background(), func(tx store.Txn) error {
		return tx.Put(store.Hosts, host, model.Host{Name: host, Roles: []string{model.RoleCompute, model.RoleNetwork},
			AvailabilityZone: model.DefaultAvailabilityZone, StartedAt: beat.UTC().Format(time.RFC3339), Heartbeat: beat.UTC().Format(time.RFC3339Nano)})
	})
	if err != nil {
		t.Fatal(err)
	}
	return rev
}

// desiredWrite commits a desired-state change, as an API write does, and
// returns its revision.
func desiredWrite(t *testing.T, st store.Store, id string) int64 {
	t.Helper()
	rev, err := st.Update(context.Background(), func(tx store.Txn) error {
		return tx.Put(store.Networks, id, model.Network{ID: id, Name: id})
	})
	if err != nil {
		t.Fatal(err)
	}
	return rev
}

func pass(t *testing.T, p *hoststatus.Publisher, rev int64, statuses map[hoststatus.Object]hoststatus.State) {
	t.Helper()
	if err := p.PublishPass(context.Background(), rev, statuses, false); err != nil {
		t.Fatal(err)
	}
}

// waitSeen waits until v's mirror reflects rev (the watch is a stream).
func waitSeen(t *testing.T, v *hoststatus.View, rev int64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for v.Revision() < rev {
		if time.Now().After(deadline) {
			t.Fatalf("the view never reached revision %d (at %d)", rev, v.Revision())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestWaitConvergedWaitsForEveryAliveHost: with hosts a and b alive and c
// dead, a write waits until both a and b programmed it — not for c — and
// a wait that ends first names the host it waited for. A host that dies
// while waited for (its heartbeat expires, nothing written) ends the wait.
func TestWaitConvergedWaitsForEveryAliveHost(t *testing.T) {
	backends(t, func(t *testing.T, st store.Store) {
		now := time.Now()
		register(t, st, "a", now)
		register(t, st, "b", now)
		register(t, st, "c", now.Add(-time.Hour)) // dead
		v := running(t, st, "a", time.Now)
		a, b := publisher(t, st, "a"), publisher(t, st, "b")

		rev := desiredWrite(t, st, "n1")
		pass(t, a, rev, nil)

		// b lags: the wait cannot end before its deadline, and says why.
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		err := v.WaitConverged(ctx, rev)
		cancel()
		var lagging *hoststatus.LaggingError
		if !errors.As(err, &lagging) || len(lagging.Hosts) != 1 || lagging.Revision != rev {
			t.Fatalf("WaitConverged(%d) with b lagging = %v, want a LaggingError naming b", rev, err)
		}
		if _, ok := lagging.Hosts["b"]; !ok || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("WaitConverged(%d) = %v, want b named, and the deadline", rev, err)
		}

		// b catches up while waited for: the wait ends, c never counted.
		waited := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			waited <- v.WaitConverged(ctx, rev)
		}()
		pass(t, b, rev, nil)
		if err := <-waited; err != nil {
			t.Errorf("WaitConverged(%d) after a and b programmed it: %v", rev, err)
		}

		// b's heartbeat runs out while a write waits for it: no store
		// write ends the wait, its expiry does.
		rev = desiredWrite(t, st, "n2")
		pass(t, a, rev, nil)
		register(t, st, "b", time.Now().Add(-time.Minute+500*time.Millisecond))
		ctx, cancel = context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := v.WaitConverged(ctx, rev); err != nil {
			t.Errorf("WaitConverged(%d) with b dying: %v", rev, err)
		}
	})
}

// TestWaitConvergedSkipsReportOnlyRevisions: a revision that only report
// records changed after a host's pass (another host's statuses, counters)
// asks nothing of it: a wait for it — a write that changed nothing
// answers with the store's current revision — ends without the host
// passing again, and the host's publisher does not rewrite its pass.
func TestWaitConvergedSkipsReportOnlyRevisions(t *testing.T) {
	backends(t, func(t *testing.T, st store.Store) {
		v := running(t, st, "a", time.Now)
		a, b := publisher(t, st, "a"), publisher(t, st, "b")
		rev := desiredWrite(t, st, "n1")
		pass(t, a, rev, nil)
		pass(t, b, rev, map[hoststatus.Object]hoststatus.State{{Kind: store.Networks, ID: "n1"}: {Status: model.StatusActive}})
		if err := b.PublishCounters(context.Background(), map[string]model.PortFirewallCounters{"p": {Ingress: 3}}); err != nil {
			t.Fatal(err)
		}
		var current int64
		st.View(context.Background(), func(r store.Reader) error { current = r.Revision(); return nil })
		waitSeen(t, v, current)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := v.WaitConverged(ctx, current); err != nil {
			t.Errorf("WaitConverged(%d), only reports since the hosts' passes at %d: %v", current, rev, err)
		}
		before := a.Stats()
		pass(t, a, current, nil)
		if got := a.Stats(); got.Passes != before.Passes || got.Txns != before.Txns || got.Publications != before.Publications+1 {
			t.Errorf("a's pass at a report-only revision wrote %+v (before %+v), want nothing", got, before)
		}
	})
}

// TestStatusIsTheOwnersReport: an object's status is its owner's report
// (BUILD until the owner reports it, whatever another host says), or,
// with no owner known, what the hosts reporting it say together — the
// alive ones when any does.
func TestStatusIsTheOwnersReport(t *testing.T) {
	backends(t, func(t *testing.T, st store.Store) {
		now := time.Now()
		for _, h := range []string{"a", "b", "c"} {
			register(t, st, h, now)
		}
		register(t, st, "dead", now.Add(-time.Hour))
		v := running(t, st, "a", time.Now)
		active, build, down := hoststatus.State{Status: model.StatusActive}, hoststatus.State{Status: model.StatusBuild}, hoststatus.State{Status: model.StatusDown}
		failed := func(why string) hoststatus.State { return hoststatus.State{Status: model.StatusError, Reason: why} }
		reports := map[string]map[hoststatus.Object]hoststatus.State{
			"a": {{Kind: store.Routers, ID: "r"}: active, {Kind: store.Networks, ID: "n"}: active, {Kind: store.Networks, ID: "m"}: failed("no bridge"),
				{Kind: store.Networks, ID: "k"}: active},
			"b": {{Kind: store.Networks, ID: "n"}: build, {Kind: store.Networks, ID: "m"}: active, {Kind: store.Ports, ID: "p"}: down,
				{Kind: store.Networks, ID: "k"}: active},
			"c": {{Kind: store.Networks, ID: "m"}: failed("no uplink")},
			"dead": {{Kind: store.Instances, ID: "i"}: active, {Kind: store.Routers, ID: "r"}: failed("gone"),
				{Kind: store.Networks, ID: "k"}: failed("gone")},
		}
		var last int64
		for h, statuses := range reports {
			p := publisher(t, st, h)
			pass(t, p, 1, statuses)
			st.View(context.Background(), func(r store.Reader) error { last = max(last, r.Revision()); return nil })
		}
		waitSeen(t, v, last)
		for _, tc := range []struct {
			kind       store.Kind
			id, host   string
			want, why  string
			wantReason string
		}{
			{kind: store.Routers, id: "r", host: "a", want: model.StatusActive, why: "the owner's"},
			{kind: store.Routers, id: "r", host: "b", want: model.StatusBuild, why: "moved to b, which has not reported it"},
			{kind: store.Routers, id: "r", host: "", want: model.StatusActive, why: "no owner: the alive host's, not the dead one's"},
			{kind: store.Instances, id: "i", host: "", want: model.StatusActive, why: "only a dead host reports it: its last word"},
			{kind: store.Networks, id: "n", host: "", want: model.StatusBuild, why: "on two hosts, one still building"},
			{kind: store.Networks, id: "m", host: "", want: model.StatusError, wantReason: "no bridge; no uplink", why: "in error on two hosts"},
			{kind: store.Networks, id: "k", host: "", want: model.StatusActive, why: "the dead host's error does not count"},
			{kind: store.Ports, id: "p", host: "", want: model.StatusDown, why: "DOWN"},
			{kind: store.Ports, id: "q", host: "", want: model.StatusBuild, why: "nobody reports it yet"},
		} {
			status, reason := v.Status(tc.kind, tc.id, tc.host)
			if status != tc.want || reason != tc.wantReason {
				t.Errorf("Status(%s, %s, %q) = %s %q, want %s %q (%s)", tc.kind, tc.id, tc.host, status, reason, tc.want, tc.wantReason, tc.why)
			}
		}
	})
}

// TestPublisherWritesWhatChanged: statuses go in transactions of at most
// a hundred records (a real etcd refuses more than 128 operations), then
// the pass; a publisher that starts again on the same store (a restarted
// agent) with the same statuses writes none of them — no status flaps —
// and one changed status is one record; deleted objects' records go.
func TestPublisherWritesWhatChanged(t *testing.T) {
	backends(t, func(t *testing.T, st store.Store) {
		v := running(t, st, "a", time.Now)
		statuses := map[hoststatus.Object]hoststatus.State{}
		for i := range 250 {
			statuses[hoststatus.Object{Kind: store.Ports, ID: fmt.Sprintf("p%03d", i)}] = hoststatus.State{Status: model.StatusActive}
		}
		first := publisher(t, st, "a")
		rev := desiredWrite(t, st, "n1")
		pass(t, first, rev, statuses)
		if got, want := first.Stats(), (hoststatus.Stats{Statuses: 250, Passes: 1, Txns: 3, Publications: 1, Examined: 250}); got != want {
			t.Errorf("first publication: %+v, want %+v", got, want)
		}

		restarted := publisher(t, st, "a")
		rev = desiredWrite(t, st, "n2")
		pass(t, restarted, rev, statuses)
		if got, want := restarted.Stats(), (hoststatus.Stats{Statuses: 0, Passes: 1, Txns: 1, Publications: 1, Examined: 250}); got != want {
			t.Errorf("restarted with the same statuses: %+v, want %+v (the pass only)", got, want)
		}

		changed := map[hoststatus.Object]hoststatus.State{}
		for o, s := range statuses {
			changed[o] = s
		}
		changed[hoststatus.Object{Kind: store.Ports, ID: "p007"}] = hoststatus.State{Status: model.StatusError, Reason: "tap gone"}
		delete(changed, hoststatus.Object{Kind: store.Ports, ID: "p008"})
		rev = desiredWrite(t, st, "n3")
		pass(t, restarted, rev, changed)
		if got, want := restarted.Stats(), (hoststatus.Stats{Statuses: 2, Passes: 2, Txns: 2, Publications: 2, Examined: 499}); got != want {
			t.Errorf("one status changed, one object gone: %+v, want %+v", got, want)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := v.WaitConverged(ctx, rev); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct{ id, want, reason string }{
			{"p007", model.StatusError, "tap gone"}, {"p008", model.StatusBuild, ""}, {"p249", model.StatusActive, ""},
		} {
			if s, r := v.Status(store.Ports, tc.id, "a"); s != tc.want || r != tc.reason {
				t.Errorf("port %s: %s %q, want %s %q", tc.id, s, r, tc.want, tc.reason)
			}
		}

		// Most objects gone at once (the mirror reads the host's records
		// in one range then).
		few := map[hoststatus.Object]hoststatus.State{}
		for i := range 5 {
			few[hoststatus.Object{Kind: store.Ports, ID: fmt.Sprintf("p%03d", i)}] = hoststatus.State{Status: model.StatusDown}
		}
		rev = desiredWrite(t, st, "n4")
		pass(t, restarted, rev, few)
		if err := v.WaitConverged(ctx, rev); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct{ id, want string }{{"p004", model.StatusDown}, {"p005", model.StatusBuild}, {"p249", model.StatusBuild}} {
			if s, _ := v.Status(store.Ports, tc.id, "a"); s != tc.want {
				t.Errorf("port %s after most went: %s, want %s", tc.id, s, tc.want)
			}
		}
	})
}

// TestPublishChangesExaminesTheChangeOnly: after a pass published in
// full, a publication of the statuses one pass changed examines those
// only (what a pass costs to publish does not grow with what the host
// owns), writes the ones that differ from the store's (a new one, a
// changed one, a gone one: not one handed again unchanged) with the pass,
// and leaves the others as they were. A publisher that starts with such a
// publication (a restarted agent) reads the store's first.
func TestPublishChangesExaminesTheChangeOnly(t *testing.T) {
	backends(t, func(t *testing.T, st store.Store) {
		v := running(t, st, "a", time.Now)
		port := func(id string) hoststatus.Object { return hoststatus.Object{Kind: store.Ports, ID: id} }
		statuses := map[hoststatus.Object]hoststatus.State{}
		for i := range 250 {
			statuses[port(fmt.Sprintf("p%03d", i))] = hoststatus.State{Status: model.StatusActive}
		}
		p := publisher(t, st, "a")
		pass(t, p, desiredWrite(t, st, "n1"), statuses)
		before := p.Stats()

		broken := hoststatus.State{Status: model.StatusError, Reason: "tap gone"}
		active := hoststatus.State{Status: model.StatusActive}
		rev := desiredWrite(t, st, "n2")
		if err := p.PublishChanges(context.Background(), rev, map[hoststatus.Object]*hoststatus.State{
			port("p007"): &broken, port("p008"): nil, port("p300"): &active, port("p009"): &active,
		}); err != nil {
			t.Fatal(err)
		}
		got := p.Stats()
		if d := (hoststatus.Stats{Statuses: got.Statuses - before.Statuses, Passes: got.Passes - before.Passes, Txns: got.Txns - before.Txns,
			Publications: got.Publications - before.Publications, Examined: got.Examined - before.Examined}); d != (hoststatus.Stats{Statuses: 3, Passes: 1, Txns: 1, Publications: 1, Examined: 4}) {
			t.Errorf("publishing 4 changes, 3 of them real: %+v more, want 3 statuses, 1 pass in 1 txn, 4 examined", d)
		}

		// A restarted publisher's first publication is a change.
		restarted := publisher(t, st, "a")
		rev = desiredWrite(t, st, "n3")
		if err := restarted.PublishChanges(context.Background(), rev, map[hoststatus.Object]*hoststatus.State{
			port("p007"): &broken, port("p010"): nil,
		}); err != nil {
			t.Fatal(err)
		}
		if got, want := restarted.Stats(), (hoststatus.Stats{Statuses: 1, Passes: 1, Txns: 1, Publications: 1, Examined: 2}); got != want {
			t.Errorf("restarted, p007 as stored and p010 gone: %+v, want %+v", got, want)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := v.WaitConverged(ctx, rev); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct{ id, want, reason string }{
			{"p007", model.StatusError, "tap gone"}, {"p008", model.StatusBuild, ""}, {"p009", model.StatusActive, ""},
			{"p010", model.StatusBuild, ""}, {"p249", model.StatusActive, ""}, {"p300", model.StatusActive, ""},
		} {
			if s, r := v.Status(store.Ports, tc.id, "a"); s != tc.want || r != tc.reason {
				t.Errorf("port %s: %s %q, want %s %q", tc.id, s, r, tc.want, tc.reason)
			}
		}
	})
}

// TestViewBehindTheStoreSeesPassesWithTheirStatuses: a View woken by a
// revision the store has already moved past (the watch is a stream, the
// read comes after it) must not show a host's Pass without the statuses
// published with it: a waited write would be answered with the status
// from before the host programmed it. Here the publication that changes
// two statuses and the pass (one transaction) lands after the desired
// write the View is woken for, and the pass before it, which changed no
// status, within the revisions it is woken for.
func TestViewBehindTheStoreSeesPassesWithTheirStatuses(t *testing.T) {
	backends(t, func(t *testing.T, st store.Store) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		v := hoststatus.NewView(hoststatus.ViewConfig{Store: st, Local: "a", DownTime: time.Minute})
		if err := v.Load(ctx); err != nil {
			t.Fatal(err)
		}
		// A watch of the store, as Run's, so that the store can name
		// the changes of the revisions it delivered.
		watch := st.Watch(ctx)
		delivered := func() int64 {
			t.Helper()
			var last int64
			st.View(ctx, func(r store.Reader) error { last = r.Revision(); return nil })
			for {
				select {
				case rev := <-watch:
					if rev >= last {
						return rev
					}
				case <-ctx.Done():
					t.Fatalf("the watch never delivered revision %d", last)
				}
			}
		}
		a := publisher(t, st, "a")
		p1, p2 := hoststatus.Object{Kind: store.Ports, ID: "p1"}, hoststatus.Object{Kind: store.Ports, ID: "p2"}
		active := hoststatus.State{Status: model.StatusActive}
		pass(t, a, desiredWrite(t, st, "n1"), map[hoststatus.Object]hoststatus.State{p1: active, p2: active})
		if err := v.Follow(ctx, delivered()); err != nil {
			t.Fatal(err)
		}

		// A pass that changed no status: its Pass record alone.
		pass(t, a, desiredWrite(t, st, "n2"), map[hoststatus.Object]hoststatus.State{p1: active, p2: active})
		rev := desiredWrite(t, st, "n3")
		pass(t, a, rev, map[hoststatus.Object]hoststatus.State{p1: {Status: model.StatusError, Reason: "tap gone"}})
		delivered()
		// Woken for the desired write, the store already past it: the
		// Pass changed in the revisions woken for, and again after.
		if err := v.Follow(ctx, rev); err != nil {
			t.Fatal(err)
		}
		if err := v.WaitConverged(ctx, rev); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct{ id, want, reason string }{{"p1", model.StatusError, "tap gone"}, {"p2", model.StatusBuild, ""}} {
			if s, r := v.Status(store.Ports, tc.id, "a"); s != tc.want || r != tc.reason {
				t.Errorf("port %s once a's pass at %d is seen: %s %q, want %s %q", tc.id, rev, s, r, tc.want, tc.reason)
			}
		}
	})
}

// TestCountersAndRemoveHost: counters are published when they change and
// read from the host reporting them; removing a host (its agent records
// deleted) removes every record of it, and the View forgets it.
func TestCountersAndRemoveHost(t *testing.T) {
	backends(t, func(t *testing.T, st store.Store) {
		v := running(t, st, "a", time.Now)
		b := publisher(t, st, "b")
		ctx := context.Background()
		c := map[string]model.PortFirewallCounters{"p1": {Ingress: 2}, "p2": {SpoofedIP: 1}}
		for range 2 {
			if err := b.PublishCounters(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
		if got := b.Stats().Counters; got != 2 {
			t.Errorf("the same counters published twice wrote %d records, want 2", got)
		}
		rev := desiredWrite(t, st, "n1")
		pass(t, b, rev, map[hoststatus.Object]hoststatus.State{{Kind: store.Ports, ID: "p1"}: {Status: model.StatusActive}})
		var last int64
		st.View(ctx, func(r store.Reader) error { last = r.Revision(); return nil })
		waitSeen(t, v, last)
		if got := v.FirewallCounters("p1"); got == nil || got.Ingress != 2 {
			t.Errorf("FirewallCounters(p1) = %+v, want 2 ingress drops", got)
		}
		if got := v.FirewallCounters("p3"); got != nil {
			t.Errorf("FirewallCounters(p3) = %+v, want nil: nobody filters it", got)
		}

		if err := hoststatus.RemoveHost(ctx, st, "b"); err != nil {
			t.Fatal(err)
		}
		st.View(ctx, func(r store.Reader) error {
			last = r.Revision()
			for _, kind := range []store.Kind{store.HostPasses, store.ObjectStatuses, store.PortCounters} {
				r.List(kind, func(id string, _ []byte) error {
					t.Errorf("%s/%s left after RemoveHost(b)", kind, id)
					return nil
				})
			}
			return nil
		})
		waitSeen(t, v, last)
		if got := v.FirewallCounters("p1"); got != nil {
			t.Errorf("FirewallCounters(p1) after RemoveHost(b) = %+v, want nil", got)
		}
		if s, _ := v.Status(store.Ports, "p1", ""); s != model.StatusBuild {
			t.Errorf("port p1 after RemoveHost(b): %s, want BUILD", s)
		}
	})
}

// TestViewAliveByPresence: a host whose record's heartbeat is old but
// that beats in the store's presence (as daemons do: a beat writes no
// record) is alive, and waited for; one that does neither is not.
func TestViewAliveByPresence(t *testing.T) {
	backends(t, func(t *testing.T, st store.Store) {
		old := time.Now().Add(-time.Hour)
		register(t, st, "a", old)
		register(t, st, "b", old)
		register(t, st, "c", old)
		if err := st.(store.Presence).Beat(context.Background(), "b", time.Now(), time.Minute); err != nil {
			t.Fatal(err)
		}
		v := running(t, st, "a", time.Now)
		rev := desiredWrite(t, st, "n1")
		pass(t, publisher(t, st, "a"), rev, nil)
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		err := v.WaitConverged(ctx, rev)
		cancel()
		var lagging *hoststatus.LaggingError
		if !errors.As(err, &lagging) || len(lagging.Hosts) != 1 {
			t.Fatalf("WaitConverged(%d) with b beating = %v, want a LaggingError naming b only", rev, err)
		}
		if _, ok := lagging.Hosts["b"]; !ok {
			t.Errorf("WaitConverged(%d) = %v, want b named", rev, err)
		}
	})
}
