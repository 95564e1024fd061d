package agent

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/netns"
	"github.com/nsnet/nsnet/internal/store"
)

// BenchmarkDesiredUpdate times what a pass computes, kernel aside, after
// one port is created and plugged into an instance, with 10 and 10,000
// unbound ports in the default-like group (whose rule names the group as
// its remote, so every port is a member): the store read, the desired
// state's update and the firewall's spec. "recompute" computes everything
// from scratch each time, as every pass did before.
func BenchmarkDesiredUpdate(b *testing.B) {
	for _, n := range []int{10, 10000} {
		for _, mode := range []string{"incremental", "recompute"} {
			b.Run(fmt.Sprintf("%d/%s", n, mode), func(b *testing.B) {
				benchmarkDesiredUpdate(b, n, mode == "recompute")
			})
		}
	}
}

func benchmarkDesiredUpdate(b *testing.B, n int, recompute bool) {
	st := tempStore(b)
	ctx := context.Background()
	member := func(id, ip string) model.Port {
		p := testPort("x", "eth0", ip, "fa:16:3e:00:00:01")
		p.ID, p.DeviceID, p.DeviceOwner = id, "", ""
		p.PortSecurityEnabled, p.SecurityGroups = true, []string{"sg"}
		return p
	}
	if _, err := st.Update(ctx, func(t store.Txn) error {
		for _, rec := range []any{testNetwork(), testSubnet(), testInstance("a"),
			model.SecurityGroup{ID: "sg", Stateful: true},
			model.SecurityGroupRule{ID: "r1", SecurityGroupID: "sg", Direction: "ingress", EtherType: "IPv4", RemoteGroupID: ptr("sg")}} {
			kind, id := kindAndID(rec)
			if err := t.Put(kind, id, rec); err != nil {
				return err
			}
		}
		for i := range n {
			if err := t.Put(store.Ports, fmt.Sprintf("fill-%05d", i), member(fmt.Sprintf("fill-%05d", i), fmt.Sprintf("10.9.%d.%d", i/250, i%250))); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	var recs records
	inc := incremental{prefix: "pre-", host: "host"}
	var mu sync.Mutex
	pass := func() {
		ch := syncRecords(b, st, &recs)
		inc.update(&recs, ch, recompute, &mu)
		inc.firewallSpec(&recs)
	}
	pass()
	b.StopTimer()
	for i := range b.N {
		p := member(fmt.Sprintf("probe-%d", i), "10.9.200.1")
		p.DeviceID, p.DeviceOwner = "inst-a", model.DeviceOwnerCompute
		if _, err := st.Update(ctx, func(t store.Txn) error { return t.Put(store.Ports, p.ID, p) }); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		pass()
		b.StopTimer()
		if _, err := st.Update(ctx, func(t store.Txn) error { return t.Delete(store.Ports, p.ID) }); err != nil {
			b.Fatal(err)
		}
		pass()
	}
}

// BenchmarkPlugAtScale times, end to end through the agent and the
// kernel, a port created in an instance that exists, or deleted, with 10 and
// 10,000 unbound ports in the store, all members of the group the port
// is in (whose rule names it as remote).
func BenchmarkPlugAtScale(b *testing.B) {
	for _, n := range []int{10, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			e := newEnv(b, time.Hour)
			recs := []any{testNetwork(), testSubnet(), testInstance("a"),
				model.SecurityGroup{ID: "sg", Stateful: true},
				model.SecurityGroupRule{ID: "r1", SecurityGroupID: "sg", Direction: "ingress", EtherType: "IPv4", RemoteGroupID: ptr("sg")}}
			for i := range n {
				p := testPort("x", "eth0", fmt.Sprintf("10.9.%d.%d", 100+i/250, i%250), "fa:16:3e:00:00:02")
				p.ID, p.DeviceID, p.DeviceOwner = fmt.Sprintf("fill-%05d", i), "", ""
				p.PortSecurityEnabled, p.SecurityGroups = true, []string{"sg"}
				recs = append(recs, p)
			}
			e.converge(e.put(recs...))
			withoutVerifiers(b)
			b.ResetTimer()
			for i := range b.N {
				// Plugged and unplugged in turn: the group gains and
				// loses a member each time.
				p := testPort("a", "eth0", "10.9.0.5", "fa:16:3e:00:00:01")
				p.PortSecurityEnabled, p.SecurityGroups = true, []string{"sg"}
				if i%2 == 0 {
					e.converge(e.put(p))
				} else {
					e.converge(e.del(p))
				}
			}

		})
	}
}

// BenchmarkFirewallSpecPlugged times the incremental update and the
// firewall's spec after one port is created, plugged into an instance of
// its own, with 10 and 1,000 ports plugged the same way, all members of
// the default-like group: what the agent computes for the firewall per
// change, kernel aside.
func BenchmarkFirewallSpecPlugged(b *testing.B) {
	for _, n := range []int{10, 1000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			st := tempStore(b)
			ctx := context.Background()
			plugged := func(i int, ip string) []any {
				inst := testInstance(fmt.Sprintf("vm%05d", i))
				p := testPort(inst.Name, "eth0", ip, fmt.Sprintf("fa:16:3e:01:%02x:%02x", i>>8&0xff, i&0xff))
				p.PortSecurityEnabled, p.SecurityGroups = true, []string{"sg"}
				return []any{inst, p}
			}
			put := func(recs ...any) {
				if _, err := st.Update(ctx, func(t store.Txn) error {
					for _, rec := range recs {
						kind, id := kindAndID(rec)
						if err := t.Put(kind, id, rec); err != nil {
							return err
						}
					}
					return nil
				}); err != nil {
					b.Fatal(err)
				}
			}
			recs := []any{testNetwork(), testSubnet(), model.SecurityGroup{ID: "sg", Stateful: true},
				model.SecurityGroupRule{ID: "r1", SecurityGroupID: "sg", Direction: "ingress", EtherType: "IPv4", RemoteGroupID: ptr("sg")}}
			for i := range n {
				recs = append(recs, plugged(i, fmt.Sprintf("10.9.%d.%d", i/250, 1+i%250))...)
			}
			put(recs...)
			var rs records
			inc := incremental{prefix: "pre-", host: "host"}
			var mu sync.Mutex
			pass := func() {
				ch := syncRecords(b, st, &rs)
				inc.update(&rs, ch, false, &mu)
				inc.firewallSpec(&rs)
			}
			pass()
			b.ResetTimer()
			for i := range b.N {
				b.StopTimer()
				put(plugged(n+i, fmt.Sprintf("10.10.%d.%d", i/250%250, 1+i%250))...)
				b.StartTimer()
				pass()
			}
		})
	}
}

