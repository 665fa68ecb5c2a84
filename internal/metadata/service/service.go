// Package service is the metadata service: a metadata.Store served over
// HTTP with JSON, so that launchers and task processes on many machines
// record into one store (package postgres), and a Client that implements
// metadata.Store over it. The routes, bodies and errors are described in
// docs/metadata-api.yaml (OpenAPI 3.0).
//
// Serving:
//
//	store, err := postgres.Open(ctx, dsn)
//	...
//	h := service.NewHandler(store, service.Options{Tokens: tokens})
//	err = service.Serve(ctx, ":8080", h) // until ctx is done
//
// Using:
//
//	c, err := service.NewClient("https://metadata.example.com", token, nil)
//	var s metadata.Store = c
//
// Every request but GET /healthz needs Authorization: Bearer <token> when
// the service has tokens; across a network, serve over TLS (ServeOptions)
// so that tokens do not travel in clear text. Web pages cannot write
// through a visitor's browser: every POST must declare its body as JSON
// (415 otherwise), which a browser does not send to another site without
// its consent, and writes a browser marks as cross-origin are refused
// (403). Errors are JSON objects {"error": "...", "code":
// "..."} whose message says what happened and what to do; bad input gets a
// 4xx status, never 500, which is kept for failures of the store; a
// database that cannot be reached (down, restarting) gets 503 with
// Retry-After, and the Client sends the request again. Every write is safe
// to send again (see metadata.Store).
package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"stepwise.dev/stepwise/internal/bearer"
	"stepwise.dev/stepwise/internal/datastore"
	"stepwise.dev/stepwise/internal/metadata"
)

// DefaultMaxBody is the largest request body a handler reads when
// Options.MaxBody is zero.
const DefaultMaxBody = 1 << 20

// Options configure a handler.
type Options struct {
	// Tokens are the bearer tokens the service accepts; when there are none
	// the service needs no token. Empty tokens are ignored.
	Tokens []string
	// MaxBody is the largest request body in bytes (DefaultMaxBody if 0).
	MaxBody int64
	// Code, when set, signs URLs of the flow binaries stored in the
	// datastore (GET /v1/code/SHA256/url), for deployed flows' pods.
	Code CodeSigner
	// Logger receives a line per request (debug for successes, info for
	// client errors, warn for refused tokens, error for failures); nil
	// means slog.Default().
	Logger *slog.Logger
}

// CodeSigner makes a short-lived URL that fetches the stored flow binary
// with this SHA-256, or returns an error that is ErrNoCode when there is
// none.
type CodeSigner interface {
	CodeURL(ctx context.Context, sha256 string) (string, error)
}

// ErrNoCode is what a CodeSigner's error wraps when no binary has the
// SHA-256 asked for.
var ErrNoCode = datastore.ErrNoCode

// StoredCode signs URLs of the binaries in a datastore, valid for 15
// minutes: time enough for a pod to fetch its code.
type StoredCode struct{ Data *datastore.Store }

// CodeURL returns a URL of the binary with this SHA-256.
func (c StoredCode) CodeURL(ctx context.Context, sum string) (string, error) {
	return c.Data.CodeURL(ctx, sum, 15*time.Minute)
}

// Error codes of the JSON error bodies.
const (
	codeBadRequest       = "bad_request"
	codeUnauthorized     = "unauthorized"
	codeNotFound         = "not_found" // metadata.ErrNotFound: no such run or task
	codeNoRoute          = "no_route"
	codeMethodNotAllowed = "method_not_allowed"
	codeExists           = "exists" // metadata.ErrExists
	codeConflict         = "conflict"
	codeTooLarge         = "too_large"
	codeInternal         = "internal"
	codeUnavailable      = "unavailable"
	codeForbidden        = "forbidden"              // a cross-origin request from a browser
	codeMediaType        = "unsupported_media_type" // a write whose body is not declared as JSON
)

// errorBody is the body of every error response.
type errorBody struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

