// Package ui serves nsnet's web view at /ui/: a live picture of the
// topology in tiers, as Horizon's network topology draws it, with every
// object's status and error reason, per-port traffic and security-group
// drop counters, an object's attributes and `explain`, and a `trace` run
// from the page and drawn on the graph.
//
// It owns the view's HTTP side: logging in (the API's own authenticator; the
// token kept in an HttpOnly cookie, or none on the unix socket, whose
// callers are the admin), the page (html/template, with a small script and
// styles of its own, embedded: no third-party code, no build step), and the
// JSON endpoints the script polls. Everything it shows it reads through
// the API as the caller, in process, so that the API's policy scopes it
// exactly as it scopes the caller's own requests. It must not read the
// store or the service but through the API, nor hold layout (package
// topoview) or policy logic.
package ui

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/nsnet/nsnet/internal/auth"
	"github.com/nsnet/nsnet/internal/client"
	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/topoview"
)

// CookieName is the cookie that holds the caller's token.
const CookieName = "nsnet_ui_token"

//go:embed static
var static embed.FS

//go:embed templates/*.html
var templates embed.FS

var pages = template.Must(template.ParseFS(templates, "templates/*.html"))

// Config wires the view.
type Config struct {
	// API is the API's handler for the listener the view is served on
	// (the trusted one on the unix socket, the token one on TCP): the
	// view's reads go through it, in process, as the caller.
	API http.Handler
	// Authenticator checks tokens, as the API's TCP listener does; nil on
	// the unix socket, where every caller is the admin and no token is
	// asked for.
	Authenticator auth.Authenticator
	// Traffic, when set, returns every port's interface counters by port
	// id (the agent's); the view shows those of the ports the caller sees.
	Traffic func() (map[string]topoview.Traffic, error)
	Logger  *slog.Logger
}

// Handler serves /ui/.
type Handler struct {
	cfg Config
	mux *http.ServeMux
	// tracing lets one trace run at a time: each opens captures on every
	// interface of its path, and the box is small.
	tracing sync.Mutex
}

// New returns the view's handler, for the paths under /ui/.
func New(cfg Config) *Handler {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	h := &Handler{cfg: cfg, mux: http.NewServeMux()}
	sub, _ := fs.Sub(static, "static")
	h.mux.Handle("GET /ui/static/", http.StripPrefix("/ui/static/", http.FileServerFS(sub)))
	h.mux.HandleFunc("GET /ui/{$}", h.page)
	h.mux.HandleFunc("POST /ui/login", h.login)
	h.mux.HandleFunc("POST /ui/logout", h.logout)
	h.mux.HandleFunc("GET /ui/api/view", h.withCaller(h.view))
	h.mux.HandleFunc("GET /ui/api/explain", h.withCaller(h.explain))
	h.mux.HandleFunc("POST /ui/api/trace", h.withCaller(h.trace))
	h.mux.HandleFunc("/ui/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, errorBody{"no such page: " + r.URL.Path})
	})
	return h
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	// Only the view's own script and styles run; nothing frames it. The
	// SVG carries its own <style>, hence inline styles.
	hd.Set("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	if r.URL.Path == "/ui" {
		http.Redirect(w, r, "/ui/", http.StatusMovedPermanently)
		return
	}
	h.mux.ServeHTTP(w, r)
}

// WithAPI serves view under /ui/ and apiHandler everywhere else: how a
// daemon's listener serves both. It dispatches by prefix rather than
// through a ServeMux, which would set the request's Pattern: the API
// labels its metrics with the route a request matched, or would have
// matched when its token is refused, and must see the request untouched.
func WithAPI(apiHandler http.Handler, view *Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ui" || strings.HasPrefix(r.URL.Path, "/ui/") {
			view.ServeHTTP(w, r)
			return
		}
		apiHandler.ServeHTTP(w, r)
	})
}

// session is a caller the view serves: who, and the API as them.
type session struct {
	caller auth.Caller
	api    *client.Client
}

// errNoToken is a request that brought no token at all.
var errNoToken = errors.New("no token")

