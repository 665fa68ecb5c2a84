// Package launcher drives a run from one process: it creates the run (or a
// resume of one), starts its tasks through the scheduler on their compute
// backends, records that the run is alive, finishes it and tells the user
// how it went. A production scheduler does the same without a launcher,
// through the flow binary's create-run, task and finish-run commands.
package launcher

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"stepwise.dev/stepwise/internal/compute"
	"stepwise.dev/stepwise/internal/console"
	"stepwise.dev/stepwise/internal/datastore"
	"stepwise.dev/stepwise/internal/executor"
	"stepwise.dev/stepwise/internal/flowdef"
	"stepwise.dev/stepwise/internal/lifecycle"
	"stepwise.dev/stepwise/internal/metadata"
	"stepwise.dev/stepwise/internal/resume"
	"stepwise.dev/stepwise/internal/scheduler"
	"stepwise.dev/stepwise/internal/timing"

	_ "stepwise.dev/stepwise/internal/compute/local" // tasks run here unless a step says otherwise
)

// Defaults of a run.
const (
	DefaultMaxWorkers = 16
	DefaultMaxSplits  = 10000
)

// Launcher runs and resumes one flow over open stores.
type Launcher struct {
	Def    *flowdef.Def
	Stores lifecycle.Stores
	// Datastore and Metadata are the settings the tasks get, so that they
	// open the same stores.
	Datastore, Metadata string
	User                string
	// Out receives task output and progress, ErrOut problems.
	Out, ErrOut io.Writer
	// Live draws a status line (for a terminal).
	Live bool
	// Settings reads a compute backend's setting in force by name
	// ("kubernetes.namespace"); nil reads none.
	Settings func(name string) string

	codeOnce sync.Once
	code     metadata.Code
}

// Request is one run or resume.
type Request struct {
	Params     map[string]string // in the run record's form
	Tags       []string          // checked user tags
	MaxWorkers int
	MaxSplits  int
	Quiet      bool
	Resume     *resume.Request
	// Compute, when set, runs every step on that backend, whatever the
	// graph says ("local" keeps a flow runnable on a laptop).
	Compute string
	// ComputeSettings ("kubernetes.namespace" -> "ml") come before the
	// settings in force (run --compute-setting).
	ComputeSettings map[string]string
	// Backends replace the registered backends of those names (tests).
	Backends map[string]compute.Backend
	// RetryDelay is the wait before a first retry (default 2s);
	// Heartbeat how often the run and its tasks record that they are alive
	// (default metadata.HeartbeatInterval); KillGrace how long a task gets
	// to stop when the run stops (default 3s).
	RetryDelay, Heartbeat, KillGrace time.Duration
	// Namespace, when set, is the run's namespace instead of the user's
	// (production:TOKEN for a deployed flow); SystemTags are more system
	// tags (e.g. runtime:cronjob:NAME).
	Namespace  string
	SystemTags []string
	// ResumeKey, when set, makes a launcher that its scheduler may start
	// again (a CronJob's pod) continue its run instead of starting over:
	// the latest run tagged with the key is resumed unless it succeeded
	// (then there is nothing to do), and a new run gets the tag.
	ResumeKey string
}

// ResumeKeyTag is the system tag of the runs of a resume key.
func ResumeKeyTag(key string) string { return "runtime:resume-key:" + key }

// Code starts finding the code version in the background; Execute waits
// for it.
func (l *Launcher) Code() {
	go l.CodeVersion()
}

// CodeVersion is the code version of this program (see codeVersion).
func (l *Launcher) CodeVersion() metadata.Code {
	l.codeOnce.Do(func() {
		if exe, err := os.Executable(); err == nil {
			l.code = codeVersion(exe)
		}
	})
	return l.code
}

