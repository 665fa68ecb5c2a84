// Command stepwise inspects what flows have done, without their source
// (flows, runs, artifacts, logs and tags), writes the settings, and serves
// the metadata API for a team.
package main

import (
	"context"
	"os"
	"os/signal"
	"slices"
	"syscall"

	"stepwise.dev/stepwise/internal/cli"
	"stepwise.dev/stepwise/internal/maintain"

	// The stepwise command reads every kind of datastore and metadata store.
	_ "stepwise.dev/stepwise/backend/arrow"
	_ "stepwise.dev/stepwise/backend/s3"
	_ "stepwise.dev/stepwise/backend/service"
	_ "stepwise.dev/stepwise/backend/sqlite"
)

// commands are the inspection and settings commands, ui and service.
var commands = slices.Concat(cli.Inspect,
	[]cli.Command{{Name: "ui", Args: "[--addr HOST:PORT]", Summary: "serve the web UI: runs, graphs, tasks, artifacts, logs and cards (ui --help)", Run: uiCmd},
		{Name: "service", Args: "[flags]", Summary: "serve the metadata API over HTTP, backed by PostgreSQL (service --help)", Run: serviceCmd}},
	maintain.Commands, cli.Settings)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, cli.Options{Prog: "stepwise", Commands: commands}, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
