// Package flowcmd is the command line of a flow program: run, resume,
// show and check for people; task, create-run and finish-run for whatever
// drives a run (the launcher, a production scheduler); and the commands
// that read runs (runs, dump, logs, tag), as the stepwise command has them.
package flowcmd

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/term"

	"stepwise.dev/stepwise/internal/cli"
	"stepwise.dev/stepwise/internal/compute/local"
	"stepwise.dev/stepwise/internal/config"
	"stepwise.dev/stepwise/internal/flowdef"
	"stepwise.dev/stepwise/internal/graph"
	"stepwise.dev/stepwise/internal/launcher"
	"stepwise.dev/stepwise/internal/lifecycle"
	"stepwise.dev/stepwise/internal/names"
	"stepwise.dev/stepwise/internal/params"
	"stepwise.dev/stepwise/internal/resume"
)

const usage = `usage: %[1]s <command> [flags]

Commands:
  run      run the flow (run --help lists its parameters)
  resume   run again from a step, reusing the earlier steps of a run
  show     print the steps and their transitions (--json for tools)
  check    check the graph; exits 1 and names each problem

Commands that read this flow's runs (as the stepwise command does):
  runs                          list the runs, newest first
  dump RUN[/step[/TaskID]]      print the artifacts of a task (or the tasks of a run)
  logs RUN/step[/TaskID]        print the output of a task attempt
  tag add|remove|list RUN [TAG...]
  card get|list RUN/step[/TaskID]  write a task's card as an HTML file, or list its cards
RUN is a run id, or latest: the newest run in your namespace (e.g. dump latest/end).
They take --namespace user:NAME|global and --json.

Commands for a scheduler that drives runs without a launcher
(docs/design.md describes the contract):
  create-run [parameters] [--tag T]   record a new run; prints its id
  task --run-id R --step S --task-id ID --attempt N
                                      run one attempt of one task
  finish-run --run-id R               record the run's end, from its end step
  jobs [--kill] RUN                   list (or delete) a run's Jobs on Kubernetes

Every command takes --datastore DIR|s3://... and --metadata local|URL
(default: $STEPWISE_DATASTORE, $STEPWISE_METADATA, the config file, or
./.stepwise with its local metadata).
`

// Commands a driver of runs sends to a flow binary; steptest serves them
// from test binaries.
var DriverCommands = []string{"task", "create-run", "finish-run"}

// WarmArgs reads the command line of a warm process (task --warm; see
// local.Backend.Warm) from in. It returns nil for other command lines.
func WarmArgs(args []string, in io.Reader) ([]string, error) {
	if len(args) != 2 || args[0] != "task" || args[1] != local.WarmFlag {
		return nil, nil
	}
	line, err := bufio.NewReader(in).ReadBytes('\n')
	if err != nil {
		return nil, fmt.Errorf("a warm task process got no command line: %w", err)
	}
	var out []string
	if err := json.Unmarshal(line, &out); err != nil || len(out) == 0 || out[0] != "task" {
		return nil, fmt.Errorf("a warm task process got %.100q, not a task's command line", line)
	}
	return out, nil
}

// Command runs one command line of a flow program and returns its exit
// code: 0 on success, 1 when the command failed, 2 for a usage error.
func Command(ctx context.Context, def *flowdef.Def, args []string, stdout, stderr io.Writer) int {
	prog := filepath.Base(os.Args[0])
	if len(args) == 0 {
		fmt.Fprintf(stderr, usage, prog)
		return 2
	}
	c := &program{def: def, stdout: stdout, stderr: stderr, prog: prog}
	if warm, err := WarmArgs(args, os.Stdin); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", prog, err)
		return 2
	} else if warm != nil {
		args = warm
	}
	switch args[0] {
	case "run":
		return c.run(ctx, args[1:])
	case "resume":
		return c.resume(ctx, args[1:])
	case "show":
		return c.show(args[1:])
	case "check":
		return c.check(ctx, args[1:])
	case "task":
		return c.task(ctx, args[1:])
	case "create-run":
		return c.createRun(ctx, args[1:])
	case "finish-run":
		return c.finishRun(ctx, args[1:])
	case "jobs":
		return c.jobs(ctx, args[1:])
	case "runs", "dump", "logs", "tag", "card":
		return cli.Run(ctx, cli.Options{Prog: prog, Flow: def.Name(), Commands: cli.Inspect[1:], Usage: fmt.Sprintf(usage, prog)}, args, stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprintf(stdout, usage+extraUsage(), prog)
		return 0
	default:
		if x, ok := extra(args[0]); ok {
			return x.Run(ctx, &Env{p: c}, args[1:])
		}
		if imp, ok := knownExtras[args[0]]; ok {
			fmt.Fprintf(stderr, "%s: command %s comes with the Kubernetes backend; add to the flow program\n\timport _ %q\nand build it again\n", prog, args[0], imp)
			return 2
		}
		fmt.Fprintf(stderr, "%s: unknown command %q\n\n", prog, args[0])
		fmt.Fprintf(stderr, usage, prog)
		return 2
	}
}

