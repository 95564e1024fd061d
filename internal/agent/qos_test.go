package agent

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nsnet/nsnet/internal/model"
)

// TestAgentPortQos: a network's QoS policy reaches its instance ports as
// shapers on both ends of their veth, a port's own policy wins over its
// network's (its DSCP mark in the instance's nsnet_qos table), a rule change reprograms them, a restart changes nothing, a
// deleted shaper comes back at the next full pass, and without a policy
// the shapers go.
func TestAgentPortQos(t *testing.T) {
	e := newEnv(t, 100*time.Millisecond)
	kbps := func(n int) *int { return &n }
	netPolicy := model.QosPolicy{ID: "qos-net", Rules: []model.QosRule{
		{ID: "r1", Type: model.QosRuleBandwidthLimit, MaxKbps: kbps(2000), MaxBurstKbps: kbps(0), Direction: model.QosDirectionEgress},
		{ID: "r2", Type: model.QosRuleBandwidthLimit, MaxKbps: kbps(3000), MaxBurstKbps: kbps(300), Direction: model.QosDirectionIngress},
	}}
	portPolicy := model.QosPolicy{ID: "qos-port", Rules: []model.QosRule{
		{ID: "r3", Type: model.QosRuleBandwidthLimit, MaxKbps: kbps(500), MaxBurstKbps: kbps(0), Direction: model.QosDirectionEgress},
		{ID: "r4", Type: model.QosRuleDSCPMarking, DSCPMark: kbps(26)},
	}}
	n := testNetwork()
	n.QosPolicyID = &netPolicy.ID
	red := testPort("red", "eth0", "10.9.0.11", "fa:16:3e:00:00:11")
	green := testPort("green", "eth0", "10.9.0.12", "fa:16:3e:00:00:12")
	green.QosPolicyID = &portPolicy.ID
	e.converge(e.put(netPolicy, portPolicy, n, testSubnet(), testInstance("red"), testInstance("green"), red, green))

	shaper := func(ns, link string) string {
		t.Helper()
		out, err := exec.Command("tc", "-n", ns, "qdisc", "show", "dev", link, "root").CombinedOutput()
		if err != nil {
			t.Fatalf("tc -n %s qdisc show dev %s: %v\n%s", ns, link, err, out)
		}
		return string(out)
	}
	redTap, greenTap := model.TapName(red.ID), model.TapName(green.ID)
	for _, tc := range []struct{ ns, link, want string }{
		{e.ns("red"), "eth0", "rate 2Mbit"},
		{e.hostNetns, redTap, "rate 3Mbit"},
		{e.ns("green"), "eth0", "rate 500Kbit"},
	} {
		if got := shaper(tc.ns, tc.link); !strings.Contains(got, "tbf") || !strings.Contains(got, tc.want) {
			t.Errorf("%s %s: %q, want tbf %s", tc.ns, tc.link, got, tc.want)
		}
	}
	if got := shaper(e.hostNetns, greenTap); strings.Contains(got, "tbf") {
		t.Errorf("green's tap shaped though its own policy limits egress only: %q", got)
	}

	// green's DSCP mark is in its namespace's nsnet_qos table; red has none.
	marks := func(ns string) string {
		out, _ := exec.Command("ip", "netns", "exec", ns, "nft", "list", "table", "inet", "nsnet_qos").CombinedOutput()
		return string(out)
	}
	if got := marks(e.ns("green")); !strings.Contains(got, `oifname "eth0" ip dscp set af31`) || !strings.Contains(got, `oifname "eth0" ip6 dscp set af31`) {
		t.Errorf("green's marks:\n%s", got)
	}
	if got := marks(e.ns("red")); strings.Contains(got, "dscp") {
		t.Errorf("red marked:\n%s", got)
	}

	// A rule change reaches the port.
	netPolicy.Rules[0].MaxKbps = kbps(1000)
	e.converge(e.put(netPolicy))
	if got := shaper(e.ns("red"), "eth0"); !strings.Contains(got, "rate 1Mbit") {
		t.Errorf("after the rule change: %q", got)
	}

	// Restart: nothing to change.
	e.stop()
	e.start()
	e.converge(e.revision())
	if c := e.agent.Health().Changes; c != 0 {
		t.Errorf("restart made %d changes, want 0", c)
	}

	// Drift: the shaper of red's tap is deleted behind nsnet's back.
	if out, err := exec.Command("tc", "-n", e.hostNetns, "qdisc", "del", "dev", redTap, "root").CombinedOutput(); err != nil {
		t.Fatalf("tc qdisc del: %v\n%s", err, out)
	}
	eventually(t, 10*time.Second, "the shaper back", func() error {
		if got := shaper(e.hostNetns, redTap); !strings.Contains(got, "rate 3Mbit") {
			return fmt.Errorf("root qdisc %q", got)
		}
		return nil
	})

	// No policy: the shapers go.
	n.QosPolicyID = nil
	e.converge(e.put(n))
	for _, at := range [][2]string{{e.ns("red"), "eth0"}, {e.hostNetns, redTap}} {
		if got := shaper(at[0], at[1]); strings.Contains(got, "tbf") {
			t.Errorf("%s %s still shaped: %q", at[0], at[1], got)
		}
	}
}
