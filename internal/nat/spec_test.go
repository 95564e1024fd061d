package nat

import (
	"net"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	vnl "github.com/vishvananda/netlink"

	"github.com/nsnet/nsnet/internal/nfsock"
)

var (
	a  = netip.MustParseAddr
	pf = netip.MustParsePrefix
)

func TestValidate(t *testing.T) {
	fip := func(out, floating, fixed string) FloatingIP {
		return FloatingIP{Out: out, Floating: a(floating), Fixed: a(fixed)}
	}
	fwd := func(ext string, e PortRange, in string, i PortRange) PortForward {
		return PortForward{Protocol: TCP, External: a(ext), ExternalPorts: e, Internal: a(in), InternalPorts: i}
	}
	for _, tc := range []struct {
		name string
		spec Spec
		want string // substring of the error; "" for valid
	}{
		{"empty", Spec{}, ""},
		{"router", Router{Gateway: "qg-1", GatewayAddr: a("198.51.100.10"), EnableSNAT: true,
			Internal:    []Subnet{{"qr-1", pf("10.0.0.0/24")}, {"qr-2", pf("10.1.0.0/16")}},
			FloatingIPs: []FloatingIP{{Floating: a("198.51.100.20"), Fixed: a("10.0.0.5")}}}.Spec(), ""},
		{"interface name too long", Spec{Hairpin: []Subnet{{"qr-0123456789abc", pf("10.0.0.0/24")}}}, "longer than 15 bytes"},
		{"empty interface name", Spec{Masquerade: []Masquerade{{"", pf("10.0.0.0/24")}}}, "empty interface name"},
		{"host bits", Spec{SNAT: []SNAT{{"up", pf("10.0.0.5/24"), a("192.0.2.1")}}}, "did you mean 10.0.0.0/24"},
		{"IPv6 prefix", Spec{Masquerade: []Masquerade{{"up", pf("2001:db8::/64")}}}, "not an IPv4 prefix"},
		{"IPv6 floating IP", Spec{FloatingIPs: []FloatingIP{fip("qg", "2001:db8::1", "10.0.0.5")}}, "only IPv4"},
		{"overlapping SNAT sources", Spec{SNAT: []SNAT{{"up", pf("10.0.0.0/8"), a("192.0.2.1")}, {"up", pf("10.1.0.0/16"), a("192.0.2.2")}}}, "overlap"},
		{"same prefix on two interfaces", Spec{Hairpin: []Subnet{{"qr-1", pf("10.0.0.0/24")}, {"qr-2", pf("10.0.0.0/24")}}}, ""},
		{"floating IP without gateway", Router{FloatingIPs: []FloatingIP{{Floating: a("198.51.100.20"), Fixed: a("10.0.0.5")}}}.Spec(), "no gateway interface"},
		{"floating address twice", Spec{FloatingIPs: []FloatingIP{fip("qg", "198.51.100.20", "10.0.0.5"), fip("qg", "198.51.100.20", "10.0.0.6")}}, "used twice"},
		{"fixed address twice", Spec{FloatingIPs: []FloatingIP{fip("qg", "198.51.100.20", "10.0.0.5"), fip("qg", "198.51.100.21", "10.0.0.5")}}, "two floating IPs"},
		{"forward ranges differ", Spec{PortForwards: []PortForward{fwd("198.51.100.30", PortRange{8000, 8009}, "10.0.0.5", PortRange{80, 85})}}, "10 ports, internal 6"},
		{"port 0", Spec{PortForwards: []PortForward{fwd("198.51.100.30", Port(0), "10.0.0.5", Port(80))}}, "invalid port range"},
		{"reversed range", Spec{PortForwards: []PortForward{fwd("198.51.100.30", PortRange{90, 80}, "10.0.0.5", PortRange{90, 80})}}, "invalid port range"},
		{"forwards collide", Spec{PortForwards: []PortForward{
			fwd("198.51.100.30", PortRange{8000, 8010}, "10.0.0.5", PortRange{8000, 8010}),
			fwd("198.51.100.30", Port(8005), "10.0.0.6", Port(80))}}, "port 8005 is already forwarded"},
		{"same port, another protocol", Spec{PortForwards: []PortForward{
			fwd("198.51.100.30", Port(53), "10.0.0.5", Port(53)),
			{Protocol: UDP, External: a("198.51.100.30"), ExternalPorts: Port(53), Internal: a("10.0.0.5"), InternalPorts: Port(53)}}}, ""},
		{"icmp forward", Spec{Publish: []Publish{{Protocol: 1, Ports: Port(1), Internal: a("10.0.0.5"), InternalPorts: Port(1)}}}, "only tcp and udp"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.spec.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestBuilders(t *testing.T) {
	r := Router{Gateway: "qg-1", GatewayAddr: a("198.51.100.10"), EnableSNAT: true,
		Internal:    []Subnet{{"qr-1", pf("10.0.0.0/24")}},
		FloatingIPs: []FloatingIP{{Out: "ignored", Floating: a("198.51.100.20"), Fixed: a("10.0.0.5")}}}
	want := Spec{
		SNAT:        []SNAT{{"qg-1", pf("10.0.0.0/24"), a("198.51.100.10")}},
		Hairpin:     []Subnet{{"qr-1", pf("10.0.0.0/24")}},
		FloatingIPs: []FloatingIP{{"qg-1", a("198.51.100.20"), a("10.0.0.5")}},
	}
	if got := r.Spec(); !reflect.DeepEqual(got, want) {
		t.Errorf("Router.Spec =\n%+v\nwant\n%+v", got, want)
	}
	r.EnableSNAT = false
	if got := r.Spec(); got.SNAT != nil {
		t.Errorf("enable_snat off still SNATs: %+v", got.SNAT)
	}
	// A subnet in the external network's address scope is routed, not
	// translated; the others still are.
	r.EnableSNAT = true
	r.Internal = append(r.Internal, Subnet{"qr-2", pf("10.1.0.0/24")})
	r.Routed = []netip.Prefix{pf("10.0.0.0/24")}
	if got := r.Spec(); !reflect.DeepEqual(got.SNAT, []SNAT{{"qg-1", pf("10.1.0.0/24"), a("198.51.100.10")}}) || len(got.Hairpin) != 2 {
		t.Errorf("routed subnet: SNAT %+v hairpin %+v", got.SNAT, got.Hairpin)
	}

	h := Host{Uplink: "eth0", Networks: []HostNetwork{
		{Bridge: "nsb-a", Prefix: pf("192.168.24.0/24")},
		{Bridge: "nsb-b", Prefix: pf("1.1.1.0/24"), SNATTo: a("192.168.38.116")},
	}}
	hs := h.Spec()
	if !reflect.DeepEqual(hs.Masquerade, []Masquerade{{"eth0", pf("192.168.24.0/24")}}) ||
		!reflect.DeepEqual(hs.SNAT, []SNAT{{"eth0", pf("1.1.1.0/24"), a("192.168.38.116")}}) ||
		len(hs.Hairpin) != 2 {
		t.Errorf("Host.Spec = %+v", hs)
	}
}

// TestCompileDecode checks that the elements a spec compiles to decode back
// to it, port ranges included, with the kernel's byte layout.
func TestCompileDecode(t *testing.T) {
	spec := Spec{
		SNAT:       []SNAT{{"qg-1", pf("10.0.0.0/24"), a("198.51.100.10")}, {"qg-2", pf("0.0.0.0/0"), a("198.51.100.11")}},
		Masquerade: []Masquerade{{"up", pf("192.168.24.0/24")}},
		Hairpin:    []Subnet{{"qr-1", pf("10.0.0.0/24")}, {"qr-2", pf("10.1.2.3/32")}},
		FloatingIPs: []FloatingIP{
			{"qg-1", a("198.51.100.20"), a("10.0.0.5")},
			{"qg-1", a("198.51.100.21"), a("10.0.0.6")},
		},
		PortForwards: []PortForward{
			{TCP, a("198.51.100.30"), Port(8080), a("10.0.0.5"), Port(80)},
			{TCP, a("198.51.100.30"), PortRange{9000, 9099}, a("10.0.0.7"), PortRange{7000, 7099}},
			{UDP, a("198.51.100.30"), Port(8080), a("10.0.0.5"), Port(53)},
		},
		Publish: []Publish{{TCP, Port(8080), a("192.168.24.10"), Port(80)}},
	}
	if err := spec.Validate(); err != nil {
		t.Fatal(err)
	}
	c := compile(spec)
	if n := len(c[setPortForward]); n != 102 {
		t.Fatalf("port_forward has %d elements, want one per port (102)", n)
	}
	e := c[setPortForward][string(nfsock.Concat(addr4(a("198.51.100.30")), proto(TCP), port(8080)))]
	wantKey := []byte{198, 51, 100, 30, 6, 0, 0, 0, 0x1f, 0x90, 0, 0}
	wantVal := []byte{10, 0, 0, 5, 0, 80, 0, 0}
	if !reflect.DeepEqual(e.Key, wantKey) || !reflect.DeepEqual(e.Val, wantVal) {
		t.Fatalf("8080 element = %v : %v, want %v : %v", e.Key, e.Val, wantKey, wantVal)
	}
	got, undecoded := decode(c)
	sortSpec(&spec)
	if undecoded != 0 || !reflect.DeepEqual(got, spec) {
		t.Fatalf("decode(compile(spec)) =\n%+v (%d undecoded)\nwant\n%+v", got, undecoded, spec)
	}
}

func TestDelta(t *testing.T) {
	base := Spec{
		Hairpin:     []Subnet{{"qr-1", pf("10.0.0.0/24")}},
		FloatingIPs: []FloatingIP{{"qg", a("198.51.100.20"), a("10.0.0.5")}},
	}
	c := compile(base)
	for _, tc := range []struct {
		name          string
		rm, add       Spec
		want          string // error substring
		adds, deletes int
	}{
		{"new floating IP", Spec{}, Spec{FloatingIPs: []FloatingIP{{"qg", a("198.51.100.21"), a("10.0.0.6")}}}, "", 2, 0},
		{"same floating IP", Spec{}, base, "", 0, 0},
		{"floating address taken", Spec{}, Spec{FloatingIPs: []FloatingIP{{"qg", a("198.51.100.20"), a("10.0.0.9")}}}, "the spec has floating IP 198.51.100.20 → 10.0.0.5", 0, 0},
		{"overlapping hairpin", Spec{}, Spec{Hairpin: []Subnet{{"qr-1", pf("10.0.0.128/25")}}}, "overlaps hairpin of 10.0.0.0/24 on qr-1", 0, 0},
		{"replace hairpin", base, Spec{Hairpin: []Subnet{{"qr-1", pf("10.0.0.0/23")}}}, "", 1, 3},
		{"remove something absent", Spec{FloatingIPs: []FloatingIP{{"qg", a("198.51.100.99"), a("10.0.0.99")}}}, Spec{}, "", 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := c.delta(compile(tc.rm), compile(tc.add))
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("error %v, want %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if count(d.add) != tc.adds || count(d.del) != tc.deletes {
				t.Fatalf("delta +%d -%d, want +%d -%d", count(d.add), count(d.del), tc.adds, tc.deletes)
			}
		})
	}
}

func TestLayoutFingerprintsDiffer(t *testing.T) {
	seen := map[string]string{}
	for _, ch := range layoutChains {
		for i, r := range ch.Rules {
			fp := nfsock.Fingerprint(r)
			if other, ok := seen[fp]; ok && other != ch.Comment(i) {
				t.Errorf("rules %q and %q share fingerprint %s", other, ch.Comment(i), fp)
			}
			seen[fp] = ch.Comment(i)
		}
	}
}

func TestRemovedFlows(t *testing.T) {
	old := compile(Spec{
		FloatingIPs:  []FloatingIP{{"qg", a("198.51.100.20"), a("10.0.0.5")}},
		PortForwards: []PortForward{{TCP, a("198.51.100.30"), Port(8080), a("10.0.0.7"), Port(80)}},
		Publish:      []Publish{{UDP, Port(5353), a("192.168.24.10"), Port(53)}},
	})
	m := removedFlows(diff(old, compile(Spec{})))
	if m == nil || removedFlows(diff(old, old)) != nil {
		t.Fatal("removedFlows: wrong nil-ness")
	}
	flow := func(proto uint8, src, dst string, dport uint16, rsrc, rdst string) *vnl.ConntrackFlow {
		return &vnl.ConntrackFlow{
			Forward: vnl.IPTuple{Protocol: proto, SrcIP: net.ParseIP(src), DstIP: net.ParseIP(dst), DstPort: dport},
			Reverse: vnl.IPTuple{Protocol: proto, SrcIP: net.ParseIP(rsrc), DstIP: net.ParseIP(rdst)},
		}
	}
	for _, tc := range []struct {
		name string
		f    *vnl.ConntrackFlow
		want bool
	}{
		{"inbound to the floating IP", flow(6, "203.0.113.1", "198.51.100.20", 80, "10.0.0.5", "203.0.113.1"), true},
		{"outbound SNATed to it", flow(6, "10.0.0.5", "203.0.113.1", 7, "203.0.113.1", "198.51.100.20"), true},
		{"outbound by default SNAT", flow(6, "10.0.0.6", "203.0.113.1", 7, "203.0.113.1", "198.51.100.10"), false},
		{"to the forward", flow(6, "203.0.113.1", "198.51.100.30", 8080, "10.0.0.7", "203.0.113.1"), true},
		{"same address, other port", flow(6, "203.0.113.1", "198.51.100.30", 8081, "10.0.0.7", "203.0.113.1"), false},
		{"same port, other protocol", flow(17, "203.0.113.1", "198.51.100.30", 8080, "10.0.0.7", "203.0.113.1"), false},
		{"to the published port", flow(17, "192.168.1.15", "192.168.1.32", 5353, "192.168.24.10", "192.168.1.15"), true},
		{"published port to another instance", flow(17, "192.168.1.15", "192.168.1.32", 5353, "192.168.24.11", "192.168.1.15"), false},
	} {
		if got := m.MatchConntrackFlow(tc.f); got != tc.want {
			t.Errorf("%s: match = %v, want %v", tc.name, got, tc.want)
		}
	}
}
