// Package executor runs one attempt of one task inside a task process: it
// records the attempt's start, captures what the process prints into the
// datastore while it runs, records heartbeats, finds and loads the task's
// inputs, calls the step, stores every artifact and the task record, and
// records how the attempt ended. It needs no launcher: anything that can
// start the flow's binary with the task command line (Spec) can run a task.
package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"stepwise.dev/stepwise/internal/card"
	"stepwise.dev/stepwise/internal/codec"
	"stepwise.dev/stepwise/internal/datastore"
	"stepwise.dev/stepwise/internal/flowdef"
	"stepwise.dev/stepwise/internal/graph"
	"stepwise.dev/stepwise/internal/lifecycle"
	"stepwise.dev/stepwise/internal/metadata"
	"stepwise.dev/stepwise/internal/params"
	"stepwise.dev/stepwise/internal/tableread"
	"stepwise.dev/stepwise/internal/timing"
)

// Recorder is what a task records in the metadata store.
type Recorder interface {
	StartAttempt(ctx context.Context, a metadata.Attempt) error
	FinishAttempt(ctx context.Context, a metadata.Attempt, artifacts []metadata.Artifact) error
	TaskHeartbeat(ctx context.Context, flow, run, step, task string, attempt int, at time.Time) error
}

// Executor runs tasks of one flow.
type Executor struct {
	Def   *flowdef.Def
	Store *datastore.Store
	Meta  Recorder
	// Capture, when set, sends everything the process writes to its
	// standard output and error (the step's prints, its child processes')
	// to the datastore too, while the task runs, unless the spec says the
	// launcher keeps it.
	Capture bool
	// Stderr receives the executor's own warnings (default os.Stderr).
	Stderr io.Writer
	Phases *timing.Phases
	// decoded holds the values loaded so far, by content key, so that the
	// inputs of a join share what they have in common.
	decoded map[string]reflect.Value
}

// StepError is a failure of a step's own code: an error it returned or a
// panic, with the stack of the panic.
type StepError struct {
	Step  string
	Err   error
	Stack string // set for a panic
}

func (e *StepError) Error() string {
	if e.Stack != "" {
		return fmt.Sprintf("step %s panicked: %v\n%s", e.Step, e.Err, e.Stack)
	}
	return fmt.Sprintf("step %s failed: %v", e.Step, e.Err)
}

func (e *StepError) Unwrap() error { return e.Err }

// Execute runs one attempt of a task and records it in the metadata store.
// A failure is printed to Stderr (so that it is in the task's log) and
// returned.
func (x *Executor) Execute(ctx context.Context, spec Spec) error {
	if x.Stderr == nil {
		x.Stderr = os.Stderr
	}
	path := datastore.TaskPath{Flow: x.Def.Name(), Run: spec.Run, Step: spec.Step, Task: spec.Task}
	if spec.SkipCloned && spec.CatchError == "" {
		// A scheduler runs every task of a resumed run; those that the
		// resume cloned are done.
		if rec, err := x.Store.GetTask(ctx, path); err == nil && rec.ClonedFrom != "" {
			fmt.Fprintf(x.Stderr, "stepwise: task %s is cloned from %s (a resume): nothing to run\n", path, rec.ClonedFrom)
			if spec.SplitsOut != "" {
				return writeSplits(spec.SplitsOut, rec.Splits)
			}
			return nil
		}
	}
	if x.Capture && !spec.Launcher {
		stop, err := captureOutput(ctx, x.Store.Backend(), path, spec.Attempt)
		if err != nil {
			fmt.Fprintf(x.Stderr, "stepwise: warning: the output of task %s is not kept in the datastore: %v\n", path, err)
		} else {
			defer stop()
		}
	}
	a := metadata.Attempt{Flow: path.Flow, Run: spec.Run, Step: spec.Step, Task: spec.Task, N: spec.Attempt,
		Status: metadata.Running, Started: time.Now().UTC()}
	// The start is recorded while the task loads its inputs and runs: a
	// metadata write may wait for other tasks' writes.
	started := make(chan error, 1)
	go func() { started <- x.Meta.StartAttempt(ctx, a) }()
	stopBeat := x.heartbeat(ctx, spec)
	refs, err := x.run(ctx, spec)
	stopBeat()
	if err != nil {
		fmt.Fprintln(x.Stderr, err)
	}
	if serr := <-started; serr != nil {
		serr = fmt.Errorf("stepwise: cannot record the start of task %s: %w", path, serr)
		fmt.Fprintln(x.Stderr, serr)
		return errors.Join(err, serr)
	}
	x.Phases.Mark("start-attempt")
	a.Ended = time.Now().UTC()
	a.Status = metadata.Succeeded
	var arts []metadata.Artifact
	if err != nil {
		a.Status = metadata.Failed
		a.Error = err.Error()
	} else {
		arts = make([]metadata.Artifact, len(refs))
		for i, r := range refs {
			arts[i] = metadata.Artifact{Name: r.Name, Type: r.Type, Key: r.Key, Size: r.Size}
		}
	}
	if ferr := x.Meta.FinishAttempt(context.WithoutCancel(ctx), a, arts); ferr != nil {
		ferr = fmt.Errorf("stepwise: cannot record the end of task %s: %w", path, ferr)
		fmt.Fprintln(x.Stderr, ferr)
		return errors.Join(err, ferr)
	}
	x.Phases.Mark("finish-attempt")
	return err
}

