package service

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/store"
	"github.com/nsnet/nsnet/internal/store/storetest"
)

// hooked is a store whose Update number failAt fails without running, as
// if the process had stopped there, and that calls after when each other
// Update returns. It offers no change log; hookedLog offers the store's.
type hooked struct {
	store.Store
	updates, failAt int
	after           func(n int)
}

var errStopped = errors.New("stopped")

func (h *hooked) Update(ctx context.Context, fn func(store.Txn) error) (int64, error) {
	h.updates++
	if h.updates == h.failAt {
		return 0, errStopped
	}
	rev, err := h.Store.Update(ctx, fn)
	if err == nil && h.after != nil {
		h.after(h.updates)
	}
	return rev, err
}

type hookedLog struct{ *hooked }

func (h hookedLog) ChangedSince(rev int64) ([]store.Change, bool) {
	return h.Store.(store.ChangeLog).ChangedSince(rev)
}

// TestIndexesRebuiltInBatches: a store whose ports were written without
// their index entries — more entries than one etcd transaction takes,
// and stale ones too — is indexed a batch at a time, on either backend,
// with the store's change log or without: a start that stops between
// batches leaves entries that are each right and the next one finishes;
// a port written behind the rebuild's back between two batches is
// indexed too, as is every other; and the service then allocates the
// next free address after them all.
func TestIndexesRebuiltInBatches(t *testing.T) {
	for _, be := range []struct {
		name string
		open func(t *testing.T) store.Store
	}{
		{"bolt", func(t *testing.T) store.Store {
			b, err := store.OpenBolt(filepath.Join(t.TempDir(), "state.db"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { b.Close() })
			return b
		}},
		{"etcd", func(t *testing.T) store.Store { return storetest.OpenEtcd(t) }},
	} {
		for _, withLog := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/log=%v", be.name, withLog), func(t *testing.T) {
				wrap := func(h *hooked) store.Store {
					if withLog {
						return hookedLog{h}
					}
					return h
				}
				rebuildInBatches(t, be.open(t), wrap)
			})
		}
	}
}

func rebuildInBatches(t *testing.T, st store.Store, wrap func(*hooked) store.Store) {
	ctx := context.Background()
	svc := New(Config{Store: st, NetnsPrefix: "t-"})
	net, err := svc.CreateNetwork(ctx, jsonAttrs(t, map[string]any{"name": "n"}))
	if err != nil {
		t.Fatal(err)
	}
	sn, err := svc.CreateSubnet(ctx, jsonAttrs(t, map[string]any{"network_id": net.Object.ID, "cidr": "10.0.0.0/16", "ip_version": 4, "enable_dhcp": false}))
	if err != nil {
		t.Fatal(err)
	}
	port := func(i int) model.Port {
		id := fmt.Sprintf("p%04d", i)
		return model.Port{ID: id, ProjectID: "admin", NetworkID: net.Object.ID, DeviceID: "dev-" + id,
			MACAddress: fmt.Sprintf("fa:16:3e:00:%02x:%02x", i/256, i%256),
			FixedIPs:   []model.FixedIP{{SubnetID: sn.Object.ID, IPAddress: fmt.Sprintf("10.0.%d.%d", (i+2)/256, (i+2)%256)}}}
	}
	// Written behind the service's back, a chunk per transaction: 300
	// ports (four entries each), and 150 stale entries.
	const n = 300
	for from := 0; from < n+150; from += store.SplitWrites {
		if _, err := st.Update(ctx, func(tx store.Txn) error {
			for i := from; i < min(from+store.SplitWrites, n+150); i++ {
				var err error
				if i < n {
					p := port(i)
					err = tx.Put(store.Ports, p.ID, p)
				} else {
					err = tx.Put(store.Indexes, fmt.Sprintf("%sgone-%d/p%d", idxDev, i, i), "gone")
				}
				if err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}

	toWrite := func() int {
		var missing int
		st.View(ctx, func(r store.Reader) error {
			put, stale, err := indexDiff(r, "t-")
			if err != nil {
				t.Fatal(err)
			}
			missing = len(put) + len(stale)
			return nil
		})
		return missing
	}
	before := toWrite()

	// The first start stops at its third write.
	if _, err := New(Config{Store: wrap(&hooked{Store: st, failAt: 3}), NetnsPrefix: "t-"}).GetNetwork(ctx, net.Object.ID); !errors.Is(err, errStopped) {
		t.Fatalf("first start: %v, want it stopped", err)
	}
	if after := toWrite(); after != before-2*store.SplitWrites {
		t.Errorf("after two batches: %d entries to write of %d, want %d fewer", after, before, 2*store.SplitWrites)
	}

	// The second start has a port written behind its back after its
	// first batch.
	late := port(n)
	second := &hooked{Store: st, after: func(u int) {
		if u != 1 {
			return
		}
		if _, err := st.Update(ctx, func(tx store.Txn) error { return tx.Put(store.Ports, late.ID, late) }); err != nil {
			t.Error(err)
		}
	}}
	if _, err := New(Config{Store: wrap(second), NetnsPrefix: "t-"}).GetNetwork(ctx, net.Object.ID); err != nil {
		t.Fatalf("second start: %v", err)
	}
	checkIndexes(t, st, []model.Subnet{sn.Object}, "", "the rebuild")

	p, err := New(Config{Store: st, NetnsPrefix: "t-"}).CreatePort(ctx, jsonAttrs(t, map[string]any{"network_id": net.Object.ID}))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := p.Object.FixedIPs[0].IPAddress, fmt.Sprintf("10.0.%d.%d", (n+3)/256, (n+3)%256); got != want {
		t.Errorf("first port after the rebuild got %s, want %s (the filled ports hold the addresses before)", got, want)
	}
}
