package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nsnet/nsnet/internal/lab"
	"github.com/nsnet/nsnet/internal/model"
)

// The perfdhcp mode measures the servers rather than their clients: ISC's
// perfdhcp (Debian's kea-admin) runs DHCP exchanges (DISCOVER, OFFER,
// REQUEST, ACK) from the client namespace, processes of their own (see
// generator), against each server in turn, with the MACs of the network's
// static hosts (both servers answer only those). It acts as a relay agent,
// as perfdhcp always does for DHCPv4: requests go to the server's address
// with giaddr set to the client's, and replies come back to that address,
// port 67.
// So both servers take the same way, their UDP sockets, to and from one
// veth on the network's bridge: no broadcast flooded to the instances,
// no reply to a hardware address that is not the client's.
//
// Both servers serve the network at once (each only sees what is sent to
// its address), and every step runs one then the other, alternating which
// goes first, so that the shared machine's moments fall on both alike.

// perfdhcpRates is the ladder of exchange rates (4-way exchanges per
// second) tried, until each server loses exchanges.
var perfdhcpRates = []int{250, 500, 1000, 1500, 2000, 3000, 4000, 6000, 8000, 12000, 16000, 24000, 32000}

// perfStats is one of perfdhcp's "Statistics for" blocks: one half of the
// exchange (DISCOVER-OFFER or REQUEST-ACK).
type perfStats struct {
	sent, received, drops, orphans, rejected int
	min, avg, max                            time.Duration
}

// perfRun is what one perfdhcp run reported.
type perfRun struct {
	do, ra perfStats
	// rate is perfdhcp's "Rate:" line, exchanges per second over its
	// whole run.
	rate float64
	// took and resent are the avalanche's: the time to provision every
	// client, and the requests sent again.
	took   time.Duration
	resent int
	// cpu is the server process's CPU time during the run.
	cpu time.Duration
	// clientDrops and serverDrops are the UDP receive-buffer drops in
	// the client's and the server's namespace during the run, softnet
	// the machine's backlog drops: where lost exchanges were lost.
	clientDrops, serverDrops, softnet int64
}

// lost is the exchanges perfdhcp gave up on (no reply within its 1 s
// drop time), either half.
func (r perfRun) lost() int { return r.do.sent - r.do.received + r.ra.sent - r.ra.received }

// where is where datagrams were dropped during the run.
func (r perfRun) where() string {
	return fmt.Sprintf("drops: client socket %d, server socket %d, softnet %d", r.clientDrops, r.serverDrops, r.softnet)
}

// completed is the 4-way exchanges completed: ACKs received.
func (r perfRun) completed() int { return r.ra.received }

var (
	perfBlock = regexp.MustCompile(`^\*\*\*Statistics for: (DISCOVER-OFFER|REQUEST-ACK)\*\*\*$`)
	perfField = regexp.MustCompile(`^(sent packets|received packets|drops|orphans|rejected leases|min delay|avg delay|max delay): ([0-9.]+)`)
	perfRate  = regexp.MustCompile(`^Rate: ([0-9.]+)`)
	perfTook  = regexp.MustCompile(`^It took (\d+):(\d+):([0-9.]+) to provision (\d+) clients`)
	perfResnt = regexp.MustCompile(`^Requests resent: (\d+)`)
)

// parsePerfdhcp reads perfdhcp's final report.
func parsePerfdhcp(out string) (perfRun, error) {
	var r perfRun
	var cur *perfStats
	blocks := 0
	for line := range strings.Lines(out) {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "***Statistics for:") {
			// Renewals and releases (-f, -F) have blocks of their
			// own, which are not the exchange's.
			cur = nil
			if m := perfBlock.FindStringSubmatch(line); m != nil {
				cur = &r.do
				if m[1] == "REQUEST-ACK" {
					cur = &r.ra
				}
				blocks++
			}
			continue
		}
		if m := perfRate.FindStringSubmatch(line); m != nil {
			r.rate, _ = strconv.ParseFloat(m[1], 64)
			continue
		}
		if m := perfTook.FindStringSubmatch(line); m != nil {
			h, _ := strconv.Atoi(m[1])
			mi, _ := strconv.Atoi(m[2])
			s, _ := strconv.ParseFloat(m[3], 64)
			r.took = time.Duration((float64(h*3600+mi*60) + s) * float64(time.Second))
			continue
		}
		if m := perfResnt.FindStringSubmatch(line); m != nil {
			r.resent, _ = strconv.Atoi(m[1])
			continue
		}
		m := perfField.FindStringSubmatch(line)
		if m == nil || cur == nil {
			continue
		}
		v, err := strconv.ParseFloat(m[2], 64)
		if err != nil {
			return r, fmt.Errorf("perfdhcp: %q: %w", line, err)
		}
		ms := time.Duration(v * float64(time.Millisecond))
		switch m[1] {
		case "sent packets":
			cur.sent = int(v)
		case "received packets":
			cur.received = int(v)
		case "drops":
			cur.drops = int(v)
		case "orphans":
			cur.orphans = int(v)
		case "rejected leases":
			cur.rejected = int(v)
		case "min delay":
			cur.min = ms
		case "avg delay":
			cur.avg = ms
		case "max delay":
			cur.max = ms
		}
	}
	if blocks != 2 {
		return r, fmt.Errorf("perfdhcp: %d statistics blocks, want DISCOVER-OFFER and REQUEST-ACK:\n%s", blocks, out)
	}
	return r, nil
}

