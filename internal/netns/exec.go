package netns

// This file is the one place where nsnet enters a namespace with a process
// that then never comes back: `nsnet exec`. It lives here, with the rest of
// the namespace switching, although its rules are simpler: the thread that
// switches calls execve right after, so there is nothing to switch back to
// and no goroutine can ever run on the switched thread.

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// ExecInNamed replaces the calling process with argv run inside the named
// network namespace (a file in /run/netns, as `ip netns add` makes), the
// way `ip netns exec` does, without running ip:
//
//   - it enters the network namespace;
//   - it moves to a mount namespace of its own, whose mounts do not
//     propagate back to the machine, and mounts a sysfs there so that
//     /sys/class/net shows the namespace's interfaces;
//   - it bind-mounts each file of /etc/netns/<name>/ over the same file of
//     /etc, so that the command sees the namespace's resolv.conf and hosts
//     (and a DHCP client writes the namespace's resolv.conf, never the
//     machine's);
//   - it looks argv[0] up in PATH and executes it with env.
//
// On success it does not return. On failure the calling thread may be left
// in the namespace, so the caller must exit rather than carry on: it is
// meant for a short-lived process such as nsnet's own hidden exec helper.
// A failure to find or to execute argv[0] is reported as an *exec.Error
// (wrapping exec.ErrNotFound when it was not found), any other failure as
// an error about the namespace.
func ExecInNamed(name string, argv, env []string) error {
	if len(argv) == 0 {
		return errors.New("no command to run")
	}
	if name == "" || name == "." || name == ".." || strings.ContainsRune(name, '/') {
		return fmt.Errorf("%q is not a namespace name", name)
	}
	// Namespaces belong to threads: everything below must happen on this
	// one, up to and including execve. It is never unlocked, so if we fail
	// half-way the runtime kills the thread instead of reusing it.
	runtime.LockOSThread()

	path := filepath.Join("/run/netns", name)
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open network namespace %s: %w", path, err)
	}
	err = unix.Setns(fd, unix.CLONE_NEWNET)
	unix.Close(fd)
	if err != nil {
		return fmt.Errorf("enter network namespace %s: %w", name, err)
	}
	if err := privateMounts(name); err != nil {
		return err
	}
	if err := bindEtc(name); err != nil {
		return err
	}
	// Looked up only now, so that PATH resolves in the mounts the command
	// will see.
	bin, err := exec.LookPath(argv[0])
	if err != nil {
		return err // an *exec.Error naming argv[0]
	}
	if err := syscall.Exec(bin, argv, env); err != nil {
		return &exec.Error{Name: bin, Err: err}
	}
	return nil // not reached
}

// privateMounts moves the thread to a new mount namespace that receives the
// machine's mount events but sends none back, and mounts a sysfs of the
// current network namespace on /sys there, as ip netns exec does.
func privateMounts(name string) error {
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		return fmt.Errorf("unshare mount namespace: %w", err)
	}
	if err := unix.Mount("", "/", "none", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("make / a slave mount: %w", err)
	}
	var flags uintptr
	if err := unix.Unmount("/sys", unix.MNT_DETACH); err != nil {
		// Nothing to unmount, or a sysfs we may not unmount: mount over it,
		// read-only if it was, since a read-only sysfs cannot be shadowed
		// by a writable one.
		var st unix.Statfs_t
		if unix.Statfs("/sys", &st) == nil && st.Flags&unix.ST_RDONLY != 0 {
			flags = unix.MS_RDONLY
		}
	}
	if err := unix.Mount(name, "/sys", "sysfs", flags, ""); err != nil {
		return fmt.Errorf("mount sysfs of %s on /sys: %w", name, err)
	}
	return nil
}

// bindEtc bind-mounts /etc/netns/<name>/* over /etc/*. A file with no
// counterpart in /etc is skipped with a warning, as ip netns exec does:
// there is nothing of the machine's to shadow. Any other failure is fatal,
// where ip netns exec only warns: a command that expected its namespace's
// resolv.conf would otherwise read, or worse rewrite, the machine's.
func bindEtc(name string) error {
	dir := filepath.Join("/etc/netns", name)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", dir, err)
	}
	for _, e := range entries {
		src, dst := filepath.Join(dir, e.Name()), filepath.Join("/etc", e.Name())
		if _, err := os.Lstat(dst); errors.Is(err, os.ErrNotExist) {
			fmt.Fprintf(os.Stderr, "nsnet: warning: %s not mounted: %s does not exist\n", src, dst)
			continue
		}
		if err := unix.Mount(src, dst, "none", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind %s over %s: %w", src, dst, err)
		}
	}
	return nil
}
