package executor

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"time"

	"stepwise.dev/stepwise/internal/datastore"
)

// captureOutput makes everything this process (and the processes it
// starts) writes to its standard output and error go to the datastore too,
// in chunks while the task runs, as well as where it went before (the
// launcher's console, a container's log). When ctx is done (the task is
// asked to stop) what is buffered is written at once. stop puts the
// streams back and writes the rest.
func captureOutput(ctx context.Context, b datastore.Backend, p datastore.TaskPath, attempt int) (stop func(), err error) {
	var undo []func()
	for _, s := range []struct {
		fd     int
		stream string
	}{{1, "stdout"}, {2, "stderr"}} {
		u, err := tee(ctx, s.fd, newLogWriter(b, datastore.LogPrefix(p, attempt, s.stream)))
		if err != nil {
			for _, f := range undo {
				f()
			}
			return nil, err
		}
		undo = append(undo, u)
	}
	return func() {
		for _, f := range undo {
			f()
		}
	}, nil
}

// tee replaces fd with a pipe whose reader copies to the old fd and to w.
func tee(ctx context.Context, fd int, w *logWriter) (undo func(), err error) {
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC); err != nil {
		return nil, fmt.Errorf("cannot make a pipe: %w", err)
	}
	saved, err := syscall.Dup(fd)
	if err != nil {
		syscall.Close(p[0])
		syscall.Close(p[1])
		return nil, fmt.Errorf("cannot copy file descriptor %d: %w", fd, err)
	}
	syscall.CloseOnExec(saved)
	if err := syscall.Dup3(p[1], fd, 0); err != nil {
		syscall.Close(p[0])
		syscall.Close(p[1])
		syscall.Close(saved)
		return nil, fmt.Errorf("cannot redirect file descriptor %d: %w", fd, err)
	}
	syscall.Close(p[1])
	r := os.NewFile(uintptr(p[0]), "task-output")
	orig := os.NewFile(uintptr(saved), "original-output")
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		buf := make([]byte, 32<<10)
		for {
			n, err := r.Read(buf)
			if n > 0 {
				orig.Write(buf[:n])
				w.Write(buf[:n])
			}
			if err != nil {
				return
			}
		}
	}()
	stopFlush := context.AfterFunc(ctx, w.Flush)
	var once sync.Once
	return func() {
		once.Do(func() {
			stopFlush()
			// Putting the old fd back closes our end of the pipe: the
			// reader ends once processes the task started have closed
			// theirs, or after a moment if one lives on.
			syscall.Dup3(saved, fd, 0)
			select {
			case <-copied:
			case <-time.After(time.Second):
			}
			r.Close()
			w.Close()
			orig.Close()
		})
	}, nil
}

var _ io.Writer = (*logWriter)(nil)