// generator is one perfdhcp process: its local address on the client's
// veth (a relay's address, where its replies come back) and its share of
// the clients. perfdhcp reads replies into one socket with the machine's
// default receive buffer (net.core.rmem_default, read-only in a namespace)
// from one thread: a server that answers faster than that thread reads
// loses replies there. Several processes, each with its own socket and a
// share of the clients and of the rate, read more.
type generator struct {
	addr netip.Addr
	macs string // file of its clients' MACs, one a line
	n    int
}

// generators makes k generators on the client's veth, the first on its
// address and the others on addresses added below it, each with every
// k-th instance's MAC (no more generators than instances: perfdhcp needs
// a client).
func (w *world) generators(k int) ([]generator, error) {
	gens := make([]generator, min(k, len(w.instances)))
	addr := netip.MustParseAddr(clientAddr)
	for g := range gens {
		var macs strings.Builder
		for i := g; i < len(w.instances); i += len(gens) {
			macs.WriteString(w.instances[i].mac + "\n")
			gens[g].n++
		}
		gens[g].addr, gens[g].macs = addr, filepath.Join(w.dir, fmt.Sprintf("perfdhcp-macs-%d", g))
		if err := os.WriteFile(gens[g].macs, []byte(macs.String()), 0o644); err != nil {
			return nil, err
		}
		if g > 0 {
			if err := command("ip", "-n", w.prefix+"client", "addr", "add", addr.String()+"/16", "dev", "bv0").err; err != nil {
				return nil, err
			}
		}
		addr = addr.Prev()
	}
	return gens, nil
}

// perfdhcp runs every generator at once against server s, generator g
// with args(g) (a rate and period, or a scenario), while busy loops spin,
// and returns their reports merged. Exit status 3 (some exchanges not
// completed) is a result, not an error.
func (w *world) perfdhcp(s *perfServer, gens []generator, busy int, args func(g int) []string) (perfRun, error) {
	cmds := make([]*exec.Cmd, len(gens))
	outs := make([]bytes.Buffer, len(gens))
	for g, gen := range gens {
		argv := append([]string{"netns", "exec", w.prefix + "client", "perfdhcp", "-4", "-l", gen.addr.String(),
			"-M", gen.macs, "-R", strconv.Itoa(gen.n)}, args(g)...)
		cmds[g] = exec.Command("ip", append(argv, s.addr.String())...)
		cmds[g].Stdout, cmds[g].Stderr = &outs[g], &outs[g]
	}
	client0, err := udpRcvbufErrors(w.prefix + "client")
	if err != nil {
		return perfRun{}, err
	}
	server0, err := udpRcvbufErrors(s.netns)
	if err != nil {
		return perfRun{}, err
	}
	soft0 := softnetDrops()
	stopBusy := spin(busy)
	cpu0 := processCPU(s.pid)
	errs := make([]error, len(cmds))
	for g, cmd := range cmds {
		errs[g] = cmd.Start()
	}
	for g, cmd := range cmds {
		if errs[g] == nil {
			errs[g] = cmd.Wait()
		}
	}
	cpu := processCPU(s.pid) - cpu0
	stopBusy()
	soft := softnetDrops() - soft0
	client1, cerr := udpRcvbufErrors(w.prefix + "client")
	server1, serr := udpRcvbufErrors(s.netns)
	if err := errors.Join(cerr, serr); err != nil {
		return perfRun{}, err
	}
	var runs []perfRun
	for g, err := range errs {
		var exit *exec.ExitError
		if err != nil && !(errors.As(err, &exit) && exit.ExitCode() == 3) {
			return perfRun{}, fmt.Errorf("perfdhcp %s: %v\n%s", strings.Join(args(g), " "), err, outs[g].String())
		}
		r, err := parsePerfdhcp(outs[g].String())
		if err == nil && (r.do.rejected > 0 || r.ra.rejected > 0) {
			err = fmt.Errorf("perfdhcp %s: rejected leases:\n%s", strings.Join(args(g), " "), outs[g].String())
		}
		if err != nil {
			return perfRun{}, err
		}
		runs = append(runs, r)
	}
	r := mergePerf(runs)
	r.cpu, r.clientDrops, r.serverDrops, r.softnet = cpu, client1-client0, server1-server0, soft
	return r, nil
}

