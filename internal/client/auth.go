package client

import "context"

// TokenSource supplies the token sent as X-Auth-Token. It is asked before
// every request so that a source backed by Keystone can renew an expiring
// token without the client knowing.
type TokenSource interface {
	Token(ctx context.Context) (string, error)
}

// StaticToken is a token fixed for the client's lifetime: nsnet's admin
// token from the daemon's --token-file, or a Keystone token obtained
// elsewhere.
type StaticToken string

// Token implements TokenSource.
func (t StaticToken) Token(context.Context) (string, error) { return string(t), nil }
