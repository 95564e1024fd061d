package agent

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/store"
)

// hostPair is two hosts, a and b, in multi-host mode: an agent each, with
// its own host namespace and prefix, over one store, their host
// namespaces joined by an underlay veth carrying their VTEP addresses.
type hostPair struct {
	t    *testing.T
	st   *store.Bolt
	a, b *env
}

func newHostPair(t *testing.T, resync time.Duration) *hostPair {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces)")
	}
	st, err := store.OpenBolt(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	hp := &hostPair{t: t, st: st}
	var envs []*env
	for i, name := range []string{"a", "b"} {
		e := &env{t: t, prefix: fmt.Sprintf("%s%d-", allPrefix, testSeq.Add(1)), resync: resync, st: st,
			host: name, vtep: netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)})}
		e.hostNetns = e.prefix + "host"
		envs = append(envs, e)
	}
	hp.a, hp.b = envs[0], envs[1]
	t.Cleanup(hp.cleanup)
	hp.put(model.Host{Name: "a", VTEPAddress: "192.0.2.1", Roles: []string{model.RoleCompute, model.RoleNetwork}},
		model.Host{Name: "b", VTEPAddress: "192.0.2.2", Roles: []string{model.RoleCompute}})
	for _, e := range envs {
		e.start()
	}
	// The underlay: not nsnet's (the cleanup removes it before looking
	// for leftovers).
	hp.a.ip("link", "add", "ul0", "netns", hp.a.hostNetns, "type", "veth", "peer", "name", "ul0", "netns", hp.b.hostNetns)
	for _, e := range envs {
		e.ip("-n", e.hostNetns, "addr", "add", netip.PrefixFrom(e.vtep, 24).String(), "dev", "ul0")
		e.ip("-n", e.hostNetns, "link", "set", "ul0", "up")
	}
	return hp
}

func (hp *hostPair) put(records ...any) int64 { return hp.a.put(records...) }
func (hp *hostPair) del(records ...any) int64 { return hp.a.del(records...) }

// converge waits until both agents have programmed rev.
func (hp *hostPair) converge(rev int64) {
	hp.t.Helper()
	hp.a.converge(rev)
	hp.b.converge(rev)
}

// cleanup empties the store through both agents, then checks that
// neither left anything.
func (hp *hostPair) cleanup() {
	t := hp.t
	hp.a.stop()
	hp.b.stop()
	exec.Command("ip", "-n", hp.a.hostNetns, "link", "del", "ul0").Run()
	if _, err := hp.st.Update(context.Background(), func(tx store.Txn) error {
		for _, kind := range store.Kinds {
			var ids []string
			tx.List(kind, func(id string, _ []byte) error { ids = append(ids, id); return nil })
			for _, id := range ids {
				if err := tx.Delete(kind, id); err != nil {
					return err
				}
			}
		}
		return nil
	}); err != nil {
		t.Errorf("cleanup: %v", err)
	}
	for _, e := range []*env{hp.a, hp.b} {
		e.start()
		e.converge(e.revision())
		e.stop()
	}
	hp.st.Close()
	hp.a.checkLeftovers()
	hp.b.checkLeftovers()
}

// Records of the two-host topology: networks net1 (10.9.0.0/24, VNI
// 4242, DHCP on a) and net2 (10.8.0.0/24, VNI 4243) joined by router r on
// a; net3 (10.7.0.0/24, VNI 4244) with an instance on a only.
type pairTopo struct {
	net1, net2, net3 l3net
	r                model.Router
	qr1, qr2, dhcp   model.Port
	vmA, vmB, vmC    model.Instance // on a, b (net1) and b (net2)
	pA, pB, pC       model.Port
	vmD, vmE         model.Instance // on b with a DHCP client (net1), on a (net3)
	pD, pE           model.Port
}

func newPairTopo() pairTopo {
	var t pairTopo
	vxlan := func(n l3net, vni int) l3net {
		n.net.MTU = 1450
		n.net.SetSegment(model.Segment{NetworkType: model.NetworkTypeVXLAN, SegmentationID: vni})
		n.subnet.EnableDHCP = true
		return n
	}
	t.net1 = vxlan(l3network(110, "10.9.0.0/24", "10.9.0.1", false), 4242)
	t.net1.net.DHCPHost = "a"
	t.net2 = vxlan(l3network(120, "10.8.0.0/24", "10.8.0.1", false), 4243)
	t.net3 = vxlan(l3network(130, "10.7.0.0/24", "10.7.0.1", false), 4244)
	t.r = router(200, nil, false)
	t.r.L3Host = "a"
	t.qr1 = t.net1.port(201, "10.9.0.1", model.DeviceOwnerRouterInterface, t.r.ID)
	t.qr2 = t.net2.port(202, "10.8.0.1", model.DeviceOwnerRouterInterface, t.r.ID)
	t.dhcp = t.net1.port(203, "10.9.0.2", model.DeviceOwnerDHCP, "dhcp-"+t.net1.net.ID)
	vm := func(n l3net, id int, name, host, ip string) (model.Instance, model.Port) {
		inst := testInstance(name)
		inst.Host = host
		p := n.port(id, ip, model.DeviceOwnerCompute, inst.ID)
		p.InterfaceName = "eth0"
		return inst, p
	}
	t.vmA, t.pA = vm(t.net1, 211, "vma", "a", "10.9.0.11")
	t.vmB, t.pB = vm(t.net1, 212, "vmb", "b", "10.9.0.12")
	t.vmC, t.pC = vm(t.net2, 213, "vmc", "b", "10.8.0.13")
	t.vmD, t.pD = vm(t.net1, 214, "vmd", "b", "10.9.0.14")
	t.pD.DHCPClient = true
	t.vmE, t.pE = vm(t.net3, 215, "vme", "a", "10.7.0.15")
	return t
}

