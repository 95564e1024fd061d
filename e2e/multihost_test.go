package e2e

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nsnet/nsnet/internal/lab"
	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/store/storetest"
)

// multiHost is a lab of nsnet hosts on one etcd (see lab.Cluster) and the
// test driving it through two of its API servers: host-a's unix socket
// with the nsnet CLI, and net's TCP API with REST.
type multiHost struct {
	*lab.Cluster
	t    *testing.T
	etcd *storetest.Etcd
	// cli is the host whose socket the CLI talks to; rest the one whose
	// TCP API REST calls go to.
	cli, rest *lab.Host
}

// The lab's hosts: two compute hosts, and two network nodes so that a lost
// one has a place to fail over to.
var labHosts = []lab.HostConfig{
	{Name: "host-a", Roles: []string{model.RoleCompute}},
	{Name: "host-b", Roles: []string{model.RoleCompute}},
	{Name: "net", Roles: []string{model.RoleNetwork}},
	{Name: "net2", Roles: []string{model.RoleNetwork}},
}

// startMultiHost starts etcd and the cluster for t, and registers their
// teardown: the topology deleted through the API, the agents given time to
// converge, then lab.Cluster.Close's leftover check.
func startMultiHost(t *testing.T) *multiHost {
	t.Helper()
	if err := lab.CheckMultiHost(nsnetBin); err != nil {
		t.Skip(err)
	}
	// A bulk create writes about eight records per port in one
	// transaction: past etcd's default of 128 operations.
	etcd := storetest.StartEtcd(t, "--max-txn-ops", "4096")
	c, err := lab.NewCluster(context.Background(), lab.ClusterConfig{
		Bin: nsnetBin, Dir: t.TempDir(), Store: etcd.URL("nsnet-mh-" + lab.RandomHex(4)), Hosts: labHosts,
		DaemonArgs: []string{"--heartbeat-interval", "1s", "--agent-down-time", "5s", "--log-level", "debug"},
		// The network nodes reach the upstream by differently named
		// interfaces, each mapping the physical network to its own.
		PhysicalNetwork: "upstream",
	})
	if err != nil {
		t.Fatal(err)
	}
	m := &multiHost{Cluster: c, t: t, etcd: etcd, cli: c.Host("host-a"), rest: c.Host("net")}
	t.Cleanup(m.teardown)
	return m
}

// nsnet runs the CLI against the cli host's socket.
func (m *multiHost) nsnet(args ...string) (string, error) {
	out, err := exec.Command(nsnetBin, append([]string{"--socket", m.cli.Socket}, args...)...).CombinedOutput()
	return string(out), err
}

func (m *multiHost) mustNsnet(t *testing.T, args ...string) string {
	t.Helper()
	out, err := m.nsnet(args...)
	if err != nil {
		t.Fatalf("nsnet %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// mustJSON runs the CLI with -o json and decodes its answer into out.
func (m *multiHost) mustJSON(t *testing.T, out any, args ...string) {
	t.Helper()
	raw := m.mustNsnet(t, append(args, "-o", "json")...)
	if err := json.Unmarshal([]byte(raw), out); err != nil {
		t.Fatalf("nsnet %s: decode: %v\n%s", strings.Join(args, " "), err, raw)
	}
}

// get reads path from the rest host's API into out, failing the test
// unless it answers 200.
func (m *multiHost) get(t *testing.T, path string, out any) {
	t.Helper()
	status, err := m.rest.Do(context.Background(), "GET", path, nil, out)
	if err != nil || status != 200 {
		t.Fatalf("GET %s on %s: %d %v", path, m.rest.Name, status, err)
	}
}

type mhPort struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	NetworkID   string `json:"network_id"`
	DeviceOwner string `json:"device_owner"`
	MAC         string `json:"mac_address"`
	Status      string `json:"status"`
	HostID      string `json:"binding:host_id"`
	FixedIPs    []struct {
		IPAddress string `json:"ip_address"`
	} `json:"fixed_ips"`
}

func (p mhPort) ip() string {
	if len(p.FixedIPs) == 0 {
		return ""
	}
	return p.FixedIPs[0].IPAddress
}

type mhInstance struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Host  string `json:"host"`
	Netns string `json:"netns"`
}

type mhNetwork struct {
	ID          string `json:"id"`
	MTU         int    `json:"mtu"`
	NetworkType string `json:"provider:network_type"`
	Segment     *int   `json:"provider:segmentation_id"`
}

type mhRouter struct {
	ID      string `json:"id"`
	Gateway *struct {
		FixedIPs []struct {
			IPAddress string `json:"ip_address"`
		} `json:"external_fixed_ips"`
	} `json:"external_gateway_info"`
}

// instance creates an instance on host (the scheduler's choice for "")
// with a port on network (extra: more port create flags) and returns
// both as the API shows them.
func (m *multiHost) instance(t *testing.T, name, host, network string, extra ...string) (mhInstance, mhPort) {
	t.Helper()
	args := []string{"instance", "create", name}
	if host != "" {
		args = append(args, "--host", host)
	}
	var inst mhInstance
	m.mustJSON(t, &inst, args...)
	var port mhPort
	m.mustJSON(t, &port, append([]string{"port", "create", name + "-eth0", "--network", network, "--device", name}, extra...)...)
	return inst, port
}

// in runs argv inside namespace ns.
func in(ns string, argv ...string) (string, error) {
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns}, argv...)...).CombinedOutput()
	return string(out), err
}

