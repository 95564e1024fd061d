package nat_test

import (
	"bufio"
	"fmt"
	"net/netip"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nsnet/nsnet/internal/nat"
)

// manyFIPs returns n floating IPs out of qg-r1 that no host answers for,
// beside the lab's real ones: 100.64.0.0/10 → 172.16.0.0/12.
func manyFIPs(from, n int) []nat.FloatingIP {
	fips := make([]nat.FloatingIP, n)
	for i := range fips {
		k := from + i
		fips[i] = nat.FloatingIP{
			Out:      "qg-r1",
			Floating: netip.AddrFrom4([4]byte{100, 64 | byte(k>>16), byte(k >> 8), byte(k)}),
			Fixed:    netip.AddrFrom4([4]byte{172, 16 | byte(k>>16), byte(k >> 8), byte(k)}),
		}
	}
	return fips
}

// monitor records the nftables events of a namespace, as `nft monitor`
// prints them, until stopped.
type monitor struct {
	cmd    *exec.Cmd
	events chan string
}

func startMonitor(t *testing.T, l *lab, ns string) *monitor {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", ns, "nft", "monitor")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	m := &monitor{cmd: cmd, events: make(chan string, 1<<16)}
	go func() {
		s := bufio.NewScanner(out)
		for s.Scan() {
			m.events <- s.Text()
		}
		close(m.events)
	}()
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	// nft subscribes some time after it starts: make events of our own
	// until it reports one, and everything after that is seen.
	for i := range 50 {
		name := fmt.Sprintf("monitor-sync-%d", i)
		l.nft(ns, "add", "table", "ip", name)
		l.nft(ns, "delete", "table", "ip", name)
		deadline := time.After(100 * time.Millisecond)
	wait:
		for {
			select {
			case e := <-m.events:
				if strings.Contains(e, "delete table ip "+name) {
					return m
				}
			case <-deadline:
				break wait
			}
		}
	}
	t.Fatal("nft monitor reports nothing")
	return nil
}

// until returns the events up to (not including) the first one containing
// marker.
func (m *monitor) until(t *testing.T, marker string) []string {
	t.Helper()
	var got []string
	timeout := time.After(5 * time.Second)
	for {
		select {
		case e, ok := <-m.events:
			if !ok {
				t.Fatalf("nft monitor ended; events so far: %q", got)
			}
			if strings.Contains(e, marker) {
				return got
			}
			got = append(got, e)
		case <-timeout:
			t.Fatalf("no %q from nft monitor; events so far: %q", marker, got)
		}
	}
}

