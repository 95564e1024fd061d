package trace

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nsnet/nsnet/internal/capture"
	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/netns"
)

// overlayLab is two hosts joined by an underlay, built by hand as
// nsnet's agents build them (see internal/dataplane's TestL2Population):
//
//	vm1 eth0 10.7.0.1 ── tap ─ bridge ─ VXLAN vni 4242 ─ ul0 192.0.2.1 ══ 192.0.2.2 ul0 ─ VXLAN ─ bridge ─ tap ── eth0 10.7.0.2 vm2
//	                         host a                                                       host b
//
// with learning off, each port's MAC at the other host's VTEP in the
// VXLAN devices' forwarding entries, and the other port's address in
// their neighbour entries (L2 population). The model is the one the
// daemon of host a would give: both ports, host a's namespace.
type overlayLab struct {
	a, b, vm1, vm2 string
	m              *Model
}

func newOverlayLab(t *testing.T) *overlayLab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces)")
	}
	l := &overlayLab{a: testPrefix + "ha", b: testPrefix + "hb", vm1: testPrefix + "ov1", vm2: testPrefix + "ov2"}
	for _, n := range []string{l.a, l.b, l.vm1, l.vm2} {
		run(t, "ip", "netns", "add", n)
		t.Cleanup(func() {
			if netns.Exists(n) {
				if err := netns.Delete(n); err != nil {
					t.Error(err)
				}
			}
		})
	}
	run(t, "ip", "-n", l.a, "link", "add", "ul0", "type", "veth", "peer", "name", "ul0", "netns", l.b)
	ports := []model.Port{
		{ID: "0a7e1111-0000-4000-8000-000000000001", MACAddress: "fa:16:3e:00:07:01", DeviceID: "i-vm1"},
		{ID: "0a7e2222-0000-4000-8000-000000000002", MACAddress: "fa:16:3e:00:07:02", DeviceID: "i-vm2"},
	}
	hosts := []struct{ ns, vm, vtep string }{{l.a, l.vm1, "192.0.2.1"}, {l.b, l.vm2, "192.0.2.2"}}
	for i := range ports {
		p := &ports[i]
		p.NetworkID, p.DeviceOwner, p.InterfaceName = "net-ov", model.DeviceOwnerCompute, "eth0"
		p.FixedIPs = []model.FixedIP{{SubnetID: "sub-ov", IPAddress: netip.AddrFrom4([4]byte{10, 7, 0, byte(i + 1)}).String()}}
	}
	for i, h := range hosts {
		p, other := &ports[i], ports[1-i]
		ip := p.FixedIPs[0].IPAddress
		tap := model.TapName(p.ID)
		for _, c := range [][]string{
			{"addr", "add", h.vtep + "/24", "dev", "ul0"},
			{"link", "set", "ul0", "up"},
			{"link", "add", "nsb-ov", "mtu", "1450", "type", "bridge"},
			{"link", "set", "nsb-ov", "up"},
			{"link", "add", "nsv-ov", "type", "vxlan", "id", "4242", "local", h.vtep, "dstport", "4789", "nolearning", "proxy"},
			{"link", "set", "nsv-ov", "mtu", "1450", "alias", "nsnet:vxlan:net-ov", "master", "nsb-ov", "up"},
			{"link", "add", tap, "mtu", "1450", "type", "veth", "peer", "name", "eth0", "netns", h.vm},
			{"link", "set", tap, "master", "nsb-ov", "up"},
			{"neigh", "replace", other.FixedIPs[0].IPAddress, "lladdr", other.MACAddress, "dev", "nsv-ov", "nud", "permanent"},
		} {
			run(t, append([]string{"ip", "-n", h.ns}, c...)...)
		}
		run(t, "bridge", "-n", h.ns, "fdb", "append", other.MACAddress, "dev", "nsv-ov", "dst", hosts[1-i].vtep, "self", "permanent")
		for _, c := range [][]string{
			{"link", "set", "eth0", "address", p.MACAddress, "mtu", "1450", "up"},
			{"addr", "add", ip + "/24", "dev", "eth0"},
		} {
			run(t, append([]string{"ip", "-n", h.vm}, c...)...)
		}
	}
	l.m = &Model{HostNetns: l.a, Prefix: testPrefix,
		Networks:  []model.Network{{ID: "net-ov", Name: "ov"}},
		Subnets:   []model.Subnet{{ID: "sub-ov", NetworkID: "net-ov", CIDR: "10.7.0.0/24", IPVersion: 4}},
		Ports:     ports,
		Instances: []model.Instance{{ID: "i-vm1", Name: "vm1", Netns: l.vm1}, {ID: "i-vm2", Name: "vm2", Netns: l.vm2}},
	}
	return l
}

func (l *overlayLab) trace(t *testing.T) *Result {
	t.Helper()
	dst := netip.MustParseAddr("10.7.0.2")
	src, err := l.m.InstanceSource(l.m.Instances[0], dst)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := l.m.Plan(src, dst, capture.ProtoICMP, 0)
	if err != nil {
		t.Fatal(err)
	}
	var res *Result
	// A network check: a busy box may lose the first ARP or frame.
	for try := 0; try < 5; try++ {
		if res, err = Run(context.Background(), l.m, plan, src, NewProbe(capture.ProtoICMP, 0), Options{Timeout: 3 * time.Second}); err != nil {
			t.Fatal(err)
		}
		if res.Answered {
			break
		}
	}
	return res
}

