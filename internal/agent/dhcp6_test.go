package agent

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/store"
)

// syncBuffer collects a client's output while it runs.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startClient runs argv in namespace ns until the test ends, and returns
// its output so far on demand.
func (e *env) startClient(ns string, argv ...string) func() string {
	e.t.Helper()
	out := &syncBuffer{}
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns}, argv...)...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		e.t.Fatalf("start %s in %s: %v", argv[0], ns, err)
	}
	// Registered after the env's cleanup, so it runs first: the client
	// would keep the instance's namespace alive.
	e.t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return out.String
}

// TestDHCPv6Clients: the network's qdhcp namespace serves DHCPv6 to real
// clients (Debian's dhclient -6), as Neutron's dnsmasq does. On a
// dhcpv6-stateful subnet the client gets exactly the port's address (by
// its MAC: the client's DUID is its own) and nsnet's DNS server, which
// answers over IPv6; on a dhcpv6-stateless subnet the instance's kernel
// makes its EUI-64 address from the router's advertisement and dhclient
// -S gets the DNS server alone.
func TestDHCPv6Clients(t *testing.T) {
	if _, err := exec.LookPath("dhclient"); err != nil {
		t.Skip("needs dhclient (Debian isc-dhcp-client)")
	}
	for _, tc := range []struct {
		mode      string
		stateless bool
	}{
		{mode: "dhcpv6-stateful"},
		{mode: "dhcpv6-stateless", stateless: true},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			e := newEnv(t, 100*time.Millisecond)
			in := dualNetwork(110, "10.0.0.0/24", "10.0.0.1", "2001:db8:1::/64", "2001:db8:1::1", false, tc.mode, tc.mode)
			r := router(200, nil, false)
			qr := in.port(201, "10.0.0.1", "2001:db8:1::1", model.DeviceOwnerRouterInterface, r.ID)
			dhcpPort := in.port(202, "10.0.0.2", "2001:db8:1::2", model.DeviceOwnerDHCP, "dhcp-"+in.net.ID)
			const mac = "fa:16:3e:00:00:d3"
			addr := "2001:db8:1::11"
			if tc.stateless {
				addr = eui64(in.v6.CIDR, mac).String()
			}
			vm := in.vm(211, "vm1", "10.0.0.11", addr)
			port := vm[1].(model.Port)
			port.MACAddress = mac
			// Stateful: the instance asks DHCP for its addresses.
			port.DHCPClient = !tc.stateless
			e.converge(e.put(append(in.records(), r, qr, dhcpPort, vm[0], port)...))
			e.wantStatus(store.Ports, dhcpPort.ID, model.StatusActive)
			e.wantStatus(store.Routers, r.ID, model.StatusActive)
			ns := e.ns("vm1")

			// dhclient binds to the link-local address, as a VM's boot
			// starts it once the link is configured.
			eventually(t, 20*time.Second, "vm1's link-local address", func() error {
				ll := e.ip("-n", ns, "-6", "addr", "show", "dev", "eth0", "scope", "link")
				if !strings.Contains(ll, "inet6 fe80::") || strings.Contains(ll, "tentative") {
					return fmt.Errorf("not ready:\n%s", ll)
				}
				return nil
			})
			dir := t.TempDir()
			argv := []string{"dhclient", "-6", "-d", "-v", "-sf", "/sbin/dhclient-script",
				"-pf", filepath.Join(dir, "pid"), "-lf", filepath.Join(dir, "leases"), "eth0"}
			if tc.stateless {
				// Information only. Debian's dhclient-script ignores
				// its answer (it has no INFORM6 case): a script that
				// records what the client received stands in.
				script := filepath.Join(dir, "record")
				if err := os.WriteFile(script, []byte("#!/bin/sh\nenv > \"$0.$reason\"\n"), 0o755); err != nil {
					t.Fatal(err)
				}
				argv = []string{"dhclient", "-6", "-S", "-d", "-v", "-sf", script,
					"-pf", filepath.Join(dir, "pid"), "-lf", filepath.Join(dir, "leases"), "eth0"}
			}
			output := e.startClient(ns, argv...)
			eventually(t, 40*time.Second, "vm1's address", func() error {
				got := e.globalAddrs6(ns, "eth0")
				if len(got) != 1 || !strings.HasPrefix(got[0], addr+"/") {
					return fmt.Errorf("global addresses %q, want exactly %s\n%s", got, addr, output())
				}
				return nil
			})
			eventually(t, 40*time.Second, "the DNS options", func() error {
				if tc.stateless {
					// Whatever the reason the client ran the script with
					// (dhclient 4.4 says RENEW6 for information).
					runs, err := filepath.Glob(filepath.Join(dir, "record.*"))
					var env []byte
					for _, r := range runs {
						b, _ := os.ReadFile(r)
						env = append(env, b...)
					}
					if err != nil || !strings.Contains(string(env), "new_dhcp6_name_servers=2001:db8:1::2\n") ||
						!strings.Contains(string(env), "new_dhcp6_domain_search=nsnet.internal.\n") {
						return fmt.Errorf("information received (%v):\n%s\n%s", err, env, output())
					}
					return nil
				}
				// dhclient-script writes them into the instance's
				// resolv.conf (its own, under /etc/netns).
				resolv, err := exec.Command("ip", "netns", "exec", ns, "cat", "/etc/resolv.conf").CombinedOutput()
				if err != nil || !strings.Contains(string(resolv), "nameserver 2001:db8:1::2") || !strings.Contains(string(resolv), "search nsnet.internal") {
					return fmt.Errorf("resolv.conf (%v):\n%s\n%s", err, resolv, output())
				}
				return nil
			})
			// The router's advertisement brings the default route and the
			// on-link prefix.
			eventually(t, 40*time.Second, "vm1's default route", func() error {
				if r := e.ip("-n", ns, "-6", "route", "show", "default"); !strings.Contains(r, "proto ra") {
					return fmt.Errorf("default route %q, want one from an advertisement", r)
				}
				return nil
			})
			if !tc.stateless {
				leases, _ := os.ReadFile(filepath.Join(dir, "leases"))
				for _, want := range []string{"iaaddr " + addr + " {", "option dhcp6.name-servers 2001:db8:1::2;", `option dhcp6.domain-search "nsnet.internal.";`} {
					if !strings.Contains(string(leases), want) {
						t.Errorf("lease lacks %s:\n%s", want, leases)
					}
				}
			}
			// nsnet's DNS server answers on the address DHCPv6 named.
			out, err := exec.Command("ip", "netns", "exec", ns, "dig", "+short", "+tries=3", "+time=2", "@2001:db8:1::2", "vm1.nsnet.internal", "A").CombinedOutput()
			if err != nil || strings.TrimSpace(string(out)) != "10.0.0.11" {
				t.Fatalf("dig @2001:db8:1::2 vm1.nsnet.internal: %v\n%s", err, out)
			}
			// And it names vm1's IPv6 address too (AAAA and ip6.arpa).
			out, err = exec.Command("ip", "netns", "exec", ns, "dig", "+short", "+tries=3", "+time=2", "@2001:db8:1::2", "vm1.nsnet.internal", "AAAA").CombinedOutput()
			if err != nil || strings.TrimSpace(string(out)) != addr {
				t.Fatalf("dig AAAA vm1.nsnet.internal: %v\n%s, want %s", err, out, addr)
			}
			out, err = exec.Command("ip", "netns", "exec", ns, "dig", "+short", "+tries=3", "+time=2", "@2001:db8:1::2", "-x", addr).CombinedOutput()
			if err != nil || strings.TrimSpace(string(out)) != "vm1.nsnet.internal." {
				t.Fatalf("dig -x %s: %v\n%s", addr, err, out)
			}

			changes := e.agent.Health().Changes
			e.waitFullPasses(2)
			if got := e.agent.Health().Changes; got != changes {
				t.Fatalf("converged passes made %d changes", got-changes)
			}

			// The IPv6 subnet goes (its addresses first, as the API
			// removes them): the DHCPv6 server with it, DHCPv4 stays.
			qdhcp := model.DHCPNetns(e.prefix, in.net.ID)
			listening := func() string {
				out, err := exec.Command("ip", "netns", "exec", qdhcp, "ss", "-Hnul").CombinedOutput()
				if err != nil {
					t.Fatalf("ss in %s: %v\n%s", qdhcp, err, out)
				}
				return string(out)
			}
			if l := listening(); !strings.Contains(l, ":547 ") || !strings.Contains(l, ":67 ") {
				t.Fatalf("DHCP servers before:\n%s", l)
			}
			dhcpPort.FixedIPs, port.FixedIPs, qr.FixedIPs = dhcpPort.FixedIPs[:1], port.FixedIPs[:1], qr.FixedIPs[:1]
			net4 := in.net
			net4.Subnets = net4.Subnets[:1]
			e.put(dhcpPort, port, qr, net4)
			e.converge(e.del(in.v6))
			if l := listening(); strings.Contains(l, ":547 ") || !strings.Contains(l, ":67 ") {
				t.Fatalf("DHCP servers after the IPv6 subnet went:\n%s", l)
			}
		})
	}
}
