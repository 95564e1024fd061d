package metrics_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/nsnet/nsnet/internal/metrics"
)

// scrape GETs the handler as Prometheus does (text format) and parses the
// answer.
func scrape(t *testing.T, h http.Handler) map[string]*dto.MetricFamily {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("scrape: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse scrape: %v", err)
	}
	return fams
}

// value is the value of the sample of family name whose labels are
// exactly labels; ok false when there is none.
func value(fams map[string]*dto.MetricFamily, name string, labels map[string]string) (v float64, ok bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		if len(m.GetLabel()) != len(labels) {
			continue
		}
		for _, l := range m.GetLabel() {
			if labels[l.GetName()] != l.GetValue() {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

func TestSeries(t *testing.T) {
	objects := []metrics.ObjectCount{{Kind: "network", Status: "ACTIVE", Count: 3}, {Kind: "port", Status: "ERROR", Count: 1}}
	servers := metrics.ServerCounts{
		DHCPReplies:  map[string]uint64{"ACK": 5, "OFFER": 4},
		DHCP6Replies: map[string]uint64{"REPLY": 2},
		DNSAnswers:   map[string]uint64{"NOERROR": 7},
	}
	m := metrics.New(metrics.Sources{
		Objects: func() []metrics.ObjectCount { return objects },
		Servers: func() metrics.ServerCounts { return servers },
		PortTraffic: func() (map[string]metrics.PortTraffic, error) {
			return map[string]metrics.PortTraffic{"p1": {RxBytes: 1000, RxPackets: 10, TxBytes: 500, TxPackets: 5}}, nil
		},
		RouterConntrack: func() (map[string]int, error) { return map[string]int{"r1": 12}, nil },
		RouterNAT: func() map[string]map[string]int {
			return map[string]map[string]int{"r1": {"floating_ip": 2, "snat": 1}}
		},
		PortDrops: func() map[string]map[string]uint64 {
			return map[string]map[string]uint64{"p1": {"ingress_denied": 3, "spoofed_ip": 0}}
		},
		Metering: func() ([]metrics.MeterCount, error) {
			return []metrics.MeterCount{{Router: "r1", Label: "l1", Packets: 8, Bytes: 451}}, nil
		},
	})
	m.ObserveRequest("GET", "GET /v2.0/ports/{id}", 404, 3*time.Millisecond)
	m.ObserveRequest("GET", "GET /v2.0/ports/{id}", 404, 2*time.Millisecond)
	m.ObserveRequest("POST", "POST /v2.0/ports", 201, 40*time.Millisecond)
	m.ObservePass(true, 2*time.Second, metrics.PassOK, time.Unix(1700000000, 0))
	m.ObservePass(false, 5*time.Millisecond, metrics.PassObjectErrors, time.Unix(1700000001, 0))
	m.ObservePass(false, 5*time.Millisecond, metrics.PassFailed, time.Unix(1700000002, 0))

	fams := scrape(t, m.Handler())
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"nsnet_api_requests_total", map[string]string{"method": "GET", "route": "GET /v2.0/ports/{id}", "code": "404"}, 2},
		{"nsnet_api_requests_total", map[string]string{"method": "POST", "route": "POST /v2.0/ports", "code": "201"}, 1},
		{"nsnet_api_request_duration_seconds", map[string]string{"method": "GET", "route": "GET /v2.0/ports/{id}"}, 2},
		{"nsnet_agent_passes_total", map[string]string{"kind": "full", "result": "ok"}, 1},
		{"nsnet_agent_passes_total", map[string]string{"kind": "partial", "result": "object_errors"}, 1},
		{"nsnet_agent_passes_total", map[string]string{"kind": "partial", "result": "failed"}, 1},
		{"nsnet_agent_pass_duration_seconds", map[string]string{"kind": "partial"}, 2},
		{"nsnet_agent_last_pass_timestamp_seconds", map[string]string{"kind": "partial"}, 1700000002},
		{"nsnet_objects", map[string]string{"kind": "network", "status": "ACTIVE"}, 3},
		{"nsnet_objects", map[string]string{"kind": "port", "status": "ERROR"}, 1},
		{"nsnet_dhcp_replies_total", map[string]string{"type": "ACK"}, 5},
		{"nsnet_dns_answers_total", map[string]string{"rcode": "NOERROR"}, 7},
		{"nsnet_dhcp6_replies_total", map[string]string{"type": "REPLY"}, 2},
		{"nsnet_router_conntrack_entries", map[string]string{"router": "r1"}, 12},
		{"nsnet_router_nat_translations", map[string]string{"router": "r1", "type": "floating_ip"}, 2},
		{"nsnet_router_nat_translations", map[string]string{"router": "r1", "type": "snat"}, 1},
		{"nsnet_port_receive_bytes_total", map[string]string{"port": "p1"}, 1000},
		{"nsnet_port_receive_packets_total", map[string]string{"port": "p1"}, 10},
		{"nsnet_port_transmit_bytes_total", map[string]string{"port": "p1"}, 500},
		{"nsnet_port_transmit_packets_total", map[string]string{"port": "p1"}, 5},
		{"nsnet_port_dropped_packets_total", map[string]string{"port": "p1", "reason": "ingress_denied"}, 3},
		{"nsnet_port_dropped_packets_total", map[string]string{"port": "p1", "reason": "spoofed_ip"}, 0},
		{"nsnet_metering_label_packets_total", map[string]string{"router": "r1", "label": "l1"}, 8},
		{"nsnet_metering_label_bytes_total", map[string]string{"router": "r1", "label": "l1"}, 451},
	} {
		got, ok := value(fams, tc.name, tc.labels)
		if !ok || got != tc.want {
			t.Errorf("%s%v = %v (present %v), want %v", tc.name, tc.labels, got, ok, tc.want)
		}
	}
	// The registry is nsnet's own, with the process's standard series, and
	// nothing registered elsewhere in the binary leaks in.
	if _, ok := fams["process_start_time_seconds"]; !ok {
		t.Error("no process_start_time_seconds")
	}

	// The objects are counted at each scrape: a change shows in the next.
	objects = []metrics.ObjectCount{{Kind: "network", Status: "ACTIVE", Count: 4}}
	fams = scrape(t, m.Handler())
	if got, _ := value(fams, "nsnet_objects", map[string]string{"kind": "network", "status": "ACTIVE"}); got != 4 {
		t.Errorf("after a change: %v networks ACTIVE, want 4", got)
	}
	if _, ok := value(fams, "nsnet_objects", map[string]string{"kind": "port", "status": "ERROR"}); ok {
		t.Error("a status no object has any more is still exported")
	}
}

// TestFailingSourceKeepsTheRest: a source that cannot read the kernel shows
// as a failed scrape of its own series, counted by the handler, and every
// other series is still served.
func TestFailingSourceKeepsTheRest(t *testing.T) {
	m := metrics.New(metrics.Sources{
		PortTraffic: func() (map[string]metrics.PortTraffic, error) { return nil, errors.New("no host namespace") },
		Objects: func() []metrics.ObjectCount {
			return []metrics.ObjectCount{{Kind: "router", Status: "ACTIVE", Count: 1}}
		},
	})
	fams := scrape(t, m.Handler())
	if got, _ := value(fams, "nsnet_objects", map[string]string{"kind": "router", "status": "ACTIVE"}); got != 1 {
		t.Errorf("objects with a failing port source: %v routers, want 1", got)
	}
	fams = scrape(t, m.Handler())
	if got, _ := value(fams, "promhttp_metric_handler_errors_total", map[string]string{"cause": "gathering"}); got < 1 {
		t.Errorf("promhttp_metric_handler_errors_total{cause=gathering} = %v, want the failure counted", got)
	}
}
