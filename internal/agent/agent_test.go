package agent

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nsnet/nsnet/internal/lab"
	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/netns"
	"github.com/nsnet/nsnet/internal/store"
)

func TestAgentLifecycle(t *testing.T) {
	e := newEnv(t, 100*time.Millisecond)
	redPort := testPort("red", "eth0", "10.9.0.11", "fa:16:3e:00:00:11")
	greenPort := testPort("green", "eth0", "10.9.0.12", "fa:16:3e:00:00:12")
	rev := e.put(testNetwork(), testSubnet(), testInstance("red"), testInstance("green"), redPort, greenPort)
	e.converge(rev)

	for _, k := range []struct {
		kind store.Kind
		id   string
	}{{store.Networks, netID}, {store.Instances, "inst-red"}, {store.Instances, "inst-green"}, {store.Ports, redPort.ID}, {store.Ports, greenPort.ID}} {
		e.wantStatus(k.kind, k.id, model.StatusActive)
	}
	if st, _ := e.agent.Status(store.Subnets, "nope"); st != model.StatusBuild {
		t.Fatalf("unseen object status = %s, want BUILD", st)
	}

	red, green, bridge := e.ns("red"), e.ns("green"), model.BridgeName(netID)
	if addr := e.ip("-n", red, "addr", "show", "eth0"); !strings.Contains(addr, "inet 10.9.0.11/24") || !strings.Contains(addr, "fa:16:3e:00:00:11") {
		t.Fatalf("red eth0:\n%s", addr)
	}
	if r := e.ip("-n", red, "route", "show", "default"); !strings.Contains(r, "default via 10.9.0.1 dev eth0 proto 78") {
		t.Fatalf("red default route:\n%s", r)
	}
	if br := e.ip("-n", e.hostNetns, "link", "show", bridge); !strings.Contains(br, ",UP") || !strings.Contains(br, "mtu 1500") {
		t.Fatalf("bridge:\n%s", br)
	}
	if tap := e.ip("-n", e.hostNetns, "link", "show", model.TapName(redPort.ID)); !strings.Contains(tap, "master "+bridge) {
		t.Fatalf("tap:\n%s", tap)
	}
	if err := ping(red, "10.9.0.12"); err != nil {
		t.Fatal(err)
	}
	h := e.agent.Health()
	if h.Managed["networks"] != 1 || h.Managed["instances"] != 2 || h.Managed["ports"] != 2 || len(h.Errors) != 0 {
		t.Fatalf("health = %+v", h)
	}

	// Converged host does not change.
	{
		changes := e.agent.Health().Changes
		before := e.ifindex(red, "eth0") + e.ifindex(e.hostNetns, model.TapName(redPort.ID))
		e.waitFullPasses(2)
		// A write that changes nothing the kernel sees.
		renamed := redPort
		renamed.Name = "renamed"
		e.converge(e.put(renamed))
		if got := e.agent.Health().Changes; got != changes {
			t.Fatalf("converged passes made %d changes", got-changes)
		}
		if after := e.ifindex(red, "eth0") + e.ifindex(e.hostNetns, model.TapName(redPort.ID)); after != before {
			t.Fatalf("links recreated: %s → %s", before, after)
		}
	}

	// Address and admin state follow the store.
	{
		moved := redPort
		moved.FixedIPs = []model.FixedIP{{SubnetID: subnetID, IPAddress: "10.9.0.21"}}
		e.converge(e.put(moved))
		addr := e.ip("-n", red, "addr", "show", "eth0")
		if !strings.Contains(addr, "10.9.0.21/24") || strings.Contains(addr, "10.9.0.11") {
			t.Fatalf("red eth0 after address change:\n%s", addr)
		}
		if err := ping(green, "10.9.0.21"); err != nil {
			t.Fatal(err)
		}
		moved.AdminStateUp = false
		e.converge(e.put(moved))
		e.wantStatus(store.Ports, moved.ID, model.StatusDown)
		if l := e.ip("-n", red, "link", "show", "eth0"); strings.Contains(l, ",UP") {
			t.Fatalf("admin-down port is up:\n%s", l)
		}
		moved.AdminStateUp = true
		e.converge(e.put(moved))
		e.wantStatus(store.Ports, moved.ID, model.StatusActive)
	}

	// Unplugged port is DOWN and has no veth.
	{
		unplugged := greenPort
		unplugged.DeviceOwner, unplugged.DeviceID = "", ""
		e.converge(e.put(unplugged))
		e.wantStatus(store.Ports, greenPort.ID, model.StatusDown)
		if l := linksIn(green); len(l) != 0 {
			t.Fatalf("green still has %v", l)
		}
		e.converge(e.put(greenPort))
		e.wantStatus(store.Ports, greenPort.ID, model.StatusActive)
	}

	// Deleted records leave the kernel.
	{
		e.converge(e.del(greenPort, testInstance("green")))
		if netns.Exists(green) {
			t.Fatal("green namespace still exists")
		}
		if l := strings.Join(linksIn(e.hostNetns), " "); strings.Contains(l, model.TapName(greenPort.ID)) {
			t.Fatalf("green tap still exists: %s", l)
		}
		e.converge(e.del(redPort, testInstance("red"), testSubnet(), testNetwork()))
		if l := linksIn(e.hostNetns); len(l) != 0 {
			t.Fatalf("host still has %v", l)
		}
		if n := lab.Namespaces(e.prefix); len(n) != 1 {
			t.Fatalf("namespaces left: %v", n)
		}
	}
}

