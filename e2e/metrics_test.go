package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nsnet/nsnet/internal/lab"
)

// prometheus is a real Prometheus (Debian's package) run by a test as a
// plain process, with its configuration and its database in a temporary
// directory and its web API on a free loopback port.
type prometheus struct {
	URL string // http://127.0.0.1:PORT
	cmd *exec.Cmd
	log lab.SyncBuffer
}

// startPrometheus scrapes target (host:port, path /metrics) every second,
// as job "nsnet", until t ends.
func startPrometheus(t *testing.T, target string) *prometheus {
	t.Helper()
	const bin = "/usr/bin/prometheus"
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s is missing: scripts/deps.sh installs Debian's prometheus package", bin)
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "prometheus.yml")
	err := os.WriteFile(conf, []byte(fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: nsnet
    static_configs:
      - targets: [%q]
`, target)), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	addr := freeLoopbackAddr(t)
	p := &prometheus{URL: "http://" + addr}
	p.cmd = exec.Command(bin, "--config.file", conf, "--storage.tsdb.path", filepath.Join(dir, "data"),
		"--web.listen-address", addr)
	p.cmd.Dir = dir
	p.cmd.Stdout, p.cmd.Stderr = &p.log, &p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start prometheus: %v", err)
	}
	t.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { p.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			p.cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("prometheus log:\n%s", p.log.String())
		}
	})
	return p
}

// promSample is one element of an instant vector as the query API
// returns it: the series' labels and [time, "value"].
type promSample struct {
	Metric map[string]string  `json:"metric"`
	Value  [2]json.RawMessage `json:"value"`
}

// promQueryResponse is the body of GET /api/v1/query.
type promQueryResponse struct {
	Status    string `json:"status"`
	ErrorType string `json:"errorType"`
	Error     string `json:"error"`
	Data      struct {
		ResultType string       `json:"resultType"`
		Result     []promSample `json:"result"`
	} `json:"data"`
}

// query runs a PromQL instant query and returns its samples' values, by
// their series' labels rendered as Prometheus renders them.
func (p *prometheus) query(q string) ([]promSample, error) {
	resp, err := http.Get(p.URL + "/api/v1/query?" + url.Values{"query": {q}}.Encode())
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	var r promQueryResponse
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("query %q: %s: %w (%s)", q, resp.Status, err, raw)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("query %q: %s %s: %s", q, r.Status, r.ErrorType, r.Error)
	}
	if r.Data.ResultType != "vector" {
		return nil, fmt.Errorf("query %q: result type %q, want vector", q, r.Data.ResultType)
	}
	return r.Data.Result, nil
}

// value is a sample's value.
func (s promSample) value() (float64, error) {
	var v string
	if err := json.Unmarshal(s.Value[1], &v); err != nil {
		return 0, fmt.Errorf("sample value %s: %w", s.Value[1], err)
	}
	return strconv.ParseFloat(v, 64)
}

// scalar runs a query that must answer exactly one sample.
func (p *prometheus) scalar(q string) (float64, error) {
	samples, err := p.query(q)
	if err != nil {
		return 0, err
	}
	if len(samples) != 1 {
		return 0, fmt.Errorf("query %q: %d samples, want 1: %v", q, len(samples), samples)
	}
	return samples[0].value()
}

// TestPrometheusScrapesMetrics: a real Prometheus scrapes the daemon's
// --metrics-listen address (no token) and answers PromQL about the API's
// requests, the agent's passes and the objects' statuses. On the API's
// TCP listener, /metrics needs an admin token.
func TestPrometheusScrapesMetrics(t *testing.T) {
	metricsAddr := freeLoopbackAddr(t)
	e := Start(t, WithTCP(), WithDaemonArgs("--metrics-listen", metricsAddr))

	for _, tc := range []struct {
		url, token string
		want       int
	}{
		{"http://" + metricsAddr + "/metrics", "", 200},
		{"http://" + metricsAddr + "/v2.0/networks", "", 404}, // the metrics address serves nothing else
		{e.Endpoint + "/metrics", "", 401},
		{e.Endpoint + "/metrics", e.Token, 200},
	} {
		req, _ := http.NewRequest("GET", tc.url, nil)
		if tc.token != "" {
			req.Header.Set("X-Auth-Token", tc.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("GET %s (token %v): %d, want %d", tc.url, tc.token != "", resp.StatusCode, tc.want)
		}
	}

	net1 := e.MustAPI("POST", "/v2.0/networks", map[string]any{"network": map[string]any{"name": "n1"}})["network"].(map[string]any)["id"].(string)
	e.MustNsnet("network", "create", "public", "--external")
	e.MustNsnet("subnet", "create", "public-v4", "--network", "public", "--subnet-range", "198.51.100.0/24", "--no-dhcp")
	e.MustNsnet("subnet", "create", "s1", "--network", "n1", "--subnet-range", "10.62.0.0/24")
	e.MustNsnet("instance", "create", "vm1")
	e.MustNsnet("port", "create", "vm1-eth0", "--network", "n1", "--device", "vm1")
	r1 := jsonOf(t, e.MustNsnet("router", "create", "r1", "--external-gateway", "public", "-o", "json"))
	routerID := r1["id"].(string)
	e.MustNsnet("router", "add", "subnet", "r1", "s1")
	e.MustNsnet("floating", "ip", "create", "public", "--port", "vm1-eth0")

	// A lease served and a name answered by the network's DHCP and DNS
	// servers (the DHCP port holds the pool's last address).
	eventually(t, 30*time.Second, "udhcpc in vm1 gets a lease", func() error {
		out, err := e.In("vm1", "udhcpc", "-q", "-n", "-f", "-i", "eth0", "-t", "3", "-T", "1", "-s", "/bin/true")
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
	eventually(t, 30*time.Second, "vm1 resolves its own name", func() error {
		out, err := e.In("vm1", "dig", "+time=2", "+tries=1", "+short", "@10.62.0.254", "vm1.nsnet.internal")
		if err != nil || !strings.HasPrefix(strings.TrimSpace(out), "10.62.0.") {
			return fmt.Errorf("%v: %q", err, out)
		}
		return nil
	})

	// The default security group lets no one in: a ping from the DHCP
	// namespace is dropped at vm1's port, and counted there.
	port := e.MustAPI("GET", "/v2.0/ports?name=vm1-eth0", nil)["ports"].([]any)[0].(map[string]any)
	portID := port["id"].(string)
	vm1Addr := port["fixed_ips"].([]any)[0].(map[string]any)["ip_address"].(string)
	runOut("ip", "netns", "exec", e.Prefix+"qdhcp-"+net1, "ping", "-c", "2", "-i", "0.2", "-W", "1", vm1Addr)

	// A metering label of r1's project counting what r1 forwards out to
	// the external subnet.
	labelID := e.MustAPI("POST", "/v2.0/metering/metering-labels", map[string]any{"metering_label": map[string]any{
		"name": "external", "tenant_id": r1["project_id"]}})["metering_label"].(map[string]any)["id"].(string)
	e.MustAPI("POST", "/v2.0/metering/metering-label-rules", map[string]any{"metering_label_rule": map[string]any{
		"metering_label_id": labelID, "direction": "egress", "remote_ip_prefix": "198.51.100.0/24"}})

	p := startPrometheus(t, metricsAddr)
	for _, tc := range []struct {
		query string
		ok    func(float64) bool
		want  string
		// before, if set, runs before each attempt.
		before func()
	}{
		{`up{job="nsnet"}`, func(v float64) bool { return v == 1 }, "1", nil},
		{`sum(nsnet_api_requests_total{route="POST /v2.0/networks",code="201"})`, func(v float64) bool { return v == 2 }, "2", nil},
		{`sum(nsnet_api_requests_total{route="GET /metrics",code="401"})`, func(v float64) bool { return v == 1 }, "1", nil},
		{`sum(nsnet_api_request_duration_seconds_count{route="POST /v2.0/ports"})`, func(v float64) bool { return v == 1 }, "1", nil},
		{`sum(nsnet_agent_passes_total{kind="full"})`, func(v float64) bool { return v >= 1 }, ">= 1", nil},
		{`sum(nsnet_agent_pass_duration_seconds_count)`, func(v float64) bool { return v >= 1 }, ">= 1", nil},
		{`nsnet_objects{kind="network",status="ACTIVE"}`, func(v float64) bool { return v == 2 }, "2", nil},
		{`nsnet_objects{kind="port",status="ACTIVE"}`, func(v float64) bool { return v >= 1 }, ">= 1", nil},
		{`nsnet_objects{kind="instance",status="ACTIVE"}`, func(v float64) bool { return v == 1 }, "1", nil},
		{`nsnet_dhcp_replies_total{type="ACK"}`, func(v float64) bool { return v >= 1 }, ">= 1", nil},
		{`nsnet_dhcp_replies_total{type="OFFER"}`, func(v float64) bool { return v >= 1 }, ">= 1", nil},
		{`nsnet_dns_answers_total{rcode="NOERROR"}`, func(v float64) bool { return v >= 1 }, ">= 1", nil},
		// DHCP and DNS answers reached vm1 through its port.
		{`nsnet_port_receive_packets_total{port="` + portID + `"}`, func(v float64) bool { return v >= 2 }, ">= 2", nil},
		{`nsnet_port_transmit_bytes_total{port="` + portID + `"}`, func(v float64) bool { return v > 0 }, "> 0", nil},
		{`nsnet_port_dropped_packets_total{port="` + portID + `",reason="ingress_denied"}`, func(v float64) bool { return v >= 1 }, ">= 1", nil},
		// r1 SNATs s1 to its gateway and holds vm1's floating IP.
		{`nsnet_router_nat_translations{router="` + routerID + `",type="snat"}`, func(v float64) bool { return v == 1 }, "1", nil},
		{`nsnet_router_nat_translations{router="` + routerID + `",type="floating_ip"}`, func(v float64) bool { return v == 1 }, "1", nil},
		// vm1 pings its gateway: the router's namespace tracks the flow
		// (for ICMP's 30 s: the ping is sent again on every attempt).
		{`nsnet_router_conntrack_entries{router="` + routerID + `"}`, func(v float64) bool { return v >= 1 }, ">= 1", func() {
			e.In("vm1", "ping", "-c", "1", "-W", "1", "10.62.0.1")
		}},
		// vm1's packets out by r1's gateway are counted by the label
		// (the forward hook sees them, answered or not).
		{`nsnet_metering_label_packets_total{router="` + routerID + `",label="` + labelID + `"}`, func(v float64) bool { return v >= 1 }, ">= 1", func() {
			e.In("vm1", "ping", "-c", "1", "-W", "1", "198.51.100.1")
		}},
		{`nsnet_metering_label_bytes_total{router="` + routerID + `",label="` + labelID + `"}`, func(v float64) bool { return v >= 84 }, ">= 84", nil},
	} {
		// Prometheus needs a scrape after the daemon changed, and the
		// agent a pass: retry as a dashboard would refresh.
		eventually(t, 60*time.Second, tc.query, func() error {
			if tc.before != nil {
				tc.before()
			}
			v, err := p.scalar(tc.query)
			if err != nil {
				return err
			}
			if !tc.ok(v) {
				return fmt.Errorf("%v, want %s", v, tc.want)
			}
			return nil
		})
	}

	// For the record (go test -v): what a dashboard's query answers.
	const q = `sum by (kind, status) (nsnet_objects)`
	if samples, err := p.query(q); err != nil {
		t.Error(err)
	} else {
		for _, s := range samples {
			v, _ := s.value()
			t.Logf("%s: %v %v", q, s.Metric, v)
		}
	}
}
