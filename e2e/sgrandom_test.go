package e2e

import (
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

var (
	sgSeed  = flag.Uint64("sg.seed", 0, "seed of TestSecurityGroupsRandomized (0: from the clock; the seed used is always printed)")
	sgSteps = flag.Int("sg.steps", 12, "random API operations TestSecurityGroupsRandomized makes")
)

// TestSecurityGroupsRandomized drives security groups through random API
// operations and, after each, checks the host against a reference model:
//
//   - every port is ACTIVE once the API has answered (it waits for the
//     agent);
//   - the next full pass of the agent, with nothing changing, changes
//     nothing in the kernel (the daemon runs one every second);
//   - TCP, UDP and ICMP probes between the instances, made with real
//     sockets inside their namespaces, are answered exactly where the
//     model (sgrandom_model_test.go: Neutron's semantics over the API's
//     state, no code of the firewall) says, and by the instance it says.
//
// The topology: networks A and B both 10.5.0.0/24 with a port at 10.5.0.10
// and one at 10.5.0.11 on each (and a third on A), and C 10.6.0.0/24
// routed to A; B is reachable from nowhere else. Eight instances, two of
// them spare for ports to move to. The operations: groups created and
// deleted (also while in use), rules added and deleted (duplicates, the
// same rule with another remote, overlapping port ranges, any/remote-IP/
// remote-group, any protocol by name or number, ICMP type and code, both
// directions), ports' groups set, added to and unset, allowed address
// pairs (addresses, overlapping CIDRs, 0.0.0.0/0), port security turned off
// and on, ports moved to another instance. Refusals by the API are part of
// the run (and of the log); a 5xx is a failure. Stateless groups are
// refused by the API, so not drawn.
//
// A run is reproducible from its seed: the operations depend only on it
// and on the API's answers. On a failure the test prints the seed, every
// operation so far, the API's state and each cell that differs. The
// default is a short run for the suite; a long one:
//
//	go test -count=1 -run 'TestSecurityGroupsRandomized$' ./e2e -sg.steps=300 -timeout 60m
//
// and a failure again, by its seed: add -sg.seed=N with the steps it
// printed.
func TestSecurityGroupsRandomized(t *testing.T) {
	seed := *sgSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano()) % 1_000_000_000
	}
	t.Logf("seed %d, %d steps; rerun: go test -count=1 -run 'TestSecurityGroupsRandomized$' ./e2e -sg.seed=%d -sg.steps=%d",
		seed, *sgSteps, seed, *sgSteps)
	r := &sgRun{t: t, seed: seed, rng: rand.New(rand.NewPCG(seed, 0))}
	// A full pass every second, so that each step sees one soon after it.
	r.e = Start(t, WithDaemonArgs("--resync-interval", "1s"))
	r.build()
	r.verify(0)
	for step := 1; step <= *sgSteps; step++ {
		r.ops = append(r.ops, fmt.Sprintf("%3d. %s", step, r.randomOp()))
		t.Log(r.ops[len(r.ops)-1])
		r.verify(step)
	}
}

// named is an API object the run refers to by the name it gave it.
type named struct{ name, id string }

type sgRun struct {
	t    *testing.T
	e    *Env
	seed uint64
	rng  *rand.Rand
	ops  []string // what was done so far, with the API's answers

	instances []named // vm1…vm8, in this order
	ports     []named // a1 a2 a3 b1 b2 c1, in this order
	groups    []named // in creation order; default first
	// addrGroups are ag1 and ag2, whose addresses opEditAddressGroup
	// changes.
	addrGroups []named
	rules      []named // in creation order; name: a description
	last       *sgModel
	nextGroup  int
}

// api sends a request and returns its status and body; a transport error
// or a 5xx fails the test, as no request deserves one.
func (r *sgRun) api(method, path string, body any) (int, map[string]any) {
	r.t.Helper()
	status, resp := r.e.API(method, path, body)
	if status == 0 || status >= 500 {
		r.fail(fmt.Sprintf("%s %s %v: %d %v", method, path, body, status, resp))
	}
	return status, resp
}

