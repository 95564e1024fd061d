package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nsnet/nsnet/internal/model"
)

// TestMetadataIPv6 walks IPv6 beyond one network, as a user would:
//
//   - front (dual-stack, SLAAC) and back (IPv6 only, dhcpv6-stateless) on
//     one router; iso (dual-stack, no router) served by its DHCP port;
//   - each instance asks http://[fe80::a9fe:a9fe%eth0]/ (Neutron's metadata
//     over IPv6 since Victoria) and gets its own meta_data.json: from the
//     router's qr- on front and back, from the qdhcp namespace on iso;
//   - vm1 on front pings vm2 on back across the router (ping -6);
//   - vm2 runs `dhclient -6 -S` (stateless: its kernel made the address
//     from the advertisement, DHCPv6 gives the DNS server);
//   - a restart changes nothing, and the instances still get their
//     metadata from the new daemon;
//   - iso losing its IPv6 subnet takes the metadata address off its DHCP
//     port.
func TestMetadataIPv6(t *testing.T) {
	if _, err := exec.LookPath("dhclient"); err != nil {
		t.Skip("needs dhclient")
	}
	e := Start(t)
	e.MustNsnet("router", "create", "r1")
	e.MustNsnet("network", "create", "front")
	e.MustNsnet("subnet", "create", "front-v4", "--network", "front", "--subnet-range", "10.60.0.0/24")
	e.MustNsnet("subnet", "create", "front-v6", "--network", "front", "--subnet-range", "2001:db8:60::/64",
		"--ipv6-ra-mode", "slaac", "--ipv6-address-mode", "slaac")
	e.MustNsnet("network", "create", "back")
	e.MustNsnet("subnet", "create", "back-v6", "--network", "back", "--subnet-range", "2001:db8:61::/64",
		"--ipv6-ra-mode", "dhcpv6-stateless", "--ipv6-address-mode", "dhcpv6-stateless")
	for _, sn := range []string{"front-v4", "front-v6", "back-v6"} {
		e.MustNsnet("router", "add", "subnet", "r1", sn)
	}
	e.MustNsnet("network", "create", "iso")
	e.MustNsnet("subnet", "create", "iso-v4", "--network", "iso", "--subnet-range", "10.62.0.0/24")
	e.MustNsnet("subnet", "create", "iso-v6", "--network", "iso", "--subnet-range", "2001:db8:62::/64")
	for vm, network := range map[string]string{"vm1": "front", "vm2": "back", "vm3": "iso"} {
		e.MustNsnet("instance", "create", vm)
		e.MustNsnet("port", "create", vm+"-eth0", "--network", network, "--device", vm)
	}

	// Where the address is: one qr- of r1 per network behind it, and
	// iso's DHCP port.
	var r1 model.Router
	decodeJSON(t, e.MustNsnet("router", "show", "r1", "-o", "json"), &r1)
	qrouter := model.RouterNetns(e.Prefix, r1.ID)
	if n := strings.Count(addrs6(t, qrouter), "inet6 fe80::a9fe:a9fe/64 scope link nodad"); n != 2 {
		t.Errorf("r1 carries fe80::a9fe:a9fe on %d interfaces, want 2 (front's and back's qr-):\n%s", n, addrs6(t, qrouter))
	}
	var iso model.Network
	decodeJSON(t, e.MustNsnet("network", "show", "iso", "-o", "json"), &iso)
	qdhcp := model.DHCPNetns(e.Prefix, iso.ID)
	if !strings.Contains(addrs6(t, qdhcp), "inet6 fe80::a9fe:a9fe/64 scope link nodad") {
		t.Errorf("iso's DHCP port lacks fe80::a9fe:a9fe:\n%s", addrs6(t, qdhcp))
	}

	// Each instance gets its own metadata over IPv6, from its link-local
	// address (ready once its DAD is done: curl retries meanwhile).
	metadataOwn := func() {
		t.Helper()
		for _, vm := range []string{"vm1", "vm2", "vm3"} {
			var inst model.Instance
			decodeJSON(t, e.MustNsnet("instance", "show", vm, "-o", "json"), &inst)
			eventually(t, 30*time.Second, vm+" gets its meta_data.json over IPv6", func() error {
				out, err := e.In(vm, "curl", "-g", "-s", "-S", "--max-time", "5", "-w", "\n%{http_code}",
					"http://[fe80::a9fe:a9fe%eth0]/openstack/latest/meta_data.json")
				if err != nil {
					return fmt.Errorf("curl: %v\n%s", err, out)
				}
				var meta struct {
					UUID string `json:"uuid"`
					Name string `json:"name"`
				}
				i := strings.LastIndex(out, "\n")
				if code := out[i+1:]; code != "200" {
					return fmt.Errorf("status %s:\n%s", code, out)
				}
				decodeJSON(t, out[:i], &meta)
				if meta.UUID != inst.ID || meta.Name != vm {
					t.Fatalf("%s got someone else's metadata: %+v, want %s", vm, meta, inst.ID)
				}
				return nil
			})
		}
	}
	metadataOwn()

	// IPv6 across the router, between the two networks.
	_, vm1v6 := portAddrs(t, e, "vm1-eth0")
	var vm2 model.Port // IPv6 only
	decodeJSON(t, e.MustNsnet("port", "show", "vm2-eth0", "-o", "json"), &vm2)
	if len(vm2.FixedIPs) != 1 {
		t.Fatalf("vm2-eth0: fixed IPs %+v, want its SLAAC address", vm2.FixedIPs)
	}
	vm2v6 := vm2.FixedIPs[0].IPAddress
	globalAddr6(t, e, "vm1", vm1v6)
	globalAddr6(t, e, "vm2", vm2v6)
	eventually(t, 20*time.Second, "ping -6 vm1 → vm2 across r1", func() error {
		if out, err := e.In("vm1", "ping", "-6", "-c1", "-W2", vm2v6); err != nil {
			return fmt.Errorf("%v\n%s", err, out)
		}
		return nil
	})

	// dhcpv6-stateless: the address is the kernel's (SLAAC), the DNS
	// server comes from DHCPv6 — the DHCP port's address on back-v6.
	var back model.Network
	decodeJSON(t, e.MustNsnet("network", "show", "back", "-o", "json"), &back)
	raw, _ := json.Marshal(e.MustAPI("GET", "/v2.0/ports?device_owner="+model.DeviceOwnerDHCP+"&network_id="+back.ID, nil))
	var list struct {
		Ports []model.Port `json:"ports"`
	}
	decodeJSON(t, string(raw), &list)
	dhcpPorts := list.Ports
	if len(dhcpPorts) != 1 || len(dhcpPorts[0].FixedIPs) != 1 {
		t.Fatalf("back's DHCP port: %+v", dhcpPorts)
	}
	dns := dhcpPorts[0].FixedIPs[0].IPAddress
	dir := t.TempDir()
	// Information only: Debian's dhclient-script ignores the answer (it
	// has no case for it), so a script that records what the client
	// received stands in for it.
	script := filepath.Join(dir, "record")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nenv > \"$0.$reason\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	client := startDHCPClient(t, e, "vm2", "dhclient", "-6", "-S", "-d", "-v", "-sf", script,
		"-pf", filepath.Join(dir, "vm2.pid"), "-lf", filepath.Join(dir, "vm2.leases"), "eth0")
	eventually(t, 40*time.Second, "dhclient -6 -S in vm2 has its DNS server", func() error {
		runs, _ := filepath.Glob(filepath.Join(dir, "record.*"))
		var env []byte
		for _, r := range runs {
			b, _ := os.ReadFile(r)
			env = append(env, b...)
		}
		if !strings.Contains(string(env), "new_dhcp6_name_servers="+dns+"\n") {
			return fmt.Errorf("information received, want name server %s:\n%s\n%s", dns, env, client.output())
		}
		if strings.Contains(string(env), "new_ip6_address=") {
			t.Errorf("a stateless client was given an address:\n%s", env)
		}
		return nil
	})
	globalAddr6(t, e, "vm2", vm2v6) // still exactly the SLAAC one

	// A restart: nothing in the kernel changes, the metadata listeners
	// come back on the addresses already there.
	before := snapshotKernel(t, e.Prefix)
	e.Restart()
	if health := e.waitFirstFullPass(); health["changes"] != 0.0 {
		t.Errorf("the restarted agent changed %v objects, want none", health["changes"])
	}
	if diff := before.diff(snapshotKernel(t, e.Prefix)); diff != "" {
		t.Errorf("after the restart the kernel differs:\n%s", diff)
	}
	metadataOwn()

	// iso loses its IPv6 (its one port there first): the address goes.
	e.MustNsnet("port", "delete", "vm3-eth0")
	e.MustNsnet("subnet", "delete", "iso-v6")
	eventually(t, 15*time.Second, "fe80::a9fe:a9fe gone from iso's DHCP port", func() error {
		if out := addrs6(t, qdhcp); strings.Contains(out, "fe80::a9fe:a9fe") {
			return fmt.Errorf("still there:\n%s", out)
		}
		return nil
	})
	if n := strings.Count(addrs6(t, qrouter), "fe80::a9fe:a9fe"); n != 2 {
		t.Errorf("r1 carries fe80::a9fe:a9fe on %d interfaces after iso's change, want 2", n)
	}
}

// addrs6 is `ip -6 addr` in namespace ns.
func addrs6(t *testing.T, ns string) string {
	t.Helper()
	out, err := runOut("ip", "-n", ns, "-6", "addr", "show")
	if err != nil {
		t.Fatalf("ip -n %s -6 addr: %v\n%s", ns, err, out)
	}
	return out
}
