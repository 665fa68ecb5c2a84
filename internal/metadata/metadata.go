// Package metadata records what happened: flows, runs, tasks, attempts,
// the artifacts each task produced, and the tags that organize runs.
//
// Store is the interface every backend implements: the embedded SQLite
// store (package sqlite) needs no set-up; the shared service (package
// service, over PostgreSQL) is another implementation. Package metadatatest
// holds the conformance suite both pass.
package metadata

import (
	"context"
	"errors"
	"slices"
	"time"
)

// Status is the state of a run, task or attempt.
type Status string

// Statuses.
const (
	Running   Status = "running"
	Succeeded Status = "succeeded"
	Failed    Status = "failed"
)

// HeartbeatInterval is how often the launcher of a run records that the
// run is alive (Store.Heartbeat), and how often a task process records that
// its attempt is alive (Store.TaskHeartbeat, which moves the run's heartbeat
// forward too).
//
// LostAfter is how long a run launched by a local launcher may go without a
// sign of life (its heartbeat, or its start before the first) before it
// counts as lost: its launcher was killed, or its machine stopped. It is
// also the window of Attempt.Lost that readers use for a task process.
//
// ScheduledLostAfter is that window for a run created by a production
// scheduler (system tag RuntimeSchedulerTag): such a run has no launcher,
// only its tasks keep it alive, and between two steps the scheduler may
// take minutes to start the next task (queueing for a node, pulling an
// image), so it gets a longer window before it counts as lost.
const (
	HeartbeatInterval  = 10 * time.Second
	LostAfter          = 6 * HeartbeatInterval
	ScheduledLostAfter = 15 * time.Minute
)

// RuntimeSchedulerTag is the system tag of a run created by a production
// scheduler rather than by a launcher; Run.Lost gives such a run
// ScheduledLostAfter.
const RuntimeSchedulerTag = "runtime:scheduler"

// Lost reports whether r is still marked running but nothing has said it
// is alive for LostAfter before now (ScheduledLostAfter for a run with the
// system tag RuntimeSchedulerTag).
func (r *Run) Lost(now time.Time) bool {
	if r.Status != Running {
		return false
	}
	after := LostAfter
	if slices.Contains(r.SystemTags, RuntimeSchedulerTag) {
		after = ScheduledLostAfter
	}
	return now.Sub(lastSign(r.Started, r.Heartbeat)) > after
}

// Lost reports whether a is still marked running but its process has not
// said it is alive (by its start or a heartbeat) for longer than after
// before now: the process was killed, or its machine stopped.
func (a *Attempt) Lost(now time.Time, after time.Duration) bool {
	return a.Status == Running && now.Sub(lastSign(a.Started, a.Heartbeat)) > after
}

// lastSign is the later of a start and a heartbeat.
func lastSign(started, heartbeat time.Time) time.Time {
	if heartbeat.After(started) {
		return heartbeat
	}
	return started
}

// Sentinel errors, checked with errors.Is.
var (
	ErrNotFound = errors.New("metadata: not found")
	ErrExists   = errors.New("metadata: already exists")
)

// Code is the version of the code a run used.
type Code struct {
	BinarySHA256 string `json:"binary_sha256,omitempty"`
	GitCommit    string `json:"git_commit,omitempty"`
	GitDirty     bool   `json:"git_dirty,omitempty"`
}

// Run is one run of a flow.
type Run struct {
	Flow       string            `json:"flow"`
	ID         string            `json:"id"`
	Status     Status            `json:"status"`
	User       string            `json:"user"`
	SystemTags []string          `json:"system_tags"` // "user:ann", "runtime:local"...; cannot be removed
	Tags       []string          `json:"tags"`        // user tags
	Params     map[string]string `json:"params"`
	Started    time.Time         `json:"started"`
	Ended      time.Time         `json:"ended,omitzero"`
	Code       Code              `json:"code"`
	Origin     string            `json:"origin,omitempty"`   // the run this one resumed, if any
	Heartbeat  time.Time         `json:"heartbeat,omitzero"` // when its runtime last said it was alive
}

// Artifact is one artifact a task produced.
type Artifact struct {
	Name string `json:"name"`
	Type string `json:"type"`
	Key  string `json:"key"` // content key in the datastore
	Size int64  `json:"size"`
}

// Attempt is one attempt at running a task.
type Attempt struct {
	Flow    string    `json:"flow"`
	Run     string    `json:"run"`
	Step    string    `json:"step"`
	Task    string    `json:"task"`
	N       int       `json:"attempt"` // 0 for the first
	Status  Status    `json:"status"`
	Started time.Time `json:"started"`
	Ended   time.Time `json:"ended,omitzero"`
	Error   string    `json:"error,omitempty"` // why it failed
	// Heartbeat is when the attempt's process last said it was alive
	// (Store.TaskHeartbeat); zero before it first did.
	Heartbeat time.Time `json:"heartbeat,omitzero"`
}

// Task is one task of a run, with the artifacts of its successful attempt.
type Task struct {
	Flow string `json:"flow"`
	Run  string `json:"run"`
	Step string `json:"step"`
	// ID is the task's position in the foreach nesting: "0" for a task
	// outside any foreach, the element's index inside one ("17"), dotted
	// indexes when foreaches nest ("2.5": element 5 of the inner foreach
	// in element 2 of the outer).
	ID         string     `json:"id"`
	Status     Status     `json:"status"`
	Started    time.Time  `json:"started"`
	Ended      time.Time  `json:"ended,omitzero"`
	ClonedFrom string     `json:"cloned_from,omitempty"` // pathspec of the origin task when resumed
	Attempts   []Attempt  `json:"attempts,omitempty"`
	Artifacts  []Artifact `json:"artifacts,omitempty"` // sorted by name
}

