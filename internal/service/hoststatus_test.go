package service_test

import (
	"context"
	"testing"
	"time"

	"github.com/nsnet/nsnet/internal/hoststatus"
	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/service"
	"github.com/nsnet/nsnet/internal/store"
	"github.com/nsnet/nsnet/internal/store/storetest"
)

// TestStatusesAndCountersComeFromTheStore: the service shows what the
// hosts' agents published to the store (written here as an agent writes
// them, through hoststatus.Publisher) and nothing else: statuses with
// their reasons, firewall drops, for objects another host programs; and
// when the last agent of a host is deleted, that host's reports go.
func TestStatusesAndCountersComeFromTheStore(t *testing.T) {
	ctx := context.Background()
	st := storetest.Open(t, t.TempDir())
	view := hoststatus.NewView(hoststatus.ViewConfig{Store: st, Local: "host-a"})
	if err := view.Load(ctx); err != nil {
		t.Fatal(err)
	}
	vctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go view.Run(vctx)
	// The API server of host-a; host-b is another host, whose agent
	// programs the port.
	svc := service.New(service.Config{Store: st, Status: view, Counters: view, NetnsPrefix: "t-", Host: "host-a"})
	hostB := service.New(service.Config{Store: st, NetnsPrefix: "t-", Host: "host-b"})
	for _, s := range []*service.Service{svc, hostB} {
		if _, err := s.RegisterAgents(ctx, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	// The host registry, as each host's daemon keeps it: waits wait for
	// both hosts.
	if _, err := st.Update(ctx, func(tx store.Txn) error {
		for _, h := range []string{"host-a", "host-b"} {
			now := time.Now().UTC()
			if err := tx.Put(store.Hosts, h, model.Host{Name: h, Roles: []string{model.RoleCompute, model.RoleNetwork},
				AvailabilityZone: model.DefaultAvailabilityZone, StartedAt: now.Format(time.RFC3339), Heartbeat: now.Format(time.RFC3339Nano)}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	net := must[model.Network](t)(svc.CreateNetwork(ctx, attrs(t, map[string]any{"name": "red"})))
	must[model.Subnet](t)(svc.CreateSubnet(ctx, attrs(t, map[string]any{"network_id": net.ID, "cidr": "10.1.0.0/24", "ip_version": 4})))
	inst := must[model.Instance](t)(svc.CreateInstance(ctx, attrs(t, map[string]any{"name": "vm1", "host": "host-b"})))
	res, err := svc.CreatePort(ctx, attrs(t, map[string]any{"network_id": net.ID, "device_id": inst.ID, "device_owner": model.DeviceOwnerCompute}))
	if err != nil {
		t.Fatal(err)
	}
	port := res.Object
	if port.Status != model.StatusBuild || port.FirewallDrops != nil {
		t.Errorf("port before any report: %s, drops %+v; want BUILD, none", port.Status, port.FirewallDrops)
	}

	a, err := hoststatus.NewPublisher(st, "host-a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := hoststatus.NewPublisher(st, "host-b")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.PublishPass(ctx, res.Revision, map[hoststatus.Object]hoststatus.State{
		{Kind: store.Networks, ID: net.ID}: {Status: model.StatusActive}}, false); err != nil {
		t.Fatal(err)
	}
	if err := b.PublishCounters(ctx, map[string]model.PortFirewallCounters{port.ID: {Ingress: 5, SpoofedIP: 1}}); err != nil {
		t.Fatal(err)
	}
	if err := b.PublishPass(ctx, res.Revision, map[hoststatus.Object]hoststatus.State{
		{Kind: store.Networks, ID: net.ID}:   {Status: model.StatusActive},
		{Kind: store.Instances, ID: inst.ID}: {Status: model.StatusActive},
		{Kind: store.Ports, ID: port.ID}:     {Status: model.StatusError, Reason: "tap missing"}}, false); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	if err := view.WaitConverged(wctx, res.Revision); err != nil {
		t.Fatal(err)
	}
	// The counters went before the pass: the mirror has them too.
	got, err := svc.GetPort(ctx, port.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != model.StatusError || got.StatusReason != "tap missing" {
		t.Errorf("port: %s %q, want host-b's ERROR \"tap missing\"", got.Status, got.StatusReason)
	}
	if got.FirewallDrops == nil || got.FirewallDrops.Ingress != 5 || got.FirewallDrops.SpoofedIP != 1 {
		t.Errorf("port drops: %+v, want host-b's", got.FirewallDrops)
	}
	if i, err := svc.GetInstance(ctx, inst.ID); err != nil || i.Status != model.StatusActive {
		t.Errorf("instance: %s, %v; want ACTIVE", i.Status, err)
	}
	if n, err := svc.GetNetwork(ctx, net.ID); err != nil || n.Status != model.StatusActive {
		t.Errorf("network: %s, %v; want ACTIVE", n.Status, err)
	}

	// host-b's agents deleted one by one: its reports stay while one
	// remains, and go with the last.
	var last int64
	for i, typ := range []string{model.AgentTypeDHCP, model.AgentTypeL3, model.AgentTypeLinuxBridge, model.AgentTypeMetadata} {
		id := service.AgentID("host-b", typ)
		rev, err := svc.DeleteAgent(ctx, id)
		if err != nil {
			t.Fatalf("delete agent %s: %v", id, err)
		}
		last = rev
		if i < 3 {
			reports := 0
			st.View(ctx, func(r store.Reader) error {
				return r.List(store.ObjectStatuses, func(string, []byte) error { reports++; return nil })
			})
			if reports != 4 {
				t.Errorf("after deleting %s: %d status records, want 4 (host-b still has agents)", typ, reports)
			}
		}
	}
	st.View(ctx, func(r store.Reader) error {
		last = max(last, r.Revision())
		for _, kind := range []store.Kind{store.HostPasses, store.ObjectStatuses, store.PortCounters} {
			r.List(kind, func(id string, _ []byte) error {
				if !hasPrefix(id, "host-a") {
					t.Errorf("%s/%s left after host-b's last agent was deleted", kind, id)
				}
				return nil
			})
		}
		return nil
	})
	for view.Revision() < last {
		time.Sleep(10 * time.Millisecond)
	}
	got, err = svc.GetPort(ctx, port.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != model.StatusBuild || got.FirewallDrops != nil {
		t.Errorf("port once host-b left: %s, drops %+v; want BUILD, none", got.Status, got.FirewallDrops)
	}
}

func hasPrefix(s, p string) bool { return len(s) >= len(p) && s[:len(p)] == p }
