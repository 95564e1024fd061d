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

// TestEnsureSysctls sets several sysctls of a namespace at once: each
// written once, none the second time, and a failing key named with what
// came before it kept.
func TestEnsureSysctls(t *testing.T) {
	home := threadNamespaces(t)
	name := testName(t, "sysctls")
	if err := Create(name); err != nil {
		t.Fatal(err)
	}
	defer Delete(name)
	ns, err := Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	list := []Sysctl{{"net.ipv6.conf.all.forwarding", "1"}, {"net/ipv6/conf/lo/accept_ra", "0"}}
	for i, wantChanged := range []bool{true, false} {
		changed, err := EnsureSysctls(ns, list...)
		if err != nil || changed != wantChanged {
			t.Fatalf("pass %d: changed %v, %v; want changed %v", i, changed, err, wantChanged)
		}
	}
	for _, s := range list {
		if got, err := ReadSysctl(ns, s.Key); err != nil || got != s.Value {
			t.Errorf("%s = %q, %v; want %q", s.Key, got, err, s.Value)
		}
	}
	_, err = EnsureSysctls(ns, Sysctl{"net.ipv4.ip_forward", "1"}, Sysctl{"net/ipv6/conf/nosuchlink/accept_ra", "0"})
	if err == nil || !strings.Contains(err.Error(), "nosuchlink") {
		t.Errorf("a missing interface's sysctl: %v", err)
	}
	if got, _ := ReadSysctl(ns, "net.ipv4.ip_forward"); got != "1" {
		t.Errorf("the sysctl before the failing one: ip_forward = %q", got)
	}
	assertThreadsHome(t, home)
}
