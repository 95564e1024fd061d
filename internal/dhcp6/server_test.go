package dhcp6

import (
	"bufio"
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	vnetns "github.com/vishvananda/netns"

	"github.com/nsnet/nsnet/internal/lab"
	"github.com/nsnet/nsnet/internal/netns"

	"github.com/nsnet/nsnet/internal/pmap"
)

// allPrefix starts every namespace of this test binary.
var allPrefix = fmt.Sprintf("nsd6%d-", os.Getpid())

var testSeq atomic.Int32

func TestMain(m *testing.M) {
	code := m.Run()
	if os.Geteuid() == 0 {
		if left := lab.RemoveNamespaces(allPrefix); len(left) > 0 {
			fmt.Println("dhcp6: namespaces left behind:", left)
			code = 1
		}
	}
	os.Exit(code)
}

// testLink is a test's two namespaces joined by a veth: the qdhcp-like
// server's end (srvIf in srv) and the instance-like client's (cliIf in
// cli).
type testLink struct {
	t            *testing.T
	prefix       string
	srv, cli     string
	srvIf, cliIf string
	cliMAC       net.HardwareAddr
	srvNS        vnetns.NsHandle
}

func newLink(t *testing.T) *testLink {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces)")
	}
	for _, tool := range []string{"ip", "dhclient"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (scripts/deps.sh installs it)", tool)
		}
	}
	n := testSeq.Add(1)
	l := &testLink{t: t, prefix: fmt.Sprintf("%s%d-", allPrefix, n)}
	l.srv, l.cli = l.prefix+"srv", l.prefix+"cli"
	// Interface names unique on the machine, not only in their namespace.
	l.srvIf, l.cliIf = fmt.Sprintf("d6%dr%d", os.Getpid()%100000, n), fmt.Sprintf("d6%dc%d", os.Getpid()%100000, n)
	t.Cleanup(l.cleanup)
	for _, ns := range []string{l.srv, l.cli} {
		if err := netns.Create(ns); err != nil {
			t.Fatal(err)
		}
	}
	l.run("ip", "-n", l.srv, "link", "add", l.srvIf, "type", "veth", "peer", "name", l.cliIf, "netns", l.cli)
	l.run("ip", "-n", l.srv, "link", "set", l.srvIf, "up")
	l.run("ip", "-n", l.cli, "link", "set", l.cliIf, "up")
	out := strings.Fields(l.run("ip", "-n", l.cli, "-o", "link", "show", l.cliIf))
	for i, f := range out {
		if f == "link/ether" && i+1 < len(out) {
			l.cliMAC, _ = net.ParseMAC(out[i+1])
		}
	}
	if l.cliMAC == nil {
		t.Fatalf("no MAC for %s in %q", l.cliIf, out)
	}
	ns, err := netns.Open(l.srv)
	if err != nil {
		t.Fatal(err)
	}
	l.srvNS = ns
	// A client binds its link-local address, which duplicate address
	// detection keeps tentative for a moment after the link comes up.
	for _, side := range [][2]string{{l.srv, l.srvIf}, {l.cli, l.cliIf}} {
		eventually(t, "link-local address on "+side[1], func() error {
			a := l.run("ip", "-n", side[0], "-6", "-o", "addr", "show", "dev", side[1], "scope", "link")
			if !strings.Contains(a, "fe80::") || strings.Contains(a, "tentative") {
				return fmt.Errorf("not ready: %q", a)
			}
			return nil
		})
	}
	return l
}

