package service

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
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
type Client struct {
	base  string // the service's URL, without a trailing slash
	token string
	hc    *http.Client
}

var _ metadata.Store = (*Client)(nil)

// getTries is how many times a GET is sent when it fails to reach the
// service (or a proxy answers 502, 503 or 504); other requests are sent
// once, since they may have been done.
const getTries = 4

// DefaultTimeout is the time limit of a request of a Client made without
// an http.Client.
const DefaultTimeout = 2 * time.Minute

// NewClient returns a client of the metadata service at baseURL (such as
// https://metadata.example.com, or with a path prefix), sending token as
// a bearer token unless it is empty. With a nil httpClient the client
// uses its own, with DefaultTimeout and room for many concurrent
// connections.
func NewClient(baseURL, token string, httpClient *http.Client) (*Client, error) {
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
	token = strings.TrimSpace(token)
	if strings.IndexFunc(token, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
		return nil, errors.New("metadata: the metadata service token holds spaces or control characters; check the token in your configuration")
	}
	if httpClient == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 64
		httpClient = &http.Client{Transport: tr, Timeout: DefaultTimeout}
	}
	return &Client{base: strings.TrimRight(u.String(), "/"), token: token, hc: httpClient}, nil
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

// do sends a request with body (unless nil) encoded as JSON, and decodes
// the response's body into out (unless nil).
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
	tries := 1
	if method == http.MethodGet {
		tries = getTries
	}
	delay := 100 * time.Millisecond
	for try := 1; ; try++ {
		resp, err := c.send(ctx, method, u, payload)
		retry := try < tries && ctx.Err() == nil && (err != nil || resp.StatusCode == http.StatusBadGateway ||
			resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusGatewayTimeout)
		if !retry {
			if err != nil {
				if try > 1 {
					return fmt.Errorf("metadata: cannot reach the metadata service at %s (%d tries): %w", c.base, try, err)
				}
				return fmt.Errorf("metadata: cannot reach the metadata service at %s: %w", c.base, err)
			}
			return c.response(resp, method, u, out)
		}
		if resp != nil {
			io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
		}
		t := time.NewTimer(delay/2 + rand.N(delay))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
		delay *= 2
	}
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

// CreateRun records a new run (ErrExists if its id is taken). A zero
// Started is set to now and an empty Status to running, in r too.
func (c *Client) CreateRun(ctx context.Context, r *metadata.Run) error {
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
	return c.do(ctx, http.MethodPost, runPathOf(flow, run)+"/finish", nil, finishRunRequest{Status: status, Ended: ended}, nil)
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

// ListRuns returns runs matching f, newest first.
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
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	var l runList
	if err := c.do(ctx, http.MethodGet, path, q, nil, &l); err != nil {
		return nil, err
	}
	return l.Runs, nil
}

// ListFlows returns the names of all flows that have runs, sorted.
func (c *Client) ListFlows(ctx context.Context) ([]string, error) {
	var l flowList
	if err := c.do(ctx, http.MethodGet, "/v1/flows", nil, nil, &l); err != nil {
		return nil, err
	}
	return l.Flows, nil
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
// first attempt); ErrExists if it was started already.
func (c *Client) StartAttempt(ctx context.Context, a metadata.Attempt) error {
	return c.do(ctx, http.MethodPost, attemptPath(a)+"/start", nil, startAttemptRequest{Started: a.Started}, nil)
}

// FinishAttempt records the end of an attempt; on success the task takes
// the attempt's artifacts and status.
func (c *Client) FinishAttempt(ctx context.Context, a metadata.Attempt, artifacts []metadata.Artifact) error {
	req := finishAttemptRequest{Status: a.Status, Started: a.Started, Ended: a.Ended, Error: a.Error, Artifacts: artifacts}
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
	var l taskList
	if err := c.do(ctx, http.MethodGet, runPathOf(flow, run)+"/tasks", nil, nil, &l); err != nil {
		return nil, err
	}
	return l.Tasks, nil
}
