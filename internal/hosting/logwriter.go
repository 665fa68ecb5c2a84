package hosting

import (
	"bufio"
	"io"
	"sync"
	"time"
)

// LogWriter buffers a log's lines and writes them out at least every
// FlushEvery, when its buffer fills, and on Close: an access log line per
// request then costs a copy, not a write to the file or pipe. What was
// buffered when the process is killed (kill -9) is lost: at most
// FlushEvery's worth.
type LogWriter struct {
	mu   sync.Mutex
	w    *bufio.Writer
	stop chan struct{}
	done chan struct{}
}

// FlushEvery is how often a LogWriter writes out what it holds.
const FlushEvery = 100 * time.Millisecond

// NewLogWriter buffers w. Close it to write out the rest and stop.
func NewLogWriter(w io.Writer) *LogWriter {
	l := &LogWriter{w: bufio.NewWriterSize(w, 64<<10), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		t := time.NewTicker(FlushEvery)
		defer t.Stop()
		for {
			select {
			case <-l.stop:
				return
			case <-t.C:
				l.Flush()
			}
		}
	}()
	return l
}

// Write buffers p, one log line (slog handlers write one line at a time).
func (l *LogWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// Flush writes out what is buffered.
func (l *LogWriter) Flush() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Flush()
}

// Close writes out what is buffered and stops flushing.
func (l *LogWriter) Close() error {
	close(l.stop)
	<-l.done
	return l.Flush()
}
