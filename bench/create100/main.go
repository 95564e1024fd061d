// Command create100 measures how long nsnet takes to build N instances, each
// with a port on one network, through its API — and, in the same run, how long
// the seed walkthroughs' shell sequence of ip commands takes to build the same
// topology. It prints both times, their ratio, and the daemon's peak RSS.
//
// Run as root from the repository root:
//
//	sudo go run ./bench/create100 [-n 100] [-rounds 3] [-bin path/to/nsnet]
//
// -bin measures another build (an older nsnet) in the same way.
//
// -profile DIR profiles the daemon of the first round's wait-each shape
// while it builds (CPU, blocking and lock waits: DIR/1/cpu.pprof,
// block.pprof, mutex.pprof; go tool pprof reads them); the profiled round
// counts in the table like the others. It needs a build that has the
// daemon's hidden --profile-dir flag.
//
// Everything is built inside namespaces the benchmark creates (a host
// namespace per side, a prefix per run) and removed at the end, also when
// it fails or is interrupted (Ctrl-C).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/nsnet/nsnet/internal/client"
	"github.com/nsnet/nsnet/internal/lab"
	"github.com/nsnet/nsnet/internal/model"
)

func main() { lab.Main(run) }

func run(ctx context.Context) error {
	n := flag.Int("n", 100, "instances (each with one port)")
	rounds := flag.Int("rounds", 3, "rounds per shape; the median is reported")
	binFlag := flag.String("bin", "", "nsnet binary to measure (default: build ./cmd/nsnet)")
	profile := flag.String("profile", "", "profile the first wait-each run's daemon into this directory")
	flag.Parse()
	if os.Geteuid() != 0 {
		return errors.New("create100 needs root: it creates network namespaces")
	}
	if *n < 1 || *n > 250 {
		return errors.New("-n must be 1..250 (one /24)")
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

	shapes := []shape{
		{"wait-each", "one client, every write waits until programmed (the CLI's default)", 1, true},
		{"wait-each-x4", "four clients in parallel, every write waits", 4, true},
		{"burst", "one client, writes back to back, one wait at the end", 1, false},
	}
	times := map[string][]time.Duration{}
	var peakRSS []int
	for r := range *rounds {
		took, err := timeShell(ctx, dir, *n)
		if err != nil {
			return fmt.Errorf("ip-script: %w", err)
		}
		times["ip-script"] = append(times["ip-script"], took)
		for _, s := range shapes {
			prof := ""
			if r == 0 && s.name == "wait-each" && *profile != "" {
				if prof, err = filepath.Abs(*profile); err != nil {
					return err
				}
			}
			took, rss, err := timeNsnet(ctx, bin, dir, *n, s, prof)
			if err != nil {
				return fmt.Errorf("%s: %w", s.name, err)
			}
			times[s.name] = append(times[s.name], took)
			peakRSS = append(peakRSS, rss)
		}
		log.Printf("round %d/%d done", r+1, *rounds)
	}

	base := lab.Median(times["ip-script"])
	fmt.Printf("\n%d instances, each with a port on one network; median of %d rounds\n\n", *n, *rounds)
	fmt.Printf("%-14s %10s %9s  %s\n", "shape", "time", "vs ip", "what")
	fmt.Printf("%-14s %10s %9s  %s\n", "ip-script", ms(base), "1.00x", "seed-style shell: ip netns add, ip link add … type veth, set netns/master/up, addr, route")
	for _, s := range shapes {
		t := lab.Median(times[s.name])
		fmt.Printf("%-14s %10s %8.2fx  %s\n", s.name, ms(t), float64(base)/float64(t), s.what)
	}
	fmt.Printf("\ndaemon peak RSS (VmHWM): %d KiB (max over runs)\n", slices.Max(peakRSS))
	fmt.Printf("reproduce: sudo go run ./bench/create100 -n %d -rounds %d\n", *n, *rounds)
	return nil
}

type shape struct {
	name, what string
	clients    int
	waitEach   bool
}

// timeNsnet starts a daemon, builds the topology through the API in the
// given shape, and returns the time until the kernel has all of it, and the
// daemon's peak RSS in KiB. Whatever happens, it deletes the topology
// through the API and stops the daemon before it returns. With profile
// set, the daemon is profiled into that directory while it builds.
func timeNsnet(ctx context.Context, bin, dir string, n int, s shape, profile string) (took time.Duration, rss int, err error) {
	prefix := "bn" + lab.RandomHex(3) + "-"
	defer lab.RemoveNamespaces(prefix)
	var args []string
	if profile != "" {
		args = []string{"--profile-dir", profile}
	}
	daemon, err := lab.StartDaemon(bin, dir, prefix, args...)
	if err != nil {
		return 0, 0, err
	}
	defer daemon.Stop()
	waiting, err := client.New(client.Config{Socket: daemon.Socket, Wait: time.Minute})
	if err != nil {
		return 0, 0, err
	}
	defer func() { err = errors.Join(err, teardownNsnet(waiting, prefix)) }()
	eager, err := client.New(client.Config{Socket: daemon.Socket})
	if err != nil {
		return 0, 0, err
	}

	c := eager
	if s.waitEach {
		c = waiting
	}
	toggleProfile := func() error {
		if profile == "" {
			return nil
		}
		return syscall.Kill(daemon.Pid(), syscall.SIGUSR2)
	}
	if err := toggleProfile(); err != nil {
		return 0, 0, err
	}
	start := time.Now()
	net, _, err := client.Create[model.Network](ctx, c, client.Networks, map[string]any{"name": "bench"})
	if err != nil {
		return 0, 0, err
	}
	sn, _, err := client.Create[model.Subnet](ctx, c, client.Subnets, map[string]any{
		"network_id": net.ID, "cidr": "10.77.0.0/24", "ip_version": 4})
	if err != nil {
		return 0, 0, err
	}
	g, gctx := errgroup.WithContext(ctx)
	jobs := make(chan int)
	g.Go(func() error {
		defer close(jobs)
		for i := range n {
			select {
			case jobs <- i:
			case <-gctx.Done():
				return gctx.Err()
			}
		}
		return nil
	})
	for range s.clients {
		g.Go(func() error {
			for i := range jobs {
				inst, _, err := client.Create[model.Instance](gctx, c, client.Instances, map[string]any{"name": fmt.Sprintf("vm%d", i)})
				if err != nil {
					return err
				}
				_, _, err = client.Create[model.Port](gctx, c, client.Ports, map[string]any{
					"network_id": net.ID, "device_id": inst.ID,
					"fixed_ips": []any{map[string]any{"subnet_id": sn.ID, "ip_address": fmt.Sprintf("10.77.0.%d", 2+i)}},
				})
				if err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return 0, 0, err
	}
	if !s.waitEach {
		// One waited write: the server answers once the agent has
		// programmed its revision, which covers every write before it.
		_, meta, err := client.Update[model.Network](ctx, waiting, client.Networks, net.ID, map[string]any{"description": "built"})
		if err != nil {
			return 0, 0, err
		}
		if meta.Converged == nil || !*meta.Converged {
			return 0, 0, errors.New("the agent did not converge within a minute")
		}
	}
	took = time.Since(start)
	if err := toggleProfile(); err != nil {
		return 0, 0, err
	}

	last := fmt.Sprintf("10.77.0.%d", 1+n)
	if out, err := exec.CommandContext(ctx, "ip", "netns", "exec", prefix+"vm0", "ping", "-c1", "-W2", last).CombinedOutput(); err != nil {
		return 0, 0, fmt.Errorf("nsnet topology does not carry traffic: %v\n%s", err, out)
	}
	rss, err = peakRSSKiB(daemon.Pid())
	return took, rss, err
}

// teardownNsnet deletes everything through the API, as a user would, and
// fails if the daemon left a namespace behind. It does not stop at the
// first failure, and runs when the benchmark's context has ended.
func teardownNsnet(c *client.Client, prefix string) error {
	ctx := context.Background()
	var errs []error
	del := func(kind client.Collection, id string) {
		_, err := c.Delete(ctx, kind, id)
		errs = append(errs, err)
	}
	ports, err := client.List[model.Port](ctx, c, client.Ports, nil)
	errs = append(errs, err)
	for _, p := range ports {
		if p.DeviceOwner != model.DeviceOwnerDHCP { // goes with its network
			del(client.Ports, p.ID)
		}
	}
	insts, err := client.List[model.Instance](ctx, c, client.Instances, nil)
	errs = append(errs, err)
	for _, in := range insts {
		del(client.Instances, in.ID)
	}
	nets, err := client.List[model.Network](ctx, c, client.Networks, nil)
	errs = append(errs, err)
	for _, n := range nets {
		del(client.Networks, n.ID)
	}
	for _, ns := range lab.Namespaces(prefix) {
		if ns != prefix+"host" {
			errs = append(errs, fmt.Errorf("nsnet left namespace %s behind", ns))
		}
	}
	return errors.Join(errs...)
}

// timeShell builds the topology the way the seeds do: one ip command per
// step, run by a shell; then removes it.
func timeShell(ctx context.Context, dir string, n int) (time.Duration, error) {
	prefix := "bs" + lab.RandomHex(3) + "-"
	defer lab.RemoveNamespaces(prefix)
	host := prefix + "host"
	var sb strings.Builder
	fmt.Fprintf(&sb, "set -e\nip netns add %s\nip -n %s link add br0 type bridge\nip -n %s link set br0 up\n", host, host, host)
	for i := range n {
		vm, tap := fmt.Sprintf("%svm%d", prefix, i), fmt.Sprintf("tap%d", i)
		fmt.Fprintf(&sb, "ip netns add %s\n", vm)
		fmt.Fprintf(&sb, "ip -n %s link set lo up\n", vm)
		fmt.Fprintf(&sb, "ip -n %s link add %s type veth peer name eth0-%d\n", host, tap, i)
		fmt.Fprintf(&sb, "ip -n %s link set eth0-%d netns %s\n", host, i, vm)
		fmt.Fprintf(&sb, "ip -n %s link set eth0-%d name eth0\n", vm, i)
		fmt.Fprintf(&sb, "ip -n %s link set %s master br0\n", host, tap)
		fmt.Fprintf(&sb, "ip -n %s link set %s up\n", host, tap)
		fmt.Fprintf(&sb, "ip -n %s link set eth0 address fa:16:3e:77:00:%02x\n", vm, i)
		fmt.Fprintf(&sb, "ip -n %s addr add 10.77.0.%d/24 dev eth0\n", vm, 2+i)
		fmt.Fprintf(&sb, "ip -n %s link set eth0 up\n", vm)
		fmt.Fprintf(&sb, "ip -n %s route add default via 10.77.0.1\n", vm)
	}
	script := filepath.Join(dir, prefix+"build.sh")
	if err := os.WriteFile(script, []byte(sb.String()), 0o700); err != nil {
		return 0, err
	}
	start := time.Now()
	out, err := exec.CommandContext(ctx, "bash", script).CombinedOutput()
	took := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("ip script: %v\n%s", err, out)
	}
	last := fmt.Sprintf("10.77.0.%d", 1+n)
	if out, err := exec.CommandContext(ctx, "ip", "netns", "exec", prefix+"vm0", "ping", "-c1", "-W2", last).CombinedOutput(); err != nil {
		return 0, fmt.Errorf("ip-script topology does not carry traffic: %v\n%s", err, out)
	}
	return took, nil
}

func peakRSSKiB(pid int) (int, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kib int
			fmt.Sscanf(strings.TrimSpace(rest), "%d", &kib)
			return kib, nil
		}
	}
	return 0, nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond)) }
