package cli

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/nsnet/nsnet/internal/cleanup"
	"github.com/nsnet/nsnet/internal/hostlock"
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
from its store. It refuses while a daemon programs the host namespace (it
holds the host's lock), naming its pid, unless --force. The store itself is
left alone; delete <state-dir>/state.db to start from nothing. Pass the
daemon's --host-netns and --netns-prefix if it ran with them.`,
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
	fs.BoolVar(&force, "force", false, "clean up even though a daemon programs this host")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := out.check(cmd); err != nil {
			return err
		}
		if !force && !target.DryRun {
			lock, err := hostlock.Acquire(hostlock.Dir, target.HostNetns)
			if err != nil {
				return fmt.Errorf("%w; stop it first (its agent would rebuild everything), or pass --force", err)
			}
			defer lock.Release()
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
