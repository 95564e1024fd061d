package netns

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestEnsureEtcFile writes a namespace's file, then longer and shorter
// contents over it: each time the file holds exactly the content, in
// the same file (a bind mount of it sees every change), and content it
// holds already, or that replace refuses to replace, is not written.
func TestEnsureEtcFile(t *testing.T) {
	name := prefix + "etc"
	defer RemoveEtc(name)
	path := filepath.Join(EtcDir, name, "resolv.conf")
	var ino uint64
	for _, step := range []struct {
		content string
		replace bool
		want    string
		changed bool
	}{
		{content: "nameserver 10.0.0.1\n", replace: true, want: "nameserver 10.0.0.1\n", changed: true},
		{content: "search example.org\nnameserver 10.0.0.1\n", replace: true, want: "search example.org\nnameserver 10.0.0.1\n", changed: true},
		{content: "nameserver 10.0.0.2\n", replace: true, want: "nameserver 10.0.0.2\n", changed: true},
		{content: "nameserver 10.0.0.2\n", replace: true, want: "nameserver 10.0.0.2\n", changed: false},
		{content: "nameserver 10.0.0.3\n", replace: false, want: "nameserver 10.0.0.2\n", changed: false},
		{content: "", replace: true, want: "", changed: true},
	} {
		changed, err := EnsureEtcFile(name, "resolv.conf", step.content, func([]byte) bool { return step.replace })
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != step.want || changed != step.changed {
			t.Errorf("after writing %q (replace %v): %q, changed %v; want %q, %v", step.content, step.replace, got, changed, step.want, step.changed)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if i := fi.Sys().(*syscall.Stat_t).Ino; ino != 0 && i != ino {
			t.Errorf("after writing %q: another file (inode %d, was %d)", step.content, i, ino)
		} else {
			ino = i
		}
	}
}