func TestAgentRepairsDrift(t *testing.T) {
	e := newEnv(t, 100*time.Millisecond)
	redPort := testPort("red", "eth0", "10.9.0.11", "fa:16:3e:00:00:11")
	greenPort := testPort("green", "eth0", "10.9.0.12", "fa:16:3e:00:00:12")
	e.converge(e.put(testNetwork(), testSubnet(), testInstance("red"), testInstance("green"), redPort, greenPort))

	e.ip("-n", e.hostNetns, "link", "del", model.TapName(redPort.ID))
	e.ip("-n", e.ns("green"), "route", "del", "default")
	e.waitFullPasses(2)
	if err := ping(e.ns("red"), "10.9.0.12"); err != nil {
		t.Fatal(err)
	}
	if r := e.ip("-n", e.ns("green"), "route", "show", "default"); !strings.Contains(r, "via 10.9.0.1") {
		t.Fatalf("default route not restored:\n%s", r)
	}
	e.wantStatus(store.Ports, redPort.ID, model.StatusActive)

	// The host namespace itself is deleted and made again empty: the agent
	// must notice it is no longer bound to the namespace of that name.
	before, _ := netns.Inode(e.hostNetns)
	e.ip("netns", "delete", e.hostNetns)
	// The agent may make it again before we do; either way it is new.
	exec.Command("ip", "netns", "add", e.hostNetns).Run()
	e.waitFullPasses(2)
	if after, _ := netns.Inode(e.hostNetns); after == before {
		t.Fatal("host namespace was not replaced")
	}
	if l := strings.Join(linksIn(e.hostNetns), " "); !strings.Contains(l, model.BridgeName(netID)) || !strings.Contains(l, model.TapName(redPort.ID)) {
		t.Fatalf("new host namespace not programmed: %s", l)
	}
	if err := ping(e.ns("red"), "10.9.0.12"); err != nil {
		t.Fatal(err)
	}
}

func TestAgentLeavesForeignNamespace(t *testing.T) {
	e := newEnv(t, time.Hour)
	blue := e.ns("blue")
	e.ip("netns", "add", blue)
	// The test deletes its own namespace, and only that: once the operator
	// removed it below, the one under that name is nsnet's (its inode may
	// even be the same: the kernel reuses namespace inode numbers), which
	// the agent deletes with its /etc/netns files.
	ours := true
	defer func() {
		if ours {
			netns.Delete(blue)
		}
	}()
	ino, _ := netns.Inode(blue)

	bluePort := testPort("blue", "eth0", "10.9.0.13", "fa:16:3e:00:00:13")
	redPort := testPort("red", "eth0", "10.9.0.11", "fa:16:3e:00:00:11")
	e.converge(e.put(testNetwork(), testSubnet(), testInstance("blue"), testInstance("red"), bluePort, redPort))

	st, reason := e.agent.Status(store.Instances, "inst-blue")
	if st != model.StatusError || !strings.Contains(reason, "namespace "+blue+" exists and is not nsnet's") {
		t.Fatalf("foreign namespace: status %s (%s)", st, reason)
	}
	if st, reason := e.agent.Status(store.Ports, bluePort.ID); st != model.StatusError || !strings.Contains(reason, "instance blue") {
		t.Fatalf("port in foreign namespace: status %s (%s)", st, reason)
	}
	e.wantStatus(store.Instances, "inst-red", model.StatusActive)
	e.wantStatus(store.Ports, redPort.ID, model.StatusActive)
	// Listed by type and name, with the reasons the API shows.
	if h := e.agent.Health(); len(h.Errors) != 2 || h.Errors[0].Type != "instance" || h.Errors[0].Name != "blue" ||
		h.Errors[0].ID != "inst-blue" || !strings.Contains(h.Errors[0].Reason, "is not nsnet's") ||
		h.Errors[1].Type != "port" || h.Errors[1].ID != bluePort.ID || !strings.Contains(h.Errors[1].Reason, "instance blue") {
		t.Fatalf("health errors = %+v", h.Errors)
	}
	if again, _ := netns.Inode(blue); again != ino {
		t.Fatal("foreign namespace replaced")
	}
	if l := linksIn(blue); len(l) != 0 {
		t.Fatalf("something was plugged into the foreign namespace: %v", l)
	}
	if lo := e.ip("-n", blue, "link", "show", "lo"); strings.Contains(lo, "alias") {
		t.Fatalf("foreign lo marked:\n%s", lo)
	}

	// Once the operator removes it, the agent's retries take over, with no
	// store change and no full pass.
	netns.Delete(blue)
	ours = false
	eventually(t, 10*time.Second, "blue programmed after the foreign namespace went", func() error {
		if st, reason := e.agent.Status(store.Ports, bluePort.ID); st != model.StatusActive {
			return &statusError{st, reason}
		}
		return nil
	})
	if err := ping(blue, "10.9.0.11"); err != nil {
		t.Fatal(err)
	}
}

