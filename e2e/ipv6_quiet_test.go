package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

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

// TestIPv4OnlyInstancesLinkLocal: instances on an IPv4-only network send
// no router solicitations and check no address (nothing there answers),
// yet keep their link-local addresses, as Neutron instances do, and reach
// each other's. The default group does not admit them: a remote group
// admits its members' fixed IPs and address pairs, as Neutron's
// (docs/SECURITY_GROUPS.md), not their link-local addresses; a rule
// for fe80::/64 does.
func TestIPv4OnlyInstancesLinkLocal(t *testing.T) {
	e := Start(t)
	e.MustNsnet("network", "create", "net")
	e.MustNsnet("subnet", "create", "net-v4", "--network", "net", "--subnet-range", "10.70.0.0/24")
	for _, vm := range []string{"vm1", "vm2"} {
		e.MustNsnet("instance", "create", vm)
		e.MustNsnet("port", "create", vm+"-eth0", "--network", "net", "--device", vm)
		if got := ipv6Sysctls(t, e, vm); got != "0/0" {
			t.Errorf("%s eth0 router_solicitations/dad_transmits = %s, want 0/0", vm, got)
		}
	}
	var p2 model.Port
	decodeJSON(t, e.MustNsnet("port", "show", "vm2-eth0", "-o", "json"), &p2)
	lla2 := eui64(t, p2.MACAddress)
	eventually(t, 10*time.Second, "vm2's link-local address", func() error {
		out, _ := e.In("vm2", "ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "link")
		if !strings.Contains(out, " "+lla2+"/64 ") || strings.Contains(out, "tentative") {
			return fmt.Errorf("link-local addresses of vm2:\n%s\nwant %s, not tentative", out, lla2)
		}
		return nil
	})
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
// IPv4-only network (no router solicitations) gets its SLAAC address and
// default route when the network gains a SLAAC subnet on its router: the
// router advertises at once, unsolicited.
func TestIPv4OnlyNetworkGainsSLAAC(t *testing.T) {
	e := Start(t)
	e.MustNsnet("router", "create", "r1")
	e.MustNsnet("network", "create", "net")
	e.MustNsnet("subnet", "create", "net-v4", "--network", "net", "--subnet-range", "10.71.0.0/24")
	e.MustNsnet("router", "add", "subnet", "r1", "net-v4")
	e.MustNsnet("instance", "create", "vm1")
	e.MustNsnet("port", "create", "vm1-eth0", "--network", "net", "--device", "vm1")
	if got := ipv6Sysctls(t, e, "vm1"); got != "0/0" {
		t.Errorf("vm1 eth0 router_solicitations/dad_transmits = %s, want 0/0", got)
	}
	// Long enough for the kernel to have given up soliciting, had it
	// started: nothing answered on an IPv4-only network.
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
