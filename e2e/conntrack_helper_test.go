package e2e

import (
	"encoding/json"
	"net/netip"
	"testing"

	"github.com/nsnet/nsnet/internal/lab"
	"github.com/nsnet/nsnet/internal/model"
)

// TestRouterConntrackHelperFTP: a router's ftp conntrack helper, made with
// the CLI, lets an instance behind default SNAT use active FTP — the
// server is told the router's gateway address instead of the instance's
// private one, and its data connection comes back through the NAT and the
// instance's security group — and deleting it takes that away again.
func TestRouterConntrackHelperFTP(t *testing.T) {
	e := Start(t)
	up := buildSeed004(t, e)
	ftp, err := lab.ServeFTP(up.FarNS, up.Far+":21")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ftp.Close() })
	router := jsonOf(t, e.MustNsnet("router", "show", "r1", "-o", "json"))
	gatewayIP := router["external_gateway_info"].(map[string]any)["external_fixed_ips"].([]any)[0].(map[string]any)["ip_address"].(string)
	vm2 := netip.MustParseAddr(fixedIP(jsonOf(t, e.MustNsnet("port", "show", "vm2-eth0", "-o", "json"))))
	server := up.Far + ":21"

	lastPORT := func() netip.Addr {
		seen := ftp.Ports()
		if len(seen) == 0 {
			t.Fatal("the FTP server got no PORT command")
		}
		return seen[len(seen)-1].Addr()
	}
	// A client retries: one lost SYN on a busy machine must not read as a
	// helper that does not work.
	transfer := func() (string, error) {
		var got string
		var err error
		for range 3 {
			if got, err = lab.ActiveFTP(e.Netns("vm2"), vm2, server); err == nil {
				break
			}
		}
		return got, err
	}

	if _, err := lab.ActiveFTP(e.Netns("vm2"), vm2, server); err == nil {
		t.Fatal("active FTP through SNAT worked without a conntrack helper")
	}
	if got := lastPORT(); got != vm2 {
		t.Fatalf("without a helper the server was told %s, want the private %s", got, vm2)
	}

	// The router's helper opens the data connection through the NAT; the
	// instance's security group is a firewall of its own, in the host
	// namespace, whose conntrack has no helper: there the data connection
	// is new, and it must admit it, as an FTP server's clients' groups
	// must in Neutron.
	e.MustNsnet("security-group", "rule", "create", "default", "--protocol", "tcp", "--dst-port", "1024:65535", "--remote-ip", up.Far+"/32")

	var cth model.ConntrackHelper
	out := e.MustNsnet("router", "conntrack-helper", "create", "r1", "--helper", "ftp", "--protocol", "tcp", "--port", "21", "-o", "json")
	if err := json.Unmarshal([]byte(out), &cth); err != nil || cth.Helper != "ftp" || cth.Port != 21 {
		t.Fatalf("create: %v %s", err, out)
	}
	if got, err := transfer(); err != nil || got != "listing" {
		t.Fatalf("active FTP with the ftp helper: %q, %v", got, err)
	}
	if got := lastPORT(); got.String() != gatewayIP {
		t.Fatalf("with the helper the server was told %s, want the gateway %s", got, gatewayIP)
	}

	e.MustNsnet("router", "conntrack-helper", "delete", "r1", cth.ID)
	if _, err := lab.ActiveFTP(e.Netns("vm2"), vm2, server); err == nil {
		t.Fatal("active FTP through SNAT still worked after the helper was deleted")
	}
	if got := lastPORT(); got != vm2 {
		t.Fatalf("after deleting the helper the server was told %s, want the private %s", got, vm2)
	}
}
