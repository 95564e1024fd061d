package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/nsnet/nsnet/internal/client"
	"github.com/nsnet/nsnet/internal/model"
)

// resolveFrom resolves names from a fixed table, as the API would.
func resolveFrom(t *testing.T) resolveFunc {
	ids := map[client.Collection]map[string]string{
		client.Networks:       {"blue-net": "net-1"},
		client.Subnets:        {"blue-v4": "sub-1", "blue-v4b": "sub-2"},
		client.Instances:      {"red": "inst-1"},
		client.SecurityGroups: {"web": "sg-web", "default": "sg-def"},
	}
	return func(col client.Collection, ref string) (string, error) {
		if id, ok := ids[col][ref]; ok {
			return id, nil
		}
		return "", &client.Error{StatusCode: 404, Type: col.Kind() + "NotFound",
			Message: fmt.Sprintf("%s %s could not be found.", col.Kind(), ref)}
	}
}

// parsed returns a command with the flags of add, parsed from args.
func parsed(t *testing.T, add func(*cobra.Command), args string) *cobra.Command {
	t.Helper()
	cmd := &cobra.Command{Use: "test"}
	add(cmd)
	if err := cmd.ParseFlags(strings.Fields(args)); err != nil {
		t.Fatalf("parse %q: %v", args, err)
	}
	return cmd
}

// asJSON compares bodies the way the server will see them.
func asJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

type bodyCase struct {
	args    string
	want    string // JSON of the body; empty when wantErr is set
	wantErr string
}

func checkBody(t *testing.T, tt bodyCase, body map[string]any, err error) {
	t.Helper()
	if tt.wantErr != "" {
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Fatalf("%q: err = %v, want %q", tt.args, err, tt.wantErr)
		}
		return
	}
	if err != nil {
		t.Fatalf("%q: %v", tt.args, err)
	}
	if got := asJSON(t, body); got != tt.want {
		t.Errorf("%q:\n got %s\nwant %s", tt.args, got, tt.want)
	}
}

// TestNetworkProviderBody: network create's provider options are the
// provider attributes, only those given.
func TestNetworkProviderBody(t *testing.T) {
	for _, tt := range []bodyCase{
		{args: "", want: `{}`},
		{args: "--external --provider-network-type flat --provider-physical-network public",
			want: `{"provider:network_type":"flat","provider:physical_network":"public","router:external":true}`},
		{args: "--provider-network-type vxlan --provider-segment 42", want: `{"provider:network_type":"vxlan","provider:segmentation_id":42}`},
		{args: "--provider-network-type local", want: `{"provider:network_type":"local"}`},
	} {
		var f networkFlags
		var p providerFlags
		cmd := parsed(t, func(c *cobra.Command) { f.add(c); p.add(c) }, tt.args)
		body, err := f.body(cmd)
		if err == nil {
			p.set(cmd, body)
		}
		checkBody(t, tt, body, err)
	}
}

func TestNetworkBody(t *testing.T) {
	tests := []bodyCase{
		{args: "", want: `{}`},
		{args: "--mtu 9000 --external --share --disable", want: `{"admin_state_up":false,"mtu":9000,"router:external":true,"shared":true}`},
		{args: "--internal --no-share --enable --description lab", want: `{"admin_state_up":true,"description":"lab","router:external":false,"shared":false}`},
		{args: "--disable-port-security", want: `{"port_security_enabled":false}`},
		{args: "--description ''", want: `{"description":"''"}`},
		{args: "--name blue", want: `{"name":"blue"}`},
		{args: "--share --no-share", wantErr: "--share and --no-share contradict each other"},
		{args: "--enable --disable", wantErr: "--enable and --disable contradict"},
		{args: "--external --uplink eth1", want: `{"nsnet:uplink":"eth1","router:external":true}`},
		{args: "--host-gateway --uplink eth0 --snat-address 192.0.2.10",
			want: `{"nsnet:host_gateway":true,"nsnet:snat_address":"192.0.2.10","nsnet:uplink":"eth0"}`},
		{args: "--no-uplink --no-snat-address --no-host-gateway", want: `{"nsnet:host_gateway":false,"nsnet:snat_address":null,"nsnet:uplink":null}`},
		{args: "--uplink eth0 --no-uplink", wantErr: "--uplink and --no-uplink contradict"},
		{args: "--host-gateway --no-host-gateway", wantErr: "--host-gateway and --no-host-gateway contradict"},
	}
	for _, tt := range tests {
		var f networkFlags
		cmd := parsed(t, func(c *cobra.Command) { f.add(c); addRenameFlag(c) }, tt.args)
		body, err := f.body(cmd)
		checkBody(t, tt, body, err)
	}
}

