package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nsnet/nsnet/internal/lab"
)

// traceResult is the part of `nsnet trace -o json` the tests read.
type traceResult struct {
	Way      []traceHop `json:"way"`
	WayBack  []traceHop `json:"way_back"`
	Rewrites []struct {
		Way, Kind, From, To, Netns, Node, Interface string
	} `json:"rewrites"`
	Answered bool   `json:"answered"`
	Answer   string `json:"answer"`
	Stopped  *struct {
		Way      string    `json:"way"`
		LastSeen *traceHop `json:"last_seen"`
		Reasons  []string  `json:"reasons"`
	} `json:"stopped"`
	NFTrace []traceEvent `json:"nftrace"`
	Notes   []string     `json:"notes"`
}

// traceEvent is an nftables verdict on the probe; Port, Direction and
// SecurityGroups are set when a port's security groups gave it.
type traceEvent struct {
	Table, Chain, Verdict string
	Port, Direction       string
	SecurityGroups        []string `json:"security_groups"`
}

type traceHop struct {
	Netns, Interface, Node, Src, Dst string
	Seen                             bool
}

// trace runs nsnet trace -o json with args and returns the result.
func (e *Env) trace(args ...string) traceResult {
	t := e.t
	t.Helper()
	out := e.MustNsnet(append([]string{"trace", "-o", "json"}, args...)...)
	// MustNsnet mixes in stderr, where trace says it started.
	var r traceResult
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &r); err != nil {
		t.Fatalf("trace -o json: %v\n%s", err, out)
	}
	if len(r.Notes) > 0 {
		t.Errorf("nsnet trace %s: %v", strings.Join(args, " "), r.Notes)
	}
	return r
}

// rewrite finds the rewrite of kind on way, or fails.
func (r traceResult) rewrite(t *testing.T, way, kind string) (from, to, netns, iface string) {
	t.Helper()
	for _, rw := range r.Rewrites {
		if rw.Way == way && rw.Kind == kind {
			return rw.From, rw.To, rw.Netns, rw.Interface
		}
	}
	t.Fatalf("no %s on the way %s; rewrites %+v", kind, way, r.Rewrites)
	return
}

func (r traceResult) allSeen(t *testing.T) {
	t.Helper()
	for i, h := range append(append([]traceHop{}, r.Way...), r.WayBack...) {
		if !h.Seen {
			t.Errorf("hop %d (%s/%s) not seen", i+1, h.Netns, h.Interface)
		}
	}
}

