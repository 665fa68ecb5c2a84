// Package runtime schedules the tasks of a run on the local machine: each
// task is its own OS process, independent tasks run in parallel within the
// worker and resource limits, and the run stops at the first failure.
package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

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
	Step       string
	ID         string
	Inputs     []string // parent tasks as "step/task"
	SplitIndex int      // element index when the parent is a foreach, else -1
	Attempt    int
	// CatchError is set on the attempt that records a caught failure: the
	// task stores the error instead of running the step.
	CatchError string
	Frames     []Frame
	Started    time.Time
}

// Path is "step/id".
func (t *Task) Path() string { return t.Step + "/" + t.ID }

// Config is what a run needs.
type Config struct {
	Graph      *graph.Graph
	RunID      string
	MaxWorkers int
	// Capacity is the machine's: tasks whose declared cpu or memory add up
	// past it wait. Zero fields mean no limit.
	Capacity graph.Resources
	// Command builds the (not yet started) process of a task.
	Command func(ctx context.Context, t *Task) (*exec.Cmd, error)
	// Splits reads how many elements a finished foreach task fanned out to.
	Splits func(ctx context.Context, t *Task) (int, error)
	// Console shows task output and progress.
	Console *Console
	// KillGrace is how long a task gets between SIGTERM and SIGKILL when a
	// run stops. Zero means 3 seconds.
	KillGrace time.Duration
	// Clone, when set, may complete a task without running it (resume
	// reuses the origin run's task). It reports whether it did.
	Clone func(ctx context.Context, t *Task) (bool, error)
	// Logs, when set, returns where a task attempt's stdout and stderr are
	// kept; they are closed when the process ends.
	Logs func(t *Task) (stdout, stderr io.WriteCloser)
	// Failed, when set, is told of every failed attempt, with the reason
	// seen from outside the task (exit status, timeout, kill). It returns
	// the best description of the failure (the task's own, if it recorded one).
	Failed func(ctx context.Context, t *Task, err error) string
	// RetryDelay is the wait before the first retry of a failed task; it
	// doubles with each further attempt. Zero means 2 seconds.
	RetryDelay time.Duration
}

// TaskError is a task that failed, with the last lines it printed.
type TaskError struct {
	Task     string // step/id
	Err      error  // how the process ended
	LastLine []string
}

func (e *TaskError) Error() string {
	return fmt.Sprintf("task %s failed: %v", e.Task, e.Err)
}

func (e *TaskError) Unwrap() error { return e.Err }

// ErrInterrupted is returned when the run was stopped from outside
// (Ctrl-C, SIGTERM) before it finished.
var ErrInterrupted = errors.New("run interrupted")

