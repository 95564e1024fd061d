package service

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/store"
)

// The provider extension (Neutron's provider:* attributes of networks),
// as ML2 with the flat, local and vxlan type drivers answers it:
//
//   - a network created without them is a tenant network: vxlan, with the
//     lowest VNI of the configured ranges (ML2's vni_ranges) that no other
//     vxlan network has, allocated inside the create transaction so that
//     two creates can never take one VNI (the transaction is a pure
//     function of its snapshot, and a conflicting commit retries it);
//     a network created with nsnet:uplink is flat, on the physical network
//     named after its uplink (on one host the uplink is the interface the
//     physical network maps to);
//   - an admin may choose: vxlan with or without a segmentation_id (any
//     VNI, in the ranges or not, that no other network has: 409
//     TunnelIdInUse), flat with a physical_network no other flat network
//     is on (409 FlatNetworkInUse), or local; vlan, gre and geneve are
//     refused as types ML2 has no driver for (this kernel has no 802.1Q
//     devices, GRE or Geneve);
//   - they are admin-only to set and to see, as Neutron's policy says
//     (create_network:provider:*, get_network:provider:*);
//   - they cannot be changed once the network exists (ML2 without a
//     mechanism driver that supports it).
const (
	attrNetworkType     = "provider:network_type"
	attrPhysicalNetwork = "provider:physical_network"
	attrSegmentationID  = "provider:segmentation_id"

	maxNetworkTypeLen     = 32
	maxPhysicalNetworkLen = 64
)

var providerAttrs = []string{attrNetworkType, attrPhysicalNetwork, attrSegmentationID}

// DefaultVNIRanges are the VNIs of tenant networks when no range is
// configured: devstack's vni_ranges for ML2.
var DefaultVNIRanges = []model.VNIRange{{Min: 1, Max: 1000}}

// providerRequest is the provider attributes of a request body; null
// counts as not given, as Neutron's is_attr_set has it. A value of the
// wrong JSON type is a plain error, which decode (through providerJSON)
// words as Neutron does, before parseProvider is called for the request.
type providerRequest struct {
	given                        bool
	networkType, physicalNetwork *string
	segmentationID               *int
}

func parseProvider(in Attrs) (providerRequest, error) {
	var req providerRequest
	for _, name := range providerAttrs {
		raw, ok := in[name]
		if !ok || isNull(raw) {
			continue
		}
		req.given = true
		switch name {
		case attrNetworkType, attrPhysicalNetwork:
			max := maxNetworkTypeLen
			if name == attrPhysicalNetwork {
				max = maxPhysicalNetworkLen
			}
			v, err := parseString(raw, max)
			if err != nil {
				return req, err
			}
			if name == attrNetworkType {
				req.networkType = &v
			} else {
				req.physicalNetwork = &v
			}
		case attrSegmentationID:
			v, err := parseInt(raw)
			if err != nil {
				return req, err
			}
			req.segmentationID = &v
		}
	}
	return req, nil
}

// providerGiven names the first provider attribute of in, for the
// policy's refusal of a non-admin.
func providerGiven(in Attrs) (string, bool) {
	for _, name := range providerAttrs {
		if _, ok := in[name]; ok {
			return name, true
		}
	}
	return "", false
}

// validate checks an admin's segment as ML2's type drivers do, before
// anything is read: what each type needs and what it prohibits.
func (req providerRequest) validate() (model.Segment, error) {
	if req.networkType == nil {
		return model.Segment{}, invalidInput("network_type required")
	}
	seg := model.Segment{NetworkType: *req.networkType}
	if req.physicalNetwork != nil {
		seg.PhysicalNetwork = *req.physicalNetwork
	}
	if req.segmentationID != nil {
		seg.SegmentationID = *req.segmentationID
	}
	switch seg.NetworkType {
	case model.NetworkTypeVXLAN:
		if seg.PhysicalNetwork != "" {
			return seg, invalidInput("provider:physical_network specified for %s network", seg.NetworkType)
		}
		if req.segmentationID != nil && (seg.SegmentationID < model.MinVNI || seg.SegmentationID > model.MaxVNI) {
			return seg, invalidInput("segmentation_id out of range (%d through %d)", model.MinVNI, model.MaxVNI)
		}
	case model.NetworkTypeFlat:
		if seg.PhysicalNetwork == "" {
			return seg, invalidInput("physical_network required for flat provider network")
		}
		if req.segmentationID != nil {
			return seg, invalidInput("%s prohibited for flat provider network", "segmentation_id")
		}
	case model.NetworkTypeLocal:
		switch {
		case seg.PhysicalNetwork != "":
			return seg, invalidInput("%s prohibited for local provider network", "physical_network")
		case req.segmentationID != nil:
			return seg, invalidInput("%s prohibited for local provider network", "segmentation_id")
		}
	default:
		return seg, invalidInput("network_type value '%s' not supported", seg.NetworkType)
	}
	return seg, nil
}

