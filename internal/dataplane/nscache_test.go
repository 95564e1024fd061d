package dataplane

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/nsnet/nsnet/internal/netns"
)

// TestInstanceNamespacesKept checks that InstanceNamespaces opens an
// instance namespace once for the calls after the first, and that no
// namespace outlives its name because it kept it: one forgotten before
// its deletion, deleted behind its back, or pushed out by newer ones is
// no longer held by any descriptor of the process.
func TestInstanceNamespacesKept(t *testing.T) {
	e := newEnv(t)
	c := NewInstanceNamespaces(2)
	defer c.Close()
	ensure := func(name string, wantFresh bool) uint64 {
		t.Helper()
		ns, _, err := c.EnsureInstance(e.ns(name), e.marker("i-"+name), false)
		if err != nil {
			t.Fatal(err)
		}
		defer ns.Close()
		if ns.Fresh != wantFresh {
			t.Errorf("%s: fresh %v, want %v", name, ns.Fresh, wantFresh)
		}
		if _, err := ns.Handle.LinkByName("lo"); err != nil {
			t.Fatalf("%s: handle: %v", name, err)
		}
		ino, err := netns.Inode(e.ns(name))
		if err != nil {
			t.Fatal(err)
		}
		return ino
	}
	steps := []struct {
		what     string
		run      func() // between the two calls
		name     string
		fresh    bool // the second call creates it again
		opened   int  // by the second call
		released bool // the first namespace is no longer held
	}{
		{what: "kept", name: "a", opened: 0},
		{what: "deleted behind its back", name: "b", run: func() { netns.Delete(e.ns("b")) }, fresh: true, opened: 1, released: true},
		{what: "forgotten and deleted", name: "c", run: func() {
			c.Forget(e.ns("c"))
			if err := DeleteInstanceNetns(e.ns("c"), e.marker("i-c"), nil); err != nil {
				t.Fatal(err)
			}
		}, fresh: true, opened: 1, released: true},
		{what: "pruned after deletion", name: "d", run: func() {
			netns.Delete(e.ns("d"))
			c.Prune()
		}, fresh: true, opened: 1, released: true},
		{what: "pushed out by newer ones", name: "e", run: func() {
			ensure("f", true)
			ensure("g", true)
		}, opened: 1},
	}
	for _, s := range steps {
		first := ensure(s.name, true)
		if s.run != nil {
			s.run()
		}
		before := c.Opened()
		second := ensure(s.name, s.fresh)
		if n := c.Opened() - before; n != s.opened {
			t.Errorf("%s: opened %d namespaces, want %d", s.what, n, s.opened)
		}
		if s.released && held(t, first) > 0 {
			t.Errorf("%s: the first namespace %s is still held", s.what, s.name)
		}
		if (first == second) == s.fresh {
			t.Errorf("%s: same namespace %v, want %v", s.what, first == second, !s.fresh)
		}
		if !s.released && s.opened == 1 && held(t, first) != 1 {
			// Pushed out: closed, then opened again, once.
			t.Errorf("%s: namespace held %d times, want 1", s.what, held(t, first))
		}
	}
	c.Close()
	for _, name := range []string{"a", "b", "c", "d", "e", "f", "g"} {
		ino, err := netns.Inode(e.ns(name))
		if err != nil {
			t.Fatal(err)
		}
		if n := held(t, ino); n != 0 {
			t.Errorf("after Close, %s held by %d descriptors", name, n)
		}
		if err := DeleteInstanceNetns(e.ns(name), e.marker("i-"+name), nil); err != nil {
			t.Fatal(err)
		}
	}
}

// held counts the process's descriptors of the namespace with inode ino
// (on nsfs: inodes of other file systems are not compared).
func held(t *testing.T, ino uint64) int {
	t.Helper()
	fds, err := filepath.Glob("/proc/self/fd/*")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, fd := range fds {
		var st unix.Statfs_t
		if unix.Statfs(fd, &st) != nil || st.Type != unix.NSFS_MAGIC {
			continue
		}
		if fi, err := os.Stat(fd); err == nil && fi.Sys().(*syscall.Stat_t).Ino == ino {
			n++
		}
	}
	return n
}
