package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder is an HTTP server that answers from a table and remembers what
// it was asked, for protocol tests.
type recorder struct {
	mu       sync.Mutex
	requests []recorded
	answer   func(r *http.Request, body []byte) (status int, header http.Header, respBody string)
}

type recorded struct {
	Method, Path, Query string
	Header              http.Header
	Body                string
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rec.mu.Lock()
	rec.requests = append(rec.requests, recorded{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Clone(), string(body)})
	rec.mu.Unlock()
	status, header, resp := rec.answer(r, body)
	for k, vs := range header {
		w.Header()[k] = vs
	}
	w.WriteHeader(status)
	_, _ = io.WriteString(w, resp)
}

func (rec *recorder) last(t *testing.T) recorded {
	t.Helper()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.requests) == 0 {
		t.Fatal("no request reached the server")
	}
	return rec.requests[len(rec.requests)-1]
}

func newTCP(t *testing.T, cfg Config, answer func(*http.Request, []byte) (int, http.Header, string)) (*Client, *recorder) {
	t.Helper()
	rec := &recorder{answer: answer}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	cfg.Endpoint = srv.URL
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c, rec
}

func TestDecodeError(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		body       string
		wantType   string
		wantMsg    string
		wantDetail string
	}{
		{
			name:     "neutron error",
			status:   404,
			body:     `{"NeutronError": {"type": "NetworkNotFound", "message": "Network red could not be found.", "detail": ""}}`,
			wantType: "NetworkNotFound", wantMsg: "Network red could not be found.",
		},
		{
			name:     "neutron error with detail",
			status:   409,
			body:     `{"NeutronError": {"type": "IpAddressAlreadyAllocated", "message": "IP address 10.0.0.5 already allocated", "detail": "port p1"}}`,
			wantType: "IpAddressAlreadyAllocated", wantMsg: "IP address 10.0.0.5 already allocated", wantDetail: "port p1",
		},
		{
			name:     "neutron error without type",
			status:   400,
			body:     `{"NeutronError": {"message": "bad"}}`,
			wantType: "HTTPBadRequest", wantMsg: "bad",
		},
		{
			name:     "html from a proxy",
			status:   502,
			body:     "<html>bad gateway</html>",
			wantType: "HTTPBadGateway", wantMsg: "502 Bad Gateway: <html>bad gateway</html>",
		},
		{
			name:     "empty body",
			status:   401,
			wantType: "HTTPUnauthorized", wantMsg: "401 Unauthorized",
		},
		{
			name:     "long body is cut",
			status:   500,
			body:     strings.Repeat("x", 300),
			wantType: "HTTPInternalServerError", wantMsg: "500 Internal Server Error: " + strings.Repeat("x", 200) + "…",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := newTCP(t, Config{}, func(*http.Request, []byte) (int, http.Header, string) {
				return tt.status, nil, tt.body
			})
			_, err := Get[json.RawMessage](context.Background(), c, Networks, "red")
			e, ok := AsError(err)
			if !ok {
				t.Fatalf("err = %v (%T), want *Error", err, err)
			}
			if e.StatusCode != tt.status || e.Type != tt.wantType || e.Message != tt.wantMsg || e.Detail != tt.wantDetail {
				t.Errorf("got %+v, want status %d type %q message %q detail %q",
					*e, tt.status, tt.wantType, tt.wantMsg, tt.wantDetail)
			}
			if err.Error() != tt.wantMsg {
				t.Errorf("Error() = %q, want the bare message", err.Error())
			}
			if IsNotFound(err) != (tt.status == 404) {
				t.Errorf("IsNotFound = %v", IsNotFound(err))
			}
		})
	}
}