// apiError is an error response to write.
type apiError struct {
	status int
	code   string
	msg    string
	cause  error // logged, for failures
	// retryAfter, when not zero, is sent as Retry-After (in seconds): the
	// request may work then.
	retryAfter int
}

// Error returns the message.
func (e *apiError) Error() string { return e.msg }

func badRequest(format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, code: codeBadRequest, msg: fmt.Sprintf(format, args...)}
}

// handler serves the metadata API.
type handler struct {
	store   metadata.Store
	code    CodeSigner
	tokens  bearer.Set
	maxBody int64
	log     *slog.Logger
	routes  []route
	xorigin *http.CrossOriginProtection
}

// NewHandler returns the HTTP handler of the metadata service over store.
func NewHandler(store metadata.Store, opts Options) http.Handler {
	h := &handler{store: store, code: opts.Code, maxBody: opts.MaxBody, log: opts.Logger}
	if h.maxBody <= 0 {
		h.maxBody = DefaultMaxBody
	}
	if h.log == nil {
		h.log = slog.Default()
	}
	h.tokens = bearer.NewSet(opts.Tokens, h.log.With("server", "metadata service"))
	h.routes = routes()
	h.xorigin = http.NewCrossOriginProtection()
	return h
}

// recorder remembers what was written, for the log and for recovering
// from a panic.
type recorder struct {
	http.ResponseWriter
	status int
	err    *apiError
}

// WriteHeader records the status and writes it.
func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
	r.ResponseWriter.WriteHeader(status)
}

// Write records that the response started and writes b.
func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// ServeHTTP serves a request: it recovers from panics, logs, checks the
// token and routes.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &recorder{ResponseWriter: w}
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			h.log.Error("metadata service: panic while handling a request", "method", r.Method, "path", r.URL.Path,
				"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			if rec.status == 0 {
				h.writeError(rec, &apiError{status: http.StatusInternalServerError, code: codeInternal,
					msg: "the metadata service failed while handling this request (a bug: it panicked); the service log has the details; report it"})
			}
		}
		h.logRequest(r, rec, time.Since(start))
	}()
	if r.URL.Path == "/healthz" {
		h.healthz(rec, r)
		return
	}
	if e := h.authorize(r); e != nil {
		rec.Header().Set("WWW-Authenticate", `Bearer realm="stepwise-metadata"`)
		h.writeError(rec, e)
		return
	}
	if err := h.xorigin.Check(r); err != nil {
		h.writeError(rec, &apiError{status: http.StatusForbidden, code: codeForbidden,
			msg: fmt.Sprintf("%s %s refused: %v; the metadata service takes writes from Stepwise's clients, not from web pages in a browser", r.Method, r.URL.EscapedPath(), err)})
		return
	}
	h.route(rec, w, r)
}

func (h *handler) logRequest(r *http.Request, rec *recorder, took time.Duration) {
	attrs := []any{"method", r.Method, "path", r.URL.EscapedPath(), "status", rec.status, "took", took, "remote", r.RemoteAddr}
	level := slog.LevelDebug
	if rec.err != nil {
		attrs = append(attrs, "error", rec.err.msg)
		switch {
		case r.Context().Err() != nil:
			level = slog.LevelInfo // the client went away
		case rec.status >= 500:
			level = slog.LevelError
			if rec.err.cause != nil {
				attrs = append(attrs, "cause", rec.err.cause.Error())
			}
		case rec.status == http.StatusUnauthorized:
			level = slog.LevelWarn
		default:
			level = slog.LevelInfo
		}
	}
	h.log.Log(r.Context(), level, "metadata service request", attrs...)
}

// authorize checks the bearer token.
func (h *handler) authorize(r *http.Request) *apiError {
	if msg := h.tokens.Check(r.Header.Get("Authorization"), "this metadata service"); msg != "" {
		return &apiError{status: http.StatusUnauthorized, code: codeUnauthorized, msg: msg}
	}
	return nil
}

