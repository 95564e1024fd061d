// Command multihost measures what spreading nsnet over hosts costs, in one
// run: a lab of three hosts on one etcd (lab.Cluster: host-a and host-b
// compute, net the network node, each with its own daemon and VXLAN
// between them) beside a one-box daemon (its bbolt file), both filled with
// the same topology — -ports ports spread over -networks networks, as
// instances with a port on each network, half on each compute host — and
// then, per row,
//
//	API call → port ACTIVE: POST /v2.0/ports of a port plugged into an
//	    instance, then GET until its status is ACTIVE (what a client sees,
//	    whatever carries the status from the agent to the API), for a port
//	    on the API server's own host (host-a), on a remote host (host-b, the
//	    API still host-a's), and on the one-box daemon; p50, p99 and each
//	    one's ratio to the one-box;
//	FDB entries per host: the static entries (with a dst: the VXLAN
//	    devices' L2 population) in each host's namespace, the unicast ones
//	    beside the ports of its networks that live on other hosts, and the
//	    flood (00:00:00:00:00:00) ones beside the other hosts holding its
//	    networks.
//
// Run as root from the repository root:
//
//	sudo go run ./bench/multihost [-ports 1000] [-networks 20] [-samples 40] [-bin path/to/nsnet]
//
// It needs Debian's etcd-server (etcd on the PATH), started on free
// loopback ports with --max-txn-ops raised, and removed at the end with
// every namespace the run made, also when it fails or is interrupted.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/nsnet/nsnet/internal/client"
	"github.com/nsnet/nsnet/internal/lab"
	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/store/storetest"
)

func main() { lab.Main(run) }

// port is what the benchmark reads of a port.
type port struct {
	ID        string `json:"id"`
	NetworkID string `json:"network_id"`
	DeviceID  string `json:"device_id"`
	Owner     string `json:"device_owner"`
	MAC       string `json:"mac_address"`
	Status    string `json:"status"`
	HostID    string `json:"binding:host_id"`
}

