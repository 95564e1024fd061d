package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/nsnet/nsnet/internal/lab"
	"github.com/nsnet/nsnet/internal/store/storetest"
)

// TestDaemonOnEtcd runs the daemon with --store etcd://… on a real etcd:
// a topology built with the CLI lives in etcd (not in a state file) and
// carries traffic; with etcd killed the API answers 503 while traffic
// keeps flowing, and everything works again when it is back; a restart
// of the daemon changes nothing in the kernel.
func TestDaemonOnEtcd(t *testing.T) {
	// Started first, so it stops last: the harness's teardown deletes
	// through the API.
	etcd := storetest.StartEtcd(t)
	prefix := "nsnet-e2e-" + lab.RandomHex(4)
	e := Start(t, WithDaemonArgs("--store", etcd.URL(prefix)))

	e.MustNsnet("network", "create", "n1")
	e.MustNsnet("subnet", "create", "s1", "--network", "n1", "--subnet-range", "10.31.0.0/24")
	e.MustNsnet("instance", "create", "a")
	e.MustNsnet("instance", "create", "b")
	e.MustNsnet("port", "create", "pa", "--network", "n1", "--device", "a")
	e.MustNsnet("port", "create", "pb", "--network", "n1", "--device", "b", "--fixed-ip", "subnet=s1,ip-address=10.31.0.50")
	if out, err := e.Nsnet("exec", "a", "--", "ping", "-c", "1", "-W", "2", "10.31.0.50"); err != nil {
		t.Fatalf("a cannot ping b: %v\n%s", err, out)
	}

	// The records are in etcd under the prefix; there is no state file.
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{etcd.Endpoint()}})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx := context.Background()
	resp, err := cli.Get(ctx, "/"+prefix+"/ports/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || resp.Count != 3 { // pa, pb and the DHCP port
		t.Errorf("etcd holds %d ports under /%s/ports/ (%v), want 3", resp.Count, prefix, err)
	}
	if _, err := os.Stat(filepath.Join(e.Dir, "state", "state.db")); !os.IsNotExist(err) {
		t.Errorf("a state file exists with --store etcd: %v", err)
	}

	// etcd down: the API says so with a 503, the data plane stays.
	etcd.Stop()
	out, err := e.Nsnet("network", "list")
	if err == nil || !strings.Contains(out, "cannot reach its store") {
		t.Errorf("network list with etcd down: %v\n%s", err, out)
	}
	// (nsnet exec needs the API to find the instance: go in directly.)
	if out, err := e.In("a", "ping", "-c", "1", "-W", "2", "10.31.0.50"); err != nil {
		t.Errorf("with etcd down a cannot ping b: %v\n%s", err, out)
	}
	if err := etcd.Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "the API works again with etcd back", func() error {
		_, err := e.Nsnet("network", "list")
		return err
	})
	e.MustNsnet("instance", "create", "c")
	e.MustNsnet("port", "create", "pc", "--network", "n1", "--device", "c", "--fixed-ip", "subnet=s1,ip-address=10.31.0.60")
	if out, err := e.Nsnet("exec", "c", "--", "ping", "-c", "1", "-W", "2", "10.31.0.50"); err != nil {
		t.Errorf("a port made after etcd came back: c cannot ping b: %v\n%s", err, out)
	}

	// A restart reads etcd and the kernel and changes nothing.
	before := snapshotKernel(t, e.Prefix)
	e.Restart()
	health := e.waitFirstFullPass()
	if errs, _ := health["errors"].([]any); health["changes"] != 0.0 || len(errs) > 0 {
		t.Errorf("after a restart the agent changed %v objects and left errors %v, want none", health["changes"], health["errors"])
	}
	if diff := before.diff(snapshotKernel(t, e.Prefix)); diff != "" {
		t.Errorf("after a restart the kernel differs:\n%s", diff)
	}
	if out, err := e.Nsnet("exec", "a", "--", "ping", "-c", "1", "-W", "2", "10.31.0.50"); err != nil {
		t.Errorf("after restart a cannot ping b: %v\n%s", err, out)
	}
}
