package netns

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// EtcDir is where iproute2 keeps a namespace's own configuration files:
// `ip netns exec NAME` (and `nsnet exec`) bind-mounts each file of
// /etc/netns/NAME over the same file of /etc.
const EtcDir = "/etc/netns"

// EnsureEtcFile makes /etc/netns/<name>/<file> hold content and reports
// whether it wrote it. An existing file that differs is replaced only when
// replace says so: something inside the namespace (a DHCP client) may own
// it.
func EnsureEtcFile(name, file, content string, replace func(cur []byte) bool) (changed bool, err error) {
	if err := validName(name); err != nil {
		return false, err
	}
	dir := filepath.Join(EtcDir, name)
	path := filepath.Join(dir, file)
	cur, err := os.ReadFile(path)
	switch {
	case err == nil && (bytes.Equal(cur, []byte(content)) || !replace(cur)):
		return false, nil
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return false, fmt.Errorf("read %s: %w", path, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, fmt.Errorf("create %s: %w", dir, err)
	}
	// Write in place rather than rename: the file may be bind-mounted over
	// /etc/resolv.conf by a process running in the namespace, and a
	// renamed file would not be the one it sees.
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		return false, fmt.Errorf("write %s: %w", path, err)
	}
	return true, nil
}

// RemoveEtc removes /etc/netns/<name> and what is in it. A missing one is
// not an error.
func RemoveEtc(name string) error {
	if err := validName(name); err != nil {
		return err
	}
	if err := os.RemoveAll(filepath.Join(EtcDir, name)); err != nil {
		return fmt.Errorf("remove %s: %w", filepath.Join(EtcDir, name), err)
	}
	return nil
}
