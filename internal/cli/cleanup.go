package cli

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/nsnet/nsnet/internal/cleanup"
)

func (a *app) cleanupCommand() *cobra.Command {
	var (
		out    outputFlag
		force  bool
		target cleanup.Config
	)
	cmd := &cobra.Command{
		Use:   "cleanup",
		Short: "Remove every kernel object nsnet made on this host, store or no store",
		Long: `Remove every kernel object nsnet made on this host: router, DHCP and
instance namespaces (with their veths), bridges and port veths in the host
namespace, and the host's nft tables (NAT: inet nsnet; security groups:
bridge and inet nsnet_fw). It recognises them by nsnet's own marks (the
marker on a namespace's lo, the nsnet: alias on a link, the table name), not
by the store, so it works when the store is empty or lost; and it never
touches anything without those marks, whatever its name.

Run it with the daemon stopped: a running agent would build everything again
from its store. The store itself is left alone; delete <state-dir>/state.db
to start from nothing. Pass the daemon's --host-netns and --netns-prefix if
it ran with them.`,
		Example: `  sudo nsnet cleanup --dry-run
  sudo nsnet cleanup
  sudo nsnet cleanup --host-netns lab-host --netns-prefix lab- -o json`,
		Args: noArgs,
	}
	addOutputFlag(cmd, &out)
	fs := cmd.Flags()
	fs.StringVar(&target.HostNetns, "host-netns", "", "the daemon's --host-netns (default: this namespace)")
	fs.StringVar(&target.NetnsPrefix, "netns-prefix", "", "the daemon's --netns-prefix")
	fs.BoolVar(&target.DryRun, "dry-run", false, "list what would be removed, remove nothing")
	fs.BoolVar(&force, "force", false, "clean up even though a daemon answers on the API socket")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := out.check(cmd); err != nil {
			return err
		}
		if !force && !target.DryRun && a.daemonAnswers(cmd) {
			return errors.New("a daemon answers on the API socket; stop it first (its agent would rebuild everything), or pass --force")
		}
		objs, err := cleanup.Run(cmd.Context(), target)
		if out.format != formatTable {
			raw, merr := json.Marshal(append([]cleanup.Object{}, objs...))
			if merr != nil {
				return merr
			}
			if perr := printRaw(cmd.OutOrStdout(), out.format, raw); perr != nil {
				return perr
			}
		} else if len(objs) == 0 && err == nil {
			fmt.Fprintln(cmd.OutOrStdout(), "nothing of nsnet's on this host")
		} else if len(objs) > 0 {
			if perr := printTable(cmd.OutOrStdout(), objs, []column[cleanup.Object]{
				{"KIND", func(o cleanup.Object) string { return o.Kind }},
				{"NAME", func(o cleanup.Object) string { return o.Name }},
				{"NAMESPACE", func(o cleanup.Object) string { return o.Namespace }},
				{"MARK", func(o cleanup.Object) string { return o.Mark }},
			}); perr != nil {
				return perr
			}
		}
		return err
	}
	return cmd
}

// daemonAnswers reports whether a daemon answers on the configured API
// endpoint.
func (a *app) daemonAnswers(cmd *cobra.Command) bool {
	c, err := a.client(cmd, waitFlags{})
	if err != nil {
		return false
	}
	_, err = c.Status(cmd.Context())
	return err == nil
}
