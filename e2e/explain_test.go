package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/nsnet/nsnet/internal/firewall/fwtest"
	"github.com/nsnet/nsnet/internal/lab"
	"github.com/nsnet/nsnet/internal/model"
)

// TestExplainReplays holds `nsnet explain` to its word: the commands it
// prints for a router (gateway, two subnets, a floating IP, a port
// forward), a network and an instance, run by bash under fresh namespace
// names, build kernel state identical to what nsnet built — links (kind,
// MAC, MTU, master, state, alias), addresses, routes, the router's
// sysctls and its nft table as `nft list` prints it.
func TestExplainReplays(t *testing.T) {
	e := Start(t)
	public := jsonOf(t, e.MustNsnet("network", "create", "public", "--external", "-o", "json"))
	e.MustNsnet("subnet", "create", "public-v4", "--network", "public", "--subnet-range", "198.51.100.0/24",
		"--gateway", "198.51.100.1", "--no-dhcp")
	for i, net := range []string{"blue", "green"} {
		e.MustNsnet("network", "create", net)
		e.MustNsnet("subnet", "create", net+"-v4", "--network", net, "--subnet-range", fmt.Sprintf("10.0.%d.0/24", i))
	}
	// green is dual-stack: its instance ends solicit and check their
	// addresses; blue's (IPv4-only) do too, and their firewall drops it.
	e.MustNsnet("subnet", "create", "green-v6", "--network", "green", "--subnet-range", "2001:db8:7::/64", "--no-dhcp")
	e.MustNsnet("router", "create", "r1")
	e.MustNsnet("router", "set", "r1", "--external-gateway", "public")
	e.MustNsnet("router", "add", "subnet", "r1", "blue-v4")
	e.MustNsnet("router", "add", "subnet", "r1", "green-v4")
	e.MustNsnet("router", "set", "r1", "--route", "destination=172.16.0.0/16,gateway=10.0.1.200")
	for _, vm := range []struct{ name, net string }{{"vm1", "blue"}, {"vm2", "blue"}, {"vm3", "green"}} {
		e.MustNsnet("instance", "create", vm.name)
		e.MustNsnet("port", "create", vm.name+"-eth0", "--network", vm.net, "--device", vm.name)
	}
	buildUpstream(t, e, public["id"].(string), "198.51.100.1/24")
	fip := jsonOf(t, e.MustNsnet("floating", "ip", "create", "public", "--port", "vm1-eth0", "-o", "json"))
	fip2 := jsonOf(t, e.MustNsnet("floating", "ip", "create", "public", "-o", "json"))
	vm3IP := fixedIP(jsonOf(t, e.MustNsnet("port", "show", "vm3-eth0", "-o", "json")))
	e.MustNsnet("floating", "ip", "port", "forwarding", "create", fip2["floating_ip_address"].(string), "--port", "vm3-eth0",
		"--internal-ip-address", vm3IP, "--internal-protocol-port", "80", "--external-protocol-port", "8080", "--protocol", "tcp")
	e.MustNsnet("router", "conntrack-helper", "create", "r1", "--helper", "ftp", "--protocol", "tcp", "--port", "21")
	routerNS := e.Prefix + "qrouter-" + jsonOf(t, e.MustNsnet("router", "show", "r1", "-o", "json"))["id"].(string)

	script := e.MustNsnet("explain", "router", "r1")
	for _, want := range []string{
		"ip netns add " + routerNS,
		"sysctl -qw net.ipv4.ip_forward=1",
		"# floating IP " + fip["floating_ip_address"].(string) + ": translated to ",
		"nft -f - <<'EOF'",
		"# port forward tcp " + fip2["floating_ip_address"].(string) + ":8080 → " + vm3IP + ":80",
		"# conntrack helper ftp tcp/21",
		`ct helper set "ftp-tcp"`,
	} {
		if !strings.Contains(script, want) {
			t.Errorf("explain router r1 lacks %q:\n%s", want, script)
		}
	}
	replay(t, e, script, []string{routerNS}, routerSysctls, hostReplay{})

	// The network: its bridge and the instances on it; the router's port
	// on it is named, not rebuilt.
	script = e.MustNsnet("explain", "network", "blue")
	if !strings.Contains(script, "plugs router r1 in here: see nsnet explain router r1") {
		t.Errorf("explain network blue does not name the router's port:\n%s", script)
	}
	blue := jsonOf(t, e.MustNsnet("network", "show", "blue", "-o", "json"))["id"].(string)
	replay(t, e, script, []string{e.Netns("vm1"), e.Netns("vm2"), e.Prefix + "qdhcp-" + blue}, instanceSysctls, hostReplay{})

	// The external network: its bridge, the router's gateway port named,
	// and the uplink, the host's own interface, named and left alone.
	up := jsonOf(t, e.MustNsnet("network", "show", "public", "-o", "json"))["nsnet:uplink"].(string)
	script = e.MustNsnet("explain", "network", "public")
	for _, want := range []string{"# link " + up + ": the network's uplink: the host's own interface", "plugs router r1 in here"} {
		if !strings.Contains(script, want) {
			t.Errorf("explain network public lacks %q:\n%s", want, script)
		}
	}
	replay(t, e, script, nil, nil, hostReplay{})

	// The instance, in JSON this time: the same commands, as data.
	var x struct {
		Kind  string `json:"kind"`
		Steps []struct {
			Object, Comment string
			Commands        []string
		} `json:"steps"`
	}
	if err := json.Unmarshal([]byte(e.MustNsnet("explain", "instance", "vm3", "-o", "json")), &x); err != nil {
		t.Fatal(err)
	}
	if x.Kind != "instance" || len(x.Steps) == 0 {
		t.Fatalf("explain instance vm3 -o json: %+v", x)
	}
	var cmds []string
	for _, s := range x.Steps {
		cmds = append(cmds, s.Commands...)
	}
	script = strings.Join(cmds, "\n")
	if strings.Contains(script, "router_solicitations") {
		t.Errorf("explain instance vm3 sets IPv6 sysctls, which a namespace made now has as the kernel made them:\n%s", script)
	}
	replay(t, e, script, []string{e.Netns("vm3")}, instanceSysctls, hostReplay{})

	// vm3's namespace as the previous nsnet made it: its links' IPv6
	// defaults quiet (dataplane.LegacyInstanceSysctls), its dual-stack
	// eth0 given the kernel's back.
	for _, s := range []string{"net.ipv6.conf.default.router_solicitations=0", "net.ipv6.conf.default.dad_transmits=0"} {
		if out, err := exec.Command("ip", "netns", "exec", e.Netns("vm3"), "sysctl", "-qw", s).CombinedOutput(); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
	}
	script = e.MustNsnet("explain", "instance", "vm3")
	if !strings.Contains(script, "net.ipv6.conf.default.dad_transmits=0") || !strings.Contains(script, "net.ipv6.conf.eth0.router_solicitations=-1") {
		t.Errorf("explain instance vm3, made quiet by the previous nsnet, does not replay its defaults and eth0's:\n%s", script)
	}
	replay(t, e, script, []string{e.Netns("vm3")}, instanceSysctls, hostReplay{})
}

