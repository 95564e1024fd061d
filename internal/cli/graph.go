package cli

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/nsnet/nsnet/internal/topoview"
	"github.com/nsnet/nsnet/internal/ui"
)

func (a *app) graphCommand() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "graph",
		Short: "Print the topology as a tree, a Graphviz graph, JSON or SVG",
		Long: `Print the topology you can see — external networks, routers and floating IPs,
networks with their subnets, instances and DHCP servers, each port with its
addresses — as the web view (/ui/) draws it: the same graph, from the same
code. Each object carries its status, and its error reason when it has one;
ports carry their security-group drop counters.

Formats:
  tree  for a terminal: each external network, the routers behind it, the
        networks behind them and what is plugged into those (the default)
  dot   for Graphviz, tiers as ranks: nsnet graph -o dot | dot -Tsvg > t.svg
  json  the graph's nodes and edges, for scripts
  svg   the web view's picture, without its page

As everywhere, a member sees their project's objects and the shared and
external networks.`,
		Example: `  nsnet graph
  nsnet graph -o dot | dot -Tpng > topology.png
  nsnet graph -o json | jq -r '.nodes[] | select(.status == "ERROR") | .id + " " + .reason'`,
		Args: noArgs,
	}
	cmd.Flags().StringVarP(&format, "output", "o", "tree", "output format: tree, dot, json or svg")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(
		[]string{"tree", "dot", "json", "svg"}, cobra.ShellCompDirectiveNoFileComp))
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		switch format {
		case "tree", "dot", "json", "svg":
		default:
			return usagef(cmd, "unknown output format %q; use tree, dot, json or svg", format)
		}
		c, err := a.client(cmd, waitFlags{})
		if err != nil {
			return err
		}
		recs, err := ui.LoadRecords(cmd.Context(), c)
		if err != nil {
			return err
		}
		return printGraph(cmd.OutOrStdout(), format, topoview.Build(recs))
	}
	return cmd
}

func printGraph(w io.Writer, format string, g topoview.Graph) error {
	switch format {
	case "dot":
		_, err := io.WriteString(w, g.DOT())
		return err
	case "svg":
		_, err := io.WriteString(w, topoview.Place(g).SVG()+"\n")
		return err
	case "json":
		raw, err := json.MarshalIndent(g, "", "  ")
		if err != nil {
			return fmt.Errorf("encode graph: %w", err)
		}
		_, err = fmt.Fprintf(w, "%s\n", raw)
		return err
	}
	_, err := io.WriteString(w, g.Tree())
	return err
}