type statusError struct{ status, reason string }

func (s *statusError) Error() string { return s.status + ": " + s.reason }

// TestAgentRestart kills the agent, changes the store behind its back, and
// starts a new one: it must delete what went, program what came, and leave
// the rest exactly as it was (same links, so flows are undisturbed).
func TestAgentRestart(t *testing.T) {
	e := newEnv(t, time.Hour)
	redPort := testPort("red", "eth0", "10.9.0.11", "fa:16:3e:00:00:11")
	greenPort := testPort("green", "eth0", "10.9.0.12", "fa:16:3e:00:00:12")
	e.converge(e.put(testNetwork(), testSubnet(), testInstance("red"), testInstance("green"), redPort, greenPort))
	before := e.ifindex(e.ns("red"), "eth0") + e.ifindex(e.hostNetns, model.TapName(redPort.ID))

	e.stop()
	e.del(greenPort, testInstance("green"))
	bluePort := testPort("blue", "eth0", "10.9.0.13", "fa:16:3e:00:00:13")
	rev := e.put(testInstance("blue"), bluePort)
	e.start()
	e.converge(rev)

	if netns.Exists(e.ns("green")) {
		t.Fatal("namespace of the instance deleted while the agent was down survived")
	}
	if l := strings.Join(linksIn(e.hostNetns), " "); strings.Contains(l, model.TapName(greenPort.ID)) {
		t.Fatalf("tap of the port deleted while the agent was down survived: %s", l)
	}
	if after := e.ifindex(e.ns("red"), "eth0") + e.ifindex(e.hostNetns, model.TapName(redPort.ID)); after != before {
		t.Fatalf("restart recreated red's links: %s → %s", before, after)
	}
	if err := ping(e.ns("blue"), "10.9.0.11"); err != nil {
		t.Fatal(err)
	}
	// Deleted: green's namespace (its veth with it); created: blue's
	// namespace and port. Nothing else.
	if c := e.agent.Health().Changes; c != 3 {
		t.Fatalf("restart pass made %d changes, want 3", c)
	}
}

func TestAgentRenamedInstance(t *testing.T) {
	e := newEnv(t, time.Hour)
	redPort := testPort("red", "eth0", "10.9.0.11", "fa:16:3e:00:00:11")
	greenPort := testPort("green", "eth0", "10.9.0.12", "fa:16:3e:00:00:12")
	e.converge(e.put(testNetwork(), testSubnet(), testInstance("red"), testInstance("green"), redPort, greenPort))

	renamed := testInstance("red")
	renamed.Name = "crimson"
	e.converge(e.put(renamed))
	if netns.Exists(e.ns("red")) {
		t.Fatal("old namespace survived the rename")
	}
	if err := ping(e.ns("crimson"), "10.9.0.12"); err != nil {
		t.Fatal(err)
	}

	// A new instance takes the old name: the namespace is created afresh
	// with its marker.
	again := model.Instance{ID: "inst-red-2", Name: "red"}
	e.converge(e.put(again))
	e.wantStatus(store.Instances, again.ID, model.StatusActive)
}

func TestWaitConvergedHonoursContext(t *testing.T) {
	e := newEnv(t, time.Hour)
	e.converge(e.revision())
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := e.agent.WaitConverged(ctx, e.revision()+100); err != context.DeadlineExceeded {
		t.Fatalf("WaitConverged for a future revision = %v", err)
	}
}

// TestAgentRemovesFreshStaleMountPoint: the mount point of a namespace
// creation killed before it mounted (a plain file with the agent's
// prefix) that is too young to tell from a creation under way when the
// first pass sees it is removed by the retries that follow, not left to
// the next periodic full pass (an hour away here).
func TestAgentRemovesFreshStaleMountPoint(t *testing.T) {
	e := newEnv(t, time.Hour)
	e.stop()
	stale := netns.Path(e.ns("killed"))
	t.Cleanup(func() { os.Remove(stale) })
	if err := os.WriteFile(stale, nil, 0); err != nil {
		t.Fatal(err)
	}
	e.start()
	eventually(t, 20*time.Second, "the stale mount point removed", func() error {
		if _, err := os.Stat(stale); err == nil {
			return fmt.Errorf("%s still there (health %+v)", stale, e.agent.Health())
		}
		return nil
	})
}
