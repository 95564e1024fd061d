package cli

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/nsnet/nsnet/internal/client"
	"github.com/nsnet/nsnet/internal/model"
)

// conntrackHelperCommand is `router conntrack-helper …`.
func (a *app) conntrackHelperCommand() *cobra.Command {
	cmd := groupCommand(&cobra.Command{
		Use:   "conntrack-helper",
		Short: "Manage a router's conntrack helpers (ftp, tftp, sip…)",
		Long: `A conntrack helper makes the router's connection tracking read a protocol's
payload for the connections it negotiates — FTP's data connections, TFTP's
transfers, SIP's media — and, through NAT, rewrite the addresses in it. New
connections of --protocol to --port through the router get --helper. Each is
one element of the nft map conntrack_helpers in the router's table.

See them with:
  ip netns exec qrouter-<router id> nft list map inet nsnet conntrack_helpers`,
		Example: "  nsnet router conntrack-helper create r1 --helper ftp --protocol tcp --port 21",
	})
	cmd.AddCommand(a.conntrackHelperCreateCommand(), a.conntrackHelperListCommand(), a.conntrackHelperDeleteCommand())
	return cmd
}

// helpersOf connects and resolves ref, a router's name or id, to the
// collection of its conntrack helpers.
func (a *app) helpersOf(cmd *cobra.Command, wait waitFlags, ref string) (*client.Client, client.Collection, error) {
	c, err := a.client(cmd, wait)
	if err != nil {
		return nil, "", err
	}
	id, err := c.FindID(cmd.Context(), client.Routers, ref)
	if err != nil {
		return nil, "", err
	}
	return c, client.ConntrackHelpers(id), nil
}

func (a *app) conntrackHelperCreateCommand() *cobra.Command {
	var helper, protocol string
	var port int
	var out outputFlag
	var wait waitFlags
	cmd := &cobra.Command{
		Use:     "create ROUTER",
		Short:   "Give new connections of a protocol and port a conntrack helper",
		Example: "  nsnet router conntrack-helper create r1 --helper tftp --protocol udp --port 69",
		Args:    exactArgs(1, "one router name or id"),
	}
	fs := cmd.Flags()
	fs.StringVar(&helper, "helper", "", "the helper: amanda, ftp, h323, irc, netbios-ns, pptp, sane, sip, snmp or tftp (required)")
	fs.StringVar(&protocol, "protocol", "", "tcp or udp, as the helper serves (required)")
	fs.IntVar(&port, "port", 0, "the destination port of the connections (required)")
	for _, f := range []string{"helper", "protocol", "port"} {
		_ = cmd.MarkFlagRequired(f)
	}
	addOutputFlag(cmd, &out)
	addWaitFlags(cmd, &wait)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := out.check(cmd); err != nil {
			return err
		}
		c, col, err := a.helpersOf(cmd, wait, args[0])
		if err != nil {
			return err
		}
		body := map[string]any{"helper": helper, "protocol": protocol, "port": port}
		return write(cmd, out, col, args[0], "created", func() (json.RawMessage, client.Meta, error) {
			return client.Create[json.RawMessage](cmd.Context(), c, col, body)
		})
	}
	return cmd
}

func (a *app) conntrackHelperListCommand() *cobra.Command {
	var out outputFlag
	cmd := &cobra.Command{
		Use:     "list ROUTER",
		Aliases: []string{"ls"},
		Short:   "List the conntrack helpers of a router",
		Example: "  nsnet router conntrack-helper list r1",
		Args:    exactArgs(1, "one router name or id"),
	}
	addOutputFlag(cmd, &out)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := out.check(cmd); err != nil {
			return err
		}
		c, col, err := a.helpersOf(cmd, waitFlags{}, args[0])
		if err != nil {
			return err
		}
		raws, err := client.List[json.RawMessage](cmd.Context(), c, col, url.Values{})
		if err != nil {
			return err
		}
		if out.format != formatTable {
			return printRawList(cmd.OutOrStdout(), out.format, raws)
		}
		items, err := decodeList[model.ConntrackHelper](raws, "conntrack helper")
		if err != nil {
			return err
		}
		return printTable(cmd.OutOrStdout(), items, []column[model.ConntrackHelper]{
			{"ID", func(h model.ConntrackHelper) string { return h.ID }},
			{"HELPER", func(h model.ConntrackHelper) string { return h.Helper }},
			{"PROTOCOL", func(h model.ConntrackHelper) string { return h.Protocol }},
			{"PORT", func(h model.ConntrackHelper) string { return strconv.Itoa(h.Port) }},
		})
	}
	return cmd
}

func (a *app) conntrackHelperDeleteCommand() *cobra.Command {
	var wait waitFlags
	cmd := &cobra.Command{
		Use:     "delete ROUTER ID...",
		Aliases: []string{"rm"},
		Short:   "Delete conntrack helpers of a router",
		Example: "  nsnet router conntrack-helper delete r1 0f3c…",
		Args:    minArgs(2, "a router and one or more conntrack helper ids"),
	}
	addWaitFlags(cmd, &wait)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		c, col, err := a.helpersOf(cmd, wait, args[0])
		if err != nil {
			return err
		}
		var failed []string
		for _, id := range args[1:] {
			meta, err := c.Delete(cmd.Context(), col, id)
			if err != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "nsnet: %s\n", message(err))
				failed = append(failed, id)
				continue
			}
			warnUnprogrammed(cmd, col, id, "deleted", meta, nil)
		}
		if len(failed) > 0 {
			return exitError{code: 1, err: fmt.Errorf("failed to delete %d of %d conntrack helpers: %s",
				len(failed), len(args)-1, strings.Join(failed, ", "))}
		}
		return nil
	}
	return cmd
}
