package ui

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"html/template"
	"net/http"
	"strings"
	"time"

	"stepwise.dev/stepwise/client"
	"stepwise.dev/stepwise/internal/dag"
	"stepwise.dev/stepwise/internal/graph"
)

// runPage shows a run: its graph, its tasks' timeline and table, its
// parameters, tags, code and origin.
func (s *Server) runPage(w http.ResponseWriter, r *http.Request) {
	run, err := s.run(r)
	if err != nil {
		s.fail(w, r, 0, err)
		return
	}
	ctx := r.Context()
	tasks, err := run.Tasks(ctx)
	if err != nil {
		s.fail(w, r, 0, err)
		return
	}
	g := runGraph(ctx, run)
	base := "/runs/" + run.Flow + "/" + run.ID + "/"
	s.render(w, r, "run", map[string]any{
		"Title":  "Run " + run.Pathspec(),
		"Run":    run,
		"Tasks":  tasks,
		"Base":   base,
		"DAG":    template.HTML(dag.SVG(g, stepNodes(tasks, base))),
		"Gantt":  template.HTML(gantt(tasks, base)),
		"Params": sortedParams(run.Params),
		"Live":   run.Status == client.Running && !run.Lost,
		"Status": runStatus(run),
	})
}

// runGraph reads and checks the run's stored graph; nil when there is
// none (a run from before graphs were kept).
func runGraph(ctx context.Context, run *client.Run) *graph.Graph {
	data, err := run.Graph(ctx)
	if err != nil {
		return nil
	}
	var g graph.Graph
	if json.Unmarshal(data, &g) != nil {
		return nil
	}
	checked, err := graph.New(g.Flow, g.Steps)
	if err != nil {
		return nil
	}
	return checked
}

// stepNodes sums up each step's tasks for the graph.
func stepNodes(tasks []*client.Task, base string) map[string]dag.Node {
	nodes := map[string]dag.Node{}
	for _, t := range tasks {
		n := nodes[t.Step]
		n.Tasks++
		switch t.Status {
		case client.Succeeded:
			n.Done++
			if n.Status == "" {
				n.Status = "succeeded"
			}
		case client.Failed:
			n.Status = "failed"
		case client.Running:
			if n.Status != "failed" {
				n.Status = "running"
			}
		}
		if n.Tasks == 1 {
			n.Href = base + t.Step + "/" + t.ID
		}
		nodes[t.Step] = n
	}
	return nodes
}

type param struct{ Name, Value string }

func sortedParams(m map[string]string) []param {
	var out []param
	for k, v := range m {
		out = append(out, param{k, v})
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j].Name < out[j-1].Name; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// gantt draws the timeline of a run's tasks as SVG: a row per task, a bar
// per attempt, colored by status.
func gantt(tasks []*client.Task, base string) string {
	if len(tasks) == 0 {
		return ""
	}
	var start, end time.Time
	now := time.Now()
	for _, t := range tasks {
		for _, a := range t.Attempts {
			e := a.Ended
			if e.IsZero() {
				e = now
			}
			if start.IsZero() || a.Started.Before(start) {
				start = a.Started
			}
			if e.After(end) {
				end = e
			}
		}
	}
	span := end.Sub(start)
	if span <= 0 {
		span = time.Millisecond
	}
	const label, width, row = 190, 900, 14
	plot := float64(width - label - 10)
	height := len(tasks)*row + 24
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="gantt" xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="10">`, width, height)
	fmt.Fprintf(&b, `<text x="%d" y="10">0</text><text x="%d" y="10" text-anchor="end">%s</text>`, label, width-10, html.EscapeString(span.Round(time.Millisecond).String()))
	for i, t := range tasks {
		y := 16 + i*row
		name := html.EscapeString(t.Step + "/" + t.ID)
		fmt.Fprintf(&b, `<a href="%s%s/%s"><text x="4" y="%d">%s</text></a>`, base, html.EscapeString(t.Step), html.EscapeString(t.ID), y+10, name)
		for _, a := range t.Attempts {
			e := a.Ended
			if e.IsZero() {
				e = now
			}
			x := float64(label) + plot*float64(a.Started.Sub(start))/float64(span)
			w := max(plot*float64(e.Sub(a.Started))/float64(span), 1)
			_, fill := dag.Colors(string(a.Status))
			fmt.Fprintf(&b, `<rect data-bar="%s" x="%.1f" y="%d" width="%.1f" height="%d" fill="%s"><title>%s attempt %d: %s, %s</title></rect>`,
				name, x, y+2, w, row-4, fill, name, a.N, a.Status, e.Sub(a.Started).Round(time.Millisecond))
		}
	}
	b.WriteString(`</svg>`)
	return b.String()
}

// runState is what the run page's live updates send.
type runState struct {
	Status string               `json:"status"`
	Took   string               `json:"took"`
	Steps  map[string]stepState `json:"steps"`
	Tasks  []taskState          `json:"tasks"`
	Gantt  string               `json:"gantt"` // the timeline, drawn as the page draws it
}

type stepState struct {
	Status string `json:"status"`
	Sub    string `json:"sub"`
}

// taskState is one row of the run page's table of tasks.
type taskState struct {
	Task     string `json:"task"` // step/id
	Status   string `json:"status"`
	Attempts int    `json:"attempts"`
	Started  string `json:"started"`
	Took     string `json:"took"`
}
