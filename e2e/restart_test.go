package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nsnet/nsnet/internal/lab"
)

// TestRestartTouchesNothing runs 20 routers, 200 instance ports with
// security groups, 200 floating IPs and 20 DHCP namespaces, restarts the
// daemon gracefully and then with SIGKILL, and checks that nothing was
// recreated or changed: the same namespaces (inode numbers), links
// (ifindexes), addresses and nft tables (table, chain, set and rule
// handles, element counts); that a TCP stream through the router's SNAT
// and a ping to a floating IP lose nothing meanwhile; that a DHCP client
// renews its lease with the restarted daemon; and that the agent's first
// full pass after each start changed nothing.
func TestRestartTouchesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("builds 220 namespaces")
	}
	const networks, perNetwork = 20, 10
	// Leases short enough that the DHCP client renews across both
	// restarts, and long enough to outlive a daemon that is down for a
	// moment: udhcpc renews at half the lease and gives it up at its end,
	// so a 10s lease leaves 5s for the server to answer; 4s left 2s,
	// about what a restart takes on a loaded machine.
	e := Start(t, WithDaemonArgs("--dhcp-lease-time", "10s"))
	file := filepath.Join(e.Dir, "scale.yaml")
	if err := os.WriteFile(file, []byte(scaleTopology(networks, perNetwork)), 0o644); err != nil {
		t.Fatal(err)
	}
	e.MustNsnet("quota", "set", "admin", "--routers", "-1", "--floating-ips", "-1", "--ports", "-1")
	start := time.Now()
	e.MustNsnet("apply", "-f", file)
	t.Logf("apply: %d routers, %d instances and ports, %d floating IPs in %v",
		networks, networks*perNetwork, networks*perNetwork, time.Since(start).Round(time.Millisecond))

	e.MustNsnet("security-group", "rule", "create", "default", "--protocol", "icmp")
	_, body := e.API("GET", "/v2.0/networks?name=public", nil)
	public := body["networks"].([]any)[0].(map[string]any)["id"].(string)
	up := buildUpstream(t, e, public, "198.18.0.1/16")

	// A DHCP client in its own instance on net-0, bound before the
	// restarts.
	e.MustNsnet("instance", "create", "dhcp-vm")
	e.MustNsnet("port", "create", "dhcp-vm-eth0", "--network", "net-0", "--device", "dhcp-vm", "--dhcp-client")
	lease := fixedIP(jsonOf(t, e.MustNsnet("port", "show", "dhcp-vm-eth0", "-o", "json")))
	udhcpc := startDHCPClient(t, e, "dhcp-vm", "udhcpc", "-f", "-i", "eth0", "-s", "/etc/udhcpc/default.script")
	acks := func() int { return strings.Count(udhcpc.output(), "lease of "+lease+" obtained") }
	eventually(t, 15*time.Second, "udhcpc bound", func() error {
		if acks() == 0 {
			return fmt.Errorf("udhcpc output:\n%s", udhcpc.output())
		}
		return nil
	})

	// vm-0-1 has no floating IP: its stream leaves by the default SNAT.
	stream := startTCPStream(t, up.FarNS, up.Far, e.Netns("vm-0-1"))
	pings := startPing(t, up.FarNS, "198.18.1.1") // vm-0-0's floating IP

	before := snapshotKernel(t, e.Prefix)
	t.Logf("comparing %d kernel objects (namespaces, links, addresses, nft objects)", len(before))
	for _, how := range []string{"SIGTERM", "SIGKILL"} {
		if how == "SIGKILL" {
			e.Kill()
		} else {
			e.stopDaemon()
		}
		start := time.Now()
		e.startDaemon()
		health := e.waitFirstFullPass()
		t.Logf("after %s: up and converged in %v; %v passes (the last took %s) changed %v objects",
			how, time.Since(start).Round(time.Millisecond), health["passes"], health["last_pass_duration"], health["changes"])
		if errs, _ := health["errors"].([]any); health["changes"] != 0.0 || len(errs) > 0 {
			t.Errorf("after %s the agent's %v passes changed %v objects and left errors %v, want none of either",
				how, health["passes"], health["changes"], health["errors"])
		}
		if diff := before.diff(snapshotKernel(t, e.Prefix)); diff != "" {
			t.Errorf("after %s the kernel differs:\n%s", how, diff)
		}
	}

	// The client renews with the restarted daemon, keeping its address.
	renewals := acks()
	eventually(t, 15*time.Second, "udhcpc renews after the restarts", func() error {
		if acks() == renewals {
			return fmt.Errorf("udhcpc output:\n%s", udhcpc.output())
		}
		return nil
	})
	if out := udhcpc.output(); strings.Contains(out, "deconfig") || strings.Contains(out, "lease lost") {
		t.Errorf("the DHCP client lost its lease across the restarts:\n%s", out)
	}
	if out, _ := e.In("dhcp-vm", "ip", "-4", "-o", "addr", "show", "dev", "eth0"); !strings.Contains(out, "inet "+lease+"/24 ") {
		t.Errorf("dhcp-vm's address after the restarts:\n%s", out)
	}

	sent, received, err := stream.stop()
	if err != nil || sent == 0 || sent != received {
		t.Errorf("TCP stream through SNAT across the restarts: sent %d, far host received %d, err %v", sent, received, err)
	}
	answered, missing := pings.stop()
	t.Logf("across the restarts: TCP stream %d bytes sent, %d received; ping to a floating IP %d answered; DHCP client renewed %d times, always %s",
		sent, received, answered, acks()-1, lease)
	if answered < 20 || len(missing) > 0 {
		t.Errorf("ping to a floating IP across the restarts: %d answered, unanswered seqs %v", answered, missing)
	}
}

