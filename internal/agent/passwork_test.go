package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"testing"

	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/store"
)

// TestPassWorkFollowsChange counts the objects an incremental pass asks
// whether they need work (pass.needs) among many plugged ports: after one
// instance and its port are created, those two; after nothing changed,
// none but one whose programming failed, which is tried again until it
// works; after a change the desired state is computed afresh for (a
// network), every one, as in a full pass. The passes are run as far as
// the kernel (the work they list is recorded programmed, as their ensures
// would), so that the walk itself is what is counted.
func TestPassWorkFollowsChange(t *testing.T) {
	const n = 200
	st := tempStore(t)
	ctx := context.Background()
	put := func(recs ...any) {
		t.Helper()
		if _, err := st.Update(ctx, func(tx store.Txn) error {
			for _, rec := range recs {
				kind, id := kindAndID(rec)
				if err := tx.Put(kind, id, rec); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	plugged := func(i int) []any {
		name := fmt.Sprintf("vm%03d", i)
		return []any{testInstance(name), testPort(name, "eth0", fmt.Sprintf("10.9.%d.%d", i/250, 2+i%250), fmt.Sprintf("fa:16:3e:00:%02x:%02x", i/256, i%256))}
	}
	recs := []any{testNetwork(), testSubnet()}
	for i := range n {
		recs = append(recs, plugged(i)...)
	}
	put(recs...)
	a, err := New(Config{Store: st, NetnsPrefix: "pw-", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	// pass brings the desired state to the store, lists the instances'
	// work as a pass does and records it done (but the ports in fail),
	// and returns how many objects it compared and the ports it listed.
	pass := func(full bool, fail ...string) (int64, []string) {
		t.Helper()
		ch, err := a.readChanges(ctx)
		if err != nil {
			t.Fatal(err)
		}
		d := a.inc.update(&a.records, ch, full, &a.mu)
		p := &pass{a: a, d: d, results: map[key]status{}, tried: map[key]any{}, good: map[key]bool{}, verified: map[key]any{}}
		before := a.compared.Load()
		work := p.instanceWork()
		// The network is what every port needs: programmed once.
		if nk := (key{store.Networks, netID}); p.needs(nk, d.networks[netID]) {
			p.record(nk, d.networks[netID], true, nil, status{Status: model.StatusActive})
		}
		var ports []string
		for _, w := range work {
			p.record(key{store.Instances, w.id}, w.spec, true, nil, status{Status: model.StatusActive})
			for _, id := range w.ports {
				var err error
				if slices.Contains(fail, id) {
					err = errors.New("refused")
				}
				p.record(key{store.Ports, id}, d.ports[id], true, err, status{Status: model.StatusActive})
				ports = append(ports, id)
			}
		}
		compared := a.compared.Load() - before
		a.finish(p, 0)
		return compared, ports
	}
	if _, ports := pass(true); len(ports) != n {
		t.Fatalf("the first pass programmed %d ports, want %d", len(ports), n)
	}
	failing := testPort("vm999", "eth0", "10.9.3.2", "fa:16:3e:00:09:99").ID
	for _, step := range []struct {
		name     string
		recs     []any
		fail     []string
		compared [2]int64 // at least, at most
		ports    []string
	}{
		{"nothing changed", nil, nil, [2]int64{0, 1}, nil},
		{"instance and port created", plugged(n), nil, [2]int64{2, 3}, []string{testPort(fmt.Sprintf("vm%03d", n), "eth0", "", "").ID}},
		{"port fails", plugged(999), []string{failing}, [2]int64{2, 3}, []string{failing}},
		{"retried", nil, []string{failing}, [2]int64{1, 3}, []string{failing}},
		{"works", nil, nil, [2]int64{1, 3}, []string{failing}},
		{"settled", nil, nil, [2]int64{0, 1}, nil},
		{"network changed", []any{func() model.Network { nw := testNetwork(); nw.Name = "renamed"; return nw }()}, nil, [2]int64{2 * n, 2*n + 10}, nil},
	} {
		put(step.recs...)
		compared, ports := pass(false, step.fail...)
		if compared < step.compared[0] || compared > step.compared[1] {
			t.Errorf("%s: the pass compared %d objects, want %d to %d", step.name, compared, step.compared[0], step.compared[1])
		}
		if !slices.Equal(ports, step.ports) {
			t.Errorf("%s: the pass programmed ports %v, want %v", step.name, ports, step.ports)
		}
	}
}
