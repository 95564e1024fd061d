package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nsnet/nsnet/internal/lab"
)

// Three callers: nsnet's admin, and a member of each of two projects.
const tenancyTokens = `
- {token: tok-admin, project_id: admin, user_id: root, roles: [admin]}
- {token: tok-alpha, project_id: alpha, project_name: Alpha, user_id: alice, roles: [member]}
- {token: tok-alpha-ro, project_id: alpha, user_id: rita, roles: [reader]}
- {token: tok-beta, project_id: beta, project_name: Beta, user_id: bob, roles: [member]}
`

// TestTenantIsolation: two projects build the same topology, with the same
// CIDR and the same instance names, through the nsnet CLI with their own
// tokens. Both work at once; neither reaches the other's instances.
func TestTenantIsolation(t *testing.T) {
	e := Start(t, WithTokens(tenancyTokens, "tok-admin"))
	type instance struct{ netns, ip, mac string }
	built := map[string]map[string]instance{} // project -> instance name -> what it got
	for _, p := range []struct{ token, project, greenIP string }{
		{"tok-alpha", "alpha", ""},
		{"tok-beta", "beta", "10.0.0.77"},
	} {
		e.MustNsnetAs(p.token, "network", "create", "net")
		e.MustNsnetAs(p.token, "subnet", "create", "sub", "--network", "net", "--subnet-range", "10.0.0.0/24")
		built[p.project] = map[string]instance{}
		for _, name := range []string{"red", "green"} {
			var inst struct{ Netns string }
			decodeJSON(t, e.MustNsnetAs(p.token, "instance", "create", name, "-o", "json"), &inst)
			args := []string{"port", "create", name + "-eth0", "--network", "net", "--device", name, "-o", "json"}
			if name == "green" && p.greenIP != "" {
				args = append(args, "--fixed-ip", "subnet=sub,ip-address="+p.greenIP)
			}
			var port struct {
				MAC      string `json:"mac_address"`
				FixedIPs []struct {
					IP string `json:"ip_address"`
				} `json:"fixed_ips"`
			}
			decodeJSON(t, e.MustNsnetAs(p.token, args...), &port)
			built[p.project][name] = instance{inst.Netns, port.FixedIPs[0].IP, port.MAC}
		}
	}

	// Instance names are per project; namespace names carry the project.
	for project, insts := range built {
		if want := e.Prefix + "red@" + project; insts["red"].netns != want {
			t.Errorf("%s's red lives in %q, want %q", project, insts["red"].netns, want)
		}
	}
	alpha, beta := built["alpha"], built["beta"]
	if alpha["red"].ip != "10.0.0.2" || beta["red"].ip != "10.0.0.2" {
		t.Fatalf("both reds should get the pool's first address: alpha %s, beta %s", alpha["red"].ip, beta["red"].ip)
	}

	// Each project reaches its own green, through `nsnet exec` resolving
	// the instance name in the caller's project.
	for _, p := range []struct{ token, project string }{{"tok-alpha", "alpha"}, {"tok-beta", "beta"}} {
		green := built[p.project]["green"].ip
		if out, err := e.NsnetAs(p.token, "exec", "red", "--", "ping", "-c", "1", "-W", "2", green); err != nil {
			t.Errorf("%s: red cannot ping its green at %s: %v\n%s", p.project, green, err, out)
		}
	}
	// 10.0.0.2 is red in both projects: alpha's green reaches alpha's red
	// (its MAC answers), never beta's.
	if out, err := e.NsnetAs("tok-alpha", "exec", "green", "--", "ping", "-c", "1", "-W", "2", "10.0.0.2"); err != nil {
		t.Fatalf("alpha green cannot ping 10.0.0.2: %v\n%s", err, out)
	}
	neigh, _ := runOut("ip", "-n", alpha["green"].netns, "neigh", "show", "10.0.0.2")
	if !strings.Contains(neigh, alpha["red"].mac) || strings.Contains(neigh, beta["red"].mac) {
		t.Errorf("alpha's green resolved 10.0.0.2 to %q; want alpha red's %s", neigh, alpha["red"].mac)
	}
	// Beta's green has an address alpha does not use: alpha cannot reach it.
	if out, err := e.NsnetAs("tok-alpha", "exec", "red", "--", "ping", "-c", "1", "-W", "1", beta["green"].ip); err == nil {
		t.Errorf("alpha's red reached beta's green at %s:\n%s", beta["green"].ip, out)
	}

	// Each project sees only its own; the admin sees both.
	for token, want := range map[string]int{"tok-alpha": 2, "tok-beta": 2, "tok-admin": 4} {
		var list []map[string]any
		decodeJSON(t, e.MustNsnetAs(token, "instance", "list", "-o", "json"), &list)
		if len(list) != want {
			t.Errorf("%s lists %d instances, want %d", token, len(list), want)
		}
	}
	if out, err := e.NsnetAs("tok-alpha-ro", "instance", "create", "blue"); err == nil || !strings.Contains(out, "disallowed by policy") {
		t.Errorf("a reader created an instance: %v\n%s", err, out)
	}
}

