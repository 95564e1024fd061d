package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/endpoints"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/projects"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/roles"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/services"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/users"

	"github.com/nsnet/nsnet/internal/lab"
)

// keystone is a real Keystone (Debian's package) run by a test: a uwsgi
// process on 127.0.0.1 with a sqlite database in a temporary directory.
type keystone struct {
	URL           string // http://127.0.0.1:PORT/v3
	AdminPassword string
	cmd           *exec.Cmd
	log           lab.SyncBuffer
}

// startKeystone sets up and starts Keystone as a plain process (the test
// machines have no systemd), and stops it, with its workers, when t ends.
func startKeystone(t *testing.T) *keystone {
	t.Helper()
	for _, bin := range []string{"keystone-manage", "uwsgi"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s is missing: scripts/test.sh installs Debian's keystone package", bin)
		}
	}
	dir := t.TempDir()
	addr := freeLoopbackAddr(t)
	k := &keystone{URL: "http://" + addr + "/v3", AdminPassword: lab.RandomHex(8)}
	conf := filepath.Join(dir, "keystone.conf")
	err := os.WriteFile(conf, []byte(fmt.Sprintf(`[DEFAULT]
use_stderr = true
[database]
connection = sqlite:///%[1]s/keystone.db
[token]
provider = fernet
expiration = 3600
[fernet_tokens]
key_repository = %[1]s/fernet-keys
[fernet_receipts]
key_repository = %[1]s/fernet-receipts
[credential]
key_repository = %[1]s/credential-keys
[oslo_policy]
policy_dirs = /etc/keystone/policy.d
`, dir)), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"db_sync"},
		{"fernet_setup", "--keystone-user", "root", "--keystone-group", "root"},
		{"credential_setup", "--keystone-user", "root", "--keystone-group", "root"},
		{"bootstrap", "--bootstrap-password", k.AdminPassword, "--bootstrap-region-id", "RegionOne",
			"--bootstrap-admin-url", k.URL, "--bootstrap-public-url", k.URL, "--bootstrap-internal-url", k.URL},
	} {
		cmd := exec.Command("keystone-manage", append([]string{"--config-file", conf}, args...)...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("keystone-manage %s: %v\n%s", args[0], err, out)
		}
	}
	// Debian's uwsgi ini for Keystone, minus what needs systemd, a
	// keystone user or /var/log. One worker with one thread: sqlite
	// takes one writer, and its connections stay on their thread.
	k.cmd = exec.Command("uwsgi", "--plugins", "python3", "--http-socket", addr,
		"--wsgi-file", "/usr/bin/keystone-wsgi-public", "--add-header", "Connection: close",
		"--master", "--processes", "1", "--threads", "1", "--lazy-apps", "--buffer-size", "65535",
		"--die-on-term", "--no-orphans")
	k.cmd.Dir = dir
	k.cmd.Env = append(os.Environ(), "OS_KEYSTONE_CONFIG_FILES="+conf)
	k.cmd.Stdout, k.cmd.Stderr = &k.log, &k.log
	k.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // so that stop reaches the workers too
	if err := k.cmd.Start(); err != nil {
		t.Fatalf("start keystone: %v", err)
	}
	t.Cleanup(func() {
		k.stop()
		if t.Failed() {
			t.Logf("keystone log:\n%s", k.log.String())
		}
	})
	eventually(t, 60*time.Second, "keystone answers", func() error {
		resp, err := http.Get(k.URL)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("GET %s: %s", k.URL, resp.Status)
		}
		return nil
	})
	return k
}

// stop ends uwsgi's whole process group and waits for the master.
func (k *keystone) stop() {
	if k.cmd == nil || k.cmd.Process == nil {
		return
	}
	pgid := k.cmd.Process.Pid
	syscall.Kill(-pgid, syscall.SIGTERM)
	done := make(chan struct{})
	go func() { k.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		syscall.Kill(-pgid, syscall.SIGKILL)
		<-done
	}
	syscall.Kill(-pgid, syscall.SIGKILL) // any worker that outlived its master
	k.cmd = nil
}

