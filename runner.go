package stepwise

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	"stepwise.dev/stepwise/client"
	"stepwise.dev/stepwise/internal/config"
	"stepwise.dev/stepwise/internal/datastore"
	"stepwise.dev/stepwise/internal/graph"
	"stepwise.dev/stepwise/internal/metadata"
	"stepwise.dev/stepwise/internal/runtime"
)

// RunOptions are the settings of a run started from Go code.
type RunOptions struct {
	// Params are parameter values by flag name, as on the command line.
	Params map[string]string
	// Tags are user tags for the run.
	Tags []string
	// MaxWorkers bounds the tasks running at once (default 16).
	MaxWorkers int
	// MaxNumSplits bounds the width of one foreach (default 10,000).
	MaxNumSplits int
	// Datastore overrides the datastore setting (a directory for tests).
	Datastore string
	// Output receives the tasks' output and progress (default io.Discard).
	Output io.Writer
}

// ResumeOptions are the settings of a resume started from Go code.
type ResumeOptions struct {
	RunOptions
	// Step is where to resume; empty means the first step that failed.
	Step string
	// OriginRunID is the run to resume; empty means the latest run of the
	// flow in the user's namespace.
	OriginRunID string
}

// Run runs flow f from Go code (a test, another program) and returns the
// run as the client sees it. The tasks run as processes of the current
// binary, so a test binary needs steptest.Main in its TestMain. On failure
// the run is returned with the error, so its tasks can be inspected. The
// run keeps its stores open for the life of the process.
func Run(ctx context.Context, f Flow, o *RunOptions) (*client.Run, error) {
	if o == nil {
		o = &RunOptions{}
	}
	return start(ctx, f, o, nil)
}

// Resume runs flow f again from a step of an earlier run, reusing the
// results of the tasks before it; see ResumeOptions.
func Resume(ctx context.Context, f Flow, o *ResumeOptions) (*client.Run, error) {
	if o == nil {
		o = &ResumeOptions{}
	}
	return start(ctx, f, &o.RunOptions, o)
}

func start(ctx context.Context, f Flow, o *RunOptions, r *ResumeOptions) (*client.Run, error) {
	decl, gr, err := declare(f)
	if err != nil {
		return nil, err
	}
	out := o.Output
	if out == nil {
		out = io.Discard
	}
	l, err := newLauncher(ctx, f, decl, gr, o.Datastore, out, out)
	if err != nil {
		return nil, err
	}
	// The stores stay open: the returned run reads through them.
	flow := reflect.New(decl.flow.Type().Elem())
	flow.Elem().Set(reflect.ValueOf(f).Elem())
	for name, v := range o.Params {
		p, ok := l.param(name)
		if !ok {
			return nil, fmt.Errorf("stepwise: flow %s has no parameter %q (it has %s)", gr.Flow, name, l.paramNames())
		}
		if err := parseParam(flow.Elem().FieldByIndex(p.field.Index), v); err != nil {
			return nil, fmt.Errorf("stepwise: parameter %s: %w", name, err)
		}
	}
	req := runRequest{params: paramValues(l.params, flow), tags: o.Tags, maxWorkers: o.MaxWorkers, maxSplits: o.MaxNumSplits, quiet: true}
	if r != nil {
		req.resume = &resumeRequest{step: r.Step, origin: r.OriginRunID}
	}
	runID, err := l.execute(ctx, req)
	if runID == "" {
		return nil, err
	}
	c := client.New(l.store, l.meta, client.Global)
	run, rerr := c.Flow(gr.Flow).Run(ctx, runID)
	if rerr != nil {
		return nil, errors.Join(err, rerr)
	}
	return run, err
}

// launcher runs and resumes one flow: it owns the stores and starts the
// scheduler.
type launcher struct {
	flow    Flow
	decl    *Graph
	gr      *graph.Graph
	params  []param
	cfg     *config.Config
	store   *datastore.Store
	meta    metadata.Store
	dsArg   string
	out     io.Writer
	errOut  io.Writer
	live    bool
	exe     string
	metaArg string
	code    func() metadata.Code // the code version, computed in the background
}

