package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/google/uuid"

	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/store"
)

// Trunks (Neutron's trunk and trunk-details extensions): a parent port
// whose link carries its subports' traffic VLAN-tagged. A port is the
// parent of at most one trunk or a subport of at most one, never both; a
// subport's device_owner is trunk:subport while it is one.

var trunkAttrs = append([]attr[model.Trunk]{
	stringAttr("name", true, true, func(t *model.Trunk) *string { return &t.Name }),
	{name: "description", post: true, put: true, set: func(t *model.Trunk, raw json.RawMessage) error {
		s, err := parseString(raw, maxDescriptionLen)
		t.Description = s
		return err
	}},
	{name: "port_id", post: true, required: true, set: func(t *model.Trunk, raw json.RawMessage) error {
		id, err := parseUUIDOrNull(raw)
		if err != nil {
			return err
		}
		if id == nil {
			return fmt.Errorf("'None' is not a valid UUID")
		}
		t.PortID = *id
		return nil
	}},
	boolAttr("admin_state_up", true, true, func(t *model.Trunk) *bool { return &t.AdminStateUp }),
	{name: "sub_ports", post: true, set: func(t *model.Trunk, raw json.RawMessage) error {
		subs, err := parseSubPorts(raw, true)
		t.SubPorts = subs
		return err
	}},
}, projectAttrs(func(t *model.Trunk) *string { return &t.ProjectID })...)

// vlanRange is the segmentation ids a vlan subport may take.
const minVLAN, maxVLAN = 1, 4094

// parseSubPorts is Neutron's type:subports validation of a list of
// subports, before any of them is looked up: each names a valid port id
// once, and, when adding (full), both its segmentation type and id, no
// two alike. remove_subports needs only the port ids.
func parseSubPorts(raw json.RawMessage, full bool) ([]model.SubPort, error) {
	if isNull(raw) {
		return []model.SubPort{}, nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, fmt.Errorf("Invalid data format for subports: '%s' is not a list", shown(raw))
	}
	out := make([]model.SubPort, 0, len(items))
	seen := map[string]bool{}
	type seg struct {
		typ string
		id  int
	}
	segs := map[seg]bool{}
	for _, item := range items {
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(item, &fields); err != nil || fields == nil {
			return nil, fmt.Errorf("Invalid data format for subport: '%s' is not a dict", shown(item))
		}
		var sp model.SubPort
		rawID, ok := fields["port_id"]
		if !ok {
			return nil, fmt.Errorf("A valid port UUID must be specified")
		}
		if err := json.Unmarshal(rawID, &sp.PortID); err != nil || uuid.Validate(sp.PortID) != nil || len(sp.PortID) != 36 {
			return nil, fmt.Errorf("Invalid UUID for subport: '%s'", shown(rawID))
		}
		if seen[sp.PortID] {
			return nil, fmt.Errorf("Non unique UUID for subport: '%s'", sp.PortID)
		}
		seen[sp.PortID] = true
		for name, v := range fields {
			switch name {
			case "port_id":
			case "segmentation_type":
				if err := json.Unmarshal(v, &sp.SegmentationType); err != nil {
					return nil, fmt.Errorf("Invalid segmentation_type '%s' for subport '%s'", shown(v), sp.PortID)
				}
			case "segmentation_id":
				n, err := parseInt(v)
				if err != nil {
					return nil, fmt.Errorf("Invalid segmentation_id '%s' for subport '%s': not an integer", shown(v), sp.PortID)
				}
				sp.SegmentationID = n
			default:
				return nil, fmt.Errorf("Unrecognized attribute '%s' of subport '%s'", name, sp.PortID)
			}
		}
		_, hasType := fields["segmentation_type"]
		_, hasID := fields["segmentation_id"]
		if full || len(fields) > 1 {
			if !hasType || !hasID || sp.SegmentationType == "" {
				return nil, fmt.Errorf("Invalid subport details '%s': missing segmentation information. Must specify both segmentation_id and segmentation_type", sp.PortID)
			}
			k := seg{sp.SegmentationType, sp.SegmentationID}
			if segs[k] {
				return nil, fmt.Errorf("Segmentation ID '%d' for '%s' is not unique", sp.SegmentationID, sp.PortID)
			}
			segs[k] = true
		}
		out = append(out, sp)
	}
	return out, nil
}

// checkSegmentation is the segmentation type's own validator. nsnet's
// networks have no provider segmentation a subport could inherit, so only
// vlan is a type it knows.
func checkSegmentation(sp model.SubPort) error {
	switch sp.SegmentationType {
	case "vlan":
		if sp.SegmentationID < minVLAN || sp.SegmentationID > maxVLAN {
			return invalidInput("Segmentation ID '%d' for '%s' is not a valid vlan id: it must be between %d and %d",
				sp.SegmentationID, sp.PortID, minVLAN, maxVLAN)
		}
		return nil
	default:
		return invalidInput("Unknown segmentation_type '%s'", sp.SegmentationType)
	}
}

