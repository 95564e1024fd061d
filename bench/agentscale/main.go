// Command agentscale measures what the number of objects in the store
// costs the agent: with 10, 1,000 and 10,000 ports in the store (one
// daemon, grown between rows, in one run), per row
//
//	port create → kernel: POST /v2.0/ports of a port bound to an instance
//	    (created, and programmed, before the clock starts), answered once
//	    the agent programmed its revision (the API's wait);
//	FIP create → kernel: POST /v2.0/floatingips for that port, answered
//	    once its router's DNAT is programmed;
//	the agent's incremental and full pass durations (the means of
//	    nsnet_agent_pass_duration_seconds over the row, from /metrics);
//	the daemon's RSS;
//	POST /v2.0/ports of an unbound port, not waited: the API's share of
//	    port create → kernel (the service's, not the agent's);
//	POST answered → tap: a port plugged into an instance created without
//	    waiting, timed from the API's answer to its tap in the daemon's
//	    host namespace (polled with netlink): the agent's share;
//
// and each row's ratio to the first one; then the tail: how many of each
// row's port and FIP creates took over 10 ms, and the slowest.
//
// The ports that fill the store are unbound (no instance: no kernel
// state, the store's size only). They are written straight into the
// daemon's store while it is stopped, each a copy of one port the API
// created with its own id, name, MAC and address: creating 10,000 ports
// through the API takes the better part of an hour today, which is the
// service's cost, not the agent's. The daemon then starts again on the
// bigger store (its first pass is a full one, as after any restart)
// before the row is measured. Every timed port is plugged into an
// instance of its own, behind a router with a gateway, and deleted with
// its instance and floating IP after its sample (untimed, waited).
//
// Run as root from the repository root:
//
//	sudo go run ./bench/agentscale [-sizes 10,1000,10000] [-samples 20] [-bin path/to/nsnet] [-store etcd]
//
// -bin measures another build (an older nsnet) in the same way. -store etcd
// keeps the daemon's state in an etcd (Debian's etcd-server) that the
// benchmark starts on 127.0.0.1 and removes after, instead of its bbolt
// file; the fill then writes store.SplitWrites ports per transaction,
// within etcd's bound on one.
//
// -onebyone N measures something else, and only that: N ports created one
// by one through the API on a fresh daemon, each waited for (X-Nsnet-Wait:
// answered once the agent programmed it), as a user's script would; it
// prints the total, the time of the first 100, their ratio to N/100 times
// the first 100 (1.00x: the 10,000th port costs what the first did), each
// thousand's time and the daemon's CPU time in it (user and system, from
// /proc: on a busy machine the elapsed times follow the other work, the
// CPU time what the daemon did), and the daemon's RSS at the end and per
// port:
//
//	sudo go run ./bench/agentscale -onebyone 10000 [-dhcp]
//
// -persample prints a line per timed port create and floating IP create:
// its start (UTC) and time, and what the daemon did from the create to
// the answer (passes by kind and their total time, garbage collections
// and their pauses; /metrics read before and after, untimed), the
// passes' "pass done" lines, with their stages, and the requests' lines
// (the daemon then logs at debug; each line's time is its end, and a
// request's "waited" is the part of its duration spent for the agent to
// program it): the evidence for a row's tail — the API's share (start to
// the pass's start, and the request's duration less its wait), the pass,
// the answer.
//
// -profile DIR profiles the daemon, through its hidden --profile-dir
// flag: CPU, blocking, lock waits and the heap (its allocations too), to
// compare what a create costs at two sizes (go tool pprof -diff_base).
// With the rows, each row's samples, into DIR/1, DIR/2…; with -onebyone,
// the second thousand of ports (DIR/1) and the second to last (DIR/2).
//
// -dhcp gives the ports' subnet DHCP: its network then has a DHCP port,
// and every port is an entry of the network's DHCP and DNS servers'
// configuration, which each create updates.
//
// Everything lives in namespaces the benchmark's daemon creates under one prefix; the
// teardown stops the daemon and deletes them, also when the run fails or
// is interrupted (Ctrl-C).
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"maps"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/nsnet/nsnet/internal/client"
	"github.com/nsnet/nsnet/internal/lab"
	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/netns"
	"github.com/nsnet/nsnet/internal/store"
	"github.com/nsnet/nsnet/internal/store/storetest"
)

func main() { lab.Main(run) }