// TestTenantsOpenStackCLI drives the OpenStack CLI with two projects'
// tokens: isolation, sharing through RBAC, quotas, and the identity
// look-ups that nsnet answers from its tokens file.
func TestTenantsOpenStackCLI(t *testing.T) {
	if _, err := exec.LookPath("openstack"); err != nil {
		t.Fatal("the OpenStack CLI is missing: scripts/test.sh installs python3-openstackclient")
	}
	e := Start(t, WithTokens(tenancyTokens, "tok-admin"))
	as := func(token string, args ...string) (string, error) {
		base := []string{"--os-auth-type", "admin_token", "--os-token", token, "--os-endpoint", e.Endpoint}
		out, err := exec.Command("openstack", append(base, args...)...).CombinedOutput()
		return string(out), err
	}
	must := func(token string, args ...string) string {
		t.Helper()
		out, err := as(token, args...)
		if err != nil {
			t.Fatalf("openstack %s (%s): %v\n%s", strings.Join(args, " "), token, err, out)
		}
		return out
	}

	netA := strings.TrimSpace(must("tok-alpha", "network", "create", "net-a", "-f", "value", "-c", "id"))
	must("tok-alpha", "subnet", "create", "sub-a", "--network", netA, "--subnet-range", "10.0.0.0/24")
	must("tok-beta", "network", "create", "net-b")
	if out := must("tok-beta", "network", "list", "-f", "value", "-c", "Name"); strings.TrimSpace(out) != "net-b" {
		t.Errorf("beta lists:\n%s", out)
	}
	if out, err := as("tok-beta", "network", "show", netA); err == nil || !strings.Contains(out, "No Network found") {
		t.Errorf("beta can see alpha's network: %v\n%s", err, out)
	}

	// The admin sets alpha's quota by project name: the CLI looks the
	// project up at nsnet's endpoint, which answers from the tokens file.
	must("tok-admin", "quota", "set", "--networks", "1", "Alpha")
	if out, err := as("tok-alpha", "network", "create", "net-a2"); err == nil || !strings.Contains(out, "Quota exceeded for resources: ['network']") {
		t.Errorf("alpha went over its quota: %v\n%s", err, out)
	}
	if out := must("tok-admin", "quota", "list", "--network", "--project", "alpha", "-f", "json"); !strings.Contains(out, `"Networks": 1`) {
		t.Errorf("quota list:\n%s", out)
	}

	// Alpha shares its network with beta; beta then sees it and plugs
	// a port into it, but may not change it.
	must("tok-alpha", "network", "rbac", "create", "--type", "network", "--action", "access_as_shared",
		"--target-project", "beta", netA)
	if out := must("tok-beta", "network", "show", netA, "-f", "value", "-c", "shared"); strings.TrimSpace(out) != "True" {
		t.Errorf("shared as beta sees it: %s", out)
	}
	must("tok-beta", "port", "create", "p-b", "--network", netA)
	if out, err := as("tok-beta", "network", "set", "--name", "mine", netA); err == nil || !strings.Contains(out, "disallowed by policy") {
		t.Errorf("beta renamed alpha's network: %v\n%s", err, out)
	}
	if out, err := as("tok-alpha-ro", "network", "create", "x"); err == nil || !strings.Contains(out, "disallowed by policy") {
		t.Errorf("a reader created a network: %v\n%s", err, out)
	}
	if out, err := as("tok-alpha", "network", "create", "--share", "x"); err == nil || !strings.Contains(out, "disallowed by policy") {
		t.Errorf("a member shared a network: %v\n%s", err, out)
	}
}

// TestQuotaCLI: nsnet quota show and set, and what a quota refuses.
func TestQuotaCLI(t *testing.T) {
	e := Start(t)
	e.MustNsnet("quota", "set", "admin", "--networks", "1", "--ports", "-1")
	out := e.MustNsnet("quota", "show")
	for _, want := range []string{"network              1", "port                 -1", "subnet               100"} {
		if !strings.Contains(out, want) {
			t.Errorf("quota show lacks %q:\n%s", want, out)
		}
	}
	e.MustNsnet("network", "create", "n1")
	if out, err := e.Nsnet("network", "create", "n2"); err == nil || !strings.Contains(out, "Quota exceeded for resources: ['network']") {
		t.Errorf("second network over a quota of 1: %v\n%s", err, out)
	}
	var details map[string]struct{ Limit, Used int }
	decodeJSON(t, e.MustNsnet("quota", "show", "admin", "--detail", "-o", "json"), &details)
	if d := details["network"]; d.Limit != 1 || d.Used != 1 {
		t.Errorf("details: %+v", details)
	}
	if out, err := e.Nsnet("quota", "set", "admin", "--networks", "-3"); err == nil || !strings.Contains(out, "'-3' is not in range -1 through") {
		t.Errorf("negative quota: %v\n%s", err, out)
	}
	e.MustNsnet("quota", "reset", "admin")
	e.MustNsnet("network", "create", "n2")
}

