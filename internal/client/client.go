// Package client is a small typed Go client of nsnet's REST API: the
// OpenStack Networking v2.0 subset that nsnet serves, plus nsnet's
// extensions (instances, waiting for the agent, daemon status).
//
// It owns the wire protocol as a client sees it: transports (the daemon's
// unix socket or TCP), authentication headers, JSON envelopes, Neutron error
// bodies, pagination and name-or-id resolution. It must not know about
// command lines or output formats (package cli does) nor about the server's
// internals: everything here could run on another machine.
//
// Resources are handled generically by collection name; the caller picks the
// Go type to decode into (a model type, or json.RawMessage to keep the API
// object byte for byte):
//
//	c, _ := client.New(client.Config{Socket: "/run/nsnet/nsnet.sock"})
//	net, _, err := client.Create[model.Network](ctx, c, client.Networks,
//		map[string]any{"name": "red"})
//	id, err := c.FindID(ctx, client.Networks, "red")
//
// Failures the API reports come back as *Error, unwrapped: the server's
// message already names the resource ("Network red could not be found.")
// and reads best as it is. Failures to reach the API at all are wrapped
// with the endpoint and a hint.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// DefaultSocket is where `nsnet daemon` listens unless told otherwise. It
// mirrors daemon.DefaultSocket; the client does not import the daemon so
// that it stays a pure API client.
const DefaultSocket = "/run/nsnet/nsnet.sock"

// Headers of nsnet's wait extension (see the server's api package).
const (
	HeaderWait      = "X-Nsnet-Wait"
	HeaderConverged = "X-Nsnet-Converged"
	HeaderRevision  = "X-Nsnet-Revision"
	HeaderAuthToken = "X-Auth-Token"
)

// maxErrorBody bounds how much of an error response is read: enough for any
// NeutronError, small enough that a misbehaving proxy cannot flood memory.
const maxErrorBody = 64 << 10

// Config says how to reach the API.
type Config struct {
	// Endpoint is the API's base URL for TCP, e.g. http://127.0.0.1:9696.
	// "unix:///path/to.sock" is accepted as another way to name a socket.
	// Empty means Socket.
	Endpoint string
	// Socket is the daemon's unix socket; empty means DefaultSocket. It is
	// used only when Endpoint is empty.
	Socket string
	// Auth supplies the X-Auth-Token of each request; nil sends none (the
	// unix socket needs none: whoever can open it is the admin).
	Auth TokenSource
	// Wait, when positive, asks the server to hold the answer to every
	// write until the agent has programmed it, for at most this long.
	Wait time.Duration
	// HTTPClient overrides the transport; its Transport must reach the
	// endpoint. Nil builds one from Endpoint or Socket.
	HTTPClient *http.Client
	// UserAgent is sent as User-Agent; empty means "nsnet-client".
	UserAgent string
	// Logger receives one debug record per request; nil discards them.
	Logger *slog.Logger
}

// Client talks to one nsnet API endpoint. It is safe for concurrent use.
type Client struct {
	base   *url.URL
	target string // human-readable endpoint for error messages
	http   *http.Client
	auth   TokenSource
	wait   time.Duration
	agent  string
	log    *slog.Logger
}

// New returns a Client for cfg. It does not contact the server.
func New(cfg Config) (*Client, error) {
	c := &Client{
		auth:  cfg.Auth,
		wait:  cfg.Wait,
		agent: cfg.UserAgent,
		log:   cfg.Logger,
		http:  cfg.HTTPClient,
	}
	if c.agent == "" {
		c.agent = "nsnet-client"
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}

	endpoint, socket := cfg.Endpoint, cfg.Socket
	if path, ok := strings.CutPrefix(endpoint, "unix://"); ok {
		endpoint, socket = "", path
	}
	if endpoint == "" {
		if socket == "" {
			socket = DefaultSocket
		}
		// The host part is never looked at by the server; "nsnet" keeps
		// logs and error messages readable.
		c.base = &url.URL{Scheme: "http", Host: "nsnet"}
		c.target = "unix:" + socket
		if c.http == nil {
			c.http = &http.Client{Transport: unixTransport(socket)}
		}
		return c, nil
	}

	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("endpoint %q: want http://host:port, https://host:port or unix:///path", endpoint)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	c.base, c.target = u, u.String()
	if c.http == nil {
		c.http = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	return c, nil
}

// unixTransport dials the socket for every request, whatever the URL says.
func unixTransport(socket string) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil // an HTTP proxy cannot reach a local socket
	t.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", socket)
	}
	return t
}

