// Command apiscale measures what one API request costs with 10, 1,000 and
// 10,000 ports in the store: POST /v2.0/ports, a page of ports
// (?limit=50), a filtered list (?device_id=X), GET of one port and POST of
// a floating IP (associated with a port behind a router), p50 and p99 of
// each, and each row's ratio to the smallest size's, measured in the same
// run.
//
// It measures the API alone: the service, the store and the HTTP server
// run in this process (no agent, no kernel, no root needed), served on
// TCP loopback, so that an agent pass cannot share the two cores with the
// request being timed — and so that -cpuprofile profiles the server.
//
// Each size gets a fresh store. The ports that fill it are copies of one
// port created through the API (new id, name, MAC, address and device),
// written to the store directly before the service that is measured
// opens it: filling 10,000 ports through an API whose every create reads
// every port would itself take many minutes (1,165 s in issue 16).
// -fill api creates them through the API instead, in bulk requests
// of -bulk ports, and reports how long that took.
//
//	go run ./bench/apiscale [-sizes 10,1000,10000] [-samples 50] [-fill store|api] [-cpuprofile FILE]
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/nsnet/nsnet/internal/api"
	"github.com/nsnet/nsnet/internal/lab"
	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/service"
	"github.com/nsnet/nsnet/internal/store"
)

func main() { lab.Main(run) }

// ops are the timed requests, in the order of the table.
var ops = []string{"POST /v2.0/ports", "GET /v2.0/ports?limit=50", "GET /v2.0/ports?device_id=X", "GET /v2.0/ports/{id}", "POST /v2.0/floatingips"}

