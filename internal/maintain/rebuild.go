package maintain

import (
	"context"
	"fmt"
	"stepwise.dev/stepwise/internal/cli"
	"strings"

	"stepwise.dev/stepwise/internal/config"
	"stepwise.dev/stepwise/internal/datastore"
	"stepwise.dev/stepwise/internal/metadata"
	"stepwise.dev/stepwise/internal/rebuild"
)

// Commands are the commands that look after the stores: rebuild the
// metadata from the datastore, collect garbage, check the set-up.
var Commands = []cli.Command{
	{Name: rebuild.CommandName, Args: "[--default-user NAME]", Summary: "record in the metadata store every run of the datastore that it lacks", Run: rebuildCmd},
	{Name: "gc", Args: "[--apply] [--retention 30d] [--grace 24h]", Summary: "find (and with --apply delete) what no kept run needs", Run: gcCmd},
	{Name: "doctor", Args: "[--create-bucket]", Summary: "check that the datastore and the metadata store are reachable and writable", Run: doctorCmd},
}

// maintenanceConfig loads the settings, with the --datastore and
// --metadata flags applied.
func maintenanceConfig(e *cli.Env) (*config.Config, error) {
	return config.Load(config.Overrides{Datastore: e.Datastore(), Metadata: e.Metadata(), Source: "flag"})
}

// maintenanceStores opens both stores, without refusing a metadata store
// that lacks the datastore's runs (rebuild-metadata is the repair).
func maintenanceStores(e *cli.Env, ctx context.Context) (*config.Config, *datastore.Store, metadata.Store, error) {
	cfg, err := maintenanceConfig(e)
	if err != nil {
		return nil, nil, nil, err
	}
	store, err := config.OpenDatastore(ctx, cfg.Datastore.Value)
	if err != nil {
		return nil, nil, nil, err
	}
	meta, err := config.OpenMetadata(ctx, cfg)
	if err != nil {
		return nil, nil, nil, err
	}
	return cfg, store, meta, nil
}

// rebuildCmd records the datastore's runs that the metadata store lacks.
func rebuildCmd(ctx context.Context, e *cli.Env, args []string) error {
	fs := e.Flags(rebuild.CommandName)
	defUser := fs.String("default-user", "", "user of runs whose record names none (older records); default: you, for a local datastore")
	pos, err := cli.Parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return cli.UsageError("unexpected argument %q", pos[0])
	}
	cfg, store, meta, err := maintenanceStores(e, ctx)
	if err != nil {
		return err
	}
	defer meta.Close()
	o := rebuild.Options{DefaultUser: *defUser}
	if o.DefaultUser == "" && !strings.HasPrefix(cfg.Datastore.Value, "s3://") {
		o.DefaultUser = cfg.User.Value
	}
	if !e.JSON() {
		fmt.Fprintf(e.Stderr(), "Reading the records of %s...\n", store.Backend())
	}
	rep, err := rebuild.Rebuild(ctx, store, meta, o)
	if err != nil {
		if rep != nil && rep.Runs > 0 {
			err = fmt.Errorf("%w (%d runs were rebuilt before; run the command again once the cause is fixed: it goes on where it stopped)", err, rep.Runs)
		}
		return err
	}
	if e.JSON() {
		return e.PrintJSON(rep)
	}
	fmt.Fprintf(e.Stdout(), "Rebuilt %d run(s) (%d tasks, %d attempts, %d artifacts) in the metadata store %s from the datastore %s; %d run(s) were there already.\n",
		rep.Runs, rep.Tasks, rep.Attempts, rep.Artifacts, rebuild.Describe(meta), store.Backend(), rep.Skipped)
	if len(rep.Warnings) > 0 {
		fmt.Fprintf(e.Stdout(), "\nWhat could not be recovered:\n")
		for _, w := range rep.Warnings {
			fmt.Fprintf(e.Stdout(), "  %s\n", w)
		}
	}
	return nil
}
