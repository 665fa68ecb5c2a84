package hosting

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"stepwise.dev/stepwise/client"
	"stepwise.dev/stepwise/internal/bearer"
	"stepwise.dev/stepwise/internal/flowcmd"
	"stepwise.dev/stepwise/internal/names"
)

// TokensEnv names the environment variable of a service's bearer tokens,
// comma-separated.
const TokensEnv = "STEPWISE_SERVICE_TOKENS"

const usage = `usage: %[1]s <command> [flags]

Commands of the service %[2]s, which serves runs of flow %[3]s:
  serve    answer the endpoints over HTTP from the latest successful run,
           switching to newer ones as they succeed (serve --help)
  show     list the endpoints (--json for tools)
  serve deploy | serve undeploy
           run the service on Kubernetes: a Deployment and a Service
           (serve deploy --help; docs/hosting.md)

Every command of the flow works too (run, resume, check, runs, dump, logs,
tag, ...): %[1]s run trains, %[1]s serve serves what it trained.
`

// Command runs one command line of a service program and returns its exit
// code: 0 on success, 1 when the command failed, 2 for a usage error.
// Commands other than serve and show are the flow's.
func Command(ctx context.Context, def *Def, args []string, stdout, stderr io.Writer) int {
	prog := filepath.Base(os.Args[0])
	if len(args) == 0 {
		fmt.Fprintf(stderr, usage, prog, def.Name, def.Flow.Name())
		return 2
	}
	switch args[0] {
	case "serve":
		if len(args) > 1 && (args[1] == "deploy" || args[1] == "undeploy") {
			return deployCmd(ctx, def, args[1:], stdout, stderr)
		}
		err := serveCmd(ctx, def, prog, args[1:], stderr)
		var ue usageError
		switch {
		case err == nil, errors.Is(err, flag.ErrHelp):
			return 0
		case errors.As(err, &ue):
			fmt.Fprintf(stderr, "%s serve: %v\n", prog, err)
			return 2
		default:
			fmt.Fprintf(stderr, "%s serve: %v\n", prog, err)
			return 1
		}
	case "show":
		return show(def, prog, args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprintf(stdout, usage, prog, def.Name, def.Flow.Name())
		return 0
	}
	return flowcmd.Command(ctx, def.Flow, args, stdout, stderr)
}

// Deployer runs serve deploy and serve undeploy (args[0]) for the
// service def, with e the command line of its flow; the Kubernetes
// backend registers it when imported.
type Deployer func(ctx context.Context, e *flowcmd.Env, def *Def, args []string) int

var deployer Deployer

// RegisterDeployer sets the Deployer.
func RegisterDeployer(d Deployer) { deployer = d }

// deployCmd runs serve deploy or serve undeploy.
func deployCmd(ctx context.Context, def *Def, args []string, stdout, stderr io.Writer) int {
	if deployer == nil {
		fmt.Fprintf(stderr, "%s serve %s: deploying comes with the Kubernetes backend; add to the service's program\n\timport _ \"stepwise.dev/stepwise/backend/kubernetes\"\nand build it again\n", filepath.Base(os.Args[0]), args[0])
		return 2
	}
	return deployer(ctx, flowcmd.NewEnv(def.Flow, stdout, stderr), def, args)
}

type usageError string

func (e usageError) Error() string { return string(e) }

// show lists the endpoints.
func show(def *Def, prog string, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(prog+" show", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s show: unexpected argument %q\n", prog, fs.Arg(0))
		return 2
	}
	type endpoint struct {
		Path     string `json:"path"`
		Method   string `json:"method"`
		Request  string `json:"request,omitempty"`
		Response string `json:"response"`
	}
	var eps []endpoint
	for _, e := range def.Endpoints {
		ep := endpoint{Path: e.Path, Method: e.Method, Response: e.Response.String()}
		if e.Request != nil {
			ep.Request = e.Request.String()
		}
		eps = append(eps, ep)
	}
	if *asJSON {
		out, _ := json.MarshalIndent(struct {
			Service   string     `json:"service"`
			Flow      string     `json:"flow"`
			Artifacts []string   `json:"artifacts,omitempty"`
			Endpoints []endpoint `json:"endpoints"`
		}{def.Name, def.Flow.Name(), def.Artifacts, eps}, "", "  ")
		fmt.Fprintf(stdout, "%s\n", out)
		return 0
	}
	arts := "every artifact of its end step"
	if def.Artifacts != nil {
		arts = "artifacts " + strings.Join(def.Artifacts, ", ")
	}
	plural := "s"
	if len(eps) == 1 {
		plural = ""
	}
	fmt.Fprintf(stdout, "Service %s: %d endpoint%s, serving flow %s (%s)\n\n", def.Name, len(eps), plural, def.Flow.Name(), arts)
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  PATH\tMETHOD\tREQUEST\tRESPONSE")
	for _, e := range eps {
		req := e.Request
		if req == "" {
			req = "-"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", e.Path, e.Method, req, e.Response)
	}
	tw.Flush()
	fmt.Fprintln(stdout, "\nEach takes GET with query parameters or POST with a JSON body; /healthz, /readyz, /metadata and /metrics are always there.")
	return 0
}

// serveCmd is the serve command.
func serveCmd(ctx context.Context, def *Def, prog string, args []string, stderr io.Writer) error {
	if err := bearer.OnCommandLine(args, TokensEnv); err != nil {
		return usageError(err.Error())
	}
	fs := flag.NewFlagSet(prog+" serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8080", "address to listen on; any other than loopback needs tokens")
	ns := fs.String("namespace", "", "namespace of the runs to serve: user:NAME (default: yours), a tag such as production:..., or global")
	tag := fs.String("tag", "", "serve the latest successful run with this tag")
	run := fs.String("run", "", "serve this run (its id) and no other")
	poll := fs.Duration("poll", DefaultPoll, "how often to look for a newer successful run")
	timeout := fs.Duration("timeout", DefaultTimeout, "time limit of one request")
	maxBody := fs.Int64("max-body", DefaultMaxBody, "largest request body, in bytes")
	tokensFile := fs.String("tokens-file", "", "file of the bearer tokens clients must send, one per line; with $"+TokensEnv+" (comma-separated)")
	insecure := fs.Bool("insecure-no-tokens", false, "serve on an address other than loopback without tokens")
	tlsCert := fs.String("tls-cert", "", "PEM file of the TLS certificate (and chain); needs --tls-key")
	tlsKey := fs.String("tls-key", "", "PEM file of the TLS private key; needs --tls-cert")
	logJSON := fs.Bool("log-json", false, "write the log (and access log) as JSON lines instead of text")
	datastore := fs.String("datastore", "", "datastore (default: configured)")
	metadata := fs.String("metadata", "", "metadata store (default: configured)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError(err.Error())
	}
	switch {
	case fs.NArg() > 0:
		return usageError(fmt.Sprintf("unexpected argument %q; flags start with --", fs.Arg(0)))
	case (*tlsCert == "") != (*tlsKey == ""):
		return usageError("TLS needs both --tls-cert and --tls-key")
	case *poll <= 0 || *timeout <= 0 || *maxBody <= 0:
		return usageError("--poll, --timeout and --max-body must be more than 0")
	case *tag != "" && *run != "":
		return usageError("give --tag (follow the latest successful run with a tag) or --run (serve one run), not both")
	}
	if *run != "" {
		if err := names.RunID(*run); err != nil {
			return usageError("--run: " + err.Error())
		}
	}
	if *tag != "" {
		if err := names.Tag(*tag); err != nil {
			return usageError("--tag: " + err.Error())
		}
	}
	logs := NewLogWriter(stderr)
	defer logs.Close()
	var handler slog.Handler = slog.NewTextHandler(logs, nil)
	if *logJSON {
		handler = slog.NewJSONHandler(logs, nil)
	}
	logger := slog.New(handler)
	tokens, err := bearer.Load(TokensEnv, *tokensFile, logger)
	if err != nil {
		return err
	}
	exp := bearer.Exposure{Addr: *addr, Tokens: len(tokens), TLS: *tlsCert != "", Insecure: *insecure, Env: TokensEnv, Risk: "call its endpoints"}
	if err := exp.Check(ctx, logger); err != nil {
		return usageError(err.Error())
	}
	copts := client.Options{Datastore: *datastore, Metadata: *metadata}
	if *ns != "" {
		n := *ns
		if n == "global" {
			n = client.Global
		}
		copts.Namespace = &n
	}
	c, err := client.Open(ctx, copts)
	if err != nil {
		return err
	}
	defer c.Close()
	srv, err := New(def, Options{Client: c, Tag: *tag, Run: *run, Poll: *poll, Timeout: *timeout, MaxBody: *maxBody, Tokens: tokens, Logger: logger})
	if err != nil {
		return usageError(err.Error())
	}
	l, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("cannot listen on %s: %w; choose another --addr", *addr, err)
	}
	return srv.Serve(ctx, l, ServeOptions{TLSCertFile: *tlsCert, TLSKeyFile: *tlsKey, ShutdownTimeout: *timeout + 5*time.Second})
}
