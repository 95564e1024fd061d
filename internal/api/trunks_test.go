package api_test

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/nsnet/nsnet/internal/model"
)

// asType re-decodes a generic body into a typed value.
func asType(t *testing.T, v any, out any) {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		t.Fatal(err)
	}
}

// TestTrunkLifecycle walks neutron-tempest-plugin's trunk tests: create
// (shown as created), subports added and removed with their ports'
// device_owner following, trunk_details on the parent, and the ports in
// use refused deletion.
func TestTrunkLifecycle(t *testing.T) {
	h := newHarness(t)
	port := func() model.Port {
		net := h.create("networks", "network", map[string]any{})["id"].(string)
		var p model.Port
		asType(t, h.create("ports", "port", map[string]any{"network_id": net}), &p)
		return p
	}
	parent, sub1, sub2 := port(), port(), port()
	var tr model.Trunk
	asType(t, h.create("trunks", "trunk", map[string]any{"port_id": parent.ID, "description": "d",
		"sub_ports": []any{map[string]any{"port_id": sub1.ID, "segmentation_type": "vlan", "segmentation_id": 2}}}), &tr)
	want := []model.SubPort{{PortID: sub1.ID, SegmentationType: "vlan", SegmentationID: 2}}
	if !reflect.DeepEqual(tr.SubPorts, want) || !tr.AdminStateUp || tr.Status != model.TrunkStatusDown || tr.Description != "d" {
		t.Fatalf("created %+v", tr)
	}
	var shown model.Trunk
	asType(t, h.do("GET", "/v2.0/trunks/"+tr.ID, nil).body["trunk"], &shown)
	if !reflect.DeepEqual(shown, tr) {
		t.Errorf("shown %+v, created %+v", shown, tr)
	}
	var p model.Port
	asType(t, h.do("GET", "/v2.0/ports/"+sub1.ID, nil).body["port"], &p)
	if p.DeviceOwner != model.DeviceOwnerTrunkSubport {
		t.Errorf("subport device_owner %q", p.DeviceOwner)
	}
	asType(t, h.do("GET", "/v2.0/ports/"+parent.ID, nil).body["port"], &p)
	wantDetails := &model.TrunkDetails{TrunkID: tr.ID, SubPorts: []model.SubPortDetail{{SubPort: want[0], MACAddress: sub1.MACAddress}}}
	if !reflect.DeepEqual(p.TrunkDetails, wantDetails) {
		t.Errorf("trunk_details %+v, want %+v", p.TrunkDetails, wantDetails)
	}
	if r := h.do("GET", "/v2.0/ports/"+sub2.ID, nil); r.body["port"].(map[string]any)["trunk_details"] != nil {
		t.Errorf("a port of no trunk shows trunk_details")
	}

	r := h.do("PUT", "/v2.0/trunks/"+tr.ID+"/add_subports", map[string]any{"sub_ports": []any{
		map[string]any{"port_id": sub2.ID, "segmentation_type": "vlan", "segmentation_id": 4}}})
	var after model.Trunk
	asType(t, r.body, &after)
	want = append(want, model.SubPort{PortID: sub2.ID, SegmentationType: "vlan", SegmentationID: 4})
	if r.status != 200 || !reflect.DeepEqual(after.SubPorts, want) || after.RevisionNumber <= tr.RevisionNumber {
		t.Fatalf("add_subports: %d %+v", r.status, r.body)
	}
	r = h.do("GET", "/v2.0/trunks/"+tr.ID+"/get_subports", nil)
	var got struct {
		SubPorts []model.SubPort `json:"sub_ports"`
	}
	asType(t, r.body, &got)
	if !reflect.DeepEqual(got.SubPorts, want) {
		t.Errorf("get_subports %+v", got.SubPorts)
	}

	h.checkRefusals(t, []refusal{
		{"parent delete", "DELETE", "/v2.0/ports/" + parent.ID, nil, 409, "PortInUseAsTrunkParent", "parent port for trunk " + tr.ID},
		{"subport delete", "DELETE", "/v2.0/ports/" + sub1.ID, nil, 409, "PortInUseAsSubPort", "subport for trunk " + tr.ID},
		{"parent as subport", "PUT", "/v2.0/trunks/" + tr.ID + "/add_subports", map[string]any{"sub_ports": []any{
			map[string]any{"port_id": parent.ID, "segmentation_type": "vlan", "segmentation_id": 9}}}, 409, "ParentPortInUse", parent.ID},
		{"duplicate segmentation", "PUT", "/v2.0/trunks/" + tr.ID + "/add_subports", map[string]any{"sub_ports": []any{
			map[string]any{"port_id": port().ID, "segmentation_type": "vlan", "segmentation_id": 2}}}, 409, "DuplicateSubPort", "segmentation_id 2"},
		{"subport of another trunk", "POST", "/v2.0/trunks", map[string]any{"trunk": map[string]any{"port_id": port().ID,
			"sub_ports": []any{map[string]any{"port_id": sub1.ID, "segmentation_type": "vlan", "segmentation_id": 2}}}},
			409, "TrunkPortInUse", sub1.ID},
		{"second trunk on a parent", "POST", "/v2.0/trunks", map[string]any{"trunk": map[string]any{"port_id": parent.ID}},
			409, "TrunkPortInUse", parent.ID},
		{"vlan out of range", "PUT", "/v2.0/trunks/" + tr.ID + "/add_subports", map[string]any{"sub_ports": []any{
			map[string]any{"port_id": port().ID, "segmentation_type": "vlan", "segmentation_id": 4095}}}, 400, "InvalidInput", "4095"},
		{"passing a dict", "PUT", "/v2.0/trunks/" + tr.ID + "/add_subports", map[string]any{"sub_ports": map[string]any{
			"port_id": sub2.ID, "segmentation_type": "vlan", "segmentation_id": 9}}, 400, "HTTPBadRequest", "is not a list"},
		{"missing segmentation id", "POST", "/v2.0/trunks", map[string]any{"trunk": map[string]any{"port_id": parent.ID,
			"sub_ports": []any{map[string]any{"port_id": sub2.ID, "segmentation_type": "vlan"}}}}, 400, "HTTPBadRequest", "missing segmentation"},
		{"duplicate ids in request", "POST", "/v2.0/trunks", map[string]any{"trunk": map[string]any{"port_id": sub2.ID,
			"sub_ports": []any{map[string]any{"port_id": port().ID, "segmentation_type": "vlan", "segmentation_id": 7},
				map[string]any{"port_id": port().ID, "segmentation_type": "vlan", "segmentation_id": 7}}}}, 400, "HTTPBadRequest", "not unique"},
		{"nonexistent parent", "POST", "/v2.0/trunks", map[string]any{"trunk": map[string]any{"port_id": "6e3a3c8e-0d0e-4c33-9a50-2a4f3a3f6b10"}},
			404, "PortNotFound", ""},
		{"remove not there", "PUT", "/v2.0/trunks/" + tr.ID + "/remove_subports", map[string]any{"sub_ports": []any{
			map[string]any{"port_id": parent.ID}}}, 404, "SubPortNotFound", ""},
	})

	r = h.do("PUT", "/v2.0/trunks/"+tr.ID+"/remove_subports", map[string]any{"sub_ports": []any{map[string]any{"port_id": sub2.ID}}})
	asType(t, r.body, &after)
	if r.status != 200 || !reflect.DeepEqual(after.SubPorts, want[:1]) {
		t.Fatalf("remove_subports: %d %+v", r.status, r.body)
	}
	asType(t, h.do("GET", "/v2.0/ports/"+sub2.ID, nil).body["port"], &p)
	if p.DeviceOwner != "" {
		t.Errorf("removed subport keeps device_owner %q", p.DeviceOwner)
	}

	// A disabled trunk takes no subport changes and cannot be deleted.
	if r := h.do("PUT", "/v2.0/trunks/"+tr.ID, map[string]any{"trunk": map[string]any{"admin_state_up": false, "name": "foo"}}); r.status != 200 {
		t.Fatalf("disable: %d %v", r.status, r.body)
	}
	h.checkRefusals(t, []refusal{
		{"add to disabled", "PUT", "/v2.0/trunks/" + tr.ID + "/add_subports", map[string]any{"sub_ports": []any{
			map[string]any{"port_id": sub2.ID, "segmentation_type": "vlan", "segmentation_id": 4}}}, 409, "TrunkDisabled", tr.ID},
		{"delete disabled", "DELETE", "/v2.0/trunks/" + tr.ID, nil, 409, "TrunkDisabled", tr.ID},
	})
	h.do("PUT", "/v2.0/trunks/"+tr.ID, map[string]any{"trunk": map[string]any{"admin_state_up": true}})
	if r := h.do("DELETE", "/v2.0/trunks/"+tr.ID, nil); r.status != 204 {
		t.Fatalf("delete: %d %v", r.status, r.body)
	}
	asType(t, h.do("GET", "/v2.0/ports/"+sub1.ID, nil).body["port"], &p)
	if p.DeviceOwner != "" {
		t.Errorf("subport of a deleted trunk keeps device_owner %q", p.DeviceOwner)
	}
	for _, id := range []string{parent.ID, sub1.ID, sub2.ID} {
		if r := h.do("DELETE", "/v2.0/ports/"+id, nil); r.status != 204 {
			t.Errorf("delete port %s after its trunk: %d %v", id, r.status, r.body)
		}
	}
}

