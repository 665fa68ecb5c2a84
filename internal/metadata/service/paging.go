package service

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"stepwise.dev/stepwise/internal/metadata"
	"stepwise.dev/stepwise/internal/names"
)

// Every listing (flows, runs, tasks) answers one page at a time: at most
// limit items (DefaultPageSize when not given, MaxPageSize at most), and a
// cursor, next, to ask for the page after it with; no next means the
// listing is over. A page is read with one bounded query, so that the
// service's memory does not grow with what it lists.
const (
	DefaultPageSize = 100
	MaxPageSize     = 1000
)

// clientPageSize is the page size the Client asks for.
const clientPageSize = 500

// cursor is where a listing stopped, as sent in next and cursor: base64
// (URL alphabet, no padding) of this object in JSON. Kind says which
// listing it belongs to.
type cursor struct {
	Kind    string `json:"k"`            // "runs", "tasks" or "flows"
	Started int64  `json:"s,omitempty"`  // unix nanoseconds; 0 for an unknown start
	ID      string `json:"i,omitempty"`  // run or task id
	Flow    string `json:"f,omitempty"`  // flow, of a run or of the flows
	Step    string `json:"st,omitempty"` // step of a task
}

func (c cursor) encode() string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

func nanosOf(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func timeOf(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func runCursor(k metadata.RunKey) string {
	return cursor{Kind: "runs", Started: nanosOf(k.Started), ID: k.ID, Flow: k.Flow}.encode()
}

func taskCursor(k metadata.TaskKey) string {
	return cursor{Kind: "tasks", Started: nanosOf(k.Started), ID: k.ID, Step: k.Step}.encode()
}

func flowCursor(flow string) string { return cursor{Kind: "flows", Flow: flow}.encode() }

// decodeCursor reads the cursor of a listing of kind, checking its names.
func decodeCursor(s, kind string) (cursor, *apiError) {
	var c cursor
	bad := func(why string) (cursor, *apiError) {
		return c, badRequest("bad cursor %s: %s; send the next of the page before as it came, with the same filters, or no cursor for the first page", names.Quote(s), why)
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return bad("not base64")
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return bad("not a cursor of this service")
	}
	if c.Kind != kind {
		return bad("it is a cursor of a listing of " + c.Kind + ", not of " + kind)
	}
	var rules []error
	switch kind {
	case "runs":
		rules = append(rules, names.Flow(c.Flow), names.RunID(c.ID))
	case "tasks":
		rules = append(rules, names.Step(c.Step), names.TaskID(c.ID))
	case "flows":
		rules = append(rules, names.Flow(c.Flow))
	}
	for _, err := range rules {
		if err != nil {
			return bad(err.Error())
		}
	}
	return c, nil
}

// page reads the limit and cursor of a listing from the query string; the
// cursor is "" for the first page.
func page(r *http.Request) (limit int, cur string, e *apiError) {
	q := r.URL.Query()
	for _, name := range []string{"limit", "cursor"} {
		if len(q[name]) > 1 {
			return 0, "", badRequest("query parameter %s is given %d times; give it once", name, len(q[name]))
		}
	}
	limit = DefaultPageSize
	if v, ok := q["limit"]; ok {
		n, err := strconv.Atoi(v[0])
		if err != nil || n < 0 {
			return 0, "", badRequest("bad limit %q: want the number of items of a page, 1 to %d (0 or none for %d)", v[0], MaxPageSize, DefaultPageSize)
		}
		if n > 0 {
			limit = min(n, MaxPageSize)
		}
	}
	if v, ok := q["cursor"]; ok {
		if v[0] == "" {
			return 0, "", badRequest("query parameter cursor is empty; give the next of the page before, or leave it out for the first page")
		}
		cur = v[0]
	}
	return limit, cur, nil
}

// pageQuery is the query string of a page request.
func pageQuery(q url.Values, limit int, cur string) url.Values {
	if q == nil {
		q = url.Values{}
	}
	q.Set("limit", strconv.Itoa(limit))
	if cur != "" {
		q.Set("cursor", cur)
	} else {
		q.Del("cursor")
	}
	return q
}