// TestTraceRouterNAT traces seed 004's paths: out of an instance through
// the router's default SNAT (the rewrite shows at qg-), into a floating IP
// from the public network (DNAT on the way in, the reply's SNAT back), to
// a port nothing listens on, and to an address no router has a route to.
func TestTraceRouterNAT(t *testing.T) {
	e := Start(t)
	up := buildSeed004(t, e)
	// Pings from outside the default group (the far host, a floating
	// IP's external client, the router's hairpin SNAT) are let in.
	e.MustNsnet("security-group", "rule", "create", "default", "--protocol", "icmp")
	gatewayIP := gatewayAddress(t, e, "r1")
	vm1IP := fixedIP(jsonOf(t, e.MustNsnet("port", "show", "vm1-eth0", "-o", "json")))
	routerNS := e.Prefix + "qrouter-" + jsonOf(t, e.MustNsnet("router", "show", "r1", "-o", "json"))["id"].(string)

	// Out through the default SNAT, as people read it: each hop, and the
	// rewrite under the hop where it shows.
	human := e.MustNsnet("trace", "vm1", up.Far)
	t.Logf("nsnet trace vm1 %s\n%s", up.Far, human)
	for _, want := range []string{
		"The probe, on its way out:", "The answer, on its way back:", "Answered: " + up.Far + " > " + vm1IP + ": ICMP echo reply",
		"↳ SNAT " + vm1IP + " → " + gatewayIP, " in router r1 (between qr-",
	} {
		if !strings.Contains(human, want) {
			t.Errorf("nsnet trace output lacks %q", want)
		}
	}
	r := e.trace("vm1", up.Far)
	if !r.Answered {
		t.Errorf("no answer from the far host: %+v", r.Stopped)
	}
	r.allSeen(t)
	from, to, ns, iface := r.rewrite(t, "out", "SNAT")
	if from != vm1IP || to != gatewayIP || ns != routerNS || !strings.HasPrefix(iface, "qg-") {
		t.Errorf("SNAT %s → %s at %s/%s, want %s → %s at %s/qg-…", from, to, ns, iface, vm1IP, gatewayIP, routerNS)
	}
	if from, to, ns, iface := r.rewrite(t, "back", "DNAT"); from != gatewayIP || to != vm1IP || ns != routerNS || !strings.HasPrefix(iface, "qr-") {
		t.Errorf("the reply's DNAT %s → %s at %s/%s, want %s → %s at %s/qr-…", from, to, ns, iface, gatewayIP, vm1IP, routerNS)
	}

	// The router's gateway interface, captured by name: the ping leaves
	// it from the gateway address.
	qg := r.Way[4].Interface
	bg := e.startNsnet("capture", "r1", qg, "--filter", "icmp and dst host "+up.Far, "--count", "1")
	if out, err := e.In("vm1", "ping", "-c", "1", "-W", "2", up.Far); err != nil {
		t.Fatalf("ping the far host: %v\n%s", err, out)
	}
	bg.wait(t)
	if line := bg.stdout(); !strings.Contains(line, qg+" out ") || !strings.Contains(line, gatewayIP+" > "+up.Far+": ICMP echo request") {
		t.Errorf("capture on r1 %s printed %q", qg, line)
	}

	// TCP through the same SNAT: the SYN's source port changes too, and
	// the far host's SYN-ACK comes back.
	far := up.Far
	serveHTTP(t, up.FarNS, far, "80")
	r = e.trace("vm1", far, "--tcp", "80")
	if !r.Answered || !strings.Contains(r.Answer, "TCP [S.]") {
		t.Errorf("TCP to the far host's port 80: answered %v (%s), stopped %+v", r.Answered, r.Answer, r.Stopped)
	}
	if from, to, _, _ := r.rewrite(t, "out", "SNAT"); !strings.HasPrefix(from, vm1IP+":") || !strings.HasPrefix(to, gatewayIP+":") {
		t.Errorf("TCP SNAT %s → %s, want %s:port → %s:port", from, to, vm1IP, gatewayIP)
	}

	// Inbound to a floating IP from a host on the public network: DNAT
	// to vm1 on the way in, the reply's SNAT back to the floating IP.
	fip := jsonOf(t, e.MustNsnet("floating", "ip", "create", "public", "--port", "vm1-eth0", "-o", "json"))["floating_ip_address"].(string)
	r = e.trace("--from-external", "public", fip)
	if !r.Answered {
		t.Errorf("no answer through the floating IP: %+v", r.Stopped)
	}
	r.allSeen(t)
	if from, to, ns, iface := r.rewrite(t, "out", "DNAT"); from != fip || to != vm1IP || ns != routerNS || !strings.HasPrefix(iface, "qr-") {
		t.Errorf("DNAT %s → %s at %s/%s, want %s → %s at %s/qr-…", from, to, ns, iface, fip, vm1IP, routerNS)
	}
	if from, to, ns, iface := r.rewrite(t, "back", "SNAT"); from != vm1IP || to != fip || ns != routerNS || !strings.HasPrefix(iface, "qg-") {
		t.Errorf("the reply's SNAT %s → %s at %s/%s, want %s → %s at %s/qg-…", from, to, ns, iface, vm1IP, fip, routerNS)
	}

	// Hairpin: vm2 to vm1's floating IP goes into the router and back out
	// of the same qr-, translated twice there: DNAT to vm1, and SNAT to
	// the router's address so that vm1 answers through the router.
	r = e.trace("vm2", fip)
	if !r.Answered {
		t.Errorf("hairpin: no answer: %+v", r.Stopped)
	}
	r.allSeen(t)
	if from, to, ns, iface := r.rewrite(t, "out", "DNAT"); from != fip || to != vm1IP || ns != routerNS || !strings.HasPrefix(iface, "qr-") {
		t.Errorf("hairpin DNAT %s → %s at %s/%s, want %s → %s at %s/qr-…", from, to, ns, iface, fip, vm1IP, routerNS)
	}
	if _, to, _, iface := r.rewrite(t, "out", "SNAT"); to != "10.0.0.1" || !strings.HasPrefix(iface, "qr-") {
		t.Errorf("hairpin SNAT to %s at %s, want to the router's 10.0.0.1 at qr-…", to, iface)
	}

	// A port forward: 8080 of a second floating IP to vm2's port 80.
	fip2 := jsonOf(t, e.MustNsnet("floating", "ip", "create", "public", "-o", "json"))["floating_ip_address"].(string)
	vm2IP := fixedIP(jsonOf(t, e.MustNsnet("port", "show", "vm2-eth0", "-o", "json")))
	e.MustNsnet("floating", "ip", "port", "forwarding", "create", fip2, "--port", "vm2-eth0",
		"--internal-ip-address", vm2IP, "--internal-protocol-port", "80", "--external-protocol-port", "8080", "--protocol", "tcp")
	serveHTTP(t, e.Netns("vm2"), "0.0.0.0", "80")
	r = e.trace("--from-external", "public", fip2, "--tcp", "8080")
	if !r.Answered || !strings.Contains(r.Answer, "TCP [S.]") {
		t.Errorf("port forward: answered %v (%s), stopped %+v", r.Answered, r.Answer, r.Stopped)
	}
	r.allSeen(t)
	if from, to, _, _ := r.rewrite(t, "out", "DNAT"); from != fip2+":8080" || to != vm2IP+":80" {
		t.Errorf("port forward DNAT %s → %s, want %s:8080 → %s:80", from, to, fip2, vm2IP)
	}

	// A closed port: vm2's kernel resets the SYN, and UDP gets ICMP
	// port unreachable. Nothing listens, and the trace says so.
	r = e.trace("vm1", "vm2", "--tcp", "81")
	if r.Stopped == nil || !strings.Contains(strings.Join(r.Stopped.Reasons, "\n"), "no listener") ||
		!strings.Contains(strings.Join(r.Stopped.Reasons, "\n"), "instance vm2") {
		t.Errorf("TCP to a closed port: %+v", r.Stopped)
	}
	r = e.trace("vm1", "vm2", "--udp", "9")
	if r.Stopped == nil || !strings.Contains(strings.Join(r.Stopped.Reasons, "\n"), "no listener") {
		t.Errorf("UDP to a closed port: %+v", r.Stopped)
	}

	// A firewall inside vm2 (its own nftables, as an instance may run)
	// drops port 8080: no answer, and nftables tracing names the rule.
	vm2NS := e.Netns("vm2")
	run(t, "ip", "netns", "exec", vm2NS, "nft", "add table inet blocker; "+
		"add chain inet blocker input { type filter hook input priority 0; }; "+
		`add rule inet blocker input tcp dport 8080 drop comment "vm2 firewall: no 8080"`)
	r = e.trace("vm1", "vm2", "--tcp", "8080", "--timeout", "3s")
	reasons := ""
	if r.Stopped != nil {
		reasons = strings.Join(r.Stopped.Reasons, "\n")
	}
	if r.Answered || !strings.Contains(reasons, "dropped by nftables: drop by rule handle") ||
		!strings.Contains(reasons, `table inet blocker, instance vm2 (comment "vm2 firewall: no 8080")`) {
		t.Errorf("trace to a port vm2's firewall drops: answered %v, stopped %+v", r.Answered, r.Stopped)
	}

	// Ctrl-C while waiting for an answer that never comes, from a
	// temporary external host: everything it set up goes.
	bg = e.startNsnet("trace", "--from-external", "public", "198.51.100.77", "--timeout", "60s")
	bg.cmd.Process.Signal(os.Interrupt)
	select {
	case err := <-bg.done:
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 130 {
			t.Errorf("interrupted trace exited with %v, want 130\n%s", err, bg.errOut.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("trace did not stop on Ctrl-C")
	}
	for _, ns := range lab.Namespaces(e.Prefix + "trace-") {
		t.Errorf("trace source namespace %s left after Ctrl-C", ns)
	}
	if links := strings.Join(linksIn(e.HostNetns), " "); strings.Contains(links, "nstrace-") {
		t.Errorf("trace source link left after Ctrl-C: %s", links)
	}
	noCaptureLeft(t, e.HostNetns, routerNS)

	// A firewall on the host's bridge (where security groups may live)
	// drops vm1's SYNs to vm2's port 8081: the probe enters the bridge
	// and does not leave it, and the trace names the rule.
	run(t, "ip", "netns", "exec", e.HostNetns, "nft", "add table bridge sgtest; "+
		"add chain bridge sgtest forward { type filter hook forward priority 0; }; "+
		"add rule bridge sgtest forward ip daddr "+vm2IP+` tcp dport 8081 drop comment "sg:web rule:no-8081"`)
	r = e.trace("vm1", "vm2", "--tcp", "8081", "--timeout", "3s")
	run(t, "ip", "netns", "exec", e.HostNetns, "nft", "delete table bridge sgtest")
	reasons = ""
	if r.Stopped != nil {
		reasons = strings.Join(r.Stopped.Reasons, "\n")
	}
	if r.Answered || r.Stopped == nil || r.Stopped.LastSeen == nil || r.Stopped.LastSeen.Node != "bridge private" ||
		!strings.Contains(reasons, "did not forward it") ||
		!strings.Contains(reasons, `drop by rule handle`) || !strings.Contains(reasons, `chain forward in table bridge sgtest, the host (comment "sg:web rule:no-8081")`) {
		t.Errorf("trace to a port a bridge firewall drops: answered %v, stopped %+v", r.Answered, r.Stopped)
	}

	// vm1's security groups (the default group: ICMP, HTTP and its own
	// members) do not admit SSH from outside: the probe to its floating
	// IP is DNATed, crosses the bridge's firewall, and is dropped there
	// for vm1's port; the trace names the port and its group.
	defaultSG := jsonOf(t, e.MustNsnet("security-group", "show", "default", "-o", "json"))["id"].(string)
	// The timeouts of traces that get no answer are the default's
	// 3 s: on a busy machine the source's ARP answer and the nftables
	// trace events can take over a second to arrive.
	r = e.trace("--from-external", "public", fip, "--tcp", "22", "--timeout", "3s")
	reasons = ""
	if r.Stopped != nil {
		reasons = strings.Join(r.Stopped.Reasons, "\n")
	}
	if r.Answered || !strings.Contains(reasons, "drop by rule handle") ||
		!strings.Contains(reasons, "port vm1-eth0's security groups (default ("+defaultSG+")) have no ingress rule that admits it") {
		t.Errorf("trace to a port its security group blocks: answered %v, stopped %+v", r.Answered, r.Stopped)
	}
	var sgDrop *traceEvent
	for i, ev := range r.NFTrace {
		if ev.Verdict == "drop" && ev.Port == "vm1-eth0" {
			sgDrop = &r.NFTrace[i]
		}
	}
	if sgDrop == nil || sgDrop.Direction != "ingress" || len(sgDrop.SecurityGroups) != 1 {
		t.Errorf("trace JSON: no ingress drop naming vm1-eth0 and its one group in %+v", r.NFTrace)
	}

	// An address of vm1's subnet that no port holds: nobody answers ARP,
	// so the probe never leaves vm1.
	r = e.trace("vm1", "10.0.0.77", "--timeout", "3s")
	if r.Answered || r.Stopped == nil || !strings.Contains(strings.Join(r.Stopped.Reasons, "\n"), "no neighbour answer: instance vm1 has no MAC address for 10.0.0.77") {
		t.Errorf("trace to an address nobody holds: %+v", r.Stopped)
	}

	// No route: a router without a gateway answers net unreachable for
	// anything beyond its subnets.
	e.MustNsnet("network", "create", "island")
	e.MustNsnet("subnet", "create", "island-v4", "--network", "island", "--subnet-range", "10.9.0.0/24")
	e.MustNsnet("router", "create", "lonely")
	e.MustNsnet("router", "add", "subnet", "lonely", "island-v4")
	e.MustNsnet("instance", "create", "iso")
	e.MustNsnet("port", "create", "iso-eth0", "--network", "island", "--device", "iso")
	r = e.trace("iso", far)
	if r.Stopped == nil || !strings.Contains(strings.Join(r.Stopped.Reasons, "\n"), "no route") ||
		r.Stopped.LastSeen == nil || r.Stopped.LastSeen.Node != "router lonely" {
		t.Errorf("trace to an address no router reaches: %+v", r.Stopped)
	}

	noCaptureLeft(t, e.HostNetns, routerNS, e.Netns("vm1"), vm2NS, e.Netns("iso"))
}

// TestTraceHostGateway traces seed 002 (the host as the gateway of red,
// green and blue): red's ping of the far host enters the host's stack by
// the bridge and leaves by the uplink eth0, masqueraded to eth0's address
// (the rewrite seeds 000/001 teach), with its answer un-masqueraded as one
// DNAT, never a "SNAT X → X"; and red reaches its own published port
// through the gateway (hairpin), translated to its own port 80.
func TestTraceHostGateway(t *testing.T) {
	e := Start(t)
	up := hostWithUplink(t, e, "198.51.100.1/24", "198.51.100.32/24")
	applyExample(t, e, "seed-002-host-nat.yaml")

	r := e.trace("red", up.Far)
	if !r.Answered {
		t.Fatalf("red → %s not answered: %+v", up.Far, r.Stopped)
	}
	r.allSeen(t)
	if from, to, _, iface := r.rewrite(t, "out", "SNAT"); from != "192.168.24.10" || to != "198.51.100.32" || iface != "eth0" {
		t.Errorf("SNAT on the way out: %s → %s at %s, want 192.168.24.10 → 198.51.100.32 at the uplink eth0", from, to, iface)
	}
	if from, to, _, _ := r.rewrite(t, "back", "DNAT"); from != "198.51.100.32" || to != "192.168.24.10" {
		t.Errorf("DNAT on the way back: %s → %s, want 198.51.100.32 → 192.168.24.10", from, to)
	}
	for _, rw := range r.Rewrites {
		if rw.From == rw.To && rw.Kind == "SNAT" {
			t.Errorf("phantom rewrite %+v", rw)
		}
	}

	serveHTTP(t, e.Netns("red"), "0.0.0.0", "80")
	r = e.trace("red", "192.168.24.1", "--tcp", "8080")
	if !r.Answered {
		t.Fatalf("red → its own published port 192.168.24.1:8080 not answered: %+v", r.Stopped)
	}
	if from, to, _, _ := r.rewrite(t, "out", "DNAT"); from != "192.168.24.1:8080" || to != "192.168.24.10:80" {
		t.Errorf("DNAT of the published port: %s → %s, want 192.168.24.1:8080 → 192.168.24.10:80", from, to)
	}
	if last := r.Way[len(r.Way)-1]; last.Netns != e.Netns("red") || !last.Seen {
		t.Errorf("the probe's last hop is %+v, want red itself", last)
	}
}

// TestTraceAsMember: a project member traces out of its instance through
// its own router, whose gateway is on the admin's external network. The
// member sees neither the gateway port nor the external subnet (Neutron's
// policy: neither is the project's); the router's external_gateway_info,
// which is, gives the gateway's addresses, and the trace shows every hop
// and the SNAT as it does for the admin.
func TestTraceAsMember(t *testing.T) {
	e := Start(t, WithTokens(tenancyTokens, "tok-admin"))
	public := jsonOf(t, e.MustNsnet("network", "create", "public", "--external", "-o", "json"))
	e.MustNsnet("subnet", "create", "public-v4", "--network", "public", "--subnet-range", "198.51.100.0/24",
		"--gateway", "198.51.100.1", "--no-dhcp")
	up := buildUpstream(t, e, public["id"].(string), "198.51.100.1/24")

	member := "tok-alpha"
	e.MustNsnetAs(member, "network", "create", "net")
	e.MustNsnetAs(member, "subnet", "create", "sub", "--network", "net", "--subnet-range", "10.0.0.0/24")
	e.MustNsnetAs(member, "router", "create", "r1")
	e.MustNsnetAs(member, "router", "set", "r1", "--external-gateway", "public")
	e.MustNsnetAs(member, "router", "add", "subnet", "r1", "sub")
	e.MustNsnetAs(member, "instance", "create", "vm1")
	e.MustNsnetAs(member, "port", "create", "vm1-eth0", "--network", "net", "--device", "vm1")
	if out := e.MustNsnetAs(member, "subnet", "list"); strings.Contains(out, "public-v4") {
		t.Fatalf("the member sees the external subnet; the test needs it hidden:\n%s", out)
	}

	human := e.MustNsnetAs(member, "trace", "vm1", up.Far)
	t.Logf("nsnet trace vm1 %s, as a member:\n%s", up.Far, human)
	var r traceResult
	out := e.MustNsnetAs(member, "trace", "vm1", up.Far, "-o", "json")
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &r); err != nil {
		t.Fatalf("trace -o json as a member: %v\n%s", err, out)
	}
	if !r.Answered {
		t.Errorf("a member's trace through its router got no answer: %+v\n%s", r.Stopped, out)
	}
	r.allSeen(t)
	gatewayIP := gatewayAddress(t, e, "r1")
	if from, to, _, iface := r.rewrite(t, "out", "SNAT"); to != gatewayIP || !strings.HasPrefix(iface, "qg-") || from == to {
		t.Errorf("SNAT %s → %s at %s, want → %s at qg-…", from, to, iface, gatewayIP)
	}
	if len(r.Notes) > 0 {
		t.Errorf("notes: %v", r.Notes)
	}
}
