// Package resume plans a resume: which tasks of a new run are cloned from
// an earlier run (same artifacts, by reference) and which run again. With
// a step named, that step and everything after it run again; without one,
// every task that succeeded and whose inputs were cloned is cloned, so
// that only what failed or never ran runs again.
package resume

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"stepwise.dev/stepwise/internal/datastore"
	"stepwise.dev/stepwise/internal/flowdef"
	"stepwise.dev/stepwise/internal/graph"
	"stepwise.dev/stepwise/internal/lifecycle"
	"stepwise.dev/stepwise/internal/metadata"
	"stepwise.dev/stepwise/internal/scheduler"
)

// Request says what to resume.
type Request struct {
	Step   string // where to resume; empty means the first step that failed
	Origin string // the run to resume; empty means the user's latest run
	User   string // whose latest run
}

// Plan says which tasks of a resume are cloned from the origin run.
type Plan struct {
	Origin *metadata.Run
	From   string
	st     lifecycle.Stores
	g      *graph.Graph
	rerun  map[string]bool                  // steps that run again when the step was named: it and everything after it
	cloned map[string]bool                  // tasks of the new run ("step/id") that were cloned
	tasks  map[string]*datastore.TaskRecord // origin's succeeded tasks by position, "step/id"
	meta   map[string]*metadata.Task
}

