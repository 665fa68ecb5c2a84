package main

import (
	"context"
	"log/slog"
	"os"
	"strings"

	"stepwise.dev/stepwise/internal/cli"
	"stepwise.dev/stepwise/internal/metadata/postgres"
	"stepwise.dev/stepwise/internal/metadata/service"
)

func serviceCmd(ctx context.Context, e *cli.Env, args []string) error {
	fs := e.Flags("service")
	addr := fs.String("addr", "127.0.0.1:8080", "address to listen on")
	dsn := fs.String("database", os.Getenv("STEPWISE_DATABASE_URL"), "PostgreSQL URL (default $STEPWISE_DATABASE_URL)")
	var tokens []string
	fs.Func("token", "a bearer token clients must send (repeatable; default: $STEPWISE_SERVICE_TOKENS, comma-separated); none means no authentication",
		func(t string) error { tokens = append(tokens, t); return nil })
	pos, err := cli.Parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return cli.UsageError("unexpected argument %q", pos[0])
	}
	if *dsn == "" {
		return cli.UsageError("say which PostgreSQL database to use: --database postgres://user@host:5432/stepwise or STEPWISE_DATABASE_URL")
	}
	if len(tokens) == 0 {
		for _, t := range strings.Split(os.Getenv("STEPWISE_SERVICE_TOKENS"), ",") {
			if t = strings.TrimSpace(t); t != "" {
				tokens = append(tokens, t)
			}
		}
	}
	logger := slog.New(slog.NewTextHandler(e.Stderr(), nil))
	store, err := postgres.Open(ctx, *dsn)
	if err != nil {
		return err
	}
	defer store.Close()
	if len(tokens) == 0 {
		logger.Warn("no tokens configured: every client may read and write; set --token or STEPWISE_SERVICE_TOKENS")
	}
	logger.Info("stepwise metadata service", "addr", *addr, "tokens", len(tokens))
	return service.Serve(ctx, *addr, service.NewHandler(store, service.Options{Tokens: tokens, Logger: logger}))
}