func TestSubnetCreateBody(t *testing.T) {
	const base = "--network blue-net --subnet-range 192.168.24.0/24 "
	tests := []bodyCase{
		{
			args: base,
			want: `{"cidr":"192.168.24.0/24","ip_version":4,"name":"s","network_id":"net-1"}`,
		},
		{
			args: base + "--gateway none --no-dhcp",
			want: `{"cidr":"192.168.24.0/24","enable_dhcp":false,"gateway_ip":null,"ip_version":4,"name":"s","network_id":"net-1"}`,
		},
		{args: base + "--gateway auto", want: `{"cidr":"192.168.24.0/24","ip_version":4,"name":"s","network_id":"net-1"}`},
		{
			args: base + "--gateway 192.168.24.254 --dhcp --description d",
			want: `{"cidr":"192.168.24.0/24","description":"d","enable_dhcp":true,"gateway_ip":"192.168.24.254","ip_version":4,"name":"s","network_id":"net-1"}`,
		},
		{
			args: base + "--allocation-pool start=192.168.24.10,end=192.168.24.20 --allocation-pool end=192.168.24.40,start=192.168.24.30 " +
				"--dns-nameserver 192.0.2.53 --dns-nameserver 192.0.2.54 --host-route destination=10.0.0.0/8,gateway=192.168.24.1",
			want: `{"allocation_pools":[{"end":"192.168.24.20","start":"192.168.24.10"},{"end":"192.168.24.40","start":"192.168.24.30"}],` +
				`"cidr":"192.168.24.0/24","dns_nameservers":["192.0.2.53","192.0.2.54"],` +
				`"host_routes":[{"destination":"10.0.0.0/8","nexthop":"192.168.24.1"}],"ip_version":4,"name":"s","network_id":"net-1"}`,
		},
		{args: base + "--ip-version 6", want: `{"cidr":"192.168.24.0/24","ip_version":6,"name":"s","network_id":"net-1"}`},
		// An IPv6 range implies --ip-version 6; the modes go as given
		// (the server checks them).
		{args: "--network blue-net --subnet-range 2001:db8::/64 --ipv6-ra-mode slaac --ipv6-address-mode slaac",
			want: `{"cidr":"2001:db8::/64","ip_version":6,"ipv6_address_mode":"slaac","ipv6_ra_mode":"slaac","name":"s","network_id":"net-1"}`},
		{args: "--network blue-net --subnet-range 2001:db8::/64 --ip-version 4",
			want: `{"cidr":"2001:db8::/64","ip_version":4,"name":"s","network_id":"net-1"}`},
		{args: "--network blue-net --ip-version 6 --subnet-range 2001:db8::/64 --ipv6-address-mode dhcpv6-stateful --dns-nameserver 2001:db8::53",
			want: `{"cidr":"2001:db8::/64","dns_nameservers":["2001:db8::53"],"ip_version":6,"ipv6_address_mode":"dhcpv6-stateful","name":"s","network_id":"net-1"}`},
		{args: base + "--allocation-pool start=192.168.24.10", wantErr: `--allocation-pool "start=192.168.24.10": missing end=`},
		{args: base + "--allocation-pool begin=1,end=2", wantErr: `unknown key "begin"; want start=…,end=…`},
		{args: base + "--host-route destination=10.0.0.0/8,nexthop=1.2.3.4", wantErr: `unknown key "nexthop"; want destination=…,gateway=…`},
		{args: base + "--dhcp --no-dhcp", wantErr: "--dhcp and --no-dhcp contradict"},
		{args: "--network red-net --subnet-range 10.0.0.0/24", wantErr: "Network red-net could not be found."},
	}
	for _, tt := range tests {
		var f subnetCreateFlags
		cmd := parsed(t, f.add, tt.args)
		body, err := f.body(cmd, "s", resolveFrom(t))
		checkBody(t, tt, body, err)
	}
}

