package agent

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nsnet/nsnet/internal/dataplane"
	"github.com/nsnet/nsnet/internal/metadata"
	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/store"
)

// hostsSnapshot is a store of three hosts: a (VTEP 192.0.2.1) and b
// (192.0.2.2) share the vxlan network "shared" (an instance each; b's
// port also has a v6 address and allowed address pairs), DHCP of
// "shared" is on a; "lonely" (vxlan) has an instance on a only; "flat"
// (flat) has an instance on b; host c (192.0.2.3) has nothing; host d has
// no VTEP address and a port on "shared".
func hostsSnapshot() *snapshot {
	vx := func(id string, vni int) model.Network {
		n := model.Network{ID: id, Name: id, AdminStateUp: true, MTU: 1450}
		n.SetSegment(model.Segment{NetworkType: model.NetworkTypeVXLAN, SegmentationID: vni})
		return n
	}
	shared, lonely := vx("shared", 10), vx("lonely", 11)
	shared.DHCPHost = "a"
	flat := model.Network{ID: "flat", Name: "flat", AdminStateUp: true, MTU: 1500}
	flat.SetSegment(model.Segment{NetworkType: model.NetworkTypeFlat, PhysicalNetwork: "phys"})
	sub := func(id, net, cidr string, v int) model.Subnet {
		return model.Subnet{ID: id, NetworkID: net, IPVersion: v, CIDR: cidr, EnableDHCP: true}
	}
	port := func(id, net, inst, mac string, ips ...string) model.Port {
		p := model.Port{ID: id, NetworkID: net, AdminStateUp: true, MACAddress: mac, DeviceID: inst, DeviceOwner: model.DeviceOwnerCompute, InterfaceName: "eth0"}
		for _, ip := range ips {
			sn := net + "-v4"
			if strings.Contains(ip, ":") {
				sn = net + "-v6"
			}
			p.FixedIPs = append(p.FixedIPs, model.FixedIP{SubnetID: sn, IPAddress: ip})
		}
		return p
	}
	pb := port("p-b", "shared", "i-b", "fa:16:3e:00:00:0b", "10.0.0.11", "2001:db8::11")
	pb.AllowedAddressPairs = []model.AddressPair{{IPAddress: "10.0.0.99"}, {IPAddress: "10.0.0.100", MACAddress: "fa:16:3e:00:01:00"}, {IPAddress: "10.0.9.0/24"}}
	dhcpPort := port("p-dhcp", "shared", "dhcp-shared", "fa:16:3e:00:00:dd", "10.0.0.2")
	dhcpPort.DeviceOwner, dhcpPort.InterfaceName = model.DeviceOwnerDHCP, ""
	return &snapshot{
		networks: []model.Network{flat, lonely, shared},
		subnets: []model.Subnet{sub("shared-v4", "shared", "10.0.0.0/24", 4), sub("shared-v6", "shared", "2001:db8::/64", 6),
			sub("lonely-v4", "lonely", "10.1.0.0/24", 4), sub("flat-v4", "flat", "10.2.0.0/24", 4)},
		instances: []model.Instance{{ID: "i-a", Name: "va", Host: "a"}, {ID: "i-b", Name: "vb", Host: "b"},
			{ID: "i-a2", Name: "va2", Host: "a"}, {ID: "i-b2", Name: "vb2", Host: "b"}, {ID: "i-d", Name: "vd", Host: "d"}},
		ports: []model.Port{
			port("p-a", "shared", "i-a", "fa:16:3e:00:00:0a", "10.0.0.10"), pb, dhcpPort,
			port("p-a2", "lonely", "i-a2", "fa:16:3e:00:00:a2", "10.1.0.10"),
			port("p-b2", "flat", "i-b2", "fa:16:3e:00:00:b2", "10.2.0.10"),
			port("p-d", "shared", "i-d", "fa:16:3e:00:00:0d", "10.0.0.13"),
		},
		hosts: []model.Host{{Name: "a", VTEPAddress: "192.0.2.1"}, {Name: "b", VTEPAddress: "192.0.2.2"},
			{Name: "c", VTEPAddress: "192.0.2.3"}, {Name: "d"}},
	}
}

