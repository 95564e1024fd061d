package cli

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

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
		return carryOut(cmd, plan, dryRun, "apply", func() error {
			return topology.Execute(cmd.Context(), c, plan, cmd.OutOrStdout())
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
		return carryOut(cmd, plan, dryRun, "destroy", func() error {
			return topology.Execute(cmd.Context(), c, plan, cmd.OutOrStdout())
		})
	}
	return cmd
}

// carryOut prints the plan (dry run) or runs it, then a summary line.
func carryOut(cmd *cobra.Command, plan *topology.Plan, dryRun bool, verb string, run func() error) error {
	out := cmd.OutOrStdout()
	if dryRun {
		topology.WritePlan(out, plan)
		fmt.Fprintf(out, "%s --dry-run: %s\n", verb, topology.Summary(plan, false))
		return nil
	}
	if err := run(); err != nil {
		return fmt.Errorf("%s stopped: %w\n(the steps listed above were done; fix the problem and run %s again to finish)", verb, err, verb)
	}
	fmt.Fprintf(out, "%s: %s\n", verb, topology.Summary(plan, true))
	return nil
}
