package service_test

import (
	"context"
	"testing"

	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/store/storetest"
)

// TestSubportBoundToParentHost: a trunk's subport is bound where its
// parent is — Neutron's trunk plugin sets the subports' binding:host_id
// when the parent binds, and nsnet's agent wires them there — whatever
// the subport's own field says, in a port's GET and in a list; once out
// of the trunk it is bound by its own field again.
func TestSubportBoundToParentHost(t *testing.T) {
	for _, tc := range []struct {
		name   string
		parent func(c *cluster, net string) map[string]any // the parent port's attributes
		own    string                                      // the subport's own binding:host_id
		want   string
		vif    string
	}{
		{name: "an instance's port", parent: func(c *cluster, net string) map[string]any {
			in, err := c.instance("vm", "b")
			if err != nil {
				c.t.Fatal(err)
			}
			return map[string]any{"network_id": net, "device_id": in.ID, "device_owner": model.DeviceOwnerCompute}
		}, want: "b", vif: "bridge"},
		{name: "a port an admin bound", parent: func(c *cluster, net string) map[string]any {
			return map[string]any{"network_id": net, "binding:host_id": "a"}
		}, own: "b", want: "a", vif: "bridge"},
		{name: "an unbound parent", parent: func(c *cluster, net string) map[string]any {
			return map[string]any{"network_id": net}
		}, own: "b", want: "", vif: "unbound"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			c := newCluster(t, storetest.Open(t, t.TempDir()), hostSpec{name: "a", roles: compute}, hostSpec{name: "b", roles: compute})
			c.settle()
			net, subnet := c.network("10.0.0.0/24"), c.network("10.0.1.0/24")
			parent := must[model.Port](t)(c.api.CreatePort(ctx, attrs(t, tc.parent(c, net))))
			sub := map[string]any{"network_id": subnet}
			if tc.own != "" {
				sub["binding:host_id"] = tc.own
			}
			subport := must[model.Port](t)(c.api.CreatePort(ctx, attrs(t, sub)))
			trunk := must[model.Trunk](t)(c.api.CreateTrunk(ctx, attrs(t, map[string]any{"port_id": parent.ID,
				"sub_ports": []map[string]any{{"port_id": subport.ID, "segmentation_type": "vlan", "segmentation_id": 10}}})))

			check := func(want, vif string) {
				t.Helper()
				got, err := c.api.GetPort(ctx, subport.ID)
				if err != nil {
					t.Fatal(err)
				}
				if got.HostID == nil || *got.HostID != want || got.VIFType != vif {
					t.Errorf("GET: subport bound to %v (%s), want %q (%s)", deref(got.HostID), got.VIFType, want, vif)
				}
				all, err := c.api.ListPorts(ctx)
				if err != nil {
					t.Fatal(err)
				}
				for _, p := range all {
					if p.ID == subport.ID && (p.HostID == nil || *p.HostID != want || p.VIFType != vif) {
						t.Errorf("list: subport bound to %v (%s), want %q (%s)", deref(p.HostID), p.VIFType, want, vif)
					}
				}
			}
			check(tc.want, tc.vif)

			if _, err := c.api.RemoveSubPorts(ctx, trunk.ID, attrs(t, map[string]any{"sub_ports": []map[string]any{{"port_id": subport.ID}}})); err != nil {
				t.Fatal(err)
			}
			own, vif := tc.own, "bridge"
			if own == "" {
				vif = "unbound"
			}
			check(own, vif)
		})
	}
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}
