package dataplane

import (
	"net"
	"net/netip"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// overlay is two hosts, each a test environment of its own, joined by an
// underlay veth pair (192.0.2.1 and 192.0.2.2, their VTEP addresses),
// with one network (VNI 4242) on both: a bridge and a VXLAN device on
// each, and an instance with one port on each bridge (10.7.0.1 on host a,
// 10.7.0.2 on host b).
type overlay struct {
	t    *testing.T
	host [2]*overlayHost
}

type overlayHost struct {
	e     *testEnv
	vtep  netip.Addr
	vxlan VXLANSpec
	port  PortSpec
	inst  string // namespace of the instance
	ip    netip.Addr
}

const overlayNet = "net-ov"

func newOverlay(t *testing.T) *overlay {
	t.Helper()
	o := &overlay{t: t}
	for i := range 2 {
		e := newEnv(t)
		h := &overlayHost{e: e, vtep: netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)}),
			ip: netip.AddrFrom4([4]byte{10, 7, 0, byte(i + 1)}), inst: e.ns("vm")}
		h.vxlan = VXLANSpec{Name: "nsv-ov", Alias: VXLANAlias(overlayNet), VNI: 4242, Local: h.vtep,
			Bridge: "nsb-ov", BridgeAlias: NetworkAlias(overlayNet), MTU: 1450, Up: true}
		mac, _ := net.ParseMAC("fa:16:3e:00:07:0" + string(rune('1'+i)))
		h.port = PortSpec{TapName: "tapov", Bridge: "nsb-ov", Alias: PortAlias("p-ov"), MTU: 1450, Up: true,
			IfName: "eth0", MAC: mac, Addrs: []netip.Prefix{netip.PrefixFrom(h.ip, 24)}}
		o.host[i] = h
	}
	// The underlay: not nsnet's, so the test removes it before each
	// environment's cleanup checks that nothing is left (cleanups run
	// last registered, first).
	a, b := o.host[0].e, o.host[1].e
	a.ip("link", "add", "ul0", "netns", a.hostName, "type", "veth", "peer", "name", "ul0", "netns", b.hostName)
	t.Cleanup(func() { exec.Command("ip", "-n", a.hostName, "link", "del", "ul0").Run() })
	for _, h := range o.host {
		h.e.ip("-n", h.e.hostName, "addr", "add", netip.PrefixFrom(h.vtep, 24).String(), "dev", "ul0")
		h.e.ip("-n", h.e.hostName, "link", "set", "ul0", "up")
	}
	return o
}

// ensure builds (or converges) each host's bridge, VXLAN device and port,
// and reports whether anything changed.
func (o *overlay) ensure() bool {
	t := o.t
	t.Helper()
	var changed bool
	for _, h := range o.host {
		c, err := EnsureBridge(h.e.links, BridgeSpec{Name: "nsb-ov", Alias: NetworkAlias(overlayNet), MTU: 1450, Up: true})
		if err != nil {
			t.Fatal(err)
		}
		changed = changed || c
		if c, err = EnsureVXLAN(h.e.links, h.vxlan); err != nil {
			t.Fatal(err)
		}
		changed = changed || c
		ns, c2, err := EnsureInstanceNetns(h.inst, h.e.marker("i-vm"))
		if err != nil {
			t.Fatal(err)
		}
		c, err = EnsureVethPort(h.e.links, ns, h.port)
		ns.Close()
		if err != nil {
			t.Fatal(err)
		}
		changed = changed || c || c2
	}
	return changed
}

// populate programs host i's VXLAN device with fdb and neighbour entries
// and reports whether anything changed.
func (o *overlay) populate(i int, fdb []FDBEntry, neigh []NeighEntry) bool {
	o.t.Helper()
	h := o.host[i]
	c1, err := EnsureFDB(h.e.links, h.vxlan.Name, h.vxlan.Alias, fdb)
	if err != nil {
		o.t.Fatal(err)
	}
	c2, err := EnsureNeighbours(h.e.links, h.vxlan.Name, h.vxlan.Alias, neigh)
	if err != nil {
		o.t.Fatal(err)
	}
	return c1 || c2
}

// remote is what L2 population gives host i about the other host's port:
// its MAC at the other VTEP, flooding to it, and its address.
func (o *overlay) remote(i int) (unicast, flood FDBEntry, neigh NeighEntry) {
	r := o.host[1-i]
	return FDBEntry{MAC: r.port.MAC, Dst: r.vtep}, FDBEntry{MAC: FloodMAC, Dst: r.vtep}, NeighEntry{IP: r.ip, MAC: r.port.MAC}
}