func TestRequestHeaders(t *testing.T) {
	ok := func(r *http.Request, _ []byte) (int, http.Header, string) {
		h := http.Header{HeaderConverged: {"true"}, HeaderRevision: {"42"}}
		switch r.Method {
		case http.MethodDelete:
			return 204, h, ""
		case http.MethodPost:
			return 201, h, `{"network": {"id": "n1"}}`
		default:
			return 200, h, `{"network": {"id": "n1"}}`
		}
	}
	tests := []struct {
		name      string
		cfg       Config
		call      func(context.Context, *Client) (Meta, error)
		wantWait  string
		wantToken string
		wantCT    string
		wantBody  string
	}{
		{
			name: "create waits and authenticates",
			cfg:  Config{Wait: 30 * time.Second, Auth: StaticToken("T")},
			call: func(ctx context.Context, c *Client) (Meta, error) {
				_, m, err := Create[json.RawMessage](ctx, c, Networks, map[string]any{"name": "red"})
				return m, err
			},
			wantWait: "30s", wantToken: "T", wantCT: "application/json", wantBody: `{"network":{"name":"red"}}`,
		},
		{
			name: "update waits",
			cfg:  Config{Wait: 5 * time.Second},
			call: func(ctx context.Context, c *Client) (Meta, error) {
				_, m, err := Update[json.RawMessage](ctx, c, Networks, "n1", map[string]any{"mtu": 9000})
				return m, err
			},
			wantWait: "5s", wantCT: "application/json", wantBody: `{"network":{"mtu":9000}}`,
		},
		{
			name:     "delete waits",
			cfg:      Config{Wait: time.Minute},
			call:     func(ctx context.Context, c *Client) (Meta, error) { return c.Delete(ctx, Networks, "n1") },
			wantWait: "1m0s",
		},
		{
			name: "reads never wait",
			cfg:  Config{Wait: 30 * time.Second, Auth: StaticToken("T")},
			call: func(ctx context.Context, c *Client) (Meta, error) {
				_, err := Get[json.RawMessage](ctx, c, Networks, "n1")
				return Meta{}, err
			},
			wantToken: "T",
		},
		{
			name: "no wait asked",
			cfg:  Config{},
			call: func(ctx context.Context, c *Client) (Meta, error) {
				_, m, err := Create[json.RawMessage](ctx, c, Networks, map[string]any{})
				return m, err
			},
			wantCT: "application/json", wantBody: `{"network":{}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, rec := newTCP(t, tt.cfg, ok)
			meta, err := tt.call(context.Background(), c)
			if err != nil {
				t.Fatal(err)
			}
			got := rec.last(t)
			if v := got.Header.Get(HeaderWait); v != tt.wantWait {
				t.Errorf("%s = %q, want %q", HeaderWait, v, tt.wantWait)
			}
			if v := got.Header.Get(HeaderAuthToken); v != tt.wantToken {
				t.Errorf("%s = %q, want %q", HeaderAuthToken, v, tt.wantToken)
			}
			if v := got.Header.Get("Content-Type"); v != tt.wantCT {
				t.Errorf("Content-Type = %q, want %q", v, tt.wantCT)
			}
			if got.Body != tt.wantBody {
				t.Errorf("body = %s, want %s", got.Body, tt.wantBody)
			}
			if got.Header.Get("Accept") != "application/json" {
				t.Errorf("Accept = %q", got.Header.Get("Accept"))
			}
			if tt.wantWait != "" && (meta.Converged == nil || !*meta.Converged || meta.Revision != 42) {
				t.Errorf("meta = %+v, want converged at revision 42", meta)
			}
		})
	}
}

func TestMetaConverged(t *testing.T) {
	for _, header := range []string{"true", "false", "", "maybe"} {
		t.Run(header, func(t *testing.T) {
			c, _ := newTCP(t, Config{Wait: time.Second}, func(*http.Request, []byte) (int, http.Header, string) {
				h := http.Header{}
				if header != "" {
					h.Set(HeaderConverged, header)
				}
				return 204, h, ""
			})
			meta, err := c.Delete(context.Background(), Ports, "p1")
			if err != nil {
				t.Fatal(err)
			}
			switch header {
			case "true", "false":
				if meta.Converged == nil || fmt.Sprint(*meta.Converged) != header {
					t.Errorf("Converged = %v, want %s", meta.Converged, header)
				}
			default:
				if meta.Converged != nil {
					t.Errorf("Converged = %v, want unset", *meta.Converged)
				}
			}
		})
	}
}

func TestUnixSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "nsnet.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{answer: func(*http.Request, []byte) (int, http.Header, string) {
		return 200, nil, `{"instances": [{"id": "i1", "name": "red"}]}`
	}}
	srv := &http.Server{Handler: rec}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	for _, cfg := range []Config{{Socket: sock}, {Endpoint: "unix://" + sock}} {
		c, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		items, err := List[map[string]any](context.Background(), c, Instances, url.Values{"name": {"red"}})
		if err != nil {
			t.Fatal(err)
		}
		if len(items) != 1 || items[0]["name"] != "red" {
			t.Errorf("items = %v", items)
		}
		if got := rec.last(t); got.Path != "/v2.0/instances" || got.Query != "name=red" {
			t.Errorf("request = %s?%s", got.Path, got.Query)
		}
		if c.Endpoint() != "unix:"+sock {
			t.Errorf("Endpoint() = %q", c.Endpoint())
		}
	}
}

func TestTransportErrorHints(t *testing.T) {
	dir := t.TempDir()
	c, err := New(Config{Socket: filepath.Join(dir, "absent.sock")})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Get[json.RawMessage](context.Background(), c, Networks, "x")
	if err == nil || !strings.Contains(err.Error(), "is `nsnet daemon` running?") ||
		!strings.Contains(err.Error(), "unix:"+dir) {
		t.Errorf("err = %v, want a hint to start the daemon", err)
	}
	if _, ok := AsError(err); ok {
		t.Error("a transport failure must not look like an API error")
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = Get[json.RawMessage](ctx, c, Networks, "x")
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

func TestNewEndpoint(t *testing.T) {
	tests := []struct {
		cfg     Config
		want    string
		wantErr string
	}{
		{cfg: Config{}, want: "unix:" + DefaultSocket},
		{cfg: Config{Socket: "/tmp/x.sock"}, want: "unix:/tmp/x.sock"},
		{cfg: Config{Endpoint: "unix:///tmp/y.sock", Socket: "/tmp/x.sock"}, want: "unix:/tmp/y.sock"},
		{cfg: Config{Endpoint: "http://127.0.0.1:9696/"}, want: "http://127.0.0.1:9696"},
		{cfg: Config{Endpoint: "https://nsnet.example:443/net"}, want: "https://nsnet.example:443/net"},
		{cfg: Config{Endpoint: "127.0.0.1:9696"}, wantErr: "want http://host:port"},
		{cfg: Config{Endpoint: "ftp://x"}, wantErr: "want http://host:port"},
	}
	for _, tt := range tests {
		c, err := New(tt.cfg)
		switch {
		case tt.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("New(%+v) err = %v, want %q", tt.cfg, err, tt.wantErr)
			}
		case err != nil:
			t.Errorf("New(%+v): %v", tt.cfg, err)
		case c.Endpoint() != tt.want:
			t.Errorf("New(%+v).Endpoint() = %q, want %q", tt.cfg, c.Endpoint(), tt.want)
		}
	}
}

func TestEndpointPathPrefix(t *testing.T) {
	rec := &recorder{answer: func(*http.Request, []byte) (int, http.Header, string) {
		return 200, nil, `{"subnet": {"id": "s1"}}`
	}}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	c, err := New(Config{Endpoint: srv.URL + "/networking/"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Get[json.RawMessage](context.Background(), c, Subnets, "s1"); err != nil {
		t.Fatal(err)
	}
	if got := rec.last(t).Path; got != "/networking/v2.0/subnets/s1" {
		t.Errorf("path = %q", got)
	}
}

func TestListFollowsPagination(t *testing.T) {
	c, rec := newTCP(t, Config{}, func(r *http.Request, _ []byte) (int, http.Header, string) {
		switch r.URL.Query().Get("marker") {
		case "":
			return 200, nil, `{"ports": [{"id": "a"}, {"id": "b"}], "ports_links": [{"rel": "next", "href": "http://elsewhere/v2.0/ports?limit=2&marker=b&network_id=n1"}]}`
		case "b":
			return 200, nil, `{"ports": [{"id": "c"}]}`
		}
		return 500, nil, "unexpected marker"
	})
	items, err := List[struct{ ID string }](context.Background(), c, Ports, url.Values{"network_id": {"n1"}})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, it := range items {
		ids = append(ids, it.ID)
	}
	if strings.Join(ids, ",") != "a,b,c" {
		t.Errorf("ids = %v", ids)
	}
	if got := rec.last(t); got.Query != "marker=b&network_id=n1" {
		t.Errorf("second page query = %q, want the filter kept and the marker added", got.Query)
	}
}

func TestFind(t *testing.T) {
	const (
		redID  = "6b0f6c8e-6f51-4c1e-9a57-3c3c3c3c3c3c"
		nameID = "0a0a0a0a-0000-4000-8000-000000000000" // a name that looks like an id
	)
	networks := []map[string]string{
		{"id": redID, "name": "red"},
		{"id": "11111111-1111-4111-8111-111111111111", "name": "dup"},
		{"id": "22222222-2222-4222-8222-222222222222", "name": "dup"},
		{"id": "33333333-3333-4333-8333-333333333333", "name": nameID},
	}
	answer := func(r *http.Request, _ []byte) (int, http.Header, string) {
		if id, ok := strings.CutPrefix(r.URL.Path, "/v2.0/networks/"); ok {
			for _, n := range networks {
				if n["id"] == id {
					b, _ := json.Marshal(map[string]any{"network": n})
					return 200, nil, string(b)
				}
			}
			return 404, nil, fmt.Sprintf(`{"NeutronError": {"type": "NetworkNotFound", "message": "Network %s could not be found.", "detail": ""}}`, id)
		}
		var out []map[string]string
		for _, n := range networks {
			if n["name"] == r.URL.Query().Get("name") {
				out = append(out, n)
			}
		}
		b, _ := json.Marshal(map[string]any{"networks": append([]map[string]string{}, out...)})
		return 200, nil, string(b)
	}

	tests := []struct {
		ref       string
		wantID    string
		wantErr   string
		notFound  bool
		wantPaths []string
	}{
		{ref: redID, wantID: redID, wantPaths: []string{"/v2.0/networks/" + redID}},
		{ref: "red", wantID: redID, wantPaths: []string{"/v2.0/networks?name=red"}},
		{ref: nameID, wantID: "33333333-3333-4333-8333-333333333333",
			wantPaths: []string{"/v2.0/networks/" + nameID, "/v2.0/networks?name=" + nameID}},
		{ref: "blue", wantErr: "Network blue could not be found.", notFound: true,
			wantPaths: []string{"/v2.0/networks?name=blue"}},
		{ref: "dup", wantErr: "More than one network exists with the name 'dup'; use its id.",
			wantPaths: []string{"/v2.0/networks?name=dup"}},
		{ref: "", wantErr: "empty network name or id"},
	}
	for _, tt := range tests {
		t.Run(tt.ref, func(t *testing.T) {
			c, rec := newTCP(t, Config{}, answer)
			id, err := c.FindID(context.Background(), Networks, tt.ref)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				if IsNotFound(err) != tt.notFound {
					t.Errorf("IsNotFound = %v, want %v", IsNotFound(err), tt.notFound)
				}
			} else if err != nil || id != tt.wantID {
				t.Fatalf("FindID = %q, %v; want %q", id, err, tt.wantID)
			}
			var paths []string
			for _, r := range rec.requests {
				p := r.Path
				if r.Query != "" {
					p += "?" + r.Query
				}
				paths = append(paths, p)
			}
			if strings.Join(paths, " ") != strings.Join(tt.wantPaths, " ") {
				t.Errorf("requests = %v, want %v", paths, tt.wantPaths)
			}
		})
	}
}

func TestCollectionNames(t *testing.T) {
	for _, tt := range []struct {
		col            Collection
		singular, kind string
	}{
		{Networks, "network", "Network"},
		{Subnets, "subnet", "Subnet"},
		{Ports, "port", "Port"},
		{Instances, "instance", "Instance"},
		{Routers, "router", "Router"},
		{FloatingIPs, "floatingip", "Floatingip"},
		{PortForwardings("f-1"), "port_forwarding", "Port_forwarding"},
		{SecurityGroups, "security_group", "Security group"},
		{SecurityGroupRules, "security_group_rule", "Security group rule"},
	} {
		if tt.col.Singular() != tt.singular || tt.col.Kind() != tt.kind {
			t.Errorf("%s: %q %q", tt.col, tt.col.Singular(), tt.col.Kind())
		}
	}
}

func TestUnprogrammed(t *testing.T) {
	yes, no := true, false
	tests := []struct {
		name string
		meta Meta
		obj  string
		want string
	}{
		{name: "did not wait", meta: Meta{}, obj: `{"status": "ERROR"}`},
		{name: "converged and active", meta: Meta{Converged: &yes}, obj: `{"status": "ACTIVE"}`},
		{name: "converged delete", meta: Meta{Converged: &yes}},
		{name: "wait ended", meta: Meta{Converged: &no}, want: "the agent had not programmed it when the wait ended"},
		{
			name: "port error", meta: Meta{Converged: &yes}, obj: `{"status": "ERROR", "nsnet:status_reason": "no bridge"}`,
			want: "the agent could not program it: no bridge",
		},
		{
			name: "instance error", meta: Meta{Converged: &yes}, obj: `{"status": "ERROR", "status_reason": "namespace x is not nsnet's"}`,
			want: "the agent could not program it: namespace x is not nsnet's",
		},
		{
			name: "error without reason", meta: Meta{Converged: &yes}, obj: `{"status": "ERROR"}`,
			want: "the agent could not program it: no reason given",
		},
	}
	for _, tt := range tests {
		var obj json.RawMessage
		if tt.obj != "" {
			obj = json.RawMessage(tt.obj)
		}
		if got := Unprogrammed(tt.meta, obj); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}

// TestL3Requests: port forwardings live below their floating IP, floating
// IPs are found by address, router actions are PUTs with a bare body.
func TestL3Requests(t *testing.T) {
	c, rec := newTCP(t, Config{}, func(r *http.Request, _ []byte) (int, http.Header, string) {
		switch {
		case r.URL.Path == "/v2.0/floatingips":
			return 200, nil, `{"floatingips": [{"id": "f-1", "floating_ip_address": "198.51.100.7"}]}`
		case r.URL.Path == "/v2.0/floatingips/f-1/port_forwardings":
			return 200, nil, `{"port_forwardings": [{"id": "pf-1"}]}`
		default:
			return 200, nil, `{"id": "r-1", "port_id": "p-1", "subnet_id": "s-1", "subnet_ids": ["s-1"]}`
		}
	})
	ctx := context.Background()
	id, err := c.FindID(ctx, FloatingIPs, "198.51.100.7")
	if got := rec.last(t); err != nil || id != "f-1" || got.Query != "floating_ip_address=198.51.100.7" {
		t.Errorf("find floating IP: %q %v, query %q", id, err, got.Query)
	}
	pfs, err := List[map[string]any](ctx, c, PortForwardings("f-1"), nil)
	if err != nil || len(pfs) != 1 || pfs[0]["id"] != "pf-1" {
		t.Errorf("list port forwardings: %v %v", pfs, err)
	}
	info, _, err := c.AddRouterInterface(ctx, "r-1", InterfaceRef{SubnetID: "s-1"})
	got := rec.last(t)
	if err != nil || info.PortID != "p-1" || got.Method != "PUT" || got.Path != "/v2.0/routers/r-1/add_router_interface" ||
		got.Body != `{"subnet_id":"s-1"}` {
		t.Errorf("add interface: %+v %v; request %+v", info, err, got)
	}
}

// TestConnectionReused: one client's requests share one connection to
// the daemon, whatever the answer's framing (a length, or chunks as the
// API streams a body past its buffer) or status, so that a script of
// waited writes pays no connection per write.
func TestConnectionReused(t *testing.T) {
	big := `{"port": {"id": "p1", "description": "` + strings.Repeat("x", 8<<10) + `"}}` + "\n"
	for _, tc := range []struct {
		name   string
		status int
		body   string
		chunks bool
	}{
		{"small", 201, `{"port": {"id": "p1"}}` + "\n", false},
		{"chunked", 201, big, true},
		{"error", 409, `{"NeutronError": {"type": "IpAddressAlreadyAllocated", "message": "taken", "detail": ""}}` + "\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sock := filepath.Join(t.TempDir(), "nsnet.sock")
			ln, err := net.Listen("unix", sock)
			if err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			conns := 0
			srv := &http.Server{
				Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					_, _ = io.Copy(io.Discard, r.Body)
					w.Header().Set("Content-Type", "application/json")
					w.WriteHeader(tc.status)
					if tc.chunks {
						half := len(tc.body) / 2
						_, _ = io.WriteString(w, tc.body[:half])
						w.(http.Flusher).Flush()
						_, _ = io.WriteString(w, tc.body[half:])
						return
					}
					_, _ = io.WriteString(w, tc.body)
				}),
				ConnState: func(_ net.Conn, s http.ConnState) {
					if s == http.StateNew {
						mu.Lock()
						conns++
						mu.Unlock()
					}
				},
			}
			go func() { _ = srv.Serve(ln) }()
			t.Cleanup(func() { _ = srv.Close() })
			c, err := New(Config{Socket: sock, Wait: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			for range 5 {
				p, _, err := Create[map[string]any](context.Background(), c, Ports, map[string]any{"name": "p"})
				if tc.status < 300 && (err != nil || p["id"] != "p1") {
					t.Fatalf("Create = %v, %v", p, err)
				}
				if tc.status >= 300 && err == nil {
					t.Fatalf("Create answered %d: no error", tc.status)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if conns != 1 {
				t.Errorf("5 requests took %d connections, want 1", conns)
			}
		})
	}
}
