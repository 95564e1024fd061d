package explain

import (
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/nsnet/nsnet/internal/dataplane"
	"github.com/nsnet/nsnet/internal/lab"
	"github.com/nsnet/nsnet/internal/netns"
)

// TestVXLANReplays builds a network's bridge and VXLAN device with its
// entries in one namespace through the dataplane, runs the commands
// explain prints for it in a fresh namespace, and compares the two
// kernels' views of the device, its forwarding and neighbour entries.
func TestVXLANReplays(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces)")
	}
	p := "nsxv" + lab.RandomHex(3) + "-"
	orig, copy := p+"orig", p+"copy"
	t.Cleanup(func() {
		for _, ns := range lab.Namespaces(p) {
			netns.Delete(ns)
		}
		if left := lab.Namespaces(p); len(left) > 0 {
			t.Errorf("namespaces left behind: %v", left)
		}
	})
	for _, ns := range []string{orig, copy} {
		if err := netns.Create(ns); err != nil {
			t.Fatal(err)
		}
	}
	const id = "net-replay"
	h, err := dataplane.OpenNamespace(orig)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	links := dataplane.NewLinks(h.Handle)
	br := dataplane.BridgeSpec{Name: "nsb-replay", Alias: dataplane.NetworkAlias(id), MTU: 1450, Up: true}
	vx := dataplane.VXLANSpec{Name: "nsv-replay", Alias: dataplane.VXLANAlias(id), VNI: 77, Local: netip.MustParseAddr("192.0.2.1"),
		Bridge: br.Name, BridgeAlias: br.Alias, MTU: 1450, Up: true}
	mac, _ := net.ParseMAC("fa:16:3e:00:00:42")
	if _, err := dataplane.EnsureBridge(links, br); err != nil {
		t.Fatal(err)
	}
	if _, err := dataplane.EnsureVXLAN(links, vx); err != nil {
		t.Fatal(err)
	}
	if _, err := dataplane.EnsureFDB(links, vx.Name, vx.Alias, []dataplane.FDBEntry{
		{MAC: mac, Dst: netip.MustParseAddr("192.0.2.2")},
		{MAC: dataplane.FloodMAC, Dst: netip.MustParseAddr("192.0.2.2")},
		{MAC: dataplane.FloodMAC, Dst: netip.MustParseAddr("192.0.2.3")},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := dataplane.EnsureNeighbours(links, vx.Name, vx.Alias, []dataplane.NeighEntry{
		{IP: netip.MustParseAddr("10.7.0.2"), MAC: mac}, {IP: netip.MustParseAddr("2001:db8:7::2"), MAC: mac},
	}); err != nil {
		t.Fatal(err)
	}

	ns, err := readNamespace(orig)
	if err != nil {
		t.Fatal(err)
	}
	cmds, err := vxlanCommands(ns, id)
	if err != nil {
		t.Fatal(err)
	}
	script := strings.Join(append([]string{
		ip(orig, "link", "add", br.Name, "type", "bridge"),
		ip(orig, linkSettings(ns, ns.byName[br.Name], true)...),
	}, cmds...), "\n")
	for _, want := range []string{
		"ip -n " + orig + " link add nsv-replay type vxlan id 77 local 192.0.2.1 dstport 4789 nolearning proxy",
		"bridge -n " + orig + " fdb append 00:00:00:00:00:00 dev nsv-replay dst 192.0.2.3 self permanent",
		"ip -n " + orig + " neigh replace 10.7.0.2 lladdr fa:16:3e:00:00:42 dev nsv-replay nud permanent",
	} {
		if !strings.Contains(script, want) {
			t.Errorf("explanation lacks %q:\n%s", want, script)
		}
	}
	replayed := strings.ReplaceAll(script, orig, copy)
	if out, err := exec.Command("bash", "-ec", replayed).CombinedOutput(); err != nil {
		t.Fatalf("replaying: %v\n%s\nscript:\n%s", err, out, replayed)
	}
	if want, got := vxlanView(t, orig), vxlanView(t, copy); want != got {
		t.Errorf("rebuilt from the explanation differs:\nnsnet's:\n%s\nreplayed:\n%s", want, got)
	}
}

var volatile = regexp.MustCompile(`(?m)^\d+: |(\w+_timer)\s+[0-9.]+|port_id \S+|port_no \S+|designated_\w+ \S+`)

// vxlanView is what ip and bridge show of the VXLAN device of namespace
// ns, without what differs between any two devices (ifindex, timers).
func vxlanView(t *testing.T, ns string) string {
	t.Helper()
	var b strings.Builder
	for _, args := range [][]string{
		{"ip", "-n", ns, "-d", "link", "show", "nsv-replay"},
		{"bridge", "-n", ns, "fdb", "show", "dev", "nsv-replay"},
		{"ip", "-n", ns, "neigh", "show", "dev", "nsv-replay", "nud", "permanent"},
	} {
		out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
		// The kernel lists forwarding entries in its hash's order.
		lines := strings.Split(string(out), "\n")
		slices.Sort(lines)
		b.WriteString(strings.Join(lines, "\n"))
	}
	return volatile.ReplaceAllString(b.String(), "$1")
}
