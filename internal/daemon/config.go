// Package daemon wires one nsnet daemon together: the store, the API server on
// its listeners, and the agent that programs this host.
//
// It owns process lifetime (listeners, signals, shutdown order). It must not
// hold API or dataplane logic of its own.
package daemon

import (
	"log/slog"
	"time"
)

// Defaults for a daemon started with no flags.
const (
	DefaultStateDir = "/var/lib/nsnet"
	DefaultSocket   = "/run/nsnet/nsnet.sock"
)

// Config is everything `nsnet daemon` takes.
type Config struct {
	// StateDir holds the store file, state.db.
	StateDir string
	// Socket is the unix socket path of the API (mode 0600, admin).
	Socket string
	// Listen is an optional TCP address for the API, e.g. 127.0.0.1:9696.
	// It requires TokenFile.
	Listen string
	// TokenFile holds the admin token that TCP requests must present in
	// X-Auth-Token.
	TokenFile string
	// HostNetns names the namespace the agent treats as the host; empty
	// means the namespace the daemon runs in.
	HostNetns string
	// NetnsPrefix starts the name of every namespace the agent creates.
	NetnsPrefix string
	// ResyncInterval is the period of the full convergence pass that
	// backs up event-driven passes.
	ResyncInterval time.Duration
	Logger         *slog.Logger
}
