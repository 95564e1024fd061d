package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/tokens"
)

// renewBefore is how long before its expiry a Keystone token is renewed:
// long enough that a request sent with it still arrives in time.
const renewBefore = time.Minute

// Keystone is a TokenSource that logs in to Keystone v3 (with a password,
// as the OpenStack CLI does) and logs in again when its token nears expiry.
// It also finds nsnet in the service catalog: the endpoint of type
// "network".
type Keystone struct {
	opts gophercloud.AuthOptions
	eo   gophercloud.EndpointOpts
	tls  *tls.Config

	mu       sync.Mutex
	token    string
	expires  time.Time
	endpoint string
	now      func() time.Time
}

// NewKeystone returns a Keystone source for opts. eo picks the catalog
// entry (region, interface); the service type is always "network".
// tlsConfig may be nil.
func NewKeystone(opts gophercloud.AuthOptions, eo gophercloud.EndpointOpts, tlsConfig *tls.Config) *Keystone {
	opts.AllowReauth = false // Token renews; gophercloud must not retry on its own
	return &Keystone{opts: opts, eo: eo, tls: tlsConfig, now: time.Now}
}

// Token implements TokenSource.
func (k *Keystone) Token(ctx context.Context) (string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.token == "" || !k.now().Add(renewBefore).Before(k.expires) {
		if err := k.login(ctx); err != nil {
			return "", err
		}
	}
	return k.token, nil
}

// NetworkEndpoint returns the URL of the catalog's network service (nsnet),
// logging in first if needed.
func (k *Keystone) NetworkEndpoint(ctx context.Context) (string, error) {
	if _, err := k.Token(ctx); err != nil {
		return "", err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.endpoint, nil
}

func (k *Keystone) login(ctx context.Context) error {
	provider, err := openstack.NewClient(k.opts.IdentityEndpoint)
	if err != nil {
		return fmt.Errorf("keystone %q: %w", k.opts.IdentityEndpoint, err)
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	if k.tls != nil {
		transport.TLSClientConfig = k.tls
	}
	provider.HTTPClient = http.Client{Transport: transport, Timeout: 30 * time.Second}
	if err := openstack.Authenticate(ctx, provider, k.opts); err != nil {
		if gophercloud.ResponseCodeIs(err, http.StatusUnauthorized) {
			return fmt.Errorf("keystone at %s refused the credentials (check OS_USERNAME, OS_PASSWORD, OS_PROJECT_NAME and the domains)", k.opts.IdentityEndpoint)
		}
		return fmt.Errorf("log in to keystone at %s: %w", k.opts.IdentityEndpoint, err)
	}
	created, ok := provider.GetAuthResult().(tokens.CreateResult)
	if !ok {
		return errors.New("keystone: unexpected authentication result")
	}
	tok, err := created.ExtractToken()
	if err != nil {
		return fmt.Errorf("keystone: read token: %w", err)
	}
	network, err := openstack.NewNetworkV2(provider, k.eo)
	if err != nil {
		return fmt.Errorf("keystone catalog at %s has no network endpoint for nsnet: %w", k.opts.IdentityEndpoint, err)
	}
	k.token, k.expires, k.endpoint = provider.Token(), tok.ExpiresAt, network.Endpoint
	return nil
}