// mergePerf is the reports of generators that ran at once as one: counts
// and rates added, average delays weighted by the replies received, the
// longest time to provision.
func mergePerf(runs []perfRun) perfRun {
	var m perfRun
	merge := func(to *perfStats, from perfStats) {
		if from.received > 0 && (to.received == 0 || from.min < to.min) {
			to.min = from.min
		}
		if to.received+from.received > 0 {
			to.avg = (to.avg*time.Duration(to.received) + from.avg*time.Duration(from.received)) / time.Duration(to.received+from.received)
		}
		to.max = max(to.max, from.max)
		to.sent += from.sent
		to.received += from.received
		to.drops += from.drops
		to.orphans += from.orphans
		to.rejected += from.rejected
	}
	for _, r := range runs {
		merge(&m.do, r.do)
		merge(&m.ra, r.ra)
		m.rate += r.rate
		m.took = max(m.took, r.took)
		m.resent += r.resent
	}
	return m
}

// split is generator g's share of rate, of k generators.
func split(rate, g, k int) int {
	share := rate / k
	if g < rate%k {
		share++
	}
	return share
}

// perfServer is one server as the perfdhcp mode drives it.
type perfServer struct {
	name, netns string
	addr        netip.Addr
	pid         int
	// steps are the ladder's runs, one per rate tried; sustained is
	// the highest rate with no exchange lost, failed the first with
	// losses (0: none).
	steps             []perfRun
	sustained, failed int
	avalanches        []perfRun
	unlimited         perfRun
	// idle is the server process's CPU time over one period without
	// load: what the daemon does besides DHCP (its agent's passes).
	idle time.Duration
}

// avalanches is how many avalanches each server gets.
const avalanches = 3

// avalanche sums the server's avalanches, but for took: their median.
func (s *perfServer) avalanche() perfRun {
	var sum perfRun
	var took []time.Duration
	for _, r := range s.avalanches {
		sum.resent += r.resent
		sum.clientDrops += r.clientDrops
		sum.serverDrops += r.serverDrops
		took = append(took, r.took)
	}
	sum.took = lab.Median(took)
	return sum
}