// mustCreate sends a request that must succeed and returns the id of what
// it made (under key in the answer).
func (r *sgRun) mustCreate(method, path, key string, body any) string {
	r.t.Helper()
	status, resp := r.api(method, path, body)
	if status/100 != 2 {
		r.t.Fatalf("%s %s: %d %v", method, path, status, resp)
	}
	obj, _ := resp[key].(map[string]any)
	id, _ := obj["id"].(string)
	return id
}

// outcome is how an operation's answer reads in the log.
func outcome(status int, resp map[string]any) string {
	if nerr, ok := resp["NeutronError"].(map[string]any); ok {
		return fmt.Sprintf("%d %v", status, nerr["type"])
	}
	return fmt.Sprint(status)
}

// list decodes the collection at path into out.
func (r *sgRun) list(path, key string, out any) {
	r.t.Helper()
	status, resp := r.api("GET", path, nil)
	raw, _ := json.Marshal(resp[key])
	if err := json.Unmarshal(raw, out); status != 200 || err != nil {
		r.t.Fatalf("GET %s: %d %v (%v)", path, status, resp, err)
	}
}

// build makes the topology: A and B 10.5.0.0/24 and 2001:db8:5::/64, C
// 10.6.0.0/24 and 2001:db8:6::/64, a router joining A and C over IPv4
// (only: their IPv6 subnets stay apart), eight instances, six dual-stack
// ports.
func (r *sgRun) build() {
	subnets := map[string]string{}
	for _, n := range []struct{ name, cidr, cidr6 string }{
		{"A", "10.5.0.0/24", "2001:db8:5::/64"}, {"B", "10.5.0.0/24", "2001:db8:5::/64"}, {"C", "10.6.0.0/24", "2001:db8:6::/64"},
	} {
		subnets[n.name+"-net"], subnets[n.name] = r.network(n.name, n.cidr)
		subnets[n.name+"6"] = r.mustCreate("POST", "/v2.0/subnets", "subnet", map[string]any{"subnet": map[string]any{
			"network_id": subnets[n.name+"-net"], "cidr": n.cidr6, "ip_version": 6, "enable_dhcp": false}})
	}
	router := r.mustCreate("POST", "/v2.0/routers", "router", map[string]any{"router": map[string]any{"name": "r"}})
	for _, s := range []string{"A", "C"} {
		if status, resp := r.api("PUT", "/v2.0/routers/"+router+"/add_router_interface", map[string]any{"subnet_id": subnets[s]}); status != 200 {
			r.t.Fatalf("add %s to the router: %d %v", s, status, resp)
		}
	}
	for i := 1; i <= 8; i++ {
		name := fmt.Sprint("vm", i)
		r.instances = append(r.instances, named{name, r.mustCreate("POST", "/v2.0/instances", "instance",
			map[string]any{"instance": map[string]any{"name": name}})})
	}
	for i, p := range []struct{ name, net, ip, ip6 string }{
		{"a1", "A", "10.5.0.10", "2001:db8:5::10"}, {"a2", "A", "10.5.0.11", "2001:db8:5::11"}, {"a3", "A", "10.5.0.12", "2001:db8:5::12"},
		{"b1", "B", "10.5.0.10", "2001:db8:5::10"}, {"b2", "B", "10.5.0.11", "2001:db8:5::11"}, {"c1", "C", "10.6.0.10", "2001:db8:6::10"},
	} {
		r.ports = append(r.ports, named{p.name, r.mustCreate("POST", "/v2.0/ports", "port", map[string]any{"port": map[string]any{
			"name": p.name, "network_id": subnets[p.net+"-net"], "device_id": r.instances[i].id,
			"fixed_ips": []any{
				map[string]any{"subnet_id": subnets[p.net], "ip_address": p.ip},
				map[string]any{"subnet_id": subnets[p.net+"6"], "ip_address": p.ip6},
			}}})})
	}
	var groups []struct{ ID, Name string }
	r.list("/v2.0/security-groups", "security_groups", &groups)
	if len(groups) != 1 || groups[0].Name != "default" {
		r.t.Fatalf("groups after the first port: %v, want default alone", groups)
	}
	r.groups = []named{{"default", groups[0].ID}}
	for i, addrs := range [][]string{
		{"10.5.0.10/32", "2001:db8:5::11/128"},
		{"10.5.0.8/29", "10.6.0.0/24", "2001:db8:6::/64"},
	} {
		name := fmt.Sprint("ag", i+1)
		r.addrGroups = append(r.addrGroups, named{name, r.mustCreate("POST", "/v2.0/address-groups", "address_group",
			map[string]any{"address_group": map[string]any{"name": name, "addresses": addrs}})})
	}
	var rules []apiRule
	r.list("/v2.0/security-group-rules", "security_group_rules", &rules)
	for _, rule := range rules {
		r.rules = append(r.rules, named{r.describeRule(rule), rule.ID})
	}
	slices.SortFunc(r.rules, func(a, b named) int { return strings.Compare(a.name, b.name) })
	for _, inst := range r.instances {
		s := startServers(r.t, r.e.Netns(inst.name), inst.name)
		r.t.Cleanup(s.close)
	}
}