func run(ctx context.Context) (err error) {
	sizesFlag := flag.String("sizes", "10,1000,10000", "ports in the store per row, ascending")
	samples := flag.Int("samples", 20, "port and floating IP creations timed per row")
	binFlag := flag.String("bin", "", "nsnet binary to measure (default: build ./cmd/nsnet)")
	fullWait := flag.Duration("full-wait", 70*time.Second, "longest wait for a periodic full pass per row (the daemon's resync is 30s)")
	storeFlag := flag.String("store", "bolt", "the daemon's store: bolt (its file) or etcd (one the benchmark starts)")
	oneByOne := flag.Int("onebyone", 0, "instead of the rows: create this many ports one by one (waited) on a fresh daemon, and compare the total with the first 100's time")
	perSample := flag.Bool("persample", false, "print a line per timed port and floating IP create: its time and what the daemon did meanwhile (passes by kind and their time, garbage collections and their pauses, from /metrics read before and after, untimed)")
	profileFlag := flag.String("profile", "", "profile the daemon over each row's samples, into DIR/1, DIR/2…; with -onebyone over the second thousand of ports and the second to last")
	dhcpFlag := flag.Bool("dhcp", false, "the ports' subnet has DHCP (its network a DHCP port, whose servers' configuration every port is part of); without, it has none")
	flag.Parse()
	if os.Geteuid() != 0 {
		return errors.New("agentscale needs root: its daemon creates network namespaces")
	}
	var sizes []int
	for _, f := range strings.Split(*sizesFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 60000 || len(sizes) > 0 && n <= sizes[len(sizes)-1] {
			return fmt.Errorf("-sizes %q: ascending numbers of ports, 1..60000", *sizesFlag)
		}
		sizes = append(sizes, n)
	}
	dir, err := os.MkdirTemp("", "nsnet-bench-")
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
	prefix := "ba" + lab.RandomHex(3) + "-"
	defer func() {
		for _, ns := range lab.RemoveNamespaces(prefix) {
			log.Printf("teardown: deleted namespace %s", ns)
		}
	}()
	w := &world{bin: bin, dir: dir, prefix: prefix, dhcp: *dhcpFlag, perSample: *perSample, profile: *profileFlag}
	switch *storeFlag {
	case "bolt":
	case "etcd":
		e, err := storetest.Launch()
		if err != nil {
			return err
		}
		defer e.Remove()
		w.etcd = e.URL("agentscale")
	default:
		return fmt.Errorf("-store %q: want bolt or etcd", *storeFlag)
	}
	if err := w.start(); err != nil {
		return err
	}
	// The fill is not deleted through the API (10,000 deletions would
	// take longer than the run): the daemon stops, the namespaces go.
	defer func() {
		if w.daemon != nil {
			w.daemon.Stop()
		}
	}()
	if err := w.setup(ctx); err != nil {
		return err
	}
	if *oneByOne > 0 {
		return w.createOneByOne(ctx, *oneByOne)
	}

	var rows []row
	for _, size := range sizes {
		start := time.Now()
		if err := w.fill(ctx, size); err != nil {
			return err
		}
		log.Printf("filled to %d ports in %s", size, time.Since(start).Round(time.Millisecond))
		r, err := w.measure(ctx, size, *samples, *fullWait)
		if err != nil {
			return fmt.Errorf("%d ports: %w", size, err)
		}
		log.Printf("%d ports: port→kernel p50 %s, fip→kernel p50 %s, passes %s / %s", size,
			ms(pct(r.port, 50)), ms(pct(r.fip, 50)), ms(r.partial), ms(r.full))
		rows = append(rows, r)
	}
	printTable(rows, *samples)
	fmt.Printf("\nreproduce: sudo go run ./bench/agentscale -sizes %s -samples %d -store %s\n", *sizesFlag, *samples, *storeFlag)
	return nil
}

type row struct {
	size          int
	port, fip     []time.Duration
	api           []time.Duration // POST of an unbound port, not waited
	tap           []time.Duration // POST answered → the port's tap in the kernel
	partial, full time.Duration   // mean pass durations; 0: none seen
	partials      int
	rssKiB        int
}