// BenchmarkPassWorkBound times what an incremental pass does besides the
// kernel (the desired state's update, the drift watches' wants, the
// deletions and the instances' work listed, the end: statuses, health)
// after an instance and its port are created among 10 and 1,000 others,
// each plugged into an instance of its own (simulatePass).
func BenchmarkPassWorkBound(b *testing.B) {
	for _, n := range []int{10, 1000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			st := tempStore(b)
			plugged := func(i int) []any {
				name := fmt.Sprintf("vm%05d", i)
				return []any{testInstance(name), testPort(name, "eth0", fmt.Sprintf("10.9.%d.%d", i/250, 2+i%250), fmt.Sprintf("fa:16:3e:00:%02x:%02x", i/256, i%256))}
			}
			write := func(put, del []any) { writeRecords(b, st, put, del) }
			recs := []any{testNetwork(), testSubnet()}
			for i := range n {
				recs = append(recs, plugged(i)...)
			}
			write(recs, nil)
			a, err := New(Config{Store: st, NetnsPrefix: "pw-", Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				b.Fatal(err)
			}
			withoutVerifiers(b)
			simulatePass(b, a, true)
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				probe := plugged(n + 1)
				write(probe, nil)
				b.StartTimer()
				simulatePass(b, a, false)
				b.StopTimer()
				write(nil, probe)
				simulatePass(b, a, false)
				b.StartTimer()
			}
		})
	}
}