func TestSubnetSetBody(t *testing.T) {
	gw := "192.168.24.1"
	cur := model.Subnet{
		GatewayIP:       &gw,
		AllocationPools: []model.AllocationPool{{Start: "192.168.24.2", End: "192.168.24.254"}},
		DNSNameservers:  []string{"192.0.2.53"},
		HostRoutes:      []model.HostRoute{{Destination: "10.0.0.0/8", NextHop: "192.168.24.1"}},
	}
	tests := []bodyCase{
		{args: "", want: `{}`},
		{args: "--name s2 --description x", want: `{"description":"x","name":"s2"}`},
		{args: "--gateway none", want: `{"gateway_ip":null}`},
		{args: "--gateway auto", wantErr: "--gateway auto is for create"},
		{args: "--dns-nameserver 192.0.2.54", want: `{"dns_nameservers":["192.0.2.53","192.0.2.54"]}`},
		{args: "--no-dns-nameservers", want: `{"dns_nameservers":[]}`},
		{args: "--no-dns-nameservers --dns-nameserver 192.0.2.99", want: `{"dns_nameservers":["192.0.2.99"]}`},
		{
			args: "--allocation-pool start=192.168.24.1,end=192.168.24.1",
			want: `{"allocation_pools":[{"end":"192.168.24.254","start":"192.168.24.2"},{"end":"192.168.24.1","start":"192.168.24.1"}]}`,
		},
		{args: "--no-allocation-pool", want: `{"allocation_pools":[]}`},
		{
			args: "--host-route destination=172.16.0.0/12,gateway=192.168.24.9",
			want: `{"host_routes":[{"destination":"10.0.0.0/8","nexthop":"192.168.24.1"},{"destination":"172.16.0.0/12","nexthop":"192.168.24.9"}]}`,
		},
		{args: "--no-host-route", want: `{"host_routes":[]}`},
		{args: "--no-dhcp", want: `{"enable_dhcp":false}`},
	}
	for _, tt := range tests {
		var f subnetFlags
		cmd := parsed(t, f.addSet, tt.args)
		body, err := f.setBody(cmd, cur)
		checkBody(t, tt, body, err)
	}
}