// RunFilter selects runs. Zero fields match everything.
type RunFilter struct {
	Flow   string
	Tags   []string // a run matches when it has all of them (system or user tags)
	Status Status
	Since  time.Time // started at or after
	Until  time.Time // started before
	Limit  int       // at most this many, newest first; 0 means no limit
	// After, when not zero, lists only the runs that come after it in the
	// order of the listing: pass the Key of the last run of a page to get
	// the next page.
	After RunKey
}

// RunKey is the place of a run in listings of runs, which are newest
// first: by start time, then id, then flow, all descending.
type RunKey struct {
	Started time.Time
	ID      string
	Flow    string
}

// Key returns the place of r in listings of runs.
func (r *Run) Key() RunKey { return RunKey{Started: r.Started, ID: r.ID, Flow: r.Flow} }

// IsZero reports whether k is the zero key: the start of a listing.
func (k RunKey) IsZero() bool { return k.Started.IsZero() && k.ID == "" && k.Flow == "" }

// TaskKey is the place of a task in listings of the tasks of a run, which
// are in the order of CompareTasks: by start time, step, then id.
type TaskKey struct {
	Started time.Time
	Step    string
	ID      string
}

// Key returns the place of t in listings of tasks.
func (t *Task) Key() TaskKey { return TaskKey{Started: t.Started, Step: t.Step, ID: t.ID} }

// IsZero reports whether k is the zero key: the start of a listing.
func (k TaskKey) IsZero() bool { return k.Started.IsZero() && k.Step == "" && k.ID == "" }

// Store records and reads metadata. Methods are safe for concurrent use,
// and several processes may use the same store at once.
type Store interface {
	// CreateRun records a new run. Recording the same run again (SameRun)
	// does nothing, so a retry after a lost answer is safe; ErrExists if
	// another run has its id.
	//
	// Every write is safe to repeat with the same arguments: a retry of
	// one that was done (its answer lost) leaves what is recorded as it
	// was, and does not fail because the first one was done.
	CreateRun(ctx context.Context, r *Run) error
	// FinishRun sets a run's final status and end time.
	FinishRun(ctx context.Context, flow, run string, status Status, ended time.Time) error
	// Heartbeat records that the runtime of a run is alive at time at (now
	// when zero); a run's heartbeat only moves forward. ErrNotFound if
	// there is no such run.
	Heartbeat(ctx context.Context, flow, run string, at time.Time) error
	// TaskHeartbeat records that the process of an attempt is alive at
	// time at (now when zero), and moves the run's heartbeat forward to at
	// as well: a run driven by a production scheduler has no launcher, and
	// its tasks keep it alive. Heartbeats only move forward. ErrNotFound if
	// there is no such attempt.
	TaskHeartbeat(ctx context.Context, flow, run, step, task string, attempt int, at time.Time) error
	// GetRun returns a run (ErrNotFound if none).
	GetRun(ctx context.Context, flow, run string) (*Run, error)
	// ListRuns returns runs matching f, newest first.
	ListRuns(ctx context.Context, f RunFilter) ([]*Run, error)
	// ListFlows returns the names of all flows that have runs, sorted.
	ListFlows(ctx context.Context) ([]string, error)
	// ListFlowsAfter returns at most limit (all when 0) of the names of
	// the flows that have runs, sorted, that come after the name after
	// (from the first when empty): a page of ListFlows.
	ListFlowsAfter(ctx context.Context, after string, limit int) ([]string, error)
	// AddTags adds user tags to a run; RemoveTags removes user tags. Tags
	// equal to a system tag cannot be removed (an error says so).
	AddTags(ctx context.Context, flow, run string, tags []string) error
	RemoveTags(ctx context.Context, flow, run string, tags []string) error

	// StartAttempt records that an attempt started (creating the task on
	// its first attempt). Starting an attempt that is running with the
	// same start time does nothing; ErrExists if it was started otherwise.
	StartAttempt(ctx context.Context, a Attempt) error
	// FinishAttempt records the end of an attempt; on success the task
	// takes the attempt's artifacts and status.
	FinishAttempt(ctx context.Context, a Attempt, artifacts []Artifact) error
	// CloneTask records a task copied from an origin run by resume, with
	// the origin's artifacts, as succeeded. Recording the same clone again
	// (SameClone) does nothing; ErrExists if the task exists otherwise.
	CloneTask(ctx context.Context, t *Task) error
	// GetTask returns a task with its attempts and artifacts.
	GetTask(ctx context.Context, flow, run, step, task string) (*Task, error)
	// ListTasks returns the tasks of a run (with attempts and artifacts),
	// by start time, then step name, then task id compared as dotted
	// numbers (CompareTasks). ErrNotFound if the run does not exist.
	ListTasks(ctx context.Context, flow, run string) ([]*Task, error)
	// ListTasksAfter returns at most limit (all when 0) of the tasks of a
	// run, in the order of ListTasks, that come after the task at after
	// (from the first when zero): a page of ListTasks.
	ListTasksAfter(ctx context.Context, flow, run string, after TaskKey, limit int) ([]*Task, error)

	Close() error
}
