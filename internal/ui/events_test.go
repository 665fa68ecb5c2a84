package ui

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestPageStatesShared: streams open on the same page share one read of
// the stores per poll interval; other pages read their own, and a read
// that failed is not kept.
func TestPageStatesShared(t *testing.T) {
	var p pageStates
	var reads atomic.Int64
	read := func(v string) func() ([]byte, bool, error) {
		return func() ([]byte, bool, error) { reads.Add(1); return []byte(v), false, nil }
	}
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if data, _, err := p.get("run F/1", time.Hour, read("one")); err != nil || string(data) != "one" {
				t.Errorf("get = %q, %v", data, err)
			}
		})
	}
	wg.Wait()
	if n := reads.Load(); n != 1 {
		t.Errorf("20 streams of one page read the stores %d times within a poll interval, want once", n)
	}
	if data, _, _ := p.get("run F/2", time.Hour, read("two")); string(data) != "two" || reads.Load() != 2 {
		t.Errorf("another page got %q after %d reads", data, reads.Load())
	}
	// A poll interval of zero reads every time.
	for i := range 3 {
		if data, _, _ := p.get("run F/1", 0, read(fmt.Sprint(i))); string(data) != fmt.Sprint(i) {
			t.Errorf("get with no interval = %q, want %d", data, i)
		}
	}
	failed := errors.New("store down")
	if _, _, err := p.get("run F/3", time.Hour, func() ([]byte, bool, error) { return nil, false, failed }); !errors.Is(err, failed) {
		t.Errorf("a failed read gave %v", err)
	}
	if data, _, err := p.get("run F/3", time.Hour, read("back")); err != nil || string(data) != "back" {
		t.Errorf("after a failed read, get = %q, %v; want a new read", data, err)
	}
}

// TestEventStreams reads the live streams over HTTP, compressed and not:
// a finished run's page gets its state, then the end, and the stream
// closes whole; a runs list gets its first page with its filters; bad
// filters are a 400.
func TestEventStreams(t *testing.T) {
	c, srv := openUI(t, fixture.dir)
	run := latest(t, c, "Foreach")
	for _, enc := range []string{"gzip", "identity"} {
		t.Run(enc, func(t *testing.T) {
			open := func(path string) (*http.Response, io.Reader) {
				t.Helper()
				req, _ := http.NewRequest("GET", srv.URL+path, nil)
				req.Header.Set("Accept-Encoding", enc) // set here, Go's client does not undo it
				resp, err := srv.Client().Do(req)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { resp.Body.Close() })
				if got := resp.Header.Get("Content-Encoding"); (got == "gzip") != (enc == "gzip") {
					t.Fatalf("%s with Accept-Encoding %s: Content-Encoding %q", path, enc, got)
				}
				if enc != "gzip" {
					return resp, resp.Body
				}
				zr, err := gzip.NewReader(resp.Body)
				if err != nil {
					t.Fatal(err)
				}
				return resp, zr
			}
			// The whole stream of a run that ended.
			resp, body := open("/runs/" + run.Pathspec() + "/events")
			all, err := io.ReadAll(body)
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("the stream of a finished run: %d, %v\n%s", resp.StatusCode, err, all)
			}
			events := strings.Split(strings.TrimSuffix(string(all), "\n\n"), "\n\n")
			if len(events) != 2 || !strings.HasPrefix(events[0], "event: state\ndata: {") || events[1] != "event: end\ndata: {}" {
				t.Fatalf("the stream of a finished run:\n%s", all)
			}
			var st runState
			if err := json.Unmarshal([]byte(strings.TrimPrefix(events[0], "event: state\ndata: ")), &st); err != nil {
				t.Fatal(err)
			}
			if st.Status != "succeeded" || st.Took == "" || len(st.Tasks) != 15 || !strings.Contains(st.Gantt, `data-bar="end/0"`) {
				t.Errorf("the state of run %s: status %s, took %q, %d tasks, timeline %.200s", run.Pathspec(), st.Status, st.Took, len(st.Tasks), st.Gantt)
			}

			// The first event of a runs list, which goes on.
			_, body = open("/events?flow=Foreach&n=2")
			br := bufio.NewReader(body)
			event, _ := br.ReadString('\n')
			data, err := br.ReadString('\n')
			if err != nil || event != "event: state\n" {
				t.Fatalf("the runs list's first event: %q %q, %v", event, data, err)
			}
			var list struct{ Runs []runRow }
			if err := json.Unmarshal([]byte(strings.TrimPrefix(data, "data: ")), &list); err != nil {
				t.Fatalf("the runs list's first event: %q: %v", data, err)
			}
			if len(list.Runs) != 2 || list.Runs[0].Run != run.Pathspec() || list.Runs[0].Status != "succeeded" {
				t.Errorf("the runs list's first page of 2: %+v, want %s first", list.Runs, run.Pathspec())
			}
		})
	}
	if status, body := get(t, srv.Client(), srv.URL+"/events?status=done"); status != 400 || !strings.Contains(body, "use running, succeeded or failed") {
		t.Errorf("a runs stream with a bad filter: %d\n%s", status, body)
	}
}
