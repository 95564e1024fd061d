package radv

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	vnetns "github.com/vishvananda/netns"

	"github.com/nsnet/nsnet/internal/lab"
	"github.com/nsnet/nsnet/internal/netns"
)

// allPrefix starts every namespace of this test binary.
var allPrefix = fmt.Sprintf("nsra%d-", os.Getpid())

var testSeq atomic.Int32

func TestMain(m *testing.M) {
	code := m.Run()
	if os.Geteuid() == 0 {
		if left := lab.RemoveNamespaces(allPrefix); len(left) > 0 {
			fmt.Println("radv: namespaces left behind:", left)
			code = 1
		}
	}
	os.Exit(code)
}

// testLink is a test's two namespaces joined by a veth: the router's end
// (srvIf in srv) and the client's (cliIf in cli), whose kernel takes
// router advertisements as a host does.
type testLink struct {
	t            *testing.T
	prefix       string
	srv, cli     string
	srvIf, cliIf string
	cliMAC       net.HardwareAddr
	srvNS        vnetns.NsHandle
}

func newLink(t *testing.T) *testLink {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces)")
	}
	for _, tool := range []string{"ip", "rdisc6"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (scripts/deps.sh installs it)", tool)
		}
	}
	n := testSeq.Add(1)
	l := &testLink{t: t, prefix: fmt.Sprintf("%s%d-", allPrefix, n)}
	l.srv, l.cli = l.prefix+"srv", l.prefix+"cli"
	// Interface names are unique on the machine, not only in their
	// namespace, so that nothing can confuse them with another's.
	l.srvIf, l.cliIf = fmt.Sprintf("ra%dr%d", os.Getpid()%100000, n), fmt.Sprintf("ra%dc%d", os.Getpid()%100000, n)
	t.Cleanup(l.cleanup)
	for _, ns := range []string{l.srv, l.cli} {
		if err := netns.Create(ns); err != nil {
			t.Fatal(err)
		}
	}
	l.run("ip", "-n", l.srv, "link", "add", l.srvIf, "type", "veth", "peer", "name", l.cliIf, "netns", l.cli)
	// The client is a host: it takes advertisements and configures
	// addresses from them; it does not forward.
	for _, kv := range []string{"forwarding=0", "accept_ra=1", "autoconf=1", "accept_ra_defrtr=1"} {
		l.run("ip", "netns", "exec", l.cli, "sysctl", "-qw", "net.ipv6.conf."+l.cliIf+"."+kv)
	}
	l.run("ip", "-n", l.srv, "link", "set", l.srvIf, "up")
	l.run("ip", "-n", l.cli, "link", "set", l.cliIf, "up")
	ifi := l.run("ip", "-n", l.cli, "-o", "link", "show", l.cliIf)
	for i, f := range strings.Fields(ifi) {
		if f == "link/ether" {
			l.cliMAC, _ = net.ParseMAC(strings.Fields(ifi)[i+1])
		}
	}
	if l.cliMAC == nil {
		t.Fatalf("no MAC for %s in %q", l.cliIf, ifi)
	}
	ns, err := netns.Open(l.srv)
	if err != nil {
		t.Fatal(err)
	}
	l.srvNS = ns
	// The client solicits from its link-local address, which duplicate
	// address detection keeps tentative for a moment after the link
	// comes up. (The server's may still be: it must cope.)
	eventually(t, "the client's link-local address", func() error {
		a := l.run("ip", "-n", l.cli, "-6", "-o", "addr", "show", "dev", l.cliIf, "scope", "link")
		if !strings.Contains(a, "fe80::") || strings.Contains(a, "tentative") {
			return fmt.Errorf("not ready: %q", a)
		}
		return nil
	})
	return l
}

func (l *testLink) run(args ...string) string {
	l.t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		l.t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (l *testLink) cleanup() {
	if l.srvNS != 0 {
		l.srvNS.Close()
	}
	for _, ns := range []string{l.srv, l.cli} {
		if netns.Exists(ns) {
			if err := netns.Delete(ns); err != nil {
				l.t.Errorf("cleanup: %v", err)
			}
		}
	}
	if left := lab.Namespaces(l.prefix); len(left) > 0 {
		l.t.Errorf("namespaces survived cleanup: %v", left)
	}
}

// eventually retries check as a client would, for up to a minute.
func eventually(t *testing.T, what string, check func() error) {
	t.Helper()
	var err error
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if err = check(); err == nil {
			return
		}
	}
	t.Fatalf("%s: %v", what, err)
}

// eui64 is the address a SLAAC client with mac configures in p.
func eui64(p netip.Prefix, mac net.HardwareAddr) netip.Addr {
	b := p.Masked().Addr().As16()
	b[8], b[9], b[10] = mac[0]^2, mac[1], mac[2]
	b[11], b[12] = 0xff, 0xfe
	b[13], b[14], b[15] = mac[3], mac[4], mac[5]
	return netip.AddrFrom16(b)
}

func testLog(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