// TestOverlayDesired: what each host builds of the networks, by who it
// is: the bridges of the networks present there, a VXLAN device for the
// vxlan ones, with entries for the other hosts' ports and flooding to the
// other hosts that have the network only; nothing beyond the bridges on
// one box.
func TestOverlayDesired(t *testing.T) {
	for _, tc := range []struct {
		name      string
		self      hostView
		instances []string
		networks  []string
		fdb       map[string][]string // by network: "MAC dst VTEP"
		neigh     map[string][]string // by network: "IP lladdr MAC"
	}{
		{
			name: "a", self: hostView{name: "a", vtep: netip.MustParseAddr("192.0.2.1")},
			instances: []string{"i-a", "i-a2"}, networks: []string{"lonely", "shared"},
			fdb: map[string][]string{
				"shared": {"00:00:00:00:00:00 dst 192.0.2.2", "fa:16:3e:00:00:0b dst 192.0.2.2", "fa:16:3e:00:01:00 dst 192.0.2.2"},
				"lonely": nil,
			},
			neigh: map[string][]string{
				"shared": {"10.0.0.11 lladdr fa:16:3e:00:00:0b", "10.0.0.99 lladdr fa:16:3e:00:00:0b", "10.0.0.100 lladdr fa:16:3e:00:01:00",
					"2001:db8::11 lladdr fa:16:3e:00:00:0b", "fe80::f816:3eff:fe00:b lladdr fa:16:3e:00:00:0b"},
				"lonely": nil,
			},
		},
		{
			name: "b", self: hostView{name: "b", vtep: netip.MustParseAddr("192.0.2.2")},
			instances: []string{"i-b", "i-b2"}, networks: []string{"flat", "shared"},
			fdb: map[string][]string{
				// a has the network twice over (an instance, DHCP): one
				// flood entry.
				"shared": {"00:00:00:00:00:00 dst 192.0.2.1", "fa:16:3e:00:00:0a dst 192.0.2.1", "fa:16:3e:00:00:dd dst 192.0.2.1"},
			},
			// The DHCP port on a serves the IPv6 metadata (no router
			// has the network): b's proxy answers for its address.
			neigh: map[string][]string{"shared": {"10.0.0.2 lladdr fa:16:3e:00:00:dd", "10.0.0.10 lladdr fa:16:3e:00:00:0a",
				"fe80::a9fe:a9fe lladdr fa:16:3e:00:00:dd"}},
		},
		{name: "c, with nothing", self: hostView{name: "c", vtep: netip.MustParseAddr("192.0.2.3")}},
		{
			name: "one box", self: hostView{name: "a"}, instances: []string{"i-a", "i-a2"},
			networks: []string{"flat", "lonely", "shared"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := hostsSnapshot()
			s.self = tc.self
			d := computeDesired(s, "p-", "h")
			if got := sortedKeys(d.instances); !slices.Equal(got, tc.instances) {
				t.Errorf("instances %v, want %v", got, tc.instances)
			}
			if got := sortedKeys(d.networks); !slices.Equal(got, tc.networks) {
				t.Errorf("networks %v, want %v", got, tc.networks)
			}
			if got := sortedKeys(d.overlay); !slices.Equal(got, sortedKeys(tc.fdb)) {
				t.Errorf("VXLAN devices on %v, want %v", got, sortedKeys(tc.fdb))
			}
			for id, want := range tc.fdb {
				o := d.overlay[id]
				var got []string
				for _, e := range o.FDB {
					got = append(got, e.String())
				}
				slices.Sort(got)
				slices.Sort(want)
				if !slices.Equal(got, want) {
					t.Errorf("%s: forwarding entries %v, want %v", id, got, want)
				}
				var neigh []string
				for _, e := range o.Neigh {
					neigh = append(neigh, e.String())
				}
				w := slices.Clone(tc.neigh[id])
				slices.Sort(neigh)
				slices.Sort(w)
				if !slices.Equal(neigh, w) {
					t.Errorf("%s: neighbour entries %v, want %v", id, neigh, w)
				}
				if o.VXLAN.Local != tc.self.vtep || o.VXLAN.MTU != 1450 || o.VXLAN.Bridge != model.BridgeName(id) || o.VXLAN.Alias != dataplane.VXLANAlias(id) {
					t.Errorf("%s: device %+v", id, o.VXLAN)
				}
			}
			// Statuses: only of what is this host's.
			for k := range d.fixed {
				if k.kind == store.Ports && tc.self.multi() {
					t.Errorf("host %s reports %s", tc.self.name, k)
				}
			}
		})
	}
}