// pinger is a store that can say whether its database answers, as the
// PostgreSQL store can.
type pinger interface {
	Ping(ctx context.Context) error
}

// healthz answers whether the service is up, and its store if the store
// can tell.
func (h *handler) healthz(w *recorder, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		h.writeError(w, &apiError{status: http.StatusMethodNotAllowed, code: codeMethodNotAllowed,
			msg: fmt.Sprintf("%s is not allowed on /healthz; use GET", r.Method)})
		return
	}
	if p, ok := h.store.(pinger); ok {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		err := p.Ping(ctx)
		cancel()
		if err != nil {
			h.writeError(w, &apiError{status: http.StatusServiceUnavailable, code: codeUnavailable, retryAfter: RetryAfter,
				msg: "the metadata service cannot reach its database: " + err.Error(), cause: err})
			return
		}
	}
	h.writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// writeJSON writes v as the JSON body of a response.
func (h *handler) writeJSON(w *recorder, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		h.writeError(w, &apiError{status: http.StatusInternalServerError, code: codeInternal,
			msg: "the metadata service could not encode its response: " + err.Error(), cause: err})
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", "application/json")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// writeError writes an error response.
func (h *handler) writeError(w *recorder, e *apiError) {
	w.err = e
	if e.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.retryAfter))
	}
	h.writeJSON(w, e.status, errorBody{Error: e.msg, Code: e.code})
}

// RetryAfter is the Retry-After (in seconds) of a 503 answer: the service
// cannot reach its database, which is down or restarting.
const RetryAfter = 1

// storeError turns an error of the store into a response: 404 and 409 for
// the sentinel errors, 400 for input the store refused, 409 for a conflict
// with what is recorded, 503 with Retry-After when the store cannot reach
// its database, 500 for anything else.
func storeError(r *http.Request, err error) *apiError {
	var (
		inv  interface{ Invalid() bool }
		con  interface{ Conflict() bool }
		unav interface{ Unavailable() bool }
	)
	switch {
	case errors.Is(err, metadata.ErrNotFound):
		return &apiError{status: http.StatusNotFound, code: codeNotFound, msg: err.Error()}
	case errors.Is(err, metadata.ErrExists):
		return &apiError{status: http.StatusConflict, code: codeExists, msg: err.Error()}
	case errors.As(err, &inv) && inv.Invalid():
		return &apiError{status: http.StatusBadRequest, code: codeBadRequest, msg: err.Error()}
	case errors.As(err, &con) && con.Conflict():
		return &apiError{status: http.StatusConflict, code: codeConflict, msg: err.Error()}
	case errors.As(err, &unav) && unav.Unavailable():
		return &apiError{status: http.StatusServiceUnavailable, code: codeUnavailable, retryAfter: RetryAfter, cause: err,
			msg: err.Error() + " (the metadata service cannot reach its database, which is down or restarting; try again in a few seconds: Stepwise's clients do so by themselves)"}
	case r.Context().Err() != nil:
		return &apiError{status: http.StatusServiceUnavailable, code: codeUnavailable,
			msg: "the request was canceled before the metadata service finished it: " + err.Error(), cause: err}
	}
	return &apiError{status: http.StatusInternalServerError, code: codeInternal,
		msg: err.Error() + " (the metadata service could not use its database; try again later, or ask its operator to check the service log)", cause: err}
}

// route is one route of the API.
type route struct {
	method  string
	pattern []string // path segments; "{name}" matches any one segment
	query   []string // query parameters it takes
	serve   func(h *handler, w *recorder, r *http.Request, n pathNames) *apiError
}

// params are a request's path parameters, unescaped.
type params struct {
	names, values []string
}

func (p *params) get(name string) string {
	if i := slices.Index(p.names, name); i >= 0 {
		return p.values[i]
	}
	return ""
}

