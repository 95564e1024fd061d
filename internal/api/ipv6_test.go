package api_test

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/nsnet/nsnet/internal/model"
)

// as re-decodes a JSON object of the API into its model type.
func as[T any](t *testing.T, obj any) T {
	t.Helper()
	raw, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
	return v
}

func (h *harness) subnet6(network string, attrs map[string]any) model.Subnet {
	h.t.Helper()
	body := map[string]any{"network_id": network, "ip_version": 6}
	for k, v := range attrs {
		body[k] = v
	}
	return as[model.Subnet](h.t, h.create("subnets", "subnet", body))
}

func (h *harness) port(attrs map[string]any) model.Port {
	h.t.Helper()
	return as[model.Port](h.t, h.create("ports", "port", attrs))
}

func (h *harness) getPort(id string) model.Port {
	h.t.Helper()
	r := h.do("GET", "/v2.0/ports/"+id, nil)
	if r.status != 200 {
		h.t.Fatalf("get port %s: %d %v", id, r.status, r.body)
	}
	return as[model.Port](h.t, r.body["port"])
}

// eui64 is the SLAAC address of mac on a /64, worked out here by hand
// from RFC 4291 rather than with the code under test.
func eui64(t *testing.T, prefix, mac string) string {
	t.Helper()
	var m [6]byte
	if _, err := fmt.Sscanf(mac, "%02x:%02x:%02x:%02x:%02x:%02x", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]); err != nil {
		t.Fatal(err)
	}
	b := netip.MustParsePrefix(prefix).Addr().As16()
	copy(b[8:], []byte{m[0] ^ 2, m[1], m[2], 0xff, 0xfe, m[3], m[4], m[5]})
	return netip.AddrFrom16(b).String()
}

func ips(p model.Port) map[string]string {
	out := map[string]string{}
	for _, ip := range p.FixedIPs {
		out[ip.SubnetID] = ip.IPAddress
	}
	return out
}

