package e2e

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// sgEnv is one network 10.0.0.0/24 with instances whose ports use the
// project's default group unless a test changes them.
type sgEnv struct {
	*Env
	t *testing.T
}

func (s sgEnv) group(name string) string {
	s.t.Helper()
	return jsonOf(s.t, s.MustNsnet("security-group", "create", name, "-o", "json"))["id"].(string)
}

// rule runs `nsnet security-group rule create GROUP args…` and returns the
// rule's id.
func (s sgEnv) rule(group string, args ...string) string {
	s.t.Helper()
	return jsonOf(s.t, s.MustNsnet(append([]string{"security-group", "rule", "create", group, "-o", "json"}, args...)...))["id"].(string)
}

func (s sgEnv) ip(vm string) string {
	return fixedIP(jsonOf(s.t, s.MustNsnet("port", "show", vm+"-eth0", "-o", "json")))
}

// ping reports whether one ping from vm to addr is answered.
func (s sgEnv) ping(vm, addr string) bool {
	_, err := s.In(vm, "ping", "-c1", "-W1", addr)
	return err == nil
}

// tcp reports whether a TCP connection from vm to addr:port opens.
func (s sgEnv) tcp(vm, addr string, port int) bool {
	_, err := s.In(vm, "timeout", "2", "bash", "-c", fmt.Sprintf("echo > /dev/tcp/%s/%d", addr, port))
	return err == nil
}

func (s sgEnv) drops(vm string) map[string]any {
	s.t.Helper()
	d, _ := jsonOf(s.t, s.MustNsnet("port", "show", vm+"-eth0", "-o", "json"))["nsnet:firewall_drops"].(map[string]any)
	return d
}

func (s sgEnv) listen(vm string, port int) {
	s.t.Helper()
	cmd := exec.Command("ip", "netns", "exec", s.Netns(vm), "python3", "-m", "http.server", fmt.Sprint(port))
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	eventually(s.t, 10*time.Second, vm+" listens", func() error {
		return exec.Command("ip", "netns", "exec", s.Netns(vm), "bash", "-c", fmt.Sprintf("echo > /dev/tcp/127.0.0.1/%d", port)).Run()
	})
}

