package ui

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"stepwise.dev/stepwise/client"
	"stepwise.dev/stepwise/internal/config"
	"stepwise.dev/stepwise/internal/datastore"
	"stepwise.dev/stepwise/internal/metadata"
)

// benchStores opens a fresh local datastore and its SQLite metadata store.
func benchStores(b *testing.B) (string, *datastore.Store, metadata.Store) {
	b.Helper()
	dir := filepath.Join(b.TempDir(), ".stepwise")
	cfg, err := config.Load(config.Overrides{Datastore: dir, Source: "benchmark"})
	if err != nil {
		b.Fatal(err)
	}
	store, meta, err := cfg.Open(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { meta.Close() })
	return dir, store, meta
}

// recordTask records a task that ran for a second and produced one
// artifact.
func recordTask(b *testing.B, meta metadata.Store, flow, run, step, id string, at time.Time) {
	b.Helper()
	ctx := context.Background()
	a := metadata.Attempt{Flow: flow, Run: run, Step: step, Task: id, Status: metadata.Running, Started: at}
	if err := meta.StartAttempt(ctx, a); err != nil {
		b.Fatal(err)
	}
	a.Status, a.Ended = metadata.Succeeded, at.Add(time.Second)
	key := fmt.Sprintf("%064x", len(id))
	if err := meta.FinishAttempt(ctx, a, []metadata.Artifact{{Name: "Square", Type: "int", Key: key, Size: 9}}); err != nil {
		b.Fatal(err)
	}
}

// serve times one page of the UI.
func serve(b *testing.B, h http.Handler, path string) {
	b.Helper()
	req := httptest.NewRequest("GET", path, nil)
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 200 {
			b.Fatalf("%s: %d\n%s", path, rec.Code, rec.Body.String())
		}
	}
}

func benchClient(b *testing.B, dir string) (*client.Client, http.Handler, *Server) {
	b.Helper()
	global := client.Global
	c, err := client.Open(context.Background(), client.Options{Datastore: dir, Namespace: &global})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	s, err := New(c, Options{})
	if err != nil {
		b.Fatal(err)
	}
	return c, s.Handler(), s
}

// reportSize reports the size of a live page's state, and what its stream
// sends to a browser that takes gzip.
func reportSize(b *testing.B, state []byte) {
	var z bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&z, gzip.BestSpeed)
	zw.Write(state)
	zw.Close()
	b.ReportMetric(float64(len(state)), "bytes/state")
	b.ReportMetric(float64(z.Len()), "gzip-bytes/state")
}

// BenchmarkRunPage1000 renders the page of a run of the foreach example
// with 1,000 tasks in its foreach; the floor is the client calls the page
// makes, alone.
func BenchmarkRunPage1000(b *testing.B) {
	dir, store, meta := benchStores(b)
	ctx := context.Background()
	const flow, run = "Foreach", "1764340315123456"
	start := time.Now().Add(-time.Hour)
	if err := meta.CreateRun(ctx, &metadata.Run{Flow: flow, ID: run, Status: metadata.Succeeded, User: "ann", SystemTags: []string{"user:ann"},
		Params: map[string]string{"n": "1000"}, Started: start, Ended: start.Add(time.Minute)}); err != nil {
		b.Fatal(err)
	}
	graph, err := exec.Command(filepath.Join(fixture.bins, "foreach"), "show", "--json").Output()
	if err != nil {
		b.Fatal(err)
	}
	if err := store.PutGraph(ctx, flow, run, graph); err != nil {
		b.Fatal(err)
	}
	recordTask(b, meta, flow, run, "start", "0", start)
	for i := range 1000 {
		recordTask(b, meta, flow, run, "square_item", strconv.Itoa(i), start.Add(time.Duration(i)*time.Millisecond))
	}
	recordTask(b, meta, flow, run, "join", "0", start.Add(2*time.Second))
	recordTask(b, meta, flow, run, "end", "0", start.Add(3*time.Second))
	c, h, s := benchClient(b, dir)
	b.Run("page", func(b *testing.B) { serve(b, h, "/runs/"+flow+"/"+run) })
	// What a live run page costs the server per poll, shared by the
	// streams open on the page.
	b.Run("live-state", func(b *testing.B) {
		r, err := c.Flow(flow).Run(ctx, run)
		if err != nil {
			b.Fatal(err)
		}
		g := runGraph(ctx, r)
		var data []byte
		for b.Loop() {
			if data, _, err = s.runState(ctx, flow, run, g); err != nil {
				b.Fatal(err)
			}
		}
		reportSize(b, data)
	})
	b.Run("floor-client-calls", func(b *testing.B) {
		for b.Loop() {
			r, err := c.Flow(flow).Run(ctx, run)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := r.Tasks(ctx); err != nil {
				b.Fatal(err)
			}
			if _, err := r.Graph(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkRunsList10000 renders the runs list of a flow with 10,000 runs:
// its first page, a page deep in the list, and a page of 1,000; the floor
// is the client's listing of the first page alone.
func BenchmarkRunsList10000(b *testing.B) {
	dir, _, meta := benchStores(b)
	ctx := context.Background()
	start := time.Now().Add(-24 * time.Hour)
	for i := range 10000 {
		at := start.Add(time.Duration(i) * time.Second)
		if err := meta.CreateRun(ctx, &metadata.Run{Flow: "Foreach", ID: strconv.FormatInt(at.UnixMicro(), 10), Status: metadata.Succeeded, User: "ann",
			SystemTags: []string{"user:ann"}, Params: map[string]string{"n": "10"}, Started: at, Ended: at.Add(time.Second)}); err != nil {
			b.Fatal(err)
		}
	}
	c, h, s := benchClient(b, dir)
	deep := strconv.FormatInt(start.Add(5000*time.Second).UnixMicro(), 10)
	b.Run("first-page", func(b *testing.B) { serve(b, h, "/?flow=Foreach") })
	b.Run("page-after-5000", func(b *testing.B) { serve(b, h, "/?flow=Foreach&after=Foreach/"+deep) })
	b.Run("page-of-1000", func(b *testing.B) { serve(b, h, "/?flow=Foreach&n=1000") })
	b.Run("live-state", func(b *testing.B) {
		rq, f, err := parseRunsQuery(url.Values{"flow": {"Foreach"}})
		if err != nil {
			b.Fatal(err)
		}
		var data []byte
		for b.Loop() {
			if data, err = s.runsState(ctx, rq, f); err != nil {
				b.Fatal(err)
			}
		}
		reportSize(b, data)
	})
	b.Run("floor-client-calls", func(b *testing.B) {
		for b.Loop() {
			if _, err := c.Flows(ctx); err != nil {
				b.Fatal(err)
			}
			if _, err := c.Flow("Foreach").Runs(ctx, client.Filter{Limit: pageSize + 1}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
