package e2e

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestAgentSchedulers: the daemon's agents are alive from its heartbeat;
// removing a router from its L3 agent takes its qrouter namespace away and
// the instances behind it lose the outside, adding it back brings both
// back; removing a network from its DHCP agent takes its qdhcp namespace
// away (nothing answers at the DHCP port's address), adding it back brings
// it back (docs/AGENTS.md).
func TestAgentSchedulers(t *testing.T) {
	e := Start(t)
	up := buildSeed004(t, e)
	far := serveHTTP(t, up.FarNS, up.Far, "80")

	agents := map[string]string{} // id by type
	eventually(t, time.Minute, "agents alive", func() error {
		var dead []string
		for _, a := range e.MustAPI("GET", "/v2.0/agents", nil)["agents"].([]any) {
			a := a.(map[string]any)
			agents[a["agent_type"].(string)] = a["id"].(string)
			if a["alive"] != true {
				dead = append(dead, a["agent_type"].(string))
			}
		}
		if len(agents) != 4 || len(dead) > 0 {
			return fmt.Errorf("agents %v, not alive: %v", agents, dead)
		}
		return nil
	})
	l3, dhcp := agents["L3 agent"], agents["DHCP agent"]

	router := jsonOf(t, e.MustNsnet("router", "show", "r1", "-o", "json"))["id"].(string)
	qrouter := e.Prefix + "qrouter-" + router
	reachesFar := func() error {
		out, err := exec.Command("ip", "netns", "exec", e.Netns("vm1"), "curl", "-sS", "-o", "/dev/null", "--max-time", "3", "http://"+up.Far+"/").CombinedOutput()
		if err != nil {
			return fmt.Errorf("curl: %v: %s", err, out)
		}
		return nil
	}
	far.fetch(t, e.Netns("vm1"), "http://"+up.Far+"/")
	if !hasNetns(t, qrouter) {
		t.Fatalf("no %s before the test", qrouter)
	}

	e.MustAPI("DELETE", "/v2.0/agents/"+l3+"/l3-routers/"+router, nil)
	if hasNetns(t, qrouter) {
		t.Errorf("%s still there once the router left its L3 agent", qrouter)
	}
	if err := reachesFar(); err == nil {
		t.Error("vm1 still reaches the far host with its router unscheduled")
	}
	if hosting := e.MustAPI("GET", "/v2.0/routers/"+router+"/l3-agents", nil)["agents"].([]any); len(hosting) != 0 {
		t.Errorf("router still hosted by %v", hosting)
	}
	e.MustAPI("POST", "/v2.0/agents/"+l3+"/l3-routers", map[string]any{"router_id": router})
	if !hasNetns(t, qrouter) {
		t.Errorf("no %s once the router is back on its L3 agent", qrouter)
	}
	eventually(t, 30*time.Second, "vm1 reaches the far host again", reachesFar)

	network := jsonOf(t, e.MustNsnet("network", "show", "private", "-o", "json"))["id"].(string)
	qdhcp := e.Prefix + "qdhcp-" + network
	dhcpIP := func() string {
		ports := e.MustAPI("GET", "/v2.0/ports?device_owner=network:dhcp&network_id="+network, nil)["ports"].([]any)
		if len(ports) != 1 {
			return ""
		}
		return ports[0].(map[string]any)["fixed_ips"].([]any)[0].(map[string]any)["ip_address"].(string)
	}
	addr := dhcpIP()
	if addr == "" || !hasNetns(t, qdhcp) {
		t.Fatalf("DHCP port %q, namespace %s present %v", addr, qdhcp, hasNetns(t, qdhcp))
	}
	pings := func(ip string) bool {
		for range 3 { // as a client would, a lost first packet is not an answer
			if _, err := e.In("vm1", "ping", "-c", "1", "-W", "1", ip); err == nil {
				return true
			}
		}
		return false
	}
	if !pings(addr) {
		t.Fatalf("vm1 cannot ping the DHCP port %s", addr)
	}
	e.MustAPI("DELETE", "/v2.0/agents/"+dhcp+"/dhcp-networks/"+network, nil)
	if hasNetns(t, qdhcp) || dhcpIP() != "" {
		t.Errorf("DHCP still served once the network left its DHCP agent: namespace %v, port %q", hasNetns(t, qdhcp), dhcpIP())
	}
	if pings(addr) {
		t.Errorf("%s still answers with the network off its DHCP agent", addr)
	}
	e.MustAPI("POST", "/v2.0/agents/"+dhcp+"/dhcp-networks", map[string]any{"network_id": network})
	if !hasNetns(t, qdhcp) || dhcpIP() == "" {
		t.Errorf("DHCP not back: namespace %v, port %q", hasNetns(t, qdhcp), dhcpIP())
	}
}

