package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"stepwise.dev/stepwise/client"
	"stepwise.dev/stepwise/internal/cli"
	"stepwise.dev/stepwise/internal/config"
	"stepwise.dev/stepwise/internal/ui"
)

func uiCmd(ctx context.Context, e *cli.Env, args []string) error {
	fs := e.Flags("ui") // --namespace: the runs page's first filter (default: every run)
	addr := fs.String("addr", "127.0.0.1:8090", "address to listen on (loopback by default: only this machine)")
	poll := fs.Duration("poll", time.Second, "how often live pages look for changes")
	pos, err := cli.Parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return cli.UsageError("unexpected argument %q", pos[0])
	}
	cfg, err := config.Load(config.Overrides{Datastore: e.Datastore(), Metadata: e.Metadata(), Source: "flag"})
	if err != nil {
		return err
	}
	global := client.Global
	c, err := client.Open(ctx, client.Options{Datastore: e.Datastore(), Metadata: e.Metadata(), Namespace: &global})
	if err != nil {
		return err
	}
	defer c.Close()
	logger := slog.New(slog.NewTextHandler(e.Stderr(), nil))
	ns := e.Namespace()
	if ns == "global" {
		ns = ""
	}
	s, err := ui.New(c, ui.Options{Token: cfg.Token.Value, Namespace: ns, Poll: *poll, Log: logger})
	if err != nil {
		return err
	}
	return s.Serve(ctx, *addr, func(a string) {
		note := ""
		if cfg.Token.Value != "" {
			note = " (it asks for the token in force, " + cfg.Token.Source + ")"
		}
		fmt.Fprintf(e.Stdout(), "Stepwise UI on http://%s/%s; Ctrl-C stops it\n", a, note)
	})
}