// TestTrunkSubportMTU is Neutron's SubPortMtuGreaterThanTrunkPortMtu: a
// subport's network MTU may not exceed the parent's.
func TestTrunkSubportMTU(t *testing.T) {
	h := newHarness(t)
	small := h.create("networks", "network", map[string]any{"mtu": 1400})["id"].(string)
	large := h.create("networks", "network", map[string]any{"mtu": 1500})["id"].(string)
	smallPort := h.create("ports", "port", map[string]any{"network_id": small})["id"].(string)
	largePort := h.create("ports", "port", map[string]any{"network_id": large})["id"].(string)
	h.checkRefusals(t, []refusal{{"larger subport", "POST", "/v2.0/trunks", map[string]any{"trunk": map[string]any{"port_id": smallPort,
		"sub_ports": []any{map[string]any{"port_id": largePort, "segmentation_type": "vlan", "segmentation_id": 2}}}},
		409, "SubPortMtuGreaterThanTrunkPortMtu", "MTU 1500 of subport " + largePort}})
	h.create("trunks", "trunk", map[string]any{"port_id": largePort,
		"sub_ports": []any{map[string]any{"port_id": smallPort, "segmentation_type": "vlan", "segmentation_id": 2}}})
}

// TestTrunkOfAGoneParent: a trunk's parent that went with its router
// (remove_router_interface deletes the interface's port) leaves a trunk
// that still shows, DOWN, and can be deleted.
func TestTrunkOfAGoneParent(t *testing.T) {
	h := newHarness(t)
	net := h.create("networks", "network", map[string]any{})["id"].(string)
	h.create("subnets", "subnet", map[string]any{"network_id": net, "cidr": "10.0.0.0/24", "ip_version": 4})
	port := h.create("ports", "port", map[string]any{"network_id": net})["id"].(string)
	trunk := h.create("trunks", "trunk", map[string]any{"port_id": port})["id"].(string)
	router := h.create("routers", "router", map[string]any{})["id"].(string)
	if r := h.do("PUT", "/v2.0/routers/"+router+"/add_router_interface", map[string]any{"port_id": port}); r.status != 200 {
		t.Skipf("a trunk parent cannot become a router interface: %d %v", r.status, r.body)
	}
	if r := h.do("PUT", "/v2.0/routers/"+router+"/remove_router_interface", map[string]any{"port_id": port}); r.status != 200 {
		t.Fatalf("remove_router_interface: %d %v", r.status, r.body)
	}
	r := h.do("GET", "/v2.0/trunks/"+trunk, nil)
	var tr model.Trunk
	asType(t, r.body["trunk"], &tr)
	if r.status != 200 || tr.Status != model.TrunkStatusDown {
		t.Fatalf("trunk of a gone parent: %d %v", r.status, r.body)
	}
	if r := h.do("DELETE", "/v2.0/trunks/"+trunk, nil); r.status != 204 {
		t.Fatalf("delete: %d %v", r.status, r.body)
	}
}
