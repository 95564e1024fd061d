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
	if err := writeOver(path, []byte(content)); err != nil {
		return false, fmt.Errorf("write %s: %w", path, err)
	}
	return true, nil
}

// writeOver writes content over the file at path, creating it if need be,
// and cuts it to content's length after, rather than truncating it first
// (os.WriteFile): ext4 writes back a file truncated to nothing and
// written again as it is closed (auto_da_alloc, against losing it in a
// crash), which costs tens of times the write. What it guards against is
// no concern here: nsnet writes the file again after a crash.
func writeOver(path string, content []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	_, werr := f.Write(content)
	if werr == nil {
		werr = f.Truncate(int64(len(content)))
	}
	return errors.Join(werr, f.Close())
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