// segmentFor decides the segment of network n being created in tx:
// the admin's (checked against the other networks), or the default one.
func (s *Service) segmentFor(tx store.Reader, n *model.Network, req providerRequest) (model.Segment, error) {
	all, err := store.List[model.Network](tx, store.Networks)
	if err != nil {
		return model.Segment{}, err
	}
	if req.given {
		seg, err := req.validate()
		if err != nil {
			return seg, err
		}
		if seg.NetworkType == model.NetworkTypeVXLAN && req.segmentationID == nil {
			return s.allocateVNI(all, n.ID)
		}
		if seg.NetworkType == model.NetworkTypeFlat && n.Uplink == nil {
			if err := checkPhysicalNetworkMapped(tx, seg.PhysicalNetwork); err != nil {
				return seg, err
			}
		}
		return seg, checkSegmentFree(all, n.ID, seg)
	}
	return s.defaultSegment(all, n)
}

// defaultSegment is the segment of a network no admin chose one for:
// flat on its uplink's physical network, or vxlan with the lowest free
// VNI of the ranges (503 NoNetworkAvailable when none is left).
func (s *Service) defaultSegment(all []model.Network, n *model.Network) (model.Segment, error) {
	if n.Uplink != nil {
		seg := model.Segment{NetworkType: model.NetworkTypeFlat, PhysicalNetwork: *n.Uplink}
		// An uplink has one network (checkHostAttrs), so its physical
		// network is free unless an admin named one after it.
		if checkSegmentFree(all, n.ID, seg) == nil {
			return seg, nil
		}
		return model.Segment{NetworkType: model.NetworkTypeLocal}, nil
	}
	return s.allocateVNI(all, n.ID)
}

// allocateVNI takes the lowest VNI of the ranges that no network but id
// has: the lowest, so that the choice is a function of the snapshot.
func (s *Service) allocateVNI(all []model.Network, id string) (model.Segment, error) {
	used := map[int]bool{}
	for _, o := range all {
		if o.ID != id && o.NetworkType.Get() == model.NetworkTypeVXLAN {
			used[o.SegmentationID.Get()] = true
		}
	}
	for _, r := range s.vniRanges {
		for vni := r.Min; vni <= r.Max; vni++ {
			if !used[vni] {
				return model.Segment{NetworkType: model.NetworkTypeVXLAN, SegmentationID: vni}, nil
			}
		}
	}
	return model.Segment{}, typed(http.StatusServiceUnavailable, "NoNetworkAvailable",
		"Unable to create the network. No tenant network is available for allocation.")
}

// checkPhysicalNetworkMapped refuses a flat network on a physical network
// no host maps to an interface (--physical-interface-mappings), once any
// host maps one: the physical networks the hosts map are nsnet's
// flat_networks, and ML2's flat type driver refuses one outside them with
// 400 InvalidInput. With none mapped anywhere any name goes, as with
// ML2's default flat_networks '*' — one box, or hosts whose external
// networks name their interface by nsnet:uplink.
func checkPhysicalNetworkMapped(r store.Reader, physnet string) error {
	hosts, err := store.List[model.Host](r, store.Hosts)
	if err != nil {
		return fmt.Errorf("read hosts: %w", err)
	}
	mapped := false
	for _, h := range hosts {
		if _, ok := h.InterfaceMappings[physnet]; ok {
			return nil
		}
		mapped = mapped || len(h.InterfaceMappings) > 0
	}
	if mapped {
		return invalidInput("physical_network '%s' unknown for flat provider network", physnet)
	}
	return nil
}