func run(ctx context.Context) error {
	sizesFlag := flag.String("sizes", "10,1000,10000", "numbers of ports in the store")
	samples := flag.Int("samples", 50, "requests timed per operation and size")
	fill := flag.String("fill", "store", "how the store is filled: store (copies of one port, written directly) or api (bulk POSTs)")
	bulk := flag.Int("bulk", 200, "ports per bulk POST with -fill api")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the timed requests (all sizes) to this file")
	flag.Parse()
	var sizes []int
	for _, s := range strings.Split(*sizesFlag, ",") {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 60000 {
			return fmt.Errorf("bad size %q (1..60000: one /16)", s)
		}
		sizes = append(sizes, n)
	}
	if *fill != "store" && *fill != "api" {
		return fmt.Errorf("-fill is store or api, not %q", *fill)
	}
	dir, err := os.MkdirTemp("", "nsnet-apiscale-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	var prof *os.File
	if *cpuprofile != "" {
		if prof, err = os.Create(*cpuprofile); err != nil {
			return err
		}
		defer prof.Close()
	}
	// Every size's store is built first and stays open; then the rounds
	// alternate between the sizes, so that a busy moment of the machine
	// (other work on its two cores) falls on all of them alike and the
	// ratios hold.
	labs := map[int]*sized{}
	defer func() {
		for _, l := range labs {
			l.close()
		}
	}()
	for _, n := range sizes {
		if err := ctx.Err(); err != nil {
			return err
		}
		l, err := build(ctx, filepath.Join(dir, fmt.Sprintf("%d.db", n)), n, *fill, *bulk)
		if err != nil {
			return fmt.Errorf("%d ports: %w", n, err)
		}
		labs[n] = l
		log.Printf("%d ports: filled in %v", n, l.fillTook.Round(time.Millisecond))
	}
	res := map[int]map[string][]time.Duration{}
	for _, n := range sizes {
		// A few untimed rounds first: the first requests of a fresh
		// server pay for connections and cold caches.
		if _, err := rounds(ctx, labs[n].c, labs[n].w, 3); err != nil {
			return fmt.Errorf("%d ports: %w", n, err)
		}
		res[n] = map[string][]time.Duration{}
	}
	if prof != nil {
		if err := pprof.StartCPUProfile(prof); err != nil {
			return err
		}
	}
	for i := range *samples {
		for _, n := range sizes {
			r, err := rounds(ctx, labs[n].c, labs[n].w, 1)
			if err != nil {
				pprof.StopCPUProfile()
				return fmt.Errorf("%d ports: %w", n, err)
			}
			for op, ds := range r {
				res[n][op] = append(res[n][op], ds...)
			}
		}
		if (i+1)%10 == 0 {
			log.Printf("%d/%d rounds", i+1, *samples)
		}
	}
	if prof != nil {
		pprof.StopCPUProfile()
	}

	base := sizes[0]
	fmt.Printf("\nAPI only (service, store and HTTP in one process, TCP loopback), %d requests per cell, sizes alternating round by round: p50 (p99), ratio of p50 to the %d row\n\n", *samples, base)
	fmt.Printf("%-30s", "ports in the store")
	for _, n := range sizes {
		fmt.Printf(" | %-24d", n)
	}
	fmt.Println()
	for _, op := range ops {
		fmt.Printf("%-30s", op)
		b := pct(res[base][op], 50)
		for _, n := range sizes {
			p50, p99 := pct(res[n][op], 50), pct(res[n][op], 99)
			fmt.Printf(" | %-24s", fmt.Sprintf("%s (%s) %.2fx", ms(p50), ms(p99), float64(p50)/float64(b)))
		}
		fmt.Println()
	}
	fmt.Printf("%-30s", "fill ("+*fill+")")
	for _, n := range sizes {
		fmt.Printf(" | %-24s", labs[n].fillTook.Round(time.Millisecond).String())
	}
	fmt.Println()
	fmt.Printf("\nreproduce: go run ./bench/apiscale -sizes %s -samples %d -fill %s\n", *sizesFlag, *samples, *fill)
	return nil
}

// sized is one size's store, served.
type sized struct {
	st       store.Store
	srv      *httptest.Server
	c        *client
	w        *world
	fillTook time.Duration
}

func (l *sized) close() {
	l.srv.Close()
	l.st.Close()
}

// build makes a store of n ports in file and serves it.
func build(ctx context.Context, file string, n int, fill string, bulk int) (*sized, error) {
	st, err := store.OpenBolt(file)
	if err != nil {
		return nil, err
	}
	l := &sized{st: st, srv: serve(st)}
	l.c = &client{base: l.srv.URL, http: l.srv.Client()}
	if l.w, err = setup(ctx, l.c); err != nil {
		l.close()
		return nil, err
	}
	start := time.Now()
	switch fill {
	case "api":
		err = fillAPI(ctx, l.c, l.w, n, bulk)
	case "store":
		// The measured service must open a store it has not seen, as a
		// daemon opens its state at start.
		l.srv.Close()
		err = fillStore(ctx, st, l.w, n)
		l.srv = serve(st)
		l.c = &client{base: l.srv.URL, http: l.srv.Client()}
	}
	l.fillTook = time.Since(start)
	if err != nil {
		l.close()
		return nil, err
	}
	return l, nil
}

// serve runs the API over st on a loopback TCP port, as the unix socket's
// caller (the admin). Quotas are high, not unlimited, so that every
// create still counts the project's ports.
func serve(st store.Store) *httptest.Server {
	svc := service.New(service.Config{Store: st, Quotas: map[string]int{"port": 1_000_000, "floatingip": 1_000_000}})
	h := api.New(api.Config{Service: svc}).TrustedHandler()
	return httptest.NewServer(h)
}

// world is what setup made through the API.
type world struct {
	network, subnet, external, router string
	template                          model.Port
}

func setup(ctx context.Context, c *client) (*world, error) {
	w := &world{}
	var ext, net model.Network
	var sn model.Subnet
	var rt model.Router
	steps := []struct {
		path string
		body any
		out  any
	}{
		{"/v2.0/networks", map[string]any{"network": map[string]any{"name": "public", "router:external": true}}, &struct{ Network *model.Network }{&ext}},
		{"/v2.0/networks", map[string]any{"network": map[string]any{"name": "bench"}}, &struct{ Network *model.Network }{&net}},
	}
	for _, s := range steps {
		if err := c.do(ctx, "POST", s.path, s.body, s.out); err != nil {
			return nil, err
		}
	}
	if err := c.do(ctx, "POST", "/v2.0/subnets", map[string]any{"subnet": map[string]any{
		"network_id": ext.ID, "cidr": "172.24.0.0/16", "ip_version": 4, "enable_dhcp": false}}, nil); err != nil {
		return nil, err
	}
	// No DHCP: its port would be one more the agent (absent here) serves.
	if err := c.do(ctx, "POST", "/v2.0/subnets", map[string]any{"subnet": map[string]any{
		"network_id": net.ID, "cidr": "10.96.0.0/16", "ip_version": 4, "enable_dhcp": false}},
		&struct{ Subnet *model.Subnet }{&sn}); err != nil {
		return nil, err
	}
	if err := c.do(ctx, "POST", "/v2.0/routers", map[string]any{"router": map[string]any{
		"name": "r", "external_gateway_info": map[string]any{"network_id": ext.ID}}},
		&struct{ Router *model.Router }{&rt}); err != nil {
		return nil, err
	}
	if err := c.do(ctx, "PUT", "/v2.0/routers/"+rt.ID+"/add_router_interface", map[string]any{"subnet_id": sn.ID}, nil); err != nil {
		return nil, err
	}
	if err := c.do(ctx, "POST", "/v2.0/ports", map[string]any{"port": map[string]any{
		"network_id": net.ID, "name": "template", "device_id": "dev-template"}},
		&struct{ Port *model.Port }{&w.template}); err != nil {
		return nil, err
	}
	w.network, w.subnet, w.external, w.router = net.ID, sn.ID, ext.ID, rt.ID
	return w, nil
}

// fillAddr is the address of the i-th filling port: from 10.96.1.0 up,
// clear of the gateway, the router's interface and the template.
func fillAddr(i int) netip.Addr {
	a := netip.MustParseAddr("10.96.1.0").As4()
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3]) + uint32(i)
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// deviceOf gives every two filling ports one device, which the filtered
// list asks for.
func deviceOf(i int) string { return fmt.Sprintf("dev-%d", i/2) }

