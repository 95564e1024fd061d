// Package api serves nsnet's REST API: a compatible subset of the OpenStack
// Networking API v2.0 (same paths, envelopes, attribute names, statuses and
// error types) plus nsnet's extensions (instances, status, waiting for the
// agent).
//
// It owns HTTP: routing, authentication, request envelopes, list filters,
// fields, sorting and pagination, and error rendering. It must not validate
// attributes or touch the store or the kernel: the service does the former,
// the agent the latter.
package api

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/nsnet/nsnet/internal/auth"
	"github.com/nsnet/nsnet/internal/service"
)

// MaxBodyBytes bounds a request body; larger ones get 413.
const MaxBodyBytes = 1 << 20

// Headers of nsnet's wait extension.
const (
	// HeaderWait on a write asks the server to answer only once the agent
	// has programmed the change, waiting at most the given duration ("30s").
	HeaderWait = "X-Nsnet-Wait"
	// HeaderConverged tells whether the agent had programmed the change
	// when the answer was sent.
	HeaderConverged = "X-Nsnet-Converged"
	// HeaderRevision is the store revision that holds a write.
	HeaderRevision = "X-Nsnet-Revision"
	// maxWait bounds HeaderWait.
	maxWait = 5 * time.Minute
)

// Converger tells when the hosts' agents have programmed a store revision
// (hoststatus.View, from the records they publish to the store). When ctx
// ends first, its error says which host it waited for.
type Converger interface {
	WaitConverged(ctx context.Context, rev int64) error
}

// Authenticator resolves a token to a caller (see package auth).
type Authenticator = auth.Authenticator

// ErrUnauthorized is returned by an Authenticator for a token it rejects.
var ErrUnauthorized = auth.ErrUnauthorized

// StaticToken accepts one token, as the admin.
type StaticToken string

// Authenticate implements Authenticator, comparing in constant time.
func (t StaticToken) Authenticate(_ context.Context, token string) (auth.Caller, error) {
	if t == "" || !auth.WellFormed(token) || subtle.ConstantTimeCompare([]byte(token), []byte(t)) != 1 {
		return auth.Caller{}, ErrUnauthorized
	}
	return auth.Admin, nil
}

// Config wires a Server.
type Config struct {
	Service   *service.Service
	Converger Converger
	// Status returns the body of GET /nsnet/status.
	Status func() any
	// Projects, when set, answers the OpenStack CLI's identity look-ups
	// (GET /v3/projects…) from nsnet's tokens file; nil when a real
	// Keystone does (see identity.go).
	Projects func() []auth.Project
	// Metrics, when set, serves GET /metrics (Prometheus's text format) to
	// admins: the series count every project's objects.
	Metrics http.Handler
	// Observe, when set, is told of every request answered: its method,
	// the route pattern it matched (never its raw path) and its status.
	Observe func(method, route string, code int, d time.Duration)
	Logger  *slog.Logger
}

// Server is the HTTP API.
type Server struct {
	cfg Config
	mux *http.ServeMux
}

// New returns a Server.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{cfg: cfg, mux: http.NewServeMux()}
	s.routes()
	return s
}

// TrustedHandler serves callers that are trusted by how they connected (the
// root-only unix socket): every request is the admin's.
func (s *Server) TrustedHandler() http.Handler {
	return s.wrap(func(r *http.Request) (auth.Caller, error) { return auth.Admin, nil })
}

// TokenHandler serves callers that must present X-Auth-Token.
func (s *Server) TokenHandler(a Authenticator) http.Handler {
	return s.wrap(func(r *http.Request) (auth.Caller, error) {
		token := r.Header.Get("X-Auth-Token")
		if !auth.WellFormed(token) {
			return auth.Caller{}, ErrUnauthorized
		}
		return a.Authenticate(r.Context(), token)
	})
}