// admin returns an identity client logged in as Keystone's admin.
func (k *keystone) admin(t *testing.T) *gophercloud.ServiceClient {
	t.Helper()
	provider, err := openstack.AuthenticatedClient(context.Background(), k.authOptions("admin", k.AdminPassword, "admin"))
	if err != nil {
		t.Fatalf("log in to keystone as admin: %v", err)
	}
	c, err := openstack.NewIdentityV3(provider, gophercloud.EndpointOpts{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (k *keystone) authOptions(user, password, project string) gophercloud.AuthOptions {
	return gophercloud.AuthOptions{IdentityEndpoint: k.URL, Username: user, Password: password, DomainName: "Default",
		Scope: &gophercloud.AuthScope{ProjectName: project, DomainName: "Default"}}
}

// token logs user in and returns a fresh token.
func (k *keystone) token(t *testing.T, user, password, project string) string {
	t.Helper()
	provider, err := openstack.AuthenticatedClient(context.Background(), k.authOptions(user, password, project))
	if err != nil {
		t.Fatalf("log in to keystone as %s: %v", user, err)
	}
	return provider.Token()
}

// TestKeystone runs nsnet against a real Keystone: nsnet validates tokens
// with it as a service user, and is registered in its catalog as the
// network service, so that the OpenStack CLI (and nsnet's own CLI) with
// ordinary password credentials find nsnet through the catalog.
func TestKeystone(t *testing.T) {
	if _, err := exec.LookPath("openstack"); err != nil {
		t.Fatal("the OpenStack CLI is missing: scripts/test.sh installs python3-openstackclient")
	}
	k := startKeystone(t)
	ctx := context.Background()
	id := k.admin(t)
	nsnetAddr := freeLoopbackAddr(t)

	// Keystone as an operator sets it up for a network service: projects,
	// users and roles, nsnet's service user, and the catalog entry.
	// The roles are the ones keystone-manage bootstrap makes. (Making a
	// role of one's own, such as "service", trips over sqlite's locking
	// inside Keystone; its admin role is what install guides give
	// network services anyway.)
	roleID := func(name string) string {
		pages, err := roles.List(id, roles.ListOpts{Name: name}).AllPages(ctx)
		if err != nil {
			t.Fatal(err)
		}
		list, _ := roles.ExtractRoles(pages)
		if len(list) != 1 {
			t.Fatalf("keystone has %d roles named %s", len(list), name)
		}
		return list[0].ID
	}
	project := func(name string) string {
		p, err := projects.Create(ctx, id, projects.CreateOpts{Name: name, DomainID: "default"}).Extract()
		if err != nil {
			t.Fatalf("create project %s: %v", name, err)
		}
		return p.ID
	}
	user := func(name, password, projectID, role string) {
		u, err := users.Create(ctx, id, users.CreateOpts{Name: name, Password: password, DomainID: "default", DefaultProjectID: projectID}).Extract()
		if err != nil {
			t.Fatalf("create user %s: %v", name, err)
		}
		if err := roles.Assign(ctx, id, roleID(role), roles.AssignOpts{UserID: u.ID, ProjectID: projectID}).ExtractErr(); err != nil {
			t.Fatalf("give %s %s: %v", name, role, err)
		}
	}
	servicePassword, password := lab.RandomHex(8), lab.RandomHex(8)
	user("nsnet", servicePassword, project("service"), "admin")
	alpha, beta := project("alpha"), project("beta")
	user("alice", password, alpha, "member")
	user("bob", password, beta, "member")
	svc, err := services.Create(ctx, id, services.CreateOpts{Type: "network", Extra: map[string]any{"name": "nsnet"}}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	_, err = endpoints.Create(ctx, id, endpoints.CreateOpts{Availability: gophercloud.AvailabilityPublic, Region: "RegionOne",
		URL: "http://" + nsnetAddr, ServiceID: svc.ID}).Extract()
	if err != nil {
		t.Fatal(err)
	}

	e := Start(t, WithKeystone(nsnetAddr, k.URL, "nsnet", servicePassword, "service"))
	osEnv := func(user, pw, project string) []string {
		return append(os.Environ(), "OS_AUTH_URL="+k.URL, "OS_USERNAME="+user, "OS_PASSWORD="+pw,
			"OS_PROJECT_NAME="+project, "OS_USER_DOMAIN_NAME=Default", "OS_PROJECT_DOMAIN_NAME=Default",
			"OS_IDENTITY_API_VERSION=3", "OS_REGION_NAME=RegionOne")
	}
	openstackAs := func(env []string, args ...string) (string, error) {
		cmd := exec.Command("openstack", args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	alice, bob, admin := osEnv("alice", password, "alpha"), osEnv("bob", password, "beta"), osEnv("admin", k.AdminPassword, "admin")
	must := func(env []string, args ...string) string {
		t.Helper()
		out, err := openstackAs(env, args...)
		if err != nil {
			t.Fatalf("openstack %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(out)
	}

	// Plain password auth: the CLI finds nsnet in the catalog.
	net := must(alice, "network", "create", "k-net", "-f", "value", "-c", "id", "-c", "project_id")
	netID, owner, _ := strings.Cut(net, "\n")
	if owner != alpha {
		t.Errorf("alice's network belongs to %q, want project alpha %s", owner, alpha)
	}
	if out := must(bob, "network", "list", "-f", "value", "-c", "ID"); strings.Contains(out, netID) {
		t.Errorf("bob sees alice's network:\n%s", out)
	}

	// In Keystone mode the CLI's project look-ups go to Keystone. (The
	// OpenStack CLI of Debian 12 makes its compute client before `quota
	// set` even for network limits alone, and fails on a catalog without
	// Nova unless its cloud names a compute endpoint; nothing is sent
	// there. OS_* variables cannot say that, a clouds.yaml can.)
	cloudsYAML := filepath.Join(t.TempDir(), "clouds.yaml")
	err = os.WriteFile(cloudsYAML, []byte(fmt.Sprintf(`clouds:
  lab-admin:
    auth: {auth_url: %[1]s, username: admin, password: %[2]s, project_name: admin, user_domain_name: Default, project_domain_name: Default}
    region_name: RegionOne
    identity_api_version: 3
    compute_endpoint_override: http://%[4]s
  lab-bob:
    auth: {auth_url: %[1]s, username: bob, password: %[3]s, project_name: beta, user_domain_name: Default, project_domain_name: Default}
    region_name: RegionOne
    identity_api_version: 3
`, k.URL, k.AdminPassword, password, nsnetAddr)), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cloud := func(name string) []string {
		return append(os.Environ(), "OS_CLOUD="+name, "OS_CLIENT_CONFIG_FILE="+cloudsYAML)
	}
	must(cloud("lab-admin"), "quota", "set", "--networks", "1", "alpha")
	if out, err := openstackAs(alice, "network", "create", "k-net2"); err == nil || !strings.Contains(out, "Quota exceeded") {
		t.Errorf("alice went over her quota: %v\n%s", err, out)
	}
	must(admin, "network", "rbac", "create", "--type", "network", "--action", "access_as_shared",
		"--target-project", "beta", "--target-project-domain", "Default", netID)
	if out := must(bob, "network", "show", netID, "-f", "value", "-c", "shared"); out != "True" {
		t.Errorf("bob sees shared=%s on the network shared with beta", out)
	}

	// nsnet's own CLI: OS_AUTH_URL… as the OpenStack CLI reads them, and
	// OS_CLOUD with a clouds.yaml.
	nsnetCLI := func(env []string, args ...string) string {
		t.Helper()
		cmd := exec.Command(nsnetBin, args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("nsnet %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	if out := nsnetCLI(alice, "network", "list"); !strings.Contains(out, "k-net") {
		t.Errorf("nsnet network list as alice:\n%s", out)
	}
	cloudEnv := cloud("lab-bob")
	if out := nsnetCLI(cloudEnv, "network", "show", netID, "-o", "json"); !strings.Contains(out, `"shared": true`) {
		t.Errorf("nsnet network show as bob through clouds.yaml:\n%s", out)
	}

	// Tokens Keystone rejects, and tokens nothing should even send on.
	for _, bad := range []string{"not-a-token", "gAAAA\x80\xff"} {
		if status, _ := e.APIAs(bad, "GET", "/v2.0/networks", nil); status != 401 {
			t.Errorf("token %q: status %d, want 401", bad, status)
		}
	}

	// Keystone gone: a token nsnet validated before keeps working until
	// it expires; one it has never seen cannot be checked: 503.
	seen := k.token(t, "alice", password, "alpha")
	unseen := k.token(t, "bob", password, "beta")
	if status, _ := e.APIAs(seen, "GET", "/v2.0/networks", nil); status != 200 {
		t.Fatalf("alice's token: %d", status)
	}
	k.stop()
	if status, _ := e.APIAs(seen, "GET", "/v2.0/networks", nil); status != 200 {
		t.Errorf("a validated token stopped working when Keystone went away: %d", status)
	}
	status, body := e.APIAs(unseen, "GET", "/v2.0/networks", nil)
	msg := fmt.Sprint(body["NeutronError"])
	if status != 503 || !strings.Contains(msg, "Keystone at "+k.URL) {
		t.Errorf("new token without Keystone: %d %s, want 503 naming Keystone", status, msg)
	}
	if strings.Contains(e.Logs(), seen) || strings.Contains(e.Logs(), unseen) {
		t.Error("the daemon logged a token")
	}
}