// backends opens the compute backend of every step.
func (l *Launcher) backends(ctx context.Context, req Request) (func(step string) compute.Backend, error) {
	byName := map[string]compute.Backend{}
	byStep := map[string]compute.Backend{}
	for _, s := range l.Def.Graph.Steps {
		name := req.Compute
		if name == "" {
			name = s.Compute
		}
		if name == "" {
			name = "local"
		}
		b := byName[name]
		if b == nil {
			b = req.Backends[name]
		}
		if b == nil {
			var err error
			env := compute.Env{Flow: l.Def.Name(), User: l.User, Datastore: l.Datastore, Metadata: l.Metadata, Data: l.Stores.Data,
				Settings: func(n string) string {
					if v, ok := req.ComputeSettings[name+"."+n]; ok {
						return v
					}
					if l.Settings == nil {
						return ""
					}
					return l.Settings(name + "." + n)
				}}
			if b, err = compute.Open(ctx, name, env); err != nil {
				return nil, fmt.Errorf("flow %s: step %s runs on %q: %w", l.Def.Name(), s.Name, name, err)
			}
		}
		byName[name] = b
		byStep[s.Name] = b
	}
	return func(step string) compute.Backend { return byStep[step] }, nil
}

// warmer is a backend that starts task processes ahead (local.Backend).
type warmer interface {
	Warm(env []string, n int)
}

// Check refuses, before a run, steps that can never run on their compute
// backend (compute, when set, replaces every step's).
func (l *Launcher) Check(ctx context.Context, compute string) error {
	backend, err := l.backends(ctx, Request{Compute: compute})
	if err != nil {
		return err
	}
	return scheduler.Check(l.Def.Graph, backend)
}

