package service

import (
	"context"
	"fmt"
	"math/big"
	"net/http"
	"net/netip"
	"slices"

	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/store"
)

// Network IP availability (Neutron's network-ip-availability): per network
// and per subnet, the addresses of the allocation pools (the subnet's CIDR
// when it has no pools) and the addresses ports hold, counted as Neutron
// counts them — every fixed IP on the subnet, in a pool or not. Only an
// admin sees them: Neutron's policy filters them out of a member's list and
// answers a member's show as if the network did not exist.

// IPAvailabilityFilter narrows a list as Neutron's filters do: each field,
// when not empty, keeps the networks (or, for IPVersions, the subnets) that
// have one of its values. A network none of whose subnets passes IPVersions
// is left out.
type IPAvailabilityFilter struct {
	NetworkIDs, NetworkNames, ProjectIDs []string
	IPVersions                           []int
}

// ListNetworkIPAvailabilities lists the IP availability of the networks
// that pass f, for an admin; anyone else gets an empty list.
func (s *Service) ListNetworkIPAvailabilities(ctx context.Context, f IPAvailabilityFilter) ([]model.NetworkIPAvailability, error) {
	out := []model.NetworkIPAvailability{}
	if !caller(ctx).IsAdmin() {
		return out, nil
	}
	err := s.store.View(ctx, func(r store.Reader) error {
		var err error
		out, err = ipAvailabilities(r, f)
		return err
	})
	return out, err
}

// GetNetworkIPAvailability is one network's IP availability.
func (s *Service) GetNetworkIPAvailability(ctx context.Context, id string) (model.NetworkIPAvailability, error) {
	if !caller(ctx).IsAdmin() {
		return model.NetworkIPAvailability{}, typed(http.StatusNotFound, "HTTPNotFound", "The resource could not be found.")
	}
	var out []model.NetworkIPAvailability
	err := s.store.View(ctx, func(r store.Reader) error {
		var err error
		out, err = ipAvailabilities(r, IPAvailabilityFilter{NetworkIDs: []string{id}})
		return err
	})
	if err != nil {
		return model.NetworkIPAvailability{}, err
	}
	if len(out) == 0 {
		return model.NetworkIPAvailability{}, notFound("Network", id)
	}
	return out[0], nil
}

func ipAvailabilities(r store.Reader, f IPAvailabilityFilter) ([]model.NetworkIPAvailability, error) {
	networks, err := store.List[model.Network](r, store.Networks)
	if err != nil {
		return nil, err
	}
	subnets, err := store.List[model.Subnet](r, store.Subnets)
	if err != nil {
		return nil, err
	}
	bySubnetNetwork := map[string][]model.Subnet{}
	for _, sn := range subnets {
		if len(f.IPVersions) == 0 || slices.Contains(f.IPVersions, sn.IPVersion) {
			bySubnetNetwork[sn.NetworkID] = append(bySubnetNetwork[sn.NetworkID], sn)
		}
	}
	keep := func(values []string, v string) bool { return len(values) == 0 || slices.Contains(values, v) }
	out := []model.NetworkIPAvailability{}
	for _, n := range networks {
		if !keep(f.NetworkIDs, n.ID) || !keep(f.NetworkNames, n.Name) || !keep(f.ProjectIDs, n.ProjectID) {
			continue
		}
		own := bySubnetNetwork[n.ID]
		if len(f.IPVersions) > 0 && len(own) == 0 {
			continue
		}
		a := model.NetworkIPAvailability{NetworkID: n.ID, NetworkName: n.Name, ProjectID: n.ProjectID, TenantID: n.ProjectID,
			Subnets: []model.SubnetIPAvailability{}, UsedIPs: new(big.Int), TotalIPs: new(big.Int)}
		for _, sn := range own {
			total, err := subnetTotalIPs(sn)
			if err != nil {
				return nil, err
			}
			// The subnet's count of fixed IPs, kept by the index: not
			// a walk of every port.
			used, err := usedIPs(r, sn.ID)
			if err != nil {
				return nil, err
			}
			s := model.SubnetIPAvailability{SubnetID: sn.ID, SubnetName: sn.Name, CIDR: sn.CIDR, IPVersion: sn.IPVersion,
				UsedIPs: big.NewInt(int64(used)), TotalIPs: total}
			a.Subnets = append(a.Subnets, s)
			a.UsedIPs.Add(a.UsedIPs, s.UsedIPs)
			a.TotalIPs.Add(a.TotalIPs, s.TotalIPs)
		}
		out = append(out, a)
	}
	return out, nil
}

// subnetTotalIPs is the number of addresses in sn's allocation pools, or in
// its CIDR when it has none.
func subnetTotalIPs(sn model.Subnet) (*big.Int, error) {
	total := new(big.Int)
	if len(sn.AllocationPools) == 0 {
		prefix, err := netip.ParsePrefix(sn.CIDR)
		if err != nil {
			return nil, fmt.Errorf("subnet %s: cidr %q: %w", sn.ID, sn.CIDR, err)
		}
		return total.Lsh(big.NewInt(1), uint(prefix.Addr().BitLen()-prefix.Bits())), nil
	}
	for _, p := range sn.AllocationPools {
		start, err := netip.ParseAddr(p.Start)
		if err != nil {
			return nil, fmt.Errorf("subnet %s: pool start %q: %w", sn.ID, p.Start, err)
		}
		end, err := netip.ParseAddr(p.End)
		if err != nil {
			return nil, fmt.Errorf("subnet %s: pool end %q: %w", sn.ID, p.End, err)
		}
		size := new(big.Int).Sub(addrInt(end), addrInt(start))
		total.Add(total, size.Add(size, big.NewInt(1)))
	}
	return total, nil
}

func addrInt(a netip.Addr) *big.Int {
	b := a.As16()
	return new(big.Int).SetBytes(b[:])
}
