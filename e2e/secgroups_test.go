package e2e

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"slices"
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

// counted waits until vm's port counts more than floor drops of the
// counters named: the API reads the counters the host's agent publishes
// to the store every few seconds (internal/hoststatus), not the kernel.
func (s sgEnv) counted(vm string, floor float64, counters ...string) {
	s.t.Helper()
	eventually(s.t, 20*time.Second, vm+"'s "+strings.Join(counters, "+")+" drops counted", func() error {
		d := s.drops(vm)
		sum := 0.0
		for _, c := range counters {
			n, _ := d[c].(float64)
			sum += n
		}
		if sum <= floor {
			return fmt.Errorf("%v, want more than %v", d, floor)
		}
		return nil
	})
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
	s.counted("vm3", 0, "ingress_denied")

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
	s.counted("vm2", 0, "spoofed_ip", "spoofed_arp")
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

// rawFrames is a small program run inside an instance: "send IFACE HEX…"
// writes each hex-encoded Ethernet frame on IFACE through a packet socket;
// "capture IFACE SECONDS MARKER…" prints, once, each marker (hex) found in
// a frame IFACE receives within SECONDS, after printing "ready".
const rawFrames = `
import socket, sys, time
cmd, iface = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind((iface, 0))
if cmd == "send":
    for h in sys.argv[3:]:
        s.send(bytes.fromhex(h))
        time.sleep(0.05)
    sys.exit(0)
deadline = time.time() + float(sys.argv[3])
markers = {bytes.fromhex(m): m for m in sys.argv[4:]}
print("ready", flush=True)
seen = set()
s.settimeout(0.2)
while time.time() < deadline:
    try:
        f = s.recv(2048)
    except socket.timeout:
        continue
    for b, m in markers.items():
        if b in f and m not in seen:
            seen.add(m)
            print(m, flush=True)
`

func macBytes(t *testing.T, mac string) []byte {
	hw, err := net.ParseMAC(mac)
	if err != nil {
		t.Fatal(err)
	}
	return hw
}

// udp is an Ethernet+IPv4+UDP frame (checksums: IPv4 computed, UDP zero)
// carrying payload.
func udpFrame(t *testing.T, dstMAC, srcMAC, srcIP, dstIP string, sport, dport uint16, payload []byte) string {
	b := append(macBytes(t, dstMAC), macBytes(t, srcMAC)...)
	b = append(b, 0x08, 0x00)
	ip := make([]byte, 20)
	ip[0], ip[8], ip[9] = 0x45, 64, 17
	binary.BigEndian.PutUint16(ip[2:], uint16(20+8+len(payload)))
	copy(ip[12:], netip.MustParseAddr(srcIP).AsSlice())
	copy(ip[16:], netip.MustParseAddr(dstIP).AsSlice())
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(ip[10:], ^uint16(sum))
	u := make([]byte, 8)
	binary.BigEndian.PutUint16(u[0:], sport)
	binary.BigEndian.PutUint16(u[2:], dport)
	binary.BigEndian.PutUint16(u[4:], uint16(8+len(payload)))
	b = append(append(append(b, ip...), u...), payload...)
	return hex.EncodeToString(b)
}

// arpReply is an Ethernet ARP reply "senderIP is at senderMAC" to target.
func arpReply(t *testing.T, dstMAC, srcMAC, senderMAC, senderIP, targetMAC, targetIP string) string {
	b := append(macBytes(t, dstMAC), macBytes(t, srcMAC)...)
	b = append(b, 0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 2)
	b = append(b, macBytes(t, senderMAC)...)
	b = append(b, netip.MustParseAddr(senderIP).AsSlice()...)
	b = append(b, macBytes(t, targetMAC)...)
	b = append(b, netip.MustParseAddr(targetIP).AsSlice()...)
	return hex.EncodeToString(b)
}

// TestSecurityGroupsAntiSpoofing: an instance sends, from a packet
// socket, a frame from a foreign MAC, one from a foreign address, a forged
// ARP reply claiming the gateway's address, and a DHCP offer as a rogue
// server. Its neighbour receives none of them but receives the same frames
// sent honestly; each drop is counted on the sender's port.
func TestSecurityGroupsAntiSpoofing(t *testing.T) {
	s := sgEnv{Start(t), t}
	s.MustNsnet("network", "create", "net")
	s.MustNsnet("subnet", "create", "net-v4", "--network", "net", "--subnet-range", "10.0.0.0/24")
	ports := map[string]map[string]any{}
	for _, vm := range []string{"vm1", "vm2"} {
		s.MustNsnet("instance", "create", vm)
		ports[vm] = jsonOf(t, s.MustNsnet("port", "create", vm+"-eth0", "--network", "net", "--device", vm, "-o", "json"))
	}
	mac1, mac2 := ports["vm1"]["mac_address"].(string), ports["vm2"]["mac_address"].(string)
	ip1, ip2 := fixedIP(ports["vm1"]), fixedIP(ports["vm2"])
	const foreignMAC, foreignIP, gateway = "fa:16:3e:99:99:99", "10.0.0.99", "10.0.0.1"
	// The default group lets vm2 reach vm1 on any protocol, so whatever
	// is dropped is dropped for spoofing.
	cases := []struct {
		name, counter  string
		honest, forged string
		honestMarker   string
		forgedMarker   string
	}{
		{"foreign source MAC", "spoofed_mac",
			udpFrame(t, mac1, mac2, ip2, ip1, 4000, 4000, []byte("honest-mac")),
			udpFrame(t, mac1, foreignMAC, ip2, ip1, 4000, 4000, []byte("forged-mac")),
			hex.EncodeToString([]byte("honest-mac")), hex.EncodeToString([]byte("forged-mac"))},
		{"foreign source address", "spoofed_ip",
			udpFrame(t, mac1, mac2, ip2, ip1, 4000, 4000, []byte("honest-ip")),
			udpFrame(t, mac1, mac2, foreignIP, ip1, 4000, 4000, []byte("forged-ip")),
			hex.EncodeToString([]byte("honest-ip")), hex.EncodeToString([]byte("forged-ip"))},
		{"ARP reply for the gateway", "spoofed_arp",
			arpReply(t, mac1, mac2, mac2, ip2, mac1, ip1),
			arpReply(t, mac1, mac2, mac2, gateway, mac1, ip1),
			hex.EncodeToString(append(macBytes(t, mac2), netip.MustParseAddr(ip2).AsSlice()...)),
			hex.EncodeToString(append(macBytes(t, mac2), netip.MustParseAddr(gateway).AsSlice()...))},
		{"DHCP offer from an instance", "dhcp_server",
			udpFrame(t, "ff:ff:ff:ff:ff:ff", mac2, ip2, "255.255.255.255", 6767, 68, []byte("honest-dhcp")),
			udpFrame(t, "ff:ff:ff:ff:ff:ff", mac2, ip2, "255.255.255.255", 67, 68, []byte("forged-dhcp")),
			hex.EncodeToString([]byte("honest-dhcp")), hex.EncodeToString([]byte("forged-dhcp"))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before, _ := s.drops("vm2")[tc.counter].(float64)
			capture := exec.Command("ip", "netns", "exec", s.Netns("vm1"), "python3", "-c", rawFrames,
				"capture", "eth0", "3", tc.honestMarker, tc.forgedMarker)
			stdout, _ := capture.StdoutPipe()
			if err := capture.Start(); err != nil {
				t.Fatal(err)
			}
			sc := bufio.NewScanner(stdout)
			if !sc.Scan() || sc.Text() != "ready" {
				t.Fatal("capture did not start")
			}
			if out, err := s.In("vm2", "python3", "-c", rawFrames, "send", "eth0", tc.honest, tc.forged); err != nil {
				t.Fatalf("send: %v\n%s", err, out)
			}
			var seen []string
			for sc.Scan() {
				seen = append(seen, sc.Text())
			}
			capture.Wait()
			if !slices.Contains(seen, tc.honestMarker) {
				t.Errorf("the honest frame did not arrive (seen %v)", seen)
			}
			if slices.Contains(seen, tc.forgedMarker) {
				t.Error("the forged frame arrived")
			}
			s.counted("vm2", before, tc.counter)
		})
	}
}

