package stepwise

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"time"

	"golang.org/x/term"

	inspect "stepwise.dev/stepwise/internal/cli"
	"stepwise.dev/stepwise/internal/config"
	"stepwise.dev/stepwise/internal/datastore"
	"stepwise.dev/stepwise/internal/graph"
	"stepwise.dev/stepwise/internal/runtime"
)

// Main is the whole main function of a flow program:
//
//	func main() { stepwise.Main(&MyFlow{N: 10}) }
//
// It reads the command line (run, show, check, ...), does what it says and
// exits. Field values of f are the defaults of the flow's parameters.
func Main(f Flow) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := Command(ctx, f, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

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
RUN is a run id, or latest: the newest run in your namespace (e.g. dump latest/end).
They take --namespace user:NAME|global and --json.

Every command takes --datastore DIR (default $STEPWISE_DATASTORE or ./.stepwise).
`

// Command runs one command line of a flow program and returns its exit
// code: 0 on success, 1 when the command failed, 2 for a usage error.
func Command(ctx context.Context, f Flow, args []string, stdout, stderr io.Writer) int {
	prog := filepath.Base(os.Args[0])
	if len(args) == 0 {
		fmt.Fprintf(stderr, usage, prog)
		return 2
	}
	decl, gr, gerr := declare(f)
	if decl == nil {
		fmt.Fprintln(stderr, gerr)
		return 1
	}
	c := &program{flow: f, decl: decl, gr: gr, gerr: gerr, stdout: stdout, stderr: stderr, prog: prog}
	switch args[0] {
	case "run":
		return c.run(ctx, args[1:])
	case "resume":
		return c.resume(ctx, args[1:])
	case "show":
		return c.show(args[1:])
	case "check":
		return c.check(args[1:])
	case "step":
		return c.step(ctx, args[1:])
	case "runs", "dump", "logs", "tag":
		return inspect.Run(ctx, inspect.Options{Prog: prog, Flow: gr.Flow, Commands: inspect.Inspect[1:], Usage: fmt.Sprintf(usage, prog)}, args, stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprintf(stdout, usage, prog)
		return 0
	default:
		fmt.Fprintf(stderr, "%s: unknown command %q\n\n", prog, args[0])
		fmt.Fprintf(stderr, usage, prog)
		return 2
	}
}

// program is a flow program's command line.
type program struct {
	flow           Flow
	decl           *Graph
	gr             *graph.Graph
	gerr           error
	stdout, stderr io.Writer
	prog           string
	datastore      string
	metadata       string
}

func (c *program) flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(c.prog+" "+name, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.StringVar(&c.datastore, "datastore", "", "datastore: a directory or s3://bucket/prefix (default: $STEPWISE_DATASTORE, the config file, or ./.stepwise)")
	return fs
}

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

func (c *program) graphErrors() int {
	if c.gerr == nil {
		return 0
	}
	var ge graph.Errors
	if errors.As(c.gerr, &ge) {
		fmt.Fprintf(c.stderr, "flow %s: the graph has %d problem(s):\n", c.gr.Flow, len(ge))
		for _, e := range ge {
			fmt.Fprintf(c.stderr, "  %s\n", e)
		}
	} else {
		fmt.Fprintf(c.stderr, "flow %s: %v\n", c.gr.Flow, c.gerr)
	}
	return 1
}

func (c *program) show(args []string) int {
	fs := c.flags("show")
	asJSON := fs.Bool("json", false, "print the graph as JSON")
	if code := c.parse(fs, args); code >= 0 {
		return code
	}
	if *asJSON {
		c.gr.WriteJSON(c.stdout)
	} else {
		c.gr.WriteText(c.stdout)
		if ps, err := params(c.decl.flow.Type().Elem()); err == nil && len(ps) > 0 {
			fmt.Fprintf(c.stdout, "\nParameters:\n")
			for _, p := range ps {
				fmt.Fprintf(c.stdout, "  --%s  %s (default %s)\n", p.Name, p.Help, formatParam(reflect.ValueOf(c.flow).Elem().FieldByIndex(p.field.Index)))
			}
		}
	}
	return c.graphErrors()
}

func (c *program) check(args []string) int {
	fs := c.flags("check")
	if code := c.parse(fs, args); code >= 0 {
		return code
	}
	if code := c.graphErrors(); code != 0 {
		return code
	}
	if _, err := params(c.decl.flow.Type().Elem()); err != nil {
		fmt.Fprintf(c.stderr, "flow %s: %v\n", c.gr.Flow, err)
		return 1
	}
	if err := runtime.CheckCapacity(c.gr, runtime.Machine()); err != nil {
		fmt.Fprintf(c.stderr, "flow %s: %v\n", c.gr.Flow, err)
		return 1
	}
	fmt.Fprintf(c.stdout, "flow %s: %d steps, graph OK\n", c.gr.Flow, len(c.gr.Steps))
	return 0
}

// runFlags are the flags shared by run and resume.
func (c *program) runFlags(fs *flag.FlagSet, req *runRequest) *tagList {
	fs.IntVar(&req.maxWorkers, "max-workers", 16, "tasks that may run at the same time")
	fs.BoolVar(&req.quiet, "quiet", false, "do not print a line when each task starts and finishes")
	fs.IntVar(&req.maxSplits, "max-num-splits", 10000, "the most tasks one foreach may fan out to")
	tags := &tagList{}
	fs.Var(tags, "tag", "add a tag to the run (repeatable)")
	return tags
}

type tagList []string

func (t *tagList) String() string     { return strings.Join(*t, ",") }
func (t *tagList) Set(s string) error { *t = append(*t, s); return nil }

func (c *program) run(ctx context.Context, args []string) int {
	fs := c.flags("run")
	var req runRequest
	tags := c.runFlags(fs, &req)
	ps, perr := params(c.decl.flow.Type().Elem())
	if perr != nil {
		fmt.Fprintf(c.stderr, "flow %s: %v\n", c.gr.Flow, perr)
		return 1
	}
	flow := reflect.New(c.decl.flow.Type().Elem())
	flow.Elem().Set(reflect.ValueOf(c.flow).Elem())
	vals := bindParams(fs, ps, flow)
	fs.Usage = func() {
		fmt.Fprintf(c.stderr, "usage: %s run [flags]\n\nRuns flow %s.\n\nFlags and parameters:\n", c.prog, c.gr.Flow)
		fs.PrintDefaults()
	}
	if code := c.parse(fs, args); code >= 0 {
		return code
	}
	if code := c.graphErrors(); code != 0 {
		return code
	}
	for _, p := range ps {
		if p.Required && !vals[p.Name].set {
			fmt.Fprintf(c.stderr, "flow %s: parameter --%s is required (%s)\n", c.gr.Flow, p.Name, p.Help)
			return 2
		}
	}
	if req.maxWorkers < 1 {
		fmt.Fprintf(c.stderr, "run: --max-workers must be at least 1, got %d\n", req.maxWorkers)
		return 2
	}
	req.params = paramValues(ps, flow)
	req.tags = *tags
	return c.execute(ctx, req)
}

func (c *program) resume(ctx context.Context, args []string) int {
	fs := c.flags("resume")
	var req runRequest
	var rr resumeRequest
	tags := c.runFlags(fs, &req)
	fs.StringVar(&rr.origin, "origin-run-id", "", "the run to resume (default: your latest run of this flow)")
	fs.Usage = func() {
		fmt.Fprintf(c.stderr, "usage: %s resume [STEP] [flags]\n\nRuns flow %s again from STEP (default: the first step that failed), reusing the\nresults of the steps before it from the origin run.\n\nFlags:\n", c.prog, c.gr.Flow)
		fs.PrintDefaults()
	}
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		rr.step, args = args[0], args[1:]
	}
	if code := c.parse(fs, args); code >= 0 {
		return code
	}
	if code := c.graphErrors(); code != 0 {
		return code
	}
	req.tags = *tags
	req.resume = &rr
	return c.execute(ctx, req)
}

func (c *program) execute(ctx context.Context, req runRequest) int {
	l, err := newLauncher(ctx, c.flow, c.decl, c.gr, c.datastore, c.stdout, c.stderr)
	if err != nil {
		fmt.Fprintln(c.stderr, err)
		return 1
	}
	defer l.close()
	if f, ok := c.stdout.(*os.File); ok {
		l.live = term.IsTerminal(int(f.Fd()))
	}
	runID, err := l.execute(ctx, req)
	if err != nil {
		if runID == "" {
			fmt.Fprintln(c.stderr, err)
		}
		return 1
	}
	return 0
}

// step runs one task in this process; the runtime starts it.
func (c *program) step(ctx context.Context, args []string) int {
	fs := c.flags("step")
	var spec taskSpec
	var inputs string
	fs.StringVar(&spec.Run, "run-id", "", "run id")
	fs.StringVar(&spec.Step, "step", "", "step name")
	fs.StringVar(&spec.Task, "task-id", "", "task id")
	fs.StringVar(&inputs, "input", "", "parent tasks, step/task, comma-separated")
	fs.IntVar(&spec.SplitIndex, "split-index", -1, "element index when the parent is a foreach")
	fs.IntVar(&spec.Attempt, "attempt", 0, "attempt number")
	fs.StringVar(&spec.CatchError, "catch-error", "", "record this failure instead of running the step")
	fs.StringVar(&c.metadata, "metadata", "", "metadata store: local or the URL of a service")
	if code := c.parse(fs, args); code >= 0 {
		return code
	}
	if code := c.graphErrors(); code != 0 {
		return code
	}
	if spec.Run == "" || spec.Step == "" || spec.Task == "" {
		fmt.Fprintf(c.stderr, "step: --run-id, --step and --task-id are required\n")
		return 2
	}

	ps, err := params(c.decl.flow.Type().Elem())
	if err != nil {
		fmt.Fprintln(c.stderr, err)
		return 1
	}
	ph := newPhases()
	defer ph.print(c.stderr)
	cfg, err := config.Load()
	if err != nil {
		fmt.Fprintln(c.stderr, err)
		return 1
	}
	if c.datastore != "" {
		cfg.Datastore.Value = c.datastore
	}
	if c.metadata != "" {
		cfg.Metadata.Value = c.metadata
	}
	store, meta, err := config.OpenStores(ctx, cfg)
	if err != nil {
		fmt.Fprintln(c.stderr, err)
		return 1
	}
	defer func() { meta.Close(); ph.mark("close") }()
	if key, ok := strings.CutPrefix(inputs, "@"); ok {
		r, _, err := store.Backend().Get(ctx, key)
		if err != nil {
			fmt.Fprintf(c.stderr, "step: cannot read the input list %s: %v\n", key, err)
			return 1
		}
		data, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			fmt.Fprintf(c.stderr, "step: cannot read the input list %s: %v\n", key, err)
			return 1
		}
		inputs = string(data)
	}
	if inputs != "" {
		spec.Inputs = strings.Split(inputs, ",")
	}
	ph.mark("open")
	x := &executor{decl: c.decl, gr: c.gr, store: store, meta: meta, params: ps, ph: ph}
	if err := x.execute(ctx, spec); err != nil {
		fmt.Fprintln(c.stderr, err)
		return 1
	}
	return 0
}

// runRecord is what the datastore keeps about a run as a whole.
type runRecord struct {
	Flow      string            `json:"flow"`
	Run       string            `json:"run"`
	Params    map[string]string `json:"params"`
	Started   time.Time         `json:"started"`
	MaxSplits int               `json:"max_splits,omitempty"` // widest foreach allowed
}

func runKey(flow, run string) string { return "runs/" + flow + "/" + run + "/run.json" }

func loadRun(ctx context.Context, store *datastore.Store, flow, run string) (*runRecord, error) {
	r, _, err := store.Backend().Get(ctx, runKey(flow, run))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("stepwise: run %s of flow %s is not in the datastore %s", run, flow, store.Backend())
		}
		return nil, err
	}
	defer r.Close()
	var rec runRecord
	if err := json.NewDecoder(r).Decode(&rec); err != nil {
		return nil, fmt.Errorf("stepwise: the record of run %s is damaged: %w", run, err)
	}
	return &rec, nil
}
