package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nsnet/nsnet/internal/lab"
)

// TestCLITopology builds a topology with the nsnet CLI, proves it with
// traffic through `nsnet exec`, and checks that deletes remove exactly the
// kernel objects nsnet made for them.
func TestCLITopology(t *testing.T) {
	e := Start(t)
	e.MustNsnet("network", "create", "n1", "--mtu", "1450")
	e.MustNsnet("subnet", "create", "s1", "--network", "n1", "--subnet-range", "10.30.0.0/24",
		"--host-route", "destination=203.0.113.0/24,gateway=10.30.0.254")
	e.MustNsnet("instance", "create", "a")
	e.MustNsnet("instance", "create", "b")
	e.MustNsnet("port", "create", "pa", "--network", "n1", "--device", "a")
	e.MustNsnet("port", "create", "pb", "--network", "n1", "--device", "b",
		"--fixed-ip", "subnet=s1,ip-address=10.30.0.50", "--interface-name", "data0")

	var ports []map[string]any
	if err := json.Unmarshal([]byte(e.MustNsnet("port", "list", "-o", "json")), &ports); err != nil {
		t.Fatalf("port list -o json: %v", err)
	}
	for _, p := range ports {
		if p["status"] != "ACTIVE" {
			t.Errorf("port %v is %v after a waited create, want ACTIVE", p["name"], p["status"])
		}
	}

	if out, err := e.Nsnet("exec", "a", "--", "ping", "-c", "1", "-W", "2", "10.30.0.50"); err != nil {
		t.Fatalf("nsnet exec a -- ping b: %v\n%s", err, out)
	}
	addr := e.MustNsnet("exec", "b", "--", "ip", "-o", "addr", "show", "data0")
	if !strings.Contains(addr, "10.30.0.50/24") || !strings.Contains(e.MustNsnet("exec", "b", "--", "ip", "link", "show", "data0"), "mtu 1450") {
		t.Errorf("b's data0: %s", addr)
	}
	routes := e.MustNsnet("exec", "a", "--", "ip", "route")
	for _, want := range []string{"default via 10.30.0.1 dev eth0", "203.0.113.0/24 via 10.30.0.254 dev eth0"} {
		if !strings.Contains(routes, want) {
			t.Errorf("a's routes lack %q:\n%s", want, routes)
		}
	}
	if _, err := e.Nsnet("exec", "a", "--", "false"); err == nil {
		t.Error("nsnet exec must pass on the command's failure")
	}

	// Refusals print the API's message and exit non-zero.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"subnet", "create", "bad", "--network", "n1", "--subnet-range", "10.30.0.0/33"}, "Invalid input for cidr"},
		{[]string{"subnet", "create", "bad", "--network", "n1", "--subnet-range", "10.30.0.0/25"}, "overlaps with another subnet"},
		{[]string{"network", "show", "nope"}, "nope"},
		{[]string{"instance", "delete", "a"}, "still has ports"},
		{[]string{"network", "delete", "n1"}, "still in use"},
		{[]string{"port", "create", "px", "--network", "n1", "--fixed-ip", "subnet=s1,ip-address=10.30.0.50"}, "already allocated"},
		{[]string{"instance", "create", "bad/name"}, "Invalid input for name"},
	} {
		out, err := e.Nsnet(tc.args...)
		if err == nil || !strings.Contains(out, tc.want) {
			t.Errorf("nsnet %s: err=%v, output %q should contain %q", strings.Join(tc.args, " "), err, out, tc.want)
		}
	}

	// A restart re-reads the kernel and finds nothing to change.
	before := linkIndexes(t, e.HostNetns)
	e.Restart()
	waitConverged(t, e)
	if after := linkIndexes(t, e.HostNetns); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("restart recreated links: %v -> %v", before, after)
	}
	if out, err := e.Nsnet("exec", "a", "--", "ping", "-c", "1", "-W", "2", "10.30.0.50"); err != nil {
		t.Errorf("after restart a cannot ping b: %v\n%s", err, out)
	}

	// Deleting a port removes its veth pair and nothing else.
	e.MustNsnet("port", "delete", "pb")
	links := linksIn(e.HostNetns)
	if len(links) != 3 { // the bridge, pa's tap and the DHCP port's
		t.Errorf("after deleting pb the host has %v, want the bridge and two taps", links)
	}
	if out, _ := e.In("b", "ip", "-o", "link"); strings.Contains(out, "data0") {
		t.Errorf("b still has data0:\n%s", out)
	}
}

