package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/nsnet/nsnet/internal/client"
)

// resolveFunc turns a user's name-or-id of a resource into its id. Body
// builders take one so that they stay pure functions of their flags.
type resolveFunc func(col client.Collection, ref string) (string, error)

func finder(ctx context.Context, c *client.Client) resolveFunc {
	return func(col client.Collection, ref string) (string, error) { return c.FindID(ctx, col, ref) }
}

// listSpec describes `nsnet <resource> list`.
type listSpec[T any] struct {
	col     client.Collection
	long    string
	example string
	columns func(ctx context.Context, c *client.Client, items []T) ([]column[T], error)
	// filters adds its flags to cmd and returns a function that turns
	// them into query parameters.
	filters func(cmd *cobra.Command) func(resolve resolveFunc, q url.Values) error
}

func listCommand[T any](a *app, spec listSpec[T]) *cobra.Command {
	var out outputFlag
	var name string
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   fmt.Sprintf("List %s", spec.col),
		Long:    spec.long,
		Example: spec.example,
		Args:    noArgs,
	}
	addOutputFlag(cmd, &out)
	cmd.Flags().StringVar(&name, "name", "", fmt.Sprintf("only %s with this name", spec.col))
	var filter func(resolveFunc, url.Values) error
	if spec.filters != nil {
		filter = spec.filters(cmd)
	}
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := out.check(cmd); err != nil {
			return err
		}
		c, err := a.client(cmd, waitFlags{})
		if err != nil {
			return err
		}
		ctx := cmd.Context()
		q := url.Values{}
		if name != "" {
			q.Set("name", name)
		}
		if filter != nil {
			if err := filter(finder(ctx, c), q); err != nil {
				return err
			}
		}
		raws, err := client.List[json.RawMessage](ctx, c, spec.col, q)
		if err != nil {
			return err
		}
		if out.format != formatTable {
			return printRawList(cmd.OutOrStdout(), out.format, raws)
		}
		items, err := decodeList[T](raws, spec.col.Singular())
		if err != nil {
			return err
		}
		cols, err := spec.columns(ctx, c, items)
		if err != nil {
			return err
		}
		return printTable(cmd.OutOrStdout(), items, cols)
	}
	return cmd
}

// showCommand is `nsnet <resource> show NAME|ID`.
func showCommand(a *app, col client.Collection, example string) *cobra.Command {
	var out outputFlag
	cmd := &cobra.Command{
		Use:               "show NAME|ID",
		Short:             fmt.Sprintf("Show one %s, every attribute", col.Singular()),
		Long:              fmt.Sprintf("Show one %s with every attribute the API has for it.", col.Singular()),
		Example:           example,
		Args:              exactArgs(1, "one "+col.Singular()+" name or id"),
		ValidArgsFunction: a.completeNames(col, 1),
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
		raw, err := client.Find[json.RawMessage](cmd.Context(), c, col, args[0])
		if err != nil {
			return err
		}
		return printObject(cmd.OutOrStdout(), out.format, raw)
	}
	return cmd
}

// deleteCommand is `nsnet <resource> delete NAME|ID...`. Like the OpenStack
// CLI it tries every argument and fails at the end if any failed.
func deleteCommand(a *app, col client.Collection, long, example string) *cobra.Command {
	var wait waitFlags
	cmd := &cobra.Command{
		Use:               "delete NAME|ID...",
		Aliases:           []string{"rm"},
		Short:             fmt.Sprintf("Delete %s", col),
		Long:              long,
		Example:           example,
		Args:              minArgs(1, "one or more "+col.Singular()+" names or ids"),
		ValidArgsFunction: a.completeNames(col, -1),
	}
	addWaitFlags(cmd, &wait)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		c, err := a.client(cmd, wait)
		if err != nil {
			return err
		}
		var failed []string
		for _, ref := range args {
			if err := deleteOne(cmd, c, col, ref); err != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "nsnet: %s\n", message(err))
				failed = append(failed, ref)
			}
		}
		if len(failed) > 0 {
			return exitError{code: 1, err: fmt.Errorf("failed to delete %d of %d %s: %s",
				len(failed), len(args), col, strings.Join(failed, ", "))}
		}
		return nil
	}
	return cmd
}

