// Package metrics owns nsnet's Prometheus metrics: their names, labels and
// help, the registry they live in (its own, never the client library's
// global one) and the handler that serves them in Prometheus's text format.
//
// Other packages report into it through plain Go values and functions (a
// request's route, status and duration; a pass's kind, duration and
// outcome; functions that count objects when Prometheus scrapes), so that
// the API, the agent and the protocol servers need no Prometheus
// dependency. It must not import the agent, the service, the API or the
// store: the daemon wires them to it.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// namespace prefixes every series nsnet exports.
const namespace = "nsnet"

// Pass outcomes, the result label of nsnet_agent_passes_total.
const (
	PassOK = "ok"
	// PassObjectErrors: the pass ran, but left objects in ERROR.
	PassObjectErrors = "object_errors"
	// PassFailed: the pass failed as a whole and converged nothing.
	PassFailed = "failed"
)

// ObjectCount is how many objects of a kind are in a status, as the API
// shows them ("network", "ACTIVE").
type ObjectCount struct {
	Kind, Status string
	Count        int
}

// ServerCounts are the protocol servers' running totals, summed over the
// networks of the host (a network's servers that went away keep their
// share: these only grow).
type ServerCounts struct {
	// DHCPReplies counts DHCP replies sent, by message type ("OFFER",
	// "ACK", "NAK", "REPLY" for DHCPv6…).
	DHCPReplies map[string]uint64
	// DHCP6Replies counts DHCPv6 replies sent, by message type
	// ("ADVERTISE", "REPLY").
	DHCP6Replies map[string]uint64
	// DNSAnswers counts DNS queries answered, by response code
	// ("NOERROR", "NXDOMAIN", "REFUSED"…).
	DNSAnswers map[string]uint64
}

// Sources are the functions the collectors call at each scrape. Each must
// be cheap: it runs on every scrape, with the scrape waiting. A nil one is
// left out.
type Sources struct {
	// Objects counts the objects the agent knows, by kind and status.
	Objects func() []ObjectCount
	// Servers returns the protocol servers' totals.
	Servers func() ServerCounts
	// PortTraffic returns what every port's interface carried, by port id.
	PortTraffic func() (map[string]PortTraffic, error)
	// PortDrops returns every port's security group and anti-spoofing
	// drops, by port id and reason.
	PortDrops func() map[string]map[string]uint64
	// RouterConntrack returns the connections each router's namespace
	// tracks, by router id.
	RouterConntrack func() (map[string]int, error)
	// RouterNAT returns the translations each router's table holds, by
	// router id and type.
	RouterNAT func() map[string]map[string]int
	// Metering returns what each L3 metering label counted in each
	// router, read from the routers' nsnet_meter tables.
	Metering func() ([]MeterCount, error)
}

// MeterCount is what one metering label counted in one router.
type MeterCount struct {
	Router, Label  string
	Packets, Bytes uint64
}

// PortTraffic is what one port carried, as the instance (or router, or
// DHCP namespace) behind it sees it: Rx is what it received.
type PortTraffic struct {
	RxBytes, RxPackets, TxBytes, TxPackets uint64
}

// Metrics holds nsnet's series. The zero value is not usable: call New.
type Metrics struct {
	reg *prometheus.Registry

	apiRequests *prometheus.CounterVec
	apiDuration *prometheus.HistogramVec

	passes       *prometheus.CounterVec
	passDuration *prometheus.HistogramVec
	lastPass     *prometheus.GaugeVec
}

// New returns the metrics with their own registry, which also carries the
// Go runtime's and the process's standard collectors.
func New(src Sources) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		apiRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "api", Name: "requests_total",
			Help: "API requests answered, by method, route pattern and status code.",
		}, []string{"method", "route", "code"}),
		apiDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: "api", Name: "request_duration_seconds",
			Help: "Time to answer an API request, by method and route pattern (waits asked for with X-Nsnet-Wait included).",
			// From a cached GET to a create that waited for the agent.
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"method", "route"}),
		passes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "agent", Name: "passes_total",
			Help: "Agent convergence passes, by kind (full or partial) and result (ok, object_errors, failed).",
		}, []string{"kind", "result"}),
		passDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: "agent", Name: "pass_duration_seconds",
			Help: "Duration of agent convergence passes, by kind (full or partial).",
			// A converged host's partial pass takes milliseconds; a full
			// pass of thousands of namespaces, seconds to minutes.
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}, []string{"kind"}),
		lastPass: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: "agent", Name: "last_pass_timestamp_seconds",
			Help: "When the last agent pass of each kind ended, in seconds since the epoch.",
		}, []string{"kind"}),
	}
	m.reg.MustRegister(m.apiRequests, m.apiDuration, m.passes, m.passDuration, m.lastPass,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if src.Objects != nil {
		m.reg.MustRegister(&objectsCollector{count: src.Objects})
	}
	if src.Servers != nil {
		m.reg.MustRegister(&serversCollector{counts: src.Servers})
	}
	if src.RouterConntrack != nil || src.RouterNAT != nil {
		m.reg.MustRegister(&routersCollector{conntrack: src.RouterConntrack, nat: src.RouterNAT})
	}
	if src.Metering != nil {
		m.reg.MustRegister(&meteringCollector{counts: src.Metering})
	}
	if src.PortTraffic != nil || src.PortDrops != nil {
		m.reg.MustRegister(&portsCollector{traffic: src.PortTraffic, drops: src.PortDrops})
	}
	return m
}