// TestForeignNamespaceIsNeverTouched: a namespace nsnet did not make, with
// the name an instance wants, makes that instance ERROR and survives it.
func TestForeignNamespaceIsNeverTouched(t *testing.T) {
	e := Start(t)
	foreign := e.Netns("c")
	if out, err := exec.Command("ip", "netns", "add", foreign).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "delete", foreign).Run() })

	// The write ends in ERROR: stored, not programmed, exit status 1.
	if out, err := e.Nsnet("instance", "create", "c"); err == nil || !strings.Contains(out, "not nsnet's") {
		t.Errorf("instance create on a foreign namespace: %v, want exit status 1 saying why\n%s", err, out)
	}
	eventually(t, 10*time.Second, "instance c reports the conflict", func() error {
		var inst map[string]any
		json.Unmarshal([]byte(e.MustNsnet("instance", "show", "c", "-o", "json")), &inst)
		if inst["status"] != "ERROR" || !strings.Contains(fmt.Sprint(inst["status_reason"]), "not nsnet's") {
			return fmt.Errorf("instance c: status %v reason %v", inst["status"], inst["status_reason"])
		}
		return nil
	})
	e.MustNsnet("instance", "delete", "c")
	waitConverged(t, e)
	if !slices.Contains(lab.Namespaces(e.Prefix), foreign) {
		t.Fatalf("nsnet deleted namespace %s, which it did not make", foreign)
	}
}

func TestStatusReportsConvergence(t *testing.T) {
	e := Start(t)
	e.MustNsnet("network", "create", "n1")
	var status map[string]any
	if err := json.Unmarshal([]byte(e.MustNsnet("status", "-o", "json")), &status); err != nil {
		t.Fatal(err)
	}
	agent, _ := status["agent"].(map[string]any)
	daemon, _ := status["daemon"].(map[string]any)
	if agent == nil || daemon == nil || daemon["host_netns"] != e.HostNetns {
		t.Errorf("status: %v", status)
	}
}

// waitConverged waits for the agent to finish a pass at the current revision.
func waitConverged(t *testing.T, e *Env) {
	t.Helper()
	// A no-op write that the server holds until programmed would change
	// state; instead poll status until a pass has started after now.
	eventually(t, 10*time.Second, "agent converges", func() error {
		_, body := e.API("GET", "/nsnet/status", nil)
		agent, _ := body["agent"].(map[string]any)
		if agent == nil {
			return fmt.Errorf("no agent status")
		}
		if errs, _ := agent["errors"].([]any); len(errs) > 0 {
			return fmt.Errorf("agent errors: %v", errs)
		}
		return nil
	})
}

// TestWriteInErrorExitsNonZero: a write the API stores but the agent
// cannot program (here a port whose interface name an instance already
// uses for a link of its own) ends in ERROR, and the CLI exits 1 saying
// why, for a single write and for apply, which still carries out the
// rest of its plan.
func TestWriteInErrorExitsNonZero(t *testing.T) {
	e := Start(t)
	e.MustNsnet("network", "create", "n1")
	e.MustNsnet("subnet", "create", "n1-v4", "--network", "n1", "--subnet-range", "10.0.0.0/24")
	e.MustNsnet("instance", "create", "vm1")
	run(t, "ip", "-n", e.Netns("vm1"), "link", "add", "eth0", "type", "veth", "peer", "name", "other0")

	out, err := e.Nsnet("port", "create", "p1", "--network", "n1", "--device", "vm1")
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Errorf("port create ending in ERROR: %v, want exit status 1\n%s", err, out)
	}
	if !strings.Contains(out, "could not program it: link eth0 in namespace "+e.Netns("vm1")+" exists and is not nsnet's") {
		t.Errorf("port create does not say why:\n%s", out)
	}

	file := filepath.Join(t.TempDir(), "lab.yaml")
	os.WriteFile(file, []byte(`name: lab
instances:
  - name: vm1
networks:
  - name: n2
    subnets:
      - {name: n2-v4, cidr: 10.0.2.0/24}
ports:
  - {name: p2, network: n2, instance: vm1, interface_name: other0}
  - {name: p3, network: n2}
`), 0o600)
	out, err = e.Nsnet("apply", "-f", file)
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Errorf("apply with a port ending in ERROR: %v, want exit status 1\n%s", err, out)
	}
	for _, want := range []string{"created   port p3", "1 of the resources ended in ERROR", "port p2"} {
		if !strings.Contains(out, want) {
			t.Errorf("apply's output lacks %q:\n%s", want, out)
		}
	}
}
