package topology

import (
	"reflect"
	"strings"
	"testing"

	"github.com/nsnet/nsnet/internal/client"
	"github.com/nsnet/nsnet/internal/model"
)

const seed = `
name: seed
instances:
  - name: red
  - name: blue
networks:
  - name: bridge
    mtu: 1500
    subnets:
      - name: bridge-v4
        cidr: 192.168.24.0/24
        gateway_ip: 192.168.24.1
        dns_nameservers: [192.168.24.1]
ports:
  - name: red-eth0
    network: bridge
    instance: red
    interface_name: eth0
    fixed_ips: [{subnet: bridge-v4, ip_address: 192.168.24.10}]
  - name: blue-eth0
    network: bridge
    instance: blue
    fixed_ips: [{subnet: bridge-v4}]
`

const mark = "nsnet:topology=seed"

// seedState is nsnet after applying seed: what the server would have made.
func seedState() State {
	gw := "192.168.24.1"
	return State{
		Instances: []model.Instance{
			{ID: "i-red", Name: "red", Standard: model.Standard{Description: mark}},
			{ID: "i-blue", Name: "blue", Standard: model.Standard{Description: mark}},
		},
		Networks: []model.Network{
			{ID: "n-bridge", Name: "bridge", MTU: 1500, AdminStateUp: true, PortSecurityEnabled: true,
				Standard: model.Standard{Description: mark}},
		},
		Subnets: []model.Subnet{
			{ID: "s-v4", Name: "bridge-v4", NetworkID: "n-bridge", IPVersion: 4, CIDR: "192.168.24.0/24",
				GatewayIP: &gw, EnableDHCP: true, DNSNameservers: []string{"192.168.24.1"},
				AllocationPools: []model.AllocationPool{{Start: "192.168.24.2", End: "192.168.24.254"}},
				HostRoutes:      []model.HostRoute{},
				Standard:        model.Standard{Description: mark}},
		},
		Ports: []model.Port{
			{ID: "p-red", Name: "red-eth0", NetworkID: "n-bridge", AdminStateUp: true, MACAddress: "fa:16:3e:00:00:0a",
				FixedIPs: []model.FixedIP{{SubnetID: "s-v4", IPAddress: "192.168.24.10"}},
				DeviceID: "i-red", DeviceOwner: model.DeviceOwnerCompute, InterfaceName: "eth0",
				Standard: model.Standard{Description: mark}},
			{ID: "p-blue", Name: "blue-eth0", NetworkID: "n-bridge", AdminStateUp: true, MACAddress: "fa:16:3e:00:00:0b",
				FixedIPs: []model.FixedIP{{SubnetID: "s-v4", IPAddress: "192.168.24.2"}},
				DeviceID: "i-blue", DeviceOwner: model.DeviceOwnerCompute, InterfaceName: "eth0",
				Standard: model.Standard{Description: mark}},
		},
	}
}

func lines(p *Plan) []string {
	var out []string
	for _, s := range p.Steps {
		out = append(out, s.Action.Verb()+" "+s.String())
	}
	return out
}

