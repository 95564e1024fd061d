package service

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/nsnet/nsnet/internal/ipam"
	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/store"
)

// A network with at least one DHCP-enabled subnet has one DHCP port
// (device_owner network:dhcp), as Neutron's DHCP agent makes it: one
// address on each DHCP-enabled subnet, allocated by IPAM in the same
// transaction as the subnet change that needs it, so a subnet that cannot
// give its DHCP port an address is refused (409) rather than served
// half-way. The agent plugs the port into the network's qdhcp namespace,
// where the daemon's DHCP and DNS servers answer on its addresses.
//
// The port's addresses come from the end of the allocation pools, so the
// addresses instances get from the start are the same with DHCP on or
// off. It belongs to the network's project but does not count against
// its port quota, and it cannot be deleted through the port API: it goes
// when DHCP is disabled on, or the deletion of, its last DHCP subnet.

// maxDNSDomainLen is Neutron's FQDN_FIELD_SIZE.
const maxDNSDomainLen = 255

// checkDNSDomain checks a network's dns_domain: empty, or a domain name of
// DNS labels (letters, digits, hyphens; not starting or ending with a
// hyphen), with an optional trailing dot.
func checkDNSDomain(d string) error {
	if d == "" {
		return nil
	}
	name := strings.TrimSuffix(d, ".")
	if name == "" {
		return fmt.Errorf("'%s' is not a valid domain name", d)
	}
	for _, label := range strings.Split(name, ".") {
		if err := model.CheckDNSLabel(label); err != nil {
			return fmt.Errorf("'%s' is not a valid domain name: %w", d, err)
		}
	}
	return nil
}

// dhcpPortOf returns the DHCP port of a network, if it has one.
func dhcpPortOf(r store.Reader, networkID string) (*model.Port, error) {
	ports, err := portsOn(r, networkID)
	if err != nil {
		return nil, err
	}
	for i := range ports {
		if ports[i].DeviceOwner == model.DeviceOwnerDHCP {
			return &ports[i], nil
		}
	}
	return nil, nil
}

// syncDHCPPort makes the DHCP port of network match its subnets after a
// change to them in tx: created when the first subnet enables DHCP, given
// an address on each DHCP subnet (keeping those it has), deleted when no
// subnet serves DHCP any more.
func (s *Service) syncDHCPPort(tx store.Txn, networkID string) error {
	network, err := store.Get[model.Network](tx, store.Networks, networkID)
	if err != nil {
		return fmt.Errorf("read network %s: %w", networkID, err)
	}
	subnets, err := subnetsOn(tx, networkID)
	if err != nil {
		return err
	}
	subnets = slices.DeleteFunc(subnets, func(sn model.Subnet) bool { return !sn.EnableDHCP })
	port, err := dhcpPortOf(tx, networkID)
	if err != nil {
		return err
	}
	// An admin's dhcp_agent_scheduler choice overrides the subnets: a
	// network removed from the DHCP agent has no DHCP port; and one not
	// yet hosted goes to the least loaded alive network node of its
	// zones whose DHCP agent an admin has not set down and that maps
	// its physical network (see hosts.go),
	// or, with none, has no DHCP port yet.
	switch {
	case network.DHCPHosted != nil && !*network.DHCPHosted:
		subnets = nil
	case network.DHCPHosted == nil && port == nil && len(subnets) > 0:
		host, ok, err := s.scheduleDHCP(tx, &network)
		if err != nil {
			return err
		}
		if !ok {
			// Waiting for a DHCP host (ScheduleWaiting looks for
			// networks without one).
			subnets = nil
			if network.DHCPHost != "" {
				network.DHCPHost = ""
				if err := tx.Put(store.Networks, network.ID, network); err != nil {
					return err
				}
			}
			break
		}
		if network.DHCPHost != host {
			network.DHCPHost = host
			if err := tx.Put(store.Networks, network.ID, network); err != nil {
				return err
			}
		}
	}
	if len(subnets) == 0 {
		if port == nil {
			return nil
		}
		return tx.Delete(store.Ports, port.ID)
	}
	neighbours, err := portsOn(tx, networkID)
	if err != nil {
		return err
	}
	if port == nil {
		macs := map[string]bool{}
		for _, o := range neighbours {
			macs[o.MACAddress] = true
		}
		mac, err := ipam.NewMAC(func(m string) bool { return macs[m] })
		if err != nil {
			return err
		}
		port = &model.Port{
			ID:                  newID(),
			ProjectID:           network.ProjectID,
			NetworkID:           networkID,
			AdminStateUp:        true,
			MACAddress:          mac,
			DeviceID:            s.dhcpDeviceID(network.DHCPHost, networkID),
			DeviceOwner:         model.DeviceOwnerDHCP,
			SecurityGroups:      []string{},
			AllowedAddressPairs: []model.AddressPair{},
			PortSecurityEnabled: false,
		}
	}
	used := map[netip.Addr]bool{}
	for _, o := range neighbours {
		if o.ID == port.ID {
			continue
		}
		for _, ip := range o.FixedIPs {
			used[netip.MustParseAddr(ip.IPAddress)] = true
		}
	}
	var ips []model.FixedIP
	for _, sn := range sortedSubnets(subnets) {
		if i := slices.IndexFunc(port.FixedIPs, func(ip model.FixedIP) bool { return ip.SubnetID == sn.ID }); i >= 0 {
			ips = append(ips, port.FixedIPs[i])
			continue
		}
		if sn.IsAutoAddress() {
			// On an auto-address subnet the DHCP port has its EUI-64
			// address, as every port but a router's.
			holders := map[netip.Addr]string{}
			for a := range used {
				holders[a] = "another port"
			}
			ip, err := eui64Address(&sn, port.MACAddress, holdersIn(holders), port.ID)
			if err != nil {
				return err
			}
			ips = append(ips, ip)
			continue
		}
		a, err := ipam.AllocateLast(pools(&sn), func(a netip.Addr) bool {
			return used[a] || sn.GatewayIP != nil && *sn.GatewayIP == a.String()
		})
		if err != nil {
			return conflict("IpAddressGenerationFailure",
				"No more IP addresses available on subnet %s for its DHCP port: enable_dhcp needs one free address in the allocation pools.", sn.ID)
		}
		ips = append(ips, model.FixedIP{SubnetID: sn.ID, IPAddress: a.String()})
	}
	if slices.Equal(ips, port.FixedIPs) {
		return nil
	}
	port.FixedIPs = ips
	port.Touch(s.now())
	return tx.Put(store.Ports, port.ID, *port)
}

// sortedSubnets orders subnets by creation, as IPAM visits them.
func sortedSubnets(subnets []model.Subnet) []model.Subnet {
	out := slices.Clone(subnets)
	slices.SortFunc(out, func(a, b model.Subnet) int {
		return strings.Compare(a.CreatedAt+a.ID, b.CreatedAt+b.ID)
	})
	return out
}
