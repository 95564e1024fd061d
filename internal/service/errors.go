package service

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/nsnet/nsnet/internal/store"
)

// Error is a failure the API shows to its client, in Neutron's terms: an HTTP
// status, the exception type name Neutron uses, and a message.
type Error struct {
	Status  int
	Type    string
	Message string
	Detail  string
}

func (e *Error) Error() string { return e.Message }

// AsError returns err as an *Error, or nil when it is not one (an internal
// failure the API turns into a 500). A store that cannot be reached (etcd
// down or without a leader) is a 503: nothing was done, and the same
// request may succeed later. A request that writes more than the store
// takes in one transaction (etcd's --max-txn-ops) is a 400 naming the
// bound: nothing was done, and only a smaller request will do.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	if errors.Is(err, store.ErrTooLarge) {
		// Neutron has no such bound; its bad request is the nearest
		// answer: the same request never fits, a smaller one does.
		return &Error{http.StatusBadRequest, "HTTPBadRequest",
			"Request too large for one transaction of the networking service's store: " + err.Error() +
				". Send fewer resources per request (a port writes about eight records), or raise the cluster's --max-txn-ops and give nsnet's --store the same as ?max-txn-ops=N.", ""}
	}
	if errors.Is(err, store.ErrUnavailable) {
		return &Error{http.StatusServiceUnavailable, "HTTPServiceUnavailable",
			"The networking service cannot reach its store; try again later: " + err.Error(), ""}
	}
	return nil
}

// badValue is Neutron's answer to an attribute that fails validation.
func badValue(field, reason string) *Error {
	return &Error{http.StatusBadRequest, "HTTPBadRequest",
		fmt.Sprintf("Invalid input for %s. Reason: %s.", field, reason), ""}
}

func badRequest(format string, args ...any) *Error {
	return &Error{http.StatusBadRequest, "HTTPBadRequest", fmt.Sprintf(format, args...), ""}
}

// invalidInput is Neutron's InvalidInput: a request whose parts are each
// valid but that does not make sense as a whole.
func invalidInput(format string, args ...any) *Error {
	return &Error{http.StatusBadRequest, "InvalidInput",
		"Invalid input for operation: " + fmt.Sprintf(format, args...) + ".", ""}
}

func typed(status int, typ, format string, args ...any) *Error {
	return &Error{status, typ, fmt.Sprintf(format, args...), ""}
}

func notFound(resource, id string) *Error {
	return typed(http.StatusNotFound, resource+"NotFound", "%s %s could not be found.", resource, id)
}

func conflict(typ, format string, args ...any) *Error {
	return typed(http.StatusConflict, typ, format, args...)
}

// worded gives a 404 from load the message Neutron words differently for
// some resources ("Router %s could not be found", no period).
func worded(err error, format, id string) error {
	if e := AsError(err); e != nil && e.Status == http.StatusNotFound {
		return typed(e.Status, e.Type, format, id)
	}
	return err
}