// network creates a network with one subnet cidr without DHCP and returns
// the ids of both.
func (r *sgRun) network(name, cidr string) (net, subnet string) {
	r.t.Helper()
	net = r.mustCreate("POST", "/v2.0/networks", "network", map[string]any{"network": map[string]any{"name": name}})
	subnet = r.mustCreate("POST", "/v2.0/subnets", "subnet", map[string]any{"subnet": map[string]any{
		"network_id": net, "cidr": cidr, "ip_version": 4, "enable_dhcp": false}})
	return net, subnet
}

// instance creates instance vm with a port of its name at ip on net and
// the probe servers in its namespace; port holds the port's attributes
// beyond those. It returns vm's namespace.
func (r *sgRun) instance(vm, net, subnet, ip string, port map[string]any) string {
	r.t.Helper()
	inst := r.mustCreate("POST", "/v2.0/instances", "instance", map[string]any{"instance": map[string]any{"name": vm}})
	attrs := map[string]any{"name": vm, "network_id": net, "device_id": inst,
		"fixed_ips": []any{map[string]any{"subnet_id": subnet, "ip_address": ip}}}
	for k, v := range port {
		attrs[k] = v
	}
	r.mustCreate("POST", "/v2.0/ports", "port", map[string]any{"port": attrs})
	s := startServers(r.t, r.e.Netns(vm), vm)
	r.t.Cleanup(s.close)
	return r.e.Netns(vm)
}

// snapshot reads the API's state for the model.
func (r *sgRun) snapshot() *sgModel {
	m := &sgModel{}
	r.list("/v2.0/ports", "ports", &m.ports)
	r.list("/v2.0/security-group-rules", "security_group_rules", &m.rules)
	r.list("/v2.0/subnets", "subnets", &m.subnets)
	r.list("/v2.0/address-groups", "address_groups", &m.addrGroups)
	return m
}

// verify checks the host after a step: ports ACTIVE, the probes as the
// model predicts, and a quiet full pass that changes nothing.
func (r *sgRun) verify(step int) {
	r.t.Helper()
	m := r.snapshot()
	r.last = m
	// Forget rules the API no longer has (their group went).
	r.rules = slices.DeleteFunc(r.rules, func(n named) bool {
		return !slices.ContainsFunc(m.rules, func(a apiRule) bool { return a.ID == n.id })
	})
	var bad []string
	for _, p := range m.ports {
		if p.Status != "ACTIVE" {
			var reason struct {
				Reason string `json:"nsnet:status_reason"`
			}
			_, resp := r.api("GET", "/v2.0/ports/"+p.ID, nil)
			raw, _ := json.Marshal(resp["port"])
			json.Unmarshal(raw, &reason)
			bad = append(bad, fmt.Sprintf("port %s (%s): %s %s", cmpName(p.Name, p.DeviceOwner), p.ID, p.Status, reason.Reason))
		}
	}
	if len(bad) > 0 {
		r.fail(fmt.Sprintf("step %d: ports not ACTIVE:\n  %s", step, strings.Join(bad, "\n  ")))
	}

	before := r.health()
	logMark := len(r.e.Logs())

	cells, want := r.expectations(m)
	got, err := probeAll(cells)
	if err != nil {
		r.fail(fmt.Sprintf("step %d: probes: %v", step, err))
	}
	var retry []int
	for i := range cells {
		if got[i] != want[i] {
			retry = append(retry, i)
		}
	}
	if len(retry) > 0 {
		// Once more, the differing cells alone: a packet lost on this
		// busy machine is not a policy.
		again := make([]probeCell, len(retry))
		for j, i := range retry {
			again[j] = cells[i]
		}
		got2, err := probeAll(again)
		if err != nil {
			r.fail(fmt.Sprintf("step %d: probes: %v", step, err))
		}
		var diffs []string
		for j, i := range retry {
			if got2[j] != want[i] {
				diffs = append(diffs, fmt.Sprintf("%-32s want %-6s got %-6s (first try %q)  %s",
					cells[i], orNone(want[i]), orNone(got2[j]), got[i], r.explain(m, cells[i])))
			}
		}
		if len(diffs) > 0 {
			r.fail(fmt.Sprintf("step %d: %d of %d cells differ from the model:\n  %s", step, len(diffs), len(cells), strings.Join(diffs, "\n  ")))
		}
		r.t.Logf("step %d: %d cells differed once and agreed when probed again", step, len(retry))
	}

	// The full pass that follows, with nothing changing, must change
	// nothing: no firewall rebuilt, no object repaired.
	var after map[string]any
	eventually(r.t, 20*time.Second, "a full pass after the step", func() error {
		after = r.health()
		if after["full_passes"].(float64) <= before["full_passes"].(float64) {
			return fmt.Errorf("agent: %v", after)
		}
		return nil
	})
	if errs, _ := after["errors"].([]any); after["changes"] != before["changes"] || len(errs) > 0 {
		r.fail(fmt.Sprintf("step %d: a quiet full pass changed %v kernel objects and left errors %v; the daemon logged meanwhile:\n%s",
			step, after["changes"].(float64)-before["changes"].(float64), errs, logsAbout(r.e.Logs()[logMark:])))
	}
	r.t.Logf("step %d: %d cells as the model says (%d answered)", step, len(cells), countNonEmpty(want))
}

