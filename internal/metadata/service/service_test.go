package service

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"stepwise.dev/stepwise/internal/metadata"
	"stepwise.dev/stepwise/internal/metadata/metadatatest"
	"stepwise.dev/stepwise/internal/metadata/postgres"
	"stepwise.dev/stepwise/internal/names"
	"stepwise.dev/stepwise/internal/testservers"
)

const testToken = "s3cret-token"

// syncBuffer is a log that handlers write concurrently.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// openStore opens a PostgreSQL store in a new database, closed when the
// test ends.
func openStore(t testing.TB) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), testservers.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// stack is a client, a service and its PostgreSQL store.
type stack struct {
	store  metadata.Store
	srv    *httptest.Server
	client *Client
	log    *syncBuffer
}

// newStack serves store (a new PostgreSQL store if nil) with opts (and
// testToken when opts has no tokens), and makes a client of it.
func newStack(t testing.TB, store metadata.Store, opts Options) *stack {
	t.Helper()
	if store == nil {
		store = openStore(t)
	}
	if opts.Tokens == nil {
		opts.Tokens = []string{testToken}
	}
	log := &syncBuffer{}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	srv := httptest.NewServer(NewHandler(store, opts))
	t.Cleanup(srv.Close)
	token := ""
	if len(opts.Tokens) > 0 {
		token = opts.Tokens[0]
	}
	c, err := NewClient(srv.URL, token, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &stack{store: store, srv: srv, client: c, log: log}
}

// response is what a raw request got.
type response struct {
	status int
	header http.Header
	body   []byte
	err    errorBody
}

// request sends a raw request to the service, with the test token unless
// auth says otherwise ("-" for no Authorization header).
func (s *stack) request(t testing.TB, method, path, body string, auth ...string) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, s.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/json")
	}
	switch {
	case len(auth) == 0:
		req.Header.Set("Authorization", "Bearer "+testToken)
	case auth[0] != "-":
		req.Header.Set("Authorization", auth[0])
	}
	resp, err := s.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := response{status: resp.StatusCode, header: resp.Header, body: b}
	if resp.StatusCode >= 400 {
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s %s: error response of type %q, want application/json", method, path, ct)
		}
		if err := json.Unmarshal(b, &r.err); err != nil || r.err.Error == "" || r.err.Code == "" {
			t.Errorf("%s %s: error body %q is not a JSON error: %v", method, path, b, err)
		}
	}
	return r
}

func TestConformance(t *testing.T) {
	metadatatest.Run(t, func(t *testing.T) metadata.Store {
		return newStack(t, nil, Options{}).client
	})
}

func TestHealthz(t *testing.T) {
	s := newStack(t, nil, Options{})
	r := s.request(t, "GET", "/healthz", "", "-")
	if r.status != http.StatusOK || !strings.Contains(string(r.body), `"ok"`) {
		t.Errorf("GET /healthz without a token: %d %s", r.status, r.body)
	}
	if r := s.request(t, "POST", "/healthz", "", "-"); r.status != http.StatusMethodNotAllowed {
		t.Errorf("POST /healthz: %d %s", r.status, r.body)
	}
	// A store that fails makes the service unhealthy.
	s.store.Close()
	if r := s.request(t, "GET", "/healthz", "", "-"); r.status != http.StatusServiceUnavailable || r.err.Code != codeUnavailable {
		t.Errorf("GET /healthz with the store closed: %d %s", r.status, r.body)
	}
}

func TestAuth(t *testing.T) {
	s := newStack(t, nil, Options{Tokens: []string{"first-token", testToken, ""}})
	body := `{"id": "1", "user": "ann"}`
	for _, c := range []struct {
		name, auth string
		want       int
	}{
		{"no header", "-", http.StatusUnauthorized},
		{"wrong scheme", "Basic " + testToken, http.StatusUnauthorized},
		{"no token", "Bearer", http.StatusUnauthorized},
		{"blank token", "Bearer  ", http.StatusUnauthorized},
		{"wrong token", "Bearer nope", http.StatusUnauthorized},
		{"prefix of a token", "Bearer " + testToken[:5], http.StatusUnauthorized},
		{"token with more", "Bearer " + testToken + "x", http.StatusUnauthorized},
		{"right token, lower-case scheme", "bearer " + testToken, http.StatusCreated},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := s.request(t, "POST", "/v1/flows/Auth/runs", body, c.auth)
			if r.status != c.want {
				t.Fatalf("status %d (%s), want %d", r.status, r.body, c.want)
			}
			_, err := s.store.GetRun(t.Context(), "Auth", "1")
			if c.want == http.StatusUnauthorized {
				if r.err.Code != codeUnauthorized || !strings.Contains(r.err.Error, "token") {
					t.Errorf("error %+v", r.err)
				}
				if h := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(h, "Bearer") {
					t.Errorf("WWW-Authenticate: %q", h)
				}
				if !errors.Is(err, metadata.ErrNotFound) {
					t.Errorf("the run was recorded without a token: GetRun: %v", err)
				}
			} else if err != nil {
				t.Errorf("the run was not recorded: %v", err)
			}
		})
	}
	// The other token works too; unknown routes need a token.
	if r := s.request(t, "GET", "/v1/flows", "", "Bearer first-token"); r.status != http.StatusOK {
		t.Errorf("GET /v1/flows with the first token: %d %s", r.status, r.body)
	}
	if r := s.request(t, "GET", "/nope", "", "-"); r.status != http.StatusUnauthorized {
		t.Errorf("GET /nope without a token: %d %s", r.status, r.body)
	}
	if !strings.Contains(s.log.String(), "level=WARN") {
		t.Errorf("refused tokens were not logged as warnings:\n%s", s.log)
	}
	// A service with only empty tokens refuses everything.
	s = newStack(t, nil, Options{Tokens: []string{""}})
	if r := s.request(t, "GET", "/v1/flows", "", "Bearer "); r.status != http.StatusUnauthorized {
		t.Errorf("GET /v1/flows from a service with an empty token: %d %s", r.status, r.body)
	}
	// A service without tokens needs none.
	s = newStack(t, nil, Options{Tokens: []string{}})
	if r := s.request(t, "GET", "/v1/flows", "", "-"); r.status != http.StatusOK {
		t.Errorf("GET /v1/flows from a service without tokens: %d %s", r.status, r.body)
	}
}

