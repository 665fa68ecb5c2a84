package cli

import (
	"context"
	"fmt"
	"strings"
	"time"

	"stepwise.dev/stepwise/client"
)

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(s string) error { *m = append(*m, s); return nil }

func runsCmd(ctx context.Context, e *Env, args []string) error {
	fs := e.Flags("runs")
	var tags multi
	fs.Var(&tags, "tag", "only runs with this tag (repeatable: all must match)")
	status := fs.String("status", "", "only runs with this status: running, succeeded or failed")
	limit := fs.Int("limit", 50, "at most this many runs (0: all)")
	pos, err := Parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return &usageError{"name one flow, or none for the runs of every flow"}
	}
	if len(pos) == 0 && e.flow != "" {
		pos = []string{e.flow}
	}
	switch *status {
	case "", "running", "succeeded", "failed":
	default:
		return &usageError{fmt.Sprintf("--status %q: use running, succeeded or failed", *status)}
	}
	c, err := e.client(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	filter := client.Filter{Tags: tags, Status: client.Status(*status), Limit: *limit}
	var runs []*client.Run
	what := "no flow has runs"
	if len(pos) == 1 {
		runs, err = c.Flow(pos[0]).Runs(ctx, filter)
		what = "flow " + pos[0] + " has no runs"
	} else {
		runs, err = c.Runs(ctx, filter)
	}
	if err != nil {
		return err
	}
	if e.json {
		if runs == nil {
			runs = []*client.Run{}
		}
		return e.printJSON(runs)
	}
	if len(runs) == 0 {
		fmt.Fprintf(e.stderr, "%s in namespace %s matching the filters (use --namespace global to see everyone's)\n", what, nsName(c.Namespace()))
		return nil
	}
	var rows [][]string
	lost := 0
	for _, r := range runs {
		took := "-"
		if !r.Ended.IsZero() {
			took = r.Ended.Sub(r.Started).Round(time.Millisecond).String()
		}
		status := string(r.Status)
		if r.Lost {
			status = "lost"
			lost++
		}
		rows = append(rows, []string{r.Pathspec(), status, r.Started.Local().Format("2006-01-02 15:04:05"), took, strings.Join(r.Tags, " ")})
	}
	e.table("RUN\tSTATUS\tSTARTED\tTOOK\tTAGS", rows)
	if lost > 0 {
		fmt.Fprintf(e.stderr, "lost: no sign of life from the run's launcher (or, for a run driven by a scheduler, its tasks) for too long, and no end recorded: it was killed, its machine stopped, or it lost both stores; finish it with the flow's resume --origin-run-id ID\n")
	}
	if *limit > 0 && len(runs) == *limit {
		fmt.Fprintf(e.stderr, "(the newest %d runs; --limit 0 lists all)\n", *limit)
	}
	return nil
}
