package dataplane

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFullBridgeSaysSo: a Linux bridge holds at most 1,023 ports (the
// kernel numbers them in 10 bits, 0 unused), so a network can have no
// more bound on one host. The port past that fails with the kernel's
// bare "exchange full"; the error says what it means, and no half of the
// pair is left behind.
func TestFullBridgeSaysSo(t *testing.T) {
	e := newEnv(t)
	tp := newTopology(e)
	if _, err := EnsureBridge(e.links, tp.bridge); err != nil {
		t.Fatal(err)
	}
	var fill, empty strings.Builder
	for i := range maxBridgePorts {
		fmt.Fprintf(&fill, "link add fl%d type veth peer name fp%d\nlink set fl%d master %s\n", i, i, i, tp.bridge.Name)
		fmt.Fprintf(&empty, "link del fl%d\n", i)
	}
	batch := func(name, cmds string) {
		file := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(file, []byte(cmds), 0o644); err != nil {
			t.Fatal(err)
		}
		e.ip("-n", e.hostName, "-batch", file)
	}
	t.Cleanup(func() { batch("empty", empty.String()) })
	batch("fill", fill.String())

	red := e.ns("red")
	ns, _, err := EnsureInstanceNetns(red, e.marker("i-red"))
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	spec := tp.ports["p-red"].spec
	links := NewLinks(e.host.Handle)
	links.SetNamespace(e.hostName)
	_, err = EnsureVethPort(links, ns, spec)
	if err == nil || !strings.Contains(err.Error(), "a Linux bridge holds at most 1023 ports") {
		t.Fatalf("the 1,024th port: %v, want an error saying the bridge is full", err)
	}
	if out := e.ip("-n", e.hostName, "-o", "link", "show", "type", "veth"); strings.Contains(out, spec.TapName+"@") {
		t.Errorf("%s left behind:\n%s", spec.TapName, out)
	}
}
