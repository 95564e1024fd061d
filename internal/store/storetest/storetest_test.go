package storetest

import (
	"syscall"
	"testing"
)

// TestEtcdOwnProcessGroup: the etcd a benchmark launches is not in the
// benchmark's process group, so the SIGINT a terminal's Ctrl-C sends to
// that group reaches the benchmark (which then tears down through its
// daemons' API) and not the etcd the daemons need for that teardown; as
// the daemons' own group keeps them. Killed with the group, etcd left the
// teardown's every request waiting out the store's timeout.
func TestEtcdOwnProcessGroup(t *testing.T) {
	e := StartEtcd(t)
	pgid, err := syscall.Getpgid(e.cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if own := syscall.Getpgrp(); pgid == own {
		t.Errorf("etcd (pid %d) is in the test's process group %d: a Ctrl-C at the terminal kills it", e.cmd.Process.Pid, own)
	}
	if pgid != e.cmd.Process.Pid {
		t.Errorf("etcd (pid %d) is in process group %d, want one of its own", e.cmd.Process.Pid, pgid)
	}
}
