// Package e2e drives a real nsnet daemon, as root, the way users do: through
// the nsnet CLI, the OpenStack CLI and the REST API, and proves what it built
// with real traffic inside namespaces.
//
// Every test gets its own daemon, its own host namespace and a unique name
// prefix; when it ends, the harness tears its topology down through the API
// and fails the test if any namespace or link the daemon made survives.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nsnet/nsnet/internal/lab"
	"github.com/nsnet/nsnet/internal/netns"
	"github.com/nsnet/nsnet/internal/store/storetest"
)

// nsnetBin is the nsnet binary built once for the whole run.
var nsnetBin string

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		fmt.Println("e2e: skipped, needs root (network namespaces)")
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "nsnet-e2e-")
	if err != nil {
		panic(err)
	}
	nsnetBin = filepath.Join(dir, "nsnet")
	build := exec.Command("go", "build", "-o", nsnetBin, "../cmd/nsnet")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Println("e2e: build nsnet:", err)
		os.Exit(1)
	}
	// NSNET_TEST_STORE=etcd runs the daemons on a real etcd (see
	// storetest), stopped when the run ends.
	code := storetest.Main(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

// Env is one running daemon and everything a test needs to talk to it.
type Env struct {
	t         *testing.T
	Prefix    string // starts every namespace this test's daemon makes
	HostNetns string // the namespace the daemon treats as the host
	Dir       string
	Socket    string
	Endpoint  string // http://127.0.0.1:PORT when started WithTCP
	Token     string // the admin's token on Endpoint
	Tokens    string // the tokens file, when started WithTokens
	args      []string
	extra     []string // WithDaemonArgs
	stateFile bool     // WithStateFile
	env       []string // extra environment of the daemon
	daemon    *exec.Cmd
	logs      lab.SyncBuffer
}

type option func(*Env)

// WithTCP also serves the API on a free loopback port with a token.
func WithTCP() option {
	return func(e *Env) {
		e.Endpoint = "http://" + freeLoopbackAddr(e.t)
		e.Token = lab.RandomHex(16)
	}
}

// WithTokens serves the API on TCP with a tokens file (see auth.LoadTokens);
// admin is the token of its admin, for the harness's own OpenStack calls.
func WithTokens(file, admin string) option {
	return func(e *Env) {
		e.Endpoint = "http://" + freeLoopbackAddr(e.t)
		e.Token = admin
		e.Tokens = filepath.Join(e.Dir, "tokens.yaml")
		if err := os.WriteFile(e.Tokens, []byte(file), 0o600); err != nil {
			e.t.Fatal(err)
		}
	}
}

// WithKeystone serves the API on TCP on addr, validating tokens with the
// Keystone at url as service user user (password in the daemon's
// environment, as OS_PASSWORD).
func WithKeystone(addr, url, user, password, project string) option {
	return func(e *Env) {
		e.Endpoint = "http://" + addr
		e.args = []string{"--keystone-url", url, "--keystone-username", user, "--keystone-project", project}
		e.env = []string{"OS_PASSWORD=" + password}
	}
}

// WithStateFile keeps the daemon's store in its bbolt file even when
// NSNET_TEST_STORE selects etcd: for tests that lose the file on purpose.
func WithStateFile() option {
	return func(e *Env) { e.stateFile = true }
}

// WithDaemonArgs adds flags to the daemon's command line.
func WithDaemonArgs(args ...string) option {
	return func(e *Env) { e.extra = append(e.extra, args...) }
}

// Start runs a daemon for t and registers its teardown and leak check.
func Start(t *testing.T, opts ...option) *Env {
	t.Helper()
	e := &Env{t: t, Prefix: "nse" + lab.RandomHex(3) + "-", Dir: t.TempDir()}
	e.HostNetns = e.Prefix + "host"
	e.Socket = filepath.Join(e.Dir, "nsnet.sock")
	for _, o := range opts {
		o(e)
	}
	args := []string{"daemon", "--state-dir", filepath.Join(e.Dir, "state"), "--socket", e.Socket,
		"--host-netns", e.HostNetns, "--netns-prefix", e.Prefix, "--log-level", "debug"}
	switch {
	case e.Tokens != "":
		args = append(args, "--listen", strings.TrimPrefix(e.Endpoint, "http://"), "--tokens", e.Tokens)
	case len(e.args) > 0: // WithKeystone
		args = append(append(args, "--listen", strings.TrimPrefix(e.Endpoint, "http://")), e.args...)
	case e.Endpoint != "":
		tokenFile := filepath.Join(e.Dir, "token")
		if err := os.WriteFile(tokenFile, []byte(e.Token+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--listen", strings.TrimPrefix(e.Endpoint, "http://"), "--token-file", tokenFile)
	}
	if st := storetest.DaemonStore(t); st != "" && !e.stateFile && !slices.Contains(e.extra, "--store") {
		args = append(args, "--store", st)
		t.Logf("daemon store: %s", st)
	}
	e.args = append(args, e.extra...)
	e.startDaemon()
	t.Cleanup(e.teardown)
	return e
}

func (e *Env) startDaemon() {
	t := e.t
	t.Helper()
	e.daemon = exec.Command(nsnetBin, e.args...)
	e.daemon.Env = append(os.Environ(), e.env...)
	e.daemon.Stdout, e.daemon.Stderr = &e.logs, &e.logs
	if err := e.daemon.Start(); err != nil {
		t.Fatalf("start daemon: %v", err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		if status, _ := e.API("GET", "/nsnet/status", nil); status == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon did not come up:\n%s", e.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Restart stops the daemon gracefully and starts it again on the same state.
func (e *Env) Restart() {
	e.t.Helper()
	e.stopDaemon()
	e.startDaemon()
}

func (e *Env) stopDaemon() {
	t := e.t
	e.daemon.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- e.daemon.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("daemon exited with %v", err)
		}
	case <-time.After(15 * time.Second):
		e.daemon.Process.Kill()
		<-done
		t.Errorf("daemon did not stop on SIGTERM")
	}
}

// Netns is the kernel name of instance name's namespace.
func (e *Env) Netns(instance string) string { return e.Prefix + instance }

// Nsnet runs the nsnet CLI against this daemon.
func (e *Env) Nsnet(args ...string) (string, error) {
	cmd := exec.Command(nsnetBin, append([]string{"--socket", e.Socket}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// NsnetAs runs the nsnet CLI against the TCP endpoint with token, found
// the way users set it: $NSNET_ENDPOINT and $NSNET_TOKEN.
func (e *Env) NsnetAs(token string, args ...string) (string, error) {
	cmd := exec.Command(nsnetBin, args...)
	cmd.Env = append(os.Environ(), "NSNET_ENDPOINT="+e.Endpoint, "NSNET_TOKEN="+token)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// MustNsnetAs is NsnetAs that fails the test if the command fails.
func (e *Env) MustNsnetAs(token string, args ...string) string {
	e.t.Helper()
	out, err := e.NsnetAs(token, args...)
	if err != nil {
		e.t.Fatalf("nsnet %s (token %s): %v\n%s", strings.Join(args, " "), token, err, out)
	}
	return out
}

// Logs is what the daemon has logged so far.
func (e *Env) Logs() string { return e.logs.String() }

// Signal sends sig to the daemon.
func (e *Env) Signal(sig os.Signal) {
	if err := e.daemon.Process.Signal(sig); err != nil {
		e.t.Fatalf("signal the daemon: %v", err)
	}
}

// APIAs sends one request to the TCP endpoint with token and returns the
// status and decoded body.
func (e *Env) APIAs(token, method, path string, body any) (int, map[string]any) {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rd = bytes.NewReader(raw)
	}
	req, _ := http.NewRequest(method, e.Endpoint+path, rd)
	req.Header.Set("X-Auth-Token", token)
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var m map[string]any
	json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

// MustNsnet runs the nsnet CLI and fails the test if it fails.
func (e *Env) MustNsnet(args ...string) string {
	e.t.Helper()
	out, err := e.Nsnet(args...)
	if err != nil {
		e.t.Fatalf("nsnet %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// In runs a command inside instance's namespace (as `ip netns exec` does).
func (e *Env) In(instance string, argv ...string) (string, error) {
	out, err := exec.Command("ip", append([]string{"netns", "exec", e.Netns(instance)}, argv...)...).CombinedOutput()
	return string(out), err
}

// rawBody is a request body sent as it is, not encoded as JSON.
type rawBody string

// API sends one request over the unix socket and decodes the JSON answer.
// body is encoded as JSON unless it is a rawBody.
func (e *Env) API(method, path string, body any) (int, map[string]any) {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case rawBody:
		rd = strings.NewReader(string(b))
	default:
		raw, _ := json.Marshal(body)
		rd = bytes.NewReader(raw)
	}
	req, _ := http.NewRequest(method, "http://nsnet"+path, rd)
	req.Header.Set("X-Nsnet-Wait", "30s")
	resp, err := e.unixClient().Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	var m map[string]any
	json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

// MustAPI is API for a request that must succeed: it fails the test
// otherwise and returns the answer's body.
func (e *Env) MustAPI(method, path string, body any) map[string]any {
	e.t.Helper()
	status, resp := e.API(method, path, body)
	if status >= 300 {
		e.t.Fatalf("%s %s: %d %v", method, path, status, resp)
	}
	return resp
}

func (e *Env) unixClient() *http.Client {
	return &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", e.Socket)
		},
	}}
}

// teardown deletes every resource through the API (as a user would), stops
// the daemon, and fails the test for anything the daemon left behind.
func (e *Env) teardown() {
	t := e.t
	e.deleteRouters()
	for _, collection := range []string{"nsnet/published-ports", "ports", "instances", "subnets", "networks"} {
		_, body := e.API("GET", "/v2.0/"+collection, nil)
		key := strings.ReplaceAll(path.Base(collection), "-", "_")
		items, _ := body[key].([]any)
		for _, it := range items {
			if it.(map[string]any)["device_owner"] == "network:dhcp" {
				continue // goes with DHCP on its network's subnets
			}
			id := it.(map[string]any)["id"].(string)
			if status, resp := e.API("DELETE", "/v2.0/"+collection+"/"+id, nil); status != 204 {
				t.Errorf("teardown: delete %s %s: %d %v", collection, id, status, resp)
			}
		}
	}
	e.stopDaemon()
	if t.Failed() {
		e.reportDaemonLog()
	}
	e.checkNoLeaks()
}

// daemonLogTail is how many lines of a failed test's daemon log go into the
// test output; the whole log is kept in a file, since CI shows only the end
// of the output and a debug log of thousands of lines would bury the
// failure itself.
const daemonLogTail = 60

// reportDaemonLog saves the daemon's log where it outlives the test's
// directory and logs its path and its last lines.
func (e *Env) reportDaemonLog() {
	t := e.t
	log := e.logs.String()
	lines := strings.Split(strings.TrimRight(log, "\n"), "\n")
	saved := "(not saved)"
	if f, err := os.CreateTemp("", "nsnet-e2e-"+strings.ReplaceAll(t.Name(), "/", "_")+"-*.log"); err == nil {
		f.WriteString(log)
		f.Close()
		saved = f.Name()
	}
	tail := lines[max(0, len(lines)-daemonLogTail):]
	t.Logf("daemon log: %d lines in %s; the last %d:\n%s", len(lines), saved, len(tail), strings.Join(tail, "\n"))
}

// deleteRouters deletes port forwardings, floating IPs and
// routers, detaching each router's subnets first, the order the API
// requires; the ports they own go with them.
func (e *Env) deleteRouters() {
	t := e.t
	del := func(path string) {
		if status, resp := e.API("DELETE", path, nil); status != 204 {
			t.Errorf("teardown: delete %s: %d %v", path, status, resp)
		}
	}
	_, body := e.API("GET", "/v2.0/floatingips", nil)
	fips, _ := body["floatingips"].([]any)
	for _, f := range fips {
		fip := f.(map[string]any)["id"].(string)
		// A floating IP that port forwardings use cannot be deleted.
		_, body := e.API("GET", "/v2.0/floatingips/"+fip+"/port_forwardings", nil)
		forwards, _ := body["port_forwardings"].([]any)
		for _, pf := range forwards {
			del("/v2.0/floatingips/" + fip + "/port_forwardings/" + pf.(map[string]any)["id"].(string))
		}
		del("/v2.0/floatingips/" + fip)
	}
	_, body = e.API("GET", "/v2.0/routers", nil)
	routers, _ := body["routers"].([]any)
	for _, r := range routers {
		id := r.(map[string]any)["id"].(string)
		e.API("PUT", "/v2.0/routers/"+id, map[string]any{"router": map[string]any{"routes": nil}})
		_, body := e.API("GET", "/v2.0/ports?device_owner=network:router_interface&device_id="+id, nil)
		ports, _ := body["ports"].([]any)
		for _, p := range ports {
			pid := p.(map[string]any)["id"].(string)
			if status, resp := e.API("PUT", "/v2.0/routers/"+id+"/remove_router_interface", map[string]any{"port_id": pid}); status != 200 {
				t.Errorf("teardown: detach port %s from router %s: %d %v", pid, id, status, resp)
			}
		}
		del("/v2.0/routers/" + id)
	}
}

// checkNoLeaks fails the test for any namespace with the test's prefix other
// than the host namespace, any of their files under /etc/netns, and any
// link or nft table left in the host namespace (the others go with their
// namespaces), then removes them so one failure does not poison the
// machine.
func (e *Env) checkNoLeaks() {
	t := e.t
	if links := linksIn(e.HostNetns); len(links) > 0 {
		t.Errorf("links left in host namespace %s: %v", e.HostNetns, links)
	}
	if tables, _ := runOut("ip", "netns", "exec", e.HostNetns, "nft", "list", "tables"); strings.TrimSpace(tables) != "" {
		t.Errorf("nft tables left in host namespace %s:\n%s", e.HostNetns, tables)
	}
	for _, ns := range lab.Namespaces(e.Prefix) {
		if ns != e.HostNetns {
			t.Errorf("namespace %s left behind", ns)
		}
		exec.Command("ip", "netns", "delete", ns).Run()
	}
	if left := lab.Namespaces(e.Prefix); len(left) > 0 {
		t.Errorf("could not remove namespaces %v", left)
	}
	for _, name := range lab.EtcEntries(e.Prefix) {
		t.Errorf("%s left behind", filepath.Join(netns.EtcDir, name))
		netns.RemoveEtc(name)
	}
}

// linksIn lists the links of a namespace other than lo.
func linksIn(ns string) []string {
	out, err := exec.Command("ip", "-n", ns, "-o", "link", "show").Output()
	if err != nil {
		return nil
	}
	var links []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimSuffix(fields[1], ":"), "@")
		if name != "lo" {
			links = append(links, name)
		}
	}
	return links
}

func freeLoopbackAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// eventually retries check until it passes or the deadline comes.
func eventually(t *testing.T, d time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func runOut(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).Output()
	return string(out), err
}
