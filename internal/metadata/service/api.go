package service

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"stepwise.dev/stepwise/internal/metadata"
	"stepwise.dev/stepwise/internal/names"
)

// Bodies of requests and responses, besides metadata.Run and
// metadata.Task.
type (
	runList struct {
		Runs []*metadata.Run `json:"runs"`
		Next string          `json:"next,omitempty"` // the cursor of the next page; none after the last
	}
	flowList struct {
		Flows []string `json:"flows"`
		Next  string   `json:"next,omitempty"`
	}
	taskList struct {
		Tasks []*metadata.Task `json:"tasks"`
		Next  string           `json:"next,omitempty"`
	}
	finishRunRequest struct {
		Status metadata.Status `json:"status"`
		Ended  time.Time       `json:"ended,omitzero"`
	}
	heartbeatRequest struct {
		At time.Time `json:"at,omitzero"`
	}
	tagsRequest struct {
		Tags []string `json:"tags"`
	}
	startAttemptRequest struct {
		Started time.Time `json:"started,omitzero"`
	}
	finishAttemptRequest struct {
		Status    metadata.Status     `json:"status"`
		Started   time.Time           `json:"started,omitzero"`
		Ended     time.Time           `json:"ended,omitzero"`
		Error     string              `json:"error,omitempty"`
		Artifacts []metadata.Artifact `json:"artifacts,omitempty"`
	}
	cloneTaskRequest struct {
		ClonedFrom string              `json:"cloned_from"`
		Started    time.Time           `json:"started,omitzero"`
		Ended      time.Time           `json:"ended,omitzero"`
		Artifacts  []metadata.Artifact `json:"artifacts,omitempty"`
	}
)

// Paths of the API.
const (
	runsPath = "/v1/flows/{flow}/runs"
	runPath  = runsPath + "/{run}"
	taskPath = runPath + "/steps/{step}/tasks/{task}"
)

var (
	pageQueryParams = []string{"limit", "cursor"}
	filterQuery     = append([]string{"tag", "status", "since", "until"}, pageQueryParams...)
)

// routes are the routes of the API (besides /healthz), described in
// docs/metadata-api.yaml.
func routes() []route {
	r := func(method, path string, query []string, serve func(*handler, *recorder, *http.Request, pathNames) *apiError) route {
		return route{method: method, pattern: strings.Split(strings.TrimPrefix(path, "/"), "/"), query: query, serve: serve}
	}
	return []route{
		r(http.MethodGet, "/v1/flows", pageQueryParams, (*handler).listFlows),
		r(http.MethodGet, "/v1/runs", filterQuery, (*handler).listRuns),
		r(http.MethodGet, runsPath, filterQuery, (*handler).listRuns),
		r(http.MethodPost, runsPath, nil, (*handler).createRun),
		r(http.MethodGet, runPath, nil, (*handler).getRun),
		r(http.MethodPost, runPath+"/finish", nil, (*handler).finishRun),
		r(http.MethodPost, runPath+"/heartbeat", nil, (*handler).heartbeat),
		r(http.MethodPost, runPath+"/tags", nil, (*handler).addTags),
		r(http.MethodDelete, runPath+"/tags", []string{"tag"}, (*handler).removeTags),
		r(http.MethodGet, runPath+"/tasks", pageQueryParams, (*handler).listTasks),
		r(http.MethodGet, taskPath, nil, (*handler).getTask),
		r(http.MethodPost, taskPath+"/clone", nil, (*handler).cloneTask),
		r(http.MethodPost, taskPath+"/attempts/{attempt}/start", nil, (*handler).startAttempt),
		r(http.MethodPost, taskPath+"/attempts/{attempt}/finish", nil, (*handler).finishAttempt),
		r(http.MethodPost, taskPath+"/attempts/{attempt}/heartbeat", nil, (*handler).taskHeartbeat),
		r(http.MethodGet, "/v1/code/{sha256}/url", nil, (*handler).codeURL),
	}
}

// pathNames are a request's path parameters, checked.
type pathNames struct {
	flow, run, step, task string
	sha256                string
	attempt               int
}

