package e2e

import (
	"strings"
	"testing"
	"time"
)

// hostWithUplink is the host of seeds 000–002 before nsnet: a cable eth0
// to the outside (an upstream gateway at gatewayCIDR and the far host
// 203.0.113.1 behind it), the host's own addresses on it and its default
// route through the gateway. That is the admin's configuration, not
// nsnet's; nsnet is only told that eth0 is the way out.
func hostWithUplink(t *testing.T, e *Env, gatewayCIDR string, hostCIDRs ...string) *upstream {
	t.Helper()
	up := newUpstream(t, e, "eth0", gatewayCIDR)
	for _, cidr := range hostCIDRs {
		run(t, "ip", "-n", e.HostNetns, "addr", "add", cidr, "dev", "eth0")
	}
	run(t, "ip", "-n", e.HostNetns, "link", "set", "eth0", "up")
	run(t, "ip", "-n", e.HostNetns, "route", "add", "default", "via", up.Gateway)
	return up
}

// applyExample applies one of examples/ and logs how long it took.
func applyExample(t *testing.T, e *Env, name string) {
	t.Helper()
	start := time.Now()
	out := e.MustNsnet("apply", "-f", "../examples/"+name)
	t.Logf("nsnet apply -f examples/%s took %v", name, time.Since(start))
	if strings.Contains(out, "warning") {
		t.Errorf("apply of %s left something unprogrammed:\n%s", name, out)
	}
}

// hostNft lists the host's nsnet table.
func hostNft(t *testing.T, e *Env) string {
	t.Helper()
	out, err := runOut("ip", "netns", "exec", e.HostNetns, "nft", "list", "table", "inet", "nsnet")
	if err != nil {
		t.Fatalf("the host has no nsnet table: %v\n%s", err, out)
	}
	return out
}

// TestSeedHostNAT reproduces seed 000: a namespace whose gateway is the
// host (192.168.45.2 on the bridge), masqueraded out of the host's eth0
// (192.168.1.32), and host:8080 → myspace:80 from outside. The far host's
// logs tell which source address arrived, as the seed's tcpdump does.
func TestSeedHostNAT(t *testing.T) {
	e := Start(t)
	up := hostWithUplink(t, e, "192.168.1.1/24", "192.168.1.32/24")
	far := serveHTTP(t, up.FarNS, up.Far, "80")
	udpServer(t, up.FarNS, up.Far, "7")
	applyExample(t, e, "seed-000-host-nat.yaml")

	// Steps 4, 6, 7: the gateway address on the host's side (the bridge),
	// the namespace's default route through it, forwarding on.
	net := jsonOf(t, e.MustNsnet("network", "show", "myspace-net", "-o", "json"))
	bridge := "nsb-" + net["id"].(string)[:11]
	if out, _ := runOut("ip", "-n", e.HostNetns, "-o", "addr", "show", "dev", bridge); !strings.Contains(out, "192.168.45.2/24") {
		t.Errorf("bridge %s does not carry the gateway 192.168.45.2/24:\n%s", bridge, out)
	}
	if out, _ := e.In("myspace", "ip", "route", "show", "default"); !strings.Contains(out, "via 192.168.45.2") {
		t.Errorf("myspace's default route: %s", out)
	}
	if out, _ := runOut("ip", "netns", "exec", e.HostNetns, "cat", "/proc/sys/net/ipv4/ip_forward"); strings.TrimSpace(out) != "1" {
		t.Errorf("host ip_forward = %q, want 1", out)
	}
	if net["status"] != "ACTIVE" {
		t.Errorf("network status %v (%v)", net["status"], net["nsnet:status_reason"])
	}

	// Step 8: masquerade. The far host sees the host's eth0 address.
	if out, err := e.In("myspace", "ping", "-c", "1", "-W", "2", up.Far); err != nil {
		t.Errorf("myspace cannot ping the far host: %v\n%s", err, out)
	}
	if src := far.fetch(t, e.Netns("myspace"), "http://"+up.Far+"/"); src != "192.168.1.32" {
		t.Errorf("myspace → far host arrived from %s, want the host's eth0 address 192.168.1.32", src)
	}
	if src := udpSource(t, e.Netns("myspace"), up.Far, "7"); src != "192.168.1.32" {
		t.Errorf("myspace → far host over UDP arrived from %q, want 192.168.1.32", src)
	}

	// 2.3 DNAT: the far host reaches host:8080, which is myspace:80; the
	// server sees the real client.
	inside := serveHTTP(t, e.Netns("myspace"), "0.0.0.0", "80")
	if src := inside.fetch(t, up.FarNS, "http://192.168.1.32:8080/"); src != up.Far {
		t.Errorf("far host → host:8080 reached myspace from %s, want %s", src, up.Far)
	}

	// Unpublishing stops it; the masquerade stays.
	_, list := e.API("GET", "/v2.0/nsnet/published-ports", nil)
	published, _ := list["published_ports"].([]any)
	if len(published) != 1 {
		t.Fatalf("published ports: %v", list)
	}
	e.MustNsnet("published-port", "delete", published[0].(map[string]any)["id"].(string))
	if out, err := runOut("ip", "netns", "exec", up.FarNS, "curl", "-sS", "--max-time", "2", "http://192.168.1.32:8080/"); err == nil {
		t.Errorf("host:8080 still reaches myspace after unpublishing:\n%s", out)
	}
	if src := far.fetch(t, e.Netns("myspace"), "http://"+up.Far+"/"); src != "192.168.1.32" {
		t.Errorf("after unpublishing, myspace → far host arrived from %s", src)
	}
}
