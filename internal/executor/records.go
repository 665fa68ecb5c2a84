package executor

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"

	"stepwise.dev/stepwise/internal/metadata"
)

// A task started by a local launcher records its metadata through the
// launcher rather than opening the metadata store itself: one process,
// the launcher, writes for every task (no lock contention between task
// processes, no store to open per task). The task writes one JSON object
// per line on file descriptor 3; the launcher applies each as it comes
// (ApplyRecords). A task driven by anything else records itself.

// record is one line of the stream.
type record struct {
	Op        string              `json:"op"` // start, finish, heartbeat
	Attempt   metadata.Attempt    `json:"attempt"`
	Artifacts []metadata.Artifact `json:"artifacts,omitempty"`
	At        time.Time           `json:"at,omitzero"`
}

// PipeRecorder sends a task's records to its launcher.
type PipeRecorder struct {
	mu sync.Mutex
	w  io.Writer
}

// NewPipeRecorder writes records to w (file descriptor 3 of the task).
func NewPipeRecorder(w io.Writer) *PipeRecorder { return &PipeRecorder{w: w} }

func (p *PipeRecorder) send(r record) error {
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, err := p.w.Write(append(data, '\n')); err != nil {
		return fmt.Errorf("cannot send the record to the launcher: %w", err)
	}
	return nil
}

// StartAttempt sends the start of an attempt.
func (p *PipeRecorder) StartAttempt(_ context.Context, a metadata.Attempt) error {
	return p.send(record{Op: "start", Attempt: a})
}

// FinishAttempt sends the end of an attempt.
func (p *PipeRecorder) FinishAttempt(_ context.Context, a metadata.Attempt, arts []metadata.Artifact) error {
	return p.send(record{Op: "finish", Attempt: a, Artifacts: arts})
}

// TaskHeartbeat sends a heartbeat.
func (p *PipeRecorder) TaskHeartbeat(_ context.Context, flow, run, step, task string, attempt int, at time.Time) error {
	return p.send(record{Op: "heartbeat", Attempt: metadata.Attempt{Flow: flow, Run: run, Step: step, Task: task, N: attempt}, At: at})
}

// Applier applies the records tasks send, in the background, in the order
// they come: a task's process can end, and the tasks after it start, while
// its records are still being written (the tasks after it read the
// datastore, not the metadata store). Flush waits for what came so far.
type Applier struct {
	ctx   context.Context
	to    Recorder
	queue chan applyItem
	done  chan struct{}

	mu  sync.Mutex
	err error
}

type applyItem struct {
	r     record
	flush chan struct{} // set for a flush marker
}

// NewApplier starts applying records to the store.
func NewApplier(ctx context.Context, to Recorder) *Applier {
	a := &Applier{ctx: ctx, to: to, queue: make(chan applyItem, 4096), done: make(chan struct{})}
	go a.loop()
	return a
}

func (a *Applier) loop() {
	defer close(a.done)
	for it := range a.queue {
		if it.flush != nil {
			close(it.flush)
			continue
		}
		if err := a.apply(it.r); err != nil {
			a.mu.Lock()
			if a.err == nil {
				a.err = err
			}
			a.mu.Unlock()
		}
	}
}

func (a *Applier) apply(r record) error {
	var err error
	at := r.Attempt
	switch r.Op {
	case "start":
		err = a.to.StartAttempt(a.ctx, at)
	case "finish":
		err = a.to.FinishAttempt(context.WithoutCancel(a.ctx), at, r.Artifacts)
	case "heartbeat":
		err = a.to.TaskHeartbeat(a.ctx, at.Flow, at.Run, at.Step, at.Task, at.N, r.At)
	default:
		err = fmt.Errorf("a task sent a record of unknown kind %q", r.Op)
	}
	if err != nil {
		return fmt.Errorf("cannot record %s of task %s/%s/%s attempt %d: %w", r.Op, at.Run, at.Step, at.Task, at.N, err)
	}
	return nil
}

// Stream returns a writer for one task's stream of records.
func (a *Applier) Stream() io.Writer { return &stream{a: a} }

// Flush waits until every record received so far is applied, and returns
// the first error met so far.
func (a *Applier) Flush() error {
	f := make(chan struct{})
	a.queue <- applyItem{flush: f}
	<-f
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.err
}

// Close applies what is left and stops.
func (a *Applier) Close() error {
	close(a.queue)
	<-a.done
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.err
}

type stream struct {
	a   *Applier
	buf []byte
}

func (s *stream) Write(p []byte) (int, error) {
	s.buf = append(s.buf, p...)
	for {
		i := bytes.IndexByte(s.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		line := s.buf[:i]
		s.buf = s.buf[i+1:]
		var r record
		if err := json.Unmarshal(line, &r); err != nil {
			return 0, fmt.Errorf("a task sent a record that is not JSON (%v): %.100q", err, line)
		}
		s.a.queue <- applyItem{r: r}
	}
}