func loadTrunk(ctx context.Context, r store.Reader, id string) (model.Trunk, error) {
	t, err := load(ctx, r, store.Trunks, "Trunk", id, func(t *model.Trunk) string { return t.ProjectID })
	if e := AsError(err); e != nil && e.Status == http.StatusNotFound {
		return t, typed(http.StatusNotFound, "TrunkNotFound", "Trunk %s could not be found.", id)
	}
	return t, err
}

// trunkOfPort finds the trunk port is the parent of (parent true) or a
// subport of (parent false); ok false when none.
func trunkOfPort(r store.Reader, port string) (t model.Trunk, parent, ok bool, err error) {
	all, err := store.List[model.Trunk](r, store.Trunks)
	if err != nil {
		return t, false, false, err
	}
	for _, t := range all {
		if t.PortID == port {
			return t, true, true, nil
		}
		for _, sp := range t.SubPorts {
			if sp.PortID == port {
				return t, false, true, nil
			}
		}
	}
	return model.Trunk{}, false, false, nil
}

// checkPortNotTrunked refuses to delete a trunk's parent or subport, as
// Neutron's trunk plugin does on port delete.
func checkPortNotTrunked(r store.Reader, port string) error {
	t, parent, ok, err := trunkOfPort(r, port)
	switch {
	case err != nil:
		return err
	case !ok:
		return nil
	case parent:
		return conflict("PortInUseAsTrunkParent", "Port %s is currently a parent port for trunk %s.", port, t.ID)
	default:
		return conflict("PortInUseAsSubPort", "Port %s is currently a subport for trunk %s.", port, t.ID)
	}
}

// portMTU is the MTU of a port: its network's.
func portMTU(r store.Reader, p *model.Port) (int, error) {
	n, err := store.Get[model.Network](r, store.Networks, p.NetworkID)
	if err != nil {
		return 0, fmt.Errorf("read network %s: %w", p.NetworkID, err)
	}
	return n.MTU, nil
}

// addSubPorts checks subs against trunk t (whose parent is parent) and
// makes each port a subport: Neutron's SubPortsValidator, then the
// subports' device_owner.
func (s *Service) addSubPorts(ctx context.Context, tx store.Txn, t *model.Trunk, subs []model.SubPort) error {
	if len(subs) == 0 {
		return nil
	}
	parent, err := loadPort(ctx, tx, t.PortID)
	if err != nil {
		return err
	}
	parentMTU, err := portMTU(tx, &parent)
	if err != nil {
		return err
	}
	for _, sp := range subs {
		if sp.PortID == t.PortID {
			return conflict("ParentPortInUse", "Port %s is currently in use and is not eligible for use as a parent port.", sp.PortID)
		}
		if err := checkSegmentation(sp); err != nil {
			return err
		}
		p, err := loadPort(ctx, tx, sp.PortID)
		if err != nil {
			return err
		}
		mtu, err := portMTU(tx, &p)
		if err != nil {
			return err
		}
		if mtu > parentMTU {
			return conflict("SubPortMtuGreaterThanTrunkPortMtu", "MTU %d of subport %s cannot be greater than MTU %d of trunk %s.",
				mtu, sp.PortID, parentMTU, t.ID)
		}
		if _, _, ok, err := trunkOfPort(tx, sp.PortID); err != nil {
			return err
		} else if ok {
			return conflict("TrunkPortInUse", "Port %s is in use by another trunk.", sp.PortID)
		}
		// A subport has no link of its own: its traffic is the parent's,
		// tagged. One plugged somewhere already cannot become one.
		if p.DeviceID != "" || p.DeviceOwner != "" {
			return conflict("PortInUse", "Unable to complete operation on port %s for network %s. Port already has an attached device %s.",
				p.ID, p.NetworkID, p.DeviceID)
		}
		for _, cur := range t.SubPorts {
			if cur.SegmentationType == sp.SegmentationType && cur.SegmentationID == sp.SegmentationID {
				return conflict("DuplicateSubPort", "segmentation_type %s and segmentation_id %d already in use on trunk %s.",
					sp.SegmentationType, sp.SegmentationID, t.ID)
			}
		}
		p.DeviceOwner = model.DeviceOwnerTrunkSubport
		p.Touch(s.now())
		if err := tx.Put(store.Ports, p.ID, p); err != nil {
			return err
		}
		t.SubPorts = append(t.SubPorts, sp)
	}
	return nil
}