func (s *Server) wrap(authenticate func(*http.Request) (auth.Caller, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		defer func() {
			if v := recover(); v != nil {
				s.cfg.Logger.Error("panic serving request", "method", r.Method, "path", r.URL.Path, "panic", v)
				writeError(rec, &service.Error{Status: 500, Type: "HTTPInternalServerError",
					Message: "Request Failed: internal server error while processing your request."})
			}
			d := time.Since(start)
			// waited: the part of the duration spent for the
			// agents to program the write (HeaderWait).
			s.cfg.Logger.Debug("request", "method", r.Method, "path", r.URL.Path,
				"status", rec.status, "duration", d, "waited", rec.waited)
			if s.cfg.Observe != nil {
				s.cfg.Observe(methodLabel(r.Method), s.route(r), rec.status, d)
			}
		}()
		// The version document is public, as in Neutron.
		if r.URL.Path != "/" {
			c, err := authenticate(r)
			if err != nil {
				writeError(rec, s.authError(r, err))
				return
			}
			r = r.WithContext(auth.WithCaller(r.Context(), c))
		}
		// Neutron takes a ".json" format suffix on any path (tempest's
		// quota client asks for /v2.0/quotas/ID/details.json); JSON is
		// the only format there is.
		if p, ok := strings.CutSuffix(r.URL.Path, ".json"); ok && strings.HasPrefix(p, "/v2.0/") {
			r = r.Clone(r.Context())
			r.URL.Path, r.URL.RawPath = p, ""
		}
		r.Body = http.MaxBytesReader(rec, r.Body, MaxBodyBytes)
		s.mux.ServeHTTP(rec, r)
	})
}

// route is the pattern r matched, or would have had it been let through
// (a request refused by authentication): a label of bounded cardinality,
// whatever paths callers send.
func (s *Server) route(r *http.Request) string {
	if r.Pattern != "" {
		return r.Pattern
	}
	_, pattern := s.mux.Handler(r)
	return pattern
}

// methodLabel bounds the methods a label can hold: any other is "other".
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
		http.MethodPatch, http.MethodDelete, http.MethodOptions:
		return m
	}
	return "other"
}

// authError answers a request whose token could not be accepted: 401 for a
// token that is not valid, 503 when it could not be checked at all (the
// message says why; it never contains the token).
func (s *Server) authError(r *http.Request, err error) *service.Error {
	if errors.Is(err, auth.ErrUnavailable) {
		s.cfg.Logger.Warn("cannot authenticate request", "method", r.Method, "path", r.URL.Path, "err", err)
		return &service.Error{Status: http.StatusServiceUnavailable, Type: "HTTPServiceUnavailable",
			Message: "The identity service cannot validate the token right now: " + err.Error()}
	}
	if !errors.Is(err, auth.ErrUnauthorized) {
		s.cfg.Logger.Error("authenticator failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	return &service.Error{Status: http.StatusUnauthorized, Type: "HTTPUnauthorized",
		Message: "The request you have made requires authentication."}
}

type statusRecorder struct {
	http.ResponseWriter
	status int
	waited time.Duration // in waitFor
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func (s *Server) routes() {
	s.mux.HandleFunc("GET /{$}", s.versions)
	s.mux.HandleFunc("GET /v2.0", s.resourceIndex)
	s.mux.HandleFunc("GET /v2.0/{$}", s.resourceIndex)
	s.mux.HandleFunc("GET /v2.0/extensions", s.listExtensions)
	s.mux.HandleFunc("GET /v2.0/extensions/{alias}", s.showExtension)
	s.mux.HandleFunc("GET /nsnet/status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.cfg.Status())
	})
	if s.cfg.Metrics != nil {
		s.mux.HandleFunc("GET /metrics", s.metrics)
	}
	for _, res := range append(append(s.resources(), s.agentResources()...), s.serviceProviderResource()) {
		s.register(res)
	}
	s.schedulerRoutes()
	s.objectActions()
	s.tagRoutes()
	s.ipAvailabilityRoutes()
	s.quotaRoutes()
	if s.cfg.Projects != nil {
		s.identityRoutes()
	}
	s.mux.HandleFunc("/", s.notFound)
}

// metrics serves the metrics to admins (on the unix socket every caller
// is). Prometheus scrapes a daemon's --metrics-listen address instead,
// which needs no token.
func (s *Server) metrics(w http.ResponseWriter, r *http.Request) {
	if c, _ := auth.FromContext(r.Context()); !c.IsAdmin() {
		writeError(w, &service.Error{Status: http.StatusForbidden, Type: "PolicyNotAuthorized",
			Message: "rule:get_metrics is disallowed by policy"})
		return
	}
	s.cfg.Metrics.ServeHTTP(w, r)
}

// notFound answers what no route takes: 405 with the methods that the path
// does take, as Neutron does for, say, DELETE on a collection; 404 if none.
func (s *Server) notFound(w http.ResponseWriter, r *http.Request) {
	var allowed []string
	for _, m := range []string{"GET", "POST", "PUT", "DELETE"} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := s.mux.Handler(probe); pattern != "/" && pattern != "" {
			allowed = append(allowed, m)
		}
	}
	if len(allowed) == 0 {
		writeError(w, &service.Error{Status: 404, Type: "HTTPNotFound", Message: "The resource could not be found."})
		return
	}
	w.Header().Set("Allow", strings.Join(allowed, ", "))
	writeError(w, &service.Error{Status: 405, Type: "HTTPMethodNotAllowed",
		Message: fmt.Sprintf("The method %s is not allowed for this resource.", r.Method)})
}

