package dataplane

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/nsnet/nsnet/internal/lab"
	"github.com/nsnet/nsnet/internal/netns"
)

// testEnv is a test's own little host: a host namespace and a name prefix
// that every namespace the test makes starts with.
type testEnv struct {
	t      *testing.T
	prefix string
	host   *Namespace
	links  *Links // NewLinks over host (SetNamespace): always reads the kernel
	// hostName is the marker host of this test's instance namespaces.
	hostName string
}

var testSeq atomic.Int32

// allPrefix starts every namespace of this test binary.
var allPrefix = fmt.Sprintf("nsdt%d-", os.Getpid())

func TestMain(m *testing.M) {
	os.Exit(lab.RunTests(m, "dataplane", allPrefix))
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces)")
	}
}

// newEnv makes a host namespace for t and registers the cleanup that fails
// t if anything it made survives.
func newEnv(t *testing.T) *testEnv {
	t.Helper()
	needRoot(t)
	e := &testEnv{t: t, prefix: fmt.Sprintf("%s%d-", allPrefix, testSeq.Add(1))}
	e.hostName = e.prefix + "host"
	if err := netns.Create(e.hostName); err != nil {
		t.Fatal(err)
	}
	host, err := OpenNamespace(e.hostName)
	if err != nil {
		netns.Delete(e.hostName)
		t.Fatal(err)
	}
	e.host, e.links = host, NewLinks(host.Handle)
	e.links.SetNamespace(e.hostName)
	t.Cleanup(e.cleanup)
	return e
}

func (e *testEnv) ns(name string) string { return e.prefix + name }

func (e *testEnv) marker(instanceID string) string { return InstanceMarker(instanceID, e.hostName) }

// routeSocket is a route socket kept in the host namespace, as the agent
// keeps one for its full passes, closed when the test ends.
func (e *testEnv) routeSocket(t *testing.T) *RouteSocket {
	t.Helper()
	sock, err := OpenRouteSocket(e.hostName)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sock.Close() })
	return sock
}

// cleanup removes what the test made through the package's own delete
// functions, then fails the test if any namespace with its prefix (other
// than the host) or any link in its host namespace survived, and finally
// removes everything so one failure does not poison the next test.
func (e *testEnv) cleanup() {
	t := e.t
	owned, err := ListInstanceNamespaces(e.prefix)
	if err != nil {
		t.Errorf("cleanup: %v", err)
	}
	for name, m := range owned {
		if _, host, _ := ParseInstanceMarker(m); host == e.hostName {
			if err := DeleteInstanceNetns(name, m, e.links); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
	}
	links, err := ListOwnedLinks(e.host.Handle)
	if err != nil {
		t.Errorf("cleanup: %v", err)
	}
	for alias, link := range links {
		if _, err := DeleteLink(e.links, link.Attrs().Name, alias); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	}
	if left := linksIn(e.hostName); len(left) > 0 {
		t.Errorf("links left in host namespace: %v", left)
	}
	for _, n := range lab.Namespaces(e.prefix) {
		if n != e.hostName {
			t.Errorf("namespace %s left behind", n)
			netns.Delete(n)
		}
	}
	e.host.Close()
	if err := netns.Delete(e.hostName); err != nil {
		t.Errorf("cleanup: %v", err)
	}
	if left := lab.Namespaces(e.prefix); len(left) > 0 {
		t.Errorf("namespaces survived cleanup: %v", left)
	}
}

// linksIn lists the links of a namespace other than lo, as ip shows them.
func linksIn(ns string) []string {
	out, err := exec.Command("ip", "-n", ns, "-o", "link", "show").Output()
	if err != nil {
		return nil
	}
	var links []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
		if name != "lo" {
			links = append(links, name)
		}
	}
	return links
}

// ip runs an ip command and fails the test if it fails.
func (e *testEnv) ip(args ...string) string {
	e.t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		e.t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// ping pings addr once from inside namespace ns.
// ping asks up to three times, as the agent tests' ping does: a busy
// 2-core machine drops echoes (softnet backlog), and a veth just brought
// up may not pass frames until linkwatch has run. A closed path still
// fails.
func ping(ns, addr string) error {
	var out []byte
	var err error
	for range 3 {
		if out, err = exec.Command("ip", "netns", "exec", ns, "ping", "-c1", "-W1", addr).CombinedOutput(); err == nil {
			return nil
		}
	}
	return fmt.Errorf("ping %s from %s, three times: %v\n%s", addr, ns, err, out)
}

func mustNotOwned(t *testing.T, err error) {
	t.Helper()
	var no *NotOwnedError
	if !errors.As(err, &no) || !errors.Is(err, ErrNotOwned) {
		t.Fatalf("err = %v, want a NotOwnedError", err)
	}
}
