package stepwise

import (
	"context"

	"stepwise.dev/stepwise/internal/flowdef"
)

// Task describes the task a step method is running as. Get it with
// CurrentTask(ctx).
type Task struct {
	Flow    string // flow name
	RunID   string
	Step    string
	ID      string // task id: 0 outside a foreach, the element index inside one (dotted when nested: 2.5)
	Attempt int    // 0 for the first attempt
	// Index is the element index within the innermost enclosing foreach, or
	// -1 outside any foreach.
	Index int
	// Indexes holds the index at every level of nested foreach, outermost
	// first.
	Indexes []int
	// Trigger is the run (FLOW/RUN_ID) whose success started this run, for
	// a deployed flow with TriggerOnFinish; empty otherwise.
	Trigger string
	// Datastore is where the run keeps its artifacts: s3://bucket/prefix,
	// or a directory. Objects uses it to find its default root.
	Datastore string
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

// withTask puts the task a step runs as into its context.
func withTask(ctx context.Context, t flowdef.Task) context.Context {
	info := Task{Flow: t.Flow, RunID: t.RunID, Step: t.Step, ID: t.ID, Attempt: t.Attempt, Index: -1, Indexes: t.Indexes, Trigger: t.Trigger, Datastore: t.Datastore}
	if n := len(t.Indexes); n > 0 {
		info.Index = t.Indexes[n-1]
	}
	ctx = context.WithValue(ctx, taskKey{}, info)
	if t.Cards != nil {
		ctx = context.WithValue(ctx, cardsKey{}, t.Cards)
	}
	return ctx
}
