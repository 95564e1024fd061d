package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/nsnet/nsnet/internal/explain"
)

func (a *app) explainCommand() *cobra.Command {
	cmd := groupCommand(&cobra.Command{
		Use:   "explain",
		Short: "Print the ip, sysctl and nft commands that build a router, network or instance by hand",
		Long: `Print, in the order they must run, the ip, sysctl and nft commands that would
build by hand what nsnet built for a router, a network or an instance: the
namespaces, the veth pairs and the bridges they plug into, MACs, MTUs,
addresses, routes, the sysctls nsnet sets, and the nft table with its
chains, maps and elements. Each group of commands starts with a # comment
saying what it is for.

The commands are generated from the live kernel state on this host (read
through netlink inside the namespaces), not from the store, which is only
asked for names: what you read is what is there. Nothing is changed.

Every explanation is self-contained: it starts with the host namespace and
the bridges the object plugs into, so that on a host without them it builds
the object from nothing. Run on the host that nsnet runs on, as root.`,
		Example: `  nsnet explain router r1
  nsnet explain network private
  nsnet explain instance vm1 -o json
  # only the commands, for a script:
  nsnet explain router r1 -o json | jq -r '.steps[].commands[]'`,
	})
	cmd.AddCommand(
		a.explainKindCommand("router", "ROUTER", "a router (name or id): its qrouter- namespace, sysctls, qr- and qg- ports, floating IP addresses, routes and NAT table",
			"  nsnet explain router r1\n  nsnet explain router r1 -o json | jq -r '.steps[].commands[]'",
			(*explain.Explainer).Router),
		a.explainKindCommand("network", "NETWORK", "a network (name or id): its bridge and its instances' ports, with their namespaces and routes; router ports on it are named",
			"  nsnet explain network private",
			(*explain.Explainer).Network),
		a.explainKindCommand("instance", "INSTANCE", "an instance (name or id): its namespace, its ports with the bridges they plug into, and its routes",
			"  nsnet explain instance vm1",
			(*explain.Explainer).Instance),
	)
	return cmd
}

func (a *app) explainKindCommand(kind, arg, what, example string,
	run func(*explain.Explainer, context.Context, string) (explain.Explanation, error)) *cobra.Command {
	var out outputFlag
	cmd := &cobra.Command{
		Use:   kind + " " + arg,
		Short: "Print the commands that build " + kind + " " + arg + " by hand",
		Long: "Print the commands that build " + what + ".\n\n" +
			"The default output is a shell script; -o json (or yaml) gives the same steps as data:\n" +
			"{kind, name, id, steps: [{object, comment, commands: [...]}]}.",
		Example: example,
		Args:    exactArgs(1, "one "+kind+" name or id"),
	}
	addOutputFlag(cmd, &out)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := out.check(cmd); err != nil {
			return err
		}
		c, err := a.client(cmd, waitFlags{})
		if err != nil {
			return err
		}
		x, err := explain.New(cmd.Context(), c)
		if err != nil {
			return err
		}
		e, err := run(x, cmd.Context(), args[0])
		if err != nil {
			return fmt.Errorf("explain %s %s: %w", kind, args[0], err)
		}
		return printExplanation(cmd.OutOrStdout(), out.format, e)
	}
	return cmd
}

func printExplanation(w io.Writer, format string, e explain.Explanation) error {
	if format == formatTable {
		_, err := io.WriteString(w, e.Script())
		return err
	}
	raw, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encode explanation: %w", err)
	}
	return printRaw(w, format, raw)
}