// TestAddOneOfThousands proves that adding a floating IP to a router with
// a thousand is two map elements and nothing else: nft monitor sees only
// the element additions, the chains and rules keep their handles, and a
// TCP connection established through default SNAT before the change
// carries on after it. It does so through Update (the O(change) path) and
// through Apply of the whole spec.
func TestAddOneOfThousands(t *testing.T) {
	rl := newRouterLab(t)
	spec := rl.router
	spec.FloatingIPs = append(spec.FloatingIPs, manyFIPs(0, 1000)...)
	tbl, err := nat.Open(rl.r.Name, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Close()
	if _, err := tbl.Apply(spec.Spec()); err != nil {
		t.Fatal(err)
	}

	conn, err := dial(rl.vm2, farEcho)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	if line, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(line, "peer="+gwAddr+":") {
		t.Fatalf("established connection: %q, %v", line, err)
	}
	layout := rl.nft(rl.r.Name, "-a", "-t", "list", "table", "inet", nat.TableName)

	for i, step := range []struct {
		name  string
		apply func(fip nat.FloatingIP) (nat.Result, error)
	}{
		{"Update", func(fip nat.FloatingIP) (nat.Result, error) {
			res, err := tbl.Update(nat.Change{Add: nat.Spec{FloatingIPs: []nat.FloatingIP{fip}}})
			spec.FloatingIPs = append(spec.FloatingIPs, fip) // what the table now implements
			return res, err
		}},
		{"Apply", func(fip nat.FloatingIP) (nat.Result, error) {
			spec.FloatingIPs = append(spec.FloatingIPs, fip)
			return tbl.Apply(spec.Spec())
		}},
	} {
		t.Run(step.name, func(t *testing.T) {
			fip := manyFIPs(2000+i, 1)[0]
			mon := startMonitor(t, rl.lab, rl.r.Name)
			// The monitor's own events moved the generation: a no-op
			// Apply proves the table current again, so that the change
			// below takes the path it takes in steady state.
			if res, err := tbl.Apply(spec.Spec()); err != nil || res.Changed() {
				t.Fatalf("re-apply: %+v, %v", res, err)
			}
			res, err := step.apply(fip)
			if err != nil {
				t.Fatal(err)
			}
			rl.nft(rl.r.Name, "add", "table", "ip", "marker-end")
			events := mon.until(t, "add table ip marker-end")
			rl.nft(rl.r.Name, "delete", "table", "ip", "marker-end")
			events = slicesDeleteFunc(events, func(e string) bool { return strings.HasPrefix(e, "# new generation") })
			want := []string{
				fmt.Sprintf("add element inet nsnet floating_dnat { %s : %s }", fip.Floating, fip.Fixed),
				fmt.Sprintf(`add element inet nsnet floating_snat { "qg-r1" . %s : %s }`, fip.Fixed, fip.Floating),
			}
			if !reflect.DeepEqual(events, want) {
				t.Fatalf("nft monitor saw\n%s\nwant\n%s", strings.Join(events, "\n"), strings.Join(want, "\n"))
			}
			if res.Added != 2 || res.Deleted != 0 || res.Read || res.Created || res.Rebuilt || len(res.Rewritten) > 0 {
				t.Fatalf("result %+v, want 2 additions only, from memory", res)
			}
			if after := rl.nft(rl.r.Name, "-a", "-t", "list", "table", "inet", nat.TableName); after != layout {
				t.Fatalf("table layout or handles changed:\n%s\nwas\n%s", after, layout)
			}
			fmt.Fprintf(conn, "still there %d\n", i)
			conn.SetReadDeadline(time.Now().Add(2 * time.Second))
			if line, err := r.ReadString('\n'); err != nil || line != fmt.Sprintf("still there %d\n", i) {
				t.Fatalf("established connection after the change: %q, %v", line, err)
			}
			mustSee(t, rl.vm1, "tcp", farEcho, fip1)
		})
	}

	st, err := tbl.Inspect()
	if err != nil {
		t.Fatal(err)
	}
	if n := st.Elements("floating_dnat"); n != 1003 {
		t.Fatalf("floating_dnat holds %d elements, want 1003", n)
	}
}

func slicesDeleteFunc(s []string, del func(string) bool) []string {
	var out []string
	for _, e := range s {
		if !del(e) {
			out = append(out, e)
		}
	}
	return out
}

// TestConverged applies the same spec again, through the same Table and a
// new one that remembers nothing, and checks nothing changes: no batch, the
// same generation, the same handles.
func TestConverged(t *testing.T) {
	l := newLab(t)
	ns := l.router("r1")
	spec := nat.Router{
		Gateway: "qg-r1", GatewayAddr: netip.MustParseAddr(gwAddr), EnableSNAT: true,
		Internal:    []nat.Subnet{{Interface: "qr-a", Prefix: netip.MustParsePrefix("10.0.0.0/24")}},
		FloatingIPs: manyFIPs(0, 100),
		PortForwards: []nat.PortForward{{Protocol: nat.UDP, External: netip.MustParseAddr(pfAddr), ExternalPorts: nat.PortRange{First: 5000, Last: 5099},
			Internal: netip.MustParseAddr("10.0.0.9"), InternalPorts: nat.PortRange{First: 6000, Last: 6099}}},
	}.Spec()
	first := applyNAT(t, ns.Name, spec)
	if !first.Created || first.Added != 2*100+100+2 {
		t.Fatalf("first apply: %+v", first)
	}
	before := l.nft(ns.Name, "-a", "list", "table", "inet", nat.TableName)

	tbl, err := nat.Open(ns.Name, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Close()
	for _, pass := range []string{"new Table: reads the kernel", "same Table: generation unchanged, no read"} {
		res, err := tbl.Apply(spec)
		if err != nil {
			t.Fatal(err)
		}
		if res.Changed() || res.Generation != first.Generation {
			t.Fatalf("%s: %+v (first apply ended at generation %d)", pass, res, first.Generation)
		}
		if wantRead := strings.HasPrefix(pass, "new"); res.Read != wantRead {
			t.Fatalf("%s: read = %v", pass, res.Read)
		}
	}
	if after := l.nft(ns.Name, "-a", "list", "table", "inet", nat.TableName); after != before {
		t.Fatalf("table changed:\n%s\nwas\n%s", after, before)
	}

	st, err := tbl.Inspect()
	if err != nil {
		t.Fatal(err)
	}
	wantSpec := spec
	nat.SortSpec(&wantSpec)
	if !reflect.DeepEqual(normalize(st.Spec), normalize(wantSpec)) || st.Undecoded != 0 || len(st.Problems) > 0 || len(st.Stale) > 0 {
		t.Fatalf("Inspect:\n%+v\nwant spec\n%+v", st, wantSpec)
	}
}

// normalize makes empty lists nil, so that specs compare by content.
func normalize(s nat.Spec) nat.Spec {
	v := reflect.ValueOf(&s).Elem()
	for i := range v.NumField() {
		if f := v.Field(i); f.Len() == 0 {
			f.Set(reflect.Zero(f.Type()))
		}
	}
	return s
}

// TestDriftRepaired changes the table behind nsnet's back, one way at a
// time, and checks that the next Apply repairs exactly that — elements for
// elements, a chain for its rules, the table only when its structure is
// not nsnet's — that the one after changes nothing, and that another table
// in the namespace is never touched.
func TestDriftRepaired(t *testing.T) {
	l := newLab(t)
	ns := l.router("r1").Name
	spec := nat.Router{
		Gateway: "qg-r1", GatewayAddr: netip.MustParseAddr(gwAddr), EnableSNAT: true,
		Internal:    []nat.Subnet{{Interface: "qr-a", Prefix: netip.MustParsePrefix("10.0.0.0/24")}},
		FloatingIPs: append(manyFIPs(0, 10), nat.FloatingIP{Out: "qg-r1", Floating: netip.MustParseAddr(fip1), Fixed: netip.MustParseAddr("10.0.0.5")}),
	}.Spec()
	tbl, err := nat.Open(ns, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Close()
	if _, err := tbl.Apply(spec); err != nil {
		t.Fatal(err)
	}
	l.nft(ns, "add", "table", "ip", "someone")
	l.nft(ns, "add", "chain", "ip", "someone", "c", "{ type filter hook forward priority 0; }")
	l.nft(ns, "add", "rule", "ip", "someone", "c", "counter")
	other := l.nft(ns, "list", "table", "ip", "someone")

	cases := []struct {
		name  string
		drift []string // nft commands
		check func(t *testing.T, r nat.Result)
	}{
		{"element deleted", []string{"delete element inet nsnet floating_dnat { " + fip1 + " }"},
			func(t *testing.T, r nat.Result) { wantElems(t, r, 1, 0) }},
		{"element value changed", []string{"delete element inet nsnet floating_dnat { " + fip1 + " }", "add element inet nsnet floating_dnat { " + fip1 + " : 10.0.0.99 }"},
			func(t *testing.T, r nat.Result) { wantElems(t, r, 1, 1) }},
		{"foreign element", []string{"add element inet nsnet floating_dnat { 198.51.100.99 : 10.9.9.9 }"},
			func(t *testing.T, r nat.Result) { wantElems(t, r, 0, 1) }},
		{"interval element deleted", []string{`delete element inet nsnet hairpin { "qr-a" . 10.0.0.0/24 }`},
			func(t *testing.T, r nat.Result) { wantElems(t, r, 1, 0) }},
		{"set flushed", []string{"flush map inet nsnet floating_snat"},
			func(t *testing.T, r nat.Result) { wantElems(t, r, 11, 0) }},
		{"rule deleted", []string{"flush chain inet nsnet postrouting"},
			func(t *testing.T, r nat.Result) { wantRewritten(t, r, "postrouting") }},
		{"rule added", []string{"insert rule inet nsnet prerouting counter"},
			func(t *testing.T, r nat.Result) { wantRewritten(t, r, "prerouting") }},
		{"foreign chain in nsnet's table", []string{"add chain inet nsnet mine"},
			func(t *testing.T, r nat.Result) {
				if !r.Rebuilt || r.Added != 2*11+2 {
					t.Fatalf("result %+v, want a rebuild", r)
				}
			}},
		{"table deleted", []string{"delete table inet nsnet"},
			func(t *testing.T, r nat.Result) {
				if !r.Created {
					t.Fatalf("result %+v, want a creation", r)
				}
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, cmd := range tc.drift {
				l.nft(ns, cmd)
			}
			res, err := tbl.Apply(spec)
			if err != nil {
				t.Fatal(err)
			}
			if !res.Read {
				t.Fatal("the drift moved the generation, yet Apply trusted its memory")
			}
			tc.check(t, res)
			if res, err := tbl.Apply(spec); err != nil || res.Changed() {
				t.Fatalf("apply after repair: %+v, %v", res, err)
			}
			st, err := tbl.Inspect()
			if err != nil {
				t.Fatal(err)
			}
			if len(st.Problems)+len(st.Stale)+st.Undecoded > 0 || st.Elements("floating_dnat") != 11 {
				t.Fatalf("after repair: %+v", st)
			}
		})
	}
	if now := l.nft(ns, "list", "table", "ip", "someone"); now != other {
		t.Fatalf("foreign table changed:\n%s\nwas\n%s", now, other)
	}
	if deleted, err := tbl.Delete(); err != nil || !deleted {
		t.Fatalf("Delete = %v, %v", deleted, err)
	}
	if deleted, err := tbl.Delete(); err != nil || deleted {
		t.Fatalf("second Delete = %v, %v", deleted, err)
	}
	if tables := nftTables(ns); tables != "table ip someone" {
		t.Fatalf("tables after Delete: %q", tables)
	}
}

func wantElems(t *testing.T, r nat.Result, added, deleted int) {
	t.Helper()
	if r.Added != added || r.Deleted != deleted || r.Created || r.Rebuilt || len(r.Rewritten) > 0 {
		t.Fatalf("result %+v, want %d added and %d deleted elements only", r, added, deleted)
	}
}

func wantRewritten(t *testing.T, r nat.Result, chain string) {
	t.Helper()
	if !reflect.DeepEqual(r.Rewritten, []string{chain}) || r.Added+r.Deleted > 0 || r.Created || r.Rebuilt {
		t.Fatalf("result %+v, want chain %s rewritten only", r, chain)
	}
}

// TestUpdate checks Update's bookkeeping: no-ops, conflicts refused with
// nothing sent, removals, and an Update after drift converging from the
// kernel.
func TestUpdate(t *testing.T) {
	l := newLab(t)
	ns := l.router("r1").Name
	tbl, err := nat.Open(ns, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Close()
	a := nat.FloatingIP{Out: "qg-r1", Floating: netip.MustParseAddr(fip1), Fixed: netip.MustParseAddr("10.0.0.5")}
	if _, err := tbl.Update(nat.Change{Add: nat.Spec{FloatingIPs: []nat.FloatingIP{a}}}); err == nil {
		t.Fatal("Update before Apply succeeded")
	}
	base := nat.Spec{FloatingIPs: manyFIPs(0, 5)}
	if _, err := tbl.Apply(base); err != nil {
		t.Fatal(err)
	}
	add := func(f ...nat.FloatingIP) nat.Change { return nat.Change{Add: nat.Spec{FloatingIPs: f}} }
	remove := func(f ...nat.FloatingIP) nat.Change { return nat.Change{Remove: nat.Spec{FloatingIPs: f}} }
	moved, sameFixed := a, a
	moved.Fixed = netip.MustParseAddr("10.0.0.6")
	sameFixed.Floating = netip.MustParseAddr("198.51.100.21")

	for _, s := range []struct {
		name          string
		change        nat.Change
		wantErr       bool
		added, delete int
	}{
		{"add one", add(a), false, 2, 0},
		{"add it again: no change", add(a), false, 0, 0},
		{"floating address mapped elsewhere", add(moved), true, 0, 0},
		{"fixed address with a second floating IP", add(sameFixed), true, 0, 0},
		{"remove with another fixed address", remove(moved), true, 0, 0},
		{"move: remove and add in one change", nat.Change{Remove: nat.Spec{FloatingIPs: []nat.FloatingIP{a}}, Add: nat.Spec{FloatingIPs: []nat.FloatingIP{moved}}}, false, 2, 2},
		{"remove", remove(moved), false, 0, 2},
		{"remove again: no change", remove(moved), false, 0, 0},
	} {
		t.Run(s.name, func(t *testing.T) {
			gen := generation(t, tbl)
			res, err := tbl.Update(s.change)
			if (err != nil) != s.wantErr {
				t.Fatalf("err = %v, want error: %v", err, s.wantErr)
			}
			if err != nil && generation(t, tbl) != gen {
				t.Fatal("a refused change was committed")
			}
			if res.Added != s.added || res.Deleted != s.delete || res.Read {
				t.Fatalf("result %+v, want +%d -%d without reading", res, s.added, s.delete)
			}
		})
	}
	t.Run("after drift: converges from the kernel", func(t *testing.T) {
		l.nft(ns, "flush map inet nsnet floating_dnat")
		res, err := tbl.Update(add(a))
		if err != nil {
			t.Fatal(err)
		}
		if !res.Read || res.Added != 5+2 || res.Deleted != 0 {
			t.Fatalf("result %+v, want a read and the 5 lost elements plus 2 new", res)
		}
		st, _ := tbl.Inspect()
		if len(st.Spec.FloatingIPs) != 6 {
			t.Fatalf("floating IPs %v", st.Spec.FloatingIPs)
		}
	})
}

func generation(t *testing.T, tbl *nat.Table) uint32 {
	t.Helper()
	st, err := tbl.Inspect()
	if err != nil {
		t.Fatal(err)
	}
	return st.Generation
}

// TestLargeBatch creates a table with ten thousand floating IPs and a
// 30,000-port forward in its first, single batch — megabytes, far beyond
// one netlink message or a default socket buffer — and checks it all
// arrived.
func TestLargeBatch(t *testing.T) {
	l := newLab(t)
	ns := l.router("r1").Name
	spec := nat.Spec{
		FloatingIPs: manyFIPs(0, 10000),
		PortForwards: []nat.PortForward{{Protocol: nat.TCP, External: netip.MustParseAddr(pfAddr), ExternalPorts: nat.PortRange{First: 10000, Last: 39999},
			Internal: netip.MustParseAddr("10.0.0.9"), InternalPorts: nat.PortRange{First: 20000, Last: 49999}}},
	}
	tbl, err := nat.Open(ns, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Close()
	before := generation(t, tbl)
	res, err := tbl.Apply(spec)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Created || res.Added != 2*10000+30000 {
		t.Fatalf("first apply: %+v", res)
	}
	if res.Generation != before+1 {
		t.Errorf("the table was created in %d commits, want one", res.Generation-before)
	}
	st, err := tbl.Inspect()
	if err != nil {
		t.Fatal(err)
	}
	for set, want := range map[string]int{"floating_dnat": 10000, "floating_snat": 10000, "port_forward": 30000} {
		if got := st.Elements(set); got != want {
			t.Errorf("%s holds %d elements, want %d", set, got, want)
		}
	}
	if len(st.Spec.PortForwards) != 1 || st.Spec.PortForwards[0] != spec.PortForwards[0] {
		t.Errorf("forward reads back as %v", st.Spec.PortForwards)
	}
}
