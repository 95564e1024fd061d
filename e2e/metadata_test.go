package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMetadata: curl inside instances reaches http://169.254.169.254/ and
// gets its own instance's data only. Two networks behind one router (the
// router's nft table redirects to the daemon's listener in the qrouter
// namespace, seed 003's REDIRECT --to-ports 9697), and a network with no
// router (the qdhcp namespace answers, through the host route DHCP pushes
// to a dhclient, and nsnet installs for a static port). An address nsnet
// does not know, and odd paths, get 404.
func TestMetadata(t *testing.T) {
	e := Start(t)
	dir := t.TempDir()
	userData := filepath.Join(dir, "user-data")
	os.WriteFile(userData, []byte("#cloud-config\nhostname: web\n"), 0o644)
	key := filepath.Join(dir, "id.pub")
	os.WriteFile(key, []byte("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample test@nsnet\n"), 0o644)

	e.MustNsnet("network", "create", "public", "--external")
	e.MustNsnet("subnet", "create", "public-v4", "--network", "public", "--subnet-range", "198.51.100.0/24",
		"--gateway", "198.51.100.1", "--no-dhcp")
	e.MustNsnet("router", "create", "r1", "--external-gateway", "public")
	for _, n := range []string{"a", "b"} {
		e.MustNsnet("network", "create", "net-"+n)
		e.MustNsnet("subnet", "create", "net-"+n+"-v4", "--network", "net-"+n, "--subnet-range", "10.5"+map[string]string{"a": "0", "b": "1"}[n]+".0.0/24")
		e.MustNsnet("router", "add", "subnet", "r1", "net-"+n+"-v4")
	}
	e.MustNsnet("instance", "create", "a1", "--user-data", userData, "--property", "role=web", "--ssh-key", key)
	e.MustNsnet("instance", "create", "a2")
	e.MustNsnet("instance", "create", "b1")
	for vm, net := range map[string]string{"a1": "net-a", "a2": "net-a", "b1": "net-b"} {
		e.MustNsnet("port", "create", vm+"-eth0", "--network", net, "--device", vm)
	}
	fip := jsonOf(t, e.MustNsnet("floating", "ip", "create", "public", "--port", "a1-eth0", "-o", "json"))["floating_ip_address"].(string)

	get := func(vm string, args ...string) (string, error) {
		return e.In(vm, append([]string{"curl", "-s", "-S", "--max-time", "5", "-w", "\n%{http_code}"}, args...)...)
	}
	body := func(vm, path string) (string, string) {
		t.Helper()
		out, err := get(vm, "http://169.254.169.254"+path)
		if err != nil {
			t.Fatalf("curl %s in %s: %v\n%s", path, vm, err, out)
		}
		i := strings.LastIndex(out, "\n")
		return out[:i], out[i+1:]
	}
	for _, vm := range []string{"a1", "a2", "b1"} {
		inst := jsonOf(t, e.MustNsnet("instance", "show", vm, "-o", "json"))
		port := jsonOf(t, e.MustNsnet("port", "show", vm+"-eth0", "-o", "json"))
		raw, code := body(vm, "/openstack/latest/meta_data.json")
		var meta map[string]any
		if err := json.Unmarshal([]byte(raw), &meta); err != nil || code != "200" {
			t.Fatalf("%s meta_data.json: %s %v\n%s", vm, code, err, raw)
		}
		if meta["uuid"] != inst["id"] || meta["name"] != vm || meta["hostname"] != vm+".nsnet.internal" || meta["availability_zone"] != "nsnet" {
			t.Errorf("%s got meta_data.json of someone else:\n%s", vm, raw)
		}
		if ip, code := body(vm, "/latest/meta-data/local-ipv4"); ip != fixedIP(port) || code != "200" {
			t.Errorf("%s local-ipv4 %s (%s), want %s", vm, ip, code, fixedIP(port))
		}
		network, _ := body(vm, "/openstack/latest/network_data.json")
		if !strings.Contains(network, `"ip_address": "`+fixedIP(port)+`"`) || !strings.Contains(network, port["mac_address"].(string)) {
			t.Errorf("%s network_data.json:\n%s", vm, network)
		}
	}
	if ud, code := body("a1", "/openstack/latest/user_data"); code != "200" || ud != "#cloud-config\nhostname: web\n" {
		t.Errorf("a1 user_data %s: %q", code, ud)
	}
	if _, code := body("a2", "/openstack/latest/user_data"); code != "404" {
		t.Errorf("a2 has no user data, got %s", code)
	}
	if pub, _ := body("a1", "/latest/meta-data/public-ipv4"); pub != fip {
		t.Errorf("a1 public-ipv4 %q, want its floating IP %s", pub, fip)
	}
	if pub, _ := body("a2", "/latest/meta-data/public-ipv4"); pub != "" {
		t.Errorf("a2 public-ipv4 %q, want none", pub)
	}
	if raw, _ := body("a1", "/openstack/latest/meta_data.json"); !strings.Contains(raw, `"role": "web"`) || !strings.Contains(raw, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample") {
		t.Errorf("a1 meta_data.json lacks its meta and key:\n%s", raw)
	}
	// Odd paths answer 404, never data.
	for _, path := range []string{"/openstack/latest/meta_data.json/../../latest/meta-data/instance-id", "/openstack/latest/secret", "/latest/meta-data/public-keys/7/openssh-key"} {
		out, _ := get("a1", "--path-as-is", "http://169.254.169.254"+path)
		if !strings.HasSuffix(out, "\n404") {
			t.Errorf("GET %s: %q, want 404", path, out)
		}
	}

	// An address nsnet does not know, on a known network: 404. (Port
	// security would drop it as spoofed before it reached the service.)
	e.MustNsnet("port", "set", "a2-eth0", "--no-security-group", "--disable-port-security")
	if out, err := e.In("a2", "ip", "addr", "add", "10.50.0.99/24", "dev", "eth0"); err != nil {
		t.Fatalf("add a rogue address: %v %s", err, out)
	}
	if out, _ := get("a2", "--interface", "10.50.0.99", "http://169.254.169.254/openstack/latest/meta_data.json"); !strings.HasSuffix(out, "\n404") {
		t.Errorf("unknown source address got %q, want 404", out)
	}

	// The router does it with a redirect in its metadata chain.
	router := jsonOf(t, e.MustNsnet("router", "show", "r1", "-o", "json"))
	rules, _ := runOut("ip", "netns", "exec", e.Prefix+"qrouter-"+router["id"].(string), "nft", "list", "chain", "inet", "nsnet", "metadata")
	if !strings.Contains(rules, `iifname "qr-*"`) || !strings.Contains(rules, "169.254.169.254") || !strings.Contains(rules, "redirect to :9697") {
		t.Errorf("router metadata chain:\n%s", rules)
	}

	// A network without a router: the qdhcp namespace answers, reached
	// through the host route DHCP gives dhclient.
	e.MustNsnet("network", "create", "isolated")
	e.MustNsnet("subnet", "create", "isolated-v4", "--network", "isolated", "--subnet-range", "10.52.0.0/24")
	e.MustNsnet("instance", "create", "c1")
	e.MustNsnet("port", "create", "c1-eth0", "--network", "isolated", "--device", "c1", "--dhcp-client")
	startDHCPClient(t, e, "c1", "dhclient", "-d", "-v", "-sf", "/sbin/dhclient-script",
		"-pf", filepath.Join(dir, "c1.pid"), "-lf", filepath.Join(dir, "c1.leases"), "eth0")
	eventually(t, 15*time.Second, "c1 routes to the metadata service through the DHCP port", func() error {
		routes, _ := e.In("c1", "ip", "-4", "route")
		if !strings.Contains(routes, "169.254.169.254 via 10.52.0.254") {
			return fmt.Errorf("routes:\n%s", routes)
		}
		return nil
	})
	c1 := jsonOf(t, e.MustNsnet("instance", "show", "c1", "-o", "json"))
	if id, code := body("c1", "/latest/meta-data/instance-id"); code != "200" || id != "i-"+strings.ReplaceAll(c1["id"].(string), "-", "")[:8] {
		t.Errorf("c1 instance-id %s %q", code, id)
	}
	if raw, _ := body("c1", "/openstack/latest/meta_data.json"); !strings.Contains(raw, c1["id"].(string)) {
		t.Errorf("c1 meta_data.json through the qdhcp namespace:\n%s", raw)
	}
	// A statically configured neighbour gets the same route from nsnet.
	e.MustNsnet("instance", "create", "c2")
	e.MustNsnet("port", "create", "c2-eth0", "--network", "isolated", "--device", "c2")
	if name, code := body("c2", "/latest/meta-data/hostname"); code != "200" || name != "c2.nsnet.internal" {
		t.Errorf("c2 hostname %s %q", code, name)
	}
}
