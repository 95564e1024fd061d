package e2e

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nsnet/nsnet/internal/lab"
)

// TestCrashConsistency kills the daemon with SIGKILL at 30 random moments
// while `nsnet apply` and `nsnet destroy` of a topology with routers and
// floating IPs run against it, and after each restart checks that the
// store is consistent (no address or MAC twice, no reference to something
// missing) and that the kernel converges to it. At the end a destroy
// leaves nothing behind (the harness checks).
func TestCrashConsistency(t *testing.T) {
	if testing.Short() {
		t.Skip("30 crashes")
	}
	const crashes = 30
	e := Start(t)
	file := filepath.Join(e.Dir, "crash.yaml")
	if err := os.WriteFile(file, []byte(scaleTopology(3, 4)), 0o644); err != nil {
		t.Fatal(err)
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("random seed %d", seed)
	rnd := rand.New(rand.NewPCG(seed, 0))

	midway := 0
	for i := range crashes {
		verb := []string{"apply", "destroy"}[i%2]
		cmd := exec.Command(nsnetBin, "--socket", e.Socket, verb, "-f", file)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(rnd.IntN(800)) * time.Millisecond)
		e.Kill()
		if cmd.Wait() != nil {
			midway++ // the kill interrupted it
		}
		e.startDaemon()
		e.waitFirstFullPass()
		if problems := storeProblems(e); len(problems) > 0 {
			t.Fatalf("after crash %d (during %s) the store is inconsistent:\n%s", i+1, verb, strings.Join(problems, "\n"))
		}
		// A pass may leave something to retry with backoff: a namespace
		// the kernel has not finished destroying, or the mount point of
		// a deletion killed between unmounting and removing it, which is
		// only taken for stale once 2s old.
		eventually(t, 15*time.Second, fmt.Sprintf("after crash %d (during %s) the kernel matches the store", i+1, verb), func() error {
			return errorOrNil(kernelVersusStore(e))
		})
	}
	t.Logf("%d crashes, %d of them in the middle of an apply or destroy", crashes, midway)
	if midway < crashes/3 {
		t.Errorf("only %d of %d crashes interrupted a command: the test is not testing", midway, crashes)
	}
	e.MustNsnet("apply", "-f", file)
	e.MustNsnet("destroy", "-f", file)
}

// storeProblems lists what is inconsistent in the store as the API shows
// it: an address or a MAC held twice, a reference to a missing object.
func storeProblems(e *Env) []string {
	list := func(collection string) []map[string]any {
		_, body := e.API("GET", "/v2.0/"+collection, nil)
		var out []map[string]any
		for _, it := range body[collection].([]any) {
			out = append(out, it.(map[string]any))
		}
		return out
	}
	ids := func(items []map[string]any) map[string]bool {
		m := map[string]bool{}
		for _, it := range items {
			m[it["id"].(string)] = true
		}
		return m
	}
	networks, subnets, ports := list("networks"), list("subnets"), list("ports")
	routers, fips, instances := list("routers"), list("floatingips"), list("instances")
	netIDs, subnetIDs, portIDs, routerIDs, instIDs := ids(networks), ids(subnets), ids(ports), ids(routers), ids(instances)

	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	for _, s := range subnets {
		if !netIDs[s["network_id"].(string)] {
			bad("subnet %s on missing network %s", s["id"], s["network_id"])
		}
	}
	macs, addrs := map[string]string{}, map[string]string{}
	for _, p := range ports {
		id := p["id"].(string)
		if !netIDs[p["network_id"].(string)] {
			bad("port %s on missing network %s", id, p["network_id"])
		}
		if other, dup := macs[p["mac_address"].(string)]; dup {
			bad("ports %s and %s share MAC %s", other, id, p["mac_address"])
		}
		macs[p["mac_address"].(string)] = id
		for _, f := range p["fixed_ips"].([]any) {
			f := f.(map[string]any)
			sub, ip := f["subnet_id"].(string), f["ip_address"].(string)
			if !subnetIDs[sub] {
				bad("port %s has an address on missing subnet %s", id, sub)
			}
			if other, dup := addrs[sub+" "+ip]; dup {
				bad("ports %s and %s share %s", other, id, ip)
			}
			addrs[sub+" "+ip] = id
		}
		owner, device := p["device_owner"].(string), p["device_id"].(string)
		switch {
		case strings.HasPrefix(owner, "network:router_") && !routerIDs[device]:
			bad("router port %s of missing router %s", id, device)
		case owner == "" && device != "" && !instIDs[device]:
			bad("port %s plugged into missing instance %s", id, device)
		}
	}
	for _, f := range fips {
		if pid, _ := f["port_id"].(string); pid != "" && !portIDs[pid] {
			bad("floating IP %s on missing port %s", f["floating_ip_address"], pid)
		}
		if !netIDs[f["floating_network_id"].(string)] {
			bad("floating IP %s on missing network", f["floating_ip_address"])
		}
	}
	for _, r := range routers {
		if gw, _ := r["external_gateway_info"].(map[string]any); gw != nil && !netIDs[gw["network_id"].(string)] {
			bad("router %s's gateway on missing network", r["id"])
		}
	}
	return problems
}

// kernelVersusStore compares the namespaces under the test's prefix with
// the store's instances and routers, and the host's bridges and port ends
// with its networks and plugged ports. "" means they match.
func kernelVersusStore(e *Env) string {
	want := []string{e.HostNetns}
	_, body := e.API("GET", "/v2.0/instances", nil)
	for _, it := range body["instances"].([]any) {
		want = append(want, e.Netns(it.(map[string]any)["name"].(string)))
	}
	_, body = e.API("GET", "/v2.0/routers", nil)
	for _, it := range body["routers"].([]any) {
		want = append(want, e.Prefix+"qrouter-"+it.(map[string]any)["id"].(string))
	}
	_, body = e.API("GET", "/v2.0/ports?device_owner=network:dhcp", nil)
	for _, it := range body["ports"].([]any) {
		want = append(want, e.Prefix+"qdhcp-"+it.(map[string]any)["network_id"].(string))
	}
	have := lab.Namespaces(e.Prefix)
	slices.Sort(want)
	slices.Sort(have)
	var diffs []string
	if !slices.Equal(want, have) {
		diffs = append(diffs, fmt.Sprintf("namespaces: store wants %v, kernel has %v", want, have))
	}
	_, body = e.API("GET", "/v2.0/networks", nil)
	wantLinks := len(body["networks"].([]any))
	_, body = e.API("GET", "/v2.0/ports", nil)
	for _, p := range body["ports"].([]any) {
		if p.(map[string]any)["device_owner"] != "network:floatingip" && p.(map[string]any)["device_id"] != "" {
			wantLinks++
		}
	}
	if links := linksIn(e.HostNetns); len(links) != wantLinks {
		var ports []string
		for _, p := range body["ports"].([]any) {
			p := p.(map[string]any)
			ports = append(ports, fmt.Sprintf("%s %s %s %s", p["id"], p["device_owner"], p["device_id"], p["status"]))
		}
		_, status := e.API("GET", "/nsnet/status", nil)
		diffs = append(diffs, fmt.Sprintf("host links: store wants %d (bridges and plugged ports), kernel has %d: %v\nports:\n%s\nagent: %v",
			wantLinks, len(links), links, strings.Join(ports, "\n"), status["agent"]))
	}
	return strings.Join(diffs, "\n")
}