// scaleTopology is a public network and n private networks, each behind
// its own router with a gateway, with per instances each with a port and,
// but for vm-0-1, a floating IP (198.18.1.x); vm-0-1's goes unassociated.
func scaleTopology(n, per int) string {
	var b strings.Builder
	b.WriteString("name: scale\ninstances:\n")
	for i := range n {
		for j := range per {
			fmt.Fprintf(&b, "  - name: vm-%d-%d\n", i, j)
		}
	}
	b.WriteString(`networks:
  - name: public
    external: true
    subnets: [{name: public-v4, cidr: 198.18.0.0/16, gateway_ip: 198.18.0.1, enable_dhcp: false}]
`)
	for i := range n {
		fmt.Fprintf(&b, "  - name: net-%d\n    subnets: [{name: sub-%d, cidr: 10.%d.0.0/24}]\n", i, i, i)
	}
	b.WriteString("ports:\n")
	for i := range n {
		for j := range per {
			fmt.Fprintf(&b, "  - {name: vm-%d-%d-eth0, network: net-%d, instance: vm-%d-%d}\n", i, j, i, i, j)
		}
	}
	b.WriteString("routers:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - name: r-%d\n    external_gateway: {network: public}\n    interfaces: [sub-%d]\n", i, i)
	}
	b.WriteString("floating_ips:\n")
	k := 0
	for i := range n {
		for j := range per {
			k++
			port := fmt.Sprintf(", port: vm-%d-%d-eth0", i, j)
			if i == 0 && j == 1 {
				port = ""
			}
			fmt.Fprintf(&b, "  - {address: 198.18.1.%d, network: public%s}\n", k, port)
		}
	}
	return b.String()
}

// Kill stops the daemon with SIGKILL: no cleanup code runs.
func (e *Env) Kill() {
	e.daemon.Process.Kill()
	e.daemon.Wait()
}

// waitFirstFullPass waits until the agent of a just started daemon has
// finished its first (full) pass and returns its health. A pass may follow
// before the status is read (a retry, a store write): the health's changes
// count every pass since the start, so "none" still means none.
func (e *Env) waitFirstFullPass() map[string]any {
	e.t.Helper()
	var health map[string]any
	eventually(e.t, 60*time.Second, "first full pass", func() error {
		_, body := e.API("GET", "/nsnet/status", nil)
		health, _ = body["agent"].(map[string]any)
		if full, _ := health["full_passes"].(float64); full < 1 {
			return fmt.Errorf("agent: %v", health)
		}
		return nil
	})
	return health
}

// kernelSnapshot is the identity of every kernel object under a prefix:
// what changes if nsnet deletes and recreates it, though it looks the same.
type kernelSnapshot map[string]string

func snapshotKernel(t *testing.T, prefix string) kernelSnapshot {
	t.Helper()
	s := kernelSnapshot{}
	for _, ns := range lab.Namespaces(prefix) {
		var st syscall.Stat_t
		if err := syscall.Stat("/run/netns/"+ns, &st); err != nil {
			t.Fatal(err)
		}
		s["netns "+ns] = fmt.Sprint("inode ", st.Ino)
		links, err := runOut("ip", "-n", ns, "-o", "link", "show")
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(strings.TrimSpace(links), "\n") {
			f := strings.Fields(line)
			name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
			s["link "+ns+"/"+name] = "ifindex " + strings.TrimSuffix(f[0], ":")
		}
		addrs, err := runOut("ip", "-n", ns, "-o", "-4", "addr", "show")
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(strings.TrimSpace(addrs), "\n") {
			if f := strings.Fields(line); len(f) > 3 {
				s["addr "+ns+"/"+f[1]+"/"+f[3]] = "present"
			}
		}
		for k, v := range nftIdentity(t, ns) {
			s[k] = v
		}
	}
	return s
}