func run(ctx context.Context) (err error) {
	ports := flag.Int("ports", 1000, "ports in the topology, spread over the networks")
	networks := flag.Int("networks", 20, "networks (each instance has a port on every one)")
	samples := flag.Int("samples", 40, "ports timed per row")
	binFlag := flag.String("bin", "", "nsnet binary to measure (default: build ./cmd/nsnet)")
	logsFlag := flag.String("daemon-logs", "", "append every daemon's output, at --log-level debug (each pass, with its revision and time), to this file, each line behind its host's name (onebox: the one-box daemon), and each timed sample's port, start and time behind \"bench: \"")
	flag.Parse()
	if os.Geteuid() != 0 {
		return errors.New("multihost needs root: its hosts are network namespaces")
	}
	if *networks < 1 || *networks > 200 || *ports < *networks {
		return fmt.Errorf("-networks %d, -ports %d: want 1 to 200 networks and at least one port each", *networks, *ports)
	}
	dir, err := os.MkdirTemp("", "nsnet-bench-multihost-")
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
	etcd, err := storetest.Launch("--max-txn-ops", "4096", "--quota-backend-bytes", fmt.Sprint(4<<30))
	if err != nil {
		return err
	}
	defer etcd.Remove()

	// At warn a daemon that works says nothing: logs are at debug, which
	// has a line per pass.
	logLevel := "warn"
	var logs io.Writer
	if *logsFlag != "" {
		logLevel = "debug"
		f, err := os.OpenFile(*logsFlag, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		logs = f
	}
	cluster, err := lab.NewCluster(ctx, lab.ClusterConfig{
		Logs: logs,
		Bin:  bin, Dir: dir, Store: etcd.URL("nsnet-bench"),
		Hosts: []lab.HostConfig{
			{Name: "host-a", Roles: []string{model.RoleCompute}},
			{Name: "host-b", Roles: []string{model.RoleCompute}},
			{Name: "net", Roles: []string{model.RoleNetwork}},
		},
		DaemonArgs: []string{"--heartbeat-interval", "1s", "--agent-down-time", "5s", "--log-level", logLevel},
	})
	if err != nil {
		return err
	}
	api, err := client.New(client.Config{Endpoint: cluster.Host("host-a").Endpoint, Auth: client.StaticToken(cluster.Token)})
	if err != nil {
		cluster.Close()
		return err
	}
	defer func() {
		var prefixes []string
		for _, h := range cluster.Hosts {
			prefixes = append(prefixes, h.NetnsPrefix)
		}
		err = errors.Join(err, teardown(api, prefixes), settle(cluster), cluster.Close())
	}()

	oneboxPrefix := "nsb" + lab.RandomHex(3) + "-"
	defer lab.RemoveNamespaces(oneboxPrefix)
	onebox, err := lab.StartDaemonLogging(bin, dir, oneboxPrefix, logs, "--log-level", logLevel)
	if err != nil {
		return err
	}
	defer onebox.Stop()
	oneAPI, err := client.New(client.Config{Socket: onebox.Socket})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, teardown(oneAPI, []string{oneboxPrefix}), leftovers(oneboxPrefix)) }()

	perNetwork := *ports / *networks
	fmt.Printf("topology: %d networks, %d instances with a port on each (%d ports), half on host-a, half on host-b\n",
		*networks, perNetwork, perNetwork**networks)
	start := time.Now()
	multiNets, err := fill(ctx, api, *networks, perNetwork, []string{"host-a", "host-b"})
	if err != nil {
		return fmt.Errorf("fill the cluster: %w", err)
	}
	fmt.Printf("cluster filled and ACTIVE in %s\n", time.Since(start).Round(time.Second))
	start = time.Now()
	oneNets, err := fill(ctx, oneAPI, *networks, perNetwork, nil)
	if err != nil {
		return fmt.Errorf("fill the one-box daemon: %w", err)
	}
	fmt.Printf("one-box filled and ACTIVE in %s\n", time.Since(start).Round(time.Second))

	rows := []struct {
		name string
		c    *client.Client
		host string
		net  string
	}{
		{"one-box daemon", oneAPI, "", oneNets[0]},
		{"same host (host-a API, port on host-a)", api, "host-a", multiNets[0]},
		{"remote host (host-a API, port on host-b)", api, "host-b", multiNets[0]},
	}
	fmt.Printf("\nAPI call → port ACTIVE, %d ports per row (p50 / p99, ratio to the one-box)\n\n", *samples)
	var base [2]time.Duration
	for i, r := range rows {
		times, err := timePorts(ctx, r.c, r.host, r.net, *samples, i, logs)
		if err != nil {
			return fmt.Errorf("%s: %w", r.name, err)
		}
		p50, p99 := percentile(times, 50), percentile(times, 99)
		if i == 0 {
			base = [2]time.Duration{p50, p99}
		}
		fmt.Printf("%-42s p50 %8s (%5.2fx)  p99 %8s (%5.2fx)\n", r.name, ms(p50), ratio(p50, base[0]), ms(p99), ratio(p99, base[1]))
	}

	if err := etcdPerPort(ctx, api, etcd.Endpoint(), multiNets[0], *samples); err != nil {
		return err
	}

	fmt.Printf("\nFDB entries per host (static, with a dst: L2 population)\n\n")
	all, err := client.List[port](ctx, api, client.Ports, nil)
	if err != nil {
		return err
	}
	fmt.Printf("%-8s %9s %9s %13s %9s %13s\n", "host", "networks", "unicast", "remote ports", "flood", "remote hosts")
	for _, h := range cluster.Hosts {
		f, err := fdbOf(h.Netns)
		if err != nil {
			return err
		}
		present := map[string]bool{} // networks with a port on h
		for _, p := range all {
			if p.HostID == h.Name {
				present[p.NetworkID] = true
			}
		}
		remotePorts, remoteHosts := 0, 0
		for netID := range present {
			hosts := map[string]bool{}
			for _, p := range all {
				if p.NetworkID == netID && p.HostID != "" && p.HostID != h.Name {
					remotePorts++
					hosts[p.HostID] = true
				}
			}
			remoteHosts += len(hosts)
		}
		fmt.Printf("%-8s %9d %9d %13d %9d %13d\n", h.Name, len(present), f.unicast, remotePorts, f.flood, remoteHosts)
	}
	fmt.Printf("\n(remote ports: ports of the host's networks bound to other hosts; remote hosts: per network, the other hosts with a port on it)\n")
	fmt.Printf("reproduce: sudo go run ./bench/multihost -ports %d -networks %d -samples %d\n", *ports, *networks, *samples)
	return nil
}