// CheckCapacity refuses steps that could never run on this machine.
func CheckCapacity(g *graph.Graph, c graph.Resources) error {
	var problems []string
	for _, s := range g.Steps {
		r := s.Resources
		if c.CPU > 0 && r.CPU > c.CPU {
			problems = append(problems, fmt.Sprintf("step %s needs cpu=%g but this machine has %g cores", s.Name, r.CPU, c.CPU))
		}
		if c.MemoryMB > 0 && r.MemoryMB > c.MemoryMB {
			problems = append(problems, fmt.Sprintf("step %s needs memory=%dMiB but this machine has %dMiB", s.Name, r.MemoryMB, c.MemoryMB))
		}
		if r.GPU > c.GPU {
			problems = append(problems, fmt.Sprintf("step %s needs gpu=%d but this machine has %d", s.Name, r.GPU, c.GPU))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s; lower the step's Resources or run it on a cluster", strings.Join(problems, "; "))
	}
	return nil
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
	nextID   int
	ready    []*Task
	running  map[*Task]*exec.Cmd
	used     graph.Resources
	joins    map[string]*join
	done     chan result
	retries  chan *Task
	retrying int
	stats    Stats
	began    time.Time
}

// Stats counts what a run did.
type Stats struct {
	Done, Running, Waiting int
	Steps                  map[string]int // tasks finished per step
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
	s := &scheduler{cfg: cfg, running: map[*Task]*exec.Cmd{}, joins: map[string]*join{}, done: make(chan result), retries: make(chan *Task)}
	s.stats.Steps = map[string]int{}
	s.began = time.Now()
	s.add(&Task{Step: "start", SplitIndex: -1})
	defer cfg.Console.StopStatus()
	for {
		s.launch(ctx)
		s.status()
		if len(s.running) == 0 && s.retrying == 0 {
			if len(s.ready) == 0 {
				return nil
			}
			return fmt.Errorf("stepwise: %d task(s) can never start within the machine's capacity", len(s.ready))
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
	s.cfg.Console.Status(fmt.Sprintf("run %s, %s: %d done, %s, %d waiting", s.cfg.RunID, time.Since(s.began).Round(100*time.Millisecond), s.stats.Done, running, len(s.ready)))
}

func (s *scheduler) add(t *Task) {
	s.nextID++
	t.ID = strconv.Itoa(s.nextID)
	s.ready = append(s.ready, t)
}

func (s *scheduler) fits(r graph.Resources) bool {
	c := s.cfg.Capacity
	if c.CPU > 0 && s.used.CPU+r.CPU > c.CPU {
		return false
	}
	if c.MemoryMB > 0 && s.used.MemoryMB+r.MemoryMB > c.MemoryMB {
		return false
	}
	return s.used.GPU+r.GPU <= c.GPU || r.GPU == 0
}

// launch starts ready tasks, in order, while workers and resources allow.
func (s *scheduler) launch(ctx context.Context) {
	kept := s.ready[:0]
	for i, t := range s.ready {
		r := s.cfg.Graph.Step(t.Step).Resources
		if len(s.running) >= s.cfg.MaxWorkers {
			kept = append(kept, s.ready[i:]...)
			break
		}
		if !s.fits(r) {
			kept = append(kept, t)
			continue
		}
		s.used.CPU += r.CPU
		s.used.MemoryMB += r.MemoryMB
		s.used.GPU += r.GPU
		s.start(ctx, t)
	}
	for i := len(kept); i < len(s.ready); i++ {
		s.ready[i] = nil
	}
	s.ready = kept
}

func (s *scheduler) start(ctx context.Context, t *Task) {
	prefix := fmt.Sprintf("[%s/%s/%s] ", s.cfg.RunID, t.Step, t.ID)
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
	cmd, err := s.cfg.Command(ctx, t)
	if err != nil {
		go func() { s.done <- result{t: t, err: err} }()
		return
	}
	cmd.SysProcAttr = taskProcAttr()
	out := s.cfg.Console.TaskOutput(prefix)
	var logs []io.WriteCloser
	if s.cfg.Logs != nil {
		o, e := s.cfg.Logs(t)
		logs = []io.WriteCloser{o, e}
		cmd.Stdout, cmd.Stderr = io.MultiWriter(out, o), io.MultiWriter(out, e)
	} else {
		cmd.Stdout, cmd.Stderr = out, out
	}
	closeLogs := func() {
		for _, l := range logs {
			l.Close()
		}
	}
	if err := cmd.Start(); err != nil {
		closeLogs()
		go func() { s.done <- result{t: t, err: fmt.Errorf("cannot start task process %s: %w", cmd.Path, err)} }()
		return
	}
	s.cfg.Console.Event(prefix + "task started")
	s.running[t] = cmd
	var timedOut atomic.Bool
	var timer *time.Timer
	if limit := time.Duration(s.cfg.Graph.Step(t.Step).Timeout); limit > 0 {
		timer = time.AfterFunc(limit, func() {
			timedOut.Store(true)
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		})
	}
	go func() {
		err := cmd.Wait()
		if timer != nil {
			timer.Stop()
		}
		out.Flush()
		closeLogs()
		if timedOut.Load() {
			err = fmt.Errorf("timed out after %s and was killed", time.Duration(s.cfg.Graph.Step(t.Step).Timeout))
		}
		s.done <- result{t: t, err: err, last: out.Last()}
	}()
}

// finish records a finished task and queues what follows it.
func (s *scheduler) finish(ctx context.Context, r result) error {
	t := r.t
	delete(s.running, t)
	res := s.cfg.Graph.Step(t.Step).Resources
	s.used.CPU -= res.CPU
	s.used.MemoryMB -= res.MemoryMB
	s.used.GPU -= res.GPU
	prefix := fmt.Sprintf("[%s/%s/%s] ", s.cfg.RunID, t.Step, t.ID)
	if r.err != nil {
		reason := r.err.Error()
		if s.cfg.Failed != nil {
			reason = s.cfg.Failed(ctx, t, r.err)
		}
		step := s.cfg.Graph.Step(t.Step)
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
		return &TaskError{Task: t.Path(), Err: r.err, LastLine: r.last}
	}
	if !r.cloned {
		s.cfg.Console.Event(fmt.Sprintf("%stask finished in %s", prefix, time.Since(t.Started).Round(time.Millisecond)))
	}
	s.stats.Done++
	s.stats.Steps[t.Step]++
	step := s.cfg.Graph.Step(t.Step)
	if step.Foreach != "" {
		n, err := s.cfg.Splits(ctx, t)
		if err != nil {
			return &TaskError{Task: t.Path(), Err: err}
		}
		for i := 0; i < n; i++ {
			frames := append(append([]Frame{}, t.Frames...), Frame{Step: t.Step, Index: i, Count: n})
			s.add(&Task{Step: step.Next[0], Inputs: []string{t.Path()}, SplitIndex: i, Frames: frames})
		}
		return nil
	}
	for _, next := range step.Next {
		ns := s.cfg.Graph.Step(next)
		if !ns.Join {
			s.add(&Task{Step: next, Inputs: []string{t.Path()}, SplitIndex: -1, Frames: t.Frames})
			continue
		}
		frames, want := t.Frames, len(ns.Parents)
		closesForeach := s.cfg.Graph.Step(ns.Closes).Foreach != ""
		if closesForeach {
			want = frames[len(frames)-1].Count
			frames = frames[:len(frames)-1]
		}
		key := next + "|" + frameKey(frames)
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
		if closesForeach {
			sort.Slice(j.inputs, func(a, b int) bool {
				fa, fb := j.inputs[a].Frames, j.inputs[b].Frames
				return fa[len(fa)-1].Index < fb[len(fb)-1].Index
			})
		} else {
			order := map[string]int{}
			for i, p := range ns.Parents {
				order[p] = i
			}
			sort.Slice(j.inputs, func(a, b int) bool { return order[j.inputs[a].Step] < order[j.inputs[b].Step] })
		}
		inputs := make([]string, len(j.inputs))
		for i, in := range j.inputs {
			inputs[i] = in.Path()
		}
		s.add(&Task{Step: next, Inputs: inputs, SplitIndex: -1, Frames: frames})
	}
	return nil
}

func frameKey(fs []Frame) string {
	var b strings.Builder
	for _, f := range fs {
		fmt.Fprintf(&b, "%s:%d/", f.Step, f.Index)
	}
	return b.String()
}

// stop ends every running task: SIGTERM to its process group, SIGKILL
// after the grace period, and waits for all of them.
func (s *scheduler) stop() {
	for _, cmd := range s.running {
		if cmd != nil && cmd.Process != nil {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		}
	}
	deadline := time.After(s.cfg.KillGrace)
	for len(s.running) > 0 {
		select {
		case r := <-s.done:
			delete(s.running, r.t)
		case <-deadline:
			for _, cmd := range s.running {
				if cmd != nil && cmd.Process != nil {
					_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				}
			}
			deadline = nil
		}
	}
}
