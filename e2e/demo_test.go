package e2e

import (
	"context"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nsnet/nsnet/internal/lab"
)

// TestDemo runs scripts/demo.sh as a user would, under names of its own
// (NSNET_DEMO, NSNET_DEMO_LISTEN), then scripts/demo.sh down, and checks
// that the demo told its story (traffic inside out and outside in through
// both projects' routers, a trace with the NAT rewrites, the topology
// view's URL) and that down left nothing behind: no namespace, no
// /etc/netns entry, no link or nft table in this namespace, no process.
func TestDemo(t *testing.T) {
	name := "nsd" + lab.RandomHex(3)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	listen := l.Addr().String()
	l.Close()
	env := append(os.Environ(), "NSNET_DEMO="+name, "NSNET_DEMO_LISTEN="+listen)
	demo := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "bash", append([]string{"../scripts/demo.sh"}, args...)...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	links, tables := rootLinks(t), rootTables(t)
	downDone := false
	t.Cleanup(func() {
		if !downDone {
			if out, err := demo("down"); err != nil {
				t.Errorf("scripts/demo.sh down: %v\n%s", err, out)
			}
		}
		lab.RemoveNamespaces(name + "-")
	})

	out, err := demo()
	if err != nil {
		t.Fatalf("scripts/demo.sh: %v\n%s", err, out)
	}
	for _, want := range []string{
		"web.nsnet.internal",                    // metadata through the router, after DHCP
		"hello from the internet (203.0.113.1)", // inside out
		"hello from alpha's web",                // outside in: the floating IP
		"hello from beta's web",                 // outside in: the port forward
		"SNAT 10.0.0.10:",                       // the trace out, through alpha's floating IP
		"DNAT 198.51.100.",                      // the trace in, through beta's port forward
		":8080 → 10.0.0.10:80",
		"http://" + listen + "/ui/?token=",
		name + "-web@alpha", name + "-web@beta", // two projects, the same names
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the demo's output lacks %q:\n%s", want, out)
		}
	}

	out, err = demo("down")
	downDone = true
	if err != nil {
		t.Fatalf("scripts/demo.sh down: %v\n%s", err, out)
	}
	if left := lab.Namespaces(name + "-"); len(left) > 0 {
		t.Errorf("namespaces left behind: %v\nscripts/demo.sh down said:\n%s", left, out)
	}
	if left := lab.EtcEntries(name + "-"); len(left) > 0 {
		t.Errorf("/etc/netns entries left behind: %v\nscripts/demo.sh down said:\n%s", left, out)
	}
	if now := rootLinks(t); !slices.Equal(now, links) {
		t.Errorf("links of this namespace changed: %v, were %v", now, links)
	}
	if now := rootTables(t); !slices.Equal(now, tables) {
		t.Errorf("nft tables of this namespace changed: %v, were %v", now, tables)
	}
	for _, dir := range []string{"/run/" + name, "/var/lib/" + name} {
		if _, err := os.Stat(dir); err == nil {
			t.Errorf("%s left behind", dir)
		}
	}
	if ps, _ := exec.Command("pgrep", "-af", "/run/"+name+"/").Output(); len(ps) > 0 {
		t.Errorf("processes left behind:\n%s", ps)
	}
}

// rootLinks are the names of the links of the namespace the test runs in.
func rootLinks(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("ip", "-o", "link", "show").Output()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(l); len(f) > 1 {
			names = append(names, strings.TrimSuffix(strings.Split(f[1], "@")[0], ":"))
		}
	}
	slices.Sort(names)
	return names
}

// rootTables are the nft tables of the namespace the test runs in.
func rootTables(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("nft", "list", "tables").Output()
	if err != nil {
		t.Fatal(err)
	}
	tables := strings.Split(strings.TrimSpace(string(out)), "\n")
	slices.Sort(tables)
	return tables
}