// match matches an escaped path, split into segments, against a route's
// pattern.
func (rt *route) match(segs []string) (*params, bool, *apiError) {
	if len(segs) != len(rt.pattern) {
		return nil, false, nil
	}
	p := &params{}
	for i, pat := range rt.pattern {
		if !strings.HasPrefix(pat, "{") {
			if segs[i] != pat {
				return nil, false, nil
			}
			continue
		}
		v, err := url.PathUnescape(segs[i])
		if err != nil {
			return nil, true, badRequest("bad path segment %q: %v", segs[i], err)
		}
		p.names = append(p.names, strings.Trim(pat, "{}"))
		p.values = append(p.values, v)
	}
	return p, true, nil
}

// route finds the route of a request and serves it: 404 when no route has
// its path, 405 when none of those has its method.
func (h *handler) route(w *recorder, raw http.ResponseWriter, r *http.Request) {
	path := r.URL.EscapedPath()
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	segs := strings.Split(path[1:], "/")
	var allow []string
	for i := range h.routes {
		rt := &h.routes[i]
		p, ok, perr := rt.match(segs)
		if !ok {
			continue
		}
		if rt.method != r.Method && !(rt.method == http.MethodGet && r.Method == http.MethodHead) {
			allow = append(allow, rt.method)
			if rt.method == http.MethodGet {
				allow = append(allow, http.MethodHead)
			}
			continue
		}
		if perr != nil {
			h.writeError(w, perr)
			return
		}
		if e := checkQuery(r.URL.RawQuery, rt.query); e != nil {
			h.writeError(w, e)
			return
		}
		if e := checkContentType(r); e != nil {
			h.writeError(w, e)
			return
		}
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = http.MaxBytesReader(raw, r.Body, h.maxBody)
		}
		n, e := p.check()
		if e == nil {
			e = rt.serve(h, w, r, n)
		}
		if e != nil {
			h.writeError(w, e)
		}
		return
	}
	if len(allow) > 0 {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		h.writeError(w, &apiError{status: http.StatusMethodNotAllowed, code: codeMethodNotAllowed,
			msg: fmt.Sprintf("%s is not allowed on %s; use %s (see docs/metadata-api.yaml)", r.Method, path, strings.Join(allow, " or "))})
		return
	}
	h.writeError(w, &apiError{status: http.StatusNotFound, code: codeNoRoute,
		msg: fmt.Sprintf("no route %s %s: this metadata service serves /healthz and the API under /v1 (see docs/metadata-api.yaml); check the service URL", r.Method, path)})
}

// checkContentType refuses a POST whose body is not declared as JSON
// (Content-Type: application/json). A web page can make a browser send a
// POST with a form or text body to any address without asking it first;
// it cannot send one declared as JSON without the service's consent, which
// the service never gives.
func checkContentType(r *http.Request) *apiError {
	if r.Method != http.MethodPost {
		return nil
	}
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err == nil && mt == "application/json" {
		return nil
	}
	what := "no Content-Type"
	if ct != "" {
		what = fmt.Sprintf("Content-Type %q", ct)
	}
	return &apiError{status: http.StatusUnsupportedMediaType, code: codeMediaType,
		msg: fmt.Sprintf("%s %s has %s; send its body as JSON with the header \"Content-Type: application/json\" (an empty body too)", r.Method, r.URL.EscapedPath(), what)}
}

// checkQuery rejects query parameters a route does not take, and a query
// that does not parse.
func checkQuery(raw string, allowed []string) *apiError {
	if raw == "" {
		return nil
	}
	q, err := url.ParseQuery(raw)
	if err != nil {
		return badRequest("bad query string %q: %v", raw, err)
	}
	for k := range q {
		if !slices.Contains(allowed, k) {
			if len(allowed) == 0 {
				return badRequest("unknown query parameter %q: this route takes none", k)
			}
			return badRequest("unknown query parameter %q: this route takes %s", k, strings.Join(allowed, ", "))
		}
	}
	return nil
}
