package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nsnet/nsnet/internal/lab"
	"github.com/nsnet/nsnet/internal/model"
)

// ipv6Sysctls returns the instance end's router_solicitations and
// dad_transmits, as "rs/dad".
func ipv6Sysctls(t *testing.T, e *Env, vm string) string {
	t.Helper()
	var v []string
	for _, k := range []string{"router_solicitations", "dad_transmits"} {
		out, err := e.In(vm, "sysctl", "-n", "net.ipv6.conf.eth0."+k)
		if err != nil {
			t.Fatalf("sysctl %s in %s: %v\n%s", k, vm, err, out)
		}
		v = append(v, strings.TrimSpace(out))
	}
	return strings.Join(v, "/")
}

// icmp6Dump is tcpdump printing the ICMPv6 an instance's namespace sees,
// with argv's interface options, until stop.
type icmp6Dump struct {
	cmd *exec.Cmd
	out lab.SyncBuffer
}

func startICMP6Dump(t *testing.T, e *Env, vm string, argv ...string) *icmp6Dump {
	t.Helper()
	d := &icmp6Dump{}
	d.cmd = exec.Command("ip", append(append([]string{"netns", "exec", e.Netns(vm), "tcpdump", "-n", "-l"}, argv...), "icmp6")...)
	d.cmd.Stdout, d.cmd.Stderr = &d.out, &d.out
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.stop() })
	// tcpdump says it listens once its socket is open.
	eventually(t, 5*time.Second, "tcpdump in "+vm+" listening", func() error {
		if !strings.Contains(d.text(), "listening on") {
			return fmt.Errorf("tcpdump has not started: %s", d.text())
		}
		return nil
	})
	return d
}

// text is what tcpdump printed so far.
func (d *icmp6Dump) text() string { return d.out.String() }

// stop ends tcpdump, which flushes its output, and returns it.
func (d *icmp6Dump) stop() string {
	if d.cmd.ProcessState == nil {
		d.cmd.Process.Signal(os.Interrupt)
		d.cmd.Wait()
	}
	return d.text()
}

// solicitations are the lines of a tcpdump output that are lla's router
// solicitations or duplicate address detection's probes for it.
func solicitations(dump, lla string) []string {
	var out []string
	for _, l := range strings.Split(dump, "\n") {
		if strings.Contains(l, " "+lla+" > ") && strings.Contains(l, "router solicitation") ||
			strings.Contains(l, " :: > ") && strings.Contains(l, "neighbor solicitation, who has "+lla) {
			out = append(out, l)
		}
	}
	return out
}