func deleteOne(cmd *cobra.Command, c *client.Client, col client.Collection, ref string) error {
	id, err := c.FindID(cmd.Context(), col, ref)
	if err != nil {
		return err
	}
	meta, err := c.Delete(cmd.Context(), col, id)
	if err != nil {
		return err
	}
	return warnUnprogrammed(cmd, col, ref, "deleted", meta, nil)
}

// write carries out a create or update, prints the result, and warns about
// a change that did not reach the kernel.
func write(cmd *cobra.Command, out outputFlag, col client.Collection, name, done string,
	do func() (json.RawMessage, client.Meta, error)) error {
	raw, meta, err := do()
	if err != nil {
		return err
	}
	if err := printObject(cmd.OutOrStdout(), out.format, raw); err != nil {
		return err
	}
	return warnUnprogrammed(cmd, col, name, done, meta, raw)
}

// warnUnprogrammed tells, on stderr, about a write that is stored but that
// the kernel does not have (yet): the API did what was asked, a retry would
// only find the resource there already, and the agent keeps trying; the
// status shows when it succeeds. A write whose resource ended in ERROR
// (the agent tried and failed) is an error all the same, exit status 1,
// so that a script notices; one the wait ended before is a warning.
func warnUnprogrammed(cmd *cobra.Command, col client.Collection, name, done string, meta client.Meta, raw json.RawMessage) error {
	why := client.Unprogrammed(meta, raw)
	if why == "" {
		return nil
	}
	msg := fmt.Sprintf("%s %s was %s, but %s; see `nsnet status`", col.Singular(), name, done, why)
	if client.Failed(meta, raw) {
		return exitError{1, errors.New(msg)}
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "nsnet: warning: %s\n", msg)
	return nil
}

// completeNames completes names of col for positional arguments; max is
// how many the command takes (-1: any number).
func (a *app) completeNames(col client.Collection, max int) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if max >= 0 && len(args) >= max {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return a.names(cmd, col, toComplete, args), cobra.ShellCompDirectiveNoFileComp
	}
}

// completeFlag completes a flag whose value names a resource of col.
func (a *app) completeFlag(cmd *cobra.Command, flag string, col client.Collection) {
	_ = cmd.RegisterFlagCompletionFunc(flag, func(cmd *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		return a.names(cmd, col, toComplete, nil), cobra.ShellCompDirectiveNoFileComp
	})
}

// names lists the names of col starting with prefix, quickly or not at all:
// a shell waiting on a dead daemon is worse than no completion.
func (a *app) names(cmd *cobra.Command, col client.Collection, prefix string, skip []string) []cobra.Completion {
	c, err := a.client(cmd, waitFlags{})
	if err != nil {
		return nil
	}
	parent := cmd.Context()
	if parent == nil {
		parent = context.Background()
	}
	ctx, cancel := context.WithTimeout(parent, 2*time.Second)
	defer cancel()
	items, err := client.List[struct {
		Name string `json:"name"`
	}](ctx, c, col, url.Values{"fields": {"name"}})
	if err != nil {
		return nil
	}
	var out []cobra.Completion
	for _, it := range items {
		if it.Name != "" && strings.HasPrefix(it.Name, prefix) && !slices.Contains(skip, it.Name) {
			out = append(out, it.Name)
		}
	}
	return out
}

// exclusive reports two flags of a pair given together (--share and
// --no-share).
func exclusive(cmd *cobra.Command, pairs ...[2]string) error {
	for _, p := range pairs {
		if cmd.Flags().Changed(p[0]) && cmd.Flags().Changed(p[1]) {
			return usagef(cmd, "--%s and --%s contradict each other", p[0], p[1])
		}
	}
	return nil
}

// setBoolPair puts key=true for --on, key=false for --off, nothing for
// neither.
func setBoolPair(cmd *cobra.Command, body map[string]any, key, on, off string) {
	switch {
	case cmd.Flags().Changed(on):
		body[key] = true
	case cmd.Flags().Changed(off):
		body[key] = false
	}
}

// addRenameFlag adds --name to a set command.
func addRenameFlag(cmd *cobra.Command) { cmd.Flags().String("name", "", "new name") }

// putRename puts the new name given with --name, if any, into body.
func putRename(cmd *cobra.Command, body map[string]any) {
	if cmd.Flags().Changed("name") {
		body["name"], _ = cmd.Flags().GetString("name")
	}
}

var errNothingToSet = errors.New("nothing to change: give at least one option")