func printTable(rows []row, samples int) {
	fmt.Printf("\nagent cost by ports in the store (%d samples per row; passes: means over the row)\n\n", samples)
	fmt.Printf("%8s | %-21s | %-21s | %-21s | %-21s | %-17s | %-17s | %s\n", "ports", "port→kernel p50 (p99)", "FIP→kernel p50 (p99)", "POST port, API only", "answered→tap p50 (p99)", "incremental pass", "full pass", "daemon RSS")
	for _, r := range rows {
		fmt.Printf("%8d | %-21s | %-21s | %-21s | %-22s | %-17s | %-17s | %d MiB\n", r.size,
			ms(pct(r.port, 50))+" ("+ms(pct(r.port, 99))+")", ms(pct(r.fip, 50))+" ("+ms(pct(r.fip, 99))+")",
			ms(pct(r.api, 50))+" ("+ms(pct(r.api, 99))+")", ms(pct(r.tap, 50))+" ("+ms(pct(r.tap, 99))+")",
			fmt.Sprintf("%s (%d)", ms(r.partial), r.partials), ms(r.full), r.rssKiB/1024)
	}
	fmt.Printf("\nratio to the %d row\n\n", rows[0].size)
	ratio := func(a, b time.Duration) string {
		if a == 0 || b == 0 {
			return "—"
		}
		return fmt.Sprintf("%.2fx", float64(a)/float64(b))
	}
	fmt.Printf("%8s | %-21s | %-21s | %-21s | %-22s | %-17s | %-17s | %s\n", "ports", "port→kernel p50 (p99)", "FIP→kernel p50 (p99)", "POST port, API only", "answered→tap p50 (p99)", "incremental pass", "full pass", "daemon RSS")
	b := rows[0]
	for _, r := range rows {
		fmt.Printf("%8d | %-21s | %-21s | %-21s | %-22s | %-17s | %-17s | %.2fx\n", r.size,
			ratio(pct(r.port, 50), pct(b.port, 50))+" ("+ratio(pct(r.port, 99), pct(b.port, 99))+")",
			ratio(pct(r.fip, 50), pct(b.fip, 50))+" ("+ratio(pct(r.fip, 99), pct(b.fip, 99))+")",
			ratio(pct(r.api, 50), pct(b.api, 50))+" ("+ratio(pct(r.api, 99), pct(b.api, 99))+")",
			ratio(pct(r.tap, 50), pct(b.tap, 50))+" ("+ratio(pct(r.tap, 99), pct(b.tap, 99))+")",
			ratio(r.partial, b.partial), ratio(r.full, b.full), float64(r.rssKiB)/float64(b.rssKiB))
	}
	// A p99 of 100 samples is their second slowest: one stalled commit
	// moves it. How many samples passed the 10 ms, row by row,
	// says whether a row's tail is its own or the machine's (a row of 10
	// ports with as many is the machine's).
	fmt.Printf("\nthe tail: samples over %s of %d per row (the slowest)\n\n", ms(tailBound), samples)
	fmt.Printf("%8s | %-21s | %-21s\n", "ports", "port→kernel", "FIP→kernel")
	for _, r := range rows {
		fmt.Printf("%8d | %-21s | %-21s\n", r.size, tail(r.port), tail(r.fip))
	}
}

// tailBound is the bound on a create's p99 at 10,000 ports.
const tailBound = 10 * time.Millisecond

// tail counts xs over tailBound and names the slowest.
func tail(xs []time.Duration) string {
	n := 0
	for _, x := range xs {
		if x > tailBound {
			n++
		}
	}
	return fmt.Sprintf("%d (%s)", n, ms(pct(xs, 100)))
}

type world struct {
	bin, dir, prefix string
	daemon           *lab.Daemon
	wait, eager      *client.Client
	raw              *http.Client
	host             *netlink.Handle // in the daemon's host namespace
	network          string
	subnet           string
	public           string
	// templateID is an unbound port the API created, whose record the
	// fill copies.
	templateID string
	// etcd is the daemon's --store, when not its bbolt file.
	etcd   string
	filled int
	next   int // next address to hand out, as an offset in subnet
	// dhcp: the ports' subnet has DHCP (-dhcp).
	dhcp bool
	// perSample: print what the daemon did during each timed port
	// create (-persample), its passes' log lines collected in passLog.
	perSample bool
	passLog   *passLog
	// profile is the daemon's --profile-dir (-profile).
	profile string
}

// passLog keeps the daemon's "pass done" and "request" log lines until
// taken: with the sample's start, they place its create's API share, the
// pass that programmed it and the answer.
type passLog struct {
	mu      sync.Mutex
	partial []byte
	lines   []string
}

