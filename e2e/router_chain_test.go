package e2e

import (
	"slices"
	"strings"
	"testing"
)

// TestSeedRouterChain reproduces seed 003: a tenant router SNATs its subnet
// to a link-local transit network (169.254.0.0/18); an edge router on that
// transit network masquerades it out to the public network. Two levels of
// NAT: the far host sees the edge's public address, and the edge's own
// access log sees the tenant router's transit address. The topology is
// examples/seed-003-router-chain.yaml.
func TestSeedRouterChain(t *testing.T) {
	e := Start(t)
	// The topology is the example users apply, so that it cannot rot.
	e.MustNsnet("apply", "-f", "../examples/seed-003-router-chain.yaml")
	public := jsonOf(t, e.MustNsnet("network", "show", "public", "-o", "json"))

	up := buildUpstream(t, e, public["id"].(string), "198.51.100.1/24")
	far := serveHTTP(t, up.FarNS, up.Far, "80")
	edgeIP := gatewayAddress(t, e, "edge")
	tenantIP := gatewayAddress(t, e, "tenant-router")
	if edgeIP != "198.51.100.2" || tenantIP != "169.254.43.17" {
		t.Errorf("gateway addresses %s and %s, want the file's 198.51.100.2 and 169.254.43.17", edgeIP, tenantIP)
	}

	if src := far.fetch(t, e.Netns("vm1"), "http://"+up.Far+"/"); src != edgeIP {
		t.Errorf("far host saw %s, want the edge router's public address %s", src, edgeIP)
	}
	// What the edge sees: a server on its transit side logs the client.
	edgeNS := e.Prefix + "qrouter-" + jsonOf(t, e.MustNsnet("router", "show", "edge", "-o", "json"))["id"].(string)
	edgeServer := serveHTTP(t, edgeNS, "169.254.0.1", "8081")
	if src := edgeServer.fetch(t, e.Netns("vm1"), "http://169.254.0.1:8081/"); src != tenantIP {
		t.Errorf("edge saw %s, want the tenant router's transit address %s", src, tenantIP)
	}

	// What the seed finds with tcpdump in four places, in one command:
	// the tenant router rewrites 10.0.0.x to its transit address at its
	// qg-, the edge rewrites that to its public address at its qg-, and
	// the reply is translated back in the reverse order.
	tenantNS := e.Prefix + "qrouter-" + jsonOf(t, e.MustNsnet("router", "show", "tenant-router", "-o", "json"))["id"].(string)
	vm1IP := fixedIP(jsonOf(t, e.MustNsnet("port", "show", "vm1-eth0", "-o", "json")))
	r := e.trace("vm1", up.Far, "--tcp", "80")
	if !r.Answered {
		t.Errorf("trace through two routers: no answer: %+v", r.Stopped)
	}
	r.allSeen(t)
	var snats, unsnats []string
	for _, rw := range r.Rewrites {
		host, _, _ := strings.Cut(rw.From, ":")
		to, _, _ := strings.Cut(rw.To, ":")
		switch {
		case rw.Way == "out" && rw.Kind == "SNAT":
			snats = append(snats, host+" → "+to+" @ "+rw.Netns+"/"+rw.Interface[:3])
		case rw.Way == "back" && rw.Kind == "DNAT":
			unsnats = append(unsnats, host+" → "+to+" @ "+rw.Netns+"/"+rw.Interface[:3])
		}
	}
	wantOut := []string{vm1IP + " → " + tenantIP + " @ " + tenantNS + "/qg-", tenantIP + " → " + edgeIP + " @ " + edgeNS + "/qg-"}
	if !slices.Equal(snats, wantOut) {
		t.Errorf("SNATs on the way out:\n got %q\nwant %q", snats, wantOut)
	}
	wantBack := []string{edgeIP + " → " + tenantIP + " @ " + edgeNS + "/qr-", tenantIP + " → " + vm1IP + " @ " + tenantNS + "/qr-"}
	if !slices.Equal(unsnats, wantBack) {
		t.Errorf("the reply's translations back:\n got %q\nwant %q", unsnats, wantBack)
	}
	noCaptureLeft(t, e.HostNetns, tenantNS, edgeNS, e.Netns("vm1"))
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
