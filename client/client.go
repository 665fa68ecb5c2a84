// Package client reads what flows have done: their runs, steps, tasks and
// artifacts, as recorded by the metadata store and the datastore.
//
// Reads happen in a namespace. The default is the current user's,
// "user:NAME", so people see their own runs; SetNamespace switches to a
// colleague's, a tag such as "production", or Global for all runs.
//
//	c, _ := client.Open(ctx, client.Options{})
//	c.SetNamespace("user:ann")
//	run, _ := c.Flow("BranchJoin").LatestRun(ctx)
//	fmt.Println(run.ID, run.Tags)
package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"stepwise.dev/stepwise/internal/codec"
	"stepwise.dev/stepwise/internal/config"
	"stepwise.dev/stepwise/internal/datastore"
	"stepwise.dev/stepwise/internal/metadata"
	"stepwise.dev/stepwise/internal/names"
)

// Global is the namespace that holds every run.
const Global = ""

// ErrNotFound is returned (wrapped) when a flow, run, step, task or
// artifact does not exist, or is not in the current namespace.
var ErrNotFound = errors.New("not found")

// Status is the state of a run, a task or an attempt.
type Status string

// Statuses.
const (
	Running   Status = "running"
	Succeeded Status = "succeeded"
	Failed    Status = "failed"
)

// Client reads runs and artifacts. It is safe for concurrent use, but
// SetNamespace affects every later call.
type Client struct {
	meta      metadata.Store
	store     *datastore.Store
	namespace string
	lostAfter time.Duration
	owned     bool
}

// Options say where to read from. Zero fields come from the environment
// and the config file (see the README's configuration section).
type Options struct {
	Datastore string // local directory or s3://bucket/prefix
	Metadata  string // "local" or the URL of a metadata service
	Namespace *string
	// LostAfter is how long a running task may go without a heartbeat
	// before it counts as lost (default one minute, six missed
	// heartbeats).
	LostAfter time.Duration
}

// Open connects to the datastore and metadata store in force. The
// namespace starts as the current user's.
func Open(ctx context.Context, o Options) (*Client, error) {
	cfg, err := config.Load(config.Overrides{Datastore: o.Datastore, Metadata: o.Metadata, Source: "client.Options"})
	if err != nil {
		return nil, err
	}
	store, meta, err := cfg.Open(ctx)
	if err != nil {
		return nil, err
	}
	c := &Client{meta: meta, store: store, namespace: "user:" + cfg.User.Value, lostAfter: o.LostAfter, owned: true}
	if c.lostAfter <= 0 {
		c.lostAfter = metadata.LostAfter
	}
	if o.Namespace != nil {
		c.namespace = *o.Namespace
	}
	return c, nil
}

// newClient makes a client over open stores (tests).
func newClient(store *datastore.Store, meta metadata.Store, namespace string) *Client {
	return &Client{meta: meta, store: store, namespace: namespace, lostAfter: metadata.LostAfter}
}

// Close releases the stores opened by Open.
func (c *Client) Close() error {
	if c.owned {
		return c.meta.Close()
	}
	return nil
}

// Namespace returns the current namespace (Global is "").
func (c *Client) Namespace() string { return c.namespace }

// SetNamespace switches the namespace: "user:NAME", any tag, or Global.
func (c *Client) SetNamespace(ns string) { c.namespace = ns }

// Flow returns a handle on the flow called name. Nothing is read yet.
func (c *Client) Flow(name string) *Flow { return &Flow{c: c, Name: name} }

// Flows lists the flows that have runs in the current namespace.
func (c *Client) Flows(ctx context.Context) ([]string, error) {
	names, err := c.meta.ListFlows(ctx)
	if err != nil || c.namespace == Global {
		return names, err
	}
	var out []string
	for _, n := range names {
		runs, err := c.meta.ListRuns(ctx, metadata.RunFilter{Flow: n, Tags: []string{c.namespace}, Limit: 1})
		if err != nil {
			return nil, err
		}
		if len(runs) > 0 {
			out = append(out, n)
		}
	}
	return out, nil
}

