// Command nsnet is network-as-a-service for Linux hosts: the daemon
// (nsnet daemon) and the command line client of its API, in one binary.
package main

import (
	"context"
	"os"

	"github.com/nsnet/nsnet/internal/cli"
	"github.com/nsnet/nsnet/internal/cli/daemoncmd"
)

func main() {
	os.Exit(cli.Execute(context.Background(), cli.NewRootCommand(daemoncmd.New())))
}