// authenticate resolves the request's caller: the admin on the unix
// socket, else the token of the cookie (or of token, when given).
func (h *Handler) authenticate(r *http.Request, token string) (*session, error) {
	if h.cfg.Authenticator == nil {
		return h.session(auth.Admin, ""), nil
	}
	if token == "" {
		c, err := r.Cookie(CookieName)
		if err != nil || c.Value == "" {
			return nil, errNoToken
		}
		token = c.Value
	}
	if !auth.WellFormed(token) {
		return nil, auth.ErrUnauthorized
	}
	caller, err := h.cfg.Authenticator.Authenticate(r.Context(), token)
	if err != nil {
		return nil, err
	}
	return h.session(caller, token), nil
}

func (h *Handler) session(c auth.Caller, token string) *session {
	cfg := client.Config{Endpoint: "http://nsnet-ui", UserAgent: "nsnet-ui",
		HTTPClient: &http.Client{Transport: handlerTransport{h.cfg.API}}}
	if token != "" {
		cfg.Auth = client.StaticToken(token)
	}
	api, err := client.New(cfg)
	if err != nil {
		// The endpoint is a constant that parses.
		panic(err)
	}
	return &session{caller: c, api: api}
}

func (h *Handler) setCookie(w http.ResponseWriter, r *http.Request, token string) {
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: token, Path: "/ui/", HttpOnly: true,
		Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
}

type loginData struct {
	Message string
}

// page serves the view, or the login form to a caller without a valid
// token. ?token= logs in and sends the browser to /ui/ without it, so that
// the token stays out of the address bar and history (as Jupyter does).
func (h *Handler) page(w http.ResponseWriter, r *http.Request) {
	token := r.URL.Query().Get("token")
	s, err := h.authenticate(r, token)
	if err != nil {
		h.loginPage(w, r, err)
		return
	}
	if token != "" && h.cfg.Authenticator != nil {
		h.setCookie(w, r, token)
		q := r.URL.Query()
		q.Del("token")
		target := "/ui/"
		if len(q) > 0 {
			target += "?" + q.Encode()
		}
		http.Redirect(w, r, target, http.StatusSeeOther)
		return
	}
	v, err := h.buildView(r.Context(), s)
	if err != nil {
		h.fail(w, err)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := pages.ExecuteTemplate(w, "page.html", map[string]any{
		"Caller": describe(s.caller), "SVG": template.HTML(v.SVG), "LoggedIn": h.cfg.Authenticator != nil,
	}); err != nil {
		h.cfg.Logger.Warn("render /ui/", "err", err)
	}
}

func (h *Handler) loginPage(w http.ResponseWriter, r *http.Request, err error) {
	status, msg := http.StatusOK, ""
	switch {
	case errors.Is(err, errNoToken):
	case errors.Is(err, auth.ErrUnavailable):
		status, msg = http.StatusServiceUnavailable, "The identity service cannot validate the token right now: "+err.Error()
	default:
		status, msg = http.StatusUnauthorized, "That token was not accepted."
		if !errors.Is(err, auth.ErrUnauthorized) {
			h.cfg.Logger.Error("authenticator failed", "err", err)
		}
		// A cookie that no longer works (an expired Keystone token) goes.
		http.SetCookie(w, &http.Cookie{Name: CookieName, Path: "/ui/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if err := pages.ExecuteTemplate(w, "login.html", loginData{Message: msg}); err != nil {
		h.cfg.Logger.Warn("render login", "err", err)
	}
}

func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	token := strings.TrimSpace(r.PostFormValue("token"))
	if token == "" {
		h.loginPage(w, r, auth.ErrUnauthorized)
		return
	}
	if _, err := h.authenticate(r, token); err != nil {
		h.loginPage(w, r, err)
		return
	}
	h.setCookie(w, r, token)
	http.Redirect(w, r, "/ui/", http.StatusSeeOther)
}

func (h *Handler) logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: CookieName, Path: "/ui/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/ui/", http.StatusSeeOther)
}

