package topology

import (
	"reflect"
	"strings"
	"testing"

	"github.com/nsnet/nsnet/internal/client"
	"github.com/nsnet/nsnet/internal/model"
)

// seedL3 is seed 004's shape: a router with SNAT to a public network, an
// instance with a floating IP, another reached through a port forward.
const seedL3 = `
name: l3
networks:
  - name: public
    external: true
    subnets: [{name: public-v4, cidr: 198.51.100.0/24, gateway_ip: 198.51.100.1}]
  - name: private
    subnets: [{name: private-v4, cidr: 10.0.0.0/24}]
ports:
  - {name: vm1-eth0, network: private, fixed_ips: [{ip_address: 10.0.0.11}]}
  - {name: vm2-eth0, network: private, fixed_ips: [{ip_address: 10.0.0.12}]}
routers:
  - name: r1
    external_gateway: {network: public, fixed_ips: [{ip_address: 198.51.100.2}]}
    interfaces: [private-v4]
    routes: [{destination: 192.168.50.0/24, nexthop: 10.0.0.254}]
floating_ips:
  - {address: 198.51.100.10, network: public, port: vm1-eth0}
  - {address: 198.51.100.11, network: public}
port_forwardings:
  - {floating_ip: 198.51.100.11, protocol: tcp, external_port: 8080, internal_port: 80, port: vm2-eth0, internal_ip_address: 10.0.0.12}
`

const markL3 = "nsnet:topology=l3"

// l3State is nsnet after applying seedL3.
func l3State() State {
	std := model.Standard{Description: markL3}
	gw, gw1 := "198.51.100.1", "10.0.0.1"
	port, fixed, router := "p-vm1", "10.0.0.11", "r-1"
	ext, in := 8080, 80
	return State{
		Networks: []model.Network{
			{ID: "n-pub", Name: "public", RouterExternal: true, AdminStateUp: true, MTU: 1500, PortSecurityEnabled: true, Standard: std},
			{ID: "n-priv", Name: "private", AdminStateUp: true, MTU: 1500, PortSecurityEnabled: true, Standard: std},
		},
		Subnets: []model.Subnet{
			{ID: "s-pub", Name: "public-v4", NetworkID: "n-pub", IPVersion: 4, CIDR: "198.51.100.0/24", GatewayIP: &gw, EnableDHCP: true, Standard: std},
			{ID: "s-priv", Name: "private-v4", NetworkID: "n-priv", IPVersion: 4, CIDR: "10.0.0.0/24", GatewayIP: &gw1, EnableDHCP: true, Standard: std},
		},
		Ports: []model.Port{
			{ID: "p-vm1", Name: "vm1-eth0", NetworkID: "n-priv", AdminStateUp: true, PortSecurityEnabled: true,
				FixedIPs: []model.FixedIP{{SubnetID: "s-priv", IPAddress: "10.0.0.11"}}, Standard: std},
			{ID: "p-vm2", Name: "vm2-eth0", NetworkID: "n-priv", AdminStateUp: true, PortSecurityEnabled: true,
				FixedIPs: []model.FixedIP{{SubnetID: "s-priv", IPAddress: "10.0.0.12"}}, Standard: std},
			{ID: "p-qr", NetworkID: "n-priv", DeviceOwner: model.DeviceOwnerRouterInterface, DeviceID: "r-1",
				FixedIPs: []model.FixedIP{{SubnetID: "s-priv", IPAddress: "10.0.0.1"}}},
		},
		Routers: []model.Router{{ID: "r-1", Name: "r1", AdminStateUp: true, Standard: std,
			ExternalGatewayInfo: &model.ExternalGatewayInfo{NetworkID: "n-pub", EnableSNAT: true,
				ExternalFixedIPs: []model.FixedIP{{SubnetID: "s-pub", IPAddress: "198.51.100.2"}}},
			Routes: []model.HostRoute{{Destination: "192.168.50.0/24", NextHop: "10.0.0.254"}}}},
		FloatingIPs: []model.FloatingIP{
			{ID: "f-10", FloatingIPAddress: "198.51.100.10", FloatingNetworkID: "n-pub", PortID: &port, FixedIPAddress: &fixed, RouterID: &router, Standard: std},
			{ID: "f-11", FloatingIPAddress: "198.51.100.11", FloatingNetworkID: "n-pub", RouterID: &router, Standard: std},
		},
		PortForwardings: []model.PortForwarding{{ID: "pf-1", FloatingIPID: "f-11", Protocol: "tcp", ExternalPort: &ext, InternalPort: &in,
			InternalIPAddress: "10.0.0.12", InternalPortID: "p-vm2", Description: markL3}},
	}
}