// pings tells whether one of three echo requests from ns to addr is
// answered.
func pings(ns, addr string) error {
	if out, err := in(ns, "ping", "-c", "3", "-i", "0.2", "-W", "1", addr); err != nil {
		return fmt.Errorf("ping %s from %s: %v\n%s", addr, ns, err, out)
	}
	return nil
}

// measure waits until check passes (within timeout, else the test fails)
// and logs how long that took from since: the failure figures of
// docs/SCALE.md come from these lines.
func measure(t *testing.T, since time.Time, what string, timeout time.Duration, check func() error) time.Duration {
	t.Helper()
	eventually(t, timeout, what, check)
	d := time.Since(since)
	t.Logf("MEASURED %s: %.1fs", what, d.Seconds())
	return d
}

// agentsOf lists the agents /v2.0/agents shows for host, by type.
func (m *multiHost) agentsOf(t *testing.T, host string) map[string]model.Agent {
	t.Helper()
	var body struct {
		Agents []model.Agent `json:"agents"`
	}
	m.get(t, "/v2.0/agents?host="+host, &body)
	out := map[string]model.Agent{}
	for _, a := range body.Agents {
		if a.Host == host {
			out[a.AgentType] = a
		}
	}
	return out
}

// hostAlive says whether every agent of host is alive (want true) or
// every one dead (want false).
func (m *multiHost) hostAlive(t *testing.T, host string, want bool) error {
	agents := m.agentsOf(t, host)
	if len(agents) == 0 {
		return fmt.Errorf("no agents for host %s", host)
	}
	for typ, a := range agents {
		if a.Alive != want {
			return fmt.Errorf("%s on %s: alive %v, want %v", typ, host, a.Alive, want)
		}
	}
	return nil
}

// l3Host and dhcpHost are the hosts whose agents the scheduler gave the
// router and the network.
func (m *multiHost) l3Host(t *testing.T, routerID string) string {
	return m.scheduledOn(t, "/v2.0/routers/"+routerID+"/l3-agents")
}

func (m *multiHost) dhcpHost(t *testing.T, networkID string) string {
	return m.scheduledOn(t, "/v2.0/networks/"+networkID+"/dhcp-agents")
}

func (m *multiHost) scheduledOn(t *testing.T, path string) string {
	t.Helper()
	var body struct {
		Agents []model.Agent `json:"agents"`
	}
	m.get(t, path, &body)
	if len(body.Agents) != 1 {
		return fmt.Sprintf("(%d agents)", len(body.Agents))
	}
	return body.Agents[0].Host
}

// hostSnapshot is the identity of every kernel object of host: its own
// namespace (links, addresses, tables, and its VXLAN devices' FDB) and the
// namespaces its daemon made.
func hostSnapshot(t *testing.T, h *lab.Host) kernelSnapshot {
	t.Helper()
	s := snapshotKernel(t, h.NetnsPrefix)
	for k, v := range snapshotKernel(t, h.Netns) {
		s[k] = v
	}
	fdb, err := runOut("bridge", "-n", h.Netns, "fdb", "show")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(fdb), "\n") {
		if strings.Contains(line, " dst ") {
			s["fdb "+h.Netns+" "+line] = "present"
		}
	}
	return s
}

