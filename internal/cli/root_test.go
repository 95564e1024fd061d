package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/nsnet/nsnet/internal/client"
)

func TestConnectionConfig(t *testing.T) {
	tests := []struct {
		name      string
		args      string
		env       map[string]string
		endpoint  string // client.Client.Endpoint()
		wantToken string
		wantErr   string
	}{
		{name: "default socket", endpoint: "unix:" + client.DefaultSocket},
		{name: "socket flag", args: "--socket /tmp/a.sock", endpoint: "unix:/tmp/a.sock"},
		{name: "endpoint flag", args: "--endpoint http://127.0.0.1:9696 --token T", endpoint: "http://127.0.0.1:9696", wantToken: "T"},
		{
			name: "environment", env: map[string]string{envEndpoint: "http://10.0.0.1:9696", envToken: "E"},
			endpoint: "http://10.0.0.1:9696", wantToken: "E",
		},
		{
			name: "flags beat environment", args: "--endpoint http://127.0.0.1:1 --token F",
			env: map[string]string{envEndpoint: "http://10.0.0.1:9696", envToken: "E"}, endpoint: "http://127.0.0.1:1", wantToken: "F",
		},
		{
			name: "explicit socket beats endpoint variable", args: "--socket /tmp/b.sock",
			env: map[string]string{envEndpoint: "http://10.0.0.1:9696"}, endpoint: "unix:/tmp/b.sock",
		},
		{name: "unix endpoint", args: "--endpoint unix:///tmp/c.sock", endpoint: "unix:/tmp/c.sock"},
		{name: "both", args: "--endpoint http://x:1 --socket /tmp/a.sock", wantErr: "use --endpoint or --socket, not both"},
		{name: "bad endpoint", args: "--endpoint 10.0.0.1:9696", wantErr: "want http://host:port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := &app{getenv: func(k string) string { return tt.env[k] }}
			root := newRootCommand(a, nil)
			if err := root.ParseFlags(strings.Fields(tt.args)); err != nil {
				t.Fatal(err)
			}
			conn, err := a.conn.config(root, a.getenv)
			var c *client.Client
			if err == nil {
				c, err = client.New(conn.Config)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Endpoint() != tt.endpoint {
				t.Errorf("endpoint = %q, want %q", c.Endpoint(), tt.endpoint)
			}
			var token string
			if conn.Auth != nil {
				token, _ = conn.Auth.Token(context.Background())
			}
			if token != tt.wantToken {
				t.Errorf("token = %q, want %q", token, tt.wantToken)
			}
		})
	}
}

// TestUsageExitCodes runs commands that fail before reaching the API.
func TestUsageExitCodes(t *testing.T) {
	tests := []struct {
		args     string
		code     int
		wantErr  string
		wantHelp string
	}{
		{args: "network lst", code: 2, wantErr: `unknown command "lst" for "nsnet network"; did you mean list`, wantHelp: "nsnet network --help"},
		{args: "nope", code: 2, wantErr: `unknown command "nope" for "nsnet"`, wantHelp: "nsnet --help"},
		{args: "network create", code: 2, wantErr: "nsnet network create takes the new network's name, got 0", wantHelp: "nsnet network create --help"},
		{args: "network create a b", code: 2, wantErr: "got 2 argument(s)"},
		{args: "network create a --mtu x", code: 2, wantErr: `invalid argument "x" for "--mtu"`, wantHelp: "nsnet network create --help"},
		{args: "network create a --bogus", code: 2, wantErr: "unknown flag: --bogus"},
		{args: "network create a -o xml", code: 2, wantErr: `unknown output format "xml"`},
		{args: "network create a --share --no-share", code: 2, wantErr: "--share and --no-share contradict each other"},
		{args: "network set a", code: 2, wantErr: "nothing to change"},
		{args: "subnet create s --network n", code: 2, wantErr: `required flag(s) "subnet-range" not set`, wantHelp: "nsnet subnet create --help"},
		{args: "instance set red", code: 2, wantErr: "nothing to change"},
		{args: "exec red", code: 2, wantErr: "takes an instance and a command"},
		{args: "exec red --", code: 2, wantErr: "no command given"},
		{args: "apply", code: 2, wantErr: `required flag(s) "file" not set`},
		{args: "apply -f /nonexistent.yaml", code: 1, wantErr: "open /nonexistent.yaml: no such file or directory"},
		{args: "status extra", code: 2, wantErr: "takes no arguments"},
		{args: "graph -o png", code: 2, wantErr: `unknown output format "png"; use tree, dot, json or svg`, wantHelp: "nsnet graph --help"},
		{args: "graph extra", code: 2, wantErr: "takes no arguments"},
		{args: "--endpoint http://x:1 --socket /s network list", code: 2, wantErr: "use --endpoint or --socket, not both"},
		{args: "__netns-exec x", code: 125, wantErr: "usage: nsnet __netns-exec NETNS -- COMMAND"},
	}
	for _, tt := range tests {
		t.Run(tt.args, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			root := NewRootCommand(nil)
			root.SetOut(&stdout)
			root.SetErr(&stderr)
			code := run(context.Background(), root, strings.Fields(tt.args), &stderr)
			if code != tt.code {
				t.Errorf("exit code = %d, want %d (stderr %q)", code, tt.code, stderr.String())
			}
			if !strings.HasPrefix(stderr.String(), "nsnet: ") || !strings.Contains(stderr.String(), tt.wantErr) {
				t.Errorf("stderr = %q, want \"nsnet: …%s…\"", stderr.String(), tt.wantErr)
			}
			if tt.wantHelp != "" && !strings.Contains(stderr.String(), "Run '"+tt.wantHelp+"' for usage.") {
				t.Errorf("stderr = %q, want a pointer to %s", stderr.String(), tt.wantHelp)
			}
		})
	}
}

