// Package storetest gives tests a store of either implementation: a bbolt
// file, or a real etcd (Debian's etcd-server binary) that it starts as a
// plain process on 127.0.0.1 with free ports and a temporary data
// directory, and stops and removes when done.
//
// It owns that etcd process and the NSNET_TEST_STORE switch. It must not be
// imported by the product.
package storetest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/nsnet/nsnet/internal/store"
)

// EnvStore selects the backend of Open: unset or "bolt" for a bbolt file,
// "etcd" for one etcd this test binary starts and shares, or an
// etcd://HOST:PORT URL of a running cluster. Each test gets its own key
// prefix, so tests never see each other's records.
const EnvStore = "NSNET_TEST_STORE"

// Binary is the etcd server the tests run.
const Binary = "etcd"

// Etcd is an etcd server process for tests.
type Etcd struct {
	dir                string
	clientURL, peerURL string
	args               []string // extra flags, as --max-txn-ops 1000
	cmd                *exec.Cmd
	log                bytes.Buffer
	done               chan struct{}
}

// Endpoint is the server's client address, host:port.
func (e *Etcd) Endpoint() string { return strings.TrimPrefix(e.clientURL, "http://") }

// URL is the --store value of the server, with a prefix of its own.
func (e *Etcd) URL(prefix string) string { return "etcd://" + e.Endpoint() + "/" + prefix }