func (r *sgRun) health() map[string]any {
	_, body := r.api("GET", "/nsnet/status", nil)
	h, _ := body["agent"].(map[string]any)
	return h
}

// expectations are the cells of the matrix — every service from every
// port to every instance address but its own — and who should answer
// each: the receiving instance's name for TCP and UDP, "icmp" for ICMP,
// "" for nobody.
func (r *sgRun) expectations(m *sgModel) ([]probeCell, []string) {
	instanceOf := map[string]string{}
	for _, inst := range r.instances {
		instanceOf[inst.id] = inst.name
	}
	var targets []netip.Addr
	var srcs []*apiPort
	for i := range m.ports {
		p := &m.ports[i]
		if p.DeviceOwner != "compute:nsnet" {
			continue
		}
		srcs = append(srcs, p)
		for _, a := range m.addresses(p) {
			if !slices.Contains(targets, a) {
				targets = append(targets, a)
			}
		}
	}
	slices.SortFunc(targets, netip.Addr.Compare)
	slices.SortFunc(srcs, func(a, b *apiPort) int { return strings.Compare(a.Name, b.Name) })
	var cells []probeCell
	var want []string
	for _, src := range srcs {
		for _, addr := range targets {
			if slices.Contains(m.addresses(src), addr) {
				continue
			}
			dst := m.answerer(src, addr)
			for _, svc := range servicesOf(addr) {
				cells = append(cells, probeCell{src: src.Name, ns: r.e.Netns(instanceOf[src.DeviceID]), addr: addr, svc: svc})
				switch {
				case dst == nil || !m.allows(src, dst, svc, addr):
					want = append(want, "")
				case svc.proto == 1 || svc.proto == 58:
					want = append(want, "icmp")
				default:
					want = append(want, instanceOf[dst.DeviceID])
				}
			}
		}
	}
	return cells, want
}

// explain says why the model decided a cell as it did.
func (r *sgRun) explain(m *sgModel, c probeCell) string {
	var src *apiPort
	for i := range m.ports {
		if m.ports[i].Name == c.src {
			src = &m.ports[i]
		}
	}
	dst := m.answerer(src, c.addr)
	if dst == nil {
		return "model: no instance there"
	}
	from, _, _ := m.address(src, c.addr)
	return fmt.Sprintf("model: to %s; egress of %s admits %v, ingress of %s admits %v from %s", dst.Name,
		src.Name, m.admits(src, "egress", c.svc, c.addr), dst.Name, m.admits(dst, "ingress", c.svc, from), from)
}