// program is a flow program's command line.
type program struct {
	def            *flowdef.Def
	stdout, stderr io.Writer
	prog           string
	stores         config.Overrides
}

func (c *program) flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(c.prog+" "+name, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.StringVar(&c.stores.Datastore, "datastore", "", "datastore: a directory or s3://bucket/prefix (default: $STEPWISE_DATASTORE, the config file, or ./.stepwise)")
	fs.StringVar(&c.stores.Metadata, "metadata", "", "metadata store: local or the URL of a metadata service (default: $STEPWISE_METADATA, the config file, or local)")
	return fs
}

// parse parses flags; it returns an exit code, or -1 to go on.
func (c *program) parse(fs *flag.FlagSet, args []string) int {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(c.stderr, "%s: unexpected argument %q; flags start with --\n", fs.Name(), fs.Arg(0))
		return 2
	}
	return -1
}

// problems prints why the flow cannot run, if it cannot: 1, else 0.
func (c *program) problems() int {
	if c.def.GraphErr != nil {
		var ge graph.Errors
		if errors.As(c.def.GraphErr, &ge) {
			fmt.Fprintf(c.stderr, "flow %s: the graph has %d problem(s):\n", c.def.Name(), len(ge))
			for _, e := range ge {
				fmt.Fprintf(c.stderr, "  %s\n", e)
			}
		} else {
			fmt.Fprintf(c.stderr, "flow %s: %v\n", c.def.Name(), c.def.GraphErr)
		}
		return 1
	}
	if c.def.ParamsErr != nil {
		fmt.Fprintf(c.stderr, "flow %s: %v\n", c.def.Name(), c.def.ParamsErr)
		return 1
	}
	return 0
}

// settings loads the settings in force with this command's flags.
func (c *program) settings() (*config.Config, error) {
	o := c.stores
	o.Source = "flag"
	return config.Load(o)
}

// open opens the stores of the settings in force.
func (c *program) open(ctx context.Context) (*config.Config, lifecycle.Stores, error) {
	cfg, err := c.settings()
	if err != nil {
		return nil, lifecycle.Stores{}, err
	}
	data, meta, err := cfg.Open(ctx)
	if err != nil {
		return nil, lifecycle.Stores{}, err
	}
	return cfg, lifecycle.Stores{Data: data, Meta: meta}, nil
}

func (c *program) show(args []string) int {
	fs := c.flags("show")
	asJSON := fs.Bool("json", false, "print the graph as JSON")
	if code := c.parse(fs, args); code >= 0 {
		return code
	}
	g := c.def.Graph
	if *asJSON {
		g.WriteJSON(c.stdout)
	} else {
		g.WriteText(c.stdout)
		if len(c.def.Params) > 0 {
			fmt.Fprintf(c.stdout, "\nParameters:\n")
			for _, p := range c.def.Params {
				fmt.Fprintf(c.stdout, "  --%s  %s (default %s)\n", p.Name, p.Help, params.Format(p.In(c.def.Defaults)))
			}
		}
	}
	if c.def.GraphErr != nil {
		return c.problems()
	}
	return 0
}

func (c *program) check(ctx context.Context, args []string) int {
	fs := c.flags("check")
	compute := fs.String("compute", "", "check that every step can run on this compute backend")
	if code := c.parse(fs, args); code >= 0 {
		return code
	}
	if code := c.problems(); code != 0 {
		return code
	}
	l := &launcher.Launcher{Def: c.def}
	if err := l.Check(ctx, *compute); err != nil {
		fmt.Fprintf(c.stderr, "flow %s: %v\n", c.def.Name(), err)
		return 1
	}
	fmt.Fprintf(c.stdout, "flow %s: %d steps, graph OK\n", c.def.Name(), len(c.def.Graph.Steps))
	return 0
}

