package service_test

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"sync"
	"testing"

	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/service"
	"github.com/nsnet/nsnet/internal/store"
)

func openBolt(t *testing.T) *store.Bolt {
	t.Helper()
	b, err := store.OpenBolt(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// TestVNIAllocationRetriedRechecks: between a create's discarded attempt
// and its real one another writer takes the VNI the discarded attempt
// chose (as when etcd retries on a conflict); the real attempt takes the
// next free one, never the same.
func TestVNIAllocationRetriedRechecks(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, true)
	w.retry.Between(func(context.Context) {
		nets := took[model.Network](t, w.spy, store.Networks)
		if len(nets) != 1 || nets[0].SegmentationID.Get() != 1 {
			t.Fatalf("discarded attempt put %+v, want one network with VNI 1", nets)
		}
		must[model.Network](t)(w.direct.CreateNetwork(ctx, attrs(t, map[string]any{"name": "first"})))
	})
	n := must[model.Network](t)(w.svc.CreateNetwork(ctx, attrs(t, map[string]any{"name": "second"})))
	if got := n.Segment(); got != (model.Segment{NetworkType: model.NetworkTypeVXLAN, SegmentationID: 2}) {
		t.Fatalf("retried create got %+v, want vxlan VNI 2", got)
	}
}

// TestConcurrentNetworkCreatesNeverShareAVNI creates networks from many
// goroutines: every network gets a VNI of its own, the lowest ones.
func TestConcurrentNetworkCreatesNeverShareAVNI(t *testing.T) {
	ctx := context.Background()
	svc := service.New(service.Config{Store: openBolt(t), NetnsPrefix: "t-"})
	const n = 20
	var wg sync.WaitGroup
	vnis := make([]int, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			r, err := svc.CreateNetwork(ctx, attrs(t, map[string]any{}))
			vnis[i], errs[i] = r.Object.SegmentationID.Get(), err
		})
	}
	wg.Wait()
	seen := map[int]bool{}
	for i, vni := range vnis {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if seen[vni] || vni < 1 || vni > n {
			t.Errorf("VNI %d given twice or outside 1..%d: %v", vni, n, vnis)
		}
		seen[vni] = true
	}
}

// TestVNIRangeExhausted: with every VNI of the ranges taken, a tenant
// network cannot be created (503 NoNetworkAvailable) but an admin's
// explicit VNI outside the ranges can; a deleted network's VNI is free
// again.
func TestVNIRangeExhausted(t *testing.T) {
	ctx := context.Background()
	svc := service.New(service.Config{Store: openBolt(t), NetnsPrefix: "t-",
		VNIRanges: []model.VNIRange{{Min: 7, Max: 7}, {Min: 10, Max: 11}}})
	var got []int
	var last model.Network
	for range 3 {
		last = must[model.Network](t)(svc.CreateNetwork(ctx, attrs(t, map[string]any{})))
		got = append(got, last.SegmentationID.Get())
	}
	if got[0] != 7 || got[1] != 10 || got[2] != 11 {
		t.Fatalf("VNIs %v, want [7 10 11]", got)
	}
	_, err := svc.CreateNetwork(ctx, attrs(t, map[string]any{}))
	if e := service.AsError(err); e == nil || e.Status != http.StatusServiceUnavailable || e.Type != "NoNetworkAvailable" {
		t.Fatalf("create with the ranges exhausted: %v, want 503 NoNetworkAvailable", err)
	}
	must[model.Network](t)(svc.CreateNetwork(ctx, attrs(t, map[string]any{
		"provider:network_type": "vxlan", "provider:segmentation_id": 5000})))
	if _, err := svc.DeleteNetwork(ctx, last.ID); err != nil {
		t.Fatal(err)
	}
	again := must[model.Network](t)(svc.CreateNetwork(ctx, attrs(t, map[string]any{})))
	if again.SegmentationID.Get() != 11 {
		t.Fatalf("after a delete: VNI %d, want the freed 11", again.SegmentationID.Get())
	}
}