// perfdhcpMode serves the network with both servers at once and measures
// each with perfdhcp: an avalanche of every client at once, the ladder of
// rates, and sending as fast as perfdhcp can; then prints the table.
func (w *world) perfdhcpMode(ctx context.Context, generators int, period time.Duration, busy int) (err error) {
	gens, err := w.generators(generators)
	if err != nil {
		return err
	}
	var servers []*perfServer
	for _, name := range []string{"nsnet", "dnsmasq"} {
		addr, stop, serr := w.serve(name)
		if serr != nil {
			return fmt.Errorf("%s: %w", name, serr)
		}
		defer func() { err = errors.Join(err, stop()) }()
		ns := w.prefix + "dnsmasq"
		if name == "nsnet" {
			ns = model.DHCPNetns(w.prefix, w.networkID)
		}
		servers = append(servers, &perfServer{name: name, netns: ns, addr: addr, pid: w.serverPid})
	}
	secs := strconv.FormatFloat(period.Seconds(), 'f', -1, 64)
	cpu0 := []time.Duration{processCPU(servers[0].pid), processCPU(servers[1].pid)}
	time.Sleep(period)
	for i, s := range servers {
		s.idle = processCPU(s.pid) - cpu0[i]
	}
	// Each step alternates which server goes first.
	each := func(step int, f func(s *perfServer) error) error {
		order := []*perfServer{servers[0], servers[1]}
		if step%2 == 1 {
			order[0], order[1] = order[1], order[0]
		}
		for _, s := range order {
			if err := f(s); err != nil {
				return fmt.Errorf("%s: %w", s.name, err)
			}
		}
		return nil
	}
	// The avalanche: every client's DISCOVER at once, each resent with
	// backoff (a second and more) until answered; the time until all are
	// bound. One lost datagram costs a backoff, so it is run a few times.
	for i := range avalanches {
		if err := each(i, func(s *perfServer) error {
			r, err := w.perfdhcp(s, gens, busy, func(int) []string { return []string{"--scenario", "avalanche"} })
			if err != nil {
				return err
			}
			log.Printf("perfdhcp avalanche: %-7s %d clients in %v, %d resent; %s", s.name, r.ra.received, r.took, r.resent, r.where())
			s.avalanches = append(s.avalanches, r)
			return nil
		}); err != nil {
			return err
		}
	}
	for i, rate := range perfdhcpRates {
		if err := ctx.Err(); err != nil {
			return err
		}
		if servers[0].failed != 0 && servers[1].failed != 0 {
			break
		}
		if err := each(i, func(s *perfServer) error {
			if s.failed != 0 {
				return nil
			}
			// A loss is tried again once: one stall of the shared
			// machine is not the server's capacity.
			var r perfRun
			for try := 0; try < 2; try++ {
				var err error
				// -W: wait a second at the end for the replies still
				// on their way, which are not lost.
				if r, err = w.perfdhcp(s, gens, busy, func(g int) []string {
					return []string{"-r", strconv.Itoa(split(rate, g, len(gens))), "-p", secs, "-W", "1000000"}
				}); err != nil {
					return err
				}
				log.Printf("perfdhcp %5d/s: %-7s %d exchanges, %d lost, delay avg %v+%v max %v/%v; %s", rate, s.name,
					r.completed(), r.lost(), r.do.avg, r.ra.avg, r.do.max, r.ra.max, r.where())
				if r.lost() == 0 {
					break
				}
			}
			s.steps = append(s.steps, r)
			if r.lost() == 0 {
				s.sustained = rate
			} else {
				s.failed = rate
			}
			return nil
		}); err != nil {
			return err
		}
	}
	// As fast as perfdhcp sends (no -r): what each server completes
	// when offered more than it can take.
	if err := each(1, func(s *perfServer) (err error) {
		if s.unlimited, err = w.perfdhcp(s, gens, busy, func(int) []string { return []string{"-p", secs, "-W", "1000000"} }); err != nil {
			return err
		}
		log.Printf("perfdhcp unlimited: %-7s %d exchanges in %s s, %d lost; %s", s.name, s.unlimited.completed(), secs, s.unlimited.lost(), s.unlimited.where())
		return nil
	}); err != nil {
		return err
	}
	printPerfdhcp(servers[0], servers[1], len(w.instances), len(gens), period, busy)
	return nil
}