// fail ends the test with everything needed to reproduce and read the
// failure: the seed, the operations, the API's state.
func (r *sgRun) fail(what string) {
	r.t.Helper()
	r.t.Fatalf("%s\n\nseed %d; rerun: go test -count=1 -run 'TestSecurityGroupsRandomized$' ./e2e -sg.seed=%d -sg.steps=%d\noperations:\n%s\nstate:\n%s",
		what, r.seed, r.seed, len(r.ops), strings.Join(r.ops, "\n"), r.describeState())
}

// describeState is the API's state in a few lines: each instance port's
// instance, address, port security, groups and address pairs, and each
// group's rules.
func (r *sgRun) describeState() string {
	m := r.last
	if m == nil {
		return "(not read)"
	}
	names := map[string]string{}
	for _, n := range append(r.groups, r.instances...) {
		names[n.id] = n.name
	}
	var b strings.Builder
	for _, p := range m.ports {
		if p.DeviceOwner != "compute:nsnet" {
			continue
		}
		var groups, pairs []string
		for _, g := range p.SecurityGroups {
			groups = append(groups, cmpName(names[g], g))
		}
		for _, pair := range p.AllowedAddressPairs {
			pairs = append(pairs, pair.IPAddress)
		}
		fmt.Fprintf(&b, "  port %s on %s at %s: port security %v, groups %v, pairs %v\n",
			p.Name, names[p.DeviceID], m.addresses(&p), p.PortSecurityEnabled, groups, pairs)
	}
	for _, g := range r.groups {
		fmt.Fprintf(&b, "  group %s:\n", g.name)
		for _, rule := range m.rules {
			if rule.SecurityGroupID == g.id && rule.EtherType == "IPv4" {
				fmt.Fprintf(&b, "    %s\n", r.describeRule(rule))
			}
		}
	}
	return b.String()
}

func cmpName(name, fallback string) string {
	if name != "" {
		return name
	}
	return fallback
}

func orNone(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func countNonEmpty(xs []string) int {
	n := 0
	for _, x := range xs {
		if x != "" {
			n++
		}
	}
	return n
}

// logsAbout is the lines of a daemon log about the firewall, passes that
// changed something, and errors; at most 40.
func logsAbout(log string) string {
	var out []string
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "firewall") || strings.Contains(line, "level=ERROR") || strings.Contains(line, "level=WARN") ||
			strings.Contains(line, "pass done") && !strings.Contains(line, "changes=0") {
			out = append(out, line)
		}
	}
	if len(out) > 40 {
		out = append(out[:40], fmt.Sprintf("… %d more", len(out)-40))
	}
	return strings.Join(out, "\n")
}

// describeRule is a rule in a line, with group names rather than ids.
func (r *sgRun) describeRule(rule apiRule) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s", r.groupName(rule.SecurityGroupID), rule.Direction, rule.EtherType)
	if rule.Protocol != nil {
		fmt.Fprintf(&b, " proto %s", *rule.Protocol)
	}
	if rule.PortRangeMin != nil {
		fmt.Fprintf(&b, " %d", *rule.PortRangeMin)
	}
	if rule.PortRangeMax != nil {
		fmt.Fprintf(&b, "-%d", *rule.PortRangeMax)
	}
	switch {
	case rule.RemoteGroupID != nil:
		fmt.Fprintf(&b, " remote group %s", r.groupName(*rule.RemoteGroupID))
	case rule.RemoteAddressGroupID != nil:
		fmt.Fprintf(&b, " remote address group %s", r.groupName(*rule.RemoteAddressGroupID))
	case rule.RemoteIPPrefix != nil:
		fmt.Fprintf(&b, " remote %s", *rule.RemoteIPPrefix)
	}
	return b.String()
}

func (r *sgRun) groupName(id string) string {
	for _, g := range append(slices.Clone(r.groups), r.addrGroups...) {
		if g.id == id {
			return g.name
		}
	}
	return id
}

// The random operations. Each draws from r.rng only and from state kept in
// a fixed order (never the API's ids), so a seed replays the same run.

