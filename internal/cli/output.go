package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"
)

// Output formats of -o.
const (
	formatTable = "table"
	formatJSON  = "json"
	formatYAML  = "yaml"
)

// outputFlag is -o of commands that print resources.
type outputFlag struct{ format string }

func addOutputFlag(cmd *cobra.Command, o *outputFlag) {
	cmd.Flags().StringVarP(&o.format, "output", "o", formatTable,
		"output format: table, json (the API's objects, stable for scripts) or yaml")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(
		[]string{formatTable, formatJSON, formatYAML}, cobra.ShellCompDirectiveNoFileComp))
}

func (o outputFlag) check(cmd *cobra.Command) error {
	switch o.format {
	case formatTable, formatJSON, formatYAML:
		return nil
	}
	return usagef(cmd, "unknown output format %q; use table, json or yaml", o.format)
}

// column is one column of a list table.
type column[T any] struct {
	header string
	value  func(T) string
}

// printTable prints items as a table of the given columns.
func printTable[T any](w io.Writer, items []T, cols []column[T]) error {
	tw := newTable(w)
	headers := make([]string, len(cols))
	for i, c := range cols {
		headers[i] = c.header
	}
	fmt.Fprintln(tw, strings.Join(headers, "\t"))
	for _, it := range items {
		cells := make([]string, len(cols))
		for i, c := range cols {
			cells[i] = c.value(it)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	return tw.Flush()
}

// printRawList prints API objects as they came, as a JSON or YAML list.
func printRawList(w io.Writer, format string, raws []json.RawMessage) error {
	return printRaw(w, format, jsonList(raws))
}

// decodeList decodes the API objects of a list, named what in errors,
// for a table.
func decodeList[T any](raws []json.RawMessage, what string) ([]T, error) {
	items := make([]T, len(raws))
	for i, raw := range raws {
		if err := json.Unmarshal(raw, &items[i]); err != nil {
			return nil, fmt.Errorf("decode %s: %w", what, err)
		}
	}
	return items, nil
}

// printObject prints one API object: for json and yaml as it came, for
// table as FIELD/VALUE rows in alphabetical order, as the OpenStack CLI
// does, with lists of objects one per line.
func printObject(w io.Writer, format string, raw json.RawMessage) error {
	if format != formatTable {
		return printRaw(w, format, raw)
	}
	var obj map[string]any
	if err := json.Unmarshal(raw, &obj); err != nil {
		return fmt.Errorf("decode %s: %w", raw, err)
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	tw := newTable(w)
	fmt.Fprintln(tw, "FIELD\tVALUE")
	for _, k := range keys {
		lines := cellLines(obj[k])
		fmt.Fprintf(tw, "%s\t%s\n", k, lines[0])
		for _, l := range lines[1:] {
			fmt.Fprintf(tw, "\t%s\n", l)
		}
	}
	return tw.Flush()
}

// cellLines renders a JSON value for a table cell: scalars as themselves,
// lists of scalars comma-separated, objects as key='value' pairs, and lists
// of objects one per line.
func cellLines(v any) []string {
	switch x := v.(type) {
	case []any:
		if len(x) == 0 {
			return []string{""}
		}
		if _, ok := x[0].(map[string]any); ok {
			out := make([]string, len(x))
			for i, e := range x {
				out[i] = cell(e)
			}
			return out
		}
	}
	return []string{cell(v)}
}

func cell(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = cell(e)
		}
		return strings.Join(parts, ", ")
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = fmt.Sprintf("%s='%s'", k, cell(x[k]))
		}
		return strings.Join(parts, ", ")
	case float64:
		return fmt.Sprint(x)
	default:
		return fmt.Sprint(x)
	}
}

// printRaw prints JSON as indented JSON, or as YAML with the same keys in
// the same order.
func printRaw(w io.Writer, format string, raw json.RawMessage) error {
	switch format {
	case formatJSON:
		var buf bytes.Buffer
		if err := json.Indent(&buf, raw, "", "  "); err != nil {
			return fmt.Errorf("format JSON: %w", err)
		}
		buf.WriteByte('\n')
		_, err := buf.WriteTo(w)
		return err
	case formatYAML:
		out, err := jsonToYAML(raw)
		if err != nil {
			return err
		}
		_, err = w.Write(out)
		return err
	}
	return fmt.Errorf("unknown output format %q", format)
}

// jsonToYAML converts JSON to block-style YAML, keeping key order. JSON
// is YAML, so yaml.v3 parses it into nodes; clearing the flow and quoting
// styles JSON implies makes the encoder write ordinary block YAML, quoting
// only strings that would otherwise read as another type.
func jsonToYAML(raw []byte) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("convert to YAML: %w", err)
	}
	plain(&doc)
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, fmt.Errorf("convert to YAML: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("convert to YAML: %w", err)
	}
	return buf.Bytes(), nil
}

func plain(n *yaml.Node) {
	n.Style = 0
	for _, c := range n.Content {
		plain(c)
	}
}

func jsonList(raws []json.RawMessage) json.RawMessage {
	if raws == nil {
		raws = []json.RawMessage{}
	}
	out, _ := json.Marshal(raws) // RawMessages that decoded once re-encode
	return out
}
