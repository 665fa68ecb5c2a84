package card

import (
	"context"
	"encoding/json"
	"errors"
	"image"
	"image/color"
	"strings"
	"sync"
	"testing"
	"time"
)

func render(t *testing.T, parts ...Part) string {
	t.Helper()
	var b strings.Builder
	if err := WritePage(&b, &Doc{Name: "main", Task: "F/1/start/0", Parts: parts}); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestMarkdown(t *testing.T) {
	tests := []struct {
		name, in string
		want     []string // in the output
		not      []string // never in the output
	}{
		{"heading and paragraph", "# Title\nsome *text* and **bold**", []string{"<h1>Title</h1>", "<em>text</em>", "<strong>bold</strong>"}, nil},
		{"list", "- a\n- b\n\n1. one\n2. two", []string{"<ul>\n<li>a</li>\n<li>b</li>\n</ul>", "<ol>\n<li>one</li>"}, nil},
		{"code", "```\n<b>x</b>\n```\nand `<i>`", []string{"<pre><code>&lt;b&gt;x&lt;/b&gt;\n</code></pre>", "<code>&lt;i&gt;</code>"}, []string{"<b>x", "<i>"}},
		{"script", "<script>alert(1)</script>", []string{"&lt;script&gt;alert(1)&lt;/script&gt;"}, []string{"<script"}},
		{"safe link", "[docs](https://example.org/a?b=1&c=\"x\")", []string{`<a href="https://example.org/a?b=1&amp;c=&#34;x&#34;" rel="noopener noreferrer">docs</a>`}, nil},
		{"javascript link", "[x](javascript:alert(1))", []string{"<p>x)</p>"}, []string{"href", "javascript"}},
		{"data link", "[x](DATA:text/html,hi)", []string{"<p>x</p>"}, []string{"href"}},
		{"attribute break", `[a" onclick="x](/p" onmouseover="y)`, nil, []string{`" onclick`, `" onmouseover`}},
		{"unclosed marks", "**a *b `c [d](", []string{"`c [d](</p>"}, []string{"<strong>", "<code>", "<a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			WriteMarkdown(&b, tt.in)
			out := b.String()
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			for _, n := range tt.not {
				if strings.Contains(out, n) {
					t.Errorf("output has %q:\n%s", n, out)
				}
			}
		})
	}
}

// allowedTags are the only elements markdown may produce.
var allowedTags = []string{"p", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "li", "pre", "code", "strong", "em", "a"}

// checkTags fails unless every '<' in html opens or closes an allowed
// element, and every attribute is a quoted href (or rel) without a
// scheme that runs code.
func checkTags(t *testing.T, src, html string) {
	t.Helper()
	for i := strings.IndexByte(html, '<'); i >= 0; i = strings.IndexByte(html, '<') {
		html = html[i+1:]
		end := strings.IndexByte(html, '>')
		if end < 0 {
			t.Fatalf("markdown %q: an unclosed tag in the output", src)
		}
		tag := strings.TrimPrefix(html[:end], "/")
		name, attrs, _ := strings.Cut(tag, " ")
		ok := false
		for _, a := range allowedTags {
			ok = ok || name == a
		}
		if !ok {
			t.Fatalf("markdown %q: element %q in the output", src, name)
		}
		if attrs != "" {
			if name != "a" || !strings.HasPrefix(attrs, `href="`) || strings.Count(attrs, `"`) != 4 || !strings.HasSuffix(attrs, `" rel="noopener noreferrer"`) {
				t.Fatalf("markdown %q: attributes %q in the output", src, attrs)
			}
			href := strings.ToLower(attrs[len(`href="`) : strings.Index(attrs[6:], `"`)+6])
			if strings.Contains(href, "javascript:") || strings.Contains(href, "data:") {
				t.Fatalf("markdown %q: link %q in the output", src, href)
			}
		}
		html = html[end+1:]
	}
}

func FuzzMarkdown(f *testing.F) {
	for _, s := range []string{"# a\n- b\n1. c\n```\nd\n```", "<script>x</script>", "[a](javascript:b)", "**a** *b* `c` [d](/e)", "[a\"](http://x\" onload=\"y)", "<<>>&&"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		var b strings.Builder
		WriteMarkdown(&b, src)
		checkTags(t, src, b.String())
	})
}