// releaseSubPort gives a port that stops being a subport its device_owner
// back (none).
func (s *Service) releaseSubPort(tx store.Txn, id string) error {
	p, err := store.Get[model.Port](tx, store.Ports, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read subport %s: %w", id, err)
	}
	if p.DeviceOwner != model.DeviceOwnerTrunkSubport {
		return nil
	}
	p.DeviceOwner = ""
	p.Touch(s.now())
	return tx.Put(store.Ports, id, p)
}

func (s *Service) CreateTrunk(ctx context.Context, in Attrs) (Result[model.Trunk], error) {
	t := model.Trunk{ID: newID(), AdminStateUp: true, SubPorts: []model.SubPort{}}
	if err := mustCreate(ctx, "create_trunk"); err != nil {
		return Result[model.Trunk]{}, err
	}
	if err := decode(&t, trunkAttrs, in, opCreate); err != nil {
		return Result[model.Trunk]{}, err
	}
	subs, asked := t.SubPorts, t
	// The transaction may run more than once: each run starts over.
	rev, err := s.store.Update(ctx, func(tx store.Txn) error {
		t = asked
		t.SubPorts = []model.SubPort{}
		var err error
		if t.ProjectID, err = owner(ctx, "create_trunk", t.ProjectID); err != nil {
			return err
		}
		if _, err := loadPort(ctx, tx, t.PortID); err != nil {
			return err
		}
		if _, _, ok, err := trunkOfPort(tx, t.PortID); err != nil {
			return err
		} else if ok {
			return conflict("TrunkPortInUse", "Port %s is in use by another trunk.", t.PortID)
		}
		if err := s.addSubPorts(ctx, tx, &t, subs); err != nil {
			return err
		}
		t.Touch(s.now())
		return tx.Put(store.Trunks, t.ID, t)
	})
	if err != nil {
		return Result[model.Trunk]{}, err
	}
	got, err := s.GetTrunk(ctx, t.ID)
	return Result[model.Trunk]{got, rev}, err
}

func (s *Service) UpdateTrunk(ctx context.Context, id string, in Attrs) (Result[model.Trunk], error) {
	return s.changeTrunk(ctx, id, "update_trunk", false, func(_ store.Txn, t *model.Trunk) error {
		return decode(t, trunkAttrs, in, opUpdate)
	})
}

// AddSubPorts is PUT /v2.0/trunks/{id}/add_subports: {"sub_ports": […]}
// in, all added or none.
func (s *Service) AddSubPorts(ctx context.Context, id string, in Attrs) (Result[model.Trunk], error) {
	subs, err := subPortsOf(in, true)
	if err != nil {
		return Result[model.Trunk]{}, err
	}
	return s.changeTrunk(ctx, id, "add_subports", true, func(tx store.Txn, t *model.Trunk) error {
		return s.addSubPorts(ctx, tx, t, subs)
	})
}

// RemoveSubPorts is PUT /v2.0/trunks/{id}/remove_subports: the subports
// named by port_id leave the trunk; one that is not in it refuses all.
func (s *Service) RemoveSubPorts(ctx context.Context, id string, in Attrs) (Result[model.Trunk], error) {
	subs, err := subPortsOf(in, false)
	if err != nil {
		return Result[model.Trunk]{}, err
	}
	return s.changeTrunk(ctx, id, "remove_subports", true, func(tx store.Txn, t *model.Trunk) error {
		for _, sp := range subs {
			i := slices.IndexFunc(t.SubPorts, func(cur model.SubPort) bool { return cur.PortID == sp.PortID })
			if i < 0 {
				return typed(http.StatusNotFound, "SubPortNotFound", "SubPort on trunk %s with parent port %s could not be found.",
					t.ID, sp.PortID)
			}
			t.SubPorts = slices.Delete(t.SubPorts, i, i+1)
			if err := s.releaseSubPort(tx, sp.PortID); err != nil {
				return err
			}
		}
		return nil
	})
}

// subPortsOf reads the body of add_subports and remove_subports (full:
// with each subport's segmentation).
func subPortsOf(in Attrs, full bool) ([]model.SubPort, error) {
	for name := range in {
		if name != "sub_ports" {
			return nil, badRequest("Unrecognized attribute(s) '%s'", name)
		}
	}
	raw, ok := in["sub_ports"]
	if !ok {
		return nil, badRequest("Failed to parse request. Required attribute 'sub_ports' not specified")
	}
	subs, err := parseSubPorts(raw, full)
	if err != nil {
		return nil, badValue("sub_ports", err.Error())
	}
	return subs, nil
}

