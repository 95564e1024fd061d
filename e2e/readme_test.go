package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nsnet/nsnet/internal/lab"
)

// tourScript is the README's tour: the sh blocks between its
// <!-- tour:begin --> and <!-- tour:end --> markers, in order, leaving out
// what stands between <!-- tour:pause --> and <!-- tour:resume -->.
func tourScript(readme string) (string, bool) {
	_, rest, ok := strings.Cut(readme, "<!-- tour:begin -->")
	if !ok {
		return "", false
	}
	tour, _, ok := strings.Cut(rest, "<!-- tour:end -->")
	if !ok {
		return "", false
	}
	for {
		before, after, ok := strings.Cut(tour, "<!-- tour:pause -->")
		if !ok {
			break
		}
		_, resumed, ok := strings.Cut(after, "<!-- tour:resume -->")
		if !ok {
			return "", false
		}
		tour = before + resumed
	}
	var blocks []string
	for _, m := range shBlock.FindAllStringSubmatch(tour, -1) {
		blocks = append(blocks, m[1])
	}
	return strings.Join(blocks, ""), len(blocks) > 0
}

var shBlock = regexp.MustCompile("(?s)```sh\n(.*?)```")

// TestReadmeTour runs the README's five-minute tour as a script, as
// written: the same commands in the same order, with the tour's names made
// unique (its lab- prefix, its /tmp/nsnet-lab directory) and the nsnet
// built for the tests in place of bin/nsnet. Every command must succeed,
// and the traces must show what the README says they show.
func TestReadmeTour(t *testing.T) {
	raw, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	script, ok := tourScript(string(raw))
	if !ok {
		t.Fatal("README.md has no tour between <!-- tour:begin --> and <!-- tour:end -->")
	}
	// Interface names hold 15 bytes: the tour's lab-uplink must fit
	// with the prefix in place of lab-.
	prefix := "nsr" + lab.RandomHex(2) + "-"
	dir := t.TempDir()
	var lines []string
	for _, l := range strings.Split(script, "\n") {
		if strings.HasPrefix(l, "go build ") {
			continue // the tests' nsnet is built already
		}
		lines = append(lines, l)
	}
	script = strings.Join(lines, "\n")
	script = strings.ReplaceAll(script, "/tmp/nsnet-lab", dir)
	script = strings.ReplaceAll(script, "lab-", prefix)
	script = strings.ReplaceAll(script, "bin/nsnet", nsnetBin)
	// The test stops the daemon the tour starts in the background.
	pidFile := filepath.Join(dir, "daemon.pid")
	script = strings.Replace(script, "2>&1 &\n", "2>&1 &\necho $! >"+pidFile+"\n", 1)

	t.Cleanup(func() {
		if b, err := os.ReadFile(pidFile); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				syscall.Kill(pid, syscall.SIGTERM)
				for i := 0; i < 100 && syscall.Kill(pid, 0) == nil; i++ {
					time.Sleep(100 * time.Millisecond)
				}
			}
		}
		if out, err := exec.Command(nsnetBin, "cleanup", "--host-netns", prefix+"host", "--netns-prefix", prefix).CombinedOutput(); err != nil {
			t.Errorf("nsnet cleanup: %v\n%s", err, out)
		}
		// What the README says to delete by hand: the outside world and
		// the host namespace.
		exec.Command("ip", "netns", "delete", prefix+"internet").Run()
		exec.Command("ip", "netns", "delete", prefix+"host").Run()
		if left := lab.RemoveNamespaces(prefix); len(left) > 0 {
			t.Errorf("namespaces left behind after cleanup: %v", left)
		}
		if b, err := os.ReadFile(filepath.Join(dir, "daemon.log")); err == nil && t.Failed() {
			t.Logf("daemon log:\n%s", b)
		}
	})

	file := filepath.Join(dir, "tour.sh")
	if err := os.WriteFile(file, []byte("set -e -o pipefail\n"+script), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-x", file)
	cmd.Dir = dir
	b, err := cmd.CombinedOutput()
	out := string(b)
	if err != nil {
		t.Fatalf("the tour failed: %v\n%s", err, out)
	}
	for _, want := range []string{
		"vm1.nsnet.internal",           // getent hosts vm1 in vm3, whose address came by DHCP
		"SNAT 10.0.0.20 → 198.51.100.", // trace vm2: r1's default SNAT
		"in router r1",
		"SNAT 192.168.24.", // trace red: the host's masquerade at its uplink
		"→ 192.0.2.2",
		"in host uplink",
		"DNAT 198.51.100.11:8080 → 10.0.0.20:80", // the port forward
		"no listener",                            // vm2 → vm1:81
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the tour's output lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "\nAnswered: "); n < 3 {
		t.Errorf("%d traces answered, want the three that go through (vm2 and red out, the port forward in):\n%s", n, out)
	}
	if fi, err := os.Stat(filepath.Join(dir, "public.pcap")); err != nil || fi.Size() <= 24 {
		t.Errorf("the capture wrote no packets to public.pcap: %v", err)
	}
}