// New plans a resume of a run of the flow of graph g. Notes for the user
// (a task that cannot be reused, an origin that may still run) go to warn.
func New(ctx context.Context, g *graph.Graph, st lifecycle.Stores, req Request, warn io.Writer) (*Plan, error) {
	flow := g.Flow
	var origin *metadata.Run
	if req.Origin == "" {
		ns := "user:" + req.User
		runs, err := st.Meta.ListRuns(ctx, metadata.RunFilter{Flow: flow, Tags: []string{ns}, Limit: 1})
		if err != nil {
			return nil, err
		}
		if len(runs) == 0 {
			return nil, fmt.Errorf("resume: flow %s has no run in namespace %s to resume; run it first, or name one with --origin-run-id", flow, ns)
		}
		origin = runs[0]
	} else {
		r, err := st.Meta.GetRun(ctx, flow, req.Origin)
		if errors.Is(err, metadata.ErrNotFound) {
			if other := flowOfRun(ctx, st.Meta, req.Origin); other != "" {
				return nil, fmt.Errorf("resume: run %s is a run of flow %s, not of %s; resume it with that flow's program", req.Origin, other, flow)
			}
			return nil, fmt.Errorf("resume: flow %s has no run %s; list its runs with 'stepwise runs %s'", flow, req.Origin, flow)
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
		fmt.Fprintf(warn, "resume: note: run %s is marked running, and its runtime was alive %s ago; if it still runs, only the tasks it has finished so far are reused\n",
			origin.ID, now.Sub(last).Round(time.Second))
	}
	tasks, err := st.Meta.ListTasks(ctx, flow, origin.ID)
	if err != nil {
		return nil, err
	}
	from := req.Step
	if from != "" && g.Step(from) == nil {
		return nil, fmt.Errorf("resume: flow %s has no step %q; its steps are %s", flow, from, flowdef.StepNames(g))
	}
	if from == "" {
		from = firstUnfinished(g, tasks)
		if from == "" {
			return nil, fmt.Errorf("resume: run %s of flow %s succeeded in full; name the step to resume from, e.g. resume %s", origin.ID, flow, g.Steps[len(g.Steps)-1].Name)
		}
	}
	// A named step runs again with everything after it. Without a step,
	// every task that succeeded in the origin and whose inputs were cloned
	// is cloned too: only what failed or never ran runs again.
	rerun := map[string]bool{}
	if req.Step != "" {
		rerun = descendants(g, from)
	}
	p := &Plan{Origin: origin, From: from, st: st, g: g, rerun: rerun, cloned: map[string]bool{}, tasks: map[string]*datastore.TaskRecord{}, meta: map[string]*metadata.Task{}}
	for _, t := range tasks {
		if t.Status != metadata.Succeeded || p.rerun[t.Step] {
			continue
		}
		path := datastore.TaskPath{Flow: flow, Run: origin.ID, Step: t.Step, Task: t.ID}
		rec, err := st.Data.GetTask(ctx, path)
		if err != nil {
			// A record lost or damaged (say, by a machine crash): the task
			// cannot be reused, so it runs again.
			fmt.Fprintf(warn, "resume: task %s of the origin run cannot be reused, so it runs again: %v\n", path, err)
			continue
		}
		// By position, from the record's foreach frames: runs made before
		// task ids were positions have other ids.
		idx := make([]int, len(rec.Foreach))
		for i, f := range rec.Foreach {
			idx[i] = f.Index
		}
		at := t.Step + "/" + graph.TaskID(idx)
		p.tasks[at] = rec
		p.meta[at] = t
	}
	return p, nil
}

// flowOfRun finds which flow has a run with the given id, if any.
func flowOfRun(ctx context.Context, meta metadata.Store, id string) string {
	flows, _ := meta.ListFlows(ctx)
	for _, f := range flows {
		if _, err := meta.GetRun(ctx, f, id); err == nil {
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

// CloneBefore clones into run runID every task of the origin that
// succeeded and whose step comes before the resume point (neither the step
// resumed from nor one after it), in order of the graph, for a scheduler
// that runs every task of the new run: each cloned task is skipped (the
// task command finds its clone). It returns how many were cloned.
func (p *Plan) CloneBefore(ctx context.Context, runID string) (int, error) {
	after := descendants(p.g, p.From)
	keys := make([]string, 0, len(p.tasks))
	for at := range p.tasks {
		keys = append(keys, at)
	}
	slices.Sort(keys)
	n := 0
	for _, at := range keys {
		step, id, _ := strings.Cut(at, "/")
		if after[step] {
			continue
		}
		if err := p.clone(ctx, runID, step, id, at); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// Clone completes t from the origin run's task at the same position, when
// its step is before the resume point and its inputs were cloned: the new
// task refers to the same artifacts (no copy) and is recorded as cloned.
func (p *Plan) Clone(ctx context.Context, runID string, t *scheduler.Task) (bool, error) {
	if p.rerun[t.Step] {
		return false, nil
	}
	for _, in := range t.Inputs {
		if !p.cloned[in] {
			return false, nil // an input ran again, so this task must too
		}
	}
	if p.tasks[t.Path()] == nil {
		return false, nil
	}
	if err := p.clone(ctx, runID, t.Step, t.ID, t.Path()); err != nil {
		return false, err
	}
	return true, nil
}

// clone records the origin's task at position at as task step/id of run
// runID: the same artifacts (no copy), marked cloned.
func (p *Plan) clone(ctx context.Context, runID, step, id, at string) error {
	orig := p.tasks[at]
	rec := *orig
	rec.Path = datastore.TaskPath{Flow: p.g.Flow, Run: runID, Step: step, Task: id}
	rec.ClonedFrom = orig.Path.String()
	if err := p.st.Data.PutTask(ctx, &rec); err != nil {
		return fmt.Errorf("cannot clone task %s: %w", orig.Path, err)
	}
	mt := p.meta[at]
	clone := &metadata.Task{Flow: p.g.Flow, Run: runID, Step: step, ID: id, Status: metadata.Succeeded,
		Started: mt.Started, Ended: mt.Ended, ClonedFrom: orig.Path.String(), Artifacts: mt.Artifacts}
	if err := p.st.Meta.CloneTask(ctx, clone); err != nil {
		return fmt.Errorf("cannot record clone of task %s: %w", orig.Path, err)
	}
	p.cloned[at] = true
	return nil
}