// TestRunAcrossHosts traces between instances on two hosts of one VXLAN
// network: the hop onto the overlay (the VXLAN device, the underlay with
// the outer addresses, VNI and port), the other host's underlay, VXLAN
// device and tap when a namespace of this machine holds its VTEP, and the
// inner packet on both sides; when none does (a real deployment, where
// the other host is another machine), the trace says the rest of the way
// is on the host of that VTEP.
func TestRunAcrossHosts(t *testing.T) {
	l := newOverlayLab(t)
	res := l.trace(t)
	var b strings.Builder
	res.Print(&b, false)
	t.Logf("trace vm1 → vm2 across hosts:\n%s", b.String())
	if !res.Answered {
		t.Fatalf("no answer across the overlay: %+v", res.Stopped)
	}
	want := []struct{ netns, iface, kind string }{
		{l.vm1, "eth0", KindSource}, {l.a, model.TapName(l.m.Ports[0].ID), KindBridge},
		{l.a, "nsv-ov", KindBridge}, {l.a, "ul0", KindUnderlay},
		{l.b, "ul0", KindUnderlay}, {l.b, "nsv-ov", KindBridge}, {l.b, model.TapName(l.m.Ports[1].ID), KindBridge},
		{l.vm2, "eth0", KindInstance},
	}
	if len(res.Way) != len(want) {
		t.Fatalf("way out %+v, want %d hops", res.Way, len(want))
	}
	for i, w := range want {
		h := res.Way[i]
		if h.Netns != w.netns || h.Interface != w.iface || h.Kind != w.kind || !h.Seen || h.Src != "10.7.0.1" || h.Dst != "10.7.0.2" {
			t.Errorf("hop %d: %s/%s %s seen %v %s > %s, want %s/%s %s with the inner packet 10.7.0.1 > 10.7.0.2",
				i+1, h.Netns, h.Interface, h.Kind, h.Seen, h.Src, h.Dst, w.netns, w.iface, w.kind)
		}
		if (w.kind == KindUnderlay) != (h.VXLAN != nil) {
			t.Errorf("hop %d (%s/%s): outer packet %+v", i+1, h.Netns, h.Interface, h.VXLAN)
		}
	}
	for i, h := range []HopSeen{res.Way[3], res.Way[4]} {
		if o := h.VXLAN; o == nil || o.Src != "192.0.2.1" || o.Dst != "192.0.2.2" || o.DstPort != 4789 || o.VNI != 4242 {
			t.Errorf("underlay hop %d: outer %+v, want 192.0.2.1 > 192.0.2.2:4789 vni 4242", i+1, o)
		}
	}
	for i, h := range res.WayBack {
		if !h.Seen {
			t.Errorf("answer not seen at hop %d (%s/%s)", i+1, h.Netns, h.Interface)
		}
	}
	if o := res.WayBack[3].VXLAN; o == nil || o.Src != "192.0.2.2" || o.Dst != "192.0.2.1" {
		t.Errorf("the answer's outer packet on host b's underlay: %+v", o)
	}
	if len(res.Rewrites) > 0 {
		t.Errorf("rewrites across a tunnel: %+v", res.Rewrites)
	}
	if len(res.Tunnels) != 1 || res.Tunnels[0].RemoteNetns != l.b || res.Tunnels[0].Remote != netip.MustParseAddr("192.0.2.2") {
		t.Errorf("tunnels %+v", res.Tunnels)
	}
	for _, line := range []string{"underlay, VTEP 192.0.2.1", "192.0.2.2:4789: VXLAN, vni 4242: 10.7.0.1 > 10.7.0.2: ICMP echo request"} {
		if !strings.Contains(b.String(), line) {
			t.Errorf("the printed trace lacks %q", line)
		}
	}

	// Host b leaves this machine's view: its namespace loses its name
	// (a file descriptor keeps it, and its interfaces, alive).
	keep, err := os.Open(netns.Path(l.b))
	if err != nil {
		t.Fatal(err)
	}
	defer keep.Close()
	if out, err := exec.Command("ip", "netns", "delete", l.b).CombinedOutput(); err != nil {
		t.Fatalf("ip netns delete: %v\n%s", err, out)
	}
	res = l.trace(t)
	b.Reset()
	res.Print(&b, false)
	t.Logf("trace vm1 → vm2, host b out of sight:\n%s", b.String())
	if !res.Answered || res.Stopped != nil {
		t.Errorf("answered %v, stopped %+v; the answer comes back through the tunnel", res.Answered, res.Stopped)
	}
	if res.Expected.End != EndRemote || !strings.Contains(res.Expected.EndDetail, "192.0.2.2") {
		t.Errorf("expected %+v, want the rest on the host of VTEP 192.0.2.2", res.Expected)
	}
	if len(res.Way) != 4 || res.Way[3].Kind != KindUnderlay || res.Way[3].VXLAN == nil || len(res.Tunnels) != 1 || res.Tunnels[0].RemoteNetns != "" {
		t.Errorf("way %+v, tunnels %+v; want it to end on host a's underlay", res.Way, res.Tunnels)
	}
}