// instanceSysctls are the IPv6 sysctls an instance namespace's links are
// born with (the kernel's, or dataplane.LegacyInstanceSysctls in one the
// previous nsnet made), and those of its eth0.
var instanceSysctls = []string{"net.ipv6.conf.default.router_solicitations", "net.ipv6.conf.default.dad_transmits",
	"net.ipv6.conf.eth0.router_solicitations", "net.ipv6.conf.eth0.dad_transmits"}

var routerSysctls = []string{"net.ipv4.ip_forward", "net.ipv4.conf.all.rp_filter",
	"net.ipv4.conf.default.rp_filter", "net.ipv4.conf.all.send_redirects", "net.ipv4.conf.default.send_redirects"}

// hostReplay says what of the host namespace, beyond the links of the
// objects' ports, an explanation rebuilds: a host-gateway network's
// forwarding and NAT table.
type hostReplay struct {
	sysctls []string
	table   bool
}

// replay runs script with the daemon's namespace prefix rewritten to a
// fresh one and compares each rebuilt namespace with nsnet's: the object
// namespaces in full, the host namespace on the links the script made
// (and what host names).
func replay(t *testing.T, e *Env, script string, objects []string, sysctls []string, host hostReplay) {
	t.Helper()
	p := "nsx" + lab.RandomHex(3) + "-"
	rename := func(s string) string { return strings.ReplaceAll(s, e.Prefix, p) }
	t.Cleanup(func() {
		for _, ns := range lab.Namespaces(p) {
			exec.Command("ip", "netns", "delete", ns).Run()
		}
		if left := lab.Namespaces(p); len(left) > 0 {
			t.Errorf("replay namespaces left behind: %v", left)
		}
	})
	file := filepath.Join(t.TempDir(), "replay.sh")
	if err := os.WriteFile(file, []byte(rename(script)), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("bash", "-e", file).CombinedOutput(); err != nil {
		t.Fatalf("replaying the explanation: %v\n%s\nscript:\n%s", err, out, script)
	}

	wantSpaces := []string{p + "host"}
	for _, ns := range objects {
		wantSpaces = append(wantSpaces, rename(ns))
	}
	slices.Sort(wantSpaces)
	spaces := lab.Namespaces(p)
	slices.Sort(spaces)
	if !slices.Equal(spaces, wantSpaces) {
		t.Errorf("replay made namespaces %v, want %v", spaces, wantSpaces)
	}
	aliases := map[string]bool{}
	for _, ns := range objects {
		want, got := kernelState(ns, sysctls, nil), kernelState(rename(ns), sysctls, nil)
		if want = rename(want); want != got {
			t.Errorf("namespace %s rebuilt from the explanation differs:\n%s", ns, lineDiff(want, got))
		}
		for _, l := range ipLinks(t, ns) {
			aliases[l.Alias] = true
		}
	}
	// The host namespace: the host ends of the objects' ports, and the
	// bridges they are plugged into.
	hostLinks := map[string]bool{"lo": true}
	for _, l := range ipLinks(t, e.HostNetns) {
		// The links of the objects' ports and their bridges, and any
		// link the script labels itself (a network's bridge).
		if l.Alias != "" && (aliases[l.Alias] || strings.Contains(script, " alias "+l.Alias+" ")) {
			hostLinks[l.Name], hostLinks[l.Master] = true, true
		}
	}
	delete(hostLinks, "")
	want, got := kernelState(e.HostNetns, host.sysctls, hostLinks), kernelState(p+"host", host.sysctls, nil)
	if !host.table {
		// The host's NAT table belongs to its host-gateway networks'
		// explanations only.
		want, got = dropNft(want), dropNft(got)
	}
	if want = rename(want); want != got {
		t.Errorf("host namespace rebuilt from the explanation differs:\n%s", lineDiff(want, got))
	}
	// The security groups' tables, when the explanation has them: the
	// host's, whole.
	for _, family := range []string{"bridge", "inet"} {
		if !strings.Contains(script, "table "+family+" nsnet_fw {") {
			continue
		}
		want := fwtest.Canon(fwtest.WithoutUnwritable(nftDebugList(e.HostNetns, family, "nsnet_fw")))
		got := fwtest.Canon(nftDebugList(p+"host", family, "nsnet_fw"))
		if want = rename(want); want == "" || want != got {
			t.Errorf("table %s nsnet_fw rebuilt from the explanation differs:\n%s", family, lineDiff(want, got))
		}
	}
}

// nftDebugList is `nft --debug=netlink list table` of one table in ns:
// its set elements as the kernel's bytes, then its listing.
func nftDebugList(ns, family, table string) string {
	out, _ := exec.Command("ip", "netns", "exec", ns, "nft", "--debug=netlink", "list", "table", family, table).CombinedOutput()
	return string(out)
}

type ipLink struct {
	Name     string   `json:"ifname"`
	Flags    []string `json:"flags"`
	MTU      int      `json:"mtu"`
	Master   string   `json:"master"`
	Address  string   `json:"address"`
	Alias    string   `json:"ifalias"`
	LinkInfo struct {
		Kind string `json:"info_kind"`
	} `json:"linkinfo"`
	// nsnet makes its veths with one queue each way (not the kernel's
	// one per possible CPU): the replay must too.
	TxQueues int `json:"num_tx_queues"`
	RxQueues int `json:"num_rx_queues"`
}

func ipLinks(t *testing.T, ns string) []ipLink {
	t.Helper()
	out, err := exec.Command("ip", "-n", ns, "-d", "-j", "link", "show").Output()
	if err != nil {
		t.Fatalf("ip -n %s link: %v", ns, err)
	}
	var links []ipLink
	if err := json.Unmarshal(out, &links); err != nil {
		t.Fatal(err)
	}
	return links
}

// kernelState is a sorted, line-per-fact dump of ns: its links (only
// those in only, when given) with their disable_ipv6, their addresses,
// the routes through them, the sysctls named and the nft table.
func kernelState(ns string, sysctls []string, only map[string]bool) string {
	var lines []string
	keep := func(dev string) bool { return only == nil || only[dev] }
	out, _ := exec.Command("ip", "-n", ns, "-d", "-j", "link", "show").Output()
	var links []ipLink
	json.Unmarshal(out, &links)
	for _, l := range links {
		if !keep(l.Name) {
			continue
		}
		up := slices.Contains(l.Flags, "UP")
		// A slashed path: a link name may hold dots.
		v6off, _ := exec.Command("ip", "netns", "exec", ns, "cat", "/proc/sys/net/ipv6/conf/"+l.Name+"/disable_ipv6").Output()
		lines = append(lines, fmt.Sprintf("link %s kind=%s mac=%s mtu=%d master=%s up=%v alias=%s disable_ipv6=%s queues=%d/%d",
			l.Name, l.LinkInfo.Kind, l.Address, l.MTU, l.Master, up, l.Alias, strings.TrimSpace(string(v6off)), l.TxQueues, l.RxQueues))
	}
	out, _ = exec.Command("ip", "-n", ns, "-j", "addr", "show").Output()
	var addrs []struct {
		Name  string `json:"ifname"`
		Addrs []struct {
			Local     string `json:"local"`
			Prefixlen int    `json:"prefixlen"`
			Broadcast string `json:"broadcast"`
			Scope     string `json:"scope"`
		} `json:"addr_info"`
	}
	json.Unmarshal(out, &addrs)
	for _, l := range addrs {
		for _, a := range l.Addrs {
			if keep(l.Name) && !strings.HasPrefix(a.Local, "fe80:") {
				lines = append(lines, fmt.Sprintf("addr %s %s/%d brd=%s scope=%s", l.Name, a.Local, a.Prefixlen, a.Broadcast, a.Scope))
			}
		}
	}
	for _, family := range []string{"-4", "-6"} {
		out, _ = exec.Command("ip", "-n", ns, family, "route", "show", "table", "all").Output()
		for _, r := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			f := strings.Fields(r)
			// The kernel adds IPv6 link-local routes by itself, once
			// duplicate address detection is done: when, is not nsnet's.
			if strings.Contains(r, "fe80:") {
				continue
			}
			if i := slices.Index(f, "dev"); r != "" && (i < 0 || keep(f[i+1])) {
				lines = append(lines, "route "+strings.Join(f, " "))
			}
		}
	}
	for _, k := range sysctls {
		out, _ = exec.Command("ip", "netns", "exec", ns, "sysctl", "-n", k).Output()
		lines = append(lines, "sysctl "+k+"="+strings.TrimSpace(string(out)))
	}
	out, _ = exec.Command("ip", "netns", "exec", ns, "nft", "list", "table", "inet", "nsnet").Output()
	for _, l := range strings.Split(sortElements(string(out)), "\n") {
		if strings.TrimSpace(l) != "" {
			lines = append(lines, "nft "+l)
		}
	}
	// nft's lines keep their order; every other fact is sorted.
	var facts, table []string
	for _, l := range lines {
		if strings.HasPrefix(l, "nft ") {
			table = append(table, l)
		} else {
			facts = append(facts, l)
		}
	}
	slices.Sort(facts)
	return strings.Join(append(facts, table...), "\n")
}