func TestIPv6SubnetDefaults(t *testing.T) {
	h := newHarness(t)
	cases := []struct {
		name  string
		attrs map[string]any
		gw    any // string, or nil for none
		pools []model.AllocationPool
	}{
		{"default gateway is prefix+1, last address is a host's", map[string]any{"cidr": "2001:db8:1::/64"}, "2001:db8:1::1",
			[]model.AllocationPool{{Start: "2001:db8:1::2", End: "2001:db8:1:0:ffff:ffff:ffff:ffff"}}},
		{"gateway inside splits the pool", map[string]any{"cidr": "2001:db8:2::/120", "gateway_ip": "2001:db8:2::10"}, "2001:db8:2::10",
			[]model.AllocationPool{{Start: "2001:db8:2::1", End: "2001:db8:2::f"}, {Start: "2001:db8:2::11", End: "2001:db8:2::ff"}}},
		{"subnet-router anycast gateway", map[string]any{"cidr": "2001:db8:3::/64", "gateway_ip": "2001:db8:3::"}, "2001:db8:3::",
			[]model.AllocationPool{{Start: "2001:db8:3::1", End: "2001:db8:3:0:ffff:ffff:ffff:ffff"}}},
		{"link-local gateway", map[string]any{"cidr": "2001:db8:4::/64", "gateway_ip": "fe80::1"}, "fe80::1",
			[]model.AllocationPool{{Start: "2001:db8:4::1", End: "2001:db8:4:0:ffff:ffff:ffff:ffff"}}},
		{"no gateway", map[string]any{"cidr": "2001:db8:5::/126", "gateway_ip": nil}, nil,
			[]model.AllocationPool{{Start: "2001:db8:5::1", End: "2001:db8:5::3"}}},
		{"gateway spelled long is shown canonical", map[string]any{"cidr": "2001:db8:6::/64", "gateway_ip": "2001:0db8:0006:0000::0001"}, "2001:db8:6::1",
			[]model.AllocationPool{{Start: "2001:db8:6::2", End: "2001:db8:6:0:ffff:ffff:ffff:ffff"}}},
		{"/127 without DHCP", map[string]any{"cidr": "2001:db8:7::/127", "gateway_ip": nil, "enable_dhcp": false}, nil,
			[]model.AllocationPool{{Start: "2001:db8:7::1", End: "2001:db8:7::1"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := h.create("networks", "network", map[string]any{"name": "n"})["id"].(string)
			sn := h.subnet6(n, tc.attrs)
			var gw any
			if sn.GatewayIP != nil {
				gw = *sn.GatewayIP
			}
			if gw != tc.gw {
				t.Errorf("gateway_ip = %v, want %v", gw, tc.gw)
			}
			if !slices.Equal(sn.AllocationPools, tc.pools) {
				t.Errorf("allocation_pools = %v, want %v", sn.AllocationPools, tc.pools)
			}
			if sn.IPVersion != 6 || sn.IPv6RAMode != nil || sn.IPv6AddressMode != nil {
				t.Errorf("ip_version %d, modes %v %v; want 6, null, null", sn.IPVersion, sn.IPv6RAMode, sn.IPv6AddressMode)
			}
		})
	}
}

// TestIPv6ModeCombinations tries every ipv6_ra_mode × ipv6_address_mode:
// Neutron takes either alone and both when they agree.
func TestIPv6ModeCombinations(t *testing.T) {
	h := newHarness(t)
	n := h.create("networks", "network", map[string]any{"name": "n"})["id"].(string)
	modes := []any{nil, model.IPv6SLAAC, model.IPv6DHCPv6Stateful, model.IPv6DHCPv6Stateless}
	for i, ra := range modes {
		for j, addr := range modes {
			t.Run(fmt.Sprintf("%v-%v", ra, addr), func(t *testing.T) {
				cidr := fmt.Sprintf("2001:db8:%d:%d::/64", i, j)
				r := h.do("POST", "/v2.0/subnets", map[string]any{"subnet": map[string]any{
					"network_id": n, "ip_version": 6, "cidr": cidr, "ipv6_ra_mode": ra, "ipv6_address_mode": addr}})
				if ra != nil && addr != nil && ra != addr {
					typ, msg := neutronError(r)
					want := fmt.Sprintf("Invalid input for operation: ipv6_ra_mode set to '%s' with ipv6_address_mode set to '%s' is not valid. "+
						"If both attributes are set, they must be the same value.", ra, addr)
					if r.status != 400 || typ != "InvalidInput" || msg != want {
						t.Errorf("got %d %s %q; want 400 InvalidInput %q", r.status, typ, msg, want)
					}
					return
				}
				if r.status != 201 {
					t.Fatalf("create: %d %v", r.status, r.body)
				}
				sn := as[model.Subnet](t, r.body["subnet"])
				show := func(m *string) any {
					if m == nil {
						return nil
					}
					return *m
				}
				if show(sn.IPv6RAMode) != ra || show(sn.IPv6AddressMode) != addr {
					t.Errorf("modes shown %v, %v", show(sn.IPv6RAMode), show(sn.IPv6AddressMode))
				}
			})
		}
	}
}

func TestIPv6SubnetRefusals(t *testing.T) {
	h := newHarness(t)
	n := h.create("networks", "network", map[string]any{"name": "n"})["id"].(string)
	v4 := h.create("subnets", "subnet", map[string]any{"network_id": n, "cidr": "10.0.0.0/24"})["id"].(string)
	slaac := h.subnet6(n, map[string]any{"cidr": "2001:db8::/64", "ipv6_ra_mode": "slaac", "ipv6_address_mode": "slaac"})
	subnet := func(attrs map[string]any) map[string]any {
		body := map[string]any{"network_id": n, "ip_version": 6}
		for k, v := range attrs {
			body[k] = v
		}
		return map[string]any{"subnet": body}
	}
	put := func(id string, attrs map[string]any) (string, map[string]any) {
		return "/v2.0/subnets/" + id, map[string]any{"subnet": attrs}
	}
	cases := []refusal{
		{"IPv4 cidr on ip_version 6", "POST", "/v2.0/subnets", subnet(map[string]any{"cidr": "10.1.0.0/24"}), 400, "InvalidInput",
			"Invalid input for operation: cidr '10.1.0.0/24' does not match the ip_version '6'."},
		{"IPv4 gateway", "POST", "/v2.0/subnets", subnet(map[string]any{"cidr": "2001:db8:1::/64", "gateway_ip": "10.1.0.1"}), 400, "InvalidInput",
			"Invalid input for operation: gateway_ip '10.1.0.1' does not match the ip_version '6'."},
		{"gateway outside the prefix", "POST", "/v2.0/subnets", subnet(map[string]any{"cidr": "2001:db8:1::/64", "gateway_ip": "2001:db8:2::1"}), 400, "InvalidInput",
			"Invalid input for operation: Gateway is not valid on subnet."},
		{"IPv4 DNS server", "POST", "/v2.0/subnets", subnet(map[string]any{"cidr": "2001:db8:1::/64", "dns_nameservers": []any{"2001:db8::53", "8.8.8.8"}}), 400, "InvalidInput",
			"Invalid input for operation: dns_nameserver '8.8.8.8' does not match the ip_version '6'."},
		{"IPv6 DNS server on IPv4", "POST", "/v2.0/subnets", map[string]any{"subnet": map[string]any{"network_id": n, "cidr": "10.2.0.0/24", "dns_nameservers": []any{"2001:db8::53"}}}, 400, "InvalidInput",
			"Invalid input for operation: dns_nameserver '2001:db8::53' does not match the ip_version '4'."},
		{"IPv4 nexthop", "POST", "/v2.0/subnets", subnet(map[string]any{"cidr": "2001:db8:1::/64", "host_routes": []any{map[string]any{"destination": "2001:db8:9::/64", "nexthop": "10.0.0.9"}}}), 400, "InvalidInput",
			"Invalid input for operation: nexthop '10.0.0.9' does not match the ip_version '6'."},
		{"IPv4 destination", "POST", "/v2.0/subnets", subnet(map[string]any{"cidr": "2001:db8:1::/64", "host_routes": []any{map[string]any{"destination": "10.9.0.0/16", "nexthop": "2001:db8:1::9"}}}), 400, "InvalidInput",
			"Invalid input for operation: destination '10.9.0.0/16' does not match the ip_version '6'."},
		{"unknown mode", "POST", "/v2.0/subnets", subnet(map[string]any{"cidr": "2001:db8:1::/64", "ipv6_ra_mode": "dhcp"}), 400, "HTTPBadRequest",
			"Invalid input for ipv6_ra_mode. Reason: dhcp is not in ['dhcpv6-stateful', 'dhcpv6-stateless', 'slaac']."},
		{"ra mode on IPv4", "POST", "/v2.0/subnets", map[string]any{"subnet": map[string]any{"network_id": n, "cidr": "10.2.0.0/24", "ipv6_ra_mode": "slaac"}}, 400, "InvalidInput",
			"Invalid input for operation: ipv6_ra_mode is not valid when ip_version is 4."},
		{"address mode on IPv4", "POST", "/v2.0/subnets", map[string]any{"subnet": map[string]any{"network_id": n, "cidr": "10.2.0.0/24", "ipv6_address_mode": "slaac"}}, 400, "InvalidInput",
			"Invalid input for operation: ipv6_address_mode is not valid when ip_version is 4."},
		{"modes without DHCP", "POST", "/v2.0/subnets", subnet(map[string]any{"cidr": "2001:db8:1::/64", "ipv6_address_mode": "dhcpv6-stateful", "enable_dhcp": false}), 400, "InvalidInput",
			"Invalid input for operation: ipv6_ra_mode or ipv6_address_mode cannot be set when enable_dhcp is set to False."},
		{"SLAAC on a /127", "POST", "/v2.0/subnets", subnet(map[string]any{"cidr": "2001:db8:1::/127", "ipv6_ra_mode": "slaac", "enable_dhcp": true}), 400, "InvalidInput",
			"Invalid input for operation: Subnet has a prefix length that is incompatible with DHCP service enabled."},
		{"SLAAC on a /80", "POST", "/v2.0/subnets", subnet(map[string]any{"cidr": "2001:db8:1::/80", "ipv6_address_mode": "slaac"}), 400, "InvalidInput",
			"Invalid input for operation: Invalid CIDR 2001:db8:1::/80 for IPv6 address mode. OpenStack uses the EUI-64 address format, which requires the prefix to be /64."},
		{"stateless on a /56", "POST", "/v2.0/subnets", subnet(map[string]any{"cidr": "2001:db8:100::/56", "ipv6_ra_mode": "dhcpv6-stateless"}), 400, "InvalidInput",
			"Invalid input for operation: Invalid CIDR 2001:db8:100::/56 for IPv6 address mode."},
		{"/128", "POST", "/v2.0/subnets", subnet(map[string]any{"cidr": "2001:db8:1::/128", "enable_dhcp": false}), 400, "HTTPBadRequest",
			"has no usable host addresses; use a prefix of /127 or shorter"},
		{"multicast prefix", "POST", "/v2.0/subnets", subnet(map[string]any{"cidr": "ff05::/64"}), 400, "InvalidInput",
			"cidr ff05::/64 overlaps the multicast range ff00::/8"},
		{"link-local prefix", "POST", "/v2.0/subnets", subnet(map[string]any{"cidr": "fe80::/64", "enable_dhcp": false}), 400, "InvalidInput",
			"cidr fe80::/64 overlaps the link-local range fe80::/10"},
		{"overlapping prefix", "POST", "/v2.0/subnets", subnet(map[string]any{"cidr": "2001:db8::/48"}), 400, "InvalidInput",
			"overlaps with another subnet"},
		{"pool beyond the prefix", "POST", "/v2.0/subnets", subnet(map[string]any{"cidr": "2001:db8:1::/120", "allocation_pools": []any{map[string]any{"start": "2001:db8:1::10", "end": "2001:db8:1::100"}}}), 400, "OutOfBoundsAllocationPool",
			"spans beyond the subnet cidr"},
		{"mode update", "PUT", "/v2.0/subnets/" + slaac.ID, map[string]any{"subnet": map[string]any{"ipv6_ra_mode": "dhcpv6-stateful"}}, 400, "HTTPBadRequest",
			"Cannot update read-only attribute ipv6_ra_mode"},
	}
	path, body := put(slaac.ID, map[string]any{"enable_dhcp": false})
	cases = append(cases,
		refusal{"DHCP off under modes", "PUT", path, body, 400, "InvalidInput", "Invalid input for operation: Cannot disable enable_dhcp with ipv6 attributes set."},
		refusal{"IPv6 gateway on IPv4", "PUT", "/v2.0/subnets/" + v4, map[string]any{"subnet": map[string]any{"gateway_ip": "2001:db8::1"}}, 400, "InvalidInput",
			"gateway_ip '2001:db8::1' does not match the ip_version '4'"},
	)
	h.checkRefusals(t, cases)
}

// TestIPv6PortAddresses follows Neutron's IPAM on dual-stack networks:
// which subnets a port gets an address on, and which address.
func TestIPv6PortAddresses(t *testing.T) {
	const mac = "fa:16:3e:12:34:56"
	cases := []struct {
		name    string
		subnets []map[string]any // created in order; "cidr" is the key of want
		port    map[string]any   // beyond network_id and mac_address
		want    map[string]string
	}{
		{"SLAAC: EUI-64 address", []map[string]any{{"cidr": "2001:db8::/64", "ipv6_ra_mode": "slaac", "ipv6_address_mode": "slaac"}}, nil,
			map[string]string{"2001:db8::/64": "eui64"}},
		{"stateless, no RA: EUI-64 address", []map[string]any{{"cidr": "2001:db8::/64", "ipv6_address_mode": "dhcpv6-stateless"}}, nil,
			map[string]string{"2001:db8::/64": "eui64"}},
		{"RA mode slaac alone: EUI-64 address", []map[string]any{{"cidr": "2001:db8::/64", "ipv6_ra_mode": "slaac"}}, nil,
			map[string]string{"2001:db8::/64": "eui64"}},
		{"no modes: from the pool", []map[string]any{{"cidr": "2001:db8::/64"}}, nil,
			map[string]string{"2001:db8::/64": "2001:db8::2"}},
		{"stateful: from the pool", []map[string]any{{"cidr": "2001:db8::/64", "ipv6_address_mode": "dhcpv6-stateful"}}, nil,
			map[string]string{"2001:db8::/64": "2001:db8::2"}},
		{"dual stack: one IPv4, one stateful IPv6, every SLAAC", []map[string]any{
			{"cidr": "2001:db8:1::/64", "ipv6_address_mode": "slaac"},
			{"cidr": "10.0.0.0/24", "ip_version": 4},
			{"cidr": "2001:db8:2::/64", "ipv6_address_mode": "dhcpv6-stateful"},
			{"cidr": "2001:db8:4::/64", "ipv6_ra_mode": "dhcpv6-stateless"},
		}, nil, map[string]string{"10.0.0.0/24": "10.0.0.2", "2001:db8:2::/64": "2001:db8:2::2",
			"2001:db8:1::/64": "eui64", "2001:db8:4::/64": "eui64"}},
		{"fixed_ips on IPv4 only still gets the SLAAC address", []map[string]any{
			{"cidr": "10.0.0.0/24", "ip_version": 4},
			{"cidr": "2001:db8:1::/64", "ipv6_address_mode": "slaac"},
			{"cidr": "2001:db8:2::/64"},
		}, map[string]any{"fixed_ips": []any{map[string]any{"ip_address": "10.0.0.7"}}},
			map[string]string{"10.0.0.0/24": "10.0.0.7", "2001:db8:1::/64": "eui64"}},
		{"a chosen stateful address", []map[string]any{{"cidr": "2001:db8::/64", "ipv6_ra_mode": "dhcpv6-stateful"}},
			map[string]any{"fixed_ips": []any{map[string]any{"ip_address": "2001:0db8::00ab"}}},
			map[string]string{"2001:db8::/64": "2001:db8::ab"}},
		{"the last address of a prefix is a host's", []map[string]any{{"cidr": "2001:db8::/64", "enable_dhcp": false}},
			map[string]any{"fixed_ips": []any{map[string]any{"ip_address": "2001:db8::ffff:ffff:ffff:ffff"}}},
			map[string]string{"2001:db8::/64": "2001:db8::ffff:ffff:ffff:ffff"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			n := h.create("networks", "network", map[string]any{"name": "n"})["id"].(string)
			ids := map[string]string{} // cidr -> subnet id
			for _, attrs := range tc.subnets {
				body := map[string]any{"network_id": n, "ip_version": 6}
				for k, v := range attrs {
					body[k] = v
				}
				ids[attrs["cidr"].(string)] = h.create("subnets", "subnet", body)["id"].(string)
			}
			attrs := map[string]any{"network_id": n, "mac_address": mac}
			for k, v := range tc.port {
				attrs[k] = v
			}
			p := h.port(attrs)
			want := map[string]string{}
			for cidr, a := range tc.want {
				if a == "eui64" {
					a = eui64(t, cidr, mac)
				}
				want[ids[cidr]] = a
			}
			if got := ips(p); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("fixed_ips by subnet = %v, want %v", got, want)
			}
		})
	}
}

