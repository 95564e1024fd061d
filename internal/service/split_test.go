package service_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/service"
	"github.com/nsnet/nsnet/internal/store"
	"github.com/nsnet/nsnet/internal/store/storetest"
)

// stores are the backends the tests of jobs split over transactions run
// on: etcd is the one whose bound on a transaction (--max-txn-ops, 128 by
// default in the etcd the tests start) makes them split.
var stores = []struct {
	name string
	open func(t *testing.T) store.Store
}{
	{"bolt", func(t *testing.T) store.Store { return openBolt(t) }},
	{"etcd", func(t *testing.T) store.Store { return storetest.OpenEtcd(t) }},
}

// crashing is a store whose Update number failAt fails without running,
// as if the process had stopped there: the Updates before it committed.
type crashing struct {
	store.Store
	updates, failAt int
}

var errCrash = errors.New("crashed")

func (c *crashing) Update(ctx context.Context, fn func(store.Txn) error) (int64, error) {
	c.updates++
	if c.updates == c.failAt {
		return 0, errCrash
	}
	return c.Store.Update(ctx, fn)
}

// putInChunks writes records behind the service's back, a chunk per
// transaction, as a store from an older nsnet holds them.
func putInChunks[T any](t *testing.T, st store.Store, kind store.Kind, recs []T, id func(T) string) {
	t.Helper()
	for i := 0; i < len(recs); i += store.SplitWrites {
		chunk := recs[i:min(len(recs), i+store.SplitWrites)]
		if _, err := st.Update(context.Background(), func(tx store.Txn) error {
			for _, r := range chunk {
				if err := tx.Put(kind, id(r), r); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestAssignSegmentsInBatches: more old networks than one etcd
// transaction takes get their segments a batch at a time; a start that
// stops between batches leaves the networks of the batches before it
// upgraded, each with its own VNI, and the next start upgrades the rest.
func TestAssignSegmentsInBatches(t *testing.T) {
	for _, be := range stores {
		t.Run(be.name, func(t *testing.T) {
			ctx := context.Background()
			st := be.open(t)
			const n = 250
			var old []model.Network
			for i := range n {
				old = append(old, model.Network{ID: fmt.Sprintf("old-%03d", i), AdminStateUp: true, MTU: 1500})
			}
			putInChunks(t, st, store.Networks, old, func(n model.Network) string { return n.ID })

			crash := &crashing{Store: st, failAt: 2}
			first, err := service.New(service.Config{Store: crash, NetnsPrefix: "t-"}).AssignSegments(ctx)
			if !errors.Is(err, errCrash) || first != store.SplitWrites {
				t.Fatalf("first start, stopped at its second batch: %d networks, %v; want %d and the crash", first, err, store.SplitWrites)
			}
			rest, err := service.New(service.Config{Store: st, NetnsPrefix: "t-"}).AssignSegments(ctx)
			if err != nil || first+rest != n {
				t.Fatalf("second start: %d networks, %v; want the other %d", rest, err, n-first)
			}
			st.View(ctx, func(r store.Reader) error {
				all, err := store.List[model.Network](r, store.Networks)
				if err != nil {
					t.Fatal(err)
				}
				vnis := map[int]string{}
				for _, nw := range all {
					seg := nw.Segment()
					if seg.NetworkType != model.NetworkTypeVXLAN {
						t.Errorf("network %s: %+v, want vxlan", nw.ID, seg)
						continue
					}
					if o, dup := vnis[seg.SegmentationID]; dup {
						t.Errorf("networks %s and %s share VNI %d", o, nw.ID, seg.SegmentationID)
					}
					vnis[seg.SegmentationID] = nw.ID
				}
				if len(all) != n {
					t.Errorf("%d networks, want %d", len(all), n)
				}
				return nil
			})
		})
	}
}

// TestBulkCreateTooLargeForTheStore: a bulk create that writes more than
// the store takes in one transaction is Neutron's bad request, naming the
// bound and what to do, and creates nothing; the same ports in smaller
// requests are created.
func TestBulkCreateTooLargeForTheStore(t *testing.T) {
	ctx := context.Background()
	st := storetest.OpenEtcd(t)
	// Told a bound higher than the cluster's (128): etcd itself refuses.
	cfg, err := store.ParseEtcdURL("etcd://" + st.Endpoints()[0] + st.Prefix() + "-raised?max-txn-ops=1000")
	if err != nil {
		t.Fatal(err)
	}
	raised, err := store.OpenEtcd(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer raised.Close()
	for _, tc := range []struct {
		name  string
		st    store.Store
		limit string
	}{
		{"told the cluster's bound", st, "more than the 128 etcd"},
		{"told a higher bound", raised, "more than etcd"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc := service.New(service.Config{Store: tc.st, NetnsPrefix: "t-"})
			net := must[model.Network](t)(svc.CreateNetwork(ctx, attrs(t, map[string]any{"name": "n-" + tc.name})))
			must[model.Subnet](t)(svc.CreateSubnet(ctx, attrs(t, map[string]any{"network_id": net.ID, "cidr": "10.0.0.0/24", "ip_version": 4, "enable_dhcp": false})))
			var items []service.Attrs
			for range 30 {
				items = append(items, attrs(t, map[string]any{"network_id": net.ID}))
			}
			_, err := svc.CreatePorts(ctx, items)
			e := service.AsError(err)
			if e == nil || e.Status != http.StatusBadRequest || e.Type != "HTTPBadRequest" ||
				!strings.Contains(e.Message, tc.limit) || !strings.Contains(e.Message, "--max-txn-ops") {
				t.Fatalf("bulk create of 30 ports: %v (%+v), want a 400 HTTPBadRequest saying %q and naming --max-txn-ops", err, e, tc.limit)
			}
			if ports, err := svc.ListPorts(ctx); err != nil || len(ports) != 0 {
				t.Errorf("after the refused bulk create: %d ports, %v; want none", len(ports), err)
			}
			for i := 0; i < len(items); i += 10 {
				if _, err := svc.CreatePorts(ctx, items[i:i+10]); err != nil {
					t.Fatalf("bulk create of 10 ports: %v", err)
				}
			}
		})
	}
}