// TestFirewallMembersAcrossHosts: a remote group's members include the
// ports on other hosts, while the firewall filters this host's ports
// only.
func TestFirewallMembersAcrossHosts(t *testing.T) {
	s := hostsSnapshot()
	for i := range s.ports {
		s.ports[i].PortSecurityEnabled = true
		s.ports[i].SecurityGroups = []string{"sg"}
	}
	s.rules = []model.SecurityGroupRule{{ID: "r", SecurityGroupID: "sg", Direction: "ingress", EtherType: "IPv4", RemoteGroupID: ptr("sg")}}
	s.self = hostView{name: "a", vtep: netip.MustParseAddr("192.0.2.1")}
	d := computeDesired(s, "p-", "h")
	spec, _ := firewallSpec(s, d)
	if !spec.Groups["sgsg"].Has(netip.MustParsePrefix("10.0.0.11/32")) {
		t.Errorf("members of sg %v lack b's port 10.0.0.11", spec.Groups["sgsg"])
	}
	for _, p := range spec.Ports {
		if p.Interface == model.TapName("p-b") {
			t.Errorf("host a filters b's port: %+v", p)
		}
	}
	if len(spec.Ports) == 0 {
		t.Error("host a filters none of its ports")
	}
}

// TestHeartbeatRunsNoPass: another host's heartbeat is a store change the
// agent has nothing to do for: the revision it is converged at moves, and
// no pass runs; a change of the host's VTEP address does run one.
func TestHeartbeatRunsNoPass(t *testing.T) {
	e := newEnv(t, time.Hour)
	e.converge(e.put(testNetwork(), testSubnet(), testInstance("red"), testPort("red", "eth0", "10.9.0.2", "fa:16:3e:00:00:01")))
	passes := e.agent.Health().Passes
	h := model.Host{Name: "other", VTEPAddress: "192.0.2.9", Heartbeat: "2026-01-01T00:00:00Z"}
	e.converge(e.put(h))
	passes++ // the host's registration
	for i := range 5 {
		h.Heartbeat = time.Date(2026, 1, 1, 0, 0, i+1, 0, time.UTC).Format(time.RFC3339)
		e.converge(e.put(h))
	}
	if got := e.agent.Health().Passes; got != passes {
		t.Errorf("%d passes after the registration and five heartbeats, want %d (the registration's)", got, passes)
	}
	h.VTEPAddress = "192.0.2.10"
	e.converge(e.put(h))
	if got := e.agent.Health().Passes; got != passes+1 {
		t.Errorf("%d passes after a VTEP change, want %d", got, passes+1)
	}
}

// TestForeignInstanceRunsNoPass: another host's instance, created,
// renamed and deleted with no port, changes nothing this host programs:
// the agent counts itself converged without a pass; its own instance runs
// one.
func TestForeignInstanceRunsNoPass(t *testing.T) {
	e := newEnv(t, time.Hour)
	e.converge(e.put(testNetwork(), testSubnet(), testInstance("red"), testPort("red", "eth0", "10.9.0.2", "fa:16:3e:00:00:01")))
	passes := e.agent.Health().Passes
	other := model.Instance{ID: "inst-elsewhere", Name: "elsewhere", Host: "other"}
	e.converge(e.put(other))
	other.Name = "renamed"
	e.converge(e.put(other))
	e.converge(e.del(other))
	if got := e.agent.Health().Passes; got != passes {
		t.Errorf("%d passes after another host's instance came, changed and went, want %d (none)", got, passes)
	}
	e.converge(e.put(testInstance("blue")))
	if got := e.agent.Health().Passes; got != passes+1 {
		t.Errorf("%d passes after this host's instance came, want %d", got, passes+1)
	}
}

