package e2e

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// openstack runs Debian's OpenStack CLI against the daemon's TCP endpoint
// with the admin token, as a user of an existing cloud would.
func (e *Env) openstack(args ...string) (string, error) {
	base := []string{"--os-auth-type", "admin_token", "--os-token", e.Token, "--os-endpoint", e.Endpoint}
	out, err := exec.Command("openstack", append(base, args...)...).CombinedOutput()
	return string(out), err
}

// openstackJSON runs a command with -f json and decodes its answer.
func (e *Env) openstackJSON(args ...string) map[string]any {
	e.t.Helper()
	out, err := e.openstack(append(args, "-f", "json")...)
	if err != nil {
		e.t.Fatalf("openstack %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		e.t.Fatalf("openstack %s: not JSON: %s", strings.Join(args, " "), out)
	}
	return m
}

func TestOpenStackCLI(t *testing.T) {
	if _, err := exec.LookPath("openstack"); err != nil {
		t.Fatal("the OpenStack CLI is missing: scripts/test.sh installs python3-openstackclient")
	}
	e := Start(t, WithTCP())

	net := e.openstackJSON("network", "create", "net1")
	if net["mtu"] != 1500.0 || net["admin_state_up"] != true || net["shared"] != false {
		t.Errorf("network defaults: %v", net)
	}
	if out, err := e.openstack("network", "set", "net1", "--mtu", "1400", "--name", "net-a"); err != nil {
		t.Fatalf("network set: %v\n%s", err, out)
	}
	if got := e.openstackJSON("network", "show", "net-a"); got["mtu"] != 1400.0 {
		t.Errorf("network set --mtu: mtu = %v", got["mtu"])
	}

	sn := e.openstackJSON("subnet", "create", "s1", "--network", "net-a",
		"--subnet-range", "10.20.0.0/24", "--gateway", "10.20.0.1",
		"--allocation-pool", "start=10.20.0.10,end=10.20.0.99",
		"--dns-nameserver", "192.0.2.53",
		"--host-route", "destination=198.51.100.0/24,gateway=10.20.0.254",
		"--no-dhcp")
	pools, _ := json.Marshal(sn["allocation_pools"])
	if sn["cidr"] != "10.20.0.0/24" || sn["enable_dhcp"] != false || string(pools) != `[{"end":"10.20.0.99","start":"10.20.0.10"}]` {
		t.Errorf("subnet: %v", sn)
	}
	if out, _ := e.openstack("subnet", "list"); !strings.Contains(out, "10.20.0.0/24") {
		t.Errorf("subnet list:\n%s", out)
	}

	vm1 := instanceID(t, e, "vm1")
	vm2 := instanceID(t, e, "vm2")
	p1 := e.openstackJSON("port", "create", "p1", "--network", "net-a",
		"--fixed-ip", "subnet=s1,ip-address=10.20.0.11", "--mac-address", "fa:16:3e:12:34:56", "--device", vm1)
	p2 := e.openstackJSON("port", "create", "p2", "--network", "net-a", "--device", vm2)
	if p1["device_owner"] != "compute:nsnet" {
		t.Errorf("a port with an instance as device is owned by compute:nsnet, got %v", p1["device_owner"])
	}
	ip2 := fixedIP(p2)
	if ip2 != "10.20.0.10" {
		t.Errorf("p2 got %s, want the pool's first address 10.20.0.10", ip2)
	}

	for _, port := range []string{"p1", "p2"} {
		eventually(t, 10*time.Second, port+" becomes ACTIVE", func() error {
			if s := e.openstackJSON("port", "show", port)["status"]; s != "ACTIVE" {
				return fmt.Errorf("status %v", s)
			}
			return nil
		})
	}
	if out, err := e.In("vm1", "ping", "-c", "1", "-W", "2", ip2); err != nil {
		t.Fatalf("vm1 cannot ping vm2 at %s: %v\n%s", ip2, err, out)
	}
	link, _ := e.In("vm1", "ip", "link", "show", "eth0")
	if !strings.Contains(link, "fa:16:3e:12:34:56") || !strings.Contains(link, "mtu 1400") {
		t.Errorf("vm1 eth0 should carry p1's MAC and the network MTU:\n%s", link)
	}
	routes, _ := e.In("vm1", "ip", "route")
	for _, want := range []string{"default via 10.20.0.1 dev eth0", "198.51.100.0/24 via 10.20.0.254 dev eth0"} {
		if !strings.Contains(routes, want) {
			t.Errorf("vm1 routes lack %q:\n%s", want, routes)
		}
	}

	// Errors come back as the CLI shows Neutron's.
	if out, err := e.openstack("port", "create", "dup", "--network", "net-a", "--fixed-ip", "ip-address=10.20.0.11"); err == nil || !strings.Contains(out, "already allocated") {
		t.Errorf("duplicate fixed IP: err=%v\n%s", err, out)
	}
	if out, err := e.openstack("network", "delete", "net-a"); err == nil {
		t.Errorf("deleting a network with ports must fail:\n%s", out)
	}
	if out, err := e.openstack("network", "show", "nope"); err == nil {
		t.Errorf("show of an unknown network must fail:\n%s", out)
	}
	if out, _ := e.openstack("port", "list"); !strings.Contains(out, "p1") || !strings.Contains(out, "p2") {
		t.Errorf("port list:\n%s", out)
	}

	for _, args := range [][]string{
		{"port", "delete", "p1", "p2"},
		{"subnet", "delete", "s1"},
		{"network", "delete", "net-a"},
	} {
		if out, err := e.openstack(args...); err != nil {
			t.Fatalf("openstack %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	e.MustNsnet("instance", "delete", "vm1", "vm2")
	eventually(t, 10*time.Second, "kernel objects removed", func() error {
		if links := linksIn(e.HostNetns); len(links) > 0 {
			return fmt.Errorf("links remain in the host namespace: %v", links)
		}
		return nil
	})
}

// instanceID creates an instance with the nsnet CLI and returns its id.
func instanceID(t *testing.T, e *Env, name string) string {
	t.Helper()
	var inst map[string]any
	out := e.MustNsnet("instance", "create", name, "-o", "json")
	if err := json.Unmarshal([]byte(out), &inst); err != nil {
		t.Fatalf("instance create -o json: %v\n%s", err, out)
	}
	return inst["id"].(string)
}

func fixedIP(port map[string]any) string {
	ips, _ := port["fixed_ips"].([]any)
	if len(ips) == 0 {
		return ""
	}
	ip, _ := ips[0].(map[string]any)["ip_address"].(string)
	return ip
}

// TestOpenStackSecurityGroups drives security groups with the OpenStack
// CLI, as the walkthrough does.
func TestOpenStackSecurityGroups(t *testing.T) {
	if _, err := exec.LookPath("openstack"); err != nil {
		t.Fatal("the OpenStack CLI is missing: scripts/test.sh installs python3-openstackclient")
	}
	e := Start(t, WithTCP())
	e.openstackJSON("network", "create", "net1")
	e.openstackJSON("subnet", "create", "s1", "--network", "net1", "--subnet-range", "10.20.0.0/24")

	web := e.openstackJSON("security", "group", "create", "web", "--description", "front ends")
	if web["name"] != "web" || web["description"] != "front ends" || web["stateful"] != true {
		t.Errorf("security group create: %v", web)
	}
	e.openstackJSON("security", "group", "create", "admins")
	ssh := e.openstackJSON("security", "group", "rule", "create", "web", "--protocol", "tcp", "--dst-port", "22",
		"--remote-ip", "10.20.0.0/24")
	if ssh["port_range_min"] != 22.0 || ssh["port_range_max"] != 22.0 || ssh["protocol"] != "tcp" ||
		ssh["remote_ip_prefix"] != "10.20.0.0/24" || ssh["direction"] != "ingress" || ssh["ether_type"] != "IPv4" {
		t.Errorf("rule --dst-port 22 --remote-ip: %v", ssh)
	}
	fromAdmins := e.openstackJSON("security", "group", "rule", "create", "web", "--protocol", "tcp", "--dst-port", "8000:8080",
		"--remote-group", "admins")
	admins := e.openstackJSON("security", "group", "show", "admins")
	if fromAdmins["remote_group_id"] != admins["id"] || fromAdmins["port_range_max"] != 8080.0 {
		t.Errorf("rule --remote-group: %v", fromAdmins)
	}
	if out, err := e.openstack("security", "group", "rule", "create", "web", "--protocol", "tcp", "--dst-port", "22",
		"--remote-ip", "10.20.0.0/24"); err == nil || !strings.Contains(out, "already exists") {
		t.Errorf("duplicate rule: err %v, output %s", err, out)
	}

	e.openstackJSON("port", "create", "p1", "--network", "net1")
	if out, err := e.openstack("port", "set", "p1", "--security-group", "web"); err != nil {
		t.Fatalf("port set --security-group: %v\n%s", err, out)
	}
	p1 := e.openstackJSON("port", "show", "p1")
	if groups := fmt.Sprint(p1["security_group_ids"]); !strings.Contains(groups, web["id"].(string)) {
		t.Errorf("port security groups after set: %v", p1["security_group_ids"])
	}
	if out, err := e.openstack("security", "group", "delete", "web"); err == nil || !strings.Contains(out, "in use") {
		t.Errorf("deleting a group in use: err %v, output %s", err, out)
	}
	if out, err := e.openstack("port", "set", "p1", "--no-security-group", "--disable-port-security"); err != nil {
		t.Fatalf("port set --no-security-group --disable-port-security: %v\n%s", err, out)
	}
	p1 = e.openstackJSON("port", "show", "p1")
	if p1["port_security_enabled"] != false || fmt.Sprint(p1["security_group_ids"]) != "[]" {
		t.Errorf("port after --no-security-group --disable-port-security: %v %v", p1["port_security_enabled"], p1["security_group_ids"])
	}
	if out, err := e.openstack("security", "group", "delete", "web"); err != nil {
		t.Errorf("deleting the unused group: %v\n%s", err, out)
	}
}
