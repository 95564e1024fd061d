package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Error is a non-2xx answer of the API. Neutron (and so nsnet) describes
// every failure with a body {"NeutronError": {"type", "message", "detail"}};
// answers without one (a proxy's HTML page, say) keep the HTTP status and a
// short excerpt of the body as the message.
type Error struct {
	StatusCode int
	// Type is Neutron's exception name: NetworkNotFound, IpAddressInUse…
	Type    string
	Message string
	Detail  string
}

// Error returns the server's message alone: it is written for users
// ("Network red could not be found.") and reads best unadorned.
func (e *Error) Error() string { return e.Message }

// AsError returns err as an *Error when it is one.
func AsError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

// IsNotFound reports whether err is a 404 from the API (or a failed name
// lookup, which the client reports the same way).
func IsNotFound(err error) bool {
	e, ok := AsError(err)
	return ok && e.StatusCode == http.StatusNotFound
}

// IsConflict reports whether err is a 409 from the API: the request was
// valid but the state forbids it (in use, duplicate, …).
func IsConflict(err error) bool {
	e, ok := AsError(err)
	return ok && e.StatusCode == http.StatusConflict
}

// decodeError turns a non-2xx response into an *Error.
func decodeError(resp *http.Response) error {
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	if err != nil {
		return &Error{StatusCode: resp.StatusCode, Type: httpType(resp.StatusCode),
			Message: fmt.Sprintf("%s (reading the error body failed: %v)", resp.Status, err)}
	}
	var body struct {
		NeutronError *struct {
			Type    string `json:"type"`
			Message string `json:"message"`
			Detail  string `json:"detail"`
		} `json:"NeutronError"`
	}
	if json.Unmarshal(raw, &body) == nil && body.NeutronError != nil && body.NeutronError.Message != "" {
		ne := body.NeutronError
		typ := ne.Type
		if typ == "" {
			typ = httpType(resp.StatusCode)
		}
		return &Error{StatusCode: resp.StatusCode, Type: typ, Message: ne.Message, Detail: ne.Detail}
	}
	msg := resp.Status
	if excerpt := strings.TrimSpace(string(raw)); excerpt != "" {
		if len(excerpt) > 200 {
			excerpt = excerpt[:200] + "…"
		}
		msg += ": " + excerpt
	}
	return &Error{StatusCode: resp.StatusCode, Type: httpType(resp.StatusCode), Message: msg}
}

// httpType names a bare HTTP status the way Neutron's webob layer does.
func httpType(status int) string {
	text := strings.ReplaceAll(http.StatusText(status), " ", "")
	if text == "" {
		text = fmt.Sprint(status)
	}
	return "HTTP" + text
}