// changeTrunk changes trunk id in one transaction. Subport changes
// (subports true) are refused on a disabled trunk, as Neutron's
// TrunkDisabled has it.
func (s *Service) changeTrunk(ctx context.Context, id, action string, subports bool, change func(store.Txn, *model.Trunk) error) (Result[model.Trunk], error) {
	rev, err := s.store.Update(ctx, func(tx store.Txn) error {
		t, err := loadTrunk(ctx, tx, id)
		if err != nil {
			return err
		}
		if err := authorize(ctx, action, t.ProjectID); err != nil {
			return err
		}
		if subports && !t.AdminStateUp {
			return conflict("TrunkDisabled", "Trunk %s is currently disabled.", id)
		}
		if err := change(tx, &t); err != nil {
			return err
		}
		t.Touch(s.now())
		return tx.Put(store.Trunks, id, t)
	})
	if err != nil {
		return Result[model.Trunk]{}, err
	}
	t, err := s.GetTrunk(ctx, id)
	return Result[model.Trunk]{t, rev}, err
}

// DeleteTrunk deletes an enabled trunk whose parent no instance uses
// (Linux bridge cannot untrunk a bound port); its subports become plain
// ports again.
func (s *Service) DeleteTrunk(ctx context.Context, id string) (int64, error) {
	return s.store.Update(ctx, func(tx store.Txn) error {
		t, err := loadTrunk(ctx, tx, id)
		if err != nil {
			return err
		}
		if err := authorize(ctx, "delete_trunk", t.ProjectID); err != nil {
			return err
		}
		if !t.AdminStateUp {
			return conflict("TrunkDisabled", "Trunk %s is currently disabled.", id)
		}
		parent, err := store.Get[model.Port](tx, store.Ports, t.PortID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("read parent port %s: %w", t.PortID, err)
		}
		if err == nil && parent.DeviceID != "" {
			return conflict("TrunkInUse", "Trunk %s is currently in use.", id)
		}
		for _, sp := range t.SubPorts {
			if err := s.releaseSubPort(tx, sp.PortID); err != nil {
				return err
			}
		}
		return tx.Delete(store.Trunks, id)
	})
}

// GetSubPorts is GET /v2.0/trunks/{id}/get_subports.
func (s *Service) GetSubPorts(ctx context.Context, id string) ([]model.SubPort, error) {
	t, err := s.GetTrunk(ctx, id)
	return t.SubPorts, err
}

func (s *Service) GetTrunk(ctx context.Context, id string) (model.Trunk, error) {
	var t model.Trunk
	err := s.store.View(ctx, func(r store.Reader) error {
		var err error
		if t, err = loadTrunk(ctx, r, id); err != nil {
			return err
		}
		return s.renderTrunk(r, &t)
	})
	return t, err
}

func (s *Service) ListTrunks(ctx context.Context) ([]model.Trunk, error) {
	return listWhere(ctx, s.store, store.Trunks,
		func(_ store.Reader, t *model.Trunk) (bool, error) { return canSee(ctx, t.ProjectID), nil },
		s.renderTrunk)
}

// renderTrunk fills what is not stored: tenant_id and the status. A trunk
// is DOWN until its parent is plugged (ACTIVE); then it is what the
// agent made of its subports' interfaces.
func (s *Service) renderTrunk(r store.Reader, t *model.Trunk) error {
	t.TenantID = t.ProjectID
	if t.SubPorts == nil {
		t.SubPorts = []model.SubPort{}
	}
	t.Status = model.TrunkStatusDown
	parent, err := store.Get[model.Port](r, store.Ports, t.PortID)
	if errors.Is(err, store.ErrNotFound) {
		// Gone with a router or floating IP that owned it.
		return nil
	}
	if err != nil {
		return fmt.Errorf("read parent port %s: %w", t.PortID, err)
	}
	if st, _ := s.portStatus(&parent); st == model.StatusActive {
		t.Status, _ = s.statusOf(store.Trunks, t.ID, "")
	}
	return nil
}

// trunkDetails is the trunk_details of port p, nil when it is no trunk's
// parent.
func trunkDetails(r store.Reader, p *model.Port) (*model.TrunkDetails, error) {
	t, parent, ok, err := trunkOfPort(r, p.ID)
	if err != nil || !ok || !parent {
		return nil, err
	}
	d := &model.TrunkDetails{TrunkID: t.ID, SubPorts: []model.SubPortDetail{}}
	for _, sp := range t.SubPorts {
		sub, err := store.Get[model.Port](r, store.Ports, sp.PortID)
		if err != nil {
			return nil, fmt.Errorf("read subport %s: %w", sp.PortID, err)
		}
		d.SubPorts = append(d.SubPorts, model.SubPortDetail{SubPort: sp, MACAddress: sub.MACAddress})
	}
	return d, nil
}