// TestMetadata6PortAgrees: the port other hosts take for the server of a
// network's IPv6 metadata is the one its own host serves it on.
func TestMetadata6PortAgrees(t *testing.T) {
	for _, tc := range []struct {
		name     string
		upA, upB bool // the router interfaces' admin state
		routerUp bool
		noQR     bool // no router: the DHCP port serves
	}{
		{"both up", true, true, true, false},
		{"first down", false, true, true, false},
		{"both down", false, false, true, false},
		{"router down", true, true, false, false},
		{"DHCP only", true, true, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := model.Network{ID: "n6", AdminStateUp: true, MTU: 1450, DHCPHost: "a"}
			n.SetSegment(model.Segment{NetworkType: model.NetworkTypeVXLAN, SegmentationID: 6})
			sn := model.Subnet{ID: "s6", NetworkID: "n6", IPVersion: 6, CIDR: "2001:db8:6::/64"}
			r1 := model.Router{ID: "r1", AdminStateUp: tc.routerUp, L3Host: "a"}
			r2 := model.Router{ID: "r2", AdminStateUp: true, L3Host: "a"}
			port := func(id, owner, dev, ip string, up bool) model.Port {
				return model.Port{ID: id, NetworkID: "n6", AdminStateUp: up, MACAddress: "fa:16:3e:00:06:0" + id[len(id)-1:], DeviceOwner: owner, DeviceID: dev,
					FixedIPs: []model.FixedIP{{SubnetID: "s6", IPAddress: ip}}}
			}
			ports := []model.Port{port("p1", model.DeviceOwnerDHCP, "dhcp-n6", "2001:db8:6::2", true),
				{ID: "p2", NetworkID: "n6", AdminStateUp: true, MACAddress: "fa:16:3e:00:06:02", DeviceOwner: model.DeviceOwnerCompute, DeviceID: "i-b", InterfaceName: "eth0",
					FixedIPs: []model.FixedIP{{SubnetID: "s6", IPAddress: "2001:db8:6::9"}}}}
			if !tc.noQR {
				ports = append(ports, port("p3", model.DeviceOwnerRouterInterface, "r1", "2001:db8:6::1", tc.upA),
					port("p4", model.DeviceOwnerRouterInterface, "r2", "2001:db8:6::3", tc.upB))
			}
			s := &snapshot{networks: []model.Network{n}, subnets: []model.Subnet{sn}, ports: ports, routers: []model.Router{r1, r2},
				instances: []model.Instance{{ID: "i-b", Name: "vb", Host: "b"}},
				hosts:     []model.Host{{Name: "a", VTEPAddress: "192.0.2.1"}, {Name: "b", VTEPAddress: "192.0.2.2"}}}
			s.self = hostView{name: "a", vtep: netip.MustParseAddr("192.0.2.1")}
			served := computeDesired(s, "p-", "h").metadata6["n6"].PortID
			s.self = hostView{name: "b", vtep: netip.MustParseAddr("192.0.2.2")}
			d := computeDesired(s, "p-", "h")
			var mac string
			for _, e := range d.overlay["n6"].Neigh {
				if e.IP == metadata.Addr6 {
					mac = e.MAC.String()
				}
			}
			want := ""
			for _, p := range ports {
				if p.ID == served {
					want = p.MACAddress
				}
			}
			if served == "" || mac != want {
				t.Errorf("a serves IPv6 metadata on port %q (MAC %s); b's proxy answers for it with %q", served, want, mac)
			}
		})
	}
}