// fill makes networks networks with a /24 each and perNetwork instances
// each with a port on every network, placed round-robin on hosts (none:
// the one-box daemon), four clients at a time, and waits until every port
// is ACTIVE. It returns the networks' ids.
func fill(ctx context.Context, c *client.Client, networks, perNetwork int, hosts []string) ([]string, error) {
	// Past Neutron's default quotas (500 ports): unlimited, for the
	// benchmark's project.
	project, err := c.Project(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := c.SetQuota(ctx, project, map[string]int{"port": -1, "network": -1, "subnet": -1}, false); err != nil {
		return nil, fmt.Errorf("lift the quotas: %w", err)
	}
	var netIDs []string
	for i := range networks {
		n, _, err := client.Create[model.Network](ctx, c, client.Networks, map[string]any{"name": fmt.Sprintf("bench%d", i)})
		if err != nil {
			return nil, err
		}
		if _, _, err := client.Create[model.Subnet](ctx, c, client.Subnets, map[string]any{
			"network_id": n.ID, "ip_version": 4, "cidr": fmt.Sprintf("10.%d.%d.0/24", 100+i/250, i%250)}); err != nil {
			return nil, err
		}
		netIDs = append(netIDs, n.ID)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for k := range perNetwork {
		g.Go(func() error {
			attrs := map[string]any{"name": fmt.Sprintf("fill%d", k)}
			if len(hosts) > 0 {
				attrs["host"] = hosts[k%len(hosts)]
			}
			inst, _, err := client.Create[model.Instance](gctx, c, client.Instances, attrs)
			if err != nil {
				return err
			}
			for _, n := range netIDs {
				if _, _, err := client.Create[model.Port](gctx, c, client.Ports, map[string]any{"network_id": n, "device_id": inst.ID}); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	for deadline := time.Now().Add(15 * time.Minute); ; time.Sleep(time.Second) {
		all, err := client.List[port](ctx, c, client.Ports, nil)
		if err != nil {
			return nil, err
		}
		active := 0
		for _, p := range all {
			if p.DeviceID != "" && p.Owner != "network:dhcp" && p.Status == "ACTIVE" {
				active++
			}
		}
		if active >= networks*perNetwork {
			return netIDs, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%d of %d ports ACTIVE after 15 minutes", active, networks*perNetwork)
		}
	}
}

// timePorts times samples ports: for each, an instance on host (untimed),
// then POST of its port on network and GETs until it is ACTIVE (timed);
// both are deleted after the sample, untimed. Each sample is written to
// logs (when not nil) beside the daemons' lines: its port, when its POST
// was sent and answered, and when it was seen ACTIVE.
func timePorts(ctx context.Context, c *client.Client, host, network string, samples, row int, logs io.Writer) ([]time.Duration, error) {
	var times []time.Duration
	for i := range samples {
		attrs := map[string]any{"name": fmt.Sprintf("t%d-%d", row, i)}
		if host != "" {
			attrs["host"] = host
		}
		inst, _, err := client.Create[model.Instance](ctx, c, client.Instances, attrs)
		if err != nil {
			return nil, err
		}
		start := time.Now()
		p, _, err := client.Create[port](ctx, c, client.Ports, map[string]any{"network_id": network, "device_id": inst.ID})
		if err != nil {
			return nil, err
		}
		posted := time.Since(start)
		for p.Status != "ACTIVE" {
			if time.Since(start) > 2*time.Minute {
				return nil, fmt.Errorf("port %s not ACTIVE after 2 minutes (%s)", p.ID, p.Status)
			}
			time.Sleep(5 * time.Millisecond)
			if p, err = client.Get[port](ctx, c, client.Ports, p.ID); err != nil {
				return nil, err
			}
		}
		took := time.Since(start)
		times = append(times, took)
		if logs != nil {
			fmt.Fprintf(logs, "bench: time=%s row=%d sample=%d port=%s posted=%s active=%s\n",
				start.UTC().Format("2006-01-02T15:04:05.000Z"), row, i, p.ID, posted.Round(time.Millisecond), took.Round(time.Millisecond))
		}
		if _, err := c.Delete(ctx, client.Ports, p.ID); err != nil {
			return nil, err
		}
		if _, err := c.Delete(ctx, client.Instances, inst.ID); err != nil {
			return nil, err
		}
	}
	return times, nil
}

// etcdPerPort counts what etcd served per port create in the cluster:
// gRPC requests by method (the API server's transaction and every agent's
// reads) and watch messages sent (one per watching daemon and change),
// over n ports created on network for an instance on host-b through
// host-a's API and waited ACTIVE. What the daemons do idle (heartbeats,
// resyncs) over as long a time is measured first and taken away.
func etcdPerPort(ctx context.Context, c *client.Client, endpoint, network string, n int) error {
	inst, _, err := client.Create[model.Instance](ctx, c, client.Instances, map[string]any{"name": "etcd-count", "host": "host-b"})
	if err != nil {
		return err
	}
	time.Sleep(2 * time.Second) // let the instance's own writes settle
	idle0, err := lab.EtcdCounts(endpoint)
	if err != nil {
		return err
	}
	start := time.Now()
	var created []string
	for range n {
		p, _, err := client.Create[port](ctx, c, client.Ports, map[string]any{"network_id": network, "device_id": inst.ID})
		if err != nil {
			return err
		}
		created = append(created, p.ID)
	}
	for _, id := range created {
		for {
			p, err := client.Get[port](ctx, c, client.Ports, id)
			if err != nil {
				return err
			}
			if p.Status == "ACTIVE" {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	busy := time.Since(start)
	time.Sleep(2 * time.Second) // the agents' reads that follow the last change
	busy1, err := lab.EtcdCounts(endpoint)
	if err != nil {
		return err
	}
	window := time.Since(start)
	time.Sleep(window)
	idle1, err := lab.EtcdCounts(endpoint)
	if err != nil {
		return err
	}
	fmt.Printf("\netcd per port create (%d ports in %s, idle traffic of the same %s taken away)\n\n", n, busy.Round(time.Millisecond), window.Round(time.Millisecond))
	var keys []string
	for k := range busy1 {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		during := busy1[k] - idle0[k]
		idle := idle1[k] - busy1[k]
		if per := (during - idle) / float64(n); during > 0 {
			fmt.Printf("%-28s %8.1f per port (%.0f during, %.0f idle)\n", k, per, during, idle)
		}
	}
	for _, id := range created {
		if _, err := c.Delete(ctx, client.Ports, id); err != nil {
			return err
		}
	}
	_, err = c.Delete(ctx, client.Instances, inst.ID)
	return err
}

type fdbCount struct{ unicast, flood int }

// fdbOf counts the static FDB entries with a remote (dst) in ns: the
// VXLAN devices' unicast entries for remote MACs and their flood list.
func fdbOf(ns string) (fdbCount, error) {
	out, err := exec.Command("bridge", "-n", ns, "fdb", "show").Output()
	if err != nil {
		return fdbCount{}, fmt.Errorf("bridge fdb show in %s: %w", ns, err)
	}
	var c fdbCount
	for _, line := range strings.Split(string(out), "\n") {
		switch {
		case !strings.Contains(line, " dst "):
		case strings.HasPrefix(line, "00:00:00:00:00:00 "):
			c.flood++
		default:
			c.unicast++
		}
	}
	return c, nil
}

// teardown deletes everything through c, as a user would, and waits until
// the agents removed the namespaces they made (under prefixes; a daemon's
// own host namespace, PREFIXhost, stays).
func teardown(c *client.Client, prefixes []string) error {
	ctx := context.Background()
	var mu sync.Mutex
	var errs []error
	note := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	portsOf, err := client.List[port](ctx, c, client.Ports, nil)
	note(err)
	g := errgroup.Group{}
	g.SetLimit(4)
	for _, p := range portsOf {
		if p.Owner == "network:dhcp" {
			continue
		}
		g.Go(func() error { _, err := c.Delete(ctx, client.Ports, p.ID); note(err); return nil })
	}
	g.Wait()
	for _, col := range []client.Collection{client.Instances, client.Subnets, client.Networks} {
		items, err := client.List[struct {
			ID string `json:"id"`
		}](ctx, c, col, nil)
		note(err)
		for _, it := range items {
			g.Go(func() error { _, err := c.Delete(ctx, col, it.ID); note(err); return nil })
		}
		g.Wait()
	}
	for _, prefix := range prefixes {
		for deadline := time.Now().Add(5 * time.Minute); len(made(prefix)) > 0 && time.Now().Before(deadline); {
			time.Sleep(500 * time.Millisecond)
		}
	}
	return errors.Join(errs...)
}

// settle waits, after the teardown, until no host namespace of the
// cluster holds nft tables: the agents remove a host's firewall once its
// last port is gone, which can come after the namespaces the teardown
// waits for, and Close counts what is left when it stops the daemons.
func settle(c *lab.Cluster) error {
	for _, h := range c.Hosts {
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
			out, err := exec.Command("ip", "netns", "exec", h.Netns, "nft", "list", "tables").Output()
			if err == nil && strings.TrimSpace(string(out)) == "" {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("host %s: nft tables a minute after the teardown: %s", h.Name, strings.Join(strings.Fields(string(out)), " "))
			}
		}
	}
	return nil
}

// made lists the namespaces of a daemon's prefix but its host's.
func made(prefix string) []string {
	return slices.DeleteFunc(lab.Namespaces(prefix), func(ns string) bool { return ns == prefix+"host" })
}

// leftovers fails for any namespace the one-box daemon left but its host
// namespace, and removes them all.
func leftovers(prefix string) error {
	left := made(prefix)
	lab.RemoveNamespaces(prefix)
	if len(left) > 0 {
		return fmt.Errorf("left behind: %v", left)
	}
	return nil
}

func percentile(xs []time.Duration, p int) time.Duration {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*p/100)]
}

func ratio(a, b time.Duration) float64 { return float64(a) / float64(b) }

func ms(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d.Microseconds())/1000) }