// randomOp makes one random operation and says what it did.
func (r *sgRun) randomOp() string {
	ops := []struct {
		weight int
		do     func() string
	}{
		{2, r.opCreateGroup},
		{1, r.opDeleteGroup},
		{7, r.opAddRule},
		{2, r.opDeleteRule},
		{4, r.opSetGroups},
		{2, r.opAddressPairs},
		{1, r.opPortSecurity},
		{1, r.opMovePort},
		{2, r.opEditAddressGroup},
	}
	total := 0
	for _, o := range ops {
		total += o.weight
	}
	n := r.rng.IntN(total)
	for _, o := range ops {
		if n < o.weight {
			return o.do()
		}
		n -= o.weight
	}
	panic("unreachable")
}

func pick[T any](rng *rand.Rand, xs []T) T { return xs[rng.IntN(len(xs))] }

func (r *sgRun) opCreateGroup() string {
	if len(r.groups) >= 5 {
		return r.opDeleteGroup()
	}
	r.nextGroup++
	name := fmt.Sprint("g", r.nextGroup)
	status, resp := r.api("POST", "/v2.0/security-groups", map[string]any{"security_group": map[string]any{"name": name}})
	if status == 201 {
		g := resp["security_group"].(map[string]any)
		r.groups = append(r.groups, named{name, g["id"].(string)})
		// Its two default egress rules (IPv4, IPv6), in a fixed order.
		var rules []apiRule
		raw, _ := json.Marshal(g["security_group_rules"])
		json.Unmarshal(raw, &rules)
		slices.SortFunc(rules, func(a, b apiRule) int { return strings.Compare(a.EtherType, b.EtherType) })
		for _, rule := range rules {
			r.rules = append(r.rules, named{r.describeRule(rule), rule.ID})
		}
	}
	return fmt.Sprintf("create group %s → %s", name, outcome(status, resp))
}

func (r *sgRun) opDeleteGroup() string {
	if len(r.groups) < 2 {
		return r.opCreateGroup()
	}
	i := 1 + r.rng.IntN(len(r.groups)-1)
	g := r.groups[i]
	status, resp := r.api("DELETE", "/v2.0/security-groups/"+g.id, nil)
	if status == 204 {
		r.groups = slices.Delete(r.groups, i, i+1)
	}
	return fmt.Sprintf("delete group %s → %s", g.name, outcome(status, resp))
}

var (
	ruleProtocols = []any{nil, "tcp", "tcp", "udp", "udp", "icmp", "icmp", "6", "17", "1", "sctp", "132", "gre"}
	rulePorts     = []int{1, 22, 23, 53, 80, 1000, 5353, 5354, 8000, 8080, 65535}
	ruleICMPTypes = []int{0, 8, 8, 13, 3}
	ruleICMPCodes = []int{0, 0, 1}
	rulePrefixes  = []string{"0.0.0.0/0", "10.5.0.0/24", "10.5.0.10/32", "10.5.0.11", "10.5.0.8/29", "10.5.0.12/30",
		"10.6.0.0/24", "10.6.0.10/32", "10.0.0.0/8", "10.5.0.128/25"}
	pairAddresses = []string{"10.5.0.10", "10.5.0.11", "10.5.0.12", "10.5.0.200", "10.5.0.0/24", "0.0.0.0/0",
		"10.9.0.0/16", "10.5.0.128/25", "10.5.0.10/32", "10.6.0.10", "10.6.0.0/24",
		"2001:db8:5::10", "2001:db8:5::200", "2001:db8:5::/64", "::/0", "2001:db8:6::10", "2001:db8:5::8/125"}

	// IPv6 rules: ICMP by its legacy name too (stored as ipv6-icmp).
	ruleProtocols6 = []any{nil, "tcp", "udp", "udp", "icmp", "ipv6-icmp", "58", "6", "17", "sctp"}
	ruleICMPTypes6 = []int{128, 128, 129, 1}
	rulePrefixes6  = []string{"::/0", "2001:db8:5::/64", "2001:db8:5::10/128", "2001:db8:5::11", "2001:db8:5::8/125",
		"2001:db8:6::/64", "2001:db8::/32", "2001:db8:5::80/121", "2001:db8:6::10"}
)