// checkSegmentFree refuses a segment another network has: a VNI is one
// network's, and so is a flat physical network.
func checkSegmentFree(all []model.Network, id string, seg model.Segment) error {
	for _, o := range all {
		if o.ID == id || o.NetworkType.Get() != seg.NetworkType {
			continue
		}
		switch seg.NetworkType {
		case model.NetworkTypeVXLAN:
			if o.SegmentationID.Get() == seg.SegmentationID {
				return conflict("TunnelIdInUse", "Unable to create the network. The tunnel ID %d is in use.", seg.SegmentationID)
			}
		case model.NetworkTypeFlat:
			if o.PhysicalNetwork.Get() == seg.PhysicalNetwork {
				return conflict("FlatNetworkInUse", "Unable to create the flat network. Physical network %s is in use.", seg.PhysicalNetwork)
			}
		}
	}
	return nil
}

// checkProviderUpdate refuses a change of the provider attributes, as ML2
// does: one equal to the network's is no change.
func checkProviderUpdate(n *model.Network, req providerRequest) error {
	if !req.given {
		return nil
	}
	cur := n.Segment()
	same := (req.networkType == nil || *req.networkType == cur.NetworkType) &&
		(req.physicalNetwork == nil || *req.physicalNetwork == cur.PhysicalNetwork) &&
		(req.segmentationID == nil || *req.segmentationID == cur.SegmentationID)
	if !same {
		return invalidInput("Plugin does not support updating provider attributes")
	}
	return nil
}

// maxNetworkMTU is the largest MTU of a network of type networkType:
// the physical network's, less the VXLAN encapsulation on a tunnel
// once tunnels carry it (see Config.TunnelOverhead).
func (s *Service) maxNetworkMTU(networkType string) int {
	if networkType == model.NetworkTypeVXLAN {
		return s.physnetMTU - s.tunnelOverhead
	}
	return s.physnetMTU
}

// AssignSegments gives every network without provider attributes its
// default segment: networks of a store written before nsnet had the
// provider extension. The daemon runs it at start, before the API serves,
// so no request ever sees a network without a type.
//
// It writes store.SplitWrites networks per transaction, so that a store
// of many old networks fits etcd's bound on a transaction
// (--max-txn-ops). Each batch is a pure function of its snapshot: it
// reads every network, takes the first old ones in id order and gives
// them segments no network of the snapshot has, so a batch run again by
// etcd, or a start after a crash between batches, carries on where the
// last commit stopped, and changes nothing once none is left.
func (s *Service) AssignSegments(ctx context.Context) (int, error) {
	var total int
	for {
		var assigned int
		_, err := s.store.Update(ctx, func(tx store.Txn) error {
			assigned = 0
			all, err := store.List[model.Network](tx, store.Networks)
			if err != nil {
				return err
			}
			for _, n := range all {
				if n.NetworkType.Get() != "" {
					continue
				}
				if assigned == store.SplitWrites {
					break
				}
				// all is updated as segments are taken, so that two old
				// networks never get one VNI.
				seg, err := s.defaultSegment(all, &n)
				if err != nil {
					return fmt.Errorf("network %s: %w", n.ID, err)
				}
				n.SetSegment(seg)
				for i := range all {
					if all[i].ID == n.ID {
						all[i] = n
					}
				}
				if err := tx.Put(store.Networks, n.ID, n); err != nil {
					return err
				}
				assigned++
			}
			return nil
		})
		total += assigned
		if err != nil || assigned < store.SplitWrites {
			return total, err
		}
	}
}

// providerJSON is a provider attribute in the network's attribute table:
// decode checks its JSON type (Neutron's "Invalid input for … Reason: …")
// and applies nothing; parseProvider reads the values, which only make
// sense together and against the other networks.
func providerJSON(name string) attr[model.Network] {
	return attr[model.Network]{name: name, post: true, put: true, set: func(_ *model.Network, raw json.RawMessage) error {
		_, err := parseProvider(Attrs{name: raw})
		return err
	}}
}