// BenchmarkFullPassAtScale times the agent's full pass, kernel and all,
// with 10 instances plugged (each a port in the default-like group) and
// 10 or 10,000 unbound ports in the store, members of the group too: the
// store's size, not the host's, as bench/agentscale fills it. The figure
// is the mean of the full passes' durations (OnPass); a CPU profile of
// the benchmark shows where they go.
func BenchmarkFullPassAtScale(b *testing.B) {
	for _, n := range []int{10, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			var mu sync.Mutex
			var took time.Duration
			var passes int
			e := &env{t: b, prefix: fmt.Sprintf("%s%d-", allPrefix, testSeq.Add(1)), resync: 50 * time.Millisecond}
			e.hostNetns = e.prefix + "host"
			st, err := store.OpenBolt(b.TempDir() + "/state.db")
			if err != nil {
				b.Fatal(err)
			}
			e.st = st
			b.Cleanup(e.cleanup)
			e.onPass = func(full bool, d time.Duration, clean bool, err error) {
				if full {
					mu.Lock()
					took += d
					passes++
					mu.Unlock()
				}
			}
			recs := []any{testNetwork(), testSubnet(),
				model.SecurityGroup{ID: "sg", Stateful: true},
				model.SecurityGroupRule{ID: "r1", SecurityGroupID: "sg", Direction: "ingress", EtherType: "IPv4", RemoteGroupID: ptr("sg")}}
			for i := range 10 {
				name := fmt.Sprintf("vm%02d", i)
				p := testPort(name, "eth0", fmt.Sprintf("10.9.0.%d", 2+i), fmt.Sprintf("fa:16:3e:00:00:%02x", i))
				p.PortSecurityEnabled, p.SecurityGroups = true, []string{"sg"}
				recs = append(recs, testInstance(name), p)
			}
			for i := range n {
				p := testPort("x", "eth0", fmt.Sprintf("10.9.%d.%d", 100+i/250, i%250), "fa:16:3e:00:00:02")
				p.ID, p.DeviceID, p.DeviceOwner = fmt.Sprintf("fill-%05d", i), "", ""
				p.PortSecurityEnabled, p.SecurityGroups = true, []string{"sg"}
				recs = append(recs, p)
			}
			writeRecords(b, st, recs, nil)
			withoutVerifiers(b)
			e.start()
			e.converge(e.revision())
			e.waitFullPasses(2)
			mu.Lock()
			took, passes = 0, 0
			mu.Unlock()
			switches := netns.Switches()
			b.ResetTimer()
			for range b.N {
				e.waitFullPasses(1)
			}
			b.StopTimer()
			mu.Lock()
			defer mu.Unlock()
			if passes > 0 {
				b.ReportMetric(float64(took.Microseconds())/1000/float64(passes), "ms/fullpass")
				// The namespace switches of the process meanwhile:
				// the passes' (nothing else runs).
				b.ReportMetric(float64(netns.Switches()-switches)/float64(passes), "switches/fullpass")
			}
		})
	}
}

// withoutVerifiers turns off, until tb ends, what tests check after every
// pass (verifyStatuses, verifyManaged, verifyCounts): computing it all
// again from scratch is not a pass's work.
func withoutVerifiers(tb testing.TB) {
	s, m, c := verifyStatuses, verifyManaged, verifyCounts
	verifyStatuses, verifyManaged, verifyCounts = nil, nil, nil
	tb.Cleanup(func() { verifyStatuses, verifyManaged, verifyCounts = s, m, c })
}