// Execute starts a run (or a resume) and waits for it. It returns the run
// id as soon as the run is recorded, with the run's error if any.
func (l *Launcher) Execute(ctx context.Context, req Request) (string, error) {
	g := l.Def.Graph
	if req.MaxWorkers <= 0 {
		req.MaxWorkers = DefaultMaxWorkers
	}
	if req.MaxSplits <= 0 {
		req.MaxSplits = DefaultMaxSplits
	}
	ph := timing.New()
	defer ph.Print(l.ErrOut)
	backend, err := l.backends(ctx, req)
	if err != nil {
		return "", err
	}
	if err := scheduler.Check(g, backend); err != nil {
		return "", fmt.Errorf("flow %s: cannot run: %w", g.Flow, err)
	}
	env := []string{"STEPWISE_USER=" + l.User}
	// The process of the first task starts while the run is created.
	if w, ok := backend("start").(warmer); ok {
		w.Warm(env, 1)
	}
	defer func() {
		for _, s := range g.Steps {
			if c, ok := backend(s.Name).(io.Closer); ok {
				c.Close()
			}
		}
	}()
	if req.ResumeKey != "" {
		tag := ResumeKeyTag(req.ResumeKey)
		req.SystemTags = append(req.SystemTags, tag)
		runs, err := l.Stores.Meta.ListRuns(ctx, metadata.RunFilter{Flow: g.Flow, Tags: []string{tag}, Limit: 1})
		if err != nil {
			return "", fmt.Errorf("flow %s: cannot look for the run of resume key %s: %w", g.Flow, req.ResumeKey, err)
		}
		if len(runs) > 0 {
			if runs[0].Status == metadata.Succeeded {
				fmt.Fprintf(l.Out, "Flow %s: run %s of resume key %s succeeded already; nothing to do\n", g.Flow, runs[0].ID, req.ResumeKey)
				return runs[0].ID, nil
			}
			fmt.Fprintf(l.Out, "Flow %s: run %s of resume key %s did not finish (its launcher stopped); resuming it\n", g.Flow, runs[0].ID, req.ResumeKey)
			req.Resume = &resume.Request{Origin: runs[0].ID, User: l.User}
		}
	}
	var plan *resume.Plan
	if req.Resume != nil {
		if plan, err = resume.New(ctx, g, l.Stores, *req.Resume, l.ErrOut); err != nil {
			return "", err
		}
		req.Params = plan.Origin.Params
	}
	n := lifecycle.New{Flow: g.Flow, User: l.User, Params: req.Params, Tags: req.Tags, Code: l.CodeVersion(), MaxSplits: req.MaxSplits,
		Namespace: req.Namespace, SystemTags: req.SystemTags, Graph: g}
	if plan != nil {
		n.Origin = plan.Origin.ID
	}
	ph.Mark("prepare")
	run, err := lifecycle.Create(ctx, l.Stores, n)
	if err != nil {
		return "", err
	}
	ph.Mark("create-run")
	runID := run.ID
	what := "run"
	if plan != nil {
		what = fmt.Sprintf("resume of run %s from step %s", plan.Origin.ID, plan.From)
	}
	fmt.Fprintf(l.Out, "Flow %s, run %s (%s, user %s)\n", g.Flow, runID, what, l.User)
	started := time.Now()
	// The records of local tasks are applied in the background.
	records := executor.NewApplier(ctx, l.Stores.Meta)
	cfg := scheduler.Config{
		Graph:      g,
		RunID:      runID,
		MaxWorkers: req.MaxWorkers,
		Backend:    backend,
		Console:    console.New(l.Out, l.Live, req.Quiet),
		RetryDelay: req.RetryDelay,
		KillGrace:  req.KillGrace,
		Spec: func(ctx context.Context, t *scheduler.Task) (compute.Spec, error) {
			ts := executor.Spec{Flow: g.Flow, Run: runID, Step: t.Step, Task: t.ID, Attempt: t.Attempt, CatchError: t.CatchError,
				Datastore: l.Datastore, Metadata: l.Metadata, Heartbeat: req.Heartbeat, Launcher: viaLauncher(backend(t.Step))}
			cs := compute.Spec{Flow: g.Flow, Run: runID, Step: t.Step, Task: t.ID, Attempt: t.Attempt, Args: ts.Args(),
				Env: env}
			if ts.Launcher {
				cs.Records = records.Stream()
			}
			return cs, nil
		},
		Logs: func(t *scheduler.Task) (io.WriteCloser, io.WriteCloser) {
			if !viaLauncher(backend(t.Step)) {
				return nil, nil
			}
			p := datastore.TaskPath{Flow: g.Flow, Run: runID, Step: t.Step, Task: t.ID}
			b := l.Stores.Data.Backend()
			return executor.LogWriter(b, p, t.Attempt, "stdout"), executor.LogWriter(b, p, t.Attempt, "stderr")
		},
		Splits: func(ctx context.Context, t *scheduler.Task) (int, error) {
			rec, err := l.Stores.Data.GetTask(ctx, datastore.TaskPath{Flow: g.Flow, Run: runID, Step: t.Step, Task: t.ID})
			if err != nil {
				return 0, err
			}
			return rec.Splits, nil
		},
		Failed: func(ctx context.Context, t *scheduler.Task, err error) string {
			if ferr := records.Flush(); ferr != nil {
				fmt.Fprintf(l.ErrOut, "stepwise: %v\n", ferr)
			}
			return l.recordFailure(ctx, runID, t, err)
		},
		// Task processes start ahead of their tasks, as many as will start
		// soon: each waits, initialised, for its task's command line.
		Ahead: func(b compute.Backend, n int) {
			if w, ok := b.(warmer); ok {
				w.Warm(env, n)
			}
		},
	}
	if plan != nil {
		cfg.Clone = func(ctx context.Context, t *scheduler.Task) (bool, error) { return plan.Clone(ctx, runID, t) }
	}
	stopHeartbeat := l.heartbeat(ctx, runID, req.Heartbeat)
	err = scheduler.Run(ctx, cfg)
	stopHeartbeat()
	if rerr := records.Close(); rerr != nil {
		err = errors.Join(err, fmt.Errorf("the tasks ran, but their records could not all be kept in the metadata store: %w", rerr))
	}
	ph.Mark("tasks")
	status := metadata.Succeeded
	if err != nil {
		status = metadata.Failed
	}
	if ferr := l.finish(runID, status); ferr != nil {
		err = errors.Join(err, ferr)
	}
	ph.Mark("finish-run")
	l.report(runID, started, err)
	return runID, err
}

// viaLauncher says whether tasks on b hand their output and their records
// to the launcher: processes on this machine do (a pipe keeps every line of
// output even when the task is killed, and one writer of the metadata
// store is faster than many); tasks elsewhere write their own.
func viaLauncher(b compute.Backend) bool {
	c, ok := b.(compute.Channel)
	return ok && c.RecordsChannel()
}