// fillStore writes n copies of the template port, a thousand per
// transaction. It reads the template as stored, so that the copies carry
// every attribute the service stored for it.
func fillStore(ctx context.Context, st store.Store, w *world, n int) error {
	var tmpl map[string]any
	if err := st.View(ctx, func(r store.Reader) error { return r.Get(store.Ports, w.template.ID, &tmpl) }); err != nil {
		return fmt.Errorf("read template port: %w", err)
	}
	for from := 0; from < n; from += 1000 {
		_, err := st.Update(ctx, func(tx store.Txn) error {
			for i := from; i < min(n, from+1000); i++ {
				p := map[string]any{}
				for k, v := range tmpl {
					p[k] = v
				}
				id := uuid.NewString()
				p["id"], p["name"], p["device_id"] = id, fmt.Sprintf("fill-%d", i), deviceOf(i)
				p["mac_address"] = fmt.Sprintf("fa:16:3e:%02x:%02x:%02x", byte(i>>16), byte(i>>8), byte(i))
				p["fixed_ips"] = []model.FixedIP{{SubnetID: w.subnet, IPAddress: fillAddr(i).String()}}
				if err := tx.Put(store.Ports, id, p); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// fillAPI creates n ports in bulk requests, each with the address and MAC
// fillStore would give it.
func fillAPI(ctx context.Context, c *client, w *world, n, bulk int) error {
	for from := 0; from < n; from += bulk {
		var ports []any
		for i := from; i < min(n, from+bulk); i++ {
			ports = append(ports, map[string]any{
				"network_id": w.network, "name": fmt.Sprintf("fill-%d", i), "device_id": deviceOf(i),
				"mac_address": fmt.Sprintf("fa:16:3e:%02x:%02x:%02x", byte(i>>16), byte(i>>8), byte(i)),
				"fixed_ips":   []any{map[string]any{"subnet_id": w.subnet, "ip_address": fillAddr(i).String()}},
			})
		}
		if err := c.do(ctx, "POST", "/v2.0/ports", map[string]any{"ports": ports}, nil); err != nil {
			return err
		}
	}
	return nil
}

// rounds times k rounds of the five requests, interleaved so that a slow
// moment of the machine spreads over all of them.
func rounds(ctx context.Context, c *client, w *world, k int) (map[string][]time.Duration, error) {
	out := map[string][]time.Duration{}
	timed := func(op, method, path string, body, into any) error {
		start := time.Now()
		err := c.do(ctx, method, path, body, into)
		out[op] = append(out[op], time.Since(start))
		if err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
		return nil
	}
	for i := range k {
		var p model.Port
		var page struct{ Ports []model.Port }
		var filtered struct{ Ports []model.Port }
		dev := deviceOf(2 * (i % 5))
		if err := timed(ops[0], "POST", "/v2.0/ports", map[string]any{"port": map[string]any{
			"network_id": w.network, "name": "timed", "device_id": "dev-timed"}}, &struct{ Port *model.Port }{&p}); err != nil {
			return nil, err
		}
		if err := timed(ops[1], "GET", "/v2.0/ports?limit=50", nil, &page); err != nil {
			return nil, err
		}
		if len(page.Ports) == 0 {
			return nil, errors.New("a page of ports is empty")
		}
		if err := timed(ops[2], "GET", "/v2.0/ports?device_id="+dev, nil, &filtered); err != nil {
			return nil, err
		}
		if err := timed(ops[3], "GET", "/v2.0/ports/"+p.ID, nil, nil); err != nil {
			return nil, err
		}
		if err := timed(ops[4], "POST", "/v2.0/floatingips", map[string]any{"floatingip": map[string]any{
			"floating_network_id": w.external, "port_id": p.ID}}, nil); err != nil {
			return nil, err
		}
	}
	return out, nil
}

type client struct {
	base string
	http *http.Client
}

func (c *client) do(ctx context.Context, method, path string, body, into any) error {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, raw)
	}
	if into == nil {
		return nil
	}
	return json.Unmarshal(raw, into)
}

// pct is the p-th percentile (nearest rank) of ds.
func pct(ds []time.Duration, p int) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(0, min(len(s)-1, i-1))]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }
