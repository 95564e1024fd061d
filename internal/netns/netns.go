// Package netns owns switching OS threads between network namespaces, and
// named namespaces in iproute2's layout (/run/netns/NAME), so that `ip netns`
// sees and can enter everything nsnet makes.
//
// It is the only nsnet package that calls setns or unshare(CLONE_NEWNET).
// Everyone else works through what it hands out: netlink handles bound to a
// namespace (usable from any goroutine), namespace file descriptors, and Do,
// which runs a function inside a namespace on a thread of its own. A thread
// that cannot be switched back to where it came from is never reused: its
// goroutine exits still locked to it, and the Go runtime destroys it.
package netns

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Dir is where named namespaces are mounted, as iproute2 does it.
const Dir = "/run/netns"

// Path is the file of the named namespace.
func Path(name string) string { return Dir + "/" + name }

// validName rejects names that are not a single file name in Dir.
func validName(name string) error {
	switch {
	case name == "":
		return errors.New("namespace name must not be empty")
	case name == "." || name == ".." || strings.ContainsAny(name, "/\x00"):
		return fmt.Errorf("invalid namespace name %q", name)
	}
	return nil
}

// Create makes the named namespace if it does not exist yet.
func Create(name string) error {
	_, err := CreateWith(name, nil)
	return err
}

// CreateWith makes the named namespace if it does not exist yet and reports
// whether it did. A namespace that already exists is left as it is (setup
// does not run). Otherwise setup, when not nil, runs inside the new namespace
// on the thread that created it, before the namespace is mounted under its
// name: nobody can see it half set up, even if the process dies meanwhile.
// Inside setup, NewHandle("") binds to the new namespace.
//
// The calling goroutine's thread never changes namespace.
func CreateWith(name string, setup func() error) (created bool, err error) {
	if err := validName(name); err != nil {
		return false, err
	}
	path := Path(name)
	if isNamespace(path) {
		return false, nil
	}
	// One creation at a time in this process: a mount point another
	// goroutine has created but not mounted yet must not look stale.
	createMu.Lock()
	defer createMu.Unlock()
	if err := ensureSharedDir(); err != nil {
		return false, err
	}
	placeholder, err := createMountPoint(path)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			// Someone else created it between our check and now.
			return false, nil
		}
		return false, err
	}
	// The lock on the placeholder says "creation under way" until the
	// namespace is mounted over it, or until this process dies.
	defer placeholder.Close()
	err = onThread(
		func() error { return unix.Unshare(unix.CLONE_NEWNET) },
		func() error {
			if setup != nil {
				if err := setup(); err != nil {
					return fmt.Errorf("set up namespace %s: %w", name, err)
				}
			}
			self := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
			if err := unix.Mount(self, path, "none", unix.MS_BIND, ""); err != nil {
				return fmt.Errorf("bind-mount namespace onto %s: %w", path, err)
			}
			return nil
		})
	if err != nil {
		os.Remove(path)
		return false, fmt.Errorf("create namespace %s: %w", name, err)
	}
	return true, nil
}

var createMu sync.Mutex

// createMountPoint creates the empty file a namespace is bind-mounted onto,
// and returns it open and locked (flock): the lock tells other processes
// that the creation is under way, and goes when the creator closes it or
// dies. (Between creating the file and locking it there are a few
// instructions in which another process could take it for stale; within
// this process createMu rules that out.)
//
// An existing plain file that is stale (see RemoveStale) is the leftover of
// a creation that died before mounting, or of a failed unmount: it is
// replaced. Otherwise it may be a creation under way in another process:
// ErrCreating. An existing namespace is fs.ErrExist.
func createMountPoint(path string) (*os.File, error) {
	for range 2 {
		f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0)
		if err == nil {
			if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
				f.Close()
				os.Remove(path)
				return nil, fmt.Errorf("lock %s: %w", path, err)
			}
			return f, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("create %s: %w", path, err)
		}
		if isNamespace(path) {
			return nil, fs.ErrExist
		}
		if _, err := removeStale(path); err != nil {
			return nil, err
		}
	}
	return nil, fmt.Errorf("create %s: %w", path, fs.ErrExist)
}

// RemoveStale removes the named entry of Dir if it is a plain file that no
// creation holds locked and that is older than unlockedGrace: the mount
// point of a creation that died before mounting its namespace. It reports
// whether it removed one; a namespace, or nothing at all, is left alone. A
// locked or younger one is ErrCreating: another process may be creating
// that namespace right now.
func RemoveStale(name string) (bool, error) {
	if err := validName(name); err != nil {
		return false, err
	}
	createMu.Lock()
	defer createMu.Unlock()
	return removeStale(Path(name))
}

// ErrCreating says that a namespace's mount point belongs to a creation
// that may still be under way: it is locked, or too young to tell.
var ErrCreating = errors.New("is being created by another process")

// unlockedGrace is how old an unlocked mount point must be to count as
// stale: far longer than any creation takes between creating the file
// and mounting the namespace on it.
const unlockedGrace = 2 * time.Second

func removeStale(path string) (bool, error) {
	if isNamespace(path) {
		return false, nil
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		if errors.Is(err, unix.EWOULDBLOCK) {
			return false, fmt.Errorf("%s %w", path, ErrCreating)
		}
		return false, fmt.Errorf("lock %s: %w", path, err)
	}
	// Tools that take no lock (ip netns add) leave their file unlocked
	// for the instant between creating and mounting it.
	if info, err := f.Stat(); err == nil && time.Since(info.ModTime()) < unlockedGrace {
		return false, fmt.Errorf("%s %w", path, ErrCreating)
	}
	// Mounted over meanwhile: a creation finished between our checks.
	if isNamespace(path) {
		return false, nil
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("remove stale %s: %w", path, err)
	}
	return true, nil
}

// ensureSharedDir makes Dir a shared mount point, as iproute2 does, so that
// namespaces mounted in it later propagate into mount namespaces that were
// copied from this one earlier (for example by `ip netns exec`).
func ensureSharedDir() error {
	if err := os.MkdirAll(Dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", Dir, err)
	}
	err := unix.Mount("", Dir, "none", unix.MS_SHARED|unix.MS_REC, "")
	if errors.Is(err, unix.EINVAL) {
		// Not a mount point yet: make it one by binding it onto itself.
		if err := unix.Mount(Dir, Dir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind-mount %s onto itself: %w", Dir, err)
		}
		err = unix.Mount("", Dir, "none", unix.MS_SHARED|unix.MS_REC, "")
	}
	if err != nil {
		return fmt.Errorf("make %s a shared mount: %w", Dir, err)
	}
	return nil
}

// Delete unmounts and removes the named namespace. A missing one is not an
// error. The kernel frees the namespace once nothing else holds it.
func Delete(name string) error {
	if err := validName(name); err != nil {
		return err
	}
	path := Path(name)
	// Bind mounts can stack; unmount until the file is a plain file again.
	for range 8 {
		err := unix.Unmount(path, unix.MNT_DETACH)
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			break
		}
		if err != nil {
			return fmt.Errorf("unmount namespace %s: %w", name, err)
		}
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove namespace %s: %w", name, err)
	}
	return nil
}

// List returns the names in Dir, as `ip netns list` shows them.
func List() ([]string, error) {
	entries, err := os.ReadDir(Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list namespaces: %w", err)
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names, nil
}

// Exists reports whether name is a mounted namespace.
func Exists(name string) bool {
	return validName(name) == nil && isNamespace(Path(name))
}

func isNamespace(path string) bool {
	var st unix.Statfs_t
	return unix.Statfs(path, &st) == nil && st.Type == unix.NSFS_MAGIC
}

// Open returns a file descriptor of the named namespace; the empty name is
// the namespace the process runs in. The caller closes it.
func Open(name string) (netns.NsHandle, error) {
	path := "/proc/self/ns/net"
	if name != "" {
		if err := validName(name); err != nil {
			return netns.None(), err
		}
		path = Path(name)
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return netns.None(), fmt.Errorf("namespace %s: %w", name, fs.ErrNotExist)
		}
		return netns.None(), fmt.Errorf("open namespace %s: %w", name, err)
	}
	var st unix.Statfs_t
	if err := unix.Fstatfs(fd, &st); err != nil || st.Type != unix.NSFS_MAGIC {
		unix.Close(fd)
		return netns.None(), fmt.Errorf("%s is not a network namespace", path)
	}
	return netns.NsHandle(fd), nil
}