// StartEtcd runs an etcd server for tb, stopped and its data removed when
// tb ends, with args added to its command line (as "--max-txn-ops",
// "2000" for bulk creates of many ports). It skips tb when the binary is
// missing (apt-get install etcd-server; scripts/deps.sh installs it).
func StartEtcd(tb testing.TB, args ...string) *Etcd {
	tb.Helper()
	if _, err := exec.LookPath(Binary); err != nil {
		tb.Skipf("etcd server binary %q not found (apt-get install etcd-server, as scripts/deps.sh does): %v", Binary, err)
	}
	e, err := Launch(args...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(e.Remove)
	return e
}

// Launch runs an etcd server outside a test (for a benchmark), with args
// added to its command line; Remove stops it and deletes its data.
func Launch(args ...string) (*Etcd, error) {
	dir, err := os.MkdirTemp("", "nsnet-etcd-")
	if err != nil {
		return nil, err
	}
	e, err := startEtcd(dir, args...)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return e, nil
}

// Remove stops the server and deletes its data directory.
func (e *Etcd) Remove() {
	e.Stop()
	os.RemoveAll(e.dir)
}

func startEtcd(dir string, args ...string) (*Etcd, error) {
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	e := &Etcd{dir: dir, args: args,
		clientURL: fmt.Sprintf("http://127.0.0.1:%d", ports[0]),
		peerURL:   fmt.Sprintf("http://127.0.0.1:%d", ports[1])}
	if err := e.Start(); err != nil {
		return nil, err
	}
	return e, nil
}

// freePorts finds n ports free on 127.0.0.1 (held together, so distinct).
func freePorts(n int) ([]int, error) {
	var out []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}

// Start starts the server (again, after Stop, on the same data and ports)
// and waits until it answers.
func (e *Etcd) Start() error {
	e.log.Reset()
	cmd := exec.Command(Binary,
		"--name", "nsnet-test",
		"--data-dir", filepath.Join(e.dir, "data"),
		"--listen-client-urls", e.clientURL, "--advertise-client-urls", e.clientURL,
		"--listen-peer-urls", e.peerURL, "--initial-advertise-peer-urls", e.peerURL,
		"--initial-cluster", "nsnet-test="+e.peerURL,
		"--log-level", "warn", "--logger", "zap")
	cmd.Args = append(cmd.Args, e.args...)
	cmd.Stdout, cmd.Stderr = &e.log, &e.log
	// If the test binary dies, so does its etcd. In a process group of
	// its own, as the lab's daemons are: a Ctrl-C at a benchmark's
	// terminal signals the whole foreground group, and an etcd taken
	// with it would leave the benchmark's teardown (deletes through the
	// daemons' API) waiting out the store's timeout on every request.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start etcd: %w", err)
	}
	e.cmd, e.done = cmd, make(chan struct{})
	go func() { cmd.Wait(); close(e.done) }()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		s, err := store.OpenEtcd(ctx, store.EtcdConfig{Endpoints: []string{e.Endpoint()}, RequestTimeout: time.Second})
		if err == nil {
			s.Close()
			return nil
		}
		select {
		case <-e.done:
			return fmt.Errorf("etcd exited at start: %s", e.log.String())
		case <-ctx.Done():
			e.Stop()
			return fmt.Errorf("etcd did not answer within a minute: %v; log: %s", err, e.log.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Stop kills the server (SIGKILL: as a crash would) and waits for it.
func (e *Etcd) Stop() {
	if e.cmd == nil {
		return
	}
	e.cmd.Process.Kill()
	<-e.done
	e.cmd = nil
}

var shared struct {
	once sync.Once
	e    *Etcd
	err  error
}

// sharedEtcd is the one etcd of this test binary, started at first use;
// Main stops it.
func sharedEtcd(tb testing.TB) *Etcd {
	tb.Helper()
	if _, err := exec.LookPath(Binary); err != nil {
		tb.Skipf("etcd server binary %q not found (apt-get install etcd-server, as scripts/deps.sh does): %v", Binary, err)
	}
	shared.once.Do(func() {
		dir, err := os.MkdirTemp("", "nsnet-etcd-")
		if err != nil {
			shared.err = err
			return
		}
		shared.e, shared.err = startEtcd(dir)
		if shared.err != nil {
			os.RemoveAll(dir)
		}
	})
	if shared.err != nil {
		tb.Fatal(shared.err)
	}
	return shared.e
}

// Main runs a package's tests and then stops the shared etcd, if any
// test started it: call it from TestMain as os.Exit(storetest.Main(m)).
func Main(m *testing.M) int {
	code := m.Run()
	if e := shared.e; e != nil {
		e.Stop()
		os.RemoveAll(e.dir)
	}
	return code
}

// OpenEtcd opens a store in the shared etcd under a prefix of tb's own,
// closed when tb ends.
func OpenEtcd(tb testing.TB) *store.Etcd {
	tb.Helper()
	e := sharedEtcd(tb)
	return openEtcdAt(tb, []string{e.Endpoint()}, "/nsnet-test/"+uuid.NewString())
}

// OpenPeer opens another store on s's cluster and prefix, as another
// process (another host's daemon) would, closed when tb ends.
func OpenPeer(tb testing.TB, s *store.Etcd) *store.Etcd {
	tb.Helper()
	return openEtcdAt(tb, s.Endpoints(), s.Prefix())
}

func openEtcdAt(tb testing.TB, endpoints []string, prefix string) *store.Etcd {
	tb.Helper()
	s, err := store.OpenEtcd(context.Background(), store.EtcdConfig{Endpoints: endpoints, Prefix: prefix})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// OpenBolt opens a store file in dir, closed when tb ends.
func OpenBolt(tb testing.TB, dir string) *store.Bolt {
	tb.Helper()
	s, err := store.OpenBolt(filepath.Join(dir, "state.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// Open opens the store EnvStore selects (a bbolt file in dir by default),
// closed when tb ends.
func Open(tb testing.TB, dir string) store.Store {
	tb.Helper()
	switch v := os.Getenv(EnvStore); {
	case v == "" || v == "bolt":
		return OpenBolt(tb, dir)
	case v == "etcd":
		return OpenEtcd(tb)
	case strings.HasPrefix(v, "etcd://"):
		cfg, err := store.ParseEtcdURL(v)
		if err != nil {
			tb.Fatalf("%s: %v", EnvStore, err)
		}
		return openEtcdAt(tb, cfg.Endpoints, cfg.Prefix+"/"+uuid.NewString())
	default:
		tb.Fatalf("%s=%q: want bolt, etcd or etcd://HOST:PORT", EnvStore, v)
		return nil
	}
}

// DaemonStore is the --store value EnvStore selects for a daemon under
// test, with a prefix of its own: empty for the default bbolt file.
func DaemonStore(tb testing.TB) string {
	tb.Helper()
	switch v := os.Getenv(EnvStore); {
	case v == "" || v == "bolt":
		return ""
	case v == "etcd":
		return sharedEtcd(tb).URL("nsnet-test/" + uuid.NewString())
	case strings.HasPrefix(v, "etcd://"):
		if _, err := store.ParseEtcdURL(v); err != nil {
			tb.Fatalf("%s: %v", EnvStore, err)
		}
		host, _, _ := strings.Cut(strings.TrimPrefix(v, "etcd://"), "/")
		return "etcd://" + host + "/nsnet-test/" + uuid.NewString()
	default:
		tb.Fatalf("%s=%q: want bolt, etcd or etcd://HOST:PORT", EnvStore, v)
		return ""
	}
}