// heartbeat records every spec.Heartbeat that the attempt is alive, until
// stop is called. A failure to record it is reported once and does not
// stop the task.
func (x *Executor) heartbeat(ctx context.Context, spec Spec) (stop func()) {
	return lifecycle.Heartbeat(ctx, spec.Heartbeat, func(ctx context.Context, at time.Time) error {
		err := x.Meta.TaskHeartbeat(ctx, x.Def.Name(), spec.Run, spec.Step, spec.Task, spec.Attempt, at)
		if errors.Is(err, metadata.ErrNotFound) {
			return nil // the start is not recorded yet
		}
		return err
	}, func(err error) {
		fmt.Fprintf(x.Stderr, "stepwise: warning: cannot record that task %s/%s/%s is alive (it goes on; readers may take it for lost): %v\n", spec.Run, spec.Step, spec.Task, err)
	})
}

// run runs one task: it loads the inputs, calls the step and stores every
// artifact and the task record.
func (x *Executor) run(ctx context.Context, spec Spec) ([]datastore.ArtifactRef, error) {
	g := x.Def.Graph
	s := g.Step(spec.Step)
	if s == nil {
		return nil, fmt.Errorf("stepwise: flow %s has no step %q (steps: %s)", g.Flow, spec.Step, flowdef.StepNames(g))
	}
	idx, err := graph.TaskIndexes(spec.Task, s.Depth)
	if err != nil {
		return nil, fmt.Errorf("stepwise: step %s: %w", s.Name, err)
	}
	run, err := x.Store.GetRun(ctx, g.Flow, spec.Run)
	if err != nil {
		return nil, err
	}
	parents, err := x.inputs(ctx, s, spec.Run, idx)
	if err != nil {
		return nil, err
	}
	x.Phases.Mark("inputs")

	rec := &datastore.TaskRecord{
		Path:    datastore.TaskPath{Flow: g.Flow, Run: spec.Run, Step: spec.Step, Task: spec.Task},
		Attempt: spec.Attempt,
	}
	flow := reflect.New(x.Def.Type.Elem())
	args := []reflect.Value{flow}
	var item reflect.Value
	switch {
	case s.Join:
		frames := parents[0].Foreach
		if closes := g.Step(s.Closes); closes != nil && closes.Foreach != "" && len(frames) > 0 {
			frames = frames[:len(frames)-1]
		}
		rec.Foreach = frames
		items := make([]reflect.Value, len(parents))
		steps := make([]string, len(parents))
		keys := make([]map[string]string, len(parents))
		for i, p := range parents {
			items[i] = reflect.New(x.Def.Type.Elem())
			if keys[i], err = x.load(ctx, items[i], p, true); err != nil {
				return nil, err
			}
			if err := params.SetAll(x.Def.Params, items[i], run.Params); err != nil {
				return nil, err
			}
			steps[i] = p.Path.Step
		}
		args = append(args, x.Def.Steps[s.Name].Inputs(items, steps, keys))
	case len(parents) == 1:
		p := parents[0]
		if _, err := x.load(ctx, flow, p, false); err != nil {
			return nil, err
		}
		rec.Foreach = p.Foreach
		if ps := g.Step(p.Path.Step); ps != nil && ps.Foreach != "" {
			i := idx[len(idx)-1]
			if i >= p.Splits {
				return nil, fmt.Errorf("stepwise: task %s: element index %d is out of range for the %d elements of %s", rec.Path, i, p.Splits, ps.Foreach)
			}
			rec.Foreach = append(slices.Clone(p.Foreach), datastore.ForeachFrame{Step: ps.Name, Index: i, Count: p.Splits})
			item = flow.Elem().FieldByName(ps.Foreach).Index(i)
		}
	}
	if err := params.SetAll(x.Def.Params, flow, run.Params); err != nil {
		return nil, err
	}
	if s.Item != "" {
		args = append(args, item)
	}

	info := flowdef.Task{Flow: g.Flow, RunID: spec.Run, Step: spec.Step, ID: spec.Task, Attempt: spec.Attempt, Indexes: idx, Trigger: lifecycle.Trigger(run.SystemTags),
		Datastore: x.Store.Backend().String()}
	x.Phases.Mark("load")
	if spec.CatchError != "" {
		if s.Catch == "" {
			return nil, fmt.Errorf("stepwise: step %s does not catch failures, but its task was started to record one", s.Name)
		}
		flow.Elem().FieldByName(s.Catch).SetString(spec.CatchError)
	} else {
		info.Cards = card.NewSet(cardSaver{x.Store, rec.Path, spec.Attempt}, rec.Path.String(), spec.Attempt)
		reads := &tableread.Log{}
		err := Call(tableread.With(x.Def.WithTask(ctx, info), reads), s.Name, x.Def.Steps[s.Name].Func, args)
		rec.Tables = reads.Reads()
		if cerr := info.Cards.Finish(context.WithoutCancel(ctx), func(name string) string { return artifactText(flow, name) }, err); cerr != nil {
			fmt.Fprintf(x.Stderr, "stepwise: warning: a card of task %s was not saved: %v\n", rec.Path, cerr)
		}
		if err != nil {
			return nil, err
		}
	}

	if s.Foreach != "" {
		v := flow.Elem().FieldByName(s.Foreach)
		if v.Len() == 0 {
			return nil, fmt.Errorf("step %s: foreach over %s, which is empty; a foreach needs at least one element", s.Name, s.Foreach)
		}
		if limit := run.MaxSplits; limit > 0 && v.Len() > limit {
			return nil, fmt.Errorf("step %s: foreach over %s has %d elements, more than the limit of %d tasks; raise it with --max-num-splits if you mean it", s.Name, s.Foreach, v.Len(), limit)
		}
		rec.Splits = v.Len()
	}
	x.Phases.Mark("step")
	if rec.Artifacts, err = x.save(ctx, flow); err != nil {
		return nil, err
	}
	x.Phases.Mark("save")
	if err := x.Store.PutTask(ctx, rec); err != nil {
		return nil, fmt.Errorf("stepwise: task %s: cannot store its record: %w", rec.Path, err)
	}
	if spec.SplitsOut != "" && s.Foreach != "" {
		if err := writeSplits(spec.SplitsOut, rec.Splits); err != nil {
			return nil, err
		}
	}
	x.Phases.Mark("record")
	return rec.Artifacts, nil
}

