package agent

import (
	"net/netip"
	"reflect"
	"testing"

	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/nat"
)

// TestComputeHostNAT: the host's table holds, per uplink, the masquerade or
// fixed SNAT of its host-gateway networks, the hairpin of every
// host-gateway subnet (also without uplink), and the published ports that
// reach one; bridges carry the gateways; a bridged uplink is not NATed;
// instance ports of host-gateway networks are in hairpin mode.
func TestComputeHostNAT(t *testing.T) {
	lan := model.Network{ID: "lan", AdminStateUp: true, HostGateway: true, Uplink: ptr("eth0")}
	fixed := model.Network{ID: "fixed", AdminStateUp: true, HostGateway: true, Uplink: ptr("eth0"), SNATAddress: ptr("192.0.2.9")}
	island := model.Network{ID: "island", AdminStateUp: true, HostGateway: true}
	public := model.Network{ID: "public", AdminStateUp: true, RouterExternal: true, Uplink: ptr("eth1")}
	s := &snapshot{
		networks:  []model.Network{lan, fixed, island, public},
		instances: []model.Instance{{ID: "vm", Name: "vm"}},
		ports: []model.Port{
			{ID: "p-lan", NetworkID: "lan", DeviceID: "vm", DeviceOwner: model.DeviceOwnerCompute, InterfaceName: "eth0", MACAddress: "fa:16:3e:00:00:01"},
			{ID: "p-public", NetworkID: "public", DeviceID: "vm", DeviceOwner: model.DeviceOwnerCompute, InterfaceName: "eth1", MACAddress: "fa:16:3e:00:00:02"},
		},
		subnets: []model.Subnet{
			{ID: "s-lan", NetworkID: "lan", CIDR: "192.168.24.0/24", GatewayIP: ptr("192.168.24.1")},
			{ID: "s-lan6", NetworkID: "lan", CIDR: "2001:db8::/64", GatewayIP: ptr("2001:db8::1")},
			{ID: "s-fixed", NetworkID: "fixed", CIDR: "1.1.1.0/24", GatewayIP: ptr("1.1.1.3")},
			{ID: "s-island", NetworkID: "island", CIDR: "10.5.0.0/24"}, // no gateway
			{ID: "s-public", NetworkID: "public", CIDR: "198.51.100.0/24", GatewayIP: ptr("198.51.100.1")},
		},
		published: []model.PublishedPort{
			{ID: "pp1", Protocol: "tcp", HostPort: ptr(8080), InternalPort: ptr(80), InternalIPAddress: "192.168.24.10"},
			{ID: "pp2", Protocol: "udp", HostPortRange: "5000:5001", InternalPortRange: "6000:6001", InternalIPAddress: "10.5.0.7"},
			{ID: "pp-stale", Protocol: "tcp", HostPort: ptr(9090), InternalPort: ptr(80), InternalIPAddress: "10.99.0.1"},
		},
	}
	d := computeDesired(s, "t-", "")
	br := func(id string) string { return model.BridgeName(id) }
	pfx := netip.MustParsePrefix
	want := nat.Spec{
		SNAT:       []nat.SNAT{{Out: "eth0", From: pfx("1.1.1.0/24"), To: netip.MustParseAddr("192.0.2.9")}},
		Masquerade: []nat.Masquerade{{Out: "eth0", From: pfx("192.168.24.0/24")}},
		Hairpin: []nat.Subnet{
			{Interface: br("fixed"), Prefix: pfx("1.1.1.0/24")},
			{Interface: br("island"), Prefix: pfx("10.5.0.0/24")},
			{Interface: br("lan"), Prefix: pfx("192.168.24.0/24")},
		},
		Publish: []nat.Publish{
			{Protocol: nat.TCP, Ports: nat.Port(8080), Internal: netip.MustParseAddr("192.168.24.10"), InternalPorts: nat.Port(80)},
			{Protocol: nat.UDP, Ports: nat.PortRange{First: 5000, Last: 5001}, Internal: netip.MustParseAddr("10.5.0.7"), InternalPorts: nat.PortRange{First: 6000, Last: 6001}},
		},
	}
	if !d.hostNAT.Wanted || !reflect.DeepEqual(d.hostNAT.NAT, want) {
		t.Errorf("host NAT = %+v\nwant %+v", d.hostNAT, want)
	}
	if err := d.hostNAT.NAT.Validate(); err != nil {
		t.Errorf("host NAT spec does not validate: %v", err)
	}
	for id, w := range map[string]networkSpec{
		"lan":    {Uplink: "eth0", HostGateway: true, Gateway: []netip.Prefix{pfx("192.168.24.1/24")}},
		"island": {HostGateway: true},
		"public": {Uplink: "eth1", Bridged: true},
	} {
		got := d.networks[id]
		got.Bridge = w.Bridge
		if !sameNetwork(got, w) {
			t.Errorf("network %s = %+v, want %+v", id, got, w)
		}
	}

	// An instance's port reaches its own published port through the
	// host only on a host-gateway network: its tap is in hairpin mode.
	if !d.ports["p-lan"].Veth.Hairpin || d.ports["p-public"].Veth.Hairpin {
		t.Errorf("hairpin: lan's port %v, public's %v; want only lan's", d.ports["p-lan"].Veth.Hairpin, d.ports["p-public"].Veth.Hairpin)
	}

	// Without host-gateway networks the host has no table.
	s.networks = []model.Network{public}
	if d := computeDesired(s, "t-", ""); d.hostNAT.Wanted {
		t.Errorf("host NAT wanted without host-gateway networks: %+v", d.hostNAT)
	}
}
