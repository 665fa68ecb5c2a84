package cli

import (
	"context"
	"fmt"
	"strconv"
)

func logsCmd(ctx context.Context, e *Env, args []string) error {
	fs := e.Flags("logs")
	attempt := fs.String("attempt", "last", "which attempt: 0, 1, ... or last")
	stdoutOnly := fs.Bool("stdout", false, "only the standard output")
	stderrOnly := fs.Bool("stderr", false, "only the standard error")
	c, t, err := e.openTask(ctx, fs, args)
	if err != nil {
		return err
	}
	defer c.Close()
	n := len(t.Attempts) - 1
	if *attempt != "last" {
		if n, err = strconv.Atoi(*attempt); err != nil || n < 0 {
			return &usageError{fmt.Sprintf("--attempt %q: use a number from 0, or last", *attempt)}
		}
		if n >= len(t.Attempts) {
			return fmt.Errorf("task %s has %d attempt(s), numbered from 0; there is no attempt %d", t.Pathspec(), len(t.Attempts), n)
		}
	}
	if n < 0 {
		if t.ClonedFrom != "" {
			return fmt.Errorf("task %s was cloned from %s and did not run; see its logs there", t.Pathspec(), t.ClonedFrom)
		}
		return fmt.Errorf("task %s has no attempts", t.Pathspec())
	}
	streams := []string{"stdout", "stderr"}
	if *stdoutOnly && !*stderrOnly {
		streams = streams[:1]
	} else if *stderrOnly && !*stdoutOnly {
		streams = streams[1:]
	}
	for _, s := range streams {
		data, err := t.Logs(ctx, n, s)
		if err != nil {
			return fmt.Errorf("cannot read %s of %s attempt %d: %w", s, t.Pathspec(), n, err)
		}
		if e.json {
			if err := e.printJSON(map[string]any{"task": t.Pathspec(), "attempt": n, "stream": s, "text": string(data)}); err != nil {
				return err
			}
			continue
		}
		if len(data) == 0 {
			continue
		}
		if len(streams) > 1 {
			fmt.Fprintf(e.stdout, "--- %s of %s, attempt %d ---\n", s, t.Pathspec(), n)
		}
		e.stdout.Write(data)
	}
	return nil
}
