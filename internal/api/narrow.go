package api

import (
	"context"
	"net/url"
	"strconv"
	"strings"

	"github.com/nsnet/nsnet/internal/service"
)

// A list request that filters by an indexed attribute, or asks for a page
// in the store's order, needs only some of the collection: narrow reads
// that part (a superset of the answer) and listBody filters, sorts and
// pages it as it would the whole. narrow says false when the request
// needs the whole collection: a filter on "" (the objects without the
// attribute, which no index holds), or a marker with filters (the marker
// is a position in the whole collection, whether or not it passes them).
type narrowFunc func(ctx context.Context, q url.Values) ([]any, bool, error)

// portsNarrow narrows port lists by device_id, by network_id, or to a
// page when nothing filters or sorts them.
func portsNarrow(svc *service.Service) narrowFunc {
	return func(ctx context.Context, q url.Values) ([]any, bool, error) {
		sel, ok := portSelection(q)
		if !ok {
			return nil, false, nil
		}
		ports, err := svc.ListPortsWhere(ctx, sel)
		items := make([]any, len(ports))
		for i := range ports {
			items[i] = ports[i]
		}
		return items, true, err
	}
}

// fipsNarrow narrows floating IP lists by port_id or router_id.
func fipsNarrow(svc *service.Service) narrowFunc {
	return func(ctx context.Context, q url.Values) ([]any, bool, error) {
		var sel service.FloatingIPSelection
		switch {
		case pagedWithMarker(q) && hasFilters(q):
			return nil, false, nil
		case len(filterValues(q, "port_id")) > 0:
			sel.PortIDs = filterValues(q, "port_id")
		case len(filterValues(q, "router_id")) > 0:
			sel.RouterIDs = filterValues(q, "router_id")
		default:
			return nil, false, nil
		}
		fips, err := svc.ListFloatingIPsWhere(ctx, sel)
		items := make([]any, len(fips))
		for i := range fips {
			items[i] = fips[i]
		}
		return items, true, err
	}
}

// filterValues are the values a filter asks for, when none is empty (an
// empty one asks for the objects without the attribute, which no index
// holds).
func filterValues(q url.Values, key string) []string {
	vs := q[key]
	for _, v := range vs {
		if v == "" {
			return nil
		}
	}
	return vs
}

// pagedWithMarker reports whether q asks for a page after (or before) a
// marker.
func pagedWithMarker(q url.Values) bool {
	limit, err := strconv.Atoi(q.Get("limit"))
	return err == nil && limit > 0 && q.Get("marker") != ""
}

func portSelection(q url.Values) (service.PortSelection, bool) {
	limit, err := strconv.Atoi(q.Get("limit"))
	paged := err == nil && limit > 0
	marker := ""
	if paged {
		marker = q.Get("marker")
	}
	values := func(key string) []string { return filterValues(q, key) }
	switch {
	case marker != "" && hasFilters(q):
		return service.PortSelection{}, false
	case len(values("device_id")) > 0:
		return service.PortSelection{DeviceIDs: values("device_id")}, true
	case len(values("network_id")) > 0:
		return service.PortSelection{NetworkIDs: values("network_id")}, true
	case paged && !hasFilters(q) && len(q["sort_key"]) == 0 && !isTrue(q.Get("page_reverse")):
		// Without sort keys a list is in id order, the store's.
		return service.PortSelection{Marker: marker, Limit: limit}, true
	}
	return service.PortSelection{}, false
}

// hasFilters reports whether q has any parameter but the list controls.
func hasFilters(q url.Values) bool {
	for key := range q {
		if !listControls[key] {
			return true
		}
	}
	return false
}

func isTrue(s string) bool { return strings.EqualFold(s, "true") || s == "1" }
