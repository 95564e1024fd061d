package cli

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/nsnet/nsnet/internal/client"
)

// quotaResources are the resources of a quota, in the order shown, with the
// flag of `quota set` that sets each.
var quotaResources = []struct{ resource, flag string }{
	{"network", "networks"},
	{"subnet", "subnets"},
	{"port", "ports"},
	{"router", "routers"},
	{"floatingip", "floating-ips"},
	{"security_group", "secgroups"},
	{"security_group_rule", "secgroup-rules"},
	{"rbac_policy", "rbac-policies"},
}

func (a *app) quotaCommand() *cobra.Command {
	cmd := groupCommand(&cobra.Command{
		Use:   "quota",
		Short: "Show and set per-project quotas",
		Long: `A quota limits how many of each resource a project may have. Creating past
it is refused (409 OverQuota) and changes nothing. Every project has the
daemon's defaults (nsnet daemon --default-quota) until an admin sets its
own; -1 means unlimited.`,
	})
	cmd.AddCommand(a.quotaShowCommand(), a.quotaSetCommand(), a.quotaResetCommand())
	return cmd
}

func (a *app) quotaShowCommand() *cobra.Command {
	var out outputFlag
	var detail, defaults bool
	cmd := &cobra.Command{
		Use:   "show [PROJECT]",
		Short: "Show a project's quota (default: your own project's)",
		Long: `Show a project's quota limits; with --detail, also how much of each it uses.
PROJECT is a project id; without it, the project of your token (the unix
socket is the admin project, "admin"). Only an admin may look at another
project's quota.`,
		Example: `  nsnet quota show
  nsnet quota show alpha --detail
  nsnet quota show alpha --default -o json`,
		Args: cobra.MaximumNArgs(1),
	}
	addOutputFlag(cmd, &out)
	cmd.Flags().BoolVar(&detail, "detail", false, "also show what the project uses")
	cmd.Flags().BoolVar(&defaults, "default", false, "show the default limits instead")
	cmd.MarkFlagsMutuallyExclusive("detail", "default")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := out.check(cmd); err != nil {
			return err
		}
		c, err := a.client(cmd, waitFlags{})
		if err != nil {
			return err
		}
		ctx := cmd.Context()
		project, err := quotaProject(cmd, c, args)
		if err != nil {
			return err
		}
		var v any
		switch {
		case detail:
			v, err = c.QuotaDetails(ctx, project)
		case defaults:
			v, err = c.DefaultQuota(ctx, project)
		default:
			v, err = c.Quota(ctx, project)
		}
		if err != nil {
			return err
		}
		if out.format != formatTable {
			raw, err := json.Marshal(v)
			if err != nil {
				return err
			}
			return printRaw(cmd.OutOrStdout(), out.format, raw)
		}
		return printQuota(cmd, v)
	}
	return cmd
}

func quotaProject(cmd *cobra.Command, c *client.Client, args []string) (string, error) {
	if len(args) == 1 {
		return args[0], nil
	}
	return c.Project(cmd.Context())
}

// printQuota prints one row per resource, in quotaResources order, then
// any resource the server has that this CLI does not know.
func printQuota(cmd *cobra.Command, v any) error {
	w := cmd.OutOrStdout()
	switch q := v.(type) {
	case map[string]client.QuotaDetail:
		rows := [][]string{}
		for _, r := range orderedResources(keys(q)) {
			d := q[r]
			rows = append(rows, []string{r, strconv.Itoa(d.Limit), strconv.Itoa(d.Used), strconv.Itoa(d.Reserved)})
		}
		return printTable(w, rows, rowColumns("RESOURCE", "LIMIT", "USED", "RESERVED"))
	case map[string]int:
		rows := [][]string{}
		for _, r := range orderedResources(keys(q)) {
			rows = append(rows, []string{r, strconv.Itoa(q[r])})
		}
		return printTable(w, rows, rowColumns("RESOURCE", "LIMIT"))
	}
	return fmt.Errorf("unexpected quota %T", v)
}

func rowColumns(names ...string) []column[[]string] {
	cols := make([]column[[]string], len(names))
	for i, n := range names {
		cols[i] = column[[]string]{n, func(row []string) string { return row[i] }}
	}
	return cols
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func orderedResources(have []string) []string {
	rank := map[string]int{}
	for i, r := range quotaResources {
		rank[r.resource] = i
	}
	sort.Slice(have, func(i, j int) bool {
		ri, okI := rank[have[i]]
		rj, okJ := rank[have[j]]
		switch {
		case okI && okJ:
			return ri < rj
		case okI != okJ:
			return okI
		}
		return have[i] < have[j]
	})
	return have
}

func (a *app) quotaSetCommand() *cobra.Command {
	var out outputFlag
	var checkLimit bool
	limits := make([]int, len(quotaResources))
	cmd := &cobra.Command{
		Use:   "set PROJECT",
		Short: "Set some of a project's quota limits (admin)",
		Long: `Set the named limits of a project's quota; the others stay as they are.
-1 means unlimited. Lowering a limit below what the project uses is allowed
(it only stops new creates) unless --check-limit is given.`,
		Example: `  nsnet quota set alpha --networks 10 --ports 50
  nsnet quota set alpha --routers -1
  nsnet quota set alpha --subnets 2 --check-limit`,
		Args: exactArgs(1, "a project id"),
	}
	addOutputFlag(cmd, &out)
	for i, r := range quotaResources {
		cmd.Flags().IntVar(&limits[i], r.flag, 0, "limit of "+plural(strings.ReplaceAll(r.resource, "_", " ")))
	}
	cmd.Flags().BoolVar(&checkLimit, "check-limit", false, "refuse a limit below the project's current use")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := out.check(cmd); err != nil {
			return err
		}
		set := map[string]int{}
		for i, r := range quotaResources {
			if cmd.Flags().Changed(r.flag) {
				set[r.resource] = limits[i]
			}
		}
		if len(set) == 0 {
			return usageError{cmd, errNothingToSet}
		}
		c, err := a.client(cmd, waitFlags{})
		if err != nil {
			return err
		}
		q, err := c.SetQuota(cmd.Context(), args[0], set, checkLimit)
		if err != nil {
			return err
		}
		if out.format != formatTable {
			raw, err := json.Marshal(q)
			if err != nil {
				return err
			}
			return printRaw(cmd.OutOrStdout(), out.format, raw)
		}
		return printQuota(cmd, q)
	}
	return cmd
}

func (a *app) quotaResetCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "reset PROJECT",
		Aliases: []string{"delete"},
		Short:   "Return a project to the default quota (admin)",
		Long: `Forget a project's own quota limits: it has the daemon's defaults again.
Nothing the project already has is removed.`,
		Example: "  nsnet quota reset alpha",
		Args:    exactArgs(1, "a project id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client(cmd, waitFlags{})
			if err != nil {
				return err
			}
			return c.ResetQuota(cmd.Context(), args[0])
		},
	}
}

// plural is the English plural of a quota resource's name.
func plural(noun string) string {
	if base, ok := strings.CutSuffix(noun, "y"); ok {
		return base + "ies"
	}
	return noun + "s"
}