func TestPlanCreateAll(t *testing.T) {
	f := mustParse(t, seed)
	p, err := PlanApply(f, State{}, ApplyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"create instance red",
		"create instance blue",
		"create network bridge",
		"create subnet bridge-v4",
		"create port red-eth0",
		"create port blue-eth0",
	}
	if got := lines(p); !reflect.DeepEqual(got, want) {
		t.Fatalf("plan:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	bodies := map[string]map[string]any{
		"red":    {"name": "red", "description": mark},
		"bridge": {"name": "bridge", "description": mark, "mtu": 1500},
		"bridge-v4": {"name": "bridge-v4", "description": mark,
			"network_id": Ref{client.Networks, "bridge", ""}, "cidr": "192.168.24.0/24",
			"gateway_ip": "192.168.24.1", "dns_nameservers": []any{"192.168.24.1"}},
		"red-eth0": {"name": "red-eth0", "description": mark, "network_id": Ref{client.Networks, "bridge", ""},
			"fixed_ips":    []any{map[string]any{"subnet_id": Ref{client.Subnets, "bridge-v4", ""}, "ip_address": "192.168.24.10"}},
			"device_id":    Ref{client.Instances, "red", ""},
			"device_owner": "compute:nsnet", "nsnet:interface_name": "eth0"},
		"blue-eth0": {"name": "blue-eth0", "description": mark, "network_id": Ref{client.Networks, "bridge", ""},
			"fixed_ips":    []any{map[string]any{"subnet_id": Ref{client.Subnets, "bridge-v4", ""}}},
			"device_id":    Ref{client.Instances, "blue", ""},
			"device_owner": "compute:nsnet"},
	}
	for _, s := range p.Steps {
		want, ok := bodies[s.Name]
		if ok && !reflect.DeepEqual(s.Attrs, want) {
			t.Errorf("%s body:\n got %#v\nwant %#v", s.Name, s.Attrs, want)
		}
	}
	if !p.Changes() || Summary(p, false) != "6 to create" || Summary(p, true) != "6 created" {
		t.Errorf("summary = %q / %q", Summary(p, false), Summary(p, true))
	}
}

func TestPlanIdempotent(t *testing.T) {
	f := mustParse(t, seed)
	for _, prune := range []bool{false, true} {
		p, err := PlanApply(f, seedState(), ApplyOptions{Prune: prune})
		if err != nil {
			t.Fatal(err)
		}
		if p.Changes() {
			t.Errorf("prune=%v: applying to the state it makes changes:\n%s", prune, strings.Join(lines(p), "\n"))
		}
		if Summary(p, true) != "6 unchanged" {
			t.Errorf("summary = %q", Summary(p, true))
		}
		for _, s := range p.Steps {
			if s.Attrs != nil {
				t.Errorf("unchanged %s carries a body %v", s.Name, s.Attrs)
			}
		}
	}
}

// TestPlanUpdates changes one thing at a time in the state (as if someone
// had changed nsnet by hand) and checks that the plan puts it back with the
// updatable attributes only.
func TestPlanUpdates(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*State)
		file   func(string) string // edits the file; nil keeps seed
		want   []string            // the changed steps
		attrs  map[string]any      // body of the only changed step
	}{
		{
			name:   "mtu",
			mutate: func(s *State) { s.Networks[0].MTU = 9000 },
			want:   []string{"update network bridge: mtu 9000 → 1500"},
			attrs:  map[string]any{"mtu": 1500},
		},
		{
			name:  "file sets a boolean",
			file:  func(s string) string { return strings.Replace(s, "mtu: 1500", "mtu: 1500\n    shared: true", 1) },
			want:  []string{"update network bridge: shared false → true"},
			attrs: map[string]any{"shared": true},
		},
		{
			name:  "gateway removed",
			file:  func(s string) string { return strings.Replace(s, "gateway_ip: 192.168.24.1", "gateway_ip: none", 1) },
			want:  []string{"update subnet bridge-v4: gateway_ip 192.168.24.1 → none"},
			attrs: map[string]any{"gateway_ip": nil},
		},
		{
			name:   "dns order matters",
			mutate: func(s *State) { s.Subnets[0].DNSNameservers = []string{"192.168.24.1", "192.0.2.53"} },
			want:   []string{"update subnet bridge-v4: dns_nameservers [192.168.24.1, 192.0.2.53] → [192.168.24.1]"},
			attrs:  map[string]any{"dns_nameservers": []any{"192.168.24.1"}},
		},
		{
			name: "pools compare as sets",
			file: func(s string) string {
				return strings.Replace(s, "dns_nameservers: [192.168.24.1]",
					"dns_nameservers: [192.168.24.1]\n        allocation_pools: [{start: 192.168.24.100, end: 192.168.24.199}, {start: 192.168.24.2, end: 192.168.24.9}]", 1)
			},
			mutate: func(s *State) {
				s.Subnets[0].AllocationPools = []model.AllocationPool{{Start: "192.168.24.2", End: "192.168.24.9"}, {Start: "192.168.24.100", End: "192.168.24.199"}}
			},
		},
		{
			name:   "address moved",
			mutate: func(s *State) { s.Ports[0].FixedIPs[0].IPAddress = "192.168.24.99" },
			want:   []string{"update port red-eth0: fixed_ips [192.168.24.99 (bridge-v4)] → [192.168.24.10 (bridge-v4)]"},
			attrs:  map[string]any{"fixed_ips": []any{map[string]any{"subnet_id": Ref{client.Subnets, "bridge-v4", "s-v4"}, "ip_address": "192.168.24.10"}}},
		},
		{
			name: "a loose fixed IP accepts whatever address it got",
			mutate: func(s *State) {
				s.Ports[1].FixedIPs[0].IPAddress = "192.168.24.77"
			},
		},
		{
			name: "an extra address is removed, the kept one is pinned",
			mutate: func(s *State) {
				s.Ports[1].FixedIPs = append(s.Ports[1].FixedIPs, model.FixedIP{SubnetID: "s-v4", IPAddress: "192.168.24.3"})
			},
			want:  []string{"update port blue-eth0: fixed_ips [192.168.24.2 (bridge-v4), 192.168.24.3 (bridge-v4)] → [any (bridge-v4)]"},
			attrs: map[string]any{"fixed_ips": []any{map[string]any{"subnet_id": "s-v4", "ip_address": "192.168.24.2"}}},
		},
		{
			name:   "unplugged port is plugged back, keeping its interface name",
			mutate: func(s *State) { s.Ports[0].DeviceID, s.Ports[0].DeviceOwner, s.Ports[0].InterfaceName = "", "", "" },
			want:   []string{"update port red-eth0: instance (none) → red; interface_name (none) → eth0"},
			attrs: map[string]any{"device_id": Ref{client.Instances, "red", "i-red"}, "device_owner": "compute:nsnet",
				"nsnet:interface_name": "eth0"},
		},
		{
			name:   "port moved to another instance names its interface",
			mutate: func(s *State) { s.Ports[0].DeviceID = "i-blue" },
			want:   []string{"update port red-eth0: instance blue → red"},
			attrs: map[string]any{"device_id": Ref{client.Instances, "red", "i-red"}, "device_owner": "compute:nsnet",
				"nsnet:interface_name": "eth0"},
		},
		{
			name:   "interface renamed",
			mutate: func(s *State) { s.Ports[0].InterfaceName = "eth1" },
			want:   []string{"update port red-eth0: interface_name eth1 → eth0"},
			attrs:  map[string]any{"nsnet:interface_name": "eth0"},
		},
		{
			name: "mac compared in canonical form",
			file: func(s string) string {
				return strings.Replace(s, "interface_name: eth0", "interface_name: eth0\n    mac_address: FA-16-3E-00-00-0A", 1)
			},
		},
		{
			name: "mac changed",
			file: func(s string) string {
				return strings.Replace(s, "interface_name: eth0", "interface_name: eth0\n    mac_address: fa:16:3e:00:00:aa", 1)
			},
			want:  []string{"update port red-eth0: mac_address fa:16:3e:00:00:0a → fa:16:3e:00:00:aa"},
			attrs: map[string]any{"mac_address": "fa:16:3e:00:00:aa"},
		},
		{
			name: "port configured by DHCP",
			file: func(s string) string {
				return strings.Replace(s, "interface_name: eth0", "interface_name: eth0\n    dhcp_client: true", 1)
			},
			want:  []string{"update port red-eth0: nsnet:dhcp_client false → true"},
			attrs: map[string]any{"nsnet:dhcp_client": true},
		},
		{
			name: "fields the file leaves out are not compared",
			mutate: func(s *State) {
				s.Networks[0].Shared = true
				s.Subnets[0].EnableDHCP = false
				s.Ports[0].MACAddress = "fa:16:3e:99:99:99"
			},
		},
		{
			name:   "hand-made resource is taken over",
			mutate: func(s *State) { s.Instances[0].Description = "made by hand" },
			want:   []string{`update instance red: description "made by hand" → "nsnet:topology=seed" (taken over: it was not made by this topology)`},
			attrs:  map[string]any{"description": mark},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := seed
			if tt.file != nil {
				src = tt.file(src)
			}
			st := seedState()
			if tt.mutate != nil {
				tt.mutate(&st)
			}
			p, err := PlanApply(mustParse(t, src), st, ApplyOptions{})
			if err != nil {
				t.Fatal(err)
			}
			var changed []string
			var last Step
			for _, s := range p.Steps {
				if s.Action != Unchanged {
					changed = append(changed, s.Action.Verb()+" "+s.String())
					last = s
				}
			}
			if !reflect.DeepEqual(changed, tt.want) {
				t.Fatalf("changes:\n%s\nwant:\n%s", strings.Join(changed, "\n"), strings.Join(tt.want, "\n"))
			}
			if tt.attrs != nil && !reflect.DeepEqual(last.Attrs, tt.attrs) {
				t.Errorf("body:\n got %#v\nwant %#v", last.Attrs, tt.attrs)
			}
			if len(changed) == 1 && last.ID == "" {
				t.Error("an update must carry the id of what it updates")
			}
		})
	}
}

