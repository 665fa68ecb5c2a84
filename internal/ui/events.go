package ui

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"stepwise.dev/stepwise/client"
	"stepwise.dev/stepwise/internal/dag"
	"stepwise.dev/stepwise/internal/graph"
)

// sse starts an event stream; it returns nil when the writer cannot
// flush. The stream is compressed when the browser takes gzip (a run's
// timeline is mostly markup, which shrinks about tenfold), each event
// flushed whole; done ends it.
func sse(w http.ResponseWriter, r *http.Request) (send func(event string, v any) error, done func()) {
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming is not supported here", http.StatusInternalServerError)
		return nil, nil
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Add("Vary", "Accept-Encoding")
	var out io.Writer = w
	var gz *gzip.Writer
	if acceptsGzip(r) {
		h.Set("Content-Encoding", "gzip")
		gz, _ = gzip.NewWriterLevel(w, gzip.BestSpeed) // a valid level: no error
		out = gz
	}
	w.WriteHeader(http.StatusOK)
	fl.Flush()
	send = func(event string, v any) error {
		data, ok := v.([]byte)
		if !ok {
			var err error
			if data, err = json.Marshal(v); err != nil {
				return err
			}
		}
		if _, err := fmt.Fprintf(out, "event: %s\ndata: %s\n\n", event, data); err != nil {
			return err
		}
		if gz != nil {
			if err := gz.Flush(); err != nil {
				return err
			}
		}
		fl.Flush()
		return nil
	}
	done = func() {
		if gz != nil {
			gz.Close()
		}
	}
	return send, done
}

// acceptsGzip says whether the request's Accept-Encoding takes gzip.
func acceptsGzip(r *http.Request) bool {
	for _, e := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(e), ";")
		if strings.EqualFold(strings.TrimSpace(name), "gzip") && strings.ReplaceAll(params, " ", "") != "q=0" {
			return true
		}
	}
	return false
}

// pageStates shares the work of live pages: the state of one page (a
// run, a list of runs with its filters) is read from the stores at most
// once per poll interval, whatever the number of streams open on it.
type pageStates struct {
	mu sync.Mutex
	m  map[string]*pageState
}

type pageState struct {
	mu    sync.Mutex
	at    time.Time // when data was read; zero when it must be read
	data  []byte    // the state, JSON
	ended bool      // it will not change any more
	used  time.Time // when a stream last asked (under pageStates.mu)
}

// get returns the state of the page called key, read by read when the one
// kept is older than poll. A state that failed to read is not kept.
func (p *pageStates) get(key string, poll time.Duration, read func() ([]byte, bool, error)) ([]byte, bool, error) {
	now := time.Now()
	p.mu.Lock()
	if p.m == nil {
		p.m = map[string]*pageState{}
	}
	st := p.m[key]
	if st == nil {
		st = &pageState{}
		p.m[key] = st
	}
	st.used = now
	for k, o := range p.m {
		if now.Sub(o.used) > time.Minute {
			delete(p.m, k) // no stream watches it any more
		}
	}
	p.mu.Unlock()

	st.mu.Lock()
	defer st.mu.Unlock()
	if !st.at.IsZero() && time.Since(st.at) < poll {
		return st.data, st.ended, nil
	}
	data, ended, err := read()
	if err != nil {
		st.at = time.Time{}
		return nil, false, err
	}
	st.data, st.ended, st.at = data, ended, time.Now()
	return data, ended, nil
}

