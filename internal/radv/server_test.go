package radv

import (
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// uniquePrefix is a documentation prefix of the test's own, so that two
// runs' clients can never take each other's addresses for theirs.
func uniquePrefix(n int) netip.Prefix {
	return netip.MustParsePrefix(fmt.Sprintf("2001:db8:%x:%x::/64", time.Now().UnixNano()&0xffff, n))
}

// rdisc6 solicits on the client's interface, as a host does, and returns
// the first advertisement it prints.
func (l *testLink) rdisc6() (string, error) {
	out, err := exec.Command("ip", "netns", "exec", l.cli, "rdisc6", "-1", "-w", "1000", "-r", "3", l.cliIf).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("rdisc6: %v\n%s", err, out)
	}
	return string(out), nil
}

// field is the value rdisc6 prints after "name :", spaces squeezed.
func field(out, name string) []string {
	var vals []string
	for _, line := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && strings.TrimSpace(k) == name {
			vals = append(vals, strings.Join(strings.Fields(v), " "))
		}
	}
	return vals
}

func (l *testLink) cliAddrs() string {
	return l.run("ip", "-n", l.cli, "-6", "-o", "addr", "show", "dev", l.cliIf)
}

func (l *testLink) cliDefaultRoute() string {
	return strings.TrimSpace(l.run("ip", "-n", l.cli, "-6", "route", "show", "default"))
}

func (l *testLink) srvLinkLocal() netip.Addr {
	out := l.run("ip", "-n", l.srv, "-6", "-o", "addr", "show", "dev", l.srvIf, "scope", "link")
	f := strings.Fields(out)
	for i, w := range f {
		if w == "inet6" {
			p, err := netip.ParsePrefix(f[i+1])
			if err == nil {
				return p.Addr()
			}
		}
	}
	l.t.Fatalf("no link-local address on %s: %q", l.srvIf, out)
	return netip.Addr{}
}

// TestHostsConfigureFromAdvertisements: real clients are the judge —
// rdisc6 sees what the Config says, the client's kernel configures its
// EUI-64 address and a default route through the server's link-local
// address, a new Config reaches it at once, and Close's final
// advertisement takes the default route away.
func TestHostsConfigureFromAdvertisements(t *testing.T) {
	l := newLink(t)
	p1, p2 := uniquePrefix(1), uniquePrefix(2)
	dns := p1.Addr().Next()
	srv, err := Listen(l.srvNS, l.srvIf, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			srv.Close()
		}
	}()
	srv.SetConfig(&Config{
		Other:          true,
		RouterLifetime: 1800 * time.Second,
		MTU:            1400,
		Prefixes:       []Prefix{{Prefix: p1, OnLink: true, Autonomous: true}},
		RDNSS:          []netip.Addr{dns},
		DNSSL:          []string{"nsnet.test"},
		MinInterval:    3 * time.Second,
		MaxInterval:    4 * time.Second,
	})

	var out string
	eventually(t, "rdisc6 sees an advertisement", func() (err error) {
		out, err = l.rdisc6()
		return err
	})
	t.Logf("rdisc6:\n%s", out)
	want := map[string]string{
		"Stateful address conf.":    "No",
		"Stateful other conf.":      "Yes",
		"Router lifetime":           "1800 (0x00000708) seconds",
		"Prefix":                    p1.String(),
		"On-link":                   "Yes",
		"Autonomous address conf.":  "Yes",
		"MTU":                       "1400 bytes (valid)",
		"Recursive DNS server":      dns.String(),
		"DNS search list":           "nsnet.test",
		"Hop limit":                 "64 ( 0x40)",
		"Valid time":                "86400 (0x00015180) seconds",
		"Pref. time":                "14400 (0x00003840) seconds",
		"Source link-layer address": "",
	}
	if from := "from " + l.srvLinkLocal().String(); !strings.Contains(out, from+"\n") {
		t.Errorf("rdisc6 did not hear the advertisement %s", from)
	}
	for k, v := range want {
		got := field(out, k)
		if len(got) != 1 || (v != "" && got[0] != v) {
			t.Errorf("rdisc6 %q = %q, want %q", k, got, v)
		}
	}

	addr := eui64(p1, l.cliMAC)
	eventually(t, "the client configures its SLAAC address", func() error {
		if a := l.cliAddrs(); !strings.Contains(a, addr.String()+"/64") {
			return fmt.Errorf("no %s on the client:\n%s", addr, a)
		}
		return nil
	})
	gw := l.srvLinkLocal()
	eventually(t, "the client routes through the server", func() error {
		if r := l.cliDefaultRoute(); !strings.HasPrefix(r, "default via "+gw.String()+" dev "+l.cliIf) {
			return fmt.Errorf("default route %q, want via %s", r, gw)
		}
		return nil
	})

	// A new Config goes out at once: the client gets the new prefix, and
	// the removed one is deprecated.
	srv.SetConfig(&Config{
		RouterLifetime: 1800 * time.Second,
		Prefixes:       []Prefix{{Prefix: p2, OnLink: true, Autonomous: true}},
		MinInterval:    3 * time.Second,
		MaxInterval:    4 * time.Second,
	})
	addr2 := eui64(p2, l.cliMAC)
	eventually(t, "the client takes the new prefix and deprecates the old one", func() error {
		a := l.cliAddrs()
		if !strings.Contains(a, addr2.String()+"/64") {
			return fmt.Errorf("no %s on the client:\n%s", addr2, a)
		}
		for _, line := range strings.Split(a, "\n") {
			if strings.Contains(line, addr.String()+"/64") && !strings.Contains(line, "deprecated") {
				return fmt.Errorf("%s not deprecated:\n%s", addr, a)
			}
		}
		return nil
	})

	srv.Close()
	closed = true
	eventually(t, "the final advertisement removes the default route", func() error {
		if r := l.cliDefaultRoute(); r != "" {
			return fmt.Errorf("default route %q still there", r)
		}
		return nil
	})
}

