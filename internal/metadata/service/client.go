package service

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"

	"stepwise.dev/stepwise/internal/metadata"
)

// Client is a metadata.Store that uses a metadata service over HTTP. Its
// methods are safe for concurrent use.
//
// Every request, read or write, that cannot reach the service (no
// connection, a connection lost, a timeout) or that the service or a proxy
// answers with 502, 503 or 504 (the service answers 503 while its database
// is away) is sent again, with exponential backoff and jitter, for up to
// ClientOptions.RetryFor. Writes are safe to send again: the stores record
// a write that was done already as it was (see metadata.Store).
type Client struct {
	base     string // the service's URL, without a trailing slash
	token    string
	hc       *http.Client
	retryFor time.Duration
	log      *slog.Logger
}

var _ metadata.Store = (*Client)(nil)

// DefaultTimeout is the time limit of one request of a Client made without
// an http.Client.
const DefaultTimeout = 2 * time.Minute

// DefaultRetryFor is how long a Client tries to reach the service, when
// ClientOptions.RetryFor is zero: long enough for a restart of the service
// or of its database.
const DefaultRetryFor = 2 * time.Minute

// ErrUnreachable is matched (errors.Is) by the error of a request that
// could not reach the metadata service, or its database, for as long as
// the client tried.
var ErrUnreachable = errors.New("metadata service unreachable")

// ClientOptions configure a Client.
type ClientOptions struct {
	// Token is sent as a bearer token unless it is empty.
	Token string
	// HTTPClient sends the requests; nil means one of the client's own,
	// with DefaultTimeout and room for many concurrent connections.
	HTTPClient *http.Client
	// RetryFor is how long a request that cannot reach the service is
	// tried, in all, before the client gives up: DefaultRetryFor when
	// zero, no retries when negative.
	RetryFor time.Duration
	// Logger receives a warning when a request starts to be retried, and
	// a line when it gets through; nil means slog.Default().
	Logger *slog.Logger
}

// NewClient returns a client of the metadata service at baseURL (such as
// https://metadata.example.com, or with a path prefix), sending token as
// a bearer token unless it is empty, with the defaults of ClientOptions
// otherwise and httpClient if not nil.
func NewClient(baseURL, token string, httpClient *http.Client) (*Client, error) {
	return NewClientWithOptions(baseURL, ClientOptions{Token: token, HTTPClient: httpClient})
}

// NewClientWithOptions returns a client of the metadata service at baseURL
// (such as https://metadata.example.com, or with a path prefix).
func NewClientWithOptions(baseURL string, o ClientOptions) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("metadata: bad metadata service URL %q: %w", baseURL, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("metadata: bad metadata service URL %q: want http://host:port or https://host[:port][/prefix]", baseURL)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("metadata: bad metadata service URL %q: it cannot have a query, a fragment or user information; give the token apart", baseURL)
	}
	token := strings.TrimSpace(o.Token)
	if strings.IndexFunc(token, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
		return nil, errors.New("metadata: the metadata service token holds spaces or control characters; check the token in your configuration")
	}
	httpClient := o.HTTPClient
	if httpClient == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 64
		httpClient = &http.Client{Transport: tr, Timeout: DefaultTimeout}
	}
	c := &Client{base: strings.TrimRight(u.String(), "/"), token: token, hc: httpClient, retryFor: o.RetryFor, log: o.Logger}
	if c.retryFor == 0 {
		c.retryFor = DefaultRetryFor
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	return c, nil
}

// Close closes the client's idle connections.
func (c *Client) Close() error {
	c.hc.CloseIdleConnections()
	return nil
}

// Error is an error response of the metadata service. It matches
// metadata.ErrNotFound and metadata.ErrExists with errors.Is when the
// service says so.
type Error struct {
	Method     string
	URL        string
	StatusCode int
	Code       string // the service's error code, such as "not_found", "exists" or "bad_request"
	Message    string // the service's message
	// RetryAfter is the wait the answer's Retry-After header asked for.
	RetryAfter time.Duration
}

