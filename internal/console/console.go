// Package console shows a run on a terminal or in a log: every task's output
// prefixed with its run, step and id, one line per event, and on a
// terminal a live status line.
package console

import (
	"bytes"
	"io"
	"sync"
)

// lastLines is how many output lines of a task are kept to show when it
// fails.
const lastLines = 20

// Console writes task output, prefixed per task, and progress. On a
// terminal it keeps a live status line at the bottom; elsewhere it prints
// one plain line per event.
type Console struct {
	mu     sync.Mutex
	w      io.Writer
	live   bool
	quiet  bool // no task start/finish events
	status string
	shown  bool
}

// New writes to w. live draws a status line (use it for terminals);
// quiet leaves out the per-task start and finish lines.
func New(w io.Writer, live, quiet bool) *Console {
	return &Console{w: w, live: live, quiet: quiet}
}

func (c *Console) clear() {
	if c.shown {
		io.WriteString(c.w, "\r\x1b[2K")
		c.shown = false
	}
}

func (c *Console) redraw() {
	if c.live && c.status != "" {
		io.WriteString(c.w, c.status)
		c.shown = true
	}
}

// Print writes lines of text (each ending in a newline) above the status.
func (c *Console) Print(p []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.clear()
	c.w.Write(p)
	c.redraw()
}

// Event prints a progress line about a task (left out when quiet, and on a
// live console where the status line shows it).
func (c *Console) Event(line string) {
	if c.quiet || c.live {
		return
	}
	c.Print([]byte(line + "\n"))
}

// Status sets the live status line.
func (c *Console) Status(s string) {
	if !c.live {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(s) > 160 {
		s = s[:157] + "..."
	}
	c.clear()
	c.status = s
	c.redraw()
}

// StopStatus removes the status line.
func (c *Console) StopStatus() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.clear()
	c.status = ""
}

// TaskOutput returns a writer for one task's stdout and stderr: it prefixes
// every line and remembers the last ones.
func (c *Console) TaskOutput(prefix string) *TaskWriter {
	return &TaskWriter{c: c, prefix: []byte(prefix)}
}

// TaskWriter is the output of one task; see Console.TaskOutput.
type TaskWriter struct {
	mu      sync.Mutex
	c       *Console
	prefix  []byte
	partial []byte
	last    []string
}

// Write takes output as it comes and prints whole lines.
func (w *TaskWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	data := append(w.partial, p...)
	var out []byte
	for {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			break
		}
		out = w.line(out, data[:i])
		data = data[i+1:]
	}
	w.partial = append(w.partial[:0:0], data...)
	if len(out) > 0 {
		w.c.Print(out)
	}
	return len(p), nil
}

func (w *TaskWriter) line(out, l []byte) []byte {
	w.last = append(w.last, string(l))
	if len(w.last) > lastLines {
		w.last = w.last[len(w.last)-lastLines:]
	}
	out = append(out, w.prefix...)
	out = append(out, l...)
	return append(out, '\n')
}

// Flush prints a last line that has no newline.
func (w *TaskWriter) Flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.partial) > 0 {
		w.c.Print(w.line(nil, w.partial))
		w.partial = nil
	}
}

// Last returns the last lines the task printed.
func (w *TaskWriter) Last() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.last...)
}
