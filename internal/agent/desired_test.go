package agent

import (
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/nsnet/nsnet/internal/dataplane"
	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/store"
)

func ptr[T any](v T) *T { return &v }

func TestComputeDesired(t *testing.T) {
	net1 := model.Network{ID: "net-1", AdminStateUp: true, MTU: 1450}
	net2 := model.Network{ID: "net-2", AdminStateUp: false}
	sub1 := model.Subnet{ID: "sub-1", NetworkID: "net-1", CIDR: "10.9.0.0/24", GatewayIP: ptr("10.9.0.1"),
		HostRoutes: []model.HostRoute{{Destination: "198.51.100.0/24", NextHop: "10.9.0.254"}}}
	sub2 := model.Subnet{ID: "sub-2", NetworkID: "net-2", CIDR: "10.8.0.0/16", GatewayIP: ptr("10.8.0.1")}
	sub6 := model.Subnet{ID: "sub-6", NetworkID: "net-2", CIDR: "2001:db8::/64", GatewayIP: ptr("2001:db8::1")}
	noGw := model.Subnet{ID: "sub-ng", NetworkID: "net-2", CIDR: "10.7.0.0/24"}
	redefault := model.Subnet{ID: "sub-rd", NetworkID: "net-2", CIDR: "10.6.0.0/24", GatewayIP: ptr("10.6.0.1"),
		HostRoutes: []model.HostRoute{{Destination: "0.0.0.0/0", NextHop: "10.6.0.254"}}}
	red := model.Instance{ID: "inst-red", Name: "red"}
	port := func(id, ifname, network string, ips ...model.FixedIP) model.Port {
		return model.Port{ID: id, NetworkID: network, AdminStateUp: true, MACAddress: "fa:16:3e:00:00:01",
			DeviceOwner: model.DeviceOwnerCompute, DeviceID: "inst-red", InterfaceName: ifname, FixedIPs: ips}
	}
	ip := func(subnet, addr string) model.FixedIP { return model.FixedIP{SubnetID: subnet, IPAddress: addr} }
	route := func(dst, gw string) dataplane.Route {
		return dataplane.Route{Dst: netip.MustParsePrefix(dst), Gw: netip.MustParseAddr(gw)}
	}

	for _, tc := range []struct {
		name       string
		ports      []model.Port
		wantRoutes map[string][]dataplane.Route // by port id
		wantFixed  map[string]string            // port id → status
	}{
		{
			name:  "one port: host routes then default",
			ports: []model.Port{port("p1", "eth0", "net-1", ip("sub-1", "10.9.0.5"))},
			wantRoutes: map[string][]dataplane.Route{
				"p1": {route("198.51.100.0/24", "10.9.0.254"), route("0.0.0.0/0", "10.9.0.1")},
			},
		},
		{
			name: "default on the first port in natural interface order",
			ports: []model.Port{
				port("p10", "eth10", "net-2", ip("sub-2", "10.8.0.10")),
				port("p2", "eth2", "net-2", ip("sub-2", "10.8.0.2")),
			},
			wantRoutes: map[string][]dataplane.Route{
				"p2":  {route("0.0.0.0/0", "10.8.0.1")},
				"p10": nil,
			},
		},
		{
			name: "first port without a gateway does not get the default",
			ports: []model.Port{
				port("p0", "eth0", "net-2", ip("sub-ng", "10.7.0.5")),
				port("p1", "eth1", "net-2", ip("sub-2", "10.8.0.5")),
			},
			wantRoutes: map[string][]dataplane.Route{
				"p0": nil,
				"p1": {route("0.0.0.0/0", "10.8.0.1")},
			},
		},
		{
			name:  "dual stack: one default per family",
			ports: []model.Port{port("p1", "eth0", "net-2", ip("sub-2", "10.8.0.5"), ip("sub-6", "2001:db8::5"))},
			wantRoutes: map[string][]dataplane.Route{
				"p1": {route("0.0.0.0/0", "10.8.0.1"), route("::/0", "2001:db8::1")},
			},
		},
		{
			name:  "a host route to 0.0.0.0/0 wins over the gateway",
			ports: []model.Port{port("p1", "eth0", "net-2", ip("sub-rd", "10.6.0.5"))},
			wantRoutes: map[string][]dataplane.Route{
				"p1": {route("0.0.0.0/0", "10.6.0.254")},
			},
		},
		{
			name: "unplugged, orphaned and broken ports",
			ports: []model.Port{
				{ID: "router", NetworkID: "net-1", DeviceOwner: "network:router_interface", DeviceID: "inst-red"},
				{ID: "orphan", NetworkID: "net-1", DeviceOwner: model.DeviceOwnerCompute, DeviceID: "gone", InterfaceName: "eth0"},
				port("no-net", "eth1", "net-404"),
				port("no-subnet", "eth2", "net-1", ip("sub-404", "10.9.0.9")),
			},
			wantFixed: map[string]string{
				"router":    model.StatusDown,
				"orphan":    model.StatusDown,
				"no-net":    model.StatusError,
				"no-subnet": model.StatusError,
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := computeDesired(&snapshot{
				rev:       7,
				networks:  []model.Network{net1, net2},
				subnets:   []model.Subnet{sub1, sub2, sub6, noGw, redefault},
				instances: []model.Instance{red},
				ports:     tc.ports,
			}, "pfx-", "pfx-host")
			for id, want := range tc.wantRoutes {
				ps, ok := d.ports[id]
				if !ok {
					t.Fatalf("port %s not plugged (fixed: %v)", id, d.fixed)
				}
				if !slices.Equal(ps.Veth.Routes, want) {
					t.Errorf("port %s routes = %v, want %v", id, ps.Veth.Routes, want)
				}
				if ps.Netns != "pfx-red" || ps.Veth.TapName != model.TapName(id) || ps.Veth.Alias != dataplane.PortAlias(id) {
					t.Errorf("port %s spec = %+v", id, ps)
				}
			}
			for id, want := range tc.wantFixed {
				if got := d.fixed[key{store.Ports, id}]; got.Status != want {
					t.Errorf("port %s status = %+v, want %s", id, got, want)
				}
				if _, plugged := d.ports[id]; plugged {
					t.Errorf("port %s plugged", id)
				}
			}
		})
	}

	d := computeDesired(&snapshot{networks: []model.Network{net1, net2}, instances: []model.Instance{red}}, "pfx-", "")
	if b := d.networks["net-1"].Bridge; b.Name != model.BridgeName("net-1") || b.MTU != 1450 || !b.Up || b.Alias != "nsnet:network:net-1" {
		t.Errorf("bridge of net-1 = %+v", b)
	}
	if b := d.networks["net-2"].Bridge; b.MTU != model.DefaultMTU || b.Up {
		t.Errorf("bridge of net-2 = %+v", b)
	}
	if i := d.instances["inst-red"]; i.Netns != "pfx-red" || i.Marker != "nsnet:instance:inst-red:host:root" {
		t.Errorf("instance red = %+v", i)
	}
}