// check checks the path parameters a route has.
func (p *params) check() (pathNames, *apiError) {
	n := pathNames{flow: p.get("flow"), run: p.get("run"), step: p.get("step"), task: p.get("task")}
	checks := []struct {
		param string
		rule  func(string) error
	}{
		{"flow", names.Flow},
		{"run", names.RunID},
		{"step", names.Step},
		{"task", names.TaskID},
	}
	for _, c := range checks {
		if slices.Contains(p.names, c.param) {
			if e := checkRule(c.rule(p.get(c.param))); e != nil {
				return n, e
			}
		}
	}
	if slices.Contains(p.names, "sha256") {
		n.sha256 = p.get("sha256")
		if len(n.sha256) != 64 || strings.Trim(n.sha256, "0123456789abcdef") != "" {
			return n, badRequest("bad code hash %q: a binary is named by its SHA-256, 64 lowercase hex digits", n.sha256)
		}
	}
	if slices.Contains(p.names, "attempt") {
		v := p.get("attempt")
		a, err := strconv.ParseInt(v, 10, 32)
		if err != nil || a < 0 || strings.TrimLeft(v, "0123456789") != "" {
			return n, badRequest("bad attempt %q: attempts are numbered 0, 1, 2...", v)
		}
		n.attempt = int(a)
	}
	return n, nil
}

// escapedPath builds a path of the API from its segments.
func escapedPath(segs ...string) string {
	var b strings.Builder
	for _, s := range segs {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(s))
	}
	return b.String()
}

// reply writes v as JSON with status, or the error of the store call
// that produced it.
func (h *handler) reply(w *recorder, r *http.Request, status int, v any, err error) *apiError {
	if err != nil {
		return storeError(r, err)
	}
	h.writeJSON(w, status, v)
	return nil
}

