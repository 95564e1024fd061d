package e2e

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/netns"
)

// portAddrs returns a port's fixed IPs as the API shows them: IPv4 and
// IPv6 addresses.
func portAddrs(t *testing.T, e *Env, port string) (v4, v6 string) {
	t.Helper()
	var p model.Port
	decodeJSON(t, e.MustNsnet("port", "show", port, "-o", "json"), &p)
	for _, ip := range p.FixedIPs {
		if a := netip.MustParseAddr(ip.IPAddress); a.Is4() {
			v4 = ip.IPAddress
		} else {
			v6 = ip.IPAddress
		}
	}
	if v4 == "" || v6 == "" {
		t.Fatalf("port %s: fixed IPs %+v, want one of each family", port, p.FixedIPs)
	}
	return v4, v6
}

// globalAddr6 waits until the instance's eth0 has exactly one global
// IPv6 address and returns ip's line for it.
func globalAddr6(t *testing.T, e *Env, vm, want string) string {
	t.Helper()
	var line string
	eventually(t, 40*time.Second, vm+"'s IPv6 address", func() error {
		out, _ := e.In(vm, "ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "global")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 1 || !strings.Contains(lines[0], " "+want+"/") {
			return fmt.Errorf("global IPv6 addresses of %s:\n%s\nwant exactly %s", vm, out, want)
		}
		line = lines[0]
		return nil
	})
	return line
}