func TestIPv6PortRefusals(t *testing.T) {
	h := newHarness(t)
	n := h.create("networks", "network", map[string]any{"name": "n"})["id"].(string)
	slaac := h.subnet6(n, map[string]any{"cidr": "2001:db8:1::/64", "ipv6_ra_mode": "slaac", "ipv6_address_mode": "slaac"})
	stateful := h.subnet6(n, map[string]any{"cidr": "2001:db8:2::/64", "ipv6_address_mode": "dhcpv6-stateful"})
	p := h.port(map[string]any{"network_id": n, "fixed_ips": []any{map[string]any{"ip_address": "2001:db8:2::50"}}})
	euiOfMAC := eui64(t, "2001:db8:1::/64", "fa:16:3e:00:00:09")
	port := func(attrs map[string]any) map[string]any {
		attrs["network_id"] = n
		return map[string]any{"port": attrs}
	}
	h.checkRefusals(t, []refusal{
		{"address on a SLAAC subnet", "POST", "/v2.0/ports", port(map[string]any{"fixed_ips": []any{map[string]any{"subnet_id": slaac.ID, "ip_address": "2001:db8:1::5"}}}), 400, "AllocationOnAutoAddressSubnet",
			"IPv6 address 2001:db8:1::5 cannot be directly assigned to a port on subnet " + slaac.ID + " as the subnet is configured for automatic addresses"},
		{"someone's EUI-64 address by update", "PUT", "/v2.0/ports/" + p.ID, map[string]any{"port": map[string]any{"fixed_ips": []any{map[string]any{"ip_address": euiOfMAC}}}}, 400, "AllocationOnAutoAddressSubnet",
			"cannot be directly assigned"},
		{"address in use", "POST", "/v2.0/ports", port(map[string]any{"fixed_ips": []any{map[string]any{"ip_address": "2001:db8:2::50"}}}), 409, "IpAddressAlreadyAllocated",
			"IP address 2001:db8:2::50 already allocated in subnet " + stateful.ID},
		{"address outside the subnet", "POST", "/v2.0/ports", port(map[string]any{"fixed_ips": []any{map[string]any{"subnet_id": stateful.ID, "ip_address": "2001:db8:3::1"}}}), 400, "InvalidIpForSubnet",
			"IP address 2001:db8:3::1 is not a valid IP for the specified subnet."},
		{"the subnet-router anycast address", "POST", "/v2.0/ports", port(map[string]any{"device_owner": "compute:nova", "fixed_ips": []any{map[string]any{"ip_address": "2001:db8:2::"}}}), 400, "InvalidIpForSubnet",
			"IP address 2001:db8:2:: is not a valid IP for the specified subnet."},
		{"the gateway address", "POST", "/v2.0/ports", port(map[string]any{"fixed_ips": []any{map[string]any{"ip_address": "2001:db8:2::1"}}}), 409, "IpAddressAlreadyAllocated",
			"2001:db8:2::1"},
	})
}

