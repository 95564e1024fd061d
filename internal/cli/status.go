package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/spf13/cobra"
)

func (a *app) statusCommand() *cobra.Command {
	var out outputFlag
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the daemon's and the agent's health",
		Long: `Show the health of the daemon (version, uptime, where it keeps its state)
and of its agent (whether the kernel matches the desired state, and what
failed if not), as the daemon reports it at GET /nsnet/status. Objects in
ERROR are listed by type, name and id, with the reason (in -o json:
agent.errors, a list of {type, id, name, reason}).`,
		Example: `  nsnet status
  nsnet status -o json`,
		Args: noArgs,
	}
	addOutputFlag(cmd, &out)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := out.check(cmd); err != nil {
			return err
		}
		c, err := a.client(cmd, waitFlags{})
		if err != nil {
			return err
		}
		raw, err := c.Status(cmd.Context())
		if err != nil {
			return err
		}
		if out.format != formatTable {
			return printRaw(cmd.OutOrStdout(), out.format, raw)
		}
		return printStatus(cmd.OutOrStdout(), raw)
	}
	return cmd
}

// objectError is one of the agent's errors (agent.errors): an object in
// ERROR, or a pass that failed.
type objectError struct {
	Type   string `json:"type"`
	ID     string `json:"id"`
	Name   string `json:"name"`
	Reason string `json:"reason"`
}

// printStatus prints the status document as sections, one per top-level
// object, with nested objects flattened to dotted keys, and then the
// agent's errors as a table of their own (the agent section counts them).
// It knows nothing of the document's other fields, so that what the daemon
// adds shows up unchanged.
func printStatus(w io.Writer, raw json.RawMessage) error {
	var doc map[string]any
	var errs struct {
		Agent struct {
			Errors []objectError `json:"errors"`
		} `json:"agent"`
	}
	if err := errors.Join(json.Unmarshal(raw, &doc), json.Unmarshal(raw, &errs)); err != nil {
		return fmt.Errorf("decode status: %w", err)
	}
	inError := errs.Agent.Errors
	if agent, ok := doc["agent"].(map[string]any); ok && agent["errors"] != nil {
		agent["errors"] = len(inError)
	}
	tw := newTable(w)
	var scalars []string
	var sections []string
	for k, v := range doc {
		if _, ok := v.(map[string]any); ok {
			sections = append(sections, k)
		} else {
			scalars = append(scalars, k)
		}
	}
	sort.Strings(scalars)
	sort.Strings(sections)
	for _, k := range scalars {
		fmt.Fprintf(tw, "%s\t%s\n", k, strings.Join(cellLines(doc[k]), "; "))
	}
	for i, s := range sections {
		if i > 0 || len(scalars) > 0 {
			fmt.Fprintln(tw)
		}
		fmt.Fprintf(tw, "%s:\n", strings.ToUpper(s))
		var rows [][2]string
		flatten("", doc[s], &rows)
		for _, r := range rows {
			fmt.Fprintf(tw, "  %s\t%s\n", r[0], r[1])
		}
	}
	if err := tw.Flush(); err != nil || len(inError) == 0 {
		return err
	}
	fmt.Fprint(w, "\nIN ERROR:\n")
	tw = newTable(w)
	fmt.Fprintln(tw, "  TYPE\tNAME\tID\tREASON")
	for _, e := range inError {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", e.Type, e.Name, e.ID, e.Reason)
	}
	return tw.Flush()
}

func flatten(prefix string, v any, rows *[][2]string) {
	m, ok := v.(map[string]any)
	if !ok {
		*rows = append(*rows, [2]string{prefix, strings.Join(cellLines(v), "; ")})
		return
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		key := k
		if prefix != "" {
			key = prefix + "." + k
		}
		flatten(key, m[k], rows)
	}
}
