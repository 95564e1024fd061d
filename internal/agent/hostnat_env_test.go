package agent

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/store"
)

// TestHostNATStatus: a host-gateway network is ERROR while its uplink is
// missing and ACTIVE once it appears, its gateway on its bridge and the
// host's table holding it; when the host's table cannot be programmed (two
// published ports claim tcp/8080, which the API refuses but a store may
// hold), every host-gateway network is ERROR with the reason, and ACTIVE
// again once the conflict goes, without any change to its own records.
func TestHostNATStatus(t *testing.T) {
	e := newEnv(t, time.Hour)
	lan := l3network(1, "192.168.24.0/24", "192.168.24.1", false)
	lan.net.HostGateway, lan.net.Uplink = true, ptr("eth0")
	e.converge(e.put(lan.records()...))
	// The uplink is missing: the network says so, and is ACTIVE once it
	// appears.
	if st, reason := e.agent.Status(store.Networks, lan.net.ID); st != model.StatusError || !strings.Contains(reason, "uplink eth0 does not exist") {
		t.Errorf("network with a missing uplink: %s %q", st, reason)
	}
	t.Cleanup(func() { exec.Command("ip", "-n", e.hostNetns, "link", "delete", "eth0").Run() })
	e.ip("-n", e.hostNetns, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0-peer")
	eventually(t, 10*time.Second, "network ACTIVE", func() error {
		if st, reason := e.agent.Status(store.Networks, lan.net.ID); st != model.StatusActive {
			return fmt.Errorf("%s %s", st, reason)
		}
		return nil
	})
	if out := e.ip("-n", e.hostNetns, "-o", "addr", "show", "dev", model.BridgeName(lan.net.ID)); !strings.Contains(out, "192.168.24.1/24") {
		t.Fatalf("gateway not on the bridge:\n%s", out)
	}
	if tables := nftTables(e.hostNetns); !strings.Contains(tables, "table inet nsnet") {
		t.Fatalf("no nsnet table in the host namespace: %q", tables)
	}

	other := l3network(3, "10.3.0.0/24", "10.3.0.1", false)
	other.net.HostGateway = true
	web := model.PublishedPort{ID: "pp-web", Protocol: "tcp", HostPort: ptr(8080), InternalPort: ptr(80), InternalIPAddress: "192.168.24.10"}
	clash := model.PublishedPort{ID: "pp-clash", Protocol: "tcp", HostPort: ptr(8080), InternalPort: ptr(80), InternalIPAddress: "10.3.0.10"}
	e.converge(e.put(append(other.records(), web, clash)...))
	for _, id := range []string{lan.net.ID, other.net.ID} {
		if st, reason := e.agent.Status(store.Networks, id); st != model.StatusError || !strings.HasPrefix(reason, "host NAT: ") {
			t.Errorf("network %s with a broken host table: %s %q, want ERROR host NAT: …", id, st, reason)
		}
	}

	e.converge(e.del(clash))
	for _, id := range []string{lan.net.ID, other.net.ID} {
		e.wantStatus(store.Networks, id, model.StatusActive)
	}
	if out, _ := exec.Command("ip", "netns", "exec", e.hostNetns, "nft", "list", "map", "inet", "nsnet", "publish").CombinedOutput(); !strings.Contains(string(out), "192.168.24.10 . 80") {
		t.Errorf("published port not in the host's table:\n%s", out)
	}
	e.converge(e.del(append(other.records(), web)...))

	// No host-gateway network left: no table.
	e.converge(e.del(lan.records()...))
	if tables := nftTables(e.hostNetns); tables != "" {
		t.Errorf("host table outlived the last host-gateway network:\n%s", tables)
	}
}

// TestHostGatewayHairpin: the instance ports of a host-gateway network
// are in hairpin mode (the bridge sends an instance's connection to its
// own published port back out of its tap); a full pass puts it back when
// someone turns it off, and the ports leave it when the network stops
// being one.
func TestHostGatewayHairpin(t *testing.T) {
	e := newEnv(t, 100*time.Millisecond)
	lan := l3network(1, "192.168.24.0/24", "192.168.24.1", false)
	lan.net.HostGateway = true
	vm := lan.vm(10, "red", "192.168.24.10")
	e.converge(e.put(append(lan.records(), vm...)...))
	tap := model.TapName(vm[1].(model.Port).ID)
	hairpin := func() string {
		out := e.ip("-n", e.hostNetns, "-d", "link", "show", tap)
		if strings.Contains(out, "hairpin on") {
			return "on"
		}
		return "off"
	}
	if got := hairpin(); got != "on" {
		t.Fatalf("hairpin of %s on a host-gateway network: %s", tap, got)
	}
	e.ip("-n", e.hostNetns, "link", "set", tap, "type", "bridge_slave", "hairpin", "off")
	e.waitFullPasses(2)
	if got := hairpin(); got != "on" {
		t.Errorf("hairpin turned off by hand, after two full passes: %s", got)
	}
	lan.net.HostGateway = false
	e.converge(e.put(lan.net))
	if got := hairpin(); got != "off" {
		t.Errorf("hairpin once the network is no longer a host-gateway one: %s", got)
	}
}