// printPerfdhcp prints the perfdhcp mode's table.
func printPerfdhcp(n, d *perfServer, clients, gens int, period time.Duration, busy int) {
	fmt.Printf("\nperfdhcp (ISC, Debian's kea-admin) against each server: relays on the network's bridge, %d at once, %d static hosts' MACs, %d busy loops\n\n", gens, clients, busy)
	fmt.Printf("%-44s %14s %14s %9s\n", "", "nsnet", "dnsmasq", "ratio")
	na, da := n.avalanche(), d.avalanche()
	fmt.Printf("%-44s %14s %14s %8.2fx  (dnsmasq / nsnet; median of %d)\n", fmt.Sprintf("avalanche: %d clients at once, all bound in", clients),
		short(na.took), short(da.took), float64(da.took)/float64(na.took), avalanches)
	fmt.Printf("%-44s %14d %14d  (all %d)\n", "  requests resent", na.resent, da.resent, avalanches)
	fmt.Printf("%-44s %14s %14s  (UDP receive-buffer drops, all %d)\n", "  dropped at perfdhcp's socket / server's",
		fmt.Sprintf("%d / %d", na.clientDrops, na.serverDrops), fmt.Sprintf("%d / %d", da.clientDrops, da.serverDrops), avalanches)
	fmt.Printf("\n%-10s %-44s %-44s\n", "rate /s", "nsnet: done, lost, delay avg (max) D-O + R-A", "dnsmasq")
	for i, rate := range perfdhcpRates {
		if i >= len(n.steps) && i >= len(d.steps) {
			break
		}
		fmt.Printf("%-10d %-44s %-44s\n", rate, perfStep(n.steps, i), perfStep(d.steps, i))
	}
	fmt.Println()
	top := min(n.sustained, d.sustained)
	ratio := "      -  "
	if d.sustained > 0 {
		ratio = fmt.Sprintf("%8.2fx", float64(n.sustained)/float64(d.sustained))
	}
	fmt.Printf("%-44s %14s %14s %s  (nsnet / dnsmasq)\n", fmt.Sprintf("highest rate with no exchange lost (%ss)", strconv.FormatFloat(period.Seconds(), 'f', -1, 64)),
		sustained(n), sustained(d), ratio)
	for _, s := range []*perfServer{n, d} {
		if s.failed == 0 {
			continue
		}
		// Where the first losses were: a server that dropped nothing
		// itself was not at its limit, perfdhcp's receiving was.
		r := s.steps[len(s.steps)-1]
		if r.serverDrops == 0 && r.clientDrops > 0 {
			fmt.Printf("  %s at %d/s: %d dropped at perfdhcp's socket, none at the server's: the load generator's limit, a lower bound for the server\n",
				s.name, s.failed, r.clientDrops)
		} else {
			fmt.Printf("  %s at %d/s: %d dropped at the server's socket, %d at perfdhcp's\n", s.name, s.failed, r.serverDrops, r.clientDrops)
		}
	}
	if top > 0 {
		i := slices.Index(perfdhcpRates, top)
		na, da := n.steps[i].do.avg+n.steps[i].ra.avg, d.steps[i].do.avg+d.steps[i].ra.avg
		fmt.Printf("%-44s %14s %14s %8.2fx  (dnsmasq / nsnet)\n", fmt.Sprintf("exchange delay at %d/s, avg (D-O + R-A)", top), short(na), short(da), float64(da)/float64(na))
		fmt.Printf("%-44s %14s %14s\n", "  max (D-O, R-A)", short(max(n.steps[i].do.max, n.steps[i].ra.max)), short(max(d.steps[i].do.max, d.steps[i].ra.max)))
	}
	nu, du := float64(n.unlimited.completed())/period.Seconds(), float64(d.unlimited.completed())/period.Seconds()
	fmt.Printf("%-44s %14.0f %14.0f %8.2fx  (nsnet / dnsmasq)\n", "exchanges/s, perfdhcp sending unlimited", nu, du, nu/du)
	fmt.Printf("%-44s %14s %14s  (UDP receive-buffer drops)\n", "  dropped at perfdhcp's socket / server's",
		fmt.Sprintf("%d / %d", n.unlimited.clientDrops, n.unlimited.serverDrops), fmt.Sprintf("%d / %d", d.unlimited.clientDrops, d.unlimited.serverDrops))
	nc, dc := cpuPerExchange(n), cpuPerExchange(d)
	fmt.Printf("%-44s %14s %14s %8.2fx  (dnsmasq / nsnet; the daemon, all of it, or dnsmasq)\n", "server CPU per exchange, over the ladder", us(nc), us(dc), float64(dc)/float64(nc))
	fmt.Printf("%-44s %14s %14s  (%ss without load)\n", "server CPU while idle", ms(n.idle), ms(d.idle), strconv.FormatFloat(period.Seconds(), 'f', -1, 64))
}

// perfStep is one server's cell of the ladder's table: step i, or blank.
func perfStep(steps []perfRun, i int) string {
	if i >= len(steps) {
		return ""
	}
	r := steps[i]
	return fmt.Sprintf("%6d %5d %s (%s) + %s (%s)", r.completed(), r.lost(), short(r.do.avg), short(r.do.max), short(r.ra.avg), short(r.ra.max))
}

// sustained is a server's highest rate without loss, marked when it
// never lost one (the ladder's top, not the server's).
func sustained(s *perfServer) string {
	if s.failed == 0 {
		return fmt.Sprintf("≥ %d", s.sustained)
	}
	return strconv.Itoa(s.sustained)
}

// cpuPerExchange is the server's CPU time per completed exchange over the
// whole ladder.
func cpuPerExchange(s *perfServer) time.Duration {
	var cpu time.Duration
	var done int
	for _, r := range s.steps {
		cpu += r.cpu
		done += r.completed()
	}
	return cpu / time.Duration(max(1, done))
}
