package hoststatus_test

import (
	"context"
	"testing"
	"time"

	"github.com/nsnet/nsnet/internal/hoststatus"
	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/store"
	"github.com/nsnet/nsnet/internal/store/storetest"
)

// BenchmarkPassToWaiter measures what the channel adds to a waited write
// on one host (bbolt): from the end of the agent's pass to the waiter's
// return — the publication's commit, the watch, the mirror's read. The
// desired write before each pass is not timed. A thousand objects have a
// status, one of which changes per pass, as when a port is created among
// a thousand.
func BenchmarkPassToWaiter(b *testing.B) {
	st := storetest.OpenBolt(b, b.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	v := hoststatus.NewView(hoststatus.ViewConfig{Store: st, Local: "a"})
	if err := v.Load(ctx); err != nil {
		b.Fatal(err)
	}
	go v.Run(ctx)
	p, err := hoststatus.NewPublisher(st, "a")
	if err != nil {
		b.Fatal(err)
	}
	statuses := map[hoststatus.Object]hoststatus.State{}
	for i := range 1000 {
		statuses[hoststatus.Object{Kind: store.Ports, ID: string(rune('a'+i%26)) + time.Duration(i).String()}] = hoststatus.State{Status: model.StatusDown}
	}
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		rev, err := st.Update(ctx, func(tx store.Txn) error { return tx.Put(store.Ports, "new", model.Port{ID: "new"}) })
		if err != nil {
			b.Fatal(err)
		}
		statuses[hoststatus.Object{Kind: store.Ports, ID: "new"}] = hoststatus.State{Status: []string{model.StatusActive, model.StatusDown}[i%2]}
		b.StartTimer()
		if err := p.PublishPass(ctx, rev, statuses, false); err != nil {
			b.Fatal(err)
		}
		if err := v.WaitConverged(ctx, rev); err != nil {
			b.Fatal(err)
		}
	}
}
