package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"stepwise.dev/stepwise/client"
	"stepwise.dev/stepwise/internal/codec"
)

func dumpCmd(ctx context.Context, e *Env, args []string) error {
	fs := e.Flags("dump")
	maxWidth := fs.Int("width", 80, "cut values longer than this in the table (0: never)")
	artifact := fs.String("artifact", "", "with --out: the artifact whose stored bytes to write")
	out := fs.String("out", "", "write the stored bytes of --artifact to this file ('-': standard output); an Arrow artifact is an Arrow IPC file")
	pos, err := Parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return &usageError{"name one pathspec"}
	}
	if (*artifact == "") != (*out == "") {
		return &usageError{"--artifact and --out go together: dump TASK --artifact NAME --out FILE"}
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
		if *out != "" {
			return exportArtifact(ctx, e, t, *artifact, *out)
		}
		return dumpTask(ctx, e, t, *maxWidth)
	case ps.Step != "":
		if tasks, err = run.Step(ctx, ps.Step); err != nil {
			return err
		}
		if len(tasks) == 1 {
			if *out != "" {
				return exportArtifact(ctx, e, tasks[0], *artifact, *out)
			}
			return dumpTask(ctx, e, tasks[0], *maxWidth)
		}
	default:
		if tasks, err = run.Tasks(ctx); err != nil {
			return err
		}
	}
	if *out != "" {
		return &usageError{fmt.Sprintf("--out writes one artifact of one task; %s has %d tasks: name one, e.g. %s", pos[0], len(tasks), tasks[0].Pathspec())}
	}
	if e.json {
		return e.printJSON(map[string]any{"run": run, "tasks": tasks})
	}
	status := string(run.Status)
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
		rows = append(rows, []string{t.Pathspec(), string(t.Status), fmt.Sprint(len(t.Attempts)), fmt.Sprint(len(t.Artifacts)), note})
	}
	e.table("TASK\tSTATUS\tATTEMPTS\tARTIFACTS\tNOTE", rows)
	return nil
}

func dumpTask(ctx context.Context, e *Env, t *client.Task, width int) error {
	if e.json {
		return dumpTaskJSON(ctx, e, t)
	}
	fmt.Fprintf(e.stdout, "Task %s: %s", t.Pathspec(), t.Status)
	if t.ClonedFrom != "" {
		fmt.Fprintf(e.stdout, " (cloned from %s)", t.ClonedFrom)
	}
	fmt.Fprintln(e.stdout)
	fmt.Fprintln(e.stdout)
	var rows [][]string
	var failed []error
	for _, a := range t.Artifacts {
		v, err := previewArtifact(ctx, t, a.Name, width)
		if err != nil {
			v = "<cannot read it: see below>"
			failed = append(failed, err)
		}
		rows = append(rows, []string{a.Name, a.Type, humanSize(a.Size), v})
	}
	e.table("ARTIFACT\tTYPE\tSIZE\tVALUE", rows)
	if reads, err := t.TableReads(ctx); err == nil && len(reads) > 0 {
		fmt.Fprintln(e.stdout)
		var trows [][]string
		for _, r := range reads {
			trows = append(trows, []string{r.Name, r.Format, fmt.Sprint(r.Version), r.Time.Format("2006-01-02 15:04:05"), fmt.Sprint(r.Files), fmt.Sprint(r.Rows), r.Filter})
		}
		e.table("TABLE READ\tFORMAT\tVERSION\tCOMMITTED\tFILES\tROWS\tFILTER", trows)
	}
	return artifactErrors(t, failed)
}

// loadBlob reads an artifact's encoding without decoding it.
func loadBlob(ctx context.Context, t *client.Task, name string) (codec.Blob, error) {
	b, err := client.Get[codec.Blob](ctx, t, name)
	if err != nil {
		return nil, fmt.Errorf("artifact %s of %s: %w", name, t.Pathspec(), err)
	}
	return b, nil
}

// previewArtifact formats an artifact for a table cell of at most width
// bytes (0: no limit). It reads only what the cell shows of the value, and
// says how long the rest is: {"a":1,"b":2,... (1000000 entries).
func previewArtifact(ctx context.Context, t *client.Task, name string, width int) (string, error) {
	blob, err := loadBlob(ctx, t, name)
	if err != nil {
		return "", err
	}
	limit := width
	if width <= 0 {
		limit = -1
	}
	s, err := codec.Preview(blob, limit)
	if err != nil {
		return "", fmt.Errorf("artifact %s of %s: %w", name, t.Pathspec(), err)
	}
	if !s.Cut {
		return s.Text, nil
	}
	suffix := "..."
	switch s.Kind {
	case "map":
		suffix = fmt.Sprintf("... (%d entries)", s.Len)
	case "array":
		suffix = fmt.Sprintf("... (%d elements)", s.Len)
	case "string", "bytes":
		suffix = fmt.Sprintf("... (%d bytes)", s.Len)
	case "table":
		suffix = fmt.Sprintf("... (%d rows)", s.Len)
	}
	keep := width - len(suffix)
	if keep < 8 {
		suffix = "..."
		keep = max(width-len(suffix), 0)
	}
	text := s.Text[:min(keep, len(s.Text))]
	for len(text) > 0 && !utf8.RuneStart(s.Text[len(text)]) {
		text = text[:len(text)-1]
	}
	return text + suffix, nil
}