func (l *passLog) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, b...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			return len(b), nil
		}
		if line := string(l.partial[:i]); strings.Contains(line, "pass done") || strings.Contains(line, "msg=request") {
			l.lines = append(l.lines, line)
		}
		l.partial = l.partial[i+1:]
	}
}

// take returns the lines kept since the last take.
func (l *passLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	lines := l.lines
	l.lines = nil
	return lines
}

// start starts the daemon (again) on the benchmark's state.
func (w *world) start() (err error) {
	var args []string
	if w.etcd != "" {
		args = []string{"--store", w.etcd}
	}
	if w.profile != "" {
		args = append(args, "--profile-dir", w.profile)
	}
	var logs io.Writer
	if w.perSample {
		// The passes' stages are in their "pass done" debug lines.
		args = append(args, "--log-level", "debug")
		w.passLog = &passLog{}
		logs = w.passLog
	}
	if w.daemon, err = lab.StartDaemonLogging(w.bin, w.dir, w.prefix, logs, args...); err != nil {
		return err
	}
	socket := w.daemon.Socket
	if w.wait, err = client.New(client.Config{Socket: socket, Wait: 5 * time.Minute}); err != nil {
		return err
	}
	if w.eager, err = client.New(client.Config{Socket: socket}); err != nil {
		return err
	}
	w.raw = &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", socket)
	}}}
	return nil
}

func (w *world) setup(ctx context.Context) error {
	// The project the daemon's local caller acts as: room for every port.
	if _, err := w.wait.SetQuota(ctx, "admin", map[string]int{"port": -1, "network": -1, "subnet": -1,
		"floatingip": -1, "router": -1, "security_group": -1, "security_group_rule": -1}, false); err != nil {
		return err
	}
	public, _, err := client.Create[model.Network](ctx, w.wait, client.Networks, map[string]any{"name": "public", "router:external": true})
	if err != nil {
		return err
	}
	w.public = public.ID
	if _, _, err := client.Create[model.Subnet](ctx, w.wait, client.Subnets, map[string]any{"network_id": public.ID,
		"cidr": "198.51.100.0/24", "ip_version": 4, "enable_dhcp": false}); err != nil {
		return err
	}
	n, _, err := client.Create[model.Network](ctx, w.wait, client.Networks, map[string]any{"name": "scale"})
	if err != nil {
		return err
	}
	w.network = n.ID
	sn, _, err := client.Create[model.Subnet](ctx, w.wait, client.Subnets, map[string]any{
		"network_id": n.ID, "cidr": "10.80.0.0/16", "ip_version": 4, "enable_dhcp": w.dhcp})
	if err != nil {
		return err
	}
	w.subnet = sn.ID
	r, _, err := client.Create[model.Router](ctx, w.wait, client.Routers, map[string]any{"name": "r1",
		"external_gateway_info": map[string]any{"network_id": public.ID}})
	if err != nil {
		return err
	}
	if _, _, err := w.wait.AddRouterInterface(ctx, r.ID, client.InterfaceRef{SubnetID: sn.ID}); err != nil {
		return err
	}
	w.next = 10
	// An instance plugged for the whole run, in the default group as the
	// probes are: the host's firewall stays in place between samples,
	// each probe one more member and port, as on a host in use. (Without
	// it the last port's deletion removes the firewall's tables, and
	// every probe rebuilds them with every member of the group.)
	anchor, _, err := client.Create[model.Instance](ctx, w.wait, client.Instances, map[string]any{"name": "anchor"})
	if err != nil {
		return err
	}
	if _, _, err := client.Create[model.Port](ctx, w.wait, client.Ports, map[string]any{"network_id": n.ID, "device_id": anchor.ID,
		"fixed_ips": []any{map[string]any{"subnet_id": sn.ID, "ip_address": w.addr()}}}); err != nil {
		return err
	}
	p, _, err := client.Create[model.Port](ctx, w.wait, client.Ports, map[string]any{"network_id": n.ID, "name": "fill0",
		"fixed_ips": []any{map[string]any{"subnet_id": sn.ID, "ip_address": w.addr()}}})
	if err != nil {
		return err
	}
	w.filled, w.templateID = 1, p.ID
	return nil
}

func (w *world) addr() string {
	w.next++
	return fmt.Sprintf("10.80.%d.%d", w.next/256, w.next%256)
}

