package service_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/service"
	"github.com/nsnet/nsnet/internal/store"
	"github.com/nsnet/nsnet/internal/store/storetest"
)

// spy records the records that Update functions put, so that a test can
// see what a discarded attempt chose.
type spy struct {
	store.Store
	mu   sync.Mutex
	puts map[store.Kind][]json.RawMessage
}

type spyTxn struct {
	store.Txn
	s *spy
}

func (t spyTxn) Put(kind store.Kind, id string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	t.s.mu.Lock()
	t.s.puts[kind] = append(t.s.puts[kind], raw)
	t.s.mu.Unlock()
	return t.Txn.Put(kind, id, v)
}

func (s *spy) Update(ctx context.Context, fn func(store.Txn) error) (int64, error) {
	return s.Store.Update(ctx, func(tx store.Txn) error { return fn(spyTxn{tx, s}) })
}

// took returns, and forgets, the records of kind put so far.
func took[T any](t *testing.T, s *spy, kind store.Kind) []T {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []T
	for _, raw := range s.puts[kind] {
		var v T
		if err := json.Unmarshal(raw, &v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	s.puts = map[store.Kind][]json.RawMessage{}
	return out
}

// world is a service whose every write retries once (retry), and a second
// service on the same store without retries (direct), which commits the
// conflicting writes between a discarded attempt and the real one.
type world struct {
	retry  *store.Retrying
	spy    *spy
	svc    *service.Service
	direct *service.Service
}

var clock = time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)

func newWorld(t *testing.T, retry bool) *world {
	t.Helper()
	b := storetest.Open(t, t.TempDir())
	w := &world{spy: &spy{Store: b, puts: map[store.Kind][]json.RawMessage{}}}
	var st store.Store = w.spy
	if retry {
		w.retry = store.NewRetrying(w.spy)
		st = w.retry
	}
	now := func() time.Time { return clock }
	w.svc = service.New(service.Config{Store: st, NetnsPrefix: "t-", Now: now})
	w.direct = service.New(service.Config{Store: b, NetnsPrefix: "t-", Now: now})
	return w
}

func attrs(t *testing.T, m map[string]any) service.Attrs {
	t.Helper()
	out := service.Attrs{}
	for k, v := range m {
		raw, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		out[k] = raw
	}
	return out
}

func must[T any](t *testing.T) func(service.Result[T], error) T {
	return func(r service.Result[T], err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return r.Object
	}
}

// TestRetriedCreateRechecksTheNewSnapshot: between a create's discarded
// attempt and its real one, another writer takes the MAC and the address
// the discarded attempt chose, as happens when etcd retries on a
// conflict. The real attempt must choose again from what it sees, not
// keep what the discarded one filled in.
func TestRetriedCreateRechecksTheNewSnapshot(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, true)
	net := must[model.Network](t)(w.direct.CreateNetwork(ctx, attrs(t, map[string]any{"name": "n", "router:external": true})))
	must[model.Subnet](t)(w.direct.CreateSubnet(ctx, attrs(t, map[string]any{
		"network_id": net.ID, "cidr": "10.0.0.0/24", "enable_dhcp": false})))

	// takeOver creates, directly, a port holding the MAC and address of p.
	takeOver := func(p model.Port) {
		if _, err := w.direct.CreatePort(ctx, attrs(t, map[string]any{
			"network_id": net.ID, "mac_address": p.MACAddress,
			"fixed_ips": []map[string]string{{"ip_address": p.FixedIPs[0].IPAddress}},
		})); err != nil {
			t.Fatalf("take over %s %v: %v", p.MACAddress, p.FixedIPs, err)
		}
	}

	t.Run("port", func(t *testing.T) {
		w.retry.Between(func(context.Context) {
			ports := took[model.Port](t, w.spy, store.Ports)
			if len(ports) != 1 {
				t.Fatalf("discarded attempt put %d ports, want 1", len(ports))
			}
			takeOver(ports[0])
		})
		defer w.retry.Between(nil)
		took[model.Port](t, w.spy, store.Ports)
		p := must[model.Port](t)(w.svc.CreatePort(ctx, attrs(t, map[string]any{"network_id": net.ID,
			"allowed_address_pairs": []map[string]string{{"ip_address": "10.0.9.9"}}})))
		checkAlone(ctx, t, w.direct, p)
		// A pair without a MAC takes the port's: the one chosen last.
		if mac := p.AllowedAddressPairs[0].MACAddress; mac != p.MACAddress {
			t.Errorf("address pair MAC %s, port MAC %s", mac, p.MACAddress)
		}
	})
	t.Run("floating IP", func(t *testing.T) {
		w.retry.Between(func(context.Context) {
			ports := took[model.Port](t, w.spy, store.Ports)
			if len(ports) != 1 {
				t.Fatalf("discarded attempt put %d ports, want 1", len(ports))
			}
			takeOver(ports[0])
		})
		defer w.retry.Between(nil)
		took[model.Port](t, w.spy, store.Ports)
		f := must[model.FloatingIP](t)(w.svc.CreateFloatingIP(ctx, attrs(t, map[string]any{"floating_network_id": net.ID})))
		ports, err := w.direct.ListPorts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		held := false
		for _, p := range ports {
			if p.DeviceID == f.ID {
				held = true
				checkAlone(ctx, t, w.direct, p)
				if p.FixedIPs[0].IPAddress != f.FloatingIPAddress {
					t.Errorf("floating IP %s, its port holds %v", f.FloatingIPAddress, p.FixedIPs)
				}
			}
		}
		if !held {
			t.Errorf("no port holds floating IP %s", f.FloatingIPAddress)
		}
	})
}

