package card

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// DefaultName is the name of the card every task has without code.
const DefaultName = "default"

// TaskInfo is what the default card shows of a task.
type TaskInfo struct {
	Task      string // Flow/Run/step/ID
	Step      string
	Status    string
	Params    map[string]string
	Artifacts []ArtifactInfo
	Attempts  []AttemptInfo
	Graph     json.RawMessage // the flow's graph, nil when unknown
}

// ArtifactInfo describes one artifact.
type ArtifactInfo struct {
	Name, Type string
	Size       int64
}

// AttemptInfo describes one attempt.
type AttemptInfo struct {
	N              int
	Status         string
	Started, Ended time.Time
	Error          string
}

// Default builds the default card of a task: its parameters, its
// artifacts with their types and sizes, the timing of its attempts, the
// graph with its step marked, and the last attempt's error.
func Default(t TaskInfo) *Doc {
	d := &Doc{Name: DefaultName, Task: t.Task, Final: t.Status != "running"}
	if n := len(t.Attempts); n > 0 {
		d.Attempt = t.Attempts[n-1].N
	}
	d.Parts = append(d.Parts, Markdown(fmt.Sprintf("## Task %s\nStatus: **%s**", t.Task, t.Status)))
	params := Part{Kind: KindFacts, Title: "Parameters", Columns: []string{"Parameter", "Value"}}
	keys := make([]string, 0, len(t.Params))
	for k := range t.Params {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v, _ := cut(t.Params[k], MaxCell)
		params.Rows = append(params.Rows, []string{k, v})
	}
	if len(params.Rows) == 0 {
		params.Rows = [][]string{{"(none)", ""}}
	}
	arts := Part{Kind: KindFacts, Title: "Artifacts", Columns: []string{"Name", "Type", "Size"}}
	for _, a := range t.Artifacts {
		arts.Rows = append(arts.Rows, []string{a.Name, a.Type, Size(a.Size)})
	}
	if len(arts.Rows) == 0 {
		arts.Rows = [][]string{{"(none yet)", "", ""}}
	}
	timing := Part{Kind: KindFacts, Title: "Timing", Columns: []string{"Attempt", "Status", "Started", "Ended", "Took"}}
	for _, a := range t.Attempts {
		ended, took := "", ""
		if !a.Ended.IsZero() {
			ended = a.Ended.UTC().Format("2006-01-02 15:04:05.000")
			took = a.Ended.Sub(a.Started).Round(time.Millisecond).String()
		}
		timing.Rows = append(timing.Rows, []string{fmt.Sprint(a.N), a.Status, a.Started.UTC().Format("2006-01-02 15:04:05.000"), ended, took})
	}
	d.Parts = append(d.Parts, params, arts, timing)
	if len(t.Graph) > 0 {
		d.Parts = append(d.Parts, Part{Kind: KindGraph, Title: "Graph (this task's step is outlined)", Graph: t.Graph, Mark: t.Step})
	}
	if n := len(t.Attempts); n > 0 && t.Attempts[n-1].Error != "" {
		d.Parts = append(d.Parts, Error(t.Attempts[n-1].Error))
	}
	return d
}

// Size formats a byte count for people: 512 B, 1.5 KB, 3.2 MB.
func Size(n int64) string {
	switch {
	case n < 1000:
		return fmt.Sprintf("%d B", n)
	case n < 1e6:
		return fmt.Sprintf("%.1f KB", float64(n)/1e3)
	case n < 1e9:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	}
	return fmt.Sprintf("%.1f GB", float64(n)/1e9)
}