// Inode identifies the named namespace (the empty name: the process's). Two
// names with the same inode are the same namespace; a namespace deleted and
// created again under the same name has a new one.
func Inode(name string) (uint64, error) {
	ns, err := Open(name)
	if err != nil {
		return 0, err
	}
	defer ns.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(ns), &st); err != nil {
		return 0, fmt.Errorf("stat namespace %s: %w", name, err)
	}
	return st.Ino, nil
}

// Do runs fn inside ns, on a thread locked for the purpose, and returns its
// error. fn must not start goroutines that expect to stay in ns: only the
// calling goroutine is there.
func Do(ns netns.NsHandle, fn func() error) error {
	return onThread(func() error { return netns.Set(ns) }, fn)
}

// DoNamed runs fn inside the named namespace ("" is the process's), as Do
// does.
func DoNamed(name string, fn func() error) error {
	ns, err := Open(name)
	if err != nil {
		return err
	}
	defer ns.Close()
	return Do(ns, fn)
}

// NewHandle returns a netlink (rtnetlink) handle bound to the named
// namespace; the empty name means the namespace of the calling thread. The
// handle keeps its namespace wherever it is used from, and must be closed.
func NewHandle(name string) (*netlink.Handle, error) {
	if name == "" {
		h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
		if err != nil {
			return nil, fmt.Errorf("netlink handle: %w", err)
		}
		return h, nil
	}
	ns, err := Open(name)
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	h, err := NewHandleAt(ns)
	if err != nil {
		return nil, fmt.Errorf("netlink handle in %s: %w", name, err)
	}
	return h, nil
}

// NewHandleAt returns a netlink (rtnetlink) handle bound to ns.
//
// netlink.NewHandleAt would do the same, but it unlocks its thread even
// when switching back fails; creating the socket inside Do keeps that rule
// in one place.
func NewHandleAt(ns netns.NsHandle) (*netlink.Handle, error) {
	var h *netlink.Handle
	err := Do(ns, func() error {
		var err error
		h, err = netlink.NewHandle(unix.NETLINK_ROUTE)
		return err
	})
	return h, err
}

// RouteSocket opens an rtnetlink socket in the named namespace ("" is the
// process's): it stays there, wherever it is used from, and must be
// closed. Its requests wait for the kernel's answers as long as
// netlink's own sockets do.
func RouteSocket(name string) (*nl.NetlinkSocket, error) {
	var s *nl.NetlinkSocket
	err := DoNamed(name, func() error {
		var err error
		// Neither namespace given: the socket is made where the thread
		// is, which Do moved.
		s, err = nl.GetNetlinkSocketAt(netns.None(), netns.None(), unix.NETLINK_ROUTE)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("rtnetlink socket in namespace %q: %w", name, err)
	}
	if err := errors.Join(s.SetSendTimeout(&nl.SocketTimeoutTv), s.SetReceiveTimeout(&nl.SocketTimeoutTv)); err != nil {
		s.Close()
		return nil, fmt.Errorf("rtnetlink socket in namespace %q: %w", name, err)
	}
	return s, nil
}

// switches counts the namespace switches of the process (onThread).
var switches atomic.Int64

// Switches reports how many times this process has moved a thread into a
// namespace to work there: a cost (a thread locked, two setns calls, a
// socket opened) that tests of the programming paths count.
func Switches() int64 { return switches.Load() }

// onThread runs enter and then, if it succeeded, fn on a new goroutine
// locked to its thread, and moves the thread back to the namespace it
// started in. If that fails the goroutine exits without unlocking, so the
// runtime kills the thread instead of letting other goroutines run in the
// wrong namespace.
func onThread(enter, fn func() error) error {
	switches.Add(1)
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		home, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open current namespace: %w", err)
			return
		}
		defer home.Close()
		err = enter()
		if err != nil {
			err = fmt.Errorf("enter namespace: %w", err)
		} else {
			err = fn()
		}
		// Switch back even when enter failed: setns may have half
		// happened, and setting the namespace a thread is in is harmless.
		if serr := netns.Set(home); serr != nil {
			errc <- errors.Join(err, fmt.Errorf("return thread to its namespace (thread discarded): %w", serr))
			return // still locked: the thread dies with this goroutine
		}
		runtime.UnlockOSThread()
		errc <- err
	}()
	return <-errc
}
