package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"testing"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

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
	write := func(put, del []any) { writeRecords(t, st, put, del) }
	put := func(recs ...any) { write(recs, nil) }
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
	pass := func(full bool, fail ...string) (compared int64, ports, deleted []string) {
		t.Helper()
		return simulatePass(t, a, full, fail...)
	}
	if _, ports, _ := pass(true); len(ports) != n {
		t.Fatalf("the first pass programmed %d ports, want %d", len(ports), n)
	}
	failing := testPort("vm999", "eth0", "10.9.3.2", "fa:16:3e:00:09:99").ID
	last := plugged(n)[1].(model.Port)
	renamed := testNetwork()
	renamed.Name = "renamed"
	// Besides the objects a change reaches, each pass compares the
	// network twice: for deletion, and for the ports' need of it.
	for _, step := range []struct {
		name        string
		put, del    []any
		fail        []string
		compared    [2]int64 // at least, at most
		ports, gone []string
	}{
		{"nothing changed", nil, nil, nil, [2]int64{2, 2}, nil, nil},
		{"instance and port created", plugged(n), nil, nil, [2]int64{3, 3}, []string{last.ID}, nil},
		{"port fails", plugged(999), nil, []string{failing}, [2]int64{3, 3}, []string{failing}, nil},
		{"retried", nil, nil, []string{failing}, [2]int64{4, 4}, []string{failing}, nil},
		{"works", nil, nil, nil, [2]int64{4, 4}, []string{failing}, nil},
		{"settled", nil, nil, nil, [2]int64{2, 2}, nil, nil},
		{"port deleted", nil, []any{last}, nil, [2]int64{5, 5}, nil, []string{last.ID}},
		{"network changed", []any{renamed}, nil, nil, [2]int64{4 * n, 4*n + 10}, nil, nil},
	} {
		write(step.put, step.del)
		compared, ports, deleted := pass(false, step.fail...)
		if compared < step.compared[0] || compared > step.compared[1] {
			t.Errorf("%s: the pass compared %d objects, want %d to %d", step.name, compared, step.compared[0], step.compared[1])
		}
		if !slices.Equal(ports, step.ports) {
			t.Errorf("%s: the pass programmed ports %v, want %v", step.name, ports, step.ports)
		}
		if !slices.Equal(deleted, step.gone) {
			t.Errorf("%s: the pass deleted ports %v, want %v", step.name, deleted, step.gone)
		}
	}
}

// simulatePass runs a pass of a as far as the kernel: it brings the
// desired state to the store, lists what to delete and the instances'
// work as a pass does and records it done (but the ports in fail), as
// the pass's deletions and ensures would, and ends it. It returns how many
// objects the pass compared, the ports it programmed and those it
// deleted.
func simulatePass(tb testing.TB, a *Agent, full bool, fail ...string) (compared int64, ports, deleted []string) {
	tb.Helper()
	ch, err := a.readChanges(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	d := a.inc.update(&a.records, ch, full, &a.mu)
	a.setWanted(d)
	p := &pass{a: a, d: d, results: map[key]status{}, tried: map[key]any{}, good: map[key]bool{}, verified: map[key]any{}}
	before := a.compared.Load()
	for _, d := range p.gone()[store.Ports] {
		deleted = append(deleted, d.k.id)
		p.forget = append(p.forget, d.k)
	}
	work := p.instanceWork()
	// The network is what every port needs: programmed once.
	if nk := (key{store.Networks, netID}); p.needs(nk, d.networks[netID]) {
		p.record(nk, d.networks[netID], true, nil, status{Status: model.StatusActive})
	}
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
	compared = a.compared.Load() - before
	a.finish(p, 0)
	return compared, ports, deleted
}

// TestWantedBuiltOnDemand: a pass builds no set of what the drift watches
// want (a walk of every object of the host, per change); the first
// deletion a watch hears of after the pass does, once.
func TestWantedBuiltOnDemand(t *testing.T) {
	st := tempStore(t)
	recs := []any{testNetwork(), testSubnet()}
	for i := range 50 {
		name := fmt.Sprintf("vm%03d", i)
		recs = append(recs, testInstance(name), testPort(name, "eth0", fmt.Sprintf("10.9.0.%d", 2+i), fmt.Sprintf("fa:16:3e:00:00:%02x", i)))
	}
	writeRecords(t, st, recs, nil)
	a, err := New(Config{Store: st, NetnsPrefix: "pw-", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	simulatePass(t, a, true)
	base := a.wantedBuilt.Load()
	port := a.inc.d.ports[testPort("vm007", "eth0", "", "").ID]
	deleted := func(alias string) bool {
		ae := netlink.NewAttributeEncoder()
		ae.String(unix.IFLA_IFALIAS, alias)
		attrs, err := ae.Encode()
		if err != nil {
			t.Fatal(err)
		}
		m := netlink.Message{Header: netlink.Header{Type: unix.RTM_DELLINK}, Data: append(make([]byte, unix.SizeofIfInfomsg), attrs...)}
		_, ok := a.deletedLinkOrAddr(m)
		return ok
	}
	for _, step := range []struct {
		name   string
		pass   bool
		alias  string
		wanted bool
		built  int64
	}{
		{"passes", true, "", false, 0},
		{"wanted link deleted", false, port.Veth.Alias, true, 1},
		{"again", false, port.Veth.Alias, true, 1},
		{"unknown link deleted", false, "nsnet:port:nosuch", false, 1},
		{"another pass", true, "", false, 1},
		{"deleted after it", false, port.Veth.Alias, true, 2},
	} {
		if step.pass {
			simulatePass(t, a, false)
			simulatePass(t, a, false)
		} else if got := deleted(step.alias); got != step.wanted {
			t.Errorf("%s: the deletion of %q was drift %v, want %v", step.name, step.alias, got, step.wanted)
		}
		if got := a.wantedBuilt.Load() - base; got != step.built {
			t.Errorf("%s: %d wanted sets built since the first pass, want %d", step.name, got, step.built)
		}
	}
}
