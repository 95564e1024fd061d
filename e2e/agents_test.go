package e2e

import (
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
