package netns

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/vishvananda/netns"
)

// Sysctls under /proc/sys/net are per network namespace, and which
// namespace a file belongs to is decided when it is opened, by the thread
// that opens it. So they are read and written here, inside Do, and never
// through a path opened on an arbitrary thread.

// ReadSysctl returns the value of the sysctl key ("net.ipv4.ip_forward") in
// ns, without the trailing newline.
func ReadSysctl(ns netns.NsHandle, key string) (string, error) {
	path, err := sysctlPath(key)
	if err != nil {
		return "", err
	}
	var value string
	err = Do(ns, func() error {
		b, err := os.ReadFile(path)
		value = strings.TrimSpace(string(b))
		return err
	})
	if err != nil {
		return "", fmt.Errorf("read sysctl %s: %w", key, err)
	}
	return value, nil
}

// EnsureSysctl sets the sysctl key in ns to value unless it already has it,
// and reports whether it wrote.
func EnsureSysctl(ns netns.NsHandle, key, value string) (changed bool, err error) {
	return EnsureSysctls(ns, Sysctl{key, value})
}

// Sysctl is a network sysctl key and a value for it.
type Sysctl struct{ Key, Value string }

// EnsureSysctls sets each sysctl in ns to its value unless it already has
// it, in order, and reports whether it wrote any. It enters ns once for
// all of them: switching namespaces costs far more than the files.
func EnsureSysctls(ns netns.NsHandle, list ...Sysctl) (changed bool, err error) {
	paths, err := sysctlPaths(list)
	if err != nil {
		return false, err
	}
	var failed Sysctl
	err = Do(ns, func() error {
		for i, s := range list {
			c, err := ensureFile(paths[i], s.Value)
			changed = changed || c
			if err != nil {
				failed = s
				return err
			}
		}
		return nil
	})
	if err != nil {
		return changed, fmt.Errorf("set sysctl %s=%s: %w", failed.Key, failed.Value, err)
	}
	return changed, nil
}

func sysctlPaths(list []Sysctl) ([]string, error) {
	paths := make([]string, len(list))
	for i, s := range list {
		var err error
		if paths[i], err = sysctlPath(s.Key); err != nil {
			return nil, err
		}
	}
	return paths, nil
}

// ensureFile writes value to the sysctl file at path unless it holds it.
func ensureFile(path, value string) (changed bool, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return false, err
	}
	if strings.TrimSpace(string(b)) == value {
		return false, nil
	}
	// O_WRONLY without O_CREATE or O_TRUNC: a sysctl file is written,
	// never created.
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return true, err
	}
	_, werr := f.WriteString(value + "\n")
	return true, errors.Join(werr, f.Close())
}

// sysctlPath maps a network sysctl key to its file. The key is dotted
// ("net.ipv4.ip_forward") or, for interface names with dots in them,
// slashed ("net/ipv4/conf/eth0.102/rp_filter"), as sysctl(8) accepts. Only
// keys under net are namespaced, so nothing else is accepted.
func sysctlPath(key string) (string, error) {
	rel := key
	if !strings.Contains(key, "/") {
		rel = strings.ReplaceAll(key, ".", "/")
	}
	if !strings.HasPrefix(rel, "net/") || strings.Contains(rel, "..") || strings.ContainsRune(rel, 0) {
		return "", fmt.Errorf("%q is not a network sysctl", key)
	}
	return filepath.Join("/proc/sys", rel), nil
}
