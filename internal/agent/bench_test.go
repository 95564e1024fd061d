package agent

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// BenchmarkHundredInstances programs 100 instances with a port each, every
// instance and port written in its own store transaction (as the API
// does), and reports how much faster than the same topology built by a
// script of ip commands that is. Two shapes: writes back to back with one
// wait at the end, and each write waited for (a client using
// X-Nsnet-Wait on every request).
func BenchmarkHundredInstances(b *testing.B) {
	const n = 100
	for _, mode := range []string{"burst", "wait-each"} {
		b.Run(mode, func(b *testing.B) {
			var agentTime, shellTime time.Duration
			for range b.N {
				agentTime += timeAgent(b, n, mode == "wait-each")
				shellTime += timeShell(b, n)
			}
			b.ReportMetric(float64(agentTime.Milliseconds())/float64(b.N), "agent-ms")
			b.ReportMetric(float64(shellTime.Milliseconds())/float64(b.N), "ip-script-ms")
			b.ReportMetric(float64(shellTime)/float64(agentTime), "speedup")
		})
	}
}

func timeAgent(b *testing.B, n int, waitEach bool) time.Duration {
	b.Helper()
	e := newEnv(b, time.Hour)
	e.converge(e.put(testNetwork(), testSubnet()))
	start := time.Now()
	var rev int64
	for i := range n {
		name := fmt.Sprintf("vm%d", i)
		rev = e.put(testInstance(name))
		if waitEach {
			e.converge(rev)
		}
		rev = e.put(testPort(name, "eth0", fmt.Sprintf("10.9.0.%d", 10+i), fmt.Sprintf("fa:16:3e:00:01:%02x", i)))
		if waitEach {
			e.converge(rev)
		}
	}
	e.converge(rev)
	took := time.Since(start)
	if err := ping(e.ns("vm0"), "10.9.0.109"); err != nil {
		b.Fatal(err)
	}
	return took
}

// timeShell builds the same topology with ip, one command per step, the
// way the seed walkthroughs do.
func timeShell(b *testing.B, n int) time.Duration {
	b.Helper()
	prefix := fmt.Sprintf("%s%d-", allPrefix, testSeq.Add(1))
	host := prefix + "host"
	var script strings.Builder
	fmt.Fprintf(&script, "set -e\nip netns add %s\nip -n %[1]s link add nsb-bench type bridge\nip -n %[1]s link set nsb-bench up\n", host)
	for i := range n {
		ns := fmt.Sprintf("%svm%d", prefix, i)
		tap := fmt.Sprintf("tapbench%d", i)
		fmt.Fprintf(&script, "ip netns add %s\n", ns)
		fmt.Fprintf(&script, "ip -n %s link set lo up\n", ns)
		fmt.Fprintf(&script, "ip -n %s link add %s type veth peer name eth0 netns %s\n", host, tap, ns)
		fmt.Fprintf(&script, "ip -n %s link set %s master nsb-bench up\n", host, tap)
		fmt.Fprintf(&script, "ip -n %s link set eth0 address fa:16:3e:00:01:%02x up\n", ns, i)
		fmt.Fprintf(&script, "ip -n %s addr add 10.9.0.%d/24 dev eth0\n", ns, 10+i)
		fmt.Fprintf(&script, "ip -n %s route add default via 10.9.0.1\n", ns)
	}
	start := time.Now()
	out, err := exec.Command("sh", "-c", script.String()).CombinedOutput()
	took := time.Since(start)
	for _, ns := range namespacesWithPrefix(prefix) {
		exec.Command("ip", "netns", "delete", ns).Run()
	}
	if err != nil {
		b.Fatalf("ip script: %v\n%s", err, out)
	}
	return took
}