// TestMultiHost is issue 17's proof: four hosts on one etcd — host-a and
// host-b (compute), net and net2 (network nodes) — each with its own
// daemon; the topology is built through host-a's API (the CLI on its
// socket) and read back through net's (REST on TCP). Instances on the two
// compute hosts share one VXLAN network; one of them configures itself
// with a real DHCP client from the DHCP agent on a network node, leaves
// for the upstream through the router there (SNAT), and is reached through
// its floating IP; a remote-group rule admits a member on the other host
// and refuses a non-member. Then each failure, measured: a compute host's
// agent killed and restarted, a network node lost, etcd lost.
func TestMultiHost(t *testing.T) {
	m := startMultiHost(t)

	// Every host registered, with its roles' agents alive.
	for _, h := range m.Hosts {
		measure(t, time.Now(), "agents of "+h.Name+" alive", 30*time.Second, func() error { return m.hostAlive(t, h.Name, true) })
		agents := m.agentsOf(t, h.Name)
		network := slices.Contains(h.Roles, model.RoleNetwork)
		for typ, want := range map[string]bool{model.AgentTypeL3: network, model.AgentTypeDHCP: network} {
			if _, ok := agents[typ]; ok != want {
				t.Errorf("host %s (roles %v): %s listed %v, want %v", h.Name, h.Roles, typ, ok, want)
			}
		}
	}

	// The tenant network: VXLAN, its MTU the underlay's less VXLAN's 50.
	var tenant mhNetwork
	m.mustJSON(t, &tenant, "network", "create", "tenant")
	if tenant.NetworkType != "vxlan" || tenant.Segment == nil || tenant.MTU != 1450 {
		t.Errorf("tenant network: type %q, VNI %v, MTU %d; want vxlan, a VNI, 1450", tenant.NetworkType, tenant.Segment, tenant.MTU)
	}
	m.mustNsnet(t, "subnet", "create", "tenant-v4", "--network", "tenant", "--subnet-range", "10.77.0.0/24")
	// The public network is flat on the physical network each network
	// node maps to its own interface (ext2 on net, ext3 on net2).
	var public mhNetwork
	m.mustJSON(t, &public, "network", "create", "public", "--external",
		"--provider-network-type", "flat", "--provider-physical-network", "upstream")
	if public.NetworkType != "flat" {
		t.Errorf("public network: type %q, want flat", public.NetworkType)
	}
	var agents struct {
		Agents []struct {
			Host           string         `json:"host"`
			AgentType      string         `json:"agent_type"`
			Configurations map[string]any `json:"configurations"`
		} `json:"agents"`
	}
	m.get(t, "/v2.0/agents?agent_type=Linux+bridge+agent", &agents)
	for _, a := range agents.Agents {
		h := m.Host(a.Host)
		if h == nil {
			continue
		}
		want := map[string]any{}
		if h.Uplink != "" {
			want["upstream"] = h.Uplink
		}
		if got, _ := a.Configurations["interface_mappings"].(map[string]any); !maps.Equal(got, want) {
			t.Errorf("%s's Linux bridge agent interface_mappings %v, want %v", a.Host, got, want)
		}
	}
	m.mustNsnet(t, "subnet", "create", "public-v4", "--network", "public", "--subnet-range", lab.UpstreamCIDR,
		"--gateway", lab.UpstreamGateway, "--no-dhcp")
	var router mhRouter
	m.mustJSON(t, &router, "router", "create", "r1")
	m.mustNsnet(t, "router", "set", "r1", "--external-gateway", "public")
	m.mustNsnet(t, "router", "add", "subnet", "r1", "tenant-v4")
	m.mustJSON(t, &router, "router", "show", "r1")
	if router.Gateway == nil || len(router.Gateway.FixedIPs) == 0 {
		t.Fatalf("r1 has no gateway address: %+v", router)
	}
	routerGW := router.Gateway.FixedIPs[0].IPAddress
	m.mustNsnet(t, "security-group", "rule", "create", "default", "--protocol", "icmp")

	instA, portA := m.instance(t, "vm-a", "host-a", "tenant")
	instB, portB := m.instance(t, "vm-b", "host-b", "tenant", "--dhcp-client")
	// Placed by the scheduler: a compute host, never a network node.
	instC, portC := m.instance(t, "vm-c", "", "tenant")
	for _, c := range []struct {
		inst mhInstance
		port mhPort
		host string
	}{{instA, portA, "host-a"}, {instB, portB, "host-b"}, {instC, portC, ""}} {
		var got mhPort
		m.get(t, "/v2.0/ports/"+c.port.ID, &struct {
			Port *mhPort `json:"port"`
		}{&got})
		want := cmp.Or(c.host, c.inst.Host)
		if c.inst.Host != want || got.HostID != want || !slices.Contains([]string{"host-a", "host-b"}, want) {
			t.Errorf("%s: instance host %q, port binding:host_id %q, want %q (a compute host)", c.inst.Name, c.inst.Host, got.HostID, want)
		}
	}

	// Across the tunnel: host-a ↔ host-b.
	measure(t, time.Now(), "vm-a reaches vm-c", 30*time.Second, func() error { return pings(instA.Netns, portC.ip()) })

	// vm-b's address comes from the DHCP agent on a network node, over
	// VXLAN: busybox's udhcpc, run as a real client.
	dhcpOn := m.dhcpHost(t, tenant.ID)
	if h := m.Host(dhcpOn); h == nil || !slices.Contains(h.Roles, model.RoleNetwork) {
		t.Fatalf("tenant's DHCP is on %q, want a network node", dhcpOn)
	}
	if len(lab.Namespaces(m.Host(dhcpOn).NetnsPrefix+"qdhcp-")) == 0 {
		t.Errorf("no qdhcp namespace on %s, its DHCP host", dhcpOn)
	}
	lease := func() error {
		out, err := in(instB.Netns, "udhcpc", "-n", "-q", "-f", "-t", "3", "-T", "1", "-i", "eth0", "-s", "/etc/udhcpc/default.script")
		if err != nil {
			return fmt.Errorf("udhcpc: %v\n%s", err, out)
		}
		addr, _ := in(instB.Netns, "ip", "-4", "-o", "addr", "show", "dev", "eth0")
		if !strings.Contains(addr, "inet "+portB.ip()+"/24") {
			return fmt.Errorf("eth0 after udhcpc: %s\n%s", addr, out)
		}
		return nil
	}
	measure(t, time.Now(), "vm-b leased its address from DHCP on "+dhcpOn, 30*time.Second, lease)
	measure(t, time.Now(), "vm-b reaches vm-a", 30*time.Second, func() error { return pings(instB.Netns, portA.ip()) })

	// To the upstream through r1 on its network node: SNAT to the gateway.
	l3On := m.l3Host(t, router.ID)
	if h := m.Host(l3On); h == nil || !slices.Contains(h.Roles, model.RoleNetwork) {
		t.Fatalf("r1 is on %q, want a network node", l3On)
	}
	udpServer(t, m.Upstream, lab.UpstreamGateway, "5353")
	var src string
	measure(t, time.Now(), "vm-b reaches the upstream through r1 on "+l3On, 30*time.Second, func() error {
		if src = udpSource(t, instB.Netns, lab.UpstreamGateway, "5353"); src == "" {
			return fmt.Errorf("no answer from the upstream")
		}
		return nil
	})
	if src != routerGW {
		t.Errorf("the upstream saw vm-b as %s, want r1's gateway address %s (SNAT)", src, routerGW)
	}

	// A floating IP on vm-b, reached from the upstream.
	var fip struct {
		Address string `json:"floating_ip_address"`
	}
	m.mustJSON(t, &fip, "floating", "ip", "create", "public", "--port", "vm-b-eth0")
	measure(t, time.Now(), "the upstream reaches vm-b's floating IP", 30*time.Second, func() error { return pings(m.Upstream, fip.Address) })

	// A remote-group rule across hosts: vm-t on host-a admits ICMP from
	// members of "members" only; vm-b (host-b) is one, vm-c is not.
	m.mustNsnet(t, "security-group", "create", "members")
	m.mustNsnet(t, "security-group", "create", "guarded")
	m.mustNsnet(t, "security-group", "rule", "create", "guarded", "--protocol", "icmp", "--remote-group", "members")
	_, portT := m.instance(t, "vm-t", "host-a", "tenant", "--no-security-group", "--security-group", "guarded")
	m.mustNsnet(t, "port", "set", "vm-b-eth0", "--security-group", "members")
	measure(t, time.Now(), "the member on host-b reaches vm-t on host-a", 30*time.Second, func() error { return pings(instB.Netns, portT.ip()) })
	if err := pings(instC.Netns, portA.ip()); err != nil {
		t.Errorf("vm-c cannot reach vm-a, so its refusal below would prove nothing: %v", err)
	}
	if err := pings(instC.Netns, portT.ip()); err == nil {
		t.Errorf("vm-c (not in members) reaches vm-t, which admits members only")
	}

	t.Run("agent killed", func(t *testing.T) { m.agentKilled(t, instA, instB, portA, portB) })
	t.Run("network node lost", func(t *testing.T) {
		m.networkNodeLost(t, router.ID, tenant.ID, instC, fip.Address, routerGW, lease)
	})
	t.Run("etcd lost", func(t *testing.T) { m.etcdLost(t, instA, instB, portA, fip.Address) })
}

