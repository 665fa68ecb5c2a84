package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"stepwise.dev/stepwise/client"
	"stepwise.dev/stepwise/internal/cli"
	"stepwise.dev/stepwise/internal/config"
	"stepwise.dev/stepwise/internal/ui"
)

// minPoll bounds what live pages cost the stores.
const minPoll = 100 * time.Millisecond

func uiCmd(ctx context.Context, e *cli.Env, args []string) error {
	fs := e.Flags("ui")
	fs.Lookup("namespace").Usage = "the runs page's namespace filter at first: user:NAME or a tag (default: every run)"
	fs.Lookup("json").Usage = `print where it listens as one JSON line, {"addr", "url", "token"}, for scripts`
	addr := fs.String("addr", "127.0.0.1:8090", "address to listen on (loopback by default: only this machine; port 0 for any free one)")
	poll := fs.Duration("poll", time.Second, "how often live pages look for changes (at least 100ms)")
	pos, err := cli.Parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return cli.UsageError("unexpected argument %q", pos[0])
	}
	if *poll < minPoll {
		return cli.UsageError("--poll %s: live pages read the stores at most every %s; give %s or more", *poll, minPoll, minPoll)
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
		url := "http://" + a + "/"
		if e.JSON() {
			// One line, for scripts: where to point a browser or a test.
			json.NewEncoder(e.Stdout()).Encode(uiReady{Addr: a, URL: url, Token: cfg.Token.Value != ""})
			return
		}
		note := ""
		if cfg.Token.Value != "" {
			note = " (it asks for the token in force, " + cfg.Token.Source + ")"
		}
		fmt.Fprintf(e.Stdout(), "Stepwise UI on %s%s; Ctrl-C stops it\n", url, note)
	})
}

// uiReady is what ui --json prints once it listens.
type uiReady struct {
	Addr  string `json:"addr"`  // host:port it listens on (the port chosen, for --addr HOST:0)
	URL   string `json:"url"`   // its first page
	Token bool   `json:"token"` // it asks visitors for the token in force
}
