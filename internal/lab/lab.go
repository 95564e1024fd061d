// Package lab holds what nsnet's benchmarks and end-to-end tests share:
// building and running the nsnet daemon they measure, finding, naming and
// removing the namespaces they make, running a benchmark so that it always
// tears down, and summarising their rounds. It measures nothing itself,
// and is never part of the product.
package lab

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nsnet/nsnet/internal/client"
	"github.com/nsnet/nsnet/internal/netns"
)

// Median is the middle value of xs (the upper one of an even count), which
// one slow round on a noisy machine does not move. xs must not be empty.
func Median[T cmp.Ordered](xs []T) T {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// Namespaces lists the named namespaces whose names start with prefix.
func Namespaces(prefix string) []string {
	names, _ := netns.List()
	var found []string
	for _, name := range names {
		if strings.HasPrefix(name, prefix) {
			found = append(found, name)
		}
	}
	return found
}

// RunTests runs a test binary's tests and fails the binary when one of
// them left a namespace whose name starts with prefix behind, naming and
// deleting each: call it from TestMain in every package whose tests make
// namespaces, as os.Exit(lab.RunTests(m, "pkg", prefix)). Without root no
// test made any.
func RunTests(m interface{ Run() int }, pkg, prefix string) int {
	code := m.Run()
	if os.Geteuid() != 0 {
		return code
	}
	for _, name := range Namespaces(prefix) {
		fmt.Printf("%s: namespace left behind: %s\n", pkg, name)
		netns.Delete(name)
		code = 1
	}
	return code
}

// RemoveNamespaces deletes every named namespace whose name starts with
// prefix, with its /etc/netns files, and returns the names it found: a
// benchmark's last resort when what it built could not be deleted the way
// it was made (its daemon died, a step failed half-way).
func RemoveNamespaces(prefix string) []string {
	found := Namespaces(prefix)
	for _, name := range found {
		netns.Delete(name)
	}
	for _, name := range EtcEntries(prefix) {
		netns.RemoveEtc(name)
	}
	return found
}

// Main runs a benchmark and exits 1 when it fails. run's context ends at
// the first SIGINT or SIGTERM (a second one kills at once), and run must
// remove what it made before it returns, whatever happened: a log.Fatal
// inside it would skip the deferred teardown and leave namespaces behind.
func Main(run func(context.Context) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()
	err := run(ctx)
	stop()
	if err != nil {
		log.Print(err)
		os.Exit(1)
	}
}

// EtcEntries lists the entries of /etc/netns (the files `ip netns exec`
// puts in place for a namespace, like an instance's resolv.conf) whose
// names start with prefix.
func EtcEntries(prefix string) []string {
	entries, _ := os.ReadDir(netns.EtcDir)
	var found []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			found = append(found, e.Name())
		}
	}
	return found
}

// RandomHex is n random bytes in hex: a run's unique name prefix.
func RandomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// BuildNsnet compiles cmd/nsnet into dir and returns the binary's path. It
// must run from the repository root.
func BuildNsnet(dir string) (string, error) {
	bin := filepath.Join(dir, "nsnet")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/nsnet").CombinedOutput(); err != nil {
		return "", fmt.Errorf("build nsnet (run from the repository root): %v\n%s", err, out)
	}
	return bin, nil
}

// Daemon is an nsnet daemon a benchmark runs: its state and socket in a
// directory of the benchmark's, its namespaces named Prefix….
type Daemon struct {
	Socket, Prefix string
	cmd            *exec.Cmd
	logs           SyncBuffer
}

// StartDaemon starts bin as a daemon keeping its state and socket in dir
// (several daemons may share it: the names carry prefix), with args added
// to its command line (say --store), and waits until its API answers.
func StartDaemon(bin, dir, prefix string, args ...string) (*Daemon, error) {
	return StartDaemonLogging(bin, dir, prefix, nil, args...)
}

// StartDaemonLogging is StartDaemon with the daemon's output also copied
// to logs (when not nil), line by line behind "onebox: ". The daemon logs
// at warn unless args say otherwise (a later --log-level wins), and at
// warn it says nothing while things work: a caller that wants its passes
// in the log passes --log-level debug.
func StartDaemonLogging(bin, dir, prefix string, logs io.Writer, args ...string) (*Daemon, error) {
	d := &Daemon{Socket: filepath.Join(dir, prefix+"sock"), Prefix: prefix}
	d.cmd = exec.Command(bin, append([]string{"daemon", "--state-dir", filepath.Join(dir, prefix+"state"), "--socket", d.Socket,
		"--host-netns", prefix + "host", "--netns-prefix", prefix, "--log-level", "warn"}, args...)...)
	var out io.Writer = &d.logs
	if logs != nil {
		out = io.MultiWriter(&d.logs, &linePrefixer{w: logs, prefix: "onebox: "})
	}
	d.cmd.Stdout, d.cmd.Stderr = out, out
	// A process group of its own: a Ctrl-C at the terminal goes to the
	// benchmark alone, which still needs the daemon for its teardown.
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := d.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start daemon: %w", err)
	}
	c, err := client.New(client.Config{Socket: d.Socket})
	if err != nil {
		d.Stop()
		return nil, err
	}
	for start := time.Now(); ; time.Sleep(20 * time.Millisecond) {
		if _, err := c.Status(context.Background()); err == nil {
			return d, nil
		}
		// Generous: the first request of a daemon on a big store written
		// behind its back (a benchmark's fill) builds the indexes first.
		if time.Since(start) > 2*time.Minute {
			d.Stop()
			return nil, fmt.Errorf("daemon did not start:\n%s", d.logs.String())
		}
	}
}

// Pid is the daemon's process id.
func (d *Daemon) Pid() int { return d.cmd.Process.Pid }

// Stop interrupts the daemon and waits for it to exit. What it built stays:
// deleting that is the benchmark's teardown.
func (d *Daemon) Stop() {
	d.cmd.Process.Signal(os.Interrupt)
	d.cmd.Wait()
}

// SyncBuffer collects what a process writes (its output copied by os/exec's
// goroutine) for a reader in another goroutine.
type SyncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *SyncBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *SyncBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
