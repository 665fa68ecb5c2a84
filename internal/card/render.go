package card

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"math"
	"strings"

	"stepwise.dev/stepwise/internal/dag"
	"stepwise.dev/stepwise/internal/graph"
)

// Style is the CSS of a rendered card. A card page carries it inline, and
// the UI serves it with its own.
const Style = `
.card{font-family:system-ui,sans-serif;max-width:1000px;color:#1d2330}
.card h1,.card h2,.card h3{margin:.6em 0 .3em}
.card table{border-collapse:collapse;margin:.5em 0;font-size:13px}
.card th,.card td{border:1px solid #ccd;padding:3px 8px;text-align:left;vertical-align:top;max-width:40em;overflow-wrap:anywhere}
.card th{background:#eef0f5}
.card pre{background:#f4f5f7;padding:8px;overflow:auto;max-height:30em;white-space:pre-wrap;overflow-wrap:anywhere}
.card .error{border-left:4px solid #c62828;background:#fdecec}
.card .cut{color:#845;font-style:italic}
.card img{max-width:100%;border:1px solid #ccd}
.card .meta{color:#667;font-size:12px}
.card section{margin:1em 0}
`

// Render writes the card as an HTML fragment (a div of class card). All
// text is escaped; images are data: URIs; charts and graphs are inline SVG
// drawn here; nothing in it runs.
func Render(w io.Writer, d *Doc) error {
	var b strings.Builder
	fmt.Fprintf(&b, `<div class="card" data-card="%s">`, html.EscapeString(d.Name))
	fmt.Fprintf(&b, `<p class="meta">Card <b>%s</b> of task %s, attempt %d`, html.EscapeString(d.Name), html.EscapeString(d.Task), d.Attempt)
	if d.Version > 0 {
		fmt.Fprintf(&b, `, version %d`, d.Version)
	}
	if !d.Updated.IsZero() {
		fmt.Fprintf(&b, `, updated %s`, d.Updated.UTC().Format("2006-01-02 15:04:05 UTC"))
	}
	if d.Version > 0 && !d.Final {
		b.WriteString(` (saved while the task ran, before its final version)`)
	}
	b.WriteString("</p>\n")
	for i, p := range d.Parts {
		if i == MaxParts {
			fmt.Fprintf(&b, `<p class="cut">%d more parts are not shown.</p>`, len(d.Parts)-MaxParts)
			break
		}
		renderPart(&b, p)
	}
	b.WriteString("</div>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// WritePage writes the card as a whole HTML page that needs nothing else:
// its style is inline, its images are data: URIs, and its Content Security
// Policy allows no script and no network.
func WritePage(w io.Writer, d *Doc) error {
	title := html.EscapeString(d.Task + " · " + d.Name)
	if _, err := fmt.Fprintf(w, `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">
<title>%s</title><style>body{margin:2em}%s</style></head><body>
`, title, Style); err != nil {
		return err
	}
	if err := Render(w, d); err != nil {
		return err
	}
	_, err := io.WriteString(w, "</body></html>\n")
	return err
}

func renderPart(b *strings.Builder, p Part) {
	b.WriteString("<section>")
	defer b.WriteString("</section>\n")
	if p.Title != "" && p.Kind != KindError {
		fmt.Fprintf(b, "<h3>%s</h3>", html.EscapeString(p.Title))
	}
	switch p.Kind {
	case KindMarkdown:
		text, _ := cut(p.Text, MaxText)
		WriteMarkdown(b, text)
	case KindValue, KindError:
		text, _ := cut(p.Text, MaxText)
		cls := ""
		if p.Kind == KindError {
			cls = ` class="error"`
			b.WriteString("<h3>Error</h3>")
		}
		fmt.Fprintf(b, "<pre%s>%s</pre>", cls, html.EscapeString(text))
	case KindTable, KindFacts:
		renderTable(b, p)
	case KindImage:
		if (p.MIME == "image/png" || p.MIME == "image/jpeg") && len(p.Data) <= MaxImage {
			fmt.Fprintf(b, `<img alt="%s" src="data:%s;base64,%s">`, html.EscapeString(p.Title), p.MIME, base64.StdEncoding.EncodeToString(p.Data))
		} else {
			b.WriteString(`<p class="cut">An image that is not PNG or JPEG, or too large, is not shown.</p>`)
		}
	case KindChart:
		if p.Chart != nil {
			b.WriteString(ChartSVG(*p.Chart))
		}
	case KindGraph:
		var g graph.Graph
		if json.Unmarshal(p.Graph, &g) == nil {
			if gg, err := graph.New(g.Flow, g.Steps); err == nil {
				b.WriteString(dag.SVG(gg, map[string]dag.Node{p.Mark: {Marked: true, Status: "running"}}))
			}
		}
	default:
		fmt.Fprintf(b, `<p class="cut">A part of kind %s, which this version does not know, is not shown.</p>`, html.EscapeString(p.Kind))
	}
	if p.Total > 0 {
		fmt.Fprintf(b, `<p class="cut">Cut: it had %d (rows, values or bytes); this shows the first ones.</p>`, p.Total)
	}
}

func renderTable(b *strings.Builder, p Part) {
	b.WriteString("<table>")
	if len(p.Columns) > 0 {
		b.WriteString("<tr>")
		for _, c := range p.Columns[:min(len(p.Columns), MaxColumns)] {
			fmt.Fprintf(b, "<th>%s</th>", html.EscapeString(c))
		}
		b.WriteString("</tr>")
	}
	for i, r := range p.Rows {
		if i == MaxRows {
			break
		}
		b.WriteString("<tr>")
		for _, c := range r[:min(len(r), MaxColumns)] {
			c, _ = cut(c, MaxCell+64)
			fmt.Fprintf(b, "<td>%s</td>", html.EscapeString(c))
		}
		b.WriteString("</tr>")
	}
	b.WriteString("</table>")
}

var palette = []string{"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"}

// ChartSVG draws a chart as an inline SVG element: a line per series, or
// grouped bars, with the value range on the y axis and a legend.
func ChartSVG(c Chart) string {
	const w, h, left, right, top, bottom = 640, 260, 60, 130, 10, 30
	n := 0
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, s := range c.Series {
		n = max(n, len(s.Values))
		for _, v := range s.Values {
			lo, hi = math.Min(lo, v), math.Max(hi, v)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`, w, h, w, h)
	defer b.WriteString("</svg>")
	if n == 0 {
		b.WriteString(`<text x="10" y="20">no values</text>`)
		return b.String()
	}
	if c.Bar {
		lo = math.Min(lo, 0)
	}
	if hi == lo {
		hi, lo = hi+1, lo-1
	}
	pw, ph := float64(w-left-right), float64(h-top-bottom)
	y := func(v float64) float64 { return float64(top) + ph*(hi-v)/(hi-lo) }
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.0f" height="%.0f" fill="#fafbfc" stroke="#ccd"/>`, left, top, pw, ph)
	for _, v := range []float64{lo, (lo + hi) / 2, hi} {
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`, left-4, y(v)+4, html.EscapeString(fmt.Sprintf("%.4g", v)))
	}
	label := func(i int) string {
		if i < len(c.Labels) {
			return c.Labels[i]
		}
		return fmt.Sprint(i)
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d">%s</text>`, left, h-10, html.EscapeString(label(0)))
	fmt.Fprintf(&b, `<text x="%.0f" y="%d" text-anchor="end">%s</text>`, float64(left)+pw, h-10, html.EscapeString(label(n-1)))
	for si, s := range c.Series {
		color := palette[si%len(palette)]
		if c.Bar {
			slot := pw / float64(n)
			bw := slot / float64(len(c.Series)+1)
			for i, v := range s.Values {
				x := float64(left) + float64(i)*slot + float64(si)*bw + bw/2
				y0, y1 := y(math.Max(v, 0)), y(math.Min(v, 0))
				fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>`, x, y0, math.Max(bw, 0.5), y1-y0, color)
			}
		} else {
			b.WriteString(`<polyline fill="none" stroke-width="1.5" stroke="` + color + `" points="`)
			for i, v := range s.Values {
				x := float64(left) + pw*float64(i)/math.Max(float64(n-1), 1)
				fmt.Fprintf(&b, "%.1f,%.1f ", x, y(v))
			}
			b.WriteString(`"/>`)
		}
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="10" height="10" fill="%s"/><text x="%d" y="%d">%s</text>`,
			w-right+10, top+si*16, color, w-right+24, top+si*16+9, html.EscapeString(s.Name))
	}
	return b.String()
}