func newLauncher(ctx context.Context, f Flow, decl *Graph, gr *graph.Graph, ds string, out, errOut io.Writer) (*launcher, error) {
	ps, err := params(decl.flow.Type().Elem())
	if err != nil {
		return nil, fmt.Errorf("flow %s: %w", gr.Flow, err)
	}
	cfg, err := config.Load()
	if err != nil {
		return nil, err
	}
	if ds != "" {
		cfg.Datastore = config.Value{Value: ds, Source: "flag --datastore"}
	}
	if strings.HasPrefix(cfg.Datastore.Value, "s3://") {
		// kept as is
	} else if abs, err := config.LocalDir(cfg.Datastore.Value); err == nil {
		cfg.Datastore.Value = abs
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("flow %s: cannot find this program's binary to start tasks: %w", gr.Flow, err)
	}
	code := sync.OnceValue(func() metadata.Code { return codeVersion(exe) })
	go code() // hashing the binary and asking git overlap with opening the stores
	store, meta, err := config.OpenStores(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &launcher{flow: f, decl: decl, gr: gr, params: ps, cfg: cfg, store: store, meta: meta,
		dsArg: cfg.Datastore.Value, metaArg: cfg.Metadata.Value, out: out, errOut: errOut, exe: exe, code: code}, nil
}

func (l *launcher) close() { l.meta.Close() }

func (l *launcher) param(name string) (param, bool) {
	for _, p := range l.params {
		if p.Name == name {
			return p, true
		}
	}
	return param{}, false
}

func (l *launcher) paramNames() string {
	var names []string
	for _, p := range l.params {
		names = append(names, "--"+p.Name)
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

type runRequest struct {
	params     map[string]string
	tags       []string
	maxWorkers int
	maxSplits  int
	quiet      bool
	resume     *resumeRequest
}

type resumeRequest struct {
	step   string
	origin string
}

// execute starts a run (or a resume) and waits for it. It returns the run
// id as soon as the run is recorded, with the run's error if any.
func (l *launcher) execute(ctx context.Context, req runRequest) (string, error) {
	if req.maxWorkers <= 0 {
		req.maxWorkers = 16
	}
	if req.maxSplits <= 0 {
		req.maxSplits = 10000
	}
	ph := newPhases()
	defer ph.print(l.errOut)
	capacity := runtime.Machine()
	if err := runtime.CheckCapacity(l.gr, capacity); err != nil {
		return "", fmt.Errorf("flow %s: cannot run: %w", l.gr.Flow, err)
	}
	for _, t := range req.tags {
		if err := checkTag(t); err != nil {
			return "", err
		}
	}
	var plan *resumePlan
	if req.resume != nil {
		var err error
		if plan, err = l.planResume(ctx, req.resume); err != nil {
			return "", err
		}
		req.params = plan.origin.Params
	}
	run := &metadata.Run{Flow: l.gr.Flow, Status: metadata.Running, User: l.cfg.User.Value,
		SystemTags: []string{"user:" + l.cfg.User.Value}, Tags: req.tags, Params: req.params, Code: l.code()}
	if plan != nil {
		run.Origin = plan.origin.ID
	}
	ph.mark("prepare")
	if err := l.newRun(ctx, run, req.maxSplits); err != nil {
		return "", err
	}
	ph.mark("create-run")
	runID := run.ID
	what := "run"
	if plan != nil {
		what = fmt.Sprintf("resume of run %s from step %s", plan.origin.ID, plan.from)
	}
	fmt.Fprintf(l.out, "Flow %s, run %s (%s, user %s)\n", l.gr.Flow, runID, what, l.cfg.User.Value)
	started := time.Now()
	cfg := runtime.Config{
		Graph:      l.gr,
		RunID:      runID,
		MaxWorkers: req.maxWorkers,
		Capacity:   capacity,
		Console:    runtime.NewConsole(l.out, l.live, req.quiet),
		RetryDelay: retryDelay(),
		Command: func(ctx context.Context, t *runtime.Task) (*exec.Cmd, error) {
			inputs := strings.Join(t.Inputs, ",")
			if len(t.Inputs) > maxInlineInputs {
				// A wide join's inputs go through the datastore, not the
				// command line, which has a length limit.
				key := inputsKey(l.gr.Flow, runID, t.Step, t.ID)
				if err := l.store.Backend().Put(ctx, key, strings.NewReader(inputs), int64(len(inputs))); err != nil {
					return nil, fmt.Errorf("cannot store the input list of task %s: %w", t.Path(), err)
				}
				inputs = "@" + key
			}
			cmd := exec.Command(l.exe, "step", "--datastore", l.dsArg, "--metadata", l.metaArg, "--run-id", runID,
				"--step", t.Step, "--task-id", t.ID, "--input", inputs,
				"--split-index", strconv.Itoa(t.SplitIndex), "--attempt", strconv.Itoa(t.Attempt))
			if t.CatchError != "" {
				cmd.Args = append(cmd.Args, "--catch-error", t.CatchError)
			}
			cmd.Env = append(os.Environ(), FlowEnv+"="+l.gr.Flow, config.EnvUser+"="+l.cfg.User.Value)
			return cmd, nil
		},
		Splits: func(ctx context.Context, t *runtime.Task) (int, error) {
			rec, err := l.store.GetTask(ctx, datastore.TaskPath{Flow: l.gr.Flow, Run: runID, Step: t.Step, Task: t.ID})
			if err != nil {
				return 0, err
			}
			return rec.Splits, nil
		},
		Logs: func(t *runtime.Task) (io.WriteCloser, io.WriteCloser) {
			p := datastore.TaskPath{Flow: l.gr.Flow, Run: runID, Step: t.Step, Task: t.ID}
			return newLogWriter(l.store.Backend(), datastore.LogPrefix(p, t.Attempt, "stdout")), newLogWriter(l.store.Backend(), datastore.LogPrefix(p, t.Attempt, "stderr"))
		},
		Failed: func(ctx context.Context, t *runtime.Task, err error) string {
			return l.recordFailure(ctx, runID, t, err)
		},
	}
	if plan != nil {
		cfg.Clone = func(ctx context.Context, t *runtime.Task) (bool, error) { return l.clone(ctx, plan, runID, t) }
	}
	stopHeartbeat := l.heartbeat(ctx, runID)
	err := runtime.Run(ctx, cfg)
	stopHeartbeat()
	ph.mark("tasks")
	status := metadata.Succeeded
	if err != nil {
		status = metadata.Failed
	}
	// The run's end is recorded even when ctx was canceled (Ctrl-C).
	if ferr := l.meta.FinishRun(context.WithoutCancel(ctx), l.gr.Flow, runID, status, time.Now().UTC()); ferr != nil && err == nil {
		err = ferr
	}
	ph.mark("finish-run")
	l.report(runID, started, err)
	return runID, err
}

// heartbeatInterval is how often the runtime records that a run is alive:
// metadata.HeartbeatInterval, or STEPWISE_HEARTBEAT_INTERVAL in tests.
func heartbeatInterval() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("STEPWISE_HEARTBEAT_INTERVAL")); err == nil && d > 0 {
		return d
	}
	return metadata.HeartbeatInterval
}

// heartbeat records every heartbeatInterval(), until stop is called, that
// the run's runtime is alive. A failure to record it is reported once and
// does not stop the run.
func (l *launcher) heartbeat(ctx context.Context, runID string) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(heartbeatInterval())
		defer tick.Stop()
		warned := false
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			err := l.meta.Heartbeat(ctx, l.gr.Flow, runID, time.Now().UTC())
			if err != nil && ctx.Err() == nil && !warned {
				fmt.Fprintf(l.errOut, "warning: cannot record that run %s is alive (the run goes on; readers may take it for lost): %v\n", runID, err)
				warned = true
			}
		}
	}()
	return func() { cancel(); <-done }
}