// Flow is a flow, the entry point to its runs.
type Flow struct {
	c    *Client
	Name string
}

// Filter selects runs of a flow. Zero fields match everything.
type Filter struct {
	Tags   []string // runs carrying all of them
	Status Status   // Running, Succeeded or Failed
	Since  time.Time
	Until  time.Time
	Limit  int
	User   string // runs started by this user
	// After, when set, lists the runs that come after this one (the last
	// of the previous page): pages of a long listing.
	After *Run
}

// Runs lists the flow's runs in the namespace, newest first.
func (f *Flow) Runs(ctx context.Context, filter Filter) ([]*Run, error) {
	return f.c.runs(ctx, f.Name, filter)
}

// Runs lists the runs of every flow in the namespace, newest first.
func (c *Client) Runs(ctx context.Context, filter Filter) ([]*Run, error) {
	return c.runs(ctx, "", filter)
}

// runs lists the runs of one flow, or of all when flow is "".
func (c *Client) runs(ctx context.Context, flow string, filter Filter) ([]*Run, error) {
	mf := metadata.RunFilter{Flow: flow, Tags: slices.Clone(filter.Tags), Status: metadata.Status(filter.Status),
		Since: filter.Since, Until: filter.Until, Limit: filter.Limit}
	if filter.User != "" {
		mf.Tags = append(mf.Tags, "user:"+filter.User)
	}
	if a := filter.After; a != nil {
		mf.After = metadata.RunKey{Started: a.Started, ID: a.ID, Flow: a.Flow}
	}
	if c.namespace != Global {
		mf.Tags = append(mf.Tags, c.namespace)
	}
	rs, err := c.meta.ListRuns(ctx, mf)
	if err != nil {
		return nil, err
	}
	out := make([]*Run, len(rs))
	for i, r := range rs {
		out[i] = c.wrapRun(r)
		c.settle(ctx, out[i])
	}
	return out, nil
}

// LatestRun returns the newest run of the flow in the namespace.
func (f *Flow) LatestRun(ctx context.Context) (*Run, error) {
	return f.latest(ctx, "")
}

// LatestSuccessfulRun returns the newest run in the namespace that
// succeeded.
func (f *Flow) LatestSuccessfulRun(ctx context.Context) (*Run, error) {
	return f.latest(ctx, Succeeded)
}

func (f *Flow) latest(ctx context.Context, status Status) (*Run, error) {
	runs, err := f.Runs(ctx, Filter{Status: status, Limit: 1})
	if err != nil {
		return nil, err
	}
	if len(runs) == 0 {
		what := "no run"
		if status != "" {
			what = "no " + string(status) + " run"
		}
		return nil, fmt.Errorf("flow %s has %s in namespace %s; run it first, or switch namespace (SetNamespace, or --namespace on the command line): %w",
			f.Name, what, nsName(f.c.namespace), ErrNotFound)
	}
	return runs[0], nil
}

// Run returns the run with the given id, if it is in the namespace.
func (f *Flow) Run(ctx context.Context, id string) (*Run, error) {
	r, err := f.c.meta.GetRun(ctx, f.Name, id)
	if err != nil {
		if errors.Is(err, metadata.ErrNotFound) {
			return nil, fmt.Errorf("run %s/%s does not exist; list runs with 'stepwise runs %s': %w", f.Name, id, f.Name, ErrNotFound)
		}
		return nil, err
	}
	run := f.c.wrapRun(r)
	if !run.inNamespace(f.c.namespace) {
		return nil, &NamespaceError{Pathspec: f.Name + "/" + id, Namespace: f.c.namespace, RunNamespaces: r.SystemTags}
	}
	f.c.settle(ctx, run)
	return run, nil
}

// NamespaceError refuses a run that exists but is not in the current
// namespace.
type NamespaceError struct {
	Pathspec      string
	Namespace     string
	RunNamespaces []string
}