// fill stops the daemon, adds copies of the template port to its store
// until the benchmark made size ports, starts it again and waits for the
// agent.
func (w *world) fill(ctx context.Context, size int) error {
	if w.filled < size {
		w.daemon.Stop()
		st, err := w.openStore(ctx)
		if err != nil {
			return err
		}
		// A chunk of ports per transaction: etcd takes at most 128
		// operations in one.
		for from := w.filled; from < size && err == nil; from += store.SplitWrites {
			_, err = st.Update(ctx, func(txn store.Txn) error {
				var template map[string]any
				if err := txn.Get(store.Ports, w.templateID, &template); err != nil {
					return err
				}
				next := w.next
				for i := from; i < min(size, from+store.SplitWrites); i++ {
					rec := maps.Clone(template)
					id := uuid(i)
					rec["id"], rec["name"] = id, fmt.Sprintf("fill%d", i)
					rec["mac_address"] = fmt.Sprintf("fa:16:3f:%02x:%02x:%02x", i>>16&0xff, i>>8&0xff, i&0xff)
					ip := maps.Clone(template["fixed_ips"].([]any)[0].(map[string]any))
					next++
					ip["ip_address"] = fmt.Sprintf("10.80.%d.%d", next/256, next%256)
					rec["fixed_ips"] = []any{ip}
					if err := txn.Put(store.Ports, id, rec); err != nil {
						return err
					}
				}
				return nil
			})
			if err == nil {
				w.next += min(size, from+store.SplitWrites) - from
			}
		}
		if err := errors.Join(err, st.Close()); err != nil {
			return fmt.Errorf("fill: %w", err)
		}
		w.filled = size
		w.daemon = nil // stopped: not to be stopped again should it not start
		if err := w.start(); err != nil {
			return err
		}
	}
	return w.converge(ctx)
}

// openStore opens the daemon's store, as the daemon does.
func (w *world) openStore(ctx context.Context) (store.Store, error) {
	if w.etcd == "" {
		// Where lab.StartDaemon keeps the daemon's state.
		return store.OpenBolt(filepath.Join(w.dir, w.prefix+"state", "state.db"))
	}
	cfg, err := store.ParseEtcdURL(w.etcd)
	if err != nil {
		return nil, err
	}
	return store.OpenEtcd(ctx, cfg)
}

// uuid is the fill port number i's id.
func uuid(i int) string { return fmt.Sprintf("f111f111-0000-4000-8000-%012x", i) }

// converge makes one waited write: the server answers once the agent has
// programmed its revision, which covers every write before it.
func (w *world) converge(ctx context.Context) error {
	_, meta, err := client.Update[model.Network](ctx, w.wait, client.Networks, w.network, map[string]any{"description": lab.RandomHex(4)})
	if err != nil {
		return err
	}
	if meta.Converged == nil || !*meta.Converged {
		return errors.New("the agent did not converge in time")
	}
	return nil
}

func (w *world) measure(ctx context.Context, size, samples int, fullWait time.Duration) (row, error) {
	r := row{size: size}
	before, err := w.passes(ctx)
	if err != nil {
		return r, err
	}
	if err := w.toggleProfile(); err != nil {
		return r, err
	}
	for i := range samples {
		p, f, err := w.sample(ctx, fmt.Sprintf("probe%d-%d", size, i))
		if err != nil {
			return r, err
		}
		r.port, r.fip = append(r.port, p), append(r.fip, f)
		a, err := w.apiOnly(ctx, fmt.Sprintf("api%d-%d", size, i))
		if err != nil {
			return r, err
		}
		r.api = append(r.api, a)
		tp, err := w.tapAfterPost(ctx, fmt.Sprintf("tap%d-%d", size, i))
		if err != nil {
			return r, err
		}
		r.tap = append(r.tap, tp)
	}
	if err := w.toggleProfile(); err != nil {
		return r, err
	}
	after, err := w.passes(ctx)
	if err != nil {
		return r, err
	}
	r.partial, r.partials = after.mean("partial", before)
	// A full pass runs every resync interval: wait for one that started
	// after the samples.
	for deadline := time.Now().Add(fullWait); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		now, err := w.passes(ctx)
		if err != nil {
			return r, err
		}
		if d, n := now.mean("full", after); n > 0 {
			r.full = d
			break
		}
	}
	r.rssKiB, err = rssKiB(w.daemon.Pid())
	return r, err
}

