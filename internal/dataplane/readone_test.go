package dataplane

import (
	"fmt"
	"os/exec"
	"testing"

	"github.com/nsnet/nsnet/internal/netns"
)

// TestHairpinReadsOneLink checks what reading a port's hairpin mode reads
// on a bridge with many other ports (a host's other ports): the tap's
// link alone, not every bridge port's; and that the mode read is the one
// set, on and off.
func TestHairpinReadsOneLink(t *testing.T) {
	const others = 40
	e := newEnv(t)
	tp := newTopology(e)
	tp.ensure(t)
	for i := range others {
		name, peer := fmt.Sprintf("nsh-o%d", i), fmt.Sprintf("nsh-p%d", i)
		t.Cleanup(func() { e.ip("-n", e.hostName, "link", "del", name) })
		e.ip("-n", e.hostName, "link", "add", name, "type", "veth", "peer", "name", peer)
		e.ip("-n", e.hostName, "link", "set", name, "master", tp.bridge.Name, "up")
	}
	const tap = "tapp-red"
	for _, on := range []bool{true, true, false, true, false} {
		links := NewLinks(e.host.Handle)
		links.SetNamespace(e.hostName)
		link, err := links.Get(tap)
		if err != nil || link == nil {
			t.Fatalf("tap: %v, %v", link, err)
		}
		if err := links.setHairpin(link, on); err != nil {
			t.Fatal(err)
		}
		before := bridgeLinksRead.Load()
		got, err := links.hairpin(link)
		if err != nil {
			t.Fatal(err)
		}
		if n := bridgeLinksRead.Load() - before; n != 1 {
			t.Errorf("reading the tap's hairpin mode read %d links, want 1", n)
		}
		if got != on {
			t.Errorf("hairpin read %v, set %v", got, on)
		}
	}
}

// TestReadsThroughKeptSocket: with a socket kept in the namespace
// (SetSocket), reading a port's hairpin mode and its root qdisc, as every
// full pass does for every port, moves no thread to the namespace; and
// the answers are those of the reads from inside it.
func TestReadsThroughKeptSocket(t *testing.T) {
	e := newEnv(t)
	tp := newTopology(e)
	tp.ensure(t)
	sock := e.routeSocket(t)
	const tap = "tapp-red"
	for _, on := range []bool{true, false} {
		inside := NewLinks(e.host.Handle)
		inside.SetNamespace(e.hostName)
		kept := NewLinks(e.host.Handle)
		kept.SetSocket(e.hostName, sock)
		link, err := kept.Get(tap)
		if err != nil || link == nil {
			t.Fatalf("tap: %v, %v", link, err)
		}
		if err := kept.setHairpin(link, on); err != nil {
			t.Fatal(err)
		}
		args := []string{"-n", e.hostName, "qdisc", "del", "dev", tap, "root"}
		if on {
			args = []string{"-n", e.hostName, "qdisc", "replace", "dev", tap, "root", "tbf", "rate", "1mbit", "burst", "10kb", "latency", "50ms"}
		}
		if out, err := exec.Command("tc", args...).CombinedOutput(); err != nil {
			t.Fatalf("tc %v: %v\n%s", args, err, out)
		}
		wantHairpin, err := inside.hairpin(link)
		if err != nil {
			t.Fatal(err)
		}
		wantRoot, err := inside.rootQdisc(link)
		if err != nil {
			t.Fatal(err)
		}
		before := netns.Switches()
		hairpin, err := kept.hairpin(link)
		if err != nil {
			t.Fatal(err)
		}
		root, err := kept.rootQdisc(link)
		if err != nil {
			t.Fatal(err)
		}
		if n := netns.Switches() - before; n != 0 {
			t.Errorf("hairpin %v: the reads switched namespaces %d times, want 0", on, n)
		}
		if hairpin != wantHairpin || hairpin != on {
			t.Errorf("hairpin %v: read %v, from inside %v", on, hairpin, wantHairpin)
		}
		if fmt.Sprint(root) != fmt.Sprint(wantRoot) {
			t.Errorf("hairpin %v: root qdisc %v, from inside %v", on, root, wantRoot)
		}
	}
}