// TestSecurityGroupsTopology applies examples/security-groups.yaml: a
// second apply changes nothing, and the groups it describes hold — SSH to
// web from the admins' group only, HTTP from the whole network.
func TestSecurityGroupsTopology(t *testing.T) {
	s := sgEnv{Start(t), t}
	const file = "../examples/security-groups.yaml"
	s.MustNsnet("apply", "-f", file)
	if out := s.MustNsnet("apply", "-f", file); strings.Contains(out, "created") || strings.Contains(out, "updated") || strings.Contains(out, "deleted") {
		t.Errorf("second apply changed something:\n%s", out)
	}
	s.echo("web", 22)
	s.echo("web", 80)
	if !s.tcp("admin", "10.10.0.10", 22) {
		t.Error("SSH from the admins' group to web is blocked")
	}
	if s.tcp("guest", "10.10.0.10", 22) {
		t.Error("SSH from guest, not an admin, reached web")
	}
	if !s.tcp("guest", "10.10.0.10", 80) {
		t.Error("HTTP from the network to web is blocked")
	}
	rules := jsonOf(t, `{"rules":`+s.MustNsnet("security-group", "rule", "list", "--group", "web", "-o", "json")+`}`)["rules"].([]any)
	if len(rules) != 4 {
		t.Errorf("web has %d rules, want the file's 4: %v", len(rules), rules)
	}
	s.MustNsnet("destroy", "-f", file)
}

