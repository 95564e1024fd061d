// Package cli is nsnet's command line: cobra commands over package client
// (networks, subnets, ports, instances, status), over package topology
// (apply, destroy), and `nsnet exec`, which runs a command inside an
// instance.
//
// It owns flags, help text, name resolution for the user's arguments,
// output formats and exit codes. It must not speak HTTP itself (package
// client does) nor hold daemon code: `nsnet daemon` lives in the
// daemoncmd subpackage, which only cmd/nsnet links, so that this package
// builds and tests without the server.
//
// Exit codes: 0 success, 1 failure, 2 bad usage; `nsnet exec` exits with
// the command's code, or 125 when nsnet could not start it, 126 when it
// is not executable and 127 when it is not found (like env and chroot).
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/nsnet/nsnet/internal/client"
)

// Command groups of `nsnet --help`.
const (
	groupResources = "resources"
	groupTopology  = "topology"
	groupHost      = "host"
)

// NewRootCommand builds the nsnet command tree. daemon, the `nsnet daemon`
// command, is passed in by cmd/nsnet (see package daemoncmd); nil leaves
// it out.
func NewRootCommand(daemon *cobra.Command) *cobra.Command {
	return newRootCommand(&app{getenv: os.Getenv}, daemon)
}

func newRootCommand(app *app, daemon *cobra.Command) *cobra.Command {
	root := &cobra.Command{
		Use:   "nsnet",
		Short: "Network-as-a-service for Linux hosts, on plain kernel objects",
		Long: `nsnet gives a Linux host the networking half of a cloud, in the model that
OpenStack Neutron made familiar: networks, subnets, ports, routers, floating
IPs, security groups. Every object it makes is a plain kernel object that
you can inspect with ip, nft and tcpdump: a network is a Linux bridge, an
instance is a network namespace, a port is a veth pair.

The daemon (nsnet daemon) serves the OpenStack Networking v2.0 API and
programs the kernel. Every other command is a client of that API, over the
daemon's unix socket (root only) or over TCP with a token.`,
		Example: `  # Start the daemon (as root), then build a small network.
  nsnet daemon &
  nsnet network create blue-net
  nsnet subnet create blue-v4 --network blue-net --subnet-range 192.168.24.0/24
  nsnet instance create red
  nsnet port create red-eth0 --network blue-net --device red
  nsnet exec red -- ip addr

  # Or declare it all in a file.
  nsnet apply -f examples/seed-bridge.yaml`,
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError{c, err} })
	app.addConnectionFlags(root)

	root.AddGroup(
		&cobra.Group{ID: groupResources, Title: "Resources:"},
		&cobra.Group{ID: groupTopology, Title: "Topologies:"},
		&cobra.Group{ID: groupHost, Title: "Host and daemon:"},
	)
	for _, c := range []*cobra.Command{
		app.networkCommand(), app.subnetCommand(), app.portCommand(), app.instanceCommand(),
		app.routerCommand(), app.floatingCommand(), app.publishedPortCommand(), app.securityGroupCommand(), app.quotaCommand(),
	} {
		c.GroupID = groupResources
		root.AddCommand(c)
	}
	for _, c := range []*cobra.Command{app.applyCommand(), app.destroyCommand(), app.graphCommand()} {
		c.GroupID = groupTopology
		root.AddCommand(c)
	}
	hostCmds := []*cobra.Command{app.execCommand(), app.explainCommand(), app.captureCommand(), app.traceCommand(), app.statusCommand(), app.cleanupCommand()}
	if daemon != nil {
		hostCmds = append(hostCmds, daemon)
	}
	for _, c := range hostCmds {
		c.GroupID = groupHost
		root.AddCommand(c)
	}
	root.AddCommand(netnsExecCommand())
	root.SetCompletionCommandGroupID(groupHost)
	root.SetHelpCommandGroupID(groupHost)
	return root
}

// app is what every command shares: how to reach the API.
type app struct {
	conn   connFlags
	getenv func(string) string
}

