package hosting

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"reflect"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"stepwise.dev/stepwise/client"
	"stepwise.dev/stepwise/internal/bearer"
)

// Defaults of Options.
const (
	DefaultPoll    = 10 * time.Second
	DefaultTimeout = 10 * time.Second
	DefaultMaxBody = 1 << 20
)

// Options configure a Server.
type Options struct {
	// Client reads the runs, in its namespace.
	Client *client.Client
	// Tag, when set, serves the latest successful run with this tag.
	Tag string
	// Run, when set, serves this run and no other.
	Run string
	// Poll is how often to look for a newer run (DefaultPoll if 0).
	Poll time.Duration
	// Timeout bounds each request's method (DefaultTimeout if 0); past it
	// the client gets 504 and the method's context is canceled.
	Timeout time.Duration
	// MaxBody is the largest request body in bytes (DefaultMaxBody if 0).
	MaxBody int64
	// Tokens, when any, are the bearer tokens the endpoints, /metadata and
	// /metrics need; /healthz and /readyz never need one (probes).
	Tokens []string
	// Logger gets a line per request and every reload; nil means
	// slog.Default().
	Logger *slog.Logger
}

func (o *Options) validate() error {
	var errs []error
	if o.Client == nil {
		errs = append(errs, errors.New("no client to read runs with"))
	}
	if o.Tag != "" && o.Run != "" {
		errs = append(errs, errors.New("both a tag and a run are given; a service follows the latest run with a tag, or serves one run: give one"))
	}
	if o.Poll < 0 || o.Timeout < 0 || o.MaxBody < 0 {
		errs = append(errs, errors.New("Poll, Timeout and MaxBody cannot be negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("hosting: bad options: %w", err)
	}
	return nil
}

// Server answers a service's endpoints from the run it has loaded.
type Server struct {
	def     *Def
	o       Options
	log     *slog.Logger
	tokens  bearer.Set
	paths   map[string]int // endpoint index by path
	metrics *metrics
	cur     atomic.Pointer[snapshot]
	ids     atomic.Uint64 // numbers failures in the log and in answers

	mu       sync.Mutex // serializes loads; guards lastErr
	lastErr  *loadError
	notReady string // why no run is served yet, while none is
}

// orDefault sets *v to d when it is the zero value.
func orDefault[T comparable](v *T, d T) {
	var zero T
	if *v == zero {
		*v = d
	}
}

// snapshot is one loaded run: the service value that answers from it and
// its bound methods. A request keeps the snapshot it started with.
type snapshot struct {
	run     *client.Run
	methods []reflect.Value // by endpoint index
	loaded  time.Time
}

// loadError is the last load that failed, shown in /metadata.
type loadError struct {
	Run   string    `json:"run,omitempty"`
	Error string    `json:"error"`
	At    time.Time `json:"at"`
}

// New makes the server of def. It serves nothing until Refresh (or
// Follow) has loaded a run.
func New(def *Def, o Options) (*Server, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	orDefault(&o.Poll, DefaultPoll)
	orDefault(&o.Timeout, DefaultTimeout)
	orDefault(&o.MaxBody, DefaultMaxBody)
	s := &Server{def: def, o: o, log: o.Logger, paths: map[string]int{}, notReady: "no run loaded yet"}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.tokens = bearer.NewSet(o.Tokens, s.log)
	var labels []string
	for i, e := range def.Endpoints {
		s.paths[e.Path] = i
		labels = append(labels, e.Name)
	}
	s.metrics = newMetrics(append(labels, "healthz", "readyz", "metadata", "metrics", unknownPath))
	return s, nil
}

// Follow loads the run to serve, then looks for a newer one every Poll
// until ctx is done. A load that fails is logged and shown in /metadata;
// the run served before it goes on being served.
func (s *Server) Follow(ctx context.Context) {
	t := time.NewTicker(s.o.Poll)
	defer t.Stop()
	for {
		_ = s.Refresh(ctx) // logged and kept by Refresh
		if s.o.Run != "" && s.cur.Load() != nil {
			return // a fixed run: nothing newer to follow
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Refresh looks for the run to serve now and, when it is not the one
// served, loads it and switches to it. The run to serve may be older than
// the one served: when the tag followed is taken off the newest run, the
// service goes back to the newest run that still has it. It returns the
// look-up's or the load's error, which leaves the served run in place.
func (s *Server) Refresh(ctx context.Context) error {
	run, err := s.find(ctx)
	if err != nil {
		s.failed("", err)
		return err
	}
	if cur := s.cur.Load(); cur != nil && cur.run.ID == run.ID {
		return nil
	}
	return s.Load(ctx, run)
}

// find returns the run that should be served.
func (s *Server) find(ctx context.Context) (*client.Run, error) {
	flow := s.o.Client.Flow(s.def.Flow.Name())
	if s.o.Run != "" {
		run, err := flow.Run(ctx, s.o.Run)
		if err != nil {
			return nil, err
		}
		if !run.Successful() {
			return nil, fmt.Errorf("run %s is %s, not succeeded; serve a run that succeeded", run.Pathspec(), run.Status)
		}
		return run, nil
	}
	f := client.Filter{Status: client.Succeeded, Limit: 1}
	if s.o.Tag != "" {
		f.Tags = []string{s.o.Tag}
	}
	runs, err := flow.Runs(ctx, f)
	if err != nil {
		return nil, err
	}
	if len(runs) == 0 {
		what := "no successful run"
		if s.o.Tag != "" {
			what += " tagged " + strconv.Quote(s.o.Tag)
		}
		ns := s.o.Client.Namespace()
		if ns == client.Global {
			ns = "global"
		}
		return nil, fmt.Errorf("flow %s has %s in namespace %s; run it (or tag a run), or serve another namespace with --namespace: %w", flow.Name, what, ns, client.ErrNotFound)
	}
	return runs[0], nil
}

// Load loads the artifacts of run and switches to it. Requests already
// answered from the run served before finish on it. On failure the run
// served stays, and the error is logged and kept for /metadata.
func (s *Server) Load(ctx context.Context, run *client.Run) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	start := time.Now()
	snap, err := s.load(ctx, run)
	if err != nil {
		s.metrics.reloadsKO.Add(1)
		s.failedLocked(run.ID, err)
		return err
	}
	prev := s.cur.Swap(snap)
	s.lastErr, s.notReady = nil, ""
	s.metrics.reloadsOK.Add(1)
	attrs := []any{"flow", run.Flow, "run", run.ID, "tags", run.Tags, "took", time.Since(start)}
	if prev != nil {
		attrs = append(attrs, "previous", prev.run.ID)
	}
	s.log.Info("hosting: serving run", attrs...)
	return nil
}

// load reads the run's artifacts into a new flow value, and makes the
// service value that answers from it.
func (s *Server) load(ctx context.Context, run *client.Run) (*snapshot, error) {
	end, err := run.EndTask(ctx)
	if err != nil {
		return nil, fmt.Errorf("hosting: cannot load run %s: %w", run.Pathspec(), err)
	}
	flow := reflect.New(s.def.Flow.Type.Elem())
	names := s.def.Artifacts
	if names == nil {
		for _, a := range end.Artifacts {
			if f, ok := flow.Elem().Type().FieldByName(a.Name); ok && f.IsExported() {
				names = append(names, a.Name)
			}
		}
	}
	for _, name := range names {
		if err := end.Decode(ctx, name, flow.Elem().FieldByName(name).Addr().Interface()); err != nil {
			return nil, fmt.Errorf("hosting: cannot load run %s: %w", run.Pathspec(), err)
		}
	}
	svc := reflect.New(s.def.Type.Elem())
	svc.Elem().Set(s.def.Defaults.Elem())
	svc.Elem().Field(s.def.FlowField).Set(flow)
	snap := &snapshot{run: run, loaded: time.Now().UTC()}
	for _, e := range s.def.Endpoints {
		snap.methods = append(snap.methods, svc.Method(e.index))
	}
	return snap, nil
}

func (s *Server) failed(run string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failedLocked(run, err)
}

// failedLocked logs a failed look-up or load (once per distinct error, so
// that a poll does not repeat it) and keeps it for /metadata.
func (s *Server) failedLocked(run string, err error) {
	if s.lastErr == nil || s.lastErr.Error != err.Error() {
		attrs := []any{"flow", s.def.Flow.Name(), "error", err.Error()}
		if cur := s.cur.Load(); cur != nil {
			attrs = append(attrs, "still_serving", cur.run.ID)
		}
		if run != "" {
			attrs = append(attrs, "run", run)
		}
		s.log.Error("hosting: cannot switch to the newest run", attrs...)
	}
	s.lastErr = &loadError{Run: run, Error: err.Error(), At: time.Now().UTC()}
	if s.cur.Load() == nil {
		s.notReady = err.Error()
	}
}

// apiError is an error answer.
type apiError struct {
	status int
	code   string
	msg    string
	cause  error // logged, never sent
}

// errorBody is the body of every error answer.
type errorBody struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

// unknownPath labels the requests to paths that are not endpoints; no
// endpoint's name can be it (names start with a letter).
const unknownPath = "_unknown"

// answer is what a request got, for the access log and the metrics.
type answer struct {
	status   int
	endpoint string
	err      *apiError
	bytes    int
}

// ServeHTTP answers a request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	a := answer{endpoint: unknownPath}
	defer func() {
		took := time.Since(start)
		s.metrics.endpoints[a.endpoint].observe(a.status, took)
		s.logRequest(r, &a, took)
	}()
	s.route(w, r, &a)
}

func (s *Server) route(w http.ResponseWriter, r *http.Request, a *answer) {
	if i, ok := s.paths[r.URL.Path]; ok {
		a.endpoint = s.def.Endpoints[i].Name
		if !s.authorized(w, r, a) {
			return
		}
		s.endpoint(w, r, i, a)
		return
	}
	switch r.URL.Path {
	case "/healthz", "/readyz":
		a.endpoint = r.URL.Path[1:]
		if !s.method(w, r, a, http.MethodGet, http.MethodHead) {
			return
		}
		if r.URL.Path == "/readyz" && s.cur.Load() == nil {
			s.mu.Lock()
			why := s.notReady
			s.mu.Unlock()
			s.fail(w, a, &apiError{status: http.StatusServiceUnavailable, code: "not_ready", msg: "not ready: " + why})
			return
		}
		s.write(w, a, http.StatusOK, []byte("{\"status\":\"ok\"}\n"))
	case "/metadata":
		a.endpoint = "metadata"
		if s.method(w, r, a, http.MethodGet, http.MethodHead) && s.authorized(w, r, a) {
			s.metadata(w, a)
		}
	case "/metrics":
		a.endpoint = "metrics"
		if s.method(w, r, a, http.MethodGet, http.MethodHead) && s.authorized(w, r, a) {
			var b bytes.Buffer
			s.metrics.write(&b, s.served())
			w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
			w.WriteHeader(http.StatusOK)
			n, _ := w.Write(b.Bytes())
			a.status, a.bytes = http.StatusOK, n
		}
	default:
		if !s.authorized(w, r, a) {
			return
		}
		names := make([]string, 0, len(s.def.Endpoints))
		for _, e := range s.def.Endpoints {
			names = append(names, e.Path)
		}
		s.fail(w, a, &apiError{status: http.StatusNotFound, code: "no_endpoint",
			msg: fmt.Sprintf("service %s has no endpoint %s; its endpoints are %v, and /healthz, /readyz, /metadata, /metrics", s.def.Name, r.URL.EscapedPath(), names)})
	}
}

// authorized checks the bearer token, and answers 401 when it is not good.
func (s *Server) authorized(w http.ResponseWriter, r *http.Request, a *answer) bool {
	msg := s.tokens.Check(r.Header.Get("Authorization"), "this service")
	if msg == "" {
		return true
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="stepwise-service"`)
	s.fail(w, a, &apiError{status: http.StatusUnauthorized, code: "unauthorized", msg: msg})
	return false
}

// method checks the request's method, and answers 405 when it is not one
// of allowed.
func (s *Server) method(w http.ResponseWriter, r *http.Request, a *answer, allowed ...string) bool {
	for _, m := range allowed {
		if r.Method == m {
			return true
		}
	}
	allow := ""
	for i, m := range allowed {
		if i > 0 {
			allow += ", "
		}
		allow += m
	}
	w.Header().Set("Allow", allow)
	s.fail(w, a, &apiError{status: http.StatusMethodNotAllowed, code: "method_not_allowed",
		msg: fmt.Sprintf("%s is not allowed on %s; use %s", r.Method, r.URL.EscapedPath(), allow)})
	return false
}

// result is what an endpoint's method returned.
type result struct {
	out   any
	err   error
	panic any
	stack []byte
}

// endpoint answers endpoint i: it decodes the request, calls the method
// on the snapshot served now, within the time limit, and encodes what it
// returns.
func (s *Server) endpoint(w http.ResponseWriter, r *http.Request, i int, a *answer) {
	e := &s.def.Endpoints[i]
	if !s.method(w, r, a, http.MethodGet, http.MethodHead, http.MethodPost) {
		return
	}
	snap := s.cur.Load()
	if snap == nil {
		s.mu.Lock()
		why := s.notReady
		s.mu.Unlock()
		s.fail(w, a, &apiError{status: http.StatusServiceUnavailable, code: "not_ready", msg: "no run is served yet: " + why})
		return
	}
	args := make([]reflect.Value, 1, 2)
	if e.Request != nil {
		req, aerr := s.request(w, r, e)
		if aerr != nil {
			s.fail(w, a, aerr)
			return
		}
		args = append(args, req)
	} else if aerr := s.noRequest(w, r, e); aerr != nil {
		s.fail(w, a, aerr)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.o.Timeout)
	defer cancel()
	args[0] = reflect.ValueOf(ctx)
	done := make(chan result, 1)
	go func() {
		defer func() {
			if v := recover(); v != nil {
				done <- result{panic: v, stack: debug.Stack()}
			}
		}()
		out := snap.methods[i].Call(args)
		err, _ := out[1].Interface().(error)
		done <- result{out: out[0].Interface(), err: err}
	}()
	var res result
	select {
	case res = <-done:
	case <-ctx.Done():
		if r.Context().Err() != nil {
			a.status = 499 // the client went away; nothing to answer
			return
		}
		s.fail(w, a, &apiError{status: http.StatusGatewayTimeout, code: "timeout",
			msg: fmt.Sprintf("%s took longer than its time limit of %s; try again, or ask for less", e.Path, s.o.Timeout)})
		return
	}
	switch {
	case res.panic != nil:
		s.fail(w, a, s.internal(e, fmt.Errorf("panic: %v\n%s", res.panic, res.stack)))
		return
	case res.err != nil && errors.Is(res.err, ErrBadRequest):
		s.fail(w, a, &apiError{status: http.StatusBadRequest, code: "bad_request", msg: res.err.Error()})
		return
	case res.err != nil && errors.Is(res.err, context.DeadlineExceeded) && ctx.Err() != nil:
		s.fail(w, a, &apiError{status: http.StatusGatewayTimeout, code: "timeout",
			msg: fmt.Sprintf("%s took longer than its time limit of %s; try again, or ask for less", e.Path, s.o.Timeout)})
		return
	case res.err != nil:
		s.fail(w, a, s.internal(e, res.err))
		return
	}
	body, err := json.Marshal(res.out)
	if err != nil {
		s.fail(w, a, s.internal(e, fmt.Errorf("its answer, a %s, cannot be encoded as JSON: %w", e.Response, err)))
		return
	}
	w.Header().Set("Stepwise-Run", snap.run.ID)
	s.write(w, a, http.StatusOK, append(body, '\n'))
}

// internal is a failure of an endpoint's own method: the client is told
// that it failed and under which number the log has the detail.
func (s *Server) internal(e *Endpoint, err error) *apiError {
	id := s.ids.Add(1)
	return &apiError{status: http.StatusInternalServerError, code: "internal", cause: fmt.Errorf("failure %d: %w", id, err),
		msg: fmt.Sprintf("%s failed; the service's log has the detail under failure %d", e.Path, id)}
}

// noRequest refuses input to an endpoint that takes none.
func (s *Server) noRequest(w http.ResponseWriter, r *http.Request, e *Endpoint) *apiError {
	if r.URL.RawQuery != "" {
		return &apiError{status: http.StatusBadRequest, code: "bad_request", msg: fmt.Sprintf("%s takes no parameters; call it without a query", e.Path)}
	}
	if r.Method == http.MethodPost {
		body, aerr := s.body(w, r)
		if aerr != nil {
			return aerr
		}
		if len(bytes.TrimSpace(body)) > 0 && !bytes.Equal(bytes.TrimSpace(body), []byte("{}")) && !bytes.Equal(bytes.TrimSpace(body), []byte("null")) {
			return &apiError{status: http.StatusBadRequest, code: "bad_request", msg: fmt.Sprintf("%s takes no request; send an empty body", e.Path)}
		}
	}
	return nil
}

// request decodes the request of endpoint e: from the query of a GET, or
// the JSON body of a POST.
func (s *Server) request(w http.ResponseWriter, r *http.Request, e *Endpoint) (reflect.Value, *apiError) {
	v := reflect.New(e.Request)
	var data []byte
	from := "query"
	if r.Method == http.MethodPost {
		body, aerr := s.body(w, r)
		if aerr != nil {
			return reflect.Value{}, aerr
		}
		data, from = body, "body"
		if r.URL.RawQuery != "" {
			return reflect.Value{}, &apiError{status: http.StatusBadRequest, code: "bad_request",
				msg: fmt.Sprintf("%s got both a query and a body; send the request in one of them", e.Path)}
		}
	} else if r.URL.RawQuery != "" {
		q, err := url.ParseQuery(r.URL.RawQuery)
		if err == nil {
			data, err = queryJSON(q, e.Request)
		}
		if err != nil {
			return reflect.Value{}, &apiError{status: http.StatusBadRequest, code: "bad_request", msg: fmt.Sprintf("%s: %v", e.Path, err)}
		}
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return v.Elem(), nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	err := dec.Decode(v.Interface())
	if err == nil && dec.More() {
		err = errors.New("more data after the JSON value")
	} else if err == nil {
		if _, terr := dec.Token(); terr != io.EOF {
			err = errors.New("more data after the JSON value")
		}
	}
	if err != nil {
		return reflect.Value{}, &apiError{status: http.StatusBadRequest, code: "bad_request",
			msg: fmt.Sprintf("%s takes a %s; the request's %s does not fit it: %s", e.Path, e.Request, from, jsonMessage(err))}
	}
	return v.Elem(), nil
}

// jsonMessage says what is wrong with a request's JSON for people.
func jsonMessage(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("it is not valid JSON (%v, at byte %d)", se, se.Offset)
	case errors.As(err, &te) && te.Field != "":
		return fmt.Sprintf("field %s wants a %s, got a JSON %s", te.Field, te.Type, te.Value)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "it is not valid JSON (it ends too soon)"
	}
	return err.Error()
}

// body reads a POST's body, up to MaxBody, declared as JSON (or not
// declared).
func (s *Server) body(w http.ResponseWriter, r *http.Request) ([]byte, *apiError) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return nil, &apiError{status: http.StatusUnsupportedMediaType, code: "unsupported_media_type",
				msg: fmt.Sprintf("the body is declared as %q; send JSON, with Content-Type: application/json", ct)}
		}
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.o.MaxBody))
	if err != nil {
		if mbe, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, &apiError{status: http.StatusRequestEntityTooLarge, code: "too_large",
				msg: fmt.Sprintf("the body is larger than this service takes (%d bytes); send less", mbe.Limit)}
		}
		return nil, &apiError{status: http.StatusBadRequest, code: "bad_request", msg: "the body could not be read: " + err.Error()}
	}
	return data, nil
}

// metadata answers what is served.
func (s *Server) metadata(w http.ResponseWriter, a *answer) {
	type runInfo struct {
		ID       string    `json:"id"`
		Tags     []string  `json:"tags"`
		Started  time.Time `json:"started"`
		Ended    time.Time `json:"ended"`
		LoadedAt time.Time `json:"loaded_at"`
	}
	out := struct {
		Service   string     `json:"service"`
		Flow      string     `json:"flow"`
		Namespace string     `json:"namespace"`
		Tag       string     `json:"tag,omitempty"`
		Fixed     string     `json:"fixed_run,omitempty"`
		Ready     bool       `json:"ready"`
		Run       *runInfo   `json:"run"`
		LastError *loadError `json:"last_error,omitempty"`
		Endpoints []string   `json:"endpoints"`
	}{Service: s.def.Name, Flow: s.def.Flow.Name(), Namespace: s.o.Client.Namespace(), Tag: s.o.Tag, Fixed: s.o.Run, Endpoints: []string{}}
	if out.Namespace == client.Global {
		out.Namespace = "global"
	}
	if snap := s.cur.Load(); snap != nil {
		out.Ready = true
		out.Run = &runInfo{ID: snap.run.ID, Tags: snap.run.Tags, Started: snap.run.Started, Ended: snap.run.Ended, LoadedAt: snap.loaded}
	}
	s.mu.Lock()
	out.LastError = s.lastErr
	s.mu.Unlock()
	for _, e := range s.def.Endpoints {
		out.Endpoints = append(out.Endpoints, e.Path)
	}
	body, _ := json.MarshalIndent(out, "", "  ")
	s.write(w, a, http.StatusOK, append(body, '\n'))
}

// served is what the metrics say of the run served.
func (s *Server) served() served {
	snap := s.cur.Load()
	if snap == nil {
		return served{}
	}
	return served{flow: snap.run.Flow, run: snap.run.ID, loaded: snap.loaded, ready: true}
}

// write writes a JSON answer.
func (s *Server) write(w http.ResponseWriter, a *answer, status int, body []byte) {
	h := w.Header()
	h["Content-Type"] = jsonType
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	w.WriteHeader(status)
	a.status = status
	a.bytes, _ = w.Write(body)
}

var jsonType = []string{"application/json"}

// fail writes an error answer.
func (s *Server) fail(w http.ResponseWriter, a *answer, e *apiError) {
	a.err = e
	body, _ := json.Marshal(errorBody{Error: e.msg, Code: e.code})
	w.Header().Set("Cache-Control", "no-store")
	s.write(w, a, e.status, append(body, '\n'))
}

// logRequest writes the access log line of a request.
func (s *Server) logRequest(r *http.Request, a *answer, took time.Duration) {
	level := slog.LevelInfo
	attrs := []slog.Attr{slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.String("endpoint", a.endpoint),
		slog.Int("status", a.status), slog.Duration("took", took), slog.Int("bytes", a.bytes), slog.String("remote", r.RemoteAddr)}
	if a.err != nil {
		attrs = append(attrs, slog.String("error", a.err.msg))
		if a.err.cause != nil {
			level = slog.LevelError
			attrs = append(attrs, slog.String("cause", a.err.cause.Error()))
		}
	}
	if !s.log.Enabled(r.Context(), level) {
		return
	}
	s.log.LogAttrs(r.Context(), level, "request", attrs...)
}
