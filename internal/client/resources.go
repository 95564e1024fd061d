package client

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"strings"

	"github.com/google/uuid"
)

// Collection names a resource collection of the API, as it appears in the
// URL (/v2.0/networks) and in list envelopes ({"networks": […]}).
type Collection string

// The collections nsnet serves.
const (
	Networks  Collection = "networks"
	Subnets   Collection = "subnets"
	Ports     Collection = "ports"
	Instances Collection = "instances"
	Routers   Collection = "routers"
	// FloatingIPs are floating IPs; their port forwardings are the
	// collection PortForwardings(id).
	FloatingIPs Collection = "floatingips"
	// PublishedPorts are the host's published ports (host NAT), an nsnet
	// extension: their URL segment has a dash, their JSON name not.
	PublishedPorts Collection = "nsnet/published-ports"
	// SecurityGroups and SecurityGroupRules are the firewall; their URL
	// segments use dashes, their JSON names underscores.
	SecurityGroups     Collection = "security-groups"
	SecurityGroupRules Collection = "security-group-rules"
)

// PortForwardings is the collection of the port forwardings of floating IP
// fipID (/v2.0/floatingips/{id}/port_forwardings).
func PortForwardings(fipID string) Collection {
	return Collection(string(FloatingIPs) + "/" + url.PathEscape(fipID) + "/port_forwardings")
}

// nameKey is the attribute a user names a member by: floating IPs have no
// name and go by their address, as in the OpenStack CLI.
func (c Collection) nameKey() string {
	if c == FloatingIPs {
		return "floating_ip_address"
	}
	return "name"
}

// name is the collection's JSON name: the last segment of its path.
func (c Collection) name() string { return strings.ReplaceAll(path.Base(string(c)), "-", "_") }

// Singular is the collection's member name, the key of create, show and
// update envelopes ({"network": {…}}).
func (c Collection) Singular() string { return strings.TrimSuffix(c.name(), "s") }

// Kind is the member name as Neutron writes it in messages ("Network",
// "Security group").
func (c Collection) Kind() string {
	s := strings.ReplaceAll(strings.TrimSuffix(path.Base(string(c)), "s"), "-", " ")
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func (c Collection) path() string          { return "/v2.0/" + string(c) }
func (c Collection) item(id string) string { return c.path() + "/" + url.PathEscape(id) }

// Create POSTs attrs as a new member of col and decodes the created
// resource into T. attrs is anything that marshals to the resource's JSON
// object, typically a map[string]any of the attributes to set.
func Create[T any](ctx context.Context, c *Client, col Collection, attrs any) (T, Meta, error) {
	var out T
	env := map[string]any{col.Singular(): attrs}
	meta, err := c.do(ctx, request{method: http.MethodPost, path: col.path(), body: env, write: true},
		envelope[T](col.Singular(), &out))
	return out, meta, err
}

// Get fetches one member of col by id.
func Get[T any](ctx context.Context, c *Client, col Collection, id string) (T, error) {
	var out T
	_, err := c.do(ctx, request{method: http.MethodGet, path: col.item(id)}, envelope[T](col.Singular(), &out))
	return out, err
}

// Update PUTs attrs onto the member id of col and decodes the result.
func Update[T any](ctx context.Context, c *Client, col Collection, id string, attrs any) (T, Meta, error) {
	var out T
	env := map[string]any{col.Singular(): attrs}
	meta, err := c.do(ctx, request{method: http.MethodPut, path: col.item(id), body: env, write: true},
		envelope[T](col.Singular(), &out))
	return out, meta, err
}

// Delete deletes the member id of col.
func (c *Client) Delete(ctx context.Context, col Collection, id string) (Meta, error) {
	return c.do(ctx, request{method: http.MethodDelete, path: col.item(id), write: true}, nil)
}

// List returns the members of col that match query: attribute filters
// (name=red, network_id=…; a repeated key matches any of its values) and
// list controls such as fields=. It follows the server's pagination links,
// so the result is complete whatever the server's page size.
func List[T any](ctx context.Context, c *Client, col Collection, query url.Values) ([]T, error) {
	var all []T
	q := cloneValues(query)
	for {
		page := map[string]json.RawMessage{}
		if _, err := c.do(ctx, request{method: http.MethodGet, path: col.path(), query: q}, &page); err != nil {
			return nil, err
		}
		var items []T
		if raw, ok := page[col.name()]; ok {
			if err := json.Unmarshal(raw, &items); err != nil {
				return nil, fmt.Errorf("list %s: decode response: %w", col, err)
			}
		} else {
			return nil, fmt.Errorf("list %s: response has no %q member", col, col)
		}
		all = append(all, items...)
		marker, err := nextMarker(page[col.name()+"_links"])
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", col, err)
		}
		if marker == "" || len(items) == 0 {
			return all, nil
		}
		q.Set("marker", marker)
	}
}

// nextMarker returns the marker of the "next" link of a list page, if any.
func nextMarker(raw json.RawMessage) (string, error) {
	if len(raw) == 0 {
		return "", nil
	}
	var links []struct {
		Rel  string `json:"rel"`
		Href string `json:"href"`
	}
	if err := json.Unmarshal(raw, &links); err != nil {
		return "", fmt.Errorf("decode pagination links: %w", err)
	}
	for _, l := range links {
		if l.Rel != "next" {
			continue
		}
		u, err := url.Parse(l.Href)
		if err != nil {
			return "", fmt.Errorf("next link %q: %w", l.Href, err)
		}
		return u.Query().Get("marker"), nil
	}
	return "", nil
}

func cloneValues(v url.Values) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}