// agentKilled: host-b's daemon is killed. Its agents show dead, traffic
// through its data plane goes on, and once restarted it changes nothing
// in the kernel.
func (m *multiHost) agentKilled(t *testing.T, instA, instB mhInstance, portA, portB mhPort) {
	hostB := m.Host("host-b")
	before := hostSnapshot(t, hostB)
	killed := time.Now()
	hostB.Kill()
	measure(t, killed, "host-b's agents show dead after its daemon was killed", 60*time.Second, func() error { return m.hostAlive(t, "host-b", false) })
	for _, p := range [][2]string{{instB.Netns, portA.ip()}, {instA.Netns, portB.ip()}} {
		if err := pings(p[0], p[1]); err != nil {
			t.Errorf("with host-b's daemon dead: %v", err)
		}
	}
	restarted := time.Now()
	if err := hostB.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	measure(t, restarted, "host-b's agents alive after its restart", 60*time.Second, func() error { return m.hostAlive(t, "host-b", true) })
	var health struct {
		Agent struct {
			FullPasses int      `json:"full_passes"`
			Changes    int      `json:"changes"`
			Errors     []string `json:"errors"`
		} `json:"agent"`
	}
	eventually(t, 60*time.Second, "host-b's first full pass after restart", func() error {
		if status, err := hostB.Do(context.Background(), "GET", "/nsnet/status", nil, &health); err != nil || status != 200 {
			return fmt.Errorf("status: %d %v", status, err)
		}
		if health.Agent.FullPasses < 1 {
			return fmt.Errorf("no full pass yet")
		}
		return nil
	})
	if health.Agent.Changes != 0 || len(health.Agent.Errors) > 0 {
		t.Errorf("host-b's agent changed %d objects at restart (errors %v), want none", health.Agent.Changes, health.Agent.Errors)
	}
	t.Logf("MEASURED kernel changes on host-b at its restart: %d", health.Agent.Changes)
	if diff := before.diff(hostSnapshot(t, hostB)); diff != "" {
		t.Errorf("host-b's kernel differs after its daemon's restart:\n%s", diff)
	}
}

