package cli

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/nsnet/nsnet/internal/client"
	"github.com/nsnet/nsnet/internal/model"
	"github.com/nsnet/nsnet/internal/netns"
)

// Exit codes of nsnet exec when the command never ran, as env(1) and
// chroot(1) use them.
const (
	exitCannotStart = 125
	exitNotRunnable = 126
	exitNotFound    = 127
	netnsExecName   = "__netns-exec"
)

func (a *app) execCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "exec INSTANCE -- COMMAND [ARG...]",
		Short: "Run a command inside an instance's network namespace",
		Long: `Run a command inside an instance, as ip netns exec would: in the instance's
network namespace, with /etc/netns/<netns>/* (if any) mounted over /etc and
a /sys that shows the instance's interfaces. nsnet exits with the command's
exit code; 125 if it could not enter the instance, 126 if the command cannot
be executed, 127 if it is not found.

It needs root (entering a namespace needs CAP_SYS_ADMIN), and the instance
must be on this host.`,
		Example: `  nsnet exec red -- ip addr
  nsnet exec red -- ping -c 1 192.168.24.11
  nsnet exec red -- sh -c 'ss -tlnp; ip route'`,
		Args: minArgs(2, "an instance and a command: INSTANCE -- COMMAND [ARG...]"),
		ValidArgsFunction: func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
			if len(args) == 0 {
				return a.names(cmd, client.Instances, toComplete, nil), cobra.ShellCompDirectiveNoFileComp
			}
			return nil, cobra.ShellCompDirectiveDefault // the command's own words
		},
	}
	// Everything after the instance belongs to the command, flags included:
	// nsnet exec red ping -c 1 must not read -c as its own.
	cmd.Flags().SetInterspersed(false)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		argv := args[1:]
		if argv[0] == "--" {
			argv = argv[1:]
		}
		if len(argv) == 0 {
			return usagef(cmd, "no command given: nsnet exec %s -- COMMAND [ARG...]", args[0])
		}
		c, err := a.client(cmd, waitFlags{})
		if err != nil {
			return err
		}
		inst, err := client.Find[model.Instance](cmd.Context(), c, client.Instances, args[0])
		if err != nil {
			return exitError{exitCannotStart, err}
		}
		if err := checkNetns(inst); err != nil {
			return exitError{exitCannotStart, err}
		}
		return exitError{exitCannotStart, reexecInNetns(inst.Netns, argv)}
	}
	return cmd
}

// checkNetns explains an instance whose namespace is not on this host
// before the helper would fail with a bare "no such file".
func checkNetns(inst model.Instance) error {
	if inst.Netns == "" {
		return fmt.Errorf("instance %s has no namespace (status %s)", inst.Name, inst.Status)
	}
	if _, err := os.Stat(filepath.Join("/run/netns", inst.Netns)); errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("instance %s has no namespace %s on this host (status %s)", inst.Name, inst.Netns, inst.Status)
	}
	return nil
}

// reexecInNetns replaces this process with nsnet's own hidden helper,
// which enters the namespace and executes argv. A fresh process does it,
// rather than this one, because this one has run an HTTP client on many
// threads, and setns and unshare act on one thread only: in the helper,
// the switch happens on a locked thread right before execve, with nothing
// else running. Replacing (not forking) keeps the terminal, signals and the
// exit code the command's own.
func reexecInNetns(name string, argv []string) error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find the nsnet binary to re-execute: %w", err)
	}
	args := append([]string{os.Args[0], netnsExecName, name, "--"}, argv...)
	if err := syscall.Exec(self, args, os.Environ()); err != nil {
		return fmt.Errorf("re-execute %s: %w", self, err)
	}
	return nil // not reached
}

// netnsExecCommand is the hidden helper: nsnet __netns-exec NETNS -- CMD….
// It is an implementation detail of nsnet exec, not an interface.
func netnsExecCommand() *cobra.Command {
	return &cobra.Command{
		Use:                netnsExecName + " NETNS -- COMMAND [ARG...]",
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) < 3 || args[1] != "--" {
				return exitError{exitCannotStart, errors.New("usage: nsnet " + netnsExecName + " NETNS -- COMMAND [ARG...]")}
			}
			err := netns.ExecInNamed(args[0], args[2:], os.Environ())
			return exitError{execExitCode(err), err}
		},
	}
}

// execExitCode maps a failure of netns.ExecInNamed to nsnet exec's codes.
func execExitCode(err error) int {
	var ee *exec.Error
	switch {
	case errors.As(err, &ee) && errors.Is(ee.Err, exec.ErrNotFound):
		return exitNotFound
	case errors.As(err, &ee):
		return exitNotRunnable
	}
	return exitCannotStart
}
