package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/nsnet/nsnet/internal/topology"
)

// fileFlag is -f of apply and destroy.
type fileFlag struct{ path string }

func addFileFlag(cmd *cobra.Command, f *fileFlag) {
	cmd.Flags().StringVarP(&f.path, "file", "f", "", "the topology file (- for stdin; required)")
	_ = cmd.MarkFlagRequired("file")
	_ = cmd.MarkFlagFilename("file", "yaml", "yml")
}

// read parses the topology file.
func (f fileFlag) read(stdin io.Reader) (*topology.File, error) {
	if f.path == "-" {
		return topology.Parse(stdin, "<stdin>")
	}
	r, err := os.Open(f.path)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return topology.Parse(r, f.path)
}

func (a *app) applyCommand() *cobra.Command {
	var file fileFlag
	var wait waitFlags
	var prune, dryRun bool
	cmd := &cobra.Command{
		Use:   "apply -f FILE",
		Short: "Make nsnet match a topology file",
		Long: `Make nsnet match a topology file: create the instances, networks, subnets and
ports it lists that are missing, in that order, and update those that differ.
Applying the same file twice changes nothing the second time.

A field the API cannot change (a subnet's range, a port's network) that
differs stops apply before it changes anything: delete the resource, or
rename it in the file, and apply again. Fields the file leaves out keep the
server's defaults and are never compared.

apply marks what it creates with "nsnet:topology=<name>" in the resource's
description. --prune also deletes resources with this mark that the file no
longer lists; nothing else is ever pruned.

The file format is described in the topology package's documentation and
shown in examples/seed-bridge.yaml.`,
		Example: `  nsnet apply -f examples/seed-bridge.yaml
  nsnet apply -f lab.yaml --dry-run
  nsnet apply -f lab.yaml --prune`,
		Args: noArgs,
	}
	addFileFlag(cmd, &file)
	cmd.Flags().BoolVar(&prune, "prune", false, "delete this topology's resources that the file no longer lists")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "show the plan, change nothing")
	addWaitFlags(cmd, &wait)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		f, err := file.read(cmd.InOrStdin())
		if err != nil {
			return err
		}
		c, err := a.client(cmd, wait)
		if err != nil {
			return err
		}
		st, err := topology.LoadState(cmd.Context(), c)
		if err != nil {
			return err
		}
		plan, err := topology.PlanApply(f, st, topology.ApplyOptions{Prune: prune})
		if err != nil {
			return fmt.Errorf("nothing was changed:\n%w", err)
		}
		return carryOut(cmd, plan, dryRun, "apply", func(out io.Writer) error {
			return topology.Execute(cmd.Context(), c, plan, out)
		})
	}
	return cmd
}

func (a *app) destroyCommand() *cobra.Command {
	var file fileFlag
	var wait waitFlags
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "destroy -f FILE",
		Short: "Delete what a topology file lists",
		Long: `Delete the ports, subnets, networks and instances that a topology file lists,
in that order. Resources already gone are fine; a resource that another
topology file manages is an error.`,
		Example: `  nsnet destroy -f examples/seed-bridge.yaml
  nsnet destroy -f lab.yaml --dry-run`,
		Args: noArgs,
	}
	addFileFlag(cmd, &file)
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "show the plan, change nothing")
	addWaitFlags(cmd, &wait)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		f, err := file.read(cmd.InOrStdin())
		if err != nil {
			return err
		}
		c, err := a.client(cmd, wait)
		if err != nil {
			return err
		}
		st, err := topology.LoadState(cmd.Context(), c)
		if err != nil {
			return err
		}
		plan, err := topology.PlanDestroy(f, st)
		if err != nil {
			return fmt.Errorf("nothing was changed:\n%w", err)
		}
		return carryOut(cmd, plan, dryRun, "destroy", func(out io.Writer) error {
			return topology.Execute(cmd.Context(), c, plan, out)
		})
	}
	return cmd
}

// carryOut prints the plan (dry run) or runs it, then a summary line.
func carryOut(cmd *cobra.Command, plan *topology.Plan, dryRun bool, verb string, run func(io.Writer) error) error {
	out := cmd.OutOrStdout()
	if dryRun {
		topology.WritePlan(out, plan)
		fmt.Fprintf(out, "%s --dry-run: %s\n", verb, topology.Summary(plan, false))
		return nil
	}
	w := out
	if isTerminal(out) {
		w = &progressWriter{w: out, total: len(plan.Steps)}
	}
	err := run(w)
	var failed *topology.FailedError
	if errors.As(err, &failed) {
		fmt.Fprintf(out, "%s: %s\n", verb, topology.Summary(plan, true))
		return exitError{1, fmt.Errorf("%s: %w", verb, err)}
	}
	if err != nil {
		return fmt.Errorf("%s stopped: %w\n(the steps listed above were done; fix the problem and run %s again to finish)", verb, err, verb)
	}
	fmt.Fprintf(out, "%s: %s\n", verb, topology.Summary(plan, true))
	return nil
}

// progressWriter numbers the lines a plan's steps write, [n/total], so
// that an apply of hundreds of resources shows how far it is. Only for a
// terminal: a script reading the lines gets them as they are.
type progressWriter struct {
	w       io.Writer
	total   int
	n       int
	midLine bool
}

func (p *progressWriter) Write(b []byte) (int, error) {
	written := len(b)
	width := len(strconv.Itoa(p.total))
	var out []byte
	for len(b) > 0 {
		if !p.midLine {
			p.n++
			out = fmt.Appendf(out, "[%*d/%d] ", width, p.n, p.total)
		}
		line, rest, found := bytes.Cut(b, []byte("\n"))
		out = append(out, line...)
		if found {
			out = append(out, '\n')
		}
		p.midLine = !found
		b = rest
	}
	if _, err := p.w.Write(out); err != nil {
		return 0, err
	}
	return written, nil
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
