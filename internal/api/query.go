package api

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/netip"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/nsnet/nsnet/internal/service"
)

// Query parameters that shape a list rather than filter it.
var listControls = map[string]bool{
	"fields": true, "limit": true, "marker": true, "sort_key": true, "sort_dir": true, "page_reverse": true,
}

// schema is what a list request may name of one resource: its attributes
// (the JSON names of its body), each sortable or not. Neutron validates
// filters and sort keys against its attribute maps (filter-validation);
// nsnet's are its model types.
type schema map[string]bool // attribute → sortable (a scalar)

// schemaOf reads the attributes of a model type from its JSON tags,
// those of embedded structs included.
func schemaOf(t reflect.Type) schema {
	s := schema{}
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && tag == "" && f.Type.Kind() == reflect.Struct {
			maps.Copy(s, schemaOf(f.Type))
			continue
		}
		if !f.IsExported() || name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		switch ft.Kind() {
		case reflect.String, reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
			reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
			s[name] = true
		default:
			s[name] = false
		}
	}
	return s
}

// derived computes, for one request, a filter-only attribute of each
// object: one that Neutron filters on but does not show (a subnet's shared).
type derived func(ctx context.Context) (func(obj map[string]any) any, error)

// listBody filters, sorts, pages and projects items the way Neutron does
// for GET on a collection, refusing filters and sort keys that name no
// attribute of the resource.
func listBody(r *http.Request, res resource, items []any) (map[string]any, error) {
	q := r.URL.Query()
	var unknown []string
	for key := range q {
		if _, ok := res.schema[key]; !ok && !listControls[key] && res.derived[key] == nil && !(tagFilters[key] != nil && res.taggable()) {
			unknown = append(unknown, key)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return nil, &service.Error{Status: 400, Type: "HTTPBadRequest",
			Message: fmt.Sprintf("[%s] is invalid attribute for filtering", strings.Join(unknown, ", "))}
	}
	sorts, err := parseSorts(res.schema, q["sort_key"], q["sort_dir"])
	if err != nil {
		return nil, err
	}
	paging, err := parsePaging(q)
	if err != nil {
		return nil, err
	}
	extra := map[string]func(map[string]any) any{}
	for key, compute := range res.derived {
		if _, asked := q[key]; asked {
			if extra[key], err = compute(r.Context()); err != nil {
				return nil, err
			}
		}
	}
	objs := make([]map[string]any, 0, len(items))
	for _, it := range items {
		m, err := asMap(it)
		if err != nil {
			return nil, err
		}
		objs = append(objs, m)
	}
	sortObjects(objs, sorts)
	// The marker is a position in the sorted collection, whether or not
	// it passes the filters, as it is in Neutron's database query.
	if objs, err = paging.window(r.Context(), res, objs, sorts); err != nil {
		return nil, err
	}
	objs = slices.DeleteFunc(objs, func(m map[string]any) bool { return !matches(m, q, extra) })
	objs = paging.cut(objs)
	shown := make([]any, len(objs))
	for i, m := range objs {
		shown[i] = pick(m, q["fields"])
	}
	body := map[string]any{res.collection: shown}
	if links := paging.links(r, objs); len(links) > 0 {
		body[res.collection+"_links"] = links
	}
	return body, nil
}

// project applies ?fields= to one object.
func project(obj any, fields []string) (any, error) {
	if len(fields) == 0 {
		return obj, nil
	}
	m, err := asMap(obj)
	if err != nil {
		return nil, err
	}
	return pick(m, fields), nil
}

func pick(m map[string]any, fields []string) map[string]any {
	if len(fields) == 0 {
		return m
	}
	out := make(map[string]any, len(fields))
	for _, f := range fields {
		for _, name := range strings.Split(f, ",") {
			if v, ok := m[name]; ok {
				out[name] = v
			}
		}
	}
	return out
}

func asMap(v any) (map[string]any, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	err = json.Unmarshal(raw, &m)
	return m, err
}

func idOf(obj any) string {
	m, err := asMap(obj)
	if err != nil {
		return ""
	}
	id, _ := m["id"].(string)
	return id
}

// matches reports whether obj passes every filter in q (validated by
// listBody). Several values for one attribute match any of them; extra
// holds the filter-only attributes asked for.
func matches(obj map[string]any, q url.Values, extra map[string]func(map[string]any) any) bool {
	for key, wants := range q {
		if listControls[key] {
			continue
		}
		have := obj[key] // absent (omitted when empty): null
		if f := extra[key]; f != nil {
			have = f(obj)
		}
		if match := tagFilters[key]; match != nil {
			if !match(obj["tags"], wants) {
				return false
			}
			continue
		}
		if key == "fixed_ips" {
			if !matchFixedIPs(have, wants) {
				return false
			}
			continue
		}
		if !matchAny(have, wants) {
			return false
		}
	}
	return true
}

// tagFilters are Neutron's tag filters: each value a comma-separated list
// of tags, all of which (tags, not-tags) or any of which (tags-any,
// not-tags-any) the resource must have, or, for the not- ones, not have.
var tagFilters = map[string]func(tags any, wants []string) bool{
	"tags":         func(tags any, wants []string) bool { return hasTags(tags, wants, true) },
	"tags-any":     func(tags any, wants []string) bool { return hasTags(tags, wants, false) },
	"not-tags":     func(tags any, wants []string) bool { return !hasTags(tags, wants, true) },
	"not-tags-any": func(tags any, wants []string) bool { return !hasTags(tags, wants, false) },
}

func hasTags(tags any, wants []string, all bool) bool {
	have, _ := tags.([]any)
	for _, w := range wants {
		for _, tag := range strings.Split(w, ",") {
			if slices.Contains(have, any(tag)) != all {
				return !all
			}
		}
	}
	return all
}

func matchAny(have any, wants []string) bool {
	for _, want := range wants {
		if matchValue(have, want) {
			return true
		}
	}
	return false
}

func matchValue(have any, want string) bool {
	switch v := have.(type) {
	case string:
		return v == want
	case bool:
		b, err := strconv.ParseBool(strings.ToLower(want))
		return err == nil && b == v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64) == want
	case nil:
		return want == "" || want == "None" || want == "null"
	case []any:
		for _, e := range v {
			if matchValue(e, want) {
				return true
			}
		}
	}
	return false
}

