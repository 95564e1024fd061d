package netns

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// prefix starts every namespace these tests make, so that leftovers can be
// found and nothing else on the machine is touched.
var prefix = fmt.Sprintf("nsnt-%d-", os.Getpid())

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		fmt.Println("netns: skipped, needs root")
		os.Exit(0)
	}
	code := m.Run()
	if left := leftovers(); len(left) > 0 {
		fmt.Println("netns: namespaces left behind:", left)
		for _, n := range left {
			Delete(n)
		}
		code = 1
	}
	os.Exit(code)
}

func leftovers() []string {
	names, _ := List()
	var left []string
	for _, n := range names {
		if strings.HasPrefix(n, prefix) {
			left = append(left, n)
		}
	}
	return left
}

// testName returns a unique namespace name for t and fails t if the
// namespace survives it.
func testName(t *testing.T, suffix string) string {
	t.Helper()
	name := prefix + suffix
	t.Cleanup(func() {
		if Exists(name) {
			t.Errorf("namespace %s survived the test", name)
			Delete(name)
		}
	})
	return name
}

// threadNamespaces returns the distinct network namespaces of the process's
// threads: after any call here there must be exactly one, the original.
func threadNamespaces(t *testing.T) []string {
	t.Helper()
	links, err := filepath.Glob("/proc/self/task/*/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	for _, l := range links {
		target, err := os.Readlink(l)
		if err != nil {
			continue // thread exited meanwhile
		}
		if !slices.Contains(seen, target) {
			seen = append(seen, target)
		}
	}
	return seen
}

func assertThreadsHome(t *testing.T, home []string) {
	t.Helper()
	if got := threadNamespaces(t); !slices.Equal(got, home) {
		t.Fatalf("threads are in namespaces %v, want only %v", got, home)
	}
}

func ipNetnsList(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns list: %v\n%s", err, out)
	}
	return string(out)
}

func TestCreateListDelete(t *testing.T) {
	home := threadNamespaces(t)
	name := testName(t, "a")

	if err := Create(name); err != nil {
		t.Fatal(err)
	}
	assertThreadsHome(t, home)
	if !Exists(name) {
		t.Fatal("Exists = false after Create")
	}
	names, err := List()
	if err != nil || !slices.Contains(names, name) {
		t.Fatalf("List = %v, %v; want it to contain %s", names, err, name)
	}
	if !strings.Contains(ipNetnsList(t), name) {
		t.Fatalf("ip netns list does not show %s", name)
	}
	if out, err := exec.Command("ip", "netns", "exec", name, "ip", "-o", "link").CombinedOutput(); err != nil || strings.Count(string(out), "\n") != 1 {
		t.Fatalf("ip netns exec %s: %v\n%s", name, err, out)
	}

	ino, err := Inode(name)
	if err != nil {
		t.Fatal(err)
	}
	own, err := Inode("")
	if err != nil {
		t.Fatal(err)
	}
	if ino == own {
		t.Fatal("new namespace has the process's inode")
	}

	// Idempotent: the same namespace, not a new one.
	if created, err := CreateWith(name, nil); err != nil || created {
		t.Fatalf("second CreateWith = %v, %v; want false, nil", created, err)
	}
	if again, _ := Inode(name); again != ino {
		t.Fatalf("inode changed from %d to %d on second Create", ino, again)
	}

	if err := Delete(name); err != nil {
		t.Fatal(err)
	}
	if Exists(name) {
		t.Fatal("Exists = true after Delete")
	}
	if strings.Contains(ipNetnsList(t), name) {
		t.Fatalf("ip netns list still shows %s", name)
	}
	if err := Delete(name); err != nil {
		t.Fatalf("second Delete: %v", err)
	}
	assertThreadsHome(t, home)
}

func TestCreateWithSetupRunsInside(t *testing.T) {
	home := threadNamespaces(t)
	name := testName(t, "setup")
	defer Delete(name)

	failing := errors.New("setup failed")
	created, err := CreateWith(name, func() error { return failing })
	if !errors.Is(err, failing) {
		t.Fatalf("CreateWith with failing setup = %v, want %v", err, failing)
	}
	if created || Exists(name) {
		t.Fatal("a failed setup left the namespace behind")
	}
	if _, err := os.Stat(Path(name)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a failed setup left the mount point behind: %v", err)
	}
	assertThreadsHome(t, home)

	created, err = CreateWith(name, func() error {
		h, err := NewHandle("")
		if err != nil {
			return err
		}
		defer h.Close()
		lo, err := h.LinkByName("lo")
		if err != nil {
			return err
		}
		return h.LinkSetAlias(lo, "set-up-inside")
	})
	if err != nil || !created {
		t.Fatalf("CreateWith = %v, %v", created, err)
	}
	assertThreadsHome(t, home)
	out, err := exec.Command("ip", "-n", name, "link", "show", "lo").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "alias set-up-inside") {
		t.Fatalf("lo in %s was not set up inside: %v\n%s", name, err, out)
	}
	// The process's own lo must be untouched.
	own, _ := exec.Command("ip", "link", "show", "lo").CombinedOutput()
	if strings.Contains(string(own), "set-up-inside") {
		t.Fatal("setup ran in the process's namespace")
	}
}