// runOptions are the flags shared by run and resume.
type runOptions struct {
	req    launcher.Request
	tags   tagList
	system tagList
}

func (c *program) runFlags(fs *flag.FlagSet, o *runOptions) {
	fs.IntVar(&o.req.MaxWorkers, "max-workers", launcher.DefaultMaxWorkers, "tasks that may run at the same time")
	fs.BoolVar(&o.req.Quiet, "quiet", false, "do not print a line when each task starts and finishes")
	fs.IntVar(&o.req.MaxSplits, "max-num-splits", launcher.DefaultMaxSplits, "the most tasks one foreach may fan out to")
	fs.StringVar(&o.req.Compute, "compute", "", "run every step on this compute backend (local runs everything here, whatever the graph says)")
	fs.Var(&o.tags, "tag", "add a tag to the run (repeatable)")
	o.req.ComputeSettings = map[string]string{}
	ComputeSettings(fs, o.req.ComputeSettings)
	fs.DurationVar(&o.req.RetryDelay, "retry-delay", 0, "wait before the first retry of a failed task; doubles with each retry (default 2s)")
	fs.DurationVar(&o.req.Heartbeat, "heartbeat", 0, "how often the run and its tasks record that they are alive (default 10s)")
	fs.StringVar(&o.req.Namespace, "namespace", "", "the run's namespace: production:TOKEN for a deployed flow (default: user:NAME of the user)")
	fs.Var(&o.system, "system-tag", "a system tag, e.g. runtime:cronjob:NAME (repeatable)")
	fs.StringVar(&o.req.ResumeKey, "resume-key", "", "continue the latest run of this key unless it succeeded, instead of starting over (for a launcher its scheduler may start again, e.g. a CronJob's pod)")
}

// check refuses values that make no sense, as usage errors.
func (o *runOptions) check() error {
	if o.req.MaxWorkers < 1 {
		return fmt.Errorf("--max-workers must be at least 1, got %d", o.req.MaxWorkers)
	}
	if o.req.MaxSplits < 1 {
		return fmt.Errorf("--max-num-splits must be at least 1, got %d", o.req.MaxSplits)
	}
	if o.req.RetryDelay < 0 || o.req.Heartbeat < 0 {
		return fmt.Errorf("--retry-delay and --heartbeat cannot be negative")
	}
	for _, t := range o.tags {
		if err := CheckTag(t); err != nil {
			return err
		}
	}
	o.req.Tags = o.tags
	if err := checkSystemTags(o.req.Namespace, o.system); err != nil {
		return err
	}
	o.req.SystemTags = o.system
	if o.req.ResumeKey != "" {
		if err := names.SystemTag(launcher.ResumeKeyTag(o.req.ResumeKey)); err != nil {
			return fmt.Errorf("--resume-key: %w", err)
		}
	}
	return nil
}

// checkSystemTags refuses a namespace other than user:NAME or
// production:TOKEN, and malformed system tags.
func checkSystemTags(namespace string, system []string) error {
	if namespace != "" && !strings.HasPrefix(namespace, "production:") && !strings.HasPrefix(namespace, "user:") {
		return fmt.Errorf("--namespace %q: a run's namespace is user:NAME or production:TOKEN", namespace)
	}
	for _, t := range append([]string{namespace}, system...) {
		if t == "" {
			continue
		}
		if err := names.SystemTag(t); err != nil {
			return err
		}
	}
	return nil
}

type tagList []string

func (t *tagList) String() string     { return strings.Join(*t, ",") }
func (t *tagList) Set(s string) error { *t = append(*t, s); return nil }

// bindParams binds the flow's parameters to fs; after parsing, values
// returns them in the run record's form, or the missing required one.
func (c *program) bindParams(fs *flag.FlagSet) (values func() (map[string]string, error)) {
	flow := c.def.New()
	vals := params.Bind(fs, c.def.Params, flow)
	return func() (map[string]string, error) {
		for _, p := range c.def.Params {
			if p.Required && !vals[p.Name].Given {
				return nil, fmt.Errorf("flow %s: parameter --%s is required (%s)", c.def.Name(), p.Name, p.Help)
			}
		}
		return params.Values(c.def.Params, flow), nil
	}
}

