package agent

import (
	"strings"
	"testing"
	"time"

	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/store"
)

// TestRouterConntrackHelpers: a router's conntrack helpers reach its nsnet
// table as elements of the conntrack_helpers map (internal/nat's
// TestConntrackHelperFTP proves what they do to traffic), a helper removed
// by hand comes back, a restart changes nothing, and removing one from the
// record removes its element.
func TestRouterConntrackHelpers(t *testing.T) {
	e := newEnv(t, 100*time.Millisecond)
	topo := newL3Topo()
	topo.r.Helpers = []model.ConntrackHelper{
		{ID: "cth-ftp", Protocol: "tcp", Port: 21, Helper: "ftp"},
		{ID: "cth-tftp", Protocol: "udp", Port: 69, Helper: "tftp"},
	}
	// topo.all() holds the router as newL3Topo made it: put this one after.
	e.converge(e.put(append(topo.all(), topo.r)...))
	rns := e.routerNS(topo.r)
	elements := func() string {
		return e.nft(rns, "list", "map", "inet", "nsnet", "conntrack_helpers")
	}
	wantElements := func(want ...string) {
		t.Helper()
		got := elements()
		for _, w := range want {
			if !strings.Contains(got, w) {
				t.Fatalf("conntrack_helpers lacks %q:\n%s", w, got)
			}
		}
	}
	wantElements("tcp . 21 : jump helper_ftp_tcp", "udp . 69 : jump helper_tftp_udp")
	e.wantStatus(store.Routers, topo.r.ID, model.StatusActive)

	e.nft(rns, "delete", "element", "inet", "nsnet", "conntrack_helpers", "{ tcp . 21 }")
	e.waitFullPasses(2)
	wantElements("tcp . 21 : jump helper_ftp_tcp")

	table := e.nft(rns, "-a", "list", "table", "inet", "nsnet")
	e.stop()
	e.start()
	e.converge(e.revision())
	if c := e.agent.Health().Changes; c != 0 {
		t.Fatalf("restart of a converged agent made %d changes", c)
	}
	if after := e.nft(rns, "-a", "list", "table", "inet", "nsnet"); after != table {
		t.Fatalf("restart changed the table:\n%s\n→\n%s", table, after)
	}

	topo.r.Helpers = topo.r.Helpers[1:]
	e.converge(e.put(topo.r))
	if got := elements(); strings.Contains(got, "tcp . 21") || !strings.Contains(got, "udp . 69") {
		t.Fatalf("after removing the ftp helper:\n%s", got)
	}
}
