package agent

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/nsnet/nsnet/internal/dataplane"
	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/store"
)

// TestReconcilerSame checks each kind's same: a spec is the same as an
// equal one, and never the same as nothing (an object not programmed yet)
// or another kind's spec.
func TestReconcilerSame(t *testing.T) {
	specs := map[store.Kind]any{
		store.Networks:  networkSpec{Bridge: dataplane.BridgeSpec{Name: "nsb-1"}, Gateway: []netip.Prefix{netip.MustParsePrefix("10.0.0.1/24")}},
		overlayKind:     overlaySpec{VXLAN: dataplane.VXLANSpec{Name: "nsv-1"}},
		store.Ports:     portSpec{NetworkID: "n", Veth: dataplane.PortSpec{TapName: "tap1", MAC: []byte{2, 0, 0, 0, 0, 1}}},
		store.Instances: instanceSpec{Name: "vm", Netns: "ns-vm"},
		store.Trunks:    trunkSpec{ParentID: "p", VLANs: []dataplane.VLANSpec{{Name: "spt1", VID: 10}}},
		store.Routers:   routerSpec{Netns: "qrouter-1", FloatingIPs: []string{"f"}},
		dhcpKind:        dhcpSpec{Netns: "qdhcp-1", PortID: "p"},
	}
	for kind, spec := range specs {
		r, ok := reconcilerOf[kind]
		if !ok {
			t.Fatalf("no reconciler of kind %s", kind)
		}
		if !r.same(spec, spec) {
			t.Errorf("%s: a spec differs from itself", kind)
		}
		if r.same(nil, spec) || r.same(spec, nil) {
			t.Errorf("%s: a spec is the same as none", kind)
		}
		for other, o := range specs {
			if other != kind && r.same(o, spec) {
				t.Errorf("%s: a %s spec is the same as one of its own", kind, other)
			}
		}
	}
}

// TestReconcilerOrder checks the registry's order against what the pass
// relies on: ensure runs it forwards, deletion backwards.
func TestReconcilerOrder(t *testing.T) {
	at := map[store.Kind]int{}
	for i, r := range reconcilers {
		at[r.kind()] = i
	}
	for _, c := range []struct {
		before, after store.Kind
		why           string
	}{
		{hostNATKind, store.Networks, "a host-gateway network's status follows the host NAT"},
		{store.Networks, overlayKind, "a VXLAN device is a port of its network's bridge"},
		{store.Networks, store.Ports, "a veth is a port of its network's bridge"},
		{store.Ports, store.Instances, "an instance's namespace is deleted before its veths"},
		{store.Ports, store.Routers, "a router's namespace is deleted before its veths"},
		{store.Ports, dhcpKind, "a DHCP namespace is deleted before its veth"},
		{store.Instances, store.Trunks, "a trunk's parent is an instance's port"},
		{subportKind, store.Trunks, "a trunk's interfaces are deleted before the leftovers of subports"},
		{metadataKind, store.Routers, "routers' listeners answer from the metadata directory"},
		{metadataKind, dhcpKind, "DHCP namespaces' listeners answer from the metadata directory"},
		{store.Routers, firewallKind, "the firewall filters routers' ports"},
		{store.Instances, firewallKind, "the firewall filters instances' ports"},
		{store.Routers, metadata6Kind, "IPv6 metadata listens on routers' ports"},
		{dhcpKind, metadata6Kind, "IPv6 metadata listens on DHCP ports"},
	} {
		b, okb := at[c.before]
		a, oka := at[c.after]
		if !okb || !oka {
			t.Errorf("%s or %s is not in the registry", c.before, c.after)
			continue
		}
		if b >= a {
			t.Errorf("%s comes after %s: %s", c.before, c.after, c.why)
		}
	}
	kinds := make([]store.Kind, len(reconcilers))
	for i, r := range reconcilers {
		kinds[i] = r.kind()
	}
	slices.Sort(kinds)
	if len(slices.Compact(kinds)) != len(reconcilers) {
		t.Errorf("two reconcilers share a kind: %v", kinds)
	}
}

// TestPartErrorsShowAsNetwork: a network's DHCP namespace and VXLAN device
// have no resource of their own in the API; one in ERROR is its network's
// error in the health's errors, named as the network, once however many
// of its parts fail.
func TestPartErrorsShowAsNetwork(t *testing.T) {
	errored := status{model.StatusError, "broken"}
	for _, c := range []struct {
		name  string
		parts []store.Kind
	}{
		{"dhcp", []store.Kind{dhcpKind}},
		{"vxlan", []store.Kind{overlayKind}},
		{"both", []store.Kind{dhcpKind, overlayKind}},
	} {
		t.Run(c.name, func(t *testing.T) {
			net := key{store.Networks, "n1"}
			a := &Agent{
				statuses: map[key]status{},
				counts:   map[statusCountKey]int{},
				errored:  map[key]bool{},
				names:    map[key]string{net: "blue"},
			}
			a.setStatusLocked(net, &status{Status: model.StatusActive})
			for _, kind := range c.parts {
				k := key{kind, "n1"}
				a.setStatusLocked(k, &errored)
				a.markErrorLocked(k, errored)
			}
			want := []ObjectError{{Type: "network", ID: "n1", Name: "blue", Reason: "broken"}}
			if got := a.objectErrorsLocked(); !slices.Equal(got, want) {
				t.Errorf("errors = %+v, want %+v", got, want)
			}
			counts := a.StatusCounts()
			if len(counts) != 1 || counts[0] != (StatusCount{Kind: "network", Status: model.StatusError, Count: 1}) {
				t.Errorf("status counts = %+v, want one network in ERROR", counts)
			}
		})
	}
}

// TestReported: the agent publishes the statuses of the kinds the API
// shows, and folds the parts' into their wholes'.
func TestReported(t *testing.T) {
	for kind, want := range map[store.Kind]bool{
		store.Networks: true, store.Ports: true, store.Instances: true,
		store.Routers: true, store.FloatingIPs: true, store.Trunks: true,
		dhcpKind: false, overlayKind: false, store.Subnets: false,
	} {
		if got := reported(kind); got != want {
			t.Errorf("reported(%s) = %v, want %v", kind, got, want)
		}
	}
}