// TestNoAdvertisementBeforeConfig: a server without a Config answers
// nobody, and SetConfig(nil) withdraws the router as Close does.
func TestWithdrawByNilConfig(t *testing.T) {
	l := newLink(t)
	srv, err := Listen(l.srvNS, l.srvIf, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if out, err := l.rdisc6(); err == nil {
		t.Fatalf("rdisc6 saw an advertisement from a server without a config:\n%s", out)
	}
	srv.SetConfig(&Config{RouterLifetime: time.Hour, Prefixes: []Prefix{{Prefix: uniquePrefix(3), OnLink: true}}})
	eventually(t, "the client routes through the server", func() error {
		if r := l.cliDefaultRoute(); r == "" {
			return fmt.Errorf("no default route")
		}
		return nil
	})
	srv.SetConfig(nil)
	eventually(t, "the withdrawal removes the default route", func() error {
		if r := l.cliDefaultRoute(); r != "" {
			return fmt.Errorf("default route %q still there", r)
		}
		return nil
	})
}

func TestListenWithoutInterface(t *testing.T) {
	l := newLink(t)
	if _, err := Listen(l.srvNS, "nosuch0", testLog(t)); err == nil {
		t.Fatal("Listen on a missing interface succeeded")
	}
}

// TestWaitsForLinkLocal: an interface without a link-local address (not
// yet, or not any more) does not fail the server: it opens its socket once
// the address is there, and advertises from it.
func TestWaitsForLinkLocal(t *testing.T) {
	l := newLink(t)
	l.run("ip", "-n", l.srv, "link", "set", "dev", l.srvIf, "addrgenmode", "none")
	l.run("ip", "-n", l.srv, "-6", "addr", "flush", "dev", l.srvIf)
	srv, err := Listen(l.srvNS, l.srvIf, testLog(t))
	if err != nil {
		t.Fatalf("Listen without a link-local address: %v", err)
	}
	defer srv.Close()
	srv.SetConfig(&Config{RouterLifetime: time.Hour, Prefixes: []Prefix{{Prefix: uniquePrefix(4), OnLink: true, Autonomous: true}}})
	if out, err := l.rdisc6(); err == nil {
		t.Fatalf("an advertisement without a link-local address to send it from:\n%s", out)
	} else {
		t.Logf("before the link-local address: %v", err)
	}
	// With duplicate address detection: tentative for a moment first.
	ll := netip.MustParseAddr("fe80::1:2:3:4")
	l.run("ip", "-n", l.srv, "addr", "add", ll.String()+"/64", "dev", l.srvIf)
	eventually(t, "an advertisement from the new link-local address", func() error {
		out, err := l.rdisc6()
		if err != nil {
			return err
		}
		if !strings.Contains(out, "from "+ll.String()+"\n") {
			return fmt.Errorf("advertisement not from %s:\n%s", ll, out)
		}
		return nil
	})
}

// TestPeriodicAdvertisements: a host that never solicits still learns the
// router, from the unsolicited advertisements sent every MinInterval to
// MaxInterval. The client ignores advertisements until the first one has
// gone, so only a later, periodic one can configure it.
func TestPeriodicAdvertisements(t *testing.T) {
	l := newLink(t)
	for _, kv := range []string{"router_solicitations=0", "accept_ra=0"} {
		l.run("ip", "netns", "exec", l.cli, "sysctl", "-qw", "net.ipv6.conf."+l.cliIf+"."+kv)
	}
	srv, err := Listen(l.srvNS, l.srvIf, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	srv.SetConfig(&Config{RouterLifetime: time.Hour, MinInterval: time.Second, MaxInterval: 2 * time.Second,
		Prefixes: []Prefix{{Prefix: uniquePrefix(5), OnLink: true, Autonomous: true}}})
	eventually(t, "the first advertisement", func() error {
		if srv.advertisements.Load() == 0 {
			return fmt.Errorf("none sent yet")
		}
		return nil
	})
	if r := l.cliDefaultRoute(); r != "" {
		t.Fatalf("default route %q while the client ignores advertisements", r)
	}
	l.run("ip", "netns", "exec", l.cli, "sysctl", "-qw", "net.ipv6.conf."+l.cliIf+".accept_ra=1")
	eventually(t, "a periodic advertisement configures the client", func() error {
		if r := l.cliDefaultRoute(); !strings.HasPrefix(r, "default via "+l.srvLinkLocal().String()) {
			return fmt.Errorf("default route %q", r)
		}
		return nil
	})
}

// TestModesAsRdisc6SeesThem: Neutron's ipv6_ra_mode values, through
// ForSubnets, reach a real client as Neutron's radvd template sends them.
func TestModesAsRdisc6SeesThem(t *testing.T) {
	l := newLink(t)
	srv, err := Listen(l.srvNS, l.srvIf, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	p := uniquePrefix(6)
	dns := p.Addr().Next()
	tests := []struct {
		mode                 string
		managed, other, auto string
		rdnss                bool
	}{
		{ModeSLAAC, "No", "No", "Yes", true},
		{ModeStateful, "Yes", "No", "No", false},
		{ModeStateless, "No", "Yes", "Yes", false},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			srv.SetConfig(ForSubnets([]Subnet{{Prefix: p, RAMode: tt.mode, DNS: []netip.Addr{dns}}}, 1450, NeutronRouterLifetime))
			// rdisc6 shows the first advertisement it hears: wait for
			// the one of this mode.
			var out string
			eventually(t, "rdisc6 sees the "+tt.mode+" advertisement", func() (err error) {
				if out, err = l.rdisc6(); err != nil {
					return err
				}
				if got := field(out, "Stateful address conf."); len(got) != 1 || got[0] != tt.managed {
					return fmt.Errorf("M flag %q, want %s:\n%s", got, tt.managed, out)
				}
				if got := field(out, "Stateful other conf."); len(got) != 1 || got[0] != tt.other {
					return fmt.Errorf("O flag %q, want %s:\n%s", got, tt.other, out)
				}
				return nil
			})
			want := map[string]string{
				"Prefix":                   p.String(),
				"On-link":                  "Yes",
				"Autonomous address conf.": tt.auto,
				"MTU":                      "1450 bytes (valid)",
				"Router lifetime":          "300 (0x0000012c) seconds",
			}
			for k, v := range want {
				if got := field(out, k); len(got) != 1 || got[0] != v {
					t.Errorf("rdisc6 %q = %q, want %q", k, got, v)
				}
			}
			if got := field(out, "Recursive DNS server"); (len(got) == 1 && got[0] == dns.String()) != tt.rdnss {
				t.Errorf("rdisc6 RDNSS %q, want it: %v", got, tt.rdnss)
			}
		})
	}
}

// TestAdvertisesFromTheRouterAddress: an interface with a second
// link-local address, one usable at once (nodad, as the metadata
// service's fe80::a9fe:a9fe on a router's qr-), still advertises from its
// own EUI-64 link-local address: hosts take the source of advertisements
// as their default router, which must be the router's lasting address.
func TestAdvertisesFromTheRouterAddress(t *testing.T) {
	l := newLink(t)
	l.run("ip", "-n", l.srv, "addr", "add", "fe80::a9fe:a9fe/64", "dev", l.srvIf, "nodad")
	var mac net.HardwareAddr
	show := strings.Fields(l.run("ip", "-n", l.srv, "-o", "link", "show", l.srvIf))
	for i, f := range show {
		if f == "link/ether" {
			mac, _ = net.ParseMAC(show[i+1])
		}
	}
	own := eui64(netip.MustParsePrefix("fe80::/64"), mac)
	srv, err := Listen(l.srvNS, l.srvIf, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	srv.SetConfig(&Config{RouterLifetime: time.Hour, Prefixes: []Prefix{{Prefix: uniquePrefix(7), OnLink: true, Autonomous: true}}})
	eventually(t, "an advertisement from "+own.String(), func() error {
		out, err := l.rdisc6()
		if err != nil {
			return err
		}
		if !strings.Contains(out, "from "+own.String()+"\n") {
			return fmt.Errorf("advertisement not from %s:\n%s", own, out)
		}
		return nil
	})
}