// checkAlone fails t if another port of p's network shares its MAC or one
// of its addresses.
func checkAlone(ctx context.Context, t *testing.T, svc *service.Service, p model.Port) {
	t.Helper()
	ports, err := svc.ListPorts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range ports {
		if o.ID == p.ID || o.NetworkID != p.NetworkID {
			continue
		}
		if o.MACAddress == p.MACAddress {
			t.Errorf("ports %s and %s share MAC %s", p.ID, o.ID, p.MACAddress)
		}
		for _, a := range o.FixedIPs {
			for _, b := range p.FixedIPs {
				if a.IPAddress == b.IPAddress {
					t.Errorf("ports %s and %s share address %s", p.ID, o.ID, a.IPAddress)
				}
			}
		}
	}
}

// TestRetriedCreateCommitsWhatOneRunWould: every create, run twice under
// Retrying, stores what a single run stores: the discarded attempt's
// defaults, timestamps and revision bumps do not carry over.
func TestRetriedCreateCommitsWhatOneRunWould(t *testing.T) {
	ctx := context.Background()
	type std = interface{ StandardAttrs() *model.Standard }
	// build creates one of each resource and returns them by name.
	build := func(t *testing.T, svc *service.Service) map[string]std {
		out := map[string]std{}
		keep := func(name string, v std, err error) {
			t.Helper()
			if err != nil {
				t.Fatalf("create %s: %v", name, err)
			}
			out[name] = v
		}
		n, err := svc.CreateNetwork(ctx, attrs(t, map[string]any{"name": "ext", "router:external": true}))
		keep("network", &n.Object, err)
		sn, err := svc.CreateSubnet(ctx, attrs(t, map[string]any{"network_id": n.Object.ID, "cidr": "10.0.0.0/24"}))
		keep("subnet", &sn.Object, err)
		p, err := svc.CreatePort(ctx, attrs(t, map[string]any{"network_id": n.Object.ID,
			"allowed_address_pairs": []map[string]string{{"ip_address": "10.0.9.9"}}}))
		keep("port", &p.Object, err)
		r, err := svc.CreateRouter(ctx, attrs(t, map[string]any{"name": "r",
			"external_gateway_info": map[string]any{"network_id": n.Object.ID}}))
		keep("router", &r.Object, err)
		g, err := svc.CreateSecurityGroup(ctx, attrs(t, map[string]any{"name": "g"}))
		keep("security group", &g.Object, err)
		rule, err := svc.CreateSecurityGroupRule(ctx, attrs(t, map[string]any{"security_group_id": g.Object.ID,
			"direction": "ingress", "protocol": "tcp"}))
		keep("security group rule", &model.Standard{RevisionNumber: rule.Object.RevisionNumber, CreatedAt: rule.Object.CreatedAt}, err)
		f, err := svc.CreateFloatingIP(ctx, attrs(t, map[string]any{"floating_network_id": n.Object.ID}))
		keep("floating IP", &f.Object, err)
		return out
	}
	once := build(t, newWorld(t, false).svc)
	w := newWorld(t, true)
	twice := build(t, w.svc)
	if w.retry.Attempts() < 2*len(twice) {
		t.Errorf("%d attempts for %d creates: the store did not retry", w.retry.Attempts(), len(twice))
	}
	for name, want := range once {
		got := twice[name].StandardAttrs()
		if got.RevisionNumber != want.StandardAttrs().RevisionNumber || got.CreatedAt != want.StandardAttrs().CreatedAt {
			t.Errorf("%s: retried create stored revision %d created %s, one run stores %d %s", name,
				got.RevisionNumber, got.CreatedAt, want.StandardAttrs().RevisionNumber, want.StandardAttrs().CreatedAt)
		}
	}
}

// TestRetriedPublishedPortResolvesTheAddressAgain: a published port names
// an internal port; its address is the port's address when the real
// attempt runs, not the one a discarded attempt saw.
func TestRetriedPublishedPortResolvesTheAddressAgain(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, true)
	lan := must[model.Network](t)(w.direct.CreateNetwork(ctx, attrs(t, map[string]any{
		"name": "lan", "nsnet:host_gateway": true, "nsnet:uplink": "up0"})))
	must[model.Subnet](t)(w.direct.CreateSubnet(ctx, attrs(t, map[string]any{
		"network_id": lan.ID, "cidr": "10.1.0.0/24", "enable_dhcp": false})))
	port := must[model.Port](t)(w.direct.CreatePort(ctx, attrs(t, map[string]any{"network_id": lan.ID,
		"fixed_ips": []map[string]string{{"ip_address": "10.1.0.10"}}})))
	w.retry.Between(func(context.Context) {
		if _, err := w.direct.UpdatePort(ctx, port.ID, attrs(t, map[string]any{
			"fixed_ips": []map[string]string{{"ip_address": "10.1.0.20"}}})); err != nil {
			t.Fatal(err)
		}
	})
	pp := must[model.PublishedPort](t)(w.svc.CreatePublishedPort(ctx, attrs(t, map[string]any{
		"protocol": "tcp", "host_port": 8080, "internal_port_id": port.ID, "internal_port": 80})))
	if pp.InternalIPAddress != "10.1.0.20" {
		t.Errorf("published port forwards to %s, the port's address is now 10.1.0.20", pp.InternalIPAddress)
	}
}
