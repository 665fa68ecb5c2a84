package ui

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"stepwise.dev/stepwise/client"
	"stepwise.dev/stepwise/internal/config"
	"stepwise.dev/stepwise/internal/datastore"
)

// TestLargeLogAndArtifact gives a task a 100 MB log: its page shows the
// last 64 KB of it, and the whole log and a large artifact are streamed
// on demand.
func TestLargeLogAndArtifact(t *testing.T) {
	c, srv := openUI(t, fixture.dir)
	runs, err := c.Flow("Foreach").Runs(context.Background(), client.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	run := runs[len(runs)-1] // the first, which ran every task
	cfg, err := config.Load(config.Overrides{Datastore: filepath.Join(fixture.dir, ".stepwise"), Source: "test"})
	if err != nil {
		t.Fatal(err)
	}
	store, err := config.OpenDatastore(context.Background(), cfg.Datastore.Value)
	if err != nil {
		t.Fatal(err)
	}
	p := datastore.TaskPath{Flow: run.Flow, Run: run.ID, Step: "start", Task: "0"}
	prefix := datastore.LogPrefix(p, 0, "stderr")
	const chunk, chunks = 64 << 10, 1600 // 100 MiB
	for i := range chunks {
		line := fmt.Sprintf("line of chunk %06d\n", i)
		data := bytes.Repeat([]byte(line), chunk/len(line)+1)[:chunk]
		if err := store.Backend().Put(context.Background(), datastore.LogChunkKey(prefix, 100000+i), bytes.NewReader(data), chunk); err != nil {
			t.Fatal(err)
		}
	}
	status, page := get(t, srv.Client(), srv.URL+"/runs/"+run.Pathspec()+"/start/0")
	if status != 200 || !strings.Contains(page, "line of chunk 001599") || strings.Contains(page, "line of chunk 001500") {
		t.Fatalf("status %d; the page does not show the log's tail alone (%d bytes)", status, len(page))
	}
	if len(page) > 200<<10 {
		t.Errorf("the page of a task with a 100 MB log is %d bytes", len(page))
	}
	if !strings.Contains(page, "104.9 MB") || !strings.Contains(page, "the last 65.5 KB are shown") {
		t.Errorf("the page does not say how large the log is and what it shows")
	}
	resp, err := srv.Client().Get(srv.URL + "/runs/" + run.Pathspec() + "/start/0/logs/0/stderr")
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || n != chunk*chunks {
		t.Errorf("the whole log: %d bytes, %v; want %d", n, err, chunk*chunks)
	}

	ui := latest(t, c, "UIFlow")
	resp, err = srv.Client().Get(srv.URL + "/runs/" + ui.Pathspec() + "/start/0/artifacts/Big")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || len(body) < 1<<20 || !strings.Contains(resp.Header.Get("Content-Disposition"), "attachment") {
		t.Errorf("download of the 1 MB artifact: status %d, %d bytes, %q", resp.StatusCode, len(body), resp.Header.Get("Content-Disposition"))
	}
}
