package cli

import (
	"errors"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/nsnet/nsnet/internal/client"
)

// Environment variables that stand in for connection flags.
const (
	envEndpoint = "NSNET_ENDPOINT"
	envToken    = "NSNET_TOKEN"
)

// connFlags say how to reach the API. They are resolved in one place,
// config, so that other ways to authenticate (OS_CLOUD and clouds.yaml, a
// Keystone password) slot in there as further sources of an endpoint and a
// client.TokenSource, without any command changing.
type connFlags struct {
	endpoint string
	token    string
	socket   string
	debug    bool
}

func (a *app) addConnectionFlags(root *cobra.Command) {
	f := root.PersistentFlags()
	f.StringVar(&a.conn.endpoint, "endpoint", "",
		"API URL for TCP, e.g. http://127.0.0.1:9696 (default $"+envEndpoint+", else the unix socket)")
	f.StringVar(&a.conn.token, "token", "", "token sent as X-Auth-Token (default $"+envToken+")")
	f.StringVar(&a.conn.socket, "socket", client.DefaultSocket, "the daemon's unix socket, used when no endpoint is set")
	f.BoolVar(&a.conn.debug, "debug", false, "log each API request to stderr")
}

// config resolves the flags, then the environment, into a client.Config.
// A flag beats its variable; an explicit --socket beats $NSNET_ENDPOINT.
func (c *connFlags) config(cmd *cobra.Command, getenv func(string) string) (client.Config, error) {
	changed := func(name string) bool {
		f := cmd.Flags().Lookup(name)
		return f != nil && f.Changed
	}
	cfg := client.Config{Endpoint: c.endpoint, Socket: c.socket, UserAgent: "nsnet-cli"}
	switch {
	case changed("endpoint") && changed("socket"):
		return cfg, errors.New("use --endpoint or --socket, not both")
	case !changed("endpoint") && !changed("socket"):
		cfg.Endpoint = getenv(envEndpoint)
	}
	token := c.token
	if !changed("token") {
		token = getenv(envToken)
	}
	if token != "" {
		cfg.Auth = client.StaticToken(token)
	}
	if c.debug {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return cfg, nil
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
