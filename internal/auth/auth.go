// Package auth resolves who is calling the API and carries that caller through
// a request's context.
//
// It owns the Caller type, the context plumbing, and the sources that turn a
// token into a caller: nsnet's own tokens file (TokenFile) and a Keystone v3
// server (Keystone). It must not decide what a caller may do to a resource:
// the service applies policy.
package auth

import (
	"context"
	"errors"
	"slices"
)

// Role names, as Neutron's default policies spell them.
const (
	RoleAdmin  = "admin"
	RoleMember = "member"
	RoleReader = "reader"
)

// AdminProjectID is the project of the built-in admin caller (the unix socket
// and the --token-file token).
const AdminProjectID = "admin"

// Caller is the identity behind one request.
type Caller struct {
	ProjectID   string
	ProjectName string
	UserID      string
	Roles       []string
}

// Admin is the caller of the unix socket and of the admin token.
var Admin = Caller{ProjectID: AdminProjectID, ProjectName: AdminProjectID, UserID: "admin", Roles: []string{RoleAdmin}}

// IsAdmin reports whether the caller holds the admin role.
func (c Caller) IsAdmin() bool { return c.HasRole(RoleAdmin) }

// CanWrite reports whether the caller may change resources of its own
// project: Neutron's default policies give that to members (and admins).
func (c Caller) CanWrite() bool { return c.IsAdmin() || c.HasRole(RoleMember) }

// HasRole reports whether the caller holds role.
func (c Caller) HasRole(role string) bool { return slices.Contains(c.Roles, role) }

type callerKey struct{}

// WithCaller returns ctx carrying c.
func WithCaller(ctx context.Context, c Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// FromContext returns the caller in ctx, and whether there was one.
func FromContext(ctx context.Context) (Caller, bool) {
	c, ok := ctx.Value(callerKey{}).(Caller)
	return c, ok
}

// Authenticator resolves a token to a caller.
type Authenticator interface {
	// Authenticate returns the caller token belongs to, ErrUnauthorized
	// for a token it rejects, or an error wrapping ErrUnavailable when it
	// cannot tell (its identity server is unreachable).
	Authenticate(ctx context.Context, token string) (Caller, error)
}

var (
	// ErrUnauthorized is the answer for a token that is not valid.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrUnavailable wraps failures to validate a token at all: the
	// identity server cannot be reached or refuses nsnet's own
	// credentials. The API answers 503, not 401: the token may be fine.
	ErrUnavailable = errors.New("identity service unavailable")
)

// Project is a project as the tokens file names it, for the identity
// look-ups the OpenStack CLI makes (see the api package).
type Project struct {
	ID   string
	Name string
}

// WellFormed reports whether token could be a token at all: non-empty,
// at most 8 KiB, and only visible ASCII. Anything else is refused before it
// is compared or sent anywhere, so odd bytes in a header can neither crash
// a parser nor be smuggled into a request to Keystone.
func WellFormed(token string) bool {
	if token == "" || len(token) > 8<<10 {
		return false
	}
	for i := 0; i < len(token); i++ {
		if token[i] <= ' ' || token[i] >= 0x7f {
			return false
		}
	}
	return true
}
