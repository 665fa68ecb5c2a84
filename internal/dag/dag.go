// Package dag draws a flow's graph as SVG, server-side: steps in columns
// by their distance from start, arrows for transitions, each step colored
// by the status of its tasks and labeled with how many there are (the width
// of a foreach). The run page of the UI and the default card use it.
package dag

import (
	"fmt"
	"html"
	"strings"

	"stepwise.dev/stepwise/internal/graph"
)

// Node is what is known of one step in a run.
type Node struct {
	Status string // "succeeded", "failed", "running", or "" (not started)
	Tasks  int    // tasks of the step so far
	Done   int    // of which succeeded
	Href   string // link of the step's box, if any
	Marked bool   // drawn highlighted (the default card's own step)
}

const (
	boxW, boxH = 150, 44
	gapX, gapY = 50, 18
	pad        = 10
)

// SVG returns the graph g drawn as an inline SVG element; nodes says what
// to show on each step (missing steps are drawn as not started).
func SVG(g *graph.Graph, nodes map[string]Node) string {
	if g == nil || len(g.Steps) == 0 {
		return ""
	}
	layer := map[string]int{}
	for _, s := range g.Topo() {
		for _, n := range s.Next {
			layer[n] = max(layer[n], layer[s.Name]+1)
		}
	}
	var columns [][]*graph.Step
	for _, s := range g.Steps {
		l := layer[s.Name]
		for len(columns) <= l {
			columns = append(columns, nil)
		}
		columns[l] = append(columns[l], s)
	}
	rows := 0
	for _, c := range columns {
		rows = max(rows, len(c))
	}
	width := 2*pad + len(columns)*boxW + (len(columns)-1)*gapX
	height := 2*pad + rows*boxH + (rows-1)*gapY
	type point struct{ x, y int }
	at := map[string]point{}
	for i, c := range columns {
		top := pad + (height-2*pad-(len(c)*boxH+(len(c)-1)*gapY))/2
		for j, s := range c {
			at[s.Name] = point{pad + i*(boxW+gapX), top + j*(boxH+gapY)}
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="dag" xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="graph of flow %s">`,
		width, height, width, height, html.EscapeString(g.Flow))
	b.WriteString(`<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto"><path d="M0,0L10,5L0,10z" fill="#667"/></marker></defs>`)
	for _, s := range g.Steps {
		from := at[s.Name]
		for _, n := range s.Next {
			to, ok := at[n]
			if !ok {
				continue
			}
			x1, y1, x2, y2 := from.x+boxW, from.y+boxH/2, to.x, to.y+boxH/2
			mid := (x1 + x2) / 2
			dash := ""
			if s.Foreach != "" {
				dash = ` stroke-dasharray="5,3"`
			}
			fmt.Fprintf(&b, `<path d="M%d,%d C%d,%d %d,%d %d,%d" fill="none" stroke="#667" stroke-width="1.5"%s marker-end="url(#arrow)"/>`,
				x1, y1, mid, y1, mid, y2, x2, y2, dash)
		}
	}
	for _, s := range g.Steps {
		p := at[s.Name]
		n := nodes[s.Name]
		status := n.Status
		if status == "" {
			status = "pending"
		}
		cls := "node " + status
		if n.Marked {
			cls += " marked"
		}
		name := html.EscapeString(s.Name)
		if n.Href != "" {
			fmt.Fprintf(&b, `<a href="%s">`, html.EscapeString(n.Href))
		}
		fmt.Fprintf(&b, `<g class="%s" data-step="%s"><title>%s: %s</title>`, cls, name, name, status)
		fill, stroke := Colors(status)
		width := 1.5
		if n.Marked {
			stroke, width = "#1a1aff", 4
		}
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" rx="6" fill="%s" stroke="%s" stroke-width="%.1f"/>`, p.x, p.y, boxW, boxH, fill, stroke, width)
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-family="sans-serif" font-size="13" text-anchor="middle">%s</text>`, p.x+boxW/2, p.y+18, name)
		sub := Sub(s, n)
		fmt.Fprintf(&b, `<text class="sub" x="%d" y="%d" font-family="sans-serif" font-size="10" fill="#333" text-anchor="middle">%s</text>`, p.x+boxW/2, p.y+34, html.EscapeString(sub))
		b.WriteString(`</g>`)
		if n.Href != "" {
			b.WriteString(`</a>`)
		}
	}
	b.WriteString(`</svg>`)
	return b.String()
}

// Sub is the second line of a step's box: how it hands over, and how many
// of its tasks succeeded when it has several.
func Sub(s *graph.Step, n Node) string {
	sub := kind(s)
	if n.Tasks > 1 || s.Depth > 0 {
		sub += fmt.Sprintf(" · %d/%d tasks", n.Done, n.Tasks)
	}
	return sub
}

// kind describes how a step hands over.
func kind(s *graph.Step) string {
	switch {
	case s.Foreach != "":
		return "foreach " + s.Foreach
	case s.Join:
		return "join"
	case len(s.Next) > 1:
		return "branch"
	case len(s.Next) == 0:
		return "end"
	}
	return "step"
}

// Colors are the fill and stroke of a step, or task, of a status.
func Colors(status string) (fill, stroke string) {
	switch status {
	case "succeeded":
		return "#d4f4dd", "#2e8b57"
	case "failed":
		return "#fbd5d5", "#c62828"
	case "running":
		return "#fff3c4", "#b8860b"
	}
	return "#eef0f3", "#8a8f98"
}
