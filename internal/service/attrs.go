package service

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Attrs is the body of one resource in a create or update request, attribute
// by attribute, as the client sent it.
type Attrs map[string]json.RawMessage

type op int

const (
	opCreate op = iota
	opUpdate
)

// attr is one attribute of a resource as Neutron's attribute maps describe
// it: whether a client may set it on create and on update, and how its JSON
// value is checked and stored.
type attr[T any] struct {
	name      string
	post, put bool
	required  bool
	set       func(obj *T, raw json.RawMessage) error
}

// decode applies attrs to obj under the rules of fields, returning Neutron's
// error for the first offending attribute (in name order, so errors are
// stable).
func decode[T any](obj *T, fields []attr[T], attrs Attrs, o op) error {
	byName := make(map[string]*attr[T], len(fields))
	for i := range fields {
		byName[fields[i].name] = &fields[i]
	}
	var unknown []string
	for name := range attrs {
		if byName[name] == nil {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return badRequest("Unrecognized attribute(s) '%s'", strings.Join(unknown, ", "))
	}
	for _, f := range fields {
		raw, present := attrs[f.name]
		if !present {
			if o == opCreate && f.required {
				return badRequest("Failed to parse request. Required attribute '%s' not specified", f.name)
			}
			continue
		}
		switch {
		case o == opCreate && !f.post:
			return badRequest("Attribute '%s' not allowed in POST", f.name)
		case o == opUpdate && !f.put:
			return badRequest("Cannot update read-only attribute %s", f.name)
		}
		if err := f.set(obj, raw); err != nil {
			if e := AsError(err); e != nil {
				return e
			}
			return badValue(f.name, err.Error())
		}
	}
	return nil
}

func isNull(raw json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(raw), []byte("null")) }

// shown renders a raw JSON value the way Neutron quotes it in messages.
func shown(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(bytes.TrimSpace(raw))
}

const maxNameLen = 255

func parseString(raw json.RawMessage, maxLen int) (string, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("'%s' is not a valid string", shown(raw))
	}
	if !utf8.ValidString(s) {
		return "", fmt.Errorf("'%s' is not valid UTF-8", s)
	}
	if len(s) > maxLen {
		return "", fmt.Errorf("'%s' exceeds maximum length of %d", s, maxLen)
	}
	return s, nil
}

// parseBool accepts what Neutron's convert_to_boolean accepts.
func parseBool(raw json.RawMessage) (bool, error) {
	var b bool
	if json.Unmarshal(raw, &b) == nil {
		return b, nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		switch strings.ToLower(s) {
		case "true", "1":
			return true, nil
		case "false", "0":
			return false, nil
		}
	}
	var n int
	if json.Unmarshal(raw, &n) == nil && (n == 0 || n == 1) {
		return n == 1, nil
	}
	return false, fmt.Errorf("'%s' cannot be converted to boolean", shown(raw))
}

func parseInt(raw json.RawMessage) (int, error) {
	var n int
	if json.Unmarshal(raw, &n) == nil {
		return n, nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(s)); err == nil {
			return n, nil
		}
	}
	return 0, fmt.Errorf("'%s' is not an integer", shown(raw))
}

func parseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("'%s' is not a valid IP address", s)
	}
	return a.Unmap(), nil
}

// parseCIDR accepts only a prefix written with its host bits zero, as
// Neutron does, and says which prefix was meant otherwise.
func parseCIDR(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("'%s' is not a valid IP subnet", s)
	}
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("'%s' isn't a recommended CIDR, '%s' should be specified instead", s, p.Masked())
	}
	return p, nil
}

func stringAttr[T any](name string, post, put bool, field func(*T) *string) attr[T] {
	return attr[T]{name: name, post: post, put: put, set: func(obj *T, raw json.RawMessage) error {
		s, err := parseString(raw, maxNameLen)
		if err != nil {
			return err
		}
		*field(obj) = s
		return nil
	}}
}

func boolAttr[T any](name string, post, put bool, field func(*T) *bool) attr[T] {
	return attr[T]{name: name, post: post, put: put, set: func(obj *T, raw json.RawMessage) error {
		b, err := parseBool(raw)
		if err != nil {
			return err
		}
		*field(obj) = b
		return nil
	}}
}

// projectAttrs accepts project_id and tenant_id on create. Whose project the
// resource lands in is decided by policy once the body is decoded.
func projectAttrs[T any](field func(*T) *string) []attr[T] {
	set := func(obj *T, raw json.RawMessage) error {
		s, err := parseString(raw, maxNameLen)
		if err != nil {
			return err
		}
		if cur := *field(obj); cur != "" && cur != s {
			return badRequest("'project_id' and 'tenant_id' do not match")
		}
		*field(obj) = s
		return nil
	}
	return []attr[T]{
		{name: "project_id", post: true, set: set},
		{name: "tenant_id", post: true, set: set},
	}
}

// stringListAttr decodes a JSON list of strings, each checked by check.
func parseStringList(raw json.RawMessage, check func(string) error) ([]string, error) {
	var list []string
	if isNull(raw) {
		return []string{}, nil
	}
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, fmt.Errorf("'%s' is not a list of strings", shown(raw))
	}
	for _, s := range list {
		if err := check(s); err != nil {
			return nil, err
		}
	}
	if i := firstDuplicate(list); i >= 0 {
		return nil, fmt.Errorf("duplicate entry '%s' in list", list[i])
	}
	return list, nil
}

func firstDuplicate(list []string) int {
	for i := range list {
		if slices.Contains(list[:i], list[i]) {
			return i
		}
	}
	return -1
}
