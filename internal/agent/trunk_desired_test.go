package agent

import (
	"strings"
	"testing"

	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/store"
)

// TestDesiredTrunks: a trunk is wired only where its parent is plugged
// into an instance, and a subport whose network's MTU exceeds the
// parent's is left unwired (the trunk DEGRADED) rather than failing the
// kernel's check.
func TestDesiredTrunks(t *testing.T) {
	const big = "9b6f2c11-0000-4000-8000-000000000009"
	parent := testPort("red", "eth0", "10.9.0.11", "fa:16:3e:00:00:11")
	sub := model.Port{ID: "port-sub", NetworkID: netID, AdminStateUp: true, MACAddress: "fa:16:3e:00:00:21", DeviceOwner: model.DeviceOwnerTrunkSubport}
	large := model.Port{ID: "port-large", NetworkID: big, AdminStateUp: true, MACAddress: "fa:16:3e:00:00:22", DeviceOwner: model.DeviceOwnerTrunkSubport}
	// A subport someone plugged into an instance of its own.
	plugged := testPort("green", "eth0", "10.9.0.12", "fa:16:3e:00:00:24")
	unplugged := model.Port{ID: "port-unplugged", NetworkID: netID, AdminStateUp: true, MACAddress: "fa:16:3e:00:00:23"}
	trunk := model.Trunk{ID: "trunk-1", PortID: parent.ID, SubPorts: []model.SubPort{
		{PortID: sub.ID, SegmentationType: "vlan", SegmentationID: 10},
		{PortID: large.ID, SegmentationType: "vlan", SegmentationID: 11},
		{PortID: plugged.ID, SegmentationType: "vlan", SegmentationID: 12},
	}}
	idle := model.Trunk{ID: "trunk-2", PortID: unplugged.ID}
	s := &snapshot{
		networks:  []model.Network{testNetwork(), {ID: big, AdminStateUp: true, MTU: 9000}},
		subnets:   []model.Subnet{testSubnet()},
		instances: []model.Instance{testInstance("red"), testInstance("green")},
		ports:     []model.Port{parent, sub, large, plugged, unplugged},
		trunks:    []model.Trunk{trunk, idle},
	}
	d := computeDesired(s, "p-", "h")
	spec, ok := d.trunks[trunk.ID]
	if !ok {
		t.Fatalf("trunk of a plugged parent not wanted: %+v", d.trunks)
	}
	if len(spec.VLANs) != 1 || spec.VLANs[0].Name != model.SubportName(sub.ID) || spec.VLANs[0].VID != 10 ||
		spec.VLANs[0].Parent != model.TapName(parent.ID) || spec.VLANs[0].Bridge != model.BridgeName(netID) {
		t.Errorf("VLANs = %+v", spec.VLANs)
	}
	if len(spec.Unwired) != 2 || !strings.Contains(spec.Unwired[0], "plugged") || !strings.Contains(spec.Unwired[1], "MTU 9000") {
		t.Errorf("unwired = %v", spec.Unwired)
	}
	if iface, _, _, _ := hostInterface(d, plugged.ID); iface != model.TapName(plugged.ID) {
		t.Errorf("a plugged subport's interface for the firewall is %s, not its tap", iface)
	}
	if _, ok := d.subports[large.ID]; ok {
		t.Error("an unwired subport has an interface for the firewall")
	}
	if iface, _, network, ok := hostInterface(d, sub.ID); !ok || iface != model.SubportName(sub.ID) || network != netID {
		t.Errorf("subport's host interface = %s %s %v", iface, network, ok)
	}
	if _, ok := d.trunks[idle.ID]; ok || d.fixed[key{store.Trunks, idle.ID}].Status != model.TrunkStatusDown {
		t.Errorf("trunk of an unplugged parent: wanted %v, status %v", ok, d.fixed[key{store.Trunks, idle.ID}])
	}
}
