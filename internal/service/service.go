// Package service is nsnet's API logic below HTTP: it checks every request
// against Neutron's attribute rules and nsnet's own, applies policy, allocates
// addresses, and writes desired state in one store transaction per request,
// so that a failed request changes nothing.
//
// It owns validation, defaults, IPAM bookkeeping and referential integrity.
// It must not touch the kernel (the agent does) or speak HTTP (the api does).
package service

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/nsnet/nsnet/internal/auth"
	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/store"
)

// StatusSource tells what the kernel has for a resource: the agent.
type StatusSource interface {
	Status(kind store.Kind, id string) (status, reason string)
}

// Config wires a Service.
type Config struct {
	Store  store.Store
	Status StatusSource
	// NetnsPrefix is the agent's namespace prefix, shown in each
	// instance's netns attribute.
	NetnsPrefix string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Service implements the resources of the API.
type Service struct {
	store       store.Store
	status      StatusSource
	netnsPrefix string
	now         func() time.Time
}

// New returns a Service.
func New(cfg Config) *Service {
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	return &Service{store: cfg.Store, status: cfg.Status, netnsPrefix: cfg.NetnsPrefix, now: now}
}

// Result is what a write returns: the resource as the API shows it and the
// store revision that holds the change, which a client may wait for.
type Result[T any] struct {
	Object   T
	Revision int64
}

func newID() string { return uuid.NewString() }

func caller(ctx context.Context) auth.Caller {
	if c, ok := auth.FromContext(ctx); ok {
		return c
	}
	// No caller means an in-process call, which is trusted.
	return auth.Admin
}

// owner decides the project of a new resource: the caller's, or, for an
// admin, the one named in the body.
func owner(ctx context.Context, requested string) (string, error) {
	c := caller(ctx)
	switch {
	case requested == "" || requested == c.ProjectID:
		return c.ProjectID, nil
	case c.IsAdmin():
		return requested, nil
	default:
		return "", typed(http.StatusForbidden, "PolicyNotAuthorized",
			"Only an admin may create a resource in project %s", requested)
	}
}

// canSee reports whether the caller may see a resource of project.
func canSee(ctx context.Context, project string) bool {
	c := caller(ctx)
	return c.IsAdmin() || c.ProjectID == project
}

// mustWrite refuses writes from callers that may only read.
func mustWrite(ctx context.Context) error {
	c := caller(ctx)
	if c.IsAdmin() || c.HasRole(auth.RoleMember) {
		return nil
	}
	return typed(http.StatusForbidden, "PolicyNotAuthorized", "Your role does not allow changes")
}

// load reads kind/id for the caller, answering 404 both for a missing record
// and for one the caller may not see.
func load[T any](ctx context.Context, r store.Reader, kind store.Kind, resource, id string, project func(*T) string) (T, error) {
	v, err := store.Get[T](r, kind, id)
	if errors.Is(err, store.ErrNotFound) || err == nil && !canSee(ctx, project(&v)) {
		return v, notFound(resource, id)
	}
	if err != nil {
		return v, fmt.Errorf("read %s %s: %w", resource, id, err)
	}
	return v, nil
}

func (s *Service) statusOf(kind store.Kind, id string) (string, string) {
	if s.status == nil {
		return model.StatusBuild, ""
	}
	return s.status.Status(kind, id)
}
