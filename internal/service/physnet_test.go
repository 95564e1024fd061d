package service_test

import (
	"context"
	"maps"
	"net/http"
	"testing"

	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/store"
	"github.com/nsnet/nsnet/internal/store/storetest"
)

// TestPhysicalInterfaceMappings: each host's --physical-interface-mappings
// is in its record and its Linux bridge agent's interface_mappings; once
// hosts map physical networks, a flat network must be on one of them, as
// ML2's flat type driver refuses a physical network outside flat_networks;
// nsnet:uplink networks are on their uplink's, as before.
func TestPhysicalInterfaceMappings(t *testing.T) {
	ctx := context.Background()
	st := storetest.Open(t, t.TempDir())
	c := newCluster(t, st,
		hostSpec{name: "n1", roles: network, vtep: "192.0.2.21", mappings: map[string]string{"public": "ext-a"}},
		hostSpec{name: "n2", roles: network, vtep: "192.0.2.22", mappings: map[string]string{"public": "ext-b", "lab": "eth5"}},
		hostSpec{name: "c", roles: compute, vtep: "192.0.2.11"})

	for host, want := range map[string]map[string]string{"n1": {"public": "ext-a"}, "n2": {"public": "ext-b", "lab": "eth5"}, "c": {}} {
		var h model.Host
		if err := st.View(ctx, func(r store.Reader) error {
			var err error
			h, err = store.Get[model.Host](r, store.Hosts, host)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if !maps.Equal(h.InterfaceMappings, want) {
			t.Errorf("host %s's record maps %v, want %v", host, h.InterfaceMappings, want)
		}
		got, ok := c.agentsOf(host)[model.AgentTypeLinuxBridge].Configurations["interface_mappings"].(map[string]string)
		if !ok || !maps.Equal(got, want) {
			t.Errorf("host %s's Linux bridge agent interface_mappings %v, want %v", host, got, want)
		}
	}

	for _, tc := range []struct {
		name string
		in   map[string]any
		err  string // the 400 InvalidInput message; "" created
	}{
		{"mapped on both network nodes", map[string]any{"provider:network_type": "flat", "provider:physical_network": "public"}, ""},
		{"mapped on one host", map[string]any{"provider:network_type": "flat", "provider:physical_network": "lab"}, ""},
		{"mapped nowhere", map[string]any{"provider:network_type": "flat", "provider:physical_network": "physnet9"},
			"Invalid input for operation: physical_network 'physnet9' unknown for flat provider network."},
		{"an uplink names its own", map[string]any{"router:external": true, "nsnet:uplink": "eth7"}, ""},
		{"vxlan", map[string]any{"provider:network_type": "vxlan"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := c.api.CreateNetwork(ctx, attrs(t, tc.in))
			if tc.err != "" {
				errorIs(t, err, http.StatusBadRequest, tc.err)
				return
			}
			if err != nil {
				t.Fatalf("create %v: %v", tc.in, err)
			}
			if pn, ok := tc.in["provider:physical_network"]; ok && r.Object.PhysicalNetwork.Get() != pn {
				t.Errorf("physical network %q, want %q", r.Object.PhysicalNetwork.Get(), pn)
			}
		})
	}
}

// TestFlatNetworksUnmapped: with no host mapping any physical network
// (one box, or hosts all cabled by nsnet:uplink), a flat network may be on
// any physical network, as ML2's default flat_networks '*' allows.
func TestFlatNetworksUnmapped(t *testing.T) {
	c := newCluster(t, storetest.Open(t, t.TempDir()), hostSpec{name: "n1", roles: network, vtep: "192.0.2.21"})
	if _, err := c.api.CreateNetwork(context.Background(), attrs(t, map[string]any{"provider:network_type": "flat", "provider:physical_network": "physnet9"})); err != nil {
		t.Fatal(err)
	}
}