func TestPortCreateBody(t *testing.T) {
	const base = "--network blue-net "
	tests := []bodyCase{
		{args: base, want: `{"name":"p","network_id":"net-1"}`},
		{
			args: base + "--device red --interface-name eth1 --mac-address fa:16:3e:00:00:01 --disable",
			want: `{"admin_state_up":false,"device_id":"inst-1","device_owner":"compute:nsnet","mac_address":"fa:16:3e:00:00:01",` +
				`"name":"p","network_id":"net-1","nsnet:interface_name":"eth1"}`,
		},
		{
			args: base + "--fixed-ip subnet=blue-v4,ip-address=192.168.24.10 --fixed-ip subnet=blue-v4b --fixed-ip ip-address=192.168.24.11",
			want: `{"fixed_ips":[{"ip_address":"192.168.24.10","subnet_id":"sub-1"},{"subnet_id":"sub-2"},{"ip_address":"192.168.24.11"}],` +
				`"name":"p","network_id":"net-1"}`,
		},
		{args: base + "--no-fixed-ip", want: `{"fixed_ips":[],"name":"p","network_id":"net-1"}`},
		{args: base + "--disable-port-security --description d", want: `{"description":"d","name":"p","network_id":"net-1","port_security_enabled":false}`},
		{args: base + "--interface-name eth1", wantErr: "--interface-name names the port inside an instance: give --device too"},
		{args: base + "--fixed-ip subnet=nope", wantErr: "Subnet nope could not be found."},
		{args: base + "--fixed-ip ip=1.2.3.4", wantErr: `--fixed-ip "ip=1.2.3.4": unknown key "ip"; want subnet=…,ip-address=…`},
		{args: base + "--fixed-ip subnet=,ip-address=", wantErr: `give subnet=…, ip-address=… or both`},
		{args: base + "--device blue", wantErr: "Instance blue could not be found."},
		{args: "--network nowhere", wantErr: "Network nowhere could not be found."},
	}
	for _, tt := range tests {
		var f portCreateFlags
		cmd := parsed(t, f.add, tt.args)
		body, err := f.body(cmd, "p", resolveFrom(t))
		checkBody(t, tt, body, err)
	}
}

func TestPortSetBody(t *testing.T) {
	cur := []model.FixedIP{{SubnetID: "sub-1", IPAddress: "192.168.24.10"}}
	tests := []bodyCase{
		{args: "", want: `{}`},
		{
			args: "--fixed-ip ip-address=192.168.24.20",
			want: `{"fixed_ips":[{"ip_address":"192.168.24.10","subnet_id":"sub-1"},{"ip_address":"192.168.24.20"}]}`,
		},
		{args: "--no-fixed-ip --fixed-ip subnet=blue-v4b", want: `{"fixed_ips":[{"subnet_id":"sub-2"}]}`},
		{args: "--no-fixed-ip", want: `{"fixed_ips":[]}`},
		{args: "--device red", want: `{"device_id":"inst-1","device_owner":"compute:nsnet"}`},
		{args: "--no-device", want: `{"device_id":"","device_owner":""}`},
		{args: "--device red --no-device", wantErr: "--device and --no-device contradict"},
		{args: "--interface-name eth3 --name p2 --enable", want: `{"admin_state_up":true,"name":"p2","nsnet:interface_name":"eth3"}`},
		{args: "--security-group web", want: `{"security_groups":["sg-def","sg-web"]}`},
		{args: "--no-security-group --security-group web", want: `{"security_groups":["sg-web"]}`},
		{args: "--no-security-group --disable-port-security", want: `{"port_security_enabled":false,"security_groups":[]}`},
		{args: "--security-group nope", wantErr: "Security group nope could not be found."},
		{args: "--allowed-address ip-address=10.0.0.200", want: `{"allowed_address_pairs":[{"ip_address":"10.0.0.9","mac_address":"fa:16:3e:00:00:01"},{"ip_address":"10.0.0.200"}]}`},
		{args: "--no-allowed-address --allowed-address ip-address=10.1.0.0/24,mac-address=fa:16:3e:00:00:02", want: `{"allowed_address_pairs":[{"ip_address":"10.1.0.0/24","mac_address":"fa:16:3e:00:00:02"}]}`},
		{args: "--allowed-address mac-address=fa:16:3e:00:00:02", wantErr: "ip-address"},
	}
	port := &model.Port{FixedIPs: cur, SecurityGroups: []string{"sg-def"},
		AllowedAddressPairs: []model.AddressPair{{IPAddress: "10.0.0.9", MACAddress: "fa:16:3e:00:00:01"}}}
	for _, tt := range tests {
		var f portFlags
		cmd := parsed(t, f.addSet, tt.args)
		body, err := f.body(cmd, resolveFrom(t), port)
		checkBody(t, tt, body, err)
	}
}

