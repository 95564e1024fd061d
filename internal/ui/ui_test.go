package ui_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nsnet/nsnet/internal/api"
	"github.com/nsnet/nsnet/internal/auth"
	"github.com/nsnet/nsnet/internal/service"
	"github.com/nsnet/nsnet/internal/store"
	"github.com/nsnet/nsnet/internal/topoview"
	"github.com/nsnet/nsnet/internal/ui"
)

const testTokens = `
- {token: tok-admin, project_id: admin, user_id: root, roles: [admin]}
- {token: tok-alpha, project_id: alpha, project_name: Alpha, user_id: alice, roles: [member]}
- {token: tok-reader, project_id: alpha, user_id: rita, roles: [reader]}
- {token: tok-beta, project_id: beta, project_name: Beta, user_id: bob, roles: [member]}
`

// site is the daemon's TCP listener in miniature: the API behind a tokens
// file over a real service and store, with the view at /ui/ in front, as
// the daemon mounts them. There is no agent: nothing reaches the kernel.
type site struct {
	t   *testing.T
	srv *httptest.Server
}

func newSite(t *testing.T, trusted bool) *site {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "tokens.yaml")
	if err := os.WriteFile(path, []byte(testTokens), 0o600); err != nil {
		t.Fatal(err)
	}
	tokens, err := auth.LoadTokens(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenBolt(filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	svc := service.New(service.Config{Store: store.NewRetrying(st), NetnsPrefix: "t-"})
	s := api.New(api.Config{Service: svc, Projects: tokens.Projects,
		Status: func() any {
			return map[string]any{"daemon": map[string]any{"host_netns": "t-host", "netns_prefix": "t-"}}
		}})
	apiHandler := s.TokenHandler(tokens)
	cfg := ui.Config{API: apiHandler, Authenticator: tokens}
	if trusted {
		apiHandler = s.TrustedHandler()
		cfg = ui.Config{API: apiHandler}
	}
	srv := httptest.NewServer(ui.WithAPI(apiHandler, ui.New(cfg)))
	t.Cleanup(srv.Close)
	return &site{t: t, srv: srv}
}

// apiCreate creates a resource through the API as who (on the trusted
// site, anyone is the admin) and returns its id.
func (s *site) apiCreate(who, collection, singular string, attrs map[string]any) string {
	s.t.Helper()
	raw, _ := json.Marshal(map[string]any{singular: attrs})
	req, _ := http.NewRequest("POST", s.srv.URL+"/v2.0/"+collection, bytes.NewReader(raw))
	req.Header.Set("X-Auth-Token", "tok-"+who)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != 201 {
		s.t.Fatalf("create %s as %s: %d %v", singular, who, resp.StatusCode, err)
	}
	return body[singular]["id"].(string)
}

// noRedirect lets a test see a redirect and its cookie.
var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

type answer struct {
	status int
	header http.Header
	body   string
}

// get requests path with the cookie of token (none when empty).
func (s *site) send(method, path, cookie string, body io.Reader, contentType string) answer {
	s.t.Helper()
	req, _ := http.NewRequest(method, s.srv.URL+path, body)
	if cookie != "" {
		req.AddCookie(&http.Cookie{Name: ui.CookieName, Value: cookie})
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := noRedirect.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, string(raw)}
}

func (s *site) get(path, cookie string) answer { return s.send("GET", path, cookie, nil, "") }

const loginForm = `<form method="post" action="/ui/login">`

func TestLogin(t *testing.T) {
	s := newSite(t, false)
	for _, tc := range []struct {
		name       string
		method     string
		path       string
		cookie     string
		form       url.Values
		status     int
		contains   []string
		setsCookie string // the token the answer's cookie holds; "" for none
		location   string
	}{
		{name: "no token: the login form", method: "GET", path: "/ui/", status: 200, contains: []string{loginForm}},
		{name: "/ui goes to /ui/", method: "GET", path: "/ui", status: 301, location: "/ui/"},
		{name: "a bad token in the link: 401", method: "GET", path: "/ui/?token=nope", status: 401,
			contains: []string{loginForm, "That token was not accepted."}},
		{name: "a bad cookie: 401", method: "GET", path: "/ui/", cookie: "nope", status: 401, contains: []string{loginForm}},
		{name: "the link logs in and drops the token from the address", method: "GET", path: "/ui/?token=tok-alpha",
			status: 303, setsCookie: "tok-alpha", location: "/ui/"},
		{name: "the cookie shows the page", method: "GET", path: "/ui/", cookie: "tok-alpha", status: 200,
			contains: []string{`<svg xmlns="http://www.w3.org/2000/svg" id="topology"`, "alice · project Alpha (member)", `src="/ui/static/ui.js"`}},
		{name: "the form logs in", method: "POST", path: "/ui/login", form: url.Values{"token": {"tok-beta"}},
			status: 303, setsCookie: "tok-beta", location: "/ui/"},
		{name: "the form refuses a bad token", method: "POST", path: "/ui/login", form: url.Values{"token": {"bad"}},
			status: 401, contains: []string{"That token was not accepted."}},
		{name: "the view's data needs the token", method: "GET", path: "/ui/api/view", status: 401,
			contains: []string{`"error":"The request you have made requires authentication."`}},
		{name: "a bad token gets no data", method: "GET", path: "/ui/api/view", cookie: "tok-nope", status: 401},
		{name: "explain needs the token", method: "GET", path: "/ui/api/explain?node=network:x", status: 401},
		{name: "the script is served without a token", method: "GET", path: "/ui/static/ui.js", status: 200,
			contains: []string{"/ui/api/view"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var a answer
			if tc.form != nil {
				a = s.send(tc.method, tc.path, tc.cookie, strings.NewReader(tc.form.Encode()), "application/x-www-form-urlencoded")
			} else {
				a = s.send(tc.method, tc.path, tc.cookie, nil, "")
			}
			if a.status != tc.status {
				t.Fatalf("%s %s: %d, want %d\n%s", tc.method, tc.path, a.status, tc.status, a.body)
			}
			for _, want := range tc.contains {
				if !strings.Contains(a.body, want) {
					t.Errorf("the answer lacks %q:\n%s", want, a.body)
				}
			}
			if tc.location != "" && a.header.Get("Location") != tc.location {
				t.Errorf("Location %q, want %q", a.header.Get("Location"), tc.location)
			}
			var got *http.Cookie
			for _, c := range (&http.Response{Header: a.header}).Cookies() {
				if c.Name == ui.CookieName && c.MaxAge >= 0 {
					got = c
				}
			}
			switch {
			case tc.setsCookie == "" && got != nil:
				t.Errorf("a cookie was set: %v", got)
			case tc.setsCookie != "" && got == nil:
				t.Errorf("no cookie set")
			case got != nil:
				if got.Value != tc.setsCookie || !got.HttpOnly || got.SameSite != http.SameSiteStrictMode || got.Path != "/ui/" {
					t.Errorf("cookie %+v, want %s, HttpOnly, SameSite=Strict, Path=/ui/", got, tc.setsCookie)
				}
			}
			if csp := a.header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
				t.Errorf("Content-Security-Policy %q", csp)
			}
		})
	}
}

