package ui

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"stepwise.dev/stepwise/client"
	"stepwise.dev/stepwise/internal/names"
)

// pageSize is how many runs a page of the runs list shows, unless n says.
const pageSize = 50

// runsQuery is the filter of the runs page, from its query string.
type runsQuery struct {
	Flow, Namespace, Tag, Status, User, Since, Until, After string
	N                                                       int
}

func parseRunsQuery(q url.Values) (runsQuery, client.Filter, error) {
	rq := runsQuery{Flow: q.Get("flow"), Namespace: q.Get("ns"), Tag: q.Get("tag"), Status: q.Get("status"),
		User: q.Get("user"), Since: q.Get("since"), Until: q.Get("until"), After: q.Get("after"), N: pageSize}
	var f client.Filter
	bad := func(format string, args ...any) (runsQuery, client.Filter, error) {
		return rq, f, &badRequest{fmt.Errorf(format, args...)}
	}
	if rq.Flow != "" {
		if err := names.Flow(rq.Flow); err != nil {
			return bad("filter flow: %v", err)
		}
	}
	for _, t := range []string{rq.Namespace, rq.Tag} {
		if t == "" {
			continue
		}
		if err := names.Tag(t); err != nil {
			return bad("filter: %v", err)
		}
		f.Tags = append(f.Tags, t)
	}
	switch client.Status(rq.Status) {
	case "", client.Running, client.Succeeded, client.Failed:
		f.Status = client.Status(rq.Status)
	default:
		return bad("filter status %q: use running, succeeded or failed", rq.Status)
	}
	if rq.User != "" {
		if err := names.User(rq.User); err != nil {
			return bad("filter user: %v", err)
		}
		f.User = rq.User
	}
	for _, t := range []struct {
		s   string
		dst *time.Time
	}{{rq.Since, &f.Since}, {rq.Until, &f.Until}} {
		if t.s == "" {
			continue
		}
		v, err := parseTime(t.s)
		if err != nil {
			return bad("filter time %q: write 2026-01-31 or 2026-01-31T15:04", t.s)
		}
		*t.dst = v
	}
	if n := q.Get("n"); n != "" {
		v, err := strconv.Atoi(n)
		if err != nil || v < 1 || v > 1000 {
			return bad("page size n=%q: use 1 to 1000", n)
		}
		rq.N = v
	}
	f.Limit = rq.N + 1
	return rq, f, nil
}

func parseTime(s string) (time.Time, error) {
	for _, layout := range []string{"2006-01-02T15:04", "2006-01-02", time.RFC3339} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("not a time")
}

// runsPage lists flows and runs, filtered and paged.
func (s *Server) runsPage(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	q := r.URL.Query()
	if _, ok := q["ns"]; !ok && s.o.Namespace != "" {
		q.Set("ns", s.o.Namespace)
	}
	rq, f, err := parseRunsQuery(q)
	if err != nil {
		s.fail(w, r, 0, err)
		return
	}
	if rq.After != "" {
		ps, err := client.ParsePathspec(rq.After)
		if err != nil || ps.Run == "" || ps.Step != "" {
			s.fail(w, r, http.StatusBadRequest, fmt.Errorf("page cursor after=%q: want Flow/RunID", rq.After))
			return
		}
		if f.After, err = s.c.Flow(ps.Flow).Run(ctx, ps.Run); err != nil {
			s.fail(w, r, 0, err)
			return
		}
	}
	flows, err := s.c.Flows(ctx)
	if err != nil {
		s.fail(w, r, 0, err)
		return
	}
	runs, err := s.listRuns(ctx, rq, f)
	if err != nil {
		s.fail(w, r, 0, err)
		return
	}
	next := ""
	if len(runs) > rq.N {
		runs = runs[:rq.N]
		q := r.URL.Query()
		q.Set("after", runs[len(runs)-1].Pathspec())
		next = "/?" + q.Encode()
	}
	first, events := "", ""
	if rq.After != "" {
		q := r.URL.Query()
		q.Del("after")
		first = "/?" + q.Encode()
	} else {
		// The first page follows new runs and statuses, with its filters
		// (the namespace included when it is the server's default).
		events = "/events?" + q.Encode()
	}
	title := "Runs"
	if rq.Flow != "" {
		title = "Runs of " + rq.Flow
	}
	s.render(w, r, "runs", map[string]any{"Title": title, "Flows": flows, "Runs": runs, "Q": rq, "Next": next, "First": first, "Events": events,
		"Statuses": []string{"running", "succeeded", "failed"}})
}

// listRuns reads the runs a runs page shows: of one flow or all, with
// its filters, one more than a page (to know there is a next).
func (s *Server) listRuns(ctx context.Context, rq runsQuery, f client.Filter) ([]*client.Run, error) {
	if rq.Flow != "" {
		return s.c.Flow(rq.Flow).Runs(ctx, f)
	}
	return s.c.Runs(ctx, f)
}

// tags adds or removes tags of a run, from the run page's form.
func (s *Server) tags(w http.ResponseWriter, r *http.Request) {
	if o := r.Header.Get("Origin"); o != "" && o != "http://"+r.Host && o != "https://"+r.Host {
		s.fail(w, r, http.StatusForbidden, fmt.Errorf("a tag change from another site (%s) is refused", o))
		return
	}
	run, err := s.run(r)
	if err != nil {
		s.fail(w, r, 0, err)
		return
	}
	ctx := r.Context()
	if add := strings.Fields(r.PostFormValue("add")); len(add) > 0 {
		err = run.AddTags(ctx, add...)
	}
	if rm := r.PostFormValue("remove"); err == nil && rm != "" {
		err = run.RemoveTags(ctx, rm)
	}
	if err != nil {
		s.fail(w, r, http.StatusBadRequest, err)
		return
	}
	http.Redirect(w, r, "/runs/"+run.Flow+"/"+run.ID, http.StatusSeeOther)
}

// run reads the run the URL names: 400 for a malformed name, 404 for one
// that does not exist.
func (s *Server) run(r *http.Request) (*client.Run, error) {
	ps, err := client.ParsePathspec(r.PathValue("flow") + "/" + r.PathValue("run"))
	if err != nil {
		return nil, &badRequest{err}
	}
	return s.c.Flow(ps.Flow).Run(r.Context(), ps.Run)
}

// task reads the task the URL names, with its run.
func (s *Server) task(r *http.Request) (*client.Run, *client.Task, error) {
	ps, err := client.ParsePathspec(r.PathValue("flow") + "/" + r.PathValue("run") + "/" + r.PathValue("step") + "/" + r.PathValue("task"))
	if err != nil {
		return nil, nil, &badRequest{err}
	}
	run, err := s.c.Flow(ps.Flow).Run(r.Context(), ps.Run)
	if err != nil {
		return nil, nil, err
	}
	t, err := run.Task(r.Context(), ps.Step, ps.Task)
	return run, t, err
}