func TestUsageErrorsAreTyped(t *testing.T) {
	// Mistakes in flags exit 2, failures of the lookup exit 1.
	var f portCreateFlags
	cmd := parsed(t, f.add, "--network blue-net --interface-name eth1")
	_, err := f.body(cmd, "p", resolveFrom(t))
	var usage usageError
	if !errors.As(err, &usage) {
		t.Errorf("err = %T, want usageError", err)
	}
	cmd = parsed(t, f.add, "--network nowhere")
	_, err = f.body(cmd, "p", resolveFrom(t))
	if errors.As(err, &usage) {
		t.Errorf("a missing network is not a usage error: %v", err)
	}
}

func TestParseKV(t *testing.T) {
	tests := []struct {
		value   string
		want    map[string]string
		wantErr string
	}{
		{value: "start=1,end=2", want: map[string]string{"start": "1", "end": "2"}},
		{value: " start=1 , end=2", want: map[string]string{"start": "1", "end": "2"}},
		{value: "start=1", wantErr: "missing end="},
		{value: "start=1,start=2,end=3", wantErr: `key "start" given twice`},
		{value: "start", wantErr: "want start=…,end=…"},
		{value: "=1", wantErr: "want start=…,end=…"},
		{value: "size=3,start=1,end=2", wantErr: `unknown key "size"`},
	}
	for _, tt := range tests {
		got, err := parseKV("allocation-pool", tt.value, []string{"start", "end"}, []string{"start", "end"})
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%q: err = %v, want %q", tt.value, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%q: %v, %v", tt.value, got, err)
		}
	}
}

func TestSecurityGroupRuleBody(t *testing.T) {
	tests := []bodyCase{
		{args: "", want: `{"direction":"ingress","security_group_id":"sg-web"}`},
		{args: "--protocol tcp --dst-port 22 --remote-ip 10.0.0.0/24",
			want: `{"direction":"ingress","port_range_max":22,"port_range_min":22,"protocol":"tcp","remote_ip_prefix":"10.0.0.0/24","security_group_id":"sg-web"}`},
		{args: "--egress --protocol udp --dst-port 8000:8080 --remote-group default",
			want: `{"direction":"egress","port_range_max":8080,"port_range_min":8000,"protocol":"udp","remote_group_id":"sg-def","security_group_id":"sg-web"}`},
		{args: "--protocol icmp --icmp-type 8 --icmp-code 0",
			want: `{"direction":"ingress","port_range_max":0,"port_range_min":8,"protocol":"icmp","security_group_id":"sg-web"}`},
		{args: "--remote-ip 2001:db8::/64",
			want: `{"direction":"ingress","ethertype":"IPv6","remote_ip_prefix":"2001:db8::/64","security_group_id":"sg-web"}`},
		{args: "--ingress --egress", wantErr: "contradict"},
		{args: "--remote-ip 10.0.0.0/8 --remote-group web", wantErr: "contradict"},
		{args: "--dst-port 22-23", wantErr: "PORT:PORT"},
		{args: "--icmp-code 3", wantErr: "--icmp-code needs --icmp-type"},
		{args: "--remote-group nope", wantErr: "Security group nope could not be found."},
	}
	for _, tt := range tests {
		var f ruleFlags
		cmd := parsed(t, f.add, tt.args)
		body, err := f.body(cmd, resolveFrom(t), "sg-web")
		checkBody(t, tt, body, err)
	}
}

func TestInstanceCreateBody(t *testing.T) {
	for _, tt := range []bodyCase{
		{args: "", want: `{"name":"vm1"}`},
		{args: "--host host-a --description web --property role=web", want: `{"description":"web","host":"host-a","meta":{"role":"web"},"name":"vm1"}`},
		{args: "--host=", wantErr: "--host: give a host name, or leave the flag out for the scheduler to choose"},
	} {
		var meta metadataFlags
		cmd := parsed(t, func(c *cobra.Command) { addInstanceCreateFlags(c, &meta) }, tt.args)
		body, err := instanceCreateBody(cmd, &meta, "vm1")
		checkBody(t, tt, body, err)
	}
}