// TestUnixSocketNeedsNoToken: on the socket every caller is the admin, as
// on the API, and the page comes without a login.
func TestUnixSocketNeedsNoToken(t *testing.T) {
	s := newSite(t, true)
	s.apiCreate("", "networks", "network", map[string]any{"name": "red"})
	a := s.get("/ui/", "")
	if a.status != 200 || !strings.Contains(a.body, `data-name="red"`) || strings.Contains(a.body, loginForm) {
		t.Fatalf("GET /ui/ on the socket: %d\n%s", a.status, a.body)
	}
}

func (s *site) view(token string) ui.View {
	s.t.Helper()
	a := s.get("/ui/api/view", token)
	if a.status != 200 {
		s.t.Fatalf("view as %s: %d %s", token, a.status, a.body)
	}
	var v ui.View
	if err := json.Unmarshal([]byte(a.body), &v); err != nil {
		s.t.Fatal(err)
	}
	return v
}

// TestScoping: each caller's picture is what the API shows them — a
// member sees their project's objects and the shared and external
// networks, never another project's; the admin sees everything. Explain
// and trace of what a caller cannot see are not found, and a reader may
// look but not trace.
func TestScoping(t *testing.T) {
	s := newSite(t, false)
	public := s.apiCreate("admin", "networks", "network", map[string]any{"name": "public", "router:external": true})
	s.apiCreate("admin", "subnets", "subnet", map[string]any{"network_id": public, "cidr": "198.51.100.0/24", "enable_dhcp": false})
	s.apiCreate("admin", "networks", "network", map[string]any{"name": "shared-net", "shared": true})
	s.apiCreate("admin", "networks", "network", map[string]any{"name": "admin-net"})
	alphaNet := s.apiCreate("alpha", "networks", "network", map[string]any{"name": "alpha-net"})
	s.apiCreate("alpha", "subnets", "subnet", map[string]any{"network_id": alphaNet, "cidr": "10.0.0.0/24", "enable_dhcp": false})
	betaNet := s.apiCreate("beta", "networks", "network", map[string]any{"name": "beta-net"})
	s.apiCreate("beta", "subnets", "subnet", map[string]any{"network_id": betaNet, "cidr": "10.0.0.0/24", "enable_dhcp": false})
	s.apiCreate("alpha", "routers", "router", map[string]any{"name": "alpha-r"})
	s.apiCreate("beta", "routers", "router", map[string]any{"name": "beta-r"})

	names := func(v ui.View) []string {
		var out []string
		for _, n := range v.Nodes {
			if n.Kind != topoview.KindPort {
				out = append(out, n.Kind+" "+n.Name)
			}
		}
		slices.Sort(out)
		return out
	}
	for _, tc := range []struct {
		who  string
		want []string
	}{
		{"tok-admin", []string{"external_network public", "network admin-net", "network alpha-net", "network beta-net",
			"network shared-net", "router alpha-r", "router beta-r"}},
		{"tok-alpha", []string{"external_network public", "network alpha-net", "network shared-net", "router alpha-r"}},
		{"tok-reader", []string{"external_network public", "network alpha-net", "network shared-net", "router alpha-r"}},
		{"tok-beta", []string{"external_network public", "network beta-net", "network shared-net", "router beta-r"}},
	} {
		v := s.view(tc.who)
		if got := names(v); !slices.Equal(got, tc.want) {
			t.Errorf("%s sees %q, want %q", tc.who, got, tc.want)
		}
		for _, n := range v.Nodes {
			if !strings.Contains(v.SVG, `data-id="`+n.ID+`"`) {
				t.Errorf("%s: node %s is not drawn", tc.who, n.ID)
			}
		}
		if strings.Contains(tc.who, "alpha") && strings.Contains(v.SVG, "beta") {
			t.Errorf("%s's picture mentions beta", tc.who)
		}
	}

	for _, tc := range []struct {
		name, method, path, token, body string
		status                          int
		errContains                     string
	}{
		{"explain of another project's network is not found", "GET", "/ui/api/explain?node=network:" + betaNet, "tok-alpha", "", 404, "could not be found"},
		{"explain of an unknown kind", "GET", "/ui/api/explain?node=port:x", "tok-alpha", "", 400, "node:"},
		{"a reader cannot trace", "POST", "/ui/api/trace", "tok-reader", `{"source":"vm","destination":"10.0.0.1"}`, 403, "disallowed by policy"},
		{"trace wants JSON", "POST", "/ui/api/trace", "tok-alpha", `source=vm`, 415, "Content-Type"},
		{"trace names the bad field", "POST", "/ui/api/trace", "tok-alpha", `{"source":"vm","destination":"10.0.0.1","protocol":"sctp"}`, 400, "protocol:"},
		{"trace wants a port for TCP", "POST", "/ui/api/trace", "tok-alpha", `{"source":"vm","destination":"10.0.0.1","protocol":"tcp"}`, 400, "port: 0"},
		{"trace wants one source", "POST", "/ui/api/trace", "tok-alpha", `{"destination":"10.0.0.1"}`, 400, "source:"},
		{"trace of another project's network is not found", "POST", "/ui/api/trace", "tok-alpha", `{"from_external":"` + betaNet + `","destination":"10.0.0.1"}`, 404, "could not be found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ct := "application/json"
			if !strings.HasPrefix(tc.body, "{") && tc.body != "" {
				ct = "application/x-www-form-urlencoded"
			}
			a := s.send(tc.method, tc.path, tc.token, strings.NewReader(tc.body), ct)
			var e struct{ Error string }
			_ = json.Unmarshal([]byte(a.body), &e)
			if a.status != tc.status || !strings.Contains(e.Error, tc.errContains) {
				t.Errorf("%s %s as %s: %d %q, want %d with %q", tc.method, tc.path, tc.token, a.status, e.Error, tc.status, tc.errContains)
			}
		})
	}
}

// TestAPIRoutesKeepTheirLabels: the API behind WithAPI labels its
// requests as it does alone — a request refused for its token with the
// route it would have taken, not the pattern that sent it to the API.
func TestAPIRoutesKeepTheirLabels(t *testing.T) {
	st, err := store.OpenBolt(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var routes []string
	s := api.New(api.Config{Service: service.New(service.Config{Store: st}), Status: func() any { return map[string]any{} },
		Observe: func(method, route string, code int, _ time.Duration) {
			routes = append(routes, fmt.Sprintf("%s %d", route, code))
		}})
	h := s.TokenHandler(api.StaticToken("s3cret"))
	srv := httptest.NewServer(ui.WithAPI(h, ui.New(ui.Config{API: h, Authenticator: api.StaticToken("s3cret")})))
	defer srv.Close()
	for _, path := range []string{"/v2.0/ports/x", "/v2.0/networks", "/ui/"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	want := []string{"GET /v2.0/ports/{id} 401", "GET /v2.0/networks 401"}
	if !slices.Equal(routes, want) {
		t.Errorf("the API labelled %q, want %q", routes, want)
	}
}
