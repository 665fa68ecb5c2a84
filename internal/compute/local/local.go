// Package local is the compute backend that runs every task attempt as a
// process of the flow's binary on this machine, in its own process group
// (stopping a task stops all it started), dying with the launcher. It
// never starts more than the machine's cores, memory and GPUs allow: the
// scheduler holds attempts back until their declared resources fit.
package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"stepwise.dev/stepwise/internal/compute"
	"stepwise.dev/stepwise/internal/graph"
)

// Name is the backend's name in the graph and on the command line.
const Name = "local"

// Options configure the backend.
type Options struct {
	// Exe is the flow's binary (default: this program's).
	Exe string
	// Capacity replaces the machine's (tests inject one).
	Capacity *graph.Resources
	// TimeoutGrace is how long a task that ran past its timeout gets
	// between SIGTERM and SIGKILL (default 2 seconds): time to write its
	// last output and record its failure.
	TimeoutGrace time.Duration
}

// Backend runs tasks as local processes.
type Backend struct {
	exe      string
	capacity graph.Resources
	grace    time.Duration

	mu       sync.Mutex
	warm     []*process // started ahead, waiting for a task
	warmEnv  []string
	warmN    int
	starting int
	closed   bool
}

var _ compute.Backend = (*Backend)(nil)

// New returns the local backend.
func New(o Options) (*Backend, error) {
	b := &Backend{exe: o.Exe, capacity: Machine(), grace: o.TimeoutGrace}
	if o.Capacity != nil {
		b.capacity = *o.Capacity
	}
	if b.grace == 0 {
		b.grace = 2 * time.Second
	}
	if b.exe == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("local compute: cannot find this program's binary to start tasks: %w", err)
		}
		b.exe = exe
	}
	return b, nil
}

func init() {
	compute.Register(Name, func(context.Context, compute.Env) (compute.Backend, error) { return New(Options{}) })
}

// Name is "local".
func (b *Backend) Name() string { return Name }

// Capacity is the machine's cores, memory and GPUs.
func (b *Backend) Capacity() graph.Resources { return b.capacity }

// Check refuses a step that needs more than this machine has.
func (b *Backend) Check(s *graph.Step) error {
	r, c := s.Resources, b.capacity
	var problems []string
	if c.CPU > 0 && r.CPU > c.CPU {
		problems = append(problems, fmt.Sprintf("cpu=%g but this machine has %g cores", r.CPU, c.CPU))
	}
	if c.MemoryMB > 0 && r.MemoryMB > c.MemoryMB {
		problems = append(problems, fmt.Sprintf("memory=%dMiB but this machine has %dMiB", r.MemoryMB, c.MemoryMB))
	}
	if r.GPU > c.GPU {
		what := fmt.Sprintf("%d", c.GPU)
		if c.GPU == 0 {
			what = "none (no NVIDIA GPU device found)"
		}
		problems = append(problems, fmt.Sprintf("gpu=%d but this machine has %s", r.GPU, what))
	}
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("step %s needs %s; lower the step's Resources or run it on a cluster", s.Name, strings.Join(problems, " and "))
}

// RecordsChannel says that a task's process gets file descriptor 3 back
// to the launcher.
func (b *Backend) RecordsChannel() bool { return true }

// Start starts the attempt: on a warm process when one is ready (see
// Warm), else on a new one.
func (b *Backend) Start(ctx context.Context, s compute.Spec) (compute.Handle, error) {
	if p := b.take(s.Env); p != nil {
		if err := b.assign(p, s); err == nil {
			return p, nil
		}
		// It died while it waited; start a fresh one.
	}
	p, err := b.spawn(s.Args, s.Env, false)
	if err != nil {
		return nil, fmt.Errorf("cannot start the process of task %s (%s): %w", s.Path(), b.exe, err)
	}
	if err := b.assign(p, s); err != nil {
		return nil, err
	}
	return p, nil
}

