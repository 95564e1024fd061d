package e2e

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nsnet/nsnet/internal/lab"
)

// TestCleanupWithLostStore builds a router with a gateway, a floating IP
// and two instances, stops the daemon, loses its store, and runs `nsnet
// cleanup`: every namespace, link and table nsnet made goes; look-alikes
// with nsnet's names but not its marks stay.
func TestCleanupWithLostStore(t *testing.T) {
	e := Start(t, WithStateFile()) // it loses the file
	e.MustNsnet("network", "create", "public", "--external")
	e.MustNsnet("subnet", "create", "public-v4", "--network", "public", "--subnet-range", "198.51.100.0/24", "--no-dhcp")
	e.MustNsnet("network", "create", "private")
	e.MustNsnet("subnet", "create", "private-v4", "--network", "private", "--subnet-range", "10.0.0.0/24")
	e.MustNsnet("router", "create", "r1", "--external-gateway", "public")
	e.MustNsnet("router", "add", "subnet", "r1", "private-v4")
	for _, vm := range []string{"vm1", "vm2"} {
		e.MustNsnet("instance", "create", vm)
		e.MustNsnet("port", "create", vm+"-eth0", "--network", "private", "--device", vm)
	}
	e.MustNsnet("floating", "ip", "create", "public", "--port", "vm1-eth0")

	lookalikeNS := e.Prefix + "vm3"
	t.Cleanup(func() { exec.Command("ip", "netns", "delete", lookalikeNS).Run() })
	run(t, "ip", "netns", "add", lookalikeNS)
	lookalikeLinks := []string{"nsb-lookalike0", "tap0123456789a"}
	t.Cleanup(func() {
		for _, l := range lookalikeLinks {
			exec.Command("ip", "-n", e.HostNetns, "link", "del", l).Run()
		}
	})
	for _, l := range lookalikeLinks {
		run(t, "ip", "-n", e.HostNetns, "link", "add", l, "type", "bridge")
	}

	flags := []string{"cleanup", "--host-netns", e.HostNetns, "--netns-prefix", e.Prefix, "-o", "json"}
	// While the daemon programs the host, cleanup refuses, naming it,
	// even when pointed at a socket where no daemon answers.
	elsewhere := append([]string{"--socket", filepath.Join(e.Dir, "none.sock")}, flags...)
	if out, err := exec.Command(nsnetBin, elsewhere...).CombinedOutput(); err == nil ||
		!strings.Contains(string(out), fmt.Sprintf("pid %d", e.daemon.Process.Pid)) {
		t.Fatalf("cleanup with the daemon running (%v):\n%s", err, out)
	}
	if n := len(lab.Namespaces(e.Prefix)); n != 6 {
		t.Fatalf("the refused cleanup removed something: %d namespaces with the prefix, want 6", n)
	}

	e.stopDaemon()
	if err := os.Remove(filepath.Join(e.Dir, "state", "state.db")); err != nil {
		t.Fatal(err)
	}

	var listed []map[string]any
	if err := json.Unmarshal([]byte(e.MustNsnet(append(flags, "--dry-run")...)), &listed); err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, o := range listed {
		kinds[o["kind"].(string)]++
	}
	// Two instances, one router, private's DHCP namespace; in the host
	// namespace two bridges, the host ends of five ports (two instance
	// ports, qr-, qg-, the DHCP port) and the security group tables.
	if want := map[string]int{"instance": 2, "router": 1, "dhcp": 1, "link": 7, "nft-table": 1}; !maps.Equal(kinds, want) {
		t.Errorf("dry run listed %v, want %v:\n%v", kinds, want, listed)
	}
	if n := len(lab.Namespaces(e.Prefix)); n != 6 {
		t.Errorf("the dry run removed something: %d namespaces with the prefix, want 6", n)
	}

	var removed []map[string]any
	if err := json.Unmarshal([]byte(e.MustNsnet(flags...)), &removed); err != nil {
		t.Fatal(err)
	}
	if len(removed) != len(listed) {
		t.Errorf("removed %d objects, listed %d", len(removed), len(listed))
	}
	left := lab.Namespaces(e.Prefix)
	slices.Sort(left)
	if want := []string{e.HostNetns, lookalikeNS}; !slices.Equal(left, want) {
		t.Errorf("namespaces left: %v, want only %v", left, want)
	}
	hostLinks := linksIn(e.HostNetns)
	slices.Sort(hostLinks)
	if !slices.Equal(hostLinks, lookalikeLinks) {
		t.Errorf("host links left: %v, want only the look-alikes %v", hostLinks, lookalikeLinks)
	}
	if out := e.MustNsnet(append(flags[:len(flags)-2], "--dry-run")...); !strings.Contains(out, "nothing of nsnet's") {
		t.Errorf("second cleanup found more:\n%s", out)
	}

	for _, l := range lookalikeLinks {
		exec.Command("ip", "-n", e.HostNetns, "link", "del", l).Run()
	}
	exec.Command("ip", "netns", "delete", lookalikeNS).Run()
	e.startDaemon() // on an empty store, for the harness's teardown
}