// nftIdentity is the handles of every nft table of ns (NAT, security
// groups) and of its chains, sets and rules, and the element count of each
// set that nsnet fills. A counting set's elements are added by packets
// (the firewall's drop counters, one per port and reason, made by the
// first drop): traffic, not what nsnet writes. An IPv4-only instance's
// router solicitation, sent with backoff and dropped at its port
// (ipv6_off), adds one whenever it first comes.
func nftIdentity(t *testing.T, ns string) map[string]string {
	out, err := exec.Command("ip", "netns", "exec", ns, "nft", "-j", "list", "ruleset").Output()
	if err != nil {
		t.Fatalf("nft list ruleset in %s: %v", ns, err)
	}
	var doc struct {
		Nftables []map[string]json.RawMessage `json:"nftables"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatalf("nft -j in %s: %v", ns, err)
	}
	id := map[string]string{}
	for _, obj := range doc.Nftables {
		for kind, raw := range obj {
			var o struct {
				Family string `json:"family"`
				Table  string `json:"table"`
				Name   string `json:"name"`
				Chain  string `json:"chain"`
				Handle int    `json:"handle"`
				Elem   []any  `json:"elem"`
				// A set's statements for its elements: a counter in
				// each marks the drop counters (nft 1.0.6 does not
				// print their "dynamic" flag).
				Stmt json.RawMessage `json:"stmt"`
			}
			if kind == "metainfo" || json.Unmarshal(raw, &o) != nil {
				continue
			}
			key := fmt.Sprintf("nft %s %s %s %s %s%s#%d", ns, o.Family, o.Table, kind, o.Chain, o.Name, o.Handle)
			if kind == "set" && bytes.Contains(o.Stmt, []byte(`"counter"`)) {
				id[key] = fmt.Sprintf("handle %d, dynamic", o.Handle)
				continue
			}
			id[key] = fmt.Sprintf("handle %d, %d elements", o.Handle, len(o.Elem))
		}
	}
	return id
}

func (s kernelSnapshot) diff(after kernelSnapshot) string {
	var lines []string
	for _, k := range slices.Sorted(maps.Keys(s)) {
		switch v, ok := after[k]; {
		case !ok:
			lines = append(lines, "- "+k+": "+s[k])
		case v != s[k]:
			lines = append(lines, "~ "+k+": "+s[k]+" → "+v)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(after)) {
		if _, ok := s[k]; !ok {
			lines = append(lines, "+ "+k+": "+after[k])
		}
	}
	if len(lines) > 20 {
		lines = append(lines[:20], fmt.Sprintf("… and %d more", len(lines)-20))
	}
	return strings.Join(lines, "\n")
}

// tcpStream is one long TCP connection from an instance to a server on the
// far host, carrying a chunk every 10ms until stopped.
type tcpStream struct {
	client, server *exec.Cmd
	stopFile       string
	clientOut      *strings.Builder
	serverOut      *lab.SyncBuffer
}

const streamServer = `
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 9000)); s.listen(1); print("listening", flush=True)
c, _ = s.accept(); n = 0
while True:
    b = c.recv(65536)
    if not b: break
    n += len(b)
print(n, flush=True)
`

const streamClient = `
import os, socket, sys, time
c = socket.create_connection((sys.argv[1], 9000), timeout=5); n = 0
while not os.path.exists(sys.argv[2]):
    c.sendall(b"x" * 1000); n += 1000; time.sleep(0.01)