// toggleProfile, with -profile, starts the daemon's profile or writes
// the running one (its SIGUSR2).
func (w *world) toggleProfile() error {
	if w.profile == "" {
		return nil
	}
	if err := syscall.Kill(w.daemon.Pid(), syscall.SIGUSR2); err != nil {
		return fmt.Errorf("toggle the daemon's profile: %w", err)
	}
	return nil
}

// sample times one port creation and one floating IP creation until each
// is programmed, then deletes both and the port's instance (waited).
func (w *world) sample(ctx context.Context, name string) (port, fip time.Duration, err error) {
	// The instance is waited for before the clock starts: what is timed is
	// the port's create, not also its instance's namespace being made,
	// which an instance created without waiting would put in the port's
	// time (its pass runs first).
	inst, _, err := client.Create[model.Instance](ctx, w.wait, client.Instances, map[string]any{"name": name})
	if err != nil {
		return 0, 0, err
	}
	before, err := w.sampleStart(ctx)
	if err != nil {
		return 0, 0, err
	}
	start := time.Now()
	p, meta, err := client.Create[model.Port](ctx, w.wait, client.Ports, map[string]any{"network_id": w.network, "device_id": inst.ID,
		"fixed_ips": []any{map[string]any{"subnet_id": w.subnet, "ip_address": w.addr()}}})
	port = time.Since(start)
	if err != nil {
		return 0, 0, err
	}
	if err := w.sampleEnd(ctx, name, "port→kernel", start, port, before); err != nil {
		return 0, 0, err
	}
	if meta.Converged == nil || !*meta.Converged {
		return 0, 0, fmt.Errorf("port %s not programmed in time", name)
	}
	if before, err = w.sampleStart(ctx); err != nil {
		return 0, 0, err
	}
	start = time.Now()
	f, meta, err := client.Create[model.FloatingIP](ctx, w.wait, client.FloatingIPs, map[string]any{"floating_network_id": w.public, "port_id": p.ID})
	fip = time.Since(start)
	if err != nil {
		return 0, 0, err
	}
	if err := w.sampleEnd(ctx, name, "FIP→kernel", start, fip, before); err != nil {
		return 0, 0, err
	}
	if meta.Converged == nil || !*meta.Converged {
		return 0, 0, fmt.Errorf("floating IP of %s not programmed in time", name)
	}
	for _, del := range []struct {
		col client.Collection
		id  string
	}{{client.FloatingIPs, f.ID}, {client.Ports, p.ID}, {client.Instances, inst.ID}} {
		if _, err := w.wait.Delete(ctx, del.col, del.id); err != nil {
			return 0, 0, err
		}
	}
	return port, fip, nil
}

// sampleStart, with -persample, reads the daemon's pass and collection
// counts and drops the pass log so far, before a timed create.
func (w *world) sampleStart(ctx context.Context) (passCounts, error) {
	if !w.perSample {
		return passCounts{}, nil
	}
	w.passLog.take()
	return w.passes(ctx)
}

