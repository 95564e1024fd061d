// Command agentsim simulates many hosts against one etcd, to see what grows
// with them: -hosts light hosts (a namespace each with a VTEP address on
// one underlay, lab.Cluster with no daemon) whose agents run in this
// process, each with its own etcd client as separate processes would have,
// beside one real daemon that serves the API (host "api"). This process
// writes the light hosts' registry records and beats for them every second
// in the store's presence (store.Presence), as their daemons would.
//
// One VXLAN network spans every light host (an instance with a port on
// each). Then, per sample, a port is created on one host for a new
// instance there, and the benchmark watches every other host's VXLAN
// device until its L2 population has the port's MAC: the time from the API
// call to the last host is "reaches all hosts of its network" (p50, p99),
// and etcd's /metrics give the requests and watch messages it cost, idle
// traffic (heartbeats) taken away.
//
// Run as root from the repository root:
//
//	sudo go run ./bench/agentsim [-hosts 50] [-samples 30] [-bin path/to/nsnet] [-cpuprofile file]
//
// Everything lives in namespaces under one prefix and is removed at the
// end, also when the run fails or is interrupted.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime/pprof"
	"slices"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/nsnet/nsnet/internal/agent"
	"github.com/nsnet/nsnet/internal/client"
	"github.com/nsnet/nsnet/internal/lab"
	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/netns"
	"github.com/nsnet/nsnet/internal/store"
	"github.com/nsnet/nsnet/internal/store/storetest"
)

func main() { lab.Main(run) }

type port struct {
	ID        string `json:"id"`
	MAC       string `json:"mac_address"`
	Owner     string `json:"device_owner"`
	NetworkID string `json:"network_id"`
}