func TestBadInput(t *testing.T) {
	s := newStack(t, nil, Options{})
	ctx := t.Context()
	if err := s.client.CreateRun(ctx, &metadata.Run{Flow: "F", ID: "1", SystemTags: []string{"user:ann"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.client.CloneTask(ctx, &metadata.Task{Flow: "F", Run: "1", Step: "s", ID: "1", ClonedFrom: "F/0/s/1"}); err != nil {
		t.Fatal(err)
	}
	if err := s.client.StartAttempt(ctx, metadata.Attempt{Flow: "F", Run: "1", Step: "w", Task: "2"}); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("x", maxName+1)
	huge := `{"id": "9", "user": "` + strings.Repeat("x", DefaultMaxBody) + `"}`
	manyTags := "?tag=" + strings.Repeat("a&tag=", maxFilterTags) + "a"
	const (
		runs  = "/v1/flows/F/runs"
		run   = runs + "/1"
		task  = run + "/steps/w/tasks/2"
		clone = run + "/steps/s/tasks/1"
	)
	tests := []struct {
		name, method, path, body string
		status                   int
		code, says               string
	}{
		{"malformed JSON", "POST", runs, `{"id": "5",`, 400, codeBadRequest, "malformed JSON"},
		{"bad JSON token", "POST", runs, `{"id": 5x}`, 400, codeBadRequest, "malformed JSON"},
		{"unknown field", "POST", runs, `{"id": "5", "bogus": 1}`, 400, codeBadRequest, `unknown field "bogus"`},
		{"unknown nested field", "POST", runs, `{"id": "5", "code": {"svn": "1"}}`, 400, codeBadRequest, `unknown field "svn"`},
		{"trailing garbage", "POST", runs, `{"id": "5"} x`, 400, codeBadRequest, "after its JSON object"},
		{"two objects", "POST", runs, `{"id": "5"}{"id": "6"}`, 400, codeBadRequest, "after its JSON object"},
		{"not an object", "POST", runs, `["5"]`, 400, codeBadRequest, "JSON object"},
		{"wrong type", "POST", runs, `{"id": 5}`, 400, codeBadRequest, "id is a JSON number, but it must be a string"},
		{"oversized body", "POST", runs, huge, 413, codeTooLarge, "larger than the limit"},
		{"bad run id in path", "GET", runs + "/abc", "", 400, codeBadRequest, `run id "abc" has the character 'a'`},
		{"bad run id in body", "POST", runs, `{"id": "abc"}`, 400, codeBadRequest, `run id "abc" has the character 'a'`},
		{"run id of 20 digits", "POST", runs, `{"id": "10000000000000000000"}`, 400, codeBadRequest, "20 characters long, more than 19"},
		{"run id of 256 digits", "POST", runs, `{"id": "` + strings.Repeat("9", 256) + `"}`, 400, codeBadRequest, "256 characters long, more than 19"},
		{"run id with a leading zero", "POST", runs, `{"id": "01"}`, 400, codeBadRequest, `run id "01"`},
		{"flow name of a space", "POST", "/v1/flows/%20/runs", `{"id": "5"}`, 400, codeBadRequest, `flow name " " has a space`},
		{"flow name with SQL", "POST", "/v1/flows/" + url.PathEscape("; DROP TABLE runs;--") + "/runs", `{"id": "5"}`, 400, codeBadRequest, `flow name "; DROP TABLE runs;--" has the character ';'`},
		{"flow name with a bidi override", "POST", "/v1/flows/F%E2%80%AE/runs", `{"id": "5"}`, 400, codeBadRequest, `flow name "F\u202e" has the invisible formatting character U+202E`},
		{"user name with a space", "POST", runs, `{"id": "5", "user": "ann lee"}`, 400, codeBadRequest, `user name "ann lee" has a space`},
		{"user tag with a system prefix", "POST", runs, `{"id": "5", "tags": ["user:bob"]}`, 400, codeBadRequest, names.UserTag("user:bob").Error()},
		{"system tag without a prefix", "POST", runs, `{"id": "5", "system_tags": ["golden"]}`, 400, codeBadRequest, "does not start with a system prefix"},
		{"add tag user:bob", "POST", run + "/tags", `{"tags": ["user:bob"]}`, 400, codeBadRequest, names.UserTag("user:bob").Error()},
		{"add tag production:x", "POST", run + "/tags", `{"tags": ["production:x"]}`, 400, codeBadRequest, names.UserTag("production:x").Error()},
		{"add a 5,000-character tag", "POST", run + "/tags", `{"tags": ["` + strings.Repeat("x", 5000) + `"]}`, 400, codeBadRequest, "5000 bytes long, more than 256"},
		{"add a tag with a bidi override", "POST", run + "/tags", `{"tags": ["ok\u202egnp"]}`, 400, codeBadRequest, "U+202E"},
		{"step name in CamelCase", "POST", run + "/steps/Fit/tasks/0/attempts/0/start", ``, 400, codeBadRequest, `step name "Fit"`},
		{"task id with a leading zero", "POST", run + "/steps/fit/tasks/01/attempts/0/start", ``, 400, codeBadRequest, `task id "01"`},
		{"no run id", "POST", runs, `{}`, 400, codeBadRequest, "no run id"},
		{"empty body", "POST", runs, ``, 400, codeBadRequest, "no run id"},
		{"flow mismatch", "POST", runs, `{"flow": "G", "id": "5"}`, 400, codeBadRequest, "agree"},
		{"empty flow name", "GET", "/v1/flows//runs", "", 400, codeBadRequest, `flow name "" is empty`},
		{"too long flow name", "GET", "/v1/flows/" + long + "/runs", "", 400, codeBadRequest, "more than 128"},
		{"slash in flow name", "GET", "/v1/flows/a%2Fb/runs", "", 400, codeBadRequest, "the character '/'"},
		{"dot-dot flow name", "GET", "/v1/flows/%2E%2E/runs", "", 400, codeBadRequest, `flow name ".."`},
		{"control character in step", "GET", run + "/steps/a%0Ab/tasks/1", "", 400, codeBadRequest, "control"},
		{"bad task id", "GET", run + "/steps/w/tasks/x", "", 400, codeBadRequest, `task id "x"`},
		{"unknown run", "GET", runs + "/999", "", 404, codeNotFound, "run F/999 does not exist"},
		{"unknown flow", "GET", "/v1/flows/G/runs/1", "", 404, codeNotFound, "G/1"},
		{"unknown task", "GET", run + "/steps/w/tasks/3", "", 404, codeNotFound, "F/1/w/3"},
		{"tasks of an unknown run", "GET", runs + "/2/tasks", "", 404, codeNotFound, "F/2"},
		{"finish an unknown run", "POST", runs + "/2/finish", `{"status": "failed"}`, 404, codeNotFound, "F/2"},
		{"bad status", "POST", run + "/finish", `{"status": "done"}`, 400, codeBadRequest, `bad status "done"`},
		{"heartbeat of an unknown run", "POST", runs + "/2/heartbeat", ``, 404, codeNotFound, "F/2"},
		{"heartbeat out of range", "POST", run + "/heartbeat", `{"at": "3000-01-01T00:00:00Z"}`, 400, codeBadRequest, "between the years"},
		{"task heartbeat of an attempt never started", "POST", task + "/attempts/1/heartbeat", ``, 404, codeNotFound, "F/1/w/2 has no attempt 1"},
		{"task heartbeat of an unknown task", "POST", run + "/steps/w/tasks/9/attempts/0/heartbeat", ``, 404, codeNotFound, "F/1/w/9"},
		{"task heartbeat out of range", "POST", task + "/attempts/0/heartbeat", `{"at": "3000-01-01T00:00:00Z"}`, 400, codeBadRequest, "between the years"},
		{"heartbeat with an unknown field", "POST", run + "/heartbeat", `{"when": "now"}`, 400, codeBadRequest, `unknown field "when"`},
		{"finish as running", "POST", run + "/finish", `{"status": "running"}`, 400, codeBadRequest, `bad status "running"`},
		{"bad time", "POST", run + "/finish", `{"status": "failed", "ended": "yesterday"}`, 400, codeBadRequest, "bad JSON"},
		{"time out of range", "POST", runs, `{"id": "5", "started": "3000-01-01T00:00:00Z"}`, 400, codeBadRequest, "between the years"},
		{"NUL in text", "POST", runs, `{"id": "5", "origin": "a\u0000b"}`, 400, codeBadRequest, "NUL"},
		{"NUL in param", "POST", runs, `{"id": "5", "params": {"a\u0000": "1"}}`, 400, codeBadRequest, "NUL"},
		{"bad status in body", "POST", runs, `{"id": "5", "status": "done"}`, 400, codeBadRequest, `bad status "done"`},
		{"bad status filter", "GET", runs + "?status=done", "", 400, codeBadRequest, `bad status "done"`},
		{"negative limit", "GET", runs + "?limit=-1", "", 400, codeBadRequest, `bad limit "-1"`},
		{"bad limit", "GET", "/v1/runs?limit=ten", "", 400, codeBadRequest, `bad limit "ten"`},
		{"limit twice", "GET", runs + "?limit=1&limit=2", "", 400, codeBadRequest, "give it once"},
		{"empty limit", "GET", runs + "?limit=", "", 400, codeBadRequest, `bad limit ""`},
		{"bad cursor", "GET", runs + "?cursor=zz", "", 400, codeBadRequest, "bad cursor"},
		{"empty cursor", "GET", "/v1/flows?cursor=", "", 400, codeBadRequest, "cursor is empty"},
		{"cursor of another listing", "GET", run + "/tasks?cursor=" + flowCursor("F"), "", 400, codeBadRequest, "a cursor of a listing of flows, not of tasks"},
		{"cursor with a bad name", "GET", "/v1/flows?cursor=" + flowCursor(" "), "", 400, codeBadRequest, `flow name " "`},
		{"cursor twice", "GET", "/v1/flows?cursor=a&cursor=b", "", 400, codeBadRequest, "give it once"},
		{"bad since", "GET", runs + "?since=yesterday", "", 400, codeBadRequest, `bad since "yesterday"`},
		{"bad until", "GET", runs + "?until=2025", "", 400, codeBadRequest, `bad until "2025"`},
		{"empty tag filter", "GET", runs + "?tag=", "", 400, codeBadRequest, `tag "" is empty`},
		{"too many tag filters", "GET", runs + manyTags, "", 400, codeBadRequest, "at most 64"},
		{"unknown query parameter", "GET", runs + "?tags=x", "", 400, codeBadRequest, `unknown query parameter "tags"`},
		{"query on a route without", "GET", run + "?x=1", "", 400, codeBadRequest, "takes none"},
		{"bad query", "GET", runs + "?tag=%zz", "", 400, codeBadRequest, "bad query"},
		{"wrong method", "PUT", "/v1/flows", "", 405, codeMethodNotAllowed, "PUT is not allowed"},
		{"wrong method on a run", "DELETE", run, "", 405, codeMethodNotAllowed, "use GET"},
		{"unknown route", "GET", "/v2/flows", "", 404, codeNoRoute, "no route"},
		{"trailing slash", "GET", "/v1/flows/", "", 404, codeNoRoute, "no route"},
		{"duplicate run", "POST", runs, `{"id": "1"}`, 409, codeExists, "F/1 already exists"},
		{"empty tag", "POST", run + "/tags", `{"tags": ["ok", ""]}`, 400, codeBadRequest, `tag "" is empty`},
		{"empty tag to remove", "DELETE", run + "/tags?tag=", "", 400, codeBadRequest, "empty tag to remove"},
		{"control character in tag", "POST", run + "/tags", `{"tags": ["a\tb"]}`, 400, codeBadRequest, "control"},
		{"tags not a list", "POST", run + "/tags", `{"tags": "x"}`, 400, codeBadRequest, "tags is a JSON string, but it must be a array"},
		{"remove a system tag", "DELETE", run + "/tags?tag=x&tag=user:ann", "", 409, codeConflict, "system tags cannot be removed"},
		{"bad attempt", "POST", task + "/attempts/x/start", "", 400, codeBadRequest, `bad attempt "x"`},
		{"negative attempt", "POST", task + "/attempts/-1/start", "", 400, codeBadRequest, "bad attempt"},
		{"signed attempt", "POST", task + "/attempts/+1/start", "", 400, codeBadRequest, "bad attempt"},
		{"huge attempt", "POST", task + "/attempts/99999999999/start", "", 400, codeBadRequest, "bad attempt"},
		{"attempt started twice", "POST", task + "/attempts/0/start", `{}`, 409, codeExists, "already started"},
		{"attempt on a clone", "POST", clone + "/attempts/0/start", `{}`, 409, codeConflict, "cloned"},
		{"finish with a bad status", "POST", task + "/attempts/0/finish", `{"status": "running"}`, 400, codeBadRequest, "bad status"},
		{"unnamed artifact", "POST", task + "/attempts/0/finish", `{"status": "succeeded", "artifacts": [{"key": "k"}]}`, 400, codeBadRequest, "artifacts[0].name"},
		{"artifact named twice", "POST", task + "/attempts/0/finish", `{"status": "succeeded", "artifacts": [{"name": "a"}, {"name": "a"}]}`, 400, codeBadRequest, "two artifacts"},
		{"negative artifact size", "POST", task + "/attempts/0/finish", `{"status": "succeeded", "artifacts": [{"name": "a", "size": -1}]}`, 400, codeBadRequest, "negative"},
		{"fractional artifact size", "POST", task + "/attempts/0/finish", `{"status": "succeeded", "artifacts": [{"name": "a", "size": 1.5}]}`, 400, codeBadRequest, "must be a number"},
		{"unknown artifact field", "POST", task + "/attempts/0/finish", `{"status": "succeeded", "artifacts": [{"name": "a", "sha": "x"}]}`, 400, codeBadRequest, `unknown field "sha"`},
		{"clone without origin", "POST", run + "/steps/s/tasks/5/clone", `{}`, 400, codeBadRequest, "cloned_from"},
		{"clone onto a task", "POST", clone + "/clone", `{"cloned_from": "F/0/s/2"}`, 409, codeExists, "already exists"},
		{"the same clone again", "POST", clone + "/clone", `{"cloned_from": "F/0/s/1"}`, 201, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := s.request(t, tc.method, tc.path, tc.body)
			if r.status != tc.status || r.err.Code != tc.code || !strings.Contains(r.err.Error, tc.says) {
				t.Errorf("%s %s %.60q: %d %s, want %d %s saying %q", tc.method, tc.path, tc.body, r.status, r.body, tc.status, tc.code, tc.says)
			}
			if tc.status == 405 && !strings.Contains(r.header.Get("Allow"), "GET") {
				t.Errorf("Allow: %q", r.header.Get("Allow"))
			}
		})
	}
	// None of that was recorded.
	runs_, err := s.store.ListRuns(ctx, metadata.RunFilter{})
	if err != nil || len(runs_) != 1 {
		t.Errorf("runs after bad requests: %d, %v; want 1", len(runs_), err)
	}
	r, err := s.store.GetRun(ctx, "F", "1")
	if err != nil || r.Status != metadata.Running || len(r.Tags) != 0 || !slices.Equal(r.SystemTags, []string{"user:ann"}) {
		t.Errorf("run F/1 after bad requests: %+v, %v", r, err)
	}
	k, err := s.store.GetTask(ctx, "F", "1", "w", "2")
	if err != nil || k.Status != metadata.Running || len(k.Attempts) != 1 {
		t.Errorf("task F/1/w/2 after bad requests: %+v, %v", k, err)
	}
	if strings.Contains(s.log.String(), "level=ERROR") {
		t.Errorf("bad requests were logged as errors:\n%s", s.log)
	}
}

// TestRoundTrip checks what the routes answer to good requests.
func TestRoundTrip(t *testing.T) {
	s := newStack(t, nil, Options{})
	r := s.request(t, "POST", "/v1/flows/F/runs", `{"id": "1", "user": "ann", "system_tags": ["user:ann"], "tags": ["b", "a", "b"], "params": {"x": "1"}}`)
	if r.status != http.StatusCreated || r.header.Get("Location") != "/v1/flows/F/runs/1" {
		t.Fatalf("create: %d %v %s", r.status, r.header, r.body)
	}
	var run metadata.Run
	if err := json.Unmarshal(r.body, &run); err != nil {
		t.Fatal(err)
	}
	if run.Status != metadata.Running || run.Started.IsZero() || !slices.Equal(run.Tags, []string{"a", "b"}) || run.Params["x"] != "1" {
		t.Errorf("created run: %+v", run)
	}
	for _, c := range []struct {
		method, path, body string
		status             int
		has                string
	}{
		{"GET", "/v1/flows", "", 200, `{"flows":["F"]}`},
		{"HEAD", "/v1/flows", "", 200, ""},
		{"GET", "/v1/runs?tag=a&tag=user:ann&status=running&since=2000-01-01T00:00:00Z&limit=5", "", 200, `"id":"1"`},
		{"GET", "/v1/flows/F/runs?until=2000-01-01T00:00:00.5%2B01:00", "", 200, `{"runs":[]}`},
		{"POST", "/v1/flows/F/runs/1/tags", `{"tags": ["c"]}`, 204, ""},
		{"DELETE", "/v1/flows/F/runs/1/tags?tag=a", "", 204, ""},
		{"GET", "/v1/flows/F/runs/1", "", 200, `"tags":["b","c"]`},
		{"POST", "/v1/flows/F/runs/1/steps/start/tasks/1/attempts/0/start", "", 204, ""},
		{"POST", "/v1/flows/F/runs/1/steps/start/tasks/1/attempts/0/heartbeat", `{"at": "2030-01-01T00:00:00Z"}`, 204, ""},
		{"GET", "/v1/flows/F/runs/1", "", 200, `"heartbeat":"2030-01-01T00:00:00Z"`},
		{"POST", "/v1/flows/F/runs/1/steps/start/tasks/1/attempts/0/finish", `{"status": "succeeded", "artifacts": [{"name": "x", "type": "int", "key": "k", "size": 8}]}`, 204, ""},
		{"POST", "/v1/flows/F/runs/1/steps/end/tasks/2/clone", `{"cloned_from": "F/0/end/2"}`, 201, `"cloned_from":"F/0/end/2"`},
		{"GET", "/v1/flows/F/runs/1/steps/start/tasks/1", "", 200, `"artifacts":[{"name":"x","type":"int","key":"k","size":8}]`},
		{"GET", "/v1/flows/F/runs/1/tasks", "", 200, `"id":"2"`},
		{"POST", "/v1/flows/F/runs/1/finish", `{"status": "succeeded"}`, 204, ""},
		{"GET", "/v1/flows/F/runs/1", "", 200, `"status":"succeeded"`},
	} {
		r := s.request(t, c.method, c.path, c.body)
		if r.status != c.status || !strings.Contains(string(r.body), c.has) {
			t.Errorf("%s %s: %d %s, want %d with %s", c.method, c.path, r.status, r.body, c.status, c.has)
		}
	}
}

// TestClientErrors checks that the client's errors match the sentinel
// errors and carry the service's message and the URL.
func TestClientErrors(t *testing.T) {
	s := newStack(t, nil, Options{})
	ctx := t.Context()
	c := s.client
	if err := c.CreateRun(ctx, &metadata.Run{Flow: "F", ID: "1", SystemTags: []string{"user:ann"}}); err != nil {
		t.Fatal(err)
	}
	_, err := c.GetRun(ctx, "F", "2")
	if !errors.Is(err, metadata.ErrNotFound) || errors.Is(err, metadata.ErrExists) ||
		!strings.Contains(err.Error(), "run F/2 does not exist") || !strings.Contains(err.Error(), s.srv.URL+"/v1/flows/F/runs/2") {
		t.Errorf("GetRun of a missing run: %v", err)
	}
	err = c.CreateRun(ctx, &metadata.Run{Flow: "F", ID: "1"})
	if !errors.Is(err, metadata.ErrExists) || !strings.HasPrefix(err.Error(), "metadata: run F/1 already exists") {
		t.Errorf("CreateRun of a taken id: %v", err)
	}
	err = c.RemoveTags(ctx, "F", "1", []string{"user:ann"})
	var conf interface{ Conflict() bool }
	if err == nil || errors.Is(err, metadata.ErrExists) || !errors.As(err, &conf) || !conf.Conflict() {
		t.Errorf("RemoveTags of a system tag: %v", err)
	}
	err = c.CreateRun(ctx, &metadata.Run{Flow: "F", ID: "x"})
	var se *Error
	if !errors.As(err, &se) || se.StatusCode != 400 || !se.Invalid() || !strings.Contains(err.Error(), `run id "x"`) ||
		!strings.Contains(err.Error(), "POST "+s.srv.URL+"/v1/flows/F/runs") || errors.Is(err, metadata.ErrNotFound) {
		t.Errorf("CreateRun with a bad id: %v", err)
	}
	// A 404 that is not the store's is not ErrNotFound.
	other, err := NewClient(s.srv.URL+"/prefix", testToken, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = other.GetRun(ctx, "F", "1")
	if err == nil || errors.Is(err, metadata.ErrNotFound) || !strings.Contains(err.Error(), "no route") {
		t.Errorf("GetRun at a wrong URL: %v", err)
	}
	// Nor is a 404 from a server that is not the service.
	plain := httptest.NewServer(http.NotFoundHandler())
	defer plain.Close()
	pc, err := NewClient(plain.URL, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = pc.GetRun(ctx, "F", "1")
	if err == nil || errors.Is(err, metadata.ErrNotFound) || !strings.Contains(err.Error(), "check the metadata service URL") {
		t.Errorf("GetRun from a server that is not the service: %v", err)
	}
	// A wrong token.
	bad, err := NewClient(s.srv.URL, "wrong", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bad.ListFlows(ctx); err == nil || !strings.Contains(err.Error(), "401") || !strings.Contains(err.Error(), "token") {
		t.Errorf("ListFlows with a wrong token: %v", err)
	}
}

func TestNewClient(t *testing.T) {
	for _, u := range []string{"", "localhost:8080", "ftp://x", "http://", "http://h/?q=1", "http://u:p@h/", "http://h/#f", "://"} {
		if _, err := NewClient(u, "", nil); err == nil || !strings.HasPrefix(err.Error(), "metadata: ") {
			t.Errorf("NewClient(%q): %v", u, err)
		}
	}
	if _, err := NewClient("http://h", "two words", nil); err == nil {
		t.Error("NewClient with a token holding a space: no error")
	}
	c, err := NewClient("https://h:8443/prefix/", " tok\n", nil)
	if err != nil || c.base != "https://h:8443/prefix" || c.token != "tok" {
		t.Errorf("NewClient: %+v, %v", c, err)
	}
}

// TestCrossSite checks that a web page cannot write through a browser: a
// write must declare its body as JSON, which a browser does not send to
// another site without the service's consent, and a cross-origin write
// that a browser marks as such is refused.
func TestCrossSite(t *testing.T) {
	s := newStack(t, nil, Options{Tokens: []string{}}) // the worst case: no tokens
	send := func(method, path, body string, header map[string]string) response {
		t.Helper()
		req, err := http.NewRequest(method, s.srv.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := s.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		r := response{status: resp.StatusCode, header: resp.Header, body: b}
		json.Unmarshal(b, &r.err)
		return r
	}
	const create = "/v1/flows/F/runs"
	for _, c := range []struct {
		name   string
		header map[string]string
		status int
		code   string
	}{
		{"form, as an HTML form posts", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, 415, codeMediaType},
		{"text/plain, as fetch posts without asking", map[string]string{"Content-Type": "text/plain;charset=UTF-8"}, 415, codeMediaType},
		{"multipart form", map[string]string{"Content-Type": "multipart/form-data; boundary=x"}, 415, codeMediaType},
		{"no content type", nil, 415, codeMediaType},
		{"JSON from another site", map[string]string{"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"}, 403, codeForbidden},
		{"JSON from another origin", map[string]string{"Content-Type": "application/json", "Origin": "https://evil.example"}, 403, codeForbidden},
	} {
		r := send("POST", create, `{"id": "1"}`, c.header)
		if r.status != c.status || r.err.Code != c.code || !strings.Contains(r.err.Error, "refused") && !strings.Contains(r.err.Error, "Content-Type: application/json") {
			t.Errorf("%s: %d %s, want %d %s", c.name, r.status, r.body, c.status, c.code)
		}
	}
	if runs, err := s.store.ListRuns(t.Context(), metadata.RunFilter{}); err != nil || len(runs) != 0 {
		t.Fatalf("runs recorded by refused requests: %d, %v", len(runs), err)
	}
	// A cross-origin DELETE is refused too; reads are not.
	if r := send("DELETE", create+"/1/tags?tag=x", "", map[string]string{"Sec-Fetch-Site": "cross-site"}); r.status != 403 {
		t.Errorf("cross-site DELETE: %d %s", r.status, r.body)
	}
	if r := send("GET", "/v1/flows", "", map[string]string{"Sec-Fetch-Site": "cross-site"}); r.status != 200 {
		t.Errorf("cross-site GET: %d %s", r.status, r.body)
	}
	// JSON, with or without a charset, from a client or the same origin.
	for i, h := range []map[string]string{
		{"Content-Type": "application/json"},
		{"Content-Type": "application/json; charset=utf-8", "Sec-Fetch-Site": "same-origin"},
	} {
		if r := send("POST", create, fmt.Sprintf(`{"id": "%d"}`, i+1), h); r.status != 201 {
			t.Errorf("POST with %v: %d %s", h, r.status, r.body)
		}
	}
	// An empty body still says it is JSON.
	if r := send("POST", create+"/1/heartbeat", "", map[string]string{"Content-Type": "application/json"}); r.status != 204 {
		t.Errorf("heartbeat with an empty JSON body: %d %s", r.status, r.body)
	}
}

// panicky is a PostgreSQL store whose ListFlows panics.
type panicky struct{ metadata.Store }

func (panicky) ListFlowsAfter(context.Context, string, int) ([]string, error) { panic("boom") }

func TestPanic(t *testing.T) {
	s := newStack(t, panicky{openStore(t)}, Options{})
	r := s.request(t, "GET", "/v1/flows", "")
	if r.status != http.StatusInternalServerError || r.err.Code != codeInternal || !strings.Contains(r.err.Error, "panicked") {
		t.Errorf("GET /v1/flows that panics: %d %s", r.status, r.body)
	}
	if log := s.log.String(); !strings.Contains(log, "boom") || !strings.Contains(log, "level=ERROR") {
		t.Errorf("the panic was not logged:\n%s", log)
	}
	if r := s.request(t, "GET", "/v1/runs", ""); r.status != http.StatusOK {
		t.Errorf("GET /v1/runs after a panic: %d %s", r.status, r.body)
	}
}

// TestStoreFailure checks that a store that fails gives 500, with its
// message, and a log line.
func TestStoreFailure(t *testing.T) {
	s := newStack(t, nil, Options{})
	s.store.Close()
	r := s.request(t, "GET", "/v1/runs", "")
	if r.status != http.StatusInternalServerError || r.err.Code != codeInternal || !strings.Contains(r.err.Error, "metadata: listing the runs") {
		t.Errorf("GET /v1/runs with the store closed: %d %s", r.status, r.body)
	}
	if !strings.Contains(s.log.String(), "level=ERROR") {
		t.Errorf("the failure was not logged:\n%s", s.log)
	}
	_, err := s.client.ListRuns(t.Context(), metadata.RunFilter{})
	var se *Error
	if !errors.As(err, &se) || se.StatusCode != 500 {
		t.Errorf("ListRuns with the store closed: %v", err)
	}
}

// TestConcurrentWriters has 200 writers record one task each, with 2
// artifacts, in one run at once, through the service.
func TestConcurrentWriters(t *testing.T) {
	metadatatest.ConcurrentWriters(t, newStack(t, nil, Options{}).client, 200)
}

// TestServe checks that Serve serves, and finishes the requests in flight
// when its context is done.
func TestServe(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(started)
			time.Sleep(300 * time.Millisecond)
		}
		io.WriteString(w, "done")
	})
	ctx, cancel := context.WithCancel(t.Context())
	served := make(chan error, 1)
	go func() { served <- ServeListener(ctx, l, h) }()
	url := "http://" + l.Addr().String()
	got := make(chan string, 1)
	go func() {
		resp, err := http.Get(url + "/slow")
		if err != nil {
			got <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- string(b)
	}()
	<-started
	cancel()
	if err := <-served; err != nil {
		t.Errorf("Serve: %v", err)
	}
	if s := <-got; s != "done" {
		t.Errorf("the request in flight got %q", s)
	}
	if _, err := http.Get(url + "/"); err == nil {
		t.Error("the server still answers after Serve returned")
	}
	if err := Serve(t.Context(), "127.0.0.1:bad", h); err == nil || !strings.Contains(err.Error(), "cannot listen") {
		t.Errorf("Serve on a bad address: %v", err)
	}
}

// TestOpenAPI checks that docs/metadata-api.yaml documents every route,
// and no other, with the errors every route can give.
func TestOpenAPI(t *testing.T) {
	b, err := os.ReadFile("../../../docs/metadata-api.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var (
		documented = map[string][]string{} // "METHOD /path" -> response codes
		path, op   string
		pathRE     = regexp.MustCompile(`^  (/\S*):\s*$`)
		opRE       = regexp.MustCompile(`^    (get|post|put|patch|delete|head):\s*$`)
		codeRE     = regexp.MustCompile(`^        '?(\d{3})'?:`)
	)
	for line := range strings.Lines(string(b)) {
		line = strings.TrimRight(line, "\n")
		if strings.TrimSpace(line) == "" || strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		if m := pathRE.FindStringSubmatch(line); m != nil {
			path, op = m[1], ""
			continue
		}
		if strings.HasPrefix(line, "  ") && !strings.HasPrefix(line, "   ") || !strings.HasPrefix(line, " ") {
			path, op = "", ""
		}
		if path == "" {
			continue
		}
		if m := opRE.FindStringSubmatch(line); m != nil {
			op = strings.ToUpper(m[1]) + " " + path
			documented[op] = nil
			continue
		}
		if m := codeRE.FindStringSubmatch(line); m != nil && op != "" {
			documented[op] = append(documented[op], m[1])
		}
	}
	want := map[string]bool{"GET /healthz": true}
	for _, rt := range routes() {
		want[rt.method+" /"+strings.Join(rt.pattern, "/")] = true
	}
	for op := range want {
		codes, ok := documented[op]
		if !ok {
			t.Errorf("docs/metadata-api.yaml does not document %s", op)
			continue
		}
		need := []string{"401", "405", "500", "503"}
		if strings.Contains(op, "{") || strings.HasPrefix(op, "POST") || strings.Contains(op, "/runs") {
			need = append(need, "400")
		}
		if strings.HasPrefix(op, "POST") {
			need = append(need, "413", "415")
		}
		if strings.HasPrefix(op, "POST") || strings.HasPrefix(op, "DELETE") {
			need = append(need, "403")
		}
		if op == "GET /healthz" {
			need = []string{"200", "503"}
		}
		for _, c := range need {
			if !slices.Contains(codes, c) {
				t.Errorf("docs/metadata-api.yaml: %s does not document the response %s (it has %v)", op, c, codes)
			}
		}
	}
	for op := range documented {
		if !want[op] {
			t.Errorf("docs/metadata-api.yaml documents %s, which the service does not serve", op)
		}
	}
	if t.Failed() {
		t.Logf("documented: %v", documented)
	}
}

func ExampleNewClient() {
	// A service over PostgreSQL, as `stepwise service` runs it.
	ctx := context.Background()
	store, err := postgres.Open(ctx, os.Getenv("STEPWISE_METADATA_DSN"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer store.Close()
	go Serve(ctx, ":8080", NewHandler(store, Options{Tokens: []string{os.Getenv("STEPWISE_METADATA_TOKEN")}}))

	// A client, as launchers and task processes use it.
	c, err := NewClient("http://localhost:8080", os.Getenv("STEPWISE_METADATA_TOKEN"), nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	var s metadata.Store = c
	defer s.Close()
}
