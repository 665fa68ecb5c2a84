// Package compute is the seam between the scheduler and where tasks run.
// The scheduler hands a Backend one attempt of one task as a Spec and gets
// back a Handle to wait on and to stop; it never sees a process, a pod or
// a machine. Package local runs each attempt as a process of the flow's
// binary on this machine; other backends (a cluster) register themselves
// by name with Register when their package is imported.
package compute

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"stepwise.dev/stepwise/internal/datastore"
	"stepwise.dev/stepwise/internal/graph"
)

// Spec is one attempt of one task, as a backend starts it. The task is
// fully described by the flow's binary and Args (the task command line,
// see package executor): it can run on any machine that reaches the
// datastore and the metadata store.
type Spec struct {
	Flow, Run, Step, Task string
	Attempt               int
	// Args is the task's command line after the program name.
	Args []string
	// Env is extra environment for the task, KEY=VALUE.
	Env []string
	// Resources are what the step declared.
	Resources graph.Resources
	// Timeout ends the attempt when it runs longer; zero means none.
	Timeout time.Duration
	// Settings are the step's settings for this backend, as declared in
	// the graph (JSON), or nil.
	Settings []byte
	// Stdout and Stderr receive what the task prints, as it prints it, for
	// the launcher's console. Either may be nil. The task also writes its
	// own output to the datastore, so a backend need not keep it.
	Stdout, Stderr io.Writer
	// Records, when set, receives what the task writes on a third stream
	// (file descriptor 3 of a process): the launcher records the task's
	// metadata from it. Backends that can give a task such a stream (local
	// processes) copy all of it before Wait returns; the launcher sets it
	// only for those (see Channel).
	Records io.Writer
}

// Channel is implemented by backends that give a task a stream back to
// the launcher (Spec.Records).
type Channel interface {
	RecordsChannel() bool
}

// Path is "run/step/task" for messages.
func (s *Spec) Path() string { return s.Run + "/" + s.Step + "/" + s.Task }

// Handle is a started attempt.
type Handle interface {
	// Wait blocks until the attempt has ended and everything it printed has
	// been written to Spec.Stdout and Spec.Stderr. It returns nil when the
	// task succeeded, and otherwise an error that says how it ended (an
	// *ExitError, ErrTimeout, or another reason such as a lost machine).
	Wait() error
	// Stop asks the attempt to stop (SIGTERM for a process) and ends it
	// for good when it is still running after grace. It returns at once;
	// Wait reports the end.
	Stop(grace time.Duration)
}

// Backend starts task attempts somewhere.
type Backend interface {
	// Name is the name steps use to choose the backend: "local", ...
	Name() string
	// Capacity is what the backend can run at once; the scheduler never
	// starts attempts whose declared resources add up past it. Zero fields
	// mean no limit (a cluster queues what it cannot place).
	Capacity() graph.Resources
	// Check refuses, before a run starts, a step that can never run on the
	// backend (it asks for more than any machine has, say), naming it and
	// saying what to change.
	Check(s *graph.Step) error
	// Start starts one attempt. The attempt must not outlive ctx's
	// cancellation by more than a stop grace period.
	Start(ctx context.Context, s Spec) (Handle, error)
}

// JobInfo is one attempt a backend runs or ran, for people.
type JobInfo struct {
	Name                string // the backend's name for it (namespace/job)
	Step, Task, Attempt string
	Status              string
	Created             time.Time
}

// Lister is implemented by backends whose attempts outlive the launcher
// (a cluster's Jobs): they can list and end a run's.
type Lister interface {
	Jobs(ctx context.Context, run string) ([]JobInfo, error)
	Kill(ctx context.Context, run string) (int, error)
}

// ErrTimeout is the end of an attempt that ran past its step's timeout.
var ErrTimeout = errors.New("timed out")

// ExitError is an attempt whose process ended with a non-zero status or a
// signal.
type ExitError struct {
	Code   int    // exit code, -1 when ended by a signal
	Signal string // the signal, when ended by one: "9 (killed)"
	Reason string // what the backend knows beyond the code (out of memory, evicted, ...)
}

func (e *ExitError) Error() string {
	var s string
	if e.Signal != "" {
		s = "killed by signal " + e.Signal
	} else {
		s = fmt.Sprintf("exit status %d", e.Code)
	}
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	return s
}

// Env is what a backend learns of the run it serves when it is opened.
type Env struct {
	Flow string
	User string
	// Datastore and Metadata are the settings the launcher's tasks get; a
	// backend whose tasks run elsewhere needs both to be reachable from
	// there.
	Datastore, Metadata string
	// Data is the open datastore (a backend may ship code through it).
	Data *datastore.Store
	// Settings reads a setting of the backend from the settings in force
	// (config file, environment) by name, e.g. "namespace".
	Settings func(name string) string
}

// Factory makes a backend for a run. It is called once per run that uses
// the backend.
type Factory func(ctx context.Context, env Env) (Backend, error)

var (
	mu        sync.Mutex
	factories = map[string]Factory{}
	// imports are the packages of the backends that are not always linked,
	// for the error that says which import adds one.
	imports = map[string]string{"kubernetes": "stepwise.dev/stepwise/backend/kubernetes"}
)

// Register makes a backend available under name. Backend packages call it
// from init; registering a name twice panics.
func Register(name string, f Factory) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := factories[name]; dup {
		panic("compute: backend " + name + " registered twice")
	}
	factories[name] = f
}

// ErrUnknown is wrapped by Open's error for a backend name that is not
// registered.
var ErrUnknown = errors.New("compute: unknown backend")

// Open makes the backend registered under name.
func Open(ctx context.Context, name string, env Env) (Backend, error) {
	mu.Lock()
	f, ok := factories[name]
	pkg := imports[name]
	mu.Unlock()
	if !ok {
		if pkg != "" {
			return nil, fmt.Errorf("%w %q: this program does not include it; add import _ %q to the flow's main package", ErrUnknown, name, pkg)
		}
		return nil, fmt.Errorf("%w %q; the backends of this program are %s", ErrUnknown, name, strings.Join(Names(), ", "))
	}
	return f(ctx, env)
}

// Names lists the registered backends, sorted.
func Names() []string {
	mu.Lock()
	defer mu.Unlock()
	var out []string
	for n := range factories {
		out = append(out, n)
	}
	sort.Strings(out)
	return slices.Compact(out)
}
