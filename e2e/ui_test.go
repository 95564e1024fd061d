package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromium is Debian's browser (scripts/deps.sh installs it).
const chromium = "/usr/bin/chromium"

// drawnNode is a node of the page's SVG as the browser has it.
type drawnNode struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Class  string `json:"class"`
	Status string `json:"status"`
}

// TestTopologyViewInBrowser loads the web view in a real headless
// Chromium against a daemon that has seed 004's topology (applied with
// `nsnet apply`): it logs in with the link the daemon prints, checks that
// the networks, router, floating IP and instances are drawn with their
// true status, selects the router and reads its explain, sees a port's
// traffic counter move as traffic flows, runs a trace from the page (vm2
// to vm1's floating IP: the router's hairpin DNAT) and sees its hops and
// rewrite drawn on the graph. Screenshots go to $NSNET_UI_SHOTS, or a
// directory the test prints.
func TestTopologyViewInBrowser(t *testing.T) {
	if _, err := os.Stat(chromium); err != nil {
		t.Skip("no chromium (apt-get install -y chromium; scripts/deps.sh installs it)")
	}
	shots := os.Getenv("NSNET_UI_SHOTS")
	if shots == "" {
		var err error
		if shots, err = os.MkdirTemp("", "nsnet-ui-shots-"); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", shots)

	e := Start(t, WithTCP())
	e.MustNsnet("apply", "-f", "../examples/router-floating-ip.yaml")
	// The hairpin's answer comes from the router's address, outside the
	// default group: let pings in.
	e.MustNsnet("security-group", "rule", "create", "default", "--protocol", "icmp")

	// An object in ERROR, with its reason: an external network whose
	// uplink does not exist.
	if code, body := e.API("POST", "/v2.0/networks", map[string]any{"network": map[string]any{
		"name": "broken-uplink", "router:external": true, "nsnet:uplink": "nosuch0"}}); code != 201 {
		t.Fatalf("create broken-uplink: %d %v", code, body)
	}

	// The daemon prints the link that logs the admin in, as Jupyter does.
	link := regexp.MustCompile(`http://[0-9.:]+/ui/\?token=[0-9a-f]+`).FindString(e.Logs())
	if link == "" || !strings.Contains(link, e.Token) {
		t.Fatalf("the daemon printed no link with its token to the view:\n%s", e.Logs())
	}

	b := newBrowser(t)
	ctx := b.ctx
	shot := func(name string) { t.Helper(); b.shot(shots, name) }
	nodes, text := b.nodes, b.text

	// Log in through the link: the browser lands on /ui/ without the
	// token in its address, holding the cookie.
	if err := chromedp.Do(ctx, chromedp.Navigate(link),
		chromedp.WaitVisible(chromedp.CSS(`#topology .node[data-name="r1"]`))); err != nil {
		t.Fatalf("open %s: %v\n%s", link, err, e.Logs())
	}
	location, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(location, "token=") || !strings.HasSuffix(location, "/ui/") {
		t.Errorf("the browser is at %s, want /ui/ without the token", location)
	}

	// Every object of the seed, drawn with its kind and true status (the
	// page polls: statuses settle as the agent programs them).
	want := map[string]string{"public": "kind-external_network", "private": "kind-network", "r1": "kind-router",
		"vm1": "kind-instance", "vm2": "kind-instance", "198.51.100.10": "kind-floatingip", "198.51.100.11": "kind-floatingip",
		"vm1-eth0": "kind-port", "vm2-eth0": "kind-port", "dhcp private": "kind-dhcp"}
	eventually(t, 60*time.Second, "every object drawn ACTIVE", func() error {
		drawn := nodes()
		for name, kind := range want {
			n, ok := drawn[name]
			switch {
			case !ok:
				return fmt.Errorf("%s is not drawn (drawn: %v)", name, drawn)
			case !strings.Contains(n.Class, kind):
				return fmt.Errorf("%s has class %q, want %s", name, n.Class, kind)
			case name == "198.51.100.11":
				// A floating IP with no port of its own is DOWN, as in Neutron.
			case !strings.Contains(n.Class, "status-active") || n.Status != "ACTIVE":
				return fmt.Errorf("%s has class %q and status %q, want status-active", name, n.Class, n.Status)
			}
		}
		return nil
	})
	eventually(t, 30*time.Second, "broken-uplink drawn in ERROR with its reason", func() error {
		n := nodes()["broken-uplink"]
		reason, err := chromedp.Run(ctx, chromedp.Evaluate[string](
			`[...document.querySelectorAll('#topology .node[data-name="broken-uplink"] text.reason')].map(x => x.textContent).join(" ")`))
		if err != nil {
			return err
		}
		if !strings.Contains(n.Class, "status-error") || !strings.Contains(reason, "uplink nosuch0 does not exist") {
			return fmt.Errorf("class %q, reason %q", n.Class, reason)
		}
		return nil
	})
	shot("topology.png")

	// Selecting the router shows its attributes, and explain its commands.
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`#topology .node[data-name="r1"] rect`)),
		chromedp.WaitVisible(chromedp.CSS(`#explain-button`)),
		chromedp.Click(chromedp.CSS(`#explain-button`))); err != nil {
		t.Fatalf("select r1 and explain: %v", err)
	}
	if got := text("#details-title"); got != "router r1" {
		t.Errorf("details title %q, want router r1", got)
	}
	eventually(t, 30*time.Second, "explain router r1 on the page", func() error {
		if out := text("#explain-output"); !strings.Contains(out, "ip netns add "+e.Prefix+"qrouter-") {
			return fmt.Errorf("explain output %q", out)
		}
		return nil
	})
	if attrs := text("#details-attrs"); !strings.Contains(attrs, "external gateway") || !strings.Contains(attrs, "198.51.100.2") {
		t.Errorf("r1's attributes lack its gateway: %q", attrs)
	}

	// Live counters: traffic from vm1 moves its port's counter on the
	// page without a reload.
	vm1Port := nodes()["vm1-eth0"].ID
	counter := fmt.Sprintf(`#topology text.traffic[data-port=%q]`, vm1Port)
	before := text(counter)
	if out, err := e.In("vm1", "ping", "-c", "3", "-i", "0.2", "-W", "2", "10.0.0.12"); err != nil {
		t.Fatalf("ping vm2 from vm1: %v\n%s", err, out)
	}
	eventually(t, 30*time.Second, "vm1-eth0's traffic counter moves on the page", func() error {
		if now := text(counter); now == before || now == "" {
			return fmt.Errorf("still %q", now)
		}
		return nil
	})

	// A trace from the page: vm2 to vm1's floating IP, into r1 and back
	// out of the same qr- (DNAT to vm1).
	if err := chromedp.Do(ctx,
		chromedp.SetValue(chromedp.CSS(`#trace-source`), "source:vm2"),
		chromedp.SetValue(chromedp.CSS(`#trace-destination`), "198.51.100.10"),
		chromedp.SetValue(chromedp.CSS(`#trace-protocol`), "icmp"),
		chromedp.Click(chromedp.CSS(`#trace-button`))); err != nil {
		t.Fatalf("start a trace: %v", err)
	}
	eventually(t, 90*time.Second, "the trace ends on the page", func() error {
		if s := text("#trace-status"); strings.HasPrefix(s, "tracing") || s == "" {
			return fmt.Errorf("status %q", s)
		}
		return nil
	})
	status := text("#trace-status")
	if !strings.HasPrefix(status, "answered") {
		t.Errorf("trace status %q, want answered\n%s", status, text("#trace-output"))
	}
	countHops := func() int {
		t.Helper()
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#trace-overlay .trace-hop").length`))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	hops := countHops()
	rewrites, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#trace-overlay .trace-rewrite text")].map(x => x.textContent)`))
	if err != nil {
		t.Fatal(err)
	}
	if hops < 4 {
		t.Errorf("%d hops drawn, want the way out and back (at least 4)", hops)
	}
	found := false
	for _, rw := range rewrites {
		found = found || strings.HasPrefix(rw, "DNAT 198.51.100.10 → 10.0.0.11")
	}
	if !found {
		t.Errorf("rewrites drawn %q, want DNAT 198.51.100.10 → 10.0.0.11", rewrites)
	}
	if out := text("#trace-output"); !strings.Contains(out, "DNAT 198.51.100.10 → 10.0.0.11") {
		t.Errorf("the trace's text lacks the DNAT:\n%s", out)
	}
	// The overlay stays across the page's refreshes.
	refreshed := text("#live")
	eventually(t, 30*time.Second, "the page refreshes", func() error {
		if text("#live") == refreshed {
			return fmt.Errorf("no refresh since %q", refreshed)
		}
		return nil
	})
	if hops := countHops(); hops < 4 {
		t.Errorf("after a refresh %d hops are drawn", hops)
	}
	shot("trace-hairpin.png")

	// Inbound, from a host on the public network to vm1's floating IP:
	// the hops go down the tiers, public → r1 → private → vm1, with the
	// DNAT at r1.
	if err := chromedp.Do(ctx,
		chromedp.SetValue(chromedp.CSS(`#trace-source`), "from_external:public"),
		chromedp.SetValue(chromedp.CSS(`#trace-destination`), "198.51.100.10"),
		chromedp.Click(chromedp.CSS(`#trace-button`))); err != nil {
		t.Fatalf("start the inbound trace: %v", err)
	}
	eventually(t, 90*time.Second, "the inbound trace ends on the page", func() error {
		// The click set the status to "tracing…" before it returned.
		if s := text("#trace-status"); strings.HasPrefix(s, "tracing") {
			return fmt.Errorf("status %q", s)
		}
		return nil
	})
	if status := text("#trace-status"); !strings.HasPrefix(status, "answered") {
		t.Errorf("inbound trace status %q, want answered\n%s", status, text("#trace-output"))
	}
	onPath, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#trace-overlay .trace-hop.out")].map(g => g.dataset.node)`))
	if err != nil {
		t.Fatal(err)
	}
	drawn := nodes()
	for _, via := range []string{"public", "vm1-eth0"} {
		if !slices.Contains(onPath, drawn[via].ID) {
			t.Errorf("the inbound trace's hops %v do not go through %s (%s)", onPath, via, drawn[via].ID)
		}
	}
	shot("trace.png")

	// What `nsnet graph` prints is the same graph.
	tree := e.MustNsnet("graph")
	for _, want := range []string{"external network public [ACTIVE]", "router r1 [ACTIVE]", "instance vm1 [ACTIVE]", "floating IP 198.51.100.10"} {
		if !strings.Contains(tree, want) {
			t.Errorf("nsnet graph lacks %q:\n%s", want, tree)
		}
	}
	if dot := e.MustNsnet("graph", "-o", "dot"); !strings.Contains(dot, "graph nsnet {") {
		t.Errorf("nsnet graph -o dot:\n%s", dot)
	} else if _, err := exec.LookPath("dot"); err == nil {
		cmd := exec.Command("dot", "-Tsvg", "-o", filepath.Join(shots, "graph-dot.svg"))
		cmd.Stdin = strings.NewReader(dot)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("dot refuses nsnet graph -o dot: %v\n%s", err, out)
		}
	}
}

