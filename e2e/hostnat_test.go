package e2e

import (
	"encoding/json"
	"fmt"
	"os/exec"
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

// checkOutbound checks that instance reaches the far host (ping, HTTP,
// UDP to a udpServer on port 7) and that both connections arrive there
// from wantSrc.
func checkOutbound(t *testing.T, e *Env, instance string, up *upstream, far *httpServer, wantSrc string) {
	t.Helper()
	if out, err := e.In(instance, "ping", "-c", "1", "-W", "2", up.Far); err != nil {
		t.Errorf("%s cannot ping the far host: %v\n%s", instance, err, out)
	}
	if src := far.fetch(t, e.Netns(instance), "http://"+up.Far+"/"); src != wantSrc {
		t.Errorf("%s → far host arrived from %s, want %s", instance, src, wantSrc)
	}
	if src := udpSource(t, e.Netns(instance), up.Far, "7"); src != wantSrc {
		t.Errorf("%s → far host over UDP arrived from %q, want %s", instance, src, wantSrc)
	}
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
	checkOutbound(t, e, "myspace", up, far, "192.168.1.32")

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

// TestSeedHostSNAT reproduces seed 001: the namespace's connections leave
// the host from a fixed address, 192.168.38.116 (SNAT --to-source), not
// masqueraded. The host's eth0 has 192.168.38.115 first, so a masquerade
// would show .115: the far host must see .116.
func TestSeedHostSNAT(t *testing.T) {
	e := Start(t)
	up := hostWithUplink(t, e, "192.168.32.1/21", "192.168.38.115/21", "192.168.38.116/21")
	far := serveHTTP(t, up.FarNS, up.Far, "80")
	udpServer(t, up.FarNS, up.Far, "7")
	applyExample(t, e, "seed-001-snat.yaml")

	checkOutbound(t, e, "lihui", up, far, "192.168.38.116")
	if nft := hostNft(t, e); !strings.Contains(nft, "192.168.38.116") {
		t.Errorf("the host's table has no SNAT to 192.168.38.116:\n%s", nft)
	}

	// Back to masquerade (the default): eth0's first address.
	e.MustNsnet("network", "set", "lihui-net", "--no-snat-address")
	if src := far.fetch(t, e.Netns("lihui"), "http://"+up.Far+"/"); src != "192.168.38.115" {
		t.Errorf("masqueraded lihui → far host arrived from %s, want eth0's first address 192.168.38.115", src)
	}
}

// TestSeedBridgeHostNAT reproduces seed 002, challenges 4 and 5: red,
// green and blue on one bridge whose address 192.168.24.1 is their
// gateway, masqueraded out of the host's eth0 (198.51.100.32), and
// host:8080 → red:80.
func TestSeedBridgeHostNAT(t *testing.T) {
	e := Start(t)
	up := hostWithUplink(t, e, "198.51.100.1/24", "198.51.100.32/24")
	far := serveHTTP(t, up.FarNS, up.Far, "80")
	applyExample(t, e, "seed-002-host-nat.yaml")

	// Challenge 3 still holds: red reaches green on the bridge.
	if out, err := e.In("red", "ping", "-c", "1", "-W", "2", "192.168.24.11"); err != nil {
		t.Errorf("red cannot ping green: %v\n%s", err, out)
	}
	// Challenge 4: ip addr add 192.168.24.1/24 dev linux-bridge, a
	// default route via it, forwarding, MASQUERADE.
	if out, err := e.In("red", "ping", "-c", "1", "-W", "2", "192.168.24.1"); err != nil {
		t.Errorf("red cannot ping its gateway on the bridge: %v\n%s", err, out)
	}
	if out, err := e.In("red", "ping", "-c", "1", "-W", "2", up.Far); err != nil {
		t.Errorf("red cannot ping the far host: %v\n%s", err, out)
	}
	for _, vm := range []string{"red", "green", "blue"} {
		if src := far.fetch(t, e.Netns(vm), "http://"+up.Far+"/"); src != "198.51.100.32" {
			t.Errorf("%s → far host arrived from %s, want the host's eth0 address 198.51.100.32", vm, src)
		}
	}
	// Challenge 5: DNAT --dport 8080 → 192.168.24.10:80, curl <public_ip>:8080.
	red := serveHTTP(t, e.Netns("red"), "0.0.0.0", "80")
	if src := red.fetch(t, up.FarNS, "http://198.51.100.32:8080/"); src != up.Far {
		t.Errorf("far host → host:8080 reached red from %s, want %s", src, up.Far)
	}
	// Hairpin: green reaches red through the published port on its
	// gateway; the connection is masqueraded to the gateway, so that red
	// answers through the host, not straight to green.
	if src := red.fetch(t, e.Netns("green"), "http://192.168.24.1:8080/"); src != "192.168.24.1" {
		t.Errorf("green → gateway:8080 reached red from %s, want the gateway 192.168.24.1 (hairpin)", src)
	}

	// Applying again changes nothing.
	if out := e.MustNsnet("apply", "-f", "../examples/seed-002-host-nat.yaml"); strings.Contains(out, "created") || strings.Contains(out, "updated") {
		t.Errorf("second apply changed something:\n%s", out)
	}
}

// reaches reports whether an HTTP GET of url from netns is answered.
func reaches(fromNetns, url string) bool {
	return exec.Command("ip", "netns", "exec", fromNetns, "curl", "-sS", "-o", "/dev/null", "--max-time", "2", url).Run() == nil
}

// TestHostGatewaySecurityGroups: on a network whose gateway is the host,
// the host routes between its uplink and the instances, and security
// groups hold there as on a router's network. web, in a group that admits
// nothing, publishes port 80 as the host's 8080; the upstream also routes
// the subnet to the host, so the far host can try web's fixed address
// directly. Neither way in opens until web's group admits TCP 80, as
// Neutron's port forwardings need; egress rules hold for traffic to the
// outside and to the host itself; and web and its neighbour reach web's
// published port through the gateway (hairpin).
func TestHostGatewaySecurityGroups(t *testing.T) {
	s := sgEnv{Start(t), t}
	up := hostWithUplink(t, s.Env, "198.51.100.1/24", "198.51.100.32/24")
	run(t, "ip", "-n", up.GatewayNS, "route", "add", "192.168.60.0/24", "via", "198.51.100.32")
	far := serveHTTP(t, up.FarNS, up.Far, "80")

	s.MustNsnet("network", "create", "lan", "--host-gateway", "--uplink", "eth0")
	s.MustNsnet("subnet", "create", "lan-v4", "--network", "lan", "--subnet-range", "192.168.60.0/24")
	s.group("locked") // a new group: egress anywhere, no ingress
	for vm, ip := range map[string]string{"web": "192.168.60.10", "peer": "192.168.60.11"} {
		s.MustNsnet("instance", "create", vm)
		s.MustNsnet("port", "create", vm+"-eth0", "--network", "lan", "--device", vm, "--fixed-ip", "ip-address="+ip)
	}
	s.MustNsnet("port", "set", "web-eth0", "--no-security-group", "--security-group", "locked")
	s.MustNsnet("published-port", "create", "--protocol", "tcp", "--host-port", "8080", "--port", "web-eth0", "--internal-port", "80")
	web := serveHTTP(t, s.Netns("web"), "0.0.0.0", "80")

	const published, direct = "http://198.51.100.32:8080/", "http://192.168.60.10:80/"
	if reaches(up.FarNS, published) {
		t.Error("far host → host:8080 reached web, whose group admits nothing")
	}
	if reaches(up.FarNS, direct) {
		t.Error("far host → web's fixed address, routed by the host, reached web, whose group admits nothing")
	}
	if d := s.drops("web"); d == nil || d["ingress_denied"].(float64) == 0 {
		t.Errorf("web's ingress drops not counted: %v", d)
	}

	// Admitting TCP 80 opens both ways in; web sees the real client.
	s.rule("locked", "--protocol", "tcp", "--dst-port", "80")
	for _, url := range []string{published, direct} {
		if src := web.fetch(t, up.FarNS, url); src != up.Far {
			t.Errorf("far host → %s reached web from %s, want %s", url, src, up.Far)
		}
	}

	// Hairpin: web and its neighbour reach web's published port through
	// the gateway and through the host's uplink address, masqueraded to
	// the gateway so that web answers through the host.
	for _, vm := range []string{"web", "peer"} {
		for _, url := range []string{"http://192.168.60.1:8080/", published} {
			if src := web.fetch(t, s.Netns(vm), url); src != "192.168.60.1" {
				t.Errorf("%s → %s reached web from %s, want the gateway 192.168.60.1 (hairpin)", vm, url, src)
			}
		}
	}

	if out := s.MustNsnet("explain", "instance", "web"); !strings.Contains(out, "type bridge_slave hairpin on") {
		t.Errorf("explain instance web does not put its tap in hairpin mode:\n%s", out)
	}

	// The network's services, in the qdhcp namespace, still answer ports
	// that admit nothing: metadata for web, whose route to it nsnet set,
	// and DHCP and DNS for an instance whose address DHCP gives.
	if out, err := s.In("web", "curl", "-sS", "--max-time", "5", "http://169.254.169.254/openstack/latest/meta_data.json"); err != nil || !strings.Contains(out, `"name": "web"`) {
		t.Errorf("web's metadata (%v):\n%s", err, out)
	}
	s.MustNsnet("instance", "create", "dyn")
	s.MustNsnet("port", "create", "dyn-eth0", "--network", "lan", "--device", "dyn", "--dhcp-client", "--security-group", "locked")
	udhcpc := startDHCPClient(t, s.Env, "dyn", "udhcpc", "-f", "-i", "eth0", "-s", "/etc/udhcpc/default.script")
	eventually(t, 15*time.Second, "dyn bound by udhcpc", func() error {
		if routes, _ := s.In("dyn", "ip", "-4", "route"); !strings.Contains(routes, "default via 192.168.60.1") {
			return fmt.Errorf("routes: %s\n%s", routes, udhcpc.output())
		}
		return nil
	})
	if out, err := s.In("dyn", "getent", "hosts", "web"); err != nil || !strings.HasPrefix(out, "192.168.60.10 ") {
		t.Errorf("getent hosts web in dyn (%v): %q", err, out)
	}

	// Egress: without egress rules web reaches neither the outside nor
	// the host, yet still answers the connections its ingress rule admits.
	var rules []struct {
		ID        string `json:"id"`
		Direction string `json:"direction"`
	}
	if err := json.Unmarshal([]byte(s.MustNsnet("security-group", "rule", "list", "--group", "locked", "-o", "json")), &rules); err != nil {
		t.Fatal(err)
	}
	for _, r := range rules {
		if r.Direction == "egress" {
			s.MustNsnet("security-group", "rule", "delete", r.ID)
		}
	}
	if reaches(s.Netns("web"), "http://"+up.Far+"/") {
		t.Error("web reached the far host without egress rules")
	}
	if s.ping("web", "192.168.60.1") {
		t.Error("web pinged its gateway, the host, without egress rules")
	}
	if d := s.drops("web"); d == nil || d["egress_denied"].(float64) == 0 {
		t.Errorf("web's egress drops not counted: %v", d)
	}
	if src := web.fetch(t, up.FarNS, published); src != up.Far {
		t.Errorf("without egress rules, far host → host:8080 reached web from %s, want %s", src, up.Far)
	}
	s.rule("locked", "--egress", "--protocol", "tcp", "--dst-port", "80", "--remote-ip", up.Far+"/32")
	if src := far.fetch(t, s.Netns("web"), "http://"+up.Far+"/"); src != "198.51.100.32" {
		t.Errorf("web → far host arrived from %s, want the host's address 198.51.100.32", src)
	}
	if s.ping("web", up.Far) {
		t.Error("web pinged the far host; its only egress rule is TCP 80")
	}
}