// matchFixedIPs implements ?fixed_ips=ip_address=X&fixed_ips=subnet_id=Y:
// one of the port's addresses must satisfy every condition.
func matchFixedIPs(have any, wants []string) bool {
	conds := map[string][]string{}
	for _, w := range wants {
		k, v, ok := strings.Cut(w, "=")
		if !ok {
			return false
		}
		if a, err := netip.ParseAddr(v); err == nil && k == "ip_address" {
			v = a.String() // IPv6 has many spellings; the port shows the canonical one
		}
		conds[k] = append(conds[k], v)
	}
	list, _ := have.([]any)
	for _, e := range list {
		ip, _ := e.(map[string]any)
		ok := true
		for k, vs := range conds {
			s, _ := ip[k].(string)
			if k == "ip_address_substr" {
				s, _ = ip["ip_address"].(string)
				ok = ok && containsAny(s, vs)
				continue
			}
			ok = ok && matchAny(s, vs)
		}
		if ok {
			return true
		}
	}
	return false
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// sortKey is one sort_key with its sort_dir.
type sortKey struct {
	name string
	desc bool
}

// parseSorts pairs sort_key and sort_dir values (a key without a
// direction sorts ascending) and appends id, so that the order, and with
// it every page, is one order even where the keys tie.
func parseSorts(attrs schema, keys, dirs []string) ([]sortKey, error) {
	var bad []string
	for _, k := range keys {
		if !attrs[k] {
			bad = append(bad, k)
		}
	}
	if len(bad) > 0 {
		return nil, &service.Error{Status: 400, Type: "HTTPBadRequest",
			Message: fmt.Sprintf("[%s] is invalid attribute for sort_key", strings.Join(bad, ", "))}
	}
	if len(dirs) > len(keys) {
		return nil, badQuery("sort_dir", "more sort directions than sort keys")
	}
	sorts := make([]sortKey, len(keys))
	for i, k := range keys {
		sorts[i].name = k
		if i < len(dirs) {
			switch dirs[i] {
			case "asc":
			case "desc":
				sorts[i].desc = true
			default:
				return nil, badQuery("sort_dir", fmt.Sprintf("'%s' is not in ['asc', 'desc']", dirs[i]))
			}
		}
	}
	if !slices.Contains(keys, "id") {
		sorts = append(sorts, sortKey{name: "id"})
	}
	return sorts, nil
}

func sortObjects(objs []map[string]any, sorts []sortKey) {
	slices.SortStableFunc(objs, func(a, b map[string]any) int { return compareSorted(a, b, sorts) })
}

// compareSorted orders two objects by the sort keys.
func compareSorted(a, b map[string]any, sorts []sortKey) int {
	for _, k := range sorts {
		if c := compareValues(a[k.name], b[k.name]); c != 0 {
			if k.desc {
				return -c
			}
			return c
		}
	}
	return 0
}

// compareValues orders two JSON values of one attribute: numbers as
// numbers, false before true, and null first (as a database sorts NULL).
func compareValues(a, b any) int {
	switch x := a.(type) {
	case nil:
		if b == nil {
			return 0
		}
		return -1
	case float64:
		if y, ok := b.(float64); ok {
			return cmp.Compare(x, y)
		}
	case bool:
		if y, ok := b.(bool); ok {
			return cmp.Compare(boolRank(x), boolRank(y))
		}
	case string:
		if y, ok := b.(string); ok {
			return strings.Compare(x, y)
		}
	}
	if b == nil {
		return 1
	}
	return strings.Compare(fmt.Sprint(a), fmt.Sprint(b))
}

func boolRank(b bool) int {
	if b {
		return 1
	}
	return 0
}

// paging is a list request's limit, marker and page_reverse. Without a
// limit (or with 0) there is no paging at all, and marker and page_reverse
// are ignored, as in Neutron.
type paging struct {
	limit   int
	marker  string
	reverse bool
}

func parsePaging(q url.Values) (paging, error) {
	var p paging
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return p, &service.Error{Status: 400, Type: "HTTPBadRequest",
				Message: fmt.Sprintf("Limit must be an integer 0 or greater and not '%s'", v)}
		}
		p.limit = n
	}
	if v := q.Get("page_reverse"); v != "" {
		// Neutron's convert_to_boolean.
		switch strings.ToLower(v) {
		case "true", "1":
			p.reverse = true
		case "false", "0":
		default:
			return p, badQuery("page_reverse", fmt.Sprintf("'%s' cannot be converted to boolean", v))
		}
	}
	p.marker = q.Get("marker")
	return p, nil
}

