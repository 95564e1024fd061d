package e2e

import (
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nsnet/nsnet/internal/lab"
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