// TestSecurityGroupsRouted: traffic routed between two networks is
// filtered like traffic within one: it enters the destination's bridge from
// the router's qr- port and meets the destination port's ingress rules.
func TestSecurityGroupsRouted(t *testing.T) {
	s := sgEnv{Start(t), t}
	for i, net := range []string{"left", "right"} {
		s.MustNsnet("network", "create", net)
		s.MustNsnet("subnet", "create", net+"-v4", "--network", net, "--subnet-range", fmt.Sprintf("10.%d.0.0/24", 50+i))
	}
	s.MustNsnet("router", "create", "r1")
	s.MustNsnet("router", "add", "subnet", "r1", "left-v4")
	s.MustNsnet("router", "add", "subnet", "r1", "right-v4")
	s.MustNsnet("instance", "create", "a")
	s.MustNsnet("port", "create", "a-eth0", "--network", "left", "--device", "a")
	s.MustNsnet("instance", "create", "b")
	s.MustNsnet("port", "create", "b-eth0", "--network", "right", "--device", "b")
	ipB := s.ip("b")
	if !s.ping("a", ipB) {
		t.Fatal("default group: a cannot reach b across the router")
	}
	s.group("locked")
	s.MustNsnet("port", "set", "b-eth0", "--no-security-group", "--security-group", "locked")
	if s.ping("a", ipB) {
		t.Error("routed ping reached b, whose group has no ingress rule")
	}
	s.rule("locked", "--protocol", "icmp", "--remote-ip", "10.50.0.0/24")
	if !s.ping("a", ipB) {
		t.Error("routed ping from left's subnet blocked by b's ICMP rule for it")
	}
}

