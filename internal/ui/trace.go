package ui

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/nsnet/nsnet/internal/capture"
	"github.com/nsnet/nsnet/internal/client"
	"github.com/nsnet/nsnet/internal/explain"
	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/topoview"
	"github.com/nsnet/nsnet/internal/trace"
)

// explainNode runs `explain` for a node, through the caller's API client:
// an object the caller cannot see is not found, as on the API.
func explainNode(ctx context.Context, c *client.Client, kind, id string) (string, error) {
	x, err := explain.New(ctx, c)
	if err != nil {
		return "", err
	}
	run := map[string]func(*explain.Explainer, context.Context, string) (explain.Explanation, error){
		topoview.KindRouter: (*explain.Explainer).Router, topoview.KindNetwork: (*explain.Explainer).Network,
		topoview.KindExternal: (*explain.Explainer).Network, topoview.KindInstance: (*explain.Explainer).Instance,
	}[kind]
	e, err := run(x, ctx, id)
	if err != nil {
		return "", err
	}
	return e.Script(), nil
}

// TraceRequest is the page's trace form.
type TraceRequest struct {
	// Source is an instance (name or id); FromExternal, instead, an
	// external network to send from a temporary host on it.
	Source       string `json:"source"`
	FromExternal string `json:"from_external"`
	Destination  string `json:"destination"`
	Protocol     string `json:"protocol"` // icmp (default), tcp, udp
	Port         int    `json:"port"`
	IPv6         bool   `json:"ipv6"`
}

// TraceAnswer is a trace run from the page: the result as `nsnet trace -o
// json` gives it, as text, and drawn over the view it returns with it.
type TraceAnswer struct {
	Text    string        `json:"text"`
	Result  *trace.Result `json:"result"`
	Overlay string        `json:"overlay"`
	Path    []string      `json:"path"`
	View    *View         `json:"view"`
}

// traceTimeout is how long a trace from the page waits for its answer, as
// `nsnet trace` does by default.
const traceTimeout = 3 * time.Second

func (h *Handler) trace(w http.ResponseWriter, r *http.Request, s *session) {
	if !s.caller.CanWrite() {
		writeJSON(w, http.StatusForbidden, errorBody{"rule:trace is disallowed by policy: a trace sends packets from the project's instances"})
		return
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		// A form of another site cannot send JSON without asking first.
		writeJSON(w, http.StatusUnsupportedMediaType, errorBody{"Content-Type: want application/json"})
		return
	}
	var req TraceRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, errorBody{"malformed trace request: " + err.Error()})
		return
	}
	proto, err := req.check()
	if err != nil {
		writeJSON(w, http.StatusBadRequest, errorBody{err.Error()})
		return
	}
	if !h.tracing.TryLock() {
		writeJSON(w, http.StatusConflict, errorBody{"another trace is running; try again when it is done"})
		return
	}
	defer h.tracing.Unlock()
	res, err := runTrace(r.Context(), s.api, req, proto)
	if err != nil {
		var apiErr *client.Error
		if errors.As(err, &apiErr) {
			h.fail(w, err)
			return
		}
		// What the trace could not do (no such address, no path) is the
		// request's problem, said as the CLI says it.
		writeJSON(w, http.StatusUnprocessableEntity, errorBody{err.Error()})
		return
	}
	var text strings.Builder
	if err := res.Print(&text, false); err != nil {
		h.fail(w, err)
		return
	}
	v, err := h.buildView(r.Context(), s)
	if err != nil {
		h.fail(w, err)
		return
	}
	overlay, path := v.layout.TraceSVG(overlayOf(res))
	writeJSON(w, http.StatusOK, TraceAnswer{Text: text.String(), Result: res, Overlay: overlay, Path: path, View: v})
}

// check validates the form, naming the field at fault.
func (req *TraceRequest) check() (uint8, error) {
	req.Source, req.FromExternal, req.Destination = strings.TrimSpace(req.Source), strings.TrimSpace(req.FromExternal), strings.TrimSpace(req.Destination)
	switch {
	case req.Source == "" && req.FromExternal == "":
		return 0, errors.New("source: name an instance, or from_external an external network")
	case req.Source != "" && req.FromExternal != "":
		return 0, errors.New("source and from_external: give one of them")
	case req.Destination == "":
		return 0, errors.New("destination: name an instance or an IP address")
	}
	switch req.Protocol {
	case "", "icmp":
		if req.Port != 0 {
			return 0, errors.New("port: an ICMP probe has no port")
		}
		return capture.ProtoICMP, nil
	case "tcp", "udp":
		if req.Port < 1 || req.Port > 65535 {
			return 0, fmt.Errorf("port: %d is not between 1 and 65535", req.Port)
		}
		if req.Protocol == "tcp" {
			return capture.ProtoTCP, nil
		}
		return capture.ProtoUDP, nil
	}
	return 0, fmt.Errorf("protocol: %q is not icmp, tcp or udp", req.Protocol)
}

// runTrace is `nsnet trace` with the caller's view of the model.
func runTrace(ctx context.Context, c *client.Client, req TraceRequest, proto uint8) (*trace.Result, error) {
	m, err := trace.LoadModel(ctx, c)
	if err != nil {
		return nil, err
	}
	dst, err := trace.ResolveDestination(ctx, c, m, req.Destination, req.IPv6)
	if err != nil {
		return nil, err
	}
	var src trace.Source
	if req.FromExternal != "" {
		n, err := client.Find[model.Network](ctx, c, client.Networks, req.FromExternal)
		if err != nil {
			return nil, err
		}
		ext, err := m.ExternalSource(n.ID, dst)
		if err != nil {
			return nil, err
		}
		defer ext.Remove()
		src = ext.Source
	} else {
		inst, err := client.Find[model.Instance](ctx, c, client.Instances, req.Source)
		if err != nil {
			return nil, err
		}
		if src, err = m.InstanceSource(inst, dst); err != nil {
			return nil, err
		}
	}
	plan, err := m.Plan(src, dst, proto, uint16(req.Port))
	if err != nil {
		return nil, err
	}
	proto = trace.ProbeProto(proto, dst)
	return trace.Run(ctx, m, plan, src, trace.NewProbe(proto, uint16(req.Port)), trace.Options{Timeout: traceTimeout})
}

// overlayOf is what the graph draws of a result.
func overlayOf(res *trace.Result) topoview.Trace {
	hops := func(in []trace.HopSeen) []topoview.TraceHop {
		out := make([]topoview.TraceHop, 0, len(in))
		for _, h := range in {
			out = append(out, topoview.TraceHop{Netns: h.Netns, Interface: h.Interface, Network: h.Network,
				Seen: h.Seen, Summary: h.Summary})
		}
		return out
	}
	t := topoview.Trace{Way: hops(res.Way), WayBack: hops(res.WayBack)}
	for _, rw := range res.Rewrites {
		text := fmt.Sprintf("%s %s → %s", rw.Kind, rw.From, rw.To)
		if rw.Way == "back" {
			text = "reply: " + text
		}
		t.Rewrites = append(t.Rewrites, topoview.TraceRewrite{Way: rw.Way, Netns: rw.Netns, Interface: rw.Interface, Text: text})
	}
	return t
}
