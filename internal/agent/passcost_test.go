package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/netns"
	"github.com/nsnet/nsnet/internal/store"
)

// TestPortIntoInstanceEntersHostOnce plugs ports into an instance that is
// programmed already, and counts the namespaces the agent enters for it:
// one, the host namespace, to turn the new tap's IPv6 off before it is
// up. The instance's own stays open from its creation for the port's
// peer; its resolv.conf and DSCP table (the instance did not change), the
// new tap's hairpin mode (the kernel's default on a link just made) are
// not read again.
func TestPortIntoInstanceEntersHostOnce(t *testing.T) {
	e := newEnv(t, time.Hour)
	e.converge(e.put(testNetwork(), testSubnet(), testInstance("a")))
	for i, ifname := range []string{"eth0", "eth1"} {
		before := netns.Switches()
		e.converge(e.put(testPort("a", ifname, "10.9.0."+string(rune('5'+i)), "fa:16:3e:00:00:0"+string(rune('1'+i)))))
		if n := netns.Switches() - before; n != 1 {
			t.Errorf("plugging %s entered %d namespaces, want 1 (its tap's disable_ipv6)", ifname, n)
		}
	}
	if err := ping(e.ns("a"), "10.9.0.6"); err != nil {
		t.Fatal(err)
	}
}

// TestFirewallBesidePorts checks that a pass programs the firewall while
// it creates the ports' veths, not after: the filter of a secured port
// plugged into an instance is in the host's tables before its tap is
// created (the hook holds the port back until then, or until a minute has
// passed: a firewall that waits for the ports never comes).
func TestFirewallBesidePorts(t *testing.T) {
	e := newEnv(t, time.Hour)
	e.converge(e.put(testNetwork(), testSubnet(), testInstance("a"),
		model.SecurityGroup{ID: "sg", Stateful: true},
		model.SecurityGroupRule{ID: "r1", SecurityGroupID: "sg", Direction: model.DirectionIngress, EtherType: model.EtherTypeIPv4}))
	var waited, filtered bool
	plugHook = func(p *pass, tap string) {
		waited = true
		h := &p.a.firewall
		for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			h.mu.Lock()
			_, ok := h.ports[tap]
			h.mu.Unlock()
			if ok {
				filtered = true
				return
			}
		}
	}
	defer func() { plugHook = nil }()
	p := testPort("a", "eth0", "10.9.0.5", "fa:16:3e:00:00:01")
	p.PortSecurityEnabled, p.SecurityGroups = true, []string{"sg"}
	e.converge(e.put(p))
	if !waited || !filtered {
		t.Fatalf("port plugged: %v; its filter in the tables before its tap: %v", waited, filtered)
	}
	e.wantStatus(store.Ports, p.ID, model.StatusActive)
}

// TestInstanceWritesEnterOnce counts the namespaces the agent enters to
// create an instance (one, to create it) and to plug a port that changes
// its resolv.conf, the first port on a subnet with a DNS server (none for
// the instance: the namespace stays open from its creation; one, the host
// namespace, to turn the port's tap's IPv6 off before it is up). The instance's DSCP table,
// which neither changes and a new namespace does not have, is not read.
func TestInstanceWritesEnterOnce(t *testing.T) {
	e := newEnv(t, time.Hour)
	sn := testSubnet()
	sn.DNSNameservers = []string{"10.9.0.53"}
	e.converge(e.put(testNetwork(), sn))
	for _, step := range []struct {
		what   string
		record any
		enters int64
	}{
		{"creating the instance", testInstance("a"), 1},
		{"plugging a port that gives it a DNS server", testPort("a", "eth0", "10.9.0.5", "fa:16:3e:00:00:01"), 1},
	} {
		before := netns.Switches()
		e.converge(e.put(step.record))
		if n := netns.Switches() - before; n != step.enters {
			t.Errorf("%s entered %d namespaces, want %d", step.what, n, step.enters)
		}
	}
	resolv, err := os.ReadFile(filepath.Join(netns.EtcDir, e.ns("a"), "resolv.conf"))
	if err != nil || !strings.Contains(string(resolv), "nameserver 10.9.0.53\n") {
		t.Fatalf("resolv.conf of a (%v):\n%s", err, resolv)
	}
}
