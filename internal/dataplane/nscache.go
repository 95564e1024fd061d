package dataplane

import (
	"errors"
	"fmt"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/nsnet/nsnet/internal/netns"
)

// InstanceNamespaces keeps the instance namespaces EnsureInstance opened
// open for the calls after it, up to a bound: a port plugged into an
// instance just created, or a second port of it, needs a netlink handle
// inside its namespace, and opening one costs a namespace switch (a thread
// locked, two setns calls, a socket) each time.
//
// A namespace it keeps is used again only while its name still mounts
// the same namespace (the same nsfs inode): one deleted, or deleted and
// created again, behind its back is opened afresh. Forget drops a
// namespace before it is deleted: the descriptors kept here would keep it,
// and its veths, alive. Safe for concurrent use.
type InstanceNamespaces struct {
	max int

	mu     sync.Mutex
	byName map[string]*keptNamespace
	tick   uint64 // use counter, for evicting the least recently used
	opened int    // namespaces opened (not taken from the kept ones)
}

type keptNamespace struct {
	ns     *Namespace // its Handle and fd are the kept ones
	marker string
	id     nsID
	refs   int    // handed out and not closed yet
	used   uint64 // tick of the last use
	gone   bool   // dropped: close once refs is 0
}

// nsID identifies a namespace: its nsfs device and inode.
type nsID struct{ dev, ino uint64 }

// NewInstanceNamespaces keeps at most max namespaces open (two
// descriptors each).
func NewInstanceNamespaces(max int) *InstanceNamespaces {
	return &InstanceNamespaces{max: max, byName: map[string]*keptNamespace{}}
}

// Opened reports how many namespaces EnsureInstance has opened rather
// than taken from those it kept: a cost that tests count.
func (c *InstanceNamespaces) Opened() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.opened
}

// EnsureInstance is EnsureInstanceNetns, answered from the namespaces c
// keeps when it has the named one, marked with marker. verify checks
// such a namespace's marker and lo again (drift); without it, the
// namespace is known nsnet's, as it was when c opened it. The caller
// closes the namespace, which returns it to c.
func (c *InstanceNamespaces) EnsureInstance(name, marker string, verify bool) (*Namespace, bool, error) {
	if ns, ok := c.take(name, marker); ok {
		if !verify {
			return ns, false, nil
		}
		changed, err := checkMarked(ns, marker)
		if err == nil {
			return ns, changed, nil
		}
		ns.Close()
		c.Forget(name)
		// Opened afresh, as if c had not kept it: a namespace that
		// is not nsnet's any more is a NotOwnedError there.
	}
	ns, changed, err := EnsureInstanceNetns(name, marker)
	if err != nil {
		return nil, changed, err
	}
	return c.keep(ns, marker), changed, nil
}

// take returns the kept namespace called name, if it is still the one
// mounted under that name and marked with marker.
func (c *InstanceNamespaces) take(name, marker string) (*Namespace, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := c.byName[name]
	if k == nil {
		return nil, false
	}
	if id, err := pathID(netns.Path(name)); err != nil || id != k.id || k.marker != marker {
		c.dropLocked(name, k)
		return nil, false
	}
	return c.handOutLocked(k), true
}

// keep adds ns, just opened, to the kept namespaces (unless it cannot
// identify it: then the caller has it for itself) and returns it as
// handed out.
func (c *InstanceNamespaces) keep(ns *Namespace, marker string) *Namespace {
	var st unix.Stat_t
	if err := unix.Fstat(int(ns.fd), &st); err != nil {
		return ns
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.opened++
	if old := c.byName[ns.Name]; old != nil {
		c.dropLocked(ns.Name, old)
	}
	k := &keptNamespace{ns: ns, marker: marker, id: nsID{st.Dev, st.Ino}}
	c.byName[ns.Name] = k
	out := c.handOutLocked(k)
	out.Fresh = ns.Fresh
	ns.Fresh = false
	c.evictLocked()
	return out
}

// handOutLocked returns a Namespace sharing k's handle and descriptor,
// whose Close gives them back.
func (c *InstanceNamespaces) handOutLocked(k *keptNamespace) *Namespace {
	c.tick++
	k.used = c.tick
	k.refs++
	var once sync.Once
	return &Namespace{Name: k.ns.Name, Handle: k.ns.Handle, fd: k.ns.fd, release: func() {
		once.Do(func() { c.release(k) })
	}}
}

func (c *InstanceNamespaces) release(k *keptNamespace) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k.refs--
	if k.gone && k.refs == 0 {
		k.ns.Close()
	}
}

// evictLocked closes the least recently used namespaces nobody holds
// while c keeps more than its bound.
func (c *InstanceNamespaces) evictLocked() {
	for len(c.byName) > c.max {
		var lru *keptNamespace
		for _, k := range c.byName {
			if k.refs == 0 && (lru == nil || k.used < lru.used) {
				lru = k
			}
		}
		if lru == nil {
			return
		}
		c.dropLocked(lru.ns.Name, lru)
	}
}

// dropLocked stops keeping k, and closes it unless it is handed out.
func (c *InstanceNamespaces) dropLocked(name string, k *keptNamespace) {
	if c.byName[name] == k {
		delete(c.byName, name)
	}
	k.gone = true
	if k.refs == 0 {
		k.ns.Close()
	}
}

// Forget stops keeping the named namespace: it is about to be deleted.
func (c *InstanceNamespaces) Forget(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if k := c.byName[name]; k != nil {
		c.dropLocked(name, k)
	}
}

// Prune stops keeping the namespaces whose names no longer mount them
// (deleted behind c's back), whose descriptors would keep them alive.
func (c *InstanceNamespaces) Prune() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for name, k := range c.byName {
		if id, err := pathID(netns.Path(name)); err != nil || id != k.id {
			c.dropLocked(name, k)
		}
	}
}

// Close stops keeping every namespace.
func (c *InstanceNamespaces) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for name, k := range c.byName {
		c.dropLocked(name, k)
	}
}

// pathID identifies the namespace mounted at path.
func pathID(path string) (nsID, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nsID{}, fmt.Errorf("namespace %s: %w", path, err)
		}
		return nsID{}, fmt.Errorf("stat %s: %w", path, err)
	}
	return nsID{st.Dev, st.Ino}, nil
}
