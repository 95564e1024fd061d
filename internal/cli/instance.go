package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"

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
			long:    "List instances, with their status, addresses and namespace.",
			example: "  nsnet instance list\n  nsnet instance list -o yaml",
			columns: func(ctx context.Context, c *client.Client, _ []model.Instance) ([]column[model.Instance], error) {
				addrs, err := addressesOf(ctx, c)
				if err != nil {
					return nil, err
				}
				return []column[model.Instance]{
					{"ID", func(i model.Instance) string { return i.ID }},
					{"NAME", func(i model.Instance) string { return i.Name }},
					{"STATUS", func(i model.Instance) string { return i.Status }},
					{"ADDRESSES", func(i model.Instance) string { return strings.Join(addrs[i.ID], ", ") }},
					{"NETNS", func(i model.Instance) string { return i.Netns }},
					{"HOST", func(i model.Instance) string { return i.Host }},
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
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create an instance (a named network namespace)",
		Long: `Create an instance: a network namespace named after it, with lo up. The name
is fixed for the instance's life: it is part of the namespace's name. Names
are unique within a project; two projects may each have a red. Plug ports
into it with nsnet port create --device NAME.

With several hosts (nsnet daemon --host, --roles), an instance runs on one
compute host for its life: the one --host names (admin only; it must be
alive and not drained), or else the least loaded alive compute host. Its
ports are bound there (binding:host_id).`,
		Example: `  nsnet instance create red
  nsnet exec red -- ip link
  nsnet instance create web --user-data cloud-init.yaml --property role=web --ssh-key ~/.ssh/id_ed25519.pub
  nsnet exec web -- curl -s http://169.254.169.254/openstack/latest/meta_data.json
  nsnet instance create vm1 --host host-a`,
		Args: exactArgs(1, "the new instance's name"),
	}
	var meta metadataFlags
	addInstanceCreateFlags(cmd, &meta)
	addOutputFlag(cmd, &out)
	addWaitFlags(cmd, &wait)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := out.check(cmd); err != nil {
			return err
		}
		body, err := instanceCreateBody(cmd, &meta, args[0])
		if err != nil {
			return err
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

// addInstanceCreateFlags adds the flags of an instance's body.
func addInstanceCreateFlags(cmd *cobra.Command, meta *metadataFlags) {
	meta.add(cmd)
	cmd.Flags().String("description", "", "free text")
	cmd.Flags().String("host", "", "the compute host to run on (admin); default: the least loaded alive compute host")
}

// instanceCreateBody is the body of an instance create from the flags of
// addInstanceCreateFlags.
func instanceCreateBody(cmd *cobra.Command, meta *metadataFlags, name string) (map[string]any, error) {
	body := map[string]any{"name": name}
	for _, f := range []string{"description", "host"} {
		if cmd.Flags().Changed(f) {
			v, _ := cmd.Flags().GetString(f)
			if f == "host" && v == "" {
				return nil, fmt.Errorf("--host: give a host name, or leave the flag out for the scheduler to choose")
			}
			body[f] = v
		}
	}
	if err := meta.put(cmd, body); err != nil {
		return nil, err
	}
	return body, nil
}

func (a *app) instanceSetCommand() *cobra.Command {
	var out outputFlag
	var wait waitFlags
	var description string
	cmd := &cobra.Command{
		Use:   "set NAME|ID [--description TEXT] [--user-data FILE] [--property K=V] [--ssh-key FILE]",
		Short: "Change an instance's description or metadata",
		Long: `Change an instance's description, or what the metadata service at
169.254.169.254 gives it (user data, properties, SSH keys; each given flag
replaces the whole field). Its name cannot change: it is the name of the
namespace that its processes run in.`,
		Example: `  nsnet instance set red --description "web server"
  nsnet instance set red --property role=db --property tier=2
  nsnet instance set red --user-data /dev/null`,
		Args:              exactArgs(1, "one instance name or id"),
		ValidArgsFunction: a.completeNames(client.Instances, 1),
	}
	var meta metadataFlags
	meta.add(cmd)
	cmd.Flags().StringVar(&description, "description", "", "free text")
	addOutputFlag(cmd, &out)
	addWaitFlags(cmd, &wait)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := out.check(cmd); err != nil {
			return err
		}
		body := map[string]any{}
		if cmd.Flags().Changed("description") {
			body["description"] = description
		}
		if err := meta.put(cmd, body); err != nil {
			return err
		}
		if len(body) == 0 {
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
		return write(cmd, out, client.Instances, args[0], "updated", func() (json.RawMessage, client.Meta, error) {
			return client.Update[json.RawMessage](cmd.Context(), c, client.Instances, id, body)
		})
	}
	return cmd
}

// metadataFlags are what the metadata service gives an instance.
type metadataFlags struct {
	userData   string
	properties []string
	sshKeys    []string
}

func (f *metadataFlags) add(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringVar(&f.userData, "user-data", "", "file whose content the instance reads at /openstack/latest/user_data")
	fs.StringArrayVar(&f.properties, "property", nil, "KEY=VALUE in the instance's metadata \"meta\" (repeat for several)")
	fs.StringArrayVar(&f.sshKeys, "ssh-key", nil, "file holding an SSH public key for the instance (repeat for several)")
	_ = cmd.MarkFlagFilename("user-data")
	_ = cmd.MarkFlagFilename("ssh-key")
}

// put adds the given flags to body.
func (f *metadataFlags) put(cmd *cobra.Command, body map[string]any) error {
	changed := cmd.Flags().Changed
	if changed("user-data") {
		b, err := os.ReadFile(f.userData)
		if err != nil {
			return fmt.Errorf("--user-data: %w", err)
		}
		body["user_data"] = string(b)
	}
	if changed("property") {
		meta := map[string]string{}
		for _, p := range f.properties {
			k, v, ok := strings.Cut(p, "=")
			if !ok || k == "" {
				return usagef(cmd, "--property %q: want KEY=VALUE", p)
			}
			meta[k] = v
		}
		body["meta"] = meta
	}
	if changed("ssh-key") {
		keys := []string{}
		for _, file := range f.sshKeys {
			b, err := os.ReadFile(file)
			if err != nil {
				return fmt.Errorf("--ssh-key: %w", err)
			}
			keys = append(keys, strings.TrimSpace(string(b)))
		}
		body["ssh_keys"] = keys
	}
	return nil
}
