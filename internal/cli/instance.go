package cli

import (
	"context"
	"encoding/json"

	"github.com/spf13/cobra"

	"github.com/nsnet/nsnet/internal/client"
	"github.com/nsnet/nsnet/internal/model"
)

func (a *app) instanceCommand() *cobra.Command {
	cmd := groupCommand(&cobra.Command{
		Use:     "instance",
		Aliases: []string{"inst"},
		Short:   "Manage instances: named network namespaces that stand in for VMs",
		Long: `An instance is nsnet's stand-in for a virtual machine: a named network
namespace with lo up: <netns prefix><instance name> for the admin project's
instances, <netns prefix><instance name>@<project id> for other projects'.
Plugging ports into it gives it interfaces; nsnet exec runs commands inside it.

See it with:
  ip netns list
  ip -n <netns> addr`,
	})
	cmd.AddCommand(
		a.instanceCreateCommand(),
		listCommand(a, listSpec[model.Instance]{
			col:     client.Instances,
			long:    "List instances, with their status and namespace.",
			example: "  nsnet instance list\n  nsnet instance list -o yaml",
			columns: func(context.Context, *client.Client, []model.Instance) ([]column[model.Instance], error) {
				return []column[model.Instance]{
					{"ID", func(i model.Instance) string { return i.ID }},
					{"NAME", func(i model.Instance) string { return i.Name }},
					{"STATUS", func(i model.Instance) string { return i.Status }},
					{"NETNS", func(i model.Instance) string { return i.Netns }},
				}, nil
			},
		}),
		showCommand(a, client.Instances, "  nsnet instance show red"),
		a.instanceSetCommand(),
		deleteCommand(a, client.Instances,
			"Delete instances. nsnet removes their namespaces. An instance that still\nhas ports is refused: delete the ports first.",
			"  nsnet instance delete red green blue"),
	)
	return cmd
}

func (a *app) instanceCreateCommand() *cobra.Command {
	var out outputFlag
	var wait waitFlags
	var description string
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create an instance (a named network namespace)",
		Long: `Create an instance: a network namespace named after it, with lo up. The name
is fixed for the instance's life: it is part of the namespace's name. Names
are unique within a project; two projects may each have a red. Plug ports
into it with nsnet port create --device NAME.`,
		Example: `  nsnet instance create red
  nsnet exec red -- ip link`,
		Args: exactArgs(1, "the new instance's name"),
	}
	cmd.Flags().StringVar(&description, "description", "", "free text")
	addOutputFlag(cmd, &out)
	addWaitFlags(cmd, &wait)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := out.check(cmd); err != nil {
			return err
		}
		body := map[string]any{"name": args[0]}
		if cmd.Flags().Changed("description") {
			body["description"] = description
		}
		c, err := a.client(cmd, wait)
		if err != nil {
			return err
		}
		return write(cmd, out, client.Instances, args[0], "created", func() (json.RawMessage, client.Meta, error) {
			return client.Create[json.RawMessage](cmd.Context(), c, client.Instances, body)
		})
	}
	return cmd
}

func (a *app) instanceSetCommand() *cobra.Command {
	var out outputFlag
	var wait waitFlags
	var description string
	cmd := &cobra.Command{
		Use:   "set NAME|ID --description TEXT",
		Short: "Change an instance's description",
		Long: `Change an instance's description. Its name cannot change: it is the name of
the namespace that its processes run in.`,
		Example:           `  nsnet instance set red --description "web server"`,
		Args:              exactArgs(1, "one instance name or id"),
		ValidArgsFunction: a.completeNames(client.Instances, 1),
	}
	cmd.Flags().StringVar(&description, "description", "", "free text")
	addOutputFlag(cmd, &out)
	addWaitFlags(cmd, &wait)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := out.check(cmd); err != nil {
			return err
		}
		if !cmd.Flags().Changed("description") {
			return usageError{cmd, errNothingToSet}
		}
		c, err := a.client(cmd, wait)
		if err != nil {
			return err
		}
		id, err := c.FindID(cmd.Context(), client.Instances, args[0])
		if err != nil {
			return err
		}
		body := map[string]any{"description": description}
		return write(cmd, out, client.Instances, args[0], "updated", func() (json.RawMessage, client.Meta, error) {
			return client.Update[json.RawMessage](cmd.Context(), c, client.Instances, id, body)
		})
	}
	return cmd
}