// follow sends the page's state (JSON, from read) as event "state"
// whenever it changes, at most every poll interval, until read says it
// will not change any more or the page goes away. Then it sends event
// "end".
func (s *Server) follow(w http.ResponseWriter, r *http.Request, key string, read func(ctx context.Context) ([]byte, bool, error)) {
	send, done := sse(w, r)
	if send == nil {
		return
	}
	defer done()
	ctx := r.Context()
	var last []byte
	tick := time.NewTicker(s.o.Poll)
	defer tick.Stop()
	for {
		data, ended, err := s.states.get(key, s.o.Poll, func() ([]byte, bool, error) { return read(ctx) })
		if err != nil {
			return
		}
		if !bytes.Equal(data, last) {
			if send("state", data) != nil {
				return
			}
			last = data
		}
		if ended {
			send("end", struct{}{})
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// runEvents sends the state of a run's steps, tasks and timeline whenever
// it changes, until the run ends or the page goes away.
func (s *Server) runEvents(w http.ResponseWriter, r *http.Request) {
	run, err := s.run(r)
	if err != nil {
		s.fail(w, r, 0, err)
		return
	}
	g := runGraph(r.Context(), run)
	s.follow(w, r, "run "+run.Pathspec(), func(ctx context.Context) ([]byte, bool, error) {
		return s.runState(ctx, run.Flow, run.ID, g)
	})
}

// runState reads the state of a run for its page (g is its graph, nil when
// not kept), and whether it has ended.
func (s *Server) runState(ctx context.Context, flow, id string, g *graph.Graph) ([]byte, bool, error) {
	run, err := s.c.Flow(flow).Run(ctx, id)
	if err != nil {
		return nil, false, err
	}
	tasks, err := run.Tasks(ctx)
	if err != nil {
		return nil, false, err
	}
	st := runState{Status: runStatus(run), Took: took(run.Started, run.Ended), Steps: map[string]stepState{},
		Tasks: make([]taskState, 0, len(tasks)), Gantt: gantt(tasks, "/runs/"+flow+"/"+id+"/")}
	for name, n := range stepNodes(tasks, "") {
		ss := stepState{Status: n.Status}
		if g != nil && g.Step(name) != nil {
			ss.Sub = dag.Sub(g.Step(name), n)
		}
		st.Steps[name] = ss
	}
	for _, t := range tasks {
		st.Tasks = append(st.Tasks, taskState{Task: t.Step + "/" + t.ID, Status: string(t.Status), Attempts: len(t.Attempts),
			Started: when(t.Started), Took: took(t.Started, t.Ended)})
	}
	data, err := stateJSON(st)
	return data, run.Status != client.Running || run.Lost, err
}

// stateJSON encodes a live page's state. It goes to the page's script,
// not into HTML, so <, > and & are left as they are (the timeline is
// full of them).
func stateJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// runStatus is a run's status as pages show it: lost for a running run
// whose runtime went silent.
func runStatus(r *client.Run) string {
	if r.Lost {
		return "lost"
	}
	return string(r.Status)
}

// runsEvents sends the first page of a runs list, with the filters of the
// page that asks, whenever it changes: new runs, and runs whose status
// changed.
func (s *Server) runsEvents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	q.Del("after")
	rq, f, err := parseRunsQuery(q)
	if err != nil {
		s.fail(w, r, 0, err)
		return
	}
	s.follow(w, r, "runs "+q.Encode(), func(ctx context.Context) ([]byte, bool, error) {
		data, err := s.runsState(ctx, rq, f)
		return data, false, err
	})
}

// runsState reads the first page of a runs list, as its live updates send
// it.
func (s *Server) runsState(ctx context.Context, rq runsQuery, f client.Filter) ([]byte, error) {
	runs, err := s.listRuns(ctx, rq, f)
	if err != nil {
		return nil, err
	}
	rows := make([]runRow, 0, min(len(runs), rq.N))
	for _, run := range runs[:min(len(runs), rq.N)] {
		rows = append(rows, runRow{Run: run.Pathspec(), Status: runStatus(run), User: run.User,
			Started: when(run.Started), Took: took(run.Started, run.Ended), Tags: run.Tags})
	}
	return stateJSON(map[string]any{"runs": rows})
}

// runRow is one run of the runs list, as its live updates send it.
type runRow struct {
	Run     string   `json:"run"` // Flow/ID
	Status  string   `json:"status"`
	User    string   `json:"user"`
	Started string   `json:"started"`
	Took    string   `json:"took"`
	Tags    []string `json:"tags"`
}

// logEvents sends what a log gains, from byte off, until its task ends.
func (s *Server) logEvents(w http.ResponseWriter, r *http.Request) {
	t, attempt, stream, ok := s.taskLog(w, r)
	if !ok {
		return
	}
	off, err := strconv.ParseInt(r.URL.Query().Get("off"), 10, 64)
	if err != nil || off < 0 {
		s.fail(w, r, http.StatusBadRequest, fmt.Errorf("off=%q: give the byte offset to follow the log from", r.URL.Query().Get("off")))
		return
	}
	ctx := r.Context()
	send, done := sse(w, r)
	if send == nil {
		return
	}
	defer done()
	tick := time.NewTicker(s.o.Poll)
	defer tick.Stop()
	for {
		running := false
		if run, err := s.c.Flow(t.Flow).Run(ctx, t.Run); err == nil {
			if cur, err := run.Task(ctx, t.Step, t.ID); err == nil {
				running = cur.Status == client.Running && !cur.Lost && len(cur.Attempts)-1 == attempt
			}
		}
		for {
			data, _, err := t.LogRange(ctx, attempt, stream, off, logTail)
			if err != nil || len(data) == 0 {
				break
			}
			off += int64(len(data))
			if send("log", map[string]any{"text": validUTF8(data), "off": off}) != nil {
				return
			}
		}
		if !running {
			send("end", map[string]any{"off": off})
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
