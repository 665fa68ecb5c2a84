// Package scheduler runs the tasks of a run in dependency order: it
// starts each attempt on the step's compute backend when the graph, the
// worker limit and the backend's capacity allow, retries and catches
// failures as the step declares, fans out foreach steps, waits for joins,
// and stops the run at the first failure that is not caught. It knows
// nothing of processes or stores: compute backends start tasks, and
// callbacks read splits, clone tasks and record failures.
package scheduler

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"stepwise.dev/stepwise/internal/compute"
	"stepwise.dev/stepwise/internal/console"
	"stepwise.dev/stepwise/internal/graph"
)

// Frame is one level of foreach around a task: the step that fanned out,
// the task's element index and the number of elements.
type Frame struct {
	Step  string
	Index int
	Count int
}

// Task is one task to run.
type Task struct {
	Step    string
	ID      string // graph.TaskID of its foreach indexes
	Attempt int
	// CatchError is set on the attempt that records a caught failure: the
	// task stores the error instead of running the step.
	CatchError string
	Frames     []Frame
	Started    time.Time
	// Inputs are the parent tasks, "step/id", for resume's clone check.
	Inputs []string
}

// Path is "step/id".
func (t *Task) Path() string { return t.Step + "/" + t.ID }

// Indexes are the task's foreach indexes, outermost first.
func (t *Task) Indexes() []int { return framesIndexes(t.Frames) }

// Config is what a run needs.
type Config struct {
	Graph      *graph.Graph
	RunID      string
	MaxWorkers int
	// Backend returns the compute backend a step's tasks run on.
	Backend func(step string) compute.Backend
	// Spec returns the command line and environment of a task attempt; the
	// scheduler fills in its resources, timeout and output.
	Spec func(ctx context.Context, t *Task) (compute.Spec, error)
	// Splits reads how many elements a finished foreach task fanned out to.
	Splits func(ctx context.Context, t *Task) (int, error)
	// Console shows task output and progress.
	Console *console.Console
	// Logs, when set, returns where an attempt's stdout and stderr are
	// kept besides the console, or nils when the task keeps them itself;
	// they are closed when the attempt ends.
	Logs func(t *Task) (stdout, stderr io.WriteCloser)
	// KillGrace is how long a task gets between the request to stop and
	// its forced end when a run stops. Zero means 3 seconds.
	KillGrace time.Duration
	// Clone, when set, may complete a task without running it (resume
	// reuses the origin run's task). It reports whether it did.
	Clone func(ctx context.Context, t *Task) (bool, error)
	// Failed, when set, is told of every failed attempt, with the reason
	// seen from outside the task (exit status, timeout, kill). It returns
	// the best description of the failure (the task's own, if it recorded one).
	Failed func(ctx context.Context, t *Task, err error) string
	// RetryDelay is the wait before the first retry of a failed task; it
	// doubles with each further attempt. Zero means 2 seconds.
	RetryDelay time.Duration
	// Ahead, when set, is told after every event how many tasks are likely
	// to start on a backend soon (the ready ones, and those the running ones
	// lead to, within the worker limit), so that it can prepare for them.
	Ahead func(b compute.Backend, n int)
}

// TaskError is a task that failed for good, with the last lines it printed.
type TaskError struct {
	Step, ID string
	Attempt  int
	Err      error // how the attempt ended
	Reason   string
	LastLine []string
}

func (e *TaskError) Error() string {
	return fmt.Sprintf("task %s/%s failed: %v", e.Step, e.ID, e.Err)
}

func (e *TaskError) Unwrap() error { return e.Err }

// ErrInterrupted is returned when the run was stopped from outside
// (Ctrl-C, SIGTERM) before it finished.
var ErrInterrupted = errors.New("run interrupted")

