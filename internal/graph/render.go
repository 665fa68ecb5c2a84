package graph

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// WriteText writes the graph for people: one line per step in declaration
// order, with its transition and what it declares.
func (g *Graph) WriteText(w io.Writer) error {
	fmt.Fprintf(w, "Flow %s: %d steps\n\n", g.Flow, len(g.Steps))
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 4, 2, ' ', 0)
	for _, s := range g.Steps {
		var what string
		switch s.Kind() {
		case "end":
			what = "(end)"
		case "foreach":
			what = fmt.Sprintf("-> %s  (foreach %s)", s.Next[0], s.Foreach)
		case "branch":
			what = fmt.Sprintf("-> %s  (branch)", strings.Join(s.Next, ", "))
		default:
			what = "-> " + s.Next[0]
		}
		var notes []string
		if s.Join {
			notes = append(notes, "join of "+s.Closes)
		}
		if s.Item != "" {
			notes = append(notes, "item "+s.Item)
		}
		if r := s.Resources; r != (Resources{}) {
			notes = append(notes, r.String())
		}
		if s.Retries > 0 {
			notes = append(notes, fmt.Sprintf("retries %d", s.Retries))
		}
		if s.Timeout > 0 {
			notes = append(notes, "timeout "+s.Timeout.String())
		}
		if s.Catch != "" {
			notes = append(notes, "catch into "+s.Catch)
		}
		extra := ""
		if len(notes) > 0 {
			extra = "[" + strings.Join(notes, "; ") + "]"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", s.Name, what, extra)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, line := range strings.Split(strings.TrimRight(buf.String(), "\n"), "\n") {
		if _, err := io.WriteString(w, strings.TrimRight(line, " ")+"\n"); err != nil {
			return err
		}
	}
	if sc := g.Schedule; sc != nil {
		tz := sc.TimeZone
		if tz == "" {
			tz = "UTC"
		}
		if _, err := fmt.Fprintf(w, "\nSchedule when deployed: %s (%s)\n", sc.Cron, tz); err != nil {
			return err
		}
	}
	if len(g.Triggers) > 0 {
		if _, err := fmt.Fprintf(w, "Runs when deployed, after a successful production run of: %s\n", strings.Join(g.Triggers, ", ")); err != nil {
			return err
		}
	}
	return nil
}

// String shows resources as "cpu=2 memory=4096MiB gpu=1".
func (r Resources) String() string {
	var parts []string
	if r.CPU > 0 {
		parts = append(parts, fmt.Sprintf("cpu=%g", r.CPU))
	}
	if r.MemoryMB > 0 {
		parts = append(parts, fmt.Sprintf("memory=%dMiB", r.MemoryMB))
	}
	if r.GPU > 0 {
		parts = append(parts, fmt.Sprintf("gpu=%d", r.GPU))
	}
	return strings.Join(parts, " ")
}

// String shows a duration the way time.Duration does.
func (d Duration) String() string { return fmtDuration(d) }

// WriteJSON writes the graph for tools.
func (g *Graph) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(g)
}
