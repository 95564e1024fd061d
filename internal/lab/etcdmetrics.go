package lab

import (
	"errors"
	"fmt"
	"net/http"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	pmodel "github.com/prometheus/common/model"
)

// EtcdCounts reads the /metrics of the etcd server at endpoint
// (host:port): the unary gRPC requests it handled, by method, as
// "requests METHOD" (Range, Txn, Put, LeaseGrant…), and the watch messages
// it sent, as "watch messages sent". Benchmarks take the difference of two
// readings to count what an operation cost the store.
func EtcdCounts(endpoint string) (map[string]float64, error) {
	resp, err := http.Get("http://" + endpoint + "/metrics")
	if err != nil {
		return nil, fmt.Errorf("scrape etcd: %w", err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(pmodel.LegacyValidation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("parse etcd's metrics: %w", err)
	}
	label := func(m *dto.Metric, name string) string {
		for _, l := range m.GetLabel() {
			if l.GetName() == name {
				return l.GetValue()
			}
		}
		return ""
	}
	out := map[string]float64{}
	for _, m := range fams["grpc_server_handled_total"].GetMetric() {
		if label(m, "grpc_type") == "unary" {
			out["requests "+label(m, "grpc_method")] += m.GetCounter().GetValue()
		}
	}
	for _, m := range fams["grpc_server_msg_sent_total"].GetMetric() {
		if label(m, "grpc_method") == "Watch" {
			out["watch messages sent"] += m.GetCounter().GetValue()
		}
	}
	if len(out) == 0 {
		return nil, errors.New("etcd's /metrics has no grpc_server_handled_total")
	}
	return out, nil
}
