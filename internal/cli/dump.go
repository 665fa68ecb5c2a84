package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"

	"stepwise.dev/stepwise/client"
)

func dumpCmd(ctx context.Context, e *Env, args []string) error {
	fs := e.Flags("dump")
	maxWidth := fs.Int("width", 80, "cut values longer than this in the table (0: never)")
	pos, err := Parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return &usageError{"name one pathspec"}
	}
	c, ps, err := e.open(ctx, pos[0])
	if err != nil {
		return err
	}
	defer c.Close()
	if ps.Run == "" {
		return &usageError{fmt.Sprintf("pathspec %q names a flow; add /RunID or /latest (list runs with '%s runs %s')", pos[0], e.prog, ps.Flow)}
	}
	run, err := c.Flow(ps.Flow).Run(ctx, ps.Run)
	if err != nil {
		return err
	}
	var tasks []*client.Task
	switch {
	case ps.Task != "":
		t, err := run.Task(ctx, ps.Step, ps.Task)
		if err != nil {
			return err
		}
		return dumpTask(ctx, e, t, *maxWidth)
	case ps.Step != "":
		if tasks, err = run.Step(ctx, ps.Step); err != nil {
			return err
		}
		if len(tasks) == 1 {
			return dumpTask(ctx, e, tasks[0], *maxWidth)
		}
	default:
		if tasks, err = run.Tasks(ctx); err != nil {
			return err
		}
	}
	if e.json {
		return e.printJSON(map[string]any{"run": run, "tasks": tasks})
	}
	status := run.Status
	if run.Lost {
		status = fmt.Sprintf("lost (still marked running, but its runtime last said it was alive at %s)", run.Heartbeat.Local().Format("2006-01-02 15:04:05"))
		if run.Heartbeat.IsZero() {
			status = "lost (still marked running, but its runtime never said it was alive)"
		}
	}
	fmt.Fprintf(e.stdout, "Run %s: %s, user %s, tags %s\n\n", run.Pathspec(), status, run.User, strings.Join(run.Tags, " "))
	var rows [][]string
	for _, t := range tasks {
		note := ""
		if t.ClonedFrom != "" {
			note = "cloned from " + t.ClonedFrom
		}
		rows = append(rows, []string{t.Pathspec(), t.Status, fmt.Sprint(len(t.Attempts)), fmt.Sprint(len(t.Artifacts)), note})
	}
	e.table("TASK\tSTATUS\tATTEMPTS\tARTIFACTS\tNOTE", rows)
	return nil
}

func dumpTask(ctx context.Context, e *Env, t *client.Task, width int) error {
	values := make(map[string]any, len(t.Artifacts))
	for _, a := range t.Artifacts {
		v, err := t.Raw(ctx, a.Name)
		if err != nil {
			return fmt.Errorf("artifact %s of %s: %w", a.Name, t.Pathspec(), err)
		}
		values[a.Name] = v
	}
	if e.json {
		type art struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Key   string `json:"key"`
			Size  int64  `json:"size"`
			Value any    `json:"value"`
		}
		out := struct {
			Task       string `json:"task"`
			Status     string `json:"status"`
			ClonedFrom string `json:"cloned_from,omitempty"`
			Artifacts  []art  `json:"artifacts"`
		}{Task: t.Pathspec(), Status: t.Status, ClonedFrom: t.ClonedFrom, Artifacts: []art{}}
		for _, a := range t.Artifacts {
			out.Artifacts = append(out.Artifacts, art{a.Name, a.Type, a.Key, a.Size, jsonable(values[a.Name])})
		}
		return e.printJSON(out)
	}
	fmt.Fprintf(e.stdout, "Task %s: %s", t.Pathspec(), t.Status)
	if t.ClonedFrom != "" {
		fmt.Fprintf(e.stdout, " (cloned from %s)", t.ClonedFrom)
	}
	fmt.Fprintln(e.stdout)
	fmt.Fprintln(e.stdout)
	var rows [][]string
	for _, a := range t.Artifacts {
		v := show(values[a.Name])
		if width > 0 && len(v) > width {
			v = v[:width-3] + "..."
		}
		rows = append(rows, []string{a.Name, a.Type, humanSize(a.Size), v})
	}
	e.table("ARTIFACT\tTYPE\tSIZE\tVALUE", rows)
	return nil
}

// show formats a decoded value on one line.
func show(v any) string {
	if v == nil {
		return "<nil>"
	}
	if s, ok := v.(string); ok {
		return fmt.Sprintf("%q", s)
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Slice && rv.Type().Elem().Kind() != reflect.Interface && rv.Len() > 16 {
		return fmt.Sprintf("%v ... (%d elements)", rv.Slice(0, 16).Interface(), rv.Len())
	}
	b, err := json.Marshal(jsonable(v))
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// jsonable turns maps with non-string keys into string-keyed maps.
func jsonable(v any) any {
	switch x := v.(type) {
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, val := range x {
			m[fmt.Sprint(k)] = jsonable(val)
		}
		return m
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, val := range x {
			m[k] = jsonable(val)
		}
		return m
	case []any:
		out := make([]any, len(x))
		for i, val := range x {
			out[i] = jsonable(val)
		}
		return out
	}
	return v
}

func humanSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