// report prints how the run ended, and on failure how to see and fix it.
func (l *launcher) report(runID string, started time.Time, err error) {
	took := time.Since(started).Round(time.Millisecond)
	if err == nil {
		fmt.Fprintf(l.out, "Run %s of flow %s succeeded in %s.\n", runID, l.gr.Flow, took)
		return
	}
	var te *runtime.TaskError
	switch {
	case errors.As(err, &te):
		fmt.Fprintf(l.errOut, "\nTask %s/%s/%s failed: %v.\n", l.gr.Flow, runID, te.Task, te.Err)
		if len(te.LastLine) > 0 {
			fmt.Fprintf(l.errOut, "Last output of the task:\n")
			for _, line := range te.LastLine {
				fmt.Fprintf(l.errOut, "    %s\n", line)
			}
		}
	case errors.Is(err, runtime.ErrInterrupted):
		fmt.Fprintf(l.errOut, "\nRun %s interrupted; running tasks were stopped.\n", runID)
	default:
		fmt.Fprintf(l.errOut, "\nRun %s: %v\n", runID, err)
	}
	fmt.Fprintf(l.errOut, "Run %s of flow %s failed after %s. Fix the cause, then continue where it stopped with:\n    %s resume --origin-run-id %s\n",
		runID, l.gr.Flow, took, progName(), runID)
}

