package e2e

import (
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nsnet/nsnet/internal/lab"
)

// TestConcurrentPortCreates sends 500 port creates at once to one subnet
// whose pool holds 400 addresses: 400 succeed, 100 fail cleanly with
// Neutron's IpAddressGenerationFailure, no address or MAC is handed out
// twice, and every port created is plugged into its instance.
func TestConcurrentPortCreates(t *testing.T) {
	if testing.Short() {
		t.Skip("500 instances")
	}
	const creates, pool = 500, 400
	e := Start(t)
	e.MustNsnet("quota", "set", "admin", "--ports", "-1")
	_, body := e.API("POST", "/v2.0/networks", map[string]any{"network": map[string]any{"name": "net"}})
	net := body["network"].(map[string]any)["id"].(string)
	status, body := e.API("POST", "/v2.0/subnets", map[string]any{"subnet": map[string]any{"network_id": net, "cidr": "10.0.0.0/23",
		// One more address than the instances get: the network's DHCP
		// port takes one.
		"allocation_pools": []any{map[string]any{"start": "10.0.0.10", "end": fmt.Sprintf("10.0.%d.%d", (10+pool)/256, (10+pool)%256)}}}})
	if status != 201 {
		t.Fatalf("subnet: %d %v", status, body)
	}

	instances := make([]string, creates)
	parallelDo(8, creates, func(i int) {
		_, body := e.API("POST", "/v2.0/instances", map[string]any{"instance": map[string]any{"name": fmt.Sprint("vm", i)}})
		instances[i] = body["instance"].(map[string]any)["id"].(string)
	})

	start := time.Now()
	statuses := make([]int, creates)
	types := make([]string, creates)
	parallelDo(creates, creates, func(i int) {
		var body map[string]any
		statuses[i], body = e.API("POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": net, "device_id": instances[i]}})
		if e, ok := body["NeutronError"].(map[string]any); ok {
			types[i], _ = e["type"].(string)
		}
	})
	counts := map[string]int{}
	for i, s := range statuses {
		counts[fmt.Sprint(s, " ", types[i])]++
	}
	t.Logf("%d concurrent port creates in %v: %v", creates, time.Since(start).Round(time.Millisecond), counts)
	if counts["201 "] != pool || counts["409 IpAddressGenerationFailure"] != creates-pool {
		t.Errorf("outcomes %v; want %d × 201 and %d × 409 IpAddressGenerationFailure", counts, pool, creates-pool)
	}
	if problems := storeProblems(e); len(problems) > 0 {
		t.Errorf("store inconsistent:\n%s", strings.Join(problems, "\n"))
	}
	eventually(t, 60*time.Second, "every port plugged", func() error { return errorOrNil(kernelVersusStore(e)) })
	_, body = e.API("GET", "/v2.0/ports?status=ACTIVE&device_owner=compute:nsnet", nil)
	if n := len(body["ports"].([]any)); n != pool {
		t.Errorf("%d ports ACTIVE, want %d", n, pool)
	}
}

// TestTenThousandConnectionsThroughSNAT opens 10,000 TCP connections at
// once from four instances behind one router to a server on the far host,
// all through the router's default SNAT to its one gateway address: every
// one is established, and the router's conntrack table holds them.
func TestTenThousandConnectionsThroughSNAT(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 connections")
	}
	const clients, perClient = 4, 2500
	e := Start(t)
	public := jsonOf(t, e.MustNsnet("network", "create", "public", "--external", "-o", "json"))
	e.MustNsnet("subnet", "create", "public-v4", "--network", "public", "--subnet-range", "198.51.100.0/24",
		"--gateway", "198.51.100.1", "--no-dhcp")
	e.MustNsnet("network", "create", "private")
	e.MustNsnet("subnet", "create", "private-v4", "--network", "private", "--subnet-range", "10.0.0.0/24")
	router := jsonOf(t, e.MustNsnet("router", "create", "r1", "--external-gateway", "public", "-o", "json"))
	e.MustNsnet("router", "add", "subnet", "r1", "private-v4")
	for i := range clients {
		e.MustNsnet("instance", "create", fmt.Sprint("vm", i))
		e.MustNsnet("port", "create", fmt.Sprint("vm", i, "-eth0"), "--network", "private", "--device", fmt.Sprint("vm", i))
	}
	up := buildUpstream(t, e, public["id"].(string), "198.51.100.1/24")

	server := exec.Command("ip", "netns", "exec", up.FarNS, "python3", "-c", holdServer, up.Far)
	serverOut := &lab.SyncBuffer{}
	server.Stdout = serverOut
	if err := server.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Process.Kill(); server.Wait() })
	eventually(t, 5*time.Second, "server listens", func() error {
		if !strings.Contains(serverOut.String(), "listening") {
			return fmt.Errorf("not yet")
		}
		return nil
	})

	start := time.Now()
	results := make([]string, clients)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := exec.Command("ip", "netns", "exec", e.Netns(fmt.Sprint("vm", i)), "python3", "-c", holdClient, up.Far, strconv.Itoa(perClient)).CombinedOutput()
			results[i] = strings.TrimSpace(string(out))
			if err != nil {
				results[i] += " (" + err.Error() + ")"
			}
		}()
	}
	wg.Wait()
	established := 0
	for i, r := range results {
		var ok, failed, pending int
		if _, err := fmt.Sscan(r, &ok, &failed, &pending); err != nil || ok != perClient {
			t.Errorf("vm%d: %q (established, failed, timed out)", i, r)
		}
		established += ok
	}
	count, _ := exec.Command("ip", "netns", "exec", e.Prefix+"qrouter-"+router["id"].(string),
		"cat", "/proc/sys/net/netfilter/nf_conntrack_count").Output()
	t.Logf("%d of %d connections established through SNAT in %v; router conntrack entries: %s",
		established, clients*perClient, time.Since(start).Round(time.Millisecond), strings.TrimSpace(string(count)))
}

// holdServer accepts connections and keeps them open.
const holdServer = `
import resource, socket, sys
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]; resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 9100)); s.listen(4096); print("listening", flush=True)
held = []
while True:
    c, _ = s.accept(); held.append(c)
`

// holdClient opens N connections at once, waits up to 30s for them, and
// prints how many were established, refused or reset, and still pending.
const holdClient = `
import resource, selectors, socket, sys, time
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]; resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
n = int(sys.argv[2]); sel = selectors.DefaultSelector()
for _ in range(n):
    s = socket.socket(); s.setblocking(False); s.connect_ex((sys.argv[1], 9100))
    sel.register(s, selectors.EVENT_WRITE)
ok = failed = 0; deadline = time.time() + 30
while ok + failed < n and time.time() < deadline:
    for key, _ in sel.select(timeout=1):
        sel.unregister(key.fileobj)
        if key.fileobj.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR): failed += 1
        else: ok += 1
print(ok, failed, n - ok - failed, flush=True)
`

// parallelDo runs do(0..n-1) on at most workers goroutines.
func parallelDo(workers, n int, do func(i int)) {
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				do(i)
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}

func errorOrNil(diff string) error {
	if diff == "" {
		return nil
	}
	return fmt.Errorf("%s", diff)
}
