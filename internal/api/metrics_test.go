package api_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/nsnet/nsnet/internal/api"
	"github.com/nsnet/nsnet/internal/auth"
	"github.com/nsnet/nsnet/internal/metrics"
	"github.com/nsnet/nsnet/internal/service"
)

// TestMetrics: every request is counted under the route pattern it matched,
// never its raw path (a thousand ids are one series), with its status code,
// refused ones too; /metrics answers admins only.
func TestMetrics(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "tokens.yaml")
	if err := os.WriteFile(path, []byte(testTokens), 0o600); err != nil {
		t.Fatal(err)
	}
	tokens, err := auth.LoadTokens(path)
	if err != nil {
		t.Fatal(err)
	}
	mx := metrics.New(metrics.Sources{})
	s := api.New(api.Config{Service: service.New(service.Config{Store: openStore(t, dir)}),
		Metrics: mx.Handler(), Observe: mx.ObserveRequest})
	srv := httptest.NewServer(s.TokenHandler(tokens))
	t.Cleanup(srv.Close)

	get := func(token, path string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		if token != "" {
			req.Header.Set("X-Auth-Token", token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}

	const missing = 5
	for range missing {
		if code, _ := get("tok-owner", "/v2.0/networks/"+uuid.NewString()); code != 404 {
			t.Fatalf("GET of a missing network: %d", code)
		}
	}
	get("tok-owner", "/v2.0/networks")
	get("tok-owner", "/v2.0/networks.json")
	get("", "/v2.0/ports/"+uuid.NewString()) // no token: 401
	get("tok-owner", "/no/such/"+uuid.NewString())
	req, _ := http.NewRequest("BREW", srv.URL+"/v2.0/networks", nil)
	req.Header.Set("X-Auth-Token", "tok-admin")
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
	}

	if code, body := get("tok-owner", "/metrics"); code != 403 || !strings.Contains(body, "PolicyNotAuthorized") {
		t.Errorf("/metrics as a member: %d %s, want 403 PolicyNotAuthorized", code, body)
	}
	code, body := get("tok-admin", "/metrics")
	if code != 200 {
		t.Fatalf("/metrics as admin: %d %s", code, body)
	}
	for _, want := range []string{
		`nsnet_api_requests_total{code="404",method="GET",route="GET /v2.0/networks/{id}"} 5`,
		`nsnet_api_requests_total{code="200",method="GET",route="GET /v2.0/networks"} 2`,
		`nsnet_api_requests_total{code="401",method="GET",route="GET /v2.0/ports/{id}"} 1`,
		`nsnet_api_requests_total{code="404",method="GET",route="/"} 1`,
		`nsnet_api_requests_total{code="403",method="GET",route="GET /metrics"} 1`,
		`nsnet_api_requests_total{code="405",method="other",route="/"} 1`,
		`nsnet_api_request_duration_seconds_count{method="GET",route="GET /v2.0/networks/{id}"} 5`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Count(body, "nsnet_api_requests_total{") != 6 {
		t.Errorf("want 6 request series, got:\n%s", grepLines(body, "nsnet_api_requests_total{"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