func (e *NamespaceError) Error() string {
	user := ""
	for _, t := range e.RunNamespaces {
		if strings.HasPrefix(t, "user:") {
			user = t
		}
	}
	return fmt.Sprintf("%s is not in namespace %s (it is in %s); switch with SetNamespace(%q) or SetNamespace(client.Global), or on the command line --namespace %s or --namespace global",
		e.Pathspec, nsName(e.Namespace), user, user, user)
}

func (e *NamespaceError) Is(target error) bool { return target == ErrNotFound }

func nsName(ns string) string {
	if ns == Global {
		return "global"
	}
	return ns
}

// Run is one run of a flow.
type Run struct {
	c          *Client
	Flow       string
	ID         string
	Status     Status
	User       string
	Tags       []string // user tags and system tags, sorted
	SystemTags []string
	Params     map[string]string
	Started    time.Time
	Ended      time.Time
	Origin     string // the run it resumed, if any
	Code       Code
	// Heartbeat is when the run's runtime last said it was alive (every
	// 10 seconds while the run goes on); zero before it first did.
	Heartbeat time.Time `json:",omitzero"`
	// Lost is true when the run is still marked running but its runtime
	// has not said it is alive for a minute (a quarter of an hour for a
	// run driven by a production scheduler, whose tasks keep it alive),
	// when the run was read: the runtime was killed or its machine
	// stopped. Resume the run to finish it.
	Lost bool `json:",omitempty"`
}

// Code is the version of the code a run used.
type Code struct {
	BinarySHA256 string `json:"binary_sha256,omitempty"` // the flow binary's
	GitCommit    string `json:"git_commit,omitempty"`
	GitDirty     bool   `json:"git_dirty,omitempty"` // uncommitted changes when it was built
}

func (c *Client) wrapRun(r *metadata.Run) *Run {
	tags := append(slices.Clone(r.SystemTags), r.Tags...)
	slices.Sort(tags)
	return &Run{c: c, Flow: r.Flow, ID: r.ID, Status: Status(r.Status), User: r.User, Tags: slices.Compact(tags),
		SystemTags: r.SystemTags, Params: r.Params, Started: r.Started, Ended: r.Ended, Origin: r.Origin,
		Code:      Code{BinarySHA256: r.Code.BinarySHA256, GitCommit: r.Code.GitCommit, GitDirty: r.Code.GitDirty},
		Heartbeat: r.Heartbeat, Lost: r.Lost(time.Now())}
}

// settle looks, for a run still marked running in the metadata store but
// lost, whether its end was recorded in the datastore while the metadata
// store was away; if so the run takes that status, and the metadata store
// is brought up to date.
func (c *Client) settle(ctx context.Context, r *Run) {
	if !r.Lost {
		return
	}
	end, err := c.store.GetRunEnd(ctx, r.Flow, r.ID)
	if err != nil || end == nil || end.Status == "" {
		return
	}
	r.Status, r.Ended, r.Lost = Status(end.Status), end.Ended, false
	_ = c.meta.FinishRun(ctx, r.Flow, r.ID, metadata.Status(end.Status), end.Ended)
}

func (r *Run) inNamespace(ns string) bool {
	return ns == Global || slices.Contains(r.Tags, ns)
}

// Pathspec is "Flow/RunID".
func (r *Run) Pathspec() string { return r.Flow + "/" + r.ID }

// Successful reports whether the run finished successfully.
func (r *Run) Successful() bool { return r.Status == Succeeded }

// Tasks lists every task of the run, in the order they were created.
func (r *Run) Tasks(ctx context.Context) ([]*Task, error) {
	ts, err := r.c.meta.ListTasks(ctx, r.Flow, r.ID)
	if err != nil {
		return nil, err
	}
	out := make([]*Task, len(ts))
	for i, t := range ts {
		out[i] = r.c.wrapTask(t)
	}
	return out, nil
}

