package topology

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

func parse(t *testing.T, src string) (*File, error) {
	t.Helper()
	return Parse(strings.NewReader(src), "t.yaml")
}

func mustParse(t *testing.T, src string) *File {
	t.Helper()
	f, err := parse(t, src)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return f
}

func TestParseExample(t *testing.T) {
	raw, err := os.Open("../../examples/seed-bridge.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	f, err := Parse(raw, "seed-bridge.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if f.Name != "seed-bridge" || len(f.Instances) != 3 || len(f.Networks) != 1 || len(f.Subnets) != 1 || len(f.Ports) != 3 {
		t.Fatalf("parsed %+v", f)
	}
	sn := f.Subnets[0]
	if sn.Network != "bridge" || sn.CIDR != "192.168.24.0/24" || *sn.GatewayIP != "192.168.24.1" {
		t.Errorf("subnet = %+v", sn)
	}
	for i, want := range []string{"192.168.24.10", "192.168.24.11", "192.168.24.12"} {
		if got := f.Ports[i].FixedIPs; len(got) != 1 || got[0].IPAddress != want || got[0].Subnet != "bridge-v4" {
			t.Errorf("port %d fixed_ips = %+v, want %s", i, got, want)
		}
	}
}

func TestParseShapes(t *testing.T) {
	f := mustParse(t, `
name: shapes
networks:
  - name: a
    mtu: 9000
    shared: true
    external: false
    subnets:
      - name: a1
        cidr: 10.0.0.0/24
        dns_nameservers: []
        gateway_ip: none
subnets:
  - name: b1
    network: a
    cidr: 10.0.1.0/24
    allocation_pools: [{start: 10.0.1.10, end: 10.0.1.20}]
    host_routes: [{destination: 10.1.0.0/16, nexthop: 10.0.1.1}]
    enable_dhcp: false
    ip_version: 4
ports:
  - name: p
    network: a
    fixed_ips:
      - subnet: a1
      - ip_address: 10.0.1.5
`)
	n := f.Networks[0]
	if *n.MTU != 9000 || !*n.Shared || *n.External || n.AdminStateUp != nil || n.Subnets != nil {
		t.Errorf("network = %+v", n)
	}
	if len(f.Subnets) != 2 || f.Subnets[0].Name != "a1" || f.Subnets[0].Network != "a" || f.Subnets[1].Name != "b1" {
		t.Fatalf("subnets = %+v (nested ones first, with their network)", f.Subnets)
	}
	a1, b1 := f.Subnets[0], f.Subnets[1]
	if a1.DNSNameservers == nil || len(a1.DNSNameservers) != 0 {
		t.Errorf("dns_nameservers: [] must parse as an empty, managed list, got %#v", a1.DNSNameservers)
	}
	if a1.HostRoutes != nil || a1.AllocationPools != nil {
		t.Errorf("absent lists must stay nil (left to the server): %+v", a1)
	}
	if *a1.GatewayIP != NoGateway {
		t.Errorf("gateway = %q", *a1.GatewayIP)
	}
	if !reflect.DeepEqual(b1.AllocationPools, []AllocationPool{{"10.0.1.10", "10.0.1.20"}}) ||
		!reflect.DeepEqual(b1.HostRoutes, []HostRoute{{"10.1.0.0/16", "10.0.1.1"}}) || *b1.EnableDHCP || *b1.IPVersion != 4 {
		t.Errorf("b1 = %+v", b1)
	}
	if f.Ports[0].Line != 22 || a1.Line != 9 || b1.Line != 14 || n.Line != 4 {
		t.Errorf("lines: port %d, a1 %d, b1 %d, network %d", f.Ports[0].Line, a1.Line, b1.Line, n.Line)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string // each must appear in the error, in order
	}{
		{
			name: "empty file",
			src:  "",
			want: []string{"t.yaml: the file is empty"},
		},
		{
			name: "unknown top-level key",
			src:  "name: x\nrouter: []\n",
			want: []string{`t.yaml:2: top level: unknown key "router"; known keys: floating_ips, instances, name, networks, port_forwardings, ports, published_ports, routers, security_groups, subnets`},
		},
		{
			name: "unknown nested key with its line",
			src:  "name: x\nnetworks:\n  - name: a\n    mtus: 1500\n",
			want: []string{`t.yaml:4: networks[0]: unknown key "mtus"; known keys: admin_state_up, external, host_gateway, mtu,`},
		},
		{
			name: "unknown key deep inside",
			src:  "name: x\nnetworks:\n  - name: a\n    subnets:\n      - name: s\n        cidr: 10.0.0.0/24\n        allocation_pools: [{start: 10.0.0.2, stop: 10.0.0.9}]\n",
			want: []string{`t.yaml:7: networks[0].subnets[0].allocation_pools[0]: unknown key "stop"; known keys: end, start`},
		},
		{
			name: "several unknown keys, all reported",
			src:  "name: x\ninstances:\n  - name: a\n    image: cirros\nports:\n  - name: p\n    network: n\n    ip: 1.2.3.4\n",
			want: []string{`t.yaml:4: instances[0]: unknown key "image"`, `t.yaml:8: ports[0]: unknown key "ip"`},
		},
		{
			name: "key without value",
			src:  "name: x\nnetworks:\n  - name: a\n    mtu:\n",
			want: []string{`t.yaml:4: networks[0]: key "mtu" has no value; leave it out`},
		},
		{
			name: "duplicate key",
			src:  "name: x\nname: y\n",
			want: []string{`t.yaml:2: mapping key "name" already defined at line 1`},
		},
		{
			name: "wrong scalar type",
			src:  "name: x\nnetworks:\n  - name: a\n    mtu: big\n",
			want: []string{`t.yaml:4: networks[0].mtu: want a whole number, not "big"`},
		},
		{
			name: "quoted number",
			src:  "name: x\nnetworks:\n  - name: a\n    mtu: '1500'\n",
			want: []string{`t.yaml:4: networks[0].mtu: want a whole number, not "1500"`},
		},
		{
			name: "yes is not a boolean here",
			src:  "name: x\nnetworks:\n  - name: a\n    shared: yes\n",
			want: []string{`t.yaml:4: networks[0].shared: want true or false, not "yes"`},
		},
		{
			name: "mapping where a list belongs",
			src:  "name: x\ninstances:\n  name: red\n",
			want: []string{"t.yaml:3: instances: want a list, not a mapping"},
		},
		{
			name: "list where a value belongs",
			src:  "name: [a, b]\n",
			want: []string{"t.yaml:1: name: want a single value, not a list"},
		},
		{
			name: "scalar where a mapping belongs",
			src:  "name: x\ninstances: [red]\n",
			want: []string{`t.yaml:2: instances[0]: want a mapping of keys (name), not "red"`},
		},
		{
			name: "two documents",
			src:  "name: x\n---\nname: y\n",
			want: []string{"t.yaml:2: a topology file holds one YAML document"},
		},
		{
			name: "syntax error",
			src:  "name: x\n  networks: [\n",
			want: []string{"t.yaml:2:"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parse(t, tt.src)
			if err == nil {
				t.Fatal("parsed without error")
			}
			msg := err.Error()
			rest := msg
			for _, w := range tt.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("error %q\nwant it to contain %q", msg, w)
				}
				rest = rest[i+len(w):]
			}
		})
	}
}