// finish records the run's end, trying again for two minutes while a store
// is away; it says what happened.
func (l *Launcher) finish(runID string, status metadata.Status) error {
	ctx := context.Background()
	flow := l.Def.Name()
	delay := time.Second
	deadline := time.Now().Add(2 * time.Minute)
	for {
		err := lifecycle.Finish(ctx, l.Stores, flow, runID, status)
		if err == nil {
			return nil
		}
		if time.Now().Add(delay).After(deadline) {
			return fmt.Errorf("run %s ended %s, but that could not be recorded for two minutes: %w; readers will show it as lost, and its end is kept in the datastore where it could be written", runID, status, err)
		}
		fmt.Fprintf(l.ErrOut, "stepwise: run %s ended %s, but: %v; trying again in %s\n", runID, status, err, delay)
		time.Sleep(delay)
		delay = min(2*delay, 15*time.Second)
	}
}

// heartbeat records every interval, until stop is called, that the run's
// launcher is alive. A failure to record it is reported once and does not
// stop the run.
func (l *Launcher) heartbeat(ctx context.Context, runID string, every time.Duration) (stop func()) {
	return lifecycle.Heartbeat(ctx, every, func(ctx context.Context, at time.Time) error {
		return l.Stores.Meta.Heartbeat(ctx, l.Def.Name(), runID, at)
	}, func(err error) {
		fmt.Fprintf(l.ErrOut, "warning: cannot record that run %s is alive (the run goes on; readers may take it for lost): %v\n", runID, err)
	})
}

// report prints how the run ended, and on failure how to see and fix it.
func (l *Launcher) report(runID string, started time.Time, err error) {
	flow := l.Def.Name()
	took := time.Since(started).Round(time.Millisecond)
	if err == nil {
		fmt.Fprintf(l.Out, "Run %s of flow %s succeeded in %s.\n", runID, flow, took)
		return
	}
	var te *scheduler.TaskError
	switch {
	case errors.As(err, &te):
		fmt.Fprintf(l.ErrOut, "\nTask %s/%s/%s/%s failed: %s.\n", flow, runID, te.Step, te.ID, te.Reason)
		if len(te.LastLine) > 0 {
			fmt.Fprintf(l.ErrOut, "Last output of the task:\n")
			for _, line := range te.LastLine {
				fmt.Fprintf(l.ErrOut, "    %s\n", line)
			}
		}
	case errors.Is(err, scheduler.ErrInterrupted):
		fmt.Fprintf(l.ErrOut, "\nRun %s interrupted; running tasks were stopped.\n", runID)
	default:
		fmt.Fprintf(l.ErrOut, "\nRun %s: %v\n", runID, err)
	}
	fmt.Fprintf(l.ErrOut, "Run %s of flow %s failed after %s. Fix the cause, then continue where it stopped with:\n    %s resume --origin-run-id %s\n",
		runID, flow, took, progName(), runID)
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

// recordFailure records a failed attempt when the task process could not
// (it was killed, timed out or did not start), and returns the best
// description of the failure: the task's own when it recorded one.
func (l *Launcher) recordFailure(ctx context.Context, runID string, t *scheduler.Task, err error) string {
	ctx = context.WithoutCancel(ctx)
	flow := l.Def.Name()
	task, gerr := l.Stores.Meta.GetTask(ctx, flow, runID, t.Step, t.ID)
	if gerr == nil {
		for _, a := range task.Attempts {
			if a.N == t.Attempt && a.Status == metadata.Failed && a.Error != "" {
				return a.Error // the task recorded its own failure
			}
		}
	}
	a := metadata.Attempt{Flow: flow, Run: runID, Step: t.Step, Task: t.ID, N: t.Attempt, Status: metadata.Failed,
		Started: t.Started.UTC(), Ended: time.Now().UTC(), Error: err.Error()}
	if ferr := l.Stores.Meta.FinishAttempt(ctx, a, nil); ferr != nil {
		fmt.Fprintf(l.ErrOut, "stepwise: cannot record the failure of task %s: %v\n", t.Path(), ferr)
	}
	return err.Error()
}