func TestCreateReplacesStaleMountPoint(t *testing.T) {
	name := testName(t, "stale")
	defer Delete(name)
	defer os.Remove(Path(name))
	if err := ensureSharedDir(); err != nil {
		t.Fatal(err)
	}
	// What a Create that died before mounting leaves behind: a plain file.
	// While someone holds it locked, it is a creation under way in another
	// process (flock locks of two open files conflict even in one process).
	if err := os.WriteFile(Path(name), nil, 0); err != nil {
		t.Fatal(err)
	}
	if Exists(name) {
		t.Fatal("a plain file counts as a namespace")
	}
	if _, err := Open(name); err == nil {
		t.Fatal("Open accepted a plain file")
	}
	creator, err := os.Open(Path(name))
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Flock(int(creator.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	if err := Create(name); err == nil || Exists(name) {
		t.Fatalf("Create replaced a mount point whose creation is under way: %v", err)
	}
	if removed, err := RemoveStale(name); removed || err == nil {
		t.Fatalf("RemoveStale removed a locked mount point: %v %v", removed, err)
	}
	creator.Close() // the creator dies
	// Unlocked but fresh: maybe a tool that takes no lock (ip netns add)
	// between creating the file and mounting on it.
	if err := Create(name); !errors.Is(err, ErrCreating) {
		t.Fatalf("Create on a fresh unlocked mount point: %v, want ErrCreating", err)
	}
	old := time.Now().Add(-time.Minute)
	if err := os.Chtimes(Path(name), old, old); err != nil {
		t.Fatal(err)
	}
	if err := Create(name); err != nil {
		t.Fatal(err)
	}
	if !Exists(name) {
		t.Fatal("stale file not replaced by a namespace")
	}
}

func TestDoAndNewHandle(t *testing.T) {
	home := threadNamespaces(t)
	name := testName(t, "do")
	if err := Create(name); err != nil {
		t.Fatal(err)
	}
	defer Delete(name)
	want, err := Inode(name)
	if err != nil {
		t.Fatal(err)
	}
	ns, err := Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()

	var got uint64
	err = Do(ns, func() error {
		st, err := os.Stat("/proc/thread-self/ns/net")
		if err != nil {
			return err
		}
		got = statIno(st)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("Do ran in namespace inode %d, want %d", got, want)
	}
	sentinel := errors.New("sentinel")
	if err := Do(ns, func() error { return sentinel }); !errors.Is(err, sentinel) {
		t.Fatalf("Do lost fn's error: %v", err)
	}
	assertThreadsHome(t, home)

	// A handle made once works from any goroutine, in its namespace.
	h, err := NewHandle(name)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	assertThreadsHome(t, home)
	done := make(chan []netlink.Link)
	go func() {
		links, _ := h.LinkList()
		done <- links
	}()
	links := <-done
	if len(links) != 1 || links[0].Attrs().Name != "lo" {
		t.Fatalf("links in new namespace = %v, want only lo", links)
	}
}

func TestOpenMissing(t *testing.T) {
	_, err := Open(prefix + "missing")
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Open(missing) = %v, want fs.ErrNotExist", err)
	}
	for _, bad := range []string{"", "a/b", "..", "."} {
		if err := Create(bad); err == nil {
			t.Errorf("Create(%q) succeeded", bad)
		}
	}
}

// TestVisibleFromOtherMountNamespace checks that a namespace created after
// another mount namespace was copied from ours (as `ip netns exec` does)
// still appears there: /run/netns is a shared mount.
func TestVisibleFromOtherMountNamespace(t *testing.T) {
	first := testName(t, "mnt1")
	if err := Create(first); err != nil { // makes /run/netns shared
		t.Fatal(err)
	}
	defer Delete(first)

	// A process in a copy of our mount namespace, whose mounts are slaves
	// of ours, like the one `ip netns exec` starts.
	cmd := exec.Command("unshare", "--mount", "--propagation", "slave", "sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	waitMountNamespace(t, cmd.Process.Pid)

	second := testName(t, "mnt2")
	if err := Create(second); err != nil {
		t.Fatal(err)
	}
	defer Delete(second)
	out, err := exec.Command("nsenter", "--mount=/proc/"+fmt.Sprint(cmd.Process.Pid)+"/ns/mnt",
		"stat", "-f", "-c", "%T", Path(second)).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "nsfs" {
		t.Fatalf("namespace created later is not mounted in the other mount namespace: %v: %s", err, out)
	}
}

// waitMountNamespace waits until pid has left our mount namespace.
func waitMountNamespace(t *testing.T, pid int) {
	t.Helper()
	own, _ := os.Readlink("/proc/self/ns/mnt")
	for range 200 {
		theirs, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", pid))
		if err == nil && theirs != own {
			if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); strings.TrimSpace(string(comm)) == "sleep" {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("helper process never entered its own mount namespace")
}

func statIno(fi os.FileInfo) uint64 { return fi.Sys().(*syscall.Stat_t).Ino }

func TestConcurrentCreate(t *testing.T) {
	home := threadNamespaces(t)
	name := testName(t, "race")
	defer Delete(name)
	const n = 16
	created := make(chan bool, n)
	errs := make(chan error, n)
	for range n {
		go func() {
			c, err := CreateWith(name, nil)
			created <- c
			errs <- err
		}()
	}
	wins := 0
	for range n {
		if <-created {
			wins++
		}
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d goroutines created the namespace, want 1", wins)
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	if c := strings.Count(string(mounts), Path(name)+" "); c != 1 {
		t.Fatalf("namespace mounted %d times", c)
	}
	assertThreadsHome(t, home)
}
