package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"stepwise.dev/stepwise/internal/metadata"
	"stepwise.dev/stepwise/internal/metadata/postgres"
	"stepwise.dev/stepwise/internal/testservers"
)

// statusCounter counts the answers of a handler by status.
type statusCounter struct {
	h      http.Handler
	mu     sync.Mutex
	counts map[int]int
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(s int) {
	if w.status == 0 {
		w.status = s
	}
	w.ResponseWriter.WriteHeader(s)
}

func (c *statusCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	sw := &statusWriter{ResponseWriter: w}
	c.h.ServeHTTP(sw, r)
	c.mu.Lock()
	if c.counts == nil {
		c.counts = map[int]int{}
	}
	c.counts[sw.status]++
	c.mu.Unlock()
}

func (c *statusCounter) count(status int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[status]
}

// writeSequence is what a run records: the run, then for each of tasks
// tasks of each of writers writers, an attempt started, a heartbeat, the
// attempt finished with an artifact, a tag and a heartbeat of the run;
// then the run finished. step is called after each write of writer 0.
func writeSequence(ctx context.Context, s metadata.Store, flow string, writers, tasks int, step func(n int)) error {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	run := &metadata.Run{Flow: flow, ID: "1", User: "ann", SystemTags: []string{"user:ann"}, Tags: []string{"outage"}, Started: t0}
	if err := s.CreateRun(ctx, run); err != nil {
		return fmt.Errorf("CreateRun: %w", err)
	}
	errs := make(chan error, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			n := 0
			did := func() {
				if n++; w == 0 && step != nil {
					step(n)
				}
			}
			for i := range tasks {
				id := fmt.Sprint(w*tasks + i)
				at := t0.Add(time.Duration(w*tasks+i) * time.Second)
				a := metadata.Attempt{Flow: flow, Run: "1", Step: "work", Task: id, Status: metadata.Running, Started: at}
				if err := s.StartAttempt(ctx, a); err != nil {
					errs <- fmt.Errorf("StartAttempt %s: %w", id, err)
					return
				}
				did()
				if err := s.TaskHeartbeat(ctx, flow, "1", "work", id, 0, at.Add(time.Millisecond)); err != nil {
					errs <- fmt.Errorf("TaskHeartbeat %s: %w", id, err)
					return
				}
				did()
				a.Status, a.Ended = metadata.Succeeded, at.Add(2*time.Millisecond)
				if err := s.FinishAttempt(ctx, a, []metadata.Artifact{{Name: "x", Type: "int", Key: "k" + id, Size: 8}}); err != nil {
					errs <- fmt.Errorf("FinishAttempt %s: %w", id, err)
					return
				}
				did()
				if err := s.AddTags(ctx, flow, "1", []string{"t" + id}); err != nil {
					errs <- fmt.Errorf("AddTags %s: %w", id, err)
					return
				}
				did()
				if err := s.Heartbeat(ctx, flow, "1", time.Time{}); err != nil {
					errs <- fmt.Errorf("Heartbeat: %w", err)
					return
				}
				did()
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	if err := s.FinishRun(ctx, flow, "1", metadata.Succeeded, t0.Add(time.Hour)); err != nil {
		return fmt.Errorf("FinishRun: %w", err)
	}
	return nil
}

// checkSequence checks that what writeSequence wrote was recorded whole,
// each write once.
func checkSequence(t *testing.T, s metadata.Store, flow string, writers, tasks int) {
	t.Helper()
	ctx := t.Context()
	r, err := s.GetRun(ctx, flow, "1")
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != metadata.Succeeded || len(r.Tags) != writers*tasks+1 || !slices.Contains(r.Tags, "outage") || r.Heartbeat.IsZero() {
		t.Errorf("run %s/1: status %s, %d tags, heartbeat %v; want succeeded, %d tags, a heartbeat", flow, r.Status, len(r.Tags), r.Heartbeat, writers*tasks+1)
	}
	got, err := s.ListTasks(ctx, flow, "1")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != writers*tasks {
		t.Fatalf("%d tasks recorded, want %d", len(got), writers*tasks)
	}
	for _, k := range got {
		if k.Status != metadata.Succeeded || len(k.Attempts) != 1 || k.Attempts[0].Heartbeat.IsZero() ||
			len(k.Artifacts) != 1 || k.Artifacts[0].Key != "k"+k.ID {
			t.Errorf("task %s: %+v", k.ID, k)
		}
	}
}

// dsnThrough returns dsn with its host and port replaced by addr.
func dsnThrough(t *testing.T, dsn, addr string) (string, string) {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	upstream := u.Host
	u.Host = addr
	return u.String(), upstream
}

// TestDatabaseOutage stops PostgreSQL (the connections to it are cut and
// new ones refused, as in a restart) for 3 seconds in the middle of the
// writes of a run through the service: every write lands, once, after it
// comes back, and the service said 503 meanwhile.
func TestDatabaseOutage(t *testing.T) {
	dsn := testservers.NewDatabase(t)
	u, _ := url.Parse(dsn)
	p := newProxy(t, u.Host)
	through, _ := dsnThrough(t, dsn, p.addr)
	store, err := postgres.Open(t.Context(), through)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	log := &syncBuffer{}
	counter := &statusCounter{h: NewHandler(store, Options{Logger: slog.New(slog.NewTextHandler(log, nil))})}
	srv := httptest.NewServer(counter)
	defer srv.Close()
	c, err := NewClientWithOptions(srv.URL, ClientOptions{RetryFor: time.Minute, Logger: slog.New(slog.NewTextHandler(log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	const writers, tasks, outage = 4, 20, 3 * time.Second
	var (
		once     sync.Once
		restored = make(chan struct{})
		stopped  time.Time
	)
	start := time.Now()
	err = writeSequence(t.Context(), c, "Outage", writers, tasks, func(n int) {
		if n == 20 {
			once.Do(func() {
				p.Stop()
				stopped = time.Now()
				// The store says the database cannot be reached, as such.
				_, err := store.GetRun(t.Context(), "Outage", "1")
				var unav interface{ Unavailable() bool }
				if !errors.As(err, &unav) || !unav.Unavailable() || !strings.Contains(err.Error(), "cannot be reached") {
					t.Errorf("GetRun with PostgreSQL away: %v; want an error that is Unavailable", err)
				}
				go func() {
					time.Sleep(outage)
					p.Start()
					close(restored)
				}()
			})
		}
	})
	if err != nil {
		t.Fatalf("a write failed during a %v outage of PostgreSQL: %v\nlog:\n%s", outage, err, log)
	}
	<-restored
	t.Logf("%d writes in %v, with PostgreSQL away for %v from %v in; %d answers 503",
		writers*tasks*5+2, time.Since(start).Round(time.Millisecond), outage, stopped.Sub(start).Round(time.Millisecond), counter.count(503))
	if counter.count(http.StatusServiceUnavailable) == 0 {
		t.Errorf("the service never answered 503 while PostgreSQL was away:\n%s", log)
	}
	if n := counter.count(http.StatusInternalServerError); n > 0 {
		t.Errorf("the service answered 500 %d times while PostgreSQL was away:\n%s", n, log)
	}
	checkSequence(t, store, "Outage", writers, tasks)
}

// TestServiceOutage stops the metadata service (it shuts down, its port
// refuses connections) for 3 seconds in the middle of the writes of a run,
// then starts it again on the same port: every write lands, once.
func TestServiceOutage(t *testing.T) {
	store := openStore(t)
	h := NewHandler(store, Options{Logger: slog.New(slog.DiscardHandler)})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	serve := func(l net.Listener) (stop func()) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- ServeListener(ctx, l, h) }()
		return func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Serve: %v", err)
			}
		}
	}
	stop := serve(l)
	c, err := NewClientWithOptions("http://"+addr, ClientOptions{RetryFor: time.Minute, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	const writers, tasks, outage = 4, 20, 3 * time.Second
	var (
		once     sync.Once
		mu       sync.Mutex
		restored = make(chan struct{})
	)
	start := time.Now()
	err = writeSequence(t.Context(), c, "Restart", writers, tasks, func(n int) {
		if n == 20 {
			once.Do(func() {
				stop()
				go func() {
					time.Sleep(outage)
					l, err := net.Listen("tcp", addr)
					if err != nil {
						t.Errorf("listening on %s again: %v", addr, err)
						close(restored)
						return
					}
					mu.Lock()
					stop = serve(l)
					mu.Unlock()
					close(restored)
				}()
			})
		}
	})
	<-restored
	mu.Lock()
	defer stop()
	mu.Unlock()
	if err != nil {
		t.Fatalf("a write failed during a %v outage of the service: %v", outage, err)
	}
	t.Logf("%d writes in %v, with the service away for %v", writers*tasks*5+2, time.Since(start).Round(time.Millisecond), outage)
	checkSequence(t, store, "Restart", writers, tasks)
}

// lossy serves requests with h but, while drop is above zero, cuts the
// connection instead of answering (after h did the request): the client
// never learns that its request was done.
type lossy struct {
	h        http.Handler
	drop     atomic.Int32
	requests atomic.Int32
}

func (l *lossy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	l.requests.Add(1)
	if l.drop.Add(-1) < 0 {
		l.drop.Store(0)
		l.h.ServeHTTP(w, r)
		return
	}
	l.h.ServeHTTP(httptest.NewRecorder(), r)
	if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
		conn.Close()
	}
}

// TestLostAnswers has every write's first answer lost after the service
// did the write: the client sends it again, and the second is not an
// error, and the write is recorded once.
func TestLostAnswers(t *testing.T) {
	store := openStore(t)
	l := &lossy{h: NewHandler(store, Options{Logger: slog.New(slog.DiscardHandler)})}
	srv := httptest.NewServer(l)
	defer srv.Close()
	c, err := NewClientWithOptions(srv.URL, ClientOptions{RetryFor: 10 * time.Second, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a := metadata.Attempt{Flow: "Lost", Run: "1", Step: "start", Task: "0"} // started now, by the client
	done := metadata.Attempt{Flow: "Lost", Run: "1", Step: "start", Task: "0", Status: metadata.Succeeded}
	arts := []metadata.Artifact{{Name: "x", Key: "kx"}}
	for _, w := range []struct {
		name  string
		write func() error
	}{
		{"CreateRun", func() error {
			return c.CreateRun(ctx, &metadata.Run{Flow: "Lost", ID: "1", User: "ann", SystemTags: []string{"user:ann"}, Tags: []string{"a"}})
		}},
		{"AddTags", func() error { return c.AddTags(ctx, "Lost", "1", []string{"b"}) }},
		{"RemoveTags", func() error { return c.RemoveTags(ctx, "Lost", "1", []string{"a"}) }},
		{"Heartbeat", func() error { return c.Heartbeat(ctx, "Lost", "1", time.Time{}) }},
		{"StartAttempt", func() error { return c.StartAttempt(ctx, a) }},
		{"TaskHeartbeat", func() error { return c.TaskHeartbeat(ctx, "Lost", "1", "start", "0", 0, time.Time{}) }},
		{"FinishAttempt", func() error { return c.FinishAttempt(ctx, done, arts) }},
		{"CloneTask", func() error {
			return c.CloneTask(ctx, &metadata.Task{Flow: "Lost", Run: "1", Step: "end", ID: "0", Started: t0, Ended: t0, ClonedFrom: "Lost/9/end/0", Artifacts: arts})
		}},
		{"FinishRun", func() error { return c.FinishRun(ctx, "Lost", "1", metadata.Succeeded, time.Time{}) }},
	} {
		l.requests.Store(0)
		l.drop.Store(1)
		if err := w.write(); err != nil {
			t.Errorf("%s with its first answer lost: %v", w.name, err)
		}
		if n := l.requests.Load(); n != 2 {
			t.Errorf("%s: %d requests, want 2", w.name, n)
		}
	}
	r, err := store.GetRun(ctx, "Lost", "1")
	if err != nil || r.Status != metadata.Succeeded || !slices.Equal(r.Tags, []string{"b"}) || r.Heartbeat.IsZero() {
		t.Errorf("run: %+v, %v", r, err)
	}
	tasks, err := store.ListTasks(ctx, "Lost", "1")
	if err != nil || len(tasks) != 2 {
		t.Fatalf("tasks: %d, %v", len(tasks), err)
	}
	for _, k := range tasks {
		if k.Status != metadata.Succeeded || len(k.Artifacts) != 1 || (k.ClonedFrom == "") != (len(k.Attempts) == 1) {
			t.Errorf("task %s/%s: %+v", k.Step, k.ID, k)
		}
	}
}

// TestClientGivesUp checks what a client says when the service stays away,
// that it honours its context while it waits, and that it does not retry
// what cannot get better.
func TestClientGivesUp(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there
	c, err := NewClientWithOptions("http://"+addr, ClientOptions{RetryFor: 1500 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = c.CreateRun(t.Context(), &metadata.Run{Flow: "F", ID: "1"})
	took := time.Since(start)
	for _, want := range []string{"the metadata service at http://" + addr + " was unreachable for ", "tries", "healthz", "connection refused"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("CreateRun with nothing listening: error %v does not say %q", err, want)
		}
	}
	// How long it tried depends on the machine's load: at least the
	// budget, and not much more than a last backoff past it.
	if !errors.Is(err, ErrUnreachable) || took < 1500*time.Millisecond || took > 30*time.Second {
		t.Errorf("CreateRun with nothing listening: %v after %v; want ErrUnreachable after about 1.5s", err, took)
	}

	// The context ends the wait.
	c, _ = NewClientWithOptions("http://"+addr, ClientOptions{RetryFor: time.Minute, Logger: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start = time.Now()
	_, err = c.ListFlows(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 20*time.Second || !strings.Contains(err.Error(), "gave up waiting") {
		t.Errorf("ListFlows with a context of 300ms: %v after %v", err, time.Since(start))
	}

	// 503 with Retry-After is retried after the wait it asks; a service
	// that keeps answering 503 is given up on, with its message; a 500 is
	// not retried.
	var (
		requests atomic.Int32
		status   atomic.Int32
		times    []time.Time
		mu       sync.Mutex
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		times = append(times, time.Now())
		mu.Unlock()
		if n := requests.Add(1); n <= 2 || status.Load() == 500 {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(int(status.Load()))
			fmt.Fprintf(w, `{"error": "metadata: PostgreSQL is away", "code": %q}`, map[int32]string{503: codeUnavailable, 500: codeInternal}[status.Load()])
			return
		}
		fmt.Fprint(w, `{"flows": ["F"]}`)
	}))
	defer srv.Close()
	c, _ = NewClientWithOptions(srv.URL, ClientOptions{RetryFor: 10 * time.Second, Logger: slog.New(slog.DiscardHandler)})
	status.Store(503)
	flows, err := c.ListFlows(t.Context())
	if err != nil || len(flows) != 1 || requests.Load() != 3 {
		t.Errorf("ListFlows after two 503s: %v, %v, %d requests", flows, err, requests.Load())
	}
	if len(times) == 3 && times[1].Sub(times[0]) < 900*time.Millisecond {
		t.Errorf("the second request came %v after the first, before the Retry-After of 1s", times[1].Sub(times[0]))
	}
	requests.Store(-100)
	c, _ = NewClientWithOptions(srv.URL, ClientOptions{RetryFor: 1500 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	_, err = c.ListFlows(t.Context())
	var se *Error
	if !errors.Is(err, ErrUnreachable) || !errors.As(err, &se) || se.StatusCode != 503 ||
		!strings.Contains(err.Error(), "answered 503 Service Unavailable for 1.5") || !strings.Contains(err.Error(), "its database is away") ||
		!strings.Contains(err.Error(), "PostgreSQL is away") {
		t.Errorf("ListFlows from a service that keeps answering 503: %v", err)
	}
	requests.Store(0)
	status.Store(500)
	_, err = c.ListFlows(t.Context())
	if !errors.As(err, &se) || se.StatusCode != 500 || requests.Load() != 1 || errors.Is(err, ErrUnreachable) {
		t.Errorf("ListFlows from a service answering 500: %v after %d requests; want the error after 1", err, requests.Load())
	}
}
