// Package daemoncmd is the `nsnet daemon` command. It is apart from package
// cli so that the client commands build and test without the daemon's code,
// and so that only cmd/nsnet links the two together.
//
// It owns the daemon's flags and its signal handling. It must not hold
// daemon logic: it fills a daemon.Config and calls daemon.Run.
package daemoncmd

import (
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/nsnet/nsnet/internal/daemon"
)

// flags are the command line of nsnet daemon.
type flags struct {
	stateDir       string
	socket         string
	listen         string
	tokenFile      string
	hostNetns      string
	netnsPrefix    string
	resyncInterval time.Duration
	logLevel       string
}

// New returns the `nsnet daemon` command.
func New() *cobra.Command { return newCommand(&flags{}) }

func newCommand(f *flags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "daemon",
		Short: "Run the nsnet daemon: the API server and the agent that programs this host",
		Long: `Run the nsnet daemon in the foreground. It serves the OpenStack Networking
v2.0 API on a unix socket (mode 0600: root is the admin) and, with --listen,
on TCP for callers that present the token of --token-file. Its agent turns
the stored desired state into kernel objects (namespaces, bridges, veths,
addresses, routes) and repairs drift, every --resync-interval at
the latest.

Desired state lives in <state-dir>/state.db; the kernel holds the rest, so
the daemon can be stopped and started again at any time. SIGINT or SIGTERM
stop it cleanly; the kernel objects stay, and traffic keeps flowing.

Every namespace the agent creates starts with --netns-prefix, so that
several daemons (or tests) on one machine never collide.`,
		Example: `  sudo nsnet daemon
  sudo nsnet daemon --listen 127.0.0.1:9696 --token-file /etc/nsnet/token
  sudo nsnet daemon --state-dir /tmp/nsnet --socket /tmp/nsnet.sock --netns-prefix t1- --log-level debug`,
		Args: cobra.NoArgs,
	}
	fs := cmd.Flags()
	fs.StringVar(&f.stateDir, "state-dir", daemon.DefaultStateDir, "directory of the state database, state.db")
	fs.StringVar(&f.socket, "socket", daemon.DefaultSocket, "unix socket of the API")
	fs.StringVar(&f.listen, "listen", "", "also serve the API on this TCP address, e.g. 127.0.0.1:9696 (needs --token-file)")
	fs.StringVar(&f.tokenFile, "token-file", "", "file holding the admin token that TCP callers send as X-Auth-Token")
	fs.StringVar(&f.hostNetns, "host-netns", "", "named namespace the agent treats as the host (default: the daemon's own)")
	fs.StringVar(&f.netnsPrefix, "netns-prefix", "", "prefix of every namespace name the agent creates")
	fs.DurationVar(&f.resyncInterval, "resync-interval", 30*time.Second, "period of the full convergence pass that backs up event-driven ones")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	_ = cmd.MarkFlagFilename("token-file")
	_ = cmd.MarkFlagDirname("state-dir")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg, err := f.config(os.Stderr)
		if err != nil {
			return err
		}
		ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		go func() {
			// After the first signal, a second one kills at once.
			<-ctx.Done()
			stop()
		}()
		return daemon.Run(ctx, cfg)
	}
	return cmd
}

// config maps the flags to a daemon.Config, logging to logw.
func (f *flags) config(logw *os.File) (daemon.Config, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return daemon.Config{}, fmt.Errorf("--log-level %q: want debug, info, warn or error", f.logLevel)
	}
	if f.resyncInterval <= 0 {
		return daemon.Config{}, fmt.Errorf("--resync-interval %s: must be positive", f.resyncInterval)
	}
	return daemon.Config{
		StateDir:       f.stateDir,
		Socket:         f.socket,
		Listen:         f.listen,
		TokenFile:      f.tokenFile,
		HostNetns:      f.hostNetns,
		NetnsPrefix:    f.netnsPrefix,
		ResyncInterval: f.resyncInterval,
		Logger:         slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: level})),
	}, nil
}