// done answers 204 No Content, or the error of the store call.
func done(w *recorder, r *http.Request, err error) *apiError {
	if err != nil {
		return storeError(r, err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// body decodes a request's JSON body into req and checks it.
func body(r *http.Request, req interface{ check() *apiError }) *apiError {
	if e := decode(r, req); e != nil {
		return e
	}
	return req.check()
}

// Listings read one item more than the page holds, to know whether there
// is a next page.

func (h *handler) listFlows(w *recorder, r *http.Request, _ pathNames) *apiError {
	limit, cur, e := page(r)
	if e != nil {
		return e
	}
	after := ""
	if cur != "" {
		c, e := decodeCursor(cur, "flows")
		if e != nil {
			return e
		}
		after = c.Flow
	}
	flows, err := h.store.ListFlowsAfter(r.Context(), after, limit+1)
	l := flowList{Flows: nonNil(flows)}
	if len(flows) > limit {
		l.Flows = flows[:limit]
		l.Next = flowCursor(flows[limit-1])
	}
	return h.reply(w, r, http.StatusOK, l, err)
}

func (h *handler) listRuns(w *recorder, r *http.Request, n pathNames) *apiError {
	f, e := runFilter(r, n.flow)
	if e != nil {
		return e
	}
	limit, cur, e := page(r)
	if e != nil {
		return e
	}
	if cur != "" {
		c, e := decodeCursor(cur, "runs")
		if e != nil {
			return e
		}
		f.After = metadata.RunKey{Started: timeOf(c.Started), ID: c.ID, Flow: c.Flow}
	}
	f.Limit = limit + 1
	runs, err := h.store.ListRuns(r.Context(), f)
	l := runList{Runs: nonNil(runs)}
	if len(runs) > limit {
		l.Runs = runs[:limit]
		l.Next = runCursor(runs[limit-1].Key())
	}
	return h.reply(w, r, http.StatusOK, l, err)
}

func (h *handler) createRun(w *recorder, r *http.Request, n pathNames) *apiError {
	var run metadata.Run
	if e := decode(r, &run); e != nil {
		return e
	}
	if run.Flow != "" && run.Flow != n.flow {
		return badRequest("the body names flow %q but the path flow %q; leave flow out of the body or make them agree", run.Flow, n.flow)
	}
	run.Flow = n.flow
	if e := checkRun(&run); e != nil {
		return e
	}
	if err := h.store.CreateRun(r.Context(), &run); err != nil {
		return storeError(r, err)
	}
	if got, err := h.store.GetRun(r.Context(), run.Flow, run.ID); err == nil {
		run = *got
	} else {
		h.log.Warn("metadata service: reading back a new run", "flow", run.Flow, "run", run.ID, "error", err)
	}
	w.Header().Set("Location", escapedPath("v1", "flows", run.Flow, "runs", run.ID))
	h.writeJSON(w, http.StatusCreated, &run)
	return nil
}

func (h *handler) getRun(w *recorder, r *http.Request, n pathNames) *apiError {
	run, err := h.store.GetRun(r.Context(), n.flow, n.run)
	return h.reply(w, r, http.StatusOK, run, err)
}

func (h *handler) finishRun(w *recorder, r *http.Request, n pathNames) *apiError {
	var req finishRunRequest
	if e := body(r, &req); e != nil {
		return e
	}
	return done(w, r, h.store.FinishRun(r.Context(), n.flow, n.run, req.Status, req.Ended))
}

func (h *handler) heartbeat(w *recorder, r *http.Request, n pathNames) *apiError {
	var req heartbeatRequest
	if e := body(r, &req); e != nil {
		return e
	}
	return done(w, r, h.store.Heartbeat(r.Context(), n.flow, n.run, req.At))
}

func (h *handler) addTags(w *recorder, r *http.Request, n pathNames) *apiError {
	var req tagsRequest
	if e := body(r, &req); e != nil {
		return e
	}
	return done(w, r, h.store.AddTags(r.Context(), n.flow, n.run, req.Tags))
}

func (h *handler) removeTags(w *recorder, r *http.Request, n pathNames) *apiError {
	tags := r.URL.Query()["tag"]
	if e := checkTagsToRemove(tags); e != nil {
		return e
	}
	return done(w, r, h.store.RemoveTags(r.Context(), n.flow, n.run, tags))
}

func (h *handler) listTasks(w *recorder, r *http.Request, n pathNames) *apiError {
	limit, cur, e := page(r)
	if e != nil {
		return e
	}
	var after metadata.TaskKey
	if cur != "" {
		c, e := decodeCursor(cur, "tasks")
		if e != nil {
			return e
		}
		after = metadata.TaskKey{Started: timeOf(c.Started), Step: c.Step, ID: c.ID}
	}
	tasks, err := h.store.ListTasksAfter(r.Context(), n.flow, n.run, after, limit+1)
	l := taskList{Tasks: nonNil(tasks)}
	if len(tasks) > limit {
		l.Tasks = tasks[:limit]
		l.Next = taskCursor(tasks[limit-1].Key())
	}
	return h.reply(w, r, http.StatusOK, l, err)
}

func (h *handler) getTask(w *recorder, r *http.Request, n pathNames) *apiError {
	t, err := h.store.GetTask(r.Context(), n.flow, n.run, n.step, n.task)
	return h.reply(w, r, http.StatusOK, t, err)
}

func (h *handler) cloneTask(w *recorder, r *http.Request, n pathNames) *apiError {
	var req cloneTaskRequest
	if e := body(r, &req); e != nil {
		return e
	}
	t := &metadata.Task{Flow: n.flow, Run: n.run, Step: n.step, ID: n.task, Status: metadata.Succeeded,
		Started: req.Started, Ended: req.Ended, ClonedFrom: req.ClonedFrom, Artifacts: req.Artifacts}
	if err := h.store.CloneTask(r.Context(), t); err != nil {
		return storeError(r, err)
	}
	if got, err := h.store.GetTask(r.Context(), n.flow, n.run, n.step, n.task); err == nil {
		t = got
	} else {
		h.log.Warn("metadata service: reading back a cloned task", "task", n.flow+"/"+n.run+"/"+n.step+"/"+n.task, "error", err)
	}
	w.Header().Set("Location", escapedPath("v1", "flows", n.flow, "runs", n.run, "steps", n.step, "tasks", n.task))
	h.writeJSON(w, http.StatusCreated, t)
	return nil
}

func (h *handler) startAttempt(w *recorder, r *http.Request, n pathNames) *apiError {
	var req startAttemptRequest
	if e := body(r, &req); e != nil {
		return e
	}
	a := metadata.Attempt{Flow: n.flow, Run: n.run, Step: n.step, Task: n.task, N: n.attempt,
		Status: metadata.Running, Started: req.Started}
	return done(w, r, h.store.StartAttempt(r.Context(), a))
}

func (h *handler) finishAttempt(w *recorder, r *http.Request, n pathNames) *apiError {
	var req finishAttemptRequest
	if e := body(r, &req); e != nil {
		return e
	}
	a := metadata.Attempt{Flow: n.flow, Run: n.run, Step: n.step, Task: n.task, N: n.attempt,
		Status: req.Status, Started: req.Started, Ended: req.Ended, Error: req.Error}
	return done(w, r, h.store.FinishAttempt(r.Context(), a, req.Artifacts))
}

func (h *handler) taskHeartbeat(w *recorder, r *http.Request, n pathNames) *apiError {
	var req heartbeatRequest
	if e := body(r, &req); e != nil {
		return e
	}
	return done(w, r, h.store.TaskHeartbeat(r.Context(), n.flow, n.run, n.step, n.task, n.attempt, req.At))
}

// nonNil makes a nil list an empty one, so that it is [] in JSON.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// Checks of the request bodies.

func (req *finishRunRequest) check() *apiError {
	if e := checkStatus("status", req.Status, true); e != nil {
		return e
	}
	return checkTime("ended", req.Ended)
}

func (req *heartbeatRequest) check() *apiError { return checkTime("at", req.At) }

func (req *tagsRequest) check() *apiError { return checkUserTags(req.Tags) }

func (req *startAttemptRequest) check() *apiError { return checkTime("started", req.Started) }

func (req *finishAttemptRequest) check() *apiError {
	if e := checkStatus("status", req.Status, true); e != nil {
		return e
	}
	if e := checkText("error", req.Error); e != nil {
		return e
	}
	return checkSpan(req.Started, req.Ended, req.Artifacts)
}

func (req *cloneTaskRequest) check() *apiError {
	if req.ClonedFrom == "" {
		return badRequest("no cloned_from given: a cloned task names its origin, e.g. Flow/1764340315123456/step/3")
	}
	if e := checkText("cloned_from", req.ClonedFrom); e != nil {
		return e
	}
	return checkSpan(req.Started, req.Ended, req.Artifacts)
}

// checkSpan checks a task's start and end times and its artifacts.
func checkSpan(started, ended time.Time, arts []metadata.Artifact) *apiError {
	if e := checkTime("started", started); e != nil {
		return e
	}
	if e := checkTime("ended", ended); e != nil {
		return e
	}
	return checkArtifacts(arts)
}

// codeURL answers, as text, a short-lived URL of a flow binary stored in
// the datastore, for the pods of a deployed flow to fetch it with
// (kubernetes.CodeFetch).
func (h *handler) codeURL(w *recorder, r *http.Request, n pathNames) *apiError {
	if h.code == nil {
		return &apiError{status: http.StatusNotFound, code: codeNotFound,
			msg: "this metadata service serves no code: start it with --datastore s3://bucket/prefix (and the S3 credentials in its environment) so that the pods of deployed flows can fetch their binary"}
	}
	u, err := h.code.CodeURL(r.Context(), n.sha256)
	if errors.Is(err, ErrNoCode) {
		return &apiError{status: http.StatusNotFound, code: codeNotFound,
			msg: fmt.Sprintf("no flow binary with SHA-256 %s in the datastore; deploy the flow again to store it", n.sha256)}
	}
	if err != nil {
		return &apiError{status: http.StatusServiceUnavailable, code: codeUnavailable, cause: err, retryAfter: 5,
			msg: "the metadata service cannot reach its datastore to sign a URL for the code; the service log has the details"}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	io.WriteString(w, u)
	return nil
}
