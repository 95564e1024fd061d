package cli

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/config/clouds"
	"github.com/spf13/cobra"

	"github.com/nsnet/nsnet/internal/client"
)

// Environment variables that stand in for connection flags.
const (
	envEndpoint = "NSNET_ENDPOINT"
	envToken    = "NSNET_TOKEN"
)

// connFlags say how to reach the API. They are resolved in one place,
// config, from three sources, first match wins:
//
//  1. --endpoint / --token;
//  2. $NSNET_ENDPOINT / $NSNET_TOKEN;
//  3. OpenStack credentials: $OS_CLOUD with clouds.yaml, or $OS_AUTH_URL,
//     $OS_USERNAME, $OS_PASSWORD, $OS_PROJECT_NAME… as the OpenStack CLI
//     reads them: nsnet logs in to Keystone with the password and takes
//     the endpoint of the "network" service from the catalog (an endpoint
//     from 1 or 2 still wins);
//
// and without any of them, the daemon's unix socket, where root is admin.
// An explicit --socket beats 2 and 3.
type connFlags struct {
	endpoint string
	token    string
	socket   string
	debug    bool
}

func (a *app) addConnectionFlags(root *cobra.Command) {
	f := root.PersistentFlags()
	f.StringVar(&a.conn.endpoint, "endpoint", "",
		"API URL for TCP, e.g. http://127.0.0.1:9696 (default $"+envEndpoint+", else the catalog's network endpoint with $OS_CLOUD or $OS_AUTH_URL, else the unix socket)")
	f.StringVar(&a.conn.token, "token", "", "token sent as X-Auth-Token (default $"+envToken+", else a Keystone login with $OS_CLOUD or $OS_AUTH_URL)")
	f.StringVar(&a.conn.socket, "socket", client.DefaultSocket, "the daemon's unix socket, used when no endpoint is set")
	f.BoolVar(&a.conn.debug, "debug", false, "log each API request to stderr")
}

// connection is a resolved client.Config, and the Keystone login whose
// catalog names the endpoint when nothing else does.
type connection struct {
	client.Config
	keystone *client.Keystone
}

// config resolves the flags, then the environment, into a connection.
// It does not contact anything: a Keystone login happens when the client
// is made (see app.client).
func (c *connFlags) config(cmd *cobra.Command, getenv func(string) string) (connection, error) {
	changed := func(name string) bool {
		f := cmd.Flags().Lookup(name)
		return f != nil && f.Changed
	}
	cfg := client.Config{Endpoint: c.endpoint, Socket: c.socket, UserAgent: "nsnet-cli"}
	switch {
	case changed("endpoint") && changed("socket"):
		return connection{}, errors.New("use --endpoint or --socket, not both")
	case !changed("endpoint") && !changed("socket"):
		cfg.Endpoint = getenv(envEndpoint)
	}
	if c.debug {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	token := c.token
	if !changed("token") {
		token = getenv(envToken)
	}
	if token != "" {
		cfg.Auth = client.StaticToken(token)
		return connection{Config: cfg}, nil
	}
	if changed("socket") {
		return connection{Config: cfg}, nil
	}
	ks, err := keystoneFromEnv(getenv)
	if err != nil || ks == nil {
		return connection{Config: cfg}, err
	}
	cfg.Auth = ks
	return connection{Config: cfg, keystone: ks}, nil
}

// keystoneFromEnv reads OpenStack credentials the way the OpenStack CLI
// does: a cloud of clouds.yaml named by $OS_CLOUD, or $OS_AUTH_URL and its
// companions. It returns nil when neither is set.
func keystoneFromEnv(getenv func(string) string) (*client.Keystone, error) {
	eo := gophercloud.EndpointOpts{Region: getenv("OS_REGION_NAME"), Availability: availability(getenv("OS_INTERFACE"))}
	if cloud := getenv("OS_CLOUD"); cloud != "" {
		opts := []clouds.ParseOption{clouds.WithCloudName(cloud)}
		if path := getenv("OS_CLIENT_CONFIG_FILE"); path != "" {
			opts = append(opts, clouds.WithLocations(path))
		}
		ao, ceo, tlsConfig, err := clouds.Parse(opts...)
		if err != nil {
			return nil, fmt.Errorf("OS_CLOUD=%s: %w", cloud, err)
		}
		return client.NewKeystone(ao, ceo, tlsConfig), nil
	}
	authURL := getenv("OS_AUTH_URL")
	if authURL == "" {
		return nil, nil
	}
	ao := gophercloud.AuthOptions{
		IdentityEndpoint: authURL,
		Username:         getenv("OS_USERNAME"),
		UserID:           getenv("OS_USER_ID"),
		Password:         getenv("OS_PASSWORD"),
		DomainName:       getenv("OS_USER_DOMAIN_NAME"),
		DomainID:         getenv("OS_USER_DOMAIN_ID"),
		Scope: &gophercloud.AuthScope{
			ProjectName: getenv("OS_PROJECT_NAME"),
			ProjectID:   getenv("OS_PROJECT_ID"),
			DomainName:  getenv("OS_PROJECT_DOMAIN_NAME"),
			DomainID:    getenv("OS_PROJECT_DOMAIN_ID"),
		},
	}
	switch {
	case ao.Username == "" && ao.UserID == "":
		return nil, errors.New("OS_AUTH_URL is set but OS_USERNAME is not")
	case ao.Password == "":
		return nil, errors.New("OS_AUTH_URL is set but OS_PASSWORD is not")
	case ao.Scope.ProjectName == "" && ao.Scope.ProjectID == "":
		return nil, errors.New("OS_AUTH_URL is set but OS_PROJECT_NAME is not: nsnet needs a project-scoped token")
	}
	if ao.Username != "" && ao.DomainName == "" && ao.DomainID == "" {
		ao.DomainName = "Default"
	}
	if ao.Scope.ProjectName != "" && ao.Scope.DomainName == "" && ao.Scope.DomainID == "" {
		ao.Scope.DomainName = "Default"
	}
	return client.NewKeystone(ao, eo, nil), nil
}

func availability(iface string) gophercloud.Availability {
	switch strings.TrimSuffix(iface, "URL") {
	case "internal":
		return gophercloud.AvailabilityInternal
	case "admin":
		return gophercloud.AvailabilityAdmin
	}
	return gophercloud.AvailabilityPublic
}

// waitFlags are --wait and --wait-timeout of commands that write.
type waitFlags struct {
	enabled bool
	timeout time.Duration
}

func addWaitFlags(cmd *cobra.Command, w *waitFlags) {
	cmd.Flags().BoolVar(&w.enabled, "wait", true,
		"answer only once the agent has programmed the change in the kernel (--wait=false to return at once)")
	cmd.Flags().DurationVar(&w.timeout, "wait-timeout", 30*time.Second, "how long --wait waits")
}
