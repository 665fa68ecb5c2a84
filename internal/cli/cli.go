// Package cli is the command line for what needs no flow source: flows,
// runs, artifacts, logs, tags and settings. The stepwise command serves it,
// and so does every flow program, for its own flow (`myflow dump
// latest/end`). Each command lives in its own file; tables are for people
// and --json is for tools.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"stepwise.dev/stepwise/client"
)

// Command is one subcommand.
type Command struct {
	Name    string
	Args    string // usage after the name
	Summary string
	Run     func(ctx context.Context, e *Env, args []string) error
}

// Inspect are the commands that read runs: flows, runs, dump, logs, tag,
// card.
var Inspect = []Command{
	{"flows", "", "list the flows that have runs in the namespace", flowsCmd},
	{"runs", "[FLOW]", "list the runs of a flow (or of all), newest first", runsCmd},
	{"dump", "PATHSPEC", "print the artifacts of a task (or the tasks of a run)", dumpCmd},
	{"logs", "PATHSPEC", "print the output of a task attempt", logsCmd},
	{"tag", "add|remove|list PATHSPEC [TAG...]", "change or list the tags of a run", tagCmd},
	{"card", "get|list PATHSPEC", "write a task's card as an HTML file, or list its cards", cardCmd},
}

// Settings are the commands that write and show the settings.
var Settings = []Command{
	{"configure", "[flags]", "write the config file (configure --help)", configureCmd},
	{"config", "show", "print the settings in force and where each came from", configShowCmd},
}

// Env is what every command gets.
type Env struct {
	stdout, stderr io.Writer
	prog           string
	flow           string // the flow of a flow program, "" for stepwise
	datastore      string
	metadata       string
	namespace      string
	json           bool
}

// usageError is a mistake on the command line: exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// UsageError is a mistake on the command line, for a command's Run to
// return: the command exits 2 and prints its usage.
func UsageError(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

// Options say which program runs the commands.
type Options struct {
	Prog     string    // the program's name, for messages
	Flow     string    // for a flow program: its flow, the default in pathspecs and runs
	Commands []Command // the commands it has
	Usage    string    // what it prints for help; empty for the list of Commands
}

// Usage lists commands and the flags they share.
func Usage(prog string, commands []Command) string {
	var b strings.Builder
	fmt.Fprintf(&b, "usage: %s <command> [flags] [arguments]\n\nCommands:\n", prog)
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	for _, c := range commands {
		fmt.Fprintf(tw, "  %s %s\t%s\n", c.Name, c.Args, c.Summary)
	}
	tw.Flush()
	b.WriteString(sharedHelp)
	return b.String()
}

const sharedHelp = `
Flags of every command that reads runs:
  --namespace NS   user:NAME (default: yours), a tag, or global
  --json           print JSON for tools
  --datastore, --metadata   override the configured stores

A pathspec is Flow/RunID[/step[/TaskID]], e.g. BranchJoin/1764340315123456/start/1;
RunID may be latest, the newest run in the namespace: BranchJoin/latest/end.
`

// Run runs the command named by args[0] and returns the exit code: 0, 1
// for a failure, 2 for a mistake on the command line.
func Run(ctx context.Context, o Options, args []string, stdout, stderr io.Writer) int {
	help := o.Usage
	if help == "" {
		help = Usage(o.Prog, o.Commands)
	}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stdout, help)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range o.Commands {
		if c.Name != args[0] {
			continue
		}
		e := &Env{stdout: stdout, stderr: stderr, prog: o.Prog, flow: o.Flow}
		err := c.Run(ctx, e, args[1:])
		var ue *usageError
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		case errors.As(err, &ue):
			fmt.Fprintf(stderr, "%s %s: %v\nusage: %s %s %s\n", o.Prog, c.Name, err, o.Prog, c.Name, c.Args)
			return 2
		default:
			fmt.Fprintf(stderr, "%s %s: %v\n", o.Prog, c.Name, err)
			return 1
		}
	}
	fmt.Fprintf(stderr, "%s: unknown command %q\n\n", o.Prog, args[0])
	fmt.Fprint(stderr, help)
	return 2
}

// Stderr is where a command writes what is not its output.
func (e *Env) Stderr() io.Writer { return e.stderr }

// Stdout is where a command writes its results.
func (e *Env) Stdout() io.Writer { return e.stdout }

// Prog is the program's name, for messages.
func (e *Env) Prog() string { return e.prog }

// JSON says whether --json was given.
func (e *Env) JSON() bool { return e.json }

// Datastore and Metadata are the --datastore and --metadata flags, empty
// when not given.
func (e *Env) Datastore() string { return e.datastore }

// Namespace is the --namespace flag, empty when not given.
func (e *Env) Namespace() string { return e.namespace }

// Metadata is the --metadata flag, empty when not given.
func (e *Env) Metadata() string { return e.metadata }

// PrintJSON prints v as indented JSON.
func (e *Env) PrintJSON(v any) error { return e.printJSON(v) }

// Table prints rows under a tab-separated header, aligned.
func (e *Env) Table(header string, rows [][]string) { e.table(header, rows) }

// Flags makes the flag set of a subcommand with the shared flags.
func (e *Env) Flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(e.prog+" "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.StringVar(&e.namespace, "namespace", "", "namespace: user:NAME (default: yours), a tag, or global")
	fs.BoolVar(&e.json, "json", false, "print JSON")
	fs.StringVar(&e.datastore, "datastore", "", "datastore (default: configured)")
	fs.StringVar(&e.metadata, "metadata", "", "metadata store (default: configured)")
	return fs
}

// Parse parses flags that may come before or after the arguments.
func Parse(fs *flag.FlagSet, args []string) ([]string, error) {
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

func (e *Env) client(ctx context.Context) (*client.Client, error) {
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
// may be "latest": the flow's newest run in the namespace. A flow program
// takes pathspecs without the flow: RunID/step, latest/end.
func (e *Env) pathspec(ctx context.Context, c *client.Client, spec string) (client.Pathspec, error) {
	if first, _, _ := strings.Cut(spec, "/"); e.flow != "" && (first == "latest" || isDigits(first)) {
		spec = e.flow + "/" + spec
	}
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

// open opens the client and resolves a pathspec with it.
func (e *Env) open(ctx context.Context, spec string) (*client.Client, client.Pathspec, error) {
	c, err := e.client(ctx)
	if err != nil {
		return nil, client.Pathspec{}, err
	}
	ps, err := e.pathspec(ctx, c, spec)
	if err != nil {
		c.Close()
		return nil, ps, err
	}
	return c, ps, nil
}

// openTask parses the flags and the one task pathspec of a command that
// reads a task, opens the client and reads the task.
func (e *Env) openTask(ctx context.Context, fs *flag.FlagSet, args []string) (*client.Client, *client.Task, error) {
	pos, err := Parse(fs, args)
	if err != nil {
		return nil, nil, err
	}
	if len(pos) != 1 {
		return nil, nil, &usageError{"name one task: Flow/RunID/step/TaskID"}
	}
	c, ps, err := e.open(ctx, pos[0])
	if err != nil {
		return nil, nil, err
	}
	if ps.Step == "" {
		c.Close()
		return nil, nil, &usageError{fmt.Sprintf("pathspec %q names a run; add /step/TaskID", pos[0])}
	}
	t, err := c.Task(ctx, ps.String())
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	return c, t, nil
}

func isDigits(s string) bool {
	return s != "" && strings.Trim(s, "0123456789") == ""
}

func (e *Env) printJSON(v any) error {
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func (e *Env) table(header string, rows [][]string) {
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
