package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestExtraDHCPOptions: a port's extra_dhcp_opts reach a real DHCP client
// (busybox's udhcpc) from nsnet's own DHCP server, under the names Neutron
// gives dnsmasq: server-ip-address as the next server (siaddr),
// tftp-server and bootfile-name as options 66 and 67 (and in the header's
// sname and file), an option by its code, an option replacing the
// network's (MTU), a blank router (no default route). An update reaches the
// client at its next lease.
func TestExtraDHCPOptions(t *testing.T) {
	e := Start(t)
	network := jsonOf(t, e.MustNsnet("network", "create", "lab", "--mtu", "1400", "-o", "json"))
	e.MustNsnet("subnet", "create", "lab-v4", "--network", "lab", "--subnet-range", "10.43.0.0/24")
	inst := jsonOf(t, e.MustNsnet("instance", "create", "vm1", "-o", "json"))
	opt := func(name, value string) map[string]any { return map[string]any{"opt_name": name, "opt_value": value} }
	port := e.MustAPI("POST", "/v2.0/ports", map[string]any{"port": map[string]any{
		"network_id": network["id"], "device_id": inst["id"], "nsnet:dhcp_client": true,
		"extra_dhcp_opts": []any{
			opt("server-ip-address", "10.43.0.200"),
			opt("tftp-server", "10.43.0.200"),
			opt("bootfile-name", "pxelinux.0"),
			opt("150", "10.43.0.201"),
			opt("mtu", "1300"),
			opt("router", ""),
			opt("test_option_1", "test_value_1"), // dnsmasq knows no such option: not sent
			map[string]any{"opt_name": "bootfile-name", "opt_value": "ipv6.efi", "ip_version": 6},
		},
	}})["port"].(map[string]any)

	// The client's script writes what udhcpc hands it, once bound.
	dir := t.TempDir()
	script := filepath.Join(dir, "script")
	envFile := filepath.Join(dir, "bound.env")
	if err := os.WriteFile(script, []byte("#!/bin/sh\ncase \"$1\" in bound|renew) env > "+envFile+".tmp && mv "+envFile+".tmp "+envFile+" ;; esac\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	first := startDHCPClient(t, e, "vm1", "udhcpc", "-f", "-i", "eth0", "-s", script, "-t", "20", "-T", "1")
	lease := func(want ...string) map[string]string {
		t.Helper()
		var env map[string]string
		eventually(t, 20*time.Second, "udhcpc bound with "+strings.Join(want, ", "), func() error {
			b, err := os.ReadFile(envFile)
			if err != nil {
				return err
			}
			env = map[string]string{}
			for _, line := range strings.Split(string(b), "\n") {
				if k, v, ok := strings.Cut(line, "="); ok {
					env[k] = v
				}
			}
			for _, w := range want {
				if k, v, _ := strings.Cut(w, "="); env[k] != v {
					return fmt.Errorf("%s=%q, want %q", k, env[k], v)
				}
			}
			return nil
		})
		return env
	}
	env := lease("ip="+fixedIP(port), "siaddr=10.43.0.200", "tftp=10.43.0.200", "bootfile=pxelinux.0",
		"boot_file=pxelinux.0", "sname=10.43.0.200", "opt150=0a2b00c9", "mtu=1300")
	if r, ok := env["router"]; ok {
		t.Errorf("a blank router option still sent a router: %q", r)
	}
	for k, v := range env {
		if strings.Contains(v, "test_value_1") || strings.Contains(v, "ipv6.efi") {
			t.Errorf("%s=%q: an option dnsmasq would not send, or an IPv6 one, reached the DHCPv4 client", k, v)
		}
	}

	// An update (Neutron merges by name: null removes) is served at the
	// next renewal: restart the client to ask at once.
	e.MustAPI("PUT", "/v2.0/ports/"+port["id"].(string), map[string]any{"port": map[string]any{"extra_dhcp_opts": []any{
		map[string]any{"opt_name": "router", "opt_value": nil},
		opt("bootfile-name", "grub.efi"),
	}}})
	first.stop()
	os.Remove(envFile)
	startDHCPClient(t, e, "vm1", "udhcpc", "-f", "-i", "eth0", "-s", script, "-t", "20", "-T", "1")
	lease("bootfile=grub.efi", "router=10.43.0.1", "siaddr=10.43.0.200")
}