// Handler serves the metrics in Prometheus's exposition formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		// A collector that fails shows in the scrape, not as a 500 that
		// loses every other series.
		ErrorHandling:     promhttp.ContinueOnError,
		Registry:          m.reg, // promhttp_metric_handler_errors_total
		EnableOpenMetrics: true,
	})
}

// Registry is the registry the metrics live in (for tests and for
// gathering without HTTP).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// ObserveRequest records one API request. route must be the pattern the
// request matched ("GET /v2.0/ports/{id}"), never its raw path: the number
// of series stays bounded whatever callers send.
func (m *Metrics) ObserveRequest(method, route string, code int, d time.Duration) {
	m.apiRequests.WithLabelValues(method, route, strconv.Itoa(code)).Inc()
	m.apiDuration.WithLabelValues(method, route).Observe(d.Seconds())
}

// ObservePass records one agent pass ending at end. result is PassOK,
// PassObjectErrors or PassFailed.
func (m *Metrics) ObservePass(full bool, d time.Duration, result string, end time.Time) {
	kind := "partial"
	if full {
		kind = "full"
	}
	m.passes.WithLabelValues(kind, result).Inc()
	m.passDuration.WithLabelValues(kind).Observe(d.Seconds())
	m.lastPass.WithLabelValues(kind).Set(float64(end.UnixNano()) / 1e9)
}

var objectsDesc = prometheus.NewDesc(namespace+"_objects",
	"Objects the agent has programmed or tried to, by kind and status as the API shows them.",
	[]string{"kind", "status"}, nil)

// objectsCollector counts objects at scrape time: a gauge kept up to date
// by every status change would cost the agent on every change, this costs
// only when asked.
type objectsCollector struct{ count func() []ObjectCount }

func (c *objectsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- objectsDesc }

func (c *objectsCollector) Collect(ch chan<- prometheus.Metric) {
	for _, o := range c.count() {
		ch <- prometheus.MustNewConstMetric(objectsDesc, prometheus.GaugeValue, float64(o.Count), o.Kind, o.Status)
	}
}

var (
	dhcpDesc = prometheus.NewDesc(namespace+"_dhcp_replies_total",
		"DHCP replies the networks' servers sent, by message type (OFFER and ACK: leases served).",
		[]string{"type"}, nil)
	dhcp6Desc = prometheus.NewDesc(namespace+"_dhcp6_replies_total",
		"DHCPv6 replies the networks' servers sent, by message type (REPLY to a REQUEST or RENEW: leases served).",
		[]string{"type"}, nil)
	dnsDesc = prometheus.NewDesc(namespace+"_dns_answers_total",
		"DNS queries the networks' servers answered, by response code.",
		[]string{"rcode"}, nil)
)

type serversCollector struct{ counts func() ServerCounts }

func (c *serversCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- dhcpDesc
	ch <- dhcp6Desc
	ch <- dnsDesc
}

func (c *serversCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.counts()
	for t, n := range s.DHCPReplies {
		ch <- prometheus.MustNewConstMetric(dhcpDesc, prometheus.CounterValue, float64(n), t)
	}
	for t, n := range s.DHCP6Replies {
		ch <- prometheus.MustNewConstMetric(dhcp6Desc, prometheus.CounterValue, float64(n), t)
	}
	for rc, n := range s.DNSAnswers {
		ch <- prometheus.MustNewConstMetric(dnsDesc, prometheus.CounterValue, float64(n), rc)
	}
}