// TestAssignSegmentsUpgradesOldNetworks: networks stored before the
// provider extension get their segment when the daemon starts, each its
// own VNI after those already taken; the second run changes nothing.
func TestAssignSegmentsUpgradesOldNetworks(t *testing.T) {
	ctx := context.Background()
	b := openBolt(t)
	svc := service.New(service.Config{Store: b, NetnsPrefix: "t-"})
	taken := must[model.Network](t)(svc.CreateNetwork(ctx, attrs(t, map[string]any{})))
	uplink := "eth9"
	old := []model.Network{
		{ID: "old-1", AdminStateUp: true, MTU: 1500},
		{ID: "old-2", AdminStateUp: true, MTU: 1500},
		{ID: "old-ext", AdminStateUp: true, MTU: 1500, RouterExternal: true, Uplink: &uplink},
	}
	if _, err := b.Update(ctx, func(tx store.Txn) error {
		for _, n := range old {
			if err := tx.Put(store.Networks, n.ID, n); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n, err := svc.AssignSegments(ctx); err != nil || n != 3 {
		t.Fatalf("AssignSegments: %d, %v; want 3 networks", n, err)
	}
	want := map[string]model.Segment{
		taken.ID:  {NetworkType: model.NetworkTypeVXLAN, SegmentationID: 1},
		"old-1":   {NetworkType: model.NetworkTypeVXLAN, SegmentationID: 2},
		"old-2":   {NetworkType: model.NetworkTypeVXLAN, SegmentationID: 3},
		"old-ext": {NetworkType: model.NetworkTypeFlat, PhysicalNetwork: "eth9"},
	}
	for id, seg := range want {
		n, err := svc.GetNetwork(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if n.Segment() != seg {
			t.Errorf("network %s: %+v, want %+v", id, n.Segment(), seg)
		}
	}
	before := revision(t, b)
	if n, err := svc.AssignSegments(ctx); err != nil || n != 0 {
		t.Fatalf("second AssignSegments: %d, %v; want none", n, err)
	}
	if after := revision(t, b); after != before {
		t.Errorf("second AssignSegments moved the revision from %d to %d", before, after)
	}
}

func revision(t *testing.T, s store.Store) int64 {
	t.Helper()
	var rev int64
	if err := s.View(context.Background(), func(r store.Reader) error { rev = r.Revision(); return nil }); err != nil {
		t.Fatal(err)
	}
	return rev
}

// TestTunnelOverheadMTU: once tunnels carry vxlan networks, their MTU
// defaults to and is capped at the physical network's less VXLAN's 50;
// flat and local networks keep the physical network's.
func TestTunnelOverheadMTU(t *testing.T) {
	ctx := context.Background()
	svc := service.New(service.Config{Store: openBolt(t), NetnsPrefix: "t-", PhysnetMTU: 1500, TunnelOverhead: model.VXLANOverhead})
	for _, tc := range []struct {
		name    string
		attrs   map[string]any
		wantMTU int
		wantErr string
	}{
		{"vxlan default", map[string]any{}, 1450, ""},
		{"vxlan at the cap", map[string]any{"mtu": 1450}, 1450, ""},
		{"vxlan above the cap", map[string]any{"mtu": 1451}, 0, "Invalid input for operation: Requested MTU is too big, maximum is 1450."},
		{"flat", map[string]any{"provider:network_type": "flat", "provider:physical_network": "physnet1"}, 1500, ""},
		{"local", map[string]any{"provider:network_type": "local", "mtu": 1500}, 1500, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := svc.CreateNetwork(ctx, attrs(t, tc.attrs))
			if tc.wantErr != "" {
				var e *service.Error
				if !errors.As(err, &e) || e.Message != tc.wantErr {
					t.Fatalf("got %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || r.Object.MTU != tc.wantMTU {
				t.Fatalf("got mtu %d, %v; want %d", r.Object.MTU, err, tc.wantMTU)
			}
		})
	}
}