// Check refuses, before a run, steps that could never run on their
// backend; it reports every such step.
func Check(g *graph.Graph, backend func(step string) compute.Backend) error {
	var errs []error
	for _, s := range g.Steps {
		if err := backend(s.Name).Check(s); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

type result struct {
	t      *Task
	err    error
	last   []string
	cloned bool
}

type join struct {
	inputs []*Task
	want   int
}

type scheduler struct {
	cfg      Config
	ready    []*Task
	running  map[*Task]compute.Handle
	used     map[string]graph.Resources // per backend
	joins    map[string]*join
	done     chan result
	retries  chan *Task
	retrying int
	finished int
	began    time.Time
}

// Run runs the flow's tasks from start to end.
func Run(ctx context.Context, cfg Config) error {
	if cfg.MaxWorkers <= 0 {
		cfg.MaxWorkers = 1
	}
	if cfg.KillGrace == 0 {
		cfg.KillGrace = 3 * time.Second
	}
	if cfg.RetryDelay == 0 {
		cfg.RetryDelay = 2 * time.Second
	}
	s := &scheduler{cfg: cfg, running: map[*Task]compute.Handle{}, used: map[string]graph.Resources{}, joins: map[string]*join{},
		done: make(chan result), retries: make(chan *Task)}
	s.began = time.Now()
	s.add(&Task{Step: "start"})
	defer cfg.Console.StopStatus()
	for {
		s.launch(ctx)
		s.status()
		s.ahead()
		if len(s.running) == 0 && s.retrying == 0 {
			if len(s.ready) == 0 {
				return nil
			}
			return fmt.Errorf("stepwise: %d task(s) can never start within their backend's capacity", len(s.ready))
		}
		select {
		case t := <-s.retries:
			s.retrying--
			s.ready = append(s.ready, t)
		case r := <-s.done:
			if err := s.finish(ctx, r); err != nil {
				s.stop()
				return err
			}
		case <-ctx.Done():
			s.stop()
			return ErrInterrupted
		}
	}
}

func (s *scheduler) status() {
	names := make([]string, 0, len(s.running))
	for t := range s.running {
		names = append(names, t.Path())
	}
	sort.Strings(names)
	if len(names) > 4 {
		names = append(names[:4], fmt.Sprintf("+%d", len(names)-4))
	}
	running := fmt.Sprintf("%d running", len(s.running))
	if len(names) > 0 {
		running += " (" + strings.Join(names, " ") + ")"
	}
	s.cfg.Console.Status(fmt.Sprintf("run %s, %s: %d done, %s, %d waiting", s.cfg.RunID, time.Since(s.began).Round(100*time.Millisecond), s.finished, running, len(s.ready)))
}

// ahead tells each backend how many tasks are likely to start on it soon:
// those waiting, and those the running tasks lead to (a foreach: as many as
// the workers allow; a join: one), within the workers left.
func (s *scheduler) ahead() {
	if s.cfg.Ahead == nil {
		return
	}
	soon := map[compute.Backend]int{}
	for _, t := range s.ready {
		soon[s.cfg.Backend(t.Step)]++
	}
	for t := range s.running {
		step := s.cfg.Graph.Step(t.Step)
		for _, n := range step.Next {
			if step.Foreach != "" {
				soon[s.cfg.Backend(n)] += s.cfg.MaxWorkers
			} else {
				soon[s.cfg.Backend(n)]++
			}
		}
	}
	for b, n := range soon {
		s.cfg.Ahead(b, min(n, s.cfg.MaxWorkers))
	}
}

func (s *scheduler) add(t *Task) {
	t.ID = graph.TaskID(t.Indexes())
	s.ready = append(s.ready, t)
}

func (s *scheduler) fits(b compute.Backend, r graph.Resources) bool {
	c, used := b.Capacity(), s.used[b.Name()]
	if c.CPU > 0 && used.CPU+r.CPU > c.CPU {
		return false
	}
	if c.MemoryMB > 0 && used.MemoryMB+r.MemoryMB > c.MemoryMB {
		return false
	}
	if c.GPU > 0 && used.GPU+r.GPU > c.GPU {
		return false
	}
	return true
}

func (s *scheduler) reserve(b compute.Backend, r graph.Resources, sign float64) {
	u := s.used[b.Name()]
	u.CPU += sign * r.CPU
	u.MemoryMB += int64(sign) * r.MemoryMB
	u.GPU += int(sign) * r.GPU
	s.used[b.Name()] = u
}

// launch starts ready tasks, in order, while workers and resources allow.
func (s *scheduler) launch(ctx context.Context) {
	kept := s.ready[:0]
	for i, t := range s.ready {
		if len(s.running) >= s.cfg.MaxWorkers {
			kept = append(kept, s.ready[i:]...)
			break
		}
		b := s.cfg.Backend(t.Step)
		r := s.cfg.Graph.Step(t.Step).Resources
		if !s.fits(b, r) {
			kept = append(kept, t)
			continue
		}
		s.reserve(b, r, 1)
		s.start(ctx, t)
	}
	for i := len(kept); i < len(s.ready); i++ {
		s.ready[i] = nil
	}
	s.ready = kept
}

func (s *scheduler) prefix(t *Task) string {
	return fmt.Sprintf("[%s/%s/%s] ", s.cfg.RunID, t.Step, t.ID)
}

func (s *scheduler) start(ctx context.Context, t *Task) {
	prefix := s.prefix(t)
	t.Started = time.Now()
	s.running[t] = nil
	if s.cfg.Clone != nil && t.Attempt == 0 {
		cloned, err := s.cfg.Clone(ctx, t)
		if err != nil || cloned {
			if cloned {
				s.cfg.Console.Event(prefix + "cloned from the origin run")
			}
			go func() { s.done <- result{t: t, err: err, cloned: cloned} }()
			return
		}
	}
	spec, err := s.cfg.Spec(ctx, t)
	if err != nil {
		go func() { s.done <- result{t: t, err: err} }()
		return
	}
	step := s.cfg.Graph.Step(t.Step)
	if t.CatchError == "" {
		spec.Resources = step.Resources
		spec.Timeout = time.Duration(step.Timeout)
	} // else the attempt that records a caught failure does not run the step: it needs neither
	spec.Settings = step.ComputeSettings
	out := s.cfg.Console.TaskOutput(prefix)
	spec.Stdout, spec.Stderr = out, out
	var logs []io.WriteCloser
	if s.cfg.Logs != nil {
		if o, e := s.cfg.Logs(t); o != nil && e != nil {
			logs = []io.WriteCloser{o, e}
			spec.Stdout, spec.Stderr = io.MultiWriter(out, o), io.MultiWriter(out, e)
		}
	}
	closeLogs := func() {
		for _, l := range logs {
			l.Close()
		}
	}
	h, err := s.cfg.Backend(t.Step).Start(ctx, spec)
	if err != nil {
		closeLogs()
		go func() { s.done <- result{t: t, err: err} }()
		return
	}
	s.cfg.Console.Event(prefix + "task started")
	s.running[t] = h
	go func() {
		err := h.Wait()
		out.Flush()
		closeLogs()
		if errors.Is(err, compute.ErrTimeout) {
			err = fmt.Errorf("timed out after %s and was stopped", time.Duration(step.Timeout))
		}
		s.done <- result{t: t, err: err, last: out.Last()}
	}()
}

// finish records a finished task and queues what follows it.
func (s *scheduler) finish(ctx context.Context, r result) error {
	t := r.t
	delete(s.running, t)
	step := s.cfg.Graph.Step(t.Step)
	s.reserve(s.cfg.Backend(t.Step), step.Resources, -1)
	prefix := s.prefix(t)
	if r.err != nil {
		reason := r.err.Error()
		if s.cfg.Failed != nil {
			reason = s.cfg.Failed(ctx, t, r.err)
		}
		if t.Attempt < step.Retries && ctx.Err() == nil {
			delay := s.cfg.RetryDelay << t.Attempt
			s.cfg.Console.Event(fmt.Sprintf("%sattempt %d failed (%v); retrying in %s", prefix, t.Attempt, r.err, delay))
			s.retrying++
			retry := *t
			retry.Attempt++
			time.AfterFunc(delay, func() { s.retries <- &retry })
			return nil
		}
		if step.Catch != "" && t.CatchError == "" && ctx.Err() == nil {
			s.cfg.Console.Event(fmt.Sprintf("%stask failed (%v); the failure is caught into %s and the run goes on", prefix, r.err, step.Catch))
			caught := *t
			caught.Attempt++
			caught.CatchError = reason
			s.ready = append(s.ready, &caught)
			return nil
		}
		s.cfg.Console.Event(prefix + "task failed: " + r.err.Error())
		return &TaskError{Step: t.Step, ID: t.ID, Attempt: t.Attempt, Err: r.err, Reason: reason, LastLine: r.last}
	}
	if !r.cloned {
		s.cfg.Console.Event(fmt.Sprintf("%stask finished in %s", prefix, time.Since(t.Started).Round(time.Millisecond)))
	}
	s.finished++
	if step.Foreach != "" {
		n, err := s.cfg.Splits(ctx, t)
		if err != nil {
			return &TaskError{Step: t.Step, ID: t.ID, Attempt: t.Attempt, Err: err, Reason: err.Error()}
		}
		for i := 0; i < n; i++ {
			frames := append(append([]Frame{}, t.Frames...), Frame{Step: t.Step, Index: i, Count: n})
			s.add(&Task{Step: step.Next[0], Frames: frames, Inputs: []string{t.Path()}})
		}
		return nil
	}
	for _, next := range step.Next {
		ns := s.cfg.Graph.Step(next)
		if !ns.Join {
			s.add(&Task{Step: next, Frames: t.Frames, Inputs: []string{t.Path()}})
			continue
		}
		frames, want := t.Frames, len(ns.Parents)
		closesForeach := s.cfg.Graph.Step(ns.Closes).Foreach != ""
		if closesForeach {
			want = frames[len(frames)-1].Count
			frames = frames[:len(frames)-1]
		}
		key := next + "|" + graph.TaskID(framesIndexes(frames))
		j := s.joins[key]
		if j == nil {
			j = &join{want: want}
			s.joins[key] = j
		}
		j.inputs = append(j.inputs, t)
		if len(j.inputs) < j.want {
			continue
		}
		delete(s.joins, key)
		inputs := make([]string, len(j.inputs))
		for i, in := range j.inputs {
			inputs[i] = in.Path()
		}
		s.add(&Task{Step: next, Frames: frames, Inputs: inputs})
	}
	return nil
}

func framesIndexes(fs []Frame) []int {
	idx := make([]int, len(fs))
	for i, f := range fs {
		idx[i] = f.Index
	}
	return idx
}

// stop ends every running task: a request to stop, then its forced end
// after the grace period; it waits for all of them.
func (s *scheduler) stop() {
	for _, h := range s.running {
		if h != nil {
			h.Stop(s.cfg.KillGrace)
		}
	}
	for len(s.running) > 0 {
		r := <-s.done
		delete(s.running, r.t)
	}
}
