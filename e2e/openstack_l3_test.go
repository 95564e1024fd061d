package e2e

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestOpenStackCLIRouters drives routers, floating IPs and port forwardings
// with Debian's OpenStack CLI against the real daemon, and checks the
// objects it shows. (The traffic through them is proved by the NAT tests.)
func TestOpenStackCLIRouters(t *testing.T) {
	if _, err := exec.LookPath("openstack"); err != nil {
		t.Fatal("the OpenStack CLI is missing: scripts/test.sh installs python3-openstackclient")
	}
	e := Start(t, WithTCP())
	must := func(args ...string) string {
		t.Helper()
		out, err := e.openstack(args...)
		if err != nil {
			t.Fatalf("openstack %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}

	public := e.openstackJSON("network", "create", "public", "--external")["id"]
	must("subnet", "create", "public-v4", "--network", "public", "--subnet-range", "198.51.100.0/24",
		"--gateway", "198.51.100.1", "--no-dhcp")
	must("network", "create", "private")
	privSubnet := e.openstackJSON("subnet", "create", "private-v4", "--network", "private",
		"--subnet-range", "10.30.0.0/24", "--no-dhcp")["id"]

	r := e.openstackJSON("router", "create", "r1")
	if r["admin_state_up"] != true || r["external_gateway_info"] != nil {
		t.Errorf("router create: %v", r)
	}
	must("router", "set", "r1", "--external-gateway", "public")
	must("router", "add", "subnet", "r1", "private-v4")
	r = e.openstackJSON("router", "show", "r1")
	gw, _ := r["external_gateway_info"].(map[string]any)
	if gw == nil || gw["network_id"] != public || gw["enable_snat"] != true {
		t.Errorf("router show after set --external-gateway: %v", r["external_gateway_info"])
	}
	if out := must("port", "list", "--router", "r1", "-f", "value", "-c", "Fixed IP Addresses"); !strings.Contains(out, "10.30.0.1") ||
		!strings.Contains(out, "198.51.100.") {
		t.Errorf("router ports should hold 10.30.0.1 and a public address:\n%s", out)
	}

	vm1, vm2 := instanceID(t, e, "vm1"), instanceID(t, e, "vm2")
	p1 := e.openstackJSON("port", "create", "p1", "--network", "private", "--device", vm1)
	p2 := e.openstackJSON("port", "create", "p2", "--network", "private", "--device", vm2)

	fip := e.openstackJSON("floating", "ip", "create", "public")
	addr, _ := fip["floating_ip_address"].(string)
	if !strings.HasPrefix(addr, "198.51.100.") || fip["status"] != "DOWN" || fip["port_id"] != nil {
		t.Errorf("floating ip create: %v", fip)
	}
	must("floating", "ip", "set", "--port", "p1", addr)
	fip = e.openstackJSON("floating", "ip", "show", addr)
	if fip["port_id"] != p1["id"] || fip["fixed_ip_address"] != fixedIP(p1) || fip["router_id"] != r["id"] {
		t.Errorf("floating ip after set --port: %v", fip)
	}

	fwd := e.openstackJSON("floating", "ip", "create", "public")["floating_ip_address"].(string)
	pf := e.openstackJSON("floating", "ip", "port", "forwarding", "create", fwd,
		"--internal-ip-address", fixedIP(p2), "--port", "p2",
		"--internal-protocol-port", "80", "--external-protocol-port", "8080", "--protocol", "tcp")
	if pf["internal_ip_address"] != fixedIP(p2) || pf["protocol"] != "tcp" {
		t.Errorf("port forwarding create: %v", pf)
	}
	if out := must("floating", "ip", "port", "forwarding", "list", fwd); !strings.Contains(out, "8080") {
		t.Errorf("port forwarding list:\n%s", out)
	}

	// Neutron's refusals, as the CLI shows them.
	if out, err := e.openstack("router", "delete", "r1"); err == nil || !strings.Contains(out, "still has ports") {
		t.Errorf("deleting a router with interfaces: err=%v\n%s", err, out)
	}
	if out, err := e.openstack("router", "remove", "subnet", "r1", "private-v4"); err == nil || !strings.Contains(out, "required by one or more floating IPs") {
		t.Errorf("removing an interface floating IPs need: err=%v\n%s", err, out)
	}
	if out, err := e.openstack("floating", "ip", "create", "private"); err == nil || !strings.Contains(out, "not a valid external network") {
		t.Errorf("floating IP on an internal network: err=%v\n%s", err, out)
	}

	// The agent programs routers: the router, its ports and the floating
	// IP become ACTIVE once the kernel has them.
	for _, what := range [][]string{{"router", "show", "r1"}, {"floating", "ip", "show", addr}} {
		eventually(t, 15*time.Second, strings.Join(what, " ")+" becomes ACTIVE", func() error {
			if s := e.openstackJSON(what...)["status"]; s != "ACTIVE" {
				return fmt.Errorf("status %v", s)
			}
			return nil
		})
	}
	eventually(t, 15*time.Second, "router ports become ACTIVE", func() error {
		out, err := e.openstack("port", "list", "--router", "r1", "-f", "value", "-c", "Status")
		if err != nil || strings.TrimSpace(strings.ReplaceAll(out, "ACTIVE", "")) != "" {
			return fmt.Errorf("statuses %q (%v)", out, err)
		}
		return nil
	})

	// A floating IP with port forwardings is in use (409), as in Neutron:
	// the forwarding goes first.
	if out, err := e.openstack("floating", "ip", "delete", fwd); err == nil || !strings.Contains(out, "in use by Port Forwarding") {
		t.Errorf("deleting a floating IP with a port forwarding: err=%v\n%s", err, out)
	}
	for _, args := range [][]string{
		{"floating", "ip", "port", "forwarding", "delete", fwd, pf["id"].(string)},
		{"floating", "ip", "delete", addr, fwd},
		{"router", "remove", "subnet", "r1", fmt.Sprint(privSubnet)},
		{"router", "delete", "r1"},
		{"port", "delete", "p1", "p2"},
		{"network", "delete", "private", "public"},
	} {
		must(args...)
	}
	e.MustNsnet("instance", "delete", "vm1", "vm2")
}