// Steps lists the names of the run's steps that have tasks, in the order
// their first task was created.
func (r *Run) Steps(ctx context.Context) ([]string, error) {
	ts, err := r.Tasks(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, t := range ts {
		if !slices.Contains(out, t.Step) {
			out = append(out, t.Step)
		}
	}
	return out, nil
}

// Step returns the tasks of one step of the run.
func (r *Run) Step(ctx context.Context, step string) ([]*Task, error) {
	ts, err := r.Tasks(ctx)
	if err != nil {
		return nil, err
	}
	var out []*Task
	for _, t := range ts {
		if t.Step == step {
			out = append(out, t)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("run %s has no task of step %q: %w", r.Pathspec(), step, ErrNotFound)
	}
	return out, nil
}

// Task returns one task of the run by step and task id.
func (r *Run) Task(ctx context.Context, step, id string) (*Task, error) {
	t, err := r.c.meta.GetTask(ctx, r.Flow, r.ID, step, id)
	if err != nil {
		if errors.Is(err, metadata.ErrNotFound) {
			return nil, fmt.Errorf("task %s/%s/%s does not exist: %w", r.Pathspec(), step, id, ErrNotFound)
		}
		return nil, err
	}
	return r.c.wrapTask(t), nil
}

// EndTask returns the task of the end step, which holds the flow's final
// artifacts.
func (r *Run) EndTask(ctx context.Context) (*Task, error) {
	ts, err := r.Step(ctx, "end")
	if err != nil {
		return nil, err
	}
	return ts[0], nil
}

// Task is one task of a run.
type Task struct {
	c          *Client
	Flow       string
	Run        string
	Step       string
	ID         string // 0 outside a foreach, the element index inside one (dotted when nested: 2.5)
	Status     Status
	Started    time.Time
	Ended      time.Time
	ClonedFrom string // pathspec of the origin task when the run resumed another
	Attempts   []Attempt
	Artifacts  []Artifact // sorted by name
	// Lost is true when the task is still marked running but its process
	// has not said it is alive for Options.LostAfter: its process or
	// machine died. Its run fails or is resumed.
	Lost bool `json:",omitempty"`
}

// Attempt is one attempt at running a task.
type Attempt struct {
	N         int    // 0 for the first
	Status    Status // Running, Succeeded or Failed
	Started   time.Time
	Ended     time.Time `json:",omitzero"`
	Heartbeat time.Time `json:",omitzero"`  // when its process last said it was alive
	Error     string    `json:",omitempty"` // why it failed
	Lost      bool      `json:",omitempty"` // running, but silent for too long
}

// Artifact is one artifact a task produced: a field of the flow.
type Artifact struct {
	Name string // the field's name
	Type string // its Go type
	Key  string // the content key of its value in the datastore
	Size int64  // encoded size in bytes
}

// TableRead is one table version a task's step read with package table:
// its name and location, format ("parquet" or "iceberg"), version (the
// dataset's manifest version or the Iceberg snapshot id) and when it was
// committed, the read's filter and columns, and the files and rows read.
type TableRead = datastore.TableRead

// TableReads returns the table versions the task's step read, from the
// task's record in the datastore (none for a task that read no table).
// Reading an Iceberg table again with table.ReadOptions{Snapshot: r.Version}
// gives the same data.
func (t *Task) TableReads(ctx context.Context) ([]TableRead, error) {
	rec, err := t.c.store.GetTask(ctx, datastore.TaskPath{Flow: t.Flow, Run: t.Run, Step: t.Step, Task: t.ID})
	if err != nil {
		return nil, fmt.Errorf("task %s: %w", t.Pathspec(), err)
	}
	return rec.Tables, nil
}

func (c *Client) wrapTask(t *metadata.Task) *Task {
	out := &Task{c: c, Flow: t.Flow, Run: t.Run, Step: t.Step, ID: t.ID, Status: Status(t.Status), Started: t.Started,
		Ended: t.Ended, ClonedFrom: t.ClonedFrom}
	now := time.Now()
	for _, a := range t.Attempts {
		lost := a.Lost(now, c.lostAfter)
		out.Attempts = append(out.Attempts, Attempt{N: a.N, Status: Status(a.Status), Started: a.Started, Ended: a.Ended,
			Heartbeat: a.Heartbeat, Error: a.Error, Lost: lost})
		out.Lost = lost // the last attempt's
	}
	for _, a := range t.Artifacts {
		out.Artifacts = append(out.Artifacts, Artifact{Name: a.Name, Type: a.Type, Key: a.Key, Size: a.Size})
	}
	out.Lost = out.Lost && out.Status == Running
	return out
}

// Pathspec is "Flow/RunID/step/TaskID".
func (t *Task) Pathspec() string { return t.Flow + "/" + t.Run + "/" + t.Step + "/" + t.ID }

// Artifact returns the reference of the named artifact.
func (t *Task) Artifact(name string) (Artifact, error) {
	for _, a := range t.Artifacts {
		if a.Name == name {
			return a, nil
		}
	}
	names := make([]string, len(t.Artifacts))
	for i, a := range t.Artifacts {
		names[i] = a.Name
	}
	return Artifact{}, fmt.Errorf("task %s has no artifact %q (it has %s): %w", t.Pathspec(), name, strings.Join(names, ", "), ErrNotFound)
}

// Raw returns the value of an artifact decoded without its Go type: maps,
// slices, strings, numbers, times; numeric slices keep their type.
func (t *Task) Raw(ctx context.Context, name string) (any, error) {
	data, err := t.bytes(ctx, name)
	if err != nil {
		return nil, err
	}
	return codec.DecodeAny(data)
}

func (t *Task) bytes(ctx context.Context, name string) ([]byte, error) {
	a, err := t.Artifact(name)
	if err != nil {
		return nil, err
	}
	return t.c.store.GetBlob(ctx, a.Key)
}

// Get returns artifact name of task t as a T. A T that does not match the
// stored value is an error naming both types.
func Get[T any](ctx context.Context, t *Task, name string) (T, error) {
	var v T
	err := t.Decode(ctx, name, &v)
	return v, err
}

// Decode reads artifact name of the task into ptr, a non-nil pointer to a
// value of the artifact's type: Get for callers that know the type only at
// run time (through reflection). A type that does not match the stored
// value is an error naming both types.
func (t *Task) Decode(ctx context.Context, name string, ptr any) error {
	data, err := t.bytes(ctx, name)
	if err != nil {
		return err
	}
	if err := codec.Decode(data, ptr); err != nil {
		a, _ := t.Artifact(name)
		return fmt.Errorf("artifact %s of %s is stored as %s and cannot be read as %s: %w", name, t.Pathspec(), a.Type, strings.TrimPrefix(fmt.Sprintf("%T", ptr), "*"), err)
	}
	return nil
}

// Pathspec is a parsed "Flow[/Run[/step[/task]]]".
type Pathspec struct {
	Flow, Run, Step, Task string
}

// ParsePathspec parses "Flow", "Flow/Run", "Flow/Run/step" or
// "Flow/Run/step/task". Each part must be a name that package names
// allows, the rules every store and the metadata service hold names to, so
// that whatever was recorded can be addressed: a flow name such as
// BranchJoin, a run id such as 1764340315123456, a step name such as
// train_model, and a task id such as 0, 17 or 2.5.
func ParsePathspec(s string) (Pathspec, error) {
	bad := func(why string) (Pathspec, error) {
		return Pathspec{}, fmt.Errorf("pathspec %s: %s; write Flow/RunID/step/TaskID, e.g. BranchJoin/1764340315123456/start/0", names.Quote(s), why)
	}
	if s == "" {
		return bad("it is empty")
	}
	parts := strings.Split(s, "/")
	if len(parts) > 4 {
		return bad("it has more than four parts")
	}
	for i, p := range parts {
		if p == "" {
			return bad(fmt.Sprintf("part %d is empty", i+1))
		}
	}
	var ps Pathspec
	for i, part := range []struct {
		field *string
		rule  func(string) error
	}{{&ps.Flow, names.Flow}, {&ps.Run, names.RunID}, {&ps.Step, names.Step}, {&ps.Task, names.TaskID}} {
		if i == len(parts) {
			break
		}
		if err := part.rule(parts[i]); err != nil {
			return bad(err.Error())
		}
		*part.field = parts[i]
	}
	return ps, nil
}

// String formats the pathspec back.
func (p Pathspec) String() string {
	s := p.Flow
	for _, x := range []string{p.Run, p.Step, p.Task} {
		if x == "" {
			break
		}
		s += "/" + x
	}
	return s
}

// Task resolves a pathspec to a task. "Flow/Run/step" is accepted when the
// step has exactly one task.
func (c *Client) Task(ctx context.Context, spec string) (*Task, error) {
	ps, err := ParsePathspec(spec)
	if err != nil {
		return nil, err
	}
	if ps.Step == "" {
		return nil, fmt.Errorf("pathspec %q names a run, not a task; add /step/TaskID", spec)
	}
	run, err := c.Flow(ps.Flow).Run(ctx, ps.Run)
	if err != nil {
		return nil, err
	}
	if ps.Task != "" {
		return run.Task(ctx, ps.Step, ps.Task)
	}
	ts, err := run.Step(ctx, ps.Step)
	if err != nil {
		return nil, err
	}
	if len(ts) > 1 {
		return nil, fmt.Errorf("step %s of run %s has %d tasks; name one, e.g. %s", ps.Step, run.Pathspec(), len(ts), ts[0].Pathspec())
	}
	return ts[0], nil
}

// Logs returns one stream ("stdout" or "stderr") of one attempt of the
// task, as far as it was written (a killed task keeps what it printed).
func (t *Task) Logs(ctx context.Context, attempt int, stream string) ([]byte, error) {
	if stream != "stdout" && stream != "stderr" {
		return nil, fmt.Errorf("log stream %q: use stdout or stderr", stream)
	}
	return t.c.store.ReadLog(ctx, datastore.TaskPath{Flow: t.Flow, Run: t.Run, Step: t.Step, Task: t.ID}, attempt, stream)
}

// AddTags adds user tags to the run. A tag with a system prefix (user:,
// runtime:, production:), or one that the rules of tags do not allow, is
// refused, and then none is added.
func (r *Run) AddTags(ctx context.Context, tags ...string) error {
	for _, t := range tags {
		if err := names.UserTag(t); err != nil {
			return fmt.Errorf("run %s: %w", r.Pathspec(), err)
		}
	}
	if err := r.c.meta.AddTags(ctx, r.Flow, r.ID, tags); err != nil {
		return err
	}
	r.Tags = slices.Compact(slices.Sorted(slices.Values(append(r.Tags, tags...))))
	return r.c.keepTags(ctx, r)
}

// keepTags writes the run's user tags to the datastore too, so that they
// survive the loss of the metadata store (stepwise rebuild-metadata).
func (c *Client) keepTags(ctx context.Context, r *Run) error {
	if c.store == nil {
		return nil
	}
	m, err := c.meta.GetRun(ctx, r.Flow, r.ID)
	if err != nil {
		return err
	}
	tags := m.Tags
	if tags == nil {
		tags = []string{}
	}
	if err := c.store.PutRunTags(ctx, &datastore.RunTags{Flow: r.Flow, Run: r.ID, Tags: tags, Updated: time.Now().UTC()}); err != nil {
		return fmt.Errorf("the tags of run %s were changed, but could not be kept in the datastore as well: %w", r.Pathspec(), err)
	}
	return nil
}

// RemoveTags removes user tags from the run; system tags (user:NAME)
// cannot be removed.
func (r *Run) RemoveTags(ctx context.Context, tags ...string) error {
	for _, t := range tags {
		if slices.Contains(r.SystemTags, t) {
			return fmt.Errorf("tag %q of run %s is a system tag and cannot be removed", t, r.Pathspec())
		}
	}
	if err := r.c.meta.RemoveTags(ctx, r.Flow, r.ID, tags); err != nil {
		return err
	}
	r.Tags = slices.DeleteFunc(r.Tags, func(t string) bool { return slices.Contains(tags, t) })
	return r.c.keepTags(ctx, r)
}