// TestIPv6AutoAddressesFollowPortsAndSubnets: EUI-64 addresses follow the
// MAC, appear on ports that were there before the subnet, go with it, and
// stay when a client's fixed_ips update leaves them out.
func TestIPv6AutoAddressesFollowPortsAndSubnets(t *testing.T) {
	h := newHarness(t)
	n := h.create("networks", "network", map[string]any{"name": "n"})["id"].(string)
	v4 := h.create("subnets", "subnet", map[string]any{"network_id": n, "cidr": "10.0.0.0/24"})["id"].(string)
	before := h.port(map[string]any{"network_id": n, "mac_address": "fa:16:3e:00:00:01"})
	if len(before.FixedIPs) != 1 {
		t.Fatalf("fixed_ips before the IPv6 subnet: %v", before.FixedIPs)
	}
	slaac := h.subnet6(n, map[string]any{"cidr": "2001:db8::/64", "ipv6_ra_mode": "slaac", "ipv6_address_mode": "slaac"})

	got := ips(h.getPort(before.ID))
	if want := eui64(t, "2001:db8::/64", "fa:16:3e:00:00:01"); got[slaac.ID] != want || got[v4] != "10.0.0.2" {
		t.Fatalf("port made before the SLAAC subnet has %v; want %s there and its IPv4 address kept", got, want)
	}
	// The DHCP port serves the network's DHCP subnets: its address on
	// the SLAAC one is its EUI-64 one too.
	all := h.do("GET", "/v2.0/ports?device_owner=network:dhcp", nil).body["ports"].([]any)
	if len(all) != 1 {
		t.Fatalf("DHCP ports: %v", all)
	}
	dhcp := as[model.Port](t, all[0])
	if got := ips(dhcp)[slaac.ID]; got != eui64(t, "2001:db8::/64", dhcp.MACAddress) {
		t.Errorf("DHCP port's SLAAC address %s, want its EUI-64 one", got)
	}

	r := h.do("PUT", "/v2.0/ports/"+before.ID, map[string]any{"port": map[string]any{"mac_address": "fa:16:3e:00:00:02"}})
	if r.status != 200 {
		t.Fatalf("MAC update: %d %v", r.status, r.body)
	}
	got = ips(as[model.Port](t, r.body["port"]))
	if want := eui64(t, "2001:db8::/64", "fa:16:3e:00:00:02"); got[slaac.ID] != want || got[v4] != "10.0.0.2" || len(got) != 2 {
		t.Errorf("after the MAC change: %v; want %s on the SLAAC subnet and 10.0.0.2 kept", got, want)
	}

	// A fixed_ips update that names only the IPv4 address keeps the
	// auto address (Neutron removes it only with the subnet).
	r = h.do("PUT", "/v2.0/ports/"+before.ID, map[string]any{"port": map[string]any{"fixed_ips": []any{map[string]any{"ip_address": "10.0.0.9"}}}})
	if r.status != 200 {
		t.Fatalf("fixed_ips update: %d %v", r.status, r.body)
	}
	if got := ips(as[model.Port](t, r.body["port"])); got[v4] != "10.0.0.9" || got[slaac.ID] == "" {
		t.Errorf("after a fixed_ips update without it: %v", got)
	}

	// A router interface on the SLAAC subnet holds the gateway address.
	router := h.create("routers", "router", map[string]any{"name": "r"})["id"].(string)
	h.addInterface(router, map[string]any{"subnet_id": slaac.ID})
	r = h.do("DELETE", "/v2.0/subnets/"+slaac.ID, nil)
	if typ, _ := neutronError(r); r.status != 409 || typ != "SubnetInUse" {
		t.Errorf("delete with a router interface on it: %d %s; want 409 SubnetInUse", r.status, typ)
	}
	h.do("PUT", "/v2.0/routers/"+router+"/remove_router_interface", map[string]any{"subnet_id": slaac.ID})

	if r := h.do("DELETE", "/v2.0/subnets/"+slaac.ID, nil); r.status != 204 {
		t.Fatalf("delete SLAAC subnet with ports on it: %d %v", r.status, r.body)
	}
	if got := ips(h.getPort(before.ID)); len(got) != 1 || got[v4] != "10.0.0.9" {
		t.Errorf("after the SLAAC subnet went: %v; want only 10.0.0.9", got)
	}
	r = h.do("DELETE", "/v2.0/networks/"+n, nil)
	if _, msg := neutronError(r); r.status != 409 || !strings.Contains(msg, "There are one or more ports still in use on the network") {
		t.Errorf("network delete with a port: %d %q", r.status, msg)
	}
}

