package dpspec

import (
	"net/netip"
	"reflect"
	"testing"
)

func TestMarkers(t *testing.T) {
	for _, tc := range []struct {
		alias, kind, id string
		ok              bool
	}{
		{NetworkAlias("n1"), "network", "n1", true},
		{PortAlias("p-1"), "port", "p-1", true},
		{"nsnet:port:", "", "", false},
		{"nsnet:", "", "", false},
		{"someone:port:x", "", "", false},
		{"", "", "", false},
	} {
		kind, id, ok := ParseAlias(tc.alias)
		if kind != tc.kind || id != tc.id || ok != tc.ok {
			t.Errorf("ParseAlias(%q) = %q, %q, %v; want %q, %q, %v", tc.alias, kind, id, ok, tc.kind, tc.id, tc.ok)
		}
	}
	for _, tc := range []struct{ id, host, wantHost string }{
		{"6f1c", "", HostRoot},
		{"6f1c", "nse01-host", "nse01-host"},
		{"6f1c", "odd:host:name", "odd:host:name"},
	} {
		m := InstanceMarker(tc.id, tc.host)
		id, host, ok := ParseInstanceMarker(m)
		if !ok || id != tc.id || host != tc.wantHost {
			t.Errorf("ParseInstanceMarker(%q) = %q, %q, %v", m, id, host, ok)
		}
	}
	if _, _, ok := ParseInstanceMarker(NetworkAlias("x")); ok {
		t.Error("a network alias parsed as an instance marker")
	}
}

func TestRouterMarkers(t *testing.T) {
	m := RouterMarker("r-1", "")
	if id, host, ok := ParseRouterMarker(m); !ok || id != "r-1" || host != HostRoot {
		t.Fatalf("ParseRouterMarker(%q) = %q, %q, %v", m, id, host, ok)
	}
	if _, _, ok := ParseInstanceMarker(m); ok {
		t.Fatal("a router marker parsed as an instance marker")
	}
	if _, _, ok := ParseRouterMarker(InstanceMarker("i-1", "")); ok {
		t.Fatal("an instance marker parsed as a router marker")
	}
}

func TestAssignRoutes(t *testing.T) {
	qg := PortSpec{IfName: "qg-1", Addrs: []netip.Prefix{netip.MustParsePrefix("198.51.100.10/24")},
		Routes: []Route{{Dst: netip.MustParsePrefix("0.0.0.0/0"), Gw: netip.MustParseAddr("198.51.100.1")}}}
	qr := PortSpec{IfName: "qr-1", Addrs: []netip.Prefix{netip.MustParsePrefix("10.0.0.1/24")}}
	routes := []Route{
		{Dst: netip.MustParsePrefix("10.50.0.0/16"), Gw: netip.MustParseAddr("10.0.0.254")},
		{Dst: netip.MustParsePrefix("192.0.2.0/24"), Gw: netip.MustParseAddr("198.51.100.254")},
	}
	got, err := AssignRoutes([]PortSpec{qg, qr}, routes)
	if err != nil {
		t.Fatal(err)
	}
	if want := []Route{qg.Routes[0], routes[1]}; !reflect.DeepEqual(got[0].Routes, want) {
		t.Errorf("qg routes = %v, want %v", got[0].Routes, want)
	}
	if want := []Route{routes[0]}; !reflect.DeepEqual(got[1].Routes, want) {
		t.Errorf("qr routes = %v, want %v", got[1].Routes, want)
	}
	if len(qg.Routes) != 1 {
		t.Error("AssignRoutes changed its input")
	}
	if _, err := AssignRoutes([]PortSpec{qr}, []Route{{Dst: netip.MustParsePrefix("10.9.0.0/16"), Gw: netip.MustParseAddr("172.16.0.1")}}); err == nil {
		t.Error("a route with an unreachable next hop was assigned")
	}
}