func TestComputeDesiredAddresses(t *testing.T) {
	d := computeDesired(&snapshot{
		networks: []model.Network{{ID: "n", MTU: 9000}},
		subnets:  []model.Subnet{{ID: "s", CIDR: "10.9.0.0/24"}},
		instances: []model.Instance{
			{ID: "a", Name: "red", Standard: model.Standard{CreatedAt: "2026-01-01T00:00:00Z"}},
			{ID: "b", Name: "red", Standard: model.Standard{CreatedAt: "2026-01-02T00:00:00Z"}},
		},
		ports: []model.Port{{ID: "p", NetworkID: "n", MACAddress: "fa:16:3e:aa:bb:cc", DeviceOwner: model.DeviceOwnerCompute,
			DeviceID: "a", InterfaceName: "eth0", FixedIPs: []model.FixedIP{{SubnetID: "s", IPAddress: "10.9.0.7"}}}},
	}, "x-", "h")
	p := d.ports["p"].Veth
	if !slices.Equal(p.Addrs, []netip.Prefix{netip.MustParsePrefix("10.9.0.7/24")}) || p.MTU != 9000 || p.MAC.String() != "fa:16:3e:aa:bb:cc" || p.Up {
		t.Errorf("port spec = %+v", p)
	}
	if _, ok := d.instances["a"]; !ok {
		t.Error("older instance lost its namespace")
	}
	if st := d.fixed[key{store.Instances, "b"}]; st.Status != model.StatusError {
		t.Errorf("newer instance with the same namespace: %+v", st)
	}
}

func TestCompareIfNames(t *testing.T) {
	names := []string{"eth10", "eth2", "eth0", "ens1", "eth", "eth1"}
	slices.SortFunc(names, compareIfNames)
	want := []string{"ens1", "eth", "eth0", "eth1", "eth2", "eth10"}
	if !slices.Equal(names, want) {
		t.Fatalf("sorted = %v, want %v", names, want)
	}
}