// TestStatusesOnlyOfOwned: with many hosts an agent reports what is its
// host's only: not another host's router, its ports and floating IPs, nor
// a port nobody bound; on one box, every unplugged port as before.
func TestStatusesOnlyOfOwned(t *testing.T) {
	n := model.Network{ID: "n", AdminStateUp: true}
	sn := model.Subnet{ID: "s", NetworkID: "n", IPVersion: 4, CIDR: "10.5.0.0/24"}
	port := func(id, owner, dev string, host *string) model.Port {
		p := model.Port{ID: id, NetworkID: "n", AdminStateUp: true, MACAddress: "fa:16:3e:00:05:01", DeviceOwner: owner, DeviceID: dev,
			FixedIPs: []model.FixedIP{{SubnetID: "s", IPAddress: "10.5.0.9"}}}
		p.HostID = host
		return p
	}
	s := &snapshot{
		networks: []model.Network{n}, subnets: []model.Subnet{sn},
		routers: []model.Router{{ID: "r-b", AdminStateUp: true, L3Host: "b"}, {ID: "r-off", L3Host: "a", L3Unscheduled: true}},
		ports: []model.Port{port("qr-b", model.DeviceOwnerRouterInterface, "r-b", nil), port("qr-off", model.DeviceOwnerRouterInterface, "r-off", nil),
			port("plain-a", "", "", ptr("a")), port("plain", "", "", nil)},
		fips: []model.FloatingIP{{ID: "f-b", FloatingIPAddress: "198.51.100.9", RouterID: ptr("r-b"), PortID: ptr("plain"), FixedIPAddress: ptr("10.5.0.9")},
			{ID: "f-none", FloatingIPAddress: "198.51.100.10"}},
	}
	for _, tc := range []struct {
		name string
		self hostView
		want []string
	}{
		{"a, many hosts", hostView{name: "a", vtep: netip.MustParseAddr("192.0.2.1")},
			[]string{"ports/plain-a", "ports/qr-off", "routers/r-off"}},
		{"one box", hostView{name: "a"},
			[]string{"floatingips/f-none", "ports/plain", "ports/plain-a", "ports/qr-off", "routers/r-off"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s.self = tc.self
			d := computeDesired(s, "p-", "h")
			var got []string
			for k := range d.fixed {
				got = append(got, k.String())
			}
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Errorf("statuses of %v, want %v", got, tc.want)
			}
		})
	}
}

// TestFlatNetworkMappedInterface: a flat network with no nsnet:uplink is
// bridged, on each host that has it, to the interface that host maps its
// physical network to (--physical-interface-mappings), whatever its name
// there; a host that maps it not has the bridge alone, and nsnet:uplink
// keeps naming the interface itself.
func TestFlatNetworkMappedInterface(t *testing.T) {
	vtep := netip.MustParseAddr("192.0.2.2")
	for _, tc := range []struct {
		name     string
		self     hostView
		uplink   *string // the network's nsnet:uplink
		external bool
		want     string // the bridged interface; "" none
	}{
		{"mapped on b", hostView{name: "b", vtep: vtep, mappings: map[string]string{"phys": "eth9"}}, nil, false, "eth9"},
		{"mapped on b, external", hostView{name: "b", vtep: vtep, mappings: map[string]string{"phys": "ext-b"}}, nil, true, "ext-b"},
		{"another physical network mapped", hostView{name: "b", vtep: vtep, mappings: map[string]string{"other": "eth9"}}, nil, false, ""},
		{"nothing mapped", hostView{name: "b", vtep: vtep}, nil, false, ""},
		{"one box, mapped", hostView{mappings: map[string]string{"phys": "eth1"}}, nil, false, "eth1"},
		{"nsnet:uplink wins", hostView{name: "b", vtep: vtep, mappings: map[string]string{"phys": "eth9"}}, ptr("up0"), true, "up0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := hostsSnapshot()
			for i := range s.networks {
				if s.networks[i].ID == "flat" {
					s.networks[i].Uplink, s.networks[i].RouterExternal = tc.uplink, tc.external
				}
			}
			s.self = tc.self
			d := computeDesired(s, "p-", "h")
			spec, ok := d.networks["flat"]
			if !ok {
				t.Fatalf("host %q has no bridge for the flat network", tc.self.name)
			}
			if spec.Uplink != tc.want || spec.Bridged != (tc.want != "") {
				t.Errorf("flat network's uplink %q (bridged %v), want %q bridged", spec.Uplink, spec.Bridged, tc.want)
			}
		})
	}
	// A host without the network bridges nothing, mapped or not.
	s := hostsSnapshot()
	s.self = hostView{name: "a", vtep: netip.MustParseAddr("192.0.2.1"), mappings: map[string]string{"phys": "eth9"}}
	if spec, ok := computeDesired(s, "p-", "h").networks["flat"]; ok {
		t.Errorf("host a, where the flat network has no port, has its bridge: %+v", spec)
	}
}

