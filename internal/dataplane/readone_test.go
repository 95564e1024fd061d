package dataplane

import (
	"fmt"
	"testing"
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