func (l *testLink) run(args ...string) string {
	l.t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		l.t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (l *testLink) cleanup() {
	if l.srvNS != 0 {
		l.srvNS.Close()
	}
	for _, ns := range []string{l.srv, l.cli} {
		if netns.Exists(ns) {
			if err := netns.Delete(ns); err != nil {
				l.t.Errorf("cleanup: %v", err)
			}
		}
	}
	if left := lab.Namespaces(l.prefix); len(left) > 0 {
		l.t.Errorf("namespaces survived cleanup: %v", left)
	}
}

// eventually retries check as a client would, for up to a minute.
func eventually(t *testing.T, what string, check func() error) {
	t.Helper()
	var err error
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if err = check(); err == nil {
			return
		}
	}
	t.Fatalf("%s: %v", what, err)
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func testLog(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// dhclient runs isc-dhcp-client's dhclient -6 in the client namespace,
// its every file in a temporary directory, with a script that records the
// environment of each call (what dhclient received) instead of
// configuring anything. It is killed when the test ends.
type dhclient struct {
	dir string
	cmd *exec.Cmd
	out lab.SyncBuffer
}

func (l *testLink) startDHClient(t *testing.T, extra ...string) *dhclient {
	t.Helper()
	c := &dhclient{dir: t.TempDir()}
	script := filepath.Join(c.dir, "script")
	// One file per call (dhclient calls it once per address of a
	// reply), written whole before it appears.
	env := filepath.Join(c.dir, "env")
	body := fmt.Sprintf("#!/bin/sh\nenv > %q.$$.tmp && mv %q.$$.tmp %q.\"$reason\".$$\n", env, env, env)
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(c.dir, "dhclient.conf")
	if err := os.WriteFile(conf, []byte("request dhcp6.name-servers, dhcp6.domain-search;\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"netns", "exec", l.cli, "dhclient", "-6", "-d", "-v", "-1",
		"-cf", conf, "-lf", filepath.Join(c.dir, "leases"), "-pf", filepath.Join(c.dir, "pid"), "-sf", script}
	args = append(append(args, extra...), l.cliIf)
	// ip netns exec execs dhclient in its own process: killing it kills
	// dhclient.
	c.cmd = exec.Command("ip", args...)
	c.cmd.Stdout, c.cmd.Stderr = &c.out, &c.out
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("start dhclient: %v", err)
	}
	t.Cleanup(func() {
		c.cmd.Process.Kill()
		c.cmd.Wait()
		if t.Failed() {
			files, _ := filepath.Glob(filepath.Join(c.dir, "*"))
			t.Logf("dhclient (files %v):\n%s", files, c.output())
		}
	})
	return c
}

func (c *dhclient) output() string { return c.out.String() }

// calls returns the environments dhclient ran its script with for one of
// reasons so far: what it received.
func (c *dhclient) calls(reasons ...string) []map[string]string {
	var out []map[string]string
	for _, r := range reasons {
		files, _ := filepath.Glob(filepath.Join(c.dir, "env."+r+".*"))
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil || strings.HasSuffix(f, ".tmp") {
				continue
			}
			env := map[string]string{}
			sc := bufio.NewScanner(bytes.NewReader(b))
			for sc.Scan() {
				if k, v, ok := strings.Cut(sc.Text(), "="); ok {
					env[k] = strings.Trim(v, "'")
				}
			}
			out = append(out, env)
		}
	}
	return out
}

// waitCalls waits until dhclient ran its script for one of reasons and
// returns those calls.
func (c *dhclient) waitCalls(t *testing.T, reasons ...string) []map[string]string {
	t.Helper()
	var calls []map[string]string
	eventually(t, "dhclient "+strings.Join(reasons, " or "), func() error {
		if calls = c.calls(reasons...); len(calls) == 0 {
			return fmt.Errorf("no call yet")
		}
		return nil
	})
	return calls
}

// uniquePrefix is a documentation prefix of the test's own.
func uniquePrefix(n int32) netip.Prefix {
	return netip.MustParsePrefix(fmt.Sprintf("2001:db8:%x:%x::/64", time.Now().UnixNano()&0xffff, n))
}

// hostAddr is the address with host part n in p.
func hostAddr(p netip.Prefix, n byte) netip.Addr {
	b := p.Masked().Addr().As16()
	b[15] = n
	return netip.AddrFrom16(b)
}

// TestDHClientStateful: dhclient -6 gets exactly the port's address, with
// the lease time, the subnet's DNS server and the network's domain.
func TestDHClientStateful(t *testing.T) {
	l := newLink(t)
	p := uniquePrefix(testSeq.Load())
	addr, dns := hostAddr(p, 0x42), hostAddr(p, 0x53)
	srv, err := Listen(l.srvNS, l.srvIf, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	var counters Counters
	srv.CountInto(&counters)
	srv.SetConfig(&Config{
		LeaseTime: time.Hour,
		Subnets:   []Subnet{{Prefix: p, DNS: []netip.Addr{dns}}},
		Domain:    "nsnet.test.",
		Hosts: pmap.From(map[string]Host{
			l.cliMAC.String(): {Addrs: []netip.Addr{addr}},
			// Another port: its address must not be handed out.
			"fa:16:3e:00:00:99": {Addrs: []netip.Addr{addr.Next()}},
		}),
	})
	c := l.startDHClient(t)
	bound := c.waitCalls(t, "BOUND6")
	want := map[string]string{
		"new_ip6_address":         addr.String(),
		"new_dhcp6_name_servers":  dns.String(),
		"new_dhcp6_domain_search": "nsnet.test.",
		"new_max_life":            "3600",
		"new_preferred_life":      "3600",
		"interface":               l.cliIf,
	}
	// Exactly the port's address: one call, for it.
	if len(bound) != 1 {
		t.Fatalf("dhclient bound %d addresses, want 1: %v", len(bound), bound)
	}
	for k, v := range want {
		if got := bound[0][k]; got != v {
			t.Errorf("dhclient %s = %q, want %q", k, got, v)
		}
	}
	if bound[0]["new_dhcp6_server_id"] == "" {
		t.Errorf("no server identifier in dhclient's environment: %v", bound[0])
	}
	// Bound: the server sent an ADVERTISE and a REPLY at least, counted
	// once sent (the counter may trail the client by a moment).
	for start := time.Now(); ; time.Sleep(10 * time.Millisecond) {
		got := counters.Replies()
		if got["ADVERTISE"] >= 1 && got["REPLY"] >= 1 && len(got) == 2 {
			break
		}
		if time.Since(start) > 5*time.Second {
			t.Fatalf("counted replies %v, want ADVERTISE and REPLY", got)
		}
	}
}

// TestDHClientStateless: dhclient -6 -S gets the DNS servers and domain,
// and no address, from any host on the link.
func TestDHClientStateless(t *testing.T) {
	l := newLink(t)
	p := uniquePrefix(testSeq.Load())
	dns := hostAddr(p, 0x53)
	srv, err := Listen(l.srvNS, l.srvIf, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	srv.SetConfig(&Config{
		Subnets: []Subnet{{Prefix: p, DNS: []netip.Addr{dns}}},
		Domain:  "nsnet.test",
	})
	c := l.startDHClient(t, "-S")
	// dhclient 4.4 runs its script with RENEW6 for an answered
	// Information-request (its manual page says INFORM6).
	for _, env := range c.waitCalls(t, "RENEW6", "INFORM6") {
		if got := env["new_dhcp6_name_servers"]; got != dns.String() {
			t.Errorf("dhclient DNS servers %q, want %s", got, dns)
		}
		if got := env["new_dhcp6_domain_search"]; got != "nsnet.test." {
			t.Errorf("dhclient domain search %q, want nsnet.test.", got)
		}
		if a, ok := env["new_ip6_address"]; ok {
			t.Errorf("stateless dhclient got an address: %s", a)
		}
	}
}

func TestListenWithoutInterface(t *testing.T) {
	l := newLink(t)
	if _, err := Listen(l.srvNS, "nosuch0", testLog(t)); err == nil {
		t.Fatal("Listen on a missing interface succeeded")
	}
}

// TestDHClientRenews: at T1 dhclient renews with this server (our server
// identifier, its address in the IA) and is answered; when the port's
// address changed in between, the renewal brings the new one.
func TestDHClientRenews(t *testing.T) {
	l := newLink(t)
	p := uniquePrefix(testSeq.Load())
	addr, moved := hostAddr(p, 0x42), hostAddr(p, 0x43)
	srv, err := Listen(l.srvNS, l.srvIf, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cfg := func(a netip.Addr) *Config {
		return &Config{
			LeaseTime: 8 * time.Second, // T1 4 s
			Subnets:   []Subnet{{Prefix: p}},
			Hosts:     pmap.From(map[string]Host{l.cliMAC.String(): {Addrs: []netip.Addr{a}}}),
		}
	}
	srv.SetConfig(cfg(addr))
	c := l.startDHClient(t)
	if bound := c.waitCalls(t, "BOUND6"); len(bound) != 1 || bound[0]["new_ip6_address"] != addr.String() {
		t.Fatalf("bound %v, want %s alone", bound, addr)
	}
	srv.SetConfig(cfg(moved))
	// The renewal's reply carries the new address with the lease's
	// lifetime and the old one with none: the client drops it now.
	eventually(t, "dhclient renews onto the port's new address", func() error {
		life := map[string]string{}
		for _, env := range c.calls("RENEW6") {
			life[env["new_ip6_address"]] = env["new_max_life"]
		}
		if life[moved.String()] != "8" || life[addr.String()] != "0" {
			return fmt.Errorf("renewals (address: valid lifetime) %v, want %s: 8 and %s: 0", life, moved, addr)
		}
		return nil
	})
}
