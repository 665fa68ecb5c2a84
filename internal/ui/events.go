package ui

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"stepwise.dev/stepwise/client"
	"stepwise.dev/stepwise/internal/dag"
)

// sse starts an event stream; it returns nil when the writer cannot flush.
func sse(w http.ResponseWriter) func(event string, v any) error {
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming is not supported here", http.StatusInternalServerError)
		return nil
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	fl.Flush()
	return func(event string, v any) error {
		data, err := json.Marshal(v)
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, data); err != nil {
			return err
		}
		fl.Flush()
		return nil
	}
}

// runEvents sends the state of a run's steps and tasks whenever it
// changes, until the run ends or the page goes away.
func (s *Server) runEvents(w http.ResponseWriter, r *http.Request) {
	run, err := s.run(r)
	if err != nil {
		s.fail(w, r, 0, err)
		return
	}
	ctx := r.Context()
	g := runGraph(ctx, run)
	send := sse(w)
	if send == nil {
		return
	}
	var last []byte
	tick := time.NewTicker(s.o.Poll)
	defer tick.Stop()
	for {
		run, err = s.c.Flow(run.Flow).Run(ctx, run.ID)
		if err != nil {
			return
		}
		tasks, err := run.Tasks(ctx)
		if err != nil {
			return
		}
		st := runState{Status: string(run.Status), Steps: map[string]stepState{}, Tasks: map[string]string{},
			Ended: run.Status != client.Running || run.Lost}
		for name, n := range stepNodes(tasks, "") {
			ss := stepState{Status: n.Status}
			if g != nil && g.Step(name) != nil {
				ss.Sub = dag.Sub(g.Step(name), n)
			}
			st.Steps[name] = ss
		}
		for _, t := range tasks {
			st.Tasks[t.Step+"/"+t.ID] = string(t.Status)
		}
		data, _ := json.Marshal(st)
		if !bytes.Equal(data, last) {
			if send("state", st) != nil {
				return
			}
			last = data
		}
		if st.Ended {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
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
	send := sse(w)
	if send == nil {
		return
	}
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