// withCaller authenticates a JSON endpoint's request: 401 without a valid
// token, as the API answers.
func (h *Handler) withCaller(next func(http.ResponseWriter, *http.Request, *session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, err := h.authenticate(r, "")
		switch {
		case errors.Is(err, auth.ErrUnavailable):
			writeJSON(w, http.StatusServiceUnavailable, errorBody{"The identity service cannot validate the token right now: " + err.Error()})
			return
		case err != nil:
			writeJSON(w, http.StatusUnauthorized, errorBody{"The request you have made requires authentication."})
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		next(w, r, s)
	}
}

// describe is the caller as the page's header shows it.
func describe(c auth.Caller) string {
	who := c.UserID
	if who == "" {
		who = "admin"
	}
	project := c.ProjectName
	if project == "" {
		project = c.ProjectID
	}
	if project != "" {
		who += " · project " + project
	}
	if len(c.Roles) > 0 {
		who += " (" + strings.Join(c.Roles, ", ") + ")"
	}
	return who
}

type errorBody struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// fail answers an error from the API with its status, others with 500.
func (h *Handler) fail(w http.ResponseWriter, err error) {
	var apiErr *client.Error
	if errors.As(err, &apiErr) && apiErr.StatusCode >= 400 {
		writeJSON(w, apiErr.StatusCode, errorBody{apiErr.Message})
		return
	}
	h.cfg.Logger.Warn("web view request failed", "err", err)
	writeJSON(w, http.StatusInternalServerError, errorBody{err.Error()})
}

// View is what the page draws: the SVG, the graph's nodes (for the
// attributes panel and the trace form) and a signature of the layout, so
// that the script knows whether a trace drawn on it still fits.
type View struct {
	SVG       string          `json:"svg"`
	Signature string          `json:"signature"`
	Nodes     []topoview.Node `json:"nodes"`
	Caller    string          `json:"caller"`
	CanTrace  bool            `json:"can_trace"`
	layout    topoview.Layout
}

func (h *Handler) buildView(ctx context.Context, s *session) (*View, error) {
	recs, err := LoadRecords(ctx, s.api)
	if err != nil {
		return nil, err
	}
	if h.cfg.Traffic != nil {
		if recs.Traffic, err = h.cfg.Traffic(); err != nil {
			// The picture without traffic is still the picture.
			h.cfg.Logger.Debug("port traffic", "err", err)
		}
	}
	l := topoview.Place(topoview.Build(recs))
	return &View{SVG: l.SVG(), Signature: signature(l), Nodes: l.Graph.Nodes, Caller: describe(s.caller),
		CanTrace: s.caller.CanWrite(), layout: l}, nil
}

// signature changes when any box moves.
func signature(l topoview.Layout) string {
	raw, _ := json.Marshal(l.Boxes)
	f := fnv.New64a()
	f.Write(raw)
	return fmt.Sprintf("%016x", f.Sum64())
}

func (h *Handler) view(w http.ResponseWriter, r *http.Request, s *session) {
	v, err := h.buildView(r.Context(), s)
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// LoadRecords reads what the graph is built from through the API, as c's
// caller sees it (`nsnet graph` and the view share it).
func LoadRecords(ctx context.Context, c *client.Client) (topoview.Records, error) {
	var r topoview.Records
	var err error
	if r.Networks, err = client.List[model.Network](ctx, c, client.Networks, nil); err != nil {
		return r, err
	}
	if r.Subnets, err = client.List[model.Subnet](ctx, c, client.Subnets, nil); err != nil {
		return r, err
	}
	if r.Ports, err = client.List[model.Port](ctx, c, client.Ports, nil); err != nil {
		return r, err
	}
	if r.Routers, err = client.List[model.Router](ctx, c, client.Routers, nil); err != nil {
		return r, err
	}
	if r.Instances, err = client.List[model.Instance](ctx, c, client.Instances, nil); err != nil {
		return r, err
	}
	if r.FloatingIPs, err = client.List[model.FloatingIP](ctx, c, client.FloatingIPs, nil); err != nil {
		return r, err
	}
	return r, nil
}

// explainable are the kinds `explain` covers, by node kind.
var explainable = []string{topoview.KindRouter, topoview.KindNetwork, topoview.KindExternal, topoview.KindInstance}

func (h *Handler) explain(w http.ResponseWriter, r *http.Request, s *session) {
	kind, id, ok := strings.Cut(r.URL.Query().Get("node"), ":")
	if !ok || id == "" || !slices.Contains(explainable, kind) {
		writeJSON(w, http.StatusBadRequest, errorBody{"node: want router:ID, network:ID, external_network:ID or instance:ID"})
		return
	}
	text, err := explainNode(r.Context(), s.api, kind, id)
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"script": text})
}

// handlerTransport sends the client's requests to an http.Handler in
// this process: the view's reads are API requests as the caller, without
// a socket.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	if req.Body == nil {
		req.Body = http.NoBody
	}
	req.RequestURI = req.URL.RequestURI()
	rec := newRecorder()
	t.h.ServeHTTP(rec, req)
	return rec.result(req), nil
}
