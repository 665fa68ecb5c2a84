package hosting_test

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
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"stepwise.dev/stepwise"
	_ "stepwise.dev/stepwise/backend/sqlite"
	"stepwise.dev/stepwise/client"
	"stepwise.dev/stepwise/internal/hosting"
	"stepwise.dev/stepwise/steptest"
)

func TestMain(m *testing.M) { steptest.Main(m, &Data{}) }

// Data is the flow served: it stores its parameter Value as X, and fails
// when told to.
type Data struct {
	Value int  `param:"value" help:"the value to store"`
	Fail  bool `param:"fail" help:"fail in start"`
	X     int
	Words []string
}

func (f *Data) Graph(g *stepwise.Graph) {
	g.Step(f.Start).Next(f.End)
	g.Step(f.End)
}

func (f *Data) Start(context.Context) error {
	if f.Fail {
		return errors.New("told to fail")
	}
	f.X = f.Value
	f.Words = []string{"a", strconv.Itoa(f.Value)}
	return nil
}

func (f *Data) End(context.Context) error { return nil }

// Show serves Data.
type Show struct {
	Data    *Data
	started chan struct{} // Hold says it started
	release chan struct{} // Hold and Stuck return once it is closed
}

func (s *Show) Serves(sv *stepwise.Serving) { sv.Flow(&s.Data, "X", "Words") }

// ShowData answers the stored value.
func (s *Show) ShowData(context.Context) (map[string]int, error) {
	return map[string]int{"x": s.Data.X}, nil
}

// AddRequest is what Add takes.
type AddRequest struct {
	N    int      `json:"n"`
	Name string   `json:"name"`
	Tags []string `json:"tags"`
}

// AddResponse is what Add answers.
type AddResponse struct {
	Sum  int    `json:"sum"`
	Name string `json:"name"`
	Tags int    `json:"tags"`
}

// Add adds n to the stored value; a negative n is bad input.
func (s *Show) Add(_ context.Context, req AddRequest) (AddResponse, error) {
	if req.N < 0 {
		return AddResponse{}, fmt.Errorf("n is %d; give a number of 0 or more: %w", req.N, stepwise.ErrBadRequest)
	}
	return AddResponse{Sum: s.Data.X + req.N, Name: req.Name, Tags: len(req.Tags)}, nil
}

// Broken fails with a detail that must not reach the client.
func (s *Show) Broken(context.Context) (int, error) {
	return 0, errors.New("password=hunter2 in the model file")
}

// Panics panics.
func (s *Show) Panics(context.Context) (int, error) { panic("a bug") }

// Stuck ignores its context until released.
func (s *Show) Stuck(context.Context) (int, error) {
	<-s.release
	return 1, nil
}

// Hold says it started, then waits to be released.
func (s *Show) Hold(context.Context) (int, error) {
	s.started <- struct{}{}
	<-s.release
	return s.Data.X, nil
}

// Helper is not an endpoint: it takes no context.
func (s *Show) Helper() int { return 0 }

// env is a datastore, a client on it and a way to run Data.
type env struct {
	ds  string
	c   *client.Client
	log *bytes.Buffer
	mu  *sync.Mutex
}