// TestSamePortCoversEveryField guards samePort against fields added to the
// spec later: changing any one of them must make the specs differ.
func TestSamePortCoversEveryField(t *testing.T) {
	base := portSpec{
		InstanceID: "i", RouterID: "r", NetworkID: "n", Netns: "ns", Gateway: true,
		Floating: []netip.Addr{netip.MustParseAddr("198.51.100.50")},
		Veth: dataplane.PortSpec{
			TapName: "tap", Bridge: "br", Alias: "a", MTU: 1500, Up: true, IfName: "eth0",
			MAC:    []byte{1, 2, 3, 4, 5, 6},
			Addrs:  []netip.Prefix{netip.MustParsePrefix("10.0.0.1/24")},
			Routes: []dataplane.Route{{Dst: netip.MustParsePrefix("0.0.0.0/0"), Gw: netip.MustParseAddr("10.0.0.254")}},
		},
	}
	if !samePort(base, base) {
		t.Fatal("a spec differs from itself")
	}
	v := reflect.ValueOf(&base).Elem()
	fields := 0
	walk(v, func(f reflect.Value, name string) {
		fields++
		changed := base
		changed.Veth.MAC = slices.Clone(base.Veth.MAC)
		changed.Veth.Addrs = slices.Clone(base.Veth.Addrs)
		changed.Veth.Routes = slices.Clone(base.Veth.Routes)
		changed.Floating = slices.Clone(base.Floating)
		mutate(fieldByPath(reflect.ValueOf(&changed).Elem(), name))
		if samePort(base, changed) {
			t.Errorf("samePort ignores %s", name)
		}
	}, "")
	if fields < 12 {
		t.Fatalf("walked %d fields", fields)
	}
	if reconcilerOf[store.Instances].same(instanceSpec{Netns: "a"}, instanceSpec{Netns: "b"}) || reconcilerOf[store.Ports].same(base, instanceSpec{}) {
		t.Fatal("different specs compare equal")
	}
}

// walk calls fn for every leaf field under v (structs are descended into).
func walk(v reflect.Value, fn func(reflect.Value, string), path string) {
	for i := range v.NumField() {
		f, name := v.Field(i), v.Type().Field(i).Name
		if path != "" {
			name = path + "." + name
		}
		if f.Kind() == reflect.Struct {
			walk(f, fn, name)
			continue
		}
		fn(f, name)
	}
}

func fieldByPath(v reflect.Value, path string) reflect.Value {
	for _, name := range strings.Split(path, ".") {
		v = v.FieldByName(name)
	}
	return v
}

func mutate(f reflect.Value) {
	switch f.Kind() {
	case reflect.String:
		f.SetString(f.String() + "x")
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		f.SetInt(f.Int() + 1)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		f.SetUint(f.Uint() + 1)
	case reflect.Bool:
		f.SetBool(!f.Bool())
	case reflect.Slice:
		if f.Len() == 0 {
			panic("empty slice in base spec")
		}
		if f.Type().Elem().Kind() == reflect.Uint8 {
			f.Index(0).SetUint(f.Index(0).Uint() + 1)
		} else {
			f.Set(f.Slice(0, 0))
		}
	default:
		panic("unhandled kind " + f.Kind().String())
	}
}

// The namespace of an instance is the one its record names; the agent only
// derives one for records made before records carried it, and refuses a
// name outside its own prefix.
func TestComputeDesiredInstanceNetns(t *testing.T) {
	for _, tc := range []struct {
		name       string
		inst       model.Instance
		wantNetns  string
		wantStatus string
	}{
		{"stored name", model.Instance{ID: "i1", Name: "red", Netns: "pfx-red@alpha"}, "pfx-red@alpha", ""},
		{"record without a name", model.Instance{ID: "i1", Name: "red"}, "pfx-red", ""},
		{"name outside the prefix", model.Instance{ID: "i1", Name: "red", Netns: "other-red"}, "", model.StatusError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := computeDesired(&snapshot{instances: []model.Instance{tc.inst}}, "pfx-", "")
			if got := d.instances["i1"].Netns; got != tc.wantNetns {
				t.Errorf("netns = %q, want %q", got, tc.wantNetns)
			}
			if got := d.fixed[key{store.Instances, "i1"}].Status; got != tc.wantStatus {
				t.Errorf("status = %q, want %q", got, tc.wantStatus)
			}
		})
	}
}
