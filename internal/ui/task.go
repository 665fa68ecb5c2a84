package ui

import (
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"unicode/utf8"

	"stepwise.dev/stepwise/client"
	"stepwise.dev/stepwise/internal/card"
)

// Limits of what a task page loads: the artifacts it decodes, the part of
// a value it shows, and the tail of each log.
const (
	maxDecode = 256 << 10
	maxShow   = 16 << 10
	logTail   = 64 << 10
)

type artifactView struct {
	client.Artifact
	Value string        // shown value, cut
	Chart template.HTML // a line chart, for a slice of numbers
	Cut   bool          // Value is only the start
	Large bool          // not loaded: only its size and a link
	Err   string
}

type logView struct {
	Attempt int
	Stream  string
	Text    string
	Total   int64
	From    int64 // byte offset of Text in the whole log
}

type attemptView struct {
	client.Attempt
	Logs []logView
}

// taskPage shows a task: its artifacts, each attempt's logs, its cards and
// its error.
func (s *Server) taskPage(w http.ResponseWriter, r *http.Request) {
	run, t, err := s.task(r)
	if err != nil {
		s.fail(w, r, 0, err)
		return
	}
	ctx := r.Context()
	var arts []artifactView
	for _, a := range t.Artifacts {
		v := artifactView{Artifact: a}
		if a.Size > maxDecode {
			v.Large = true
		} else if raw, err := t.Raw(ctx, a.Name); err != nil {
			v.Err = err.Error()
		} else {
			v.Value, v.Cut = showValue(raw)
			v.Chart = numbersChart(a.Name, raw)
		}
		arts = append(arts, v)
	}
	var attempts []attemptView
	for _, a := range t.Attempts {
		av := attemptView{Attempt: a}
		for _, stream := range []string{"stdout", "stderr"} {
			data, total, err := t.LogRange(ctx, a.N, stream, -logTail, logTail)
			if err != nil {
				data = []byte("(cannot read this log: " + err.Error() + ")")
			}
			av.Logs = append(av.Logs, logView{Attempt: a.N, Stream: stream, Text: validUTF8(data), Total: total, From: total - int64(len(data))})
		}
		attempts = append(attempts, av)
	}
	cards, err := t.Cards(ctx)
	if err != nil {
		s.fail(w, r, 0, err)
		return
	}
	base := "/runs/" + t.Flow + "/" + t.Run + "/" + t.Step + "/" + t.ID
	s.render(w, r, "task", map[string]any{"Title": "Task " + t.Pathspec(), "Run": run, "Task": t, "Artifacts": arts,
		"Attempts": attempts, "Cards": cards, "Base": base, "Live": t.Status == client.Running && !t.Lost})
}

// showValue formats a decoded artifact for the page: a string as is,
// anything else as indented JSON, cut to maxShow bytes.
func showValue(v any) (string, bool) {
	var s string
	if str, ok := v.(string); ok {
		s = str
	} else if b, err := json.MarshalIndent(v, "", "  "); err == nil {
		s = string(b)
	} else {
		s = fmt.Sprintf("%v", v)
	}
	if len(s) > maxShow {
		return validUTF8([]byte(s[:maxShow])), true
	}
	return s, false
}

// numbersChart draws a slice of two or more numbers as a line chart.
func numbersChart(name string, v any) template.HTML {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Slice || rv.Len() < 2 {
		return ""
	}
	vals := make([]float64, 0, min(rv.Len(), card.MaxPoints))
	for i := range min(rv.Len(), card.MaxPoints) {
		e := rv.Index(i)
		for e.Kind() == reflect.Interface && !e.IsNil() {
			e = e.Elem()
		}
		switch {
		case e.CanFloat():
			vals = append(vals, e.Float())
		case e.CanInt():
			vals = append(vals, float64(e.Int()))
		case e.CanUint():
			vals = append(vals, float64(e.Uint()))
		default:
			return ""
		}
	}
	c := card.ChartPart(name, card.Chart{Series: []card.Series{{Name: name, Values: vals}}})
	return template.HTML(card.ChartSVG(*c.Chart)) // drawn and escaped by ChartSVG
}

