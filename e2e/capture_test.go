package e2e

import (
	"bufio"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nsnet/nsnet/internal/lab"
)

// TestCapture captures a ping between two instances, as the seeds do with
// tcpdump on veth1: into a pcap file that Debian's tcpdump reads back, and
// as JSON lines on the network's bridge. No capture socket outlives the
// command.
func TestCapture(t *testing.T) {
	e := Start(t)
	e.MustNsnet("network", "create", "blue")
	e.MustNsnet("subnet", "create", "blue-v4", "--network", "blue", "--subnet-range", "192.168.24.0/24")
	for _, vm := range []string{"red", "green"} {
		e.MustNsnet("instance", "create", vm)
		e.MustNsnet("port", "create", vm+"-eth0", "--network", "blue", "--device", vm)
	}
	greenIP := fixedIP(jsonOf(t, e.MustNsnet("port", "show", "green-eth0", "-o", "json")))

	// Two pings captured on red's interface into a file: two requests
	// out, two replies in.
	file := filepath.Join(t.TempDir(), "red.pcap")
	capture := e.startNsnet("capture", "red", "--filter", "icmp and host "+greenIP, "--count", "4", "-w", file)
	if out, err := e.In("red", "ping", "-c", "2", "-i", "0.2", "-W", "2", greenIP); err != nil {
		t.Fatalf("ping green: %v\n%s", err, out)
	}
	if out := capture.wait(t); !strings.Contains(out, "4 packets captured") {
		t.Errorf("capture said:\n%s", out)
	}
	read, err := exec.Command("tcpdump", "-nr", file).CombinedOutput()
	if err != nil {
		t.Fatalf("tcpdump -r: %v\n%s", err, read)
	}
	if n := strings.Count(string(read), "> "+greenIP+": ICMP echo request"); n != 2 {
		t.Errorf("tcpdump read %d echo requests to %s, want 2:\n%s", n, greenIP, read)
	}
	if n := strings.Count(string(read), greenIP+" > "); n != 2 {
		t.Errorf("tcpdump read %d replies from %s, want 2:\n%s", n, greenIP, read)
	}

	// The same as a pcap stream on standard output, into tcpdump -r -.
	stream := e.startNsnet("capture", "red", "--filter", "icmp", "--count", "2", "-w", "-")
	if out, err := e.In("red", "ping", "-c", "1", "-W", "2", greenIP); err != nil {
		t.Fatalf("ping green: %v\n%s", err, out)
	}
	stream.wait(t)
	tcpdump := exec.Command("tcpdump", "-nr", "-")
	tcpdump.Stdin = strings.NewReader(stream.stdout())
	if read, err := tcpdump.CombinedOutput(); err != nil || strings.Count(string(read), "ICMP echo") != 2 {
		t.Errorf("tcpdump -r - of nsnet capture -w -: %v\n%s", err, read)
	}

	// On the bridge, as JSON lines: the request red sends crosses it.
	bridge := e.startNsnet("capture", "network:blue", "--filter", "icmp and dst host "+greenIP, "--count", "1", "-o", "json")
	if out, err := e.In("red", "ping", "-c", "1", "-W", "2", greenIP); err != nil {
		t.Fatalf("ping green: %v\n%s", err, out)
	}
	bridge.wait(t)
	var rec map[string]any
	if err := json.Unmarshal([]byte(bridge.stdout()), &rec); err != nil {
		t.Fatalf("capture -o json printed %q: %v", bridge.stdout(), err)
	}
	if rec["dst"] != greenIP || rec["protocol"] != "icmp" || !strings.HasPrefix(rec["interface"].(string), "nsb-") {
		t.Errorf("bridge capture record %v", rec)
	}
	noCaptureLeft(t, e.HostNetns, e.Netns("red"))

	// Bad filters are usage errors that name the problem.
	out, err := e.Nsnet("capture", "red", "--filter", "tcp and prot 80")
	if err == nil || !strings.Contains(out, `unknown word "prot"`) {
		t.Errorf("bad filter: %v\n%s", err, out)
	}
}

// bgNsnet is an nsnet command running in the background.
type bgNsnet struct {
	cmd         *exec.Cmd
	out, errOut lab.SyncBuffer
	done        chan error
}

// startNsnet starts an nsnet command that announces on stderr that it is
// ready ("capturing on …", "tracing …") and waits for that line.
func (e *Env) startNsnet(args ...string) *bgNsnet {
	t := e.t
	t.Helper()
	b := &bgNsnet{done: make(chan error, 1)}
	b.cmd = exec.Command(nsnetBin, append([]string{"--socket", e.Socket}, args...)...)
	b.cmd.Stdout = &b.out
	stderr, err := b.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		first := true
		for sc.Scan() {
			b.errOut.Write([]byte(sc.Text() + "\n"))
			if first {
				close(ready)
				first = false
			}
		}
		if first {
			close(ready)
		}
		b.done <- b.cmd.Wait()
	}()
	t.Cleanup(func() { b.cmd.Process.Kill() })
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		t.Fatalf("nsnet %v did not start", args)
	}
	return b
}

func (b *bgNsnet) stdout() string { return b.out.String() }

// wait waits for the command to end and returns its stderr.
func (b *bgNsnet) wait(t *testing.T) string {
	t.Helper()
	select {
	case err := <-b.done:
		if err != nil {
			t.Fatalf("%v: %v\n%s%s", b.cmd.Args, err, b.out.String(), b.errOut.String())
		}
	case <-time.After(15 * time.Second):
		b.cmd.Process.Kill()
		t.Fatalf("%v did not finish:\n%s%s", b.cmd.Args, b.out.String(), b.errOut.String())
	}
	return b.errOut.String()
}

// noCaptureLeft fails the test if any namespace still holds a packet
// socket (/proc/net/packet lists them per namespace) or an nft trace table.
func noCaptureLeft(t *testing.T, namespaces ...string) {
	t.Helper()
	for _, ns := range namespaces {
		out, err := exec.Command("ip", "netns", "exec", ns, "cat", "/proc/net/packet").CombinedOutput()
		if err != nil {
			t.Fatalf("read /proc/net/packet in %s: %v\n%s", ns, err, out)
		}
		if lines := strings.Split(strings.TrimSpace(string(out)), "\n"); len(lines) > 1 {
			t.Errorf("packet sockets left in %s:\n%s", ns, out)
		}
		rules, err := exec.Command("ip", "netns", "exec", ns, "nft", "list", "tables").CombinedOutput()
		if err != nil {
			t.Fatalf("nft list tables in %s: %v\n%s", ns, err, rules)
		}
		if strings.Contains(string(rules), "nsnet_trace") {
			t.Errorf("trace table left in %s:\n%s", ns, rules)
		}
	}
}
