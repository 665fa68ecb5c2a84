package stepwise

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"stepwise.dev/stepwise/client"
	"stepwise.dev/stepwise/internal/config"
	"stepwise.dev/stepwise/internal/flowcmd"
	"stepwise.dev/stepwise/internal/launcher"
	"stepwise.dev/stepwise/internal/lifecycle"
	"stepwise.dev/stepwise/internal/params"
	"stepwise.dev/stepwise/internal/resume"
	"stepwise.dev/stepwise/internal/scheduler"
)

// RunOptions are the settings of a run started from Go code. The zero
// value runs with the defaults and the settings in force.
type RunOptions struct {
	// Params are parameter values by flag name, as on the command line.
	Params map[string]string
	// Tags are user tags for the run.
	Tags []string
	// MaxWorkers bounds the tasks running at once; 0 means 16.
	MaxWorkers int
	// MaxNumSplits bounds the width of one foreach; 0 means 10,000.
	MaxNumSplits int
	// Datastore overrides the datastore setting: a directory, or
	// s3://bucket/prefix.
	Datastore string
	// Metadata overrides the metadata setting: "local" or the URL of a
	// metadata service. When Datastore is a local directory and Metadata
	// is empty, the run records into that directory ("local"), never into
	// a team's service: a test with a temporary datastore stays apart.
	Metadata string
	// Compute, when set, runs every step on that compute backend.
	Compute string
	// Output receives the tasks' output and progress (default io.Discard).
	Output io.Writer
	// RetryDelay is the wait before the first retry of a failed task
	// (default 2s); it doubles with each further attempt.
	RetryDelay time.Duration
	// HeartbeatInterval is how often the run and its tasks record that they
	// are alive (default 10s).
	HeartbeatInterval time.Duration
}

// validate refuses options that make no sense.
func (o *RunOptions) validate() error {
	var errs []error
	if o.MaxWorkers < 0 {
		errs = append(errs, fmt.Errorf("MaxWorkers must be at least 1 (or 0 for the default of %d), got %d", launcher.DefaultMaxWorkers, o.MaxWorkers))
	}
	if o.MaxNumSplits < 0 {
		errs = append(errs, fmt.Errorf("MaxNumSplits must be at least 1 (or 0 for the default of %d), got %d", launcher.DefaultMaxSplits, o.MaxNumSplits))
	}
	if o.RetryDelay < 0 || o.HeartbeatInterval < 0 {
		errs = append(errs, errors.New("RetryDelay and HeartbeatInterval cannot be negative"))
	}
	for _, t := range o.Tags {
		if err := flowcmd.CheckTag(t); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("stepwise: bad RunOptions: %w", err)
	}
	return nil
}

// settings are the stores the options name.
func (o *RunOptions) settings() config.Overrides {
	ov := config.Overrides{Datastore: o.Datastore, Metadata: o.Metadata, Source: "RunOptions"}
	if o.Datastore != "" && o.Metadata == "" && !strings.Contains(o.Datastore, "://") {
		ov.Metadata = "local"
	}
	return ov
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

// ErrInterrupted is matched (errors.Is) by the error of a run stopped
// from outside (its context canceled, Ctrl-C) before it finished.
var ErrInterrupted = errors.New("stepwise: run interrupted")

// TaskError is the error of a run that failed because one of its tasks
// failed for good (after its retries, not caught). Inspect it with
// errors.As.
type TaskError struct {
	Flow, RunID, Step, TaskID string
	Attempt                   int      // the last attempt, 0 for the first
	Message                   string   // why it failed: the task's own error when it recorded one
	LastLines                 []string // the last lines the task printed
	err                       error
}

func (e *TaskError) Error() string {
	return fmt.Sprintf("stepwise: task %s/%s/%s/%s failed (attempt %d): %s", e.Flow, e.RunID, e.Step, e.TaskID, e.Attempt, e.Message)
}

// Unwrap returns how the task's last attempt ended.
func (e *TaskError) Unwrap() error { return e.err }

// Run runs flow f from Go code (a test, another program) and returns the
// run as the client sees it. The tasks run as processes of the current
// binary, so a test binary needs steptest.Main in its TestMain. On failure
// the run is returned with the error (a *TaskError, or one matching
// ErrInterrupted), so its tasks can be inspected.
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
	if err := o.validate(); err != nil {
		return nil, err
	}
	def, err := declare(f)
	if err != nil {
		return nil, err
	}
	if err := def.Problems(); err != nil {
		return nil, err
	}
	cfg, err := config.Load(o.settings())
	if err != nil {
		return nil, err
	}
	data, meta, err := cfg.Open(ctx)
	if err != nil {
		return nil, err
	}
	defer meta.Close()
	out := o.Output
	if out == nil {
		out = io.Discard
	}
	l := &launcher.Launcher{Def: def, Stores: lifecycle.Stores{Data: data, Meta: meta}, Datastore: cfg.Datastore.Value,
		Metadata: cfg.Metadata.Value, User: cfg.User.Value, Out: out, ErrOut: out,
		Settings: func(name string) string { return cfg.Compute(name).Value }}
	l.Code()
	flow := def.New()
	for name, v := range o.Params {
		p, ok := def.Param(name)
		if !ok {
			return nil, fmt.Errorf("stepwise: flow %s has no parameter %q (it has %s)", def.Name(), name, def.ParamNames())
		}
		if err := params.Parse(p.In(flow), v); err != nil {
			return nil, fmt.Errorf("stepwise: parameter %s: %w", name, err)
		}
	}
	req := launcher.Request{Params: params.Values(def.Params, flow), Tags: o.Tags, MaxWorkers: o.MaxWorkers, MaxSplits: o.MaxNumSplits,
		Quiet: true, Compute: o.Compute, RetryDelay: o.RetryDelay, Heartbeat: o.HeartbeatInterval}
	if r != nil {
		req.Resume = &resume.Request{Step: r.Step, Origin: r.OriginRunID, User: cfg.User.Value}
	}
	runID, err := l.Execute(ctx, req)
	err = publicError(def.Name(), runID, err)
	if runID == "" {
		return nil, err
	}
	c, cerr := client.Open(ctx, client.Options{Datastore: cfg.Datastore.Value, Metadata: cfg.Metadata.Value, Namespace: new(string)})
	if cerr != nil {
		return nil, errors.Join(err, cerr)
	}
	run, rerr := c.Flow(def.Name()).Run(ctx, runID)
	if rerr != nil {
		return nil, errors.Join(err, rerr)
	}
	return run, err
}

// publicError turns the launcher's errors into the exported ones.
func publicError(flow, runID string, err error) error {
	var te *scheduler.TaskError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &te):
		return &TaskError{Flow: flow, RunID: runID, Step: te.Step, TaskID: te.ID, Attempt: te.Attempt, Message: te.Reason, LastLines: te.LastLine, err: te.Err}
	case errors.Is(err, scheduler.ErrInterrupted):
		return fmt.Errorf("%w: run %s of flow %s was stopped before it finished", ErrInterrupted, runID, flow)
	}
	return err
}