// TestIPv6RouterInterfaces: a router has one port per network for all its
// IPv6 subnets there, each holding the subnet's gateway, as Neutron's
// _add_interface_by_subnet does; removing one subnet keeps the port.
func TestIPv6RouterInterfaces(t *testing.T) {
	h := newHarness(t)
	n := h.create("networks", "network", map[string]any{"name": "n"})["id"].(string)
	v4 := h.create("subnets", "subnet", map[string]any{"network_id": n, "cidr": "10.0.0.0/24"})["id"].(string)
	a := h.subnet6(n, map[string]any{"cidr": "2001:db8:1::/64", "ipv6_ra_mode": "slaac", "ipv6_address_mode": "slaac"})
	b := h.subnet6(n, map[string]any{"cidr": "2001:db8:2::/64", "ipv6_ra_mode": "dhcpv6-stateful", "ipv6_address_mode": "dhcpv6-stateful"})
	external := h.subnet6(n, map[string]any{"cidr": "2001:db8:3::/64", "ipv6_address_mode": "slaac"})
	router := h.create("routers", "router", map[string]any{"name": "r"})["id"].(string)

	first := h.addInterface(router, map[string]any{"subnet_id": a.ID})
	second := h.addInterface(router, map[string]any{"subnet_id": b.ID})
	if first["port_id"] != second["port_id"] || second["subnet_id"] != b.ID || fmt.Sprint(second["subnet_ids"]) != fmt.Sprint([]any{b.ID}) {
		t.Errorf("second IPv6 interface %v; want the first's port %v, answering for subnet %s", second, first["port_id"], b.ID)
	}
	third := h.addInterface(router, map[string]any{"subnet_id": v4})
	if third["port_id"] == first["port_id"] {
		t.Errorf("the IPv4 subnet joined the IPv6 port")
	}
	port := h.getPort(first["port_id"].(string))
	if got := ips(port); len(got) != 2 || got[a.ID] != "2001:db8:1::1" || got[b.ID] != "2001:db8:2::1" {
		t.Errorf("IPv6 router port has %v; want both gateways", got)
	}

	h.checkRefusals(t, []refusal{
		{"same subnet again", "PUT", "/v2.0/routers/" + router + "/add_router_interface", map[string]any{"subnet_id": a.ID}, 400, "BadRequest",
			"Bad router request: Router already has a port on subnet " + a.ID + "."},
		{"subnet of an external router", "PUT", "/v2.0/routers/" + router + "/add_router_interface", map[string]any{"subnet_id": external.ID}, 400, "BadRequest",
			"Bad router request: IPv6 subnet " + external.ID + " configured to receive RAs from an external router cannot be added to Neutron Router."},
		{"IPv4 route via an IPv6 nexthop", "PUT", "/v2.0/routers/" + router, map[string]any{"router": map[string]any{"routes": []any{map[string]any{"destination": "10.9.0.0/16", "nexthop": "2001:db8:1::9"}}}}, 400, "HTTPBadRequest",
			"different IP versions"},
		{"IPv6 route via an unconnected nexthop", "PUT", "/v2.0/routers/" + router, map[string]any{"router": map[string]any{"routes": []any{map[string]any{"destination": "2001:db8:9::/64", "nexthop": "2001:db8:7::9"}}}}, 400, "InvalidRoutes",
			"the nexthop is not connected with router"},
	})

	r := h.do("PUT", "/v2.0/routers/"+router, map[string]any{"router": map[string]any{"routes": []any{map[string]any{"destination": "2001:db8:9::/64", "nexthop": "2001:db8:2::9"}}}})
	if r.status != 200 {
		t.Errorf("IPv6 extra route: %d %v", r.status, r.body)
	}
	h.do("PUT", "/v2.0/routers/"+router, map[string]any{"router": map[string]any{"routes": []any{}}})

	r = h.do("PUT", "/v2.0/routers/"+router+"/remove_router_interface", map[string]any{"subnet_id": a.ID})
	if r.status != 200 || r.body["port_id"] != first["port_id"] || r.body["subnet_id"] != a.ID {
		t.Fatalf("remove one IPv6 subnet: %d %v", r.status, r.body)
	}
	if got := ips(h.getPort(first["port_id"].(string))); len(got) != 1 || got[b.ID] != "2001:db8:2::1" {
		t.Errorf("after removing subnet a the port has %v; want only b's gateway", got)
	}
	if r := h.do("PUT", "/v2.0/routers/"+router+"/remove_router_interface", map[string]any{"subnet_id": b.ID}); r.status != 200 {
		t.Fatalf("remove the last IPv6 subnet: %d %v", r.status, r.body)
	}
	if r := h.do("GET", "/v2.0/ports/"+first["port_id"].(string), nil); r.status != 404 {
		t.Errorf("the IPv6 port outlived its last subnet: %d", r.status)
	}
}