// opAddRule adds a random rule, or one like an existing rule: the same
// (a duplicate), or the same with another remote (any, a group).
func (r *sgRun) opAddRule() string {
	g := pick(r.rng, r.groups)
	v6 := r.rng.IntN(3) == 0
	body := map[string]any{"security_group_id": g.id, "ethertype": map[bool]string{false: "IPv4", true: "IPv6"}[v6]}
	if len(r.rules) > 0 && r.rng.IntN(4) == 0 {
		like := pick(r.rng, r.rules)
		var rule apiRule
		for _, known := range r.last.rules {
			if known.ID == like.id {
				rule = known
			}
		}
		if rule.ID != "" {
			body["security_group_id"], body["ethertype"] = rule.SecurityGroupID, rule.EtherType
			body["direction"] = rule.Direction
			for k, v := range map[string]any{"protocol": rule.Protocol, "port_range_min": rule.PortRangeMin, "port_range_max": rule.PortRangeMax} {
				body[k] = v
			}
			switch r.rng.IntN(4) {
			case 0: // the same again
				body["remote_ip_prefix"], body["remote_group_id"] = rule.RemoteIPPrefix, rule.RemoteGroupID
				body["remote_address_group_id"] = rule.RemoteAddressGroupID
			case 1: // from anywhere
			case 2:
				body["remote_group_id"] = pick(r.rng, r.groups).id
			case 3:
				body["remote_address_group_id"] = pick(r.rng, r.addrGroups).id
			}
			return r.postRule(body, "like "+like.name)
		}
	}
	// Mostly ingress: every new group allows all egress already.
	body["direction"] = pick(r.rng, []string{"ingress", "ingress", "egress"})
	protocols, icmpTypes, prefixes := ruleProtocols, ruleICMPTypes, rulePrefixes
	if v6 {
		protocols, icmpTypes, prefixes = ruleProtocols6, ruleICMPTypes6, rulePrefixes6
	}
	proto := pick(r.rng, protocols)
	body["protocol"] = proto
	switch proto {
	case "tcp", "udp", "6", "17", "sctp", "132":
		if r.rng.IntN(3) > 0 {
			lo, hi := pick(r.rng, rulePorts), pick(r.rng, rulePorts)
			body["port_range_min"], body["port_range_max"] = min(lo, hi), max(lo, hi)
		}
	case "icmp", "1", "ipv6-icmp", "58":
		if r.rng.IntN(3) > 0 {
			body["port_range_min"] = pick(r.rng, icmpTypes)
			if r.rng.IntN(2) == 0 {
				body["port_range_max"] = pick(r.rng, ruleICMPCodes)
			}
		}
	}
	switch r.rng.IntN(4) {
	case 1:
		body["remote_ip_prefix"] = pick(r.rng, prefixes)
	case 2:
		body["remote_group_id"] = pick(r.rng, r.groups).id
	case 3:
		body["remote_address_group_id"] = pick(r.rng, r.addrGroups).id
	}
	return r.postRule(body, "")
}

// addressGroupCIDRs are what opEditAddressGroup adds to or removes from an
// address group: the instances' addresses, ranges holding some, both
// families.
var addressGroupCIDRs = []string{"10.5.0.10/32", "10.5.0.11/32", "10.5.0.12/30", "10.5.0.8/29", "10.6.0.10/32",
	"10.5.0.0/24", "10.5.0.128/25", "2001:db8:5::10/128", "2001:db8:5::11/128", "2001:db8:5::8/125", "2001:db8:6::/64"}

// opEditAddressGroup adds a CIDR to an address group, or removes it if the
// group has it.
func (r *sgRun) opEditAddressGroup() string {
	g := pick(r.rng, r.addrGroups)
	cidr := pick(r.rng, addressGroupCIDRs)
	action := "add_addresses"
	for _, ag := range r.last.addrGroups {
		if ag.ID == g.id && slices.Contains(ag.Addresses, cidr) {
			action = "remove_addresses"
		}
	}
	status, resp := r.api("PUT", "/v2.0/address-groups/"+g.id+"/"+action, map[string]any{"addresses": []string{cidr}})
	return fmt.Sprintf("address group %s: %s %s → %s", g.name, action, cidr, outcome(status, resp))
}

func (r *sgRun) postRule(body map[string]any, note string) string {
	status, resp := r.api("POST", "/v2.0/security-group-rules", map[string]any{"security_group_rule": body})
	var rule apiRule
	raw, _ := json.Marshal(body)
	json.Unmarshal(raw, &rule)
	desc := r.describeRule(rule)
	if status == 201 {
		id := resp["security_group_rule"].(map[string]any)["id"].(string)
		r.rules = append(r.rules, named{desc, id})
	}
	if note != "" {
		desc += " (" + note + ")"
	}
	return fmt.Sprintf("add rule %s → %s", desc, outcome(status, resp))
}