func TestValidate(t *testing.T) {
	const head = "name: v\n"
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{name: "no name", src: "instances: [{name: a}]\n", want: []string{"t.yaml: the topology needs a name"}},
		{name: "bad topology name", src: "name: 'a b'\n", want: []string{`topology name "a b"`}},
		{name: "instance without name", src: head + "instances: [{}]\n", want: []string{"t.yaml:2: instance without a name"}},
		{name: "bad instance name", src: head + "instances: [{name: 'red/1'}]\n", want: []string{`instance name "red/1" contains '/'`}},
		{
			name: "duplicate names",
			src:  head + "instances:\n  - name: red\n  - name: red\n",
			want: []string{`t.yaml:4: instance "red" is listed twice (first at line 3)`},
		},
		{name: "mtu range", src: head + "networks: [{name: n, mtu: 10}]\n", want: []string{"network n: mtu 10 is not in 68 through 65535"}},
		{
			name: "subnet without network",
			src:  head + "subnets: [{name: s, cidr: 10.0.0.0/24}]\n",
			want: []string{"subnet s: needs a network"},
		},
		{
			name: "nested subnet naming another network",
			src:  head + "networks:\n  - name: a\n    subnets: [{name: s, network: b, cidr: 10.0.0.0/24}]\n",
			want: []string{"t.yaml:4: subnet s: is nested in network a but names network b"},
		},
		{
			name: "cidr with host bits",
			src:  head + "subnets: [{name: s, network: n, cidr: 10.0.0.1/24}]\n",
			want: []string{`subnet s: cidr: "10.0.0.1/24" has host bits set; write 10.0.0.0/24`},
		},
		{name: "missing cidr", src: head + "subnets: [{name: s, network: n}]\n", want: []string{"subnet s: cidr: missing"}},
		{
			name: "ip_version against the cidr",
			src:  head + "subnets: [{name: s, network: n, cidr: 10.0.0.0/24, ip_version: 6}]\n",
			want: []string{"cidr 10.0.0.0/24 is an IPv4 prefix but ip_version is 6"},
		},
		{
			name: "ip_version 5",
			src:  head + "subnets: [{name: s, network: n, cidr: 'fd00::/64', ip_version: 5}]\n",
			want: []string{"ip_version 5: subnets are IPv4 (4) or IPv6 (6)"},
		},
		{
			name: "IPv6 mode on IPv4",
			src:  head + "subnets: [{name: s, network: n, cidr: 10.0.0.0/24, ipv6_ra_mode: slaac}]\n",
			want: []string{"ipv6_ra_mode: only IPv6 subnets have one"},
		},
		{
			name: "unknown IPv6 mode",
			src:  head + "subnets: [{name: s, network: n, cidr: 'fd00::/64', ipv6_address_mode: dhcp}]\n",
			want: []string{`ipv6_address_mode "dhcp": want one of dhcpv6-stateful, dhcpv6-stateless, slaac`},
		},
		{
			name: "IPv6 modes disagree",
			src:  head + "subnets: [{name: s, network: n, cidr: 'fd00::/64', ipv6_ra_mode: slaac, ipv6_address_mode: dhcpv6-stateful}]\n",
			want: []string{"ipv6_ra_mode slaac and ipv6_address_mode dhcpv6-stateful: when both are set they must be the same"},
		},
		{
			name: "IPv6 gateway outside",
			src:  head + "subnets: [{name: s, network: n, cidr: 'fd00::/64', gateway_ip: 'fd01::1'}]\n",
			want: []string{"gateway_ip"},
		},
		{
			name: "gateway outside",
			src:  head + "subnets: [{name: s, network: n, cidr: 10.0.0.0/24, gateway_ip: 10.0.1.1}]\n",
			want: []string{`gateway_ip: 10.0.1.1 is not in 10.0.0.0/24 (or write "none" for no gateway)`},
		},
		{
			name: "pools",
			src:  head + "subnets: [{name: s, network: n, cidr: 10.0.0.0/24, allocation_pools: [{start: 10.0.0.9, end: 10.0.0.2}, {start: 10.0.0.2, end: 10.0.9.2}]}]\n",
			want: []string{"allocation_pools[0]: start 10.0.0.9 is after end 10.0.0.2", "allocation_pools[1]: end: 10.0.9.2 is not in 10.0.0.0/24"},
		},
		{
			name: "dns and routes",
			src:  head + "subnets: [{name: s, network: n, cidr: 10.0.0.0/24, dns_nameservers: [dns.example], host_routes: [{destination: 10.1.0.0, nexthop: x}]}]\n",
			want: []string{`dns_nameservers[0]: "dns.example" is not an IP address`, `host_routes[0].destination: "10.1.0.0" is not a CIDR`, `host_routes[0].nexthop: "x" is not an IP address`},
		},
		{name: "port without network", src: head + "ports: [{name: p}]\n", want: []string{"port p: needs a network"}},
		{
			name: "bad mac",
			src:  head + "ports: [{name: p, network: n, mac_address: 'ff:ff:ff:ff:ff:ff'}]\n",
			want: []string{`mac_address: "ff:ff:ff:ff:ff:ff" is a multicast address`},
		},
		{
			name: "interface name without instance",
			src:  head + "ports: [{name: p, network: n, interface_name: eth0}]\n",
			want: []string{"port p: interface_name eth0 needs an instance"},
		},
		{
			name: "interface name too long",
			src:  head + "ports: [{name: p, network: n, instance: i, interface_name: abcdefghijklmnopq}]\n",
			want: []string{`port p: interface_name "abcdefghijklmnopq" is longer than 15 bytes`},
		},
		{
			name: "interface name twice in one instance",
			src:  head + "ports:\n  - {name: p, network: n, instance: i, interface_name: eth0}\n  - {name: q, network: n, instance: i, interface_name: eth0}\n",
			want: []string{"t.yaml:4: port q: interface eth0 in instance i is already port p's"},
		},
		{
			name: "empty fixed ip",
			src:  head + "ports: [{name: p, network: n, fixed_ips: [{}]}]\n",
			want: []string{"port p: fixed_ips[0]: give a subnet, an ip_address, or both"},
		},
		{
			name: "address twice",
			src:  head + "ports:\n  - {name: p, network: n, fixed_ips: [{ip_address: 10.0.0.5}]}\n  - {name: q, network: n, fixed_ips: [{ip_address: 10.0.0.5}]}\n",
			want: []string{"port q: fixed_ips[0]: 10.0.0.5 is already port p's"},
		},
		{
			name: "address outside its subnet",
			src: head + "networks: [{name: n, subnets: [{name: s, cidr: 10.0.0.0/24}]}]\n" +
				"ports: [{name: p, network: n, fixed_ips: [{subnet: s, ip_address: 10.0.1.5}]}]\n",
			want: []string{"port p: fixed_ips[0]: 10.0.1.5 is not in subnet s (10.0.0.0/24)"},
		},
		{
			name: "subnet of another network",
			src: head + "networks: [{name: n, subnets: [{name: s, cidr: 10.0.0.0/24}]}, {name: m}]\n" +
				"ports: [{name: p, network: m, fixed_ips: [{subnet: s}]}]\n",
			want: []string{"port p: fixed_ips[0]: subnet s is on network n, not on the port's network m"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parse(t, tt.src)
			if err == nil {
				t.Fatal("parsed without error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nwant it to contain %q", err, w)
				}
			}
		})
	}
}