func dropNft(state string) string {
	var keep []string
	for _, l := range strings.Split(state, "\n") {
		if !strings.HasPrefix(l, "nft ") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

var nftElements = regexp.MustCompile(`elements = \{([^}]*)\}`)

// sortElements puts the elements of each set in `nft list` output in
// order: the kernel lists them in the order they were added, which is not
// part of what a table means.
func sortElements(table string) string {
	return nftElements.ReplaceAllStringFunc(table, func(m string) string {
		body := nftElements.FindStringSubmatch(m)[1]
		var els []string
		for _, e := range strings.Split(body, ",") {
			els = append(els, strings.Join(strings.Fields(e), " "))
		}
		slices.Sort(els)
		return "elements = { " + strings.Join(els, ", ") + " }"
	})
}

// lineDiff shows the lines only one of a and b has.
func lineDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	var d []string
	for _, l := range al {
		if !slices.Contains(bl, l) {
			d = append(d, "- "+l)
		}
	}
	for _, l := range bl {
		if !slices.Contains(al, l) {
			d = append(d, "+ "+l)
		}
	}
	if len(d) == 0 {
		return "(same lines, other order)\n" + b
	}
	return "nsnet's (-) vs replayed (+):\n" + strings.Join(d, "\n")
}

// TestExplainReplaysSeeds replays `nsnet explain` for every router,
// network and instance of each example topology of the seeds, applied to
// a daemon of its own, and compares the kernel state the commands build
// in fresh namespaces with nsnet's, object by object: links, addresses,
// routes, sysctls and nft tables, and for a network or an instance whose
// ports have security groups the host's firewall tables (bridge and inet
// nsnet_fw: chains, rules, sets, and elements byte for byte).
// Host-gateway networks (seeds 000–002) bring the host's forwarding and
// NAT table (masquerade or SNAT, published ports) and each network's DHCP
// namespace; seed 003 transit addresses in 169.254.0.0/18.
func TestExplainReplaysSeeds(t *testing.T) {
	for _, file := range []string{"seed-000-host-nat", "seed-001-snat", "seed-002-host-nat", "seed-003-router-chain", "seed-004-two-projects", "seed-bridge"} {
		t.Run(file, func(t *testing.T) {
			path := "../examples/" + file + ".yaml"
			if _, err := os.Stat(path); err != nil {
				t.Skipf("no example for %s", file)
			}
			e := Start(t)
			if raw, _ := os.ReadFile(path); strings.Contains(string(raw), "uplink: eth0") {
				hostWithUplink(t, e, "198.51.100.1/24", "198.51.100.32/24")
			}
			if file == "seed-004-two-projects" {
				// The admin's external network first, then one project's
				// part (here the admin's own project).
				e.MustNsnet("apply", "-f", "../examples/seed-004-external.yaml")
			}
			e.MustNsnet("apply", "-f", path)

			var networks []model.Network
			decode(t, e.MustNsnet("network", "list", "-o", "json"), &networks)
			var ports []model.Port
			decode(t, e.MustNsnet("port", "list", "-o", "json"), &ports)
			var routers []model.Router
			decode(t, e.MustNsnet("router", "list", "-o", "json"), &routers)
			var instances []model.Instance
			decode(t, e.MustNsnet("instance", "list", "-o", "json"), &instances)
			instanceNS := map[string]string{}
			for _, in := range instances {
				instanceNS[in.ID] = e.Netns(in.Name)
			}

			for _, r := range routers {
				t.Logf("explain router %s", r.Name)
				replay(t, e, e.MustNsnet("explain", "router", r.ID), []string{e.Prefix + "qrouter-" + r.ID}, routerSysctls, hostReplay{})
			}
			for _, nw := range networks {
				var objects []string
				for _, p := range ports {
					switch {
					case p.NetworkID != nw.ID:
					case p.DeviceOwner == model.DeviceOwnerDHCP:
						objects = append(objects, e.Prefix+"qdhcp-"+nw.ID)
					case instanceNS[p.DeviceID] != "":
						objects = append(objects, instanceNS[p.DeviceID])
					}
				}
				host := hostReplay{}
				if nw.HostGateway {
					host = hostReplay{sysctls: []string{"net.ipv4.ip_forward"}, table: true}
				}
				t.Logf("explain network %s", nw.Name)
				script := e.MustNsnet("explain", "network", nw.ID)
				if secured(ports, nw.ID, instanceNS) && !strings.Contains(script, "table inet nsnet_fw {") {
					t.Errorf("explain network %s has secured ports and no security group tables:\n%s", nw.Name, script)
				}
				if nw.HostGateway && nw.Uplink != nil && !strings.Contains(script, "# uplink "+*nw.Uplink+":") {
					t.Errorf("explain network %s does not name its uplink %s:\n%s", nw.Name, *nw.Uplink, script)
				}
				replay(t, e, script, objects, nil, host)
			}
			for _, in := range instances {
				t.Logf("explain instance %s", in.Name)
				script := e.MustNsnet("explain", "instance", in.ID)
				for _, p := range ports {
					if p.DeviceID == in.ID && p.PortSecurityEnabled && len(p.SecurityGroups) > 0 && !strings.Contains(script, "table inet nsnet_fw {") {
						t.Errorf("explain instance %s has a secured port and no security group tables:\n%s", in.Name, script)
					}
				}
				replay(t, e, script, []string{instanceNS[in.ID]}, instanceSysctls, hostReplay{})
			}
		})
	}
}

// secured reports whether an instance's port on network id (instances
// by id) has security groups to enforce.
func secured(ports []model.Port, id string, instances map[string]string) bool {
	for _, p := range ports {
		if p.NetworkID == id && instances[p.DeviceID] != "" && p.PortSecurityEnabled && len(p.SecurityGroups) > 0 {
			return true
		}
	}
	return false
}

func decode(t *testing.T, out string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("decode %q: %v", out, err)
	}
}