func (r *sgRun) opDeleteRule() string {
	if len(r.rules) == 0 {
		return r.opAddRule()
	}
	i := r.rng.IntN(len(r.rules))
	rule := r.rules[i]
	status, resp := r.api("DELETE", "/v2.0/security-group-rules/"+rule.id, nil)
	if status == 204 {
		r.rules = slices.Delete(r.rules, i, i+1)
	}
	return fmt.Sprintf("delete rule %s → %s", rule.name, outcome(status, resp))
}

// port is the API's last view of one of the run's ports.
func (r *sgRun) port(n named) *apiPort {
	for i := range r.last.ports {
		if r.last.ports[i].ID == n.id {
			return &r.last.ports[i]
		}
	}
	r.t.Fatalf("port %s is gone", n.name)
	return nil
}

func (r *sgRun) putPort(p named, attrs map[string]any, what string) string {
	status, resp := r.api("PUT", "/v2.0/ports/"+p.id, map[string]any{"port": attrs})
	return fmt.Sprintf("port %s: %s → %s", p.name, what, outcome(status, resp))
}

// opSetGroups sets a port's groups to a random subset, adds one group to
// them (as `port set --security-group` does) or unsets them all.
func (r *sgRun) opSetGroups() string {
	p := pick(r.rng, r.ports)
	var ids, names []string
	switch r.rng.IntN(5) {
	case 0: // unset
	case 1, 2: // add one
		ids = slices.Clone(r.port(p).SecurityGroups)
		g := pick(r.rng, r.groups)
		if !slices.Contains(ids, g.id) {
			ids = append(ids, g.id)
		}
	default:
		for _, g := range r.groups {
			if r.rng.IntN(2) == 0 {
				ids = append(ids, g.id)
			}
		}
	}
	for _, id := range ids {
		names = append(names, r.groupName(id))
	}
	return r.putPort(p, map[string]any{"security_groups": append([]string{}, ids...)}, fmt.Sprintf("groups %v", names))
}

// opAddressPairs adds an allowed address pair to a port's (as `port set
// --allowed-address` does), or sets its pairs to a random few, or none.
func (r *sgRun) opAddressPairs() string {
	p := pick(r.rng, r.ports)
	pairs, addrs := []any{}, []string{}
	if r.rng.IntN(3) == 0 {
		for _, pair := range r.port(p).AllowedAddressPairs {
			addrs = append(addrs, pair.IPAddress)
			pairs = append(pairs, map[string]any{"ip_address": pair.IPAddress})
		}
	}
	if r.rng.IntN(4) > 0 {
		for range 1 + r.rng.IntN(3) {
			a := pick(r.rng, pairAddresses)
			if !slices.Contains(addrs, a) {
				addrs = append(addrs, a)
				pairs = append(pairs, map[string]any{"ip_address": a})
			}
		}
	}
	return r.putPort(p, map[string]any{"allowed_address_pairs": pairs}, fmt.Sprintf("address pairs %v", addrs))
}

// opPortSecurity turns a port's security off (with its groups and pairs)
// or back on in one random group.
func (r *sgRun) opPortSecurity() string {
	p := pick(r.rng, r.ports)
	if r.port(p).PortSecurityEnabled {
		return r.putPort(p, map[string]any{"port_security_enabled": false, "security_groups": []string{}, "allowed_address_pairs": []any{}},
			"port security off")
	}
	g := pick(r.rng, r.groups)
	return r.putPort(p, map[string]any{"port_security_enabled": true, "security_groups": []string{g.id}},
		"port security on, groups ["+g.name+"]")
}

// opMovePort moves a port to an instance that has none.
func (r *sgRun) opMovePort() string {
	p := pick(r.rng, r.ports)
	var free []named
	for _, inst := range r.instances {
		if !slices.ContainsFunc(r.last.ports, func(q apiPort) bool { return q.DeviceID == inst.id }) {
			free = append(free, inst)
		}
	}
	to := pick(r.rng, free)
	return r.putPort(p, map[string]any{"device_id": to.id}, "moved to "+to.name)
}
