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

// TestListsShowNames: tables name what an id stands for — a router's
// gateway network, a floating IP's network and port, a subnet's network —
// list instances with their addresses, and show a router's interfaces.
func TestListsShowNames(t *testing.T) {
	e := Start(t)
	e.MustNsnet("apply", "-f", "../examples/router-floating-ip.yaml")
	public := jsonOf(t, e.MustNsnet("network", "show", "public", "-o", "json"))["id"].(string)
	private := jsonOf(t, e.MustNsnet("network", "show", "private", "-o", "json"))["id"].(string)
	vm1Port := jsonOf(t, e.MustNsnet("port", "show", "vm1-eth0", "-o", "json"))["id"].(string)
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"router", "list"}, []string{"public (" + public[:8] + "): 198.51.100.2, snat"}},
		{[]string{"floating", "ip", "list"}, []string{"vm1-eth0 (" + vm1Port[:8] + ")", "public (" + public[:8] + ")"}},
		{[]string{"subnet", "list"}, []string{"private (" + private[:8] + ")", "public (" + public[:8] + ")"}},
		{[]string{"instance", "list"}, []string{"ADDRESSES", "10.0.0.11", "10.0.0.12"}},
		{[]string{"router", "show", "r1"}, []string{"interface='qg-", "ips='198.51.100.2 in public-v4", "interface='qr-", "ips='10.0.0.1 in private-v4", "network='private (" + private[:8] + ")'"}},
	} {
		out := e.MustNsnet(tc.args...)
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("nsnet %s lacks %q:\n%s", strings.Join(tc.args, " "), w, out)
			}
		}
	}
	// JSON stays the API's objects.
	if strings.Contains(e.MustNsnet("router", "show", "r1", "-o", "json"), `"interfaces"`) {
		t.Error("router show -o json has interfaces, which the API's router does not")
	}
}
