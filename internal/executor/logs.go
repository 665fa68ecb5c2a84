package executor

import (
	"bytes"
	"context"
	"io"
	"sync"
	"time"

	"stepwise.dev/stepwise/internal/datastore"
)

// A task's output is written to the datastore while it runs: a chunk at
// least every second, and every 64 KiB.
const (
	logChunk = 64 << 10
	logEvery = time.Second
)

// logWriter writes one stream of one attempt to the datastore in chunks.
type logWriter struct {
	mu     sync.Mutex
	b      datastore.Backend
	prefix string
	buf    []byte
	seq    int
	timer  *time.Timer
	err    error
}

// LogWriter writes one stream ("stdout" or "stderr") of one task attempt to
// the datastore in chunks while it is written: a launcher that reads a
// task's output through a pipe keeps it with this.
func LogWriter(b datastore.Backend, p datastore.TaskPath, attempt int, stream string) io.WriteCloser {
	return newLogWriter(b, datastore.LogPrefix(p, attempt, stream))
}

func newLogWriter(b datastore.Backend, prefix string) *logWriter {
	return &logWriter{b: b, prefix: prefix}
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	if len(w.buf) >= logChunk {
		w.flushLocked()
	} else if w.timer == nil {
		w.timer = time.AfterFunc(logEvery, func() {
			w.mu.Lock()
			defer w.mu.Unlock()
			w.timer = nil
			w.flushLocked()
		})
	}
	return len(p), nil // a log that cannot be written must not fail the task
}

func (w *logWriter) flushLocked() {
	if len(w.buf) == 0 {
		return
	}
	key := datastore.LogChunkKey(w.prefix, w.seq)
	if err := w.b.Put(context.Background(), key, bytes.NewReader(w.buf), int64(len(w.buf))); err != nil && w.err == nil {
		w.err = err
	}
	w.seq++
	w.buf = w.buf[:0]
}

// Flush writes what is buffered now.
func (w *logWriter) Flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.flushLocked()
}

// Close writes what is left.
func (w *logWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.timer != nil {
		w.timer.Stop()
		w.timer = nil
	}
	w.flushLocked()
	return w.err
}
