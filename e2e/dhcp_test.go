package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nsnet/nsnet/internal/lab"
	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/netns"
)

// TestDHCPClients reproduces seed 004's qdhcp namespace with real Debian
// DHCP clients inside instances: isc-dhcp-client's dhclient (with Debian's
// own dhclient-script) and busybox's udhcpc (with Debian's default.script).
// Each port is set to configure itself by DHCP, so nsnet sets only its
// link; the test then checks what each client installed: address, mask,
// default route, classless static routes, MTU and the instance's own
// resolv.conf (never the machine's). With a 6s lease the clients renew
// every 3s: a changed fixed IP arrives at the next renewal, and a deleted
// port's address is refused (DHCPNAK).
//
// The same namespace answers DNS: the instances' names in the network's
// domain (A and PTR, through dig and through getent with the resolv.conf
// udhcpc wrote), and anything else through the daemon's upstream resolver,
// a dnsmasq on the machine's loopback.
func TestDHCPClients(t *testing.T) {
	upstream := startUpstreamDNS(t, "example.test", "192.0.2.77")
	e := Start(t, WithDaemonArgs("--dhcp-lease-time", "6s", "--dns-upstream", upstream))
	hostResolv, _ := os.ReadFile("/etc/resolv.conf")

	network := jsonOf(t, e.MustNsnet("network", "create", "lab", "--mtu", "1400", "-o", "json"))
	e.MustNsnet("subnet", "create", "lab-v4", "--network", "lab", "--subnet-range", "10.40.0.0/24",
		"--host-route", "destination=192.168.77.0/24,gateway=10.40.0.9")
	netID := network["id"].(string)

	// The qdhcp namespace and its port, as in the seed.
	qdhcp := e.Prefix + "qdhcp-" + netID
	links, err := runOut("ip", "-n", qdhcp, "-o", "-4", "addr")
	if err != nil || !strings.Contains(links, " ns-") || !strings.Contains(links, "10.40.0.254/24") {
		t.Fatalf("qdhcp namespace addresses (%v):\n%s", err, links)
	}

	e.MustNsnet("instance", "create", "vm1")
	e.MustNsnet("port", "create", "vm1-eth0", "--network", "lab", "--device", "vm1")
	if out, _ := e.In("vm1", "ip", "-4", "-o", "addr", "show", "dev", "eth0"); !strings.Contains(out, "inet 10.40.0.2/24") {
		t.Fatalf("a static port has no address:\n%s", out)
	}
	e.MustNsnet("port", "set", "vm1-eth0", "--dhcp-client")
	e.MustNsnet("instance", "create", "vm2")
	e.MustNsnet("port", "create", "vm2-eth0", "--network", "lab", "--device", "vm2", "--dhcp-client")
	// nsnet left the address to DHCP, and took back the one it had set.
	for _, vm := range []string{"vm1", "vm2"} {
		if out, _ := e.In(vm, "ip", "-4", "-o", "addr", "show", "dev", "eth0"); strings.Contains(out, "inet ") {
			t.Fatalf("%s: a DHCP client port has an address before DHCP:\n%s", vm, out)
		}
	}
	resolvOf := func(vm string) string {
		b, _ := os.ReadFile(filepath.Join("/etc/netns", e.Netns(vm), "resolv.conf"))
		return string(b)
	}
	if r := resolvOf("vm1"); !strings.Contains(r, "nameserver 10.40.0.254") {
		t.Errorf("vm1's resolv.conf before DHCP:\n%s", r)
	}

	dir := t.TempDir()
	dhclient := startDHCPClient(t, e, "vm1", "dhclient", "-d", "-v", "-sf", "/sbin/dhclient-script",
		"-pf", filepath.Join(dir, "vm1.pid"), "-lf", filepath.Join(dir, "vm1.leases"), "eth0")
	udhcpc := startDHCPClient(t, e, "vm2", "udhcpc", "-f", "-i", "eth0", "-s", "/etc/udhcpc/default.script")

	for _, c := range []*dhcpClient{dhclient, udhcpc} {
		want := fixedIP(jsonOf(t, e.MustNsnet("port", "show", c.vm+"-eth0", "-o", "json"))) + "/24"
		// Bound means configured: the client's script sets the address
		// first and the routes after it.
		eventually(t, 15*time.Second, c.vm+" bound by "+c.name, func() error {
			out, _ := e.In(c.vm, "ip", "-4", "-o", "addr", "show", "dev", "eth0")
			routes, _ := e.In(c.vm, "ip", "-4", "route")
			if !strings.Contains(out, "inet "+want+" ") || !strings.Contains(routes, "default ") {
				return fmt.Errorf("eth0: %s\nroutes: %s\n%s", out, routes, c.output())
			}
			return nil
		})
		routes, _ := e.In(c.vm, "ip", "-4", "route")
		if !strings.Contains(routes, "default via 10.40.0.1 dev eth0") {
			t.Errorf("%s (%s) routes, want the default via the gateway:\n%s", c.vm, c.name, routes)
		}
		link, _ := e.In(c.vm, "ip", "link", "show", "dev", "eth0")
		if !strings.Contains(link, "mtu 1400 ") {
			t.Errorf("%s (%s) link, want the network's MTU 1400:\n%s", c.vm, c.name, link)
		}
		eventually(t, 5*time.Second, c.vm+"'s resolv.conf from "+c.name, func() error {
			r := resolvOf(c.vm)
			if !strings.Contains(r, "nameserver 10.40.0.254") || !strings.Contains(r, "nsnet.internal") ||
				strings.Contains(r, "written by nsnet") {
				return fmt.Errorf("resolv.conf:\n%s", r)
			}
			return nil
		})
	}
	// Classless static routes (option 121): Debian's dhclient installs
	// them (its rfc3442 hook); udhcpc's default.script does not.
	if routes, _ := e.In("vm1", "ip", "-4", "route"); !strings.Contains(routes, "192.168.77.0/24 via 10.40.0.9 dev eth0") {
		t.Errorf("vm1 (dhclient) routes, want the subnet's host route:\n%s", routes)
	}
	// nsnet gives the veth the network's MTU itself; dhclient's lease
	// shows the server sent it too (option 26), with the rest.
	leases, _ := os.ReadFile(filepath.Join(dir, "vm1.leases"))
	for _, want := range []string{"option interface-mtu 1400;", "option subnet-mask 255.255.255.0;", "option routers 10.40.0.1;",
		"option domain-name-servers 10.40.0.254;", `option domain-name "nsnet.internal";`, `option host-name "vm1";`} {
		if !strings.Contains(string(leases), want) {
			t.Errorf("dhclient's lease lacks %s:\n%s", want, leases)
		}
	}
	// nsnet exec shows the instance its own resolv.conf, as ip netns exec.
	if out, err := e.Nsnet("exec", "vm2", "--", "cat", "/etc/resolv.conf"); err != nil || out != resolvOf("vm2") {
		t.Errorf("nsnet exec vm2 -- cat /etc/resolv.conf (%v):\n%s\nwant vm2's:\n%s", err, out, resolvOf("vm2"))
	}
	if b, _ := os.ReadFile("/etc/resolv.conf"); !bytes.Equal(b, hostResolv) {
		t.Errorf("the machine's /etc/resolv.conf changed:\n%s", b)
	}

	// DNS from the qdhcp namespace, through the resolv.conf DHCP wrote.
	vm1IP := fixedIP(jsonOf(t, e.MustNsnet("port", "show", "vm1-eth0", "-o", "json")))
	if out, err := e.In("vm2", "getent", "hosts", "vm1"); err != nil || !strings.HasPrefix(out, vm1IP+" ") ||
		!strings.Contains(out, "vm1.nsnet.internal") {
		t.Errorf("getent hosts vm1 in vm2 (%v): %q, want %s vm1.nsnet.internal", err, out, vm1IP)
	}
	digs := []struct{ args, want string }{
		{"vm1.nsnet.internal A", vm1IP},
		{"-x " + vm1IP, "vm1.nsnet.internal."},
		{"nope.nsnet.internal A", "status: NXDOMAIN"},
		{"example.test A", "192.0.2.77"}, // forwarded upstream
	}
	for _, d := range digs {
		out, err := e.In("vm2", append([]string{"dig", "+time=2", "+tries=1"}, strings.Fields(d.args)...)...)
		if err != nil || !strings.Contains(out, d.want) {
			t.Errorf("dig %s in vm2 (%v), want %q:\n%s", d.args, err, d.want, out)
		}
	}

	// A new fixed IP is handed out at the next renewal: the renewal of
	// the old address is refused, and the client starts over. Port
	// security lets DHCP from the old address through, but not ARP, so a
	// unicast renewal may never leave (the client cannot learn the
	// server's MAC as the old address): udhcpc's broadcast renewal is
	// refused, dhclient may instead wait out its lease; both end bound to
	// the new address.
	for i, vm := range []string{"vm1", "vm2"} {
		e.MustNsnet("port", "set", vm+"-eth0", "--no-fixed-ip", "--fixed-ip", fmt.Sprintf("ip-address=10.40.0.%d", 50+i))
	}
	for i, c := range []*dhcpClient{dhclient, udhcpc} {
		want := fmt.Sprintf("inet 10.40.0.%d/24 ", 50+i)
		eventually(t, 20*time.Second, c.vm+" renewed to its new address", func() error {
			out, _ := e.In(c.vm, "ip", "-4", "-o", "addr", "show", "dev", "eth0")
			if !strings.Contains(out, want) {
				return fmt.Errorf("eth0: %s\n%s", out, c.output())
			}
			return nil
		})
	}
	if out := udhcpc.output(); !strings.Contains(out, "received DHCP NAK") {
		t.Errorf("udhcpc was not refused its old address:\n%s", out)
	}

	// The servers are the daemon's: a restarted daemon serves again, in
	// the same namespace, and renewals go on.
	acks := func() int { return strings.Count(dhclient.output(), "DHCPACK of 10.40.0.50") }
	e.Restart()
	before := acks()
	eventually(t, 15*time.Second, "dhclient renews with the restarted daemon", func() error {
		if acks() == before {
			return fmt.Errorf("dhclient output:\n%s", dhclient.output())
		}
		return nil
	})
	if out, err := e.In("vm2", "dig", "+time=2", "+tries=1", "+short", "vm1.nsnet.internal"); err != nil || strings.TrimSpace(out) != "10.40.0.50" {
		t.Errorf("dig vm1 after the restart (%v): %q, want its new address", err, out)
	}

	// A deleted port's lease is refused: vm1's port goes, and a port
	// with no address (so no lease) takes its place; dhclient, started
	// again with its lease file, asks for the old address (INIT-REBOOT)
	// and is told no. The lease file must hold a lease that has not run
	// out (6s), and
	// dhclient writes one at most every 15 seconds (MIN_LEASE_WRITE): stop
	// it right after it has written one.
	leaseFile := filepath.Join(dir, "vm1.leases")
	sizeOf := func() int64 {
		st, err := os.Stat(leaseFile)
		if err != nil {
			return 0
		}
		return st.Size()
	}
	written := sizeOf()
	eventually(t, 30*time.Second, "dhclient writes its lease", func() error {
		if sizeOf() == written {
			return fmt.Errorf("dhclient output:\n%s", dhclient.output())
		}
		return nil
	})
	dhclient.stop()
	e.MustNsnet("port", "delete", "vm1-eth0")
	e.MustNsnet("port", "create", "vm1-eth0", "--network", "lab", "--device", "vm1", "--no-fixed-ip", "--dhcp-client")
	again := startDHCPClient(t, e, "vm1", "dhclient", "-d", "-v", "-sf", "/sbin/dhclient-script",
		"-pf", filepath.Join(dir, "vm1.pid"), "-lf", leaseFile, "eth0")
	eventually(t, 15*time.Second, "dhclient refused the deleted port's address", func() error {
		out := again.output()
		if !strings.Contains(out, "DHCPREQUEST for 10.40.0.50") || !strings.Contains(out, "DHCPNAK from 10.40.0.254") {
			return fmt.Errorf("dhclient output:\n%s", out)
		}
		return nil
	})
}