var (
	portRxBytes   = portDesc("receive_bytes_total", "Bytes a port received (delivered to the instance, router or DHCP namespace behind it).")
	portRxPackets = portDesc("receive_packets_total", "Packets a port received.")
	portTxBytes   = portDesc("transmit_bytes_total", "Bytes a port sent (from the instance, router or DHCP namespace behind it).")
	portTxPackets = portDesc("transmit_packets_total", "Packets a port sent.")
	portDrops     = prometheus.NewDesc(namespace+"_port_dropped_packets_total",
		"Packets of a port that security groups or anti-spoofing dropped, by reason (ingress_denied, egress_denied, invalid, spoofed_ip…).",
		[]string{"port", "reason"}, nil)
)

func portDesc(name, help string) *prometheus.Desc {
	return prometheus.NewDesc(namespace+"_port_"+name, help, []string{"port"}, nil)
}

// portsCollector reads the ports' counters at scrape time: one netlink dump
// of the host namespace and the firewall's cached counters. A port's series
// are labelled with its id: as many as there are ports, which the quotas
// bound.
type portsCollector struct {
	traffic func() (map[string]PortTraffic, error)
	drops   func() map[string]map[string]uint64
}

func (c *portsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{portRxBytes, portRxPackets, portTxBytes, portTxPackets, portDrops} {
		ch <- d
	}
}

func (c *portsCollector) Collect(ch chan<- prometheus.Metric) {
	if c.traffic != nil {
		traffic, err := c.traffic()
		if err != nil {
			ch <- prometheus.NewInvalidMetric(portRxBytes, err)
		}
		for id, t := range traffic {
			for _, s := range []struct {
				d *prometheus.Desc
				v uint64
			}{{portRxBytes, t.RxBytes}, {portRxPackets, t.RxPackets}, {portTxBytes, t.TxBytes}, {portTxPackets, t.TxPackets}} {
				ch <- prometheus.MustNewConstMetric(s.d, prometheus.CounterValue, float64(s.v), id)
			}
		}
	}
	if c.drops != nil {
		for id, reasons := range c.drops() {
			for reason, n := range reasons {
				ch <- prometheus.MustNewConstMetric(portDrops, prometheus.CounterValue, float64(n), id, reason)
			}
		}
	}
}

var routerConntrack = prometheus.NewDesc(namespace+"_router_conntrack_entries",
	"Connections a router's namespace tracks (the ones its NAT translates among them).",
	[]string{"router"}, nil)

var routerNAT = prometheus.NewDesc(namespace+"_router_nat_translations",
	"Translations a router's nsnet table holds, by type (snat, masquerade, floating_ip, port_forward).",
	[]string{"router", "type"}, nil)

// routersCollector reads each router namespace's connection count at
// scrape time (a sysctl read per router), and the translations its table
// was last programmed with.
type routersCollector struct {
	conntrack func() (map[string]int, error)
	nat       func() map[string]map[string]int
}

func (c *routersCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- routerConntrack
	ch <- routerNAT
}

func (c *routersCollector) Collect(ch chan<- prometheus.Metric) {
	if c.conntrack != nil {
		counts, err := c.conntrack()
		if err != nil {
			ch <- prometheus.NewInvalidMetric(routerConntrack, err)
		}
		for id, n := range counts {
			ch <- prometheus.MustNewConstMetric(routerConntrack, prometheus.GaugeValue, float64(n), id)
		}
	}
	if c.nat != nil {
		for id, types := range c.nat() {
			for t, n := range types {
				ch <- prometheus.MustNewConstMetric(routerNAT, prometheus.GaugeValue, float64(n), id, t)
			}
		}
	}
}

var meterPackets = prometheus.NewDesc(namespace+"_metering_label_packets_total",
	"Packets a metering label counted in a router: those through its gateway that the label's rules select (Neutron's L3 metering).",
	[]string{"router", "label"}, nil)

var meterBytes = prometheus.NewDesc(namespace+"_metering_label_bytes_total",
	"Bytes a metering label counted in a router (Neutron's L3 metering).",
	[]string{"router", "label"}, nil)

// meteringCollector reads the metering counters at scrape time: one
// nftables read per metered router.
type meteringCollector struct {
	counts func() ([]MeterCount, error)
}

func (c *meteringCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- meterPackets
	ch <- meterBytes
}

func (c *meteringCollector) Collect(ch chan<- prometheus.Metric) {
	counts, err := c.counts()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(meterPackets, err)
	}
	for _, m := range counts {
		ch <- prometheus.MustNewConstMetric(meterPackets, prometheus.CounterValue, float64(m.Packets), m.Router, m.Label)
		ch <- prometheus.MustNewConstMetric(meterBytes, prometheus.CounterValue, float64(m.Bytes), m.Router, m.Label)
	}
}
