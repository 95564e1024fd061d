package dataplane

import (
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/nsnet/nsnet/internal/netns"
)

// TestNewPairReadsNothingBack creates a port's pair with the Links of an
// incremental pass (bound to the host namespace by name, so a hairpin read
// would dump the bridge ports from inside it) and checks that programming
// it did not read back what it had just made: one namespace entered, the
// host's, to turn the tap's IPv6 off before it comes up; yet the pair as
// wanted, and a second pass finding nothing to change.
func TestNewPairReadsNothingBack(t *testing.T) {
	for _, hairpin := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "hairpin"}[hairpin], func(t *testing.T) {
			e := newEnv(t)
			tp := newTopology(e)
			if _, err := EnsureBridge(e.links, tp.bridge); err != nil {
				t.Fatal(err)
			}
			red := e.ns("red")
			ns, _, err := EnsureInstanceNetns(red, e.marker("i-red"))
			if err != nil {
				t.Fatal(err)
			}
			defer ns.Close()
			spec := tp.ports["p-red"].spec
			spec.Hairpin = hairpin

			links := NewLinks(e.host.Handle)
			links.SetNamespace(e.hostName)
			before := netns.Switches()
			changed, err := EnsureVethPort(links, ns, spec)
			if err != nil || !changed {
				t.Fatalf("create: changed %v, %v", changed, err)
			}
			if changed, err := EnsurePortQos(links, ns, spec.TapName, spec.IfName, spec.Alias, QosSpec{}); err != nil || changed {
				t.Fatalf("qos: changed %v, %v", changed, err)
			}
			if n := netns.Switches() - before; n != 1 {
				t.Errorf("creating a pair entered %d namespaces, want 1 (its tap's disable_ipv6)", n)
			}

			if a := e.ip("-n", red, "-o", "addr", "show", "eth0"); !strings.Contains(a, "10.9.0.11/24") {
				t.Errorf("address missing:\n%s", a)
			}
			if l := e.ip("-n", red, "-o", "link", "show", "eth0"); !strings.Contains(l, ",UP") || !strings.Contains(l, spec.Alias) {
				t.Errorf("peer not up or not labelled:\n%s", l)
			}
			if r := e.ip("-n", red, "route", "show", "default"); !strings.Contains(r, "via 10.9.0.1") {
				t.Errorf("default route missing:\n%s", r)
			}
			if l := e.ip("-n", e.hostName, "-d", "-o", "link", "show", spec.TapName); strings.Contains(l, "hairpin on") != hairpin {
				t.Errorf("hairpin not %v:\n%s", hairpin, l)
			}

			// A pass over what exists reads it (the hairpin dump and the
			// get of the tap's root qdisc enter the host namespace) and
			// finds nothing to do.
			links = NewLinks(e.host.Handle)
			links.SetNamespace(e.hostName)
			before = netns.Switches()
			changed, err = EnsureVethPort(links, ns, spec)
			if err != nil || changed {
				t.Fatalf("again: changed %v, %v", changed, err)
			}
			if changed, err := EnsurePortQos(links, ns, spec.TapName, spec.IfName, spec.Alias, QosSpec{}); err != nil || changed {
				t.Fatalf("qos again: changed %v, %v", changed, err)
			}
			if n := netns.Switches() - before; n != 2 {
				t.Errorf("a pass over an existing pair entered %d namespaces, want 2 (its hairpin and root qdisc reads)", n)
			}
		})
	}
}

// TestPairHasOneQueueEachWay checks that a port's pair is made with one
// transmit and one receive queue at both ends. Without them asked for,
// the kernel gives a veth end a queue per possible CPU and then trims
// the real ones to one after registering it (veth_init_queues), which
// waits for an expedited RCU grace period with the RTNL held, once per
// end: a port create's slowest kernel call, slower still while the
// kernel tears down a deleted namespace (agentscale's tail, docs/SCALE.md).
func TestPairHasOneQueueEachWay(t *testing.T) {
	e := newEnv(t)
	tp := newTopology(e)
	if _, err := EnsureBridge(e.links, tp.bridge); err != nil {
		t.Fatal(err)
	}
	ns, _, err := EnsureInstanceNetns(e.ns("red"), e.marker("i-red"))
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	spec := tp.ports["p-red"].spec
	if _, err := EnsureVethPort(e.links, ns, spec); err != nil {
		t.Fatal(err)
	}
	for _, end := range []struct {
		where string
		get   func() (netlink.Link, error)
	}{
		{"tap " + spec.TapName, func() (netlink.Link, error) { return e.host.Handle.LinkByName(spec.TapName) }},
		{"instance end " + spec.IfName, func() (netlink.Link, error) { return ns.Handle.LinkByName(spec.IfName) }},
	} {
		l, err := end.get()
		if err != nil {
			t.Fatalf("%s: %v", end.where, err)
		}
		if tx, rx := l.Attrs().NumTxQueues, l.Attrs().NumRxQueues; tx != 1 || rx != 1 {
			t.Errorf("%s: %d transmit and %d receive queues, want 1 and 1", end.where, tx, rx)
		}
	}
}