// Error returns the service's message, followed by the request and the
// response's status.
func (e *Error) Error() string {
	msg := e.Message
	if !strings.HasPrefix(msg, "metadata: ") {
		msg = "metadata: " + msg
	}
	return fmt.Sprintf("%s (%s %s: %d %s)", msg, e.Method, e.URL, e.StatusCode, http.StatusText(e.StatusCode))
}

// Is reports whether the service said the run or task does not exist
// (metadata.ErrNotFound) or already exists (metadata.ErrExists).
func (e *Error) Is(target error) bool {
	switch target {
	case metadata.ErrNotFound:
		return e.StatusCode == http.StatusNotFound && e.Code == codeNotFound
	case metadata.ErrExists:
		return e.StatusCode == http.StatusConflict && e.Code == codeExists
	}
	return false
}

// Invalid reports whether the service refused the request as bad input.
func (e *Error) Invalid() bool {
	return e.StatusCode == http.StatusBadRequest || e.StatusCode == http.StatusRequestEntityTooLarge
}

// Conflict reports whether the service refused the request because of
// what is recorded (such as removing a system tag).
func (e *Error) Conflict() bool {
	return e.StatusCode == http.StatusConflict && e.Code == codeConflict
}

// Backoff between tries: from firstDelay, doubling up to maxDelay, each
// wait drawn at random between half and all of it.
const (
	firstDelay = 100 * time.Millisecond
	maxDelay   = 5 * time.Second
)

// do sends a request with body (unless nil) encoded as JSON, and decodes
// the response's body into out (unless nil). It sends it again while the
// service cannot be reached, for up to c.retryFor.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, body, out any) error {
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return fmt.Errorf("metadata: encoding the request %s %s: %w", method, u, err)
		}
	}
	start := time.Now()
	delay := firstDelay
	for try := 1; ; try++ {
		resp, err := c.send(ctx, method, u, payload)
		var answered *Error // a 502, 503 or 504 answer
		if err == nil && isUnavailable(resp.StatusCode) {
			answered = c.response(resp, method, u, nil).(*Error)
		}
		if err == nil && answered == nil {
			if try > 1 {
				c.log.Info("metadata service reached again", "url", c.base, "request", method+" "+path, "after", time.Since(start).Round(time.Millisecond), "tries", try)
			}
			return c.response(resp, method, u, out)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("metadata: %s %s: gave up waiting for the metadata service at %s after %s: %w", method, u, c.base, time.Since(start).Round(time.Millisecond), context.Cause(ctx))
		}
		if err != nil && !retryable(err) {
			return fmt.Errorf("metadata: cannot reach the metadata service at %s: %w", c.base, err)
		}
		elapsed := time.Since(start)
		if c.retryFor < 0 || elapsed >= c.retryFor {
			return c.gaveUp(elapsed, try, err, answered)
		}
		wait := delay/2 + rand.N(delay/2+1)
		if answered != nil && answered.RetryAfter > wait {
			wait = answered.RetryAfter
		}
		wait = min(wait, c.retryFor-elapsed)
		if try == 1 {
			why := fmt.Sprint(err)
			if answered != nil {
				why = answered.Error()
			}
			c.log.Warn("metadata service unreachable; retrying", "url", c.base, "request", method+" "+path, "for", c.retryFor, "error", why)
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("metadata: %s %s: gave up waiting for the metadata service at %s after %s: %w", method, u, c.base, time.Since(start).Round(time.Millisecond), context.Cause(ctx))
		}
		delay = min(2*delay, maxDelay)
	}
}

