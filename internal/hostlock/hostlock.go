// Package hostlock keeps to one the nsnet processes that program a host
// namespace at a time. Two agents on one host would each take the other's
// bridges, veths and namespaces for leftovers of their own and delete
// them, whatever their prefixes: the daemon holds its host's lock for as
// long as it runs, and nsnet cleanup takes it before removing anything.
//
// The lock is an flock on a file under Dir named after the host namespace.
// The kernel releases it when its holder dies, so a crashed daemon never
// keeps a new one from starting. The file holds the holder's pid, for the
// message that names it.
//
// It owns the lock files. It must not touch the kernel's network state.
package hostlock

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Dir holds the lock files.
const Dir = "/run/nsnet/locks"

// Lock is a host namespace's lock, held until Release.
type Lock struct {
	f    *os.File
	path string
}

// HeldError says that another process holds a host's lock.
type HeldError struct {
	Host string // the host namespace; "" is the holder's own
	PID  int    // 0 when the holder has not written it yet
	Path string
}

func (e *HeldError) Error() string {
	who := "another nsnet process"
	if e.PID > 0 {
		who = fmt.Sprintf("another nsnet process (pid %d)", e.PID)
	}
	host := "the namespace it runs in as the host"
	if e.Host != "" {
		host = fmt.Sprintf("host namespace %q", e.Host)
	}
	return fmt.Sprintf("%s programs %s: it holds %s", who, host, e.Path)
}

// Path is the lock file of host in dir. Namespace names may be up to 255
// bytes of anything but '/': a digest keeps the file name short and safe.
func Path(dir, host string) string {
	sum := sha256.Sum256([]byte(host))
	return filepath.Join(dir, "host-"+hex.EncodeToString(sum[:8])+".lock")
}

// Acquire takes host's lock in dir without waiting: a *HeldError when
// another process holds it.
func Acquire(dir, host string) (*Lock, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create lock directory: %w", err)
	}
	path := Path(dir, host)
	// Release removes the file: a lock taken on a file that was removed
	// meanwhile guards nothing, so it is taken again on the new one.
	for {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return nil, fmt.Errorf("open lock %s: %w", path, err)
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			f.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				return nil, &HeldError{Host: host, PID: holder(path), Path: path}
			}
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if !samePath(f, path) {
			f.Close()
			continue
		}
		l := &Lock{f: f, path: path}
		if err := l.writePID(); err != nil {
			l.Release()
			return nil, err
		}
		return l, nil
	}
}

func (l *Lock) writePID() error {
	if err := l.f.Truncate(0); err != nil {
		return fmt.Errorf("write lock %s: %w", l.path, err)
	}
	if _, err := l.f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0); err != nil {
		return fmt.Errorf("write lock %s: %w", l.path, err)
	}
	return nil
}

// Release removes the lock file and releases the lock.
func (l *Lock) Release() {
	os.Remove(l.path)
	l.f.Close()
}

// samePath reports whether the open file f is still the one at path.
func samePath(f *os.File, path string) bool {
	held, err1 := f.Stat()
	now, err2 := os.Stat(path)
	return err1 == nil && err2 == nil && os.SameFile(held, now)
}

// holder is the pid written in the lock file at path, or 0.
func holder(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}