// TestIPv4OnlyInstancesLinkLocal: on an IPv4-only network, what a user
// sees. A newly plugged instance's end solicits a router and checks its
// link-local address as any host's (its own namespace sees it send
// them), but nothing of it reaches another instance of the network: its
// port's firewall drops both, and counts them as ipv6_off. Its
// link-local address works all the same, as a Neutron instance's, and
// instances reach each other's as their rules say: the default group
// does not admit them (a remote group admits its members' fixed IPs and
// address pairs, as Neutron's, docs/SECURITY_GROUPS.md, not their
// link-local addresses); a rule for fe80::/64 does.
func TestIPv4OnlyInstancesLinkLocal(t *testing.T) {
	e := Start(t)
	e.MustNsnet("network", "create", "net")
	e.MustNsnet("subnet", "create", "net-v4", "--network", "net", "--subnet-range", "10.70.0.0/24")
	e.MustNsnet("instance", "create", "vm2")
	e.MustNsnet("port", "create", "vm2-eth0", "--network", "net", "--device", "vm2")
	e.MustNsnet("instance", "create", "vm1")
	eventually(t, 10*time.Second, "vm1's namespace", func() error {
		out, err := e.In("vm1", "true")
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
	// vm1's own end, every interface of its namespace (eth0 is not
	// there yet), and what reaches vm2.
	own := startICMP6Dump(t, e, "vm1", "-i", "any")
	seen := startICMP6Dump(t, e, "vm2", "-i", "eth0", "-Q", "in")
	e.MustNsnet("port", "create", "vm1-eth0", "--network", "net", "--device", "vm1")
	if got := ipv6Sysctls(t, e, "vm1"); got != "-1/1" {
		t.Errorf("vm1 eth0 router_solicitations/dad_transmits = %s, want the kernel's -1/1", got)
	}
	var p1, p2 model.Port
	decodeJSON(t, e.MustNsnet("port", "show", "vm1-eth0", "-o", "json"), &p1)
	decodeJSON(t, e.MustNsnet("port", "show", "vm2-eth0", "-o", "json"), &p2)
	lla1, lla2 := eui64(t, p1.MACAddress), eui64(t, p2.MACAddress)
	// Its address checked (about a second), then its first router
	// solicitation.
	eventually(t, 10*time.Second, "vm1's solicitations, as its own namespace sees them", func() error {
		sent := solicitations(own.text(), lla1)
		if !slices.ContainsFunc(sent, func(l string) bool { return strings.Contains(l, "router solicitation") }) ||
			!slices.ContainsFunc(sent, func(l string) bool { return strings.Contains(l, "who has") }) {
			return fmt.Errorf("vm1 sent no router solicitation or no DAD probe for %s:\n%s", lla1, own.text())
		}
		return nil
	})
	// What passed the bridge is in vm2's namespace by now.
	time.Sleep(time.Second)
	if got := solicitations(seen.stop(), lla1); len(got) > 0 {
		t.Errorf("vm2 saw vm1's solicitations, which its port's firewall should drop:\n%s", strings.Join(got, "\n"))
	}
	t.Logf("vm1 sent:\n%s", strings.Join(solicitations(own.stop(), lla1), "\n"))
	eventually(t, 5*time.Second, "vm1's port counts ipv6_off drops", func() error {
		var p model.Port
		decodeJSON(t, e.MustNsnet("port", "show", "vm1-eth0", "-o", "json"), &p)
		if p.FirewallDrops == nil || p.FirewallDrops.IPv6Off == 0 {
			return fmt.Errorf("vm1-eth0's nsnet:firewall_drops: %+v", p.FirewallDrops)
		}
		return nil
	})
	for vm, lla := range map[string]string{"vm1": lla1, "vm2": lla2} {
		eventually(t, 10*time.Second, vm+"'s link-local address", func() error {
			out, _ := e.In(vm, "ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "link")
			if !strings.Contains(out, " "+lla+"/64 ") || strings.Contains(out, "tentative") {
				return fmt.Errorf("link-local addresses of %s:\n%s\nwant %s, not tentative", vm, out, lla)
			}
			return nil
		})
	}
	ping := func() error {
		out, err := e.In("vm1", "ping", "-6", "-c1", "-W1", lla2+"%eth0")
		if err != nil {
			return fmt.Errorf("%v\n%s", err, out)
		}
		return nil
	}
	if ping() == nil {
		t.Error("the default group admits a member's link-local address: it admits its fixed IPs and address pairs only")
	}
	e.MustNsnet("security-group", "rule", "create", "default", "--ethertype", "IPv6", "--protocol", "icmp", "--icmp-type", "128", "--remote-ip", "fe80::/64")
	eventually(t, 10*time.Second, "vm1 pings vm2's link-local address", ping)
}

// TestIPv4OnlyNetworkGainsSLAAC: an instance whose port came up on an
// IPv4-only network (its router solicitations dropped by its port's
// firewall, and so in backoff) gets its SLAAC address and default route
// when the network gains a SLAAC subnet on its router: the router
// advertises at once, unsolicited.
func TestIPv4OnlyNetworkGainsSLAAC(t *testing.T) {
	e := Start(t)
	e.MustNsnet("router", "create", "r1")
	e.MustNsnet("network", "create", "net")
	e.MustNsnet("subnet", "create", "net-v4", "--network", "net", "--subnet-range", "10.71.0.0/24")
	e.MustNsnet("router", "add", "subnet", "r1", "net-v4")
	e.MustNsnet("instance", "create", "vm1")
	e.MustNsnet("port", "create", "vm1-eth0", "--network", "net", "--device", "vm1")
	// Long enough for the kernel's first solicitations to have been
	// dropped: it solicits again only after a backoff.
	time.Sleep(2 * time.Second)

	e.MustNsnet("subnet", "create", "net-v6", "--network", "net", "--subnet-range", "2001:db8:71::/64",
		"--ipv6-ra-mode", "slaac", "--ipv6-address-mode", "slaac")
	start := time.Now()
	e.MustNsnet("router", "add", "subnet", "r1", "net-v6")
	_, v6 := portAddrs(t, e, "vm1-eth0")
	globalAddr6(t, e, "vm1", v6)
	eventually(t, 40*time.Second, "vm1's IPv6 default route", func() error {
		out, _ := e.In("vm1", "ip", "-6", "route", "show", "default")
		if !strings.Contains(out, "default via fe80::") || !strings.Contains(out, "dev eth0 proto ra") {
			return fmt.Errorf("IPv6 default route of vm1:\n%s\nwant one via the router's link-local address, from its advertisement", out)
		}
		return nil
	})
	t.Logf("SLAAC address and default route %v after the router took the subnet", time.Since(start).Round(10*time.Millisecond))
	if got := ipv6Sysctls(t, e, "vm1"); got != "-1/1" {
		t.Errorf("vm1 eth0 router_solicitations/dad_transmits = %s, want the kernel's -1/1 on a network with IPv6", got)
	}
}
