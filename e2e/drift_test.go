package e2e

import (
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nsnet/nsnet/internal/lab"
)

// TestDriftRepair deletes by hand, with ip and nft, objects nsnet made — a
// port's veth, a qr- interface, a router's nft table, a floating IP's
// address on qg-, a bridge, the security group tables — and expects each back within two seconds,
// well before the daemon's periodic full pass (30s): the agent hears the
// kernel's deletion notifications. Look-alike objects nsnet did not make
// sit next to them and must survive every repair.
func TestDriftRepair(t *testing.T) {
	e := Start(t)
	public := jsonOf(t, e.MustNsnet("network", "create", "public", "--external", "-o", "json"))
	e.MustNsnet("subnet", "create", "public-v4", "--network", "public", "--subnet-range", "198.51.100.0/24",
		"--gateway", "198.51.100.1", "--no-dhcp")
	private := jsonOf(t, e.MustNsnet("network", "create", "private", "-o", "json"))
	e.MustNsnet("subnet", "create", "private-v4", "--network", "private", "--subnet-range", "10.0.0.0/24")
	router := jsonOf(t, e.MustNsnet("router", "create", "r1", "-o", "json"))
	e.MustNsnet("router", "set", "r1", "--external-gateway", "public")
	e.MustNsnet("router", "add", "subnet", "r1", "private-v4")
	e.MustNsnet("instance", "create", "vm1")
	e.MustNsnet("port", "create", "vm1-eth0", "--network", "private", "--device", "vm1")
	fip := jsonOf(t, e.MustNsnet("floating", "ip", "create", "public", "--port", "vm1-eth0", "-o", "json"))["floating_ip_address"].(string)
	up := buildUpstream(t, e, public["id"].(string), "198.51.100.1/24")
	far := serveHTTP(t, up.FarNS, up.Far, "80")

	qrouter := e.Prefix + "qrouter-" + router["id"].(string)
	privateBridge := "nsb-" + private["id"].(string)[:11]
	qr, qg := linkWithPrefix(t, qrouter, "qr-"), linkWithPrefix(t, qrouter, "qg-")

	// Look-alikes: nsnet's naming, not nsnet's markers.
	lookalikeNS := e.Prefix + "qrouter-00000000-0000-0000-0000-lookalike000"
	run(t, "ip", "netns", "add", lookalikeNS)
	t.Cleanup(func() { exec.Command("ip", "netns", "delete", lookalikeNS).Run() })
	lookalikes := [][]string{
		{"-n", e.HostNetns, "link", "add", "nsb-lookalike0", "type", "bridge"},
		{"-n", e.HostNetns, "link", "add", "tap-lookalike", "type", "bridge"},
		{"-n", qrouter, "link", "add", "qr-lookalike", "type", "bridge"},
	}
	t.Cleanup(func() {
		for _, c := range lookalikes {
			exec.Command("ip", "-n", c[1], "link", "del", c[4]).Run()
		}
	})
	for _, c := range lookalikes {
		run(t, "ip", c...)
	}
	run(t, "ip", "netns", "exec", qrouter, "nft", "add", "table", "inet", "nsnet_lookalike")

	hasLink := func(ns, name string) func() error {
		return func() error {
			if err := exec.Command("ip", "-n", ns, "link", "show", name, "up").Run(); err != nil {
				return fmt.Errorf("no link %s up in %s", name, ns)
			}
			return nil
		}
	}
	hasAddr := func(ns, dev, addr string) func() error {
		return func() error {
			out, _ := runOut("ip", "-n", ns, "-o", "addr", "show", "dev", dev)
			if !strings.Contains(out, " "+addr+"/") {
				return fmt.Errorf("%s not on %s in %s", addr, dev, ns)
			}
			return nil
		}
	}
	hasNATTable := func() error {
		out, err := runOut("ip", "netns", "exec", qrouter, "nft", "list", "map", "inet", "nsnet", "floating_dnat")
		if err != nil || !strings.Contains(out, fip) {
			return fmt.Errorf("no floating_dnat map holding %s (%v)", fip, err)
		}
		return nil
	}

	hasFirewall := func() error {
		out, err := runOut("ip", "netns", "exec", e.HostNetns, "nft", "list", "set", "bridge", "nsnet_fw", "secured")
		if err != nil || !strings.Contains(out, "tap") {
			return fmt.Errorf("no secured port in bridge nsnet_fw (%v):\n%s", err, out)
		}
		return nil
	}

	for _, tc := range []struct {
		what     string
		deletion []string
		back     func() error
	}{
		{"a port's veth", []string{"ip", "-n", e.Netns("vm1"), "link", "del", "eth0"}, hasLink(e.Netns("vm1"), "eth0")},
		{"a qr- interface", []string{"ip", "-n", qrouter, "link", "del", qr}, hasLink(qrouter, qr)},
		{"a router's nft table", []string{"ip", "netns", "exec", qrouter, "nft", "delete", "table", "inet", "nsnet"}, hasNATTable},
		{"a floating IP's address on qg-", []string{"ip", "-n", qrouter, "addr", "del", fip + "/32", "dev", qg}, hasAddr(qrouter, qg, fip)},
		{"a bridge", []string{"ip", "-n", e.HostNetns, "link", "del", privateBridge}, hasLink(e.HostNetns, privateBridge)},
		{"the security group tables", []string{"ip", "netns", "exec", e.HostNetns, "nft", "delete", "table", "bridge", "nsnet_fw"}, hasFirewall},
	} {
		if err := tc.back(); err != nil {
			t.Fatalf("before deleting %s: %v", tc.what, err)
		}
		run(t, tc.deletion[0], tc.deletion[1:]...)
		start := time.Now()
		eventually(t, 2*time.Second, tc.what+" repaired", tc.back)
		t.Logf("%s repaired in %v", tc.what, time.Since(start).Round(time.Millisecond))
	}

	// Repaired means working: vm1 leaves from its floating IP again.
	if src := far.fetch(t, e.Netns("vm1"), "http://"+up.Far+"/"); src != fip {
		t.Errorf("after the repairs vm1 arrived from %s, want its floating IP %s", src, fip)
	}
	for _, c := range lookalikes {
		if err := exec.Command("ip", "-n", c[1], "link", "show", c[4]).Run(); err != nil {
			t.Errorf("look-alike %s in %s was touched: %v", c[4], c[1], err)
		}
	}
	if err := exec.Command("ip", "netns", "exec", qrouter, "nft", "list", "table", "inet", "nsnet_lookalike").Run(); err != nil {
		t.Errorf("look-alike table inet nsnet_lookalike was touched: %v", err)
	}
	if !slices.Contains(lab.Namespaces(e.Prefix), lookalikeNS) {
		t.Errorf("look-alike namespace %s was deleted", lookalikeNS)
	}
	exec.Command("ip", "netns", "delete", lookalikeNS).Run()
}

// linkWithPrefix is the one link of ns whose name starts with prefix.
func linkWithPrefix(t *testing.T, ns, prefix string) string {
	t.Helper()
	var found []string
	for _, l := range linksIn(ns) {
		if strings.HasPrefix(l, prefix) {
			found = append(found, l)
		}
	}
	if len(found) != 1 {
		t.Fatalf("links %s* in %s: %v, want exactly one", prefix, ns, found)
	}
	return found[0]
}