func TestPlanErrors(t *testing.T) {
	tests := []struct {
		name   string
		src    string
		mutate func(*State)
		want   []string
	}{
		{
			name:   "cidr cannot change",
			mutate: func(s *State) { s.Subnets[0].CIDR = "10.0.0.0/24" },
			want: []string{"t.yaml:10: subnet bridge-v4: cidr is 10.0.0.0/24 in nsnet but 192.168.24.0/24 in the file, " +
				"and the API cannot change a subnet's cidr; delete it first (nsnet subnet delete bridge-v4) or give it another name in the file"},
		},
		{
			name: "subnet on another network",
			mutate: func(s *State) {
				s.Networks = append(s.Networks, model.Network{ID: "n-other", Name: "other"})
				s.Subnets[0].NetworkID = "n-other"
			},
			want: []string{"subnet bridge-v4: network is other in nsnet but bridge in the file"},
		},
		{
			name:   "port network cannot change",
			mutate: func(s *State) { s.Ports[0].NetworkID = "n-gone" },
			want:   []string{"t.yaml:15: port red-eth0: network is n-gone in nsnet but bridge in the file"},
		},
		{
			name:   "another topology's resource",
			mutate: func(s *State) { s.Networks[0].Description = "nsnet:topology=lab" },
			want:   []string{`t.yaml:7: network bridge belongs to topology lab (its description says "nsnet:topology=lab")`},
		},
		{
			name: "ambiguous name in nsnet",
			mutate: func(s *State) {
				s.Instances = append(s.Instances, model.Instance{ID: "i-red2", Name: "red"})
			},
			want: []string{"t.yaml:4: instance red: 2 instances in nsnet have this name (i-red, i-red2)"},
		},
		{
			name: "reference to nothing",
			src:  "name: seed\nports: [{name: p, network: nowhere, instance: ghost, fixed_ips: [{subnet: s9}]}]\n",
			want: []string{
				"t.yaml:2: port p: network nowhere is neither in the file nor in nsnet",
				"t.yaml:2: port p: instance ghost is neither in the file nor in nsnet",
				"t.yaml:2: port p: fixed_ips[0]: subnet s9 is neither in the file nor in nsnet",
			},
		},
		{
			name: "existing subnet on another network than the port's",
			src: "name: seed\nnetworks: [{name: other}]\n" +
				"ports: [{name: p, network: bridge, fixed_ips: [{subnet: bridge-v4}]}, {name: q, network: other, fixed_ips: [{subnet: bridge-v4}]}]\n",
			mutate: func(s *State) { s.Networks = append(s.Networks, model.Network{ID: "n-other", Name: "other"}) },
			want:   []string{"port q: fixed_ips[0]: subnet bridge-v4 is on network bridge, not on the port's network other"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := tt.src
			if src == "" {
				src = seed
			}
			st := seedState()
			if tt.mutate != nil {
				tt.mutate(&st)
			}
			p, err := PlanApply(mustParse(t, src), st, ApplyOptions{})
			if err == nil {
				t.Fatalf("planned without error:\n%s", strings.Join(lines(p), "\n"))
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nwant it to contain %q", err, w)
				}
			}
		})
	}
}