// networkNodeLost: the network node holding r1 loses its daemon and its
// cables. r1 and the tenant's DHCP move to the other network node and
// traffic resumes: vm-c's SNAT (it has no floating IP), vm-b's floating
// IP, vm-b's DHCP; when the node comes back it removes what it no longer
// hosts.
func (m *multiHost) networkNodeLost(t *testing.T, routerID, networkID string, instC mhInstance, fip, routerGW string, lease func() error) {
	lost := m.Host(m.l3Host(t, routerID))
	if lost == nil {
		t.Fatalf("r1 is on no known host")
	}
	other := m.Host("net2")
	if lost.Name == "net2" {
		other = m.Host("net")
	}
	if lost == m.rest {
		m.rest = other // its API goes with it
	}
	dhcpWasThere := m.dhcpHost(t, networkID) == lost.Name
	t.Logf("r1 is on %s (DHCP there too: %v); losing it", lost.Name, dhcpWasThere)
	gone := time.Now()
	lost.Kill()
	if err := lost.Cable(false); err != nil {
		t.Fatal(err)
	}
	measure(t, gone, lost.Name+"'s agents show dead", 60*time.Second, func() error { return m.hostAlive(t, lost.Name, false) })
	measure(t, gone, "r1 rescheduled to "+other.Name, 120*time.Second, func() error {
		if on := m.l3Host(t, routerID); on != other.Name {
			return fmt.Errorf("r1 on %s", on)
		}
		return nil
	})
	measure(t, gone, "vm-c reaches the upstream again through r1's SNAT", 120*time.Second, func() error {
		if src := udpSource(t, instC.Netns, lab.UpstreamGateway, "5353"); src != routerGW {
			return fmt.Errorf("upstream saw %q, want %s", src, routerGW)
		}
		return nil
	})
	measure(t, gone, "the upstream reaches vm-b's floating IP again", 120*time.Second, func() error { return pings(m.Upstream, fip) })
	// The public network reaches the upstream on the new node by the
	// interface that node maps the physical network to, not the lost
	// node's name for it.
	if out, err := exec.Command("ip", "-n", other.Netns, "-o", "link", "show", other.Uplink).CombinedOutput(); err != nil || !strings.Contains(string(out), " master ") {
		t.Errorf("after failover, %s's uplink %s is not bridged: %v %s", other.Name, other.Uplink, err, out)
	}
	if dhcpWasThere {
		measure(t, gone, "the tenant's DHCP rescheduled to "+other.Name, 120*time.Second, func() error {
			if on := m.dhcpHost(t, networkID); on != other.Name {
				return fmt.Errorf("DHCP on %s", on)
			}
			return nil
		})
	}
	measure(t, gone, "vm-b gets a lease again", 120*time.Second, lease)

	// Back: its agent removes the router (and DHCP) it no longer hosts.
	if err := lost.Cable(true); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	if err := lost.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	measure(t, back, lost.Name+" back removed the router it no longer hosts", 60*time.Second, func() error {
		if left := lab.Namespaces(lost.NetnsPrefix + "qrouter-"); len(left) > 0 {
			return fmt.Errorf("still there: %v", left)
		}
		return nil
	})
	if on := m.l3Host(t, routerID); on != other.Name {
		t.Errorf("r1 moved back to %s when %s returned; want it to stay on %s", on, lost.Name, other.Name)
	}
	if err := pings(m.Upstream, fip); err != nil {
		t.Errorf("after %s returned: %v", lost.Name, err)
	}
}