// startUpstreamDNS runs dnsmasq on the machine's loopback as the resolver
// the daemon forwards to, answering name with addr, and returns its
// address:port.
func startUpstreamDNS(t *testing.T, name, addr string) string {
	t.Helper()
	listen := freeLoopbackAddr(t)
	host, port, _ := strings.Cut(listen, ":")
	cmd := exec.Command("dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
		"--bind-interfaces", "--listen-address="+host, "--port="+port, "--user=root", "--pid-file",
		"--address=/"+name+"/"+addr)
	out := &lab.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start upstream dnsmasq: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("upstream dnsmasq:\n%s", out.String())
		}
	})
	eventually(t, 5*time.Second, "upstream dnsmasq answers", func() error {
		res, err := runOut("dig", "+time=1", "+tries=1", "+short", "-p", port, "@"+host, name)
		if err != nil || !strings.Contains(res, addr) {
			return fmt.Errorf("dig: %v %s", err, res)
		}
		return nil
	})
	return listen
}

// dhcpClient is a DHCP client running in the foreground inside an
// instance, through `ip netns exec` (so that /etc/resolv.conf is the
// instance's), until the test ends.
type dhcpClient struct {
	vm, name string
	cmd      *exec.Cmd
	out      *lab.SyncBuffer
}

func startDHCPClient(t *testing.T, e *Env, vm string, argv ...string) *dhcpClient {
	t.Helper()
	c := &dhcpClient{vm: vm, name: argv[0], out: &lab.SyncBuffer{}}
	c.cmd = exec.Command("ip", append([]string{"netns", "exec", e.Netns(vm)}, argv...)...)
	c.cmd.Stdout, c.cmd.Stderr = c.out, c.out
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("start %s in %s: %v", argv[0], vm, err)
	}
	t.Cleanup(func() {
		c.stop()
		if t.Failed() {
			t.Logf("%s in %s:\n%s", c.name, vm, c.out.String())
		}
	})
	return c
}