func TestPlanL3CreateAll(t *testing.T) {
	p, err := PlanApply(mustParse(t, seedL3), State{}, ApplyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"create network public", "create network private", "create subnet public-v4", "create subnet private-v4",
		"create port vm1-eth0", "create port vm2-eth0",
		"create router r1",
		"update router r1 (attach subnet private-v4)",
		"update router r1: routes [] → [192.168.50.0/24 via 10.0.0.254]",
		"create floatingip 198.51.100.10",
		"create floatingip 198.51.100.11",
		"create port_forwarding 198.51.100.11 tcp/8080",
	}
	if got := lines(p); !reflect.DeepEqual(got, want) {
		t.Fatalf("plan:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	bodies := map[string]map[string]any{
		"create router r1": {"name": "r1", "description": markL3, "external_gateway_info": map[string]any{
			"network_id":         Ref{client.Networks, "public", ""},
			"external_fixed_ips": []any{map[string]any{"ip_address": "198.51.100.2"}}}},
		"update router r1 (attach subnet private-v4)": {"subnet_id": Ref{client.Subnets, "private-v4", ""}},
		"create floatingip 198.51.100.10": {"description": markL3, "floating_network_id": Ref{client.Networks, "public", ""},
			"floating_ip_address": "198.51.100.10", "port_id": Ref{client.Ports, "vm1-eth0", ""}},
		"create port_forwarding 198.51.100.11 tcp/8080": {"description": markL3, "protocol": "tcp", "external_port": 8080,
			"internal_port": 80, "internal_port_id": Ref{client.Ports, "vm2-eth0", ""}, "internal_ip_address": "10.0.0.12"},
	}
	for i, s := range p.Steps {
		if want, ok := bodies[lines(p)[i]]; ok && !reflect.DeepEqual(s.Attrs, want) {
			t.Errorf("%s body:\n got %#v\nwant %#v", lines(p)[i], s.Attrs, want)
		}
	}
	if pf := p.Steps[len(p.Steps)-1]; pf.Parent != (Ref{client.FloatingIPs, "198.51.100.11", ""}) {
		t.Errorf("port forwarding parent = %#v", pf.Parent)
	}
}

func TestPlanL3Idempotent(t *testing.T) {
	for _, prune := range []bool{false, true} {
		p, err := PlanApply(mustParse(t, seedL3), l3State(), ApplyOptions{Prune: prune})
		if err != nil {
			t.Fatal(err)
		}
		if p.Changes() {
			t.Errorf("prune=%v: applying to the state it makes changes:\n%s", prune, strings.Join(lines(p), "\n"))
		}
	}
}

func TestPlanL3Updates(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*State)
		file   func(string) string
		prune  bool
		want   []string
	}{
		{
			name:   "gateway cleared by hand",
			mutate: func(s *State) { s.Routers[0].ExternalGatewayInfo = nil },
			want:   []string{"update router r1: external_gateway (none) → public; external_fixed_ips [] → [198.51.100.2]"},
		},
		{
			name: "snat turned off in the file",
			file: func(s string) string {
				return strings.Replace(s, "{network: public, fixed_ips", "{network: public, enable_snat: false, fixed_ips", 1)
			},
			want: []string{"update router r1: enable_snat true → false"},
		},
		{
			name:   "interface detached by hand",
			mutate: func(s *State) { s.Ports = s.Ports[:2] },
			want:   []string{"update router r1 (attach subnet private-v4)"},
		},
		{
			name: "interface no longer listed",
			file: func(s string) string {
				return strings.Replace(strings.Replace(s, "interfaces: [private-v4]", "interfaces: []", 1), "    routes: [{destination: 192.168.50.0/24, nexthop: 10.0.0.254}]\n", "", 1)
			},
			want: []string{"update router r1 (detach subnet private-v4)"},
		},
		{
			name:   "routes changed by hand",
			mutate: func(s *State) { s.Routers[0].Routes = nil },
			want:   []string{"update router r1: routes [] → [192.168.50.0/24 via 10.0.0.254]"},
		},
		{
			name:   "floating IP disassociated by hand",
			mutate: func(s *State) { s.FloatingIPs[0].PortID, s.FloatingIPs[0].FixedIPAddress = nil, nil },
			want:   []string{"update floatingip 198.51.100.10: port (none) → vm1-eth0"},
		},
		{
			name:   "forwarding retargeted by hand",
			mutate: func(s *State) { p := 81; s.PortForwardings[0].InternalPort = &p },
			want:   []string{"update port_forwarding 198.51.100.11 tcp/8080: internal_port 81 → 80"},
		},
		{
			name: "pruning a router detaches it first",
			file: func(s string) string {
				s = s[:strings.Index(s, "routers:")]
				return s
			},
			prune: true,
			want: []string{
				"delete port_forwarding 198.51.100.11 tcp/8080 (not in the file)",
				"delete floatingip 198.51.100.10 (not in the file)",
				"delete floatingip 198.51.100.11 (not in the file)",
				"update router r1: routes [192.168.50.0/24 via 10.0.0.254] → []",
				"update router r1 (detach subnet private-v4)",
				"delete router r1 (not in the file)",
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := seedL3
			if tc.file != nil {
				src = tc.file(src)
			}
			st := l3State()
			if tc.mutate != nil {
				tc.mutate(&st)
			}
			p, err := PlanApply(mustParse(t, src), st, ApplyOptions{Prune: tc.prune})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, l := range lines(p) {
				if !strings.HasPrefix(l, "unchanged ") {
					got = append(got, l)
				}
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("changes:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestPlanL3Destroy(t *testing.T) {
	p, err := PlanDestroy(mustParse(t, seedL3), l3State())
	if err != nil {
		t.Fatal(err)
	}
	got := lines(p)[:6]
	want := []string{
		"delete port_forwarding 198.51.100.11 tcp/8080",
		"delete floatingip 198.51.100.11",
		"delete floatingip 198.51.100.10",
		"update router r1: routes [192.168.50.0/24 via 10.0.0.254] → []",
		"update router r1 (detach subnet private-v4)",
		"delete router r1",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("destroy:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if pf := p.Steps[0]; pf.Parent.ID != "f-11" {
		t.Errorf("port forwarding delete has parent %#v", pf.Parent)
	}
}

func TestL3FileErrors(t *testing.T) {
	tests := []struct{ name, src, want string }{
		{"floating IP without address", "name: x\nfloating_ips: [{network: public}]\n", "address:"},
		{"floating IP twice", "name: x\nfloating_ips: [{address: 198.51.100.9, network: p}, {address: 198.51.100.9, network: p}]\n", "listed twice"},
		{"fixed ip without port", "name: x\nfloating_ips: [{address: 198.51.100.9, network: p, fixed_ip_address: 10.0.0.1}]\n", "fixed_ip_address needs a port"},
		{"gateway without network", "name: x\nrouters: [{name: r, external_gateway: {enable_snat: false}}]\n", "external_gateway needs a network"},
		{"interface twice", "name: x\nrouters: [{name: r, interfaces: [a, a]}]\n", "subnet a is listed twice"},
		{"bad route", "name: x\nrouters: [{name: r, routes: [{destination: 10.0.0.1/8, nexthop: 10.0.0.1}]}]\n", "routes[0].destination"},
		{"forwarding bad protocol", "name: x\nport_forwardings: [{floating_ip: 198.51.100.9, protocol: icmp, external_port: 1, internal_port: 1, port: p, internal_ip_address: 10.0.0.1}]\n", "want tcp or udp"},
		{"forwarding bad port", "name: x\nport_forwardings: [{floating_ip: 198.51.100.9, protocol: tcp, external_port: 0, internal_port: 1, port: p, internal_ip_address: 10.0.0.1}]\n", "external_port 0"},
		{"unknown router key", "name: x\nrouters: [{name: r, gateway: x}]\n", `unknown key "gateway"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(tc.src), "t.yaml")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}