// kernelView is what ip and bridge show of host i's VXLAN device and its
// entries, to see that a second ensure changed nothing.
func (o *overlay) kernelView(i int) string {
	h := o.host[i]
	var b strings.Builder
	for _, args := range [][]string{
		{"ip", "-n", h.e.hostName, "-d", "link", "show", "nsv-ov"},
		{"bridge", "-n", h.e.hostName, "fdb", "show", "dev", "nsv-ov"},
		{"ip", "-n", h.e.hostName, "neigh", "show", "dev", "nsv-ov"},
	} {
		out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
		if err != nil {
			o.t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
		b.Write(out)
	}
	// The bridge port's timers run on their own.
	return timers.ReplaceAllString(b.String(), "$1")
}

var timers = regexp.MustCompile(`(\w+_timer)\s+[0-9.]+`)

// pingFails checks that a ping from host i's instance to the other's
// gets no answer: asked once, as no retry could make a missing path work.
func (o *overlay) pingFails(i int) {
	o.t.Helper()
	dst := o.host[1-i].ip.String()
	if out, err := exec.Command("ip", "netns", "exec", o.host[i].inst, "ping", "-c2", "-W1", dst).CombinedOutput(); err == nil {
		o.t.Fatalf("ping %s from host %d answered, want no path:\n%s", dst, i, out)
	}
}

func (o *overlay) pingWorks(i int) {
	o.t.Helper()
	if err := ping(o.host[i].inst, o.host[1-i].ip.String()); err != nil {
		o.t.Fatal(err)
	}
}

// TestVXLANDevice: the device as EnsureVXLAN makes it (VNI, local VTEP,
// port 4789, learning off, proxy on, a port of the bridge), and made
// again as asked when its VNI changes.
func TestVXLANDevice(t *testing.T) {
	o := newOverlay(t)
	o.ensure()
	h := o.host[0]
	out := o.kernelView(0)
	for _, want := range []string{"vxlan id 4242", "local 192.0.2.1", "dstport 4789", "nolearning", "proxy", "master nsb-ov", "mtu 1450", "alias nsnet:vxlan:net-ov"} {
		if !strings.Contains(out, want) {
			t.Errorf("VXLAN device lacks %q:\n%s", want, out)
		}
	}
	if devs := VXLANDevices(mustDump(t, h.e)); len(devs) != 1 || devs[overlayNet] == nil {
		t.Errorf("VXLANDevices = %v, want the device of %s", devs, overlayNet)
	}
	o.host[0].vxlan.VNI = 4343
	if !o.ensure() {
		t.Fatal("a new VNI changed nothing")
	}
	if out := o.kernelView(0); !strings.Contains(out, "vxlan id 4343") || !strings.Contains(out, "master nsb-ov") {
		t.Errorf("after the VNI changed:\n%s", out)
	}
	if _, err := EnsureVXLAN(h.e.links, VXLANSpec{Name: "ul0", Alias: VXLANAlias("x"), VNI: 1, Local: h.vtep,
		Bridge: "nsb-ov", BridgeAlias: NetworkAlias(overlayNet)}); err == nil {
		t.Error("EnsureVXLAN took over the underlay interface")
	} else {
		mustNotOwned(t, err)
	}
}

func mustDump(t *testing.T, e *testEnv) *Links {
	t.Helper()
	l, err := DumpLinks(e.host.Handle)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestL2Population: traffic between two hosts' ports crosses the overlay
// exactly as far as the entries nsnet programs let it.
func TestL2Population(t *testing.T) {
	o := newOverlay(t)
	o.ensure()
	type entries struct {
		unicast, flood, neigh bool
	}
	program := func(i int, e entries) {
		u, f, n := o.remote(i)
		var fdb []FDBEntry
		var ns []NeighEntry
		if e.unicast {
			fdb = append(fdb, u)
		}
		if e.flood {
			fdb = append(fdb, f)
		}
		if e.neigh {
			ns = append(ns, n)
		}
		o.populate(i, fdb, ns)
	}
	flush := func() {
		for _, h := range o.host {
			exec.Command("ip", "netns", "exec", h.inst, "ip", "neigh", "flush", "all").Run()
		}
	}
	for _, tc := range []struct {
		name  string
		a, b  entries
		works bool
	}{
		// Without replication, ARP can only be answered by each device's
		// proxy from its neighbour entries: the proxy works.
		{"l2pop without flooding", entries{unicast: true, neigh: true}, entries{unicast: true, neigh: true}, true},
		// The proxy consumes every ARP request the device is given
		// (the kernel's arp_reduce): without neighbour entries, ARP
		// never crosses, even with replication.
		{"flooding without proxy entries", entries{unicast: true, flood: true}, entries{unicast: true, flood: true}, false},
		// A MAC without an entry of its own goes where unknown unicast
		// is replicated.
		{"unknown unicast replicated", entries{flood: true, neigh: true}, entries{flood: true, neigh: true}, true},
		// Host b knows nothing of a: its answers have nowhere to go, and
		// with learning off it learns nothing from what a sends.
		{"one side only", entries{unicast: true, flood: true, neigh: true}, entries{}, false},
		// a's MAC is known but not where to send the ARP: no flooding.
		{"no flood entry, no proxy", entries{unicast: true}, entries{unicast: true}, false},
		{"all removed", entries{}, entries{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o.t = t
			program(0, tc.a)
			program(1, tc.b)
			flush()
			if tc.works {
				o.pingWorks(0)
				o.pingWorks(1)
			} else {
				o.pingFails(0)
			}
			// Learning is off: nothing the devices received added an entry.
			for i := range 2 {
				fdb, err := FDBEntries(o.host[i].e.links, "nsv-ov", VXLANAlias(overlayNet))
				if err != nil {
					t.Fatal(err)
				}
				e := tc.a
				if i == 1 {
					e = tc.b
				}
				if want := btoi(e.unicast) + btoi(e.flood); len(fdb) != want {
					t.Errorf("host %d has %d forwarding entries %v, want the %d programmed", i, len(fdb), fdb, want)
				}
			}
		})
	}
	o.t = t
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestL2PopulationConverges: a second ensure of the same entries changes
// nothing in the kernel and reports no change; a MAC that moves to
// another VTEP loses its old destination; removing entries removes only
// those.
func TestL2PopulationConverges(t *testing.T) {
	o := newOverlay(t)
	o.ensure()
	u, f, n := o.remote(0)
	other := netip.MustParseAddr("192.0.2.9")
	fdb := []FDBEntry{u, f, {MAC: FloodMAC, Dst: other}}
	v6 := NeighEntry{IP: netip.MustParseAddr("2001:db8:7::2"), MAC: n.MAC}
	if !o.populate(0, fdb, []NeighEntry{n, v6}) {
		t.Fatal("first population changed nothing")
	}
	before := o.kernelView(0)
	if o.ensure() {
		t.Error("second ensure of the devices reported a change")
	}
	if o.populate(0, fdb, []NeighEntry{n, v6}) {
		t.Error("second ensure of the entries reported a change")
	}
	if after := o.kernelView(0); after != before {
		t.Errorf("second ensure changed the kernel:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	got, err := FDBEntries(o.host[0].e.links, "nsv-ov", VXLANAlias(overlayNet))
	if err != nil {
		t.Fatal(err)
	}
	SortFDB(got)
	SortFDB(fdb)
	if !slices.EqualFunc(got, fdb, func(a, b FDBEntry) bool { return fdbKey(a) == fdbKey(b) }) {
		t.Errorf("forwarding entries %v, want %v", got, fdb)
	}

	moved := FDBEntry{MAC: u.MAC, Dst: other}
	o.populate(0, []FDBEntry{moved, f}, []NeighEntry{n})
	view := o.kernelView(0)
	for _, gone := range []string{u.MAC.String() + " dst 192.0.2.2", "00:00:00:00:00:00 dst 192.0.2.9", "2001:db8:7::2"} {
		if strings.Contains(view, gone) {
			t.Errorf("%q still there:\n%s", gone, view)
		}
	}
	for _, kept := range []string{u.MAC.String() + " dst 192.0.2.9", "00:00:00:00:00:00 dst 192.0.2.2", "10.7.0.2 lladdr " + n.MAC.String()} {
		if !strings.Contains(view, kept) {
			t.Errorf("%q missing:\n%s", kept, view)
		}
	}
	if o.populate(0, nil, nil) != true {
		t.Error("removing every entry changed nothing")
	}
	if fdb, err := FDBEntries(o.host[0].e.links, "nsv-ov", VXLANAlias(overlayNet)); err != nil || len(fdb) != 0 {
		t.Errorf("after removing all: %v, %v", fdb, err)
	}
	if ns, err := NeighEntries(o.host[0].e.links, "nsv-ov", VXLANAlias(overlayNet)); err != nil || len(ns) != 0 {
		t.Errorf("after removing all: %v, %v", ns, err)
	}
}

// TestL2PopulationUpdates: UpdateEntries applies the difference between
// what a device was made to hold and what is wanted — an entry added, one
// removed, a MAC moved to another VTEP, an address given another MAC —
// and touches nothing else: an entry deleted by hand behind its back
// stays deleted (it reads no table; repairing drift is EnsureFDB's),
// until EnsureFDB puts it back.
func TestL2PopulationUpdates(t *testing.T) {
	o := newOverlay(t)
	o.ensure()
	u, f, n := o.remote(0)
	other := netip.MustParseAddr("192.0.2.9")
	x, _ := net.ParseMAC("fa:16:3e:00:07:09")
	y, _ := net.ParseMAC("fa:16:3e:00:07:0a")
	ip := netip.MustParseAddr
	was := L2Entries{
		FDB:   []FDBEntry{u, f, {MAC: FloodMAC, Dst: other}, {MAC: x, Dst: other}},
		Neigh: []NeighEntry{n, {IP: ip("10.7.0.8"), MAC: x}, {IP: ip("10.7.0.9"), MAC: x}},
	}
	want := L2Entries{
		FDB:   []FDBEntry{u, f, {MAC: x, Dst: u.Dst}, {MAC: y, Dst: other}},
		Neigh: []NeighEntry{n, {IP: ip("10.7.0.9"), MAC: y}, {IP: ip("10.7.0.10"), MAC: y}},
	}
	for _, e := range []L2Entries{was, want} {
		SortFDB(e.FDB)
		slices.SortFunc(e.Neigh, CompareNeigh)
	}
	o.populate(0, was.FDB, was.Neigh)
	h := o.host[0]
	if out, err := exec.Command("bridge", "-n", h.e.hostName, "fdb", "del", u.MAC.String(), "dev", "nsv-ov",
		"dst", u.Dst.String(), "self").CombinedOutput(); err != nil {
		t.Fatalf("bridge fdb del: %v\n%s", err, out)
	}

	unsorted := L2Entries{FDB: []FDBEntry{want.FDB[1], want.FDB[0]}}
	if _, err := UpdateEntries(h.e.links, "nsv-ov", VXLANAlias(overlayNet), was, unsorted); err == nil {
		t.Error("UpdateEntries took unsorted entries")
	}
	changed, err := UpdateEntries(h.e.links, "nsv-ov", VXLANAlias(overlayNet), was, want)
	if err != nil || !changed {
		t.Fatalf("UpdateEntries: changed %v, %v", changed, err)
	}
	gotFDB, err := FDBEntries(h.e.links, "nsv-ov", VXLANAlias(overlayNet))
	if err != nil {
		t.Fatal(err)
	}
	SortFDB(gotFDB)
	drifted := slices.DeleteFunc(slices.Clone(want.FDB), func(e FDBEntry) bool { return fdbKey(e) == fdbKey(u) })
	if !slices.EqualFunc(gotFDB, drifted, func(a, b FDBEntry) bool { return fdbKey(a) == fdbKey(b) }) {
		t.Errorf("forwarding entries %v, want %v (the one deleted by hand still missing)", gotFDB, drifted)
	}
	gotNeigh, err := NeighEntries(h.e.links, "nsv-ov", VXLANAlias(overlayNet))
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(gotNeigh, CompareNeigh)
	if !slices.EqualFunc(gotNeigh, want.Neigh, func(a, b NeighEntry) bool { return CompareNeigh(a, b) == 0 }) {
		t.Errorf("neighbour entries %v, want %v", gotNeigh, want.Neigh)
	}

	if changed, err := UpdateEntries(h.e.links, "nsv-ov", VXLANAlias(overlayNet), want, want); changed || err != nil {
		t.Errorf("UpdateEntries with nothing to change: changed %v, %v", changed, err)
	}
	if !o.populate(0, want.FDB, want.Neigh) {
		t.Error("EnsureFDB did not repair the entry deleted by hand")
	}
	if view := o.kernelView(0); !strings.Contains(view, u.MAC.String()+" dst "+u.Dst.String()) {
		t.Errorf("entry deleted by hand not repaired:\n%s", view)
	}
}
