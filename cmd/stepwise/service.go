package main

import (
	"context"
	"log/slog"
	"os"

	"stepwise.dev/stepwise/internal/bearer"
	"stepwise.dev/stepwise/internal/cli"
	"stepwise.dev/stepwise/internal/config"
	"stepwise.dev/stepwise/internal/metadata/postgres"
	"stepwise.dev/stepwise/internal/metadata/service"
)

// tokensEnv names the environment variable of the service's tokens,
// comma-separated.
const tokensEnv = "STEPWISE_SERVICE_TOKENS"

func serviceCmd(ctx context.Context, e *cli.Env, args []string) error {
	fs := e.Flags("service")
	addr := fs.String("addr", "127.0.0.1:8080", "address to listen on; any other than loopback needs tokens")
	dsn := fs.String("database", os.Getenv("STEPWISE_DATABASE_URL"), "PostgreSQL URL (default $STEPWISE_DATABASE_URL)")
	tokensFile := fs.String("tokens-file", "", "file of the bearer tokens clients must send, one per line (# starts a comment); with $"+tokensEnv+" (comma-separated)")
	tlsCert := fs.String("tls-cert", "", "PEM file of the TLS certificate (and chain) to serve HTTPS with; needs --tls-key")
	tlsKey := fs.String("tls-key", "", "PEM file of the TLS private key; needs --tls-cert")
	insecure := fs.Bool("insecure-no-tokens", false, "serve on an address other than loopback without tokens: anyone who can reach it can read and write every run")
	if err := bearer.OnCommandLine(args, tokensEnv); err != nil {
		return cli.UsageError("%v", err)
	}
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
	if (*tlsCert == "") != (*tlsKey == "") {
		return cli.UsageError("TLS needs both --tls-cert and --tls-key")
	}
	logger := slog.New(slog.NewTextHandler(e.Stderr(), nil))
	tokens, err := bearer.Load(tokensEnv, *tokensFile, logger)
	if err != nil {
		return err
	}
	exp := bearer.Exposure{Addr: *addr, Tokens: len(tokens), TLS: *tlsCert != "", Insecure: *insecure, Env: tokensEnv, Risk: "read and write every run"}
	if err := exp.Check(ctx, logger); err != nil {
		return cli.UsageError("%v", err)
	}
	opts := service.ServeOptions{TLSCertFile: *tlsCert, TLSKeyFile: *tlsKey, Logger: logger}
	hopts := service.Options{Tokens: tokens, Logger: logger}
	if ds := e.Datastore(); ds != "" {
		// The pods of deployed flows fetch their code through URLs the
		// service signs.
		data, err := config.OpenDatastore(ctx, ds)
		if err != nil {
			return err
		}
		if !data.CanSign() {
			return cli.UsageError("--datastore %s: the service signs URLs of flow binaries for deployed flows' pods, which needs an S3 datastore (s3://bucket/prefix)", ds)
		}
		hopts.Code = service.StoredCode{Data: data}
	}
	store, err := postgres.Open(ctx, *dsn)
	if err != nil {
		return err
	}
	defer store.Close()
	logger.Info("stepwise metadata service", "addr", *addr, "tokens", len(tokens), "tls", *tlsCert != "", "serves code", hopts.Code != nil)
	return service.Serve(ctx, *addr, service.NewHandler(store, hopts), opts)
}
