package flowcmd

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"stepwise.dev/stepwise/internal/compute"
	"stepwise.dev/stepwise/internal/names"
)

// jobs lists, or with --kill ends, the Jobs of a run on a cluster backend:
// what a launcher killed with kill -9 left running.
func (c *program) jobs(ctx context.Context, args []string) int {
	fs := c.flags("jobs")
	backend := fs.String("compute", "kubernetes", "the compute backend whose jobs to list")
	kill := fs.Bool("kill", false, "delete the run's jobs (and their pods) instead of listing them")
	fs.Usage = func() {
		fmt.Fprintf(c.stderr, "usage: %s jobs [--kill] RUN\n\nLists (or with --kill deletes) the jobs of run RUN on the cluster.\n\nFlags:\n", c.prog)
		fs.PrintDefaults()
	}
	var run string
	if len(args) > 0 && args[len(args)-1] != "" && args[len(args)-1][0] != '-' {
		run, args = args[len(args)-1], args[:len(args)-1]
	}
	if code := c.parse(fs, args); code >= 0 {
		return code
	}
	if err := names.RunID(run); err != nil {
		fmt.Fprintf(c.stderr, "jobs: name the run: %v\n", err)
		return 2
	}
	cfg, err := c.settings()
	if err != nil {
		fmt.Fprintln(c.stderr, err)
		return 1
	}
	b, err := compute.Open(ctx, *backend, compute.Env{Flow: c.def.Name(), User: cfg.User.Value, Datastore: cfg.Datastore.Value, Metadata: cfg.Metadata.Value,
		Settings: func(n string) string { return cfg.Compute(*backend + "." + n).Value }})
	if err != nil {
		fmt.Fprintln(c.stderr, err)
		return 1
	}
	l, ok := b.(compute.Lister)
	if !ok {
		fmt.Fprintf(c.stderr, "jobs: the %s backend has no jobs that outlive their launcher\n", *backend)
		return 2
	}
	if *kill {
		n, err := l.Kill(ctx, run)
		if err != nil {
			fmt.Fprintln(c.stderr, err)
			return 1
		}
		fmt.Fprintf(c.stdout, "deleted %d job(s) of run %s\n", n, run)
		return 0
	}
	jobs, err := l.Jobs(ctx, run)
	if err != nil {
		fmt.Fprintln(c.stderr, err)
		return 1
	}
	if len(jobs) == 0 {
		fmt.Fprintf(c.stderr, "run %s has no jobs on %s (finished ones are removed after their time to live)\n", run, *backend)
		return 0
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "JOB\tSTEP\tTASK\tATTEMPT\tSTATUS\tAGE")
	for _, j := range jobs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", j.Name, j.Step, j.Task, j.Attempt, j.Status, time.Since(j.Created).Round(time.Second))
	}
	tw.Flush()
	return 0
}
