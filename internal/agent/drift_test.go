package agent

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"

	"github.com/google/nftables"

	"github.com/nsnet/nsnet/internal/firewall"
	"github.com/nsnet/nsnet/internal/nat"
	"github.com/nsnet/nsnet/internal/netns"
	"github.com/nsnet/nsnet/internal/nfsock"
)

// TestOwnDeletionsAreNotDrift: a table the agent deletes itself (a
// firewall rebuilt, the last secured port gone) is not drift, even when
// the socket that sent the deletion is closed by the time the watch reads
// it; the same deletion by someone else is. The watch hears both, the
// agent's first.
func TestOwnDeletionsAreNotDrift(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces)")
	}
	ns := fmt.Sprintf("%s%d-drift", allPrefix, testSeq.Add(1))
	if err := netns.Create(ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { netns.Delete(ns) })
	nft := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", append([]string{"netns", "exec", ns, "nft"}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("nft %v: %v\n%s", args, err, out)
		}
	}
	nft("add", "table", "inet", nat.TableName)
	nft("add", "table", "bridge", firewall.TableName)

	a := &Agent{log: slog.New(slog.DiscardHandler), drift: make(chan string, 1)}
	w, err := a.watchDrift(ns, hostTables)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var own *nfsock.Conn
	err = netns.DoNamed(ns, func() error {
		var err error
		own, err = nfsock.Open(1<<20, 1<<20)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	// Closed at once, as the agent does with the host's firewall when the
	// last secured port goes: the watch reads the deletion later (one
	// thread for goroutines makes sure of it: the watch's goroutine waits
	// for this one to block).
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	own.DelTable(&nftables.Table{Name: nat.TableName, Family: nftables.TableFamilyINet})
	if err := errors.Join(own.Flush(), own.Close()); err != nil {
		t.Fatal(err)
	}
	nft("delete", "table", "bridge", firewall.TableName)
	select {
	case what := <-a.drift:
		if want := "nft table in table " + firewall.TableName; what != want {
			t.Errorf("first drift reported: %q, want %q (the agent's own deletion is not drift)", what, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the deletion by nft was not reported")
	}
}
