package nat_test

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	testlab "github.com/nsnet/nsnet/internal/lab"
	"github.com/nsnet/nsnet/internal/nat"
)

// TestConntrackHelperFTP proves a router's ftp helper with active FTP
// through default SNAT: without it the server is told the client's
// private address and cannot connect back; with it the PORT command
// arrives rewritten to the router's gateway address and the server's
// data connection is translated back to the client. It also proves that
// the helper is one element of the table, repaired when removed by hand,
// read back by Inspect and written out by Script.
func TestConntrackHelperFTP(t *testing.T) {
	rl := newRouterLab(t)
	ftp, err := testlab.ServeFTP(rl.w.far.Name, "203.0.113.1:21")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ftp.Close() })
	client := netip.MustParseAddr("10.0.0.6")

	t.Run("without the helper the PORT address is the private one", func(t *testing.T) {
		_, err := testlab.ActiveFTP(rl.vm2.Name, client, "203.0.113.1:21")
		if err == nil {
			t.Fatal("active FTP through SNAT worked without a helper")
		}
		if got := ftp.Ports(); len(got) == 0 || got[len(got)-1].Addr() != client {
			t.Fatalf("server saw PORT %v, want the client's own %v", got, client)
		}
	})

	withHelper := rl.router
	withHelper.Helpers = []nat.Helper{{Name: "ftp", Protocol: nat.TCP, Port: 21}, {Name: "tftp", Protocol: nat.UDP, Port: 69}}
	res := applyNAT(t, rl.r.Name, withHelper.Spec())
	if res.Added != 2 || res.Rebuilt || len(res.Rewritten) > 0 {
		t.Fatalf("adding two helpers: %+v, want two elements added and nothing else", res)
	}

	t.Run("with the helper the data connection comes back through the NAT", func(t *testing.T) {
		var got string
		var err error
		for range 3 { // a client retries; a lost SYN must not fail the test
			if got, err = testlab.ActiveFTP(rl.vm2.Name, client, "203.0.113.1:21"); err == nil {
				break
			}
		}
		if err != nil || got != "listing" {
			t.Fatalf("active FTP with the helper: %q, %v", got, err)
		}
		seen := ftp.Ports()
		if last := seen[len(seen)-1]; last.Addr() != netip.MustParseAddr(gwAddr) {
			t.Fatalf("server saw PORT %v, want the gateway address %s", last, gwAddr)
		}
	})

	t.Run("inspect and script", func(t *testing.T) {
		tb, err := nat.Open(rl.r.Name, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tb.Close()
		st, err := tb.Inspect()
		if err != nil {
			t.Fatal(err)
		}
		want := []nat.Helper{{Name: "ftp", Protocol: nat.TCP, Port: 21}, {Name: "tftp", Protocol: nat.UDP, Port: 69}}
		if !slices.Equal(st.Spec.Helpers, want) || len(st.Problems)+len(st.Stale) > 0 {
			t.Fatalf("inspect: helpers %v problems %v stale %v, want %v", st.Spec.Helpers, st.Problems, st.Stale, want)
		}
		script := st.Script()
		for _, s := range []string{`ct helper ftp-tcp {`, `type "ftp" protocol tcp`, `ct helper set "ftp-tcp"`,
			"add element inet nsnet conntrack_helpers { tcp . 21 : jump helper_ftp_tcp }"} {
			if !strings.Contains(script, s) {
				t.Errorf("script lacks %q:\n%s", s, script)
			}
		}
	})

	t.Run("a helper removed by hand is restored", func(t *testing.T) {
		rl.nft(rl.r.Name, "delete", "element", "inet", "nsnet", "conntrack_helpers", "{ tcp . 21 }")
		res := applyNAT(t, rl.r.Name, withHelper.Spec())
		if res.Added != 1 || !res.Read {
			t.Fatalf("repair: %+v, want the table read and one element added", res)
		}
	})

	t.Run("removing the helper", func(t *testing.T) {
		res := applyNAT(t, rl.r.Name, rl.router.Spec())
		if res.Deleted != 2 {
			t.Fatalf("removing two helpers: %+v", res)
		}
	})
}

func TestHelperValidation(t *testing.T) {
	for _, tc := range []struct {
		name    string
		helpers []nat.Helper
		want    string
	}{
		{"unknown helper", []nat.Helper{{Name: "quake", Protocol: nat.UDP, Port: 1}}, "no such helper"},
		{"helper on the wrong protocol", []nat.Helper{{Name: "ftp", Protocol: nat.UDP, Port: 21}}, "no such helper"},
		{"port 0", []nat.Helper{{Name: "ftp", Protocol: nat.TCP}}, "port 0"},
		{"two helpers on one port", []nat.Helper{{Name: "ftp", Protocol: nat.TCP, Port: 21}, {Name: "irc", Protocol: nat.TCP, Port: 21}}, "claim the same"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := nat.Spec{Helpers: tc.helpers}.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate: %v, want an error with %q", err, tc.want)
			}
		})
	}
	if err := (nat.Spec{Helpers: []nat.Helper{{Name: "sip", Protocol: nat.UDP, Port: 5060}, {Name: "sip", Protocol: nat.TCP, Port: 5060}}}).Validate(); err != nil {
		t.Fatalf("sip on udp and tcp: %v", err)
	}
}