// browser is a headless Chromium driven over its DevTools protocol.
type browser struct {
	t   *testing.T
	ctx context.Context
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1600, 1000),
		// Nothing of the page may come from anywhere but the daemon.
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelBrowser := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() { cancel(); cancelBrowser(); cancelAlloc() })
	return &browser{t: t, ctx: ctx}
}

func (b *browser) shot(dir, name string) {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot %s", path)
}

// nodes are the nodes the page's SVG holds, by name.
func (b *browser) nodes() map[string]drawnNode {
	b.t.Helper()
	list, err := chromedp.Run(b.ctx, chromedp.Evaluate[[]drawnNode](`[...document.querySelectorAll("#topology .node")].map(g => ({
		id: g.dataset.id, name: g.dataset.name, class: g.getAttribute("class"), status: g.dataset.status}))`))
	if err != nil {
		b.t.Fatalf("read the drawn nodes: %v", err)
	}
	out := map[string]drawnNode{}
	for _, n := range list {
		out[n.Name] = n
	}
	return out
}

// text is the text of the first element sel matches, "" if none does.
func (b *browser) text(sel string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](fmt.Sprintf(`(document.querySelector(%q) || {}).textContent || ""`, sel)))
	if err != nil {
		b.t.Fatalf("read %s: %v", sel, err)
	}
	return s
}