// TestTokensReloadOnSIGHUP: SIGHUP swaps the tokens in force without
// dropping a request, and a file that does not parse keeps the old ones.
func TestTokensReloadOnSIGHUP(t *testing.T) {
	e := Start(t, WithTokens(tenancyTokens, "tok-admin"))
	status := func(token string) int {
		s, _ := e.APIAs(token, "GET", "/v2.0/networks", nil)
		return s
	}
	if status("tok-alpha") != 200 || status("tok-gamma") != 401 {
		t.Fatal("tokens of the first file")
	}

	// Requests keep being answered while the file is swapped.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var failed []int
	var mu sync.Mutex
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if s := status("tok-admin"); s != 200 {
					mu.Lock()
					failed = append(failed, s)
					mu.Unlock()
				}
			}
		}()
	}

	write := func(s string) {
		if err := os.WriteFile(e.Tokens, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("- {token: tok-admin, project_id: admin, user_id: root, roles: [admin]}\n- {token: tok-gamma, project_id: gamma, user_id: g, roles: [owner]}\n")
	e.Signal(syscall.SIGHUP)
	eventually(t, 10*time.Second, "the bad reload is logged", func() error {
		if !strings.Contains(e.Logs(), `tokens not reloaded`) || !strings.Contains(e.Logs(), `line 2: unknown role \"owner\"`) {
			return fmt.Errorf("log:\n%s", e.Logs())
		}
		return nil
	})
	if status("tok-alpha") != 200 || status("tok-gamma") != 401 {
		t.Fatal("a file that does not parse changed the tokens in force")
	}

	write("- {token: tok-admin, project_id: admin, user_id: root, roles: [admin]}\n- {token: tok-gamma, project_id: gamma, user_id: g, roles: [member]}\n")
	e.Signal(syscall.SIGHUP)
	eventually(t, 10*time.Second, "the new tokens are in force", func() error {
		if s := status("tok-gamma"); s != 200 {
			return fmt.Errorf("tok-gamma: %d", s)
		}
		return nil
	})
	if s := status("tok-alpha"); s != 401 {
		t.Errorf("a removed token answers %d, want 401", s)
	}
	close(stop)
	wg.Wait()
	if len(failed) > 0 {
		t.Errorf("%d requests failed during the reloads: %v", len(failed), failed)
	}
}

// TestDaemonRefusesBadTokensFile: the daemon does not start on a tokens
// file it cannot trust, and says which line is wrong.
func TestDaemonRefusesBadTokensFile(t *testing.T) {
	for _, tt := range []struct{ name, file, want string }{
		{"unknown role", "- {token: a, project_id: p, user_id: u, roles: [member]}\n- {token: b, project_id: p, user_id: u, roles: [root]}\n",
			`line 2: unknown role "root"`},
		{"duplicate token", "- {token: a, project_id: p, user_id: u, roles: [member]}\n- {token: a, project_id: q, user_id: v, roles: [admin]}\n",
			"line 2: duplicate token (first given on line 1)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			file := filepath.Join(dir, "tokens.yaml")
			if err := os.WriteFile(file, []byte(tt.file), 0o600); err != nil {
				t.Fatal(err)
			}
			prefix := "nse" + lab.RandomHex(3) + "-"
			cmd := exec.Command(nsnetBin, "daemon", "--state-dir", filepath.Join(dir, "state"), "--socket", filepath.Join(dir, "sock"),
				"--host-netns", prefix+"host", "--netns-prefix", prefix, "--listen", freeLoopbackAddr(t), "--tokens", file)
			done := make(chan struct{})
			var out []byte
			var err error
			go func() { out, err = cmd.CombinedOutput(); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				<-done
				t.Fatal("the daemon started on a bad tokens file")
			}
			if err == nil || !strings.Contains(string(out), tt.want) {
				t.Errorf("err=%v, output %q, want it to say %q", err, out, tt.want)
			}
			if left := lab.Namespaces(prefix); len(left) > 0 {
				t.Errorf("a daemon that refused to start made namespaces %v", left)
				for _, ns := range left {
					exec.Command("ip", "netns", "delete", ns).Run()
				}
			}
		})
	}
}

func decodeJSON(t *testing.T, out string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("not JSON (%v):\n%s", err, out)
	}
}