func hasNetns(t *testing.T, name string) bool {
	t.Helper()
	out, err := runOut("ip", "netns", "list")
	if err != nil {
		t.Fatalf("ip netns list: %v", err)
	}
	return slices.ContainsFunc(strings.Split(out, "\n"), func(l string) bool {
		f := strings.Fields(l) // "name (id: N)"
		return len(f) > 0 && f[0] == name
	})
}

// TestOpenStackCLIAgents: the OpenStack CLI's agent, scheduler and zone
// commands work against nsnet as against Neutron.
func TestOpenStackCLIAgents(t *testing.T) {
	if _, err := exec.LookPath("openstack"); err != nil {
		t.Fatal("the OpenStack CLI is missing: scripts/test.sh installs python3-openstackclient")
	}
	e := Start(t, WithTCP())
	list := func(args ...string) []map[string]any {
		t.Helper()
		out, err := e.openstack(append(args, "-f", "json")...)
		if err != nil {
			t.Fatalf("openstack %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		var rows []map[string]any
		if err := json.Unmarshal([]byte(out), &rows); err != nil {
			t.Fatalf("openstack %s: not a JSON list: %s", strings.Join(args, " "), out)
		}
		return rows
	}
	var l3 string
	eventually(t, time.Minute, "four agents alive", func() error {
		rows := list("network", "agent", "list")
		var alive []string
		for _, r := range rows {
			if r["Alive"] == true && r["State"] == true && r["Binary"] == "nsnet-agent" {
				alive = append(alive, r["Agent Type"].(string))
			}
			if r["Agent Type"] == "L3 agent" {
				l3 = r["ID"].(string)
			}
		}
		if len(alive) != 4 {
			return fmt.Errorf("alive: %v of %v", alive, rows)
		}
		return nil
	})
	// One row per zone and resource (network, router): the one zone.
	zones := list("availability", "zone", "list", "--network", "--long")
	var resources []string
	for _, z := range zones {
		if z["Zone Name"] != "nova" || z["Zone Status"] != "available" {
			t.Errorf("zone %v", z)
		}
		resources = append(resources, fmt.Sprint(z["Zone Resource"]))
	}
	if slices.Sort(resources); !slices.Equal(resources, []string{"network", "router"}) {
		t.Errorf("zones' resources %v", resources)
	}
	router := e.openstackJSON("router", "create", "r1", "--availability-zone-hint", "nova")
	if fmt.Sprint(router["availability_zone_hints"]) != "[nova]" {
		t.Errorf("router hints %v", router["availability_zone_hints"])
	}
	if out, err := e.openstack("router", "create", "r2", "--availability-zone-hint", "mars"); err == nil || !strings.Contains(out, "AvailabilityZone mars could not be found") {
		t.Errorf("router in an unknown zone: %v\n%s", err, out)
	}
	if rows := list("network", "agent", "list", "--router", "r1"); len(rows) != 1 || rows[0]["ID"] != l3 {
		t.Errorf("agents of r1: %v", rows)
	}
	if out, err := e.openstack("network", "agent", "remove", "router", "--l3", l3, "r1"); err != nil {
		t.Fatalf("remove router: %v\n%s", err, out)
	}
	if rows := list("network", "agent", "list", "--router", "r1"); len(rows) != 0 {
		t.Errorf("agents of r1 once removed: %v", rows)
	}
	if out, err := e.openstack("network", "agent", "add", "router", "--l3", l3, "r1"); err != nil {
		t.Fatalf("add router: %v\n%s", err, out)
	}
	if rows := list("router", "list", "--agent", l3); len(rows) != 1 || rows[0]["Name"] != "r1" {
		t.Errorf("routers of the L3 agent: %v", rows)
	}
}
