package kubernetes

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// client makes the backend's few requests to the API server, as JSON over
// the HTTP client that client-go's configuration gives (TLS, tokens,
// certificates, exec plugins).
type client struct {
	http *http.Client
	base string // the API server's URL, without a trailing slash
}

// APIError is an answer of the API server other than success.
type APIError struct {
	Method, Path string
	Code         int
	Reason       string // NotFound, AlreadyExists, Forbidden, Gone, ...
	Message      string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("%s %s: %d %s: %s", e.Method, e.Path, e.Code, e.Reason, e.Message)
}

func isCode(err error, code int) bool {
	var e *APIError
	return errors.As(err, &e) && e.Code == code
}

func isNotFound(err error) bool      { return isCode(err, http.StatusNotFound) }
func isAlreadyExists(err error) bool { return isCode(err, http.StatusConflict) }
func isForbidden(err error) bool     { return isCode(err, http.StatusForbidden) }
func isGone(err error) bool          { return isCode(err, http.StatusGone) }

// send makes a request and returns the response of a success.
func (c *client) send(ctx context.Context, method, path string, query url.Values, body any) (*http.Response, error) {
	return c.sendAs(ctx, method, path, query, body, "application/json")
}

// sendAs is send with the body's content type (a patch's).
func (c *client) sendAs(ctx context.Context, method, path string, query url.Values, body any, contentType string) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(data)
	}
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var st status
	e := &APIError{Method: method, Path: path, Code: resp.StatusCode, Reason: http.StatusText(resp.StatusCode)}
	if json.Unmarshal(data, &st) == nil && st.Message != "" {
		e.Reason, e.Message = st.Reason, st.Message
	} else {
		e.Message = strings.TrimSpace(string(data))
	}
	return nil, e
}

