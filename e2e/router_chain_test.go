package e2e

import (
	"testing"
)

// TestSeedRouterChain reproduces seed 003: a tenant router SNATs its subnet
// to a link-local transit network (169.254.0.0/18); an edge router on that
// transit network masquerades it out to the public network. Two levels of
// NAT: the far host sees the edge's public address, and the edge's own
// access log sees the tenant router's transit address.
func TestSeedRouterChain(t *testing.T) {
	e := Start(t)
	public := jsonOf(t, e.MustNsnet("network", "create", "public", "--external", "-o", "json"))
	e.MustNsnet("subnet", "create", "public-v4", "--network", "public", "--subnet-range", "198.51.100.0/24",
		"--gateway", "198.51.100.1", "--no-dhcp")
	e.MustNsnet("network", "create", "transit", "--external")
	e.MustNsnet("subnet", "create", "transit-v4", "--network", "transit", "--subnet-range", "169.254.0.0/18",
		"--gateway", "169.254.0.1", "--no-dhcp")
	e.MustNsnet("network", "create", "tenant")
	e.MustNsnet("subnet", "create", "tenant-v4", "--network", "tenant", "--subnet-range", "10.0.0.0/24")

	// The edge: interface on the transit network (its gateway address),
	// gateway on the public network.
	e.MustNsnet("router", "create", "edge")
	e.MustNsnet("router", "set", "edge", "--external-gateway", "public")
	e.MustNsnet("router", "add", "subnet", "edge", "transit-v4")
	// The tenant router: gateway on the transit network.
	e.MustNsnet("router", "create", "tenant-router")
	e.MustNsnet("router", "set", "tenant-router", "--external-gateway", "transit")
	e.MustNsnet("router", "add", "subnet", "tenant-router", "tenant-v4")
	e.MustNsnet("instance", "create", "vm1")
	e.MustNsnet("port", "create", "vm1-eth0", "--network", "tenant", "--device", "vm1")

	up := buildUpstream(t, e, public["id"].(string), "198.51.100.1/24")
	far := serveHTTP(t, up.FarNS, up.Far, "80")
	edgeIP := gatewayAddress(t, e, "edge")
	tenantIP := gatewayAddress(t, e, "tenant-router")

	if src := far.fetch(t, e.Netns("vm1"), "http://"+up.Far+"/"); src != edgeIP {
		t.Errorf("far host saw %s, want the edge router's public address %s", src, edgeIP)
	}
	// What the edge sees: a server on its transit side logs the client.
	edgeNS := e.Prefix + "qrouter-" + jsonOf(t, e.MustNsnet("router", "show", "edge", "-o", "json"))["id"].(string)
	edgeServer := serveHTTP(t, edgeNS, "169.254.0.1", "8081")
	if src := edgeServer.fetch(t, e.Netns("vm1"), "http://169.254.0.1:8081/"); src != tenantIP {
		t.Errorf("edge saw %s, want the tenant router's transit address %s", src, tenantIP)
	}
}

// gatewayAddress is a router's address on its external network.
func gatewayAddress(t *testing.T, e *Env, router string) string {
	t.Helper()
	r := jsonOf(t, e.MustNsnet("router", "show", router, "-o", "json"))
	info, _ := r["external_gateway_info"].(map[string]any)
	ips, _ := info["external_fixed_ips"].([]any)
	if len(ips) == 0 {
		t.Fatalf("router %s has no gateway address: %v", router, r)
	}
	return ips[0].(map[string]any)["ip_address"].(string)
}