// TestTopologyViewScopedInBrowser logs in through the page's form as a
// member of project alpha, with a tokens file: the page draws alpha's
// network and instance and the shared external network, never project
// beta's; a bad token gets the form back with its reason.
func TestTopologyViewScopedInBrowser(t *testing.T) {
	if _, err := os.Stat(chromium); err != nil {
		t.Skip("no chromium (apt-get install -y chromium; scripts/deps.sh installs it)")
	}
	e := Start(t, WithTokens(tenancyTokens, "tok-admin"))
	e.MustNsnetAs("tok-admin", "network", "create", "public", "--external")
	e.MustNsnetAs("tok-alpha", "network", "create", "alpha-net")
	e.MustNsnetAs("tok-alpha", "subnet", "create", "alpha-v4", "--network", "alpha-net", "--subnet-range", "10.0.0.0/24")
	e.MustNsnetAs("tok-alpha", "instance", "create", "alpha-vm")
	e.MustNsnetAs("tok-alpha", "port", "create", "alpha-vm-eth0", "--network", "alpha-net", "--device", "alpha-vm")
	e.MustNsnetAs("tok-beta", "network", "create", "beta-net")
	e.MustNsnetAs("tok-beta", "subnet", "create", "beta-v4", "--network", "beta-net", "--subnet-range", "10.0.0.0/24")
	e.MustNsnetAs("tok-beta", "instance", "create", "beta-vm")

	// With a tokens file there is no one admin token: the daemon prints
	// the view's address without one.
	if !strings.Contains(e.Logs(), "topology view: "+e.Endpoint+"/ui/") || strings.Contains(e.Logs(), "/ui/?token=") {
		t.Errorf("the daemon's log does not name the view without a token:\n%s", e.Logs())
	}
	b := newBrowser(t)
	login := func(token string) {
		t.Helper()
		if err := chromedp.Do(b.ctx, chromedp.Navigate(e.Endpoint+"/ui/"),
			chromedp.WaitVisible(chromedp.CSS(`#token`)),
			chromedp.SendKeys(chromedp.CSS(`#token`), token),
			chromedp.Submit(chromedp.CSS(`#token`))); err != nil {
			t.Fatalf("log in with %s: %v", token, err)
		}
	}
	login("tok-wrong")
	if err := chromedp.Do(b.ctx, chromedp.WaitVisible(chromedp.CSS(`#login-error`))); err != nil {
		t.Fatal(err)
	}
	if msg := b.text("#login-error"); msg != "That token was not accepted." {
		t.Errorf("login error %q", msg)
	}

	login("tok-alpha")
	if err := chromedp.Do(b.ctx, chromedp.WaitVisible(chromedp.CSS(`#topology .node[data-name="alpha-net"]`))); err != nil {
		t.Fatalf("alpha's view: %v", err)
	}
	drawn := b.nodes()
	for _, name := range []string{"public", "alpha-net", "alpha-vm", "alpha-vm-eth0"} {
		if _, ok := drawn[name]; !ok {
			t.Errorf("alpha's view lacks %s: %v", name, drawn)
		}
	}
	for _, name := range []string{"beta-net", "beta-vm"} {
		if _, ok := drawn[name]; ok {
			t.Errorf("alpha's view shows beta's %s", name)
		}
	}
	if who := b.text("#caller"); !strings.Contains(who, "alice · project Alpha (member)") {
		t.Errorf("the page says the caller is %q", who)
	}
}