// Find resolves ref, a name or an id, to one member of col, as the
// OpenStack CLI does: an id that exists wins; otherwise the name must match
// exactly one member. No match is reported as a 404 *Error in the server's
// words ("Network red could not be found."), several as a 409 *Error.
func Find[T any](ctx context.Context, c *Client, col Collection, ref string) (T, error) {
	var zero T
	if ref == "" {
		return zero, fmt.Errorf("empty %s name or id", col.Singular())
	}
	// Ids are UUIDs; anything else can only be a name, which saves a
	// round trip that would answer 404.
	if uuid.Validate(ref) == nil {
		obj, err := Get[T](ctx, c, col, ref)
		if err == nil {
			return obj, nil
		}
		if !IsNotFound(err) {
			return zero, err
		}
	}
	matches, err := List[T](ctx, c, col, url.Values{col.nameKey(): {ref}})
	if err != nil {
		return zero, err
	}
	switch len(matches) {
	case 1:
		return matches[0], nil
	case 0:
		return zero, &Error{StatusCode: http.StatusNotFound, Type: col.Kind() + "NotFound",
			Message: fmt.Sprintf("%s %s could not be found.", col.Kind(), ref)}
	default:
		return zero, &Error{StatusCode: http.StatusConflict, Type: "NoUniqueMatch",
			Message: fmt.Sprintf("More than one %s exists with the name '%s'; use its id.", col.Singular(), ref)}
	}
}

// FindID resolves ref, a name or an id, to the id of one member of col
// (see Find).
func (c *Client) FindID(ctx context.Context, col Collection, ref string) (string, error) {
	obj, err := Find[struct {
		ID string `json:"id"`
	}](ctx, c, col, ref)
	return obj.ID, err
}

// Status returns the daemon's health document (GET /nsnet/status) as the
// server wrote it.
func (c *Client) Status(ctx context.Context) (json.RawMessage, error) {
	var out json.RawMessage
	_, err := c.do(ctx, request{method: http.MethodGet, path: "/nsnet/status"}, &out)
	return out, err
}

// envelope decodes {"<key>": …} into out.
func envelope[T any](key string, out *T) *envelopeOf[T] {
	return &envelopeOf[T]{key: key, out: out}
}

type envelopeOf[T any] struct {
	key string
	out *T
}

func (e *envelopeOf[T]) UnmarshalJSON(raw []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return err
	}
	inner, ok := m[e.key]
	if !ok {
		return fmt.Errorf("response has no %q member", e.key)
	}
	return json.Unmarshal(inner, e.out)
}

// Unprogrammed explains why a write that asked the server to wait (see
// Config.Wait) is not in the kernel, or returns "" when it is, or when the
// write did not wait. obj is the resource the server answered with (nil
// for a delete): a status of ERROR means the agent tried and failed.
func Unprogrammed(meta Meta, obj json.RawMessage) string {
	if meta.Converged == nil {
		return ""
	}
	if !*meta.Converged {
		return "the agent had not programmed it when the wait ended"
	}
	var st struct {
		Status      string `json:"status"`
		Reason      string `json:"status_reason"`
		NsnetReason string `json:"nsnet:status_reason"`
	}
	if obj != nil && json.Unmarshal(obj, &st) == nil && st.Status == "ERROR" {
		return "the agent could not program it: " + cmp.Or(st.NsnetReason, st.Reason, "no reason given")
	}
	return ""
}

// Failed reports whether a waited-for write left obj in ERROR: the agent
// tried to program it and could not.
func Failed(meta Meta, obj json.RawMessage) bool {
	if meta.Converged == nil || !*meta.Converged || obj == nil {
		return false
	}
	var st struct {
		Status string `json:"status"`
	}
	return json.Unmarshal(obj, &st) == nil && st.Status == "ERROR"
}

// RouterInterface is Neutron's answer to add_router_interface and
// remove_router_interface.
type RouterInterface struct {
	ID        string   `json:"id"`
	PortID    string   `json:"port_id"`
	SubnetID  string   `json:"subnet_id"`
	SubnetIDs []string `json:"subnet_ids"`
	NetworkID string   `json:"network_id"`
	ProjectID string   `json:"project_id"`
}

// InterfaceRef names one router interface: by subnet or by port.
type InterfaceRef struct {
	SubnetID string `json:"subnet_id,omitempty"`
	PortID   string `json:"port_id,omitempty"`
}

// AddRouterInterface attaches a subnet (a new port with its gateway
// address) or an unbound port to router routerID.
func (c *Client) AddRouterInterface(ctx context.Context, routerID string, ref InterfaceRef) (RouterInterface, Meta, error) {
	return c.routerInterface(ctx, routerID, "add_router_interface", ref)
}

// RemoveRouterInterface detaches a subnet or port from router routerID.
func (c *Client) RemoveRouterInterface(ctx context.Context, routerID string, ref InterfaceRef) (RouterInterface, Meta, error) {
	return c.routerInterface(ctx, routerID, "remove_router_interface", ref)
}

func (c *Client) routerInterface(ctx context.Context, routerID, action string, ref InterfaceRef) (RouterInterface, Meta, error) {
	var out RouterInterface
	meta, err := c.do(ctx, request{method: http.MethodPut, path: Routers.item(routerID) + "/" + action, body: ref, write: true}, &out)
	return out, meta, err
}

// ConntrackHelpers is the collection of the conntrack helpers of router
// routerID (/v2.0/routers/{id}/conntrack_helpers).
func ConntrackHelpers(routerID string) Collection {
	return Collection(string(Routers) + "/" + url.PathEscape(routerID) + "/conntrack_helpers")
}
