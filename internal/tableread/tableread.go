// Package tableread carries, in a step's context, the log of the table
// versions the step reads, from package table to the executor, which
// stores it in the task's record.
package tableread

import (
	"context"
	"sync"

	"stepwise.dev/stepwise/internal/datastore"
)

// Log collects the reads of one task attempt.
type Log struct {
	mu    sync.Mutex
	reads []*datastore.TableRead
}

type key struct{}

// With returns ctx carrying l.
func With(ctx context.Context, l *Log) context.Context { return context.WithValue(ctx, key{}, l) }

// Record adds a read to the log in ctx (none outside a step) and returns
// it, so that the reader can update its counts as it goes; nil when there
// is no log.
func Record(ctx context.Context, r datastore.TableRead) *Entry {
	l, _ := ctx.Value(key{}).(*Log)
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	e := r
	l.reads = append(l.reads, &e)
	return &Entry{l: l, r: &e}
}

// Entry is a recorded read whose counts may still grow.
type Entry struct {
	l *Log
	r *datastore.TableRead
}

// Update sets the files and rows read so far.
func (e *Entry) Update(files int, rows int64) {
	if e == nil {
		return
	}
	e.l.mu.Lock()
	e.r.Files, e.r.Rows = files, rows
	e.l.mu.Unlock()
}

// Reads returns the reads so far, in order.
func (l *Log) Reads() []datastore.TableRead {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]datastore.TableRead, len(l.reads))
	for i, r := range l.reads {
		out[i] = *r
	}
	return out
}