// etcdLost: etcd is killed. The API answers 503 naming the store, the data
// plane stays; once etcd is back the API works and a new port works.
func (m *multiHost) etcdLost(t *testing.T, instA, instB mhInstance, portA mhPort, fip string) {
	m.etcd.Stop()
	stopped := time.Now()
	out, err := m.nsnet("network", "list")
	if err == nil || !strings.Contains(out, "cannot reach its store") {
		t.Errorf("network list with etcd down: %v\n%s", err, out)
	}
	var body struct {
		NeutronError struct {
			Type    string `json:"type"`
			Message string `json:"message"`
		} `json:"NeutronError"`
	}
	if status, err := m.rest.Do(context.Background(), "GET", "/v2.0/networks", nil, &body); status != 503 || err != nil {
		t.Errorf("GET /v2.0/networks on %s with etcd down: %d %v %+v, want 503", m.rest.Name, status, err, body)
	} else {
		t.Logf("with etcd down, %s answers 503: %s: %s", m.rest.Name, body.NeutronError.Type, body.NeutronError.Message)
	}
	if err := pings(instB.Netns, portA.ip()); err != nil {
		t.Errorf("with etcd down: %v", err)
	}
	if err := pings(m.Upstream, fip); err != nil {
		t.Errorf("with etcd down: %v", err)
	}
	t.Logf("etcd was down for %.1fs", time.Since(stopped).Seconds())
	if err := m.etcd.Start(); err != nil {
		t.Fatal(err)
	}
	measure(t, time.Now(), "the API works again with etcd back", 60*time.Second, func() error {
		_, err := m.nsnet("network", "list")
		return err
	})
	// An outage longer than the agent down time leaves every heartbeat
	// stale: the hosts are dead until their next beat lands, and a dead
	// host takes no instance.
	for _, h := range m.Hosts {
		measure(t, time.Now(), h.Name+"'s agents alive again with etcd back", 60*time.Second, func() error { return m.hostAlive(t, h.Name, true) })
	}
	back := time.Now()
	instD, _ := m.instance(t, "vm-d", "host-b", "tenant")
	measure(t, back, "a port made after etcd came back (vm-d on host-b) reaches vm-a", 60*time.Second, func() error {
		return pings(instD.Netns, portA.ip())
	})
}

