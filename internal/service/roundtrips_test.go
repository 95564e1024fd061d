package service_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/service"
	"github.com/nsnet/nsnet/internal/store"
	"github.com/nsnet/nsnet/internal/store/storetest"
)

// TestCreatesReadInFewRequests: on etcd, where each read is a round trip,
// an instance create and a port create on it (agentsim's sample) read
// what they need in a few requests each, their answers included: a
// create's transaction prefetches its records, and a record read twice
// is read once. (They took 5 and 22 reading one record at a time.)
func TestCreatesReadInFewRequests(t *testing.T) {
	ctx := context.Background()
	st := storetest.Open(t, t.TempDir())
	etcd, ok := st.(*store.Etcd)
	if !ok {
		t.Skipf("reads are round trips on etcd only (%s=etcd)", storetest.EnvStore)
	}
	svc := service.New(service.Config{Store: st, NetnsPrefix: "t-"})
	net := must[model.Network](t)(svc.CreateNetwork(ctx, attrs(t, map[string]any{"name": "n"})))
	must[model.Subnet](t)(svc.CreateSubnet(ctx, attrs(t, map[string]any{"network_id": net.ID, "cidr": "10.0.0.0/16", "enable_dhcp": false})))
	// The project's first port creates its default security group.
	must[model.Port](t)(svc.CreatePort(ctx, attrs(t, map[string]any{"network_id": net.ID})))
	const instanceReads, portReads = 4, 5
	for i := range 3 {
		n := etcd.ReadRequests()
		inst := must[model.Instance](t)(svc.CreateInstance(ctx, attrs(t, map[string]any{"name": fmt.Sprint("i", i)})))
		if got := etcd.ReadRequests() - n; got > instanceReads {
			t.Errorf("instance create %d: %d read requests, want at most %d", i, got, instanceReads)
		}
		n = etcd.ReadRequests()
		p := must[model.Port](t)(svc.CreatePort(ctx, attrs(t, map[string]any{"network_id": net.ID, "device_id": inst.ID})))
		if got := etcd.ReadRequests() - n; got > portReads {
			t.Errorf("port create %d: %d read requests, want at most %d", i, got, portReads)
		}
		if want := fmt.Sprintf("10.0.0.%d", i+3); len(p.FixedIPs) != 1 || p.FixedIPs[0].IPAddress != want || p.DeviceID != inst.ID || p.MACAddress == "" {
			t.Errorf("port %d: %+v %s %q, want %s on instance %s with a MAC", i, p.FixedIPs, p.DeviceID, p.MACAddress, want, inst.ID)
		}
	}
}
