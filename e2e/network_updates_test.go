package e2e

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/nsnet/nsnet/internal/model"
)

// TestNetworkUpdatesReachKernel follows Neutron's writable network and
// port attributes down to the kernel: a network answers ACTIVE in its
// create response (its bridge is made before the answer, though the
// client did not ask to wait), an MTU update reaches the bridge and both
// ends of a port's veth (one above the physical network's is refused with
// Neutron's message), and a port whose MAC is regenerated (mac_address
// null) carries the new MAC in its instance.
func TestNetworkUpdatesReachKernel(t *testing.T) {
	e := Start(t)

	// No X-Nsnet-Wait: a client like tempest's, checking the status of the
	// create response.
	raw, _ := json.Marshal(map[string]any{"network": map[string]any{"name": "net"}})
	resp, err := e.unixClient().Post("http://nsnet/v2.0/networks", "application/json", bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	var created struct {
		Network struct {
			ID     string `json:"id"`
			Status string `json:"status"`
			MTU    int    `json:"mtu"`
		} `json:"network"`
	}
	err = json.NewDecoder(resp.Body).Decode(&created)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("create network: %d %v", resp.StatusCode, err)
	}
	net := created.Network
	bridge := model.BridgeName(net.ID)
	// The create waited for the agent (bounded): converged, the bridge
	// exists and the network is ACTIVE; an agent too slow for the bound
	// leaves it BUILD, which is then the truth.
	switch converged := resp.Header.Get("X-Nsnet-Converged"); {
	case converged == "true" && net.Status == model.StatusActive:
		if out, err := runOut("ip", "-n", e.HostNetns, "link", "show", bridge); err != nil || !strings.Contains(out, "mtu 1500") {
			t.Fatalf("bridge %s after the create answered ACTIVE: %v\n%s", bridge, err, out)
		}
	case converged == "false" && net.Status == model.StatusBuild:
		t.Logf("the agent did not make the bridge within the create's wait; it answered BUILD")
	default:
		t.Errorf("create response: status %s, X-Nsnet-Converged %q; want ACTIVE once converged", net.Status, converged)
	}
	if net.MTU != 1500 {
		t.Errorf("create response: mtu %d, want the physical network's 1500", net.MTU)
	}

	e.MustAPI("POST", "/v2.0/subnets", map[string]any{"subnet": map[string]any{"network_id": net.ID, "cidr": "10.61.0.0/24"}})
	vm := e.MustAPI("POST", "/v2.0/instances", map[string]any{"instance": map[string]any{"name": "vm1"}})["instance"].(map[string]any)["id"]
	port := e.MustAPI("POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": net.ID, "device_id": vm}})["port"].(map[string]any)
	portID, oldMAC := port["id"].(string), port["mac_address"].(string)

	links := func() map[string]string {
		out := map[string]string{}
		for name, argv := range map[string][]string{
			"bridge":   {"ip", "-n", e.HostNetns, "link", "show", bridge},
			"tap":      {"ip", "-n", e.HostNetns, "link", "show", model.TapName(portID)},
			"vm1 eth0": {"ip", "-n", e.Netns("vm1"), "link", "show", "eth0"},
		} {
			got, err := runOut(argv[0], argv[1:]...)
			if err != nil {
				t.Fatalf("%s: %v\n%s", name, err, got)
			}
			out[name] = got
		}
		return out
	}

	e.MustAPI("PUT", "/v2.0/networks/"+net.ID, map[string]any{"network": map[string]any{"mtu": 1400}})
	for name, link := range links() {
		if !strings.Contains(link, "mtu 1400 ") {
			t.Errorf("%s after the network's MTU became 1400:\n%s", name, link)
		}
	}

	status, body := e.API("PUT", "/v2.0/networks/"+net.ID, map[string]any{"network": map[string]any{"mtu": 1501}})
	if msg := errorOf(body); status != http.StatusBadRequest || msg.Type != "InvalidInput" ||
		msg.Message != "Invalid input for operation: Requested MTU is too big, maximum is 1500." {
		t.Errorf("mtu 1501: %d %+v, want 400 InvalidInput", status, msg)
	}

	updated := e.MustAPI("PUT", "/v2.0/ports/"+portID, map[string]any{"port": map[string]any{"mac_address": nil}})["port"].(map[string]any)
	newMAC, _ := updated["mac_address"].(string)
	if newMAC == "" || newMAC == oldMAC {
		t.Fatalf("regenerated MAC %q, old %q", newMAC, oldMAC)
	}
	if link := links()["vm1 eth0"]; !strings.Contains(link, "link/ether "+newMAC+" ") {
		t.Errorf("vm1 eth0 after its port's MAC was regenerated to %s:\n%s", newMAC, link)
	}
}

// neutronError is the body of an error answer.
type neutronError struct {
	Type    string `json:"type"`
	Message string `json:"message"`
}

// errorOf decodes the NeutronError of an answer's body.
func errorOf(body map[string]any) neutronError {
	var wrapped struct {
		NeutronError neutronError `json:"NeutronError"`
	}
	raw, _ := json.Marshal(body)
	_ = json.Unmarshal(raw, &wrapped)
	return wrapped.NeutronError
}
