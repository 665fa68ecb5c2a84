package executor

import (
	"errors"
	"flag"
	"fmt"
	"strconv"
	"time"
)

// Spec is one attempt of one task, as its command line gives it: with the
// flow's binary it is everything the task needs, so any machine that
// reaches the datastore and the metadata store can run it:
//
//	FLOW task --flow NAME --run-id RUN --step STEP --task-id ID --attempt N
//	          [--catch-error MSG] [--datastore URL] [--metadata URL]
//	          [--heartbeat 10s] [--splits-out FILE] [--launcher]
//
// The task finds its inputs itself, from the graph and its position (the
// task id), so a scheduler needs to know nothing but the graph and, after
// a foreach step, how many elements it fanned out to (--splits-out).
type Spec struct {
	Flow    string // the flow's name (a test binary may hold several flows)
	Run     string
	Step    string
	Task    string // graph.TaskID of the task's foreach indexes
	Attempt int
	// CatchError is set on the attempt that records a caught failure: the
	// task stores the message in the step's catch field instead of running
	// the step.
	CatchError string
	// Datastore and Metadata override the settings in force.
	Datastore, Metadata string
	// Heartbeat is how often the task records that it is alive (default
	// metadata.HeartbeatInterval).
	Heartbeat time.Duration
	// Launcher says that a local launcher keeps what the task prints (it
	// reads the task's output through a pipe, which survives the task's
	// sudden death) and records the task's metadata, which the task sends
	// it on file descriptor 3; the task opens no metadata store.
	Launcher bool
	// SplitsOut, for a foreach step, is a file that receives the JSON list
	// of the element indexes it fanned out to ([0,1,...]), for a
	// production scheduler to fan out over.
	SplitsOut string
	// SkipCloned, for a scheduler that runs every task of a resumed run,
	// makes a task that the resume cloned do nothing (but write its
	// SplitsOut again).
	SkipCloned bool
}

// Command is the name of the task command of a flow binary.
const Command = "task"

// Args is the task's command line after the program name.
func (s *Spec) Args() []string {
	args := []string{Command, "--flow", s.Flow, "--run-id", s.Run, "--step", s.Step, "--task-id", s.Task, "--attempt", strconv.Itoa(s.Attempt)}
	if s.CatchError != "" {
		args = append(args, "--catch-error", s.CatchError)
	}
	if s.Datastore != "" {
		args = append(args, "--datastore", s.Datastore)
	}
	if s.Metadata != "" {
		args = append(args, "--metadata", s.Metadata)
	}
	if s.Heartbeat != 0 {
		args = append(args, "--heartbeat", s.Heartbeat.String())
	}
	if s.SplitsOut != "" {
		args = append(args, "--splits-out", s.SplitsOut)
	}
	if s.SkipCloned {
		args = append(args, "--skip-cloned")
	}
	if s.Launcher {
		args = append(args, "--launcher")
	}
	return args
}

// Flags binds the task command's flags to s.
func (s *Spec) Flags(fs *flag.FlagSet) {
	fs.StringVar(&s.Flow, "flow", "", "the flow's name")
	fs.StringVar(&s.Run, "run-id", "", "the run's id (from create-run)")
	fs.StringVar(&s.Step, "step", "", "the step")
	fs.StringVar(&s.Task, "task-id", "", "the task's id: 0 outside a foreach, its element index (dotted when nested) inside")
	fs.IntVar(&s.Attempt, "attempt", 0, "the attempt, 0 for the first")
	fs.StringVar(&s.CatchError, "catch-error", "", "record this failure in the step's catch field instead of running the step")
	fs.StringVar(&s.Datastore, "datastore", "", "datastore: a directory or s3://bucket/prefix (default: the settings in force)")
	fs.StringVar(&s.Metadata, "metadata", "", "metadata store: local or the URL of a service (default: the settings in force)")
	fs.DurationVar(&s.Heartbeat, "heartbeat", 0, "how often to record that the task is alive (default 10s)")
	fs.StringVar(&s.SplitsOut, "splits-out", "", "for a foreach step: write the JSON list of its element indexes to this file")
	fs.BoolVar(&s.SkipCloned, "skip-cloned", false, "do nothing when a resume cloned this task into the run (a scheduler runs every task of a resumed run)")
	fs.BoolVar(&s.Launcher, "launcher", false, "a local launcher keeps the task's output and records its metadata, sent on file descriptor 3")
}

// Check says what is missing from a task command line.
func (s *Spec) Check() error {
	var missing []error
	for _, f := range []struct{ flag, v string }{{"--run-id", s.Run}, {"--step", s.Step}, {"--task-id", s.Task}} {
		if f.v == "" {
			missing = append(missing, fmt.Errorf("%s is required", f.flag))
		}
	}
	if s.Attempt < 0 {
		missing = append(missing, fmt.Errorf("--attempt must be 0 or more, got %d", s.Attempt))
	}
	if s.Heartbeat < 0 {
		missing = append(missing, fmt.Errorf("--heartbeat must be positive, got %s", s.Heartbeat))
	}
	return errors.Join(missing...)
}
