// Package auth resolves who is calling the API and carries that caller through
// a request's context.
//
// It owns the Caller type and the context plumbing. It must not decide what a
// caller may do to a resource: the service applies policy.
package auth

import "context"

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
	ProjectID string
	UserID    string
	Roles     []string
}

// Admin is the caller of the unix socket and of the admin token.
var Admin = Caller{ProjectID: AdminProjectID, UserID: "admin", Roles: []string{RoleAdmin}}

// IsAdmin reports whether the caller holds the admin role.
func (c Caller) IsAdmin() bool { return c.HasRole(RoleAdmin) }

// HasRole reports whether the caller holds role.
func (c Caller) HasRole(role string) bool {
	for _, r := range c.Roles {
		if r == role {
			return true
		}
	}
	return false
}

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
