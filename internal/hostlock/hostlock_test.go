package hostlock

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// TestAcquire: one holder per host at a time (flock conflicts between two
// open files even within one process), the holder named by its pid;
// other hosts are independent; a released lock, and the file a dead
// holder left behind, can be taken again.
func TestAcquire(t *testing.T) {
	dir := t.TempDir()
	first, err := Acquire(dir, "lab-host")
	if err != nil {
		t.Fatal(err)
	}
	_, err = Acquire(dir, "lab-host")
	var held *HeldError
	if !errors.As(err, &held) || held.PID != os.Getpid() || held.Host != "lab-host" || held.Path != Path(dir, "lab-host") {
		t.Fatalf("second Acquire: %v, want a HeldError naming pid %d", err, os.Getpid())
	}
	other, err := Acquire(dir, "")
	if err != nil {
		t.Fatalf("another host: %v", err)
	}
	other.Release()

	first.Release()
	if _, err := os.Stat(Path(dir, "lab-host")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Release left the lock file: %v", err)
	}
	// What a holder killed with SIGKILL leaves: the file with its pid,
	// and no lock.
	if err := os.WriteFile(Path(dir, "lab-host"), []byte("999999\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	again, err := Acquire(dir, "lab-host")
	if err != nil {
		t.Fatalf("Acquire after the holder died: %v", err)
	}
	defer again.Release()
	if b, _ := os.ReadFile(Path(dir, "lab-host")); string(b) != strconv.Itoa(os.Getpid())+"\n" {
		t.Fatalf("lock file holds %q, want this pid", b)
	}
}

// TestPathIsOneSafeName: whatever the namespace name, the lock is one file
// directly in the directory, and different hosts get different files.
func TestPathIsOneSafeName(t *testing.T) {
	seen := map[string]string{}
	for _, host := range []string{"", "root", "lab-host", "..", "a/b", string(make([]byte, 300))} {
		p := Path("/run/nsnet/locks", host)
		if dir, _ := filepath.Split(p); dir != "/run/nsnet/locks/" {
			t.Errorf("Path(%q) = %s, not directly in the directory", host, p)
		}
		if prev, dup := seen[p]; dup {
			t.Errorf("hosts %q and %q share %s", prev, host, p)
		}
		seen[p] = host
	}
}