func TestHelpTeaches(t *testing.T) {
	root := NewRootCommand(nil)
	var missing []string
	for _, c := range root.Commands() {
		if c.Hidden || c.Name() == "help" || c.Name() == "completion" {
			continue
		}
		check := []struct{ name, short, long, example string }{{c.CommandPath(), c.Short, c.Long, c.Example}}
		for _, sub := range c.Commands() {
			check = append(check, struct{ name, short, long, example string }{sub.CommandPath(), sub.Short, sub.Long, sub.Example})
		}
		for i, x := range check {
			switch {
			case x.short == "":
				missing = append(missing, x.name+": Short")
			case x.long == "":
				missing = append(missing, x.name+": Long")
			case x.example == "" && !(i == 0 && len(check) > 1):
				// Group commands (network, subnet…) show their
				// subcommands' examples instead of their own.
				missing = append(missing, x.name+": Example")
			}
		}
	}
	if len(missing) > 0 {
		t.Errorf("commands without help text:\n%s", strings.Join(missing, "\n"))
	}
}

func TestExecExitCode(t *testing.T) {
	tests := []struct {
		err  error
		want int
	}{
		{&exec.Error{Name: "nope", Err: exec.ErrNotFound}, exitNotFound},
		{fmt.Errorf("wrapped: %w", &exec.Error{Name: "nope", Err: exec.ErrNotFound}), exitNotFound},
		{&exec.Error{Name: "/etc/passwd", Err: syscall.EACCES}, exitNotRunnable},
		{&exec.Error{Name: "/bin/x", Err: syscall.ENOEXEC}, exitNotRunnable},
		{fmt.Errorf("enter network namespace red: %w", syscall.EPERM), exitCannotStart},
		{errors.New("open /run/netns/red: no such file or directory"), exitCannotStart},
	}
	for _, tt := range tests {
		if got := execExitCode(tt.err); got != tt.want {
			t.Errorf("execExitCode(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}

func TestWarnUnprogrammed(t *testing.T) {
	yes, no := true, false
	tests := []struct {
		name    string
		meta    client.Meta
		raw     json.RawMessage
		want    string
		wantErr string
	}{
		{name: "converged", meta: client.Meta{Converged: &yes}, raw: json.RawMessage(`{"status": "ACTIVE"}`)},
		{name: "no wait", meta: client.Meta{}, raw: json.RawMessage(`{"status": "ERROR"}`)},
		{
			name: "timed out", meta: client.Meta{Converged: &no},
			want: "nsnet: warning: port red-eth0 was created, but the agent had not programmed it when the wait ended; see `nsnet status`\n",
		},
		{
			// ERROR is a failure: exit status 1, the reason as the error.
			name: "failed", meta: client.Meta{Converged: &yes},
			raw:     json.RawMessage(`{"status": "ERROR", "nsnet:status_reason": "RTNETLINK answers: File exists"}`),
			wantErr: "port red-eth0 was created, but the agent could not program it: RTNETLINK answers: File exists; see `nsnet status`",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			cmd := NewRootCommand(nil)
			cmd.SetErr(&stderr)
			err := warnUnprogrammed(cmd, client.Ports, "red-eth0", "created", tt.meta, tt.raw)
			if stderr.String() != tt.want {
				t.Errorf("stderr = %q, want %q", stderr.String(), tt.want)
			}
			var ee exitError
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("err = %v, want none", err)
			case tt.wantErr != "" && (!errors.As(err, &ee) || ee.code != 1 || err.Error() != tt.wantErr):
				t.Errorf("err = %#v, want exit status 1 with %q", err, tt.wantErr)
			}
		})
	}
}

func TestMessageHints401(t *testing.T) {
	err := &client.Error{StatusCode: 401, Type: "HTTPUnauthorized", Message: "The request you have made requires authentication."}
	if got := message(err); !strings.Contains(got, "pass --token or set NSNET_TOKEN") {
		t.Errorf("message = %q", got)
	}
	err = &client.Error{StatusCode: 404, Message: "Network red could not be found."}
	if got := message(err); got != "Network red could not be found." {
		t.Errorf("message = %q, want the server's words unchanged", got)
	}
}

// TestKeystoneCredentials: OpenStack credentials in the environment make
// a Keystone login, unless a token or a socket is given; incomplete ones
// are refused before anything is contacted.
func TestKeystoneCredentials(t *testing.T) {
	full := map[string]string{"OS_AUTH_URL": "http://127.0.0.1:5000/v3", "OS_USERNAME": "alice",
		"OS_PASSWORD": "pw", "OS_PROJECT_NAME": "alpha"}
	without := func(key string) map[string]string {
		m := map[string]string{}
		for k, v := range full {
			if k != key {
				m[k] = v
			}
		}
		return m
	}
	with := func(k, v string) map[string]string {
		m := without("")
		m[k] = v
		return m
	}
	tests := []struct {
		name     string
		args     string
		env      map[string]string
		keystone bool
		wantErr  string
	}{
		{name: "password auth", env: full, keystone: true},
		{name: "a token wins", env: with(envToken, "T")},
		{name: "a token flag wins", args: "--token T", env: full},
		{name: "an explicit socket wins", args: "--socket /tmp/s.sock", env: full},
		{name: "no password", env: without("OS_PASSWORD"), wantErr: "OS_PASSWORD is not"},
		{name: "no user", env: without("OS_USERNAME"), wantErr: "OS_USERNAME is not"},
		{name: "no project", env: without("OS_PROJECT_NAME"), wantErr: "OS_PROJECT_NAME is not"},
		{name: "unknown cloud", env: map[string]string{"OS_CLOUD": "nope", "OS_CLIENT_CONFIG_FILE": "/nonexistent/clouds.yaml"}, wantErr: "OS_CLOUD=nope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := &app{getenv: func(k string) string { return tt.env[k] }}
			root := newRootCommand(a, nil)
			if err := root.ParseFlags(strings.Fields(tt.args)); err != nil {
				t.Fatal(err)
			}
			conn, err := a.conn.config(root, a.getenv)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := conn.keystone != nil; got != tt.keystone {
				t.Errorf("keystone login = %v, want %v", got, tt.keystone)
			}
		})
	}
}

// TestProgressWriter: on a terminal, apply numbers the lines of its
// steps, [n/total], however the writes split them.
func TestProgressWriter(t *testing.T) {
	var b bytes.Buffer
	p := &progressWriter{w: &b, total: 120}
	for _, w := range []string{"created   network a\n", "created   sub", "net b\nupdated   router r\n"} {
		if n, err := p.Write([]byte(w)); err != nil || n != len(w) {
			t.Fatalf("Write(%q) = %d, %v", w, n, err)
		}
	}
	want := "[  1/120] created   network a\n[  2/120] created   subnet b\n[  3/120] updated   router r\n"
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
}

// TestIsTerminal: apply's progress is for terminals only; a pipe or a
// file gets the plain lines.
func TestIsTerminal(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	f, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, out := range []io.Writer{w, f, &bytes.Buffer{}} {
		if isTerminal(out) {
			t.Errorf("isTerminal(%T) = true", out)
		}
	}
	pty, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal to check the positive case: %v", err)
	}
	defer pty.Close()
	if !isTerminal(pty) {
		t.Error("isTerminal(/dev/ptmx) = false")
	}
}
