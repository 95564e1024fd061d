package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nsnet/nsnet/internal/api"
	"github.com/nsnet/nsnet/internal/service"
	"github.com/nsnet/nsnet/internal/store"
	"github.com/nsnet/nsnet/internal/store/storetest"
)

// TestMain stops the etcd that NSNET_TEST_STORE=etcd starts.
func TestMain(m *testing.M) { os.Exit(storetest.Main(m)) }

// TestStoreUnreachableIs503: with etcd down, reads and writes answer 503
// HTTPServiceUnavailable naming the store, and work again once it is back.
func TestStoreUnreachableIs503(t *testing.T) {
	e := storetest.StartEtcd(t)
	st, err := store.OpenEtcd(context.Background(), store.EtcdConfig{Endpoints: []string{e.Endpoint()}, RequestTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s := api.New(api.Config{Service: service.New(service.Config{Store: st, NetnsPrefix: "t-"})})
	srv := httptest.NewServer(s.TrustedHandler())
	defer srv.Close()
	h := &harness{t: t, srv: srv, store: st}
	if r := h.do("POST", "/v2.0/networks", map[string]any{"network": map[string]any{"name": "before"}}); r.status != 201 {
		t.Fatalf("create with etcd up: %d %v", r.status, r.body)
	}

	e.Stop()
	for _, req := range []struct {
		method, path string
		body         any
	}{
		{"GET", "/v2.0/networks", nil},
		{"POST", "/v2.0/networks", map[string]any{"network": map[string]any{"name": "during"}}},
	} {
		r := h.do(req.method, req.path, req.body)
		var body struct{ NeutronError service.Error }
		raw, _ := json.Marshal(r.body)
		json.Unmarshal(raw, &body)
		if r.status != http.StatusServiceUnavailable || body.NeutronError.Type != "HTTPServiceUnavailable" ||
			!strings.Contains(body.NeutronError.Message, "cannot reach its store") {
			t.Errorf("%s %s with etcd down: %d %v, want 503 HTTPServiceUnavailable naming the store", req.method, req.path, r.status, r.body)
		}
	}

	if err := e.Start(); err != nil {
		t.Fatal(err)
	}
	// Clients retry a 503, as this one does until the client reconnects.
	for attempt := 0; ; attempt++ {
		r := h.do("GET", "/v2.0/networks", nil)
		if r.status == 200 {
			if n := len(r.body["networks"].([]any)); n != 1 {
				t.Errorf("after etcd came back: %d networks, want the one made before", n)
			}
			break
		}
		if r.status != 503 || attempt == 60 {
			t.Fatalf("after etcd came back: %d %v", r.status, r.body)
		}
	}
}
