package dag

import (
	"strings"
	"testing"

	"stepwise.dev/stepwise/internal/graph"
)

func TestSVG(t *testing.T) {
	g, err := graph.New("F", []*graph.Step{
		{Name: "start", Method: "Start", Next: []string{"a", "b"}},
		{Name: "a", Method: "A", Next: []string{"each"}, Foreach: "Items"},
		{Name: "each", Method: "Each", Next: []string{"join_a"}},
		{Name: "join_a", Method: "JoinA", Next: []string{"join"}, Join: true},
		{Name: "b", Method: "B", Next: []string{"join"}},
		{Name: "join", Method: "Join", Next: []string{"end"}, Join: true},
		{Name: "end", Method: "End"},
	})
	if err != nil {
		t.Fatal(err)
	}
	svg := SVG(g, map[string]Node{
		"start": {Status: "succeeded", Tasks: 1, Done: 1, Href: "/runs/F/1/start/0?x=<y>"},
		"each":  {Status: "running", Tasks: 7, Done: 5},
		"b":     {Status: "failed", Tasks: 1, Marked: true},
	})
	tests := []struct{ name, want string }{
		{"every step", `data-step="join_a"`},
		{"status", `class="node succeeded" data-step="start"`},
		{"pending", `class="node pending" data-step="end"`},
		{"marked", `class="node failed marked" data-step="b"`},
		{"foreach width", "step · 5/7 tasks"},
		{"foreach edge", `stroke-dasharray="5,3"`},
		{"escaped link", `href="/runs/F/1/start/0?x=&lt;y&gt;"`},
	}
	for _, tt := range tests {
		if !strings.Contains(svg, tt.want) {
			t.Errorf("%s: the SVG lacks %q", tt.name, tt.want)
		}
	}
	if n := strings.Count(svg, "<path d=\"M"); n != 8 {
		t.Errorf("%d arrows, want 8", n)
	}
	if SVG(nil, nil) != "" {
		t.Error("no graph draws something")
	}
}
