package stepwise

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"stepwise.dev/stepwise/internal/codec"
	"stepwise.dev/stepwise/internal/datastore"
	"stepwise.dev/stepwise/internal/graph"
	"stepwise.dev/stepwise/internal/metadata"
)

// Task describes the task a step method is running as. Get it with
// CurrentTask(ctx).
type Task struct {
	Flow    string // flow name
	RunID   string
	Step    string
	ID      string // task id, unique within the run
	Attempt int    // 0 for the first attempt
	// Index is the element index within the innermost enclosing foreach, or
	// -1 outside any foreach.
	Index int
	// Indexes holds the index at every level of nested foreach, outermost
	// first.
	Indexes []int
}

// Pathspec is the task's address: Flow/RunID/Step/ID.
func (t Task) Pathspec() string { return t.Flow + "/" + t.RunID + "/" + t.Step + "/" + t.ID }

type taskKey struct{}

// CurrentTask returns the task a step is running as. Outside a step it
// returns a Task with empty fields and Index -1.
func CurrentTask(ctx context.Context) Task {
	if t, ok := ctx.Value(taskKey{}).(Task); ok {
		return t
	}
	return Task{Index: -1}
}

// taskSpec is everything a task process needs to run one task; with the
// flow's binary it describes the task fully, so it can run on any machine
// that reaches the datastore.
type taskSpec struct {
	Run        string
	Step       string
	Task       string
	Inputs     []string // parent tasks as "step/task"
	SplitIndex int      // element index when the parent is a foreach, else -1
	Attempt    int
	CatchError string // set when the step failed for good and catches it: store this instead of running
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

// executor runs single tasks of one flow inside a task process.
type executor struct {
	decl   *Graph
	gr     *graph.Graph
	store  *datastore.Store
	meta   metadata.Store
	params []param
	ph     *phases
	// decoded holds the values loaded so far, by content key, so that the
	// inputs of a join share what they have in common.
	decoded map[string]reflect.Value
}

// execute runs one attempt of a task and records it in the metadata store.
func (x *executor) execute(ctx context.Context, spec taskSpec) error {
	a := metadata.Attempt{Flow: x.gr.Flow, Run: spec.Run, Step: spec.Step, Task: spec.Task, N: spec.Attempt,
		Status: metadata.Running, Started: time.Now().UTC()}
	// The start is recorded while the task loads its inputs and runs: a
	// metadata write may wait for other tasks' writes.
	started := make(chan error, 1)
	go func() { started <- x.meta.StartAttempt(ctx, a) }()
	refs, err := x.run(ctx, spec)
	if serr := <-started; serr != nil {
		return errors.Join(err, fmt.Errorf("stepwise: cannot record the start of task %s/%s/%s: %w", spec.Run, spec.Step, spec.Task, serr))
	}
	x.ph.mark("start-attempt")
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
	if ferr := x.meta.FinishAttempt(context.WithoutCancel(ctx), a, arts); ferr != nil {
		return errors.Join(err, fmt.Errorf("stepwise: cannot record the end of task %s/%s/%s: %w", spec.Run, spec.Step, spec.Task, ferr))
	}
	x.ph.mark("finish-attempt")
	return err
}

func (x *executor) flowType() reflect.Type { return x.decl.flow.Type() }

func (x *executor) method(step string) reflect.Method {
	for _, d := range x.decl.decls {
		if d.step.Name == step {
			return d.method
		}
	}
	panic("stepwise: no method for step " + step)
}

// run runs one task: it loads the inputs, calls the step and stores every
// artifact and the task record.
func (x *executor) run(ctx context.Context, spec taskSpec) ([]datastore.ArtifactRef, error) {
	s := x.gr.Step(spec.Step)
	if s == nil {
		return nil, fmt.Errorf("stepwise: flow %s has no step %q (steps: %s)", x.gr.Flow, spec.Step, stepNames(x.gr))
	}
	run, err := loadRun(ctx, x.store, x.gr.Flow, spec.Run)
	if err != nil {
		return nil, err
	}
	runParams := run.Params
	parents := make([]*datastore.TaskRecord, len(spec.Inputs))
	for i, in := range spec.Inputs {
		step, task, ok := strings.Cut(in, "/")
		if !ok {
			return nil, fmt.Errorf("stepwise: input %q is not step/task", in)
		}
		rec, err := x.store.GetTask(ctx, datastore.TaskPath{Flow: x.gr.Flow, Run: spec.Run, Step: step, Task: task})
		if err != nil {
			return nil, fmt.Errorf("stepwise: cannot read input task %s of run %s: %w", in, spec.Run, err)
		}
		parents[i] = rec
	}
	if err := checkInputs(s, parents); err != nil {
		return nil, err
	}

	rec := &datastore.TaskRecord{
		Path:    datastore.TaskPath{Flow: x.gr.Flow, Run: spec.Run, Step: spec.Step, Task: spec.Task},
		Attempt: spec.Attempt,
	}
	flow := reflect.New(x.flowType().Elem())
	args := []reflect.Value{flow}
	var item reflect.Value
	switch {
	case s.Join:
		frames := parents[0].Foreach
		if closes := x.gr.Step(s.Closes); closes != nil && closes.Foreach != "" && len(frames) > 0 {
			frames = frames[:len(frames)-1]
		}
		rec.Foreach = frames
		items := make([]reflect.Value, len(parents))
		steps := make([]string, len(parents))
		keys := make([]map[string]string, len(parents))
		for i, p := range parents {
			items[i] = reflect.New(x.flowType().Elem())
			if keys[i], err = x.load(ctx, items[i], p, true); err != nil {
				return nil, err
			}
			if err := setParams(x.params, items[i], runParams); err != nil {
				return nil, err
			}
			steps[i] = p.Path.Step
		}
		in := reflect.Zero(x.method(s.Name).Type.In(2)).Interface().(inputsType)
		args = append(args, in.build(items, steps, keys))
	case len(parents) == 1:
		p := parents[0]
		if _, err := x.load(ctx, flow, p, false); err != nil {
			return nil, err
		}
		rec.Foreach = p.Foreach
		if ps := x.gr.Step(p.Path.Step); ps != nil && ps.Foreach != "" {
			if spec.SplitIndex < 0 || spec.SplitIndex >= p.Splits {
				return nil, fmt.Errorf("stepwise: task %s: element index %d is out of range for the %d elements of %s", rec.Path, spec.SplitIndex, p.Splits, ps.Foreach)
			}
			rec.Foreach = append(append([]datastore.ForeachFrame{}, p.Foreach...), datastore.ForeachFrame{Step: ps.Name, Index: spec.SplitIndex, Count: p.Splits})
			item = flow.Elem().FieldByName(ps.Foreach).Index(spec.SplitIndex)
		}
	}
	if err := setParams(x.params, flow, runParams); err != nil {
		return nil, err
	}
	if s.Item != "" {
		args = append(args, item)
	}

	info := Task{Flow: x.gr.Flow, RunID: spec.Run, Step: spec.Step, ID: spec.Task, Attempt: spec.Attempt, Index: -1}
	for _, f := range rec.Foreach {
		info.Indexes = append(info.Indexes, f.Index)
		info.Index = f.Index
	}
	x.ph.mark("load")
	if spec.CatchError != "" {
		if s.Catch == "" {
			return nil, fmt.Errorf("stepwise: step %s does not catch failures, but its task was started to record one", s.Name)
		}
		flow.Elem().FieldByName(s.Catch).SetString(spec.CatchError)
	} else if err := call(context.WithValue(ctx, taskKey{}, info), s.Name, x.method(s.Name).Func, args); err != nil {
		return nil, err
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
	x.ph.mark("step")
	if rec.Artifacts, err = x.save(ctx, flow); err != nil {
		return nil, err
	}
	x.ph.mark("save")
	if err := x.store.PutTask(ctx, rec); err != nil {
		return nil, fmt.Errorf("stepwise: task %s: cannot store its record: %w", rec.Path, err)
	}
	x.ph.mark("record")
	return rec.Artifacts, nil
}

// call runs a step method, turning a panic into a StepError with its stack.
func call(ctx context.Context, step string, fn reflect.Value, args []reflect.Value) (err error) {
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
func (x *executor) load(ctx context.Context, flow reflect.Value, rec *datastore.TaskRecord, share bool) (map[string]string, error) {
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
		data, err := x.store.GetBlob(ctx, a.Key)
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
func (x *executor) save(ctx context.Context, flow reflect.Value) ([]datastore.ArtifactRef, error) {
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
		key, _, err := x.store.PutBlob(ctx, enc.Parts)
		if err != nil {
			return nil, fmt.Errorf("stepwise: cannot store artifact %s: %w", f.Name, err)
		}
		refs = append(refs, datastore.ArtifactRef{Name: f.Name, Key: key, Type: f.Type.String(), Size: enc.Size})
	}
	return refs, nil
}

// checkInputs checks that a task's inputs come from the parents the graph
// declares for its step.
func checkInputs(s *graph.Step, parents []*datastore.TaskRecord) error {
	switch {
	case s.Name == "start" && len(parents) > 0:
		return fmt.Errorf("stepwise: step start takes no input, got %d", len(parents))
	case s.Name != "start" && len(parents) == 0:
		return fmt.Errorf("stepwise: step %s needs its input tasks (--input)", s.Name)
	case !s.Join && len(parents) > 1:
		return fmt.Errorf("stepwise: step %s is not a join but got %d inputs", s.Name, len(parents))
	}
	for _, p := range parents {
		if !slices.Contains(s.Parents, p.Path.Step) {
			return fmt.Errorf("stepwise: step %s got an input from step %s, but the graph declares its parents as %s; was the flow's binary changed during the run?",
				s.Name, p.Path.Step, strings.Join(s.Parents, ", "))
		}
	}
	return nil
}

func stepNames(g *graph.Graph) string {
	var names []string
	for _, s := range g.Steps {
		names = append(names, s.Name)
	}
	return strings.Join(names, ", ")
}
