package daemoncmd

import (
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nsnet/nsnet/internal/auth"
	"github.com/nsnet/nsnet/internal/daemon"
	"github.com/nsnet/nsnet/internal/model"
)

func TestConfig(t *testing.T) {
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"OS_USERNAME": "nsnet", "OS_PASSWORD": "from-env", "OS_PROJECT_NAME": "service"}
	const day = 24 * time.Hour
	tests := []struct {
		args    string
		env     map[string]string
		want    daemon.Config
		wantErr string
	}{
		{
			args: "",
			want: daemon.Config{StateDir: daemon.DefaultStateDir, Socket: daemon.DefaultSocket, ResyncInterval: 30 * time.Second, DHCPLeaseTime: day, PhysnetMTU: 1500},
		},
		{
			args: "--state-dir /tmp/s --socket /tmp/s.sock --listen 127.0.0.1:9696 --token-file /tmp/t " +
				"--host-netns h1 --netns-prefix t1- --resync-interval 5s --log-level debug",
			want: daemon.Config{StateDir: "/tmp/s", Socket: "/tmp/s.sock", Listen: "127.0.0.1:9696", TokenFile: "/tmp/t",
				HostNetns: "h1", NetnsPrefix: "t1-", ResyncInterval: 5 * time.Second, DHCPLeaseTime: day, PhysnetMTU: 1500},
		},
		{
			args: "--tokens /tmp/tokens.yaml --default-quota network=10,port=-1 --default-quota subnet=3",
			want: daemon.Config{StateDir: daemon.DefaultStateDir, Socket: daemon.DefaultSocket, ResyncInterval: 30 * time.Second, DHCPLeaseTime: day, PhysnetMTU: 1500,
				TokensFile: "/tmp/tokens.yaml", Quotas: map[string]int{"network": 10, "port": -1, "subnet": 3}},
		},
		{
			// The service credentials come from OS_* unless a flag names them.
			args: "--keystone-url http://127.0.0.1:5000/v3 --keystone-project svc",
			env:  env,
			want: daemon.Config{StateDir: daemon.DefaultStateDir, Socket: daemon.DefaultSocket, ResyncInterval: 30 * time.Second, DHCPLeaseTime: day, PhysnetMTU: 1500,
				Keystone: auth.KeystoneConfig{URL: "http://127.0.0.1:5000/v3", Username: "nsnet", Password: "from-env", Project: "svc"}},
		},
		{
			args: "--keystone-url http://k/v3 --keystone-password-file " + pwFile,
			env:  env,
			want: daemon.Config{StateDir: daemon.DefaultStateDir, Socket: daemon.DefaultSocket, ResyncInterval: 30 * time.Second, DHCPLeaseTime: day, PhysnetMTU: 1500,
				Keystone: auth.KeystoneConfig{URL: "http://k/v3", Username: "nsnet", Password: "from-file", Project: "service"}},
		},
		{args: "--keystone-url http://k/v3 --keystone-password-file /nonexistent", wantErr: "--keystone-password-file"},
		{args: "--log-level loud", wantErr: `--log-level "loud": want debug, info, warn or error`},
		{args: "--resync-interval 0s", wantErr: "--resync-interval 0s: must be positive"},
		{
			args: "--dhcp-lease-time 1m --dns-upstream 192.0.2.53,192.0.2.54:5353",
			want: daemon.Config{StateDir: daemon.DefaultStateDir, Socket: daemon.DefaultSocket, ResyncInterval: 30 * time.Second,
				DHCPLeaseTime: time.Minute, PhysnetMTU: 1500, DNSUpstreams: []string{"192.0.2.53:53", "192.0.2.54:5353"}},
		},
		{
			args: "--physnet-mtu 9000",
			want: daemon.Config{StateDir: daemon.DefaultStateDir, Socket: daemon.DefaultSocket, ResyncInterval: 30 * time.Second, DHCPLeaseTime: day, PhysnetMTU: 9000},
		},
		{
			args: "--store etcd://10.0.0.1:2379,10.0.0.2:2379/prod",
			want: daemon.Config{StateDir: daemon.DefaultStateDir, Socket: daemon.DefaultSocket, ResyncInterval: 30 * time.Second, DHCPLeaseTime: day, PhysnetMTU: 1500,
				Store: "etcd://10.0.0.1:2379,10.0.0.2:2379/prod"},
		},
		{args: "--store /var/lib/nsnet/state.db", wantErr: `--store: "/var/lib/nsnet/state.db": want etcd://HOST:PORT[,HOST:PORT…][/PREFIX][?max-txn-ops=N]; leave it out for the bbolt file`},
		{args: "--store etcd://10.0.0.1:2379?max-txn-ops=0", wantErr: `--store: "etcd://10.0.0.1:2379?max-txn-ops=0": max-txn-ops="0": want a number of operations, 2 or more`},
		{args: "--store etcd://10.0.0.1", wantErr: `--store: "etcd://10.0.0.1": endpoint "10.0.0.1": want HOST:PORT`},
		{
			args: "--vni-ranges 100:200,5000:5000",
			want: daemon.Config{StateDir: daemon.DefaultStateDir, Socket: daemon.DefaultSocket, ResyncInterval: 30 * time.Second, DHCPLeaseTime: day, PhysnetMTU: 1500,
				VNIRanges: []model.VNIRange{{Min: 100, Max: 200}, {Min: 5000, Max: 5000}}},
		},
		{args: "--vni-ranges 10:5", wantErr: `--vni-ranges: VNI range "10:5": MIN is above MAX`},
		{args: "--vni-ranges 1:16777216", wantErr: `--vni-ranges: VNI range "1:16777216": VNIs are 1 through 16777215`},
		{args: "--vni-ranges 7", wantErr: `--vni-ranges: VNI range "7": want MIN:MAX`},
		{args: "--physnet-mtu 67", wantErr: "--physnet-mtu 67: must be between 68 and 65535"},
		{args: "--dhcp-lease-time 1s", wantErr: "--dhcp-lease-time 1s: must be between"},
		{args: "--dns-upstream resolver", wantErr: `--dns-upstream "resolver": want an address or address:port`},
		{
			args: "--store etcd://10.0.0.1:2379 --host host-a --roles compute --vtep-address 192.0.2.11 --availability-zone az1 " +
				"--agent-down-time 6s --heartbeat-interval 2s",
			want: daemon.Config{StateDir: daemon.DefaultStateDir, Socket: daemon.DefaultSocket, ResyncInterval: 30 * time.Second, DHCPLeaseTime: day, PhysnetMTU: 1500,
				Store: "etcd://10.0.0.1:2379", Host: "host-a", Roles: []string{"compute"}, VTEPAddress: netip.MustParseAddr("192.0.2.11"),
				AvailabilityZone: "az1", AgentDownTime: 6 * time.Second, HeartbeatInterval: 2 * time.Second},
		},
		{
			// Each role once, in one order, however given.
			args: "--roles network,compute,network",
			want: daemon.Config{StateDir: daemon.DefaultStateDir, Socket: daemon.DefaultSocket, ResyncInterval: 30 * time.Second, DHCPLeaseTime: day, PhysnetMTU: 1500,
				Roles: []string{"compute", "network"}, AvailabilityZone: "nova", AgentDownTime: 75 * time.Second, HeartbeatInterval: 30 * time.Second},
		},
		{args: "--roles network,storage", wantErr: `--roles "network,storage": unknown role "storage"; want compute, network or compute,network`},
		{args: "--vtep-address 300.1.1.1", wantErr: `--vtep-address "300.1.1.1": want this host's unicast IPv4 address on the underlay`},
		{args: "--vtep-address 2001:db8::1", wantErr: `--vtep-address "2001:db8::1": want this host's unicast IPv4 address`},
		{args: "--vtep-address 224.0.0.1", wantErr: `--vtep-address "224.0.0.1": want this host's unicast IPv4 address`},
		{
			// Neutron's physical_interface_mappings, given once or flag by flag.
			args: "--physical-interface-mappings public:ext-a,lab:eth5 --physical-interface-mappings=extra:eth6",
			want: daemon.Config{StateDir: daemon.DefaultStateDir, Socket: daemon.DefaultSocket, ResyncInterval: 30 * time.Second, DHCPLeaseTime: day, PhysnetMTU: 1500,
				InterfaceMappings: map[string]string{"public": "ext-a", "lab": "eth5", "extra": "eth6"}},
		},
		{args: "--physical-interface-mappings public", wantErr: `--physical-interface-mappings: mapping "public": want PHYSICAL_NETWORK:INTERFACE`},
		{args: "--physical-interface-mappings public:", wantErr: `--physical-interface-mappings: mapping "public:": want PHYSICAL_NETWORK:INTERFACE`},
		{args: "--physical-interface-mappings public:eth1,public:eth2", wantErr: `--physical-interface-mappings: mapping "public:eth2": physical network public is mapped twice`},
		{args: "--physical-interface-mappings public:eth1,lab:eth1", wantErr: `--physical-interface-mappings: mapping "lab:eth1": interface eth1 is already physical network public's`},
		{args: "--physical-interface-mappings public:an-interface-name", wantErr: `"an-interface-name" is not an interface name`},
		{args: "--physical-interface-mappings public:a/b", wantErr: `"a/b" is not an interface name`},
		{args: "--availability-zone=", wantErr: `--availability-zone "": want a name of 1 to 255 characters`},
		{args: "--heartbeat-interval 0s", wantErr: "--heartbeat-interval 0s: must be positive"},
		{args: "--agent-down-time 30s", wantErr: "--agent-down-time 30s: must be longer than --heartbeat-interval 30s"},
	}
	for _, tt := range tests {
		var f flags
		cmd := newCommand(&f)
		if err := cmd.ParseFlags(strings.Fields(tt.args)); err != nil {
			t.Fatal(err)
		}
		got, err := f.config(os.Stderr, func(k string) string { return tt.env[k] })
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%q: err = %v, want %q", tt.args, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%q: %v", tt.args, err)
		}
		if got.Logger == nil {
			t.Errorf("%q: no logger", tt.args)
		}
		got.Logger = nil
		if tt.want.Roles == nil {
			// The host flags' defaults, for the cases about other flags.
			tt.want.Roles, tt.want.AvailabilityZone = []string{"compute", "network"}, "nova"
			tt.want.AgentDownTime, tt.want.HeartbeatInterval = 75*time.Second, 30*time.Second
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%q:\n got %+v\nwant %+v", tt.args, got, tt.want)
		}
	}
}