// spawn starts a process of the flow's binary: with the task's command
// line, or warm (it waits for its command line on its standard input).
func (b *Backend) spawn(args, env []string, warm bool) (*process, error) {
	if warm {
		args = []string{"task", WarmFlag}
	}
	cmd := exec.Command(b.exe, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = taskProcAttr()
	p := &process{cmd: cmd, done: make(chan struct{}), copied: make(chan error, 1), out: &switchWriter{}, errOut: &switchWriter{}}
	cmd.Stdout, cmd.Stderr = p.out, p.errOut
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("no pipe for the task's records: %w", err)
	}
	cmd.ExtraFiles = []*os.File{w}
	p.records = r
	if warm {
		if p.stdin, err = cmd.StdinPipe(); err != nil {
			r.Close()
			w.Close()
			return nil, err
		}
	}
	err = cmd.Start()
	w.Close() // the child has its copy
	if err != nil {
		r.Close()
		return nil, err
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// assign gives a started process its attempt: where its output and records
// go, its command line when it is warm, and its timeout.
func (b *Backend) assign(p *process, s compute.Spec) error {
	p.out.set(s.Stdout)
	p.errOut.set(s.Stderr)
	if p.stdin != nil {
		line, _ := json.Marshal(s.Args)
		_, err := p.stdin.Write(append(line, '\n'))
		p.stdin.Close()
		if err != nil {
			p.discard()
			return fmt.Errorf("the warm process for task %s ended before it got its task: %w", s.Path(), err)
		}
	}
	records := s.Records
	if records == nil {
		records = io.Discard
	}
	go func() {
		_, err := io.Copy(records, p.records)
		p.records.Close()
		p.copied <- err
	}()
	if s.Timeout > 0 {
		p.timer = time.AfterFunc(s.Timeout, func() {
			p.timedOut.Store(true)
			p.Stop(b.grace)
		})
	}
	return nil
}

// WarmFlag is what a warm process is started with, after the task
// command: it reads its command line, a JSON array, from its standard
// input.
const WarmFlag = "--warm"

// Warm keeps n processes of the flow's binary started ahead (as many as
// tasks are expected to start soon), with the environment env, so that a task starts without waiting for a
// process to start and its packages to initialise: each waits for one
// task's command line, runs that task and exits (a task is still one
// fresh process). Tasks with another environment start cold.
func (b *Backend) Warm(env []string, n int) {
	b.mu.Lock()
	b.warmEnv, b.warmN = slices.Clone(env), n
	b.mu.Unlock()
	b.fill()
}

// take returns a warm process with the environment env, if one is ready;
// the process counts against what is expected.
func (b *Backend) take(env []string) *process {
	b.mu.Lock()
	defer b.mu.Unlock()
	var p *process
	if slices.Equal(env, b.warmEnv) {
		for len(b.warm) > 0 && p == nil {
			p, b.warm = b.warm[0], b.warm[1:]
			select {
			case <-p.done:
				p.records.Close()
				p = nil // it died while it waited
			default:
			}
		}
	}
	if p != nil && b.warmN > 0 {
		b.warmN--
	}
	return p
}

// fill starts warm processes until there are warmN, in the background.
func (b *Backend) fill() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for ; !b.closed && len(b.warm)+b.starting < b.warmN; b.starting++ {
		env := b.warmEnv
		go func() {
			p, err := b.spawn(nil, env, true)
			b.mu.Lock()
			defer b.mu.Unlock()
			b.starting--
			switch {
			case err != nil:
				b.warmN = 0 // tasks start cold from now on
			case b.closed || !slices.Equal(env, b.warmEnv):
				go p.discard()
			default:
				b.warm = append(b.warm, p)
			}
		}()
	}
}

// Close ends the warm processes that got no task.
func (b *Backend) Close() error {
	b.mu.Lock()
	idle := b.warm
	b.warm, b.closed = nil, true
	b.mu.Unlock()
	for _, p := range idle {
		p.discard()
	}
	return nil
}

// discard ends a warm process that got no task.
func (p *process) discard() {
	p.Stop(0)
	<-p.done
	p.records.Close()
}

// switchWriter writes to a target set once the process has its task (a
// warm process prints nothing before); what comes before is kept for it.
type switchWriter struct {
	mu  sync.Mutex
	w   io.Writer
	buf []byte
}

func (s *switchWriter) set(w io.Writer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if w == nil {
		w = io.Discard
	}
	s.w = w
	if len(s.buf) > 0 {
		w.Write(s.buf)
		s.buf = nil
	}
}

func (s *switchWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.w == nil {
		s.buf = append(s.buf, p...)
		return len(p), nil
	}
	return s.w.Write(p)
}

// process is a started task process.
type process struct {
	cmd         *exec.Cmd
	stdin       io.WriteCloser // a warm process's
	out, errOut *switchWriter
	records     *os.File
	done        chan struct{}
	copied      chan error // the records stream, copied in full
	err         error
	timer       *time.Timer
	timedOut    atomic.Bool
	stopOnce    sync.Once
}

// Wait waits for the process and its records, and says how it ended.
func (p *process) Wait() error {
	<-p.done
	cerr := <-p.copied
	if p.timer != nil {
		p.timer.Stop()
	}
	if p.timedOut.Load() {
		return compute.ErrTimeout
	}
	if p.err == nil {
		if cerr != nil {
			return fmt.Errorf("the task ran, but what it recorded could not be kept: %w", cerr)
		}
		return nil
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return &compute.ExitError{Code: -1, Signal: fmt.Sprintf("%d (%s)", int(ws.Signal()), ws.Signal())}
		}
		return &compute.ExitError{Code: ee.ExitCode()}
	}
	return p.err
}

// Stop sends SIGTERM to the task's process group, and SIGKILL to what is
// left of the group when the task has ended or grace has passed.
func (p *process) Stop(grace time.Duration) {
	p.stopOnce.Do(func() {
		pid := p.cmd.Process.Pid
		_ = syscall.Kill(-pid, syscall.SIGTERM)
		go func() {
			select {
			case <-p.done:
			case <-time.After(grace):
			}
			_ = syscall.Kill(-pid, syscall.SIGKILL)
		}()
	})
}