// dumpTaskJSON prints a task and its artifacts as JSON, each value written
// from its stored bytes as it is read, so that memory holds one artifact's
// encoding, never its decoded value. An artifact that cannot be read has
// "value": null and an "error"; the others are printed all the same, and the
// command then fails.
func dumpTaskJSON(ctx context.Context, e *Env, t *client.Task) error {
	w := bufio.NewWriter(e.stdout)
	q := func(s string) string {
		b, _ := json.Marshal(s)
		return string(b)
	}
	fmt.Fprintf(w, "{\n  \"task\": %s,\n  \"status\": %s,\n", q(t.Pathspec()), q(string(t.Status)))
	if t.ClonedFrom != "" {
		fmt.Fprintf(w, "  \"cloned_from\": %s,\n", q(t.ClonedFrom))
	}
	if reads, err := t.TableReads(ctx); err == nil && len(reads) > 0 {
		b, _ := json.MarshalIndent(reads, "  ", "  ")
		fmt.Fprintf(w, "  \"tables\": %s,\n", b)
	}
	w.WriteString(`  "artifacts": [`)
	var failed []error
	for i, a := range t.Artifacts {
		if i > 0 {
			w.WriteString(",")
		}
		fmt.Fprintf(w, "\n    {\n      \"name\": %s,\n      \"type\": %s,\n      \"key\": %s,\n      \"size\": %d,\n      \"value\": ",
			q(a.Name), q(a.Type), q(a.Key), a.Size)
		blob, err := loadBlob(ctx, t, a.Name)
		if err == nil {
			// WriteJSON checks the whole blob before it writes, so a
			// damaged one writes nothing; any other error is stdout's.
			if err = codec.WriteJSON(w, blob, "      ", "  "); err != nil && !errors.Is(err, codec.ErrCorrupt) {
				return err
			}
			if err != nil {
				err = fmt.Errorf("artifact %s of %s: %w", a.Name, t.Pathspec(), err)
			}
		}
		if err != nil {
			failed = append(failed, err)
			fmt.Fprintf(w, "null,\n      \"error\": %s", q(err.Error()))
		}
		w.WriteString("\n    }")
	}
	if len(t.Artifacts) > 0 {
		w.WriteString("\n  ")
	}
	w.WriteString("]\n}\n")
	if err := w.Flush(); err != nil {
		return fmt.Errorf("writing the output: %w", err)
	}
	return artifactErrors(t, failed)
}

// artifactErrors is the error of a dump that could not read some artifacts.
func artifactErrors(t *client.Task, failed []error) error {
	if len(failed) == 0 {
		return nil
	}
	return fmt.Errorf("cannot read %d of the %d artifacts of %s (the others are printed above): %w", len(failed), len(t.Artifacts), t.Pathspec(), errors.Join(failed...))
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

// exportArtifact writes the stored bytes of an artifact (decompressed,
// without the datastore's header) to a file or standard output: for an
// Arrow artifact, an Arrow IPC file any Arrow library reads. The file
// appears whole or not at all.
func exportArtifact(ctx context.Context, e *Env, t *client.Task, name, path string) error {
	rc, size, err := t.OpenArtifact(ctx, name)
	if err != nil {
		return err
	}
	defer rc.Close()
	if path == "-" {
		if _, err := io.Copy(e.stdout, rc); err != nil {
			return fmt.Errorf("artifact %s of %s: %w", name, t.Pathspec(), err)
		}
		return nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("cannot write artifact %s to %s: %w", name, path, err)
	}
	n, err := io.Copy(tmp, rc)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil && n != size {
		err = fmt.Errorf("read %d bytes, the datastore says %d", n, size)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("cannot write artifact %s of %s to %s: %w", name, t.Pathspec(), path, err)
	}
	fmt.Fprintf(e.stderr, "wrote artifact %s of %s to %s (%s)\n", name, t.Pathspec(), path, humanSize(size))
	return nil
}