// TestSecurityGroupsOverlaps: what users do that makes rules and address
// pairs say the same thing twice — a port in two groups with the same
// egress rules, a rule for any source beside the same rule for a remote
// group, an address pair inside another — leaves every port ACTIVE and
// the firewall quiet: the full passes that follow change nothing (they
// rebuilt the tables four times a second, or failed every batch with "file
// exists", before).
func TestSecurityGroupsOverlaps(t *testing.T) {
	s := sgEnv{Start(t, WithDaemonArgs("--resync-interval", "500ms")), t}
	s.MustNsnet("network", "create", "net")
	s.MustNsnet("subnet", "create", "net-v4", "--network", "net", "--subnet-range", "10.0.0.0/24")
	vms := []string{"vm1", "vm2"}
	for _, vm := range vms {
		s.MustNsnet("instance", "create", vm)
		s.MustNsnet("port", "create", vm+"-eth0", "--network", "net", "--device", vm)
	}
	ip1 := s.ip("vm1")
	quiet := func(step string) {
		t.Helper()
		for _, vm := range vms {
			if p := jsonOf(t, s.MustNsnet("port", "show", vm+"-eth0", "-o", "json")); p["status"] != "ACTIVE" {
				t.Errorf("%s: port %s is %v (%v)", step, vm, p["status"], p["nsnet:status_reason"])
			}
		}
		agent := func() map[string]any {
			_, body := s.API("GET", "/nsnet/status", nil)
			a, _ := body["agent"].(map[string]any)
			return a
		}
		before := agent()
		eventually(t, 60*time.Second, step+": two full passes", func() error {
			if now := agent(); now["full_passes"].(float64) < before["full_passes"].(float64)+2 {
				return fmt.Errorf("agent: %v", now)
			}
			return nil
		})
		if after := agent(); after["changes"] != before["changes"] || len(after["errors"].([]any)) > 0 {
			t.Errorf("%s: quiet full passes changed %v objects and left errors %v, want none",
				step, after["changes"].(float64)-before["changes"].(float64), after["errors"])
		}
	}

	s.group("admins")
	s.MustNsnet("port", "set", "vm2-eth0", "--security-group", "admins")
	quiet("vm2 in two groups with the same egress rules")

	s.rule("default", "--protocol", "tcp", "--dst-port", "22")
	s.rule("default", "--protocol", "tcp", "--dst-port", "22", "--remote-group", "default")
	quiet("TCP 22 from anywhere and from the group's members")
	s.MustNsnet("instance", "create", "vm3")
	s.MustNsnet("port", "create", "vm3-eth0", "--network", "net", "--device", "vm3")
	vms = append(vms, "vm3")
	if !s.ping("vm3", ip1) {
		t.Error("a new port in the default group cannot reach vm1")
	}

	s.MustNsnet("port", "set", "vm1-eth0", "--allowed-address", "ip-address=0.0.0.0/0")
	s.MustNsnet("port", "set", "vm1-eth0", "--allowed-address", "ip-address=10.9.0.0/16")
	quiet("address pairs 0.0.0.0/0 and 10.9.0.0/16")
	s.MustNsnet("port", "set", "vm1-eth0", "--no-allowed-address")
	quiet("address pairs removed")
}