// sampleEnd, with -persample, prints what the daemon did since
// sampleStart during a timed create (what, from start, took): its passes
// and collections, and the passes' and requests' log lines.
func (w *world) sampleEnd(ctx context.Context, name, what string, start time.Time, took time.Duration, before passCounts) error {
	if !w.perSample {
		return nil
	}
	after, err := w.passes(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("sample %s: start %s %s %s; meanwhile: %s\n", name, start.UTC().Format("15:04:05.000000"), what, ms(took), after.since(before))
	for _, line := range w.passLog.take() {
		fmt.Printf("\t%s\n", line)
	}
	return nil
}

// apiOnly times the creation of an unbound port, answered without
// waiting for the agent: what the API costs of a port create. The port
// is deleted (waited, untimed).
func (w *world) apiOnly(ctx context.Context, name string) (time.Duration, error) {
	start := time.Now()
	p, _, err := client.Create[model.Port](ctx, w.eager, client.Ports, map[string]any{"network_id": w.network, "name": name,
		"fixed_ips": []any{map[string]any{"subnet_id": w.subnet, "ip_address": w.addr()}}})
	took := time.Since(start)
	if err != nil {
		return 0, err
	}
	_, err = w.wait.Delete(ctx, client.Ports, p.ID)
	return took, err
}

// tapAfterPost creates a port plugged into a new instance without
// waiting, and times from the answer to the port's tap in the daemon's
// host namespace, polled with netlink: the agent's share of port create
// → kernel, whatever the API costs. Port and instance are then deleted
// (waited, untimed).
func (w *world) tapAfterPost(ctx context.Context, name string) (time.Duration, error) {
	if w.host == nil {
		h, err := netns.NewHandle(w.prefix + "host")
		if err != nil {
			return 0, err
		}
		w.host = h
	}
	inst, _, err := client.Create[model.Instance](ctx, w.eager, client.Instances, map[string]any{"name": name})
	if err != nil {
		return 0, err
	}
	p, _, err := client.Create[model.Port](ctx, w.eager, client.Ports, map[string]any{"network_id": w.network, "device_id": inst.ID,
		"fixed_ips": []any{map[string]any{"subnet_id": w.subnet, "ip_address": w.addr()}}})
	if err != nil {
		return 0, err
	}
	start := time.Now()
	tap := model.TapName(p.ID)
	for {
		if _, err := w.host.LinkByName(tap); err == nil {
			break
		}
		if time.Since(start) > time.Minute {
			return 0, fmt.Errorf("tap %s of port %s not in the kernel after a minute", tap, name)
		}
		time.Sleep(200 * time.Microsecond)
	}
	took := time.Since(start)
	for _, del := range []struct {
		col client.Collection
		id  string
	}{{client.Ports, p.ID}, {client.Instances, inst.ID}} {
		if _, err := w.wait.Delete(ctx, del.col, del.id); err != nil {
			return 0, err
		}
	}
	return took, nil
}

// passCounts are the agent's pass duration histogram's sums and counts,
// by kind.
type passCounts struct {
	sum   map[string]float64
	count map[string]float64
}

// mean is the mean duration of the passes of kind since before, and how
// many there were.
func (c passCounts) mean(kind string, before passCounts) (time.Duration, int) {
	n := c.count[kind] - before.count[kind]
	if n <= 0 {
		return 0, 0
	}
	return time.Duration((c.sum[kind] - before.sum[kind]) / n * float64(time.Second)), int(n)
}

// since says what the daemon did between before and c: passes by kind,
// with their total time, and garbage collections with their pauses.
func (c passCounts) since(before passCounts) string {
	var parts []string
	for _, kind := range slices.Sorted(maps.Keys(c.count)) {
		n := c.count[kind] - before.count[kind]
		if kind == gcKind || n <= 0 {
			continue
		}
		parts = append(parts, fmt.Sprintf("%d %s passes (%s)", int(n), kind, ms(time.Duration((c.sum[kind]-before.sum[kind])*float64(time.Second)))))
	}
	if len(parts) == 0 {
		parts = append(parts, "no pass")
	}
	gcs := int(c.count[gcKind] - before.count[gcKind])
	pause := time.Duration((c.sum[gcKind] - before.sum[gcKind]) * float64(time.Second))
	return strings.Join(parts, ", ") + fmt.Sprintf(", %d GCs (pauses %s)", gcs, ms(pause))
}

// gcKind holds the daemon's garbage collections (go_gc_duration_seconds)
// in passCounts, beside the pass kinds.
const gcKind = "gc"

// passes reads the pass durations from the daemon's /metrics, and its
// garbage collections (as gcKind).
func (w *world) passes(ctx context.Context) (passCounts, error) {
	c := passCounts{sum: map[string]float64{}, count: map[string]float64{}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://nsnet/metrics", nil)
	if err != nil {
		return c, err
	}
	resp, err := w.raw.Do(req)
	if err != nil {
		return c, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return c, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		for suffix, into := range map[string]map[string]float64{"_sum": c.sum, "_count": c.count} {
			if rest, ok := strings.CutPrefix(line, "go_gc_duration_seconds"+suffix+" "); ok {
				v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
				if err != nil {
					return c, fmt.Errorf("metrics line %q: %w", line, err)
				}
				into[gcKind] = v
			}
			rest, ok := strings.CutPrefix(line, "nsnet_agent_pass_duration_seconds"+suffix+`{kind="`)
			if !ok {
				continue
			}
			kind, value, ok := strings.Cut(rest, `"} `)
			if !ok {
				continue
			}
			v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
			if err != nil {
				return c, fmt.Errorf("metrics line %q: %w", line, err)
			}
			into[kind] = v
		}
	}
	return c, sc.Err()
}

// pct is the p-th percentile of xs (nearest rank).
func pct(xs []time.Duration, p float64) time.Duration {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

// rssKiB is the resident set size of process pid.
func rssKiB(pid int) (int, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kib int
			fmt.Sscanf(strings.TrimSpace(rest), "%d", &kib)
			return kib, nil
		}
	}
	return 0, errors.New("no VmRSS")
}

// cpuTime is the CPU time process pid has used (user and system, from
// /proc/<pid>/stat): what the daemon did for a thousand ports, which the
// machine's other work slows but does not add to.
func cpuTime(pid int) (time.Duration, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The fields after the command (in parentheses, which may hold
	// spaces): state is the 3rd field, utime and stime the 14th and 15th.
	s := string(raw)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	// USER_HZ is 100 on every Linux this runs on.
	return time.Duration(utime+stime) * 10 * time.Millisecond, nil
}

func ms(d time.Duration) string {
	if d == 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000)
}

// createOneByOne creates n ports one by one, each waited for, on the
// scale network, and prints the total against n/100 times the first 100's
// time, each thousand's time and the daemon's RSS.
func (w *world) createOneByOne(ctx context.Context, n int) error {
	rssStart, err := rssKiB(w.daemon.Pid())
	if err != nil {
		return err
	}
	cpuStart, err := cpuTime(w.daemon.Pid())
	if err != nil {
		return err
	}
	start := time.Now()
	var first100 time.Duration
	var thousands, cpus []time.Duration
	lap, cpuLap := start, cpuStart
	// The profiled thousands: the second, and the second to last.
	toggles := map[int]bool{}
	if w.profile != "" && n >= 4000 {
		toggles = map[int]bool{1000: true, 2000: true, n - 2000: true, n - 1000: true}
	}
	for i := range n {
		if toggles[i] {
			if err := w.toggleProfile(); err != nil {
				return err
			}
		}
		_, meta, err := client.Create[model.Port](ctx, w.wait, client.Ports, map[string]any{"network_id": w.network,
			"name": fmt.Sprintf("one%d", i), "fixed_ips": []any{map[string]any{"subnet_id": w.subnet, "ip_address": w.addr()}}})
		if err != nil {
			return fmt.Errorf("port %d: %w", i, err)
		}
		if meta.Converged == nil || !*meta.Converged {
			return fmt.Errorf("port %d not programmed in time", i)
		}
		if i+1 == 100 {
			first100 = time.Since(start)
		}
		if (i+1)%1000 == 0 {
			thousands = append(thousands, time.Since(lap))
			lap = time.Now()
			cpu, err := cpuTime(w.daemon.Pid())
			if err != nil {
				return err
			}
			cpus, cpuLap = append(cpus, cpu-cpuLap), cpu
			log.Printf("%d ports created one by one in %s", i+1, time.Since(start).Round(time.Millisecond))
		}
	}
	total := time.Since(start)
	rss, err := rssKiB(w.daemon.Pid())
	if err != nil {
		return err
	}
	fmt.Printf("\n%d ports created one by one, each waited (X-Nsnet-Wait), on one network (DHCP: %v) in the default security group\n\n", n, w.dhcp)
	fmt.Printf("total: %s (%.1f ms a port)\n", total.Round(time.Millisecond), float64(total.Microseconds())/1000/float64(n))
	if first100 > 0 {
		fmt.Printf("first 100: %s; %d/100 × that: %s; total / (%d/100 × first 100): %.2fx\n", first100.Round(time.Millisecond), n,
			(first100 * time.Duration(n) / 100).Round(time.Millisecond), n, float64(total)/(float64(first100)*float64(n)/100))
	}
	for i, d := range thousands {
		fmt.Printf("ports %5d–%5d: %s (daemon CPU %s)\n", i*1000+1, (i+1)*1000, d.Round(time.Millisecond), cpus[i].Round(10*time.Millisecond))
	}
	if len(cpus) >= 3 {
		// The first thousand holds the caches' warming: the second is
		// the base, as in the profiles (-profile).
		fmt.Printf("daemon CPU: last thousand / second thousand: %.2fx\n", float64(cpus[len(cpus)-1])/float64(cpus[1]))
	}
	fmt.Printf("daemon RSS: %d MiB at the start, %d MiB after (%.1f KiB a port)\n", rssStart/1024, rss/1024, float64(rss-rssStart)/float64(n))
	dhcpArg := ""
	if w.dhcp {
		dhcpArg = " -dhcp"
	}
	fmt.Printf("\nreproduce: sudo go run ./bench/agentscale -onebyone %d%s\n", n, dhcpArg)
	return nil
}