// TestIPv6ExternalGatewayAndFloatingIPs: a router's gateway on a
// dual-stack external network has an address on each kind of subnet;
// floating IPs stay IPv4.
func TestIPv6ExternalGatewayAndFloatingIPs(t *testing.T) {
	h := newHarness(t)
	ext := h.create("networks", "network", map[string]any{"name": "public", "router:external": true})["id"].(string)
	v4 := h.create("subnets", "subnet", map[string]any{"network_id": ext, "cidr": "198.51.100.0/24", "enable_dhcp": false})["id"].(string)
	v6 := h.subnet6(ext, map[string]any{"cidr": "2001:db8:ff::/64", "enable_dhcp": false})
	r := as[model.Router](t, h.create("routers", "router", map[string]any{"name": "r", "external_gateway_info": map[string]any{"network_id": ext}}))
	got := map[string]string{}
	for _, ip := range r.ExternalGatewayInfo.ExternalFixedIPs {
		got[ip.SubnetID] = ip.IPAddress
	}
	if got[v4] != "198.51.100.2" || got[v6.ID] != "2001:db8:ff::2" || len(got) != 2 {
		t.Errorf("gateway addresses %v; want one on each subnet", got)
	}
	fip := h.create("floatingips", "floatingip", map[string]any{"floating_network_id": ext})
	if a := netip.MustParseAddr(fip["floating_ip_address"].(string)); !a.Is4() {
		t.Errorf("floating IP %s, want an IPv4 address", a)
	}

	v6only := h.create("networks", "network", map[string]any{"name": "public6", "router:external": true})["id"].(string)
	h.subnet6(v6only, map[string]any{"cidr": "2001:db8:fe::/64", "enable_dhcp": false})
	priv := h.create("networks", "network", map[string]any{"name": "private"})["id"].(string)
	h.create("subnets", "subnet", map[string]any{"network_id": priv, "cidr": "10.0.0.0/24"})
	h.subnet6(priv, map[string]any{"cidr": "2001:db8:1::/64", "ipv6_ra_mode": "slaac", "ipv6_address_mode": "slaac"})
	dual := h.port(map[string]any{"network_id": priv})
	var v6addr string
	for _, ip := range dual.FixedIPs {
		if netip.MustParseAddr(ip.IPAddress).Is6() {
			v6addr = ip.IPAddress
		}
	}
	h.checkRefusals(t, []refusal{
		{"floating IP on an IPv6-only network", "POST", "/v2.0/floatingips", map[string]any{"floatingip": map[string]any{"floating_network_id": v6only}}, 400, "BadRequest",
			"Bad floatingip request: Network " + v6only + " does not contain any IPv4 subnet."},
		{"floating IP for an IPv6 address", "PUT", "/v2.0/floatingips/" + fip["id"].(string), map[string]any{"floatingip": map[string]any{"port_id": dual.ID, "fixed_ip_address": v6addr}}, 400, "BadRequest",
			"Bad floatingip request: Cannot process floating IP association with " + v6addr + ", since that is not an IPv4 address."},
	})
}