// window keeps what lies after the marker (before it, in reverse). A
// marker the caller does not see is 404, unless the resource reads its
// markers as Neutron's RBAC objects do (resource.marker): then it is the
// position of that record among all, and a marker naming no record is
// ignored.
func (p paging) window(ctx context.Context, res resource, objs []map[string]any, sorts []sortKey) ([]map[string]any, error) {
	if p.limit == 0 || p.marker == "" {
		return objs, nil
	}
	i := slices.IndexFunc(objs, func(m map[string]any) bool { return m["id"] == p.marker })
	if i < 0 && res.marker != nil {
		v, err := res.marker(ctx, p.marker)
		if err != nil || v == nil {
			return objs, err
		}
		at, err := asMap(v)
		if err != nil {
			return nil, err
		}
		// The sort keys end with the id, so no other record sorts equal
		// to the marker: i is where it would be.
		i, _ = slices.BinarySearchFunc(objs, at, func(a, b map[string]any) int { return compareSorted(a, b, sorts) })
		if p.reverse {
			return objs[:i], nil
		}
		return objs[i:], nil
	}
	switch {
	case i < 0:
		return nil, &service.Error{Status: 404, Type: "HTTPNotFound", Message: fmt.Sprintf("Marker %s could not be found.", p.marker)}
	case p.reverse:
		return objs[:i], nil
	default:
		return objs[i+1:], nil
	}
}

// cut takes the page: the first limit objects of the window, or the last
// ones in reverse, still in the list's order.
func (p paging) cut(objs []map[string]any) []map[string]any {
	if p.limit == 0 || len(objs) <= p.limit {
		return objs
	}
	if p.reverse {
		return objs[len(objs)-p.limit:]
	}
	return objs[:p.limit]
}

// links are Neutron's: a page has a "next" link unless it is a short
// forward page (so a full last page links to an empty one), and a
// "previous" link unless it is a short reverse page. Next continues after
// the page's last object, previous before its first, both with the
// request's other parameters; an empty page links without a marker, to
// the first page (next) or the last (previous).
func (p paging) links(r *http.Request, page []map[string]any) []any {
	if p.limit == 0 {
		return nil
	}
	link := func(rel string, at int, reverse bool) map[string]string {
		q := r.URL.Query()
		q.Del("marker")
		if len(page) > 0 {
			q.Set("marker", fmt.Sprint(page[at]["id"]))
		}
		q.Del("page_reverse")
		if reverse {
			q.Set("page_reverse", "True")
		}
		return map[string]string{"rel": rel, "href": baseURL(r) + r.URL.Path + "?" + q.Encode()}
	}
	short := len(page) < p.limit
	var links []any
	if !short || p.reverse {
		links = append(links, link("next", len(page)-1, false))
	}
	if !short || !p.reverse {
		links = append(links, link("previous", 0, true))
	}
	return links
}

func badQuery(param, reason string) *service.Error {
	return &service.Error{Status: 400, Type: "HTTPBadRequest", Message: fmt.Sprintf("Invalid input for %s. Reason: %s.", param, reason)}
}