func (s *Server) versions(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"versions": []any{map[string]any{
		"id": "v2.0", "status": "CURRENT",
		"links": []any{map[string]string{"href": baseURL(r) + "/v2.0/", "rel": "self"}},
	}}})
}

func (s *Server) resourceIndex(w http.ResponseWriter, r *http.Request) {
	var list []any
	for _, res := range s.resources() {
		if res.nested {
			continue
		}
		list = append(list, map[string]any{
			"name": res.singular, "collection": res.collection,
			"links": []any{map[string]string{"href": baseURL(r) + "/v2.0/" + res.urlPath(), "rel": "self"}},
		})
	}
	writeJSON(w, http.StatusOK, map[string]any{"resources": list})
}

func baseURL(r *http.Request) string {
	host := r.Host
	if host == "" {
		host = "localhost"
	}
	return "http://" + host
}

// decodeObject reads a request body that is one JSON object.
func decodeObject(r *http.Request) (map[string]json.RawMessage, error) {
	var obj map[string]json.RawMessage
	dec := json.NewDecoder(r.Body)
	if err := dec.Decode(&obj); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, &service.Error{Status: 413, Type: "HTTPRequestEntityTooLarge",
				Message: fmt.Sprintf("Request body is larger than %d bytes.", MaxBodyBytes)}
		}
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return nil, &service.Error{Status: 400, Type: "HTTPBadRequest", Message: "Malformed request body: want a JSON object, got " + typeErr.Value}
		}
		return nil, &service.Error{Status: 400, Type: "HTTPBadRequest", Message: "Malformed request body: " + err.Error()}
	}
	if dec.More() {
		return nil, &service.Error{Status: 400, Type: "HTTPBadRequest", Message: "Malformed request body: data after the JSON object"}
	}
	if obj == nil {
		return nil, &service.Error{Status: 400, Type: "HTTPBadRequest", Message: "Malformed request body: want a JSON object"}
	}
	return obj, nil
}

// decodeBody reads {"<singular>": {...}} into the resource's attributes.
func decodeBody(r *http.Request, singular string) (service.Attrs, error) {
	envelope, err := decodeObject(r)
	if err != nil {
		return nil, err
	}
	return unwrapOne(envelope, singular)
}

func unwrapOne(envelope map[string]json.RawMessage, singular string) (service.Attrs, error) {
	raw, ok := envelope[singular]
	if !ok || len(envelope) != 1 {
		return nil, &service.Error{Status: 400, Type: "HTTPBadRequest",
			Message: fmt.Sprintf("Resource body required: expected one object named '%s'", singular)}
	}
	return attrsOf(raw, singular)
}

