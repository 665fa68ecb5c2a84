// Package local is the compute backend that runs every task attempt as a
// process of the flow's binary on this machine, in its own process group
// (stopping a task stops all it started), dying with the launcher. It
// never starts more than the machine's cores, memory and GPUs allow: the
// scheduler holds attempts back until their declared resources fit.
package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
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
	compute.Register(Name, func(context.Context) (compute.Backend, error) { return New(Options{}) })
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

// Start starts the attempt's process.
func (b *Backend) Start(ctx context.Context, s compute.Spec) (compute.Handle, error) {
	cmd := exec.Command(b.exe, s.Args...)
	cmd.Env = append(os.Environ(), s.Env...)
	cmd.SysProcAttr = taskProcAttr()
	cmd.Stdout, cmd.Stderr = s.Stdout, s.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("cannot start the process of task %s (%s): %w", s.Path(), b.exe, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	if s.Timeout > 0 {
		p.timer = time.AfterFunc(s.Timeout, func() {
			p.timedOut.Store(true)
			p.Stop(b.grace)
		})
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// process is a started task process.
type process struct {
	cmd      *exec.Cmd
	done     chan struct{}
	err      error
	timer    *time.Timer
	timedOut atomic.Bool
	stopOnce sync.Once
}

// Wait waits for the process and says how it ended.
func (p *process) Wait() error {
	<-p.done
	if p.timer != nil {
		p.timer.Stop()
	}
	if p.timedOut.Load() {
		return compute.ErrTimeout
	}
	if p.err == nil {
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