// do makes a request and decodes its answer into out (when not nil).
func (c *client) do(ctx context.Context, method, path string, query url.Values, body, out any) error {
	resp, err := c.send(ctx, method, path, query, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		io.Copy(io.Discard, resp.Body)
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

func jobsPath(ns string) string { return "/apis/batch/v1/namespaces/" + url.PathEscape(ns) + "/jobs" }
func podsPath(ns string) string { return "/api/v1/namespaces/" + url.PathEscape(ns) + "/pods" }

func selector(sel string) url.Values { return url.Values{"labelSelector": {sel}} }

// deleteOptions are the query of a delete: grace (nil for the object's
// own) and, for Jobs, that their pods go too.
func deleteOptions(grace *int64, propagate bool) url.Values {
	q := url.Values{}
	if grace != nil {
		q.Set("gracePeriodSeconds", fmt.Sprint(*grace))
	}
	if propagate {
		q.Set("propagationPolicy", "Background")
	}
	return q
}

func (c *client) createJob(ctx context.Context, ns string, j *Job) error {
	return c.do(ctx, http.MethodPost, jobsPath(ns), nil, j, nil)
}

func (c *client) getJob(ctx context.Context, ns, name string) (*Job, error) {
	var j Job
	err := c.do(ctx, http.MethodGet, jobsPath(ns)+"/"+url.PathEscape(name), nil, nil, &j)
	return &j, err
}

func (c *client) deleteJob(ctx context.Context, ns, name string, grace *int64) error {
	return c.do(ctx, http.MethodDelete, jobsPath(ns)+"/"+url.PathEscape(name), deleteOptions(grace, true), nil, nil)
}

func (c *client) deletePods(ctx context.Context, ns, sel string, grace *int64) error {
	q := deleteOptions(grace, false)
	q.Set("labelSelector", sel)
	return c.do(ctx, http.MethodDelete, podsPath(ns), q, nil, nil)
}

func (c *client) listJobs(ctx context.Context, ns, sel string) ([]Job, error) {
	var l list[Job]
	err := c.do(ctx, http.MethodGet, jobsPath(ns), selector(sel), nil, &l)
	return l.Items, err
}

func (c *client) secretExists(ctx context.Context, ns, name string) error {
	return c.do(ctx, http.MethodGet, "/api/v1/namespaces/"+url.PathEscape(ns)+"/secrets/"+url.PathEscape(name), nil, nil, nil)
}

// logs streams (follow) or reads the output of a pod's container.
func (c *client) logs(ctx context.Context, ns, pod, container string, follow bool, tail int) (io.ReadCloser, error) {
	q := url.Values{"container": {container}}
	if follow {
		q.Set("follow", "true")
	}
	if tail > 0 {
		q.Set("tailLines", fmt.Sprint(tail))
	}
	resp, err := c.send(ctx, http.MethodGet, podsPath(ns)+"/"+url.PathEscape(pod)+"/log", q, nil)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// version asks the API server for its version: a cheap "are you there".
func (c *client) version(ctx context.Context) error {
	return c.do(ctx, http.MethodGet, "/version", nil, nil, nil)
}

// watcher keeps up with the objects of one kind that match a label
// selector: one list, then one long watch from its version, started again
// where it ended, and listed again when the server has forgotten that
// version. Each object seen, and each deletion, is handed to on, in order.
type watcher[T any] struct {
	c    *client
	path string // the collection's path
	sel  string
	name func(*T) string
	rv   func(*T) string
	on   func(obj *T, deleted bool)
	seen map[string]*T // by name, to notice deletions missed between watches
}

// start lists, then watches until ctx ends. It returns once the first
// list has been handed to on, or with the error of that list.
func (w *watcher[T]) start(ctx context.Context) error {
	w.seen = map[string]*T{}
	rv, err := w.list(ctx)
	if err != nil {
		return err
	}
	go func() {
		backoff := 100 * time.Millisecond
		for ctx.Err() == nil {
			next, err := w.watch(ctx, rv)
			switch {
			case err == nil:
				rv, backoff = next, 100*time.Millisecond
				continue
			case isGone(err):
				if next, err = w.list(ctx); err == nil {
					rv = next
					continue
				}
			}
			if next != "" {
				rv = next
			}
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
		}
	}()
	return nil
}

// list hands every object to on, and the objects seen before that are
// gone as deletions; it returns the version to watch from.
func (w *watcher[T]) list(ctx context.Context) (string, error) {
	var l list[T]
	if err := w.c.do(ctx, http.MethodGet, w.path, selector(w.sel), nil, &l); err != nil {
		return "", err
	}
	now := map[string]*T{}
	for i := range l.Items {
		o := &l.Items[i]
		now[w.name(o)] = o
		w.on(o, false)
	}
	for name, o := range w.seen {
		if now[name] == nil {
			w.on(o, true)
		}
	}
	w.seen = now
	return l.Metadata.ResourceVersion, nil
}

// watch follows changes from version rv until the server ends the watch,
// and returns the last version seen.
func (w *watcher[T]) watch(ctx context.Context, rv string) (string, error) {
	q := selector(w.sel)
	q.Set("watch", "true")
	q.Set("resourceVersion", rv)
	q.Set("allowWatchBookmarks", "true")
	q.Set("timeoutSeconds", "300")
	resp, err := w.c.send(ctx, http.MethodGet, w.path, q, nil)
	if err != nil {
		return rv, err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(bufio.NewReader(resp.Body))
	for {
		var ev watchEvent
		if err := dec.Decode(&ev); err != nil {
			if err == io.EOF || ctx.Err() != nil {
				return rv, nil
			}
			return rv, err
		}
		if ev.Type == "ERROR" {
			var st status
			json.Unmarshal(ev.Object, &st)
			return rv, &APIError{Method: http.MethodGet, Path: w.path, Code: st.Code, Reason: st.Reason, Message: st.Message}
		}
		var o T
		if err := json.Unmarshal(ev.Object, &o); err != nil {
			return rv, err
		}
		if v := w.rv(&o); v != "" {
			rv = v
		}
		switch ev.Type {
		case "ADDED", "MODIFIED":
			w.seen[w.name(&o)] = &o
			w.on(&o, false)
		case "DELETED":
			delete(w.seen, w.name(&o))
			w.on(&o, true)
		}
	}
}