func attrsOf(raw json.RawMessage, singular string) (service.Attrs, error) {
	var attrs service.Attrs
	if err := json.Unmarshal(raw, &attrs); err != nil || attrs == nil {
		return nil, &service.Error{Status: 400, Type: "HTTPBadRequest",
			Message: fmt.Sprintf("Malformed request body: '%s' must be a JSON object", singular)}
	}
	return attrs, nil
}

// decodeCreate reads a POST body: {"<singular>": {...}} or, where the
// resource allows it, Neutron's bulk form {"<collection>": [{...}, ...]}.
func decodeCreate(r *http.Request, res resource) (items []service.Attrs, bulk bool, err error) {
	envelope, err := decodeObject(r)
	if err != nil {
		return nil, false, err
	}
	raw, ok := envelope[res.collection]
	if !ok || len(envelope) != 1 {
		attrs, err := unwrapOne(envelope, res.singular)
		return []service.Attrs{attrs}, false, err
	}
	if res.bulk == nil {
		return nil, true, &service.Error{Status: 400, Type: "HTTPBadRequest", Message: "Bulk operation not supported"}
	}
	var list []json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, true, &service.Error{Status: 400, Type: "HTTPBadRequest",
			Message: fmt.Sprintf("Malformed request body: '%s' must be a list of objects", res.collection)}
	}
	if len(list) == 0 {
		return nil, true, &service.Error{Status: 400, Type: "HTTPBadRequest", Message: "Resources required"}
	}
	for _, item := range list {
		attrs, err := attrsOf(item, res.singular)
		if err != nil {
			return nil, true, err
		}
		// Neutron takes each item bare or in its own envelope
		// ({"ports": [{"port": {...}}]}, as tempest's clients send).
		if inner, ok := attrs[res.singular]; ok {
			if attrs, err = attrsOf(inner, res.singular); err != nil {
				return nil, true, err
			}
		}
		items = append(items, attrs)
	}
	return items, true, nil
}

// waitFor honours HeaderWait after a successful write at rev; without it,
// it waits settle (none when zero). It reports whether it waited, converged
// or not, so that the caller reads the resources again.
func (s *Server) waitFor(w http.ResponseWriter, r *http.Request, rev int64, settle time.Duration) bool {
	w.Header().Set(HeaderRevision, fmt.Sprint(rev))
	if s.cfg.Converger == nil {
		return false
	}
	d := settle
	if v := r.Header.Get(HeaderWait); v != "" {
		var err error
		if d, err = time.ParseDuration(v); err != nil || d <= 0 {
			d = 30 * time.Second
		}
	}
	if d == 0 {
		return false
	}
	ctx, cancel := context.WithTimeout(r.Context(), min(d, maxWait))
	defer cancel()
	start := time.Now()
	err := s.cfg.Converger.WaitConverged(ctx, rev)
	if rec, ok := w.(*statusRecorder); ok {
		rec.waited += time.Since(start)
	}
	if err != nil {
		s.cfg.Logger.Info("write not programmed in time", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	w.Header().Set(HeaderConverged, fmt.Sprint(err == nil))
	return true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, e *service.Error) {
	writeJSON(w, e.Status, map[string]any{"NeutronError": map[string]string{
		"type": e.Type, "message": e.Message, "detail": e.Detail,
	}})
}

// fail renders err: a service error as itself, anything else as a 500
// whose details go to the log, not to the client.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	if e := service.AsError(err); e != nil {
		writeError(w, e)
		return
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		writeError(w, &service.Error{Status: 503, Type: "HTTPServiceUnavailable", Message: "The request was cancelled: " + err.Error()})
		return
	}
	s.cfg.Logger.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	writeError(w, &service.Error{Status: 500, Type: "HTTPInternalServerError",
		Message: "Request Failed: internal server error while processing your request."})
}