func (c *program) run(ctx context.Context, args []string) int {
	fs := c.flags("run")
	var o runOptions
	c.runFlags(fs, &o)
	if c.def.ParamsErr != nil {
		return c.problems()
	}
	values := c.bindParams(fs)
	fs.Usage = func() {
		fmt.Fprintf(c.stderr, "usage: %s run [flags]\n\nRuns flow %s.\n\nFlags and parameters:\n", c.prog, c.def.Name())
		fs.PrintDefaults()
	}
	if code := c.parse(fs, args); code >= 0 {
		return code
	}
	if code := c.problems(); code != 0 {
		return code
	}
	if err := o.check(); err != nil {
		fmt.Fprintf(c.stderr, "run: %v\n", err)
		return 2
	}
	vals, err := values()
	if err != nil {
		fmt.Fprintln(c.stderr, err)
		return 2
	}
	o.req.Params = vals
	if o.req.ResumeKey != "" {
		ctx = c.detach(ctx, o.req.ResumeKey)
	}
	return c.execute(ctx, o.req)
}

// detach is the context of a launcher that its scheduler starts again
// (run --resume-key): a scheduler stops it with SIGTERM to move it (a
// node drained, a pod deleted), so on a signal it exits at once and
// leaves the run's tasks running and the run open, for the launcher
// started in its place to resume, rather than stopping them and failing
// the run as a person's Ctrl-C does.
func (c *program) detach(ctx context.Context, key string) context.Context {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sig
		fmt.Fprintf(c.stderr, "run: %v: stopping now; the run's tasks go on, and a launcher started again with --resume-key %s resumes the run\n", s, key)
		os.Exit(143)
	}()
	return context.WithoutCancel(ctx)
}

func (c *program) resume(ctx context.Context, args []string) int {
	fs := c.flags("resume")
	var o runOptions
	var rr resume.Request
	c.runFlags(fs, &o)
	fs.StringVar(&rr.Origin, "origin-run-id", "", "the run to resume (default: your latest run of this flow)")
	fs.Usage = func() {
		fmt.Fprintf(c.stderr, "usage: %s resume [STEP] [flags]\n\nRuns flow %s again from STEP (default: the first step that failed), reusing the\nresults of the steps before it from the origin run.\n\nFlags:\n", c.prog, c.def.Name())
		fs.PrintDefaults()
	}
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		rr.Step, args = args[0], args[1:]
	}
	if code := c.parse(fs, args); code >= 0 {
		return code
	}
	if code := c.problems(); code != 0 {
		return code
	}
	if err := o.check(); err != nil {
		fmt.Fprintf(c.stderr, "resume: %v\n", err)
		return 2
	}
	o.req.Resume = &rr
	return c.execute(ctx, o.req)
}

func (c *program) execute(ctx context.Context, req launcher.Request) int {
	l, err := c.launcher(ctx)
	if err != nil {
		fmt.Fprintln(c.stderr, err)
		return 1
	}
	defer l.Stores.Meta.Close()
	if f, ok := c.stdout.(*os.File); ok {
		l.Live = term.IsTerminal(int(f.Fd()))
	}
	if req.Resume != nil {
		req.Resume.User = l.User
	}
	runID, err := l.Execute(ctx, req)
	if err != nil {
		if runID == "" {
			fmt.Fprintln(c.stderr, err)
		}
		return 1
	}
	return 0
}

// launcher opens the stores and makes the launcher for this program.
func (c *program) launcher(ctx context.Context) (*launcher.Launcher, error) {
	l := &launcher.Launcher{Def: c.def, Out: c.stdout, ErrOut: c.stderr}
	l.Code() // hashing the binary and asking git overlap with opening the stores
	cfg, st, err := c.open(ctx)
	if err != nil {
		return nil, err
	}
	l.Stores, l.Datastore, l.Metadata, l.User = st, cfg.Datastore.Value, cfg.Metadata.Value, cfg.User.Value
	l.Settings = func(name string) string { return cfg.Compute(name).Value }
	return l, nil
}