func run(ctx context.Context) (err error) {
	nHosts := flag.Int("hosts", 50, "light hosts")
	samples := flag.Int("samples", 30, "ports timed")
	binFlag := flag.String("bin", "", "nsnet binary of the API daemon (default: build ./cmd/nsnet)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of this process (the light agents) over the timed port creates to this file")
	flag.Parse()
	if os.Geteuid() != 0 {
		return errors.New("agentsim needs root: its hosts are network namespaces")
	}
	if *nHosts < 2 || *nHosts > 200 {
		return fmt.Errorf("-hosts %d: want 2 to 200", *nHosts)
	}
	dir, err := os.MkdirTemp("", "nsnet-bench-agentsim-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := *binFlag
	if bin == "" {
		if bin, err = lab.BuildNsnet(dir); err != nil {
			return err
		}
	}
	if err := lab.CheckMultiHost(bin); err != nil {
		return err
	}
	etcd, err := storetest.Launch("--max-txn-ops", "4096")
	if err != nil {
		return err
	}
	defer etcd.Remove()
	storeURL := etcd.URL("nsnet-sim")
	storeCfg, err := store.ParseEtcdURL(storeURL)
	if err != nil {
		return err
	}

	hosts := []lab.HostConfig{{Name: "api", Roles: []string{model.RoleCompute, model.RoleNetwork}}}
	for i := range *nHosts {
		hosts = append(hosts, lab.HostConfig{Name: fmt.Sprintf("sim-%02d", i), Roles: []string{model.RoleCompute}, NoDaemon: true})
	}
	fmt.Printf("building %d light hosts and the API daemon\n", *nHosts)
	cluster, err := lab.NewCluster(ctx, lab.ClusterConfig{Bin: bin, Dir: dir, Store: storeURL, Hosts: hosts,
		DaemonArgs: []string{"--heartbeat-interval", "1s", "--agent-down-time", "5s", "--log-level", "warn"}})
	if err != nil {
		return err
	}
	api, err := client.New(client.Config{Endpoint: cluster.Host("api").Endpoint, Auth: client.StaticToken(cluster.Token)})
	if err != nil {
		cluster.Close()
		return err
	}
	sims := cluster.Hosts[1:]

	// The light hosts' registry records, written once as their daemons
	// would when they start, and their heartbeats: a beat each in the
	// store's presence every second (a lease each, as each daemon has
	// its own), which writes no record.
	reg, err := store.OpenEtcd(ctx, storeCfg)
	if err != nil {
		cluster.Close()
		return err
	}
	defer reg.Close()
	started := time.Now().UTC().Format(time.RFC3339)
	if _, err := reg.Update(ctx, func(tx store.Txn) error {
		for _, h := range sims {
			if err := tx.Put(store.Hosts, h.Name, model.Host{Name: h.Name, Roles: h.Roles, VTEPAddress: h.VTEP,
				AvailabilityZone: model.DefaultAvailabilityZone, StartedAt: started, Heartbeat: started}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		cluster.Close()
		return fmt.Errorf("register the light hosts: %w", err)
	}
	beat := func(ctx context.Context) error {
		var errs []error
		for _, h := range sims {
			errs = append(errs, reg.Beat(ctx, h.Name, time.Now(), 5*time.Second))
		}
		return errors.Join(errs...)
	}
	if err := beat(ctx); err != nil {
		cluster.Close()
		return fmt.Errorf("the light hosts' first beat: %w", err)
	}

	// The light agents.
	agentsCtx, stopAgents := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var agentErrs []error
	var mu sync.Mutex
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, h := range sims {
		st, err := store.OpenEtcd(ctx, storeCfg)
		if err != nil {
			stopAgents()
			cluster.Close()
			return err
		}
		a, err := agent.New(agent.Config{Host: h.Name, VTEPAddress: netip.MustParseAddr(h.VTEP), Roles: h.Roles, Store: st,
			HostNetns: h.Netns, NetnsPrefix: h.NetnsPrefix, Logger: quiet})
		if err != nil {
			st.Close()
			stopAgents()
			cluster.Close()
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer st.Close()
			if err := a.Run(agentsCtx); err != nil && !errors.Is(err, context.Canceled) {
				mu.Lock()
				agentErrs = append(agentErrs, fmt.Errorf("agent %s: %w", h.Name, err))
				mu.Unlock()
			}
		}()
	}
	go func() {
		for {
			select {
			case <-agentsCtx.Done():
				return
			case <-time.After(time.Second):
				beat(agentsCtx)
			}
		}
	}()
	defer func() {
		var prefixes []string
		for _, h := range cluster.Hosts {
			prefixes = append(prefixes, h.NetnsPrefix)
		}
		terr := teardown(api, prefixes)
		stopAgents()
		wg.Wait()
		err = errors.Join(err, terr, errors.Join(agentErrs...), cluster.Close())
	}()

	// One network across every light host.
	network, _, err := client.Create[model.Network](ctx, api, client.Networks, map[string]any{"name": "sim"})
	if err != nil {
		return err
	}
	if _, _, err := client.Create[model.Subnet](ctx, api, client.Subnets, map[string]any{
		"network_id": network.ID, "ip_version": 4, "cidr": "10.200.0.0/16", "enable_dhcp": false}); err != nil {
		return err
	}
	start := time.Now()
	for _, h := range sims {
		if _, err := plug(ctx, api, h.Name, "fill-"+h.Name, network.ID); err != nil {
			return err
		}
	}
	watchers := make([]*fdbWatch, len(sims))
	for i, h := range sims {
		if watchers[i], err = newFDBWatch(h.Netns); err != nil {
			return err
		}
		defer watchers[i].Close()
	}
	for i, w := range watchers {
		for {
			n, err := w.count()
			if err != nil {
				return err
			}
			if n >= len(sims)-1 {
				break
			}
			if time.Since(start) > 10*time.Minute {
				return fmt.Errorf("host %s has %d of %d remote ports after 10 minutes", sims[i].Name, n, len(sims)-1)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	fmt.Printf("%d hosts joined on one VXLAN network, each with the other %d ports' MACs, in %s\n",
		len(sims), len(sims)-1, time.Since(start).Round(time.Second))

	time.Sleep(2 * time.Second)
	idle0, err := lab.EtcdCounts(etcd.Endpoint())
	if err != nil {
		return err
	}
	idleStart := time.Now()
	time.Sleep(10 * time.Second)
	idle1, err := lab.EtcdCounts(etcd.Endpoint())
	if err != nil {
		return err
	}
	idleFor := time.Since(idleStart)

	var toAll, toEach, answered []time.Duration
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	busyStart := time.Now()
	for i := range *samples {
		h := sims[i%len(sims)]
		inst, _, err := client.Create[model.Instance](ctx, api, client.Instances, map[string]any{"name": fmt.Sprintf("t%d", i), "host": h.Name})
		if err != nil {
			return err
		}
		t0 := time.Now()
		p, _, err := client.Create[port](ctx, api, client.Ports, map[string]any{"network_id": network.ID, "device_id": inst.ID})
		if err != nil {
			return err
		}
		answered = append(answered, time.Since(t0))
		mac, err := net.ParseMAC(p.MAC)
		if err != nil {
			return err
		}
		var last time.Duration
		for j, w := range watchers {
			if sims[j] == h {
				continue
			}
			d, err := w.waitMAC(t0, mac, 2*time.Minute)
			if err != nil {
				return fmt.Errorf("host %s: %w", sims[j].Name, err)
			}
			toEach = append(toEach, d)
			last = max(last, d)
		}
		toAll = append(toAll, last)
	}
	if *cpuProfile != "" {
		pprof.StopCPUProfile()
	}
	busy1, err := lab.EtcdCounts(etcd.Endpoint())
	if err != nil {
		return err
	}
	busyFor := time.Since(busyStart)

	fmt.Printf("\n%d light hosts on one etcd, one network across all; %d ports created, each on one host\n\n", len(sims), *samples)
	fmt.Printf("API call → API answer (port committed)   p50 %8s  p99 %8s\n", ms(percentile(answered, 50)), ms(percentile(answered, 99)))
	fmt.Printf("API call → MAC in a remote host's FDB    p50 %8s  p99 %8s\n", ms(percentile(toEach, 50)), ms(percentile(toEach, 99)))
	fmt.Printf("API call → MAC in all %3d remote hosts   p50 %8s  p99 %8s\n", len(sims)-1, ms(percentile(toAll, 50)), ms(percentile(toAll, 99)))
	fmt.Printf("\netcd per port create (instance create included; idle rate of %s taken away over %s)\n\n", idleFor.Round(time.Second), busyFor.Round(time.Second))
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range busy1 {
			if !yield(k) {
				return
			}
		}
	})
	for _, k := range keys {
		idleRate := (idle1[k] - idle0[k]) / idleFor.Seconds()
		during := busy1[k] - idle1[k]
		per := (during - idleRate*busyFor.Seconds()) / float64(*samples)
		if during > 0 {
			fmt.Printf("%-28s %9.1f per port   (idle: %.1f/s)\n", k, per, idleRate)
		}
	}
	fmt.Printf("\nreproduce: sudo go run ./bench/agentsim -hosts %d -samples %d\n", *nHosts, *samples)
	return nil
}

// plug creates an instance on host with a port on network.
func plug(ctx context.Context, c *client.Client, host, name, network string) (port, error) {
	inst, _, err := client.Create[model.Instance](ctx, c, client.Instances, map[string]any{"name": name, "host": host})
	if err != nil {
		return port{}, err
	}
	p, _, err := client.Create[port](ctx, c, client.Ports, map[string]any{"network_id": network, "device_id": inst.ID})
	return p, err
}

// fdbWatch reads the remote entries of the VXLAN devices in one host's
// namespace, and follows the kernel's announcements of new ones: when a
// timed port's MAC arrived is when the kernel said so, with no polling
// of 49 tables eating the cores the agents need (polling every 2 ms was
// an eighth of this process's CPU, see docs/SCALE.md).
type fdbWatch struct {
	h    *netlink.Handle
	done chan struct{}

	mu   sync.Mutex
	seen map[string]time.Time // MAC → when its remote entry was announced
	// changed is closed and replaced when seen grows.
	changed chan struct{}
}

func newFDBWatch(ns string) (*fdbWatch, error) {
	h, err := netns.NewHandle(ns)
	if err != nil {
		return nil, err
	}
	w := &fdbWatch{h: h, done: make(chan struct{}), seen: map[string]time.Time{}, changed: make(chan struct{})}
	updates := make(chan netlink.NeighUpdate, 4096)
	// The socket is the namespace's it is opened in.
	if err := netns.DoNamed(ns, func() error {
		return netlink.NeighSubscribeWithOptions(updates, w.done, netlink.NeighSubscribeOptions{})
	}); err != nil {
		h.Close()
		return nil, fmt.Errorf("follow the FDB of %s: %w", ns, err)
	}
	go func() {
		for u := range updates {
			if u.Type != unix.RTM_NEWNEIGH || u.Family != unix.AF_BRIDGE || u.IP == nil ||
				len(u.HardwareAddr) == 0 || bytes.Equal(u.HardwareAddr, make(net.HardwareAddr, 6)) {
				continue
			}
			now := time.Now()
			w.mu.Lock()
			if _, ok := w.seen[u.HardwareAddr.String()]; !ok {
				w.seen[u.HardwareAddr.String()] = now
				close(w.changed)
				w.changed = make(chan struct{})
			}
			w.mu.Unlock()
		}
	}()
	return w, nil
}

func (w *fdbWatch) Close() {
	close(w.done)
	w.h.Close()
}

// entries lists the unicast MACs with a remote destination on the
// namespace's VXLAN devices.
func (w *fdbWatch) entries() ([]net.HardwareAddr, error) {
	links, err := w.h.LinkList()
	if err != nil {
		return nil, err
	}
	var macs []net.HardwareAddr
	for _, l := range links {
		if l.Type() != "vxlan" {
			continue
		}
		neighs, err := w.h.NeighList(l.Attrs().Index, unix.AF_BRIDGE)
		if err != nil {
			return nil, err
		}
		for _, n := range neighs {
			if n.IP != nil && !bytes.Equal(n.HardwareAddr, make(net.HardwareAddr, 6)) {
				macs = append(macs, n.HardwareAddr)
			}
		}
	}
	return macs, nil
}

func (w *fdbWatch) count() (int, error) {
	macs, err := w.entries()
	return len(macs), err
}

// waitMAC waits until the kernel announced mac's remote entry and
// returns the time from t0 to the announcement.
func (w *fdbWatch) waitMAC(t0 time.Time, mac net.HardwareAddr, timeout time.Duration) (time.Duration, error) {
	expired := time.After(timeout)
	for {
		w.mu.Lock()
		at, ok := w.seen[mac.String()]
		changed := w.changed
		w.mu.Unlock()
		if ok {
			return at.Sub(t0), nil
		}
		select {
		case <-changed:
		case <-expired:
			return 0, fmt.Errorf("%s not in the FDB after %s", mac, timeout)
		}
	}
}

// teardown deletes everything through c and waits until the agents removed
// the namespaces they made under prefixes.
func teardown(c *client.Client, prefixes []string) error {
	ctx := context.Background()
	var errs []error
	ports, err := client.List[port](ctx, c, client.Ports, nil)
	errs = append(errs, err)
	for _, p := range ports {
		if p.Owner != "network:dhcp" {
			_, err := c.Delete(ctx, client.Ports, p.ID)
			errs = append(errs, err)
		}
	}
	for _, col := range []client.Collection{client.Instances, client.Subnets, client.Networks} {
		items, err := client.List[struct {
			ID string `json:"id"`
		}](ctx, c, col, nil)
		errs = append(errs, err)
		for _, it := range items {
			_, err := c.Delete(ctx, col, it.ID)
			errs = append(errs, err)
		}
	}
	for _, prefix := range prefixes {
		for deadline := time.Now().Add(5 * time.Minute); len(lab.Namespaces(prefix)) > 0 && time.Now().Before(deadline); {
			time.Sleep(500 * time.Millisecond)
		}
	}
	return errors.Join(errs...)
}

func percentile(xs []time.Duration, p int) time.Duration {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*p/100)]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d.Microseconds())/1000) }
