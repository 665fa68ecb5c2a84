package stepwise

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"stepwise.dev/stepwise/internal/datastore"
	"stepwise.dev/stepwise/internal/graph"
	"stepwise.dev/stepwise/internal/metadata"
	"stepwise.dev/stepwise/internal/runtime"
)

// resumePlan says which tasks of a resume are cloned from the origin run.
type resumePlan struct {
	origin *metadata.Run
	from   string
	rerun  map[string]bool                  // steps that run again when the step was named: it and everything after it
	cloned map[string]bool                  // tasks of the new run ("step/id") that were cloned
	tasks  map[string]*datastore.TaskRecord // origin's succeeded tasks by step and foreach indexes
	meta   map[datastore.TaskPath]*metadata.Task
}

func (l *launcher) planResume(ctx context.Context, req *resumeRequest) (*resumePlan, error) {
	flow := l.gr.Flow
	var origin *metadata.Run
	if req.origin == "" {
		ns := "user:" + l.cfg.User.Value
		runs, err := l.meta.ListRuns(ctx, metadata.RunFilter{Flow: flow, Tags: []string{ns}, Limit: 1})
		if err != nil {
			return nil, err
		}
		if len(runs) == 0 {
			return nil, fmt.Errorf("resume: flow %s has no run in namespace %s to resume; run it first, or name one with --origin-run-id", flow, ns)
		}
		origin = runs[0]
	} else {
		r, err := l.meta.GetRun(ctx, flow, req.origin)
		if errors.Is(err, metadata.ErrNotFound) {
			if other := l.flowOfRun(ctx, req.origin); other != "" {
				return nil, fmt.Errorf("resume: run %s is a run of flow %s, not of %s; resume it with that flow's program", req.origin, other, flow)
			}
			return nil, fmt.Errorf("resume: flow %s has no run %s; list its runs with 'stepwise runs %s'", flow, req.origin, flow)
		}
		if err != nil {
			return nil, err
		}
		origin = r
	}
	if now := time.Now(); origin.Status == metadata.Running && !origin.Lost(now) {
		last := origin.Started
		if origin.Heartbeat.After(last) {
			last = origin.Heartbeat
		}
		fmt.Fprintf(l.errOut, "resume: note: run %s is marked running, and its runtime was alive %s ago; if it still runs, only the tasks it has finished so far are reused\n",
			origin.ID, now.Sub(last).Round(time.Second))
	}
	tasks, err := l.meta.ListTasks(ctx, flow, origin.ID)
	if err != nil {
		return nil, err
	}
	from := req.step
	if from != "" && l.gr.Step(from) == nil {
		return nil, fmt.Errorf("resume: flow %s has no step %q; its steps are %s", flow, from, stepNames(l.gr))
	}
	if from == "" {
		from = firstUnfinished(l.gr, tasks)
		if from == "" {
			return nil, fmt.Errorf("resume: run %s of flow %s succeeded in full; name the step to resume from, e.g. resume %s", origin.ID, flow, l.gr.Steps[len(l.gr.Steps)-1].Name)
		}
	}
	// A named step runs again with everything after it. Without a step,
	// every task that succeeded in the origin and whose inputs were cloned
	// is cloned too: only what failed or never ran runs again.
	rerun := map[string]bool{}
	if req.step != "" {
		rerun = descendants(l.gr, from)
	}
	p := &resumePlan{origin: origin, from: from, rerun: rerun, cloned: map[string]bool{}, tasks: map[string]*datastore.TaskRecord{}, meta: map[datastore.TaskPath]*metadata.Task{}}
	for _, t := range tasks {
		if t.Status != metadata.Succeeded || p.rerun[t.Step] {
			continue
		}
		path := datastore.TaskPath{Flow: flow, Run: origin.ID, Step: t.Step, Task: t.ID}
		rec, err := l.store.GetTask(ctx, path)
		if err != nil {
			// A record lost or damaged (say, by a machine crash): the task
			// cannot be reused, so it runs again.
			fmt.Fprintf(l.errOut, "resume: task %s of the origin run cannot be reused, so it runs again: %v\n", path, err)
			continue
		}
		idx := make([]int, len(rec.Foreach))
		for i, f := range rec.Foreach {
			idx[i] = f.Index
		}
		p.tasks[t.Step+"|"+indexKey(idx)] = rec
		p.meta[path] = t
	}
	return p, nil
}

// flowOfRun finds which flow has a run with the given id, if any.
func (l *launcher) flowOfRun(ctx context.Context, id string) string {
	flows, _ := l.meta.ListFlows(ctx)
	for _, f := range flows {
		if _, err := l.meta.GetRun(ctx, f, id); err == nil {
			return f
		}
	}
	return ""
}

// firstUnfinished is the first step, in graph order, that has a task that
// did not succeed or no task at all.
func firstUnfinished(g *graph.Graph, tasks []*metadata.Task) string {
	ok := map[string]bool{}
	bad := map[string]bool{}
	for _, t := range tasks {
		if t.Status == metadata.Succeeded {
			ok[t.Step] = true
		} else {
			bad[t.Step] = true
		}
	}
	for _, s := range g.Topo() {
		if bad[s.Name] || !ok[s.Name] {
			return s.Name
		}
	}
	return ""
}

// descendants is step and every step after it.
func descendants(g *graph.Graph, step string) map[string]bool {
	out := map[string]bool{}
	var walk func(string)
	walk = func(n string) {
		if out[n] {
			return
		}
		out[n] = true
		for _, m := range g.Step(n).Next {
			walk(m)
		}
	}
	walk(step)
	return out
}

func indexKey(idx []int) string {
	var b strings.Builder
	for _, i := range idx {
		b.WriteString(strconv.Itoa(i))
		b.WriteByte('/')
	}
	return b.String()
}

// clone completes t from the origin run's matching task, when its step is
// before the resume point: the new task refers to the same artifacts (no
// copy) and is recorded as cloned.
func (l *launcher) clone(ctx context.Context, p *resumePlan, runID string, t *runtime.Task) (bool, error) {
	if p.rerun[t.Step] {
		return false, nil
	}
	for _, in := range t.Inputs {
		if !p.cloned[in] {
			return false, nil // an input ran again, so this task must too
		}
	}
	idx := make([]int, len(t.Frames))
	for i, f := range t.Frames {
		idx[i] = f.Index
	}
	orig := p.tasks[t.Step+"|"+indexKey(idx)]
	if orig == nil {
		return false, nil
	}
	rec := *orig
	rec.Path = datastore.TaskPath{Flow: l.gr.Flow, Run: runID, Step: t.Step, Task: t.ID}
	if err := l.store.PutTask(ctx, &rec); err != nil {
		return false, fmt.Errorf("cannot clone task %s: %w", orig.Path, err)
	}
	mt := p.meta[orig.Path]
	clone := &metadata.Task{Flow: l.gr.Flow, Run: runID, Step: t.Step, ID: t.ID, Status: metadata.Succeeded,
		Started: mt.Started, Ended: mt.Ended, ClonedFrom: orig.Path.String(), Artifacts: mt.Artifacts}
	if err := l.meta.CloneTask(ctx, clone); err != nil {
		return false, fmt.Errorf("cannot record clone of task %s: %w", orig.Path, err)
	}
	p.cloned[t.Path()] = true
	return true, nil
}
