package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/nsnet/nsnet/internal/service"
)

// Query parameters that shape a list rather than filter it.
var listControls = map[string]bool{
	"fields": true, "limit": true, "marker": true, "sort_key": true, "sort_dir": true, "page_reverse": true,
}

// listBody filters, sorts, pages and projects items the way Neutron does
// for GET on a collection.
func listBody(r *http.Request, collection string, items []any) (map[string]any, error) {
	q := r.URL.Query()
	objs := make([]map[string]any, 0, len(items))
	for _, it := range items {
		m, err := asMap(it)
		if err != nil {
			return nil, err
		}
		if matches(m, q) {
			objs = append(objs, m)
		}
	}
	if err := sortObjects(objs, q["sort_key"], q["sort_dir"]); err != nil {
		return nil, err
	}
	page, next, err := paginate(objs, q.Get("limit"), q.Get("marker"))
	if err != nil {
		return nil, err
	}
	shown := make([]any, len(page))
	for i, m := range page {
		shown[i] = pick(m, q["fields"])
	}
	body := map[string]any{collection: shown}
	if next != "" {
		nq := url.Values{}
		for k, v := range q {
			nq[k] = v
		}
		nq.Set("marker", next)
		body[collection+"_links"] = []any{map[string]string{
			"rel": "next", "href": baseURL(r) + r.URL.Path + "?" + nq.Encode(),
		}}
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

// matches reports whether obj passes every filter in q. Several values for
// one attribute match any of them; unknown attributes are ignored, as in
// Neutron without filter validation.
func matches(obj map[string]any, q url.Values) bool {
	for key, wants := range q {
		if listControls[key] {
			continue
		}
		have, known := obj[key]
		if !known {
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

func sortObjects(objs []map[string]any, keys, dirs []string) error {
	if len(keys) == 0 {
		keys = []string{"id"}
	}
	for i, d := range dirs {
		if d != "asc" && d != "desc" {
			return badQuery("sort_dir", fmt.Sprintf("'%s' is not in ['asc', 'desc']", d))
		}
		if i >= len(keys) {
			return badQuery("sort_dir", "more sort directions than sort keys")
		}
	}
	sort.SliceStable(objs, func(i, j int) bool {
		for k, key := range keys {
			a, b := fmt.Sprint(objs[i][key]), fmt.Sprint(objs[j][key])
			if a == b {
				continue
			}
			if k < len(dirs) && dirs[k] == "desc" {
				return a > b
			}
			return a < b
		}
		return false
	})
	return nil
}

// paginate returns the page after marker of at most limit objects, and the
// marker of the next page when there is one.
func paginate(objs []map[string]any, limit, marker string) ([]map[string]any, string, error) {
	if marker != "" {
		found := false
		for i, m := range objs {
			if m["id"] == marker {
				objs, found = objs[i+1:], true
				break
			}
		}
		if !found {
			return nil, "", &service.Error{Status: 404, Type: "HTTPNotFound", Message: fmt.Sprintf("Marker %s could not be found.", marker)}
		}
	}
	if limit == "" {
		return objs, "", nil
	}
	n, err := strconv.Atoi(limit)
	if err != nil || n < 0 {
		return nil, "", badQuery("limit", fmt.Sprintf("'%s' is not a non-negative integer", limit))
	}
	if n == 0 || n >= len(objs) {
		return objs, "", nil
	}
	next, _ := objs[n-1]["id"].(string)
	return objs[:n], next, nil
}

func badQuery(param, reason string) *service.Error {
	return &service.Error{Status: 400, Type: "HTTPBadRequest", Message: fmt.Sprintf("Invalid input for %s. Reason: %s.", param, reason)}
}
