package service

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"stepwise.dev/stepwise/internal/metadata"
)

var fuzzMethods = []string{"GET", "POST", "DELETE", "PUT", "PATCH", "HEAD"}

// FuzzHandler sends random requests to the service over a real PostgreSQL
// store (one per fuzzing process): whatever the method, path, query and
// body, it never answers 500 nor panics, and its errors are JSON.
func FuzzHandler(f *testing.F) {
	store := openStore(f)
	ctx := context.Background()
	if err := store.CreateRun(ctx, &metadata.Run{Flow: "F", ID: "1", SystemTags: []string{"user:ann"}, Tags: []string{"x"}}); err != nil {
		f.Fatal(err)
	}
	if err := store.CloneTask(ctx, &metadata.Task{Flow: "F", Run: "1", Step: "s", ID: "1", ClonedFrom: "F/0/s/1"}); err != nil {
		f.Fatal(err)
	}
	if err := store.StartAttempt(ctx, metadata.Attempt{Flow: "F", Run: "1", Step: "w", Task: "2"}); err != nil {
		f.Fatal(err)
	}
	h := NewHandler(store, Options{Tokens: []string{"t"}, Logger: slog.New(slog.DiscardHandler)})

	const (
		runs = "/v1/flows/F/runs"
		run  = runs + "/1"
		task = run + "/steps/w/tasks/2"
	)
	for _, s := range []struct {
		method uint8
		target string
		body   string
	}{
		{0, "/healthz", ""},
		{0, "/v1/flows", ""},
		{0, "/v1/runs?tag=x&status=running&since=2025-01-01T00:00:00Z&until=2030-01-01T00:00:00Z&limit=3", ""},
		{0, runs + "?tag=user:ann&limit=1", ""},
		{1, runs, `{"id": "2", "user": "ann", "system_tags": ["user:ann"], "tags": ["a"], "params": {"k": "v"}, "started": "2025-03-01T12:30:15.123456789+01:00", "code": {"binary_sha256": "ab", "git_commit": "c", "git_dirty": true}, "origin": "1"}`},
		{1, runs, `{"id": "3", "status": "succeeded", "ended": "2025-03-01T12:30:15Z"}`},
		{0, run, ""},
		{1, run + "/finish", `{"status": "failed", "ended": "2025-03-01T12:30:15Z"}`},
		{1, run + "/tags", `{"tags": ["b", "c"]}`},
		{2, run + "/tags?tag=b&tag=user:ann", ""},
		{0, run + "/tasks", ""},
		{0, task, ""},
		{1, task + "/attempts/1/start", `{"started": "2025-03-01T12:30:15Z"}`},
		{1, task + "/attempts/0/heartbeat", `{"at": "2025-03-01T12:30:15Z"}`},
		{1, task + "/attempts/1/finish", `{"status": "succeeded", "error": "", "artifacts": [{"name": "a", "type": "int", "key": "k", "size": 8}]}`},
		{1, run + "/steps/s/tasks/3/clone", `{"cloned_from": "F/0/s/3", "artifacts": [{"name": "a"}]}`},
		{1, run + "/steps/s/tasks/1/attempts/0/start", `{}`},
		{3, "/v1/flows", "{}"},
		{1, runs, `{"id": "4"} {`},
		{1, runs, `{"id": "4", "params": {"\u0000": "x"}}`},
		{0, "/v1/flows/%2E%2E/runs/1", ""},
		{0, "/v1/flows?limit=1&cursor=" + flowCursor("F"), ""},
		{0, runs + "?limit=2&cursor=" + runCursor(metadata.RunKey{Started: time.Unix(1, 0), ID: "1", Flow: "F"}), ""},
		{0, run + "/tasks?limit=1&cursor=" + taskCursor(metadata.TaskKey{Step: "s", ID: "1"}), ""},
	} {
		f.Add(s.method, s.target, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, method uint8, target string, body []byte) {
		u, err := url.ParseRequestURI(target)
		if err != nil {
			return // the HTTP server refuses it before the handler
		}
		req := (&http.Request{
			Method:        fuzzMethods[int(method)%len(fuzzMethods)],
			URL:           u,
			RequestURI:    target,
			Proto:         "HTTP/1.1",
			ProtoMajor:    1,
			ProtoMinor:    1,
			Header:        http.Header{"Authorization": {"Bearer t"}, "Content-Type": {"application/json"}},
			Body:          io.NopCloser(bytes.NewReader(body)),
			ContentLength: int64(len(body)),
			Host:          "metadata.test",
			RemoteAddr:    "192.0.2.1:1234",
		}).WithContext(ctx)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %q with body %q: %d %s", req.Method, target, body, rec.Code, rec.Body)
		}
		if rec.Code >= 400 {
			var eb errorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &eb); err != nil || eb.Error == "" || eb.Code == "" {
				t.Fatalf("%s %q: %d with a body that is not a JSON error: %q", req.Method, target, rec.Code, rec.Body)
			}
		}
	})
}