c.shutdown(socket.SHUT_WR); c.recv(1); print(n, flush=True)
`

func startTCPStream(t *testing.T, serverNS, serverAddr, clientNS string) *tcpStream {
	t.Helper()
	s := &tcpStream{stopFile: filepath.Join(t.TempDir(), "stop"), clientOut: &strings.Builder{}, serverOut: &lab.SyncBuffer{}}
	s.server = exec.Command("ip", "netns", "exec", serverNS, "python3", "-c", streamServer, serverAddr)
	s.server.Stdout = s.serverOut
	if err := s.server.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.server.Process.Kill(); s.server.Wait() })
	eventually(t, 5*time.Second, "stream server listens", func() error {
		if !strings.Contains(s.serverOut.String(), "listening") {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	s.client = exec.Command("ip", "netns", "exec", clientNS, "python3", "-c", streamClient, serverAddr, s.stopFile)
	s.client.Stdout = s.clientOut
	if err := s.client.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.client.Process.Kill(); s.client.Wait() })
	return s
}

// stop ends the stream and returns the bytes the client sent and the
// server received.
func (s *tcpStream) stop() (sent, received int, err error) {
	os.WriteFile(s.stopFile, nil, 0o644)
	if err := s.client.Wait(); err != nil {
		return 0, 0, fmt.Errorf("client: %w", err)
	}
	if err := s.server.Wait(); err != nil {
		return 0, 0, fmt.Errorf("server: %w", err)
	}
	sent, _ = strconv.Atoi(strings.TrimSpace(s.clientOut.String()))
	lines := strings.Fields(s.serverOut.String())
	received, _ = strconv.Atoi(lines[len(lines)-1])
	return sent, received, nil
}

// pinger is ping running until stopped, every 20ms, reporting each answer.
type pinger struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	seqs map[int]bool
	done chan struct{}
}

var icmpSeq = regexp.MustCompile(`icmp_seq=(\d+) ttl=`)

func startPing(t *testing.T, fromNS, to string) *pinger {
	t.Helper()
	p := &pinger{seqs: map[int]bool{}, done: make(chan struct{})}
	p.cmd = exec.Command("ip", "netns", "exec", fromNS, "ping", "-n", "-i", "0.02", to)
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.cmd.Process.Kill(); p.cmd.Wait() })
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if m := icmpSeq.FindStringSubmatch(sc.Text()); m != nil {
				n, _ := strconv.Atoi(m[1])
				p.mu.Lock()
				p.seqs[n] = true
				p.mu.Unlock()
			}
		}
	}()
	return p
}

// stop ends the ping and returns how many requests were answered and which
// sequence numbers before the last answered one were not.
func (p *pinger) stop() (answered int, missing []int) {
	p.cmd.Process.Signal(os.Interrupt)
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	last := 0
	for n := range p.seqs {
		last = max(last, n)
	}
	for n := 1; n <= last; n++ {
		if !p.seqs[n] {
			missing = append(missing, n)
		}
	}
	return len(p.seqs), missing
}

// TestRestartKeepsStatuses: what the API shows of the objects' statuses
// right after the daemon starts again is what it showed before, whether
// it stopped cleanly or was killed after the agent had reported them and
// the store had committed desired state since (a bbolt store files the
// agent's reports with the next commit of desired state, not in
// commits of their own). It logs, too, how long after a start the API
// shows every port ACTIVE again when the daemon was killed right after
// its last report, which the store may have lost: the window until the
// agent's first pass reports again.
func TestRestartKeepsStatuses(t *testing.T) {
	const ports = 5
	e := Start(t)
	e.MustNsnet("network", "create", "blue")
	e.MustNsnet("subnet", "create", "blue-v4", "--network", "blue", "--subnet-range", "192.168.24.0/24")
	statuses := func() map[string]string {
		t.Helper()
		code, body := e.API("GET", "/v2.0/ports", nil)
		if code != 200 {
			t.Fatalf("list ports: %d %v", code, body)
		}
		var list struct {
			Ports []struct{ Name, Status string } `json:"ports"`
		}
		raw, _ := json.Marshal(body)
		if err := json.Unmarshal(raw, &list); err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, p := range list.Ports {
			if strings.HasPrefix(p.Name, "vm") { // not the DHCP port
				got[p.Name] = p.Status
			}
		}
		return got
	}
	want := map[string]string{}
	for i := range ports {
		vm := fmt.Sprintf("vm%d", i)
		e.MustNsnet("instance", "create", vm)
		e.MustNsnet("port", "create", vm+"-eth0", "--network", "blue", "--device", vm) // waits until programmed
		want[vm+"-eth0"] = "ACTIVE"
	}
	if got := statuses(); !maps.Equal(got, want) {
		t.Fatalf("port statuses before the restarts: %v, want %v", got, want)
	}
	for _, tc := range []struct {
		name string
		stop func()
	}{
		{"SIGTERM", e.stopDaemon},
		{"SIGKILL after a commit", func() {
			// Desired state committed after the reports; the
			// agent's reports of it may be lost.
			e.MustNsnet("network", "set", "blue", "--description", "after the reports")
			e.Kill()
		}},
	} {
		tc.stop()
		e.startDaemon()
		if got := statuses(); !maps.Equal(got, want) {
			t.Errorf("after %s: port statuses %v right after the start, want %v", tc.name, got, want)
		}
		e.waitFirstFullPass()
	}

	// Killed right after a report: the API may show BUILD until the
	// agent's first pass reports again. How long, is logged.
	e.MustNsnet("instance", "create", "vm-last")
	e.MustNsnet("port", "create", "vm-last-eth0", "--network", "blue", "--device", "vm-last")
	want["vm-last-eth0"] = "ACTIVE"
	e.Kill()
	start := time.Now()
	e.startDaemon()
	up := time.Since(start)
	first := statuses()
	eventually(t, 60*time.Second, "every port ACTIVE after a kill", func() error {
		if got := statuses(); !maps.Equal(got, want) {
			return fmt.Errorf("port statuses %v, want %v", got, want)
		}
		return nil
	})
	t.Logf("killed right after a report: API up %v after the start, showing %v; every port ACTIVE %v after the start",
		up.Round(time.Millisecond), first, time.Since(start).Round(time.Millisecond))
}