// TestTrunkSubportHosts: a trunk's subport is on its parent's host, where
// it is wired to its network's bridge: the other hosts of the subport's
// network flood to that host and reach the subport's MAC there.
func TestTrunkSubportHosts(t *testing.T) {
	withTrunk := func() *snapshot {
		s := hostsSnapshot()
		sub := model.Network{ID: "sub", Name: "sub", AdminStateUp: true, MTU: 1450}
		sub.SetSegment(model.Segment{NetworkType: model.NetworkTypeVXLAN, SegmentationID: 12})
		s.networks = append(s.networks, sub)
		s.subnets = append(s.subnets, model.Subnet{ID: "sub-v4", NetworkID: "sub", IPVersion: 4, CIDR: "10.3.0.0/24"})
		// The parent is i-a2's port on "lonely" (host a); an instance on
		// b has a port on "sub".
		s.ports = append(s.ports,
			model.Port{ID: "p-sub", NetworkID: "sub", AdminStateUp: true, MACAddress: "fa:16:3e:00:00:5b", DeviceID: "trunk1",
				DeviceOwner: model.DeviceOwnerTrunkSubport, FixedIPs: []model.FixedIP{{SubnetID: "sub-v4", IPAddress: "10.3.0.5"}}},
			model.Port{ID: "p-b3", NetworkID: "sub", AdminStateUp: true, MACAddress: "fa:16:3e:00:00:b3", DeviceID: "i-b2",
				DeviceOwner: model.DeviceOwnerCompute, InterfaceName: "eth1", FixedIPs: []model.FixedIP{{SubnetID: "sub-v4", IPAddress: "10.3.0.6"}}})
		s.trunks = []model.Trunk{{ID: "trunk1", PortID: "p-a2", AdminStateUp: true,
			SubPorts: []model.SubPort{{PortID: "p-sub", SegmentationType: "vlan", SegmentationID: 100}}}}
		return s
	}
	for _, tc := range []struct {
		self hostView
		fdb  []string
	}{
		{hostView{name: "a", vtep: netip.MustParseAddr("192.0.2.1")}, []string{"00:00:00:00:00:00 dst 192.0.2.2", "fa:16:3e:00:00:b3 dst 192.0.2.2"}},
		{hostView{name: "b", vtep: netip.MustParseAddr("192.0.2.2")}, []string{"00:00:00:00:00:00 dst 192.0.2.1", "fa:16:3e:00:00:5b dst 192.0.2.1"}},
	} {
		t.Run(tc.self.name, func(t *testing.T) {
			s := withTrunk()
			s.self = tc.self
			d := computeDesired(s, "p-", "h")
			o, ok := d.overlay["sub"]
			if !ok {
				t.Fatalf("host %s has no VXLAN device on the subport's network", tc.self.name)
			}
			var got []string
			for _, e := range o.FDB {
				got = append(got, e.String())
			}
			slices.Sort(got)
			if !slices.Equal(got, tc.fdb) {
				t.Errorf("forwarding entries %v, want %v", got, tc.fdb)
			}
		})
	}
}