// validUTF8 is b as a string, with a cut rune at either end dropped.
func validUTF8(b []byte) string {
	for len(b) > 0 && !utf8.FullRune(b) {
		b = b[1:]
	}
	for len(b) > 0 {
		if r, n := utf8.DecodeRune(b); r != utf8.RuneError || n != 1 {
			break
		}
		b = b[1:]
	}
	return string(b)
}

// artifact sends an artifact's stored bytes, streamed.
func (s *Server) artifact(w http.ResponseWriter, r *http.Request) {
	_, t, err := s.task(r)
	if err != nil {
		s.fail(w, r, 0, err)
		return
	}
	name := r.PathValue("name")
	rc, size, err := t.OpenArtifact(r.Context(), name)
	if err != nil {
		s.fail(w, r, 0, err)
		return
	}
	defer rc.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", t.Flow+"-"+t.Run+"-"+t.Step+"-"+t.ID+"-"+name+".bin"))
	io.Copy(w, rc)
}

// log sends a whole log stream as text, read a megabyte at a time.
func (s *Server) log(w http.ResponseWriter, r *http.Request) {
	t, attempt, stream, ok := s.taskLog(w, r)
	if !ok {
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	const step = 1 << 20
	for off := int64(0); ; {
		data, total, err := t.LogRange(r.Context(), attempt, stream, off, step)
		if err != nil {
			fmt.Fprintf(w, "\n(stepwise ui: cannot read the rest of the log: %v)\n", err)
			return
		}
		w.Write(data)
		off += int64(len(data))
		if len(data) == 0 || off >= total {
			return
		}
	}
}

// taskLog reads the task, attempt and stream a log URL names; when it
// cannot, it writes the error page and returns false.
func (s *Server) taskLog(w http.ResponseWriter, r *http.Request) (*client.Task, int, string, bool) {
	_, t, err := s.task(r)
	if err == nil {
		var attempt int
		var stream string
		if attempt, stream, err = logParams(r, t); err == nil {
			return t, attempt, stream, true
		}
	}
	s.fail(w, r, 0, err)
	return nil, 0, "", false
}

// logParams reads the attempt and stream of a log URL.
func logParams(r *http.Request, t *client.Task) (int, string, error) {
	attempt, err := strconv.Atoi(r.PathValue("attempt"))
	if err != nil || attempt < 0 {
		return 0, "", &badRequest{fmt.Errorf("attempt %q: use 0, 1, ...", r.PathValue("attempt"))}
	}
	if attempt >= len(t.Attempts) {
		return 0, "", fmt.Errorf("task %s has no attempt %d: %w", t.Pathspec(), attempt, client.ErrNotFound)
	}
	stream := r.PathValue("stream")
	if stream != "stdout" && stream != "stderr" {
		return 0, "", &badRequest{fmt.Errorf("log stream %q: use stdout or stderr", stream)}
	}
	return attempt, stream, nil
}

// cardPage sends a card (its latest version, or ?version=N) as a page of
// its own, shown in a sandboxed frame of the task page: no script runs in
// it whatever it holds.
func (s *Server) cardPage(w http.ResponseWriter, r *http.Request) {
	_, t, err := s.task(r)
	if err != nil {
		s.fail(w, r, 0, err)
		return
	}
	attempt, err := strconv.Atoi(r.PathValue("attempt"))
	if err != nil || attempt < 0 {
		s.fail(w, r, http.StatusBadRequest, fmt.Errorf("attempt %q: use 0, 1, ...", r.PathValue("attempt")))
		return
	}
	name := r.PathValue("name")
	if err := card.CheckName(name); err != nil {
		s.fail(w, r, http.StatusBadRequest, err)
		return
	}
	version := 0
	if v := r.URL.Query().Get("version"); v != "" {
		if version, err = strconv.Atoi(v); err != nil || version < 1 {
			s.fail(w, r, http.StatusBadRequest, fmt.Errorf("card version %q: use 1, 2, ... (or none for the latest)", v))
			return
		}
	}
	data, err := t.CardVersionJSON(r.Context(), attempt, name, version)
	if err != nil {
		s.fail(w, r, 0, err)
		return
	}
	d, err := card.Decode(data)
	if err != nil {
		s.fail(w, r, 0, err)
		return
	}
	w.Header().Set("Content-Security-Policy", "default-src 'none'; img-src data:; style-src 'unsafe-inline'; frame-ancestors 'self'")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	card.WritePage(w, d)
}