// TestSecurityGroupsSameCIDRConnections: two networks with the same CIDR
// and instances at the same addresses on both. A UDP exchange allowed on
// the first network must not open the same 5-tuple on the second, where
// the destination's group admits nothing: the connections of one network
// are not the other's.
func TestSecurityGroupsSameCIDRConnections(t *testing.T) {
	r := &sgRun{t: t, e: Start(t)}
	closed := r.mustCreate("POST", "/v2.0/security-groups", "security_group", map[string]any{"security_group": map[string]any{"name": "closed"}})
	ns := map[string]string{}
	for _, n := range []string{"a", "b"} {
		net, sub := r.network(n, "10.5.0.0/24")
		port := map[string]any{}
		if n == "b" {
			// Not the default group: its remote-group rule would list
			// 10.5.0.10 and .11 twice, once per network.
			port["security_groups"] = []string{closed}
		}
		ns[n+"1"] = r.instance(n+"1", net, sub, "10.5.0.10", port)
		ns[n+"2"] = r.instance(n+"2", net, sub, "10.5.0.11", port)
	}
	dst := netip.MustParseAddr("10.5.0.11")
	send := func(from string) string {
		t.Helper()
		got, err := probeUDP(ns[from], dst, 53, 40000)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := send("b1"); got != "" {
		t.Fatalf("before any traffic on a, b2 (group closed) answered b1: %q", got)
	}
	if got := send("a1"); got != "a2" {
		t.Fatalf("a1 → a2 udp/53 (default group): answered by %q, want a2", got)
	}
	if got := send("b1"); got != "" {
		t.Errorf("b1 → b2 udp/53 from the source port a1 used on a: answered by %q; b2's group admits nothing", got)
	}
}

// TestSecurityGroupsRemoteGroupAddressPairCIDR: a remote group stands for
// its members' fixed IPs and allowed address pairs, CIDRs included, as in
// Neutron (_select_ips_for_remote_group; the consequence of 0.0.0.0/0 is
// Launchpad bug 1867119). vm2, in admins, may send from 10.0.0.8/29; vm3
// admits ICMP from admins; so vm1 at 10.0.0.10, in no such group, reaches
// vm3, and vm4 at 10.0.0.40 does not.
func TestSecurityGroupsRemoteGroupAddressPairCIDR(t *testing.T) {
	r := &sgRun{t: t, e: Start(t)}
	admins := r.mustCreate("POST", "/v2.0/security-groups", "security_group", map[string]any{"security_group": map[string]any{"name": "admins"}})
	web := r.mustCreate("POST", "/v2.0/security-groups", "security_group", map[string]any{"security_group": map[string]any{"name": "web"}})
	r.mustCreate("POST", "/v2.0/security-group-rules", "security_group_rule", map[string]any{"security_group_rule": map[string]any{
		"security_group_id": web, "direction": "ingress", "protocol": "icmp", "remote_group_id": admins}})
	net, sub := r.network("net", "10.0.0.0/24")
	vm1 := r.instance("vm1", net, sub, "10.0.0.10", nil)
	r.instance("vm2", net, sub, "10.0.0.20", map[string]any{"security_groups": []string{admins},
		"allowed_address_pairs": []any{map[string]any{"ip_address": "10.0.0.8/29"}}})
	r.instance("vm3", net, sub, "10.0.0.30", map[string]any{"security_groups": []string{web}})
	vm4 := r.instance("vm4", net, sub, "10.0.0.40", nil)
	echo := probeServices[slices.IndexFunc(probeServices, func(s probeService) bool { return s.name == "icmp/echo" })]
	vm3 := netip.MustParseAddr("10.0.0.30")
	if got, err := probe(vm4, vm3, echo); err != nil || got != "" {
		t.Errorf("vm4, outside admins and its members' pairs, pinged vm3: %q %v", got, err)
	}
	if got, err := probe(vm1, vm3, echo); err != nil || got != "icmp" {
		t.Errorf("vm1, inside admins member vm2's address pair 10.0.0.8/29, cannot ping vm3: %q %v", got, err)
	}
}

// TestSecurityGroupsStateless: a stateless group (stateful false) leaves
// its ports' traffic untracked and its rules judge every packet, as in
// Neutron: vm1 reaches vm2's TCP 8080 only once a rule lets the replies
// back in, and no conntrack entry is made; the group cannot turn stateful
// while ports use it; the same ports in a stateful group with the same
// rules but the one for replies reach each other, with entries.
func TestSecurityGroupsStateless(t *testing.T) {
	r := &sgRun{t: t, e: Start(t)}
	group := func(name string, stateful bool) string {
		g := r.mustCreate("POST", "/v2.0/security-groups", "security_group", map[string]any{"security_group": map[string]any{"name": name, "stateful": stateful}})
		r.mustCreate("POST", "/v2.0/security-group-rules", "security_group_rule", map[string]any{"security_group_rule": map[string]any{
			"security_group_id": g, "direction": "ingress", "protocol": "tcp", "port_range_min": 8080, "port_range_max": 8080, "remote_ip_prefix": "10.0.0.0/24"}})
		return g
	}
	free, full := group("free", false), group("full", true)
	net, sub := r.network("net", "10.0.0.0/24")
	vm1 := r.instance("vm1", net, sub, "10.0.0.10", map[string]any{"security_groups": []string{free}})
	r.instance("vm2", net, sub, "10.0.0.20", map[string]any{"security_groups": []string{free}})
	vm2 := netip.MustParseAddr("10.0.0.20")
	var ports []struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	}
	r.list("/v2.0/ports", "ports", &ports)
	setGroup := func(g string) {
		for _, p := range ports {
			if p.Name == "vm1" || p.Name == "vm2" {
				if status, body := r.api("PUT", "/v2.0/ports/"+p.ID, map[string]any{"port": map[string]any{"security_groups": []string{g}}}); status != 200 {
					t.Fatalf("port %s to group %s: %d %v", p.Name, g, status, body)
				}
			}
		}
	}
	entries := func() bool {
		out, _ := exec.Command("ip", "netns", "exec", r.e.HostNetns, "conntrack", "-L", "-p", "tcp", "--dport", "8080").CombinedOutput()
		return strings.Contains(string(out), "dst=10.0.0.20")
	}
	svc := func(name string) probeService {
		return probeServices[slices.IndexFunc(probeServices, func(s probeService) bool { return s.name == name })]
	}
	check := func(what string, open, tracked bool) {
		t.Helper()
		exec.Command("ip", "netns", "exec", r.e.HostNetns, "conntrack", "-F").Run()
		got, err := probe(vm1, vm2, svc("tcp/8080"))
		if err != nil || (got == "vm2") != open {
			t.Errorf("%s: vm1 → vm2 tcp/8080 answered %q (%v), want open %v", what, got, err, open)
		}
		if got := entries(); got != tracked {
			t.Errorf("%s: conntrack entries for vm1 → vm2:8080 %v, want %v", what, got, tracked)
		}
		if got, err := probe(vm1, vm2, svc("tcp/22")); err != nil || got != "" {
			t.Errorf("%s: vm1 → vm2 tcp/22 answered %q (%v), without a rule", what, got, err)
		}
		if got, err := probe(vm1, vm2, svc("icmp/echo")); err != nil || got != "" {
			t.Errorf("%s: vm1 pinged vm2 without a rule: %q (%v)", what, got, err)
		}
	}
	check("stateless, no rule for the replies", false, false)
	// vm1's ephemeral ports, from vm2.
	r.mustCreate("POST", "/v2.0/security-group-rules", "security_group_rule", map[string]any{"security_group_rule": map[string]any{
		"security_group_id": free, "direction": "ingress", "protocol": "tcp", "port_range_min": 1024, "port_range_max": 65535, "remote_ip_prefix": "10.0.0.20/32"}})
	check("stateless, a rule for the replies", true, false)
	if status, body := r.api("PUT", "/v2.0/security-groups/"+free, map[string]any{"security_group": map[string]any{"stateful": true}}); status != 409 {
		t.Errorf("turning a group in use stateful: %d %v, want 409 SecurityGroupInUse", status, body)
	}
	setGroup(full)
	check("stateful, no rule for the replies", true, true)
}

