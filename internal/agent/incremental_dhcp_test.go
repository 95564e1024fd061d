package agent

import (
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"runtime"
	"sync"
	"testing"

	"github.com/nsnet/nsnet/internal/model"
)

// TestServiceUpdateMatchesDHCPService: the networks' DHCP, DHCPv6 and DNS
// configurations that update keeps port by port (svcCache) are, after
// every random change of ports and instances, those computeDesired makes
// from every record — with ports sharing MACs, addresses and DNS names
// (keys with several contributors), dns_name in a dns_domain, extra DHCP
// options, ports moving between networks, instances renamed (their
// ports' host names) and a dual-stack network served by DHCPv6; and the
// configuration the servers had before an update is left as it was.
func TestServiceUpdateMatchesDHCPService(t *testing.T) {
	for seed := range uint64(8) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			testServiceUpdate(t, seed, 300)
		})
	}
}

func testServiceUpdate(t *testing.T, seed uint64, steps int) {
	rng := rand.New(rand.NewPCG(seed, 61))
	st := tempStore(t)

	v4 := l3network(10, "10.1.0.0/24", "10.1.0.1", false)
	v4.subnet.EnableDHCP = true
	ds := l3network(20, "10.2.0.0/24", "10.2.0.1", false)
	ds.subnet.EnableDHCP = true
	v6 := model.Subnet{ID: rid(22), NetworkID: ds.net.ID, IPVersion: 6, CIDR: "2001:db8:2::/64", EnableDHCP: true,
		IPv6AddressMode: ptr(model.IPv6DHCPv6Stateful), IPv6RAMode: ptr(model.IPv6DHCPv6Stateful)}
	ds.net.Subnets = append(ds.net.Subnets, v6.ID)
	dhcp4 := v4.port(30, "10.1.0.2", model.DeviceOwnerDHCP, "dhcp-"+v4.net.ID)
	dhcpDS := ds.port(31, "10.2.0.2", model.DeviceOwnerDHCP, "dhcp-"+ds.net.ID)
	dhcpDS.FixedIPs = append(dhcpDS.FixedIPs, model.FixedIP{SubnetID: v6.ID, IPAddress: "2001:db8:2::2"})
	write := func(put, del []any) { writeRecords(t, st, put, del) }
	write([]any{v4.net, v4.subnet, ds.net, ds.subnet, v6, dhcp4, dhcpDS}, nil)

	var recs records
	inc := incremental{prefix: "svc-", host: "hostx"}
	var mu sync.Mutex
	pass := func(full bool) *desired {
		t.Helper()
		ch := syncRecords(t, st, &recs)
		return inc.update(&recs, ch, full, &mu)
	}
	pass(true)

	nets := []l3net{v4, ds}
	ports := map[string]model.Port{}
	newPort := func(id string) model.Port {
		n := nets[rng.IntN(len(nets))]
		// Small pools: ports share MACs, addresses and names.
		p := n.port(100+rng.IntN(3), fmt.Sprintf("%s.%d", n.subnet.CIDR[:len(n.subnet.CIDR)-5], 10+rng.IntN(4)), model.DeviceOwnerCompute, "")
		p.ID = id
		if n.net.ID == ds.net.ID && rng.IntN(2) == 0 {
			p.FixedIPs = append(p.FixedIPs, model.FixedIP{SubnetID: v6.ID, IPAddress: fmt.Sprintf("2001:db8:2::%x", 10+rng.IntN(4))})
		}
		switch rng.IntN(3) {
		case 0:
			p.DeviceID, p.DeviceOwner = "", ""
		default:
			p.DeviceID = fmt.Sprintf("inst-%d", rng.IntN(4)) // maybe missing
		}
		if rng.IntN(3) == 0 {
			p.DNSName = []string{"web", "db"}[rng.IntN(2)]
			if rng.IntN(2) == 0 {
				p.DNSDomain = "example.org."
			}
		}
		if rng.IntN(4) == 0 {
			p.ExtraDHCPOpts = []model.ExtraDHCPOpt{{OptName: "mtu", OptValue: "1400", IPVersion: 4}}
		}
		if rng.IntN(5) == 0 {
			p.MACAddress = "" // no lease
		}
		return p
	}
	for step := range steps {
		var put, del []any
		switch op := rng.IntN(10); {
		case op < 2: // instance created or renamed
			put = append(put, model.Instance{ID: fmt.Sprintf("inst-%d", rng.IntN(4)), Name: fmt.Sprintf("vm%d", rng.IntN(3))})
		case op < 3: // instance deleted
			del = append(del, model.Instance{ID: fmt.Sprintf("inst-%d", rng.IntN(4))})
		case op < 8: // port created or changed (maybe to the other network)
			p := newPort(fmt.Sprintf("port-%d", rng.IntN(12)))
			ports[p.ID] = p
			put = append(put, p)
		default: // port deleted
			for id, p := range ports {
				del = append(del, p)
				delete(ports, id)
				break
			}
		}
		if len(put)+len(del) == 0 {
			continue
		}
		write(put, del)
		// What the servers read now, which the update must leave as it
		// is: they may be answering from it while it runs.
		before := map[string]networkService{}
		seen := map[string]any{}
		if inc.d != nil {
			for id, svc := range inc.d.services {
				before[id], seen[id] = svc, serviceEntries(svc)
			}
		}
		got := pass(false)
		for id, svc := range before {
			if now := serviceEntries(svc); !reflect.DeepEqual(now, seen[id]) {
				t.Fatalf("step %d: network %s: the configuration the servers had changed under them:\n%+v\nwas %+v", step, id, now, seen[id])
			}
		}
		want := computeDesired(recs.snapshot(got.rev), inc.prefix, inc.host)
		for id, w := range want.services {
			if g := got.services[id]; !reflect.DeepEqual(g, w) {
				t.Fatalf("step %d: network %s:\nupdated port by port: %+v\n%+v\n%+v\nfrom every record:    %+v\n%+v\n%+v",
					step, id, g.DHCP, g.DHCP6, g.DNS, w.DHCP, w.DHCP6, w.DNS)
			}
		}
		if len(got.services) != len(want.services) {
			t.Fatalf("step %d: %d services, want %d", step, len(got.services), len(want.services))
		}
	}
}

