package agent

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nsnet/nsnet/internal/hoststatus"
	"github.com/nsnet/nsnet/internal/lab"
	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/netns"
	"github.com/nsnet/nsnet/internal/store"
)

// allPrefix starts every namespace of this test binary.
var allPrefix = fmt.Sprintf("nsat%d-", os.Getpid())

var testSeq atomic.Int32

func TestMain(m *testing.M) {
	// Every pass of every test checks that the statuses it updated in
	// place are those computed from scratch.
	var mu sync.Mutex
	var wrong []string
	verifyStatuses = func(got, want map[key]status) {
		if maps.Equal(got, want) {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		for k, st := range got {
			if w, ok := want[k]; !ok || w != st {
				wrong = append(wrong, fmt.Sprintf("verifyStatuses: %s updated in place to %v, from scratch %v (%v)", k, st, w, ok))
			}
		}
		for k, w := range want {
			if _, ok := got[k]; !ok {
				wrong = append(wrong, fmt.Sprintf("verifyStatuses: %s missing in place, from scratch %v", k, w))
			}
		}
	}
	// And that the objects it counted managed, and the status counts it
	// kept in place (StatusCounts), are those counted from scratch.
	verifyManaged = countsAgree[string](&mu, &wrong, "verifyManaged")
	verifyCounts = countsAgree[statusCountKey](&mu, &wrong, "verifyCounts")
	code := lab.RunTests(m, "agent", allPrefix)
	for _, w := range wrong {
		fmt.Println(w)
		code = 1
	}
	os.Exit(code)
}

// countsAgree returns a check of counts kept in place against counts from
// scratch that notes, under mu, what differs in wrong.
func countsAgree[K comparable](mu *sync.Mutex, wrong *[]string, name string) func(got, want map[K]int) {
	return func(got, want map[K]int) {
		if maps.Equal(got, want) {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		*wrong = append(*wrong, fmt.Sprintf("%s: kept %v, from scratch %v", name, got, want))
	}
}

// env is one test's host: its own host namespace, namespace prefix, store
// and agent.
type env struct {
	t         testing.TB
	prefix    string
	hostNetns string
	st        *store.Bolt
	resync    time.Duration
	// host and vtep are the agent's Config.Host and VTEPAddress (two
	// hosts' envs share a store: see newHostPair).
	host string
	vtep netip.Addr
	// publisher, when set, is the agent's (Config.Publisher).
	publisher *hoststatus.Publisher
	// onPass, when set, is the agent's Config.OnPass.
	onPass func(full bool, d time.Duration, clean bool, err error)

	agent  *Agent
	cancel context.CancelFunc
	done   chan error
}

// newEnv starts an agent for t; its cleanup removes everything through the
// agent and fails t if any namespace or link survives.
func newEnv(t testing.TB, resync time.Duration) *env {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces)")
	}
	e := &env{t: t, prefix: fmt.Sprintf("%s%d-", allPrefix, testSeq.Add(1)), resync: resync}
	e.hostNetns = e.prefix + "host"
	st, err := store.OpenBolt(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	e.st = st
	t.Cleanup(e.cleanup)
	e.start()
	return e
}

// logger discards the agent's logs unless NSNET_TEST_LOG is set.
func (e *env) logger() *slog.Logger {
	if os.Getenv("NSNET_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func (e *env) start() {
	e.t.Helper()
	a, err := New(Config{Host: e.host, VTEPAddress: e.vtep, Store: e.st, HostNetns: e.hostNetns, NetnsPrefix: e.prefix, ResyncInterval: e.resync, Logger: e.logger(), Publisher: e.publisher, OnPass: e.onPass})
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.agent, e.cancel, e.done = a, cancel, make(chan error, 1)
	go func() { e.done <- a.Run(ctx) }()
}

func (e *env) stop() {
	e.t.Helper()
	if e.cancel == nil {
		return
	}
	e.cancel()
	if err := <-e.done; err != nil {
		e.t.Errorf("Run: %v", err)
	}
	e.cancel = nil
}

func (e *env) cleanup() {
	t := e.t
	e.stop()
	// Everything goes through the agent, as in production: empty the
	// store, let a fresh agent converge, then look for survivors.
	if _, err := e.st.Update(context.Background(), func(tx store.Txn) error {
		for _, kind := range store.Kinds {
			var ids []string
			tx.List(kind, func(id string, _ []byte) error { ids = append(ids, id); return nil })
			for _, id := range ids {
				if err := tx.Delete(kind, id); err != nil {
					return err
				}
			}
		}
		return nil
	}); err != nil {
		t.Errorf("cleanup: %v", err)
	}
	e.start()
	e.converge(e.revision())
	e.stop()
	e.st.Close()
	e.checkLeftovers()
}

// checkLeftovers fails the test for what survived the agent's cleanup in
// its host namespace and among its namespaces, and removes it.
func (e *env) checkLeftovers() {
	t := e.t
	if links := linksIn(e.hostNetns); len(links) > 0 {
		t.Errorf("links left in host namespace: %v", links)
	}
	if tables := nftTables(e.hostNetns); tables != "" {
		t.Errorf("nft tables left in host namespace:\n%s", tables)
	}
	for _, n := range lab.Namespaces(e.prefix) {
		if n != e.hostNetns {
			t.Errorf("namespace %s left behind", n)
			netns.Delete(n)
		}
	}
	for _, n := range lab.EtcEntries(e.prefix) {
		t.Errorf("%s left behind", filepath.Join(netns.EtcDir, n))
		netns.RemoveEtc(n)
	}
	netns.Delete(e.hostNetns)
}

func (e *env) revision() int64 {
	var rev int64
	e.st.View(context.Background(), func(r store.Reader) error { rev = r.Revision(); return nil })
	return rev
}

// put writes records (model values) in one transaction and returns its
// revision.
func (e *env) put(records ...any) int64 {
	e.t.Helper()
	rev, err := e.st.Update(context.Background(), func(tx store.Txn) error {
		for _, r := range records {
			kind, id := kindAndID(r)
			if err := tx.Put(kind, id, r); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return rev
}

func (e *env) del(records ...any) int64 {
	e.t.Helper()
	rev, err := e.st.Update(context.Background(), func(tx store.Txn) error {
		for _, r := range records {
			kind, id := kindAndID(r)
			if err := tx.Delete(kind, id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return rev
}

// writeRecords puts put and deletes del, records of the model, in one
// store transaction, and returns its revision.
func writeRecords(tb testing.TB, st store.Store, put, del []any) int64 {
	tb.Helper()
	rev, err := st.Update(context.Background(), func(tx store.Txn) error {
		for _, rec := range put {
			kind, id := kindAndID(rec)
			if err := tx.Put(kind, id, rec); err != nil {
				return err
			}
		}
		for _, rec := range del {
			kind, id := kindAndID(rec)
			if err := tx.Delete(kind, id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return rev
}

func kindAndID(r any) (store.Kind, string) {
	switch v := r.(type) {
	case model.Network:
		return store.Networks, v.ID
	case model.Subnet:
		return store.Subnets, v.ID
	case model.Port:
		return store.Ports, v.ID
	case model.Instance:
		return store.Instances, v.ID
	case model.Router:
		return store.Routers, v.ID
	case model.FloatingIP:
		return store.FloatingIPs, v.ID
	case model.PortForwarding:
		return store.PortForwardings, v.ID
	case model.PublishedPort:
		return store.PublishedPorts, v.ID
	case model.SecurityGroup:
		return store.SecurityGroups, v.ID
	case model.SecurityGroupRule:
		return store.SecurityGroupRules, v.ID
	case model.SubnetPool:
		return store.SubnetPools, v.ID
	case model.MeteringLabel:
		return store.MeteringLabels, v.ID
	case model.MeteringLabelRule:
		return store.MeteringLabelRules, v.ID
	case model.QosPolicy:
		return store.QosPolicies, v.ID
	case model.Trunk:
		return store.Trunks, v.ID
	case model.Host:
		return store.Hosts, v.Name
	}
	panic(fmt.Sprintf("unknown record %T", r))
}

// converge waits until the agent has programmed revision rev.
func (e *env) converge(rev int64) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := e.agent.WaitConverged(ctx, rev); err != nil {
		e.t.Fatalf("waiting for revision %d: %v (health %+v)", rev, err, e.agent.Health())
	}
}

// waitFullPasses waits until n more full passes have finished.
func (e *env) waitFullPasses(n int64) {
	e.t.Helper()
	target := e.agent.Health().FullPasses + n
	eventually(e.t, 20*time.Second, "full passes", func() error {
		if got := e.agent.Health().FullPasses; got < target {
			return fmt.Errorf("%d full passes, want %d", got, target)
		}
		return nil
	})
}

func (e *env) ns(instance string) string { return InstanceNetns(e.prefix, instance) }

func (e *env) ip(args ...string) string {
	e.t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		e.t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (e *env) wantStatus(kind store.Kind, id, want string) {
	e.t.Helper()
	if got, reason := e.agent.Status(kind, id); got != want {
		e.t.Fatalf("status of %s/%s = %s (%s), want %s", kind, id, got, reason, want)
	}
}

// ping reports whether ns reaches addr, asking up to three times as a
// client on a lossy link would: on these 2-core machines the softnet
// backlog drops packets whenever the CPUs are busy (column 2 of
// /proc/net/softnet_stat grows by hundreds of thousands over a suite), so
// one lost echo says nothing about the path. Every caller expects the
// path open; a closed one still fails, after three tries.
func ping(ns, addr string) error { return pingFamily(ns, "-4", addr) }

// ping6 is ping over IPv6.
func ping6(ns, addr string) error { return pingFamily(ns, "-6", addr) }

func pingFamily(ns, family, addr string) error {
	var err error
	var out []byte
	for range 3 {
		out, err = exec.Command("ip", "netns", "exec", ns, "ping", family, "-c1", "-W1", addr).CombinedOutput()
		if err == nil {
			return nil
		}
	}
	return fmt.Errorf("ping %s from %s, three times: %v\n%s", addr, ns, err, out)
}

func eventually(t testing.TB, d time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// linksIn lists the links of a namespace other than lo, as ip shows them.
func linksIn(ns string) []string {
	out, err := exec.Command("ip", "-n", ns, "-o", "link", "show").Output()
	if err != nil {
		return nil
	}
	var links []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
		if name != "lo" {
			links = append(links, name)
		}
	}
	return links
}

// nftTables lists the nft tables of a namespace, as nft shows them.
func nftTables(ns string) string {
	out, _ := exec.Command("ip", "netns", "exec", ns, "nft", "list", "tables").Output()
	return strings.TrimSpace(string(out))
}

// ifindex returns the index of link in namespace ns, as ip shows it.
func (e *env) ifindex(ns, link string) string {
	e.t.Helper()
	// stdout only: ip may warn on stderr about peer namespace ids.
	out, err := exec.Command("ip", "-n", ns, "-o", "link", "show", link).Output()
	if err != nil {
		e.t.Fatalf("ip -n %s link show %s: %v", ns, link, err)
	}
	idx, _, _ := strings.Cut(string(out), ":")
	return idx + "/"
}

// Records of the usual topology: one network with 10.9.0.0/24, instances
// red and green with a port each.
const (
	netID    = "0e1f6a52-9c1d-4c55-8a11-000000000001"
	subnetID = "5b2a0c11-0000-4000-8000-000000000002"
)

func testNetwork() model.Network {
	return model.Network{ID: netID, Name: "net1", AdminStateUp: true, MTU: 1500, Subnets: []string{subnetID}}
}

func testSubnet() model.Subnet {
	return model.Subnet{ID: subnetID, NetworkID: netID, IPVersion: 4, CIDR: "10.9.0.0/24", GatewayIP: ptr("10.9.0.1")}
}

func testInstance(name string) model.Instance {
	return model.Instance{ID: "inst-" + name, Name: name}
}

func testPort(instance, ifname, ip, mac string) model.Port {
	return model.Port{
		ID:            "port-" + instance + "-" + ifname,
		NetworkID:     netID,
		AdminStateUp:  true,
		MACAddress:    mac,
		FixedIPs:      []model.FixedIP{{SubnetID: subnetID, IPAddress: ip}},
		DeviceID:      "inst-" + instance,
		DeviceOwner:   model.DeviceOwnerCompute,
		InterfaceName: ifname,
	}
}