// teardown deletes the topology through a live API server, waits for the
// agents to remove what they made, and checks nothing is left.
func (m *multiHost) teardown() {
	t := m.t
	ctx := context.Background()
	for _, h := range m.Hosts {
		h.Cable(true)
		if h.Pid() == 0 {
			if err := h.Start(ctx); err != nil {
				t.Errorf("teardown: %v", err)
			}
		}
	}
	api := m.Hosts[0]
	list := func(collection string) []map[string]any {
		var body map[string][]map[string]any
		if _, err := api.Do(ctx, "GET", "/v2.0/"+collection, nil, &body); err != nil {
			t.Errorf("teardown: list %s: %v", collection, err)
		}
		key, _, _ := strings.Cut(collection, "?")
		return body[strings.ReplaceAll(key, "-", "_")]
	}
	del := func(path string) {
		var body map[string]any
		if status, err := api.Do(ctx, "DELETE", path, nil, &body); status != 204 {
			t.Errorf("teardown: DELETE %s: %d %v %v", path, status, err, body)
		}
	}
	for _, f := range list("floatingips") {
		del("/v2.0/floatingips/" + f["id"].(string))
	}
	for _, r := range list("routers") {
		id := r["id"].(string)
		api.Do(ctx, "PUT", "/v2.0/routers/"+id, map[string]any{"router": map[string]any{"external_gateway_info": map[string]any{}}}, nil)
		for _, p := range list("ports?device_owner=network:router_interface&device_id=" + id) {
			api.Do(ctx, "PUT", "/v2.0/routers/"+id+"/remove_router_interface", map[string]any{"port_id": p["id"]}, nil)
		}
		del("/v2.0/routers/" + id)
	}
	for _, p := range list("ports") {
		if p["device_owner"] != "network:dhcp" {
			del("/v2.0/ports/" + p["id"].(string))
		}
	}
	for _, collection := range []string{"instances", "subnets", "networks"} {
		for _, it := range list(collection) {
			del("/v2.0/" + collection + "/" + it["id"].(string))
		}
	}
	for _, g := range list("security-groups") {
		if g["name"] != "default" {
			del("/v2.0/security-groups/" + g["id"].(string))
		}
	}
	for _, h := range m.Hosts {
		deadline := time.Now().Add(60 * time.Second)
		for len(lab.Namespaces(h.NetnsPrefix)) > 0 && time.Now().Before(deadline) {
			time.Sleep(200 * time.Millisecond)
		}
	}
	if t.Failed() {
		for _, h := range m.Hosts {
			saveDaemonLog(t, h.Name, h.Logs())
		}
	}
	if err := m.Close(); err != nil {
		t.Error(err)
	}
}

// saveDaemonLog keeps a daemon's log where it outlives the test and logs
// its path and last lines.
func saveDaemonLog(t *testing.T, name, log string) {
	lines := strings.Split(strings.TrimRight(log, "\n"), "\n")
	saved := "(not saved)"
	if f, err := os.CreateTemp("", "nsnet-e2e-"+strings.ReplaceAll(t.Name(), "/", "_")+"-"+name+"-*.log"); err == nil {
		f.WriteString(log)
		f.Close()
		saved = f.Name()
	}
	tail := lines[max(0, len(lines)-20):]
	t.Logf("%s's daemon log: %d lines in %s; the last %d:\n%s", name, len(lines), saved, len(tail), strings.Join(tail, "\n"))
}