func (c *dhcpClient) output() string { return c.out.String() }

// stop kills the client and waits for it.
func (c *dhcpClient) stop() {
	c.cmd.Process.Kill()
	c.cmd.Wait()
}

// TestSubnetServiceFailureStaysWithIt: when one subnet's service cannot
// start (here its DNS socket: the test holds 10.42.2.254:53 in the qdhcp
// namespace before the subnet exists), the network shows ERROR naming
// that subnet, and the network's other subnet goes on serving: a real
// DHCP client there gets its lease, and DNS there answers. Once the socket
// is free, the agent's retries start the missing server and the network is
// ACTIVE again.
func TestSubnetServiceFailureStaysWithIt(t *testing.T) {
	e := Start(t, WithDaemonArgs("--resync-interval", "5s"))
	var network model.Network
	decodeJSON(t, e.MustNsnet("network", "create", "lab", "-o", "json"), &network)
	e.MustNsnet("subnet", "create", "s1", "--network", "lab", "--subnet-range", "10.42.1.0/24")
	qdhcp := e.Prefix + "qdhcp-" + network.ID

	// The DHCP port takes the last address of each subnet's pools.
	blocker := holdUDP(t, qdhcp, "10.42.2.254:53")
	e.MustNsnet("subnet", "create", "s2", "--network", "lab", "--subnet-range", "10.42.2.0/24")
	if addrs, _ := runOut("ip", "-n", qdhcp, "-o", "-4", "addr"); !strings.Contains(addrs, "10.42.2.254/24") {
		t.Fatalf("the DHCP port has no 10.42.2.254 on s2:\n%s", addrs)
	}
	decodeJSON(t, e.MustNsnet("network", "show", "lab", "-o", "json"), &network)
	if network.Status != "ERROR" || !strings.Contains(network.StatusReason, "subnet s2 (10.42.2.0/24)") ||
		!strings.Contains(network.StatusReason, "address already in use") {
		t.Errorf("network with s2's DNS failing: %s %q, want ERROR naming s2 and the bind failure", network.Status, network.StatusReason)
	}
	// nsnet status lists it by name, in JSON and in the table.
	var status struct {
		Agent struct {
			Errors []struct{ Type, ID, Name, Reason string } `json:"errors"`
		} `json:"agent"`
	}
	decodeJSON(t, e.MustNsnet("status", "-o", "json"), &status)
	if errs := status.Agent.Errors; len(errs) != 1 || errs[0].Type != "network" || errs[0].Name != "lab" ||
		errs[0].ID != network.ID || errs[0].Reason != network.StatusReason {
		t.Errorf("nsnet status -o json lists %+v, want network lab with its reason", errs)
	}
	if table := e.MustNsnet("status"); !regexp.MustCompile(`(?m)^IN ERROR:\n\s+TYPE\s+NAME\s+ID\s+REASON\n\s+network\s+lab\s+` + network.ID + `\s+subnet s2 `).MatchString(table) {
		t.Errorf("nsnet status does not list network lab in error:\n%s", table)
	}

	e.MustNsnet("instance", "create", "vm1")
	e.MustNsnet("port", "create", "vm1-eth0", "--network", "lab", "--device", "vm1", "--dhcp-client",
		"--fixed-ip", "subnet=s1,ip-address=10.42.1.10")
	udhcpc := startDHCPClient(t, e, "vm1", "udhcpc", "-f", "-i", "eth0", "-s", "/etc/udhcpc/default.script")
	eventually(t, 15*time.Second, "vm1 bound on s1", func() error {
		if out, _ := e.In("vm1", "ip", "-4", "-o", "addr", "show", "dev", "eth0"); !strings.Contains(out, "inet 10.42.1.10/24 ") {
			return fmt.Errorf("eth0: %s\n%s", out, udhcpc.output())
		}
		return nil
	})
	if out, err := e.In("vm1", "dig", "+time=2", "+tries=1", "+short", "@10.42.1.254", "vm1.nsnet.internal"); err != nil || strings.TrimSpace(out) != "10.42.1.10" {
		t.Errorf("DNS on s1 while s2's fails (%v): %q", err, out)
	}

	blocker.Close()
	eventually(t, 20*time.Second, "the network ACTIVE once s2's socket is free", func() error {
		decodeJSON(t, e.MustNsnet("network", "show", "lab", "-o", "json"), &network)
		if network.Status != "ACTIVE" {
			return fmt.Errorf("%s %q", network.Status, network.StatusReason)
		}
		return nil
	})
	decodeJSON(t, e.MustNsnet("status", "-o", "json"), &status)
	if len(status.Agent.Errors) > 0 {
		t.Errorf("nsnet status still lists %+v", status.Agent.Errors)
	}
	if out, err := runOut("ip", "netns", "exec", qdhcp, "dig", "+time=2", "+tries=1", "+short", "@10.42.2.254", "vm1.nsnet.internal"); err != nil || strings.TrimSpace(out) != "10.42.1.10" {
		t.Errorf("DNS on s2 after the retry (%v): %q", err, out)
	}
}

// holdUDP binds addr (host:port) for UDP inside namespace ns, whether or
// not the address is there yet (IP_FREEBIND), until the test ends.
func holdUDP(t *testing.T, ns, addr string) net.PacketConn {
	t.Helper()
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, unix.IP_FREEBIND, 1) })
		return errors.Join(err, serr)
	}}
	var pc net.PacketConn
	err := netns.DoNamed(ns, func() (err error) {
		pc, err = lc.ListenPacket(context.Background(), "udp4", addr)
		return err
	})
	if err != nil {
		t.Fatalf("hold %s in %s: %v", addr, ns, err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc
}
