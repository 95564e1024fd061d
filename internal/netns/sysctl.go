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
	path, err := sysctlPath(key)
	if err != nil {
		return false, err
	}
	err = Do(ns, func() error {
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if strings.TrimSpace(string(b)) == value {
			return nil
		}
		changed = true
		// O_WRONLY without O_CREATE or O_TRUNC: a sysctl file is written,
		// never created.
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		_, werr := f.WriteString(value + "\n")
		return errors.Join(werr, f.Close())
	})
	if err != nil {
		return changed, fmt.Errorf("set sysctl %s=%s: %w", key, value, err)
	}
	return changed, nil
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
