package service_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"stepwise.dev/stepwise/client"
	"stepwise.dev/stepwise/internal/metadata"
	"stepwise.dev/stepwise/internal/metadata/postgres"
	"stepwise.dev/stepwise/internal/metadata/service"
	"stepwise.dev/stepwise/internal/names"
	"stepwise.dev/stepwise/internal/testservers"
)

// FuzzCreateRunAddressable sends random create-run requests (any flow in
// the path, any body) to the service over a real PostgreSQL store: every
// run it accepts can be addressed with a pathspec, Flow/RunID parses back
// to the same names, and its tags are ones that `tag add` and run --tag
// would accept too.
func FuzzCreateRunAddressable(f *testing.F) {
	store, err := postgres.Open(context.Background(), testservers.NewDatabase(f))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { store.Close() })
	h := service.NewHandler(store, service.Options{Logger: slog.New(slog.DiscardHandler)})
	for _, s := range []struct{ flow, body string }{
		{"BranchJoin", `{"id": "1764340315123456", "user": "ann", "system_tags": ["user:ann"], "tags": ["exp-7"]}`},
		{" ", `{"id": "1"}`},
		{"; DROP TABLE runs;--", `{"id": "1"}`},
		{"F\u202e", `{"id": "1"}`},
		{"F", `{"id": "` + string(bytes.Repeat([]byte("9"), 256)) + `"}`},
		{"F", `{"id": "2", "tags": ["user:bob"]}`},
		{"F", `{"id": "3", "tags": ["` + string(bytes.Repeat([]byte("x"), 5000)) + `"]}`},
		{"F", `{"id": "4", "system_tags": ["runtime:scheduler", "user:a.b@c"], "tags": ["a b", "模型"]}`},
		{"train-v2.1", `{"id": "01"}`},
		{"..", `{"id": "5"}`},
	} {
		f.Add(s.flow, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, flow string, body []byte) {
		path := "/v1/flows/" + url.PathEscape(flow) + "/runs"
		req := httptest.NewRequestWithContext(context.Background(), http.MethodPost, path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("POST %s %q: %d %s", path, body, rec.Code, rec.Body)
		}
		if rec.Code != http.StatusCreated {
			return
		}
		var run metadata.Run
		if err := json.Unmarshal(rec.Body.Bytes(), &run); err != nil {
			t.Fatalf("POST %s %q: 201 with a body that is not a run: %v", path, body, err)
		}
		if run.Flow != flow {
			t.Fatalf("POST %s: recorded flow %q", path, run.Flow)
		}
		spec := run.Flow + "/" + run.ID
		ps, err := client.ParsePathspec(spec)
		if err != nil {
			t.Fatalf("the service accepted run %q, which the client cannot address: %v", spec, err)
		}
		if ps.Flow != run.Flow || ps.Run != run.ID || ps.Step != "" {
			t.Fatalf("pathspec %q parsed to %+v", spec, ps)
		}
		if ps, err := client.ParsePathspec(spec + "/end/0"); err != nil || ps.Run != run.ID {
			t.Fatalf("pathspec %s/end/0: %+v, %v", spec, ps, err)
		}
		for _, tag := range run.Tags {
			if err := names.UserTag(tag); err != nil {
				t.Fatalf("the service accepted user tag %q, which tag add refuses: %v", tag, err)
			}
		}
		for _, tag := range run.SystemTags {
			if err := names.SystemTag(tag); err != nil {
				t.Fatalf("the service accepted system tag %q: %v", tag, err)
			}
		}
		if run.User != "" {
			if err := names.User(run.User); err != nil {
				t.Fatalf("the service accepted user %q: %v", run.User, err)
			}
		}
		// What the service recorded, it reads back.
		if _, err := store.GetRun(context.Background(), run.Flow, run.ID); err != nil {
			t.Fatalf("GetRun %s after the service created it: %v", spec, err)
		}
	})
}
