package api_test

import (
	"net"
	"testing"
)

// TestPortMACRegenerate: mac_address null on an update gives the port a
// new valid MAC (port-mac-address-regenerate), on a create the generated
// one; an update without mac_address keeps it.
func TestPortMACRegenerate(t *testing.T) {
	h := newHarness(t)
	net1 := h.create("networks", "network", map[string]any{"name": "n"})["id"]
	port := h.create("ports", "port", map[string]any{"network_id": net1, "mac_address": nil})
	id, first := port["id"].(string), port["mac_address"].(string)
	seen := map[string]bool{first: true}
	for range 3 {
		r := h.do("PUT", "/v2.0/ports/"+id, map[string]any{"port": map[string]any{"mac_address": nil}})
		mac, _ := r.body["port"].(map[string]any)["mac_address"].(string)
		if hw, err := net.ParseMAC(mac); r.status != 200 || err != nil || hw[0]&1 != 0 || seen[mac] {
			t.Fatalf("regenerate: %d %q (seen %v)", r.status, mac, seen)
		}
		seen[mac] = true
		r = h.do("PUT", "/v2.0/ports/"+id, map[string]any{"port": map[string]any{"name": "renamed"}})
		if got := r.body["port"].(map[string]any)["mac_address"]; got != mac {
			t.Fatalf("an update without mac_address changed it: %v, want %s", got, mac)
		}
	}
}
