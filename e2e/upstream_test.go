package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nsnet/nsnet/internal/lab"
)

// upstream is "the internet" of a test: a gateway namespace with a cable
// to the host (the uplink, a host interface), and a far host behind it.
// Neither is nsnet's: the test builds them with ip, as a user would cable
// a real uplink.
type upstream struct {
	Uplink  string // the host's end of the cable, in the host namespace
	Gateway string // the upstream router's address on the cable
	Far     string // the far host's address
	FarNS   string
	// GatewayNS is the upstream router's namespace.
	GatewayNS string
}

// buildUpstream connects external network networkID upstream the way
// docs/NAT.md tells users to: it cables a gateway namespace holding
// gatewayCIDR to the host (newUpstream) and names the host's end as the
// network's uplink (nsnet network set --uplink), which nsnet plugs into
// the network's bridge.
func buildUpstream(t *testing.T, e *Env, networkID, gatewayCIDR string) *upstream {
	t.Helper()
	up := newUpstream(t, e, "", gatewayCIDR)
	e.MustNsnet("network", "set", networkID, "--uplink", up.Uplink)
	return up
}

// newUpstream cables a gateway namespace holding gatewayCIDR to the host
// (a veth whose host end, called uplink or a random name for "", is left
// down in the host namespace) and puts a far host at 203.0.113.1 behind it. Its namespaces carry their own prefix, so
// the leak check of the daemon's prefix does not count them; they are
// removed at cleanup, before the daemon's teardown runs, and the host's
// end of the cable goes with them.
func newUpstream(t *testing.T, e *Env, uplink, gatewayCIDR string) *upstream {
	t.Helper()
	p := "nsu" + lab.RandomHex(3) + "-"
	if uplink == "" {
		uplink = p + "up"
	}
	gw, far := p+"gw", p+"far"
	gwAddr, _, _ := strings.Cut(gatewayCIDR, "/")
	t.Cleanup(func() {
		for _, ns := range []string{gw, far} {
			exec.Command("ip", "netns", "delete", ns).Run()
		}
	})
	run(t, "ip", "netns", "add", gw)
	run(t, "ip", "netns", "add", far)
	run(t, "ip", "-n", e.HostNetns, "link", "add", uplink, "type", "veth", "peer", "name", "eth0", "netns", gw)
	run(t, "ip", "-n", gw, "link", "add", "eth1", "type", "veth", "peer", "name", "eth0", "netns", far)
	for _, c := range [][]string{
		{"-n", gw, "addr", "add", gatewayCIDR, "dev", "eth0"},
		{"-n", gw, "addr", "add", "203.0.113.254/24", "dev", "eth1"},
		{"-n", gw, "link", "set", "eth0", "up"},
		{"-n", gw, "link", "set", "eth1", "up"},
		{"-n", gw, "link", "set", "lo", "up"},
		{"-n", far, "addr", "add", "203.0.113.1/24", "dev", "eth0"},
		{"-n", far, "link", "set", "eth0", "up"},
		{"-n", far, "link", "set", "lo", "up"},
		{"-n", far, "route", "add", "default", "via", "203.0.113.254"},
	} {
		run(t, "ip", c...)
	}
	run(t, "ip", "netns", "exec", gw, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	return &upstream{Uplink: uplink, Gateway: gwAddr, Far: "203.0.113.1", FarNS: far, GatewayNS: gw}
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// httpServer is a real HTTP server (python3 -m http.server) in a namespace
// whose access log tells the source address of every request: what the
// seeds check with tcpdump.
type httpServer struct {
	mu  sync.Mutex
	log bytes.Buffer
}

var clientAddr = regexp.MustCompile(`^(\d+\.\d+\.\d+\.\d+) - - `)

func serveHTTP(t *testing.T, netns, addr, port string) *httpServer {
	t.Helper()
	s := &httpServer{}
	cmd := exec.Command("ip", "netns", "exec", netns, "python3", "-u", "-m", "http.server", port, "--bind", addr, "--directory", t.TempDir())
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			s.mu.Lock()
			s.log.WriteString(sc.Text() + "\n")
			s.mu.Unlock()
		}
	}()
	eventually(t, 10*time.Second, "http server in "+netns+" listens", func() error {
		return exec.Command("ip", "netns", "exec", netns, "curl", "-s", "-o", "/dev/null", "--max-time", "1", "http://"+addr+":"+port+"/").Run()
	})
	return s
}

// sources lists the client address of every request so far.
func (s *httpServer) sources() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, line := range strings.Split(s.log.String(), "\n") {
		if m := clientAddr.FindStringSubmatch(line); m != nil {
			out = append(out, m[1])
		}
	}
	return out
}

// fetch does one HTTP GET from netns and returns the source address the
// server logged for it.
func (s *httpServer) fetch(t *testing.T, fromNetns, url string) string {
	t.Helper()
	before := len(s.sources())
	out, err := exec.Command("ip", "netns", "exec", fromNetns, "curl", "-sS", "-o", "/dev/null", "--max-time", "5", url).CombinedOutput()
	if err != nil {
		t.Fatalf("curl %s from %s: %v\n%s", url, fromNetns, err, out)
	}
	var src string
	eventually(t, 5*time.Second, "request logged", func() error {
		all := s.sources()
		if len(all) <= before {
			return fmt.Errorf("no new request logged")
		}
		src = all[len(all)-1]
		return nil
	})
	return src
}

// udpServer answers every datagram on addr:port in netns with the source
// address it came from: the UDP twin of httpServer's access log.
func udpServer(t *testing.T, netns, addr, port string) {
	t.Helper()
	script := `import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
while True:
    data, peer = s.recvfrom(512)
    s.sendto(peer[0].encode(), peer)
`
	cmd := exec.Command("ip", "netns", "exec", netns, "python3", "-c", script, addr, port)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
}

// udpSource sends one datagram from netns to addr:port and returns what a
// udpServer there answered: the source address it saw.
func udpSource(t *testing.T, fromNetns, addr, port string) string {
	t.Helper()
	script := `import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(1)
for _ in range(5):
    s.sendto(b"who am i", (sys.argv[1], int(sys.argv[2])))
    try:
        print(s.recvfrom(512)[0].decode())
        break
    except socket.timeout:
        pass
`
	out, err := exec.Command("ip", "netns", "exec", fromNetns, "python3", "-c", script, addr, port).CombinedOutput()
	if err != nil {
		t.Fatalf("udp to %s:%s from %s: %v\n%s", addr, port, fromNetns, err, out)
	}
	return strings.TrimSpace(string(out))
}
