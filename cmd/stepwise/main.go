// Command stepwise inspects what flows have done, without their source:
// flows, runs, artifacts, logs and tags. Each subcommand lives in its own
// file; tables are for people and --json is for tools.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"

	"stepwise.dev/stepwise/client"
)

// command is one subcommand.
type command struct {
	name    string
	args    string // usage after the name
	summary string
	run     func(ctx context.Context, e *env, args []string) error
}

var commands = []command{
	{"flows", "", "list the flows that have runs in the namespace", flowsCmd},
	{"runs", "[FLOW]", "list the runs of a flow (or of all), newest first", runsCmd},
	{"dump", "PATHSPEC", "print the artifacts of a task (or the tasks of a run)", dumpCmd},
	{"logs", "PATHSPEC", "print the output of a task attempt", logsCmd},
	{"tag", "add|remove|list PATHSPEC [TAG...]", "change or list the tags of a run", tagCmd},
	{"service", "[flags]", "serve the metadata API over HTTP, backed by PostgreSQL (service --help)", serviceCmd},
	{"configure", "[flags]", "write the config file (configure --help)", configureCmd},
	{"config", "show", "print the settings in force and where each came from", configShowCmd},
}

// env is what every subcommand gets.
type env struct {
	stdout, stderr io.Writer
	datastore      string
	metadata       string
	namespace      string
	json           bool
}

// usageError is a mistake on the command line: exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "usage: stepwise <command> [flags] [arguments]\n\nCommands:\n")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, c := range commands {
		fmt.Fprintf(tw, "  %s %s\t%s\n", c.name, c.args, c.summary)
	}
	tw.Flush()
	fmt.Fprintf(w, "\nFlags of every command:\n  --namespace NS   user:NAME (default: yours), a tag, or global\n  --json           print JSON for tools\n  --datastore, --metadata   override the configured stores\n\nA pathspec is Flow/RunID[/step[/TaskID]], e.g. BranchJoin/1764340315123456/start/1;\nRunID may be latest, the newest run in the namespace: BranchJoin/latest/end.\n")
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands {
		if c.name != args[0] {
			continue
		}
		e := &env{stdout: stdout, stderr: stderr}
		err := c.run(ctx, e, args[1:])
		var ue *usageError
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		case errors.As(err, &ue):
			fmt.Fprintf(stderr, "stepwise %s: %v\nusage: stepwise %s %s\n", c.name, err, c.name, c.args)
			return 2
		default:
			fmt.Fprintf(stderr, "stepwise %s: %v\n", c.name, err)
			return 1
		}
	}
	fmt.Fprintf(stderr, "stepwise: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

// flags makes the flag set of a subcommand with the shared flags.
func (e *env) flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("stepwise "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.StringVar(&e.namespace, "namespace", "", "namespace: user:NAME (default: yours), a tag, or global")
	fs.BoolVar(&e.json, "json", false, "print JSON")
	fs.StringVar(&e.datastore, "datastore", "", "datastore (default: configured)")
	fs.StringVar(&e.metadata, "metadata", "", "metadata store (default: configured)")
	return fs
}

// parse parses flags that may come before or after the arguments.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, &usageError{err.Error()}
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func (e *env) client(ctx context.Context) (*client.Client, error) {
	o := client.Options{Datastore: e.datastore, Metadata: e.metadata}
	if e.namespace != "" {
		ns := e.namespace
		if ns == "global" {
			ns = client.Global
		}
		o.Namespace = &ns
	}
	return client.Open(ctx, o)
}

// pathspec parses a pathspec given on the command line, where the run id
// may be "latest": the flow's newest run in the namespace.
func pathspec(ctx context.Context, c *client.Client, spec string) (client.Pathspec, error) {
	flow, rest, _ := strings.Cut(spec, "/")
	id, tail, more := strings.Cut(rest, "/")
	if id == "latest" {
		run, err := c.Flow(flow).LatestRun(ctx)
		if err != nil {
			return client.Pathspec{}, err
		}
		spec = flow + "/" + run.ID
		if more {
			spec += "/" + tail
		}
	}
	ps, err := client.ParsePathspec(spec)
	if err != nil {
		return ps, &usageError{err.Error()}
	}
	return ps, nil
}

func (e *env) printJSON(v any) error {
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func (e *env) table(header string, rows [][]string) {
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	tw.Flush()
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