// TestIPv6PortFilters: fixed_ips filters find ports by IPv6 address,
// however the client spells it.
func TestIPv6PortFilters(t *testing.T) {
	h := newHarness(t)
	n := h.create("networks", "network", map[string]any{"name": "n"})["id"].(string)
	h.subnet6(n, map[string]any{"cidr": "2001:db8::/64"})
	p := h.port(map[string]any{"network_id": n, "fixed_ips": []any{map[string]any{"ip_address": "2001:db8::abcd"}}})
	h.port(map[string]any{"network_id": n})
	for _, q := range []string{"fixed_ips=ip_address%3D2001:db8::abcd", "fixed_ips=ip_address%3D2001:0db8:0:0::abcd", "fixed_ips=ip_address_substr%3D::abc"} {
		r := h.do("GET", "/v2.0/ports?"+q, nil)
		ports := as[[]model.Port](t, r.body["ports"])
		if len(ports) != 1 || ports[0].ID != p.ID {
			t.Errorf("?%s found %d ports; want only %s", q, len(ports), p.ID)
		}
	}
	for q, want := range map[string]int{"ip_version=6": 1, "ip_version=4": 0, "ipv6_ra_mode=slaac": 0} {
		r := h.do("GET", "/v2.0/subnets?"+q, nil)
		if got := len(as[[]model.Subnet](t, r.body["subnets"])); got != want {
			t.Errorf("?%s found %d subnets, want %d", q, got, want)
		}
	}
}

// TestIPv6SecurityGroupRules: ICMPv6's legacy names become ipv6-icmp on an
// IPv6 rule (Neutron's _make_canonical_ipv6_icmp_protocol), as duplicates
// of each other; IPv6-only protocols and prefixes stay off IPv4 rules.
func TestIPv6SecurityGroupRules(t *testing.T) {
	h := newHarness(t)
	group := h.create("security-groups", "security_group", map[string]any{"name": "g"})["id"].(string)
	cases := []struct {
		protocol, ethertype, want string
	}{
		{"icmp", "IPv6", "ipv6-icmp"},
		{"icmpv6", "IPv6", "ipv6-icmp"},
		{"ipv6-icmp", "IPv6", "ipv6-icmp"},
		{"58", "IPv6", "58"},
		{"icmp", "IPv4", "icmp"},
	}
	for _, tc := range cases {
		t.Run(tc.protocol+"-"+tc.ethertype, func(t *testing.T) {
			r := h.do("POST", "/v2.0/security-group-rules", map[string]any{"security_group_rule": map[string]any{
				"security_group_id": group, "direction": "egress", "protocol": tc.protocol, "ethertype": tc.ethertype,
				"remote_ip_prefix": map[string]any{"IPv4": "10.0.0.0/8", "IPv6": "2001:db8::/32"}[tc.ethertype]}})
			switch r.status {
			case 201:
				rule := as[model.SecurityGroupRule](t, r.body["security_group_rule"])
				if rule.Protocol == nil || *rule.Protocol != tc.want {
					t.Errorf("protocol shown %v, want %s", rule.Protocol, tc.want)
				}
				h.do("DELETE", "/v2.0/security-group-rules/"+rule.ID, nil)
			default:
				t.Errorf("create: %d %v", r.status, r.body)
			}
		})
	}
	first := h.rule(group, map[string]any{"direction": "ingress", "protocol": "icmpv6", "ethertype": "IPv6"})
	rule := func(attrs map[string]any) map[string]any {
		attrs["security_group_id"] = group
		return map[string]any{"security_group_rule": attrs}
	}
	h.checkRefusals(t, []refusal{
		{"icmp duplicates icmpv6", "POST", "/v2.0/security-group-rules", rule(map[string]any{"direction": "ingress", "protocol": "icmp", "ethertype": "IPv6"}), 409, "SecurityGroupRuleExists",
			first["id"].(string)},
		{"IPv4 prefix on an IPv6 rule", "POST", "/v2.0/security-group-rules", rule(map[string]any{"direction": "ingress", "ethertype": "IPv6", "remote_ip_prefix": "10.0.0.0/8"}), 400, "SecurityGroupRuleParameterConflict",
			"Conflicting value ethertype IPv6 for CIDR 10.0.0.0/8"},
		{"IPv6 prefix on an IPv4 rule", "POST", "/v2.0/security-group-rules", rule(map[string]any{"direction": "ingress", "ethertype": "IPv4", "remote_ip_prefix": "2001:db8::/32"}), 400, "SecurityGroupRuleParameterConflict",
			"Conflicting value ethertype IPv4 for CIDR 2001:db8::/32"},
		{"ipv6-frag on IPv4", "POST", "/v2.0/security-group-rules", rule(map[string]any{"direction": "ingress", "ethertype": "IPv4", "protocol": "ipv6-frag"}), 400, "SecurityGroupEthertypeConflictWithProtocol",
			"Invalid ethertype IPv4 for protocol ipv6-frag."},
		{"43 on IPv4", "POST", "/v2.0/security-group-rules", rule(map[string]any{"direction": "ingress", "ethertype": "IPv4", "protocol": "43"}), 400, "SecurityGroupEthertypeConflictWithProtocol",
			"Invalid ethertype IPv4 for protocol 43."},
		{"icmpv6 on IPv4", "POST", "/v2.0/security-group-rules", rule(map[string]any{"direction": "ingress", "ethertype": "IPv4", "protocol": "icmpv6"}), 400, "SecurityGroupEthertypeConflictWithProtocol",
			"Invalid ethertype IPv4 for protocol icmpv6."},
	})
}