// client returns an API client configured from the flags and environment.
// wait is how long writes ask the server to wait for the agent, 0 for not
// at all.
func (a *app) client(cmd *cobra.Command, wait waitFlags) (*client.Client, error) {
	conn, err := a.conn.config(cmd, a.getenv)
	if err != nil {
		return nil, usageError{cmd, err}
	}
	cfg := conn.Config
	if wait.enabled {
		cfg.Wait = wait.timeout
	}
	if conn.keystone != nil && cfg.Endpoint == "" {
		ctx := cmd.Context()
		if ctx == nil {
			ctx = context.Background()
		}
		if cfg.Endpoint, err = conn.keystone.NetworkEndpoint(ctx); err != nil {
			return nil, err
		}
	}
	return client.New(cfg)
}

// Execute runs root with the process's arguments and returns the exit
// code, having written any error to stderr as "nsnet: message".
func Execute(ctx context.Context, root *cobra.Command) int {
	return run(ctx, root, os.Args[1:], os.Stderr)
}

func run(ctx context.Context, root *cobra.Command, args []string, stderr io.Writer) int {
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return 0
	}
	var exit exitError
	if errors.As(err, &exit) {
		if exit.err != nil {
			fmt.Fprintf(stderr, "nsnet: %s\n", exit.err)
		}
		return exit.code
	}
	fmt.Fprintf(stderr, "nsnet: %s\n", message(err))
	var usage usageError
	if errors.As(err, &usage) || isCobraUsage(err) {
		path := root.CommandPath()
		switch {
		case usage.cmd != nil:
			path = usage.cmd.CommandPath()
		case cmd != nil:
			path = cmd.CommandPath()
		}
		fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", path)
		return 2
	}
	return 1
}

// isCobraUsage recognises the usage errors cobra makes itself, which are
// plain errors.
func isCobraUsage(err error) bool {
	msg := err.Error()
	return strings.HasPrefix(msg, "unknown command") || strings.HasPrefix(msg, "required flag") ||
		strings.HasPrefix(msg, "if any flags in the group")
}

// message renders err for a person, adding the hint an API error needs.
func message(err error) string {
	msg := err.Error()
	if e, ok := client.AsError(err); ok && e.StatusCode == 401 {
		msg += " (pass --token or set NSNET_TOKEN, or OS_CLOUD or OS_AUTH_URL… for a Keystone login)"
	}
	return msg
}

// usageError is a mistake in how a command was called; it exits 2.
type usageError struct {
	cmd *cobra.Command
	err error
}

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(cmd *cobra.Command, format string, args ...any) error {
	return usageError{cmd, fmt.Errorf(format, args...)}
}

// exitError ends nsnet with a given code; err, when set, is printed.
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

// Argument validators that report bad usage as such.

func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usagef(cmd, "%s takes %s, got %d argument(s)", cmd.CommandPath(), what, len(args))
		}
		return nil
	}
}

func minArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < n {
			return usagef(cmd, "%s takes %s", cmd.CommandPath(), what)
		}
		return nil
	}
}

func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef(cmd, "%s takes no arguments, got %q", cmd.CommandPath(), args[0])
	}
	return nil
}

// groupCommand is a command that only holds subcommands: alone it shows
// its help, and an unknown subcommand is an error rather than the help.
func groupCommand(cmd *cobra.Command) *cobra.Command {
	cmd.Args = cobra.ArbitraryArgs
	cmd.SuggestionsMinimumDistance = 2
	cmd.RunE = func(c *cobra.Command, args []string) error {
		if len(args) == 0 {
			return c.Help()
		}
		msg := fmt.Sprintf("unknown command %q for %q", args[0], c.CommandPath())
		if s := c.SuggestionsFor(args[0]); len(s) > 0 {
			msg += "; did you mean " + strings.Join(s, " or ") + "?"
		}
		return usageError{c, errors.New(msg)}
	}
	return cmd
}
