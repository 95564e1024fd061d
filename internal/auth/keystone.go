package auth

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/tokens"
)

// KeystoneConfig says where Keystone is and how nsnet authenticates to it
// as a service, to be allowed to validate its callers' tokens.
type KeystoneConfig struct {
	// URL is Keystone's public endpoint, e.g. http://127.0.0.1:5000/v3.
	URL string
	// The service user: Keystone's policy lets a user with the admin or
	// the service role validate other users' tokens.
	Username      string
	Password      string
	UserDomain    string // name; "Default" if empty
	Project       string // name of the service user's project
	ProjectDomain string // name; "Default" if empty
	// Timeout bounds each request to Keystone; 0 means 10s.
	Timeout time.Duration
	// MaxCached bounds the validated tokens kept; 0 means 10000.
	MaxCached int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Keystone validates tokens against a Keystone v3 server with
// GET /v3/auth/tokens, and remembers each valid token until it expires.
type Keystone struct {
	cfg  KeystoneConfig
	opts gophercloud.AuthOptions

	loginMu  sync.Mutex // guards identity: the lazy service login
	identity *gophercloud.ServiceClient

	cacheMu sync.Mutex
	cache   map[[sha256.Size]byte]cachedCaller
}

type cachedCaller struct {
	caller  Caller
	expires time.Time
}

// NewKeystone returns a validator for cfg. It does not contact Keystone:
// the service login happens at the first token to validate (and again when
// the service token expires), so the daemon starts even while Keystone is
// down, and answers 503 until it is back.
func NewKeystone(cfg KeystoneConfig) (*Keystone, error) {
	switch {
	case cfg.URL == "":
		return nil, errors.New("keystone: no URL")
	case cfg.Username == "" || cfg.Password == "" || cfg.Project == "":
		return nil, errors.New("keystone: the service user needs a username, a password and a project " +
			"(--keystone-username, --keystone-password-file, --keystone-project or OS_USERNAME, OS_PASSWORD, OS_PROJECT_NAME)")
	}
	if cfg.UserDomain == "" {
		cfg.UserDomain = "Default"
	}
	if cfg.ProjectDomain == "" {
		cfg.ProjectDomain = "Default"
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.MaxCached <= 0 {
		cfg.MaxCached = 10000
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Keystone{
		cfg: cfg,
		opts: gophercloud.AuthOptions{
			IdentityEndpoint: cfg.URL,
			Username:         cfg.Username,
			Password:         cfg.Password,
			DomainName:       cfg.UserDomain,
			AllowReauth:      true, // log in again when the service token expires
			Scope:            &gophercloud.AuthScope{ProjectName: cfg.Project, DomainName: cfg.ProjectDomain},
		},
		cache: map[[sha256.Size]byte]cachedCaller{},
	}, nil
}

// Authenticate implements Authenticator.
func (k *Keystone) Authenticate(ctx context.Context, token string) (Caller, error) {
	if !WellFormed(token) {
		return Caller{}, ErrUnauthorized
	}
	key := sha256.Sum256([]byte(token))
	now := k.cfg.Now()
	k.cacheMu.Lock()
	hit, ok := k.cache[key]
	k.cacheMu.Unlock()
	if ok && now.Before(hit.expires) {
		return hit.caller, nil
	}

	identity, err := k.client(ctx)
	if err != nil {
		return Caller{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, k.cfg.Timeout)
	defer cancel()
	res := tokens.Get(ctx, identity, token)
	if res.Err != nil {
		return Caller{}, k.validateError(res.Err)
	}
	caller, expires, err := callerOf(res)
	if err != nil {
		return Caller{}, err
	}
	k.remember(key, cachedCaller{caller, expires}, now)
	return caller, nil
}

// client returns the identity client, logging the service user in first
// if it never has.
func (k *Keystone) client(ctx context.Context) (*gophercloud.ServiceClient, error) {
	k.loginMu.Lock()
	defer k.loginMu.Unlock()
	if k.identity != nil {
		return k.identity, nil
	}
	provider, err := openstack.NewClient(k.cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("keystone URL %q: %w", k.cfg.URL, err)
	}
	provider.HTTPClient = http.Client{Timeout: k.cfg.Timeout}
	ctx, cancel := context.WithTimeout(ctx, k.cfg.Timeout)
	defer cancel()
	if err := openstack.Authenticate(ctx, provider, k.opts); err != nil {
		return nil, k.loginError(err)
	}
	identity, err := openstack.NewIdentityV3(provider, gophercloud.EndpointOpts{})
	if err != nil {
		return nil, fmt.Errorf("%w: keystone identity client: %v", ErrUnavailable, err)
	}
	k.identity = identity
	return identity, nil
}

// validateError sorts a failed GET /v3/auth/tokens: Keystone answers 404
// for a subject token it does not know (expired, revoked, made up), which
// is the caller's problem; anything else is nsnet's or Keystone's.
func (k *Keystone) validateError(err error) error {
	switch {
	case gophercloud.ResponseCodeIs(err, http.StatusNotFound):
		return ErrUnauthorized
	case gophercloud.ResponseCodeIs(err, http.StatusUnauthorized), gophercloud.ResponseCodeIs(err, http.StatusForbidden):
		return fmt.Errorf("%w: Keystone at %s refused nsnet's service user %s the right to validate tokens "+
			"(give it the service or admin role in project %s)", ErrUnavailable, k.cfg.URL, k.cfg.Username, k.cfg.Project)
	}
	return fmt.Errorf("%w: Keystone at %s cannot validate the token: %v", ErrUnavailable, k.cfg.URL, shortError(err))
}

func (k *Keystone) loginError(err error) error {
	if gophercloud.ResponseCodeIs(err, http.StatusUnauthorized) {
		return fmt.Errorf("%w: Keystone at %s refused nsnet's service credentials (user %s in project %s)",
			ErrUnavailable, k.cfg.URL, k.cfg.Username, k.cfg.Project)
	}
	return fmt.Errorf("%w: Keystone at %s cannot be reached: %v", ErrUnavailable, k.cfg.URL, shortError(err))
}

// shortError drops gophercloud's response bodies, which can be long HTML.
func shortError(err error) string {
	var code gophercloud.ErrUnexpectedResponseCode
	if errors.As(err, &code) {
		return fmt.Sprintf("HTTP %d from %s", code.Actual, code.URL)
	}
	return err.Error()
}

// callerOf reads the caller out of Keystone's answer. Only project-scoped
// tokens name a caller nsnet can place: resources belong to projects.
func callerOf(res tokens.GetResult) (Caller, time.Time, error) {
	tok, err := res.ExtractToken()
	if err != nil {
		return Caller{}, time.Time{}, fmt.Errorf("%w: decode Keystone's answer: %v", ErrUnavailable, err)
	}
	project, err := res.ExtractProject()
	if err != nil || project == nil || project.ID == "" {
		return Caller{}, time.Time{}, ErrUnauthorized
	}
	user, err := res.ExtractUser()
	if err != nil {
		return Caller{}, time.Time{}, fmt.Errorf("%w: decode Keystone's answer: %v", ErrUnavailable, err)
	}
	roles, err := res.ExtractRoles()
	if err != nil {
		return Caller{}, time.Time{}, fmt.Errorf("%w: decode Keystone's answer: %v", ErrUnavailable, err)
	}
	c := Caller{ProjectID: project.ID, ProjectName: project.Name, UserID: user.ID}
	for _, r := range roles {
		c.Roles = append(c.Roles, r.Name)
	}
	return c, tok.ExpiresAt, nil
}

// remember caches a validated token until its expiry, dropping expired
// entries (and, if it is still full, everything) when the cache is full.
func (k *Keystone) remember(key [sha256.Size]byte, c cachedCaller, now time.Time) {
	if !now.Before(c.expires) {
		return
	}
	k.cacheMu.Lock()
	defer k.cacheMu.Unlock()
	if len(k.cache) >= k.cfg.MaxCached {
		for key, e := range k.cache {
			if !now.Before(e.expires) {
				delete(k.cache, key)
			}
		}
		if len(k.cache) >= k.cfg.MaxCached {
			clear(k.cache)
		}
	}
	k.cache[key] = c
}