// TestIPv6AllowedAddressPairs: pairs take IPv6 addresses and prefixes.
func TestIPv6AllowedAddressPairs(t *testing.T) {
	h := newHarness(t)
	n := h.create("networks", "network", map[string]any{"name": "n"})["id"].(string)
	h.subnet6(n, map[string]any{"cidr": "2001:db8::/64"})
	p := h.port(map[string]any{"network_id": n, "allowed_address_pairs": []any{
		map[string]any{"ip_address": "2001:db8::100"}, map[string]any{"ip_address": "2001:db8:1::/64", "mac_address": "fa:16:3e:aa:bb:cc"}}})
	want := []model.AddressPair{{IPAddress: "2001:db8::100", MACAddress: p.MACAddress}, {IPAddress: "2001:db8:1::/64", MACAddress: "fa:16:3e:aa:bb:cc"}}
	if !slices.Equal(p.AllowedAddressPairs, want) {
		t.Errorf("allowed_address_pairs %v, want %v", p.AllowedAddressPairs, want)
	}
}

// TestIPv6SubnetAddedToExternalNetwork: routers already on an external
// network get an address on an IPv6 subnet added to it (Neutron's
// _update_router_gw_ports), shown in their external_fixed_ips, and lose an
// auto-address one when it goes.
func TestIPv6SubnetAddedToExternalNetwork(t *testing.T) {
	h := newHarness(t)
	ext := h.create("networks", "network", map[string]any{"name": "public", "router:external": true})["id"].(string)
	v4 := h.create("subnets", "subnet", map[string]any{"network_id": ext, "cidr": "198.51.100.0/24", "enable_dhcp": false})["id"].(string)
	id := h.create("routers", "router", map[string]any{"name": "r", "external_gateway_info": map[string]any{"network_id": ext}})["id"].(string)
	gatewayIPs := func() map[string]string {
		t.Helper()
		r := as[model.Router](t, h.do("GET", "/v2.0/routers/"+id, nil).body["router"])
		out := map[string]string{}
		for _, ip := range r.ExternalGatewayInfo.ExternalFixedIPs {
			out[ip.SubnetID] = ip.IPAddress
		}
		ports := as[[]model.Port](t, h.do("GET", "/v2.0/ports?device_owner=network:router_gateway", nil).body["ports"])
		if len(ports) != 1 || fmt.Sprint(ips(ports[0])) != fmt.Sprint(out) {
			t.Errorf("router shows %v, its gateway port %v", out, ports)
		}
		return out
	}
	stateful := h.subnet6(ext, map[string]any{"cidr": "2001:db8:ff::/64", "enable_dhcp": false})
	if got := gatewayIPs(); got[v4] != "198.51.100.2" || got[stateful.ID] != "2001:db8:ff::2" || len(got) != 2 {
		t.Errorf("after an IPv6 subnet: %v", got)
	}
	// A second stateful IPv6 subnet adds nothing: the router has one.
	second := h.subnet6(ext, map[string]any{"cidr": "2001:db8:fe::/64", "enable_dhcp": false})
	if got := gatewayIPs(); got[second.ID] != "" {
		t.Errorf("after a second IPv6 subnet: %v", got)
	}
	slaac := h.subnet6(ext, map[string]any{"cidr": "2001:db8:fd::/64", "ipv6_ra_mode": "slaac", "ipv6_address_mode": "slaac"})
	ports := as[[]model.Port](t, h.do("GET", "/v2.0/ports?device_owner=network:router_gateway", nil).body["ports"])
	if got := gatewayIPs(); got[slaac.ID] != eui64(t, "2001:db8:fd::/64", ports[0].MACAddress) {
		t.Errorf("after a SLAAC subnet: %v", got)
	}
	if r := h.do("DELETE", "/v2.0/subnets/"+slaac.ID, nil); r.status != 204 {
		t.Fatalf("delete SLAAC subnet: %d %v", r.status, r.body)
	}
	if got := gatewayIPs(); got[slaac.ID] != "" || len(got) != 2 {
		t.Errorf("after the SLAAC subnet went: %v", got)
	}
}
