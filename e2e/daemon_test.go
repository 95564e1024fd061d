package e2e

import (
	"errors"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nsnet/nsnet/internal/lab"
	"github.com/nsnet/nsnet/internal/netns"
)

// TestDaemonRefusesTCPWithoutToken: the API on TCP without authentication
// would be an open door, so the daemon will not start that way.
func TestDaemonRefusesTCPWithoutToken(t *testing.T) {
	dir := t.TempDir()
	out, err := exec.Command(nsnetBin, "daemon", "--state-dir", dir, "--socket", filepath.Join(dir, "sock"),
		"--host-netns", "nse-never-made", "--listen", freeLoopbackAddr(t)).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--token-file") {
		t.Fatalf("daemon --listen without --token-file: err=%v\n%s", err, out)
	}
	if ns := lab.Namespaces("nse-never-made"); len(ns) > 0 {
		t.Errorf("a daemon that refused to start made %v", ns)
	}
}

// TestTCPNeedsTheToken: on TCP, a request without the right X-Auth-Token is
// answered 401 in Neutron's error format; with it, the API answers.
func TestTCPNeedsTheToken(t *testing.T) {
	e := Start(t, WithTCP())
	for _, tc := range []struct {
		token string
		want  int
	}{{"", 401}, {"not-" + e.Token, 401}, {e.Token, 200}} {
		req, _ := http.NewRequest("GET", e.Endpoint+"/v2.0/networks", nil)
		if tc.token != "" {
			req.Header.Set("X-Auth-Token", tc.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("token %q: status %d, want %d", tc.token, resp.StatusCode, tc.want)
		}
		if tc.want == 401 && !strings.Contains(resp.Header.Get("Content-Type"), "json") {
			t.Errorf("401 should carry a NeutronError JSON body")
		}
	}
	// The socket is root's only.
	if out, _ := exec.Command("stat", "-c", "%a", e.Socket).Output(); strings.TrimSpace(string(out)) != "600" {
		t.Errorf("socket mode %s, want 600", out)
	}
}

// TestOneDaemonPerHost: a second daemon with its own state and socket but
// the host namespace of a running one would take the running one's
// namespaces and links for leftovers of its own and delete them, and the
// two would fight. It refuses to start, naming the running one's pid,
// before it touches the kernel; with the same prefix, and with another
// (the links in the host namespace are shared all the same). The lock
// goes with its holder: once the first daemon is killed, a daemon starts
// on the same host.
func TestOneDaemonPerHost(t *testing.T) {
	e := Start(t)
	e.MustNsnet("network", "create", "n1")
	e.MustNsnet("subnet", "create", "s1", "--network", "n1", "--subnet-range", "10.61.0.0/24")
	e.MustNsnet("instance", "create", "vm1")
	e.MustNsnet("port", "create", "vm1-eth0", "--network", "n1", "--device", "vm1")
	namespaces := lab.Namespaces(e.Prefix)
	vm1, err := netns.Inode(e.Netns("vm1"))
	if err != nil {
		t.Fatal(err)
	}
	pid := strconv.Itoa(e.daemon.Process.Pid)

	for _, prefix := range []string{e.Prefix, e.Prefix + "b-"} {
		dir := t.TempDir()
		second := exec.Command(nsnetBin, "daemon", "--state-dir", dir, "--socket", filepath.Join(dir, "sock"),
			"--host-netns", e.HostNetns, "--netns-prefix", prefix)
		var out lab.SyncBuffer
		second.Stdout, second.Stderr = &out, &out
		if err := second.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- second.Wait() }()
		var exitErr error
		eventually(t, 30*time.Second, "the second daemon (prefix "+prefix+") exits", func() error {
			select {
			case exitErr = <-exited:
				return nil
			default:
			}
			if conn, err := net.Dial("unix", filepath.Join(dir, "sock")); err == nil {
				conn.Close()
				second.Process.Kill()
				t.Fatalf("a second daemon on host namespace %s (prefix %s) started:\n%s", e.HostNetns, prefix, out.String())
			}
			return errors.New("still running")
		})
		if exitErr == nil || !strings.Contains(out.String(), "pid "+pid) || !strings.Contains(out.String(), e.HostNetns) {
			t.Errorf("second daemon (prefix %s): exit %v, want an error naming pid %s and %s:\n%s", prefix, exitErr, pid, e.HostNetns, out.String())
		}
		if now := lab.Namespaces(e.Prefix); !slices.Equal(now, namespaces) {
			t.Errorf("second daemon (prefix %s) changed the namespaces: %v, was %v", prefix, now, namespaces)
		}
		if now, _ := netns.Inode(e.Netns("vm1")); now != vm1 {
			t.Errorf("second daemon (prefix %s) replaced vm1's namespace", prefix)
		}
	}

	// A crash leaves the lock file, but not the lock.
	e.Kill()
	e.startDaemon()
	e.waitFirstFullPass()
	if now, _ := netns.Inode(e.Netns("vm1")); now != vm1 {
		t.Errorf("the restarted daemon replaced vm1's namespace")
	}
}
