package netns

import (
	"os"
	"strings"
	"testing"
)

// TestSysctlPerNamespace writes a sysctl inside a namespace and checks that
// the namespace has it, the process's own namespace does not, and no thread
// stays switched.
func TestSysctlPerNamespace(t *testing.T) {
	home := threadNamespaces(t)
	name := testName(t, "sysctl")
	if err := Create(name); err != nil {
		t.Fatal(err)
	}
	defer Delete(name)
	ns, err := Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	own, err := os.ReadFile("/proc/sys/net/ipv4/conf/all/send_redirects")
	if err != nil {
		t.Fatal(err)
	}
	want := "0"
	if strings.TrimSpace(string(own)) == "0" {
		want = "1"
	}
	key := "net.ipv4.conf.all.send_redirects"
	for i, wantChanged := range []bool{true, false} {
		changed, err := EnsureSysctl(ns, key, want)
		if err != nil || changed != wantChanged {
			t.Fatalf("pass %d: changed %v, %v; want changed %v", i, changed, err, wantChanged)
		}
	}
	if got, err := ReadSysctl(ns, "net/ipv4/conf/all/send_redirects"); err != nil || got != want {
		t.Fatalf("read back %q, %v; want %q", got, err, want)
	}
	if now, _ := os.ReadFile("/proc/sys/net/ipv4/conf/all/send_redirects"); string(now) != string(own) {
		t.Fatalf("the process's namespace changed: %q, was %q", now, own)
	}
	assertThreadsHome(t, home)

	for _, bad := range []string{"kernel.hostname", "net.ipv4/../../kernel/hostname", ""} {
		if _, err := EnsureSysctl(ns, bad, "x"); err == nil {
			t.Errorf("EnsureSysctl(%q) accepted", bad)
		}
	}
}