// serviceEntries are the entries of svc's maps, copied.
func serviceEntries(svc networkService) []any {
	out := []any{svc.DHCP.Hosts.Collect(), svc.DNS.A.Collect(), svc.DNS.PTR.Collect()}
	if svc.DHCP6 != nil {
		out = append(out, svc.DHCP6.Hosts.Collect())
	}
	return out
}

// TestServiceUpdateAllocatesPerChange: the configuration of a network
// with a port created is the old one with that port's keys set: the bytes
// the agent's update allocates for it at 10,000 ports are those at 100
// but for a path one node deeper in the configuration's maps (a node has
// up to 32 entries: log32 of the ports), where copying the maps whole
// made them grow with the ports (28 kB at 100, 3.3 MB at 10,000). Bytes,
// not time: counted, not raced.
func TestServiceUpdateAllocatesPerChange(t *testing.T) {
	small, big := serviceUpdateBytes(t, 100), serviceUpdateBytes(t, 10000)
	t.Logf("bytes allocated by the update of one port create: %d at 100 ports, %d at 10,000", small, big)
	if big > 3*small {
		t.Errorf("a port create at 10,000 ports allocates %d bytes, %d at 100: the configuration is copied, not patched", big, small)
	}
}

// serviceUpdateBytes are the bytes inc.update allocates for a port
// created in a network of n ports served by DHCP (the least of three
// creates, which a GC cycle's own allocations do not inflate).
func serviceUpdateBytes(t *testing.T, n int) uint64 {
	st := tempStore(t)
	v4 := l3network(10, "10.1.0.0/16", "10.1.0.1", false)
	v4.subnet.EnableDHCP = true
	put := func(recs ...any) { writeRecords(t, st, recs, nil) }
	all := []any{v4.net, v4.subnet, v4.port(30, "10.1.0.2", model.DeviceOwnerDHCP, "dhcp-"+v4.net.ID)}
	for i := range n {
		all = append(all, v4.port(1000+i, fmt.Sprintf("10.1.%d.%d", 1+i/250, 1+i%250), "", ""))
	}
	put(all...)
	var recs records
	inc := incremental{prefix: "svc-", host: "hostx"}
	var mu sync.Mutex
	sync := func() *changes {
		t.Helper()
		ch := syncRecords(t, st, &recs)
		return ch
	}
	inc.update(&recs, sync(), true, &mu)
	least := uint64(math.MaxUint64)
	for i := range 3 {
		put(v4.port(20000+i, fmt.Sprintf("10.1.200.%d", 1+i), model.DeviceOwnerCompute, "inst-a"))
		ch := sync()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		d := inc.update(&recs, ch, false, &mu)
		runtime.ReadMemStats(&after)
		least = min(least, after.TotalAlloc-before.TotalAlloc)
		if _, ok := d.services[v4.net.ID].DHCP.Hosts.Get(fmt.Sprintf("fa:16:3e:00:%02x:%02x", (20000+i)>>8&0xff, (20000+i)&0xff)); !ok {
			t.Fatalf("port %d has no lease", i)
		}
	}
	return least
}