func TestTable(t *testing.T) {
	type row struct {
		Name  string
		Score float64
		note  string
	}
	tests := []struct {
		name    string
		rows    any
		columns []string
		first   []string
		n       int
		total   int64
	}{
		{"structs", []row{{"a", 1.5, ""}, {"b", 2, ""}}, []string{"Name", "Score"}, []string{"a", "1.5"}, 2, 0},
		{"pointers to structs", []*row{{"a", 1, ""}}, []string{"Name", "Score"}, []string{"a", "1"}, 1, 0},
		{"maps", []map[string]int{{"y": 2, "x": 1}}, []string{"x", "y"}, []string{"1", "2"}, 1, 0},
		{"slices", [][]any{{"a", 1}, {"b", 2}}, nil, []string{"a", "1"}, 2, 0},
		{"scalars", []int{7, 8}, nil, []string{"7"}, 2, 0},
		{"too many rows", make([][]int, MaxRows+5), nil, []string{}, MaxRows, MaxRows + 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Table(tt.rows)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(p.Columns, ",") != strings.Join(tt.columns, ",") || len(p.Rows) != tt.n || p.Total != tt.total {
				t.Fatalf("columns %q, %d rows, total %d; want %q, %d, %d", p.Columns, len(p.Rows), p.Total, tt.columns, tt.n, tt.total)
			}
			if strings.Join(p.Rows[0], ",") != strings.Join(tt.first, ",") {
				t.Errorf("first row %q, want %q", p.Rows[0], tt.first)
			}
		})
	}
	if _, err := Table(42); err == nil || !strings.Contains(err.Error(), "not from int") {
		t.Errorf("a table of an int: %v", err)
	}
}

// TestHugeHostileTable puts a 50 MB table of markup in a card: the card
// keeps 1,000 rows, says it was cut, and shows the markup as text.
func TestHugeHostileTable(t *testing.T) {
	cell := "<script>alert(1)</script>" + strings.Repeat("x", 75)
	rows := make([][]string, 500_000) // 100 bytes a row: 50 MB
	for i := range rows {
		rows[i] = []string{cell}
	}
	p, err := Table(rows)
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(&Doc{Parts: []Part{p}})
	if err != nil {
		t.Fatal(err)
	}
	if len(data) > 1<<20 {
		t.Errorf("the card of a 50 MB table is %d bytes", len(data))
	}
	out := render(t, p)
	if strings.Contains(out, "<script") || !strings.Contains(out, "&lt;script&gt;") {
		t.Error("the table's markup is not escaped")
	}
	if n := strings.Count(out, "<tr>"); n != MaxRows {
		t.Errorf("%d rows shown, want %d", n, MaxRows)
	}
	if !strings.Contains(out, "it had 500000") {
		t.Error("the card does not say the table was cut")
	}
}

