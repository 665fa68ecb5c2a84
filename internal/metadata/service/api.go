package service

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"stepwise.dev/stepwise/internal/metadata"
)

// Bodies of requests and responses, besides metadata.Run and
// metadata.Task.
type (
	runList struct {
		Runs []*metadata.Run `json:"runs"`
	}
	flowList struct {
		Flows []string `json:"flows"`
	}
	taskList struct {
		Tasks []*metadata.Task `json:"tasks"`
	}
	finishRunRequest struct {
		Status metadata.Status `json:"status"`
		Ended  time.Time       `json:"ended,omitzero"`
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

var filterQuery = []string{"tag", "status", "since", "until", "limit"}

// routes are the routes of the API (besides /healthz), described in
// docs/metadata-api.yaml.
func routes() []route {
	r := func(method, path string, query []string, serve func(*handler, *recorder, *http.Request, *params) *apiError) route {
		return route{method: method, pattern: strings.Split(strings.TrimPrefix(path, "/"), "/"), query: query, serve: serve}
	}
	return []route{
		r(http.MethodGet, "/v1/flows", nil, (*handler).listFlows),
		r(http.MethodGet, "/v1/runs", filterQuery, (*handler).listRuns),
		r(http.MethodGet, runsPath, filterQuery, (*handler).listRuns),
		r(http.MethodPost, runsPath, nil, (*handler).createRun),
		r(http.MethodGet, runPath, nil, (*handler).getRun),
		r(http.MethodPost, runPath+"/finish", nil, (*handler).finishRun),
		r(http.MethodPost, runPath+"/tags", nil, (*handler).addTags),
		r(http.MethodDelete, runPath+"/tags", []string{"tag"}, (*handler).removeTags),
		r(http.MethodGet, runPath+"/tasks", nil, (*handler).listTasks),
		r(http.MethodGet, taskPath, nil, (*handler).getTask),
		r(http.MethodPost, taskPath+"/clone", nil, (*handler).cloneTask),
		r(http.MethodPost, taskPath+"/attempts/{attempt}/start", nil, (*handler).startAttempt),
		r(http.MethodPost, taskPath+"/attempts/{attempt}/finish", nil, (*handler).finishAttempt),
	}
}

// names are a request's path parameters, checked.
type names struct {
	flow, run, step, task string
	attempt               int
}

// check checks the path parameters a route has.
func (p *params) check() (names, *apiError) {
	n := names{flow: p.get("flow"), run: p.get("run"), step: p.get("step"), task: p.get("task")}
	if e := checkName("flow name", n.flow); e != nil {
		return n, e
	}
	if slices.Contains(p.names, "run") {
		if e := checkID("run id", n.run); e != nil {
			return n, e
		}
	}
	if slices.Contains(p.names, "step") {
		if e := checkName("step name", n.step); e != nil {
			return n, e
		}
		if e := checkID("task id", n.task); e != nil {
			return n, e
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

func (h *handler) listFlows(w *recorder, r *http.Request, _ *params) *apiError {
	flows, err := h.store.ListFlows(r.Context())
	if err != nil {
		return storeError(r, err)
	}
	if flows == nil {
		flows = []string{}
	}
	h.writeJSON(w, http.StatusOK, flowList{Flows: flows})
	return nil
}

func (h *handler) listRuns(w *recorder, r *http.Request, p *params) *apiError {
	flow := ""
	if slices.Contains(p.names, "flow") {
		n, e := p.check()
		if e != nil {
			return e
		}
		flow = n.flow
	}
	f, e := runFilter(r, flow)
	if e != nil {
		return e
	}
	runs, err := h.store.ListRuns(r.Context(), f)
	if err != nil {
		return storeError(r, err)
	}
	if runs == nil {
		runs = []*metadata.Run{}
	}
	h.writeJSON(w, http.StatusOK, runList{Runs: runs})
	return nil
}

func (h *handler) createRun(w *recorder, r *http.Request, p *params) *apiError {
	n, e := p.check()
	if e != nil {
		return e
	}
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

func (h *handler) getRun(w *recorder, r *http.Request, p *params) *apiError {
	n, e := p.check()
	if e != nil {
		return e
	}
	run, err := h.store.GetRun(r.Context(), n.flow, n.run)
	if err != nil {
		return storeError(r, err)
	}
	h.writeJSON(w, http.StatusOK, run)
	return nil
}

func (h *handler) finishRun(w *recorder, r *http.Request, p *params) *apiError {
	n, e := p.check()
	if e != nil {
		return e
	}
	var req finishRunRequest
	if e := decode(r, &req); e != nil {
		return e
	}
	if e := checkStatus("status", req.Status, true); e != nil {
		return e
	}
	if e := checkTime("ended", req.Ended); e != nil {
		return e
	}
	if err := h.store.FinishRun(r.Context(), n.flow, n.run, req.Status, req.Ended); err != nil {
		return storeError(r, err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *handler) addTags(w *recorder, r *http.Request, p *params) *apiError {
	n, e := p.check()
	if e != nil {
		return e
	}
	var req tagsRequest
	if e := decode(r, &req); e != nil {
		return e
	}
	if e := checkTags(req.Tags); e != nil {
		return e
	}
	if err := h.store.AddTags(r.Context(), n.flow, n.run, req.Tags); err != nil {
		return storeError(r, err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *handler) removeTags(w *recorder, r *http.Request, p *params) *apiError {
	n, e := p.check()
	if e != nil {
		return e
	}
	tags := r.URL.Query()["tag"]
	if e := checkTags(tags); e != nil {
		return e
	}
	if err := h.store.RemoveTags(r.Context(), n.flow, n.run, tags); err != nil {
		return storeError(r, err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *handler) listTasks(w *recorder, r *http.Request, p *params) *apiError {
	n, e := p.check()
	if e != nil {
		return e
	}
	tasks, err := h.store.ListTasks(r.Context(), n.flow, n.run)
	if err != nil {
		return storeError(r, err)
	}
	if tasks == nil {
		tasks = []*metadata.Task{}
	}
	h.writeJSON(w, http.StatusOK, taskList{Tasks: tasks})
	return nil
}

func (h *handler) getTask(w *recorder, r *http.Request, p *params) *apiError {
	n, e := p.check()
	if e != nil {
		return e
	}
	t, err := h.store.GetTask(r.Context(), n.flow, n.run, n.step, n.task)
	if err != nil {
		return storeError(r, err)
	}
	h.writeJSON(w, http.StatusOK, t)
	return nil
}

func (h *handler) cloneTask(w *recorder, r *http.Request, p *params) *apiError {
	n, e := p.check()
	if e != nil {
		return e
	}
	var req cloneTaskRequest
	if e := decode(r, &req); e != nil {
		return e
	}
	if req.ClonedFrom == "" {
		return badRequest("no cloned_from given: a cloned task names its origin, e.g. Flow/1764340315123456/step/3")
	}
	if e := checkText("cloned_from", req.ClonedFrom); e != nil {
		return e
	}
	if e := checkTime("started", req.Started); e != nil {
		return e
	}
	if e := checkTime("ended", req.Ended); e != nil {
		return e
	}
	if e := checkArtifacts(req.Artifacts); e != nil {
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

func (h *handler) startAttempt(w *recorder, r *http.Request, p *params) *apiError {
	n, e := p.check()
	if e != nil {
		return e
	}
	var req startAttemptRequest
	if e := decode(r, &req); e != nil {
		return e
	}
	if e := checkTime("started", req.Started); e != nil {
		return e
	}
	a := metadata.Attempt{Flow: n.flow, Run: n.run, Step: n.step, Task: n.task, N: n.attempt,
		Status: metadata.Running, Started: req.Started}
	if err := h.store.StartAttempt(r.Context(), a); err != nil {
		return storeError(r, err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *handler) finishAttempt(w *recorder, r *http.Request, p *params) *apiError {
	n, e := p.check()
	if e != nil {
		return e
	}
	var req finishAttemptRequest
	if e := decode(r, &req); e != nil {
		return e
	}
	if e := checkStatus("status", req.Status, true); e != nil {
		return e
	}
	if e := checkText("error", req.Error); e != nil {
		return e
	}
	if e := checkTime("started", req.Started); e != nil {
		return e
	}
	if e := checkTime("ended", req.Ended); e != nil {
		return e
	}
	if e := checkArtifacts(req.Artifacts); e != nil {
		return e
	}
	a := metadata.Attempt{Flow: n.flow, Run: n.run, Step: n.step, Task: n.task, N: n.attempt,
		Status: req.Status, Started: req.Started, Ended: req.Ended, Error: req.Error}
	if err := h.store.FinishAttempt(r.Context(), a, req.Artifacts); err != nil {
		return storeError(r, err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