// gaveUp is the error of a request that could not get through for as
// long as the client tried.
func (c *Client) gaveUp(elapsed time.Duration, tries int, err error, answered *Error) error {
	what, why := "was unreachable", ""
	if answered != nil {
		what = fmt.Sprintf("answered %d %s", answered.StatusCode, http.StatusText(answered.StatusCode))
		if answered.Code == codeUnavailable {
			why = ": its database is away"
		}
		err = answered
	}
	return fmt.Errorf("metadata: the metadata service at %s %s for %s (%d tries)%s; check that it and its database are running and reachable from here (GET %s/healthz answers ok), then try again (a failed run can be resumed): %w: %w",
		c.base, what, elapsed.Round(time.Millisecond), tries, why, c.base, ErrUnreachable, err)
}

// isUnavailable reports whether an HTTP status says that the service, or
// what is behind it, is away for now.
func isUnavailable(status int) bool {
	return status == http.StatusBadGateway || status == http.StatusServiceUnavailable || status == http.StatusGatewayTimeout
}

// retryable reports whether a request that failed with err (the HTTP
// client's) may get through later: any failure to connect or of the
// connection, but not a certificate the client refuses, a host name that
// does not exist, or a server that does not speak HTTP as asked.
func retryable(err error) bool {
	var (
		dns     *net.DNSError
		certErr *tls.CertificateVerificationError
		hostErr x509.HostnameError
		authErr x509.UnknownAuthorityError
		invErr  x509.CertificateInvalidError
		recErr  tls.RecordHeaderError
	)
	switch {
	case errors.As(err, &dns):
		return !dns.IsNotFound
	case errors.As(err, &certErr), errors.As(err, &hostErr), errors.As(err, &authErr), errors.As(err, &invErr), errors.As(err, &recErr):
		return false
	}
	return true
}

func (c *Client) send(ctx context.Context, method, u string, payload []byte) (*http.Response, error) {
	var body io.Reader
	if payload != nil {
		body = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "stepwise-metadata-client")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	return c.hc.Do(req)
}

// response reads a response: its body into out on success, the service's
// error otherwise.
func (c *Client) response(resp *http.Response, method, u string, out any) error {
	defer resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		if out == nil {
			io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			return nil
		}
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			return fmt.Errorf("metadata: bad response of the metadata service to %s %s: %w", method, u, err)
		}
		return nil
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	e := &Error{Method: method, URL: u, StatusCode: resp.StatusCode}
	if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs > 0 {
		e.RetryAfter = time.Duration(min(secs, 60)) * time.Second
	}
	var eb errorBody
	if json.Unmarshal(b, &eb) == nil && eb.Error != "" {
		e.Message, e.Code = eb.Error, eb.Code
	} else {
		// Not the service: a proxy, or another server at that URL.
		e.Message = "the metadata service URL answered " + resp.Status
		if s := strings.TrimSpace(string(b)); s != "" {
			e.Message += ": " + truncate(s, 200)
		}
		e.Message += "; check the metadata service URL"
	}
	return e
}

// runPathOf is the path of a run.
func runPathOf(flow, run string) string { return escapedPath("v1", "flows", flow, "runs", run) }

// taskPathOf is the path of a task.
func taskPathOf(flow, run, step, task string) string {
	return escapedPath("v1", "flows", flow, "runs", run, "steps", step, "tasks", task)
}

// CreateRun records a new run (ErrExists if another run has its id). A
// zero Started is set to now and an empty Status to running, in r too,
// before the request is sent, so that sending it again is recording the
// same run.
func (c *Client) CreateRun(ctx context.Context, r *metadata.Run) error {
	r.Started = metadata.TimeOrNow(r.Started)
	if r.Status == "" {
		r.Status = metadata.Running
	}
	var got metadata.Run
	if err := c.do(ctx, http.MethodPost, escapedPath("v1", "flows", r.Flow, "runs"), nil, r, &got); err != nil {
		return err
	}
	if r.Started.IsZero() {
		r.Started = got.Started
	}
	if r.Status == "" {
		r.Status = got.Status
	}
	return nil
}