// progName is how the user started this program, for the commands we
// suggest: the binary's path, or "go run <package>" under go run (whose
// binary is temporary).
func progName() string {
	if len(os.Args) > 0 && !strings.Contains(os.Args[0], "go-build") {
		return os.Args[0]
	}
	return "go run <this flow's package>"
}

// newRun records the run under a new id: microseconds since the epoch, so
// ids sort by start time; a taken id moves on to the next microsecond.
func (l *launcher) newRun(ctx context.Context, run *metadata.Run, maxSplits int) error {
	for {
		now := time.Now()
		run.ID = strconv.FormatInt(now.UnixMicro(), 10)
		run.Started = now.UTC()
		err := l.meta.CreateRun(ctx, run)
		if errors.Is(err, metadata.ErrExists) {
			time.Sleep(time.Microsecond)
			continue
		}
		if err != nil {
			return fmt.Errorf("flow %s: cannot record the run: %w", l.gr.Flow, err)
		}
		data, _ := json.Marshal(runRecord{Flow: run.Flow, Run: run.ID, Params: run.Params, Started: run.Started, MaxSplits: maxSplits})
		if err := l.store.Backend().Put(ctx, runKey(run.Flow, run.ID), strings.NewReader(string(data)), int64(len(data))); err != nil {
			return fmt.Errorf("flow %s: cannot record the run in the datastore %s: %w", l.gr.Flow, l.store.Backend(), err)
		}
		return nil
	}
}

// recordFailure records a failed attempt when the task process could not
// (it was killed, timed out or did not start), and returns the best
// description of the failure: the task's own when it recorded one.
func (l *launcher) recordFailure(ctx context.Context, runID string, t *runtime.Task, err error) string {
	ctx = context.WithoutCancel(ctx)
	task, gerr := l.meta.GetTask(ctx, l.gr.Flow, runID, t.Step, t.ID)
	if gerr == nil {
		for _, a := range task.Attempts {
			if a.N == t.Attempt && a.Status == metadata.Failed && a.Error != "" {
				return a.Error // the task recorded its own failure
			}
		}
	}
	a := metadata.Attempt{Flow: l.gr.Flow, Run: runID, Step: t.Step, Task: t.ID, N: t.Attempt, Status: metadata.Failed,
		Started: t.Started.UTC(), Ended: time.Now().UTC(), Error: err.Error()}
	if ferr := l.meta.FinishAttempt(ctx, a, nil); ferr != nil {
		fmt.Fprintf(l.errOut, "stepwise: cannot record the failure of task %s: %v\n", t.Path(), ferr)
	}
	return err.Error()
}

// codeVersion identifies the code of a run: the binary's hash, and the git
// commit when run from a checkout.
func codeVersion(exe string) metadata.Code {
	var c metadata.Code
	var wg sync.WaitGroup
	wg.Go(func() {
		if f, err := os.Open(exe); err == nil {
			h := sha256.New()
			if _, err := io.Copy(h, f); err == nil {
				c.BinarySHA256 = hex.EncodeToString(h.Sum(nil))
			}
			f.Close()
		}
	})
	wg.Go(func() {
		if out, err := exec.Command("git", "rev-parse", "HEAD").Output(); err == nil {
			c.GitCommit = strings.TrimSpace(string(out))
			if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil {
				c.GitDirty = len(strings.TrimSpace(string(st))) > 0
			}
		}
	})
	wg.Wait()
	return c
}

// maxInlineInputs is the most input tasks passed on a task's command line;
// more are written to the datastore under inputsKey.
const maxInlineInputs = 64

func inputsKey(flow, run, step, task string) string {
	return "runs/" + flow + "/" + run + "/" + step + "/" + task + "/inputs"
}

// retryDelay is the wait before a first retry; STEPWISE_RETRY_DELAY
// changes it (tests use a short one).
func retryDelay() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("STEPWISE_RETRY_DELAY")); err == nil {
		return d
	}
	return 0
}

// checkTag refuses tags that cannot be user tags.
func checkTag(t string) error {
	switch {
	case t == "":
		return errors.New("stepwise: a tag cannot be empty")
	case len(t) > 256:
		return fmt.Errorf("stepwise: tag %.20q... is longer than 256 characters", t)
	case strings.HasPrefix(t, "user:"), strings.HasPrefix(t, "runtime:"):
		return fmt.Errorf("stepwise: tag %q uses a system prefix (user:, runtime:); choose another tag", t)
	case strings.ContainsAny(t, "\n\t"):
		return fmt.Errorf("stepwise: tag %q contains a tab or newline", t)
	}
	return nil
}
