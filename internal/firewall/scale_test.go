package firewall_test

import (
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nsnet/nsnet/internal/firewall"
)

var scaleSizes = flag.String("fw.sizes", "10,1000", "BenchmarkPortAdd: ports in the firewall, comma separated, ascending (10,1000,10000: the 10,000 row's first Apply takes minutes)")

// scaleSpec is n ports of one default security group (egress anywhere,
// ingress from the group's members), as on a host in use: port i is
// 10.80.i/32 and a member.
func scaleSpec(n int) firewall.Spec {
	members := make([]netip.Prefix, n)
	ports := make([]firewall.Port, n)
	for i := range n {
		a := netip.AddrFrom4([4]byte{10, 80, byte(i >> 8), byte(i)})
		members[i] = netip.PrefixFrom(a, 32)
		ports[i] = firewall.Port{
			Interface: fmt.Sprintf("tapscale%d", i),
			MAC:       net.HardwareAddr{0xfa, 0x16, 0x3e, 0, byte(i >> 8), byte(i)},
			Addresses: []netip.Addr{a},
			Bridge:    "nsb-scale",
			Rules: []firewall.Rule{
				{Direction: firewall.Egress, ProtoMax: 255, PortMax: 65535, Remote: netip.MustParsePrefix("0.0.0.0/0")},
				{Direction: firewall.Ingress, ProtoMax: 255, PortMax: 65535, Group: "sg"},
			},
		}
	}
	return firewall.Spec{Ports: ports, Zoned: []string{"nsb-scale"}, Groups: map[string]firewall.Members{"sg": firewall.MembersOf(members...)}}
}

// BenchmarkPortAdd times the Apply that adds one port (and member of its
// group) to a firewall of n ports, per -fw.sizes, and logs each size's
// ratio to the first: what one port costs the kernel (and Apply) as the
// host fills. The port is taken away again, untimed, between two adds.
//
//	go test -run '^$' -bench PortAdd -benchtime 30x ./internal/firewall -args -fw.sizes 10,1000,3000
func BenchmarkPortAdd(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root (network namespaces)")
	}
	var sizes []int
	for _, f := range strings.Split(*scaleSizes, ",") {
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			b.Fatalf("-fw.sizes: %q is not a number of ports", f)
		}
		sizes = append(sizes, n)
	}
	perAdd := map[int]time.Duration{}
	for _, n := range sizes {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			ns := fmt.Sprintf("fwb%d-h", os.Getpid()%100000)
			if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
				b.Fatalf("%v\n%s", err, out)
			}
			b.Cleanup(func() {
				if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
					b.Errorf("remove namespace %s: %v\n%s", ns, err, out)
				}
			})
			fw, err := firewall.Open(ns, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer fw.Close()
			base, more := scaleSpec(n), scaleSpec(n+1)
			start := time.Now()
			if _, err := fw.Apply(base); err != nil {
				b.Fatal(err)
			}
			b.Logf("%d ports: first Apply %s", n, time.Since(start).Round(time.Millisecond))
			var took time.Duration
			for b.Loop() {
				start := time.Now()
				res, err := fw.Apply(more)
				took += time.Since(start)
				if err != nil {
					b.Fatal(err)
				}
				if res.Rebuilt || res.Added == 0 {
					b.Fatalf("adding a port: %+v, want an update", res)
				}
				b.StopTimer()
				if _, err := fw.Apply(base); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			perAdd[n] = took / time.Duration(b.N)
			b.ReportMetric(float64(perAdd[n].Microseconds())/1000, "ms/add")
		})
	}
	if first := perAdd[sizes[0]]; first > 0 {
		for _, n := range sizes {
			if perAdd[n] > 0 {
				// Printed, not logged: a parent benchmark's log is not shown.
				fmt.Printf("one port added to %d ports: %s, %.1fx the %d row\n", n, perAdd[n].Round(10*time.Microsecond), float64(perAdd[n])/float64(first), sizes[0])
			}
		}
	}
}