// Endpoint describes where the client sends requests, for messages.
func (c *Client) Endpoint() string { return c.target }

// Meta is what a response says besides its body.
type Meta struct {
	StatusCode int
	// Converged is set when the request asked to wait: whether the agent
	// had programmed the change when the server answered.
	Converged *bool
	// Revision is the store revision that holds a write, 0 if not given.
	Revision int64
}

// request is one API call.
type request struct {
	method string
	path   string // below the endpoint, e.g. /v2.0/networks
	query  url.Values
	body   any // marshalled to JSON when non-nil
	write  bool
}

// do sends req and decodes a 2xx body into out (when out is non-nil). Any
// other status becomes an *Error.
func (c *Client) do(ctx context.Context, req request, out any) (Meta, error) {
	hreq, err := c.newRequest(ctx, req)
	if err != nil {
		return Meta{}, err
	}
	start := time.Now()
	resp, err := c.http.Do(hreq)
	if err != nil {
		return Meta{}, c.transportError(req, err)
	}
	defer resp.Body.Close()
	c.log.DebugContext(ctx, "api request", "method", req.method, "path", req.path, "query", req.query.Encode(),
		"status", resp.StatusCode, "duration", time.Since(start), "converged", resp.Header.Get(HeaderConverged))

	meta := metaOf(resp)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return meta, decodeError(resp)
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		_, _ = io.Copy(io.Discard, resp.Body) // let the connection be reused
		return meta, nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return meta, fmt.Errorf("%s %s: decode response: %w", req.method, req.path, err)
	}
	return meta, nil
}

func (c *Client) newRequest(ctx context.Context, req request) (*http.Request, error) {
	u := *c.base
	u.Path += req.path
	u.RawQuery = req.query.Encode()

	var body io.Reader
	if req.body != nil {
		raw, err := json.Marshal(req.body)
		if err != nil {
			return nil, fmt.Errorf("%s %s: encode body: %w", req.method, req.path, err)
		}
		body = bytes.NewReader(raw)
	}
	hreq, err := http.NewRequestWithContext(ctx, req.method, u.String(), body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", req.method, req.path, err)
	}
	hreq.Header.Set("Accept", "application/json")
	hreq.Header.Set("User-Agent", c.agent)
	if body != nil {
		hreq.Header.Set("Content-Type", "application/json")
	}
	if req.write && c.wait > 0 {
		hreq.Header.Set(HeaderWait, c.wait.String())
	}
	if c.auth != nil {
		token, err := c.auth.Token(ctx)
		if err != nil {
			return nil, fmt.Errorf("authenticate: %w", err)
		}
		if token != "" {
			hreq.Header.Set(HeaderAuthToken, token)
		}
	}
	return hreq, nil
}

func metaOf(resp *http.Response) Meta {
	m := Meta{StatusCode: resp.StatusCode}
	if v := resp.Header.Get(HeaderConverged); v != "" {
		b, err := strconv.ParseBool(v)
		if err == nil {
			m.Converged = &b
		}
	}
	if v := resp.Header.Get(HeaderRevision); v != "" {
		m.Revision, _ = strconv.ParseInt(v, 10, 64)
	}
	return m
}

// transportError explains a request that never got an HTTP answer, with the
// hint a user needs most often: is the daemon running, may I open its socket.
func (c *Client) transportError(req request, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s %s: %w", req.method, req.path, err)
	}
	unix := strings.HasPrefix(c.target, "unix:")
	var hint string
	switch {
	case unix && (errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED)):
		hint = " (is `nsnet daemon` running? see --socket)"
	case unix && errors.Is(err, syscall.EACCES):
		hint = " (the socket is root-only: use sudo, or --endpoint with --token)"
	case errors.Is(err, syscall.ECONNREFUSED):
		hint = " (is `nsnet daemon --listen` running there?)"
	}
	return fmt.Errorf("cannot reach the nsnet API at %s: %w%s", c.target, unwrapURLError(err), hint)
}

// unwrapURLError drops net/http's `Get "http://nsnet/...":` prefix, which
// only repeats the made-up host of the unix transport.
func unwrapURLError(err error) error {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		return uerr.Err
	}
	return err
}
