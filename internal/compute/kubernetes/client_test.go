package kubernetes

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// A watch that the API server ends with 410 Gone (it forgot the version)
// is listed again, and an object that went meanwhile is handed over as a
// deletion.
func TestWatcherListsAgainWhenTheVersionIsGone(t *testing.T) {
	var mu sync.Mutex
	lists, watches := 0, 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.URL.Query().Get("labelSelector") != "stepwise.dev/run=7" {
			http.Error(w, "no selector", http.StatusBadRequest)
			return
		}
		if r.URL.Query().Get("watch") != "true" {
			lists++
			if lists == 1 {
				fmt.Fprint(w, `{"metadata":{"resourceVersion":"10"},"items":[{"metadata":{"name":"a","resourceVersion":"9"}},{"metadata":{"name":"b","resourceVersion":"10"}}]}`)
			} else {
				fmt.Fprint(w, `{"metadata":{"resourceVersion":"30"},"items":[{"metadata":{"name":"a","resourceVersion":"30"},"status":{"phase":"Running"}}]}`)
			}
			return
		}
		watches++
		switch watches {
		case 1:
			if r.URL.Query().Get("resourceVersion") != "10" {
				t.Errorf("first watch from %q, want 10", r.URL.Query().Get("resourceVersion"))
			}
			fmt.Fprint(w, `{"type":"MODIFIED","object":{"metadata":{"name":"a","resourceVersion":"11"},"status":{"phase":"Pending"}}}`+"\n")
			fmt.Fprint(w, `{"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"12"}}}`+"\n")
		case 2:
			if r.URL.Query().Get("resourceVersion") != "12" {
				t.Errorf("second watch from %q, want 12 (the bookmark)", r.URL.Query().Get("resourceVersion"))
			}
			fmt.Fprint(w, `{"type":"ERROR","object":{"code":410,"reason":"Expired","message":"too old resource version"}}`+"\n")
		default:
			<-r.Context().Done()
		}
	}))
	defer srv.Close()

	type event struct {
		name, phase string
		deleted     bool
	}
	events := make(chan event, 20)
	w := &watcher[Pod]{c: &client{http: srv.Client(), base: srv.URL}, path: "/api/v1/namespaces/ns/pods", sel: "stepwise.dev/run=7",
		name: func(p *Pod) string { return p.Metadata.Name }, rv: func(p *Pod) string { return p.Metadata.ResourceVersion },
		on: func(p *Pod, deleted bool) { events <- event{p.Metadata.Name, p.Status.Phase, deleted} }}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := w.start(ctx); err != nil {
		t.Fatal(err)
	}
	want := []event{{"a", "", false}, {"b", "", false}, {"a", "Pending", false}, {"a", "Running", false}, {"b", "", true}}
	for i, e := range want {
		select {
		case got := <-events:
			if got != e {
				t.Errorf("event %d: %+v, want %+v", i, got, e)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("event %d (%+v) never came", i, e)
		}
	}
}

// Errors of the API server keep its reason and message.
func TestAPIErrorsSayWhat(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprint(w, `{"kind":"Status","code":403,"reason":"Forbidden","message":"jobs.batch is forbidden: User \"x\" cannot create resource \"jobs\""}`)
	}))
	defer srv.Close()
	c := &client{http: srv.Client(), base: srv.URL}
	err := c.createJob(context.Background(), "ml", &Job{})
	if !isForbidden(err) || isNotFound(err) {
		t.Fatalf("err %v", err)
	}
	if got := err.Error(); got != `POST /apis/batch/v1/namespaces/ml/jobs: 403 Forbidden: jobs.batch is forbidden: User "x" cannot create resource "jobs"` {
		t.Errorf("error %q", got)
	}
}