func (t pairTopo) all() []any {
	return append(append(append(t.net1.records(), t.net2.records()...), t.net3.records()...),
		t.r, t.qr1, t.qr2, t.dhcp, t.vmA, t.pA, t.vmB, t.pB, t.vmC, t.pC, t.vmD, t.pD, t.vmE, t.pE)
}

// fdb is a host's forwarding entries on network n's VXLAN device, as
// bridge(8) shows them ("MAC dst VTEP"), and whether the device exists.
func (e *env) fdb(n l3net) (string, bool) {
	dev := model.VXLANName(n.net.ID)
	if err := exec.Command("ip", "-n", e.hostNetns, "link", "show", dev).Run(); err != nil {
		return "", false
	}
	return e.ip("-n", e.hostNetns, "-d", "link", "show", dev) + exec1("bridge", "-n", e.hostNetns, "fdb", "show", "dev", dev) +
		exec1("ip", "-n", e.hostNetns, "neigh", "show", "dev", dev), true
}

func exec1(name string, args ...string) string {
	out, _ := exec.Command(name, args...).CombinedOutput()
	return string(out)
}

// TestTwoHosts: two agents over one store, on hosts a and b joined by
// VXLAN with L2 population. Instances on a and b on one network reach
// each other; an instance on b gets its lease from DHCP on a and is routed
// by the router on a; each host builds exactly what is its own, and a
// network only where it is present; removing a port on b removes a's
// entries for it; an entry deleted by hand comes back; a restart changes
// nothing.
func TestTwoHosts(t *testing.T) {
	// No periodic full pass: the drift watch must see an entry deleted.
	hp := newHostPair(t, time.Hour)
	a, b := hp.a, hp.b
	topo := newPairTopo()
	hp.converge(hp.put(topo.all()...))

	// Ownership: each host has its own instances, the router and DHCP
	// are a's, and each reports only what it owns.
	for _, c := range []struct {
		e     *env
		ns    string
		wants bool
	}{
		{a, a.ns("vma"), true}, {a, a.ns("vmb"), false}, {b, b.ns("vmb"), true}, {b, b.ns("vma"), false},
		{a, a.routerNS(topo.r), true}, {b, b.routerNS(topo.r), false},
		{a, model.DHCPNetns(a.prefix, topo.net1.net.ID), true}, {b, model.DHCPNetns(b.prefix, topo.net1.net.ID), false},
	} {
		if has := exec.Command("ip", "-n", c.ns, "link", "show", "lo").Run() == nil; has != c.wants {
			t.Errorf("host %s has namespace %s: %v, want %v", c.e.host, c.ns, has, c.wants)
		}
	}
	a.wantStatus(store.Instances, topo.vmA.ID, model.StatusActive)
	a.wantStatus(store.Instances, topo.vmB.ID, model.StatusBuild) // not a's to report
	b.wantStatus(store.Ports, topo.pB.ID, model.StatusActive)
	b.wantStatus(store.Routers, topo.r.ID, model.StatusBuild)
	a.wantStatus(store.Networks, topo.net1.net.ID, model.StatusActive)
	b.wantStatus(store.Networks, topo.net3.net.ID, model.StatusBuild) // not present on b

	// Presence: net3 has no bridge nor VXLAN device on b, and a floods
	// none of net3's traffic to b.
	if _, ok := b.fdb(topo.net3); ok {
		t.Error("host b has a VXLAN device for net3, which has nothing there")
	}
	if out := exec1("ip", "-n", b.hostNetns, "link", "show", model.BridgeName(topo.net3.net.ID)); !strings.Contains(out, "does not exist") {
		t.Errorf("host b has net3's bridge:\n%s", out)
	}
	fdb3, ok := a.fdb(topo.net3)
	if !ok {
		t.Fatal("host a has no VXLAN device for net3")
	}
	if strings.Contains(fdb3, "dst 192.0.2.2") {
		t.Errorf("host a sends net3's frames to b:\n%s", fdb3)
	}
	fdb1, _ := a.fdb(topo.net1)
	// (The alias is what nsnet explain finds the device by.)
	for _, want := range []string{"vxlan id 4242", "local 192.0.2.1", "nolearning", "proxy", "mtu 1450", "alias nsnet:vxlan:" + topo.net1.net.ID,
		"00:00:00:00:00:00 dst 192.0.2.2", topo.pB.MACAddress + " dst 192.0.2.2", topo.pD.MACAddress + " dst 192.0.2.2",
		"10.9.0.12 lladdr " + topo.pB.MACAddress + " PERMANENT"} {
		if !strings.Contains(fdb1, want) {
			t.Errorf("host a's net1 device lacks %q:\n%s", want, fdb1)
		}
	}
	fdbB, _ := b.fdb(topo.net1)
	for _, want := range []string{"local 192.0.2.2", topo.pA.MACAddress + " dst 192.0.2.1", topo.qr1.MACAddress + " dst 192.0.2.1",
		topo.dhcp.MACAddress + " dst 192.0.2.1", "10.9.0.2 lladdr " + topo.dhcp.MACAddress, "10.9.0.1 lladdr " + topo.qr1.MACAddress} {
		if !strings.Contains(fdbB, want) {
			t.Errorf("host b's net1 device lacks %q:\n%s", want, fdbB)
		}
	}

	// Traffic: across hosts on one network, through a's router to b's
	// other network, and DHCP from a to b.
	if err := ping(a.ns("vma"), "10.9.0.12"); err != nil {
		t.Error(err)
	}
	if err := ping(b.ns("vmb"), "10.8.0.13"); err != nil {
		t.Errorf("b's instance through a's router to b's other network: %v", err)
	}
	var out []byte
	for range 3 {
		var err error
		out, err = exec.Command("ip", "netns", "exec", b.ns("vmd"), "udhcpc", "-i", "eth0", "-n", "-q", "-f", "-t", "3", "-T", "1", "-s", "/bin/true").CombinedOutput()
		if err == nil {
			break
		}
	}
	if !strings.Contains(string(out), "lease of 10.9.0.14 obtained") {
		t.Errorf("DHCP on b from a's server:\n%s", out)
	}

	// A port on b goes: a forgets it.
	hp.converge(hp.del(topo.pB))
	fdb1, _ = a.fdb(topo.net1)
	// (The bridge's own entries, "master", are what it learned, and age.)
	if strings.Contains(fdb1, topo.pB.MACAddress+" dst") || strings.Contains(fdb1, "10.9.0.12 ") {
		t.Errorf("host a keeps entries of b's deleted port:\n%s", fdb1)
	}
	if !strings.Contains(fdb1, "00:00:00:00:00:00 dst 192.0.2.2") {
		t.Errorf("host a stopped flooding to b, which still has net1 (vmd):\n%s", fdb1)
	}
	// b's last port of net1... vmd goes too: a stops flooding to b, and
	// b has no net1 any more.
	hp.converge(hp.del(topo.pD))
	if fdb1, _ = a.fdb(topo.net1); strings.Contains(fdb1, "dst 192.0.2.2") {
		t.Errorf("host a floods net1 to b, which no longer has it:\n%s", fdb1)
	}
	if _, ok := b.fdb(topo.net1); ok {
		t.Error("host b keeps net1's VXLAN device")
	}

	// Drift: an entry deleted by hand is back, with the neighbour entry
	// deleted before it, after the full pass the drift watch asks for.
	want := topo.pC.MACAddress + " dst 192.0.2.2"
	if fdb2, _ := a.fdb(topo.net2); !strings.Contains(fdb2, want) {
		t.Fatalf("host a's net2 lacks %q:\n%s", want, fdb2)
	}
	a.ip("-n", a.hostNetns, "neigh", "del", "10.8.0.13", "dev", model.VXLANName(topo.net2.net.ID))
	if out, err := exec.Command("bridge", "-n", a.hostNetns, "fdb", "del", topo.pC.MACAddress, "dev", model.VXLANName(topo.net2.net.ID),
		"dst", "192.0.2.2", "self").CombinedOutput(); err != nil {
		t.Fatalf("bridge fdb del: %v\n%s", err, out)
	}
	eventually(t, 20*time.Second, "repair of net2's entries on a", func() error {
		if fdb2, _ := a.fdb(topo.net2); !strings.Contains(fdb2, want) || !strings.Contains(fdb2, "10.8.0.13 lladdr") {
			return fmt.Errorf("not repaired:\n%s", fdb2)
		}
		return nil
	})
	if err := ping(b.ns("vmc"), "10.8.0.1"); err != nil {
		t.Error(err)
	}

	// Restart: nothing changes.
	a.stop()
	b.stop()
	a.start()
	b.start()
	hp.converge(a.revision()) // a full pass first
	for _, e := range []*env{a, b} {
		if h := e.agent.Health(); h.Changes != 0 {
			t.Errorf("host %s: a restart changed %d objects", e.host, h.Changes)
		}
	}
}