// rdisc6Of runs rdisc6 in vm once its link-local address can send, and
// returns its report as "Key: value" fields.
func rdisc6Of(t *testing.T, e *Env, vm string) (map[string]string, string) {
	t.Helper()
	var out string
	eventually(t, 20*time.Second, "rdisc6 in "+vm, func() (err error) {
		out, err = e.In(vm, "rdisc6", "-1", "-r", "5", "eth0")
		if err != nil {
			return fmt.Errorf("%w\n%s", err, out)
		}
		return nil
	})
	fields := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if from, ok := strings.CutPrefix(line, "from "); ok {
			fields["from"] = from
		} else if k, v, ok := strings.Cut(line, ":"); ok {
			fields[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return fields, out
}

// serveWho listens on TCP port in namespace ns, IPv4 and IPv6, and
// answers every connection with the address it came from.
func serveWho(t *testing.T, ns string, port int) {
	t.Helper()
	for _, l := range [][2]string{{"tcp4", fmt.Sprintf("0.0.0.0:%d", port)}, {"tcp6", fmt.Sprintf("[::]:%d", port)}} {
		var ln net.Listener
		if err := netns.DoNamed(ns, func() (err error) {
			ln, err = net.Listen(l[0], l[1])
			return err
		}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				fmt.Fprintf(c, "%s\n", c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap())
				c.Close()
			}
		}()
	}
}

// whoFrom connects from ns to addr:port and returns the source the server
// saw. As a client on a busy machine would, it tries again, for up to ten
// seconds and at least three times: a router whose neighbour resolution
// fails meanwhile answers "no route to host" to every SYN queued behind it
// for 3 s (the agent tests' mustArriveFrom saw three quick tries fail so).
func whoFrom(t *testing.T, ns, addr string, port int) string {
	t.Helper()
	var got string
	var err error
	deadline := time.Now().Add(10 * time.Second)
	for try := 1; ; try++ {
		err = netns.DoNamed(ns, func() error {
			c, err := net.DialTimeout("tcp", net.JoinHostPort(addr, fmt.Sprint(port)), 2*time.Second)
			if err != nil {
				return err
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(2 * time.Second))
			got, err = bufio.NewReader(c).ReadString('\n')
			return err
		})
		if err == nil {
			return strings.TrimSpace(got)
		}
		if try >= 3 && time.Now().After(deadline) {
			t.Fatalf("tcp from %s to %s port %d, %d tries in 10s: %v", ns, addr, port, try, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// TestDualStackClients is examples/dual-stack.yaml judged by real clients:
// on the SLAAC subnet each instance's kernel configures exactly the
// address the API shows (its EUI-64), rdisc6 sees the router's
// advertisement (prefix, flags, MTU, lifetime, and a DNS server given
// to the subnet afterwards, RDNSS), ping -6 crosses the
// network; the instance reaches a dual-stack upstream over IPv4, SNATed
// to the router's gateway address, and over IPv6, routed with its own
// address. Then a dhcpv6-stateful subnet on the same router: dhclient -6
// gets exactly the port's address and the DHCP port as DNS server.
func TestDualStackClients(t *testing.T) {
	for _, tool := range []string{"rdisc6", "dhclient"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s", tool)
		}
	}
	e := Start(t)
	e.MustNsnet("apply", "-f", "../examples/dual-stack.yaml")
	_, vm1v6 := portAddrs(t, e, "vm1-eth0")
	_, vm2v6 := portAddrs(t, e, "vm2-eth0")
	if line := globalAddr6(t, e, "vm1", vm1v6); !strings.Contains(line, "dynamic") {
		t.Errorf("vm1's address is not the kernel's own (SLAAC):\n%s", line)
	}
	globalAddr6(t, e, "vm2", vm2v6)

	ra, raw := rdisc6Of(t, e, "vm1")
	for k, v := range map[string]string{
		"Stateful address conf.":   "No",
		"Stateful other conf.":     "No",
		"Prefix":                   "2001:db8:10::/64",
		"Autonomous address conf.": "Yes",
		"MTU":                      "1500 bytes (valid)",
		"Router lifetime":          "300 (0x0000012c) seconds",
	} {
		if ra[k] != v {
			t.Errorf("rdisc6 %s = %q, want %q\n%s", k, ra[k], v, raw)
		}
	}
	// A DNS server given to the subnet is advertised (RDNSS) at once,
	// by the running server.
	e.MustNsnet("subnet", "set", "private-v6", "--dns-nameserver", "2001:db8:10::53")
	eventually(t, 20*time.Second, "RDNSS advertised", func() error {
		if ra, raw := rdisc6Of(t, e, "vm1"); ra["Recursive DNS server"] != "2001:db8:10::53" {
			return fmt.Errorf("rdisc6:\n%s", raw)
		}
		return nil
	})
	if out, err := e.In("vm1", "ping", "-6", "-c1", "-W2", vm2v6); err != nil {
		// One more try: a busy machine loses an echo now and then.
		if out, err = e.In("vm1", "ping", "-6", "-c1", "-W2", vm2v6); err != nil {
			t.Fatalf("ping -6 vm1 → vm2: %v\n%s", err, out)
		}
	}

	// A dual-stack upstream: the admin routes the tenant's prefix to
	// the router's gateway address, since IPv6 is not translated.
	var public model.Network
	decodeJSON(t, e.MustNsnet("network", "show", "public", "-o", "json"), &public)
	up := buildUpstream(t, e, public.ID, "198.51.100.1/24")
	for _, c := range [][]string{
		{"-n", up.GatewayNS, "addr", "add", "2001:db8:ff::1/64", "dev", "eth0", "nodad"},
		{"-n", up.GatewayNS, "addr", "add", "2001:db8:f0::fe/64", "dev", "eth1", "nodad"},
		{"-n", up.GatewayNS, "route", "add", "2001:db8:10::/64", "via", "2001:db8:ff::2"},
		{"-n", up.FarNS, "addr", "add", "2001:db8:f0::1/64", "dev", "eth0", "nodad"},
		{"-n", up.FarNS, "route", "add", "::/0", "via", "2001:db8:f0::fe"},
		{"netns", "exec", up.GatewayNS, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"},
	} {
		run(t, "ip", c...)
	}
	serveWho(t, up.FarNS, 7)
	if got := whoFrom(t, e.Netns("vm1"), "2001:db8:f0::1", 7); got != vm1v6 {
		t.Errorf("upstream saw vm1's IPv6 connection from %s, want its own address %s", got, vm1v6)
	}
	if got := whoFrom(t, e.Netns("vm1"), up.Far, 7); got != "198.51.100.2" {
		t.Errorf("upstream saw vm1's IPv4 connection from %s, want the router's gateway address", got)
	}

	// DHCPv6, stateful: the client gets exactly the port's address.
	e.MustNsnet("subnet", "create", "private-v6-dhcp", "--network", "private", "--subnet-range", "2001:db8:20::/64",
		"--ipv6-ra-mode", "dhcpv6-stateful", "--ipv6-address-mode", "dhcpv6-stateful")
	e.MustNsnet("router", "add", "subnet", "r1", "private-v6-dhcp")
	e.MustNsnet("instance", "create", "vm3")
	// Without port security: which IPv6 packets security groups let
	// through is the firewall's (its own tests); this is DHCPv6's.
	e.MustNsnet("port", "create", "vm3-eth0", "--network", "private", "--device", "vm3", "--dhcp-client",
		"--fixed-ip", "subnet=private-v6-dhcp", "--disable-port-security", "--no-security-group")
	var vm3 model.Port
	decodeJSON(t, e.MustNsnet("port", "show", "vm3-eth0", "-o", "json"), &vm3)
	var want string
	for _, ip := range vm3.FixedIPs {
		if strings.HasPrefix(ip.IPAddress, "2001:db8:20:") {
			want = ip.IPAddress
		}
	}
	if want == "" {
		t.Fatalf("vm3-eth0 has no address on the DHCPv6 subnet: %+v", vm3.FixedIPs)
	}
	eventually(t, 20*time.Second, "vm3's link-local address", func() error {
		out, _ := e.In("vm3", "ip", "-6", "addr", "show", "dev", "eth0", "scope", "link")
		if !strings.Contains(out, "inet6 fe80::") || strings.Contains(out, "tentative") {
			return fmt.Errorf("not ready:\n%s", out)
		}
		return nil
	})
	dir := t.TempDir()
	client := startDHCPClient(t, e, "vm3", "dhclient", "-6", "-d", "-v", "-sf", "/sbin/dhclient-script",
		"-pf", filepath.Join(dir, "vm3.pid"), "-lf", filepath.Join(dir, "vm3.leases"), "eth0")
	eventually(t, 40*time.Second, "vm3 bound by dhclient -6", func() error {
		out, _ := e.In("vm3", "ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "global")
		if !strings.Contains(out, " "+want+"/") {
			return fmt.Errorf("vm3 eth0:\n%s\n%s", out, client.output())
		}
		return nil
	})
	leases, _ := os.ReadFile(filepath.Join(dir, "vm3.leases"))
	if !strings.Contains(string(leases), "iaaddr "+want+" {") || !strings.Contains(string(leases), "option dhcp6.name-servers 2001:db8:20:") {
		t.Errorf("dhclient's lease, want %s and a DNS server on the subnet:\n%s", want, leases)
	}
}