// TestSecurityGroups walks Neutron's security group behaviour on one
// network: the default group lets members reach each other and nobody
// else in; rules open ICMP and TCP 22 from one address range; a remote
// group follows its membership; allowed address pairs let a VIP through;
// port security off lets everything through; removing a rule cuts a live
// connection.
func TestSecurityGroups(t *testing.T) {
	s := sgEnv{Start(t), t}
	s.MustNsnet("network", "create", "net")
	s.MustNsnet("subnet", "create", "net-v4", "--network", "net", "--subnet-range", "10.0.0.0/24")
	for _, vm := range []string{"vm1", "vm2", "vm3"} {
		s.MustNsnet("instance", "create", vm)
		s.MustNsnet("port", "create", vm+"-eth0", "--network", "net", "--device", vm)
	}
	ip1, ip2, ip3 := s.ip("vm1"), s.ip("vm2"), s.ip("vm3")

	// Members of the default group reach each other.
	if !s.ping("vm1", ip2) || !s.tcpAfterListen("vm2", 80, "vm1", ip2) {
		t.Fatal("default group: vm1 cannot reach vm2")
	}
	// vm3 leaves the default group for an empty one: nothing reaches it,
	// and it reaches nobody in the default group.
	s.group("web")
	s.MustNsnet("port", "set", "vm3-eth0", "--no-security-group", "--security-group", "web")
	s.echo("vm3", 22)
	if s.ping("vm1", ip3) || s.tcp("vm1", ip3, 22) {
		t.Error("a default-group member reached vm3, whose group allows no ingress")
	}
	if s.ping("vm3", ip1) {
		t.Error("vm3, not a default-group member, reached vm1")
	}
	if d := s.drops("vm3"); d == nil || d["ingress_denied"].(float64) == 0 {
		t.Errorf("vm3's ingress drops not counted: %v", d)
	}

	// ICMP allowed by rule; TCP 22 only from vm2's address.
	s.rule("web", "--protocol", "icmp")
	if !s.ping("vm1", ip3) {
		t.Error("ICMP rule: vm1 cannot ping vm3")
	}
	ssh := s.rule("web", "--protocol", "tcp", "--dst-port", "22", "--remote-ip", ip2+"/32")
	if !s.tcp("vm2", ip3, 22) {
		t.Error("TCP 22 from vm2's address is blocked")
	}
	if s.tcp("vm1", ip3, 22) {
		t.Error("TCP 22 from vm1, outside the rule's prefix, opened")
	}

	// Removing the rule cuts a live connection from vm2.
	conn := exec.Command("ip", "netns", "exec", s.Netns("vm2"), "python3", "-c", fmt.Sprintf(`
import socket, sys, time
s = socket.create_connection(("%s", 22), timeout=1)
print("connected", flush=True)
for i in range(20):
    try:
        s.sendall(b"ping\n")
        if s.recv(16) != b"ping\n":
            raise OSError("bad echo")
    except OSError as e:
        print("cut", e, flush=True); sys.exit(0)
    time.sleep(0.25)
print("alive", flush=True)
`, ip3))
	var out strings.Builder
	conn.Stdout, conn.Stderr = &out, &out
	if err := conn.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	s.MustNsnet("security-group", "rule", "delete", ssh)
	conn.Wait()
	if !strings.Contains(out.String(), "connected") || strings.Contains(out.String(), "alive") {
		t.Errorf("live connection after its rule was removed: %s", out.String())
	}

	// Remote group: TCP 22 from members of "admins"; vm1 joins it.
	s.group("admins")
	s.rule("web", "--protocol", "tcp", "--dst-port", "22", "--remote-group", "admins")
	if s.tcp("vm1", ip3, 22) {
		t.Error("TCP 22 from vm1 opened before vm1 joined the remote group")
	}
	s.MustNsnet("port", "set", "vm1-eth0", "--security-group", "admins")
	if !s.tcp("vm1", ip3, 22) {
		t.Error("TCP 22 from vm1 blocked after vm1 joined the remote group")
	}

	// Allowed address pairs: vm2 may send from a VIP only once the pair
	// is on its port.
	const vip = "10.0.0.200"
	if _, err := s.In("vm2", "ip", "addr", "add", vip+"/24", "dev", "eth0"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.In("vm2", "ping", "-c1", "-W1", "-I", vip, ip3); err == nil {
		t.Error("vm2 sent from a VIP it has no address pair for")
	}
	if d := s.drops("vm2"); d == nil || d["spoofed_ip"].(float64)+d["spoofed_arp"].(float64) == 0 {
		t.Errorf("vm2's spoofed packets not counted: %v", d)
	}
	s.MustNsnet("port", "set", "vm2-eth0", "--allowed-address", "ip-address="+vip)
	if _, err := s.In("vm2", "ping", "-c1", "-W1", "-I", vip, ip3); err != nil {
		t.Error("vm2 cannot send from its allowed address pair")
	}

	// Port security off: everything through to vm3.
	s.MustNsnet("port", "set", "vm3-eth0", "--no-security-group", "--disable-port-security")
	s.listen("vm3", 8080)
	if !s.tcp("vm1", ip3, 8080) {
		t.Error("port security off: TCP 8080 to vm3 blocked")
	}
}

// echo runs a line echo server on port in vm: one thread per connection.
func (s sgEnv) echo(vm string, port int) {
	s.t.Helper()
	cmd := exec.Command("ip", "netns", "exec", s.Netns(vm), "python3", "-c", fmt.Sprintf(`
import socketserver
class Echo(socketserver.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            self.wfile.write(line)
socketserver.ThreadingTCPServer.allow_reuse_address = True
socketserver.ThreadingTCPServer(("0.0.0.0", %d), Echo).serve_forever()
`, port))
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	eventually(s.t, 10*time.Second, vm+" echoes", func() error {
		return exec.Command("ip", "netns", "exec", s.Netns(vm), "bash", "-c", fmt.Sprintf("echo > /dev/tcp/127.0.0.1/%d", port)).Run()
	})
}

func (s sgEnv) tcpAfterListen(vm string, port int, from, addr string) bool {
	s.listen(vm, port)
	return s.tcp(from, addr, port)
}