// TestSecurityGroupsAddressGroup: a rule naming an address group admits
// its CIDRs and nothing else; adding an address to the group or removing
// one changes the elements of the group's set in the kernel and no rule
// of any chain (their handles stay); a live connection from an address
// removed is cut.
func TestSecurityGroupsAddressGroup(t *testing.T) {
	r := &sgRun{t: t, e: Start(t)}
	ag := r.mustCreate("POST", "/v2.0/address-groups", "address_group", map[string]any{"address_group": map[string]any{
		"name": "office", "addresses": []string{"10.0.0.8/30", "2001:db8::/64"}}})
	web := r.mustCreate("POST", "/v2.0/security-groups", "security_group", map[string]any{"security_group": map[string]any{"name": "web"}})
	for _, proto := range []string{"icmp", "tcp"} {
		r.mustCreate("POST", "/v2.0/security-group-rules", "security_group_rule", map[string]any{"security_group_rule": map[string]any{
			"security_group_id": web, "direction": "ingress", "protocol": proto, "remote_address_group_id": ag}})
	}
	net, sub := r.network("net", "10.0.0.0/24")
	vm1 := r.instance("vm1", net, sub, "10.0.0.10", nil) // in 10.0.0.8/30
	vm2 := r.instance("vm2", net, sub, "10.0.0.20", nil)
	r.instance("vm3", net, sub, "10.0.0.30", map[string]any{"security_groups": []string{web}})
	vm3 := netip.MustParseAddr("10.0.0.30")
	svc := func(name string) probeService {
		return probeServices[slices.IndexFunc(probeServices, func(s probeService) bool { return s.name == name })]
	}
	reaches := func(vm string) bool {
		t.Helper()
		got, err := probe(vm, vm3, svc("icmp/echo"))
		if err != nil {
			t.Fatal(err)
		}
		return got == "icmp"
	}
	// The rules of the inet table, with their handles: what an update of
	// the group must leave alone.
	rules := func() []string {
		out, err := exec.Command("ip", "netns", "exec", r.e.HostNetns, "nft", "-a", "list", "table", "inet", "nsnet_fw").CombinedOutput()
		if err != nil {
			t.Fatalf("nft: %v\n%s", err, out)
		}
		var lines []string
		for _, l := range strings.Split(string(out), "\n") {
			if strings.Contains(l, "# handle") && !strings.Contains(l, "set ") && !strings.Contains(l, "chain ") {
				lines = append(lines, strings.TrimSpace(l))
			}
		}
		return lines
	}
	members := func() string {
		out, _ := exec.Command("ip", "netns", "exec", r.e.HostNetns, "nft", "list", "table", "inet", "nsnet_fw").CombinedOutput()
		return string(out)
	}
	if !reaches(vm1) {
		t.Error("vm1, in the address group's 10.0.0.8/30, cannot ping vm3")
	}
	if reaches(vm2) {
		t.Error("vm2, outside the address group, pinged vm3")
	}
	before := rules()
	if status, body := r.api("PUT", "/v2.0/address-groups/"+ag+"/add_addresses", map[string]any{"addresses": []string{"10.0.0.20/32"}}); status != 200 {
		t.Fatalf("add_addresses: %d %v", status, body)
	}
	if !reaches(vm2) {
		t.Error("vm2 cannot ping vm3 once its address is in the group")
	}
	if !strings.Contains(members(), "10.0.0.20") {
		t.Errorf("10.0.0.20 not in the group's set:\n%s", members())
	}
	if after := rules(); !slices.Equal(before, after) {
		t.Errorf("adding an address changed rules:\nbefore:\n%s\nafter:\n%s", strings.Join(before, "\n"), strings.Join(after, "\n"))
	}
	// A live connection from vm1 is cut when its range leaves the group.
	server := exec.Command("ip", "netns", "exec", r.e.Netns("vm3"), "python3", "-m", "http.server", "9090")
	if err := server.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Process.Kill(); server.Wait() })
	eventually(t, 10*time.Second, "vm3 listens on 9090", func() error {
		return exec.Command("ip", "netns", "exec", r.e.Netns("vm3"), "bash", "-c", "echo > /dev/tcp/127.0.0.1/9090").Run()
	})
	conn := exec.Command("ip", "netns", "exec", vm1, "python3", "-c", `
import socket, sys
s = socket.create_connection(("10.0.0.30", 9090), timeout=3)
print("up", flush=True)
sys.stdin.readline()
try:
    s.sendall(b"GET / HTTP/1.0\r\n\r\n")
    print("reply" if s.recv(100) else "closed", flush=True)
except Exception as e:
    print("cut", e, flush=True)
`)
	stdin, _ := conn.StdinPipe()
	var out strings.Builder
	conn.Stdout = &out
	if err := conn.Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "vm1's connection to vm3:9090", func() error {
		if !strings.Contains(out.String(), "up") {
			return fmt.Errorf("not up: %q", out.String())
		}
		return nil
	})
	if status, body := r.api("PUT", "/v2.0/address-groups/"+ag+"/remove_addresses", map[string]any{"addresses": []string{"10.0.0.8/30"}}); status != 200 {
		t.Fatalf("remove_addresses: %d %v", status, body)
	}
	stdin.Write([]byte("\n"))
	conn.Wait()
	if strings.Contains(out.String(), "reply") {
		t.Errorf("vm1's connection went on after its range left the group: %q", out.String())
	}
	if reaches(vm1) {
		t.Error("vm1 pinged vm3 after its range left the group")
	}
	if !reaches(vm2) {
		t.Error("vm2 lost vm3 when another range left the group")
	}
	if after := rules(); !slices.Equal(before, after) {
		t.Errorf("removing an address changed rules:\nbefore:\n%s\nafter:\n%s", strings.Join(before, "\n"), strings.Join(after, "\n"))
	}
}