func TestPlanReferencesOutsideTheFile(t *testing.T) {
	// A port in a small file on a network another file (or a person) made.
	f := mustParse(t, "name: extra\ninstances: [{name: green}]\n"+
		"ports: [{name: green-eth0, network: bridge, instance: green, fixed_ips: [{subnet: bridge-v4, ip_address: 192.168.24.11}]}]\n")
	p, err := PlanApply(f, seedState(), ApplyOptions{Prune: true})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"create instance green", "create port green-eth0"}
	if got := lines(p); !reflect.DeepEqual(got, want) {
		t.Fatalf("plan = %v, want %v (and nothing of seed pruned)", got, want)
	}
	body := p.Steps[1].Attrs
	if body["network_id"] != (Ref{client.Networks, "bridge", "n-bridge"}) || body["device_id"] != (Ref{client.Instances, "green", ""}) {
		t.Errorf("body = %#v", body)
	}
}

func TestPlanPrune(t *testing.T) {
	st := seedState()
	// A hand-made port on the bridge: not the topology's, never pruned.
	st.Ports = append(st.Ports, model.Port{ID: "p-hand", Name: "debug", NetworkID: "n-bridge"})
	// blue and its port leave the file; bridge gets a second subnet.
	src := strings.Replace(seed, "  - name: blue\n", "", 1)
	src = src[:strings.Index(src, "  - name: blue-eth0")]
	f := mustParse(t, src)

	p, err := PlanApply(f, st, ApplyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Changes() {
		t.Errorf("without --prune nothing is deleted:\n%s", strings.Join(lines(p), "\n"))
	}

	p, err = PlanApply(f, st, ApplyOptions{Prune: true})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"delete port blue-eth0 (not in the file)",
		"unchanged instance red",
		"unchanged network bridge",
		"unchanged subnet bridge-v4",
		"unchanged port red-eth0",
		"delete instance blue (not in the file)",
	}
	if got := lines(p); !reflect.DeepEqual(got, want) {
		t.Fatalf("plan:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if p.Steps[0].ID != "p-blue" || p.Steps[5].ID != "i-blue" {
		t.Errorf("deletes must carry ids: %+v", p.Steps)
	}
	if got := Summary(p, false); got != "2 to delete, 4 unchanged" {
		t.Errorf("summary = %q", got)
	}
}

func TestPlanDestroy(t *testing.T) {
	f := mustParse(t, seed)
	st := seedState()
	st.Ports = st.Ports[:1] // blue-eth0 is gone already
	st.Ports = append(st.Ports, model.Port{ID: "p-hand", Name: "debug", NetworkID: "n-bridge"})
	p, err := PlanDestroy(f, st)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"absent port blue-eth0 (already gone)",
		"delete port red-eth0",
		"delete subnet bridge-v4",
		"delete network bridge",
		"delete instance blue",
		"delete instance red",
	}
	if got := lines(p); !reflect.DeepEqual(got, want) {
		t.Fatalf("plan:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// Destroying on an empty nsnet does nothing, happily.
	p, err = PlanDestroy(f, State{})
	if err != nil || p.Changes() || Summary(p, true) != "6 absent" {
		t.Errorf("empty destroy: %v, %v", Summary(p, true), err)
	}

	// Another topology's resource is not ours to delete.
	st = seedState()
	st.Networks[0].Description = "nsnet:topology=lab"
	if _, err := PlanDestroy(f, st); err == nil || !strings.Contains(err.Error(), "network bridge belongs to topology lab") {
		t.Errorf("err = %v", err)
	}
}

func TestResolve(t *testing.T) {
	created := map[client.Collection]map[string]string{client.Subnets: {"s1": "id-s1"}}
	body := map[string]any{
		"network_id": Ref{client.Networks, "n", "id-n"},
		"fixed_ips":  []any{map[string]any{"subnet_id": Ref{client.Subnets, "s1", ""}, "ip_address": "10.0.0.5"}},
		"gateway_ip": nil,
		"mtu":        1500,
	}
	got, err := resolve(body, created)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"network_id": "id-n",
		"fixed_ips":  []any{map[string]any{"subnet_id": "id-s1", "ip_address": "10.0.0.5"}},
		"gateway_ip": nil,
		"mtu":        1500,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("resolve = %#v", got)
	}
	if _, err := resolve(map[string]any{"device_id": Ref{client.Instances, "x", ""}}, created); err == nil {
		t.Error("a Ref to nothing created must fail")
	}
}
