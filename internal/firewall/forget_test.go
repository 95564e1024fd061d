package firewall_test

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/nsnet/nsnet/internal/firewall"
)

// TestMemberLeavingForgetsItsConnectionsOnly: a member leaving a remote
// group takes the connections the group's rules admitted from it, and
// only those: another member's, a non-member's and unrelated ones stay.
// Finding them reads the leaver's entries only (the kernel filters its
// table), not the namespace's whole table, and an empty table is not read
// at all.
func TestMemberLeavingForgetsItsConnectionsOnly(t *testing.T) {
	l := newLab(t)
	web := firewall.Rule{Direction: firewall.Ingress, ProtoMin: 6, ProtoMax: 6, PortMin: 80, PortMax: 80, Group: "web"}
	spec := func(members ...string) firewall.Spec {
		s := l.spec(web)
		var web firewall.Members
		for _, m := range members {
			web = web.With(netip.MustParsePrefix(m))
		}
		s.Groups = map[string]firewall.Members{"web": web}
		return s
	}
	if _, err := l.fw.Apply(spec("10.9.0.1/32", "10.9.0.5/32", "10.9.0.6/32")); err != nil {
		t.Fatal(err)
	}
	insert := func(src, dst string, sport, dport int) {
		run(t, "ip", "netns", "exec", l.host, "conntrack", "-I", "-p", "tcp", "-s", src, "-d", dst,
			"--sport", fmt.Sprint(sport), "--dport", fmt.Sprint(dport), "--state", "ESTABLISHED", "-t", "600", "-u", "ASSURED")
	}
	insert("10.9.0.5", "10.9.0.2", 40000, 80) // the leaver's, admitted by web
	insert("10.9.0.6", "10.9.0.2", 40000, 80) // another member's
	insert("10.9.0.7", "10.9.0.2", 40000, 80) // never a member
	for i := range 20 {                       // what else the host tracks
		insert(fmt.Sprintf("192.0.2.%d", 10+i), "198.51.100.1", 41000+i, 443)
	}

	res, err := l.fw.Apply(spec("10.9.0.1/32", "10.9.0.6/32"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Forgotten != 1 || res.Examined != 1 {
		t.Errorf("10.9.0.5 leaving: forgot %d connections, examining %d, want its one, examining it alone (of 23)", res.Forgotten, res.Examined)
	}
	table := run(t, "ip", "netns", "exec", l.host, "conntrack", "-L")
	for _, tc := range []struct {
		src  string
		want bool
	}{{"10.9.0.5", false}, {"10.9.0.6", true}, {"10.9.0.7", true}, {"192.0.2.29", true}} {
		if got := strings.Contains(table, "src="+tc.src+" "); got != tc.want {
			t.Errorf("connection from %s tracked: %v, want %v:\n%s", tc.src, got, tc.want, table)
		}
	}

	// Nothing tracked: nothing read.
	run(t, "ip", "netns", "exec", l.host, "conntrack", "-F")
	res, err = l.fw.Apply(spec("10.9.0.1/32"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Forgotten != 0 || res.Examined != 0 {
		t.Errorf("10.9.0.6 leaving, nothing tracked: forgot %d, examined %d, want none", res.Forgotten, res.Examined)
	}
}

// TestRuleRemovalWalksConntrackOnce: a removed rule (a port's rules
// changed, which any connection may have met) has the namespace's whole
// conntrack table read, IPv4 and IPv6, with one dump: each dump walks the
// kernel's whole hash, every namespace's buckets, whatever it returns.
func TestRuleRemovalWalksConntrackOnce(t *testing.T) {
	l := newLab(t)
	http := firewall.Rule{Direction: firewall.Ingress, ProtoMin: 6, ProtoMax: 6, PortMin: 8080, PortMax: 8080, Remote: netip.MustParsePrefix("10.9.0.0/24")}
	if _, err := l.fw.Apply(l.spec(http)); err != nil {
		t.Fatal(err)
	}
	run(t, "ip", "netns", "exec", l.host, "conntrack", "-I", "-p", "tcp", "-s", "10.9.0.1", "-d", "10.9.0.2",
		"--sport", "40000", "--dport", "8080", "--state", "ESTABLISHED", "-t", "600", "-u", "ASSURED")
	run(t, "ip", "netns", "exec", l.host, "conntrack", "-I", "-p", "tcp", "-s", "fd00::1", "-d", "fd00::2",
		"--sport", "40000", "--dport", "443", "--state", "ESTABLISHED", "-t", "600", "-u", "ASSURED")
	res, err := l.fw.Apply(l.spec())
	if err != nil {
		t.Fatal(err)
	}
	// At least the two inserted are examined: the lab's instances may
	// have had an IPv6 packet of their own tracked meanwhile (a router
	// solicitation or a multicast listener report, which the bridge
	// tracks), whose entry the dump returns too.
	if res.ConntrackWalks != 1 || res.Examined < 2 || res.Forgotten != 1 {
		t.Errorf("rule removed: %d dumps examining %d entries, forgetting %d; want 1 dump examining both (IPv4 and IPv6), forgetting the one the rule admitted", res.ConntrackWalks, res.Examined, res.Forgotten)
	}
	table := run(t, "ip", "netns", "exec", l.host, "conntrack", "-L", "-f", "ipv6")
	if !strings.Contains(table, "fd00::1") {
		t.Errorf("the IPv6 connection no rule change concerned was forgotten:\n%s", table)
	}
}

// TestRulesGainedWalkNoConntrack: a port whose rules only gained (a rule
// added to its group, a group added to it) cuts no connection — its
// rules only allow, and every one it had is still there — so its change
// reads no conntrack table: each read walks the kernel's whole hash. A
// change that takes a rule away, even beside one it adds, still reads
// the table once and forgets what the removed rule admitted.
func TestRulesGainedWalkNoConntrack(t *testing.T) {
	prefix := func(s string) netip.Prefix { return netip.MustParsePrefix(s) }
	http := firewall.Rule{Direction: firewall.Ingress, ProtoMin: 6, ProtoMax: 6, PortMin: 8080, PortMax: 8080, Remote: prefix("10.9.0.0/24")}
	ssh := firewall.Rule{Direction: firewall.Ingress, ProtoMin: 6, ProtoMax: 6, PortMin: 22, PortMax: 22, Remote: prefix("10.9.0.0/24")}
	dns := firewall.Rule{Direction: firewall.Ingress, ProtoMin: 17, ProtoMax: 17, PortMin: 53, PortMax: 53, Remote: prefix("10.9.0.0/24")}
	for _, tc := range []struct {
		name             string
		before, after    []firewall.Rule
		walks, forgets   uint
		httpStillTracked bool
	}{
		{"rule added", []firewall.Rule{http}, []firewall.Rule{http, ssh}, 0, 0, true},
		{"rules added", []firewall.Rule{http}, []firewall.Rule{dns, http, ssh}, 0, 0, true},
		{"rule replaced", []firewall.Rule{http}, []firewall.Rule{ssh}, 1, 1, false},
		{"rule removed beside one added", []firewall.Rule{http, ssh}, []firewall.Rule{ssh, dns}, 1, 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLab(t)
			if _, err := l.fw.Apply(l.spec(tc.before...)); err != nil {
				t.Fatal(err)
			}
			run(t, "ip", "netns", "exec", l.host, "conntrack", "-I", "-p", "tcp", "-s", "10.9.0.1", "-d", "10.9.0.2",
				"--sport", "40000", "--dport", "8080", "--state", "ESTABLISHED", "-t", "600", "-u", "ASSURED")
			res, err := l.fw.Apply(l.spec(tc.after...))
			if err != nil {
				t.Fatal(err)
			}
			if res.ConntrackWalks != tc.walks || res.Forgotten != tc.forgets {
				t.Errorf("%d conntrack dumps, %d connections forgotten; want %d, %d", res.ConntrackWalks, res.Forgotten, tc.walks, tc.forgets)
			}
			table := run(t, "ip", "netns", "exec", l.host, "conntrack", "-L")
			if got := strings.Contains(table, "dport=8080 "); got != tc.httpStillTracked {
				t.Errorf("the connection to :8080 tracked: %v, want %v:\n%s", got, tc.httpStillTracked, table)
			}
		})
	}
}
