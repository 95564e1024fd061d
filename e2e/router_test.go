package e2e

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestSeedRouterFloatingIP reproduces seed 004 (Neutron's qrouter): a tenant
// network behind a router with an external gateway; default SNAT to the
// gateway address; one instance with a floating IP, reachable from outside
// and leaving from its floating IP while its neighbour leaves from the
// gateway address; and a port forward 8080 → 80. The far host's access log
// tells which source address arrived, as the seed's tcpdump does.
func TestSeedRouterFloatingIP(t *testing.T) {
	e := Start(t)
	up := buildSeed004(t, e)
	far := serveHTTP(t, up.FarNS, up.Far, "80")

	router := jsonOf(t, e.MustNsnet("router", "show", "r1", "-o", "json"))
	gatewayIP := router["external_gateway_info"].(map[string]any)["external_fixed_ips"].([]any)[0].(map[string]any)["ip_address"].(string)
	if router["status"] != "ACTIVE" {
		t.Errorf("router status %v", router["status"])
	}
	// The kernel objects the seed shows: qrouter-<id> with qr- and qg-.
	links, _ := runOut("ip", "-n", e.Prefix+"qrouter-"+router["id"].(string), "-o", "link")
	if !strings.Contains(links, "qr-") || !strings.Contains(links, "qg-") {
		t.Errorf("router namespace links:\n%s", links)
	}

	// Default SNAT: both instances reach the far host as the gateway address.
	for _, vm := range []string{"vm1", "vm2"} {
		if src := far.fetch(t, e.Netns(vm), "http://"+up.Far+"/"); src != gatewayIP {
			t.Errorf("%s → far host arrived from %s, want the router gateway %s", vm, src, gatewayIP)
		}
	}

	// A floating IP for vm1: inbound reaches it, its outbound leaves from
	// the floating IP, vm2's still from the gateway address.
	// As in Neutron, the default security group admits only its own
	// members: open HTTP to the world before serving it.
	e.MustNsnet("security-group", "rule", "create", "default", "--protocol", "tcp", "--dst-port", "80", "--remote-ip", "0.0.0.0/0")
	fip := jsonOf(t, e.MustNsnet("floating", "ip", "create", "public", "--port", "vm1-eth0", "-o", "json"))
	fipAddr := fip["floating_ip_address"].(string)
	vm1Server := serveHTTP(t, e.Netns("vm1"), "0.0.0.0", "80")
	if src := vm1Server.fetch(t, up.FarNS, "http://"+fipAddr+"/"); src != up.Far {
		t.Errorf("far host → floating IP reached vm1 from %s, want %s (no SNAT inbound)", src, up.Far)
	}
	if src := far.fetch(t, e.Netns("vm1"), "http://"+up.Far+"/"); src != fipAddr {
		t.Errorf("vm1 with a floating IP arrived from %s, want %s", src, fipAddr)
	}
	if src := far.fetch(t, e.Netns("vm2"), "http://"+up.Far+"/"); src != gatewayIP {
		t.Errorf("vm2 arrived from %s, want the gateway %s", src, gatewayIP)
	}
	// Hairpin: vm2 reaches vm1 through vm1's floating IP.
	vm1Server.fetch(t, e.Netns("vm2"), "http://"+fipAddr+"/")

	// A port forward: second floating IP, 8080 → vm2:80.
	fip2 := jsonOf(t, e.MustNsnet("floating", "ip", "create", "public", "-o", "json"))
	fip2Addr := fip2["floating_ip_address"].(string)
	vm2IP := fixedIP(jsonOf(t, e.MustNsnet("port", "show", "vm2-eth0", "-o", "json")))
	e.MustNsnet("floating", "ip", "port", "forwarding", "create", fip2Addr, "--port", "vm2-eth0",
		"--internal-ip-address", vm2IP, "--internal-protocol-port", "80", "--external-protocol-port", "8080", "--protocol", "tcp")
	vm2Server := serveHTTP(t, e.Netns("vm2"), "0.0.0.0", "80")
	if src := vm2Server.fetch(t, up.FarNS, "http://"+fip2Addr+":8080/"); src != up.Far {
		t.Errorf("far host → %s:8080 reached vm2 from %s, want %s", fip2Addr, src, up.Far)
	}

	// Disassociating withdraws the floating IP: vm1 leaves from the
	// gateway address again.
	e.MustNsnet("floating", "ip", "unset", fipAddr, "--port")
	if src := far.fetch(t, e.Netns("vm1"), "http://"+up.Far+"/"); src != gatewayIP {
		t.Errorf("after disassociation vm1 arrived from %s, want %s", src, gatewayIP)
	}
}

func jsonOf(t *testing.T, out string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("not a JSON object: %v\n%s", err, out)
	}
	return m
}

// buildSeed004 builds seed 004's topology: an external network public
// (198.51.100.0/24, its upstream at .1 leading to the far host), a private
// network 10.0.0.0/24 behind router r1 with its gateway on public, and
// instances vm1 and vm2 on private (ports vm1-eth0, vm2-eth0).
func buildSeed004(t *testing.T, e *Env) *upstream {
	t.Helper()
	public := jsonOf(t, e.MustNsnet("network", "create", "public", "--external", "-o", "json"))
	e.MustNsnet("subnet", "create", "public-v4", "--network", "public", "--subnet-range", "198.51.100.0/24",
		"--gateway", "198.51.100.1", "--no-dhcp")
	e.MustNsnet("network", "create", "private")
	e.MustNsnet("subnet", "create", "private-v4", "--network", "private", "--subnet-range", "10.0.0.0/24")
	e.MustNsnet("router", "create", "r1")
	e.MustNsnet("router", "set", "r1", "--external-gateway", "public")
	e.MustNsnet("router", "add", "subnet", "r1", "private-v4")
	for _, vm := range []string{"vm1", "vm2"} {
		e.MustNsnet("instance", "create", vm)
		e.MustNsnet("port", "create", vm+"-eth0", "--network", "private", "--device", vm)
	}
	// As in Neutron, the default security group admits only its own
	// members; the walkthrough serves HTTP to the world.
	e.MustNsnet("security-group", "rule", "create", "default", "--protocol", "tcp", "--dst-port", "80")
	return buildUpstream(t, e, public["id"].(string), "198.51.100.1/24")
}