// FinishRun sets a run's final status and end time (now when zero).
func (c *Client) FinishRun(ctx context.Context, flow, run string, status metadata.Status, ended time.Time) error {
	req := finishRunRequest{Status: status, Ended: metadata.TimeOrNow(ended)}
	return c.do(ctx, http.MethodPost, runPathOf(flow, run)+"/finish", nil, req, nil)
}

// Heartbeat records that the runtime of a run is alive at time at (now
// when zero).
func (c *Client) Heartbeat(ctx context.Context, flow, run string, at time.Time) error {
	return c.do(ctx, http.MethodPost, runPathOf(flow, run)+"/heartbeat", nil, heartbeatRequest{At: at}, nil)
}

// TaskHeartbeat records that the process of an attempt is alive at time
// at (now when zero), and moves the run's heartbeat forward too;
// ErrNotFound if there is no such attempt.
func (c *Client) TaskHeartbeat(ctx context.Context, flow, run, step, task string, attempt int, at time.Time) error {
	a := metadata.Attempt{Flow: flow, Run: run, Step: step, Task: task, N: attempt}
	return c.do(ctx, http.MethodPost, attemptPath(a)+"/heartbeat", nil, heartbeatRequest{At: at}, nil)
}

// GetRun returns a run (ErrNotFound if none).
func (c *Client) GetRun(ctx context.Context, flow, run string) (*metadata.Run, error) {
	var r metadata.Run
	if err := c.do(ctx, http.MethodGet, runPathOf(flow, run), nil, nil, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// ListRuns returns runs matching f, newest first: all of them, or the
// first f.Limit, after f.After. It asks the service for them a page at a
// time.
func (c *Client) ListRuns(ctx context.Context, f metadata.RunFilter) ([]*metadata.Run, error) {
	path := "/v1/runs"
	if f.Flow != "" {
		path = escapedPath("v1", "flows", f.Flow, "runs")
	}
	q := url.Values{}
	for _, t := range f.Tags {
		q.Add("tag", t)
	}
	if f.Status != "" {
		q.Set("status", string(f.Status))
	}
	if !f.Since.IsZero() {
		q.Set("since", f.Since.UTC().Format(time.RFC3339Nano))
	}
	if !f.Until.IsZero() {
		q.Set("until", f.Until.UTC().Format(time.RFC3339Nano))
	}
	cur := ""
	if !f.After.IsZero() {
		cur = runCursor(f.After)
	}
	runs := []*metadata.Run{}
	for {
		size := clientPageSize
		if f.Limit > 0 {
			size = min(size, f.Limit-len(runs))
		}
		var l runList
		if err := c.do(ctx, http.MethodGet, path, pageQuery(q, size, cur), nil, &l); err != nil {
			return nil, err
		}
		runs = append(runs, l.Runs...)
		if l.Next == "" || (f.Limit > 0 && len(runs) >= f.Limit) {
			return runs, nil
		}
		cur = l.Next
	}
}

// ListFlows returns the names of all flows that have runs, sorted.
func (c *Client) ListFlows(ctx context.Context) ([]string, error) {
	return c.ListFlowsAfter(ctx, "", 0)
}

// ListFlowsAfter returns at most limit (all when 0) of the names of the
// flows that have runs, sorted, after the name after; a page at a time.
func (c *Client) ListFlowsAfter(ctx context.Context, after string, limit int) ([]string, error) {
	cur := ""
	if after != "" {
		cur = flowCursor(after)
	}
	flows := []string{}
	for {
		size := clientPageSize
		if limit > 0 {
			size = min(size, limit-len(flows))
		}
		var l flowList
		if err := c.do(ctx, http.MethodGet, "/v1/flows", pageQuery(nil, size, cur), nil, &l); err != nil {
			return nil, err
		}
		flows = append(flows, l.Flows...)
		if l.Next == "" || (limit > 0 && len(flows) >= limit) {
			return flows, nil
		}
		cur = l.Next
	}
}

// AddTags adds user tags to a run.
func (c *Client) AddTags(ctx context.Context, flow, run string, tags []string) error {
	if tags == nil {
		tags = []string{}
	}
	return c.do(ctx, http.MethodPost, runPathOf(flow, run)+"/tags", nil, tagsRequest{Tags: tags}, nil)
}

// RemoveTags removes user tags from a run; removing a system tag is an
// error and removes nothing.
func (c *Client) RemoveTags(ctx context.Context, flow, run string, tags []string) error {
	return c.do(ctx, http.MethodDelete, runPathOf(flow, run)+"/tags", url.Values{"tag": tags}, nil, nil)
}

func attemptPath(a metadata.Attempt) string {
	return taskPathOf(a.Flow, a.Run, a.Step, a.Task) + "/attempts/" + strconv.Itoa(a.N)
}

// StartAttempt records that an attempt started (creating the task on its
// first attempt), at now when a.Started is zero; ErrExists if it was
// started already, otherwise than by this call.
func (c *Client) StartAttempt(ctx context.Context, a metadata.Attempt) error {
	req := startAttemptRequest{Started: metadata.TimeOrNow(a.Started)} // the same start if sent again
	return c.do(ctx, http.MethodPost, attemptPath(a)+"/start", nil, req, nil)
}

// FinishAttempt records the end of an attempt; on success the task takes
// the attempt's artifacts and status.
func (c *Client) FinishAttempt(ctx context.Context, a metadata.Attempt, artifacts []metadata.Artifact) error {
	req := finishAttemptRequest{Status: a.Status, Started: a.Started, Ended: metadata.TimeOrNow(a.Ended), Error: a.Error, Artifacts: artifacts}
	return c.do(ctx, http.MethodPost, attemptPath(a)+"/finish", nil, req, nil)
}

// CloneTask records a task copied from an origin run by resume, with the
// origin's artifacts, as succeeded (ErrExists if the task exists).
func (c *Client) CloneTask(ctx context.Context, t *metadata.Task) error {
	req := cloneTaskRequest{ClonedFrom: t.ClonedFrom, Started: t.Started, Ended: t.Ended, Artifacts: t.Artifacts}
	return c.do(ctx, http.MethodPost, taskPathOf(t.Flow, t.Run, t.Step, t.ID)+"/clone", nil, req, nil)
}

// GetTask returns a task with its attempts and artifacts.
func (c *Client) GetTask(ctx context.Context, flow, run, step, task string) (*metadata.Task, error) {
	var t metadata.Task
	if err := c.do(ctx, http.MethodGet, taskPathOf(flow, run, step, task), nil, nil, &t); err != nil {
		return nil, err
	}
	return &t, nil
}

// ListTasks returns the tasks of a run, with their attempts and artifacts,
// by start time, then step, then task id as dotted numbers.
func (c *Client) ListTasks(ctx context.Context, flow, run string) ([]*metadata.Task, error) {
	return c.ListTasksAfter(ctx, flow, run, metadata.TaskKey{}, 0)
}

// ListTasksAfter returns at most limit (all when 0) of the tasks of a run
// after the task at after, in the order of ListTasks; a page at a time.
func (c *Client) ListTasksAfter(ctx context.Context, flow, run string, after metadata.TaskKey, limit int) ([]*metadata.Task, error) {
	cur := ""
	if !after.IsZero() {
		cur = taskCursor(after)
	}
	tasks := []*metadata.Task{}
	for {
		size := clientPageSize
		if limit > 0 {
			size = min(size, limit-len(tasks))
		}
		var l taskList
		if err := c.do(ctx, http.MethodGet, runPathOf(flow, run)+"/tasks", pageQuery(nil, size, cur), nil, &l); err != nil {
			return nil, err
		}
		tasks = append(tasks, l.Tasks...)
		if l.Next == "" || (limit > 0 && len(tasks) >= limit) {
			return tasks, nil
		}
		cur = l.Next
	}
}