func newEnv(t testing.TB) *env {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("STEPWISE_CONFIG", filepath.Join(dir, "config.json"))
	t.Setenv("STEPWISE_DATASTORE", "")
	t.Setenv("STEPWISE_METADATA", "")
	t.Setenv("STEPWISE_USER", "ann")
	e := &env{ds: filepath.Join(dir, "ds"), log: &bytes.Buffer{}, mu: &sync.Mutex{}}
	c, err := client.Open(context.Background(), client.Options{Datastore: e.ds, Metadata: "local", Namespace: new(client.Global)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	e.c = c
	return e
}

// run runs Data with value; fail makes it fail.
func (e *env) run(t testing.TB, value int, fail bool, tags ...string) *client.Run {
	t.Helper()
	run, err := stepwise.Run(context.Background(), &Data{}, &stepwise.RunOptions{Datastore: e.ds, Tags: tags,
		Params: map[string]string{"value": strconv.Itoa(value), "fail": strconv.FormatBool(fail)}})
	if fail != (err != nil) {
		t.Fatalf("run with value %d, fail %v: %v", value, fail, err)
	}
	return run
}

// Write is where the server logs go (io.Writer, safe for concurrent use).
func (e *env) Write(p []byte) (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.log.Write(p)
}

func (e *env) logged() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.log.String()
}

// server makes the server of svc with o.
func (e *env) server(t *testing.T, svc *Show, o hosting.Options) *hosting.Server {
	t.Helper()
	def, err := hosting.Describe(svc)
	if err != nil {
		t.Fatal(err)
	}
	o.Client = e.c
	if o.Poll == 0 {
		o.Poll = time.Hour // the tests call Refresh
	}
	o.Logger = slog.New(slog.NewTextHandler(e, nil))
	s, err := hosting.New(def, o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newShow() *Show {
	return &Show{started: make(chan struct{}, 16), release: make(chan struct{})}
}

// call sends a request and returns the status and body.
func call(t *testing.T, method, url, contentType, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestServiceFollowsNewRuns serves the latest run over HTTP, switches to
// a newer one without a restart, and keeps the old one when the newer run
// failed or cannot be loaded.
func TestServiceFollowsNewRuns(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	first := e.run(t, 3, false)
	s := e.server(t, newShow(), hosting.Options{})
	ts := httptest.NewServer(s)
	defer ts.Close()

	if code, body := call(t, "GET", ts.URL+"/show_data", "", ""); code != 503 || !strings.Contains(body, `"code":"not_ready"`) {
		t.Fatalf("before a load: %d %s", code, body)
	}
	if code, body := call(t, "GET", ts.URL+"/readyz", "", ""); code != 503 {
		t.Fatalf("readyz before a load: %d %s", code, body)
	}
	if err := s.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	answer := func(want string) {
		t.Helper()
		code, body := call(t, "GET", ts.URL+"/show_data", "", "")
		if code != 200 || body != want+"\n" {
			t.Fatalf("GET /show_data: %d %q, want 200 %q", code, body, want)
		}
	}
	answer(`{"x":3}`)
	if code, _ := call(t, "GET", ts.URL+"/readyz", "", ""); code != 200 {
		t.Fatalf("readyz after a load: %d", code)
	}

	// A newer run: the same server answers from it.
	second := e.run(t, 5, false)
	if err := s.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	answer(`{"x":5}`)

	// A newer run that failed is not served.
	e.run(t, 7, true)
	if err := s.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	answer(`{"x":5}`)

	// A newer run whose artifact is damaged cannot be loaded: the old run
	// goes on answering, and /metadata says why.
	bad := e.run(t, 99, false)
	end, err := bad.EndTask(ctx)
	if err != nil {
		t.Fatal(err)
	}
	a, err := end.Artifact("X")
	if err != nil {
		t.Fatal(err)
	}
	blob := filepath.Join(e.ds, "blobs", a.Key[:2], a.Key)
	data, err := os.ReadFile(blob)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)-1] ^= 0xff
	if err := os.WriteFile(blob, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.Refresh(ctx); err == nil || !strings.Contains(err.Error(), bad.ID) {
		t.Fatalf("refreshing onto a damaged run: %v, want an error naming run %s", err, bad.ID)
	}
	answer(`{"x":5}`)
	code, body := call(t, "GET", ts.URL+"/metadata", "", "")
	var md struct {
		Flow  string
		Ready bool
		Run   struct {
			ID       string
			Tags     []string
			LoadedAt time.Time `json:"loaded_at"`
		}
		LastError struct{ Run, Error string } `json:"last_error"`
	}
	if err := json.Unmarshal([]byte(body), &md); err != nil || code != 200 {
		t.Fatalf("GET /metadata: %d %s %v", code, body, err)
	}
	if md.Flow != "Data" || !md.Ready || md.Run.ID != second.ID || md.Run.LoadedAt.IsZero() || md.LastError.Run != bad.ID || !strings.Contains(md.LastError.Error, "corrupt") {
		t.Errorf("/metadata after a failed load: %s", body)
	}
	if log := e.logged(); !strings.Contains(log, "cannot switch to the newest run") || !strings.Contains(log, "still_serving="+second.ID) {
		t.Errorf("the failed load is not logged with the run still served:\n%s", log)
	}
	code, body = call(t, "GET", ts.URL+"/metrics", "", "")
	for _, want := range []string{
		`stepwise_service_run_info{flow="Data",run="` + second.ID + `"} 1`,
		`stepwise_service_reloads_total{result="succeeded"} 2`,
		`stepwise_service_reloads_total{result="failed"} 1`,
		`stepwise_service_requests_total{endpoint="show_data",code="200"} 4`,
		`stepwise_service_requests_total{endpoint="show_data",code="503"} 1`,
		`stepwise_service_request_duration_seconds_count{endpoint="show_data"} 5`,
		`stepwise_service_request_duration_seconds_bucket{endpoint="show_data",le="+Inf"} 5`,
		`stepwise_service_requests_total{endpoint="metadata",code="200"} 1`,
	} {
		if code != 200 || !strings.Contains(body, want+"\n") {
			t.Errorf("/metrics lacks %q:\n%s", want, body)
		}
	}
	if first.ID == second.ID {
		t.Fatal("two runs share an id")
	}
}

// TestTagAndFixedRun serves the latest run with a tag, and a fixed run.
func TestTagAndFixedRun(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	tagged := e.run(t, 1, false, "production")
	e.run(t, 2, false)
	tests := []struct {
		name string
		o    hosting.Options
		want string
	}{
		{"latest", hosting.Options{}, `{"x":2}`},
		{"tag", hosting.Options{Tag: "production"}, `{"x":1}`},
		{"fixed run", hosting.Options{Run: tagged.ID}, `{"x":1}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := e.server(t, newShow(), tt.o)
			if err := s.Refresh(ctx); err != nil {
				t.Fatal(err)
			}
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, httptest.NewRequest("GET", "/show_data", nil))
			if rec.Code != 200 || rec.Body.String() != tt.want+"\n" || rec.Header().Get("Stepwise-Run") == "" {
				t.Errorf("%d %q, want %s", rec.Code, rec.Body, tt.want)
			}
		})
	}
	// Taking the tag off the newest run tagged goes back to the one before.
	newest := e.run(t, 3, false, "production")
	s := e.server(t, newShow(), hosting.Options{Tag: "production"})
	showData := func() string {
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequest("GET", "/show_data", nil))
		return rec.Body.String()
	}
	if err := s.Refresh(ctx); err != nil || showData() != "{\"x\":3}\n" {
		t.Fatalf("the newest tagged run: %v %s", err, showData())
	}
	if err := newest.RemoveTags(ctx, "production"); err != nil {
		t.Fatal(err)
	}
	if err := s.Refresh(ctx); err != nil || showData() != "{\"x\":1}\n" {
		t.Fatalf("after the tag was taken off the newest run: %v %s", err, showData())
	}

	s = e.server(t, newShow(), hosting.Options{Tag: "nightly"})
	if err := s.Refresh(ctx); err == nil || !strings.Contains(err.Error(), `no successful run tagged "nightly"`) {
		t.Errorf("a tag no run has: %v", err)
	}
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	if rec.Code != 503 || !strings.Contains(rec.Body.String(), "nightly") {
		t.Errorf("readyz without a run says %d %s", rec.Code, rec.Body)
	}
}

// TestRequests checks what every kind of request gets.
func TestRequests(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.run(t, 10, false)
	svc := newShow()
	defer close(svc.release)
	s := e.server(t, svc, hosting.Options{MaxBody: 64, Timeout: 50 * time.Millisecond})
	if err := s.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	defer ts.Close()
	tests := []struct {
		name, method, path, contentType, body string
		status                                int
		want                                  string // in the body
	}{
		{"GET with query", "GET", "/add?n=5&name=bob", "", "", 200, `{"sum":15,"name":"bob","tags":0}`},
		{"GET with a list", "GET", "/add?n=1&tags=a&tags=b", "", "", 200, `{"sum":11,"name":"","tags":2}`},
		{"GET with a JSON list", "GET", "/add?tags=[\"a\",\"b\",\"c\"]", "", "", 200, `"tags":3`},
		{"GET without query", "GET", "/add", "", "", 200, `{"sum":10,"name":"","tags":0}`},
		{"GET, name case-insensitive", "GET", "/add?N=2", "", "", 200, `"sum":12`},
		{"HEAD", "HEAD", "/show_data", "", "", 200, ``},
		{"POST with JSON", "POST", "/add", "application/json", `{"n": 1, "name": "x"}`, 200, `{"sum":11,"name":"x","tags":0}`},
		{"POST with charset", "POST", "/add", "application/json; charset=utf-8", `{"n": 2}`, 200, `"sum":12`},
		{"POST without a content type", "POST", "/add", "", `{"n": 3}`, 200, `"sum":13`},
		{"POST with an empty body", "POST", "/add", "application/json", ``, 200, `"sum":10`},
		{"POST to an endpoint without request", "POST", "/show_data", "", ``, 200, `{"x":10}`},
		{"unknown endpoint", "GET", "/nope", "", "", 404, `"code":"no_endpoint"`},
		{"unknown endpoint names the endpoints", "GET", "/nope", "", "", 404, `/show_data`},
		{"wrong method", "DELETE", "/add", "", "", 405, `"code":"method_not_allowed"`},
		{"wrong method on healthz", "POST", "/healthz", "", "", 405, `use GET, HEAD`},
		{"malformed JSON", "POST", "/add", "application/json", `{"n": `, 400, `not valid JSON`},
		{"JSON syntax error", "POST", "/add", "application/json", `{n: 1}`, 400, `not valid JSON`},
		{"wrong type in JSON", "POST", "/add", "application/json", `{"n": "five"}`, 400, `field n wants a int`},
		{"unknown field in JSON", "POST", "/add", "application/json", `{"m": 1}`, 400, `unknown field`},
		{"two JSON values", "POST", "/add", "application/json", `{"n": 1} {"n": 2}`, 400, `more data after the JSON value`},
		{"oversized body", "POST", "/add", "application/json", `{"name": "` + strings.Repeat("x", 100) + `"}`, 413, `larger than this service takes (64 bytes)`},
		{"not JSON", "POST", "/add", "text/plain", `n=1`, 415, `send JSON`},
		{"bad query value", "GET", "/add?n=five", "", "", 400, `field n wants a int`},
		{"unknown query parameter", "GET", "/add?m=1", "", "", 400, `unknown parameter \"m\": this endpoint takes n, name, tags`},
		{"parameter given twice", "GET", "/add?n=1&n=2", "", "", 400, `given 2 times`},
		{"bad query escape", "GET", "/add?n=%zz", "", "", 400, `bad_request`},
		{"query to an endpoint without request", "GET", "/show_data?x=1", "", "", 400, `takes no parameters`},
		{"body to an endpoint without request", "POST", "/show_data", "", `{"x": 1}`, 400, `takes no request`},
		{"query and body", "POST", "/add?n=1", "", `{"n": 1}`, 400, `both a query and a body`},
		{"bad input said by the method", "GET", "/add?n=-1", "", "", 400, `n is -1; give a number of 0 or more: bad request`},
		{"the method's failure", "GET", "/broken", "", "", 500, `/broken failed; the service's log has the detail under failure 1`},
		{"a panic", "GET", "/panics", "", "", 500, `/panics failed`},
		{"past the time limit", "GET", "/stuck", "", "", 504, `took longer than its time limit of 50ms`},
		{"healthz", "GET", "/healthz", "", "", 200, `{"status":"ok"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := call(t, tt.method, ts.URL+tt.path, tt.contentType, tt.body)
			if code != tt.status || !strings.Contains(body, tt.want) {
				t.Errorf("%s %s: %d %s, want %d with %s", tt.method, tt.path, code, body, tt.status, tt.want)
			}
			if code != 200 && tt.method != "HEAD" {
				var eb struct{ Error, Code string }
				if err := json.Unmarshal([]byte(body), &eb); err != nil || eb.Error == "" || eb.Code == "" {
					t.Errorf("error answer is not JSON with error and code: %s", body)
				}
			}
		})
	}
	log := e.logged()
	if !strings.Contains(log, "password=hunter2") || !strings.Contains(log, "failure 1") || !strings.Contains(log, "a bug") {
		t.Errorf("the method's failure and the panic are not in the log:\n%s", log)
	}
	for _, tt := range tests {
		if tt.status == 500 {
			_, body := call(t, tt.method, ts.URL+tt.path, tt.contentType, tt.body)
			if strings.Contains(body, "hunter2") || strings.Contains(body, "a bug") {
				t.Errorf("a failure's detail reached the client: %s", body)
			}
		}
	}
	_, metrics := call(t, "GET", ts.URL+"/metrics", "", "")
	for _, want := range []string{
		`stepwise_service_requests_total{endpoint="_unknown",code="404"} 2`, // unknown paths share one label
		`stepwise_service_requests_total{endpoint="add",code="413"} 1`,
		`stepwise_service_requests_total{endpoint="stuck",code="504"} 1`,
		`stepwise_service_requests_total{endpoint="broken",code="500"} 2`,
	} {
		if !strings.Contains(metrics, want+"\n") {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if !strings.Contains(log, "level=INFO msg=request method=GET path=/add endpoint=add status=200") {
		t.Errorf("no access log line for a request:\n%s", log)
	}
}

// TestTokens checks bearer tokens: endpoints, /metadata and /metrics need
// one; the probes do not.
func TestTokens(t *testing.T) {
	e := newEnv(t)
	e.run(t, 4, false)
	s := e.server(t, newShow(), hosting.Options{Tokens: []string{"good-token"}})
	if err := s.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path, auth string
		status     int
	}{
		{"/show_data", "", 401},
		{"/show_data", "Bearer wrong", 401},
		{"/show_data", "Basic Z29vZA==", 401},
		{"/show_data", "Bearer good-token", 200},
		{"/metrics", "", 401},
		{"/metadata", "", 401},
		{"/nope", "", 401},
		{"/healthz", "", 200},
		{"/readyz", "", 200},
	}
	for _, tt := range tests {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", tt.path, nil)
		if tt.auth != "" {
			req.Header.Set("Authorization", tt.auth)
		}
		s.ServeHTTP(rec, req)
		if rec.Code != tt.status {
			t.Errorf("GET %s with %q: %d %s, want %d", tt.path, tt.auth, rec.Code, rec.Body, tt.status)
		}
	}
}

// TestGracefulShutdown stops a serving server while requests are in
// flight: every one of them is answered, then Serve returns.
func TestGracefulShutdown(t *testing.T) {
	e := newEnv(t)
	e.run(t, 8, false)
	svc := newShow()
	s := e.server(t, svc, hosting.Options{})
	if err := s.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, l, hosting.ServeOptions{}) }()

	const n = 8
	type got struct {
		code int
		body string
		err  error
	}
	answers := make(chan got, n)
	for range n {
		go func() {
			resp, err := http.Get("http://" + addr + "/hold")
			if err != nil {
				answers <- got{err: err}
				return
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			answers <- got{resp.StatusCode, string(b), err}
		}()
	}
	for range n {
		<-svc.started
	}
	cancel() // as SIGTERM does
	// The listener closes first: wait until no new connection is taken.
	for {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			break
		}
		c.Close()
		time.Sleep(5 * time.Millisecond)
	}
	close(svc.release)
	for range n {
		a := <-answers
		if a.err != nil || a.code != 200 || a.body != "8\n" {
			t.Errorf("a request in flight at shutdown got %d %q %v", a.code, a.body, a.err)
		}
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve after a graceful shutdown: %v", err)
	}
	if log := e.logged(); !strings.Contains(log, "shutting down") || !strings.Contains(log, "shut down") {
		t.Errorf("the shutdown is not logged:\n%s", log)
	}
}

// TestSlowHeaderIsCut checks the read-header timeout: a client that never
// finishes its request's header is disconnected.
func TestSlowHeaderIsCut(t *testing.T) {
	e := newEnv(t)
	e.run(t, 1, false)
	s := e.server(t, newShow(), hosting.Options{})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() {
		served <- s.Serve(ctx, l, hosting.ServeOptions{ReadHeaderTimeout: 100 * time.Millisecond})
	}()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /show_data HTTP/1.1\r\nHost: x\r\n") // no blank line: the header never ends
	b, err := io.ReadAll(c)                                  // returns when the server closes the connection
	if err != nil && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("reading from a connection with a slow header: %v", err)
	}
	if len(b) > 0 && !strings.Contains(string(b), "408") && !strings.Contains(string(b), "400") {
		t.Errorf("a slow header got %q", b)
	}
	cancel()
	if err := <-served; err != nil {
		t.Fatal(err)
	}
}

// TestBadServices checks that services that cannot work are refused
// before they serve, each problem named.
func TestBadServices(t *testing.T) {
	tests := []struct {
		name string
		svc  any
		want string
	}{
		{"no flow", &NoFlow{}, "serves no flow: call Flow in its Serves method"},
		{"not a field", &Elsewhere{}, "points elsewhere"},
		{"not a flow", &NotFlow{}, "must be a pointer to a flow"},
		{"unknown artifact", &UnknownArtifact{}, `flow Data has no artifact "Nope"`},
		{"bad signature", &BadSignature{}, "method Get of BadSignature has signature func(context.Context) int"},
		{"reserved path", &Reserved{}, "would be answered at /healthz"},
		{"not a service", &Data{}, "is not a service"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := hosting.Describe(tt.svc)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Describe: %v, want %q", err, tt.want)
			}
		})
	}
}

type NoFlow struct{ D *Data }

func (s *NoFlow) Serves(*stepwise.Serving)                  {}
func (s *NoFlow) Get(context.Context) (int, error)          { return 0, nil }
func (s *Elsewhere) Serves(sv *stepwise.Serving)            { sv.Flow(new(*Data)) }
func (s *Elsewhere) Get(context.Context) (int, error)       { return 0, nil }
func (s *NotFlow) Serves(sv *stepwise.Serving)              { sv.Flow(&s.D) }
func (s *NotFlow) Get(context.Context) (int, error)         { return 0, nil }
func (s *UnknownArtifact) Serves(sv *stepwise.Serving)      { sv.Flow(&s.D, "X", "Nope") }
func (s *UnknownArtifact) Get(context.Context) (int, error) { return 0, nil }
func (s *BadSignature) Serves(sv *stepwise.Serving)         { sv.Flow(&s.D) }
func (s *BadSignature) Get(context.Context) int             { return 0 }
func (s *Reserved) Serves(sv *stepwise.Serving)             { sv.Flow(&s.D) }
func (s *Reserved) Healthz(context.Context) (int, error)    { return 0, nil }

type Elsewhere struct{ D *Data }
type NotFlow struct{ D *int }
type UnknownArtifact struct{ D *Data }
type BadSignature struct{ D *Data }
type Reserved struct{ D *Data }

// TestRequestsInFlightFinishOnTheirRun switches to a newer run while
// requests are in flight: they answer from the run they started on, and
// the requests after the switch from the new one.
func TestRequestsInFlightFinishOnTheirRun(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.run(t, 1, false)
	svc := newShow()
	s := e.server(t, svc, hosting.Options{})
	if err := s.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	defer ts.Close()
	const n = 4
	answers := make(chan string, n)
	for range n {
		go func() {
			resp, err := http.Get(ts.URL + "/hold")
			if err != nil {
				answers <- err.Error()
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			answers <- string(b)
		}()
	}
	for range n {
		<-svc.started
	}
	e.run(t, 2, false)
	if err := s.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if code, body := call(t, "GET", ts.URL+"/show_data", "", ""); code != 200 || body != "{\"x\":2}\n" {
		t.Errorf("after the switch: %d %q", code, body)
	}
	close(svc.release)
	for range n {
		if a := <-answers; a != "1\n" {
			t.Errorf("a request in flight during the switch answered %q, want 1 (its run's)", a)
		}
	}
}

// TestCommand runs the service program's command line in this process.
func TestCommand(t *testing.T) {
	newEnv(t)
	def, err := hosting.Describe(newShow())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args   []string
		code   int
		stdout string // in the output
		stderr string
	}{
		{[]string{"show"}, 0, "/show_data  ShowData  -", ""},
		{[]string{"show", "--json"}, 0, `"path": "/add"`, ""},
		{[]string{"show", "x"}, 2, "", `unexpected argument "x"`},
		{[]string{"help"}, 0, "Commands of the service Show, which serves runs of flow Data", ""},
		{nil, 2, "", "usage:"},
		{[]string{"check"}, 0, "flow Data: 2 steps, graph OK", ""}, // the flow's own command
		{[]string{"serve", "--addr", ":0"}, 2, "", "refusing to serve on :0 without tokens"},
		{[]string{"serve", "--token=secret"}, 2, "", "tokens are not taken on the command line"},
		{[]string{"serve", "--tag", "a", "--run", "1"}, 2, "", "not both"},
		{[]string{"serve", "--run", "01"}, 2, "", "--run: run id"},
		{[]string{"serve", "--tag", " a"}, 2, "", "--tag: tag"},
		{[]string{"serve", "--poll", "0s"}, 2, "", "must be more than 0"},
		{[]string{"serve", "--tls-cert", "c.pem"}, 2, "", "needs both --tls-cert and --tls-key"},
		{[]string{"serve", "--nope"}, 2, "", "flag provided but not defined: -nope"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := hosting.Command(context.Background(), def, tt.args, &out, &errOut)
			if code != tt.code || !strings.Contains(out.String(), tt.stdout) || !strings.Contains(errOut.String(), tt.stderr) {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, out.String(), errOut.String())
			}
			if strings.Contains(errOut.String(), "secret") {
				t.Errorf("the token was echoed: %s", errOut.String())
			}
		})
	}
}
