package agent

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/netns"
)

// BenchmarkDualStack programs 50 instances with a port each, one store
// write per record as the API does, on an IPv4 network and, in the same
// run, on a dual-stack one (static IPv6 addresses), and reports the ratio
// of the two creation times (the target: ≤ 1.2). A third shape
// puts the IPv6 subnet in SLAAC mode behind a router, and reports also
// the time from the first write until every instance's own kernel has
// configured its EUI-64 address from the router's advertisements.
func BenchmarkDualStack(b *testing.B) {
	const n = 50
	var v4, dual, slaac, ready time.Duration
	for range b.N {
		t, _ := timeDualStack(b, n, "ipv4")
		v4 += t
		t, _ = timeDualStack(b, n, "dual")
		dual += t
		t, r := timeDualStack(b, n, "slaac")
		slaac, ready = slaac+t, ready+r
	}
	per := func(d time.Duration) float64 { return float64(d.Milliseconds()) / float64(b.N) }
	b.ReportMetric(per(v4), "ipv4-ms")
	b.ReportMetric(per(dual), "dual-ms")
	b.ReportMetric(float64(dual)/float64(v4), "dual/ipv4")
	b.ReportMetric(per(slaac), "slaac-ms")
	b.ReportMetric(per(ready), "slaac-ready-ms")
}

// timeDualStack builds n instances on a network of the given shape and
// returns the time until the agent has programmed them and, for "slaac",
// until every instance has its address.
func timeDualStack(b *testing.B, n int, shape string) (took, ready time.Duration) {
	b.Helper()
	e := newEnv(b, time.Hour)
	mode := ""
	if shape == "slaac" {
		mode = "slaac"
	}
	in := dualNetwork(110, "10.0.0.0/16", "10.0.0.1", "2001:db8:1::/64", "2001:db8:1::1", false, mode, mode)
	setup := in.l3net.records()
	if shape != "ipv4" {
		setup = in.records()
	}
	if shape == "slaac" {
		r := router(200, nil, false)
		setup = append(setup, r, in.port(201, "10.0.0.1", "2001:db8:1::1", model.DeviceOwnerRouterInterface, r.ID))
	}
	e.converge(e.put(setup...))

	want := map[string]netip.Addr{} // namespace → its SLAAC address
	start := time.Now()
	var rev int64
	for i := range n {
		name := fmt.Sprintf("vm%d", i)
		ip4, ip6 := fmt.Sprintf("10.0.1.%d", i+10), ""
		mac := fmt.Sprintf("fa:16:3e:00:01:%02x", i)
		switch shape {
		case "dual":
			ip6 = fmt.Sprintf("2001:db8:1::%x", i+0x10)
		case "slaac":
			a := eui64(in.v6.CIDR, mac)
			ip6, want[e.ns(name)] = a.String(), a
		}
		recs := in.vm(1000+i, name, ip4, ip6)
		p := recs[1].(model.Port)
		p.MACAddress = mac
		e.put(recs[0])
		rev = e.put(p)
	}
	e.converge(rev)
	took = time.Since(start)
	for len(want) > 0 {
		for ns, a := range want {
			if hasAddr(ns, "eth0", a) {
				delete(want, ns)
			}
		}
		if len(want) == 0 {
			break
		}
		if time.Since(start) > time.Minute {
			b.Fatalf("%d instances without their SLAAC address after a minute", len(want))
		}
		time.Sleep(20 * time.Millisecond)
	}
	return took, time.Since(start)
}

// hasAddr reports whether link in namespace ns has address a.
func hasAddr(ns, link string, a netip.Addr) bool {
	found := false
	netns.DoNamed(ns, func() error {
		ifi, err := net.InterfaceByName(link)
		if err != nil {
			return err
		}
		addrs, err := ifi.Addrs()
		for _, x := range addrs {
			if p, ok := x.(*net.IPNet); ok {
				if got, ok := netip.AddrFromSlice(p.IP); ok && got == a {
					found = true
				}
			}
		}
		return err
	})
	return found
}
