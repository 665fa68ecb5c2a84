package cli

import (
	"context"
	"fmt"
	"strings"

	"stepwise.dev/stepwise/internal/config"
	"stepwise.dev/stepwise/internal/datastore"
	"stepwise.dev/stepwise/internal/metadata"
	"stepwise.dev/stepwise/internal/rebuild"
)

// Maintenance are the commands that look after the stores: rebuild the
// metadata from the datastore, collect garbage, check the set-up.
var Maintenance = []Command{
	{rebuild.CommandName, "[--default-user NAME]", "record in the metadata store every run of the datastore that it lacks", rebuildCmd},
	{"gc", "[--apply] [--retention 30d] [--grace 24h]", "find (and with --apply delete) what no kept run needs", gcCmd},
	{"doctor", "[--create-bucket]", "check that the datastore and the metadata store are reachable and writable", doctorCmd},
}

// maintenanceConfig loads the settings, with the --datastore and
// --metadata flags applied.
func (e *Env) maintenanceConfig() (*config.Config, error) {
	return config.Load(config.Overrides{Datastore: e.datastore, Metadata: e.metadata, Source: "flag"})
}

// maintenanceStores opens both stores, without refusing a metadata store
// that lacks the datastore's runs (rebuild-metadata is the repair).
func (e *Env) maintenanceStores(ctx context.Context) (*config.Config, *datastore.Store, metadata.Store, error) {
	cfg, err := e.maintenanceConfig()
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
func rebuildCmd(ctx context.Context, e *Env, args []string) error {
	fs := e.Flags(rebuild.CommandName)
	defUser := fs.String("default-user", "", "user of runs whose record names none (older records); default: you, for a local datastore")
	pos, err := Parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return UsageError("unexpected argument %q", pos[0])
	}
	cfg, store, meta, err := e.maintenanceStores(ctx)
	if err != nil {
		return err
	}
	defer meta.Close()
	o := rebuild.Options{DefaultUser: *defUser}
	if o.DefaultUser == "" && !strings.HasPrefix(cfg.Datastore.Value, "s3://") {
		o.DefaultUser = cfg.User.Value
	}
	if !e.json {
		fmt.Fprintf(e.stderr, "Reading the records of %s...\n", store.Backend())
	}
	rep, err := rebuild.Rebuild(ctx, store, meta, o)
	if err != nil {
		if rep != nil && rep.Runs > 0 {
			err = fmt.Errorf("%w (%d runs were rebuilt before; run the command again once the cause is fixed: it goes on where it stopped)", err, rep.Runs)
		}
		return err
	}
	if e.json {
		return e.printJSON(rep)
	}
	fmt.Fprintf(e.stdout, "Rebuilt %d run(s) (%d tasks, %d attempts, %d artifacts) in the metadata store %s from the datastore %s; %d run(s) were there already.\n",
		rep.Runs, rep.Tasks, rep.Attempts, rep.Artifacts, rebuild.Describe(meta), store.Backend(), rep.Skipped)
	if len(rep.Warnings) > 0 {
		fmt.Fprintf(e.stdout, "\nWhat could not be recovered:\n")
		for _, w := range rep.Warnings {
			fmt.Fprintf(e.stdout, "  %s\n", w)
		}
	}
	return nil
}
