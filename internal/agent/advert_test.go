package agent

import (
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/store"
)

// eui64 is the SLAAC address a host with mac configures in prefix (RFC
// 4291 appendix A), computed here independently of nsnet's API.
func eui64(prefix string, mac string) netip.Addr {
	hw, err := net.ParseMAC(mac)
	if err != nil {
		panic(err)
	}
	a := netip.MustParsePrefix(prefix).Masked().Addr().As16()
	copy(a[8:], []byte{hw[0] ^ 0x02, hw[1], hw[2], 0xff, 0xfe, hw[3], hw[4], hw[5]})
	return netip.AddrFrom16(a)
}

// globalAddrs6 lists the global IPv6 addresses of link in ns, with the
// flags ip shows after them ("dynamic", ...).
func (e *env) globalAddrs6(ns, link string) []string {
	e.t.Helper()
	var out []string
	for _, line := range strings.Split(e.ip("-n", ns, "-6", "-o", "addr", "show", "dev", link, "scope", "global"), "\n") {
		f := strings.Fields(line)
		for i := range f {
			if f[i] == "inet6" && i+1 < len(f) {
				out = append(out, strings.Join(append([]string{f[i+1]}, f[i+2:]...), " "))
			}
		}
	}
	return out
}

// rdisc6Fields reads rdisc6's report of one advertisement: "Key : value"
// lines, and the sender after "from".
func rdisc6Fields(out string) map[string]string {
	fields := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if from, ok := strings.CutPrefix(line, "from "); ok {
			fields["from"] = from
			continue
		}
		if k, v, ok := strings.Cut(line, ":"); ok {
			fields[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return fields
}

// rdisc6Of solicits an advertisement on eth0 of namespace ns with rdisc6,
// once the link-local address it sends from has passed duplicate address
// detection, and returns the fields of the answer and the whole of it.
func rdisc6Of(t *testing.T, e *env, ns string) (map[string]string, string) {
	t.Helper()
	var out []byte
	eventually(t, 20*time.Second, "rdisc6", func() (err error) {
		out, err = exec.Command("ip", "netns", "exec", ns, "rdisc6", "-1", "-r", "5", "eth0").CombinedOutput()
		if err != nil {
			return fmt.Errorf("%w\n%s", err, out)
		}
		return nil
	})
	return rdisc6Fields(string(out)), string(out)
}

// TestRouterAdvertisements: a router advertises each of its subnets' RA
// modes from its qr- port, and instances configure themselves from it as
// VMs would: with SLAAC and DHCPv6-stateless, the instance's own kernel
// makes exactly the EUI-64 address of the port's MAC (the one Neutron's
// API shows); with DHCPv6-stateful, nsnet sets the port's address and the
// advertisement only brings the default route (M flag). rdisc6 shows the
// flags, prefix and MTU. A converged host does not change, the router's
// removal withdraws its default route at once.
func TestRouterAdvertisements(t *testing.T) {
	if _, err := exec.LookPath("rdisc6"); err != nil {
		t.Skip("needs rdisc6 (Debian ndisc6)")
	}
	for _, tc := range []struct {
		mode           string
		managed, other string // rdisc6's "Yes"/"No"
		autoconf       bool
	}{
		{mode: "slaac", managed: "No", other: "No", autoconf: true},
		{mode: "dhcpv6-stateless", managed: "No", other: "Yes", autoconf: true},
		{mode: "dhcpv6-stateful", managed: "Yes", other: "No"},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			e := newEnv(t, 100*time.Millisecond)
			in := dualNetwork(110, "10.0.0.0/24", "10.0.0.1", "2001:db8:1::/64", "2001:db8:1::1", false, tc.mode, tc.mode)
			in.net.MTU = 1450
			r := router(200, nil, false)
			qr := in.port(201, "10.0.0.1", "2001:db8:1::1", model.DeviceOwnerRouterInterface, r.ID)
			const mac1, mac2 = "fa:16:3e:00:00:d3", "fa:16:3e:00:00:d4"
			addr1, addr2 := eui64(in.v6.CIDR, mac1), eui64(in.v6.CIDR, mac2)
			if !tc.autoconf {
				addr1, addr2 = netip.MustParseAddr("2001:db8:1::11"), netip.MustParseAddr("2001:db8:1::12")
			}
			vm1, vm2 := in.vm(211, "vm1", "10.0.0.11", addr1.String()), in.vm(212, "vm2", "10.0.0.12", addr2.String())
			p1, p2 := vm1[1].(model.Port), vm2[1].(model.Port)
			p1.MACAddress, p2.MACAddress = mac1, mac2
			recs := append(in.records(), r, qr, vm1[0], p1, vm2[0], p2)
			e.converge(e.put(recs...))
			e.wantStatus(store.Routers, r.ID, model.StatusActive)
			ns1 := e.ns("vm1")

			// The kernel of each instance configures itself. Both
			// addresses must be past duplicate address detection
			// before vm1 pings vm2's: a tentative address answers no
			// neighbour solicitation ("Address unreachable"), and on a
			// loaded machine vm2 may hear its advertisement later.
			want := addr1.String() + "/64"
			for _, vm := range []struct {
				ns   string
				addr netip.Addr
			}{{ns1, addr1}, {e.ns("vm2"), addr2}} {
				want := vm.addr.String() + "/64"
				eventually(t, 40*time.Second, vm.ns+"'s address", func() error {
					got := e.globalAddrs6(vm.ns, "eth0")
					if len(got) != 1 || !strings.HasPrefix(got[0], want+" ") {
						return fmt.Errorf("global addresses %q, want exactly %s", got, want)
					}
					if dynamic := strings.Contains(got[0], "dynamic"); dynamic != tc.autoconf {
						return fmt.Errorf("address %q: dynamic (from an RA) is %v, want %v", got[0], dynamic, tc.autoconf)
					}
					if strings.Contains(got[0], "tentative") {
						return fmt.Errorf("address %q: still tentative", got[0])
					}
					return nil
				})
			}
			qrLL := eui64("fe80::/64", qr.MACAddress)
			eventually(t, 40*time.Second, "vm1's default route", func() error {
				r := e.ip("-n", ns1, "-6", "route", "show", "default")
				if !strings.Contains(r, "via "+qrLL.String()+" dev eth0 proto ra") {
					return fmt.Errorf("default route %q, want via %s proto ra", r, qrLL)
				}
				return nil
			})
			got, raw := rdisc6Of(t, e, ns1)
			for k, v := range map[string]string{
				"Stateful address conf.":   tc.managed,
				"Stateful other conf.":     tc.other,
				"Router lifetime":          "300 (0x0000012c) seconds",
				"Prefix":                   "2001:db8:1::/64",
				"Autonomous address conf.": map[bool]string{true: "Yes", false: "No"}[tc.autoconf],
				"MTU":                      "1450 bytes (valid)",
				"from":                     qrLL.String(),
			} {
				if got[k] != v {
					t.Errorf("rdisc6 %s = %q, want %q:\n%s", k, got[k], v, raw)
				}
			}
			if err := ping6(ns1, addr2.String()); err != nil {
				t.Fatal(err)
			}
			if err := ping6(ns1, "2001:db8:1::1"); err != nil {
				t.Fatal(err)
			}

			// The host itself listens to no tenant's router: its bridge
			// carries the advertisements without configuring from them.
			if a := e.ip("-n", e.hostNetns, "-6", "addr", "show", "scope", "global"); a != "" {
				t.Fatalf("host namespace configured IPv6 addresses from a tenant's advertisement:\n%s", a)
			}
			if r := e.ip("-n", e.hostNetns, "-6", "route", "show", "default"); r != "" {
				t.Fatalf("host namespace took a default route from a tenant's advertisement:\n%s", r)
			}

			// A converged host does not change: the kernel's own
			// addresses are not nsnet's to remove.
			changes := e.agent.Health().Changes
			e.waitFullPasses(2)
			if got := e.agent.Health().Changes; got != changes {
				t.Fatalf("converged passes made %d changes", got-changes)
			}
			if got := e.globalAddrs6(ns1, "eth0"); len(got) != 1 {
				t.Fatalf("after converged passes: %q", got)
			}

			// A restarted agent changes nothing in the kernel, and a
			// stopped one withdraws nothing: the router still routes, so
			// the instance keeps its default route while no agent runs,
			// and the next agent advertises again at once.
			e.stop()
			if r := e.ip("-n", ns1, "-6", "route", "show", "default"); !strings.Contains(r, "via "+qrLL.String()+" dev eth0 proto ra") {
				t.Fatalf("default route with the agent stopped: %q", r)
			}
			e.start()
			e.converge(e.revision())
			if c := e.agent.Health().Changes; c != 0 {
				t.Fatalf("restart of a converged host made %d changes", c)
			}
			eventually(t, 20*time.Second, "vm1's default route after a restart", func() error {
				if r := e.ip("-n", ns1, "-6", "route", "show", "default"); !strings.Contains(r, "via "+qrLL.String()+" dev eth0 proto ra") {
					return fmt.Errorf("default route %q", r)
				}
				return nil
			})
			if got := e.globalAddrs6(ns1, "eth0"); len(got) != 1 || !strings.HasPrefix(got[0], want+" ") {
				t.Fatalf("after a restart: %q", got)
			}

			// Drift: the qr- veth deleted behind the agent's back comes
			// back, and the router advertises on the new link (rdisc6
			// solicits: only a server listening there answers).
			e.ip("-n", e.routerNS(r), "link", "del", model.RouterInterfaceName(qr.ID))
			e.waitFullPasses(2)
			e.wantStatus(store.Routers, r.ID, model.StatusActive)
			if got, raw := rdisc6Of(t, e, ns1); got["Prefix"] != "2001:db8:1::/64" {
				t.Fatalf("no advertisement after the qr- port came back:\n%s", raw)
			}

			// The router goes: its last advertisement withdraws the
			// default route.
			e.converge(e.del(qr, r))
			eventually(t, 20*time.Second, "default route withdrawn", func() error {
				if r := e.ip("-n", ns1, "-6", "route", "show", "default"); r != "" {
					return fmt.Errorf("default route %q survived the router", r)
				}
				return nil
			})
		})
	}
}
