package flowcmd

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"syscall"

	"stepwise.dev/stepwise/internal/config"

	"stepwise.dev/stepwise/internal/executor"
	"stepwise.dev/stepwise/internal/launcher"
	"stepwise.dev/stepwise/internal/lifecycle"
	"stepwise.dev/stepwise/internal/metadata"
	"stepwise.dev/stepwise/internal/names"
	"stepwise.dev/stepwise/internal/resume"
	"stepwise.dev/stepwise/internal/timing"
)

// task runs one attempt of one task in this process (see executor.Spec
// for the contract).
func (c *program) task(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet(c.prog+" task", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	var spec executor.Spec
	spec.Flags(fs)
	if code := c.parse(fs, args); code >= 0 {
		return code
	}
	if code := c.problems(); code != 0 {
		return code
	}
	if spec.Flow == "" {
		spec.Flow = c.def.Name()
	}
	if err := spec.Check(); err != nil {
		fmt.Fprintf(c.stderr, "task: %v\n", err)
		return 2
	}
	if spec.Flow != c.def.Name() {
		fmt.Fprintf(c.stderr, "task: this program runs flow %s, not %s\n", c.def.Name(), spec.Flow)
		return 2
	}
	ph := timing.New()
	defer ph.Print(c.stderr)
	c.stores.Datastore, c.stores.Metadata = spec.Datastore, spec.Metadata
	x := &executor.Executor{Def: c.def, Capture: true, Stderr: c.stderr, Phases: ph}
	if spec.Launcher {
		// The launcher records the task's metadata, from file descriptor 3.
		syscall.CloseOnExec(3)
		records := os.NewFile(3, "launcher")
		defer records.Close()
		cfg, err := c.settings()
		if err != nil {
			fmt.Fprintln(c.stderr, err)
			return 1
		}
		if x.Store, err = config.OpenDatastore(ctx, cfg.Datastore.Value); err != nil {
			fmt.Fprintln(c.stderr, err)
			return 1
		}
		x.Meta = executor.NewPipeRecorder(records)
	} else {
		cfg, err := c.settings()
		if err == nil {
			x.Store, err = config.OpenDatastore(ctx, cfg.Datastore.Value)
		}
		var meta metadata.Store
		if err == nil {
			meta, err = config.OpenMetadata(ctx, cfg)
		}
		if err != nil {
			fmt.Fprintln(c.stderr, err)
			return 1
		}
		defer func() { meta.Close(); ph.Mark("close") }()
		x.Meta = meta
	}
	ph.Mark("open")
	if err := x.Execute(ctx, spec); err != nil {
		return 1 // Execute printed it
	}
	return 0
}

// createRun records a new run for a scheduler that drives it, and prints
// its id.
func (c *program) createRun(ctx context.Context, args []string) int {
	fs := c.flags("create-run")
	flow := fs.String("flow", c.def.Name(), "the flow (for a program that holds several)")
	var o runOptions
	fs.IntVar(&o.req.MaxSplits, "max-num-splits", launcher.DefaultMaxSplits, "the most tasks one foreach may fan out to")
	fs.Var(&o.tags, "tag", "add a tag to the run (repeatable)")
	id := fs.String("run-id", "", "the run's id, digits (default: microseconds since the epoch)")
	idOut := fs.String("run-id-out", "", "also write the run's id to this file (for a scheduler that reads outputs from files)")
	namespace := fs.String("namespace", "", "the run's namespace: production:TOKEN for a deployed flow (default: user:NAME of the user)")
	origin := fs.String("origin-run-id", "", "resume this run: its tasks before the resume step are cloned into the new run, and its task commands skip them")
	resumeStep := fs.String("resume-step", "", "with --origin-run-id: the step to run again, with every step after it (default: the first that did not succeed)")
	trigger := fs.String("trigger", "", "the run (FLOW/RUN_ID) whose success started this one, recorded as its system tag runtime:triggered-by:FLOW/RUN_ID")
	var system tagList
	fs.Var(&system, "system-tag", "a system tag, e.g. runtime:argo-workflow:NAME (repeatable)")
	if c.def.ParamsErr != nil {
		return c.problems()
	}
	values := c.bindParams(fs)
	if code := c.parse(fs, args); code >= 0 {
		return code
	}
	if code := c.problems(); code != 0 {
		return code
	}
	if *flow != c.def.Name() {
		fmt.Fprintf(c.stderr, "create-run: this program runs flow %s, not %s\n", c.def.Name(), *flow)
		return 2
	}
	if *trigger != "" {
		if err := checkTrigger(*trigger); err != nil {
			fmt.Fprintf(c.stderr, "create-run: --trigger: %v\n", err)
			return 2
		}
		system = append(system, lifecycle.TriggerTag(*trigger))
	}
	if err := checkSystemTags(*namespace, system); err != nil {
		fmt.Fprintf(c.stderr, "create-run: %v\n", err)
		return 2
	}
	if *id != "" {
		if err := names.RunID(*id); err != nil {
			fmt.Fprintf(c.stderr, "create-run: --run-id: %v\n", err)
			return 2
		}
	}
	o.req.MaxWorkers = 1
	if err := o.check(); err != nil {
		fmt.Fprintf(c.stderr, "create-run: %v\n", err)
		return 2
	}
	vals, err := values()
	if err != nil {
		fmt.Fprintln(c.stderr, err)
		return 2
	}
	l, err := c.launcher(ctx)
	if err != nil {
		fmt.Fprintln(c.stderr, err)
		return 1
	}
	defer l.Stores.Meta.Close()
	var plan *resume.Plan
	if *origin != "" {
		if plan, err = resume.New(ctx, c.def.Graph, l.Stores, resume.Request{Origin: *origin, Step: *resumeStep}, c.stderr); err != nil {
			fmt.Fprintln(c.stderr, err)
			return 1
		}
	} else if *resumeStep != "" {
		fmt.Fprintln(c.stderr, "create-run: --resume-step needs --origin-run-id, the run to resume")
		return 2
	}
	run, err := lifecycle.Create(ctx, l.Stores, lifecycle.New{Flow: c.def.Name(), User: l.User, Params: vals, Tags: o.req.Tags,
		Code: l.CodeVersion(), MaxSplits: o.req.MaxSplits, ID: *id, Scheduled: true, Namespace: *namespace, SystemTags: system, Origin: *origin, Graph: c.def.Graph})
	if err != nil {
		fmt.Fprintln(c.stderr, err)
		return 1
	}
	if plan != nil {
		n, err := plan.CloneBefore(ctx, run.ID)
		if err != nil {
			fmt.Fprintf(c.stderr, "create-run: run %s resumes %s, but cloning its tasks failed: %v\n", run.ID, *origin, err)
			lifecycle.Finish(ctx, l.Stores, c.def.Name(), run.ID, metadata.Failed)
			return 1
		}
		fmt.Fprintf(c.stderr, "run %s resumes run %s from step %s: %d task(s) cloned\n", run.ID, *origin, plan.From, n)
	}
	if *idOut != "" {
		if err := os.WriteFile(*idOut, []byte(run.ID), 0o644); err != nil {
			fmt.Fprintf(c.stderr, "create-run: run %s is recorded, but its id cannot be written to %s (--run-id-out): %v\n", run.ID, *idOut, err)
			return 1
		}
	}
	fmt.Fprintln(c.stdout, run.ID)
	return 0
}

// finishRun records the end of a run driven by a scheduler: succeeded when
// its end step succeeded, failed otherwise.
func (c *program) finishRun(ctx context.Context, args []string) int {
	fs := c.flags("finish-run")
	id := fs.String("run-id", "", "the run to finish")
	flowName := fs.String("flow", c.def.Name(), "the flow (for a program that holds several)")
	var onSuccess tagList
	fs.Var(&onSuccess, "on-success", "when the run succeeded, run this hook (argo-trigger: start the deployed flows triggered by this one) (repeatable)")
	if code := c.parse(fs, args); code >= 0 {
		return code
	}
	for _, name := range onSuccess {
		if _, ok := successHook(name); !ok {
			fmt.Fprintf(c.stderr, "finish-run: --on-success %s: no such hook in this program (it comes with the Kubernetes backend: import _ \"stepwise.dev/stepwise/backend/kubernetes\")\n", name)
			return 2
		}
	}
	if *flowName != c.def.Name() {
		fmt.Fprintf(c.stderr, "finish-run: this program runs flow %s, not %s\n", c.def.Name(), *flowName)
		return 2
	}
	if *id == "" {
		fmt.Fprintln(c.stderr, "finish-run: --run-id is required")
		return 2
	}
	_, st, err := c.open(ctx)
	if err != nil {
		fmt.Fprintln(c.stderr, err)
		return 1
	}
	defer st.Meta.Close()
	flow := c.def.Name()
	if _, err := st.Meta.GetRun(ctx, flow, *id); err != nil {
		fmt.Fprintf(c.stderr, "finish-run: run %s/%s: %v\n", flow, *id, err)
		return 1
	}
	status, err := lifecycle.Status(ctx, st.Meta, flow, *id)
	if err != nil {
		fmt.Fprintln(c.stderr, err)
		return 1
	}
	if err := lifecycle.Finish(ctx, st, flow, *id, status); err != nil {
		fmt.Fprintln(c.stderr, err)
		return 1
	}
	fmt.Fprintf(c.stdout, "run %s of flow %s %s\n", *id, flow, status)
	if status != metadata.Succeeded {
		return 0
	}
	code := 0
	for _, name := range onSuccess {
		h, _ := successHook(name)
		if err := h(ctx, &Env{p: c}, *id); err != nil {
			fmt.Fprintf(c.stderr, "finish-run: run %s of flow %s succeeded, but %s failed: %v\n", *id, flow, name, err)
			code = 1
		}
	}
	return code
}

// checkTrigger checks a run's pathspec, FLOW/RUN_ID.
func checkTrigger(p string) error {
	flow, run, ok := strings.Cut(p, "/")
	if !ok {
		return fmt.Errorf("%q is not FLOW/RUN_ID", p)
	}
	return errors.Join(names.Flow(flow), names.RunID(run))
}