func TestParts(t *testing.T) {
	img := image.NewRGBA(image.Rect(0, 0, 2, 2))
	img.Set(0, 0, color.RGBA{255, 0, 0, 255})
	pic, err := Picture(img)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		part Part
		want []string
	}{
		{"picture", pic, []string{`<img alt="" src="data:image/png;base64,`}},
		{"line chart", ChartPart("loss", Chart{Series: []Series{{Name: "train<", Values: []float64{3, 2, 1}}}}), []string{"<h3>loss</h3>", "<polyline", "train&lt;"}},
		{"bar chart", ChartPart("n", Chart{Bar: true, Labels: []string{"a", "b"}, Series: []Series{{Name: "s", Values: []float64{1, -1}}}}), []string{`<svg class="chart"`, "<rect"}},
		{"value", Value("X", "<b>"), []string{"<h3>X</h3>", "<pre>&lt;b&gt;</pre>"}},
		{"error", Error("boom <i>"), []string{`<pre class="error">boom &lt;i&gt;</pre>`}},
		{"long text", Markdown(strings.Repeat("a", MaxText+10)), []string{"it had 262154"}},
		{"unknown kind", Part{Kind: "<x>"}, []string{"kind &lt;x&gt;"}},
		{"bad image", Part{Kind: KindImage, MIME: "text/html", Data: []byte("<script>")}, []string{"is not shown"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := render(t, tt.part)
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
	if _, err := Image([]byte("<html>")); err == nil {
		t.Error("an HTML 'image' was taken")
	}
}

func TestCheckName(t *testing.T) {
	for name, ok := range map[string]bool{"main": true, "progress_2": true, "a-b": true, "": false, "Main": false, "../x": false, "a.json": false, strings.Repeat("a", 65): false} {
		if err := CheckName(name); (err == nil) != ok {
			t.Errorf("CheckName(%q) = %v", name, err)
		}
	}
}

// memSaver keeps the cards saved, in order.
type memSaver struct {
	mu    sync.Mutex
	saves []*Doc
	fail  error
}

func (m *memSaver) SaveCard(_ context.Context, _ *Doc, data []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return m.fail
	}
	d, err := Decode(data)
	if err != nil {
		return err
	}
	m.saves = append(m.saves, d)
	return nil
}

func TestSet(t *testing.T) {
	ctx := context.Background()
	m := &memSaver{}
	s := NewSet(m, "F/1/train/0", 2)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s.Now = func() time.Time { return now }

	s.Add("progress", Markdown("epoch 1"))
	s.Refresh(ctx) // the first refresh saves at once
	s.Reset("progress")
	s.Add("progress", Markdown("epoch 2"))
	s.Refresh(ctx) // within MinInterval: waits (a timer)
	if len(m.saves) != 1 || m.saves[0].Version != 1 || m.saves[0].Final || m.saves[0].Parts[0].Text != "epoch 1" {
		t.Fatalf("after two refreshes within %s: saves %+v, want one of epoch 1", MinInterval, m.saves)
	}
	s.Add("main", Part{Kind: KindValue, Artifact: "Loss"})
	if err := s.Finish(ctx, func(name string) string { return name + "=0.1" }, errors.New("diverged <b>")); err != nil {
		t.Fatal(err)
	}
	last := map[string]*Doc{}
	for _, d := range m.saves[1:] {
		last[d.Name] = d
	}
	p, mn := last["progress"], last["main"]
	if p == nil || mn == nil || !p.Final || p.Version != 2 || p.Parts[0].Text != "epoch 2" || p.Attempt != 2 || p.Task != "F/1/train/0" {
		t.Fatalf("final saves: %+v", m.saves)
	}
	if mn.Parts[0].Text != "Loss=0.1" || mn.Parts[1].Kind != KindError || mn.Parts[1].Text != "diverged <b>" {
		t.Errorf("main card parts %+v: want the artifact's value, then the error", mn.Parts)
	}
	s.Refresh(ctx) // after Finish: nothing
	if n := len(m.saves); n != 3 {
		t.Errorf("%d saves, want 3", n)
	}

	bad := NewSet(&memSaver{fail: errors.New("disk full")}, "F/1/a/0", 0)
	bad.Add("main", Markdown("x"))
	if err := bad.Finish(ctx, nil, nil); err == nil || !strings.Contains(err.Error(), "card main of task F/1/a/0: disk full") {
		t.Errorf("a failed save: %v", err)
	}
}

func TestDefault(t *testing.T) {
	g := json.RawMessage(`{"flow":"F","steps":[{"name":"start","method":"Start","next":["end"]},{"name":"end","method":"End"}]}`)
	d := Default(TaskInfo{Task: "F/1/start/0", Step: "start", Status: "failed", Params: map[string]string{"lr": "0.1"},
		Artifacts: []ArtifactInfo{{"X", "int", 9}},
		Attempts:  []AttemptInfo{{N: 0, Status: "failed", Started: time.Unix(0, 0), Ended: time.Unix(2, 0), Error: "<oops>"}},
		Graph:     g})
	out := render(t, d.Parts...)
	for _, w := range []string{"<td>lr</td><td>0.1</td>", "<td>X</td><td>int</td><td>9 B</td>", "<td>2s</td>", `data-step="start"`, "node running marked", "&lt;oops&gt;"} {
		if !strings.Contains(out, w) {
			t.Errorf("default card lacks %q:\n%s", w, out)
		}
	}
}