// writeSplits writes [0,1,...,n-1] to path.
func writeSplits(path string, n int) error {
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	data, _ := json.Marshal(idx)
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("stepwise: cannot write the foreach's element indexes to %s (--splits-out): %w", path, err)
	}
	return nil
}

// inputs reads the records of a task's parent tasks. They follow from the
// graph and the task's position: the parent of a task inside a foreach
// body's first step is the foreach task one level out; a join after a
// branch takes the task at its own position of each branch; a join after
// a foreach takes one task per element the foreach fanned out to.
func (x *Executor) inputs(ctx context.Context, s *graph.Step, run string, idx []int) ([]*datastore.TaskRecord, error) {
	g := x.Def.Graph
	var paths []datastore.TaskPath
	at := func(step string, idx []int) datastore.TaskPath {
		return datastore.TaskPath{Flow: g.Flow, Run: run, Step: step, Task: graph.TaskID(idx)}
	}
	switch {
	case len(s.Parents) == 0:
		return nil, nil
	case !s.Join:
		p := g.Step(s.Parents[0])
		if p.Foreach != "" {
			paths = append(paths, at(p.Name, idx[:len(idx)-1]))
		} else {
			paths = append(paths, at(p.Name, idx))
		}
	case g.Step(s.Closes).Foreach != "":
		fe, err := x.Store.GetTask(ctx, at(s.Closes, idx))
		if err != nil {
			return nil, fmt.Errorf("stepwise: join %s cannot read the foreach task it closes: %w", s.Name, err)
		}
		for i := 0; i < fe.Splits; i++ {
			paths = append(paths, at(s.Parents[0], append(slices.Clone(idx), i)))
		}
	default:
		for _, p := range s.Parents {
			paths = append(paths, at(p, idx))
		}
	}
	recs := make([]*datastore.TaskRecord, len(paths))
	errs := make([]error, len(paths))
	// A wide join reads many small records: in parallel, as S3 wants.
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for i, p := range paths {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			recs[i], errs[i] = x.Store.GetTask(ctx, p)
			if errs[i] != nil {
				errs[i] = fmt.Errorf("stepwise: task %s/%s/%s needs its input task %s, which has no usable record; did it finish? %w",
					run, s.Name, graph.TaskID(idx), p, errs[i])
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return recs, nil
}

// Call runs a step method, turning a panic into a StepError with its stack.
func Call(ctx context.Context, step string, fn reflect.Value, args []reflect.Value) (err error) {
	defer func() {
		if r := recover(); r != nil {
			e, ok := r.(error)
			if !ok {
				e = fmt.Errorf("%v", r)
			}
			err = &StepError{Step: step, Err: e, Stack: string(debug.Stack())}
		}
	}()
	in := append([]reflect.Value{args[0]}, reflect.ValueOf(ctx))
	in = append(in, args[1:]...)
	out := fn.Call(in)
	if e, _ := out[0].Interface().(error); e != nil {
		return &StepError{Step: step, Err: e}
	}
	return nil
}

// load sets the fields of flow from the artifacts of a task, and returns
// each artifact's content key. With share (for the inputs of a join, which
// are for reading), a value already loaded under the same key, such as a
// big slice every input carries, is shared instead of loaded again.
func (x *Executor) load(ctx context.Context, flow reflect.Value, rec *datastore.TaskRecord, share bool) (map[string]string, error) {
	keys := make(map[string]string, len(rec.Artifacts))
	v := flow.Elem()
	for _, a := range rec.Artifacts {
		keys[a.Name] = a.Key
		f := v.FieldByName(a.Name)
		if !f.IsValid() || !f.CanSet() {
			continue // an artifact the current code no longer has
		}
		if d, ok := x.decoded[a.Key]; share && ok && d.Type() == f.Type() {
			f.Set(d)
			continue
		}
		data, err := x.Store.GetBlob(ctx, a.Key)
		if err != nil {
			return nil, fmt.Errorf("stepwise: cannot load artifact %s of task %s: %w", a.Name, rec.Path, err)
		}
		if err := codec.Decode(data, f.Addr().Interface()); err != nil {
			return nil, fmt.Errorf("stepwise: cannot load artifact %s of task %s into field %s %s (stored as %s): %w", a.Name, rec.Path, a.Name, f.Type(), a.Type, err)
		}
		if share {
			if x.decoded == nil {
				x.decoded = map[string]reflect.Value{}
			}
			x.decoded[a.Key] = f
		}
	}
	return keys, nil
}

// save encodes and stores every exported field of flow.
func (x *Executor) save(ctx context.Context, flow reflect.Value) ([]datastore.ArtifactRef, error) {
	v := flow.Elem()
	t := v.Type()
	var refs []datastore.ArtifactRef
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		enc, err := codec.Encode(v.Field(i).Interface())
		if err != nil {
			return nil, fmt.Errorf("field %s (%s) cannot be stored as an artifact: %w", f.Name, f.Type, err)
		}
		key, _, err := x.Store.PutBlob(ctx, enc.Parts)
		if err != nil {
			return nil, fmt.Errorf("stepwise: cannot store artifact %s: %w", f.Name, err)
		}
		refs = append(refs, datastore.ArtifactRef{Name: f.Name, Key: key, Type: f.Type.String(), Size: enc.Size})
	}
	return refs, nil
}
