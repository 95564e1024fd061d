package e2e

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestRouterTopologyAndCLI applies the router example, checks what the
// nsnet CLI shows of it, changes it with the CLI, and destroys it.
func TestRouterTopologyAndCLI(t *testing.T) {
	e := Start(t)
	const file = "../examples/router-floating-ip.yaml"
	e.MustNsnet("apply", "-f", file)
	if out := e.MustNsnet("apply", "-f", file); strings.Contains(out, "created") || strings.Contains(out, "updated") {
		t.Errorf("second apply changed something:\n%s", out)
	}

	var r struct {
		ID      string `json:"id"`
		Gateway struct {
			NetworkID string `json:"network_id"`
			SNAT      bool   `json:"enable_snat"`
			IPs       []struct {
				IP string `json:"ip_address"`
			} `json:"external_fixed_ips"`
		} `json:"external_gateway_info"`
	}
	if err := json.Unmarshal([]byte(e.MustNsnet("router", "show", "r1", "-o", "json")), &r); err != nil {
		t.Fatal(err)
	}
	if !r.Gateway.SNAT || len(r.Gateway.IPs) != 1 || r.Gateway.IPs[0].IP != "198.51.100.2" {
		t.Errorf("router r1 gateway: %+v", r.Gateway)
	}
	if out := e.MustNsnet("floating", "ip", "list"); !strings.Contains(out, "198.51.100.10") || !strings.Contains(out, "10.0.0.11") {
		t.Errorf("floating ip list:\n%s", out)
	}
	if out := e.MustNsnet("floating", "ip", "port", "forwarding", "list", "198.51.100.11"); !strings.Contains(out, "8080") || !strings.Contains(out, "10.0.0.12") {
		t.Errorf("port forwarding list:\n%s", out)
	}

	// The CLI changes it the OpenStack CLI's way.
	e.MustNsnet("router", "set", "r1", "--route", "destination=192.168.50.0/24,gateway=10.0.0.254")
	e.MustNsnet("floating", "ip", "unset", "198.51.100.10", "--port")
	e.MustNsnet("floating", "ip", "set", "198.51.100.10", "--port", "vm1-eth0")
	if out, err := e.Nsnet("router", "remove", "subnet", "r1", "private-v4"); err == nil || !strings.Contains(out, "floating IPs") {
		t.Errorf("removing the subnet floating IPs need: err=%v\n%s", err, out)
	}
	// The file leaves routes alone; destroy clears them before it detaches.
	if out := e.MustNsnet("apply", "-f", file); strings.Contains(out, "routes") {
		t.Errorf("apply should leave routes the file does not manage:\n%s", out)
	}

	e.MustNsnet("destroy", "-f", file)
	if out := e.MustNsnet("router", "list"); strings.Contains(out, "r1") {
		t.Errorf("router survived destroy:\n%s", out)
	}
}