// TestExplainAsMember: the security group tables are the host's, shared
// by every project's ports; a member's explain (the web view's too, which
// runs as its caller) shows the member's ports in them and nothing of
// another project's: its taps, MACs, addresses.
func TestExplainAsMember(t *testing.T) {
	e := Start(t, WithTokens(tenancyTokens, "tok-admin"))
	type port struct{ tap, mac, ip string }
	ports := map[string]port{}
	for _, p := range []struct{ token, cidr string }{{"tok-alpha", "10.0.1.0/24"}, {"tok-beta", "10.0.2.0/24"}} {
		e.MustNsnetAs(p.token, "network", "create", "net")
		e.MustNsnetAs(p.token, "subnet", "create", "sub", "--network", "net", "--subnet-range", p.cidr)
		e.MustNsnetAs(p.token, "instance", "create", "vm")
		var got model.Port
		decode(t, e.MustNsnetAs(p.token, "port", "create", "vm-eth0", "--network", "net", "--device", "vm", "-o", "json"), &got)
		ports[p.token] = port{model.TapName(got.ID), got.MACAddress, got.FixedIPs[0].IPAddress}
	}
	for _, who := range []struct{ token, other string }{{"tok-alpha", "tok-beta"}, {"tok-beta", "tok-alpha"}} {
		for _, args := range [][]string{{"explain", "network", "net"}, {"explain", "instance", "vm"}} {
			script := e.MustNsnetAs(who.token, args...)
			own, other := ports[who.token], ports[who.other]
			for _, want := range []string{"table inet nsnet_fw {", `"` + own.tap + `"`, own.mac, own.ip, "# ports and networks this caller cannot see are left out"} {
				if !strings.Contains(script, want) {
					t.Errorf("%s: %s lacks %q:\n%s", who.token, strings.Join(args, " "), want, script)
				}
			}
			for _, hidden := range []string{other.tap, other.mac, other.ip} {
				if strings.Contains(script, hidden) {
					t.Errorf("%s: %s shows %q of the other project:\n%s", who.token, strings.Join(args, " "), hidden, script)
				}
			}
		}
	}
}
